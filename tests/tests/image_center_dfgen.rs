//! An app image made by `dockerfile-gen` reaches a fresh node through the image center: a Python
//! app is built on the rich base without a Dockerfile, pushed to the center (skopeo, as CI would
//! push it), and a workload of it created on a node with its own, empty Docker engine is pulled
//! through the pool's proxy and runs its app under supervisord.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use caas_api::central::ContainerView;
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::netns::FABRIC_IP;
use caas_tests::registry::{push_local_image, DevCa, Registry};
use caas_tests::wait::until;

const PY_SERVER: &str = r#"from http.server import BaseHTTPRequestHandler, HTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the center\n"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)


def main():
    HTTPServer(("0.0.0.0", 8080), Hello).serve_forever()
"#;

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Removes the locally built image when the test ends, even on failure.
struct LocalImage(String);

impl Drop for LocalImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "--no-prune", &self.0])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_built_by_dockerfile_gen_reaches_a_fresh_node_through_the_center() {
    caas_tests::sofa::ensure_images().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("greeter");
    write(
        &app.join("pyproject.toml"),
        "[project]\nname = \"greeter\"\nversion = \"1.0\"\nrequires-python = \">=3.9\"\n\n\
         [project.scripts]\ngreeter = \"greeter.server:main\"\n",
    );
    write(&app.join("greeter/__init__.py"), "");
    write(&app.join("greeter/server.py"), PY_SERVER);
    let tag = format!("caas-test/dfgen-greeter:{}", std::process::id());
    let dfgen = caas_tests::binaries::dockerfile_gen().unwrap();
    let out = Command::new(&dfgen)
        .args(["--progress=plain", "build"])
        .arg(&app)
        .args(["-t", &tag, "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "dockerfile-gen build: {out:?}");
    let _local = LocalImage(tag.clone());

    let c = Cluster::start("dfgc", &[NodeSpec::new("pa", &[]).with_own_engine()], 1, 30)
        .await
        .unwrap();
    let fabric = Some(c.topo.fabric.as_str());
    let ca = DevCa::create(&c.dir.path().join("registries")).unwrap();
    let center = Registry::start_center(
        fabric,
        SocketAddr::new(IpAddr::V4(FABRIC_IP), 5000),
        &ca,
        "ci",
        "ci-secret",
    )
    .await
    .unwrap();
    let proxy = Registry::start_proxy(
        fabric,
        SocketAddr::new(IpAddr::V4(FABRIC_IP), 5001),
        &ca,
        &center,
        "ci",
        "ci-secret",
        "pa-nodes",
        "pa-secret",
    )
    .await
    .unwrap();
    let image = push_local_image(
        &ca,
        &center,
        "ci",
        "ci-secret",
        &tag,
        "team/greeter:1.0",
        fabric,
    )
    .await
    .unwrap();
    let pa = c.create_pool("pa").await.unwrap();
    let files = c.dir.path();
    std::fs::write(files.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(files.join("pw"), "pa-secret").unwrap();
    let out = c
        .cli(
            0,
            &pa,
            &[
                "--pool=pa",
                "registry-proxy",
                "add",
                "site-a",
                &proxy.url(),
                "--center",
                &center.host(),
                "--ca-file",
                &files.join("ca.pem").display().to_string(),
                "--username",
                "pa-nodes",
                "--password-file",
                &files.join("pw").display().to_string(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");

    let out = c
        .cli(
            0,
            &pa,
            &[
                "--pool=pa",
                "container",
                "create",
                "greeter",
                "--image",
                &image,
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    let running = until(
        "greeter running its app",
        Duration::from_secs(180),
        || async {
            let (code, body) = c
                .request(0, "GET", "/v1/pools/pa/containers/greeter", None, &pa)
                .await?;
            anyhow::ensure!(code == 200, "{code} {body}");
            let v: ContainerView = serde_json::from_str(&body)?;
            let status = v.status.clone();
            let app_up = status.as_ref().is_some_and(|s| {
                s.state == caas_api::WorkloadState::Running
                    && s.programs
                        .iter()
                        .any(|p| p.name == "app" && p.state == "RUNNING")
            });
            Ok(app_up.then_some(v))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        running.spec.image, image,
        "the spec keeps the center's name"
    );
    // The node's own engine got it through the proxy; the center served it once (per blob:
    // twice, distribution 2.8's double fetch), the proxy now holds it.
    let engine = c.engines[0].as_ref().unwrap().client().await.unwrap();
    let pulled = engine.inspect_image(&image).await.unwrap();
    let labels = pulled.config.unwrap().labels.unwrap();
    assert!(labels.contains_key("caas.dfgen.plan-hash"), "{labels:?}");
    assert!(center.count_fetches("/v2/team/greeter/blobs/") >= 1);
    assert!(proxy.blob_count() >= 1);
}
