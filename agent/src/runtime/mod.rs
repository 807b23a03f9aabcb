//! The agent's view of a container engine: a small trait in the agent's own terms, so the
//! reconciler can be unit-tested against an in-memory fake and runs against Docker for real.

pub mod docker;
pub mod fake;
pub mod guard;
pub mod host_procs;
pub mod lazy;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use tokio::io::AsyncWrite;

use crate::codes::EngineCode;

pub use docker::DockerRuntime;
pub use guard::ExecGuard;
pub use lazy::LazyDocker;

/// Errors from the container engine, carrying the container or image involved.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the Docker engine is unavailable: {0}")]
    Unavailable(String),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error(
        "image {0:?} is not present on this node (no registry is used: load or build it first)"
    )]
    ImageNotFound(String),
    #[error("container name {0:?} is already taken by a container caas does not manage")]
    NameConflict(String),
    /// The engine called the request itself invalid (HTTP 400): asking again will not help.
    #[error("the engine refused {op} on {target} as invalid (the spec cannot run as written): {message}")]
    RefusedSpec {
        op: &'static str,
        target: String,
        message: String,
    },
    /// Pulling an image failed; `failure` says what kind of failure it was.
    #[error("pulling {reference}: {failure}: {message}")]
    PullFailed {
        reference: String,
        failure: PullFailure,
        message: String,
    },
    /// The node's disk is full (whatever the operation).
    #[error("{op} {target}: the node's disk is full: {message}")]
    DiskFull {
        op: &'static str,
        target: String,
        message: String,
    },
    #[error("the engine refused {op} on {target}: {message}")]
    Refused {
        op: &'static str,
        target: String,
        message: String,
    },
}

impl RuntimeError {
    /// The machine-readable class of the failure (its wire string goes into status znodes).
    pub fn code(&self) -> EngineCode {
        match self {
            Self::Unavailable(_) => EngineCode::Unavailable,
            Self::ContainerNotFound(_) => EngineCode::ContainerNotFound,
            Self::ImageNotFound(_) => EngineCode::ImageNotFound,
            Self::NameConflict(_) => EngineCode::NameConflict,
            Self::Refused { .. } => EngineCode::Refused,
            Self::RefusedSpec { .. } => EngineCode::RefusedSpec,
            Self::DiskFull { .. } => EngineCode::DiskFull,
            Self::PullFailed { failure, .. } => match failure {
                PullFailure::NotFound => EngineCode::ImageNotFound,
                PullFailure::Unreachable => EngineCode::RegistryUnreachable,
                PullFailure::Unauthorized => EngineCode::Unauthorized,
                PullFailure::NoSpace => EngineCode::DiskFull,
                PullFailure::Other => EngineCode::PullFailed,
            },
        }
    }
}

/// What kind of failure ended a pull (from the engine's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullFailure {
    /// The registry has no such repository, tag or digest.
    NotFound,
    /// The registry (or what it fetches from) cannot be reached.
    Unreachable,
    /// The registry refused the credentials (or wants some).
    Unauthorized,
    /// The node's disk filled during the pull.
    NoSpace,
    Other,
}

impl std::fmt::Display for PullFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotFound => "no such image in the registry",
            Self::Unreachable => "the registry cannot be reached",
            Self::Unauthorized => "the registry refused the credentials",
            Self::NoSpace => "the node's disk is full",
            Self::Other => "the pull failed",
        })
    }
}

/// Credentials presented to a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    pub server: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One progress message of a pull as the engine sends it (per layer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullEvent {
    pub layer: Option<String>,
    /// e.g. "Pulling fs layer", "Downloading", "Download complete", "Pull complete".
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// A local image as the engine lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    /// Its tags (`repo:tag`) and digests (`repo@sha256:...`).
    pub names: Vec<String>,
    /// Build time (unix seconds).
    pub created: i64,
    pub size: u64,
}

/// The part a container plays in a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Sandbox,
    Data,
    App,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sandbox => "sandbox",
            Role::Data => "data",
            Role::App => "app",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sandbox" => Some(Role::Sandbox),
            "data" => Some(Role::Data),
            "app" => Some(Role::App),
            _ => None,
        }
    }
}

/// A container carrying this node's caas labels, as listed by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedContainer {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
}

/// Details of one container from inspect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerDetails {
    pub id: String,
    pub name: String,
    pub image: String,
    pub running: bool,
    pub restarting: bool,
    /// Docker's `State.Status` (created, running, exited, ...).
    pub status: String,
    pub started_at: Option<String>,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    pub labels: BTreeMap<String, String>,
    pub nano_cpus: Option<i64>,
    pub memory: Option<i64>,
    pub pids_limit: Option<i64>,
    /// Host pid of the container's main process while it runs.
    pub pid: Option<i64>,
}

/// A command to run in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub user: Option<String>,
    /// Killed after this long.
    pub timeout: Duration,
    /// Bytes kept per stream.
    pub output_limit: usize,
}

/// How an exec ended and what it printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// 124 when it timed out (as `timeout(1)` does).
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
    pub timed_out: bool,
}

/// An interactive command to run in a container: its output is streamed as it is produced and
/// its stdin can be written (a terminal session, a followed log file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecAttachRequest {
    pub command: Vec<String>,
    /// `None`: the image's user.
    pub user: Option<String>,
    /// Allocate a pseudo-terminal: stdout and stderr are one stream, and it can be resized.
    pub tty: bool,
    /// Attach stdin (else writes to the input go nowhere).
    pub stdin: bool,
    /// `NAME=value` pairs added to the container's environment.
    pub env: Vec<String>,
}

/// Bytes as a process or the engine produces them: an exec's output, a followed log. Nothing is
/// read ahead: the next chunk is read from the engine only when the stream is polled again.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, RuntimeError>> + Send>>;

/// Where an attached exec's stdin goes; a write completes when the engine took the bytes.
pub type InputSink = Pin<Box<dyn AsyncWrite + Send>>;

/// A started interactive exec.
pub struct AttachedExec {
    /// The engine's id of the exec (for `resize_exec`, `exec_status`, `kill_exec`).
    pub exec_id: String,
    /// Its output (stdout and stderr), ending when the process closed it.
    pub output: ByteStream,
    pub input: InputSink,
}

impl std::fmt::Debug for AttachedExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachedExec")
            .field("exec_id", &self.exec_id)
            .finish_non_exhaustive()
    }
}

/// The state of an exec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecStatus {
    pub running: bool,
    /// Set once it ended.
    pub exit_code: Option<i64>,
    /// Host pid of its process (also reported for a while after it ended).
    pub pid: Option<i64>,
}

/// What kind of file a path in a container is (its final component not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Other,
}

/// A path in a container as the engine stats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathStat {
    pub kind: FileKind,
    pub size: u64,
}

/// What to create. Resource fields of `None` mean unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateRequest {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    /// `none`, or `container:<id>` to join a sandbox.
    pub network_mode: Option<String>,
    /// Anonymous volumes this container owns (data containers).
    pub volumes: Vec<String>,
    pub volumes_from: Vec<String>,
    pub nano_cpus: Option<i64>,
    pub memory: Option<i64>,
    pub pids_limit: Option<i64>,
    pub restart: RestartMode,
    /// Linux capabilities removed from the engine's default set (`ALL`: none left).
    pub cap_drop: Vec<String>,
    /// `no-new-privileges`: no execve grants more privileges (setuid bits, file capabilities).
    pub no_new_privileges: bool,
    /// Read-only root file system, with a tmpfs on `/tmp`.
    pub read_only_root: bool,
}

/// Engine restart policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartMode {
    #[default]
    No,
    OnFailure,
    Always,
    UnlessStopped,
}

/// The operations the agent needs from a container engine.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Checks the engine answers.
    async fn ping(&self) -> Result<(), RuntimeError>;
    /// All containers (running or not) whose labels include every `label=value` given.
    async fn list(
        &self,
        labels: &[(String, String)],
    ) -> Result<Vec<ManagedContainer>, RuntimeError>;
    async fn inspect(&self, id: &str) -> Result<ContainerDetails, RuntimeError>;
    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        Ok(self.image_labels(image).await?.is_some())
    }
    /// The labels of a local image, or `None` when the image is not present.
    async fn image_labels(
        &self,
        image: &str,
    ) -> Result<Option<BTreeMap<String, String>>, RuntimeError>;
    /// Creates a container and returns its id.
    async fn create(&self, request: &CreateRequest) -> Result<String, RuntimeError>;
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Stops with a grace period; stopping a stopped container is not an error.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;
    /// Removes (forcefully); a missing container is not an error. `volumes` also removes its
    /// anonymous volumes: only ever true for a data container being purged (or one created in
    /// the same failed attempt), so an app removal can never take data with it.
    async fn remove(&self, id: &str, volumes: bool) -> Result<(), RuntimeError>;
    /// The last `tail` lines of stdout and stderr.
    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError>;
    /// Extracts a tar archive into directory `dest` of a container (created or running),
    /// keeping the owners and modes of its entries.
    async fn upload(&self, id: &str, dest: &str, tar: Vec<u8>) -> Result<(), RuntimeError>;
    /// The content of one regular file in a container, or `None` when it does not exist.
    async fn read_file(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>, RuntimeError>;
    /// Runs a command in a running container and waits for it (or kills it at the timeout).
    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput, RuntimeError>;
    /// Starts an interactive command in a running container and hands over its streams. The
    /// caller owns the process: it must `kill_exec` it when it stops caring (nothing else will).
    async fn exec_attach(
        &self,
        id: &str,
        request: &ExecAttachRequest,
    ) -> Result<AttachedExec, RuntimeError>;
    /// Sets the terminal size of an exec started with a TTY.
    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError>;
    /// Whether an exec still runs, its exit code once it ended, its host pid.
    async fn exec_status(&self, exec_id: &str) -> Result<ExecStatus, RuntimeError>;
    /// Ends an exec's processes: its own while it runs, everything it forked, and (with a TTY,
    /// where it leads a session) every process of its terminal session, also after it ended.
    /// They get SIGHUP, and SIGKILL after `grace` when still there (at once for a zero grace).
    /// Nothing left is not an error.
    async fn kill_exec(&self, exec_id: &str, grace: Duration) -> Result<(), RuntimeError>;
    /// A container's stdout and stderr from its last `tail` lines on, followed as it writes
    /// until the container stops (or the stream is dropped).
    async fn follow_logs(&self, id: &str, tail: usize) -> Result<ByteStream, RuntimeError>;
    /// Stats a path in a container (`None` when it does not exist) without starting anything.
    async fn stat_path(&self, id: &str, path: &str) -> Result<Option<PathStat>, RuntimeError>;
    /// Pulls `reference` (`host/repo:tag` or `host/repo@digest`), sending the engine's progress
    /// messages to `progress` as they come.
    async fn pull_image(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: tokio::sync::mpsc::UnboundedSender<PullEvent>,
    ) -> Result<(), RuntimeError>;
    /// Gives the local image `source` the name `target` (`repo:tag`).
    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError>;
    /// Every local image.
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError>;
    /// Removes a local image (every name of it) unless a container uses it: `Ok(false)` then.
    async fn remove_image(&self, id: &str) -> Result<bool, RuntimeError>;
    /// Imports a root filesystem tarball as image `tag`, applying Dockerfile-style `changes`.
    async fn import_image(
        &self,
        tag: &str,
        rootfs_tar: Vec<u8>,
        changes: Vec<String>,
    ) -> Result<(), RuntimeError>;
}
