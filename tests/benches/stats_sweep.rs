//! Cost of the agent's stats collection with N running workloads (default 100: N app + N
//! sandbox containers), measured in one run against two references on the same containers:
//!
//! * one full collection sweep (`caas_agent::stats::Sweeper`, in this process on this thread:
//!   wall and thread CPU time, median of 20) against `docker stats --no-stream` for the same N
//!   app containers (wall, and CPU of the docker CLI plus dockerd, containerd and the shims);
//! * the CPU share of a real `caas-agent` (stats every 10 s, the default resync of 5 s)
//!   against netdata's cgroups plugin (Debian's netdata, everything else off, every 10 s) over
//!   the same window, both watching the same containers; then the agent again with its stats
//!   sweeps effectively off, to tell the sweeps' share from the agent's other periodic work;
//! * the agent's RSS.
//!
//! `cargo bench -p caas-tests --bench stats_sweep [-- --workloads N --window SECONDS]`.
//! Needs Docker, Java (ZooKeeper), busybox-static and netdata (scripts/install-deps). netdata
//! runs in a network namespace of its own with only loopback: at start it probes cloud
//! metadata addresses, which must not leave this machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::query_parameters::ListContainersOptions;
use caas_agent::stats::{Sweeper, Target};
use caas_api::{Assignment, WorkloadKey, WorkloadSpec, WorkloadState, ZkLayout};
use caas_tests::agent::{test_node_id, AgentOptions, AgentProcess, ContainerSweeper};
use caas_tests::process::ChildGuard;
use caas_tests::zk_server::ZkServer;
use nix::time::{clock_gettime, ClockId};

const POOL: &str = "pool1";
const SWEEPS: usize = 20;
const DOCKER_RUNS: usize = 3;

struct Args {
    workloads: usize,
    window: Duration,
}

fn args() -> Result<Args> {
    let mut out = Args {
        workloads: 100,
        window: Duration::from_secs(60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--workloads" => out.workloads = it.next().context("--workloads N")?.parse()?,
            "--window" => {
                out.window = Duration::from_secs(it.next().context("--window SECONDS")?.parse()?)
            }
            "--bench" => {}
            other => bail!("unknown argument {other}; use --workloads N --window SECONDS"),
        }
    }
    Ok(out)
}

/// Clock ticks per second of /proc/<pid>/stat.
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (comm, ppid, utime+stime ticks) of a process.
fn proc_stat(pid: u32) -> Option<(String, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let f: Vec<&str> = text[close + 2..].split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((comm, ppid, ticks))
}

fn all_procs() -> Vec<(u32, String, u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|(c, pp, t)| (pid, c, pp, t)))
        .collect()
}

/// CPU ticks of the engine's processes (dockerd, containerd, shims, runc).
fn engine_ticks() -> u64 {
    all_procs()
        .into_iter()
        .filter(|(_, comm, _, _)| {
            comm.starts_with("dockerd") || comm.starts_with("containerd") || comm == "runc"
        })
        .map(|(_, _, _, t)| t)
        .sum()
}

/// CPU ticks of `root` and all its descendants.
fn tree_ticks(root: u32) -> u64 {
    let procs = all_procs();
    let parents: BTreeMap<u32, u32> = procs.iter().map(|(p, _, pp, _)| (*p, *pp)).collect();
    let in_tree = |mut pid: u32| loop {
        if pid == root {
            return true;
        }
        match parents.get(&pid) {
            Some(pp) if *pp != 0 && *pp != pid => pid = *pp,
            _ => return false,
        }
    };
    procs
        .iter()
        .filter(|(pid, ..)| in_tree(*pid))
        .map(|(.., t)| t)
        .sum()
}

fn children_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
            };
            tv(u.user_time()) + tv(u.system_time())
        })
        .unwrap_or_default()
}

fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// A network namespace with only loopback, deleted on drop.
struct IsolatedNs(String);

impl IsolatedNs {
    fn create() -> Result<Self> {
        let name = format!("caasbench{}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status()?;
        anyhow::ensure!(ok.success(), "ip netns add {name}");
        let _ = Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status();
        Ok(Self(name))
    }
}

impl Drop for IsolatedNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// netdata with only its cgroups plugin, every 10 s, no web server, in `ns`.
fn start_netdata(ns: &IsolatedNs, dir: &Path) -> Result<ChildGuard> {
    for d in ["cache", "lib", "log", "run"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let conf = dir.join("netdata.conf");
    let mut text =
        String::from("[global]\n    run as user = root\n    update every = 10\n[directories]\n");
    for d in ["cache", "lib", "log", "run"] {
        text.push_str(&format!("    {d} = {}\n", dir.join(d).display()));
    }
    text.push_str(
        "[db]\n    mode = ram\n    update every = 10\n[logs]\n    debug = /dev/null\n    access = none\n\
         [web]\n    mode = none\n[health]\n    enabled = no\n[ml]\n    enabled = no\n\
         [registry]\n    enabled = no\n[statsd]\n    enabled = no\n\
         [plugins]\n    enable running new plugins = no\n    cgroups = yes\n    proc = no\n\
         \x20   diskspace = no\n    tc = no\n    idlejitter = no\n    timex = no\n    checks = no\n\
         \x20   apps = no\n    python.d = no\n    charts.d = no\n    go.d = no\n    ebpf = no\n\
         \x20   perf = no\n    slabinfo = no\n    netdata monitoring = no\n\
         [plugin:cgroups]\n    update every = 10\n    check for new cgroups every = 10\n",
    );
    std::fs::write(&conf, text)?;
    ChildGuard::spawn(
        "netdata",
        None,
        Path::new("nsenter"),
        &[
            format!("--net=/run/netns/{}", ns.0),
            "--".into(),
            "netdata".into(),
            "-D".into(),
            "-c".into(),
            conf.display().to_string(),
        ],
        &[("DO_NOT_TRACK".into(), "1".into())],
        &dir.join("netdata.out"),
    )
}

fn spec(busybox: &str, name: &str) -> Result<WorkloadSpec> {
    Ok(serde_json::from_value(serde_json::json!({
        "pool": POOL, "name": name, "image": busybox,
        "command": ["sleep", "36000"],
        "resources": {"cpu": "50m", "memory": "16Mi", "pids": 16},
    }))?)
}

fn start_agent(zk: &ZkServer, node_id: &str, stats_ms: u64) -> Result<AgentProcess> {
    AgentProcess::start(AgentOptions {
        node_id: node_id.to_string(),
        pool: POOL.into(),
        zk: zk.connect_string(),
        zk_root: "/caas".into(),
        netns: None,
        listen: std::net::SocketAddr::new(
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            caas_tests::process::free_port(),
        ),
        underlay: None,
        labels: vec![],
        extra_config: format!("resync_interval_ms = 5000\nstats_interval_ms = {stats_ms}\n"),
    })
}

/// Agent CPU over `window` as a share of one CPU.
fn share(ticks: u64, window: Duration, tck: f64) -> f64 {
    ticks as f64 / tck / window.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = args()?;
    let tck = clk_tck();
    let docker = caas_tests::images::docker().await?;
    let busybox = caas_tests::images::ensure_busybox(&docker).await?;
    let node_id = test_node_id("stats");
    let _sweeper = ContainerSweeper::new(std::slice::from_ref(&node_id));
    let zk = ZkServer::start().await?;
    let client = caas_zk::connect(&caas_zk::ZkConfig::new(zk.connect_string())).await?;
    let layout = ZkLayout::new("/caas")?;
    let mut agent = start_agent(&zk, &node_id, 10_000)?;

    println!(
        "starting {} workloads ({} containers)...",
        args.workloads,
        args.workloads * 2
    );
    let started = Instant::now();
    for i in 0..args.workloads {
        let a = Assignment::run(spec(&busybox, &format!("s{i:03}"))?);
        caas_tests::zk_io::put_assignment(&client, &layout, &node_id, &a).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        let mut running = 0;
        for i in 0..args.workloads {
            let key = WorkloadKey::new(POOL, &format!("s{i:03}"));
            if let Ok(Some(s)) = caas_tests::zk_io::status(&client, &layout, &node_id, &key).await {
                if s.state == WorkloadState::Running {
                    running += 1;
                }
            }
        }
        if running == args.workloads {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {running} of {} workloads running:\n{}",
                args.workloads,
                agent.log()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!("all running after {:.0}s", started.elapsed().as_secs_f64());

    // The containers, as the agent's view would list them.
    let mut filters = std::collections::HashMap::new();
    filters.insert("label".to_string(), vec![format!("caas.node={node_id}")]);
    let listed = docker
        .list_containers(Some(ListContainersOptions {
            all: false,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    let mut targets = Vec::new();
    let mut apps = Vec::new();
    for c in listed {
        let labels = c.labels.unwrap_or_default();
        let (Some(name), Some(role)) = (labels.get("caas.name"), labels.get("caas.role")) else {
            continue;
        };
        let role: &'static str = match role.as_str() {
            "app" => "app",
            "sandbox" => "sandbox",
            _ => "data",
        };
        let id = c.id.unwrap_or_default();
        if role == "app" {
            apps.push(id.clone());
        }
        targets.push(Target {
            key: WorkloadKey::new(POOL, name),
            role,
            id,
        });
    }

    // 1. One sweep against docker stats.
    let mut sweeper = Sweeper::for_host("bench");
    let first = sweeper.sweep(&targets);
    let sampled: usize = first.workloads.values().map(|w| w.containers.len()).sum();
    anyhow::ensure!(
        sampled == targets.len(),
        "sampled {sampled} of {}",
        targets.len()
    );
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..SWEEPS {
        let (t0, c0) = (Instant::now(), thread_cpu());
        let s = sweeper.sweep(&targets);
        cpus.push((thread_cpu() - c0).as_secs_f64() * 1e3);
        walls.push(t0.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(s);
    }
    let (sweep_wall, sweep_cpu) = (median(walls), median(cpus));
    let (mut dwalls, mut dcpus) = (Vec::new(), Vec::new());
    for _ in 0..DOCKER_RUNS {
        let (t0, e0, k0) = (Instant::now(), engine_ticks(), children_cpu());
        let out = Command::new("docker")
            .args(["stats", "--no-stream", "--format", "{{.ID}} {{.CPUPerc}}"])
            .args(&apps)
            .output()?;
        let wall = t0.elapsed();
        anyhow::ensure!(out.status.success(), "docker stats failed");
        let engine = (engine_ticks() - e0) as f64 / tck;
        let cli = (children_cpu() - k0).as_secs_f64();
        dwalls.push(wall.as_secs_f64() * 1e3);
        dcpus.push((engine + cli) * 1e3);
    }
    let (docker_wall, docker_cpu) = (median(dwalls), median(dcpus));

    // 2. CPU share against netdata over the same window, then the agent without sweeps.
    let ns = IsolatedNs::create()?;
    let dir = tempfile::tempdir()?;
    let netdata = start_netdata(&ns, dir.path())?;
    let netdata_pid = netdata.pid().context("netdata pid")?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let agent_pid = agent.pid().context("agent pid")?;
    let (a0, n0) = (tree_ticks(agent_pid), tree_ticks(netdata_pid));
    tokio::time::sleep(args.window).await;
    let (a1, n1) = (tree_ticks(agent_pid), tree_ticks(netdata_pid));
    let rss = rss_kib(agent_pid);
    drop(netdata);
    let agent_share = share(a1 - a0, args.window, tck);
    let netdata_share = share(n1 - n0, args.window, tck);

    agent.kill9();
    let mut quiet = start_agent(&zk, &node_id, 3_600_000)?;
    // The new agent waits for the old session to expire, then adopts the containers.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let quiet_pid = quiet.pid().context("agent pid")?;
    let q0 = tree_ticks(quiet_pid);
    tokio::time::sleep(args.window).await;
    let quiet_share = share(tree_ticks(quiet_pid) - q0, args.window, tck);
    quiet.kill9();

    let n = targets.len();
    println!(
        "\nstats_sweep: {} workloads, {n} containers, cgroup v{}",
        args.workloads,
        caas_agent::stats::CgroupLayout::detect().map_or(0, |l| l.version())
    );
    println!("one sweep (median of {SWEEPS}): wall {sweep_wall:.2} ms, CPU {sweep_cpu:.2} ms");
    println!(
        "docker stats --no-stream, {} containers (median of {DOCKER_RUNS}): wall {docker_wall:.0} ms, CPU {docker_cpu:.0} ms (CLI + dockerd + containerd + shims)",
        apps.len()
    );
    println!(
        "  -> sweep is {:.0}x faster (wall) and uses {:.0}x less CPU",
        docker_wall / sweep_wall,
        docker_cpu / sweep_cpu.max(1e-3)
    );
    println!(
        "agent CPU share over {:.0}s (stats every 10s, resync 5s): {:.3}% of a CPU",
        args.window.as_secs_f64(),
        agent_share * 100.0
    );
    println!(
        "netdata cgroups plugin over the same window: {:.3}% of a CPU",
        netdata_share * 100.0
    );
    println!(
        "  -> agent / netdata = {:.2} (goal <= 0.25)",
        agent_share / netdata_share.max(1e-9)
    );
    println!(
        "agent with stats off over {:.0}s: {:.3}% of a CPU (sweeps: {:.3}% = {:.2} ms per 10 s)",
        args.window.as_secs_f64(),
        quiet_share * 100.0,
        sweep_cpu / 100.0,
        sweep_cpu
    );
    println!(
        "agent RSS with {n} containers: {:.1} MiB (goal < 20 MiB)",
        rss as f64 / 1024.0
    );
    Ok(())
}
