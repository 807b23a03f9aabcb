//! Wire types of the central REST API (`/v1/...`) and of the records central keeps in
//! ZooKeeper: pools, container records, node inventory. Shared by `caas-central` and the `caas`
//! CLI so both agree on every field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{NodeInfo, Resources, RestartPolicy, WorkloadSpec, WorkloadStatus};

/// Most replicas one create request may ask for.
pub const MAX_INSTANCES: u32 = 100;

/// `/caas/pools/<pool>`: a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolRecord {
    pub version: u32,
    pub name: String,
    /// SHA-256 (hex) of each ops token issued before tokens had records (they stay valid, as
    /// `ops`, listed by their hash's id); tokens themselves are never stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_hashes: Vec<String>,
    /// The pool's tokens with their roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<crate::roles::PoolToken>,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    pub created_at: u64,
}

/// Body of `POST /v1/pools`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePoolRequest {
    pub name: String,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
}

/// A pool as the API shows it. `token` is present only in the response that created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    pub name: String,
    pub containers: usize,
    pub nodes: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Answer of `POST /v1/pools/{pool}/tokens`: one more token for the pool (shown only once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
    /// The token's public id (list and revoke by it).
    #[serde(default)]
    pub id: String,
    #[serde(default = "ops_role")]
    pub role: crate::roles::Role,
}

fn ops_role() -> crate::roles::Role {
    crate::roles::Role::Ops
}

/// Body of `POST /v1/pools/{pool}/containers`. The pool comes from the path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateContainerRequest {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Replicas: 1 creates `<name>`; N > 1 creates `<name>-1` .. `<name>-N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// Node label constraints, `key==value` or `key!=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// `spread` (default) or `binpack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Run on a rich ("sofa") image with the pool's SSH keys; see `WorkloadSpec::rich`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rich: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<crate::HealthCheck>,
    /// Networks to join, one interface each (`eth0`, `eth1`, ... in this order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<crate::network::NetworkAttachment>,
    /// See `WorkloadSpec::read_only_root`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_root: bool,
}

/// Where a container stands as far as central is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Assigned to `node`.
    Placed,
    /// Its node is lost; it waits for re-placement (stateless) or `reschedule --force` (data).
    Lost,
}

/// `/caas/pools/<pool>/containers/<name>`: central's record of one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRecord {
    pub version: u32,
    pub spec: WorkloadSpec,
    /// Anti-affinity group: replicas created by one request share it.
    pub app: String,
    #[serde(default)]
    pub constraints: Vec<String>,
    pub strategy: String,
    pub node: String,
    pub placement: Placement,
    pub created_at: u64,
}

/// A container as the API shows it: the record plus what the agent last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerView {
    pub pool: String,
    pub name: String,
    pub node: String,
    pub placement: Placement,
    pub spec: WorkloadSpec,
    pub app: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkloadStatus>,
    /// The DNS names and load balancers it takes part in.
    #[serde(
        default,
        skip_serializing_if = "crate::service::ServiceMembership::is_empty"
    )]
    pub services: crate::service::ServiceMembership,
}

/// Resources in scheduler units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    #[serde(default)]
    pub pids: u64,
}

impl Allocation {
    pub fn add(&mut self, other: Allocation) {
        self.cpu_millis = self.cpu_millis.saturating_add(other.cpu_millis);
        self.memory_bytes = self.memory_bytes.saturating_add(other.memory_bytes);
        self.pids = self.pids.saturating_add(other.pids);
    }
    pub fn sub(&mut self, other: Allocation) {
        self.cpu_millis = self.cpu_millis.saturating_sub(other.cpu_millis);
        self.memory_bytes = self.memory_bytes.saturating_sub(other.memory_bytes);
        self.pids = self.pids.saturating_sub(other.pids);
    }
}

/// One workload's share of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedWorkload {
    /// Anti-affinity group.
    pub app: String,
    pub allocation: Allocation,
}

/// Liveness of a node as central tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// Registered (its ephemeral znode exists).
    Ready,
    /// Registration gone, within the grace period.
    Disconnected,
    /// Registration gone for longer than the grace period.
    Lost,
}

/// `/caas/inventory/<node>`: central's persistent knowledge of a node. Every placement
/// updates it with a version check, which is what makes concurrent central instances unable to
/// over-commit a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRecord {
    pub version: u32,
    /// Last registration seen.
    pub info: NodeInfo,
    pub allocated: Allocation,
    /// What is placed here, per workload key (`<pool>.<name>`).
    #[serde(default)]
    pub workloads: BTreeMap<String, PlacedWorkload>,
    pub liveness: Liveness,
    /// Unix seconds of the last liveness change.
    pub since: u64,
}

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: String,
    pub pool: String,
    pub liveness: Liveness,
    pub capacity: crate::Capacity,
    pub allocated: Allocation,
    pub labels: BTreeMap<String, String>,
    pub containers: usize,
    pub api_addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<String>,
    pub agent_version: String,
    /// Whether the node's container engine is usable (new workloads go only to such nodes).
    /// Absent from older centrals' answers, which did not track it.
    #[serde(default = "assume_ready")]
    pub engine_ready: bool,
    /// Which network drivers the node's agent can wire, its uplink, and why a driver is
    /// missing (absent from older centrals' answers).
    #[serde(default)]
    pub networks: crate::network::NetworkSupport,
}

/// Body of `POST /v1/pools/{pool}/containers/{name}/reschedule`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// Re-place even a workload with a data container (its data stays on the lost node).
    #[serde(default)]
    pub force: bool,
}

/// Every API error: a stable machine-readable code, a message for people, and the field at
/// fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

fn assume_ready() -> bool {
    true
}

/// Body of `POST .../containers/{name}/exec` (central) and `POST /v1/containers/{pool}/{name}/exec`
/// (agent): a command run in the app container, non-interactively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// User to run as (`admin`, `root`, `uid:gid`); the image's user when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Killed (exit code 124) when it runs longer; default 60, at most 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// Longest an exec may run.
pub const MAX_EXEC_SECONDS: u32 = 3600;
/// Output kept per stream of an exec; the rest is dropped and `truncated` set.
pub const MAX_EXEC_OUTPUT: usize = 1 << 20;

impl ExecRequest {
    pub fn validate(&self) -> Result<(), crate::ValidationError> {
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(crate::ValidationError::new(
                "command",
                "needs a program to run, e.g. [\"ls\", \"-l\", \"/home/admin/logs\"]",
            ));
        }
        if let Some(t) = self.timeout_seconds {
            if t == 0 || t > MAX_EXEC_SECONDS {
                return Err(crate::ValidationError::new(
                    "timeout_seconds",
                    format!("must be 1..={MAX_EXEC_SECONDS}"),
                ));
            }
        }
        Ok(())
    }
}

/// What an exec printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// Which instance ran it.
    pub name: String,
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub timed_out: bool,
}

/// What a deploy did to one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployResult {
    pub name: String,
    /// sha256 of the package now in `/home/admin/release/run/app.tgz`.
    pub package_sha256: String,
    /// The start script found in the package.
    pub start_script: String,
    /// The `app` program after the restart (RUNNING, or BACKOFF/FATAL with the reason).
    pub program: crate::ProgramStatus,
    /// `State.StartedAt` of the container, unchanged by a deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_started_at: Option<String>,
}

/// Body of `PUT /v1/pools/{pool}/ssh-keys`: the pool's SSH public keys, replacing the old ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshKeysRequest {
    pub ssh_keys: Vec<String>,
}

/// What `PUT /v1/pools/{pool}/ssh-keys` changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKeysView {
    pub pool: String,
    pub ssh_keys: Vec<String>,
    /// Rich containers whose running instances get the new keys in place.
    pub containers_updated: usize,
}

/// Checks that each key is one OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
pub fn validate_ssh_keys(field: &str, keys: &[String]) -> Result<(), crate::ValidationError> {
    for (i, key) in keys.iter().enumerate() {
        let mut parts = key.split_whitespace();
        let kind = parts.next().unwrap_or("");
        let blob = parts.next().unwrap_or("");
        let known =
            kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
        if !known || !blob.starts_with("AAAA") || key.contains('\n') {
            return Err(crate::ValidationError::new(
                format!("{field}[{i}]"),
                "not an OpenSSH public key line: paste the one line of your .pub file \
                 (ssh-ed25519 AAAA... comment)",
            ));
        }
    }
    Ok(())
}
