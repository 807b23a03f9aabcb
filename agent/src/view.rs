//! What the agent currently knows, shared between the reconcile loop (writer) and the HTTP API
//! (reader): the assignments it read, the statuses it observed, and the health of its links.

use std::collections::BTreeMap;
use std::sync::Arc;

use caas_api::{Assignment, WorkloadKey, WorkloadStatus};
use serde::Serialize;
use tokio::sync::RwLock;

/// Health of the agent's dependencies, as shown by `/healthz`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Health {
    /// "ok" or why not.
    pub docker: String,
    /// Registration state in ZooKeeper ("registered", "disconnected", ...).
    pub zookeeper: String,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            docker: "connecting".into(),
            zookeeper: "connecting".into(),
        }
    }
}

#[derive(Debug, Default)]
pub struct ViewState {
    pub assignments: BTreeMap<WorkloadKey, Result<Assignment, String>>,
    pub statuses: BTreeMap<WorkloadKey, WorkloadStatus>,
    pub health: Health,
}

/// Cheap to clone handle to the shared view.
#[derive(Debug, Clone, Default)]
pub struct AgentView {
    inner: Arc<RwLock<ViewState>>,
    /// The stats collector's latest sweep (`/metrics` and the stats routes read it).
    stats: crate::stats::StatsBook,
}

impl AgentView {
    pub async fn read(&self) -> tokio::sync::RwLockReadGuard<'_, ViewState> {
        self.inner.read().await
    }
    pub async fn write(&self) -> tokio::sync::RwLockWriteGuard<'_, ViewState> {
        self.inner.write().await
    }
    pub fn stats(&self) -> &crate::stats::StatsBook {
        &self.stats
    }
}
