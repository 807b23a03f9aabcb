//! Container and node metrics end to end on this machine's cgroup layout: a real agent, real
//! Docker, known loads. A busy loop under a 500m CPU limit (its usage, rate and throttling), a
//! container holding 40 MiB in its tmpfs, a process the OOM killer kills, 10 MB sent over a
//! sandbox's loopback; the agent's figures against the raw cgroup files and
//! `docker stats --no-stream`; `promtool check metrics`; a real Prometheus scraping the agent
//! for a minute and answering `rate(container_cpu_usage_seconds_total[30s])`; the series gone
//! once the container is removed. Then `caas container stats` and `caas node top` on three
//! nodes, with bytes sent between two containers of a bridge network.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use caas_api::stats::{ContainerStats, NodeStatsEntry, WorkloadStats};
use caas_api::WorkloadState;
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::fixture::NodeFixture;
use caas_tests::process::ChildGuard;
use caas_tests::wait::until;

const CONVERGE: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;
/// Bytes the `net` workload sends over its loopback.
const LOOPBACK_BYTES: u64 = 10_000_000;
/// Bytes held in the `hog` workload's tmpfs.
const HOG_BYTES: u64 = 40 * MIB;

fn app_name(f: &NodeFixture, name: &str) -> String {
    format!("caas-{}.{}.{name}", f.node_id, f.pool)
}

async fn stats(f: &NodeFixture, name: &str) -> anyhow::Result<WorkloadStats> {
    let (code, body) = f
        .agent_get(&format!("/v1/containers/{}/{name}/stats", f.pool))
        .await?;
    anyhow::ensure!(code == 200, "{code} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// Waits until the app container of `name` has a sample that satisfies `pred`.
async fn app_sample(
    f: &NodeFixture,
    name: &str,
    what: &str,
    pred: impl Fn(&ContainerStats) -> bool,
) -> ContainerStats {
    until(what, CONVERGE, || async {
        let w = stats(f, name).await?;
        Ok(w.role("app").filter(|c| pred(c)).cloned())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{}", f.agent_log_tail(30)))
}

/// A cgroup file of a container on this host, v1 (`controller`/`v1`) or v2 (`v2`).
fn raw(id: &str, controller: &str, v1: &str, v2: &str) -> String {
    let root = Path::new("/sys/fs/cgroup");
    let path = if root.join("cgroup.controllers").exists() {
        ["docker", "system.slice"]
            .iter()
            .map(|p| {
                if *p == "docker" {
                    root.join(format!("docker/{id}/{v2}"))
                } else {
                    root.join(format!("system.slice/docker-{id}.scope/{v2}"))
                }
            })
            .find(|p| p.exists())
            .unwrap()
    } else {
        root.join(format!("{controller}/docker/{id}/{v1}"))
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn raw_keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// Parses a `docker stats` size such as `40.2MiB` or `1.5GiB`.
fn docker_size(text: &str) -> f64 {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "B" => 1.0,
        "KiB" | "kB" => 1024.0,
        "MiB" | "MB" => MIB as f64,
        "GiB" | "GB" => (1u64 << 30) as f64,
        other => panic!("unit {other:?} in {text:?}"),
    };
    number.parse::<f64>().unwrap() * scale
}

/// `docker stats --no-stream` for one container: (CPU %, memory usage bytes, pids).
fn docker_stats(container: &str) -> (f64, f64, u64) {
    let out = Command::new("docker")
        .args([
            "stats",
            "--no-stream",
            "--format",
            "{{.CPUPerc}};{{.MemUsage}};{{.PIDs}}",
            container,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let parts: Vec<&str> = text.split(';').collect();
    assert_eq!(parts.len(), 3, "docker stats said {text:?}");
    let cpu = parts[0].trim_end_matches('%').parse().unwrap();
    let mem = docker_size(parts[1].split('/').next().unwrap());
    (cpu, mem, parts[2].trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_metrics_match_known_loads() {
    let f = NodeFixture::start("metrics", "stats_interval_ms = 1000\n")
        .await
        .unwrap();
    let mut busy = f.spec("busy", "while :; do :; done");
    busy.resources.cpu = Some("500m".into());
    busy.resources.memory = Some("32Mi".into());
    busy.resources.pids = Some(50);
    let mut hog = f.spec(
        "hog",
        &format!("head -c {HOG_BYTES} /dev/zero > /dev/shm/held && exec sleep 3600"),
    );
    hog.resources.memory = Some("128Mi".into());
    // The subshell grows past the limit and is OOM-killed; the container lives on.
    let mut oom = f.spec(
        "oom",
        "(x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived) ; exec sleep 3600",
    );
    oom.resources.memory = Some("16Mi".into());
    let net = f.spec(
        "net",
        &format!(
            "sleep 3600 | nc -l -p 5000 > /dev/null & sleep 1; head -c {LOOPBACK_BYTES} /dev/zero | nc 127.0.0.1 5000; exec sleep 3600"
        ),
    );
    for spec in [&busy, &hog, &oom, &net] {
        f.assign(spec).await.unwrap();
    }
    for name in ["busy", "hog", "oom", "net"] {
        f.wait_status(name, &format!("{name} running"), CONVERGE, |s| {
            s.state == WorkloadState::Running
        })
        .await
        .unwrap();
    }

    // CPU: the busy loop's rate stays at or under its 500m limit and it is throttled.
    let busy_app = app_sample(&f, "busy", "busy throttled with a rate", |c| {
        // On a loaded machine the loop may not use its whole quota in every period, so this
        // waits for throttling to have been seen a few times.
        c.cpu.throttled_periods >= 3 && c.cpu.throttled_seconds > 0.0 && c.rates.is_some()
    })
    .await;
    let rate = busy_app.rates.clone().unwrap();
    // CFS lets a cgroup run at most its quota per 100 ms period; 0.05 covers the sweep's own
    // jitter (the interval is measured by the agent, the usage by the kernel).
    assert!(
        rate.cpu_cores > 0.1 && rate.cpu_cores <= 0.55,
        "busy at {} cores",
        rate.cpu_cores
    );
    assert_eq!(busy_app.cpu.limit_cores, Some(0.5));
    assert!(busy_app.cpu.throttled_seconds > 0.0, "{busy_app:?}");
    assert_eq!(busy_app.pids.limit, Some(50));
    // The raw counter read after the agent's sample is ahead by at most what 500m allows in
    // the time between them (plus 50 ms for the reads themselves).
    let id = busy_app.id.clone();
    let usage_after = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        raw_keyed(&raw(&id, "", "", "cpu.stat"), "usage_usec") as f64 / 1e6
    } else {
        raw(&id, "cpuacct", "cpuacct.usage", "")
            .trim()
            .parse::<f64>()
            .unwrap()
            / 1e9
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let elapsed = (now_ms - busy_app.timestamp_ms as f64) / 1000.0;
    let ahead = usage_after - busy_app.cpu.usage_seconds;
    assert!(
        ahead >= 0.0 && ahead <= 0.5 * elapsed + 0.05,
        "raw {usage_after} vs agent {} after {elapsed}s",
        busy_app.cpu.usage_seconds
    );
    // docker stats measures over its own second; both are capped by the quota, so on this
    // shared 2-core machine they agree within 0.2 core (40% of the limit).
    let (docker_cpu, _, _) = docker_stats(&app_name(&f, "busy"));
    let latest = stats(&f, "busy").await.unwrap();
    let agent_cpu = latest
        .role("app")
        .unwrap()
        .rates
        .as_ref()
        .unwrap()
        .cpu_cores;
    assert!(
        (docker_cpu / 100.0 - agent_cpu).abs() <= 0.2,
        "docker {docker_cpu}% vs agent {agent_cpu} cores"
    );

    // Memory: 40 MiB held in tmpfs is working set (not inactive file cache). The container's
    // own baseline (sh, sleep, page tables) is well under 4 MiB.
    let hog_app = app_sample(&f, "hog", "hog holding its memory", |c| {
        c.memory.working_set_bytes >= HOG_BYTES
    })
    .await;
    assert!(
        hog_app.memory.working_set_bytes < HOG_BYTES + 4 * MIB,
        "{:?}",
        hog_app.memory
    );
    assert_eq!(hog_app.memory.limit_bytes, Some(128 * MIB));
    // Against the raw files: nothing in the container changes any more, so the usage and the
    // working set derived from memory.stat agree within 256 KiB (kernel slack between reads).
    let id = hog_app.id.clone();
    let (usage, inactive) = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        (
            raw(&id, "", "", "memory.current")
                .trim()
                .parse::<u64>()
                .unwrap(),
            raw_keyed(&raw(&id, "", "", "memory.stat"), "inactive_file"),
        )
    } else {
        (
            raw(&id, "memory", "memory.usage_in_bytes", "")
                .trim()
                .parse::<u64>()
                .unwrap(),
            raw_keyed(
                &raw(&id, "memory", "memory.stat", ""),
                "total_inactive_file",
            ),
        )
    };
    let latest = stats(&f, "hog").await.unwrap();
    let hog_now = latest.role("app").unwrap();
    assert!(
        hog_now.memory.usage_bytes.abs_diff(usage) <= 256 << 10,
        "agent {} raw {usage}",
        hog_now.memory.usage_bytes
    );
    assert!(
        hog_now
            .memory
            .working_set_bytes
            .abs_diff(usage.saturating_sub(inactive))
            <= 256 << 10
    );
    // docker stats shows usage minus inactive file pages too; it prints 3 significant digits,
    // so 1 MiB covers its rounding and the time between the two reads.
    let (_, docker_mem, docker_pids) = docker_stats(&app_name(&f, "hog"));
    assert!(
        (docker_mem - hog_now.memory.working_set_bytes as f64).abs() <= MIB as f64,
        "docker {docker_mem} vs agent {}",
        hog_now.memory.working_set_bytes
    );
    assert_eq!(docker_pids, hog_now.pids.current);

    // The OOM kill is counted, and the container is still there to show it.
    let oom_app = app_sample(&f, "oom", "an OOM kill counted", |c| {
        c.memory.oom_kills >= 1
    })
    .await;
    assert_eq!(
        oom_app.memory.limit_bytes,
        Some(16 * MIB),
        "{:?}",
        oom_app.memory
    );

    // Network: the sandbox owns the namespace; its loopback carried the 10 MB (plus TCP/IP
    // headers and ACKs: under 6% for 64 KiB segments).
    let sandbox = until("the loopback bytes counted", CONVERGE, || async {
        let w = stats(&f, "net").await?;
        Ok(w.role("sandbox")
            .and_then(|s| s.network.iter().find(|i| i.interface == "lo").cloned())
            .filter(|lo| lo.rx_bytes >= LOOPBACK_BYTES))
    })
    .await
    .unwrap();
    assert!(sandbox.tx_bytes >= LOOPBACK_BYTES && sandbox.tx_bytes < LOOPBACK_BYTES * 106 / 100);
    assert!(stats(&f, "net")
        .await
        .unwrap()
        .role("app")
        .unwrap()
        .network
        .is_empty());

    // The node.
    let (code, body) = f.agent_get("/v1/node/stats").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let node: caas_api::stats::NodeStats = serde_json::from_str(&body).unwrap();
    assert!(
        node.cpus >= 1 && node.memory_total_bytes > 0 && node.containers >= 8,
        "{node:?}"
    );
    assert!(
        node.network.iter().any(|i| i.interface == "eth0"),
        "{node:?}"
    );

    // promtool accepts the exposition.
    let (code, metrics) = f.agent_get("/metrics").await.unwrap();
    assert_eq!(code, 200);
    for needle in [
        "container_cpu_usage_seconds_total{",
        "container_cpu_cfs_throttled_periods_total{",
        "container_memory_working_set_bytes{",
        "container_oom_events_total{",
        "container_network_receive_bytes_total{interface=\"lo\"",
        "machine_cpu_cores{",
        "caas_workload_running{",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/install-deps installs it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A real Prometheus in the node's namespace scrapes the agent for a minute.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nscrape_configs:\n  - job_name: caas\n    static_configs:\n      - targets: ['{}']\n",
            f.agent.options.listen
        ),
    )
    .unwrap();
    let _prometheus = ChildGuard::spawn(
        "prometheus",
        Some(f.topo.node(1)),
        Path::new("/usr/bin/prometheus"),
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            "--web.listen-address=127.0.0.1:9090".into(),
        ],
        &[],
        &dir.path().join("prometheus.log"),
    )
    .unwrap();
    let scraping_since = Instant::now();
    let query = "rate(container_cpu_usage_seconds_total{name=\"busy\",role=\"app\"}[30s])";
    let url = format!(
        "http://127.0.0.1:9090/api/v1/query?query={}",
        query
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('=', "%3D")
            .replace(',', "%2C")
            .replace('[', "%5B")
            .replace(']', "%5D")
    );
    let value = until(
        "Prometheus answering the rate after a minute of scraping",
        Duration::from_secs(150),
        || async {
            let (code, body) = f.node_ns.http_get(&url).await?;
            if code != 200 {
                return Ok(None);
            }
            let v: serde_json::Value = serde_json::from_str(&body)?;
            let value = v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok());
            Ok(value.filter(|_| scraping_since.elapsed() >= Duration::from_secs(60)))
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nprometheus log:\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        )
    });
    assert!(
        value > 0.1 && value <= 0.55,
        "Prometheus says {value} cores"
    );

    // Removing the workload removes its series.
    f.unassign("busy").await.unwrap();
    until("busy's series gone", CONVERGE, || async {
        let (_, text) = f.agent_get("/metrics").await?;
        Ok((!text.contains("name=\"busy\"") && text.contains("name=\"hog\"")).then_some(()))
    })
    .await
    .unwrap();
    let (code, _) = f
        .agent_get(&format!("/v1/containers/{}/busy/stats", f.pool))
        .await
        .unwrap();
    assert_eq!(code, 404);
}

const POOL: &str = "pool7";

async fn cli_ok(c: &Cluster, token: &str, args: &[&str]) -> String {
    let out = c.cli(0, token, args).await.unwrap();
    assert_eq!(out.code, Some(0), "caas {args:?}: {out:?}");
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_top_through_central_on_three_nodes() {
    let nodes = vec![NodeSpec::new(POOL, &[]); 3];
    let c = Cluster::start("mtr", &nodes, 1, 30).await.unwrap();
    let token = c.create_pool(POOL).await.unwrap();
    let image = c.busybox.clone();
    let p = ["--pool", POOL];
    let create = |args: Vec<String>| {
        let token = token.clone();
        let c = &c;
        async move {
            let mut all: Vec<&str> = p.to_vec();
            all.extend(["container", "create"]);
            all.extend(args.iter().map(String::as_str));
            cli_ok(c, &token, &all).await;
        }
    };
    create(
        [
            "spin",
            "--image",
            image.as_str(),
            "--cpu",
            "250m",
            "--instances",
            "3",
            "--",
            "sh",
            "-c",
            "while :; do :; done",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    // Two containers of a bridge network, on its node; 5 MB from one to the other.
    cli_ok(
        &c,
        &token,
        &[
            "--pool",
            POOL,
            "network",
            "create",
            "local",
            "-d",
            "bridge",
            "-l",
            "Subnet=10.9.0.0/24",
            "-l",
            "Gateway=10.9.0.1",
        ],
    )
    .await;
    create(
        [
            "rx",
            "--image",
            image.as_str(),
            "--public-service=.local",
            "-l",
            "Ip=10.9.0.10",
            "--",
            "sh",
            "-c",
            "sleep 3600 | nc -l -p 5000 > /dev/null",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    create(
        [
            "tx", "--image", image.as_str(), "--public-service=.local", "--", "sh", "-c",
            "until head -c 5000000 /dev/zero | nc 10.9.0.10 5000; do sleep 1; done; exec sleep 3600",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;

    let eth0 = |w: &WorkloadStats| {
        w.role("sandbox")
            .and_then(|s| s.network.iter().find(|i| i.interface == "eth0").cloned())
            .unwrap_or_default()
    };
    let all = until(
        "every container sampled, the bytes across",
        Duration::from_secs(120),
        || async {
            let out = c
                .cli(
                    0,
                    &token,
                    &["--pool", POOL, "-o", "json", "container", "stats"],
                )
                .await?;
            anyhow::ensure!(out.code == Some(0), "{out:?}");
            let all: Vec<WorkloadStats> = serde_json::from_str(&out.stdout)?;
            let ready = all.len() == 5
                && all.iter().filter(|w| w.name.starts_with("spin")).all(|w| {
                    w.role("app")
                        .and_then(|a| a.rates.as_ref())
                        .is_some_and(|r| r.cpu_cores > 0.05)
                })
                && all
                    .iter()
                    .any(|w| w.name == "rx" && eth0(w).rx_bytes >= 5_000_000)
                && all
                    .iter()
                    .any(|w| w.name == "tx" && eth0(w).tx_bytes >= 5_000_000);
            Ok(ready.then_some(all))
        },
    )
    .await
    .unwrap();
    let spin_nodes: std::collections::BTreeSet<&str> = all
        .iter()
        .filter(|w| w.name.starts_with("spin"))
        .map(|w| w.node.as_str())
        .collect();
    assert_eq!(spin_nodes.len(), 3, "spread over the three nodes: {all:?}");
    for w in all.iter().filter(|w| w.name.starts_with("spin")) {
        let r = w.role("app").unwrap().rates.as_ref().unwrap();
        assert!(
            r.cpu_cores <= 0.3,
            "{} at {} cores under 250m",
            w.name,
            r.cpu_cores
        );
    }

    // The table for people, and one container by name.
    let table = cli_ok(&c, &token, &["--pool", POOL, "container", "stats"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("CPU %"),
        "{table}"
    );
    assert_eq!(lines.len(), 6, "{table}");
    let one = cli_ok(&c, &token, &["--pool", POOL, "container", "stats", "rx"]).await;
    assert!(one.lines().nth(1).unwrap().starts_with("rx "), "{one}");
    // --watch redraws in place until interrupted.
    let cli = caas_tests::binaries::cli().unwrap();
    let watched = tokio::process::Command::new("ip")
        .args(["netns", "exec", &c.topo.fabric, "timeout", "-s", "INT", "4"])
        .arg(cli)
        .args([
            "--pool",
            POOL,
            "container",
            "stats",
            "--watch",
            "--interval",
            "1",
            "tx",
        ])
        .env("CAAS_URL", &c.centrals[0].url)
        .env("CAAS_TOKEN", &token)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&watched.stdout);
    assert!(text.matches("\x1b[2J\x1b[H").count() >= 2, "{text:?}");
    assert!(text.matches("\ntx ").count() >= 2, "{text:?}");

    // node top: all three nodes, busiest first, with figures.
    let top = cli_ok(&c, &token, &["node", "top"]).await;
    assert!(top.lines().next().unwrap().starts_with("NODE"), "{top}");
    assert_eq!(
        top.lines().filter(|l| l.ends_with(" ok")).count(),
        3,
        "{top}"
    );
    let entries: Vec<NodeStatsEntry> =
        serde_json::from_str(&cli_ok(&c, &token, &["-o", "json", "node", "top"]).await).unwrap();
    assert_eq!(entries.len(), 3);
    for e in &entries {
        let s = e.stats.as_ref().unwrap();
        assert!(
            s.cpus >= 1 && s.memory_total_bytes > 0 && s.containers >= 2,
            "{e:?}"
        );
    }

    // Another pool's token sees neither the containers nor the nodes.
    let other = c.create_pool("other7").await.unwrap();
    let out = c
        .cli(0, &other, &["--pool", POOL, "container", "stats"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{out:?}");
    let out = c
        .cli(0, &other, &["--pool", POOL, "container", "stats", "rx"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{out:?}");
    let none: Vec<NodeStatsEntry> =
        serde_json::from_str(&cli_ok(&c, &other, &["-o", "json", "node", "top"]).await).unwrap();
    assert!(none.is_empty(), "{none:?}");
}
