//! End-to-end placement throughput: `POST /v1/pools/bench/containers` through an in-process
//! caas-central into a real ZooKeeper holding 1,000 registered (simulated) nodes.
//!
//! Goal (from the issue): at least 500 placements committed per second.
//!
//! The reference, measured in the same run against the same ZooKeeper: the same number of raw
//! `multi` writes, each carrying exactly the operations one placement commits (create the
//! container record, create the assignment, set the node's inventory record with a version
//! check, check the pool), with payloads built from the same types and specs, issued from the
//! same number of concurrent tasks over one session, as central does. The efficiency ratio is
//! "API placements/s / raw multi/s".
//!
//! ZooKeeper is Debian's package, started by the harness (`caas_tests::zk_server`, profile
//! `Throughput`): standalone, default durability (`forceSync=yes`: transactions are fsynced
//! before they are acknowledged, in group commits), data in a temporary directory. No agents
//! run: placements are just written.
//!
//! Besides throughput and latency, each row attributes cost per placement: ZooKeeper requests,
//! reads, writes, transactions and fsyncs (from `mntr`/`srvr` deltas), and CPU time of this
//! process (central + HTTP clients) and of the ZooKeeper JVM (from `/proc`). Afterwards every
//! inventory record is read back and checked against capacity and against the container
//! records and assignments.
//!
//! Run with `cargo bench -p caas-tests --bench api_placement`. Environment overrides:
//! `CAAS_BENCH_PLACEMENTS` (per row, default 2000), `CAAS_BENCH_CONCURRENCY` (default "1,8,32"),
//! `CAAS_BENCH_NODES` (default 1000).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use caas_api::central::{
    ContainerRecord, CreateContainerRequest, CreatePoolRequest, Liveness, NodeRecord, NodeView,
    PlacedWorkload, Placement, PoolView,
};
use caas_api::{
    Assignment, Capacity, NodeInfo, Resources, RestartPolicy, WorkloadKey, WorkloadSpec, ZkLayout,
};
use caas_central::config::CentralConfig;
use caas_central::placement::allocation_of;
use caas_tests::wait;
use caas_tests::zk_server::{four_letter, ZkProfile, ZkServer};
use caas_zk::zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};
use futures::future::try_join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

const POOL: &str = "bench";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
const RAW_ROOT: &str = "/bench-raw";
const GOAL: f64 = 500.0;
/// Unmeasured warm-up (JVM JIT, connection pools, caches).
const WARMUP_RAW: usize = 1000;
const WARMUP_API: usize = 300;
const GIB: u64 = 1 << 30;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn concurrency_levels() -> Vec<usize> {
    std::env::var("CAAS_BENCH_CONCURRENCY")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|c| c.trim().parse().ok())
                .filter(|&c| c > 0)
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![1, 8, 32])
}

// ---------------------------------------------------------------------------------------------
// ZooKeeper counters and CPU
// ---------------------------------------------------------------------------------------------

/// Server-side counters used to attribute cost: requests received, transactions (zxid), reads
/// and writes processed, fsyncs.
#[derive(Debug, Clone, Copy, Default)]
struct ZkCounters {
    packets: f64,
    zxid: f64,
    reads: f64,
    writes: f64,
    fsyncs: f64,
}

impl ZkCounters {
    async fn read(addr: SocketAddr) -> Result<Self> {
        let mntr = four_letter(addr, "mntr").await?;
        let srvr = four_letter(addr, "srvr").await?;
        let metric = |name: &str| -> f64 {
            mntr.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once('\t')?;
                    (k.trim() == name).then(|| v.trim().parse::<f64>().ok())?
                })
                .unwrap_or(f64::NAN)
        };
        let zxid = srvr
            .lines()
            .find_map(|l| l.strip_prefix("Zxid: 0x"))
            .and_then(|h| i64::from_str_radix(h.trim(), 16).ok())
            // The low 32 bits count transactions within an epoch (one epoch here).
            .map(|z| (z & 0xffff_ffff) as f64)
            .unwrap_or(f64::NAN);
        Ok(Self {
            packets: metric("zk_packets_received"),
            zxid,
            reads: metric("zk_cnt_readlatency"),
            writes: metric("zk_cnt_updatelatency"),
            fsyncs: metric("zk_cnt_fsynctime"),
        })
    }

    fn per(self, before: Self, n: usize) -> Self {
        let n = n as f64;
        Self {
            packets: (self.packets - before.packets) / n,
            zxid: (self.zxid - before.zxid) / n,
            reads: (self.reads - before.reads) / n,
            writes: (self.writes - before.writes) / n,
            fsyncs: (self.fsyncs - before.fsyncs) / n,
        }
    }
}

/// CPU time (user + system, ms) of this process and of the ZooKeeper JVM.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    own_ms: f64,
    zk_ms: f64,
}

impl CpuTimes {
    fn read(zk_pid: u32) -> Result<Self> {
        Ok(Self {
            own_ms: proc_cpu_ms("/proc/self/stat")?,
            zk_ms: proc_cpu_ms(&format!("/proc/{zk_pid}/stat"))?,
        })
    }

    fn per(self, before: Self, n: usize) -> Self {
        let n = n as f64;
        Self {
            own_ms: (self.own_ms - before.own_ms) / n,
            zk_ms: (self.zk_ms - before.zk_ms) / n,
        }
    }
}

/// utime + stime of a `/proc/<pid>/stat` file in ms (clock ticks of 10 ms, Linux's USER_HZ).
fn proc_cpu_ms(path: &str) -> Result<f64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // Fields after the parenthesised command name start with the state (field 3).
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("{path}: no field {}", i + 3))
    };
    Ok((tick(11)? + tick(12)?) * 10.0)
}

// ---------------------------------------------------------------------------------------------
// Fleet and workloads
// ---------------------------------------------------------------------------------------------

fn persistent() -> caas_zk::zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

fn node_id(i: usize) -> String {
    format!("node-{i:04}")
}

/// Heterogeneous simulated nodes: 8-64 cores, 4 GiB per core (32-256 GiB), zone/rack labels,
/// a quarter with SSDs.
fn fleet(count: usize) -> Vec<NodeInfo> {
    let mut rng = StdRng::seed_from_u64(7);
    let now = caas_central::now();
    (0..count)
        .map(|i| {
            let cores: u64 = [8, 16, 32, 64][rng.random_range(0..4)];
            let mut labels = BTreeMap::new();
            labels.insert("zone".into(), ["a", "b", "c"][i % 3].into());
            labels.insert("rack".into(), format!("r{:02}", rng.random_range(1..=40)));
            if rng.random_bool(0.25) {
                labels.insert("ssd".into(), "true".into());
            }
            NodeInfo {
                version: caas_api::PAYLOAD_VERSION,
                node_id: node_id(i),
                pool: POOL.into(),
                api_addr: format!("10.{}.{}.{}:7070", i / 65536, (i / 256) % 256, i % 256),
                underlay: None,
                capacity: Capacity {
                    cpu_millis: cores * 1000,
                    memory_bytes: cores * 4 * GIB,
                },
                labels,
                agent_version: "0.1.0-bench".into(),
                hostname: format!("bench-host-{i:04}"),
                started_at: now,
                engine_ready: true,
                networks: Default::default(),
            }
        })
        .collect()
}

/// Small heterogeneous requests.
const SIZES: [(&str, &str); 6] = [
    ("100m", "128Mi"),
    ("250m", "256Mi"),
    ("250m", "512Mi"),
    ("500m", "512Mi"),
    ("500m", "1Gi"),
    ("1000m", "2Gi"),
];

/// The create request number `i` of a row: realistic image, command, env and labels.
fn create_request(name: String, i: usize) -> CreateContainerRequest {
    let (cpu, memory) = SIZES[i % SIZES.len()];
    let env = [
        ("LOG_LEVEL", "info"),
        ("REGION", "eu-west-1"),
        ("FEATURE_FLAGS", "search,checkout,recommendations"),
        (
            "DATABASE_URL",
            "postgres://app@db.internal.example:5432/app",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let labels = [
        ("team", "bench"),
        ("tier", ["web", "worker", "cache"][i % 3]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    CreateContainerRequest {
        name,
        image: "registry.example.com/bench/app:1.2.3".into(),
        command: vec!["/app/server".into(), "--port".into(), "8080".into()],
        env,
        resources: Resources {
            cpu: Some(cpu.into()),
            memory: Some(memory.into()),
            pids: None,
        },
        restart: RestartPolicy::Always,
        labels,
        ..Default::default()
    }
}

/// The spec central builds from `request` (single instance), for the raw reference.
fn spec_of(request: &CreateContainerRequest) -> WorkloadSpec {
    WorkloadSpec {
        version: caas_api::PAYLOAD_VERSION,
        pool: POOL.into(),
        name: request.name.clone(),
        image: request.image.clone(),
        command: request.command.clone(),
        env: request.env.clone(),
        resources: request.resources.clone(),
        restart: request.restart,
        labels: request.labels.clone(),
        volumes: request.volumes.clone(),
        hostname: request.hostname.clone(),
        rich: false,
        health_check: None,
        generation: 1,
        networks: Vec::new(),
        read_only_root: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct RunStats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(n: usize, elapsed: Duration, mut latencies: Vec<Duration>) -> RunStats {
    latencies.sort();
    let at = |q: usize| {
        latencies
            .get((latencies.len().saturating_sub(1)) * q / 100)
            .copied()
            .unwrap_or_default()
    };
    RunStats {
        per_sec: n as f64 / elapsed.as_secs_f64(),
        p50: at(50),
        p99: at(99),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `n` creates with distinct names `<prefix>-<i>` from `c` concurrent clients; each must be 201.
async fn api_run(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    prefix: &str,
    c: usize,
    n: usize,
) -> Result<RunStats> {
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{base}/v1/pools/{POOL}/containers");
    let started = Instant::now();
    let tasks = (0..c).map(|_| {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        let auth = format!("Bearer {token}");
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = serde_json::to_vec(&create_request(format!("{prefix}-{i:05}"), i))?;
                let t0 = Instant::now();
                let resp = http
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = resp.status();
                let text = resp.bytes().await?;
                latencies.push(t0.elapsed());
                if status != reqwest::StatusCode::CREATED {
                    bail!(
                        "create {prefix}-{i:05}: HTTP {status}: {}",
                        String::from_utf8_lossy(&text)
                    );
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        })
    });
    let per_task = try_join_all(tasks).await?;
    let elapsed = started.elapsed();
    let mut latencies = Vec::with_capacity(n);
    for l in per_task {
        latencies.extend(l?);
    }
    Ok(stats(n, elapsed, latencies))
}

/// A node of the raw reference tree: its record and the version of its inventory znode.
struct RawNode {
    record: NodeRecord,
    version: i32,
}

fn raw_path(rest: &str) -> String {
    format!("{RAW_ROOT}{rest}")
}

/// Creates the raw reference tree: a pool, its containers directory, and per node an
/// assignment directory and an inventory record like central's.
async fn raw_setup(client: &Client, fleet: &[NodeInfo]) -> Result<Vec<RawNode>> {
    client
        .mkdir(
            &raw_path(&format!("/pools/{POOL}/containers")),
            &persistent(),
        )
        .await?;
    client.mkdir(&raw_path("/inventory"), &persistent()).await?;
    client.mkdir(&raw_path("/assign"), &persistent()).await?;
    let mut nodes = Vec::with_capacity(fleet.len());
    for chunk in fleet.chunks(100) {
        let creates = chunk.iter().map(|info| async move {
            let record = NodeRecord {
                version: caas_api::PAYLOAD_VERSION,
                info: info.clone(),
                allocated: Default::default(),
                workloads: BTreeMap::new(),
                liveness: Liveness::Ready,
                since: caas_central::now(),
            };
            let data = serde_json::to_vec(&record)?;
            client
                .create(
                    &raw_path(&format!("/assign/{}", info.node_id)),
                    &[],
                    &persistent(),
                )
                .await?;
            let (stat, _) = client
                .create(
                    &raw_path(&format!("/inventory/{}", info.node_id)),
                    &data,
                    &persistent(),
                )
                .await?;
            Ok::<_, anyhow::Error>(RawNode {
                record,
                version: stat.version,
            })
        });
        nodes.extend(try_join_all(creates).await?);
    }
    Ok(nodes)
}

/// `n` raw multis from `c` concurrent tasks over one session. Each task owns a disjoint share
/// of the nodes (so no multi loses a version race) and cycles through it.
async fn raw_run(
    client: &Client,
    nodes: &mut Vec<RawNode>,
    prefix: &str,
    c: usize,
    n: usize,
) -> Result<RunStats> {
    let mut shares: Vec<Vec<RawNode>> = (0..c).map(|_| Vec::new()).collect();
    for (j, node) in nodes.drain(..).enumerate() {
        shares[j % c].push(node);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks = shares.into_iter().map(|mut share| {
        let (client, next) = (client.clone(), next.clone());
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut k = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || share.is_empty() {
                    break;
                }
                let t0 = Instant::now();
                let slot = k % share.len();
                k += 1;
                let node = &mut share[slot];
                let request = create_request(format!("{prefix}-{i:05}"), i);
                let spec = spec_of(&request);
                let alloc = allocation_of(&spec);
                let key = WorkloadKey::new(POOL, &spec.name);
                let mut record = node.record.clone();
                record.allocated.add(alloc);
                record.workloads.insert(
                    key.to_string(),
                    PlacedWorkload {
                        app: spec.name.clone(),
                        allocation: alloc,
                    },
                );
                let container = ContainerRecord {
                    version: caas_api::PAYLOAD_VERSION,
                    spec: spec.clone(),
                    app: spec.name.clone(),
                    constraints: Vec::new(),
                    strategy: "spread".into(),
                    node: record.info.node_id.clone(),
                    placement: Placement::Placed,
                    created_at: caas_central::now(),
                };
                let container_data = serde_json::to_vec(&container)?;
                let assignment_data = serde_json::to_vec(&Assignment::run(spec.clone()))?;
                let inventory_data = serde_json::to_vec(&record)?;
                let mut writer = client.new_multi_writer();
                writer.add_create(
                    &raw_path(&format!("/pools/{POOL}/containers/{}", spec.name)),
                    &container_data,
                    &persistent(),
                )?;
                writer.add_create(
                    &raw_path(&format!("/assign/{}/{key}", record.info.node_id)),
                    &assignment_data,
                    &persistent(),
                )?;
                writer.add_set_data(
                    &raw_path(&format!("/inventory/{}", record.info.node_id)),
                    &inventory_data,
                    Some(node.version),
                )?;
                writer.add_check_version(&raw_path(&format!("/pools/{POOL}")), -1)?;
                writer
                    .commit()
                    .await
                    .map_err(|e| anyhow!("raw multi {prefix}-{i:05}: {e}"))?;
                node.record = record;
                node.version += 1;
                latencies.push(t0.elapsed());
            }
            Ok::<_, anyhow::Error>((latencies, share))
        })
    });
    let per_task = try_join_all(tasks).await?;
    let elapsed = started.elapsed();
    let mut latencies = Vec::with_capacity(n);
    for result in per_task {
        let (l, share) = result?;
        latencies.extend(l);
        nodes.extend(share);
    }
    if latencies.len() != n {
        bail!("raw run did {} of {n} multis", latencies.len());
    }
    Ok(stats(n, elapsed, latencies))
}

/// Average latency of `count` sequential calls of `f`.
async fn avg_latency<F, Fut>(count: usize, mut f: F) -> Result<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let started = Instant::now();
    for i in 0..count {
        f(i).await?;
    }
    Ok(started.elapsed() / count.max(1) as u32)
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

struct Verified {
    containers: usize,
    assignments: usize,
    inventory_workloads: usize,
    max_cpu_use: f64,
    max_mem_use: f64,
    record_bytes: (usize, usize, usize),
}

/// Reads back everything central wrote: no inventory record over capacity, allocations equal
/// the sum of their workloads, and records / assignments / inventory entries agree.
async fn verify(client: &Client, layout: &ZkLayout, expected: usize) -> Result<Verified> {
    let nodes = client.list_children(&layout.inventory_root()).await?;
    let records = try_join_all(nodes.iter().map(|n| client.get_data(&layout.inventory(n)))).await?;
    let mut keys = BTreeSet::new();
    let (mut max_cpu_use, mut max_mem_use) = (0f64, 0f64);
    let mut inventory_bytes = 0usize;
    for (name, (data, _)) in nodes.iter().zip(&records) {
        inventory_bytes += data.len();
        let record: NodeRecord =
            serde_json::from_slice(data).with_context(|| format!("inventory record of {name}"))?;
        let cap = record.info.capacity;
        let (mut cpu, mut mem) = (0u64, 0u64);
        for (key, w) in &record.workloads {
            cpu += w.allocation.cpu_millis;
            mem += w.allocation.memory_bytes;
            if !keys.insert(key.clone()) {
                bail!("workload {key} is accounted on two nodes");
            }
        }
        if cpu != record.allocated.cpu_millis || mem != record.allocated.memory_bytes {
            bail!(
                "node {name}: allocated {:?} is not the sum of its workloads ({cpu}m, {mem} B)",
                record.allocated
            );
        }
        if cpu > cap.cpu_millis || mem > cap.memory_bytes {
            bail!("node {name} is over-committed: {cpu}m/{mem} B on {cap:?}");
        }
        max_cpu_use = max_cpu_use.max(cpu as f64 / cap.cpu_millis as f64);
        max_mem_use = max_mem_use.max(mem as f64 / cap.memory_bytes as f64);
    }
    let names = client.list_children(&layout.containers(POOL)).await?;
    let mut record_bytes = 0usize;
    for name in names.iter().take(100) {
        record_bytes += client
            .get_data(&layout.container(POOL, name))
            .await?
            .0
            .len();
    }
    // A node that never got a placement has no assignment directory.
    let assigned = try_join_all(nodes.iter().map(|n| async move {
        match client.list_children(&layout.assign_dir(n)).await {
            Ok(list) => Ok(list),
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }))
    .await?;
    let mut assignments = 0usize;
    let mut assignment_bytes = 0usize;
    let mut sampled = 0usize;
    for (node, list) in nodes.iter().zip(&assigned) {
        assignments += list.len();
        if let Some(first) = list.first().filter(|_| sampled < 100) {
            let key = WorkloadKey::parse(first).map_err(|e| anyhow!("{e}"))?;
            assignment_bytes += client
                .get_data(&layout.assignment(node, &key))
                .await?
                .0
                .len();
            sampled += 1;
        }
    }
    let container_keys: BTreeSet<String> = names
        .iter()
        .map(|n| WorkloadKey::new(POOL, n).to_string())
        .collect();
    if container_keys != keys {
        bail!(
            "container records ({}) and inventory workloads ({}) differ",
            container_keys.len(),
            keys.len()
        );
    }
    if names.len() != expected || assignments != expected {
        bail!(
            "expected {expected} placements, found {} records and {assignments} assignments",
            names.len()
        );
    }
    Ok(Verified {
        containers: names.len(),
        assignments,
        inventory_workloads: keys.len(),
        max_cpu_use,
        max_mem_use,
        record_bytes: (
            record_bytes / names.len().clamp(1, 100),
            assignment_bytes / sampled.max(1),
            inventory_bytes / nodes.len().max(1),
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

struct Row {
    c: usize,
    api: RunStats,
    raw: RunStats,
    api_zk: ZkCounters,
    raw_zk: ZkCounters,
    api_cpu: CpuTimes,
    raw_cpu: CpuTimes,
}

#[tokio::main]
async fn main() -> Result<()> {
    let n = env_usize("CAAS_BENCH_PLACEMENTS", 2000).max(1);
    let node_count = env_usize("CAAS_BENCH_NODES", 1000).max(1);
    let levels = concurrency_levels();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let zk = ZkServer::start_with(ZkProfile::Throughput).await?;
    let zk_addr = zk.connect_string();
    let zk_pid = zk
        .pid()
        .ok_or_else(|| anyhow!("ZooKeeper has no process"))?;
    println!(
        "ZooKeeper standalone on {zk_addr} (forceSync default = yes), data in {}",
        zk.data_dir().display()
    );
    let layout = ZkLayout::new("/caas").map_err(|e| anyhow!("{e}"))?;

    // One session holds every simulated node's ephemeral registration for the whole run.
    let nodes_session = Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&zk_addr)
        .await?;
    nodes_session.mkdir(&layout.nodes(), &persistent()).await?;
    let fleet = fleet(node_count);
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    for chunk in fleet.chunks(100) {
        let creates = chunk.iter().map(|info| {
            let data = serde_json::to_vec(info);
            let path = layout.node(&info.node_id);
            let ephemeral = &ephemeral;
            let nodes_session = &nodes_session;
            async move {
                nodes_session.create(&path, &data?, ephemeral).await?;
                Ok::<_, anyhow::Error>(())
            }
        });
        try_join_all(creates).await?;
    }
    println!("registered {node_count} simulated nodes (pool {POOL:?})");

    // caas-central, in process.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = CentralConfig {
        zk_servers: zk_addr.clone(),
        layout: layout.clone(),
        listen: listener.local_addr()?,
        admin_token: ADMIN_TOKEN.into(),
        agent_token: None,
        lost_grace: Duration::from_secs(30),
        inventory_retention: caas_central::leader::DEFAULT_INVENTORY_RETENTION,
        zk_session_timeout: Duration::from_secs(10),
        console_xterm_dir: None,
    };
    let cancel = CancellationToken::new();
    let _stop_central = cancel.clone().drop_guard();
    let central = tokio::spawn(caas_central::server::run(config, listener, cancel.clone()));

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()?;
    let admin = format!("Bearer {ADMIN_TOKEN}");
    wait::until("central /healthz", Duration::from_secs(60), || async {
        let resp = http.get(format!("{base}/healthz")).send().await?;
        Ok((resp.status() == reqwest::StatusCode::OK).then_some(()))
    })
    .await?;
    wait::until(
        "central to list every node",
        Duration::from_secs(60),
        || async {
            let nodes: Vec<NodeView> = http
                .get(format!("{base}/v1/nodes"))
                .header("authorization", &admin)
                .send()
                .await?
                .json()
                .await?;
            Ok((nodes.len() == node_count).then_some(()))
        },
    )
    .await?;
    // The leader records every node in the inventory; placements before that would race it.
    wait::until(
        "the leader to record every node in the inventory",
        Duration::from_secs(300),
        || async {
            let recorded = nodes_session
                .list_children(&layout.inventory_root())
                .await?;
            Ok((recorded.len() == node_count).then_some(()))
        },
    )
    .await?;
    let resp = http
        .post(format!("{base}/v1/pools"))
        .header("authorization", &admin)
        .json(&CreatePoolRequest {
            name: POOL.into(),
            ssh_keys: Vec::new(),
        })
        .send()
        .await?;
    if resp.status() != reqwest::StatusCode::CREATED {
        bail!(
            "creating pool: HTTP {}: {}",
            resp.status(),
            resp.text().await?
        );
    }
    let token = resp
        .json::<PoolView>()
        .await?
        .token
        .ok_or_else(|| anyhow!("pool creation returned no token"))?;
    println!("central up at {base}; pool {POOL:?} created; inventory complete");
    // Let the caches catch up with the last inventory records and the pool.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Raw reference tree, on its own session like central's.
    let raw_session = Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&zk_addr)
        .await?;
    let mut raw_nodes = raw_setup(&raw_session, &fleet).await?;

    // Warm-up (JIT of the JVM, connection pools, caches): not measured.
    raw_run(&raw_session, &mut raw_nodes, "warm", 8, WARMUP_RAW).await?;
    api_run(&http, &base, &token, "warm", 8, WARMUP_API).await?;
    let mut placed = WARMUP_API;

    // Isolated round-trip costs on one idle session (C = 1).
    let probe = 200;
    let rt_read = avg_latency(probe, |_| async {
        raw_session.get_data(&layout.pool(POOL)).await?;
        Ok(())
    })
    .await?;
    let rt_read_missing = avg_latency(probe, |i| {
        let path = layout.container(POOL, &format!("missing-{i}"));
        let session = &raw_session;
        async move {
            match session.get_data(&path).await {
                Err(ZkError::NoNode) => Ok(()),
                Ok(_) => bail!("{path} exists"),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await?;
    let before_mkdir = ZkCounters::read(zk.addr()).await?;
    let rt_mkdir_existing = avg_latency(probe, |i| {
        let path = layout.assign_dir(&node_id(i % node_count));
        let session = &raw_session;
        async move {
            session.mkdir(&path, &persistent()).await?;
            Ok(())
        }
    })
    .await?;
    let mkdir_zk = ZkCounters::read(zk.addr()).await?.per(before_mkdir, probe);

    let mut rows = Vec::new();
    for &c in &levels {
        let before = ZkCounters::read(zk.addr()).await?;
        let cpu_before = CpuTimes::read(zk_pid)?;
        let raw = raw_run(&raw_session, &mut raw_nodes, &format!("raw-c{c}"), c, n).await?;
        let mid = ZkCounters::read(zk.addr()).await?;
        let cpu_mid = CpuTimes::read(zk_pid)?;
        let api = api_run(&http, &base, &token, &format!("c{c}"), c, n).await?;
        let after = ZkCounters::read(zk.addr()).await?;
        let cpu_after = CpuTimes::read(zk_pid)?;
        placed += n;
        println!(
            "C={c:>3}: API {:>7.1}/s (p50 {:.2} ms, p99 {:.2} ms); raw multi {:>7.1}/s (p50 {:.2} ms, p99 {:.2} ms)",
            api.per_sec,
            ms(api.p50),
            ms(api.p99),
            raw.per_sec,
            ms(raw.p50),
            ms(raw.p99)
        );
        rows.push(Row {
            c,
            api,
            raw,
            api_zk: after.per(mid, n),
            raw_zk: mid.per(before, n),
            api_cpu: cpu_after.per(cpu_mid, n),
            raw_cpu: cpu_mid.per(cpu_before, n),
        });
    }

    let verified = verify(&nodes_session, &layout, placed).await?;

    // CPU central spends per request decoding its cached view (plan_nodes decodes every
    // registration and inventory record of the pool for each placement).
    let regs = try_join_all(
        fleet
            .iter()
            .map(|n| nodes_session.get_data(&layout.node(&n.node_id))),
    )
    .await?;
    let invs = try_join_all(
        fleet
            .iter()
            .map(|n| nodes_session.get_data(&layout.inventory(&n.node_id))),
    )
    .await?;
    let decode_rounds = 50;
    let started = Instant::now();
    for _ in 0..decode_rounds {
        for (data, _) in &regs {
            std::hint::black_box(serde_json::from_slice::<NodeInfo>(data)?);
        }
        for (data, _) in &invs {
            std::hint::black_box(serde_json::from_slice::<NodeRecord>(data)?);
        }
    }
    let decode = started.elapsed() / decode_rounds;

    cancel.cancel();
    central.await?.map_err(|e| anyhow!("central: {e}"))?;
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    println!();
    println!(
        "Placements committed per second through the API: {node_count} registered nodes, \
         {n} placements per row, 1 instance of central, standalone ZooKeeper (fsync on)"
    );
    println!(
        "| C  | API placements/s | API p50 ms | API p99 ms | raw multi/s | raw p50 ms | raw p99 ms | API / raw | ZK requests per placement (raw) | ZK txns per placement (raw) | fsyncs per placement (raw) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.2} ({:.2}) |",
            r.c,
            r.api.per_sec,
            ms(r.api.p50),
            ms(r.api.p99),
            r.raw.per_sec,
            ms(r.raw.p50),
            ms(r.raw.p99),
            r.api.per_sec / r.raw.per_sec,
            r.api_zk.packets,
            r.raw_zk.packets,
            r.api_zk.zxid,
            r.raw_zk.zxid,
            r.api_zk.fsyncs,
            r.raw_zk.fsyncs,
        );
    }
    println!();
    println!(
        "Per placement, API (raw in parentheses): ZooKeeper reads / writes processed; CPU ms of \
         this process (central + HTTP clients; raw: the ZooKeeper client) and of the ZooKeeper JVM:"
    );
    for r in &rows {
        println!(
            "  C={:<3} reads {:.2} ({:.2}), writes {:.2} ({:.2}); CPU ms: bench process {:.2} ({:.2}), ZooKeeper {:.2} ({:.2})",
            r.c,
            r.api_zk.reads,
            r.raw_zk.reads,
            r.api_zk.writes,
            r.raw_zk.writes,
            r.api_cpu.own_ms,
            r.raw_cpu.own_ms,
            r.api_cpu.zk_ms,
            r.raw_cpu.zk_ms
        );
    }
    println!(
        "Isolated round trips on an idle session: get_data {:.3} ms, get_data of a missing \
         znode {:.3} ms, mkdir of an existing directory (what `ensure` does) {:.3} ms \
         = {:.2} txns / {:.2} fsyncs each",
        ms(rt_read),
        ms(rt_read_missing),
        ms(rt_mkdir_existing),
        mkdir_zk.zxid,
        mkdir_zk.fsyncs
    );
    println!(
        "CPU to decode the cached view once ({node_count} registrations + {node_count} \
         inventory records, as plan_nodes does per placement): {:.3} ms",
        ms(decode)
    );
    println!(
        "Verified: {} container records, {} assignments, {} inventory workloads; no node over \
         capacity (max use cpu {:.1}%, memory {:.1}%); average bytes: container record {}, \
         assignment {}, inventory record {}",
        verified.containers,
        verified.assignments,
        verified.inventory_workloads,
        verified.max_cpu_use * 100.0,
        verified.max_mem_use * 100.0,
        verified.record_bytes.0,
        verified.record_bytes.1,
        verified.record_bytes.2
    );
    let best = rows.iter().map(|r| r.api.per_sec).fold(0f64, f64::max);
    println!(
        "Goal: at least {GOAL:.0} placements/s. Best: {best:.0}/s -> {}",
        if best >= GOAL { "MET" } else { "NOT MET" }
    );
    println!(
        "Load average before: {}; after: {}",
        load_before.trim(),
        load_after.trim()
    );
    drop(zk);
    Ok(())
}
