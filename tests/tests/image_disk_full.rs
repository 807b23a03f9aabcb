//! A node's disk fills during a pull, end to end: one node whose engine has a small data root (a
//! tmpfs mounted over it in the engine's private mount namespace), an image center and the
//! pool's registry proxy in the fabric, a real agent and central. A small workload runs on the
//! node; then a workload of an image larger than the free space is created there. Its status
//! reports `disk-full` naming the proxy; the running workload is untouched (same app container,
//! never restarted); nothing of the failed workload is created; no partial image stays behind,
//! neither after the first failed attempt nor after the agent's retry nor after the workload is
//! removed (the data root's usage, layers, layer database, temporary downloads and image list
//! are back to what they were before the pull). Once the big workload is removed the node takes
//! new workloads as before.
//!
//! Run with `--no-capture` to see the measurements (`disk-full:` lines).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caas_api::central::ContainerView;
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::dockerd::{EngineOptions, NodeEngine};
use caas_tests::netns::FABRIC_IP;
use caas_tests::registry::{push_local_image, DevCa, Registry};
use caas_tests::wait::until;

const CENTER_USER: &str = "ci";
const CENTER_PASSWORD: &str = "center-secret";
const PROXY: &str = "site-a";

/// The node's data root: room for the agent's images, a busybox workload and a few of its
/// containers, not for the big image.
const DATA_ROOT_BYTES: u64 = 64 << 20;
/// Pseudo-random (incompressible) bytes in the big image, on top of busybox.
const BIG_DATA_BYTES: u64 = 100 << 20;
const BIG_SEED: u64 = 0x00d1_5cf0_11ed;
/// What the data root may differ by after a failed pull (the engine's metadata databases grow
/// by a few pages).
const SLACK_BYTES: u64 = 1 << 20;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(FABRIC_IP), port)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

async fn view(c: &Cluster, token: &str, pool: &str, name: &str) -> anyhow::Result<ContainerView> {
    c.container(token, pool, name).await
}

/// Waits until the workload runs; returns its view.
async fn running(c: &Cluster, token: &str, pool: &str, name: &str) -> ContainerView {
    c.wait_running(token, pool, name, Duration::from_secs(120))
        .await
        .unwrap()
}

/// Waits until the workload reports `code` in its last error; returns its view.
async fn failing(c: &Cluster, token: &str, pool: &str, name: &str, code: &str) -> ContainerView {
    c.wait_last_error(token, pool, name, code, Duration::from_secs(90))
        .await
        .unwrap()
}

async fn create(c: &Cluster, token: &str, name: &str, image: &str) {
    let out = c
        .cli(
            0,
            token,
            &[
                "--pool=pa",
                "container",
                "create",
                name,
                "--image",
                image,
                "--memory",
                "32Mi",
                "-c",
                "node==a1",
                "--",
                "sleep",
                "3600",
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{name}: {out:?}");
}

/// `docker -H <node engine> ARGS`; its stdout.
async fn node_docker(engine: &NodeEngine, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("docker")
        .arg("-H")
        .arg(engine.host_url())
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .context("running the docker CLI")?;
    if !out.status.success() {
        bail!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Bytes allocated under `path`, not crossing into other file systems (the containers' merged
/// fuse-overlayfs mounts, their /dev/shm).
fn disk_usage(path: &Path, dev: u64) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.dev() != dev {
        return 0;
    }
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            total += entries
                .flatten()
                .map(|e| disk_usage(&e.path(), dev))
                .sum::<u64>();
        }
    }
    total
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What the node engine holds on its data root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DataRoot {
    /// statvfs of the tmpfs.
    used: u64,
    /// Bytes under each top-level directory of the data root.
    per_dir: BTreeMap<String, u64>,
    /// The storage driver's layer directories (image layers and containers' layers).
    layers: BTreeSet<String>,
    /// The engine's layer database (chain ids).
    layerdb: BTreeSet<String>,
    /// Files in the engine's temporary directory (pulls download blobs there).
    tmp: BTreeSet<String>,
    /// `docker images -a`: every image, dangling ones (`<none>`) included.
    images: BTreeSet<String>,
}

impl DataRoot {
    async fn read(engine: &NodeEngine, driver: &str) -> anyhow::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let root = engine.data_root()?;
        let dev = std::fs::metadata(&root)?.dev();
        let per_dir = names(&root)
            .into_iter()
            .map(|n| {
                let bytes = disk_usage(&root.join(&n), dev);
                (n, bytes)
            })
            .collect();
        let images = node_docker(
            engine,
            &[
                "images",
                "-a",
                "--digests",
                "--format",
                "{{.Repository}}:{{.Tag}}@{{.Digest}} {{.ID}}",
            ],
        )
        .await?
        .lines()
        .map(str::to_string)
        .collect();
        Ok(Self {
            used: engine.data_root_usage()?.used,
            per_dir,
            layers: names(&root.join(driver)),
            layerdb: names(&root.join("image").join(driver).join("layerdb/sha256")),
            tmp: names(&root.join("tmp")),
            images,
        })
    }

    /// Whether only metadata grew: the same layers, images and (no) temporary files, and the
    /// same bytes used within `SLACK_BYTES`.
    fn same_content(&self, other: &Self) -> bool {
        self.layers == other.layers
            && self.layerdb == other.layerdb
            && self.tmp == other.tmp
            && self.images == other.images
            && self.used.abs_diff(other.used) <= SLACK_BYTES
    }

    fn describe(&self) -> String {
        let dirs: Vec<String> = self
            .per_dir
            .iter()
            .filter(|(_, b)| **b > 0)
            .map(|(n, b)| format!("{n}={}K", b / 1024))
            .collect();
        format!(
            "used {} ({} B); {}; {} layer dirs, {} layerdb entries, tmp {:?}; images {:?}",
            mib(self.used),
            self.used,
            dirs.join(" "),
            self.layers.len(),
            self.layerdb.len(),
            self.tmp,
            self.images
        )
    }
}

/// Waits until the data root holds what `before` held again (a pull in flight fills it for a
/// moment); returns what it holds then.
async fn back_to(engine: &NodeEngine, driver: &str, before: &DataRoot, what: &str) -> DataRoot {
    let started = Instant::now();
    let now = until(
        &format!("the data root back to its content before the pull, {what}"),
        Duration::from_secs(30),
        || async {
            let now = DataRoot::read(engine, driver).await?;
            if now.same_content(before) {
                Ok(Some(now))
            } else {
                Err(anyhow::anyhow!("{}", now.describe()))
            }
        },
    )
    .await
    .unwrap();
    eprintln!(
        "disk-full: {what} ({:.1?} to settle): {}; {} B more than before",
        started.elapsed(),
        now.describe(),
        i128::from(now.used) - i128::from(before.used)
    );
    now
}

/// The node engine's log lines reporting a pull that ran out of space.
fn enospc_lines(engine: &NodeEngine) -> Vec<String> {
    std::fs::read_to_string(engine.dir().join("dockerd.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("level=error") && l.contains("no space left on device"))
        .map(str::to_string)
        .collect()
}

/// (running, started at, restart count) of a container on the node engine.
async fn container_state(engine: &NodeEngine, id: &str) -> anyhow::Result<String> {
    Ok(node_docker(
        engine,
        &[
            "inspect",
            "--format",
            "{{.State.Running}} {{.State.StartedAt}} {{.RestartCount}}",
            id,
        ],
    )
    .await?
    .trim()
    .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_during_a_pull_is_reported_and_left_clean() {
    let test_started = Instant::now();
    let built = Instant::now();
    let big_local = caas_tests::bulk_image::ensure(&caas_tests::bulk_image::BulkSpec {
        repo: "caas-test/disk-full-big".into(),
        seed: BIG_SEED,
        data_layers: vec![BIG_DATA_BYTES],
    })
    .unwrap();
    eprintln!(
        "disk-full: big image {big_local} ready in {:.1?}",
        built.elapsed()
    );

    let nodes = [NodeSpec::new("pa", &["node=a1"]).with_own_engine()];
    let mut c = Cluster::start("dfull", &nodes, 1, 30).await.unwrap();
    let node_id = c.node_ids[0].clone();

    // Give the node a small disk: its engine starts again on a data root of its own (a tmpfs)
    // and the agent starts again on it (importing its own images there).
    let switched = Instant::now();
    let (_, old_registration) = caas_tests::zk_io::registration(&c.zk_client, &c.layout, &node_id)
        .await
        .unwrap()
        .unwrap();
    c.agents[0].kill9();
    c.engines[0]
        .as_mut()
        .unwrap()
        .restart_with(EngineOptions::small_data_root(DATA_ROOT_BYTES))
        .await
        .unwrap();
    c.agents[0].restart().unwrap();
    until(
        "the agent registered again with its engine ready",
        Duration::from_secs(60),
        || async {
            let reg = caas_tests::zk_io::registration(&c.zk_client, &c.layout, &node_id).await?;
            Ok(reg
                .filter(|(info, stat)| {
                    stat.ephemeral_owner != old_registration.ephemeral_owner && info.engine_ready
                })
                .map(|_| ()))
        },
    )
    .await
    .unwrap();
    until(
        "central sees the node ready",
        Duration::from_secs(60),
        || async {
            let (code, body) = c
                .request(0, "GET", "/v1/nodes", None, &c.admin_token)
                .await?;
            anyhow::ensure!(code == 200, "{code} {body}");
            let nodes: Vec<serde_json::Value> = serde_json::from_str(&body)?;
            Ok(nodes
                .iter()
                .any(|n| {
                    n["id"] == node_id.as_str()
                        && n["liveness"] == "ready"
                        && n["engine_ready"] == true
                })
                .then_some(()))
        },
    )
    .await
    .unwrap();
    let engine = c.engines[0].as_ref().unwrap();
    let driver = node_docker(engine, &["info", "--format", "{{.Driver}}"])
        .await
        .unwrap()
        .trim()
        .to_string();
    let usage = engine.data_root_usage().unwrap();
    eprintln!(
        "disk-full: node engine on a {} data root ({driver}), {} used after the agent's imports; \
         switched in {:.1?}",
        mib(usage.total),
        mib(usage.used),
        switched.elapsed()
    );
    assert!(
        usage.total <= DATA_ROOT_BYTES && usage.total > DATA_ROOT_BYTES / 2,
        "the data root is the tmpfs: {usage:?}"
    );

    // The center holds busybox and the big image; the pool's proxy mirrors it.
    let fabric = Some(c.topo.fabric.as_str());
    let ca = DevCa::create(&c.dir.path().join("registries")).unwrap();
    let center = Registry::start_center(fabric, addr(5000), &ca, CENTER_USER, CENTER_PASSWORD)
        .await
        .unwrap();
    let proxy = Registry::start_proxy(
        fabric,
        addr(5001),
        &ca,
        &center,
        CENTER_USER,
        CENTER_PASSWORD,
        "pa-nodes",
        "pa-secret",
    )
    .await
    .unwrap();
    let pushed = Instant::now();
    let small_image = push_local_image(
        &ca,
        &center,
        CENTER_USER,
        CENTER_PASSWORD,
        &c.busybox,
        "team/app:small",
        fabric,
    )
    .await
    .unwrap();
    let big_image = push_local_image(
        &ca,
        &center,
        CENTER_USER,
        CENTER_PASSWORD,
        &big_local,
        "team/big:1",
        fabric,
    )
    .await
    .unwrap();
    eprintln!("disk-full: pushed both images in {:.1?}", pushed.elapsed());
    let pa = c.create_pool("pa").await.unwrap();
    let files = c.dir.path();
    std::fs::write(files.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(files.join("pa.pw"), "pa-secret\n").unwrap();
    let out = c
        .cli(
            0,
            &pa,
            &[
                "--pool=pa",
                "registry-proxy",
                "add",
                PROXY,
                &proxy.url(),
                "--center",
                &center.host(),
                "--ca-file",
                &files.join("ca.pem").display().to_string(),
                "--username",
                "pa-nodes",
                "--password-file",
                &files.join("pa.pw").display().to_string(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");

    // A small workload runs on the node.
    create(&c, &pa, "calm", &small_image).await;
    let calm = running(&c, &pa, "pa", "calm").await;
    let calm_app = calm.status.unwrap().containers.app.unwrap();
    let calm_state = container_state(engine, &calm_app).await.unwrap();
    assert!(calm_state.starts_with("true "), "{calm_state}");
    let before = DataRoot::read(engine, &driver).await.unwrap();
    eprintln!("disk-full: before the big pull: {}", before.describe());
    assert!(before.tmp.is_empty(), "{}", before.describe());
    let free = engine.data_root_usage().unwrap().available;
    assert!(
        free < BIG_DATA_BYTES,
        "the big image must not fit: {} free",
        mib(free)
    );

    // The big one: the pull fills the disk, the workload says so, naming the proxy.
    let created = Instant::now();
    create(&c, &pa, "big", &big_image).await;
    let big = failing(&c, &pa, "pa", "big", "disk-full").await;
    let reported = created.elapsed();
    let status = big.status.unwrap();
    let error = status.last_error.clone().unwrap();
    eprintln!(
        "disk-full: reported {reported:.1?} after create: {}",
        error.message
    );
    for part in [
        PROXY,
        proxy.host().as_str(),
        "no space left on device",
        "team/big:1",
    ] {
        assert!(error.message.contains(part), "{part:?}: {}", error.message);
    }
    assert_eq!(
        status.containers,
        Default::default(),
        "nothing of the failed workload: {status:?}"
    );
    let first_attempts = enospc_lines(engine);
    assert!(!first_attempts.is_empty(), "{}", engine.log_tail(40));
    eprintln!("disk-full: engine log: {}", first_attempts[0]);

    // The failed attempt left nothing: no layer, no download, no image, no space.
    back_to(engine, &driver, &before, "after the first failed pull").await;

    // The agent retries a full disk only after 30 s (then doubling up to 10 min): every attempt
    // fills the disk to the brim again, which running apps that write would feel.
    assert!(
        error.message.contains("retried in 30s"),
        "{}",
        error.message
    );
    let after = back_to(engine, &driver, &before, "after the failure").await;
    assert!(
        !after.images.iter().any(|i| i.contains("team/big")),
        "{:?}",
        after.images
    );
    let dangling = node_docker(engine, &["images", "-a", "-q", "--filter", "dangling=true"])
        .await
        .unwrap();
    assert_eq!(dangling.trim(), "", "dangling images on the node");

    // Nothing else was touched: the small workload runs in the same container, never restarted;
    // no container of the failed workload exists on the node.
    let calm = view(&c, &pa, "pa", "calm").await.unwrap();
    let calm_status = calm.status.unwrap();
    assert_eq!(calm_status.state, caas_api::WorkloadState::Running);
    assert_eq!(
        calm_status.containers.app.as_deref(),
        Some(calm_app.as_str())
    );
    assert_eq!(
        container_state(engine, &calm_app).await.unwrap(),
        calm_state
    );
    let big_containers = node_docker(
        engine,
        &["ps", "-a", "-q", "--filter", "label=caas.name=big"],
    )
    .await
    .unwrap();
    assert_eq!(
        big_containers.trim(),
        "",
        "containers of the failed workload"
    );
    let all = node_docker(engine, &["ps", "-a", "--format", "{{.Names}}"])
        .await
        .unwrap();
    assert!(!all.contains(".big"), "{all}");
    let still = view(&c, &pa, "pa", "big").await.unwrap();
    let still = still.status.unwrap();
    assert_eq!(
        still.last_error.map(|e| e.code).as_deref(),
        Some("disk-full")
    );

    // Removing the big workload ends the retries; the node takes new workloads.
    let out = c
        .cli(0, &pa, &["--pool=pa", "container", "rm", "big"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    until("big gone", Duration::from_secs(30), || async {
        let (code, _) = c
            .request(0, "GET", "/v1/pools/pa/containers/big", None, &pa)
            .await?;
        Ok((code == 404).then_some(()))
    })
    .await
    .unwrap();
    back_to(engine, &driver, &before, "after rm").await;
    eprintln!(
        "disk-full: {} failed attempts in all",
        enospc_lines(engine).len()
    );
    create(&c, &pa, "calm2", &small_image).await;
    let calm2 = running(&c, &pa, "pa", "calm2").await;
    let calm2_app = calm2.status.unwrap().containers.app.unwrap();
    assert!(container_state(engine, &calm2_app)
        .await
        .unwrap()
        .starts_with("true "));
    assert_eq!(
        container_state(engine, &calm_app).await.unwrap(),
        calm_state,
        "the first workload is still untouched"
    );
    eprintln!(
        "disk-full: calm2 running; data root {} used; app containers {calm_app} {calm2_app} in \
         {}; test took {:.1?}",
        mib(engine.data_root_usage().unwrap().used),
        engine.dir().display(),
        test_started.elapsed()
    );
}
