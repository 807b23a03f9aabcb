//! Container networks on the node: the `NetworkBackend` seam (the kernel through rtnetlink, or an
//! in-memory fake for unit tests), the device names the agent owns, and the wiring logic on top
//! of it (`wiring`), the nftables table (`firewall`), what ZooKeeper says about other nodes'
//! endpoints (`remote`) and the start-up checks (`probe`).

pub mod arp_probe;
pub mod bridge_rules;
pub mod docker_forward;
pub mod fake;
pub mod firewall;
pub mod netlink;
pub mod probe;
pub mod remote;
pub mod wiring;

use std::net::Ipv4Addr;

use async_trait::async_trait;
use ipnet::Ipv4Net;

pub use wiring::{Wiring, WiringError};

/// Host-side veth names start with this; any such veth is the agent's.
pub const VETH_PREFIX: &str = "cw";

/// A MAC address.
pub type Mac = [u8; 6];

/// The all-zero MAC of head-end replication entries (broadcast and unknown unicast go to every
/// remote VTEP listed with it).
pub const ZERO_MAC: Mac = [0; 6];

/// Parses `02:ca:...`; `None` when it is not six hex bytes.
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

pub fn format_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The bridge of the network with this VNI (`cb<vni>`, at most 10 characters).
pub fn bridge_name(vni: u32) -> String {
    format!("cb{vni}")
}

/// The VXLAN device of the network with this VNI (`cv<vni>`).
pub fn vxlan_name(vni: u32) -> String {
    format!("cv{vni}")
}

/// The VNI a device name of ours carries, if it is one (`cb<vni>` or `cv<vni>`).
pub fn owned_vni(name: &str) -> Option<u32> {
    let digits = name
        .strip_prefix("cb")
        .or_else(|| name.strip_prefix("cv"))?;
    if digits.is_empty() || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// Host-side veth name of a workload's interface: `cw` + 10 hex digits of a hash of the
/// workload key, the sandbox and the interface (unique on the node, 12 characters). The peer is
/// born inside the sandbox as `ethN`.
pub fn host_veth_name(workload: &str, sandbox: &str, interface: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{workload}\n{sandbox}\n{interface}").as_bytes());
    format!("{VETH_PREFIX}{}", hex::encode(&digest[..5]))
}

/// The port of a VLAN network's bridge on the uplink: the 802.1Q sub-interface
/// `<uplink>.<id>` (or `cq<id>` when that name would pass the kernel's 15 characters).
pub fn vlan_port_name(uplink: &str, vlan_id: u16) -> String {
    let name = format!("{uplink}.{vlan_id}");
    if name.len() <= 15 {
        name
    } else {
        format!("cq{vlan_id}")
    }
}

/// What kind of device a link is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Bridge,
    Vxlan(VxlanInfo),
    Veth,
    /// An 802.1Q sub-interface: its id and the index of the device it rides on.
    Vlan {
        id: u16,
        parent: Option<u32>,
    },
    Other(String),
}

/// The VXLAN settings the agent relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanInfo {
    pub vni: u32,
    pub local: Option<Ipv4Addr>,
    pub port: u16,
    pub learning: bool,
    pub proxy: bool,
}

/// A device as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    pub mtu: u32,
    pub mac: Option<Mac>,
    pub up: bool,
    /// Index of the bridge it is enslaved to.
    pub master: Option<u32>,
    pub addresses: Vec<Ipv4Net>,
}

/// The interfaces of a sandbox's network namespace and its default gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxState {
    pub links: Vec<LinkState>,
    pub default_gateway: Option<Ipv4Addr>,
}

/// How a container's interface must look inside its sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// `ethN`.
    pub name: String,
    pub mac: Mac,
    pub mtu: u32,
    pub address: Ipv4Net,
    /// The default route goes via this gateway on this interface (eth0 only).
    pub default_gateway: Option<Ipv4Addr>,
}

/// A remote endpoint's entries on a VXLAN device: FDB MAC -> VTEP and neighbour IP -> MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    pub mac: Mac,
    pub vtep: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighbourEntry {
    pub ip: Ipv4Addr,
    pub mac: Mac,
}

/// Why a kernel operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The kernel lacks a feature (e.g. no `vxlan` module): retrying does not help.
    #[error("{0}")]
    Unsupported(String),
    /// The sandbox's namespace is gone (its process exited).
    #[error("sandbox process {0} has no network namespace (it exited)")]
    SandboxGone(u32),
    #[error("{0}")]
    Failed(String),
}

/// A veth pair to create: the host end on the network's bridge, the peer born inside the
/// sandbox's namespace under its final name and MAC (moving a device between namespaces costs
/// the kernel an RCU grace period, creating it there does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethPair {
    pub host: String,
    /// Index of the bridge the host end joins.
    pub bridge: u32,
    /// The sandbox's process.
    pub pid: u32,
    /// The interface inside the sandbox (`ethN`).
    pub peer: String,
    pub peer_mac: Mac,
    pub mtu: u32,
}

/// The agent's interface to the kernel's networking: devices, addresses, FDB and neighbour
/// entries in the agent's own namespace, and a connection into a sandbox's namespace (by its
/// process id). Implemented on rtnetlink (`netlink::NetlinkBackend`) and in memory
/// (`fake::FakeNetwork`).
#[async_trait]
pub trait NetworkBackend: Send + Sync + 'static {
    /// Every device of the agent's namespace, with its IPv4 addresses (full passes only).
    async fn links(&self) -> Result<Vec<LinkState>, NetError>;
    /// One device by name, without its addresses; `None` when there is none.
    async fn link(&self, name: &str) -> Result<Option<LinkState>, NetError>;
    /// The IPv4 addresses of a device.
    async fn addresses(&self, index: u32) -> Result<Vec<Ipv4Net>, NetError>;
    /// Creates a bridge (down).
    async fn add_bridge(&self, name: &str) -> Result<(), NetError>;
    /// Creates a VXLAN device (down): id `vni`, source `local`, UDP `port`, learning off, ARP
    /// proxy on.
    async fn add_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
    ) -> Result<(), NetError>;
    /// Creates an 802.1Q sub-interface (down) with id `vlan_id` on the device `parent`.
    async fn add_vlan(&self, name: &str, parent: u32, vlan_id: u16) -> Result<(), NetError>;
    /// Creates a veth pair in one request: the host end on its bridge with the MTU and up, the
    /// peer inside the sandbox, named, with its MAC and MTU, down.
    async fn add_veth(&self, pair: &VethPair) -> Result<(), NetError>;
    /// Sets what is given: MAC, MTU, bridge, up. Unchanged fields are `None`.
    async fn set_link(&self, name: &str, change: &LinkChange) -> Result<(), NetError>;
    async fn add_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError>;
    async fn del_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError>;
    async fn del_link(&self, name: &str) -> Result<(), NetError>;
    /// Static FDB entries of a VXLAN device (the all-zero ones included).
    async fn fdb(&self, device: &str) -> Result<Vec<FdbEntry>, NetError>;
    async fn add_fdb(&self, device: &str, entry: FdbEntry) -> Result<(), NetError>;
    async fn del_fdb(&self, device: &str, entry: FdbEntry) -> Result<(), NetError>;
    /// Permanent neighbour entries of a device.
    async fn neighbours(&self, device: &str) -> Result<Vec<NeighbourEntry>, NetError>;
    async fn add_neighbour(&self, device: &str, entry: NeighbourEntry) -> Result<(), NetError>;
    async fn del_neighbour(&self, device: &str, entry: NeighbourEntry) -> Result<(), NetError>;
    /// A connection inside the network namespace of process `pid`, for one wiring; closed when
    /// dropped (an open socket would keep a removed sandbox's namespace alive).
    async fn enter_sandbox(&self, pid: u32) -> Result<Box<dyn SandboxNet>, NetError>;
    /// Enables IPv4 forwarding in the agent's namespace; returns whether it was off.
    async fn enable_forwarding(&self) -> Result<bool, NetError>;
    /// Replaces the agent's nftables table with `ruleset` (one transaction), or deletes it.
    async fn apply_firewall(&self, ruleset: Option<&str>) -> Result<(), NetError>;
    /// What the node's ebtables nat table holds of ours (`bridge_rules`).
    async fn bridge_rules_state(&self) -> Result<bridge_rules::Installed, NetError>;
    /// Runs an `ebtables-restore --noflush` script (one transaction).
    async fn apply_bridge_rules(&self, script: &str) -> Result<(), NetError>;
    /// Asks `ip`'s owner on the segment behind `device` for its MAC (an ARP probe from
    /// `source_mac`, RFC 5227); `None` when nobody answered in time.
    async fn resolve_mac(
        &self,
        device: &str,
        source_mac: Mac,
        ip: Ipv4Addr,
    ) -> Result<Option<Mac>, NetError>;
    /// Makes Docker's FORWARD filter let our bridges' traffic pass (`wanted`) or removes the
    /// exceptions; returns whether anything changed (`docker_forward`).
    async fn docker_forward(&self, wanted: bool) -> Result<bool, NetError>;
}

/// Inside one sandbox's network namespace.
#[async_trait]
pub trait SandboxNet: Send + Sync {
    /// The sandbox's interfaces (with addresses) and its default gateway.
    async fn state(&self) -> Result<SandboxState, NetError>;
    /// One interface by name, without its addresses.
    async fn link(&self, name: &str) -> Result<Option<LinkState>, NetError>;
    /// Makes `current` look like `config` (renamed, MAC, MTU, the one address, up), loopback up
    /// and the default route, changing only what differs from `current` and `state` (which
    /// the caller read; nothing is read again).
    async fn configure(
        &self,
        state: &SandboxState,
        current: &LinkState,
        config: &InterfaceConfig,
    ) -> Result<(), NetError>;
    /// Deletes an interface (its veth peer goes with it).
    async fn del_link(&self, name: &str) -> Result<(), NetError>;
}

/// Changes to one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkChange {
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    pub master: Option<u32>,
    pub up: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_parse_back() {
        assert_eq!(bridge_name(16_777_215), "cb16777215");
        assert_eq!(owned_vni("cv42"), Some(42));
        assert_eq!(owned_vni("cb42"), Some(42));
        assert_eq!(owned_vni("cb"), None);
        assert_eq!(owned_vni("cb042"), None);
        assert_eq!(owned_vni("docker0"), None);
        let h = host_veth_name("p.web", "abc", "eth0");
        assert!(h.len() <= 15 && h.starts_with(VETH_PREFIX));
        assert_ne!(host_veth_name("p.web", "abc", "eth1"), h);
        let mac = parse_mac("02:ca:c0:a8:1f:03").unwrap();
        assert_eq!(format_mac(&mac), "02:ca:c0:a8:1f:03");
        assert!(parse_mac("02:ca:c0").is_none());
        assert!(parse_mac("02:ca:c0:a8:1f:03:00").is_none());
    }
}
