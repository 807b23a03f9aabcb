//! `ZkStore`: the [`Store`] on ZooKeeper. Writes are one `multi` (fenced through caas-zk's
//! `FencedWriter` for the leader); the three caches are caas-zk `ChildrenCache`s (persistent
//! watch plus periodic re-list).

use std::sync::Arc;

use async_trait::async_trait;
use caas_api::ZkLayout;
use caas_zk::zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};
use caas_zk::zookeeper_client::{MultiWriteError, MultiWriter};
use caas_zk::{CacheError, CacheOptions, ChildMap, ChildrenCache, ClientWatch, Fence};
use caas_zk::{FenceError, FencedWriter};
use tokio_util::sync::CancellationToken;

use super::{Cache, Op, OpFailure, Store, StoreError};

fn persistent() -> caas_zk::zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

fn failure_of(e: &ZkError) -> OpFailure {
    match e {
        ZkError::NoNode => OpFailure::NoNode,
        ZkError::NodeExists => OpFailure::NodeExists,
        ZkError::BadVersion => OpFailure::BadVersion,
        ZkError::NotEmpty => OpFailure::NotEmpty,
        _ => OpFailure::Other,
    }
}

fn backend(op: &'static str, path: &str, e: ZkError) -> StoreError {
    StoreError::Backend {
        op,
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// The writer of a plain or a fenced `multi`: both take the same four operations, but
/// zookeeper-client's and caas-zk's writers share no trait, so each adds through its own method.
enum Writer<'a> {
    Plain(MultiWriter<'a>),
    Fenced(FencedWriter<'a>),
}

impl Writer<'_> {
    fn add(&mut self, op: &Op) -> Result<(), StoreError> {
        let create = persistent();
        let added = match (self, op) {
            (Writer::Plain(w), Op::Create { path, data }) => w.add_create(path, data, &create),
            (
                Writer::Plain(w),
                Op::Set {
                    path,
                    data,
                    version,
                },
            ) => w.add_set_data(path, data, Some(*version)),
            (Writer::Plain(w), Op::Delete { path, version }) => w.add_delete(path, *version),
            (Writer::Plain(w), Op::Check { path, version }) => w.add_check_version(path, *version),
            (Writer::Fenced(w), op) => {
                let added = match op {
                    Op::Create { path, data } => w.add_create(path, data, &create),
                    Op::Set {
                        path,
                        data,
                        version,
                    } => w.add_set_data(path, data, Some(*version)),
                    Op::Delete { path, version } => w.add_delete(path, *version),
                    Op::Check { path, version } => w.add_check_version(path, *version),
                };
                return added.map_err(|e| StoreError::Fenced(e.to_string()));
            }
        };
        added.map_err(|e| backend("multi", op.path(), e))
    }
}

/// ZooKeeper access for one central instance.
#[derive(Debug)]
pub struct ZkStore {
    layout: ZkLayout,
    clients: ClientWatch,
    registrations: ChildrenCache,
    inventory: ChildrenCache,
    pools: ChildrenCache,
}

impl ZkStore {
    /// Starts the caches on the session's clients; they run until `cancel`.
    pub fn start(
        layout: ZkLayout,
        clients: ClientWatch,
        cancel: CancellationToken,
    ) -> Result<Self, CacheError> {
        let opts = CacheOptions::default();
        let cache = |which: Cache| {
            ChildrenCache::start(
                clients.clone(),
                which.root(&layout),
                opts.clone(),
                cancel.clone(),
            )
        };
        Ok(Self {
            registrations: cache(Cache::Registrations)?,
            inventory: cache(Cache::Inventory)?,
            pools: cache(Cache::Pools)?,
            layout,
            clients,
        })
    }

    fn client(&self) -> Result<Client, StoreError> {
        self.clients
            .borrow()
            .clone()
            .filter(|c| !c.state().is_terminated())
            .ok_or(StoreError::NoSession)
    }

    fn cache(&self, which: Cache) -> &ChildrenCache {
        match which {
            Cache::Registrations => &self.registrations,
            Cache::Inventory => &self.inventory,
            Cache::Pools => &self.pools,
        }
    }
}

#[async_trait]
impl Store for ZkStore {
    fn layout(&self) -> &ZkLayout {
        &self.layout
    }

    async fn get_raw(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, StoreError> {
        match self.client()?.get_data(path).await {
            Ok((data, stat)) => Ok(Some((data, stat.version))),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(backend("get", path, e)),
        }
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        match self.client()?.list_children(path).await {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(backend("list", path, e)),
        }
    }

    async fn ensure(&self, path: &str) -> Result<(), StoreError> {
        match self.client()?.mkdir(path, &persistent()).await {
            Ok(()) | Err(ZkError::NodeExists) => Ok(()),
            Err(e) => Err(backend("mkdir", path, e)),
        }
    }

    async fn commit(&self, ops: &[Op], fence: Option<&Fence>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let client = self.client()?;
        let conflict = |index: usize, source: &ZkError| StoreError::Conflict {
            index,
            path: ops
                .get(index)
                .map(|o| o.path().to_string())
                .unwrap_or_default(),
            failure: failure_of(source),
        };
        let mut writer = match fence {
            None => Writer::Plain(client.new_multi_writer()),
            Some(fence) => Writer::Fenced(
                fence
                    .writer(&client)
                    .map_err(|e| StoreError::Fenced(e.to_string()))?,
            ),
        };
        for op in ops {
            writer.add(op)?;
        }
        match writer {
            Writer::Plain(mut w) => match w.commit().await {
                Ok(_) => Ok(()),
                Err(MultiWriteError::OperationFailed { index, source }) => {
                    Err(conflict(index, &source))
                }
                Err(MultiWriteError::RequestFailed { source }) => {
                    Err(backend("multi", "(request)", source))
                }
            },
            Writer::Fenced(w) => match w.commit().await {
                Ok(_) => Ok(()),
                Err(e) if e.is_fenced() => Err(StoreError::Fenced(e.to_string())),
                Err(FenceError::Operation { index, source, .. }) => Err(conflict(index, &source)),
                Err(e) => Err(StoreError::Fenced(e.to_string())),
            },
        }
    }

    fn cached(&self, cache: Cache) -> Arc<ChildMap> {
        self.cache(cache).current()
    }

    fn synced(&self) -> bool {
        Cache::ALL.iter().all(|c| *self.cache(*c).synced().borrow())
    }

    async fn wait_synced(&self) {
        for c in Cache::ALL {
            self.cache(c).wait_synced().await;
        }
    }
}
