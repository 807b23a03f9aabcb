//! Node figures: CPU use, memory and load from sysinfo, mounted filesystems from sysinfo's
//! disk list, and the node's interfaces from `/proc/net/dev` of the agent's own network
//! namespace (the node's, as the agent runs in it). The sampler keeps sysinfo's state between
//! sweeps, since CPU use is a difference between two refreshes.

use caas_api::stats::{FilesystemStats, NodeStats};
use sysinfo::{Disks, System};

/// Samples this node; one per collector.
pub struct NodeSampler {
    node_id: String,
    system: Option<System>,
    disks: Option<Disks>,
    sweeps: u64,
}

/// The mount list is read again every this many samples (mounts rarely change; reading it
/// `statvfs`es every container's overlay mount too).
const DISK_RELIST_EVERY: u64 = 6;

/// Filesystems of the node itself, not of containers or kernel pseudo mounts.
fn node_filesystem(mountpoint: &std::path::Path) -> bool {
    let m = mountpoint.to_string_lossy();
    !(m.contains("/docker/")
        || m.contains("/containers/")
        || ["/proc", "/sys", "/dev", "/run"]
            .iter()
            .any(|p| m == *p || m.starts_with(&format!("{p}/"))))
}

impl std::fmt::Debug for NodeSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSampler")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl NodeSampler {
    pub fn new(node_id: &str) -> Self {
        let system = match System::new() {
            Ok(mut s) => {
                s.refresh_cpu_usage();
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sysinfo cannot read this node; node CPU and memory stay empty");
                None
            }
        };
        let disks = Disks::new_with_refreshed_list()
            .map_err(|e| tracing::debug!(error = %e, "sysinfo cannot list filesystems"))
            .ok();
        Self {
            node_id: node_id.to_string(),
            system,
            disks,
            sweeps: 0,
        }
    }

    /// One sample; `containers` is how many containers the same sweep read.
    pub fn sample(&mut self, timestamp_ms: u64, containers: usize) -> NodeStats {
        let mut out = NodeStats {
            node: self.node_id.clone(),
            timestamp_ms,
            containers,
            ..Default::default()
        };
        if let Some(system) = self.system.as_mut() {
            system.refresh_cpu_usage();
            system.refresh_memory();
            out.cpus = u32::try_from(system.cpus().len()).unwrap_or(u32::MAX);
            out.cpu_usage_ratio = f64::from(system.global_cpu_usage() / 100.0).clamp(0.0, 1.0);
            out.memory_total_bytes = system.total_memory();
            out.memory_used_bytes = system.used_memory();
            out.memory_available_bytes = system.available_memory();
        }
        if let Ok(load) = System::load_average() {
            (out.load1, out.load5, out.load15) = (load.one, load.five, load.fifteen);
        }
        if let Some(disks) = self.disks.as_mut() {
            if self.sweeps.is_multiple_of(DISK_RELIST_EVERY) {
                disks.refresh(true);
            } else {
                for d in disks.iter_mut() {
                    if node_filesystem(d.mount_point()) {
                        let _ = d.refresh();
                    }
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            for d in disks.iter().filter(|d| node_filesystem(d.mount_point())) {
                let mountpoint = d.mount_point().display().to_string();
                if seen.insert(mountpoint.clone()) {
                    out.filesystems.push(FilesystemStats {
                        mountpoint,
                        device: d.name().to_string_lossy().into_owned(),
                        total_bytes: d.total_space(),
                        available_bytes: d.available_space(),
                    });
                }
            }
        }
        self.sweeps += 1;
        out.network = std::fs::read_to_string("/proc/self/net/dev")
            .map(|t| super::parse::net_dev(&t))
            .unwrap_or_default();
        out
    }
}
