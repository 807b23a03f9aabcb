//! Images through the center and the pool's registry proxy (issue 17): how long a workload of a
//! large image takes from `container create` to running when its node pulls it cold through the
//! center, warm from the proxy's cache, after a prewarm, or already has it; and how many bytes
//! the center sends for a pool of 10 nodes.
//!
//! `cargo bench -p caas-tests --bench image_pull [-- --rounds R --rate 100mbit --big-mb 300 --small-mb 50]`
//!
//! World: the real cluster (ZooKeeper, central, the CLI, 10 agents in one pool, each node with
//! its own Docker engine and empty image store). The image center (Debian's docker-registry,
//! TLS, htpasswd) runs in a site namespace of its own, joined to the fabric's bridge by a veth
//! whose center end is shaped with `tc tbf rate 100mbit burst 256kb latency 50ms` (the WAN from
//! the center to the site); the pool's registry proxy runs in the fabric, next to the nodes.
//! Images are synthetic and deterministic (`caas_tests::bulk_image`: busybox-static plus
//! incompressible pseudo-random layers), loaded into the host's engine once per machine and
//! pushed into the center with skopeo (inside the site: not over the shaped link).
//!
//! 1. Create → running for the big image (4 layers, ~300 MB), through central and the CLI:
//!    (a) cold: node 1, proxy and center cache empty; (b) warm: another node of the pool, from
//!    the proxy's cache; (c) prewarmed: `caas image prewarm IMAGE -c node==nX --watch` on a third
//!    node first, then create; (d) local: node 1 again, which has the image. (b)-(d) repeat
//!    `--rounds` times on fresh nodes (medians). Ratios: cold/warm (goal >= 3x) and
//!    prewarmed/local (goal <= 1.2x). Each row also gives when the pull first showed in the
//!    workload's status, when its bytes were all downloaded and when the pull ended.
//! 2. Center → site bytes for the 10 nodes pulling one small image (~50 MB): the sum of the
//!    center's access-log GET lines for the image's blobs, after the first node and after all
//!    10, over the image's size (its manifest's config + layers): (A) one node, then the other
//!    9 at once; (B) a prewarm on one node, then the other 9 at once; (C) all 10 at once. The
//!    veth's transmitted bytes are given as a cross-check (TLS and TCP included), and how often
//!    each blob was fetched. (C) has no first-node figure; it is checked against the 2x of one
//!    cold pull (distribution 2.8's proxy fetches a blob twice on a miss, once to store and once
//!    to stream, fixed after 2.8 by distribution/distribution#3569; and every request that finds
//!    the blob in flight streams it from the remote again, distribution/distribution#3969).
//!
//! `--rounds` is at most 4 (nodes 2..9 take the warm and prewarmed rounds). Timing is reported,
//! never asserted. Everything (engines, agents, registries, namespaces) goes on drop, panics
//! included; the synthetic images stay in the host's engine for the next run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use caas_api::central::ContainerView;
use caas_api::WorkloadState;
use caas_tests::bulk_image::{self, BulkSpec};
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::netns::FABRIC_IP;
use caas_tests::registry::{push_local_image, DevCa, Registry};
use caas_tests::site_link::SiteLink;

const POOL: &str = "pa";
const NODES: usize = 10;
const CENTER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CENTER_USER: &str = "ci";
const CENTER_PASSWORD: &str = "center-secret";
const PROXY_USER: &str = "pa-nodes";
const PROXY_PASSWORD: &str = "pa-secret";
const MB: f64 = 1e6;

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `100mbit` -> 1e8 bits per second (tc's decimal units).
fn parse_rate(rate: &str) -> Option<f64> {
    let lower = rate.to_ascii_lowercase();
    let (number, unit) = lower.split_at(lower.find(|c: char| c.is_ascii_alphabetic())?);
    let scale = match unit {
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bit" => 1.0,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * scale)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn node_label(i: usize) -> String {
    format!("n{i}")
}

/// Fields drop in order: the registries are killed before their namespaces go.
struct World {
    proxy: Registry,
    center: Registry,
    link: SiteLink,
    ca: DevCa,
    token: String,
    c: Cluster,
}

/// An image in the center.
struct Pushed {
    /// The center's name for it.
    reference: String,
    /// Bytes as pulled: the manifest's config and layers.
    size: u64,
    /// Digest and size of the config, then of each layer.
    blobs: Vec<(String, u64)>,
}

impl World {
    async fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.c.cli(0, &self.token, args).await.unwrap();
        assert_eq!(out.code, Some(0), "caas {args:?}: {out:?}");
        out.stdout
    }

    async fn view(&self, name: &str) -> anyhow::Result<ContainerView> {
        let (code, body) = self
            .c
            .request(
                0,
                "GET",
                &format!("/v1/pools/{POOL}/containers/{name}"),
                None,
                &self.token,
            )
            .await?;
        anyhow::ensure!(code == 200, "GET {name}: {code} {body}");
        Ok(serde_json::from_str(&body)?)
    }

    async fn create(&self, name: &str, image: &str, node: usize) {
        self.cli_ok(&[
            &format!("--pool={POOL}"),
            "container",
            "create",
            name,
            "--image",
            image,
            "--memory",
            "32Mi",
            "-c",
            &format!("node=={}", node_label(node)),
            "--",
            "sleep",
            "3600",
        ])
        .await;
    }

    /// Polls the workloads every 50 ms until each runs; the timeline of each, from `start`.
    async fn await_running(&self, names: &[String], start: Instant) -> Vec<Timeline> {
        let mut lines: Vec<Timeline> = names.iter().map(|_| Timeline::default()).collect();
        let deadline = start + Duration::from_secs(600);
        loop {
            let mut all = true;
            for (name, line) in names.iter().zip(lines.iter_mut()) {
                if line.running.is_some() {
                    continue;
                }
                all = false;
                let Ok(view) = self.view(name).await else {
                    continue;
                };
                let now = start.elapsed();
                let Some(status) = view.status else { continue };
                if let Some(e) = &status.last_error {
                    line.errors.insert(format!("{}: {}", e.code, e.message));
                }
                match &status.pull {
                    Some(pull) => {
                        line.pull_seen.get_or_insert(now);
                        line.bytes_total = line.bytes_total.max(pull.bytes_total);
                        if pull.bytes_total > 0 && pull.bytes_done >= pull.bytes_total {
                            line.downloaded.get_or_insert(now);
                        }
                    }
                    None => {
                        if line.pull_seen.is_some() {
                            line.pulled.get_or_insert(now);
                        }
                    }
                }
                if status.state == WorkloadState::Running {
                    line.running = Some(now);
                }
            }
            if all {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "workloads not running after 600 s: {names:?}: {lines:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `container create` of one workload on node `node`, timed until it runs.
    async fn timed_create(&self, name: &str, image: &str, node: usize) -> Timeline {
        let start = Instant::now();
        self.create(name, image, node).await;
        let mut lines = self.await_running(&[name.to_string()], start).await;
        lines.remove(0)
    }

    /// `caas image prewarm IMAGE -c node==nX --watch`; its wall time.
    async fn prewarm(&self, image: &str, node: usize) -> Duration {
        let start = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(600),
            self.cli_ok(&[
                &format!("--pool={POOL}"),
                "image",
                "prewarm",
                image,
                "-c",
                &format!("node=={}", node_label(node)),
                "--watch",
            ]),
        )
        .await
        .expect("prewarm --watch still running after 600 s");
        let elapsed = start.elapsed();
        assert!(
            out.contains(&format!("{}: done", self.c.node_ids[node - 1])),
            "prewarm on n{node}: {out}"
        );
        elapsed
    }

    /// A prewarm on every node of the pool at once (the agents seed it: the first node pulls,
    /// the others wait for it); returns how long `--watch` took.
    async fn prewarm_all(&self, image: &str) -> Duration {
        let start = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(600),
            self.cli_ok(&[
                &format!("--pool={POOL}"),
                "image",
                "prewarm",
                image,
                "--watch",
            ]),
        )
        .await
        .expect("prewarm --watch still running after 600 s");
        assert!(
            out.contains(&format!("{NODES} of {NODES} node(s) have")),
            "prewarm on every node: {out}"
        );
        start.elapsed()
    }

    /// Bytes and count of the center's GETs of blobs of `repo` (any status: what was sent).
    fn center_blobs(&self, repo: &str) -> (u64, usize) {
        let gets = self.blob_gets(repo);
        (gets.iter().map(|(_, b)| b).sum(), gets.len())
    }

    /// The center's GETs of blobs of `repo`: digest and bytes sent, in log order.
    fn blob_gets(&self, repo: &str) -> Vec<(String, u64)> {
        let needle = format!("/v2/{repo}/blobs/");
        self.center
            .access_entries()
            .into_iter()
            .filter(|e| e.method == "GET" && e.path.contains(&needle))
            .map(|e| {
                let digest = e.path.rsplit('/').next().unwrap_or_default().to_string();
                (digest, e.bytes)
            })
            .collect()
    }

    fn link_tx(&self) -> u64 {
        self.link.counters().expect("link counters").tx_bytes
    }

    /// Pushes a host image into the center as `repo:1`.
    async fn push(&self, local: &str, repo: &str) -> Pushed {
        let t = Instant::now();
        let reference = push_local_image(
            &self.ca,
            &self.center,
            CENTER_USER,
            CENTER_PASSWORD,
            local,
            &format!("{repo}:1"),
            Some(&self.link.netns),
        )
        .await
        .expect("skopeo push into the center");
        let out = tokio::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.link.netns))
            .args(["--", "skopeo", "inspect", "--raw", "--creds"])
            .arg(format!("{CENTER_USER}:{CENTER_PASSWORD}"))
            .arg("--cert-dir")
            .arg(self.ca.cert_dir())
            .arg(format!("docker://{reference}"))
            .output()
            .await
            .expect("running skopeo inspect");
        assert!(out.status.success(), "skopeo inspect {reference}: {out:?}");
        let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let layers = manifest["layers"].as_array().expect("manifest layers");
        let blob = |v: &serde_json::Value| {
            (
                v["digest"].as_str().expect("blob digest").to_string(),
                v["size"].as_u64().expect("blob size"),
            )
        };
        let blobs: Vec<(String, u64)> = std::iter::once(&manifest["config"])
            .chain(layers)
            .map(blob)
            .collect();
        let size = blobs.iter().map(|(_, s)| s).sum();
        eprintln!(
            "pushed {local} as {reference}: {:.1} MB in {} blobs, {:.1} s",
            size as f64 / MB,
            blobs.len(),
            t.elapsed().as_secs_f64()
        );
        Pushed {
            reference,
            size,
            blobs,
        }
    }

    /// How often each blob of `image` was fetched from the center since `skip` GETs of `repo`:
    /// `config 2, 1.1 MB 2, 16.7 MB 11, ...` (layers named by size).
    fn fetches_per_blob(&self, repo: &str, image: &Pushed, skip: usize) -> String {
        let gets = self.blob_gets(repo);
        image
            .blobs
            .iter()
            .enumerate()
            .map(|(i, (digest, size))| {
                let n = gets[skip..].iter().filter(|(d, _)| d == digest).count();
                let name = if i == 0 {
                    "config".to_string()
                } else {
                    format!("{:.1} MB", *size as f64 / MB)
                };
                format!("{name} {n}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// When a workload's pull and start were seen, from its `container create`.
#[derive(Debug, Default, Clone)]
struct Timeline {
    /// `status.pull` first present.
    pull_seen: Option<Duration>,
    /// Every byte of every layer downloaded (extraction may go on).
    downloaded: Option<Duration>,
    /// `status.pull` gone again: the image is on the node.
    pulled: Option<Duration>,
    running: Option<Duration>,
    bytes_total: u64,
    errors: std::collections::BTreeSet<String>,
}

impl Timeline {
    fn secs(&self) -> f64 {
        self.running.expect("running").as_secs_f64()
    }
}

fn fmt_at(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2}", d.as_secs_f64()))
        .unwrap_or_else(|| "-".into())
}

struct Row {
    case: String,
    node: usize,
    line: Timeline,
    center_bytes: u64,
    link_bytes: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = arg("--rounds", 3).clamp(1, 4);
    let rate: String = arg("--rate", "100mbit".to_string());
    let big_mb: u64 = arg("--big-mb", 300);
    let small_mb: u64 = arg("--small-mb", 50);
    let started = Instant::now();

    // The images first (host engine, reused across runs).
    let t = Instant::now();
    let big = bulk_image::ensure(&BulkSpec {
        repo: "caas-test/bulk".into(),
        seed: 17,
        data_layers: vec![big_mb * 1_000_000 / 3; 3],
    })
    .expect("the big image");
    let small: Vec<String> = (0..4u64)
        .map(|i| {
            bulk_image::ensure(&BulkSpec {
                repo: "caas-test/bulk".into(),
                seed: 1700 + i,
                data_layers: vec![small_mb * 1_000_000 / 2; 2],
            })
            .expect("a small image")
        })
        .collect();
    eprintln!(
        "images {big}, {} ready in {:.1} s",
        small.join(", "),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let specs: Vec<NodeSpec> = (1..=NODES)
        .map(|i| NodeSpec::new(POOL, &[&format!("node={}", node_label(i))]).with_own_engine())
        .collect();
    let c = Cluster::start("imgp", &specs, 1, 30).await.unwrap();
    let link = SiteLink::create(&c.topo.fabric, "br0", CENTER_IP, 24).unwrap();
    let ca = DevCa::create(&c.dir.path().join("registries")).unwrap();
    let center = Registry::start_center(
        Some(&link.netns),
        SocketAddr::new(IpAddr::V4(CENTER_IP), 5000),
        &ca,
        CENTER_USER,
        CENTER_PASSWORD,
    )
    .await
    .unwrap();
    let proxy = Registry::start_proxy(
        Some(&c.topo.fabric),
        SocketAddr::new(IpAddr::V4(FABRIC_IP), 5001),
        &ca,
        &center,
        CENTER_USER,
        CENTER_PASSWORD,
        PROXY_USER,
        PROXY_PASSWORD,
    )
    .await
    .unwrap();
    let token = c.create_pool(POOL).await.unwrap();
    let w = World {
        proxy,
        center,
        link,
        ca,
        token,
        c,
    };
    let files = w.c.dir.path();
    std::fs::write(files.join("ca.pem"), w.ca.pem()).unwrap();
    std::fs::write(files.join("proxy.pw"), format!("{PROXY_PASSWORD}\n")).unwrap();
    w.cli_ok(&[
        &format!("--pool={POOL}"),
        "registry-proxy",
        "add",
        "site",
        &w.proxy.url(),
        "--center",
        &w.center.host(),
        "--ca-file",
        &files.join("ca.pem").display().to_string(),
        "--username",
        PROXY_USER,
        "--password-file",
        &files.join("proxy.pw").display().to_string(),
    ])
    .await;
    eprintln!(
        "cluster of {NODES} nodes, center and proxy up in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let big_image = w.push(&big, "team/big").await;
    let (big_ref, big_size, big_blobs) = (
        big_image.reference.clone(),
        big_image.size,
        big_image.blobs.len(),
    );
    let mut small_refs = Vec::new();
    for (i, local) in small.iter().enumerate() {
        small_refs.push(w.push(local, &format!("team/small{i}")).await);
    }
    w.link
        .shape(&rate, "256kb", "50ms")
        .expect("tc tbf on the center's link");

    // 1. Create -> running.
    let mut rows = Vec::new();
    let mut timed = |case: String, node: usize, line: Timeline, before: (u64, u64)| {
        let (center_bytes, _) = w.center_blobs("team/big");
        let link_bytes = w.link_tx();
        eprintln!("{case} on n{node}: {line:?}");
        rows.push(Row {
            case,
            node,
            line,
            center_bytes: center_bytes - before.0,
            link_bytes: link_bytes - before.1,
        });
    };
    let before = |w: &World| (w.center_blobs("team/big").0, w.link_tx());

    let b = before(&w);
    let cold = w.timed_create("cold", &big_ref, 1).await;
    timed("(a) cold, via the center".into(), 1, cold.clone(), b);
    let tbf_after_cold = w.link.qdisc_stats().unwrap_or_default();
    let cold_per_blob = w.fetches_per_blob("team/big", &big_image, 0);
    let mut warm = Vec::new();
    let mut pre = Vec::new();
    let mut prewarm_secs = Vec::new();
    let mut local = Vec::new();
    for r in 1..=rounds {
        let (warm_node, pre_node) = (2 * r, 2 * r + 1);
        let b = before(&w);
        let line = w
            .timed_create(&format!("warm-{r}"), &big_ref, warm_node)
            .await;
        warm.push(line.secs());
        timed(format!("(b) warm, proxy cache #{r}"), warm_node, line, b);

        let b = before(&w);
        let took = w.prewarm(&big_ref, pre_node).await;
        prewarm_secs.push(took.as_secs_f64());
        let line = w
            .timed_create(&format!("pre-{r}"), &big_ref, pre_node)
            .await;
        pre.push(line.secs());
        timed(
            format!("(c) prewarmed #{r} (prewarm {:.2} s)", took.as_secs_f64()),
            pre_node,
            line,
            b,
        );

        let b = before(&w);
        let line = w.timed_create(&format!("local-{r}"), &big_ref, 1).await;
        local.push(line.secs());
        timed(format!("(d) local, image on node #{r}"), 1, line, b);
    }

    // 2. Center bytes for 10 nodes.
    struct Spread {
        case: &'static str,
        size: u64,
        blobs: usize,
        per_blob: String,
        first: (u64, usize),
        all: (u64, usize),
        link_all: u64,
        first_secs: f64,
        rest_secs: f64,
    }
    let mut spreads = Vec::new();
    let rest: Vec<usize> = (2..=NODES).collect();
    let every: Vec<usize> = (1..=NODES).collect();
    for (i, case) in [
        "(A) one node, then 9 at once",
        "(B) prewarm one node, then 9 at once",
        "(C) all 10 at once",
        "(D) prewarm all 10 at once (seeded), then create",
    ]
    .into_iter()
    .enumerate()
    {
        let image = &small_refs[i];
        let (reference, size, blobs) = (&image.reference, image.size, image.blobs.len());
        let repo = format!("team/small{i}");
        let base = (w.center_blobs(&repo), w.link_tx());
        let t = Instant::now();
        let (first, first_secs) = match i {
            0 => {
                w.timed_create(&format!("s{i}-1"), reference, 1).await;
                (w.center_blobs(&repo), t.elapsed().as_secs_f64())
            }
            1 => {
                w.prewarm(reference, 1).await;
                (w.center_blobs(&repo), t.elapsed().as_secs_f64())
            }
            3 => {
                w.prewarm_all(reference).await;
                (w.center_blobs(&repo), t.elapsed().as_secs_f64())
            }
            _ => ((0, 0), 0.0),
        };
        let group: &[usize] = if i >= 2 { &every } else { &rest };
        let t = Instant::now();
        let names: Vec<String> = group.iter().map(|n| format!("s{i}-{n}")).collect();
        for (name, &n) in names.iter().zip(group) {
            w.create(name, reference, n).await;
        }
        let lines = w.await_running(&names, t).await;
        let rest_secs = t.elapsed().as_secs_f64();
        for (name, line) in names.iter().zip(&lines) {
            if !line.errors.is_empty() {
                eprintln!("{name}: errors on the way: {:?}", line.errors);
            }
        }
        let all = w.center_blobs(&repo);
        spreads.push(Spread {
            case,
            size,
            blobs,
            per_blob: w.fetches_per_blob(&repo, image, base.0 .1),
            first: (first.0 - base.0 .0, first.1 - base.0 .1),
            all: (all.0 - base.0 .0, all.1 - base.0 .1),
            link_all: w.link_tx() - base.1,
            first_secs,
            rest_secs,
        });
    }

    // Report.
    println!();
    println!(
        "Images (issue 17): {NODES} nodes of pool {POOL} with their own engines; center {} behind tbf {rate} (burst 256kb, latency 50ms); proxy {} in the fabric",
        w.center.host(),
        w.proxy.host()
    );
    println!(
        "1. create -> running, big image {:.1} MB as pulled ({big_blobs} blobs: config + busybox + 3 data layers); times from `container create`, s",
        big_size as f64 / MB
    );
    println!(
        "{:<42} {:<5} {:>9} {:>10} {:>11} {:>8} {:>13} {:>12}",
        "case", "node", "running", "pull seen", "downloaded", "pulled", "center MB", "link tx MB"
    );
    for row in &rows {
        println!(
            "{:<42} {:<5} {:>9.2} {:>10} {:>11} {:>8} {:>13.1} {:>12.1}",
            row.case,
            format!("n{}", row.node),
            row.line.secs(),
            fmt_at(row.line.pull_seen),
            fmt_at(row.line.downloaded),
            fmt_at(row.line.pulled),
            row.center_bytes as f64 / MB,
            row.link_bytes as f64 / MB,
        );
    }
    let cold_s = cold.secs();
    let (warm_m, pre_m, local_m, prewarm_m) = (
        median(warm.clone()),
        median(pre.clone()),
        median(local.clone()),
        median(prewarm_secs.clone()),
    );
    println!(
        "medians over {rounds} round(s): warm {warm_m:.2} s, prewarmed {pre_m:.2} s (the prewarm itself {prewarm_m:.2} s), local {local_m:.2} s; cold {cold_s:.2} s"
    );
    if let (Some(down), Some(seen)) = (cold.downloaded, cold.pull_seen) {
        let span = (down - seen).as_secs_f64();
        println!(
            "cold download: {:.1} MB of layers in {span:.1} s after the pull showed = {:.1} Mbit/s to the node; the link carried {:.1} MB ({:.2}x the image)",
            cold.bytes_total as f64 / MB,
            cold.bytes_total as f64 * 8.0 / span / 1e6,
            rows[0].link_bytes as f64 / MB,
            rows[0].link_bytes as f64 / big_size as f64
        );
    }
    println!("cold: fetches from the center per blob: {cold_per_blob}");
    let rate_bits = parse_rate(&rate);
    if let Some(bits) = rate_bits {
        println!(
            "link floor for the cold pull: {:.1} s for one copy of the image at {rate}, {:.1} s for two",
            big_size as f64 * 8.0 / bits,
            2.0 * big_size as f64 * 8.0 / bits
        );
    }

    println!();
    println!(
        "2. center -> site bytes (GETs of blobs in the center's access log), {NODES} nodes, small images of {:.1} MB as pulled",
        spreads[0].size as f64 / MB
    );
    println!(
        "{:<38} {:>14} {:>8} {:>15} {:>8} {:>10} {:>12} {:>10} {:>10}",
        "scenario",
        "1st node MB",
        "x size",
        "all 10 MB",
        "x size",
        "blob GETs",
        "link tx MB",
        "1st, s",
        "rest, s"
    );
    for s in &spreads {
        let x = |b: u64| b as f64 / s.size as f64;
        let first = if s.first.1 == 0 && s.case.starts_with("(C)") {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.1}", s.first.0 as f64 / MB),
                format!("{:.2}", x(s.first.0)),
            )
        };
        println!(
            "{:<38} {:>14} {:>8} {:>15.1} {:>8.2} {:>10} {:>12.1} {:>10} {:>10.2}",
            s.case,
            first.0,
            first.1,
            s.all.0 as f64 / MB,
            x(s.all.0),
            format!("{}/{}", s.all.1, s.blobs),
            s.link_all as f64 / MB,
            if s.first_secs > 0.0 {
                format!("{:.2}", s.first_secs)
            } else {
                "-".into()
            },
            s.rest_secs
        );
    }
    for s in &spreads {
        println!("{}: fetches per blob: {}", s.case, s.per_blob);
    }

    println!();
    let check = |ok: bool| if ok { "met" } else { "NOT met" };
    let cold_warm = cold_s / warm_m;
    let pre_local = pre_m / local_m;
    println!(
        "goal cold/warm >= 3x: {cold_warm:.2}x ({})",
        check(cold_warm >= 3.0)
    );
    println!(
        "goal prewarmed/local <= 1.2x: {pre_local:.2}x ({})",
        check(pre_local <= 1.2)
    );
    for s in &spreads {
        let one = s.first.0 as f64 / s.size as f64;
        let ten = s.all.0 as f64 / s.size as f64;
        if s.first.1 > 0 {
            println!(
                "goal center bytes independent of node count, {}: 1 node {one:.2}x, 10 nodes {ten:.2}x the image ({})",
                s.case,
                check(ten <= one * 1.05)
            );
        } else {
            println!(
                "goal center bytes independent of node count, {}: 10 nodes {ten:.2}x the image ({})",
                s.case,
                check(ten <= 2.05)
            );
        }
    }
    println!("tbf after the cold pull:\n{}", tbf_after_cold.trim_end());
    eprintln!("wall time {:.1} s", started.elapsed().as_secs_f64());
}
