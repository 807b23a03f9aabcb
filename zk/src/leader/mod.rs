//! `LeaderLatch`: leader election among instances (e.g. central's background workers) with
//! fencing. Candidates are EPHEMERAL_SEQUENTIAL znodes under a directory; the lowest leads. A
//! leader steps down as soon as its connection drops, not only on expiry, and hands out a
//! [`Fence`] that makes its writes fail once it has been deposed.

mod candidates;
mod fence;
mod step;
mod task;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use fence::{Fence, FenceError, FencedWriter};

use crate::path::{self, PathError};
use crate::session::ClientWatch;

/// This instance's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// Following, disconnected, or not joined yet.
    NotLeader,
    /// Leading; fence writes with the given fence.
    Leader(Fence),
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        matches!(self, Self::Leader(_))
    }

    pub fn fence(&self) -> Option<&Fence> {
        match self {
            Self::Leader(f) => Some(f),
            Self::NotLeader => None,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaderError {
    #[error("leader latch {path}: {source}")]
    Path { path: String, source: PathError },
    #[error("leader latch {path}: {source}")]
    Zk {
        path: String,
        source: zookeeper_client::Error,
    },
    #[error("leader latch {path}: {source}")]
    Client {
        path: String,
        source: crate::ClientError,
    },
    #[error("leader latch {path}: candidate creation kept racing")]
    Contended { path: String },
}

impl LeaderError {
    fn is_session_lost(&self) -> bool {
        match self {
            Self::Zk { source, .. } => crate::client::is_session_lost(source),
            Self::Client {
                source: crate::ClientError::EnsurePath { source, .. },
                ..
            } => crate::client::is_session_lost(source),
            _ => false,
        }
    }
}

/// Handle to a running candidate. Dropping it withdraws the candidacy in the background;
/// [`LeaderLatch::shutdown`] does the same and waits.
#[derive(Debug)]
pub struct LeaderLatch {
    dir: String,
    leadership: watch::Receiver<Leadership>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl LeaderLatch {
    /// Joins the election under `dir` (created if missing) on whatever session `clients`
    /// publishes. `data` is stored in the candidate node (e.g. the instance's address).
    pub fn start(
        clients: ClientWatch,
        dir: impl Into<String>,
        data: Vec<u8>,
        cancel: CancellationToken,
    ) -> Result<Self, LeaderError> {
        let dir = dir.into();
        path::validate(&dir).map_err(|source| LeaderError::Path {
            path: dir.clone(),
            source,
        })?;
        let cancel = cancel.child_token();
        let (tx, leadership) = watch::channel(Leadership::NotLeader);
        let ctx = task::Ctx {
            dir: dir.clone(),
            data,
            clients,
            leadership: tx,
            cancel: cancel.clone(),
        };
        let task = tokio::spawn(task::run(ctx));
        Ok(Self {
            dir,
            leadership,
            cancel,
            task: Some(task),
        })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn is_leader(&self) -> bool {
        self.leadership.borrow().is_leader()
    }

    /// The current fence, only while leading.
    pub fn fence(&self) -> Option<Fence> {
        self.leadership.borrow().fence().cloned()
    }

    /// Follows leadership changes.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// Withdraws the candidacy (deletes the candidate node, best effort) and waits.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaderLatch {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
