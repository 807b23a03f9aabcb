//! End-to-end tests of `dockerfile-gen` against the real Docker engine and the real rich base
//! images (built by `supervisor-images/build`): for a jar, a war, a release tarball, a Python
//! app and a static site built here from source, detect -> generate -> build -> run -> an HTTP
//! answer from the container on its internal network -> down, with nothing left behind. Also
//! every kind of bad input, a failing build, and the refusal to overwrite a Dockerfile.
//!
//! All traffic stays on this machine: builds run with network `none`, the environments sit on
//! `--internal` networks, and the only HTTP requests go from this host to those containers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, RemoveImageOptions};
use caas_tests::cluster::{Cluster, NodeSpec};

// ---- the binary and the base images ----

/// Path of the `dockerfile-gen` binary (built once per test process, so it is never stale).
fn dfgen() -> PathBuf {
    caas_tests::binaries::dockerfile_gen().expect("building dockerfile-gen")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the rich base images (idempotent, flock-serialised, seconds when nothing changed).
fn base_images() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = repo_root().join("supervisor-images/build");
        let out = Command::new(&script)
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed:\n{}\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    })
    .clone()
    .expect("building the rich base images")
}

/// Runs dockerfile-gen with plain progress.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(dfgen());
    cmd.arg("--progress=plain").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("CAAS_URL");
    cmd.output().expect("running dockerfile-gen")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = run(args, &[]);
    assert!(
        out.status.success(),
        "dockerfile-gen {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command line tool that must succeed (javac, jar, tar).
fn sh(program: &str, args: &[&str], cwd: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}:\n{}", text(&out));
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---- cleanup ----

/// Removes the environment of an app path (and the image the test built) even when the test
/// fails; at creation it also sweeps environments of earlier runs whose temp dirs are gone.
struct EnvGuard {
    path: PathBuf,
    image: Option<String>,
}

impl EnvGuard {
    fn new(path: &Path) -> Self {
        let _ = run(&["down", "--stale"], &[]);
        Self {
            path: path.to_path_buf(),
            image: None,
        }
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        let _ = run(&["down", self.path.to_str().unwrap()], &[]);
        if let Some(image) = &self.image {
            let _ = Command::new("docker")
                .args(["rmi", "--no-prune", image])
                .output();
        }
    }
}

async fn leftovers(path: &Path) -> (usize, usize) {
    let docker = caas_tests::images::docker().await.unwrap();
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("caas.dfgen.path={}", path.display())],
    )]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .unwrap();
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .unwrap();
    (containers.len(), networks.len())
}

// ---- the whole journey ----

/// detect -> generate -> build -> run -> HTTP -> down, for the app at `path`.
async fn journey(path: &Path, detector: &str, base: &str, expect: &str) {
    base_images();
    let mut guard = EnvGuard::new(path);
    let p = path.to_str().unwrap();

    let plan: serde_json::Value = serde_json::from_str(&ok(&["plan", p, "-o", "json"])).unwrap();
    assert_eq!(plan["detector"], detector, "{plan:#}");
    assert!(
        plan["base_image"].as_str().unwrap().starts_with(base),
        "{plan:#}"
    );
    assert!(!plan["evidence"].as_array().unwrap().is_empty());

    let out_dir = path.parent().unwrap().join("generated");
    ok(&["generate", p, "--out", out_dir.to_str().unwrap()]);
    let dockerfile = std::fs::read_to_string(out_dir.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("FROM {base}:latest")),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("caas.dfgen.plan-hash"), "{dockerfile}");
    assert!(out_dir.join(".dockerignore").exists());

    let built: serde_json::Value = serde_json::from_str(&ok(&["build", p, "-o", "json"])).unwrap();
    let image = built["image"].as_str().unwrap().to_string();
    guard.image = Some(image.clone());
    let docker = caas_tests::images::docker().await.unwrap();
    let labels = docker
        .inspect_image(&image)
        .await
        .unwrap()
        .config
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(
        labels["caas.dfgen.plan-hash"],
        plan["hash"].as_str().unwrap()
    );
    assert_eq!(labels["caas.dfgen.detector"], detector);

    let info: serde_json::Value =
        serde_json::from_str(&ok(&["run", p, "-o", "json", "--timeout", "240"])).unwrap();
    let url = info["url"].as_str().unwrap();
    let body = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(expect), "GET {url}: {body}");

    // The environment's network is internal and the app's data paths are in the data container.
    let net = docker
        .inspect_network(info["network"].as_str().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(net.internal, Some(true));
    let app = docker
        .inspect_container(info["app_container"].as_str().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        app.host_config.unwrap().volumes_from.unwrap(),
        [info["data_container"].as_str().unwrap().to_string()]
    );

    let down = ok(&["down", p]);
    assert!(down.contains("removed container"), "{down}");
    assert_eq!(leftovers(path).await, (0, 0), "containers/networks left");
}

#[tokio::test(flavor = "multi_thread")]
async fn executable_jar_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(
        &src.join("Hello.java"),
        r#"import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
public class Hello {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
        server.createContext("/", ex -> {
            byte[] body = "hello from jar\n".getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            ex.getResponseBody().write(body);
            ex.close();
        });
        server.start();
    }
}
"#,
    );
    sh(
        "javac",
        &["--release", "17", "-d", "classes", "src/Hello.java"],
        dir.path(),
    );
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    sh(
        "jar",
        &[
            "--create",
            "--file",
            "app/hello.jar",
            "--main-class",
            "Hello",
            "-C",
            "classes",
            ".",
        ],
        dir.path(),
    );
    journey(
        &app.join("hello.jar"),
        "jar",
        "caas/sofa-jdk17",
        "hello from jar",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn war_on_tomcat_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    write(
        &web.join("WEB-INF/web.xml"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="4.0">
  <display-name>shop</display-name>
  <welcome-file-list><welcome-file>index.jsp</welcome-file></welcome-file-list>
</web-app>
"#,
    );
    write(&web.join("index.jsp"), "<%= \"hello from \" + \"war\" %>\n");
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    sh(
        "jar",
        &["--create", "--file", "app/shop.war", "-C", "web", "."],
        dir.path(),
    );
    journey(
        &app.join("shop.war"),
        "war",
        "caas/sofa-tomcat",
        "hello from war",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn release_tarball_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let rel = dir.path().join("billing-1.0");
    write(
        &dir.path().join("src/Server.java"),
        r#"import com.sun.net.httpserver.HttpServer;
import java.io.FileInputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
public class Server {
    public static void main(String[] args) throws Exception {
        Properties conf = new Properties();
        try (FileInputStream in = new FileInputStream("conf/app.properties")) { conf.load(in); }
        int port = Integer.parseInt(args[0]);
        HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
        server.createContext("/", ex -> {
            byte[] body = (conf.getProperty("greeting") + "\n").getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            ex.getResponseBody().write(body);
            ex.close();
        });
        server.start();
    }
}
"#,
    );
    sh(
        "javac",
        &["--release", "17", "-d", "classes", "src/Server.java"],
        dir.path(),
    );
    std::fs::create_dir_all(rel.join("lib")).unwrap();
    sh(
        "jar",
        &[
            "--create",
            "--file",
            "billing-1.0/lib/billing.jar",
            "-C",
            "classes",
            ".",
        ],
        dir.path(),
    );
    write(
        &rel.join("conf/app.properties"),
        "greeting=hello from release\n",
    );
    write(
        &rel.join("bin/start.sh"),
        "#!/bin/sh\n# Started from the package root by sofa-app.\nexec java $JAVA_OPTS -cp lib/billing.jar Server \"${PORT:-9000}\"\n",
    );
    chmod(&rel.join("bin/start.sh"), 0o755);
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    sh(
        "tar",
        &["czf", "app/billing-1.0.tgz", "billing-1.0"],
        dir.path(),
    );
    journey(
        &app.join("billing-1.0.tgz"),
        "release",
        "caas/sofa-jdk17",
        "hello from release",
    )
    .await;
}

const PY_SERVER: &str = r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = int(os.environ.get("PORT", "8000"))


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from python\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    HTTPServer(("0.0.0.0", PORT), Hello).serve_forever()
"#;

fn python_app(dir: &Path, server_body: &str) -> PathBuf {
    let app = dir.join("greeter");
    write(
        &app.join("pyproject.toml"),
        "[project]\nname = \"greeter\"\nversion = \"1.0\"\nrequires-python = \">=3.9\"\n\n[project.scripts]\ngreeter = \"greeter.server:main\"\n",
    );
    write(&app.join("greeter/__init__.py"), "");
    write(&app.join("greeter/server.py"), server_body);
    app
}

#[tokio::test(flavor = "multi_thread")]
async fn python_app_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let app = python_app(dir.path(), PY_SERVER);
    journey(&app, "python", "caas/sofa-base", "hello from python").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn static_site_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("site");
    write(
        &app.join("index.html"),
        "<!doctype html><h1>hello from static</h1>\n",
    );
    write(&app.join("css/site.css"), "h1 { color: teal }\n");
    journey(&app, "static", "caas/sofa-tomcat", "hello from static").await;
}

// ---- failures ----

/// Runs a command that must fail with `code` and whose stderr names every word in `words`.
fn fails(args: &[&str], env: &[(&str, &str)], code: i32, words: &[&str]) {
    let out = run(args, env);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}:\n{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for w in words {
        assert!(stderr.contains(w), "{args:?}: stderr lacks {w:?}:\n{all}");
    }
}

#[test]
fn bad_input_is_named_with_its_fix_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out");
    let out_s = out.to_str().unwrap();
    let gen = |path: &Path, code: i32, words: &[&str]| {
        fails(
            &["generate", path.to_str().unwrap(), "--out", out_s],
            &[],
            code,
            words,
        );
        assert!(!out.exists(), "{} left output behind", path.display());
    };

    gen(&d.join("missing"), 64, &["does not exist"]);

    std::fs::create_dir(d.join("empty")).unwrap();
    gen(&d.join("empty"), 64, &["is empty"]);

    std::fs::write(d.join("corrupt.jar"), b"PK\x03\x04 definitely not a zip").unwrap();
    gen(&d.join("corrupt.jar"), 64, &["corrupt jar", "rebuild"]);

    let classes = d.join("classes");
    write(&classes.join("Lib.java"), "public class Lib {}\n");
    sh(
        "javac",
        &["--release", "17", "-d", "classes", "classes/Lib.java"],
        d,
    );
    sh(
        "jar",
        &[
            "--create",
            "--file",
            "lib.jar",
            "-C",
            "classes",
            "Lib.class",
        ],
        d,
    );
    gen(&d.join("lib.jar"), 64, &["no Main-Class", "--start"]);

    write(&d.join("nowebinf/index.html"), "hi\n");
    sh(
        "jar",
        &["--create", "--file", "nowebinf.war", "-C", "nowebinf", "."],
        d,
    );
    gen(&d.join("nowebinf.war"), 64, &["no WEB-INF"]);

    write(&d.join("plain/bin/start.sh"), "#!/bin/sh\n");
    chmod(&d.join("plain/bin/start.sh"), 0o755);
    sh("tar", &["cf", "plain.tgz", "-C", "plain", "."], d);
    gen(
        &d.join("plain.tgz"),
        64,
        &["not a gzip-compressed tarball", "tar czf"],
    );

    write(
        &d.join("noexec/bin/start.sh"),
        "#!/bin/sh\nexec sleep 1000\n",
    );
    chmod(&d.join("noexec/bin/start.sh"), 0o644);
    gen(
        &d.join("noexec"),
        64,
        &["not executable", "chmod +x bin/start.sh"],
    );

    write(&d.join("nothing/README.txt"), "just words\n");
    gen(&d.join("nothing"), 64, &["Looked for", "--kind", "--start"]);

    write(
        &d.join("node/package.json"),
        r#"{"name":"n","scripts":{"start":"node index.js"}}"#,
    );
    gen(
        &d.join("node"),
        64,
        &[
            "node app detected",
            "no rich base image has a Node.js runtime",
        ],
    );

    // The engine: not there.
    write(&d.join("site/index.html"), "hi\n");
    fails(
        &["build", d.join("site").to_str().unwrap()],
        &[("DOCKER_HOST", "unix:///nonexistent.sock")],
        1,
        &["not reachable", "/nonexistent.sock", "DOCKER_HOST"],
    );

    // Usage errors.
    fails(&["down"], &[], 64, &["--all"]);
    fails(
        &[
            "plan",
            d.join("site").to_str().unwrap(),
            "--health",
            "bogus",
        ],
        &[],
        64,
        &["--health"],
    );
}

#[test]
fn generate_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("site");
    write(&app.join("index.html"), "hi\n");
    write(&app.join("Dockerfile"), "FROM mine\n");
    fails(
        &["generate", app.to_str().unwrap()],
        &[],
        64,
        &["already exists", "--force"],
    );
    assert_eq!(
        std::fs::read_to_string(app.join("Dockerfile")).unwrap(),
        "FROM mine\n"
    );
    assert!(!app.join(".dockerignore").exists());
    ok(&["generate", app.to_str().unwrap(), "--force"]);
    let dockerfile = std::fs::read_to_string(app.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("FROM caas/sofa-tomcat:latest"),
        "{dockerfile}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_build_shows_the_failing_step_and_its_output() {
    base_images();
    let dir = tempfile::tempdir().unwrap();
    let app = python_app(dir.path(), "def main(:\n    pass\n");
    let tag = format!("dfgen-test/broken:{}", std::process::id());
    let _guard = EnvGuard {
        path: app.clone(),
        image: Some(tag.clone()),
    };
    fails(
        &["build", app.to_str().unwrap(), "-t", &tag],
        &[],
        1,
        &["the build failed at Step", "compileall", "SyntaxError"],
    );
    let docker = caas_tests::images::docker().await.unwrap();
    assert!(
        docker.inspect_image(&tag).await.is_err(),
        "no image for a failed build"
    );
    let _ = docker
        .remove_image(&tag, None::<RemoveImageOptions>, None)
        .await;
}

// ---- through central ----

/// With CAAS_URL, `run` builds locally and creates a rich workload with the plan's health check
/// through central; the agent (sharing this engine) runs it and central reports it healthy.
/// `down` deletes it. dockerfile-gen runs inside the test fabric, where central listens.
#[tokio::test(flavor = "multi_thread")]
async fn run_through_central_creates_a_healthy_rich_workload() {
    base_images();
    const POOL: &str = "dfgen";
    let dir = tempfile::tempdir().unwrap();
    let app = python_app(dir.path(), PY_SERVER);
    let p = app.to_str().unwrap();
    // Declared before the cluster, so it drops after the cluster's sweeper removed the
    // workload's containers and the image is no longer in use.
    let mut guard = EnvGuard::new(&app);
    let c = Cluster::start("dfgen", &[NodeSpec::new(POOL, &[])], 1, 30)
        .await
        .unwrap();
    // Rich workloads need the pool's SSH keys (nobody could log in otherwise).
    sh(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "dfgen-test",
            "-f",
            "key",
        ],
        dir.path(),
    );
    let public = std::fs::read_to_string(dir.path().join("key.pub")).unwrap();
    let (code, body) = c
        .request(
            0,
            "POST",
            "/v1/pools",
            Some(serde_json::json!({"name": POOL, "ssh_keys": [public.trim()]})),
            &c.admin_token,
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let in_fabric = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &c.topo.fabric])
            .arg(dfgen())
            .arg("--progress=plain")
            .args(args)
            .env("CAAS_URL", &c.centrals[0].url)
            .env("CAAS_POOL", POOL)
            .env("CAAS_TOKEN", &token)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dockerfile-gen {args:?}:\n{}",
            text(&out)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    let info = in_fabric(&["run", p, "-o", "json", "--timeout", "240"]);
    assert_eq!(info["health"], "healthy", "{info:#}");
    assert_eq!(info["node"], c.node_ids[0].as_str(), "{info:#}");
    guard.image = Some(format!(
        "dfgen/greeter:{}",
        &serde_json::from_str::<serde_json::Value>(&ok(&["plan", p, "-o", "json"])).unwrap()
            ["hash"]
            .as_str()
            .unwrap()[..12]
    ));

    // The workload central recorded: rich, with the plan's health check.
    let (code, body) = c
        .request(
            0,
            "GET",
            &format!("/v1/pools/{POOL}/containers/greeter"),
            None,
            &token,
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["spec"]["rich"], true, "{view:#}");
    assert_eq!(
        view["spec"]["health_check"]["probe"],
        serde_json::json!({"tcp": {"port": 8000}}),
        "{view:#}"
    );

    let deleted = in_fabric(&["down", p, "-o", "json"]);
    assert_eq!(deleted["deleted"], serde_json::json!(["greeter"]));
    let (code, _) = c
        .request(
            0,
            "GET",
            &format!("/v1/pools/{POOL}/containers/greeter"),
            None,
            &token,
        )
        .await
        .unwrap();
    assert_eq!(code, 404);
}
