//! Network services on the wire: a network's internal DNS service (`DnsSpec`, at most one per
//! network) and its L4 load balancers (`LbSpec`: a virtual IP, a port map and backends), the
//! REST bodies that create them, and the checks central and the CLI share (domain, forward
//! address, ports, weights, the seed's `slb.*` keys).

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use crate::name::validate_dns_label;
use crate::ValidationError;

/// The search domain of a DNS service created without `-l Domain=`.
pub const DEFAULT_DOMAIN: &str = "caas.local";
/// TTL of every answer the agents give (seconds): records follow ZooKeeper within a second, so
/// resolvers must not keep them long.
pub const DNS_TTL: u32 = 5;
/// What `IpAllocation.workload` holds for a load balancer's VIP: `lb:<name>` (a container name
/// is a DNS label, so it never has a colon).
pub const LB_OWNER_PREFIX: &str = "lb:";

/// `pools/<pool>/networks/<net>/dns`: the network's DNS service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    #[serde(default = "crate::payload_version")]
    pub version: u32,
    pub pool: String,
    pub name: String,
    pub network: String,
    /// Names are answered as `NAME.<domain>` and, through the search domain, as `NAME`.
    pub domain: String,
    /// Where other names go (`IP:port`); without it they are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<String>,
    #[serde(default)]
    pub created_at: u64,
}

/// `POST /v1/pools/{pool}/dns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDnsRequest {
    pub name: String,
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<String>,
}

/// Transport of a load balancer's port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbProtocol {
    #[default]
    Tcp,
    Udp,
}

impl LbProtocol {
    pub fn parse(field: &str, text: &str) -> Result<Self, ValidationError> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            other => Err(ValidationError::new(
                field,
                format!("{other:?} is not a protocol; use tcp or udp"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// One backend of a load balancer: a container of the LB's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbBackend {
    pub container: String,
    /// The container's port (the LB's port unless given).
    pub port: u16,
    pub weight: u32,
}

/// `pools/<pool>/networks/<net>/lbs/<name>`: a load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbSpec {
    #[serde(default = "crate::payload_version")]
    pub version: u32,
    pub pool: String,
    pub name: String,
    pub network: String,
    /// The virtual IP, an address of the network held by IPAM (`ips/<vip>`, owner `lb:<name>`).
    pub vip: String,
    pub port: u16,
    #[serde(default)]
    pub protocol: LbProtocol,
    /// Also served on every node's underlay address at this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<u16>,
    #[serde(default)]
    pub backends: Vec<LbBackend>,
    #[serde(default)]
    pub created_at: u64,
}

/// `POST /v1/pools/{pool}/lbs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLbRequest {
    pub name: String,
    pub network: String,
    /// 1..=65535 (wider type so a bad value is refused with a message, not a parse error).
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// `POST /v1/pools/{pool}/lbs/{name}/backends`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBackendRequest {
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A load balancer as `lb inspect` shows it: the spec and, per backend, its address and what
/// its agent last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbView {
    #[serde(flatten)]
    pub spec: LbSpec,
    pub members: Vec<LbMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbMember {
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub port: u16,
    pub weight: u32,
    /// `up` when running and not unhealthy, else why not (`not-running`, `unhealthy`, `missing`).
    pub state: String,
}

/// What a container takes part in, as `container inspect` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceMembership {
    /// Fully qualified names the network's DNS answers with this container's address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// Load balancers that have it as a backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lbs: Vec<String>,
}

impl ServiceMembership {
    pub fn is_empty(&self) -> bool {
        self.dns_names.is_empty() && self.lbs.is_empty()
    }
}

/// A port 1..=65535.
pub fn validate_port(field: &str, port: u32) -> Result<u16, ValidationError> {
    match u16::try_from(port) {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(ValidationError::new(
            field,
            format!("{port} is not a port; use 1..65535"),
        )),
    }
}

pub fn validate_weight(field: &str, weight: u32) -> Result<u32, ValidationError> {
    if weight == 0 || weight > 1000 {
        return Err(ValidationError::new(
            field,
            format!("{weight} is not a weight; use 1..1000"),
        ));
    }
    Ok(weight)
}

/// A DNS domain: dot-separated DNS labels, no trailing dot, e.g. `caas.local`.
pub fn validate_domain(field: &str, domain: &str) -> Result<String, ValidationError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || domain.len() > 200 {
        return Err(ValidationError::new(
            field,
            format!("{domain:?} is not a domain; write it like caas.local"),
        ));
    }
    for label in domain.split('.') {
        validate_dns_label(field, label).map_err(|_| {
            ValidationError::new(
                field,
                format!("{domain:?} is not a domain: {label:?} is not a DNS label; write it like caas.local"),
            )
        })?;
    }
    Ok(domain)
}

/// `IP` or `IP:port` (port 53 when absent) → canonical `IP:port`.
pub fn parse_forward(field: &str, text: &str) -> Result<SocketAddrV4, ValidationError> {
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Ok(SocketAddrV4::new(ip, 53));
    }
    let addr: SocketAddrV4 = text.parse().map_err(|_| {
        ValidationError::new(
            field,
            format!("{text:?} is not an IPv4 address or IP:port; write it like 10.0.0.53 or 10.0.0.53:5353"),
        )
    })?;
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(ValidationError::new(
            field,
            format!("{text} cannot receive queries; give a resolver's address"),
        ));
    }
    Ok(addr)
}

/// The seed's cloud-LB keys (`-l slb.*`) have no meaning here.
pub fn refuse_slb_key(field: &str, key: &str) -> Result<(), ValidationError> {
    if key.to_ascii_lowercase().starts_with("slb.") {
        return Err(ValidationError::new(
            field,
            format!("{key} configures the seed's cloud load balancer; only the built-in balancer exists (keys: Port, Vip, Publish, Protocol, Weight)"),
        ));
    }
    Ok(())
}

/// The LB a VIP allocation belongs to, if it is one.
pub fn lb_of_owner(workload: &str) -> Option<&str> {
    workload.strip_prefix(LB_OWNER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_weights_domains_forwards() {
        assert_eq!(validate_port("port", 80).unwrap(), 80);
        assert!(validate_port("port", 0).is_err());
        assert!(validate_port("port", 65536).is_err());
        assert!(validate_weight("weight", 0).is_err());
        assert_eq!(validate_weight("weight", 3).unwrap(), 3);
        assert_eq!(validate_domain("d", "Caas.Local.").unwrap(), "caas.local");
        assert!(validate_domain("d", "bad..x").is_err());
        assert!(validate_domain("d", "under_score").is_err());
        assert_eq!(
            parse_forward("f", "10.0.0.53").unwrap().to_string(),
            "10.0.0.53:53"
        );
        assert_eq!(parse_forward("f", "10.0.0.53:5353").unwrap().port(), 5353);
        assert!(parse_forward("f", "resolver").is_err());
        assert!(parse_forward("f", "10.0.0.1:0").is_err());
        assert!(refuse_slb_key("l", "slb.listener").is_err());
        assert!(refuse_slb_key("l", "Port").is_ok());
        assert_eq!(lb_of_owner("lb:web"), Some("web"));
        assert_eq!(lb_of_owner("web"), None);
    }
}
