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
        }
    }
    pub fn purge(spec: WorkloadSpec) -> Self {
        Self {
            version: crate::PAYLOAD_VERSION,
            desired: Desired::Purge,
            spec,
        }
    }
}
