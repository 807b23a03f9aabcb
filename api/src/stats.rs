//! Resource figures of containers and nodes as agents measure them (cgroup files, the sandbox's
//! `/proc/<pid>/net/dev`, sysinfo): the JSON of the agent's and central's stats routes.

use serde::{Deserialize, Serialize};

/// CPU of one container, cumulative since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    pub usage_seconds: f64,
    pub user_seconds: f64,
    pub system_seconds: f64,
    /// CFS enforcement periods that elapsed, and those in which the container was throttled.
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_seconds: f64,
    /// The CPU limit in cores (quota / period), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_cores: Option<f64>,
}

/// Memory of one container now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    pub usage_bytes: u64,
    /// usage minus inactive file pages (what cAdvisor and `kubectl top` call the working set).
    pub working_set_bytes: u64,
    pub rss_bytes: u64,
    pub cache_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
    /// Times the limit was hit (cgroup v1 `memory.failcnt`, v2 `memory.events` max).
    pub failcnt: u64,
    /// Processes the kernel's OOM killer killed in the container.
    pub oom_kills: u64,
}

/// Block I/O of one container on one device, cumulative.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioStats {
    /// Device name (`vda`), or `major:minor` when the node has no name for it.
    pub device: String,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// Processes of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    pub current: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Counters of one network interface (cumulative).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    pub interface: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Per-second rates between the last two samples of a container (absent after the first
/// sample, or when a counter went backwards: the container was recreated).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerRates {
    /// Cores in use (1.0 = one CPU busy).
    pub cpu_cores: f64,
    /// Share of CFS periods in which the container was throttled (0..1).
    pub cpu_throttled_ratio: f64,
    pub network_rx_bytes_per_second: f64,
    pub network_tx_bytes_per_second: f64,
    pub blkio_read_bytes_per_second: f64,
    pub blkio_write_bytes_per_second: f64,
}

/// One container of a workload (app, sandbox or data) at the latest sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// `app`, `sandbox` or `data`.
    pub role: String,
    pub id: String,
    /// Unix milliseconds of the sample.
    pub timestamp_ms: u64,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    #[serde(default)]
    pub blkio: Vec<BlkioStats>,
    pub pids: PidsStats,
    /// The workload's network namespace (only on the sandbox, which owns it).
    #[serde(default)]
    pub network: Vec<InterfaceStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<ContainerRates>,
}

/// A workload's containers as sampled by its node's agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadStats {
    pub pool: String,
    pub name: String,
    pub node: String,
    pub containers: Vec<ContainerStats>,
}

impl WorkloadStats {
    pub fn role(&self, role: &str) -> Option<&ContainerStats> {
        self.containers.iter().find(|c| c.role == role)
    }

    /// Bytes received and sent on the workload's interfaces other than loopback.
    pub fn network_io(&self) -> (u64, u64) {
        self.containers
            .iter()
            .flat_map(|c| &c.network)
            .filter(|i| i.interface != "lo")
            .fold((0, 0), |(rx, tx), i| (rx + i.rx_bytes, tx + i.tx_bytes))
    }

    /// Bytes read and written on block devices by all the workload's containers.
    pub fn blkio(&self) -> (u64, u64) {
        self.containers
            .iter()
            .flat_map(|c| &c.blkio)
            .fold((0, 0), |(r, w), d| (r + d.read_bytes, w + d.write_bytes))
    }
}

/// One mounted filesystem of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesystemStats {
    pub mountpoint: String,
    pub device: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// A node as its agent sampled it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub node: String,
    pub timestamp_ms: u64,
    pub cpus: u32,
    /// Share of all CPUs busy since the previous sample (0..1).
    pub cpu_usage_ratio: f64,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub memory_available_bytes: u64,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    #[serde(default)]
    pub filesystems: Vec<FilesystemStats>,
    /// The node's interfaces (the agent's network namespace).
    #[serde(default)]
    pub network: Vec<InterfaceStats>,
    /// Workload containers sampled on this node.
    pub containers: usize,
}

/// One node in central's `GET /v1/stats/nodes`: its latest figures, or why its agent did not
/// give them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatsEntry {
    pub node: String,
    pub pool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<NodeStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
