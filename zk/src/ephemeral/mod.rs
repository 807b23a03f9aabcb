//! `PersistentEphemeral`: an ephemeral znode (path, data) kept registered for as long as the
//! recipe runs, across disconnects and session expiry, without stealing a node another live
//! session owns. Used by the agent to announce its node.

mod owner;
mod sync;
mod task;

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientError, ZkConfig};
use crate::path::{self, PathError};
use crate::session::{ClientWatch, ZkSession};

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralState {
    /// No session yet (or a new one is being opened after expiry).
    Connecting,
    /// The node exists, owned by this session, with the latest data.
    Registered { session_id: i64 },
    /// The connection dropped; the session (and so the node) may survive, nothing is done yet.
    Disconnected,
    /// The node exists and belongs to another session (`owner`; 0 for a persistent node).
    /// Retried periodically and whenever that node changes.
    Conflict { owner: i64 },
    /// The recipe stopped.
    Stopped,
}

/// Tuning knobs; the defaults suit production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralOptions {
    /// How often a conflicting node is looked at again (besides its watch firing).
    pub conflict_retry: Duration,
    /// How often the node is re-verified while registered, in case a watch was missed.
    pub verify_interval: Duration,
}

impl Default for EphemeralOptions {
    fn default() -> Self {
        Self {
            conflict_retry: Duration::from_secs(5),
            verify_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EphemeralError {
    #[error("ephemeral node {path}: {source}")]
    Path { path: String, source: PathError },
    #[error("ephemeral node {path}: {source}")]
    Client { path: String, source: ClientError },
    #[error("ephemeral node {path}: {source}")]
    Zk {
        path: String,
        source: zookeeper_client::Error,
    },
    #[error("ephemeral node {path} kept changing under us while registering")]
    Contended { path: String },
}

impl EphemeralError {
    /// Whether the session is over, so only a new session can make progress.
    pub fn is_session_lost(&self) -> bool {
        match self {
            Self::Zk { source, .. } => crate::client::is_session_lost(source),
            Self::Client {
                source: ClientError::EnsurePath { source, .. },
                ..
            } => crate::client::is_session_lost(source),
            _ => false,
        }
    }
}

/// Handle to a running registration. Dropping it stops the recipe (which then deletes the node
/// in the background); [`PersistentEphemeral::shutdown`] does the same and waits.
#[derive(Debug)]
pub struct PersistentEphemeral {
    path: String,
    clients: ClientWatch,
    data: watch::Sender<Vec<u8>>,
    state: watch::Receiver<EphemeralState>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    session: Option<ZkSession>,
}

impl PersistentEphemeral {
    /// Opens its own session from `config` and keeps `path` registered with `data`.
    pub fn start(
        config: ZkConfig,
        path: impl Into<String>,
        data: Vec<u8>,
        cancel: CancellationToken,
    ) -> Result<Self, EphemeralError> {
        Self::start_with(config, path, data, EphemeralOptions::default(), cancel)
    }

    /// [`PersistentEphemeral::start`] with explicit options.
    pub fn start_with(
        config: ZkConfig,
        path: impl Into<String>,
        data: Vec<u8>,
        options: EphemeralOptions,
        cancel: CancellationToken,
    ) -> Result<Self, EphemeralError> {
        let path = path.into();
        path::validate_node(&path).map_err(|source| EphemeralError::Path {
            path: path.clone(),
            source,
        })?;
        let session =
            ZkSession::start(config, cancel.clone()).map_err(|source| EphemeralError::Client {
                path: path.clone(),
                source,
            })?;
        let mut me = Self::start_on(session.clients(), path, data, options, cancel)?;
        me.session = Some(session);
        Ok(me)
    }

    /// Keeps `path` registered on whatever session `clients` publishes (e.g. a shared
    /// [`ZkSession`]). Sessions it has seen replaced count as "ours" when a stale node is found.
    pub fn start_on(
        clients: ClientWatch,
        path: impl Into<String>,
        data: Vec<u8>,
        options: EphemeralOptions,
        cancel: CancellationToken,
    ) -> Result<Self, EphemeralError> {
        let path = path.into();
        path::validate_node(&path).map_err(|source| EphemeralError::Path {
            path: path.clone(),
            source,
        })?;
        let cancel = cancel.child_token();
        let (data_tx, data_rx) = watch::channel(data);
        let (state_tx, state) = watch::channel(EphemeralState::Connecting);
        let ctx = task::Ctx {
            path: path.clone(),
            clients: clients.clone(),
            data: data_rx,
            state: state_tx,
            options,
            cancel: cancel.clone(),
        };
        let task = tokio::spawn(task::run(ctx));
        Ok(Self {
            path,
            clients,
            data: data_tx,
            state,
            cancel,
            task: Some(task),
            session: None,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Replaces the node's data; written as soon as the session allows.
    pub fn update_data(&self, data: Vec<u8>) {
        self.data.send_replace(data);
    }

    pub fn state(&self) -> watch::Receiver<EphemeralState> {
        self.state.clone()
    }

    /// The session the node lives in, to reuse for other reads and writes. It is replaced after
    /// expiry, so hold the receiver, not one client.
    pub fn client(&self) -> ClientWatch {
        self.clients.clone()
    }

    /// Deregisters: deletes the node if this session owns it (best effort, bounded by the session
    /// timeout) and stops; the session closes once other holders drop their clients too.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(session) = self.session.take() {
            session.shutdown().await;
        }
    }
}

impl Drop for PersistentEphemeral {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
