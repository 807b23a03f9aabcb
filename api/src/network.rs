//! Container networks on the wire: a pool's `NetworkSpec` (driver, subnet, gateway, VNI), an
//! address allocation (`IpAllocation`, one znode per used address), the endpoints a workload's
//! spec carries so its agent can wire it, and the checks central and agents share (canonical
//! CIDR, gateway placement, VNI range, usable addresses, the MAC derived from an address).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::name::validate_dns_label;
use crate::ValidationError;

/// Largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// Interfaces a workload may have (`eth0` ..).
pub const MAX_ENDPOINTS: usize = 8;
/// The MAC every node's bridge answers the gateway address with (an anycast gateway): a
/// container moved to another node keeps its gateway's MAC in its ARP cache.
pub const GATEWAY_MAC: &str = "02:ca:a5:00:00:01";
/// MTU inside an overlay network: 1500 minus VXLAN's 50 bytes of encapsulation.
pub const VXLAN_MTU: u32 = 1450;
/// The UDP port of VXLAN (IANA).
pub const VXLAN_PORT: u16 = 4789;
/// Largest 802.1Q VLAN id (4095 is reserved, 0 means "no VLAN").
pub const MAX_VLAN_ID: u16 = 4094;
/// MTU of a VLAN network: the data centre's, untouched (the tag rides in the frame header).
pub const VLAN_MTU: u32 = 1500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkDriver {
    /// An overlay across nodes: a bridge and a VXLAN device per node that carries it.
    Vxlan,
    /// The same wiring without the VXLAN device: containers of one node only.
    Bridge,
    /// A VLAN of the data-centre network: a bridge per network on the node's uplink (an 802.1Q
    /// sub-interface, or the uplink itself as an access port); the gateway is the physical
    /// router's.
    Vlan,
}

impl NetworkDriver {
    pub fn parse(field: &str, text: &str) -> Result<Self, ValidationError> {
        match text.to_ascii_lowercase().as_str() {
            "vxlan" => Ok(Self::Vxlan),
            "bridge" => Ok(Self::Bridge),
            "vlan" => Ok(Self::Vlan),
            other => Err(ValidationError::new(
                field,
                format!("{other:?} is not a network driver; use \"vxlan\", \"bridge\" or \"vlan\""),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::Bridge => "bridge",
            Self::Vlan => "vlan",
        }
    }

    /// Whether the node owns the gateway address (overlay and bridge: an anycast gateway on
    /// every node's bridge; vlan: the physical router owns it).
    pub fn owns_gateway(self) -> bool {
        !matches!(self, Self::Vlan)
    }
}

/// The settings of a `vlan` network (present exactly when the driver is `vlan`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanOptions {
    /// The 802.1Q id (1..=4094); absent: the uplink itself is the segment (an access port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
    /// Nodes answer their containers' ARP requests for the gateway and the network's known
    /// endpoints, so those never reach the switch.
    #[serde(default, skip_serializing_if = "is_false")]
    pub arp_proxy: bool,
    /// Container frames leave the uplink with the node's MAC (the switch learns one MAC per
    /// node) and come back rewritten to the container's.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mac_nat: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Checks an 802.1Q id.
pub fn validate_vlan_id(field: &str, id: u16) -> Result<(), ValidationError> {
    if id == 0 || id > MAX_VLAN_ID {
        return Err(ValidationError::new(
            field,
            format!(
                "{id} is out of range; a VLAN id is 1..={MAX_VLAN_ID} (leave it out for an \
                 untagged access port)"
            ),
        ));
    }
    Ok(())
}

/// A pool's network, as stored at `pools/<pool>/networks/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    #[serde(default = "crate::payload_version")]
    pub version: u32,
    pub pool: String,
    pub name: String,
    pub driver: NetworkDriver,
    /// Canonical IPv4 CIDR, e.g. `192.168.0.0/19`.
    pub subnet: String,
    /// The gateway address inside the subnet, owned by every node's bridge.
    pub gateway: String,
    /// VXLAN network identifier, unique in the cluster (also names the devices of bridge and
    /// vlan networks, so it is allocated for every driver).
    pub vni: u32,
    /// The VLAN settings of a `vlan` network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanOptions>,
    #[serde(default)]
    pub created_at: u64,
}

/// A network parsed once: subnet and gateway as addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub net: Ipv4Net,
    pub gateway: Ipv4Addr,
}

impl Subnet {
    /// Parses and checks a subnet and its gateway: canonical CIDR (no host bits), room for
    /// at least two containers, the gateway inside and neither the network nor the broadcast
    /// address.
    pub fn parse(subnet: &str, gateway: &str) -> Result<Self, ValidationError> {
        let net: Ipv4Net = subnet.parse().map_err(|_| {
            ValidationError::new(
                "subnet",
                format!("{subnet:?} is not an IPv4 CIDR; write it like 192.168.0.0/19"),
            )
        })?;
        if net.trunc() != net {
            return Err(ValidationError::new(
                "subnet",
                format!(
                    "{subnet} has host bits set; the network is {} (write that)",
                    net.trunc()
                ),
            ));
        }
        if net.prefix_len() > 29 {
            return Err(ValidationError::new(
                "subnet",
                format!("{subnet} is too small; use a /29 or larger (a gateway and containers need room)"),
            ));
        }
        let gw: Ipv4Addr = gateway.parse().map_err(|_| {
            ValidationError::new("gateway", format!("{gateway:?} is not an IPv4 address"))
        })?;
        if !net.contains(&gw) {
            return Err(ValidationError::new(
                "gateway",
                format!("{gw} is outside the subnet {net}; pick an address inside it"),
            ));
        }
        if gw == net.network() || gw == net.broadcast() {
            return Err(ValidationError::new(
                "gateway",
                format!(
                    "{gw} is the {} address of {net}; pick a host address",
                    if gw == net.network() {
                        "network"
                    } else {
                        "broadcast"
                    }
                ),
            ));
        }
        Ok(Self { net, gateway: gw })
    }

    /// Why `ip` cannot be given to a container, if it cannot.
    pub fn check_host(&self, field: &str, ip: Ipv4Addr) -> Result<(), ValidationError> {
        let why = if !self.net.contains(&ip) {
            format!("{ip} is outside the subnet {}", self.net)
        } else if ip == self.net.network() {
            format!("{ip} is the network address of {}", self.net)
        } else if ip == self.net.broadcast() {
            format!("{ip} is the broadcast address of {}", self.net)
        } else if ip == self.gateway {
            format!("{ip} is the gateway of {}", self.net)
        } else {
            return Ok(());
        };
        Err(ValidationError::new(field, why))
    }

    /// The addresses containers may get, lowest first.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.net.hosts().filter(move |ip| *ip != self.gateway)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.net.contains(&other.net.network()) || other.net.contains(&self.net.network())
    }
}

impl NetworkSpec {
    pub fn subnet(&self) -> Result<Subnet, ValidationError> {
        Subnet::parse(&self.subnet, &self.gateway)
    }

    pub fn validate(&self) -> Result<Subnet, ValidationError> {
        validate_dns_label("name", &self.name)?;
        validate_dns_label("pool", &self.pool)?;
        validate_vni("vni", self.vni)?;
        validate_vlan(self.driver, self.vlan.as_ref(), "vlan")?;
        self.subnet()
    }
}

/// VLAN settings go with the `vlan` driver, and only with it.
pub fn validate_vlan(
    driver: NetworkDriver,
    vlan: Option<&VlanOptions>,
    field: &str,
) -> Result<(), ValidationError> {
    match (driver, vlan) {
        (NetworkDriver::Vlan, Some(v)) => match v.vlan_id {
            Some(id) => validate_vlan_id(&format!("{field}.vlan_id"), id),
            None => Ok(()),
        },
        (NetworkDriver::Vlan, None) => Err(ValidationError::new(
            field,
            "a vlan network carries its VLAN settings",
        )),
        (other, Some(_)) => Err(ValidationError::new(
            field,
            format!(
                "VLAN settings apply to vlan networks only, not {}",
                other.as_str()
            ),
        )),
        (_, None) => Ok(()),
    }
}

pub fn validate_vni(field: &str, vni: u32) -> Result<(), ValidationError> {
    if vni == 0 || vni > MAX_VNI {
        return Err(ValidationError::new(
            field,
            format!("{vni} is out of range; a VNI is 1..={MAX_VNI}"),
        ));
    }
    Ok(())
}

/// The MAC of a container's interface, derived from its address so it stays the same when the
/// workload moves (locally administered, unicast).
pub fn mac_for(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:ca:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// One used address, at `pools/<pool>/networks/<net>/ips/<ip>`; created in the same commit as
/// the workload's record and deleted in the one that removes it. It belongs to the workload,
/// not the node: a move updates `node` and keeps the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpAllocation {
    #[serde(default = "crate::payload_version")]
    pub version: u32,
    pub ip: String,
    pub mac: String,
    /// The workload's name in the pool.
    pub workload: String,
    /// The node the workload is placed on.
    pub node: String,
    /// The service name the workload publishes on this network (for DNS), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// One interface of a workload, as its spec carries it to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Name inside the sandbox: `eth0`, `eth1`, ... in the order the networks were given.
    pub interface: String,
    pub network: String,
    pub driver: NetworkDriver,
    pub vni: u32,
    pub subnet: String,
    pub gateway: String,
    pub ip: String,
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The network's VLAN settings (vlan networks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanOptions>,
}

impl Endpoint {
    /// Checks what the agent relies on: a valid network, the address a usable host of it, the
    /// MAC the one derived from the address.
    pub fn validate(&self, field: &str) -> Result<(Subnet, Ipv4Addr), ValidationError> {
        validate_dns_label(&format!("{field}.network"), &self.network)?;
        validate_vni(&format!("{field}.vni"), self.vni)?;
        validate_vlan(self.driver, self.vlan.as_ref(), &format!("{field}.vlan"))?;
        let subnet = Subnet::parse(&self.subnet, &self.gateway)
            .map_err(|e| ValidationError::new(format!("{field}.{}", e.field), e.message))?;
        let ip: Ipv4Addr = self.ip.parse().map_err(|_| {
            ValidationError::new(
                format!("{field}.ip"),
                format!("{:?} is not an IPv4 address", self.ip),
            )
        })?;
        subnet.check_host(&format!("{field}.ip"), ip)?;
        if self.mac != mac_for(ip) {
            return Err(ValidationError::new(
                format!("{field}.mac"),
                format!("{} is not the MAC of {ip} ({})", self.mac, mac_for(ip)),
            ));
        }
        Ok((subnet, ip))
    }
}

/// Validates a workload's endpoints: interfaces `eth0`.. in order, one per network.
pub fn validate_endpoints(endpoints: &[Endpoint]) -> Result<(), ValidationError> {
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(ValidationError::new(
            "networks",
            format!("at most {MAX_ENDPOINTS} networks per container"),
        ));
    }
    for (i, e) in endpoints.iter().enumerate() {
        let field = format!("networks[{i}]");
        if e.interface != format!("eth{i}") {
            return Err(ValidationError::new(
                format!("{field}.interface"),
                format!("interface {} must be eth{i}", e.interface),
            ));
        }
        if endpoints[..i].iter().any(|o| o.network == e.network) {
            return Err(ValidationError::new(
                field,
                format!(
                    "network {} is attached twice; one interface per network",
                    e.network
                ),
            ));
        }
        e.validate(&field)?;
    }
    Ok(())
}

/// `POST /v1/pools/{pool}/networks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNetworkRequest {
    pub name: String,
    pub driver: String,
    pub subnet: String,
    pub gateway: String,
    /// Allocated cluster-wide when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// vlan only: the 802.1Q id (1..=4094), unique in the cluster; absent: an access port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
    /// vlan only: nodes answer ARP for the gateway and known endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp_proxy: Option<bool>,
    /// vlan only: frames leave with the node's MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_nat: Option<bool>,
}

/// A network with its endpoints, as `network inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    #[serde(flatten)]
    pub spec: NetworkSpec,
    pub endpoints: Vec<IpAllocation>,
}

/// A container's request to join a network (`--public-service=[SERVICE].NETWORK`, `-l Ip=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAttachment {
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// A requested address; the lowest free one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// What a node can wire, as its agent found out at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSupport {
    #[serde(default)]
    pub bridge: bool,
    #[serde(default)]
    pub vxlan: bool,
    /// VLAN networks: an uplink is configured and the kernel has 802.1Q, bridges and ebtables.
    #[serde(default)]
    pub vlan: bool,
    /// The uplink (trunk) interface VLAN networks ride on, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<String>,
    /// The uplink's MAC: the source of every frame a MAC-NAT network sends from this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink_mac: Option<String>,
    /// Why a driver is missing (the kernel's words), for the scheduler's explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

impl NetworkSupport {
    pub fn carries(&self, driver: NetworkDriver) -> bool {
        match driver {
            NetworkDriver::Vxlan => self.vxlan,
            NetworkDriver::Bridge => self.bridge,
            NetworkDriver::Vlan => self.vlan,
        }
    }
}

/// One wired interface, as the agent reports it in the workload's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    pub network: String,
    pub ip: String,
    pub mac: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_gateways_are_checked() {
        let s = Subnet::parse("192.168.0.0/19", "192.168.31.254").unwrap();
        assert_eq!(s.hosts().next(), Some(Ipv4Addr::new(192, 168, 0, 1)));
        let bad = [
            ("10.0.0.1/24", "10.0.0.254", "subnet", "host bits"),
            ("10.0.0.0/33", "10.0.0.1", "subnet", "CIDR"),
            ("10.0.0.0/30", "10.0.0.1", "subnet", "too small"),
            ("10.0.0.0/24", "10.0.1.1", "gateway", "outside"),
            ("10.0.0.0/24", "10.0.0.0", "gateway", "network"),
            ("10.0.0.0/24", "10.0.0.255", "gateway", "broadcast"),
            ("10.0.0.0/24", "nope", "gateway", "IPv4"),
        ];
        for (subnet, gw, field, words) in bad {
            let e = Subnet::parse(subnet, gw).unwrap_err();
            assert_eq!(e.field, field, "{subnet} {gw}");
            assert!(e.message.contains(words), "{subnet} {gw}: {e}");
        }
    }

    #[test]
    fn hosts_exclude_network_broadcast_and_gateway() {
        let s = Subnet::parse("10.0.0.0/29", "10.0.0.1").unwrap();
        let hosts: Vec<_> = s.hosts().map(|ip| ip.to_string()).collect();
        assert_eq!(
            hosts,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        for (ip, words) in [
            ("10.0.0.0", "network"),
            ("10.0.0.7", "broadcast"),
            ("10.0.0.1", "gateway"),
            ("10.0.1.2", "outside"),
        ] {
            let e = s.check_host("ip", ip.parse().unwrap()).unwrap_err();
            assert!(e.message.contains(words), "{ip}: {e}");
        }
        let other = Subnet::parse("10.0.0.0/24", "10.0.0.1").unwrap();
        assert!(s.overlaps(&other) && other.overlaps(&s));
        let apart = Subnet::parse("10.0.1.0/24", "10.0.1.1").unwrap();
        assert!(!s.overlaps(&apart));
    }

    #[test]
    fn vni_range_and_mac() {
        assert!(validate_vni("vni", 0).is_err());
        assert!(validate_vni("vni", MAX_VNI + 1).is_err());
        assert!(validate_vni("vni", MAX_VNI).is_ok());
        assert_eq!(mac_for(Ipv4Addr::new(192, 168, 31, 3)), "02:ca:c0:a8:1f:03");
    }

    #[test]
    fn vlan_settings_go_with_the_vlan_driver_only() {
        assert_eq!(
            NetworkDriver::parse("driver", "VLAN").unwrap(),
            NetworkDriver::Vlan
        );
        assert!(!NetworkDriver::Vlan.owns_gateway() && NetworkDriver::Vxlan.owns_gateway());
        for bad in [0, MAX_VLAN_ID + 1] {
            assert!(validate_vlan_id("vlan_id", bad).is_err(), "{bad}");
        }
        assert!(validate_vlan_id("vlan_id", 1).is_ok() && validate_vlan_id("x", 4094).is_ok());
        let tagged = VlanOptions {
            vlan_id: Some(164),
            ..Default::default()
        };
        assert!(validate_vlan(NetworkDriver::Vlan, Some(&tagged), "vlan").is_ok());
        let e = validate_vlan(NetworkDriver::Vlan, None, "vlan").unwrap_err();
        assert_eq!(e.field, "vlan");
        let e = validate_vlan(NetworkDriver::Vxlan, Some(&tagged), "networks[0].vlan").unwrap_err();
        assert!(e.message.contains("vlan networks only"), "{e}");
        let zero = VlanOptions {
            vlan_id: Some(0),
            ..Default::default()
        };
        let e = validate_vlan(NetworkDriver::Vlan, Some(&zero), "vlan").unwrap_err();
        assert_eq!(e.field, "vlan.vlan_id");
        // Absent options stay absent on the wire (older agents read endpoints strictly).
        assert_eq!(
            serde_json::to_value(VlanOptions::default()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn endpoints_are_eth0_onwards_once_per_network() {
        let e = |i: usize, net: &str, ip: &str| Endpoint {
            interface: format!("eth{i}"),
            network: net.into(),
            driver: NetworkDriver::Vxlan,
            vni: 7,
            subnet: "10.0.0.0/24".into(),
            gateway: "10.0.0.1".into(),
            ip: ip.into(),
            mac: mac_for(ip.parse().unwrap()),
            service: None,
            vlan: None,
        };
        assert!(validate_endpoints(&[e(0, "a", "10.0.0.2"), e(1, "b", "10.0.0.3")]).is_ok());
        assert!(validate_endpoints(&[e(1, "a", "10.0.0.2")]).is_err());
        assert!(validate_endpoints(&[e(0, "a", "10.0.0.2"), e(1, "a", "10.0.0.3")]).is_err());
        let mut wrong_mac = e(0, "a", "10.0.0.2");
        wrong_mac.mac = "02:00:00:00:00:01".into();
        assert_eq!(
            validate_endpoints(&[wrong_mac]).unwrap_err().field,
            "networks[0].mac"
        );
    }
}
