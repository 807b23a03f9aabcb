//! `ChildrenCache`: a local copy of a parent znode's children (name -> data and stat), kept up to
//! date by a persistent recursive watch and, because watches can be missed (reconnects, expiry,
//! ZOOKEEPER-4698), by a full re-list on every reconnect, every new session and periodically.

mod load;
mod task;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zookeeper_client::Stat;

use crate::path::{self, PathError};
use crate::session::ClientWatch;

/// One cached child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildEntry {
    pub data: Vec<u8>,
    pub stat: Stat,
}

/// Children by name (not full path).
pub type ChildMap = BTreeMap<String, ChildEntry>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// Full re-list period, the safety net for missed watch events.
    pub relist_interval: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            relist_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    #[error("children cache {path}: {source}")]
    Path { path: String, source: PathError },
    #[error("children cache {path}: {source}")]
    Zk {
        path: String,
        source: zookeeper_client::Error,
    },
}

impl CacheError {
    fn is_session_lost(&self) -> bool {
        matches!(self, Self::Zk { source, .. } if crate::client::is_session_lost(source))
    }
}

/// Handle to a running cache. Dropping it stops the cache.
#[derive(Debug)]
pub struct ChildrenCache {
    parent: String,
    snapshot: watch::Receiver<Arc<ChildMap>>,
    synced: watch::Receiver<bool>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ChildrenCache {
    /// Caches the children of `parent` (which may not exist yet: then the map is empty) on
    /// whatever session `clients` publishes.
    pub fn start(
        clients: ClientWatch,
        parent: impl Into<String>,
        options: CacheOptions,
        cancel: CancellationToken,
    ) -> Result<Self, CacheError> {
        let parent = parent.into();
        path::validate(&parent).map_err(|source| CacheError::Path {
            path: parent.clone(),
            source,
        })?;
        let cancel = cancel.child_token();
        let (snapshot_tx, snapshot) = watch::channel(Arc::new(ChildMap::new()));
        let (synced_tx, synced) = watch::channel(false);
        let ctx = task::Ctx {
            parent: parent.clone(),
            clients,
            options,
            snapshot: snapshot_tx,
            synced: synced_tx,
            cancel: cancel.clone(),
        };
        let task = tokio::spawn(task::run(ctx));
        Ok(Self {
            parent,
            snapshot,
            synced,
            cancel,
            task: Some(task),
        })
    }

    pub fn parent(&self) -> &str {
        &self.parent
    }

    /// Snapshots; `changed()` on the receiver fires only when the content changed. Before the
    /// first full listing the map is empty: check [`ChildrenCache::synced`] before trusting an
    /// empty map (e.g. before removing workloads that are "not desired").
    pub fn snapshot(&self) -> watch::Receiver<Arc<ChildMap>> {
        self.snapshot.clone()
    }

    /// The latest snapshot.
    pub fn current(&self) -> Arc<ChildMap> {
        self.snapshot.borrow().clone()
    }

    /// Becomes true after the first complete listing and stays true; later snapshots may be
    /// stale while there is no session, but they never go back to "unknown".
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.clone()
    }

    /// Waits for the first complete listing; false if the cache stopped first.
    pub async fn wait_synced(&self) -> bool {
        let mut synced = self.synced.clone();
        let done = synced.wait_for(|s| *s).await.is_ok();
        done
    }

    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ChildrenCache {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
