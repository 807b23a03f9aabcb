//! The wiring logic, on any `NetworkBackend`: `wire` puts one workload's sandbox into its
//! networks (the network's bridge and VXLAN device on the node, a veth per endpoint born inside
//! the sandbox and addressed there); `sync` keeps the node-wide part true (devices of networks
//! no local workload uses any more are removed, FDB and neighbour entries follow the remote
//! endpoints, the nftables table, IP forwarding). Both change only what differs, so a pass over
//! a converged node changes nothing. `wire` looks devices up by name; `sync` reads the node's
//! devices and entries whole only every `full_sync_every` (or after a failure) and in between
//! applies the difference against what it knows it left (`Known`), so a pass costs nothing that
//! grows with the number of endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use caas_api::network::{
    Endpoint, InterfaceStatus, NetworkDriver, NetworkSupport, GATEWAY_MAC, VXLAN_MTU, VXLAN_PORT,
};
use ipnet::Ipv4Net;

use super::firewall::{self, FirewallNetwork};
use super::{
    bridge_name, format_mac, host_veth_name, owned_vni, parse_mac, vxlan_name, FdbEntry,
    InterfaceConfig, LinkChange, LinkKind, LinkState, Mac, NeighbourEntry, NetError,
    NetworkBackend, VethPair, VETH_PREFIX, ZERO_MAC,
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
                .insert(host_veth_name(workload, sandbox_id, &e.interface));
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

/// How often `sync` reads the node's devices and entries whole by default.
pub const DEFAULT_FULL_SYNC_EVERY: Duration = Duration::from_secs(60);

/// What the node-wide pass knows the kernel holds, as it left it (or read it).
#[derive(Debug, Clone)]
struct Known {
    /// Our devices per VNI (`cb<vni>`, `cv<vni>`).
    devices: BTreeMap<u32, BTreeSet<String>>,
    /// Host ends of our veths.
    veths: BTreeSet<String>,
    /// Entries on each VXLAN device, by VNI.
    fdb: BTreeMap<u32, BTreeSet<FdbEntry>>,
    neighbours: BTreeMap<u32, BTreeSet<NeighbourEntry>>,
    read_at: tokio::time::Instant,
}

/// Wires workloads and the node's networks through a backend.
pub struct Wiring {
    backend: Arc<dyn NetworkBackend>,
    underlay: Option<Ipv4Addr>,
    support: NetworkSupport,
    full_sync_every: Duration,
    /// Device changes of the node (parallel workloads sharing a network) go one at a time; the
    /// lock holds what the node-wide pass knows (`None`: read the kernel whole next time).
    known: tokio::sync::Mutex<Option<Known>>,
    /// The table last applied (None: not applied since start).
    firewall: std::sync::Mutex<Option<Option<String>>>,
    /// Whether Docker's FORWARD exceptions were last made present (None: not since start).
    docker_forward: std::sync::Mutex<Option<bool>>,
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

/// What one wiring created or found, for the known state (and for undoing a failed attempt).
#[derive(Default)]
struct WireLog {
    /// Devices this call created, in order.
    created: Vec<String>,
    /// Network devices that are right now, by VNI.
    devices: BTreeMap<u32, BTreeSet<String>>,
    /// VXLAN devices this call created (they start with no entries).
    new_vxlan: BTreeSet<u32>,
    veths: BTreeSet<String>,
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
            full_sync_every: DEFAULT_FULL_SYNC_EVERY,
            known: tokio::sync::Mutex::new(None),
            firewall: std::sync::Mutex::new(None),
            docker_forward: std::sync::Mutex::new(None),
        }
    }

    /// How often `sync` reads the node's devices and entries whole instead of applying the
    /// difference against what it left (zero: every pass).
    pub fn with_full_sync_every(mut self, every: Duration) -> Self {
        self.full_sync_every = every;
        self
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
    /// they now are. A failure removes what this call created.
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
        let mut known = self.known.lock().await;
        let mut log = WireLog::default();
        match self
            .wire_locked(workload, sandbox_id, pid, &wanted, &mut log)
            .await
        {
            Ok(interfaces) => {
                if let Some(k) = known.as_mut() {
                    for (vni, devices) in log.devices {
                        k.devices.entry(vni).or_default().extend(devices);
                    }
                    for vni in log.new_vxlan {
                        k.fdb.insert(vni, BTreeSet::new());
                        k.neighbours.insert(vni, BTreeSet::new());
                    }
                    k.veths.extend(log.veths);
                }
                Ok(interfaces)
            }
            Err(e) => {
                // What the kernel holds is no longer certain: the next pass reads it whole.
                *known = None;
                for name in log.created.iter().rev() {
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
        log: &mut WireLog,
    ) -> Result<Vec<InterfaceStatus>, WiringError> {
        let mut bridges = BTreeMap::new();
        for w in wanted {
            if bridges.contains_key(&w.network.vni) {
                continue;
            }
            let index = self.ensure_network(&w.network, log).await?;
            bridges.insert(w.network.vni, index);
        }
        let sandbox = self.backend.enter_sandbox(pid).await?;
        let state = sandbox.state().await?;
        for w in wanted {
            let host = host_veth_name(workload, sandbox_id, &w.config.name);
            let bridge = bridges[&w.network.vni];
            let host_link = self.backend.link(&host).await?;
            let inner = state.links.iter().find(|l| l.name == w.config.name);
            match (host_link, inner) {
                (Some(host_link), Some(inner)) if host_link.kind == LinkKind::Veth => {
                    if !interface_matches(inner, &w.config, state.default_gateway) {
                        tracing::info!(workload, interface = %w.config.name, "fixing the interface inside the sandbox");
                        sandbox.configure(&state, inner, &w.config).await?;
                    }
                    let change = LinkChange {
                        mac: None,
                        mtu: (host_link.mtu != w.config.mtu).then_some(w.config.mtu),
                        master: (host_link.master != Some(bridge)).then_some(bridge),
                        up: !host_link.up,
                    };
                    if change != LinkChange::default() {
                        self.backend.set_link(&host, &change).await?;
                    }
                }
                (host_link, inner) => {
                    if inner.is_some() {
                        // An interface of that name whose host end is not ours.
                        sandbox.del_link(&w.config.name).await?;
                    }
                    if host_link.is_some() {
                        self.backend.del_link(&host).await?;
                    }
                    tracing::info!(workload, interface = %w.config.name, network = %w.endpoint.network, ip = %w.endpoint.ip, "wiring the interface");
                    self.backend
                        .add_veth(&VethPair {
                            host: host.clone(),
                            bridge,
                            pid,
                            peer: w.config.name.clone(),
                            peer_mac: w.config.mac,
                            mtu: w.config.mtu,
                        })
                        .await?;
                    log.created.push(host.clone());
                    let peer = sandbox.link(&w.config.name).await?.ok_or_else(|| {
                        WiringError::Failed(format!(
                            "{} vanished from the sandbox right after it was created",
                            w.config.name
                        ))
                    })?;
                    sandbox.configure(&state, &peer, &w.config).await?;
                }
            }
            log.veths.insert(host);
        }
        // Interfaces the spec no longer has.
        let names: BTreeSet<&str> = wanted.iter().map(|w| w.config.name.as_str()).collect();
        for stale in state
            .links
            .iter()
            .filter(|l| l.kind == LinkKind::Veth && !names.contains(l.name.as_str()))
            .filter(|l| l.name.starts_with("eth"))
        {
            tracing::info!(workload, interface = %stale.name, "removing an interface the spec no longer has");
            sandbox.del_link(&stale.name).await?;
        }
        Ok(wanted
            .iter()
            .map(|w| InterfaceStatus {
                name: w.config.name.clone(),
                network: w.endpoint.network.clone(),
                ip: w.config.address.addr().to_string(),
                mac: format_mac(&w.config.mac),
            })
            .collect())
    }

    /// The bridge (and VXLAN device) of a network, as they must be; returns the bridge index.
    async fn ensure_network(
        &self,
        net: &NetworkDesc,
        log: &mut WireLog,
    ) -> Result<u32, WiringError> {
        let bridge = bridge_name(net.vni);
        let gateway_mac =
            parse_mac(GATEWAY_MAC).ok_or_else(|| WiringError::Failed("bad GATEWAY_MAC".into()))?;
        let mut existing = self.backend.link(&bridge).await?;
        if existing
            .as_ref()
            .is_some_and(|l| l.kind != LinkKind::Bridge)
        {
            self.backend.del_link(&bridge).await?;
            existing = None;
        }
        let b = match existing {
            Some(b) => b,
            None => {
                tracing::info!(bridge = %bridge, vni = net.vni, gateway = %net.gateway, "creating the network's bridge");
                self.backend.add_bridge(&bridge).await?;
                log.created.push(bridge.clone());
                self.backend
                    .link(&bridge)
                    .await?
                    .ok_or_else(|| vanished(&bridge))?
            }
        };
        let index = b.index;
        let addresses = self.backend.addresses(index).await?;
        // Load balancer VIPs (/32) are kept by `services::lb`, not the wiring.
        for stale in addresses
            .iter()
            .filter(|a| **a != net.gateway && a.prefix_len() != 32)
        {
            self.backend.del_address(&bridge, *stale).await?;
        }
        if !addresses.contains(&net.gateway) {
            self.backend.add_address(&bridge, net.gateway).await?;
        }
        let vxlan = vxlan_name(net.vni);
        let existing = self.backend.link(&vxlan).await?;
        match net.driver {
            NetworkDriver::Vxlan => {
                let local = self.underlay.ok_or_else(|| {
                    WiringError::Unsupported("no underlay address configured".into())
                })?;
                let right = existing.as_ref().is_some_and(|l| {
                    matches!(&l.kind, LinkKind::Vxlan(v) if v.vni == net.vni
                        && v.local == Some(local) && v.port == VXLAN_PORT && !v.learning && v.proxy)
                });
                let v = match existing {
                    Some(v) if right => v,
                    other => {
                        if other.is_some() {
                            tracing::info!(device = %vxlan, "recreating a VXLAN device whose settings differ");
                            self.backend.del_link(&vxlan).await?;
                        }
                        tracing::info!(device = %vxlan, vni = net.vni, %local, "creating the network's VXLAN device");
                        self.backend
                            .add_vxlan(&vxlan, net.vni, local, VXLAN_PORT)
                            .await?;
                        log.created.push(vxlan.clone());
                        log.new_vxlan.insert(net.vni);
                        self.backend
                            .link(&vxlan)
                            .await?
                            .ok_or_else(|| vanished(&vxlan))?
                    }
                };
                let vchange = LinkChange {
                    mac: None,
                    mtu: (v.mtu != VXLAN_MTU).then_some(VXLAN_MTU),
                    master: (v.master != Some(index)).then_some(index),
                    up: !v.up,
                };
                if vchange != LinkChange::default() {
                    self.backend.set_link(&vxlan, &vchange).await?;
                }
                log.devices
                    .entry(net.vni)
                    .or_default()
                    .insert(vxlan.clone());
            }
            NetworkDriver::Bridge => {
                if existing.is_some() {
                    self.backend.del_link(&vxlan).await?;
                }
            }
        }
        let change = LinkChange {
            mac: (b.mac != Some(gateway_mac)).then_some(gateway_mac),
            mtu: (b.mtu != net.mtu()).then_some(net.mtu()),
            master: None,
            up: !b.up,
        };
        if change != LinkChange::default() {
            self.backend.set_link(&bridge, &change).await?;
        }
        log.devices.entry(net.vni).or_default().insert(bridge);
        Ok(index)
    }

    /// Reads what the node holds of ours: devices, veths, the entries of VXLAN devices.
    async fn read_known(&self) -> Result<Known, WiringError> {
        let links = self.backend.links().await?;
        let mut known = Known {
            devices: BTreeMap::new(),
            veths: BTreeSet::new(),
            fdb: BTreeMap::new(),
            neighbours: BTreeMap::new(),
            read_at: tokio::time::Instant::now(),
        };
        for l in &links {
            match (&l.kind, owned_vni(&l.name)) {
                (LinkKind::Bridge | LinkKind::Vxlan(_), Some(vni)) => {
                    known.devices.entry(vni).or_default().insert(l.name.clone());
                }
                (LinkKind::Veth, _) if l.name.starts_with(VETH_PREFIX) => {
                    known.veths.insert(l.name.clone());
                }
                _ => {}
            }
        }
        for (vni, devices) in &known.devices {
            let vxlan = vxlan_name(*vni);
            if devices.contains(&vxlan) {
                known
                    .fdb
                    .insert(*vni, self.backend.fdb(&vxlan).await?.into_iter().collect());
                known.neighbours.insert(
                    *vni,
                    self.backend.neighbours(&vxlan).await?.into_iter().collect(),
                );
            }
        }
        Ok(known)
    }

    /// The node-wide pass: devices of unused networks go, remote entries follow ZooKeeper, the
    /// firewall table matches the networks, forwarding is on while any network is wired.
    pub async fn sync(&self, nets: &NodeNetworks) -> Result<SyncReport, WiringError> {
        let mut guard = self.known.lock().await;
        let (mut known, full) = match guard.take() {
            Some(k) if k.read_at.elapsed() < self.full_sync_every => (k, false),
            _ => (self.read_known().await?, true),
        };
        let mut report = SyncReport::default();
        let result = self.sync_known(nets, &mut known, full, &mut report).await;
        // After a failure the kernel is read whole next time.
        if result.is_ok() {
            *guard = Some(known);
        }
        result.map(|()| report)
    }

    async fn sync_known(
        &self,
        nets: &NodeNetworks,
        known: &mut Known,
        full: bool,
        report: &mut SyncReport,
    ) -> Result<(), WiringError> {
        let unused: Vec<u32> = known
            .devices
            .keys()
            .copied()
            .filter(|vni| !nets.local.contains_key(vni))
            .collect();
        for vni in unused {
            let devices = known.devices.remove(&vni).unwrap_or_default();
            // The VXLAN device before its bridge.
            let (vxlan, others): (Vec<String>, Vec<String>) =
                devices.into_iter().partition(|d| *d == vxlan_name(vni));
            for name in vxlan.into_iter().chain(others) {
                tracing::info!(device = %name, "removing the devices of a network no local workload uses");
                self.backend.del_link(&name).await?;
                report.removed_devices.push(name);
            }
            known.fdb.remove(&vni);
            known.neighbours.remove(&vni);
        }
        let stale: Vec<String> = known.veths.difference(&nets.veths).cloned().collect();
        for name in stale {
            tracing::info!(device = %name, "removing the veth of a sandbox that is gone");
            self.backend.del_link(&name).await?;
            known.veths.remove(&name);
            report.removed_devices.push(name);
        }
        let mut firewall_networks = Vec::new();
        for (vni, net) in &nets.local {
            let devices = known.devices.get(vni);
            if !devices.is_some_and(|d| d.contains(&bridge_name(*vni))) {
                continue;
            }
            let remote = nets.remote.get(vni).map(Vec::as_slice).unwrap_or_default();
            let peers: BTreeSet<Ipv4Addr> = remote.iter().map(|r| r.vtep).collect();
            let vxlan = vxlan_name(*vni);
            if net.driver == NetworkDriver::Vxlan && devices.is_some_and(|d| d.contains(&vxlan)) {
                let complete = nets.complete.contains(vni);
                let fdb = known.fdb.entry(*vni).or_default();
                let neighbours = known.neighbours.entry(*vni).or_default();
                self.sync_entries(&vxlan, remote, complete, fdb, neighbours, report)
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
        let wanted = !firewall_networks.is_empty();
        let applied = self.docker_forward.lock().map(|d| *d).unwrap_or_default();
        if full || applied != Some(wanted) {
            if self.backend.docker_forward(wanted).await? {
                tracing::info!(
                    present = wanted,
                    "changed the exceptions for our bridges in Docker's DOCKER-USER chain"
                );
            }
            if let Ok(mut d) = self.docker_forward.lock() {
                *d = Some(wanted);
            }
        }
        Ok(())
    }

    /// Brings a VXLAN device's entries (`have`, kept up to date here) to what the remote
    /// endpoints need; with `complete`, entries nobody needs go.
    async fn sync_entries(
        &self,
        vxlan: &str,
        remote: &[RemoteEndpoint],
        complete: bool,
        have_fdb: &mut BTreeSet<FdbEntry>,
        have_neigh: &mut BTreeSet<NeighbourEntry>,
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
        if complete {
            let gone: Vec<NeighbourEntry> = have_neigh.difference(&want_neigh).copied().collect();
            for e in gone {
                self.backend.del_neighbour(vxlan, e).await?;
                have_neigh.remove(&e);
                report.entries_removed += 1;
            }
            let gone: Vec<FdbEntry> = have_fdb.difference(&want_fdb).copied().collect();
            for e in gone {
                self.backend.del_fdb(vxlan, e).await?;
                have_fdb.remove(&e);
                report.entries_removed += 1;
            }
        }
        let new: Vec<FdbEntry> = want_fdb.difference(have_fdb).copied().collect();
        for e in new {
            self.backend.add_fdb(vxlan, e).await?;
            if e.mac != ZERO_MAC {
                // A unicast MAC has one VTEP: the add replaced any other.
                have_fdb.retain(|h| h.mac != e.mac);
            }
            have_fdb.insert(e);
            report.entries_added += 1;
        }
        let new: Vec<NeighbourEntry> = want_neigh.difference(have_neigh).copied().collect();
        for e in new {
            self.backend.add_neighbour(vxlan, e).await?;
            have_neigh.retain(|h| h.ip != e.ip);
            have_neigh.insert(e);
            report.entries_added += 1;
        }
        Ok(())
    }
}

fn vanished(name: &str) -> WiringError {
    WiringError::Failed(format!("device {name} vanished right after it was created"))
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
