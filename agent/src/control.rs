//! The agent's control operations on running workloads, asked for by central (never by
//! ZooKeeper state): `exec` a command in the app container and `deploy` an app package into a
//! rich container, restarting only its supervisord `app` program.

use std::collections::BTreeSet;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use caas_api::central::{DeployResult, ExecRequest, ExecResult, MAX_EXEC_OUTPUT};
use caas_api::{ProgramStatus, WorkloadKey};

use crate::codes::HttpErrorCode;
use crate::rich::{self, APP_PROGRAM, MONITOR_STATUS};
use crate::runtime::{self, ContainerRuntime};
use crate::view::AgentView;

/// Longest a deploy waits for the restarted app to settle (RUNNING or FATAL).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Workloads with a deploy under way: a second deploy to the same one is refused, so two
/// packages never race over one `app.tgz` and one restart.
static DEPLOYING: LazyLock<Mutex<BTreeSet<WorkloadKey>>> =
    LazyLock::new(|| Mutex::new(BTreeSet::new()));

/// Holds a workload's deploy slot until dropped.
struct DeploySlot(WorkloadKey);

impl DeploySlot {
    fn take(key: &WorkloadKey) -> Result<Self, ControlError> {
        let mut set = DEPLOYING.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(key.clone()) {
            return Err(ControlError::Busy(key.clone()));
        }
        Ok(Self(key.clone()))
    }
}

impl Drop for DeploySlot {
    fn drop(&mut self) {
        DEPLOYING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

/// What the control endpoints take from the configuration.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// Bearer token central must send on every `/v1` route; the `/v1` API is off without one.
    pub token: Option<String>,
    /// The most a deploy package may unpack to, in bytes.
    pub max_unpacked: u64,
    /// Limits of terminal sessions.
    pub terminal: crate::terminal::TerminalOptions,
    /// Cancelled when the agent stops: terminal sessions and streamed logs end (their execs
    /// killed), so the HTTP server's graceful shutdown does not wait for them forever.
    pub stop: tokio_util::sync::CancellationToken,
    /// Where sessions and exec endings run; the stopping agent waits for them.
    pub tasks: tokio_util::task::TaskTracker,
}

/// Why a control operation was refused; `code()` is what the HTTP answer carries.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no workload {0} on this node")]
    NotFound(WorkloadKey),
    #[error("the app container of {key} is not running ({status})")]
    NotRunning { key: WorkloadKey, status: String },
    /// The request does not validate.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Package(#[from] rich::PackageError),
    #[error("a deploy to {0} is already under way; wait for it to finish")]
    Busy(WorkloadKey),
    #[error(
        "{key} runs image {image}, which is not a rich image: there is no supervisord to \
         restart the app in; build the image FROM caas/sofa-base"
    )]
    NotRich { key: WorkloadKey, image: String },
    #[error("{0}")]
    Engine(#[from] runtime::RuntimeError),
    #[error("{0}")]
    Internal(String),
}

impl ControlError {
    /// The code of the HTTP answer (which decides its status).
    pub fn code(&self) -> HttpErrorCode {
        match self {
            Self::NotFound(_) => HttpErrorCode::NotFound,
            Self::NotRunning { .. } => HttpErrorCode::NotRunning,
            Self::Invalid(_) => HttpErrorCode::Invalid,
            Self::Package(rich::PackageError::TooLarge { .. }) => HttpErrorCode::PackageTooLarge,
            Self::Package(_) => HttpErrorCode::InvalidPackage,
            Self::Busy(_) => HttpErrorCode::Busy,
            Self::NotRich { .. } => HttpErrorCode::NotRich,
            Self::Engine(_) => HttpErrorCode::EngineError,
            Self::Internal(_) => HttpErrorCode::Internal,
        }
    }
}

/// Package work running at once: more deploys than cores would only slow each other down
/// and crowd the async workers off the CPU; the others wait their turn.
static PACKAGE_WORK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Runs CPU-bound work (gunzip, sha256, copying a package) on the blocking pool, so the
/// agent's two async workers keep serving ZooKeeper, reconcile passes and `/healthz`.
async fn blocking<T, F>(what: &str, work: F) -> Result<T, ControlError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let _turn = PACKAGE_WORK
        .acquire()
        .await
        .map_err(|e| ControlError::Internal(format!("{what}: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ControlError::Internal(format!("{what} did not finish: {e}")))
}

/// The running app container of a workload on this node.
pub(crate) async fn running_app<R: ContainerRuntime + ?Sized>(
    view: &AgentView,
    runtime: &R,
    key: &WorkloadKey,
) -> Result<runtime::ContainerDetails, ControlError> {
    let app = view
        .read()
        .await
        .statuses
        .get(key)
        .and_then(|s| s.containers.app.clone())
        .ok_or_else(|| ControlError::NotFound(key.clone()))?;
    let details = runtime.inspect(&app).await?;
    if !details.running {
        return Err(ControlError::NotRunning {
            key: key.clone(),
            status: details.status,
        });
    }
    Ok(details)
}

/// Runs a command in the workload's app container.
pub async fn exec<R: ContainerRuntime + ?Sized>(
    view: &AgentView,
    runtime: &R,
    key: &WorkloadKey,
    request: &ExecRequest,
) -> Result<ExecResult, ControlError> {
    request
        .validate()
        .map_err(|e| ControlError::Invalid(e.to_string()))?;
    let app = running_app(view, runtime, key).await?;
    let output = runtime
        .exec(
            &app.id,
            &runtime::ExecRequest {
                command: request.command.clone(),
                user: request.user.clone(),
                timeout: Duration::from_secs(u64::from(request.timeout_seconds.unwrap_or(60))),
                output_limit: MAX_EXEC_OUTPUT,
            },
        )
        .await?;
    tracing::info!(workload = %key, command = ?request.command, exit = output.exit_code, "exec");
    Ok(ExecResult {
        name: key.name.clone(),
        exit_code: output.exit_code,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        truncated: output.truncated,
        timed_out: output.timed_out,
    })
}

async fn app_program<R: ContainerRuntime + ?Sized>(runtime: &R, id: &str) -> Option<ProgramStatus> {
    let bytes = runtime.read_file(id, MONITOR_STATUS).await.ok()??;
    rich::parse_monitor(&bytes)
        .ok()?
        .into_iter()
        .find(|p| p.name == APP_PROGRAM)
}

/// Copies `package` into the rich app container and restarts only the app program; waits
/// until the app runs again (or supervisord gave up) and reports its state. A package that
/// unpacks to more than `max_unpacked` bytes is refused before anything is copied.
pub async fn deploy<R: ContainerRuntime + ?Sized>(
    view: &AgentView,
    runtime: &R,
    key: &WorkloadKey,
    package: bytes::Bytes,
    max_unpacked: u64,
) -> Result<DeployResult, ControlError> {
    let checked = package.clone();
    let info = blocking("checking the package", move || {
        rich::inspect_package(&checked, max_unpacked)
    })
    .await??;
    let _slot = DeploySlot::take(key)?;
    let app = running_app(view, runtime, key).await?;
    let labels = runtime.image_labels(&app.image).await?.unwrap_or_default();
    if !rich::is_rich_image(&labels) {
        return Err(ControlError::NotRich {
            key: key.clone(),
            image: app.image,
        });
    }
    let before = app_program(runtime, &app.id).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let tar = blocking("packing the package", move || {
        rich::package_tar(&package, now)
    })
    .await?
    .map_err(|e| ControlError::Internal(format!("packing the package: {e}")))?;
    runtime.upload(&app.id, "/", tar).await?;
    let restart = runtime
        .exec(
            &app.id,
            &runtime::ExecRequest {
                command: vec!["supervisorctl".into(), "restart".into(), APP_PROGRAM.into()],
                user: Some("root".into()),
                timeout: SETTLE_TIMEOUT,
                output_limit: 64 << 10,
            },
        )
        .await?;
    tracing::info!(
        workload = %key, sha256 = %info.sha256, start = %info.start_script,
        supervisorctl = %String::from_utf8_lossy(&restart.stdout).trim(),
        "deployed a package; app restarted"
    );
    // `supervisorctl restart` returns once the app is RUNNING (after startsecs) or failed to
    // start; the monitor reflects that a moment later.
    let started = restart.exit_code == 0 && !restart.timed_out;
    let program = settle(runtime, &app.id, before.and_then(|p| p.pid), started).await;
    let after = runtime.inspect(&app.id).await?;
    Ok(DeployResult {
        name: key.name.clone(),
        package_sha256: info.sha256,
        start_script: info.start_script,
        program,
        container_started_at: after.started_at,
    })
}

/// Waits for the monitor to show the outcome of the restart: RUNNING under a new pid when
/// supervisorctl said it started, else the state supervisord left it in (FATAL, BACKOFF...).
/// A wait that ends without that is reported as UNKNOWN, never as the old RUNNING.
async fn settle<R: ContainerRuntime + ?Sized>(
    runtime: &R,
    id: &str,
    old_pid: Option<u64>,
    started: bool,
) -> ProgramStatus {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(program) = app_program(runtime, id).await {
            let settled = match program.state.as_str() {
                "RUNNING" => started && program.pid.is_some() && program.pid != old_pid,
                "FATAL" | "EXITED" | "STOPPED" | "BACKOFF" => !started,
                _ => false,
            };
            if settled {
                return program;
            }
            last = Some(program);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    ProgramStatus {
        name: APP_PROGRAM.into(),
        state: "UNKNOWN".into(),
        restarts: last.as_ref().map_or(0, |p| p.restarts),
        pid: None,
        description: format!(
            "the app did not settle within {}s after the restart (last seen: {})",
            SETTLE_TIMEOUT.as_secs(),
            last.map_or_else(|| "no monitor report".to_string(), |p| p.state)
        ),
        log_tail: Vec::new(),
    }
}
