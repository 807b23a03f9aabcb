//! The stats collector: every housekeeping interval one sweep reads the cgroup files of every
//! container of the workloads this agent runs (app, sandbox, data: ids from the statuses the
//! reconcile loop last observed, so no Docker call on the hot path), the sandbox's
//! `/proc/<pid>/net/dev`, and the node's figures; rates come from consecutive samples. The
//! latest snapshot is shared with `/metrics` and the JSON stats routes. A container whose
//! cgroup is gone, unreadable or malformed is left out of that sweep, so no series outlives
//! its container.

pub mod cgroup;
pub mod http;
pub mod node;
pub mod parse;
mod rates;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use caas_api::stats::{BlkioStats, ContainerStats, NodeStats, WorkloadStats};
use caas_api::WorkloadKey;
use tokio_util::sync::CancellationToken;

pub use cgroup::{CgroupError, CgroupLayout};
pub use node::NodeSampler;

use crate::view::AgentView;

/// The latest sweep.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub workloads: BTreeMap<WorkloadKey, WorkloadStats>,
    pub node: Option<NodeStats>,
    /// How long the last sweep took (wall).
    pub sweep_seconds: f64,
}

/// Shared handle to the latest snapshot (cheap to clone).
#[derive(Debug, Default, Clone)]
pub struct StatsBook {
    latest: Arc<RwLock<Arc<Snapshot>>>,
}

impl StatsBook {
    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn publish(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.latest.write() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }
}

/// One container to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub key: WorkloadKey,
    pub role: &'static str,
    pub id: String,
}

/// The containers of the workloads in `view`'s statuses.
pub async fn targets(view: &AgentView) -> Vec<Target> {
    let state = view.read().await;
    let mut out = Vec::new();
    for (key, status) in &state.statuses {
        let c = &status.containers;
        for (role, id) in [("app", &c.app), ("sandbox", &c.sandbox), ("data", &c.data)] {
            if let Some(id) = id {
                out.push(Target {
                    key: key.clone(),
                    role,
                    id: id.clone(),
                });
            }
        }
    }
    out
}

/// Reads everything one sweep needs; holds the state kept between sweeps (cgroup paths,
/// previous samples for rates, sysinfo).
#[derive(Debug)]
pub struct Sweeper {
    layout: Option<CgroupLayout>,
    /// Where `<pid>/net/dev` is read (`/proc`).
    proc_root: PathBuf,
    node_id: String,
    node: Option<NodeSampler>,
    /// cgroup path per container id.
    paths: HashMap<String, String>,
    previous: HashMap<String, rates::Previous>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Sweeper {
    /// A sweeper for this host (layout detected from the mount table).
    pub fn for_host(node_id: &str) -> Self {
        let layout = CgroupLayout::detect();
        match &layout {
            Some(l) => tracing::info!(version = l.version(), layout = ?l, "cgroup layout"),
            None => tracing::warn!(
                "no cgroup filesystem is mounted; container stats stay empty (node stats still work)"
            ),
        }
        let mut s = Self::new(layout, PathBuf::from("/proc"), node_id);
        s.node = Some(NodeSampler::new(node_id));
        s
    }

    /// A sweeper on a given layout and proc root, without node figures (tests, benches).
    pub fn new(layout: Option<CgroupLayout>, proc_root: PathBuf, node_id: &str) -> Self {
        Self {
            layout,
            proc_root,
            node_id: node_id.to_string(),
            node: None,
            paths: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    /// One sweep over `targets` (blocking file reads: run it off the async workers).
    pub fn sweep(&mut self, targets: &[Target]) -> Snapshot {
        let started = Instant::now();
        let now = Instant::now();
        let timestamp_ms = unix_ms();
        let devices = std::fs::read_to_string("/proc/partitions")
            .map(|t| parse::partitions(&t))
            .unwrap_or_default();
        let mut workloads: BTreeMap<WorkloadKey, WorkloadStats> = BTreeMap::new();
        let mut sampled = 0;
        for target in targets {
            let Some(mut stats) = self.container(target, timestamp_ms, &devices) else {
                continue;
            };
            stats.rates = self
                .previous
                .get(&target.id)
                .and_then(|p| rates::between(p, &stats, now));
            self.previous
                .insert(target.id.clone(), rates::Previous::of(&stats, now));
            sampled += 1;
            workloads
                .entry(target.key.clone())
                .or_insert_with(|| WorkloadStats {
                    pool: target.key.pool.clone(),
                    name: target.key.name.clone(),
                    node: self.node_id.clone(),
                    containers: Vec::new(),
                })
                .containers
                .push(stats);
        }
        // Containers that are gone are forgotten: their next incarnation starts afresh.
        let live: std::collections::HashSet<&str> = targets.iter().map(|t| t.id.as_str()).collect();
        self.paths.retain(|id, _| live.contains(id.as_str()));
        self.previous.retain(|id, _| live.contains(id.as_str()));
        let node = self.node.as_mut().map(|n| n.sample(timestamp_ms, sampled));
        Snapshot {
            workloads,
            node,
            sweep_seconds: started.elapsed().as_secs_f64(),
        }
    }

    fn container(
        &mut self,
        target: &Target,
        timestamp_ms: u64,
        devices: &BTreeMap<String, String>,
    ) -> Option<ContainerStats> {
        let layout = self.layout.as_ref()?;
        let rel = match self.paths.get(&target.id) {
            Some(rel) => rel.clone(),
            None => {
                let rel = layout.find(&target.id)?;
                self.paths.insert(target.id.clone(), rel.clone());
                rel
            }
        };
        let raw = match layout.read(&rel) {
            Ok(raw) => raw,
            Err(e) => {
                if !matches!(e, CgroupError::Gone(_)) {
                    tracing::debug!(container = %target.id, error = %e, "skipping a container this sweep");
                }
                // Stopped or removed: look its cgroup up again next time.
                self.paths.remove(&target.id);
                return None;
            }
        };
        let network = if target.role == "sandbox" {
            raw.first_pid
                .and_then(|pid| {
                    std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("net/dev"))
                        .ok()
                })
                .map(|t| parse::net_dev(&t))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let blkio = raw
            .blkio
            .iter()
            .map(|(dev, (bytes, ops))| BlkioStats {
                device: devices.get(dev).cloned().unwrap_or_else(|| dev.clone()),
                read_bytes: bytes.read,
                write_bytes: bytes.write,
                reads: ops.read,
                writes: ops.write,
            })
            .collect();
        Some(ContainerStats {
            role: target.role.to_string(),
            id: target.id.clone(),
            timestamp_ms,
            cpu: raw.cpu,
            memory: raw.memory,
            blkio,
            pids: raw.pids,
            network,
            rates: None,
        })
    }
}

/// Sweeps every `interval` until cancelled, publishing each snapshot into `book`.
pub async fn run_collector(
    book: StatsBook,
    view: AgentView,
    node_id: String,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut sweeper = Some(Sweeper::for_host(&node_id));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(mut s) = sweeper.take() else { return };
        let targets = targets(&view).await;
        match tokio::task::spawn_blocking(move || {
            let snapshot = s.sweep(&targets);
            (s, snapshot)
        })
        .await
        {
            Ok((s, snapshot)) => {
                sweeper = Some(s);
                book.publish(snapshot);
            }
            Err(e) => {
                tracing::warn!(error = %e, "a stats sweep failed; starting over");
                sweeper = Some(Sweeper::for_host(&node_id));
            }
        }
    }
}

#[cfg(test)]
mod tests;
