//! The `Store` seam: everything central reads from and writes to its shared state, in central's
//! own terms. Reads return decoded values with their version; writes are lists of [`Op`]s that
//! commit all-or-nothing (optionally behind the leader's fence); three caches (registrations,
//! inventory, pools) give the scheduler cheap, possibly stale snapshots. `ZkStore` implements it
//! on ZooKeeper, `MemStore` in memory with the same semantics for in-process tests.

mod memory;
mod zk;

use std::sync::Arc;

use async_trait::async_trait;
use caas_api::central::{ContainerRecord, NodeRecord, PoolRecord};
use caas_api::{NodeInfo, WorkloadKey, WorkloadStatus, ZkLayout};
use caas_zk::{ChildMap, Fence};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use memory::{MemStore, SessionId};
pub use zk::ZkStore;

/// Why one operation of an atomic write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpFailure {
    /// The node (or a `Create`'s parent) does not exist.
    NoNode,
    /// A `Create` found the node already there.
    NodeExists,
    /// The node's version is not the expected one.
    BadVersion,
    /// A `Delete` found children under the node.
    NotEmpty,
    /// Anything else the backing store refused.
    Other,
}

impl std::fmt::Display for OpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoNode => "no such node",
            Self::NodeExists => "node exists",
            Self::BadVersion => "version changed",
            Self::NotEmpty => "node has children",
            Self::Other => "refused",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ZooKeeper is not reachable (no session); retry shortly")]
    NoSession,
    /// A request failed in the backing store (not a lost race).
    #[error("ZooKeeper {op} {path}: {message}")]
    Backend {
        op: &'static str,
        path: String,
        message: String,
    },
    #[error("znode {path} holds invalid JSON: {source}")]
    Decode {
        path: String,
        source: serde_json::Error,
    },
    #[error("encoding {what}: {source}")]
    Encode {
        what: String,
        source: serde_json::Error,
    },
    /// An atomic write failed at operation `index` (in the caller's op list); nothing was written.
    #[error("atomic write failed at {path}: {failure}")]
    Conflict {
        index: usize,
        path: String,
        failure: OpFailure,
    },
    /// The fence no longer holds: this instance is not the leader any more; nothing was written.
    #[error("this instance is no longer the leader: {0}")]
    Fenced(String),
}

impl StoreError {
    /// Whether the failed write lost a race (re-read and retry).
    pub fn is_race(&self) -> bool {
        matches!(
            self,
            Self::Conflict {
                failure: OpFailure::BadVersion | OpFailure::NodeExists | OpFailure::NoNode,
                ..
            }
        )
    }

    /// The failure and path of a refused atomic write.
    pub fn conflict(&self) -> Option<(OpFailure, &str)> {
        match self {
            Self::Conflict { failure, path, .. } => Some((*failure, path)),
            _ => None,
        }
    }
}

/// One operation of an atomic write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Creates a persistent node; its parent must exist.
    Create { path: String, data: Vec<u8> },
    Set {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// `version: None` deletes whatever version is there (but never a node with children).
    Delete { path: String, version: Option<i32> },
    /// `version` -1 only checks that the node exists.
    Check { path: String, version: i32 },
}

impl Op {
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Set { path, .. }
            | Op::Delete { path, .. }
            | Op::Check { path, .. } => path,
        }
    }
    pub fn create<T: Serialize>(path: String, value: &T) -> Result<Self, StoreError> {
        Ok(Op::Create {
            data: encode(&path, value)?,
            path,
        })
    }
    pub fn set<T: Serialize>(path: String, value: &T, version: i32) -> Result<Self, StoreError> {
        Ok(Op::Set {
            data: encode(&path, value)?,
            path,
            version,
        })
    }
    /// Checks that `path` exists, whatever its version.
    pub fn exists(path: String) -> Self {
        Op::Check { path, version: -1 }
    }
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        what: what.to_string(),
        source,
    })
}

/// The watch-driven caches central keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cache {
    /// `nodes/`: live (ephemeral) agent registrations.
    Registrations,
    /// `inventory/`: central's per-node records.
    Inventory,
    /// `pools/`: pool records (tokens, keys).
    Pools,
}

impl Cache {
    pub const ALL: [Cache; 3] = [Cache::Registrations, Cache::Inventory, Cache::Pools];

    /// The directory whose children the cache holds.
    pub fn root(self, layout: &ZkLayout) -> String {
        match self {
            Cache::Registrations => layout.nodes(),
            Cache::Inventory => layout.inventory_root(),
            Cache::Pools => layout.pools(),
        }
    }
}

/// Central's shared state. Implementations must give every [`commit`](Store::commit) the
/// semantics of a ZooKeeper `multi`: operations apply in order, each sees the effect of the
/// previous ones, and a failing one leaves nothing written.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn layout(&self) -> &ZkLayout;

    /// A node's data and version; `None` if it does not exist.
    async fn get_raw(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, StoreError>;

    /// Children names, sorted; empty if the parent does not exist.
    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError>;

    /// Creates `path` and its parents if missing.
    async fn ensure(&self, path: &str) -> Result<(), StoreError>;

    /// Commits `ops` atomically. With a fence, the fence is checked first and a lost
    /// leadership is reported as [`StoreError::Fenced`].
    async fn commit(&self, ops: &[Op], fence: Option<&Fence>) -> Result<(), StoreError>;

    /// The current snapshot of a cache. The same `Arc` is returned while nothing changed, so
    /// callers may memoize on pointer identity.
    fn cached(&self, cache: Cache) -> Arc<ChildMap>;

    /// Whether every cache has completed a first listing.
    fn synced(&self) -> bool;

    async fn wait_synced(&self);
}

/// Typed reads over any store.
impl dyn Store {
    /// Reads and decodes a node; `None` if it does not exist.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<(T, i32)>, StoreError> {
        let Some((data, version)) = self.get_raw(path).await? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&data).map_err(|source| StoreError::Decode {
            path: path.to_string(),
            source,
        })?;
        Ok(Some((value, version)))
    }

    pub async fn pool(&self, pool: &str) -> Result<Option<(PoolRecord, i32)>, StoreError> {
        self.get(&self.layout().pool(pool)).await
    }

    pub async fn pools(&self) -> Result<Vec<PoolRecord>, StoreError> {
        let mut out = Vec::new();
        for name in self.children(&self.layout().pools()).await? {
            if let Some((pool, _)) = self.pool(&name).await? {
                out.push(pool);
            }
        }
        Ok(out)
    }

    pub async fn container(
        &self,
        pool: &str,
        name: &str,
    ) -> Result<Option<(ContainerRecord, i32)>, StoreError> {
        self.get(&self.layout().container(pool, name)).await
    }

    pub async fn containers(&self, pool: &str) -> Result<Vec<(ContainerRecord, i32)>, StoreError> {
        let mut out = Vec::new();
        for name in self.children(&self.layout().containers(pool)).await? {
            if let Some(record) = self.container(pool, &name).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    pub async fn inventory(&self, node: &str) -> Result<Option<(NodeRecord, i32)>, StoreError> {
        self.get(&self.layout().inventory(node)).await
    }

    pub async fn registration(&self, node: &str) -> Result<Option<NodeInfo>, StoreError> {
        Ok(self
            .get(&self.layout().node(node))
            .await?
            .map(|(info, _)| info))
    }

    pub async fn status(
        &self,
        node: &str,
        key: &WorkloadKey,
    ) -> Result<Option<WorkloadStatus>, StoreError> {
        // A status an agent wrote in a format we cannot read is shown as absent, not an error.
        match self.get(&self.layout().status(node, key)).await {
            Ok(found) => Ok(found.map(|(s, _)| s)),
            Err(StoreError::Decode { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
