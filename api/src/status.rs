//! `WorkloadStatus`: what an agent observed about one workload, written to
//! `/caas/status/<node>/<pool>.<name>`.

use serde::{Deserialize, Serialize};

use crate::health::{HealthStatus, ProgramStatus};

/// Observed state of a workload on its node. Unknown fields are tolerated: agents may be
/// upgraded before central.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    pub version: u32,
    pub pool: String,
    pub name: String,
    pub node: String,
    pub state: WorkloadState,
    /// Generation of the spec this status describes.
    pub generation: u64,
    pub app_hash: String,
    pub containers: ContainerIds,
    /// Docker's `State.StartedAt` of the app container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<StatusError>,
    /// supervisord programs of a rich container (app, sshd, monitor), from its monitor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramStatus>,
    /// Result of the spec's health check, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// The interfaces wired into the sandbox, as the kernel reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<crate::network::InterfaceStatus>,
    /// The image pull under way before the workload's containers are created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<crate::PullProgress>,
    /// When the agent last wrote this (unix seconds).
    pub observed_at: u64,
}

/// Lifecycle of a workload as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadState {
    /// Accepted, containers being created or started.
    Pending,
    Running,
    /// The app exited and its restart policy does not bring it back.
    Exited,
    /// The spec cannot be run as written (bad image, invalid field); nothing is left behind.
    Failed,
}

/// Docker ids of the containers that make up a workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerIds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// A machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusError {
    pub code: String,
    pub message: String,
    pub at: u64,
}
