//! The wiring logic, on any `NetworkBackend`: `wire` puts one workload's sandbox into its
//! networks (the network's bridge and VXLAN device on the node, a veth per endpoint, the
//! container end renamed and addressed inside the sandbox); `sync` keeps the node-wide part true
//! (devices of networks no local workload uses any more are removed, FDB and neighbour entries
//! follow the remote endpoints, the nftables table, IP forwarding). Both read the kernel first
//! and change only what differs, so a pass over a converged node changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use caas_api::network::{
    Endpoint, InterfaceStatus, NetworkDriver, NetworkSupport, GATEWAY_MAC, VXLAN_MTU, VXLAN_PORT,
};
use ipnet::Ipv4Net;

use super::firewall::{self, FirewallNetwork};
use super::{
    bridge_name, format_mac, owned_vni, parse_mac, veth_names, vxlan_name, FdbEntry,
    InterfaceConfig, LinkChange, LinkKind, LinkState, Mac, NeighbourEntry, NetError,
    NetworkBackend, ZERO_MAC,
};

/// MTU of a plain bridge network.
pub const BRIDGE_MTU: u32 = 1500;

/// Why wiring failed; becomes the workload's `last_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WiringError {
    /// The node cannot carry the network (kernel feature missing, no underlay): not retried
    /// hot, the spec or the node must change.
    #[error("{0}")]
    Unsupported(String),
    /// A step failed; retried with backoff.
    #[error("{0}")]
    Failed(String),
}

impl From<NetError> for WiringError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Unsupported(m) => Self::Unsupported(m),
            other => Self::Failed(other.to_string()),
        }
    }
}

/// A network as the node wires it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDesc {
    pub vni: u32,
    pub driver: NetworkDriver,
    /// The subnet with the gateway's address (`10.0.0.1/24`).
    pub gateway: Ipv4Net,
}

impl NetworkDesc {
    pub fn from_endpoint(e: &Endpoint) -> Result<Self, WiringError> {
        let subnet = e
            .validate("networks")
            .map_err(|v| WiringError::Failed(v.to_string()))?
            .0;
        let gateway = Ipv4Net::new(subnet.gateway, subnet.net.prefix_len())
            .map_err(|e| WiringError::Failed(e.to_string()))?;
        Ok(Self {
            vni: e.vni,
            driver: e.driver,
            gateway,
        })
    }

    fn mtu(&self) -> u32 {
        match self.driver {
            NetworkDriver::Vxlan => VXLAN_MTU,
            NetworkDriver::Bridge => BRIDGE_MTU,
        }
    }
}

/// An endpoint of another node, as its VXLAN entries need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemoteEndpoint {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    /// The underlay address of its node.
    pub vtep: Ipv4Addr,
}

/// What the node-wide pass converges to.
#[derive(Debug, Clone, Default)]
pub struct NodeNetworks {
    /// Networks that workloads assigned to this node use, by VNI.
    pub local: BTreeMap<u32, NetworkDesc>,
    /// Endpoints on other nodes, by VNI.
    pub remote: BTreeMap<u32, Vec<RemoteEndpoint>>,
    /// VNIs whose remote endpoints were read completely: only there are entries removed.
    pub complete: BTreeSet<u32>,
    /// Host ends of the veth pairs of the sandboxes that run here; any other `cw*` veth is a
    /// leftover of a removed sandbox (whose namespace the kernel may free late) and goes.
    pub veths: BTreeSet<String>,
}

impl NodeNetworks {
    /// Records the veths of a workload's sandbox.
    pub fn expect_veths(&mut self, workload: &str, sandbox_id: &str, endpoints: &[Endpoint]) {
        for e in endpoints {
            self.veths
                .insert(veth_names(workload, sandbox_id, &e.interface).0);
        }
    }
}

/// What a `sync` changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub removed_devices: Vec<String>,
    pub entries_added: usize,
    pub entries_removed: usize,
    pub firewall_applied: bool,
}

/// Wires workloads and the node's networks through a backend.
pub struct Wiring {
    backend: Arc<dyn NetworkBackend>,
    underlay: Option<Ipv4Addr>,
    support: NetworkSupport,
    /// Device changes of the node (parallel workloads sharing a network) go one at a time.
    lock: tokio::sync::Mutex<()>,
    /// The table last applied (None: not applied since start).
    firewall: std::sync::Mutex<Option<Option<String>>>,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring")
            .field("underlay", &self.underlay)
            .field("support", &self.support)
            .finish()
    }
}

struct Wanted<'a> {
    endpoint: &'a Endpoint,
    network: NetworkDesc,
    config: InterfaceConfig,
}

impl Wiring {
    pub fn new(
        backend: Arc<dyn NetworkBackend>,
        underlay: Option<Ipv4Addr>,
        support: NetworkSupport,
    ) -> Self {
        Self {
            backend,
            underlay,
            support,
            lock: tokio::sync::Mutex::new(()),
            firewall: std::sync::Mutex::new(None),
        }
    }

    pub fn support(&self) -> &NetworkSupport {
        &self.support
    }

    /// Checks that this node can carry these endpoints, before anything is touched.
    pub fn check(&self, endpoints: &[Endpoint]) -> Result<(), WiringError> {
        for e in endpoints {
            if !self.support.carries(e.driver) {
                return Err(WiringError::Unsupported(format!(
                    "this node cannot carry {} network {}: {}",
                    e.driver.as_str(),
                    e.network,
                    self.support
                        .missing
                        .clone()
                        .unwrap_or_else(|| "the kernel lacks the feature".into())
                )));
            }
            if e.driver == NetworkDriver::Vxlan && self.underlay.is_none() {
                return Err(WiringError::Unsupported(format!(
                    "vxlan network {} needs the agent's `underlay` address (the VTEP); set it in agent.toml",
                    e.network
                )));
            }
        }
        Ok(())
    }

    /// Wires a workload's sandbox (process `pid`) into its networks; returns the interfaces as
    /// the kernel shows them afterwards. A failure removes what this call created.
    pub async fn wire(
        &self,
        workload: &str,
        sandbox_id: &str,
        pid: u32,
        endpoints: &[Endpoint],
    ) -> Result<Vec<InterfaceStatus>, WiringError> {
        self.check(endpoints)?;
        let mut wanted = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            let network = NetworkDesc::from_endpoint(e)?;
            let ip: Ipv4Addr =
                e.ip.parse()
                    .map_err(|_| WiringError::Failed(format!("bad ip {}", e.ip)))?;
            let mac = parse_mac(&e.mac)
                .ok_or_else(|| WiringError::Failed(format!("bad mac {}", e.mac)))?;
            let address = Ipv4Net::new(ip, network.gateway.prefix_len())
                .map_err(|e| WiringError::Failed(e.to_string()))?;
            let config = InterfaceConfig {
                name: e.interface.clone(),
                mac,
                mtu: network.mtu(),
                address,
                default_gateway: (i == 0).then_some(network.gateway.addr()),
            };
            wanted.push(Wanted {
                endpoint: e,
                network,
                config,
            });
        }
        let _guard = self.lock.lock().await;
        let mut created = Vec::new();
        match self
            .wire_locked(workload, sandbox_id, pid, &wanted, &mut created)
            .await
        {
            Ok(interfaces) => Ok(interfaces),
            Err(e) => {
                for name in created.iter().rev() {
                    if let Err(cleanup) = self.backend.del_link(name).await {
                        tracing::warn!(device = %name, error = %cleanup, "removing a device after a failed wiring failed");
                    }
                }
                Err(e)
            }
        }
    }

    async fn wire_locked(
        &self,
        workload: &str,
        sandbox_id: &str,
        pid: u32,
        wanted: &[Wanted<'_>],
        created: &mut Vec<String>,
    ) -> Result<Vec<InterfaceStatus>, WiringError> {
        let mut links = self.backend.links().await?;
        let mut bridges = BTreeMap::new();
        for w in wanted {
            if bridges.contains_key(&w.network.vni) {
                continue;
            }
            let index = self.ensure_network(&w.network, &mut links, created).await?;
            bridges.insert(w.network.vni, index);
        }
        let mut sandbox = self.backend.sandbox(pid).await?;
        let mut changed = false;
        for w in wanted {
            let (host, peer) = veth_names(workload, sandbox_id, &w.config.name);
            let bridge = bridges[&w.network.vni];
            let host_link = links.iter().find(|l| l.name == host);
            let inner = sandbox.links.iter().find(|l| l.name == w.config.name);
            let host_ok = host_link.is_some_and(|l| l.kind == LinkKind::Veth);
            match (host_ok, inner) {
                (true, Some(inner)) => {
                    if !interface_matches(inner, &w.config, sandbox.default_gateway) {
                        tracing::info!(workload, interface = %w.config.name, "fixing the interface inside the sandbox");
                        self.backend
                            .configure_sandbox(pid, &w.config.name, &w.config)
                            .await?;
                        changed = true;
                    }
                }
                (true, None) if sandbox.links.iter().any(|l| l.name == peer) => {
                    // An earlier attempt moved the peer in but did not finish.
                    self.backend
                        .configure_sandbox(pid, &peer, &w.config)
                        .await?;
                    changed = true;
                }
                _ => {
                    if inner.is_some() {
                        // An interface of that name whose host end is not ours.
                        self.backend.del_sandbox_link(pid, &w.config.name).await?;
                    }
                    if host_link.is_some() {
                        self.backend.del_link(&host).await?;
                    }
                    tracing::info!(workload, interface = %w.config.name, network = %w.endpoint.network, ip = %w.endpoint.ip, "wiring the interface");
                    self.backend.add_veth(&host, &peer, pid).await?;
                    created.push(host.clone());
                    self.backend
                        .configure_sandbox(pid, &peer, &w.config)
                        .await?;
                    changed = true;
                    links = self.backend.links().await?;
                }
            }
            let host_link = links.iter().find(|l| l.name == host);
            let change = LinkChange {
                mac: None,
                mtu: host_link
                    .filter(|l| l.mtu != w.config.mtu)
                    .map(|_| w.config.mtu),
                master: host_link
                    .filter(|l| l.master != Some(bridge))
                    .map(|_| bridge),
                up: host_link.is_some_and(|l| !l.up),
            };
            if change != LinkChange::default() {
                self.backend.set_link(&host, &change).await?;
            }
        }
        // Interfaces the spec no longer has.
        let names: BTreeSet<&str> = wanted.iter().map(|w| w.config.name.as_str()).collect();
        for stale in sandbox
            .links
            .iter()
            .filter(|l| l.kind == LinkKind::Veth && !names.contains(l.name.as_str()))
            .filter(|l| l.name.starts_with("eth"))
        {
            tracing::info!(workload, interface = %stale.name, "removing an interface the spec no longer has");
            self.backend.del_sandbox_link(pid, &stale.name).await?;
            changed = true;
        }
        if changed {
            sandbox = self.backend.sandbox(pid).await?;
        }
        Ok(wanted
            .iter()
            .filter_map(|w| {
                let link = sandbox.links.iter().find(|l| l.name == w.config.name)?;
                Some(InterfaceStatus {
                    name: link.name.clone(),
                    network: w.endpoint.network.clone(),
                    ip: link
                        .addresses
                        .first()
                        .map(|a| a.addr().to_string())
                        .unwrap_or_default(),
                    mac: link.mac.as_ref().map(format_mac).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// The bridge (and VXLAN device) of a network, as they must be; returns the bridge index.
    async fn ensure_network(
        &self,
        net: &NetworkDesc,
        links: &mut Vec<LinkState>,
        created: &mut Vec<String>,
    ) -> Result<u32, WiringError> {
        let bridge = bridge_name(net.vni);
        let gateway_mac =
            parse_mac(GATEWAY_MAC).ok_or_else(|| WiringError::Failed("bad GATEWAY_MAC".into()))?;
        if !links
            .iter()
            .any(|l| l.name == bridge && l.kind == LinkKind::Bridge)
        {
            if links.iter().any(|l| l.name == bridge) {
                self.backend.del_link(&bridge).await?;
            }
            tracing::info!(bridge = %bridge, vni = net.vni, gateway = %net.gateway, "creating the network's bridge");
            self.backend.add_bridge(&bridge).await?;
            created.push(bridge.clone());
            *links = self.backend.links().await?;
        }
        let b = find(links, &bridge)?;
        let index = b.index;
        let change = LinkChange {
            mac: (b.mac != Some(gateway_mac)).then_some(gateway_mac),
            mtu: (b.mtu != net.mtu()).then_some(net.mtu()),
            master: None,
            up: !b.up,
        };
        let stale: Vec<Ipv4Net> = b
            .addresses
            .iter()
            .copied()
            .filter(|a| *a != net.gateway)
            // Load balancer VIPs (/32) are kept by `services::lb`, not the wiring.
            .filter(|a| a.prefix_len() != 32)
            .collect();
        let has_gateway = b.addresses.contains(&net.gateway);
        for a in stale {
            self.backend.del_address(&bridge, a).await?;
        }
        if !has_gateway {
            self.backend.add_address(&bridge, net.gateway).await?;
        }
        let vxlan = vxlan_name(net.vni);
        let existing = links.iter().find(|l| l.name == vxlan).cloned();
        match net.driver {
            NetworkDriver::Vxlan => {
                let local = self.underlay.ok_or_else(|| {
                    WiringError::Unsupported("no underlay address configured".into())
                })?;
                let right = existing.as_ref().is_some_and(|l| {
                    matches!(&l.kind, LinkKind::Vxlan(v) if v.vni == net.vni
                        && v.local == Some(local) && v.port == VXLAN_PORT && !v.learning && v.proxy)
                });
                if !right {
                    if existing.is_some() {
                        tracing::info!(device = %vxlan, "recreating a VXLAN device whose settings differ");
                        self.backend.del_link(&vxlan).await?;
                    }
                    tracing::info!(device = %vxlan, vni = net.vni, %local, "creating the network's VXLAN device");
                    self.backend
                        .add_vxlan(&vxlan, net.vni, local, VXLAN_PORT)
                        .await?;
                    created.push(vxlan.clone());
                    *links = self.backend.links().await?;
                }
                let v = find(links, &vxlan)?;
                let vchange = LinkChange {
                    mac: None,
                    mtu: (v.mtu != VXLAN_MTU).then_some(VXLAN_MTU),
                    master: (v.master != Some(index)).then_some(index),
                    up: !v.up,
                };
                if vchange != LinkChange::default() {
                    self.backend.set_link(&vxlan, &vchange).await?;
                }
            }
            NetworkDriver::Bridge => {
                if existing.is_some() {
                    self.backend.del_link(&vxlan).await?;
                }
            }
        }
        if change != LinkChange::default() {
            self.backend.set_link(&bridge, &change).await?;
        }
        if change != LinkChange::default() || !has_gateway {
            *links = self.backend.links().await?;
        }
        Ok(index)
    }

    /// The node-wide pass: devices of unused networks go, remote entries follow ZooKeeper, the
    /// firewall table matches the networks, forwarding is on while any network is wired.
    pub async fn sync(&self, nets: &NodeNetworks) -> Result<SyncReport, WiringError> {
        let _guard = self.lock.lock().await;
        let mut report = SyncReport::default();
        let links = self.backend.links().await?;
        // VXLAN devices first, then bridges.
        let mut unused: Vec<&LinkState> = links
            .iter()
            .filter(|l| owned_vni(&l.name).is_some_and(|vni| !nets.local.contains_key(&vni)))
            .filter(|l| matches!(l.kind, LinkKind::Bridge | LinkKind::Vxlan(_)))
            .collect();
        unused.sort_by_key(|l| l.kind == LinkKind::Bridge);
        for l in unused {
            tracing::info!(device = %l.name, "removing the devices of a network no local workload uses");
            self.backend.del_link(&l.name).await?;
            report.removed_devices.push(l.name.clone());
        }
        for l in links.iter().filter(|l| {
            l.kind == LinkKind::Veth && l.name.starts_with("cw") && !nets.veths.contains(&l.name)
        }) {
            tracing::info!(device = %l.name, "removing the veth of a sandbox that is gone");
            self.backend.del_link(&l.name).await?;
            report.removed_devices.push(l.name.clone());
        }
        let mut firewall_networks = Vec::new();
        for (vni, net) in &nets.local {
            let bridge = bridge_name(*vni);
            if !links.iter().any(|l| l.name == bridge) {
                continue;
            }
            let remote = nets.remote.get(vni).map(Vec::as_slice).unwrap_or_default();
            let peers: BTreeSet<Ipv4Addr> = remote.iter().map(|r| r.vtep).collect();
            let vxlan = vxlan_name(*vni);
            if net.driver == NetworkDriver::Vxlan && links.iter().any(|l| l.name == vxlan) {
                self.sync_entries(&vxlan, remote, nets.complete.contains(vni), &mut report)
                    .await?;
            }
            firewall_networks.push(FirewallNetwork {
                vni: *vni,
                subnet: net.gateway.trunc(),
                vxlan: net.driver == NetworkDriver::Vxlan,
                peers,
            });
        }
        let ruleset = firewall::render(&firewall_networks);
        let applied = self.firewall.lock().map(|f| f.clone()).unwrap_or_default();
        if applied.as_ref() != Some(&ruleset) {
            self.backend.apply_firewall(ruleset.as_deref()).await?;
            tracing::info!(
                networks = firewall_networks.len(),
                "replaced the nftables table inet caas"
            );
            if let Ok(mut f) = self.firewall.lock() {
                *f = Some(ruleset);
            }
            report.firewall_applied = true;
        }
        if !firewall_networks.is_empty() && self.backend.enable_forwarding().await? {
            tracing::info!("enabled IPv4 forwarding in the agent's network namespace");
        }
        Ok(report)
    }

    async fn sync_entries(
        &self,
        vxlan: &str,
        remote: &[RemoteEndpoint],
        complete: bool,
        report: &mut SyncReport,
    ) -> Result<(), WiringError> {
        let mut want_fdb: BTreeSet<FdbEntry> = BTreeSet::new();
        let mut want_neigh: BTreeSet<NeighbourEntry> = BTreeSet::new();
        for r in remote {
            want_fdb.insert(FdbEntry {
                mac: r.mac,
                vtep: r.vtep,
            });
            want_fdb.insert(FdbEntry {
                mac: ZERO_MAC,
                vtep: r.vtep,
            });
            want_neigh.insert(NeighbourEntry {
                ip: r.ip,
                mac: r.mac,
            });
        }
        let have_fdb: BTreeSet<FdbEntry> = self.backend.fdb(vxlan).await?.into_iter().collect();
        let have_neigh: BTreeSet<NeighbourEntry> =
            self.backend.neighbours(vxlan).await?.into_iter().collect();
        if complete {
            for e in have_neigh.difference(&want_neigh) {
                self.backend.del_neighbour(vxlan, *e).await?;
                report.entries_removed += 1;
            }
            for e in have_fdb.difference(&want_fdb) {
                self.backend.del_fdb(vxlan, *e).await?;
                report.entries_removed += 1;
            }
        }
        for e in want_fdb.difference(&have_fdb) {
            self.backend.add_fdb(vxlan, *e).await?;
            report.entries_added += 1;
        }
        for e in want_neigh.difference(&have_neigh) {
            self.backend.add_neighbour(vxlan, *e).await?;
            report.entries_added += 1;
        }
        Ok(())
    }
}

fn find<'a>(links: &'a [LinkState], name: &str) -> Result<&'a LinkState, WiringError> {
    links
        .iter()
        .find(|l| l.name == name)
        .ok_or_else(|| WiringError::Failed(format!("device {name} vanished")))
}

/// Whether an interface inside the sandbox is exactly as configured.
fn interface_matches(
    link: &LinkState,
    config: &InterfaceConfig,
    default_gateway: Option<Ipv4Addr>,
) -> bool {
    link.mac == Some(config.mac)
        && link.mtu == config.mtu
        && link.up
        && link.addresses == [config.address]
        && config
            .default_gateway
            .is_none_or(|gw| default_gateway == Some(gw))
}

#[cfg(test)]
mod tests;
