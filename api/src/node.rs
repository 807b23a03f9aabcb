//! `NodeInfo`: what an agent announces in its ephemeral `/caas/nodes/<node>` registration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A node's registration. The znode being there means "alive"; its content describes the node.
/// Unknown fields are tolerated (not denied): agents may be upgraded before central, and a
/// registration central cannot fully read must still count as "alive".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub version: u32,
    pub node_id: String,
    pub pool: String,
    /// `host:port` of the agent's HTTP API.
    pub api_addr: String,
    /// Underlay (VTEP) address used by overlay networks, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<String>,
    pub capacity: Capacity,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub agent_version: String,
    /// The kernel hostname of the machine, for people reading `node ls`.
    pub hostname: String,
    /// When this agent process started (unix seconds).
    pub started_at: u64,
    /// Whether the agent's container engine answers and is usable. A registered node whose
    /// engine is down is alive but must not receive new workloads. Absent in older payloads.
    #[serde(default = "engine_ready_default")]
    pub engine_ready: bool,
    /// Which network drivers this node can wire (absent in older payloads: none).
    #[serde(default)]
    pub networks: crate::network::NetworkSupport,
}

/// Allocatable resources of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

fn engine_ready_default() -> bool {
    true
}
