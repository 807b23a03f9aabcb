//! Scheduler benchmark: sampling vs full scan on a simulated 10,000-node fleet.
//!
//! A custom `main` (no criterion harness) because the interesting outputs are not only timings
//! but also packing quality over one long sequence of placements that mutate the fleet.
//! Run with `cargo bench -p caas-central --bench scheduler`. Environment overrides, for tuning:
//! `SCHED_PLACEMENTS`, `SCHED_FULL_SCAN_SPREAD`, `SCHED_MIN`, `SCHED_SPREAD_PER_LOG2`,
//! `SCHED_BINPACK_PER_LOG2`, `SCHED_BINPACK_FRONTS`, `SCHED_SEED`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use caas_central::scheduler::{
    place_full_scan, place_with, Constraint, ConstraintError, NodeView, Placement,
    PlacementRequest, Resources, SamplingConfig, Strategy,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: usize = 10_000;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Heterogeneous fleet: 8/16/32/64 cores, 4 or 8 GiB per core (32-512 GiB), most nodes with
/// rack and zone labels, a quarter with SSDs, some with a known pid limit.
fn fleet(rng: &mut StdRng) -> Vec<NodeView> {
    (0..NODES)
        .map(|i| {
            let cores: u64 = [8, 16, 32, 64][rng.random_range(0..4)];
            let gib_per_core: u64 = if rng.random_bool(0.5) { 4 } else { 8 };
            let mut labels = BTreeMap::new();
            if rng.random_bool(0.8) {
                labels.insert("rack".into(), format!("r{}", rng.random_range(1..=20)));
            }
            if rng.random_bool(0.9) {
                labels.insert(
                    "zone".into(),
                    ["a", "b", "c"][rng.random_range(0..3)].into(),
                );
            }
            if rng.random_bool(0.25) {
                labels.insert("ssd".into(), "true".into());
            }
            NodeView {
                id: format!("node-{i:05}"),
                pool: "prod".into(),
                ready: rng.random_bool(0.99),
                capacity: Resources {
                    cpu_millis: cores * 1000,
                    memory_bytes: cores * gib_per_core * GIB,
                    pids: if rng.random_bool(0.5) { 0 } else { 32_768 },
                },
                allocated: Resources::default(),
                labels,
                apps: BTreeMap::new(),
                drivers: Vec::new(),
            }
        })
        .collect()
}

/// Heterogeneous requests: mostly small, a few big; ~30% constrained; ~30% in an app group of
/// about ten replicas.
fn requests(rng: &mut StdRng, count: usize) -> Result<Vec<PlacementRequest>, ConstraintError> {
    const SIZES: [(u64, u64); 7] = [
        (100, 256 * MIB),
        (250, 512 * MIB),
        (500, GIB),
        (1000, 2 * GIB),
        (2000, 6 * GIB),
        (4000, 16 * GIB),
        (8000, 32 * GIB),
    ];
    const WEIGHTS: [u32; 7] = [15, 20, 25, 20, 10, 7, 3];
    let total: u32 = WEIGHTS.iter().sum();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut pick = rng.random_range(0..total);
        let size = WEIGHTS
            .iter()
            .zip(SIZES)
            .find_map(|(&w, s)| {
                if pick < w {
                    Some(s)
                } else {
                    pick -= w;
                    None
                }
            })
            .unwrap_or(SIZES[0]);
        let constraints = match rng.random_range(0..100) {
            0..10 => vec!["zone==a"],
            10..20 => vec!["ssd==true"],
            20..25 => vec!["rack!=r3"],
            25..28 => vec!["zone==b", "ssd==true"],
            _ => vec![],
        };
        let app = rng
            .random_bool(0.3)
            .then(|| format!("app-{}", rng.random_range(0..3000)));
        out.push(PlacementRequest {
            pool: "prod".into(),
            request: Resources {
                cpu_millis: size.0,
                memory_bytes: size.1,
                pids: rng.random_range(100..1000),
            },
            constraints: constraints
                .into_iter()
                .map(Constraint::parse)
                .collect::<Result<_, _>>()?,
            app,
            strategy: Strategy::Spread,
            drivers: Vec::new(),
            pinned: None,
        });
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Sampling(SamplingConfig),
    FullScan,
}

struct Run {
    placed: usize,
    failed: usize,
    /// Time spent inside the scheduler only (not applying the placement to the fleet).
    busy: Duration,
    latencies_ns: Vec<u64>,
    nodes_used: usize,
    /// Cores of the nodes in use: "nodes used" alone favours whoever happens to use big nodes.
    used_cores: u64,
    cpu_fill: f64,
    /// Highest cpu utilisation of any node: what Spread tries to keep low.
    max_node_util: f64,
}

fn commit(nodes: &mut [NodeView], req: &PlacementRequest, p: &Placement) {
    let Some(n) = nodes.get_mut(p.node) else {
        return;
    };
    n.allocated.cpu_millis += req.request.cpu_millis;
    n.allocated.memory_bytes += req.request.memory_bytes;
    n.allocated.pids += req.request.pids;
    if let Some(app) = &req.app {
        *n.apps.entry(app.clone()).or_default() += 1;
    }
}

fn run(
    base: &[NodeView],
    reqs: &[PlacementRequest],
    strategy: Strategy,
    mode: Mode,
    seed: u64,
) -> Run {
    let mut nodes = base.to_vec();
    let mut rng = StdRng::seed_from_u64(seed + 1);
    let mut latencies_ns = Vec::with_capacity(reqs.len());
    let (mut placed, mut failed) = (0, 0);
    let mut busy = Duration::ZERO;
    for req in reqs {
        let req = PlacementRequest {
            strategy,
            ..req.clone()
        };
        let t = Instant::now();
        let result = match mode {
            Mode::Sampling(config) => place_with(&req, &nodes, &mut rng, config),
            Mode::FullScan => place_full_scan(&req, &nodes),
        };
        let dt = t.elapsed();
        busy += dt;
        latencies_ns.push(dt.as_nanos() as u64);
        match result {
            Ok(p) => {
                placed += 1;
                commit(&mut nodes, &req, &p);
            }
            Err(_) => failed += 1,
        }
    }
    latencies_ns.sort_unstable();
    let used: u64 = nodes.iter().map(|n| n.allocated.cpu_millis).sum();
    let cap: u64 = nodes.iter().map(|n| n.capacity.cpu_millis).sum();
    let in_use = || nodes.iter().filter(|n| n.allocated != Resources::default());
    Run {
        placed,
        failed,
        busy,
        latencies_ns,
        nodes_used: in_use().count(),
        used_cores: in_use().map(|n| n.capacity.cpu_millis / 1000).sum(),
        cpu_fill: used as f64 / cap.max(1) as f64,
        max_node_util: nodes
            .iter()
            .map(|n| n.allocated.cpu_millis as f64 / n.capacity.cpu_millis.max(1) as f64)
            .fold(0.0, f64::max),
    }
}

impl Run {
    fn per_second(&self) -> f64 {
        self.latencies_ns.len() as f64 / self.busy.as_secs_f64().max(1e-9)
    }

    fn percentile_us(&self, p: f64) -> f64 {
        let n = self.latencies_ns.len();
        if n == 0 {
            return 0.0;
        }
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
        self.latencies_ns.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }

    fn print(&self, label: &str, count: usize) {
        println!(
            "{label:<28} {count:>7} placements  {:>10.0} placements/s  p50 {:>8.1} us  p99 {:>8.1} us  \
             placed {:>6}  failed {:>4}  nodes used {:>5} ({:>6} cores)  cpu fill {:>4.1}%  busiest node {:>5.1}%",
            self.per_second(),
            self.percentile_us(0.50),
            self.percentile_us(0.99),
            self.placed,
            self.failed,
            self.nodes_used,
            self.used_cores,
            self.cpu_fill * 100.0,
            self.max_node_util * 100.0
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "NOT MET"
    }
}

fn main() -> Result<(), ConstraintError> {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, so keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let placements = env_usize("SCHED_PLACEMENTS", if quick { 2_000 } else { 100_000 });
    let seed = env_usize("SCHED_SEED", 0x5eed) as u64;
    let full_spread = env_usize("SCHED_FULL_SCAN_SPREAD", 10_000).min(placements);
    let defaults = SamplingConfig::default();
    let config = SamplingConfig {
        min_candidates: env_usize("SCHED_MIN", defaults.min_candidates),
        spread_per_log2: env_usize("SCHED_SPREAD_PER_LOG2", defaults.spread_per_log2),
        binpack_per_log2: env_usize("SCHED_BINPACK_PER_LOG2", defaults.binpack_per_log2),
        binpack_fronts: env_usize("SCHED_BINPACK_FRONTS", defaults.binpack_fronts),
    };

    let mut rng = StdRng::seed_from_u64(seed);
    let nodes = fleet(&mut rng);
    let reqs = requests(&mut rng, placements)?;
    println!("caas scheduler benchmark (single thread, seed {seed:#x})");
    println!(
        "fleet: {NODES} nodes in one pool (8/16/32/64 cores, 32-512 GiB, rack/zone/ssd labels, 1% not ready)"
    );
    println!(
        "requests: {placements} heterogeneous (100m-8 cores, 256 MiB-32 GiB; 28% constrained, 30% in app groups), \
         applied sequentially"
    );
    println!(
        "sampling: {config:?} -> K = {} feasible candidates (spread), {} (binpack)",
        config.candidates(NODES, Strategy::Spread),
        config.candidates(NODES, Strategy::Binpack)
    );
    println!();

    let prefix = &reqs[..full_spread];
    let sample_bin = run(
        &nodes,
        &reqs,
        Strategy::Binpack,
        Mode::Sampling(config),
        seed,
    );
    sample_bin.print("binpack  sampling", placements);
    let full_bin = run(&nodes, &reqs, Strategy::Binpack, Mode::FullScan, seed);
    full_bin.print("binpack  full scan", placements);
    let sample_spread = run(
        &nodes,
        &reqs,
        Strategy::Spread,
        Mode::Sampling(config),
        seed,
    );
    sample_spread.print("spread   sampling", placements);
    let sample_spread_prefix = run(
        &nodes,
        prefix,
        Strategy::Spread,
        Mode::Sampling(config),
        seed,
    );
    sample_spread_prefix.print("spread   sampling (prefix)", full_spread);
    let full_spread_run = run(&nodes, prefix, Strategy::Spread, Mode::FullScan, seed);
    full_spread_run.print("spread   full scan (prefix)", full_spread);
    println!(
        "(the spread full scan runs only the first {full_spread} placements of the same sequence to \
         keep the benchmark short; throughput and latency are per placement, so the ratio is fair; \
         sampling is also run on that prefix to compare spread quality)"
    );
    println!();

    let bin_ratio = sample_bin.per_second() / full_bin.per_second();
    let spread_ratio = sample_spread.per_second() / full_spread_run.per_second();
    let packing = sample_bin.nodes_used as f64 / full_bin.nodes_used.max(1) as f64 - 1.0;
    let slowest = sample_bin.per_second().min(sample_spread.per_second());
    println!(
        "throughput ratio sampling/full scan: binpack {bin_ratio:.1}x, spread {spread_ratio:.1}x"
    );
    println!(
        "packing (binpack, same {placements} placements): sampling uses {} nodes, full scan {} ({:+.2}%)",
        sample_bin.nodes_used,
        full_bin.nodes_used,
        packing * 100.0
    );
    println!(
        "  by capacity: sampling uses nodes with {} cores, full scan {} ({:+.2}%); failed placements: \
         sampling {}, full scan {}",
        sample_bin.used_cores,
        full_bin.used_cores,
        (sample_bin.used_cores as f64 / full_bin.used_cores.max(1) as f64 - 1.0) * 100.0,
        sample_bin.failed,
        full_bin.failed
    );
    println!(
        "spread quality (first {full_spread} placements): busiest node at {:.1}% cpu with sampling, \
         {:.1}% with full scan",
        sample_spread_prefix.max_node_util * 100.0,
        full_spread_run.max_node_util * 100.0
    );
    println!();
    println!("goals:");
    println!(
        "  >= 20,000 placements/s on one core: {} ({slowest:.0}/s, slower of binpack and spread)",
        verdict(slowest >= 20_000.0)
    );
    println!(
        "  >= 10x the full scan:              {} (binpack {bin_ratio:.1}x, spread {spread_ratio:.1}x)",
        verdict(bin_ratio >= 10.0 && spread_ratio >= 10.0)
    );
    println!(
        "  packing within 3% of full scan:    {} ({:+.2}% nodes used)",
        verdict(packing <= 0.03),
        packing * 100.0
    );
    Ok(())
}
