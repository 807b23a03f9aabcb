//! `MemStore`: the [`Store`] in memory, for in-process tests of central's logic. It keeps
//! ZooKeeper's semantics where central depends on them: versions, `NoNode`/`NodeExists`/
//! `BadVersion`/`NotEmpty` per operation, all-or-nothing multis that see their own earlier
//! operations, the leader fence, and ephemeral nodes that vanish when the test ends their
//! session. Several handles share one tree (two "central instances"); each handle's caches can
//! be frozen to play a stale watch, or marked not yet synced.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use caas_api::{NodeInfo, ZkLayout};
use caas_zk::zookeeper_client::Stat;
use caas_zk::{ChildEntry, ChildMap, Fence};

use super::{Cache, Op, OpFailure, Store, StoreError};

/// A test's stand-in for a ZooKeeper session id (owner of ephemeral nodes).
pub type SessionId = i64;

#[derive(Debug, Clone)]
struct Znode {
    data: Vec<u8>,
    version: i32,
    czxid: i64,
    mzxid: i64,
    /// Session owning an ephemeral node; 0 for persistent ones.
    owner: SessionId,
}

#[derive(Debug, Clone, Default)]
struct Tree {
    nodes: BTreeMap<String, Znode>,
    zxid: i64,
}

fn parent_of(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

fn child_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    }
}

impl Tree {
    fn exists(&self, path: &str) -> bool {
        path == "/" || self.nodes.contains_key(path)
    }

    /// Names of the direct children of `path`.
    fn children(&self, path: &str) -> Vec<String> {
        let prefix = child_prefix(path);
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, _)| {
                let rest = &p[prefix.len()..];
                (!rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }

    fn create(&mut self, path: &str, data: Vec<u8>, owner: SessionId) -> Result<(), OpFailure> {
        if self.exists(path) {
            return Err(OpFailure::NodeExists);
        }
        match parent_of(path) {
            Some(parent) if self.exists(parent) => {}
            _ => return Err(OpFailure::NoNode),
        }
        if let Some(parent) = parent_of(path).and_then(|p| self.nodes.get(p)) {
            if parent.owner != 0 {
                // ZooKeeper refuses children of ephemeral nodes.
                return Err(OpFailure::Other);
            }
        }
        self.zxid += 1;
        self.nodes.insert(
            path.to_string(),
            Znode {
                data,
                version: 0,
                czxid: self.zxid,
                mzxid: self.zxid,
                owner,
            },
        );
        Ok(())
    }

    fn check(&self, path: &str, version: i32) -> Result<&Znode, OpFailure> {
        let node = self.nodes.get(path).ok_or(OpFailure::NoNode)?;
        if version != -1 && node.version != version {
            return Err(OpFailure::BadVersion);
        }
        Ok(node)
    }

    fn apply(&mut self, op: &Op) -> Result<(), OpFailure> {
        match op {
            Op::Create { path, data } => self.create(path, data.clone(), 0),
            Op::Set {
                path,
                data,
                version,
            } => {
                self.check(path, *version)?;
                self.zxid += 1;
                let zxid = self.zxid;
                let node = self.nodes.get_mut(path).ok_or(OpFailure::NoNode)?;
                node.data = data.clone();
                node.version += 1;
                node.mzxid = zxid;
                Ok(())
            }
            Op::Delete { path, version } => {
                self.check(path, version.unwrap_or(-1))?;
                if !self.children(path).is_empty() {
                    return Err(OpFailure::NotEmpty);
                }
                self.zxid += 1;
                self.nodes.remove(path);
                Ok(())
            }
            Op::Check { path, version } => self.check(path, *version).map(|_| ()),
        }
    }

    fn snapshot(&self, root: &str) -> ChildMap {
        self.children(root)
            .into_iter()
            .filter_map(|name| {
                let path = format!("{}{name}", child_prefix(root));
                let node = self.nodes.get(&path)?;
                let stat = Stat {
                    czxid: node.czxid,
                    mzxid: node.mzxid,
                    pzxid: node.mzxid,
                    ctime: 0,
                    mtime: 0,
                    version: node.version,
                    cversion: 0,
                    aversion: 0,
                    ephemeral_owner: node.owner,
                    data_length: i32::try_from(node.data.len()).unwrap_or(i32::MAX),
                    num_children: 0,
                };
                Some((
                    name,
                    ChildEntry {
                        data: node.data.clone(),
                        stat,
                    },
                ))
            })
            .collect()
    }
}

/// What all handles of one in-memory store share.
#[derive(Debug, Default)]
struct Shared {
    tree: Mutex<Tree>,
    reachable: AtomicBool,
    next_session: AtomicI64,
}

/// What one handle (one "central instance") sees of the caches.
#[derive(Debug, Default)]
struct View {
    /// Snapshots held back on purpose (a watch that has not fired yet).
    frozen: Option<BTreeMap<Cache, Arc<ChildMap>>>,
    unsynced: bool,
    /// The last snapshot per cache and the tree's zxid it was taken at.
    memo: BTreeMap<Cache, (i64, Arc<ChildMap>)>,
}

/// The in-memory store. `Clone` shares the tree *and* the view; [`MemStore::handle`] shares
/// only the tree.
#[derive(Debug, Clone)]
pub struct MemStore {
    layout: ZkLayout,
    shared: Arc<Shared>,
    view: Arc<Mutex<View>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl MemStore {
    /// An empty store with central's base directories, as a running central creates them.
    pub fn new(layout: ZkLayout) -> Self {
        let store = Self {
            shared: Arc::new(Shared {
                reachable: AtomicBool::new(true),
                next_session: AtomicI64::new(1),
                ..Default::default()
            }),
            view: Arc::default(),
            layout,
        };
        {
            let mut tree = locked(&store.shared.tree);
            for dir in [
                store.layout.leader(),
                store.layout.pools(),
                store.layout.inventory_root(),
                store.layout.assign_root(),
                store.layout.status_root(),
                store.layout.nodes(),
            ] {
                mkdir(&mut tree, &dir);
            }
        }
        store
    }

    /// Another handle on the same tree with its own caches (a second central instance).
    pub fn handle(&self) -> Self {
        Self {
            layout: self.layout.clone(),
            shared: self.shared.clone(),
            view: Arc::default(),
        }
    }

    /// A new session id for ephemeral nodes.
    pub fn new_session(&self) -> SessionId {
        self.shared.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Creates an ephemeral node owned by `session`.
    pub fn create_ephemeral(
        &self,
        path: &str,
        data: Vec<u8>,
        session: SessionId,
    ) -> Result<(), OpFailure> {
        locked(&self.shared.tree).create(path, data, session)
    }

    /// An agent's registration, as `PersistentEphemeral` writes it.
    pub fn register(&self, info: &NodeInfo, session: SessionId) -> Result<(), OpFailure> {
        let data = serde_json::to_vec(info).map_err(|_| OpFailure::Other)?;
        self.create_ephemeral(&self.layout.node(&info.node_id), data, session)
    }

    /// Ends a session: its ephemeral nodes vanish, as after a ZooKeeper session expiry.
    pub fn end_session(&self, session: SessionId) {
        let mut tree = locked(&self.shared.tree);
        let before = tree.nodes.len();
        tree.nodes.retain(|_, n| n.owner != session);
        if tree.nodes.len() != before {
            tree.zxid += 1;
        }
    }

    /// A leader fence: an ephemeral candidate node owned by `session`, as the latch makes.
    pub fn leader_fence(&self, session: SessionId) -> Result<Fence, OpFailure> {
        let path = format!("{}/latch-{session}", self.layout.leader());
        self.create_ephemeral(&path, Vec::new(), session)?;
        Ok(Fence {
            path,
            version: 0,
            session_id: session,
        })
    }

    /// Holds this handle's caches at their current content until [`thaw_caches`](Self::thaw_caches).
    pub fn freeze_caches(&self) {
        let snapshots = Cache::ALL.iter().map(|c| (*c, self.cached(*c))).collect();
        locked(&self.view).frozen = Some(snapshots);
    }

    pub fn thaw_caches(&self) {
        locked(&self.view).frozen = None;
    }

    /// Plays a central whose caches have not completed their first listing.
    pub fn set_synced(&self, synced: bool) {
        locked(&self.view).unsynced = !synced;
    }

    /// Plays a lost ZooKeeper connection: every call fails with `NoSession`.
    pub fn set_reachable(&self, reachable: bool) {
        self.shared.reachable.store(reachable, Ordering::Relaxed);
    }

    /// Every node and its data, for "nothing was written" assertions.
    pub fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        locked(&self.shared.tree)
            .nodes
            .iter()
            .map(|(p, n)| (p.clone(), n.data.clone()))
            .collect()
    }

    fn reachable(&self) -> Result<(), StoreError> {
        if self.shared.reachable.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(StoreError::NoSession)
        }
    }
}

fn mkdir(tree: &mut Tree, path: &str) {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        // An existing node is fine, as for ZooKeeper's mkdir.
        let _ = tree.create(&at, Vec::new(), 0);
    }
}

#[async_trait]
impl Store for MemStore {
    fn layout(&self) -> &ZkLayout {
        &self.layout
    }

    async fn get_raw(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, StoreError> {
        self.reachable()?;
        Ok(locked(&self.shared.tree)
            .nodes
            .get(path)
            .map(|n| (n.data.clone(), n.version)))
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        self.reachable()?;
        Ok(locked(&self.shared.tree).children(path))
    }

    async fn ensure(&self, path: &str) -> Result<(), StoreError> {
        self.reachable()?;
        mkdir(&mut locked(&self.shared.tree), path);
        Ok(())
    }

    async fn commit(&self, ops: &[Op], fence: Option<&Fence>) -> Result<(), StoreError> {
        self.reachable()?;
        if ops.is_empty() {
            return Ok(());
        }
        let mut tree = locked(&self.shared.tree);
        if let Some(fence) = fence {
            tree.check(&fence.path, fence.version).map_err(|failure| {
                StoreError::Fenced(format!("leader node {}: {failure}", fence.path))
            })?;
        }
        // Applied to a copy: a failing operation leaves the tree as it was.
        let mut next = tree.clone();
        for (index, op) in ops.iter().enumerate() {
            next.apply(op).map_err(|failure| StoreError::Conflict {
                index,
                path: op.path().to_string(),
                failure,
            })?;
        }
        *tree = next;
        Ok(())
    }

    fn cached(&self, cache: Cache) -> Arc<ChildMap> {
        let mut view = locked(&self.view);
        if let Some(frozen) = view.frozen.as_ref().and_then(|f| f.get(&cache)) {
            return frozen.clone();
        }
        let tree = locked(&self.shared.tree);
        if let Some((zxid, snapshot)) = view.memo.get(&cache) {
            if *zxid == tree.zxid {
                return snapshot.clone();
            }
        }
        let snapshot = Arc::new(tree.snapshot(&cache.root(&self.layout)));
        view.memo.insert(cache, (tree.zxid, snapshot.clone()));
        snapshot
    }

    fn synced(&self) -> bool {
        !locked(&self.view).unsynced
    }

    async fn wait_synced(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> MemStore {
        MemStore::new(ZkLayout::new("/caas").unwrap())
    }

    fn create(path: &str) -> Op {
        Op::Create {
            path: path.into(),
            data: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn a_multi_is_all_or_nothing_and_names_the_failing_op() {
        let s = store();
        let before = s.dump();
        let err = s
            .commit(&[create("/caas/pools/a"), create("/caas/pools/a")], None)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::Conflict {
                index: 1,
                failure: OpFailure::NodeExists,
                ..
            }
        ));
        assert_eq!(s.dump(), before, "a refused multi wrote nothing");
    }

    #[tokio::test]
    async fn later_ops_see_earlier_ones_and_versions_count_sets() {
        let s = store();
        let set = |v| Op::Set {
            path: "/caas/pools/a".into(),
            data: b"1".to_vec(),
            version: v,
        };
        s.commit(&[create("/caas/pools/a"), set(0), set(1)], None)
            .await
            .unwrap();
        assert_eq!(s.get_raw("/caas/pools/a").await.unwrap().unwrap().1, 2);
        let err = s.commit(&[set(0)], None).await.unwrap_err();
        assert_eq!(err.conflict().unwrap().0, OpFailure::BadVersion);
        let err = s.commit(&[create("/caas/x/y")], None).await.unwrap_err();
        assert_eq!(err.conflict().unwrap().0, OpFailure::NoNode);
        let err = s
            .commit(
                &[Op::Delete {
                    path: "/caas/pools".into(),
                    version: None,
                }],
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(err.conflict().unwrap().0, OpFailure::NotEmpty);
    }

    #[tokio::test]
    async fn a_fence_fails_once_its_session_ended() {
        let s = store();
        let session = s.new_session();
        let fence = s.leader_fence(session).unwrap();
        s.commit(&[create("/caas/pools/a")], Some(&fence))
            .await
            .unwrap();
        s.end_session(session);
        let before = s.dump();
        let err = s
            .commit(&[create("/caas/pools/b")], Some(&fence))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Fenced(_)), "{err}");
        assert_eq!(s.dump(), before);
    }

    #[tokio::test]
    async fn caches_follow_writes_unless_frozen_and_keep_their_identity() {
        let s = store();
        let other = s.handle();
        let first = s.cached(Cache::Pools);
        assert!(Arc::ptr_eq(&first, &s.cached(Cache::Pools)));
        s.freeze_caches();
        other
            .commit(&[create("/caas/pools/a")], None)
            .await
            .unwrap();
        assert!(s.cached(Cache::Pools).is_empty(), "frozen cache is stale");
        assert_eq!(other.cached(Cache::Pools).len(), 1);
        s.thaw_caches();
        assert_eq!(s.cached(Cache::Pools).len(), 1);
    }

    #[tokio::test]
    async fn ephemeral_nodes_vanish_with_their_session() {
        let s = store();
        let session = s.new_session();
        s.create_ephemeral("/caas/nodes/n1", b"{}".to_vec(), session)
            .unwrap();
        assert_eq!(s.cached(Cache::Registrations).len(), 1);
        s.end_session(session);
        assert!(s.cached(Cache::Registrations).is_empty());
        s.set_reachable(false);
        assert!(matches!(
            s.get_raw("/caas/nodes").await,
            Err(StoreError::NoSession)
        ));
    }
}
