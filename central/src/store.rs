//! Central's access to ZooKeeper: typed reads of pools, container records, node inventory,
//! registrations and agent status, and atomic writes as lists of [`Op`]s committed in one
//! `multi` (optionally fenced by the leader latch). Central keeps no state of its own.

use caas_api::central::{ContainerRecord, NodeRecord, PoolRecord};
use caas_api::{NodeInfo, WorkloadKey, WorkloadStatus, ZkLayout};
use caas_zk::zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, Stat};
use caas_zk::zookeeper_client::{MultiWriteError, MultiWriter};
use caas_zk::{ClientWatch, Fence, FenceError, FencedWriter};
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ZooKeeper is not reachable (no session); retry shortly")]
    NoSession,
    #[error("ZooKeeper {op} {path}: {source}")]
    Zk {
        op: &'static str,
        path: String,
        source: ZkError,
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
    /// A `multi` failed at operation `index` (in the caller's op list).
    #[error("atomic write failed at {path}: {source}")]
    Conflict {
        index: usize,
        path: String,
        source: ZkError,
    },
    #[error("this instance is no longer the leader: {0}")]
    Fenced(String),
}

impl StoreError {
    /// Whether the failed write lost a race (re-read and retry).
    pub fn is_race(&self) -> bool {
        matches!(
            self,
            Self::Conflict {
                source: ZkError::BadVersion | ZkError::NodeExists | ZkError::NoNode,
                ..
            }
        )
    }
}

/// One operation of an atomic write.
#[derive(Debug, Clone)]
pub enum Op {
    Create {
        path: String,
        data: Vec<u8>,
    },
    Set {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    /// `version` -1 only checks that the node exists.
    Check {
        path: String,
        version: i32,
    },
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
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        what: what.to_string(),
        source,
    })
}

fn persistent() -> caas_zk::zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

/// Something ops can be added to: a plain `multi` or a fenced one.
trait OpSink {
    fn add(&mut self, op: &Op) -> Result<(), StoreError>;
}

impl OpSink for MultiWriter<'_> {
    fn add(&mut self, op: &Op) -> Result<(), StoreError> {
        let added = match op {
            Op::Create { path, data } => self.add_create(path, data, &persistent()),
            Op::Set {
                path,
                data,
                version,
            } => self.add_set_data(path, data, Some(*version)),
            Op::Delete { path, version } => self.add_delete(path, *version),
            Op::Check { path, version } => self.add_check_version(path, *version),
        };
        added.map_err(|source| StoreError::Zk {
            op: "multi",
            path: op.path().to_string(),
            source,
        })
    }
}

impl OpSink for FencedWriter<'_> {
    fn add(&mut self, op: &Op) -> Result<(), StoreError> {
        let added = match op {
            Op::Create { path, data } => self.add_create(path, data, &persistent()),
            Op::Set {
                path,
                data,
                version,
            } => self.add_set_data(path, data, Some(*version)),
            Op::Delete { path, version } => self.add_delete(path, *version),
            Op::Check { path, version } => self.add_check_version(path, *version),
        };
        added.map_err(|e| StoreError::Fenced(e.to_string()))
    }
}

fn add_all(sink: &mut impl OpSink, ops: &[Op]) -> Result<(), StoreError> {
    ops.iter().try_for_each(|op| sink.add(op))
}

/// ZooKeeper access for one central instance.
#[derive(Debug, Clone)]
pub struct Store {
    pub layout: ZkLayout,
    clients: ClientWatch,
}

impl Store {
    pub fn new(layout: ZkLayout, clients: ClientWatch) -> Self {
        Self { layout, clients }
    }

    pub fn client(&self) -> Result<Client, StoreError> {
        self.clients
            .borrow()
            .clone()
            .filter(|c| !c.state().is_terminated())
            .ok_or(StoreError::NoSession)
    }

    pub fn clients(&self) -> ClientWatch {
        self.clients.clone()
    }

    /// Reads and decodes a znode; `None` if it does not exist.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<(T, Stat)>, StoreError> {
        let client = self.client()?;
        match client.get_data(path).await {
            Ok((data, stat)) => {
                let value = serde_json::from_slice(&data).map_err(|source| StoreError::Decode {
                    path: path.to_string(),
                    source,
                })?;
                Ok(Some((value, stat)))
            }
            Err(ZkError::NoNode) => Ok(None),
            Err(source) => Err(StoreError::Zk {
                op: "get",
                path: path.to_string(),
                source,
            }),
        }
    }

    /// Children names; empty if the parent does not exist.
    pub async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        let client = self.client()?;
        match client.list_children(path).await {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(source) => Err(StoreError::Zk {
                op: "list",
                path: path.to_string(),
                source,
            }),
        }
    }

    /// Creates `path` and its parents if missing.
    pub async fn ensure(&self, path: &str) -> Result<(), StoreError> {
        let client = self.client()?;
        match client.mkdir(path, &persistent()).await {
            Ok(()) | Err(ZkError::NodeExists) => Ok(()),
            Err(source) => Err(StoreError::Zk {
                op: "mkdir",
                path: path.to_string(),
                source,
            }),
        }
    }

    /// Commits `ops` atomically. With a fence, the leader check is added first and a lost
    /// leadership is reported as `Fenced`.
    pub async fn commit(&self, ops: &[Op], fence: Option<&Fence>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let client = self.client()?;
        let conflict = |index: usize, source: ZkError| StoreError::Conflict {
            index,
            path: ops
                .get(index)
                .map(|o| o.path().to_string())
                .unwrap_or_default(),
            source,
        };
        match fence {
            None => {
                let mut writer = client.new_multi_writer();
                add_all(&mut writer, ops)?;
                match writer.commit().await {
                    Ok(_) => Ok(()),
                    Err(MultiWriteError::OperationFailed { index, source }) => {
                        Err(conflict(index, source))
                    }
                    Err(MultiWriteError::RequestFailed { source }) => Err(StoreError::Zk {
                        op: "multi",
                        path: "(request)".into(),
                        source,
                    }),
                }
            }
            Some(fence) => {
                let mut writer = fence
                    .writer(&client)
                    .map_err(|e| StoreError::Fenced(e.to_string()))?;
                add_all(&mut writer, ops)?;
                match writer.commit().await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_fenced() => Err(StoreError::Fenced(e.to_string())),
                    Err(FenceError::Operation { index, source, .. }) => {
                        Err(conflict(index, source))
                    }
                    Err(e) => Err(StoreError::Fenced(e.to_string())),
                }
            }
        }
    }

    // ---- typed reads ----

    pub async fn pool(&self, pool: &str) -> Result<Option<(PoolRecord, Stat)>, StoreError> {
        self.get(&self.layout.pool(pool)).await
    }

    pub async fn pools(&self) -> Result<Vec<PoolRecord>, StoreError> {
        let mut out = Vec::new();
        for name in self.children(&self.layout.pools()).await? {
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
    ) -> Result<Option<(ContainerRecord, Stat)>, StoreError> {
        self.get(&self.layout.container(pool, name)).await
    }

    pub async fn containers(&self, pool: &str) -> Result<Vec<(ContainerRecord, Stat)>, StoreError> {
        let mut out = Vec::new();
        for name in self.children(&self.layout.containers(pool)).await? {
            if let Some(record) = self.container(pool, &name).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    pub async fn inventory(&self, node: &str) -> Result<Option<(NodeRecord, Stat)>, StoreError> {
        self.get(&self.layout.inventory(node)).await
    }

    pub async fn registration(&self, node: &str) -> Result<Option<NodeInfo>, StoreError> {
        Ok(self
            .get(&self.layout.node(node))
            .await?
            .map(|(info, _)| info))
    }

    pub async fn status(
        &self,
        node: &str,
        key: &WorkloadKey,
    ) -> Result<Option<WorkloadStatus>, StoreError> {
        // A status an agent wrote in a format we cannot read is shown as absent, not an error.
        match self.get(&self.layout.status(node, key)).await {
            Ok(found) => Ok(found.map(|(s, _)| s)),
            Err(StoreError::Decode { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
