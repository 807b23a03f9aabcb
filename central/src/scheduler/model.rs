//! The scheduler's input and output types: nodes as central sees them, requests, placements.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use caas_api::network::NetworkDriver;

use super::constraint::Constraint;

/// An amount of the resources the scheduler accounts for.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// As a capacity, 0 means unknown/unlimited: agents that cannot report a pid limit must not
    /// make their node unschedulable.
    pub pids: u64,
}

/// One node as central sees it (built from the ZooKeeper registration and assignments).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeView {
    pub id: String,
    pub pool: String,
    /// Registered and not disconnected/lost.
    pub ready: bool,
    /// Allocatable resources.
    pub capacity: Resources,
    /// Sum of the requests of the workloads placed on the node.
    pub allocated: Resources,
    pub labels: BTreeMap<String, String>,
    /// App group -> number of replicas of that app already on the node (for anti-affinity).
    pub apps: BTreeMap<String, u32>,
    /// Network drivers the node's agent can wire.
    pub drivers: Vec<NetworkDriver>,
}

/// How to choose among the nodes that fit.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Prefer the least-utilised node: failures hit fewer replicas, noisy neighbours are rarer.
    #[default]
    Spread,
    /// Prefer the most-utilised node: fills nodes one after the other, leaving whole nodes free
    /// for big workloads and for draining.
    Binpack,
}

/// What one workload needs from a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlacementRequest {
    pub pool: String,
    pub request: Resources,
    pub constraints: Vec<Constraint>,
    /// Anti-affinity group: replicas of one app avoid sharing a node.
    pub app: Option<String>,
    pub strategy: Strategy,
    /// Network drivers the workload's interfaces need.
    pub drivers: Vec<NetworkDriver>,
    /// The node a bridge network the workload joins already lives on (bridge networks are
    /// single-node): `(network, node)`.
    pub pinned: Option<(String, String)>,
}

/// The chosen node.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// Index into the `nodes` slice given to the scheduler.
    pub node: usize,
    pub node_id: String,
    /// Higher is better; only comparable between placements of the same request.
    pub score: f64,
}
