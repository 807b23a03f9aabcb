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
    Endpoint, InterfaceStatus, NetworkDriver, NetworkSupport, VlanOptions, GATEWAY_MAC, VLAN_MTU,
    VXLAN_MTU, VXLAN_PORT,
};
use ipnet::Ipv4Net;

use super::bridge_rules::{self, LocalPort, VlanRules};
use super::firewall::{self, FirewallNetwork};
use super::{
    bridge_name, format_mac, host_veth_name, owned_vni, parse_mac, vlan_port_name, vxlan_name,
    FdbEntry, InterfaceConfig, LinkChange, LinkKind, LinkState, Mac, NeighbourEntry, NetError,
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
    /// The VLAN settings of a vlan network.
    pub vlan: Option<VlanOptions>,
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
            vlan: e.vlan,
        })
    }

    fn mtu(&self) -> u32 {
        match self.driver {
            NetworkDriver::Vxlan => VXLAN_MTU,
            NetworkDriver::Bridge => BRIDGE_MTU,
            NetworkDriver::Vlan => VLAN_MTU,
        }
    }
}

/// An endpoint of another node, as its VXLAN entries need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemoteEndpoint {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    /// The underlay address of its node (unspecified on a vlan network, which has no tunnel).
    pub vtep: Ipv4Addr,
    /// Its node's uplink MAC (what MAC NAT makes its frames carry), when the node published it.
    pub node_mac: Option<Mac>,
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
    /// The local containers of each vlan network (for its ARP proxy and MAC NAT rules).
    pub vlan_ports: BTreeMap<u32, BTreeSet<LocalPort>>,
}

impl NodeNetworks {
    /// Records the veths of a workload's sandbox.
    pub fn expect_veths(&mut self, workload: &str, sandbox_id: &str, endpoints: &[Endpoint]) {
        for e in endpoints {
            let veth = host_veth_name(workload, sandbox_id, &e.interface);
            if e.driver == NetworkDriver::Vlan {
                if let (Ok(ip), Some(mac)) = (e.ip.parse(), parse_mac(&e.mac)) {
                    self.vlan_ports.entry(e.vni).or_default().insert(LocalPort {
                        veth: veth.clone(),
                        ip,
                        mac,
                    });
                }
            }
            self.veths.insert(veth);
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
    pub bridge_rules_applied: bool,
}

/// How long a resolved gateway MAC is used before it is asked again (a replaced router is
/// answered for with its new MAC within this), and how soon an unanswered probe is repeated.
const GATEWAY_MAC_TTL: Duration = Duration::from_secs(60);
const GATEWAY_MAC_RETRY: Duration = Duration::from_secs(10);

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
    /// The ebtables rules last applied (None: not since start, read the table first).
    bridge_rules: std::sync::Mutex<Option<Vec<VlanRules>>>,
    /// The MAC of each vlan network's gateway, as its last ARP probe found it, and when.
    gateway_macs: std::sync::Mutex<BTreeMap<u32, (Option<Mac>, tokio::time::Instant)>>,
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
            bridge_rules: std::sync::Mutex::new(None),
            gateway_macs: std::sync::Mutex::new(BTreeMap::new()),
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
            if e.driver == NetworkDriver::Vlan && self.support.uplink.is_none() {
                return Err(WiringError::Unsupported(format!(
                    "vlan network {} needs the agent's `uplink` interface (the trunk to the \
                     switch); set it in agent.toml",
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
        let owns_gateway = net.driver.owns_gateway();
        // Load balancer VIPs (/32) are kept by `services::lb`, not the wiring; a vlan network's
        // bridge holds no address at all (the router owns the gateway).
        for stale in addresses
            .iter()
            .filter(|a| !owns_gateway || (**a != net.gateway && a.prefix_len() != 32))
        {
            self.backend.del_address(&bridge, *stale).await?;
        }
        if owns_gateway && !addresses.contains(&net.gateway) {
            self.backend.add_address(&bridge, net.gateway).await?;
        }
        let mut bridge_mac = gateway_mac;
        if net.driver == NetworkDriver::Vlan {
            bridge_mac = self.ensure_vlan_port(net, index, log).await?;
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
            NetworkDriver::Bridge | NetworkDriver::Vlan => {
                if existing.is_some() {
                    self.backend.del_link(&vxlan).await?;
                }
            }
        }
        let change = LinkChange {
            mac: (b.mac != Some(bridge_mac)).then_some(bridge_mac),
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

    /// The uplink as the kernel has it now and its MAC (the node's one MAC on the segment), or
    /// why a vlan network cannot use it.
    async fn uplink(&self) -> Result<(LinkState, Mac), WiringError> {
        let name = self.support.uplink.as_deref().ok_or_else(|| {
            WiringError::Unsupported("no `uplink` interface configured in agent.toml".into())
        })?;
        let uplink = self.backend.link(name).await?.ok_or_else(|| {
            WiringError::Failed(format!(
                "the uplink {name} is gone from this node; vlan networks ride on it"
            ))
        })?;
        let mac = uplink
            .mac
            .ok_or_else(|| WiringError::Failed(format!("the uplink {name} has no MAC address")))?;
        Ok((uplink, mac))
    }

    /// A vlan network's port on the uplink, enslaved to its bridge and up: the 802.1Q
    /// sub-interface of its id, or the uplink itself when it has none. Returns the MAC the
    /// bridge takes (the uplink's: the node's one MAC on the segment).
    async fn ensure_vlan_port(
        &self,
        net: &NetworkDesc,
        bridge: u32,
        log: &mut WireLog,
    ) -> Result<Mac, WiringError> {
        let (uplink, node_mac) = self.uplink().await?;
        let port = match net.vlan.and_then(|v| v.vlan_id) {
            // An untagged network makes the uplink a bridge port: its own addresses would stop
            // working and the node would cut itself off.
            None => {
                let held = self.backend.addresses(uplink.index).await?;
                if !held.is_empty() {
                    return Err(WiringError::Unsupported(format!(
                        "the uplink {} holds this node's address(es) {}; an untagged vlan network \
                         would make it a bridge port and cut the node off: give the network a \
                         VlanId or the node a dedicated uplink",
                        uplink.name,
                        held.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                uplink
            }
            Some(id) => {
                let name = vlan_port_name(&uplink.name, id);
                let existing = self.backend.link(&name).await?;
                let right = existing.as_ref().is_some_and(|l| {
                    l.kind
                        == LinkKind::Vlan {
                            id,
                            parent: Some(uplink.index),
                        }
                });
                let port = match existing {
                    Some(l) if right => l,
                    other => {
                        if other.is_some() {
                            tracing::info!(device = %name, "recreating a VLAN sub-interface whose settings differ");
                            self.backend.del_link(&name).await?;
                        }
                        tracing::info!(device = %name, vlan = id, uplink = %uplink.name, "creating the network's VLAN sub-interface");
                        self.backend.add_vlan(&name, uplink.index, id).await?;
                        log.created.push(name.clone());
                        self.backend
                            .link(&name)
                            .await?
                            .ok_or_else(|| vanished(&name))?
                    }
                };
                log.devices.entry(net.vni).or_default().insert(name);
                port
            }
        };
        let change = LinkChange {
            mac: None,
            mtu: None,
            master: (port.master != Some(bridge)).then_some(bridge),
            up: !port.up,
        };
        if change != LinkChange::default() {
            self.backend.set_link(&port.name, &change).await?;
        }
        Ok(node_mac)
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
        let bridges: BTreeMap<u32, u32> = links
            .iter()
            .filter(|l| l.kind == LinkKind::Bridge)
            .filter_map(|l| Some((l.index, owned_vni(&l.name)?)))
            .collect();
        for l in &links {
            match (&l.kind, owned_vni(&l.name)) {
                (LinkKind::Bridge | LinkKind::Vxlan(_), Some(vni)) => {
                    known.devices.entry(vni).or_default().insert(l.name.clone());
                }
                // A VLAN sub-interface on one of our bridges is a vlan network's port.
                (LinkKind::Vlan { .. }, _) => {
                    if let Some(vni) = l.master.and_then(|m| bridges.get(&m)) {
                        known
                            .devices
                            .entry(*vni)
                            .or_default()
                            .insert(l.name.clone());
                    }
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
            // The bridge's ports (VXLAN device, VLAN sub-interface) before the bridge.
            let (bridge, ports): (Vec<String>, Vec<String>) =
                devices.into_iter().partition(|d| *d == bridge_name(vni));
            for name in ports.into_iter().chain(bridge) {
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
                routed: net.driver.owns_gateway(),
                peers,
            });
        }
        self.sync_bridge_rules(nets, known, report).await?;
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

    /// The ebtables rules of the vlan networks with ARP proxy or MAC NAT, replaced when they
    /// differ from what was applied last.
    async fn sync_bridge_rules(
        &self,
        nets: &NodeNetworks,
        known: &Known,
        report: &mut SyncReport,
    ) -> Result<(), WiringError> {
        let mut wanted = Vec::new();
        // Read once per pass, and only when a network needs it.
        let mut uplink: Option<(LinkState, Mac)> = None;
        for (vni, net) in &nets.local {
            let Some(vlan) = net.vlan.filter(|v| v.arp_proxy || v.mac_nat) else {
                continue;
            };
            if !known
                .devices
                .get(vni)
                .is_some_and(|d| d.contains(&bridge_name(*vni)))
            {
                continue;
            }
            let (uplink, node_mac) = match &uplink {
                Some(known) => known.clone(),
                None => uplink.insert(self.uplink().await?).clone(),
            };
            let port = match vlan.vlan_id {
                Some(id) => vlan_port_name(&uplink.name, id),
                None => uplink.name.clone(),
            };
            let local: Vec<LocalPort> = nets
                .vlan_ports
                .get(vni)
                .map(|p| p.iter().cloned().collect())
                .unwrap_or_default();
            let arp_answers = if vlan.arp_proxy {
                let mut answers: BTreeMap<Ipv4Addr, Mac> = BTreeMap::new();
                if let Some(mac) = self.gateway_mac(*vni, net, node_mac).await {
                    answers.insert(net.gateway.addr(), mac);
                }
                for l in &local {
                    answers.insert(l.ip, l.mac);
                }
                for r in nets.remote.get(vni).map(Vec::as_slice).unwrap_or_default() {
                    // Behind MAC NAT a remote container is reached at its node's MAC.
                    let mac = match (vlan.mac_nat, r.node_mac) {
                        (true, Some(node)) => node,
                        _ => r.mac,
                    };
                    answers.entry(r.ip).or_insert(mac);
                }
                Some(answers.into_iter().collect())
            } else {
                None
            };
            wanted.push(VlanRules {
                vni: *vni,
                port,
                node_mac,
                mac_nat: vlan.mac_nat,
                arp_answers,
                local,
            });
        }
        let applied = self
            .bridge_rules
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        if applied.as_ref() == Some(&wanted) {
            return Ok(());
        }
        // What the table holds is read when this process has not written it yet.
        let installed = match &applied {
            None => self.backend.bridge_rules_state().await.or_else(|e| {
                if wanted.is_empty() {
                    // No ebtables and nothing wanted: nothing to do.
                    Ok(Default::default())
                } else {
                    Err(e)
                }
            })?,
            Some(previous) => installed_by(previous),
        };
        if let Some(script) = bridge_rules::transaction(&wanted, &installed) {
            self.backend.apply_bridge_rules(&script).await?;
            tracing::info!(
                networks = wanted.len(),
                "replaced the caas ebtables rules (ARP proxy, MAC NAT)"
            );
            report.bridge_rules_applied = true;
        }
        if let Ok(mut r) = self.bridge_rules.lock() {
            *r = Some(wanted);
        }
        Ok(())
    }

    /// The MAC of a vlan network's gateway: from the last probe while it is fresh, else asked
    /// again (an ARP probe on the network's bridge). `None` while nobody answers.
    async fn gateway_mac(&self, vni: u32, net: &NetworkDesc, node_mac: Mac) -> Option<Mac> {
        let now = tokio::time::Instant::now();
        let cached = self
            .gateway_macs
            .lock()
            .ok()
            .and_then(|m| m.get(&vni).copied());
        if let Some((mac, at)) = cached {
            let fresh = match mac {
                Some(_) => now.duration_since(at) < GATEWAY_MAC_TTL,
                None => now.duration_since(at) < GATEWAY_MAC_RETRY,
            };
            if fresh {
                return mac;
            }
        }
        let gateway = net.gateway.addr();
        let mac = match self
            .backend
            .resolve_mac(&bridge_name(vni), node_mac, gateway)
            .await
        {
            Ok(Some(mac)) => {
                tracing::info!(vni, %gateway, mac = %format_mac(&mac), "the vlan network's gateway answered");
                Some(mac)
            }
            Ok(None) => {
                tracing::warn!(vni, %gateway, "the vlan network's gateway did not answer an ARP probe; the proxy leaves its requests to the switch");
                None
            }
            Err(e) => {
                tracing::warn!(vni, %gateway, error = %e, "probing the vlan network's gateway failed");
                None
            }
        };
        // An answer seen before stays in use while the gateway is briefly silent.
        let mac = mac.or_else(|| cached.and_then(|(m, _)| m));
        if let Ok(mut m) = self.gateway_macs.lock() {
            m.insert(vni, (mac, now));
        }
        mac
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

/// What the table holds after `rules` were applied.
fn installed_by(rules: &[VlanRules]) -> bridge_rules::Installed {
    if rules.is_empty() {
        return Default::default();
    }
    let mut chains: BTreeSet<String> = [bridge_rules::PRE, bridge_rules::POST]
        .map(String::from)
        .into();
    for r in rules.iter().filter(|r| r.arp_answers.is_some()) {
        chains.insert(format!("{}{}", bridge_rules::ARP_PREFIX, r.vni));
    }
    bridge_rules::Installed {
        chains,
        pre_jump: true,
        post_jump: true,
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
