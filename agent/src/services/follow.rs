//! The part of ZooKeeper the node's services follow, one `ChildrenCache` each: the pool's
//! networks, containers and, per network, its directory (the `dns` service), `ips` and `lbs`;
//! the node registrations (underlays) and the status directory of every node (health and state
//! of service replicas and backends). Caches start and stop as networks and nodes come and go;
//! any change wakes the services loop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use caas_api::central::ContainerRecord;
use caas_api::network::{IpAllocation, NetworkSpec};
use caas_api::service::{DnsSpec, LbSpec};
use caas_api::{NodeInfo, WorkloadKey, WorkloadStatus, ZkLayout};
use caas_zk::{CacheError, CacheOptions, ChildMap, ChildrenCache, ClientWatch};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::model::Snapshot;

struct NetCaches {
    dir: ChildrenCache,
    ips: ChildrenCache,
    lbs: ChildrenCache,
}

pub struct Follow {
    clients: ClientWatch,
    layout: ZkLayout,
    pool: String,
    options: CacheOptions,
    changed: Arc<Notify>,
    cancel: CancellationToken,
    networks: ChildrenCache,
    containers: ChildrenCache,
    nodes: ChildrenCache,
    per_net: BTreeMap<String, NetCaches>,
    statuses: BTreeMap<String, ChildrenCache>,
}

fn decode<T: DeserializeOwned>(map: &ChildMap) -> impl Iterator<Item = (&String, T)> + '_ {
    map.iter()
        .filter_map(|(name, e)| Some((name, serde_json::from_slice::<T>(&e.data).ok()?)))
}

fn synced(cache: &ChildrenCache) -> bool {
    *cache.synced().borrow()
}

impl Follow {
    pub fn start(
        clients: ClientWatch,
        layout: ZkLayout,
        pool: String,
        relist: Duration,
        cancel: CancellationToken,
    ) -> Result<Self, CacheError> {
        let options = CacheOptions {
            relist_interval: relist,
        };
        let changed = Arc::new(Notify::new());
        let start = |path: String| -> Result<ChildrenCache, CacheError> {
            let cache =
                ChildrenCache::start(clients.clone(), path, options.clone(), cancel.clone())?;
            forward_changes(&cache, changed.clone(), cancel.clone());
            Ok(cache)
        };
        let networks = start(layout.networks(&pool))?;
        let containers = start(layout.containers(&pool))?;
        let nodes = start(layout.nodes())?;
        Ok(Self {
            clients,
            layout,
            pool,
            options,
            changed,
            cancel,
            networks,
            containers,
            nodes,
            per_net: BTreeMap::new(),
            statuses: BTreeMap::new(),
        })
    }

    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    fn cache(&self, path: String) -> Option<ChildrenCache> {
        match ChildrenCache::start(
            self.clients.clone(),
            path.clone(),
            self.options.clone(),
            self.cancel.clone(),
        ) {
            Ok(cache) => {
                forward_changes(&cache, self.changed.clone(), self.cancel.clone());
                Some(cache)
            }
            Err(e) => {
                tracing::warn!(%path, error = %e, "cannot follow");
                None
            }
        }
    }

    /// Starts and stops the per-network and per-node caches to match what is listed now.
    pub async fn refresh(&mut self) {
        let networks: BTreeSet<String> = self.networks.current().keys().cloned().collect();
        let gone: Vec<String> = self
            .per_net
            .keys()
            .filter(|n| !networks.contains(*n))
            .cloned()
            .collect();
        for net in gone {
            if let Some(c) = self.per_net.remove(&net) {
                c.dir.shutdown().await;
                c.ips.shutdown().await;
                c.lbs.shutdown().await;
            }
        }
        for net in networks {
            if self.per_net.contains_key(&net) {
                continue;
            }
            let (Some(dir), Some(ips), Some(lbs)) = (
                self.cache(self.layout.network(&self.pool, &net)),
                self.cache(self.layout.ips(&self.pool, &net)),
                self.cache(self.layout.lbs(&self.pool, &net)),
            ) else {
                continue;
            };
            self.per_net.insert(net, NetCaches { dir, ips, lbs });
        }
        let mut nodes: BTreeSet<String> = self.nodes.current().keys().cloned().collect();
        for (_, record) in decode::<ContainerRecord>(&self.containers.current()) {
            nodes.insert(record.node);
        }
        let gone: Vec<String> = self
            .statuses
            .keys()
            .filter(|n| !nodes.contains(*n))
            .cloned()
            .collect();
        for node in gone {
            if let Some(c) = self.statuses.remove(&node) {
                c.shutdown().await;
            }
        }
        for node in nodes {
            if node.is_empty() || self.statuses.contains_key(&node) {
                continue;
            }
            if let Some(c) = self.cache(self.layout.status_dir(&node)) {
                self.statuses.insert(node, c);
            }
        }
    }

    /// Whether every cache has completed a listing (before that, an empty map means unknown).
    pub fn synced(&self) -> bool {
        synced(&self.networks)
            && synced(&self.containers)
            && synced(&self.nodes)
            && self
                .per_net
                .values()
                .all(|c| synced(&c.dir) && synced(&c.ips) && synced(&c.lbs))
            && self.statuses.values().all(synced)
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            networks: decode::<NetworkSpec>(&self.networks.current())
                .map(|(_, n)| n)
                .collect(),
            ..Default::default()
        };
        for (net, c) in &self.per_net {
            if let Some(entry) = c.dir.current().get("dns") {
                if let Ok(dns) = serde_json::from_slice::<DnsSpec>(&entry.data) {
                    s.dns.insert(net.clone(), dns);
                }
            }
            s.ips.insert(
                net.clone(),
                decode::<IpAllocation>(&c.ips.current())
                    .map(|(_, a)| a)
                    .collect(),
            );
            s.lbs.insert(
                net.clone(),
                decode::<LbSpec>(&c.lbs.current()).map(|(_, l)| l).collect(),
            );
        }
        for (name, record) in decode::<ContainerRecord>(&self.containers.current()) {
            if let Some(statuses) = self.statuses.get(&record.node) {
                let key = WorkloadKey::new(&self.pool, name).to_string();
                if let Some(entry) = statuses.current().get(&key) {
                    if let Ok(status) = serde_json::from_slice::<WorkloadStatus>(&entry.data) {
                        s.statuses.insert(name.clone(), status);
                    }
                }
            }
            s.containers.insert(name.clone(), record);
        }
        for (node, info) in decode::<NodeInfo>(&self.nodes.current()) {
            if let Some(ip) = info.underlay.and_then(|u| u.parse().ok()) {
                s.underlays.insert(node.clone(), ip);
            }
        }
        s
    }

    pub async fn shutdown(self) {
        for (_, c) in self.per_net {
            c.dir.shutdown().await;
            c.ips.shutdown().await;
            c.lbs.shutdown().await;
        }
        for (_, c) in self.statuses {
            c.shutdown().await;
        }
        self.networks.shutdown().await;
        self.containers.shutdown().await;
        self.nodes.shutdown().await;
    }
}

fn forward_changes(cache: &ChildrenCache, changed: Arc<Notify>, cancel: CancellationToken) {
    let mut snapshots = cache.snapshot();
    let mut synced = cache.synced();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = snapshots.changed() => if r.is_err() { return },
                r = synced.changed() => if r.is_err() { return },
            }
            changed.notify_one();
        }
    });
}
