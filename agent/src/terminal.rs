//! Interactive terminal sessions (`GET /v1/containers/{pool}/{name}/terminal`, a WebSocket
//! speaking `caas_api::terminal`): a Docker exec in the workload's app container, pumped both
//! ways with back-pressure, and ended together with everything it started in its terminal
//! session when it exits, the client goes away or nothing happens for the idle timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caas_api::terminal::{self as proto, ClientMessage, ServerMessage, TerminalStart};
use caas_api::WorkloadKey;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::ws::{Message, WebSocket};

use crate::control::{self, ControlError};
use crate::rich;
use crate::runtime::{
    AttachedExec, ContainerRuntime, ExecAttachRequest, ExecGuard, InputSink, RuntimeError,
};
use crate::view::AgentView;

/// Largest frame a client may send (input is keystrokes and pastes).
pub const MAX_CLIENT_FRAME: usize = 1 << 20;
/// How long a client has to send its start message after connecting.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// An ended session's processes get SIGHUP (as when a terminal goes away), then SIGKILL.
const HANGUP_GRACE: Duration = Duration::from_secs(2);
/// How often the exec's state is looked at (its output may stay open after it exited, held
/// by a background process of the session).
const EXIT_POLL: Duration = Duration::from_secs(2);
/// After the exec exited, how long its remaining output is still passed on.
const DRAIN: Duration = Duration::from_secs(1);
/// How long a text frame (or the close) may wait for a client that does not read.
const CONTROL_SEND: Duration = Duration::from_secs(10);
/// How long the exit code may take to show after the output ended.
const EXIT_CODE_WAIT: Duration = Duration::from_secs(5);
/// Environment of every session.
const TERM: &str = "TERM=xterm-256color";
/// The login shell when the image has bash, else `sh`.
const BASH: &str = "/bin/bash";
/// The user of a session in a rich container when the client names none.
const RICH_USER: &str = "admin";

/// Limits of terminal sessions (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct TerminalOptions {
    /// A session with neither input nor output for this long is ended.
    pub idle_timeout: Duration,
    /// The most sessions at once; more are refused (`busy`).
    pub max_sessions: usize,
}

impl Default for TerminalOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(proto::DEFAULT_IDLE_TIMEOUT_SECS),
            max_sessions: 64,
        }
    }
}

/// The terminal sessions of this agent: their limits, how many are open, and the agent's stop
/// signal and task tracker (a stopping agent ends every session and waits for its exec).
#[derive(Debug, Clone)]
pub struct Terminals {
    options: TerminalOptions,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Terminals {
    pub fn new(options: TerminalOptions, stop: CancellationToken, tasks: TaskTracker) -> Self {
        Self {
            options,
            slots: Arc::new(Semaphore::new(options.max_sessions)),
            stop,
            tasks,
        }
    }

    /// Where sessions run (the agent's tracker).
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// Sessions open now (`caas_agent_terminal_sessions`).
    pub fn active(&self) -> usize {
        self.options
            .max_sessions
            .saturating_sub(self.slots.available_permits())
    }
}

/// The `code` of an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalCode {
    NotFound,
    Invalid,
    Busy,
    Unavailable,
    IdleTimeout,
}

impl TerminalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not-found",
            Self::Invalid => "invalid",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
            Self::IdleTimeout => "idle-timeout",
        }
    }
}

/// Why a session did not start or was ended by the agent.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error(
        "{0} terminal sessions are open on this node, the most it allows \
         (max_terminal_sessions); try again later"
    )]
    Busy(usize),
    /// A message that does not parse or validate (the text names the field).
    #[error("{0}")]
    Invalid(String),
    #[error("no workload {0} on this node")]
    NotFound(WorkloadKey),
    #[error("the app container of {key} is not running ({status})")]
    NotRunning { key: WorkloadKey, status: String },
    #[error("the container engine failed: {0}")]
    Engine(#[from] RuntimeError),
    #[error("the agent failed: {0}")]
    Internal(String),
    #[error("the agent is stopping; the session was ended")]
    Stopping,
    #[error(
        "no input and no output for {0}s (the agent's terminal_idle_timeout_secs); the session \
         was ended"
    )]
    IdleTimeout(u64),
}

impl TerminalError {
    pub fn code(&self) -> TerminalCode {
        match self {
            Self::Busy(_) => TerminalCode::Busy,
            Self::Invalid(_) => TerminalCode::Invalid,
            Self::NotFound(_) | Self::NotRunning { .. } => TerminalCode::NotFound,
            Self::Engine(_) | Self::Internal(_) | Self::Stopping => TerminalCode::Unavailable,
            Self::IdleTimeout(_) => TerminalCode::IdleTimeout,
        }
    }

    fn frame(&self) -> ServerMessage {
        ServerMessage::Error {
            code: self.code().as_str().to_string(),
            message: self.to_string(),
        }
    }
}

impl From<ControlError> for TerminalError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound(key) => Self::NotFound(key),
            ControlError::NotRunning { key, status } => Self::NotRunning { key, status },
            ControlError::Engine(e) => Self::Engine(e),
            other => Self::Internal(other.to_string()),
        }
    }
}

type Tx = SplitSink<WebSocket, Message>;
type Rx = SplitStream<WebSocket>;

/// Serves one upgraded WebSocket until the session ends; its exec is ended by then.
pub async fn serve<R: ContainerRuntime + ?Sized>(
    socket: WebSocket,
    runtime: Arc<R>,
    view: AgentView,
    key: WorkloadKey,
    terminals: Terminals,
) {
    let (mut tx, mut rx) = socket.split();
    let last = match terminals.slots.clone().try_acquire_owned() {
        Err(_) => Some(TerminalError::Busy(terminals.options.max_sessions).frame()),
        Ok(_slot) => {
            let tasks = terminals.tasks.clone();
            let session = session(
                &mut tx,
                &mut rx,
                runtime,
                &view,
                &key,
                terminals.options,
                tasks,
            );
            // A stopping agent drops the session: its guard ends the exec on the tracker.
            let outcome = tokio::select! {
                outcome = session => outcome,
                () = terminals.stop.cancelled() => Err(TerminalError::Stopping),
            };
            outcome.err().map(|e| e.frame())
        }
    };
    if let Some(last) = last {
        send(&mut tx, &last).await;
    }
    let _ = tokio::time::timeout(CONTROL_SEND, tx.close()).await;
    // Read what the client still sends until its close reply (at most 2 s): a socket dropped
    // with unread data is reset, and a reset can destroy the last frames before they are read.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = rx.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
}

/// Runs a session; `Ok` when it ended with an `exit` frame or without a client to tell.
async fn session<R: ContainerRuntime + ?Sized>(
    tx: &mut Tx,
    rx: &mut Rx,
    runtime: Arc<R>,
    view: &AgentView,
    key: &WorkloadKey,
    options: TerminalOptions,
    tasks: TaskTracker,
) -> Result<(), TerminalError> {
    let Some(start) = read_start(rx).await? else {
        return Ok(());
    };
    let exec = start_exec(view, &*runtime, key, &start).await?;
    let guard = ExecGuard::new(runtime.clone(), &exec.exec_id, HANGUP_GRACE, tasks);
    if start.tty {
        initial_size(&*runtime, &exec.exec_id, start.cols, start.rows).await;
    }
    let session = exec.exec_id.clone();
    tracing::info!(workload = %key, session = %session, user = ?start.user, command = ?start.command, "terminal session started");
    let started = ServerMessage::Started {
        session: session.clone(),
    };
    if !send(tx, &started).await {
        guard.end().await;
        return Ok(());
    }
    let end = pump(tx, rx, exec, &*runtime, start.tty, options.idle_timeout).await;
    match end {
        End::Exited => {
            let code = exit_code(&*runtime, &session).await;
            // Background processes of the session go with it.
            guard.end().await;
            tracing::info!(workload = %key, session = %session, exit = code, "terminal session ended");
            send(tx, &ServerMessage::Exit { code }).await;
            Ok(())
        }
        End::ClientGone => {
            guard.end().await;
            tracing::info!(workload = %key, session = %session, "terminal client went away; session ended");
            Ok(())
        }
        End::Idle => {
            guard.end().await;
            tracing::info!(workload = %key, session = %session, "terminal session idle; ended");
            Err(TerminalError::IdleTimeout(options.idle_timeout.as_secs()))
        }
        End::Invalid(message) => {
            guard.end().await;
            Err(TerminalError::Invalid(message))
        }
        End::Output(e) => {
            guard.end().await;
            Err(TerminalError::Engine(e))
        }
    }
}

/// Sends a text frame; false when the client is gone or does not take it in time.
async fn send(tx: &mut Tx, message: &ServerMessage) -> bool {
    let text = serde_json::to_string(message).unwrap_or_default();
    matches!(
        tokio::time::timeout(CONTROL_SEND, tx.send(Message::text(text))).await,
        Ok(Ok(()))
    )
}

/// Waits for the start message; `None` when the client left first.
async fn read_start(rx: &mut Rx) -> Result<Option<TerminalStart>, TerminalError> {
    let first = tokio::time::timeout(START_TIMEOUT, async {
        loop {
            match rx.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(m)) if m.is_ping() || m.is_pong() => continue,
                Some(Ok(m)) if m.is_close() => return None,
                Some(Ok(m)) => return Some(m),
            }
        }
    })
    .await
    .map_err(|_| {
        TerminalError::Invalid(format!(
            "no start message within {}s of connecting",
            START_TIMEOUT.as_secs()
        ))
    })?;
    let Some(first) = first else {
        return Ok(None);
    };
    let Ok(text) = first.to_str() else {
        return Err(TerminalError::Invalid(
            "the first message must be a text frame {\"start\":{...}}".into(),
        ));
    };
    let start = match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Start(start)) => start,
        Ok(ClientMessage::Resize { .. } | ClientMessage::Eof) => {
            return Err(TerminalError::Invalid(
                "the first message must be {\"start\":{...}}".into(),
            ))
        }
        Err(e) => return Err(TerminalError::Invalid(format!("not a start message: {e}"))),
    };
    start
        .validate()
        .map_err(|e| TerminalError::Invalid(e.to_string()))?;
    Ok(Some(start))
}

/// Starts the session's exec in the workload's running app container, filling in the
/// defaults: `admin` in rich containers (the image's user else), a login bash when the image
/// has one, else `sh`.
async fn start_exec<R: ContainerRuntime + ?Sized>(
    view: &AgentView,
    runtime: &R,
    key: &WorkloadKey,
    start: &TerminalStart,
) -> Result<AttachedExec, TerminalError> {
    let app = control::running_app(view, runtime, key).await?;
    let user = match &start.user {
        Some(user) => Some(user.clone()),
        None => {
            let labels = runtime.image_labels(&app.image).await?.unwrap_or_default();
            rich::is_rich_image(&labels).then(|| RICH_USER.to_string())
        }
    };
    let command = if start.command.is_empty() {
        match runtime.stat_path(&app.id, BASH).await? {
            Some(_) => vec![BASH.to_string(), "-l".to_string()],
            None => vec!["/bin/sh".to_string()],
        }
    } else {
        start.command.clone()
    };
    Ok(runtime
        .exec_attach(
            &app.id,
            &ExecAttachRequest {
                command,
                user,
                tty: start.tty,
                stdin: true,
                env: vec![TERM.to_string()],
            },
        )
        .await?)
}

/// Sets the first size; the engine refuses a resize until the process runs, which happens
/// just after the start returned, so a refusal is retried a few times.
async fn initial_size<R: ContainerRuntime + ?Sized>(
    runtime: &R,
    exec_id: &str,
    cols: u16,
    rows: u16,
) {
    for attempt in 0..10u32 {
        match runtime.resize_exec(exec_id, cols, rows).await {
            Ok(()) => return,
            Err(e) if attempt == 9 => {
                tracing::warn!(exec = %exec_id, error = %e, "setting the terminal size failed");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt + 1))).await,
        }
    }
}

/// The exit code once the engine reports it (`-1` if it does not in time).
async fn exit_code<R: ContainerRuntime + ?Sized>(runtime: &R, exec_id: &str) -> i64 {
    let deadline = Instant::now() + EXIT_CODE_WAIT;
    loop {
        match runtime.exec_status(exec_id).await {
            Ok(status) if !status.running => return status.exit_code.unwrap_or(-1),
            Ok(_) | Err(_) if Instant::now() >= deadline => return -1,
            Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// How a session's pumping ended.
#[derive(Debug)]
enum End {
    /// The process closed its output (or exited and the rest was drained).
    Exited,
    /// The socket closed or failed.
    ClientGone,
    /// Neither input nor output for the idle timeout (a client that reads nothing counts).
    Idle,
    /// The client sent something that is not part of the protocol.
    Invalid(String),
    /// The engine's output stream failed.
    Output(RuntimeError),
}

/// When something last happened in a session, as milliseconds after it started.
struct Activity {
    origin: Instant,
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(now, Ordering::Relaxed);
    }
    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// Most output bytes put into one WebSocket message.
const OUTPUT_BATCH: usize = 64 * 1024;

/// Pumps output to the client and the client's input and resizes to the exec, each side only
/// as fast as the other takes it: one output chunk is read after the previous one was sent,
/// one input frame after the previous one was written. So a client that does not read (or a
/// process that does not) holds everything up instead of filling the agent's memory, and the
/// idle timeout ends that too.
async fn pump<R: ContainerRuntime + ?Sized>(
    tx: &mut Tx,
    rx: &mut Rx,
    exec: AttachedExec,
    runtime: &R,
    tty: bool,
    idle: Duration,
) -> End {
    let AttachedExec {
        exec_id,
        mut output,
        mut input,
    } = exec;
    let activity = Activity::new();
    let output = async {
        loop {
            match output.next().await {
                None => return End::Exited,
                Some(Err(e)) => return End::Output(e),
                Some(Ok(first)) => {
                    activity.touch();
                    // A pty hands out at most 4 KiB per read: what is already waiting goes in
                    // the same message (up to OUTPUT_BATCH), so a fast producer costs one
                    // WebSocket message per batch, not per read. Nothing waits for more.
                    let mut batch = first.to_vec();
                    let mut end = None;
                    while batch.len() < OUTPUT_BATCH {
                        match futures::FutureExt::now_or_never(output.next()) {
                            Some(Some(Ok(more))) => batch.extend_from_slice(&more),
                            Some(Some(Err(e))) => {
                                end = Some(End::Output(e));
                                break;
                            }
                            Some(None) => {
                                end = Some(End::Exited);
                                break;
                            }
                            None => break,
                        }
                    }
                    if tx.send(Message::binary(batch)).await.is_err() {
                        return End::ClientGone;
                    }
                    activity.touch();
                    if let Some(end) = end {
                        return end;
                    }
                }
            }
        }
    };
    let input = pump_input(rx, &mut input, runtime, &exec_id, tty, &activity);
    let idle_watch = async {
        loop {
            let deadline = activity.last() + idle;
            if Instant::now() >= deadline {
                return End::Idle;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    let exited = async {
        loop {
            tokio::time::sleep(EXIT_POLL).await;
            if runtime
                .exec_status(&exec_id)
                .await
                .is_ok_and(|s| !s.running)
            {
                return;
            }
        }
    };
    tokio::pin!(output, input, idle_watch, exited);
    tokio::select! {
        end = &mut output => end,
        end = &mut input => end,
        end = &mut idle_watch => end,
        () = &mut exited => tokio::time::timeout(DRAIN, &mut output).await.unwrap_or(End::Exited),
    }
}

async fn pump_input<R: ContainerRuntime + ?Sized>(
    rx: &mut Rx,
    input: &mut InputSink,
    runtime: &R,
    exec_id: &str,
    tty: bool,
    activity: &Activity,
) -> End {
    // A process that closed its stdin (or exited) takes no more input; the rest is dropped
    // while the output drains.
    let mut stdin_open = true;
    loop {
        let message = match rx.next().await {
            None | Some(Err(_)) => return End::ClientGone,
            Some(Ok(m)) => m,
        };
        if message.is_close() {
            return End::ClientGone;
        }
        if message.is_binary() {
            activity.touch();
            if stdin_open {
                let written = async {
                    input.write_all(message.as_bytes()).await?;
                    input.flush().await
                };
                if let Err(e) = written.await {
                    tracing::debug!(exec = %exec_id, error = %e, "the exec's stdin is closed");
                    stdin_open = false;
                }
            }
            activity.touch();
        } else if let Ok(text) = message.to_str() {
            activity.touch();
            match serde_json::from_str::<ClientMessage>(text) {
                Ok(ClientMessage::Resize { cols, rows }) => {
                    if let Err(e) = proto::check_size(cols, rows) {
                        return End::Invalid(e.to_string());
                    }
                    if tty {
                        if let Err(e) = runtime.resize_exec(exec_id, cols, rows).await {
                            tracing::debug!(exec = %exec_id, error = %e, "resizing the terminal failed");
                        }
                    }
                }
                Ok(ClientMessage::Eof) => {
                    if stdin_open {
                        stdin_open = false;
                        if let Err(e) = input.shutdown().await {
                            tracing::debug!(exec = %exec_id, error = %e, "closing the exec's stdin failed");
                        }
                    }
                }
                Ok(ClientMessage::Start(_)) => {
                    return End::Invalid(
                        "the session has started already: send input (binary frames) or \
                         {\"resize\":{...}}"
                            .into(),
                    )
                }
                Err(e) => return End::Invalid(format!("not a resize message: {e}")),
            }
        }
        // Pings and pongs are answered by the socket itself and are not activity.
    }
}

#[cfg(test)]
mod tests;
