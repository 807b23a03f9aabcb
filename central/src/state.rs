//! What one central instance holds while it runs: its [`Store`] (whose three caches, node
//! registrations, node inventory and pools, make reads cheap) and the decoded views of those
//! caches. Caches may be stale; every write is version-checked in the store, so staleness costs a
//! retry, never a double-booking.

use std::sync::Arc;

use caas_api::central::{NodeRecord, PoolRecord};
use caas_api::NodeInfo;

use crate::auth::{hash_token, Principal};
use crate::error::CentralError;
use crate::store::{Cache, Store, StoreError};

pub use crate::decoded::VersionedNode;
use crate::decoded::{pool_nodes, Decoded, Memo, PoolNodes, PoolsMemo};

pub struct Central {
    pub store: Arc<dyn Store>,
    admin_hash: String,
    /// The last direct read of the pools (unix ms, records), shared by concurrent cache misses.
    fresh_pools: tokio::sync::Mutex<(u64, Vec<PoolRecord>)>,
    registrations_memo: Memo<NodeInfo>,
    inventory_memo: Memo<VersionedNode>,
    pools_memo: std::sync::Mutex<PoolsMemo>,
}

impl std::fmt::Debug for Central {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Central").finish_non_exhaustive()
    }
}

impl Central {
    pub fn new(store: Arc<dyn Store>, admin_token: &str) -> Arc<Self> {
        Arc::new(Self {
            admin_hash: hash_token(admin_token),
            fresh_pools: tokio::sync::Mutex::new((0, Vec::new())),
            registrations_memo: Memo::default(),
            inventory_memo: Memo::default(),
            pools_memo: std::sync::Mutex::new(None),
            store,
        })
    }

    pub fn layout(&self) -> &caas_api::ZkLayout {
        self.store.layout()
    }

    /// Whether every cache has completed a first listing.
    pub fn synced(&self) -> bool {
        self.store.synced()
    }

    pub async fn wait_synced(&self) {
        self.store.wait_synced().await;
    }

    fn require_synced(&self) -> Result<(), CentralError> {
        if self.synced() {
            Ok(())
        } else {
            Err(CentralError::unavailable(
                "central is still loading its view from ZooKeeper; retry in a moment",
            ))
        }
    }

    /// Live registrations by node id (undecodable ones are skipped with a warning).
    pub fn registrations(&self) -> Result<Decoded<NodeInfo>, CentralError> {
        self.require_synced()?;
        Ok(self.registrations_memo.get(self.store.cached(Cache::Registrations), |id, entry| {
            match serde_json::from_slice::<NodeInfo>(&entry.data) {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::warn!(node = %id, error = %e, "ignoring an unreadable node registration");
                    None
                }
            }
        }))
    }

    /// Inventory records by node id.
    pub fn inventory(&self) -> Result<Decoded<VersionedNode>, CentralError> {
        self.require_synced()?;
        Ok(self
            .inventory_memo
            .get(self.store.cached(Cache::Inventory), |_, entry| {
                serde_json::from_slice::<NodeRecord>(&entry.data)
                    .ok()
                    .map(|record| VersionedNode::new(record, entry.stat.version))
            }))
    }

    /// The placeable nodes of `pool` with their scheduler views, rebuilt only when a cache changed.
    pub fn pool_nodes(&self, pool: &str) -> Result<Arc<PoolNodes>, CentralError> {
        let registrations = self.registrations()?;
        let inventory = self.inventory()?;
        let mut memo = match self.pools_memo.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let fresh = match memo.as_ref() {
            Some((r, i, pools)) if Arc::ptr_eq(r, &registrations) && Arc::ptr_eq(i, &inventory) => {
                pools.clone()
            }
            _ => {
                let pools = Arc::new(pool_nodes(&registrations, &inventory));
                *memo = Some((registrations, inventory, pools.clone()));
                pools
            }
        };
        Ok(fresh.get(pool).cloned().unwrap_or_default())
    }

    /// Whether the pools cache holds `pool`.
    pub fn pool_cached(&self, pool: &str) -> bool {
        self.store.cached(Cache::Pools).contains_key(pool)
    }

    /// Re-reads one inventory record from ZooKeeper (after a lost race).
    pub async fn fresh_inventory(&self, node: &str) -> Result<Option<VersionedNode>, StoreError> {
        Ok(self
            .store
            .inventory(node)
            .await?
            .map(|(record, version)| VersionedNode::new(record, version)))
    }

    /// Resolves a bearer token. A miss re-reads the pools from ZooKeeper once, so a token
    /// created through another instance a moment ago works here too.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Principal, CentralError> {
        let token = token.ok_or(CentralError::Unauthorized)?;
        let cached: Vec<PoolRecord> = self
            .store
            .cached(Cache::Pools)
            .values()
            .filter_map(|e| serde_json::from_slice(&e.data).ok())
            .collect();
        if let Some(p) = crate::auth::authenticate(token, &self.admin_hash, &cached) {
            return Ok(p);
        }
        // A miss re-reads the pools, but at most every 250 ms: concurrent misses wait for one
        // read and share it, so requests with bogus tokens cannot flood ZooKeeper.
        let mut recent = self.fresh_pools.lock().await;
        let now = crate::now_millis();
        if now.saturating_sub(recent.0) >= 250 {
            *recent = (now, self.store.pools().await?);
        }
        let fresh = recent.1.clone();
        drop(recent);
        crate::auth::authenticate(token, &self.admin_hash, &fresh).ok_or(CentralError::Unauthorized)
    }
}
