//! What ZooKeeper says about the endpoints of other nodes: one `ChildrenCache` per network this
//! node carries (`pools/<pool>/networks/<net>/ips`, one `IpAllocation` per used address) and one
//! on the node registrations (their underlay addresses). Caches are started and stopped as the
//! node's networks come and go; any change wakes the agent's loop at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use caas_api::network::{IpAllocation, NetworkDriver};
use caas_api::{NodeInfo, ZkLayout};
use caas_zk::{CacheError, CacheOptions, ChildMap, ChildrenCache, ClientWatch};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::wiring::{NetworkDesc, RemoteEndpoint};
use super::{parse_mac, Mac};

/// A network by pool and name.
pub type NetworkRef = (String, String);

/// The followed part of ZooKeeper.
pub struct RemoteView {
    clients: ClientWatch,
    layout: ZkLayout,
    node_id: String,
    options: CacheOptions,
    nodes: ChildrenCache,
    ips: BTreeMap<NetworkRef, ChildrenCache>,
    changed: Arc<Notify>,
    cancel: CancellationToken,
    /// Last addresses seen per node: a registration that is briefly gone (an agent restarting
    /// waits for its old session to expire) does not tear down its tunnels.
    addresses: BTreeMap<String, NodeAddresses>,
}

/// What other nodes' endpoints need of their node: the underlay (VTEP) of overlay networks, the
/// uplink MAC of MAC-NAT vlan networks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeAddresses {
    pub underlay: Option<Ipv4Addr>,
    pub uplink_mac: Option<Mac>,
}

impl std::fmt::Debug for RemoteView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteView")
            .field("networks", &self.ips.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RemoteView {
    pub fn start(
        clients: ClientWatch,
        layout: ZkLayout,
        node_id: String,
        relist: Duration,
        cancel: CancellationToken,
    ) -> Result<Self, CacheError> {
        let options = CacheOptions {
            relist_interval: relist,
        };
        let changed = Arc::new(Notify::new());
        let nodes = ChildrenCache::start(
            clients.clone(),
            layout.nodes(),
            options.clone(),
            cancel.clone(),
        )?;
        forward_changes(&nodes, changed.clone(), cancel.clone());
        Ok(Self {
            clients,
            layout,
            node_id,
            options,
            nodes,
            ips: BTreeMap::new(),
            changed,
            cancel,
            addresses: BTreeMap::new(),
        })
    }

    /// Wakes whenever a followed directory changed.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Follows exactly these networks.
    pub async fn follow(&mut self, wanted: &BTreeSet<NetworkRef>) {
        let gone: Vec<NetworkRef> = self
            .ips
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(cache) = self.ips.remove(&key) {
                cache.shutdown().await;
            }
        }
        for key in wanted {
            if self.ips.contains_key(key) {
                continue;
            }
            match ChildrenCache::start(
                self.clients.clone(),
                self.layout.ips(&key.0, &key.1),
                self.options.clone(),
                self.cancel.clone(),
            ) {
                Ok(cache) => {
                    forward_changes(&cache, self.changed.clone(), self.cancel.clone());
                    tracing::debug!(pool = %key.0, network = %key.1, "following the network's endpoints");
                    self.ips.insert(key.clone(), cache);
                }
                Err(e) => {
                    tracing::warn!(pool = %key.0, network = %key.1, error = %e, "cannot follow the network's endpoints")
                }
            }
        }
    }

    /// Remote endpoints of the followed networks (by the VNI given per network; `local` says
    /// which are vlan networks), and the VNIs whose listing is complete.
    pub fn view(
        &mut self,
        vnis: &BTreeMap<NetworkRef, u32>,
        local: &BTreeMap<u32, NetworkDesc>,
    ) -> (BTreeMap<u32, Vec<RemoteEndpoint>>, BTreeSet<u32>) {
        let nodes_synced = *self.nodes.synced().borrow();
        self.addresses.extend(node_addresses(&self.nodes.current()));
        let mut remote = BTreeMap::new();
        let mut complete = BTreeSet::new();
        for (key, vni) in vnis {
            let Some(cache) = self.ips.get(key) else {
                continue;
            };
            let tunnelled = local
                .get(vni)
                .is_none_or(|d| d.driver != NetworkDriver::Vlan);
            let endpoints =
                remote_endpoints(&cache.current(), &self.addresses, &self.node_id, tunnelled);
            remote.insert(*vni, endpoints);
            if nodes_synced && *cache.synced().borrow() {
                complete.insert(*vni);
            }
        }
        (remote, complete)
    }

    pub async fn shutdown(self) {
        for (_, cache) in self.ips {
            cache.shutdown().await;
        }
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

/// Underlay address and uplink MAC per registered node.
pub fn node_addresses(nodes: &ChildMap) -> BTreeMap<String, NodeAddresses> {
    nodes
        .iter()
        .filter_map(|(id, entry)| {
            let info: NodeInfo = serde_json::from_slice(&entry.data).ok()?;
            let addresses = NodeAddresses {
                underlay: info.underlay.and_then(|u| u.parse().ok()),
                uplink_mac: info.networks.uplink_mac.as_deref().and_then(parse_mac),
            };
            Some((id.clone(), addresses))
        })
        .collect()
}

/// The endpoints of a network's `ips` listing that live on other nodes; of a `tunnelled`
/// (overlay) network only those whose node's underlay is known.
pub fn remote_endpoints(
    ips: &ChildMap,
    nodes: &BTreeMap<String, NodeAddresses>,
    self_node: &str,
    tunnelled: bool,
) -> Vec<RemoteEndpoint> {
    let mut out: Vec<RemoteEndpoint> = ips
        .iter()
        .filter_map(|(name, entry)| {
            let a: IpAllocation = match serde_json::from_slice(&entry.data) {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(znode = %name, error = %e, "ignoring an unreadable address allocation");
                    return None;
                }
            };
            if a.node == self_node {
                return None;
            }
            let node = nodes.get(&a.node).copied().unwrap_or_default();
            let vtep = match (tunnelled, node.underlay) {
                (true, None) => return None,
                (_, underlay) => underlay.unwrap_or(Ipv4Addr::UNSPECIFIED),
            };
            Some(RemoteEndpoint {
                ip: a.ip.parse().ok()?,
                mac: parse_mac(&a.mac)?,
                vtep,
                node_mac: node.uplink_mac,
            })
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_zk::ChildEntry;

    fn stat() -> caas_zk::zookeeper_client::Stat {
        caas_zk::zookeeper_client::Stat {
            czxid: 1,
            mzxid: 1,
            pzxid: 1,
            ctime: 0,
            mtime: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 0,
            num_children: 0,
        }
    }

    fn entry(data: serde_json::Value) -> ChildEntry {
        ChildEntry {
            data: serde_json::to_vec(&data).unwrap(),
            stat: stat(),
        }
    }

    #[test]
    fn endpoints_of_other_nodes_with_their_vteps() {
        let mut ips = ChildMap::new();
        for (ip, node) in [("10.0.0.2", "n1"), ("10.0.0.3", "n2"), ("10.0.0.4", "n3")] {
            ips.insert(
                ip.into(),
                entry(serde_json::json!({
                    "ip": ip, "mac": caas_api::network::mac_for(ip.parse().unwrap()),
                    "workload": "w", "node": node,
                })),
            );
        }
        ips.insert(
            "junk".into(),
            ChildEntry {
                data: b"{".to_vec(),
                stat: stat(),
            },
        );
        let at = |ip: [u8; 4]| NodeAddresses {
            underlay: Some(ip.into()),
            uplink_mac: Some([2, 0, 0, 0, 0, ip[3]]),
        };
        let nodes = BTreeMap::from([
            ("n1".to_string(), at([198, 18, 0, 11])),
            ("n2".to_string(), at([198, 18, 0, 12])),
        ]);
        let r = remote_endpoints(&ips, &nodes, "n1", true);
        // n1 is us, n3 has no known underlay.
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].ip, Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(r[0].vtep, Ipv4Addr::new(198, 18, 0, 12));
        assert_eq!(r[0].node_mac, Some([2, 0, 0, 0, 0, 12]));
        // A vlan network has no tunnel: n3's endpoint counts without an underlay.
        let r = remote_endpoints(&ips, &nodes, "n1", false);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].vtep, Ipv4Addr::UNSPECIFIED);
        assert_eq!(r[1].node_mac, None);
    }
}
