//! `Assignment`: the payload of `/caas/assign/<node>/<pool>.<name>`: the spec a node must run,
//! or the instruction to purge a workload's data.

use serde::{Deserialize, Serialize};

use crate::WorkloadSpec;

/// What a node must do about one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    #[serde(default = "crate::payload_version")]
    pub version: u32,
    #[serde(default)]
    pub desired: Desired,
    pub spec: WorkloadSpec,
    /// The pool's SSH public keys, for rich containers (`admin`'s authorized keys). Outside the
    /// spec: changing a pool's keys updates running containers in place, never recreates them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
}

/// `run` keeps the workload running. `purge` removes every container of the workload, its data
/// container included; the agent then deletes the assignment and status znodes itself.
/// Deleting the assignment znode instead removes app and sandbox but keeps the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Desired {
    #[default]
    Run,
    Purge,
}

impl Assignment {
    pub fn run(spec: WorkloadSpec) -> Self {
        Self {
            version: crate::PAYLOAD_VERSION,
            desired: Desired::Run,
            spec,
            ssh_authorized_keys: Vec::new(),
        }
    }
    /// A run assignment carrying the pool's SSH keys when the spec is rich.
    pub fn run_with_keys(spec: WorkloadSpec, pool_keys: &[String]) -> Self {
        let keys = if spec.rich {
            pool_keys.to_vec()
        } else {
            Vec::new()
        };
        Self {
            ssh_authorized_keys: keys,
            ..Self::run(spec)
        }
    }
    pub fn purge(spec: WorkloadSpec) -> Self {
        Self {
            version: crate::PAYLOAD_VERSION,
            desired: Desired::Purge,
            spec,
            ssh_authorized_keys: Vec::new(),
        }
    }
}
