//! Decoded views of central's caches, memoized: a cache snapshot is decoded once, not once per
//! request, and only znodes whose `mzxid` changed are decoded again. The per-pool scheduler
//! views are derived once per change of either cache, so a placement costs the scheduler's
//! sample, not a pass over the whole fleet.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use caas_api::central::{Liveness, NodeRecord};
use caas_api::network::NetworkDriver;
use caas_api::NodeInfo;
use caas_zk::{ChildEntry, ChildMap};

use crate::scheduler::{NodeView, Resources};

/// A decoded inventory record, its znode version, and its replica count per app group.
#[derive(Debug, Clone)]
pub struct VersionedNode {
    pub record: NodeRecord,
    pub version: i32,
    pub apps: BTreeMap<String, u32>,
}

impl VersionedNode {
    pub fn new(record: NodeRecord, version: i32) -> Self {
        let apps = apps_of(&record);
        Self {
            record,
            version,
            apps,
        }
    }
}

pub fn apps_of(record: &NodeRecord) -> BTreeMap<String, u32> {
    let mut apps = BTreeMap::new();
    for w in record.workloads.values() {
        *apps.entry(w.app.clone()).or_insert(0u32) += 1;
    }
    apps
}

pub type Decoded<T> = Arc<BTreeMap<String, Arc<T>>>;

/// The snapshot a memo decoded, its result, and each entry's `mzxid` at the time.
type MemoState<T> = Option<(Arc<ChildMap>, Decoded<T>, BTreeMap<String, i64>)>;

/// Memo of one cache's decoded entries.
pub struct Memo<T> {
    state: Mutex<MemoState<T>>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(None),
        }
    }
}

impl<T> Memo<T> {
    /// The decoded form of `current`, reusing every entry whose znode did not change.
    pub fn get(
        &self,
        current: Arc<ChildMap>,
        decode: impl Fn(&str, &ChildEntry) -> Option<T>,
    ) -> Decoded<T> {
        let mut state = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((source, decoded, _)) = state.as_ref() {
            if Arc::ptr_eq(source, &current) {
                return decoded.clone();
            }
        }
        let mut out = BTreeMap::new();
        let mut zxids = BTreeMap::new();
        for (id, entry) in current.iter() {
            let reused = state.as_ref().and_then(|(_, decoded, old)| {
                (old.get(id) == Some(&entry.stat.mzxid))
                    .then(|| decoded.get(id).cloned())
                    .flatten()
            });
            if let Some(value) = reused.or_else(|| decode(id, entry).map(Arc::new)) {
                out.insert(id.clone(), value);
                zxids.insert(id.clone(), entry.stat.mzxid);
            }
        }
        let decoded = Arc::new(out);
        *state = Some((current, decoded.clone(), zxids));
        decoded
    }
}

/// The placeable nodes of one pool: registered and not marked lost, in node-id order, with the
/// scheduler's view of each.
#[derive(Debug, Default)]
pub struct PoolNodes {
    pub views: Vec<NodeView>,
    pub infos: Vec<Arc<NodeInfo>>,
    pub records: Vec<Option<Arc<VersionedNode>>>,
}

pub fn view_of(
    info: &NodeInfo,
    record: Option<&NodeRecord>,
    apps: BTreeMap<String, u32>,
) -> NodeView {
    let allocated = record.map(|r| r.allocated).unwrap_or_default();
    NodeView {
        id: info.node_id.clone(),
        pool: info.pool.clone(),
        ready: info.engine_ready,
        capacity: Resources {
            cpu_millis: info.capacity.cpu_millis,
            memory_bytes: info.capacity.memory_bytes,
            pids: 0,
        },
        allocated: Resources {
            cpu_millis: allocated.cpu_millis,
            memory_bytes: allocated.memory_bytes,
            pids: allocated.pids,
        },
        labels: info.labels.clone(),
        apps,
        drivers: [
            NetworkDriver::Vxlan,
            NetworkDriver::Bridge,
            NetworkDriver::Vlan,
        ]
        .into_iter()
        .filter(|d| info.networks.carries(*d))
        .collect(),
    }
}

/// Per-pool views and the two decoded snapshots they were built from.
pub type PoolsMemo = Option<(
    Decoded<NodeInfo>,
    Decoded<VersionedNode>,
    Arc<BTreeMap<String, Arc<PoolNodes>>>,
)>;

/// Groups registrations with their inventory into per-pool scheduler views.
pub fn pool_nodes(
    registrations: &Decoded<NodeInfo>,
    inventory: &Decoded<VersionedNode>,
) -> BTreeMap<String, Arc<PoolNodes>> {
    let mut pools: BTreeMap<String, PoolNodes> = BTreeMap::new();
    for (id, info) in registrations.iter() {
        let record = inventory.get(id);
        if record.is_some_and(|r| r.record.liveness == Liveness::Lost) {
            continue;
        }
        let apps = record.map(|r| r.apps.clone()).unwrap_or_default();
        let pool = pools.entry(info.pool.clone()).or_default();
        pool.views
            .push(view_of(info, record.map(|r| &r.record), apps));
        pool.infos.push(info.clone());
        pool.records.push(record.cloned());
    }
    pools.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()
}
