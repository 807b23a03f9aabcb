//! What the DNS servers and the load balancer of this node must serve, computed (purely) from
//! a snapshot of ZooKeeper: per network of the pool, whether this node carries it, its DNS zone
//! (hostnames, `--public-service` names of running and healthy replicas, LB names → VIP, SRV
//! for LB ports) and its load balancers with each backend's address and liveness.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};

use caas_api::central::ContainerRecord;
use caas_api::network::{IpAllocation, NetworkSpec};
use caas_api::service::{lb_of_owner, DnsSpec, LbProtocol, LbSpec};
use caas_api::{HealthState, WorkloadState, WorkloadStatus};
use ipnet::Ipv4Net;

/// ZooKeeper as far as services need it, for one pool.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub networks: Vec<NetworkSpec>,
    /// Per network.
    pub dns: BTreeMap<String, DnsSpec>,
    pub ips: BTreeMap<String, Vec<IpAllocation>>,
    pub lbs: BTreeMap<String, Vec<LbSpec>>,
    /// By container name.
    pub containers: BTreeMap<String, ContainerRecord>,
    /// By container name (the status its node's agent wrote).
    pub statuses: BTreeMap<String, WorkloadStatus>,
    /// Underlay address per registered node.
    pub underlays: BTreeMap<String, Ipv4Addr>,
}

/// A DNS zone: names are lowercase, fully qualified, without the trailing dot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    pub domain: String,
    pub forward: Option<SocketAddr>,
    pub a: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    /// `_<lb>._<proto>.<domain>` → (port, target name).
    pub srv: BTreeMap<String, Vec<(u16, String)>>,
}

impl Zone {
    /// Whether `name` (lowercase, no trailing dot) is inside this zone.
    pub fn owns(&self, name: &str) -> bool {
        name == self.domain
            || name
                .strip_suffix(&self.domain)
                .is_some_and(|rest| rest.ends_with('.'))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub container: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
    pub node: String,
    /// Running and not unhealthy.
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balancer {
    pub name: String,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub protocol: LbProtocol,
    pub publish: Option<u16>,
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetModel {
    pub name: String,
    pub vni: u32,
    pub gateway: Ipv4Addr,
    pub subnet: Ipv4Net,
    /// A container of this node is attached to it (so its bridge exists here).
    pub carried: bool,
    pub dns: Option<Zone>,
    pub balancers: Vec<Balancer>,
}

/// Running, and healthy or without a health check (a replica still `starting` is not served).
pub fn is_up(status: Option<&WorkloadStatus>) -> bool {
    status.is_some_and(|s| {
        s.state == WorkloadState::Running
            && s.health
                .as_ref()
                .is_none_or(|h| h.state == HealthState::Healthy)
    })
}

pub fn build(snapshot: &Snapshot, node_id: &str) -> Vec<NetModel> {
    let mut out = Vec::new();
    for net in &snapshot.networks {
        let Ok(subnet) = net.subnet() else { continue };
        let ips = snapshot
            .ips
            .get(&net.name)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let carried = ips.iter().any(|a| a.node == node_id);
        let address_of = |container: &str| -> Option<&IpAllocation> {
            ips.iter().find(|a| a.workload == container)
        };
        let balancers: Vec<Balancer> = snapshot
            .lbs
            .get(&net.name)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|lb| {
                let vip = lb.vip.parse().ok()?;
                let backends = lb
                    .backends
                    .iter()
                    .filter_map(|b| {
                        let a = address_of(&b.container)?;
                        Some(Backend {
                            container: b.container.clone(),
                            ip: a.ip.parse().ok()?,
                            port: b.port,
                            weight: b.weight,
                            node: a.node.clone(),
                            up: is_up(snapshot.statuses.get(&b.container)),
                        })
                    })
                    .collect();
                Some(Balancer {
                    name: lb.name.clone(),
                    vip,
                    port: lb.port,
                    protocol: lb.protocol,
                    publish: lb.publish,
                    backends,
                })
            })
            .collect();
        let dns = snapshot
            .dns
            .get(&net.name)
            .map(|d| zone(d, net, ips, &balancers, snapshot));
        out.push(NetModel {
            name: net.name.clone(),
            vni: net.vni,
            gateway: subnet.gateway,
            subnet: subnet.net,
            carried,
            dns,
            balancers,
        });
    }
    out
}

fn zone(
    dns: &DnsSpec,
    net: &NetworkSpec,
    ips: &[IpAllocation],
    balancers: &[Balancer],
    snapshot: &Snapshot,
) -> Zone {
    let domain = dns.domain.to_ascii_lowercase();
    let mut zone = Zone {
        domain: domain.clone(),
        forward: dns.forward.as_deref().and_then(|f| f.parse().ok()),
        ..Default::default()
    };
    let mut add = |name: String, ip: Ipv4Addr| {
        zone.a.entry(name).or_default().insert(ip);
    };
    for a in ips {
        if lb_of_owner(&a.workload).is_some() {
            continue;
        }
        let Ok(ip) = a.ip.parse::<Ipv4Addr>() else {
            continue;
        };
        let Some(record) = snapshot.containers.get(&a.workload) else {
            continue;
        };
        add(
            format!(
                "{}.{domain}",
                record.spec.effective_hostname().to_ascii_lowercase()
            ),
            ip,
        );
        if let Some(service) = &a.service {
            if is_up(snapshot.statuses.get(&a.workload)) {
                add(format!("{service}.{domain}"), ip);
                add(format!("{service}.{}.{domain}", net.name), ip);
            }
        }
    }
    for lb in balancers {
        let target = format!("{}.{domain}", lb.name);
        add(target.clone(), lb.vip);
        zone.srv
            .entry(format!("_{}._{}.{domain}", lb.name, lb.protocol.as_str()))
            .or_default()
            .push((lb.port, target));
    }
    zone
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_api::service::LbBackend;

    fn status(name: &str, state: WorkloadState, health: Option<HealthState>) -> WorkloadStatus {
        serde_json::from_value(serde_json::json!({
            "version": 1, "pool": "p", "name": name, "node": "n1", "state": state,
            "generation": 1, "app_hash": "x", "containers": {}, "observed_at": 0,
            "health": health.map(|h| serde_json::json!({"state": h, "consecutive_failures": 0, "message": ""})),
        }))
        .unwrap()
    }

    fn record(name: &str, hostname: Option<&str>) -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "version": 1, "app": name, "strategy": "spread", "node": "n1", "placement": "placed",
            "created_at": 0,
            "spec": {"pool": "p", "name": name, "image": "i", "generation": 1, "hostname": hostname},
        }))
        .unwrap()
    }

    fn alloc(ip: &str, workload: &str, node: &str, service: Option<&str>) -> IpAllocation {
        IpAllocation {
            version: 1,
            ip: ip.into(),
            mac: caas_api::network::mac_for(ip.parse().unwrap()),
            workload: workload.into(),
            node: node.into(),
            service: service.map(str::to_string),
        }
    }

    fn snapshot() -> Snapshot {
        let net: NetworkSpec = serde_json::from_value(serde_json::json!({
            "pool": "p", "name": "net", "driver": "vxlan", "subnet": "10.0.0.0/24",
            "gateway": "10.0.0.254", "vni": 7,
        }))
        .unwrap();
        let mut s = Snapshot {
            networks: vec![net],
            ..Default::default()
        };
        s.dns.insert(
            "net".into(),
            DnsSpec {
                version: 1,
                pool: "p".into(),
                name: "dns1".into(),
                network: "net".into(),
                domain: "caas.local".into(),
                forward: Some("198.18.0.1:53".into()),
                created_at: 0,
            },
        );
        s.ips.insert(
            "net".into(),
            vec![
                alloc("10.0.0.1", "web-1", "n1", Some("web")),
                alloc("10.0.0.2", "web-2", "n2", Some("web")),
                alloc("10.0.0.3", "core", "n2", None),
                alloc("10.0.0.100", "lb:front", "", None),
            ],
        );
        s.lbs.insert(
            "net".into(),
            vec![LbSpec {
                version: 1,
                pool: "p".into(),
                name: "front".into(),
                network: "net".into(),
                vip: "10.0.0.100".into(),
                port: 80,
                protocol: LbProtocol::Tcp,
                publish: Some(8080),
                backends: vec![
                    LbBackend {
                        container: "web-1".into(),
                        port: 80,
                        weight: 1,
                    },
                    LbBackend {
                        container: "web-2".into(),
                        port: 8080,
                        weight: 2,
                    },
                ],
                created_at: 0,
            }],
        );
        for (name, host) in [("web-1", None), ("web-2", None), ("core", Some("core-1"))] {
            s.containers.insert(name.into(), record(name, host));
        }
        s.statuses.insert(
            "web-1".into(),
            status("web-1", WorkloadState::Running, Some(HealthState::Healthy)),
        );
        s.statuses.insert(
            "web-2".into(),
            status(
                "web-2",
                WorkloadState::Running,
                Some(HealthState::Unhealthy),
            ),
        );
        s
    }

    #[test]
    fn zone_has_hostnames_healthy_services_and_lbs() {
        let models = build(&snapshot(), "n1");
        let m = &models[0];
        assert!(m.carried);
        let zone = m.dns.as_ref().unwrap();
        let ips = |name: &str| -> Vec<String> {
            zone.a
                .get(name)
                .map(|s| s.iter().map(|i| i.to_string()).collect())
                .unwrap_or_default()
        };
        assert_eq!(ips("core-1.caas.local"), ["10.0.0.3"]);
        assert_eq!(ips("web-2.caas.local"), ["10.0.0.2"]);
        // web-2 is unhealthy: not in the service's answer.
        assert_eq!(ips("web.caas.local"), ["10.0.0.1"]);
        assert_eq!(ips("web.net.caas.local"), ["10.0.0.1"]);
        assert_eq!(ips("front.caas.local"), ["10.0.0.100"]);
        assert!(ips("lb:front.caas.local").is_empty());
        assert_eq!(
            zone.srv["_front._tcp.caas.local"],
            [(80, "front.caas.local".to_string())]
        );
        assert!(zone.owns("web.caas.local") && zone.owns("caas.local"));
        assert!(!zone.owns("xcaas.local") && !zone.owns("example.org"));
        assert_eq!(zone.forward, Some("198.18.0.1:53".parse().unwrap()));
        let lb = &m.balancers[0];
        assert_eq!(lb.backends.len(), 2);
        assert!(lb.backends[0].up && !lb.backends[1].up);
        assert_eq!(lb.backends[1].port, 8080);
        assert!(!build(&snapshot(), "n9")[0].carried);
    }
}
