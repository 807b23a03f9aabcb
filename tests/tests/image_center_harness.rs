//! The image-center harness end to end, without agents: an image center and a pool's
//! pull-through proxy (Debian's docker-registry, TLS from a dev CA, htpasswd auth) in the fabric
//! namespace, the test busybox image pushed to the center with skopeo, and per-node Docker
//! engines in two node namespaces pulling it through the proxy: the first pull fetches the blobs
//! from the center, the second is served from the proxy's cache, and a third still works while
//! the center is down. The host's engine never sees the pulled image, and everything (engines,
//! containers, registries, namespaces) is gone afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use caas_tests::dockerd::NodeEngine;
use caas_tests::images;
use caas_tests::netns::{Topology, FABRIC_IP};
use caas_tests::registry::{push_local_image, DevCa, Registry};

const CENTER_USER: &str = "ci";
const CENTER_PASSWORD: &str = "center-secret";
const POOL_USER: &str = "pool1";
const POOL_PASSWORD: &str = "pool1-secret";

/// `docker --config CONFIG -H ENGINE ARGS...` (the CLI's login lands in CONFIG, never in
/// ~/.docker); stdout, or the error with stderr.
fn docker(
    config: &Path,
    engine: &NodeEngine,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new("docker")
        .arg("--config")
        .arg(config)
        .args(["-H", &engine.host_url()])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running the docker CLI")?;
    let mut input = child.stdin.take().context("docker stdin")?;
    if let Some(text) = stdin {
        input.write_all(text.as_bytes())?;
    }
    drop(input);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pull(config: &Path, engine: &NodeEngine, reference: &str) -> anyhow::Result<()> {
    let proxy = reference.split('/').next().unwrap();
    docker(
        config,
        engine,
        &["login", "-u", POOL_USER, "--password-stdin", proxy],
        Some(POOL_PASSWORD),
    )?;
    docker(config, engine, &["pull", "-q", reference], None)?;
    let listed = docker(
        config,
        engine,
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
        None,
    )?;
    assert!(
        listed.lines().any(|l| l == reference),
        "{reference} is not in the node engine's images:\n{listed}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn center_proxy_and_node_engines() -> anyhow::Result<()> {
    let host = images::docker().await?;
    let image = images::ensure_busybox(&host).await?;
    let tmp = tempfile::tempdir()?;
    let topo = Topology::create(2)?;

    let t = Instant::now();
    let ca = DevCa::create(&tmp.path().join("pki"))?;
    let mut center = Registry::start_center(
        Some(&topo.fabric),
        (FABRIC_IP, 5000).into(),
        &ca,
        CENTER_USER,
        CENTER_PASSWORD,
    )
    .await?;
    eprintln!("CA + center up in {:?}", t.elapsed());
    let t = Instant::now();
    let proxy = Registry::start_proxy(
        Some(&topo.fabric),
        (FABRIC_IP, 5001).into(),
        &ca,
        &center,
        CENTER_USER,
        CENTER_PASSWORD,
        POOL_USER,
        POOL_PASSWORD,
    )
    .await?;
    eprintln!("proxy up in {:?}", t.elapsed());

    let t = Instant::now();
    push_local_image(
        &ca,
        &center,
        CENTER_USER,
        CENTER_PASSWORD,
        &image,
        "team/app:1",
        Some(&topo.fabric),
    )
    .await?;
    eprintln!("pushed {image} in {:?}", t.elapsed());
    assert!(center.blob_count() >= 2, "layer and config in the center");
    assert_eq!(
        proxy.blob_count(),
        0,
        "nothing cached before the first pull"
    );

    let reference = format!("{}/team/app:1", proxy.host());
    let t = Instant::now();
    let engine1 = NodeEngine::start(topo.node(1), tmp.path()).await?;
    let engine2 = NodeEngine::start(topo.node(2), tmp.path()).await?;
    eprintln!("two node engines up in {:?}", t.elapsed());
    for engine in [&engine1, &engine2] {
        engine.trust_registry(&proxy.host(), proxy.ca_pem())?;
    }
    let config1 = tmp.path().join("docker-config-1");
    let config2 = tmp.path().join("docker-config-2");

    // First pull in the pool: the proxy fetches the blobs from the center and keeps them.
    let t = Instant::now();
    pull(&config1, &engine1, &reference)?;
    eprintln!("first pull (through to the center) in {:?}", t.elapsed());
    let center_blob_gets = center.count_fetches("/v2/team/app/blobs/sha256:");
    assert!(
        center_blob_gets >= 2,
        "the center served the layer and the config to the proxy:\n{}",
        center.log_tail(20)
    );
    assert!(center.count_fetches("/v2/team/app/manifests/1") >= 1);
    assert!(
        proxy.blob_count() >= 2,
        "the proxy cached the blobs:\n{}",
        proxy.log_tail(20)
    );
    assert!(proxy.count_fetches("/v2/team/app/blobs/sha256:") >= 2);
    assert!(
        host.inspect_image(&reference).await.is_err(),
        "the host engine must not see images the node engines pulled"
    );

    // Second node: served from the proxy's cache, no blob is fetched from the center again.
    let t = Instant::now();
    pull(&config2, &engine2, &reference)?;
    eprintln!("second pull (proxy cache) in {:?}", t.elapsed());
    assert_eq!(
        center.count_fetches("/v2/team/app/blobs/sha256:"),
        center_blob_gets,
        "the second pull must come from the proxy's cache:\n{}",
        center.log_tail(20)
    );

    // The center is down: the pool still pulls what its proxy has cached.
    center.stop();
    docker(&config2, &engine2, &["rmi", &reference], None)?;
    let t = Instant::now();
    pull(&config2, &engine2, &reference)?;
    eprintln!("pull with the center down in {:?}", t.elapsed());
    center.restart().await?;
    assert_eq!(
        center.count_fetches("/v2/team/app/blobs/sha256:"),
        center_blob_gets
    );

    // A container runs in a node engine (and must be cleaned up with it).
    let id = docker(
        &config1,
        &engine1,
        &["run", "-d", "--network", "none", &reference, "sleep", "600"],
        None,
    )?;
    let id = id.trim().to_string();
    let dir1 = engine1.dir().to_path_buf();
    let dir2 = engine2.dir().to_path_buf();
    drop(engine1);
    drop(engine2);
    for dir in [&dir1, &dir2] {
        assert!(!dir.exists(), "{} was removed", dir.display());
        let needle = format!("{}/", dir.display());
        let survivors: Vec<String> = std::fs::read_dir("/proc")?
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&needle))
            .collect();
        assert!(
            survivors.is_empty(),
            "processes outlived the engine: {survivors:?}"
        );
    }
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/pids/docker/{id}")).exists(),
        "the container's cgroup was removed"
    );
    assert!(host.inspect_container(&id, None).await.is_err());
    Ok(())
}
