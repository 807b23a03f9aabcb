//! A network's services: its DNS service (`networks/<net>/dns`, at most one) and its load
//! balancers (`networks/<net>/lbs/<name>`, each holding a VIP allocated by the network's IPAM
//! in the same commit). Every request is validated before anything is read; every change is one
//! multi with a versioned set of the pool's `networks` directory, so name and port checks across
//! the pool's networks cannot be raced.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use caas_api::central::ContainerRecord;
use caas_api::name::validate_dns_label;
use caas_api::network::{mac_for, IpAllocation, NetworkSpec};
use caas_api::service::{
    parse_forward, validate_domain, validate_port, validate_weight, AddBackendRequest,
    CreateDnsRequest, CreateLbRequest, DnsSpec, LbBackend, LbMember, LbProtocol, LbSpec, LbView,
    ServiceMembership, DEFAULT_DOMAIN, LB_OWNER_PREFIX,
};
use caas_api::{HealthState, WorkloadKey, WorkloadState};

use crate::error::{CentralError, ConflictKind};
use crate::networks;
use crate::state::Central;
use crate::store::{Op, OpFailure};

const MAX_ATTEMPTS: usize = 10;

/// The pool's DNS services.
pub async fn dns_list(central: &Central, pool: &str) -> Result<Vec<DnsSpec>, CentralError> {
    let mut out = Vec::new();
    for net in networks::networks(central, pool).await? {
        if let Some((spec, _)) = central
            .store
            .get::<DnsSpec>(&central.layout().dns(pool, &net.name))
            .await?
        {
            out.push(spec);
        }
    }
    Ok(out)
}

/// The pool's load balancers with their znode versions.
pub async fn lb_list(central: &Central, pool: &str) -> Result<Vec<(LbSpec, i32)>, CentralError> {
    let layout = central.layout();
    let mut out = Vec::new();
    for net in networks::networks(central, pool).await? {
        for name in central.store.children(&layout.lbs(pool, &net.name)).await? {
            if let Some(found) = central
                .store
                .get::<LbSpec>(&layout.lb(pool, &net.name, &name))
                .await?
            {
                out.push(found);
            }
        }
    }
    Ok(out)
}

async fn networks_version(central: &Central, pool: &str) -> Result<i32, CentralError> {
    central
        .store
        .get_raw(&central.layout().networks(pool))
        .await?
        .map(|(_, v)| v)
        .ok_or_else(|| CentralError::not_found(format!("pool {pool} not found")))
}

fn network_missing(pool: &str, network: &str) -> CentralError {
    CentralError::not_found(format!(
        "network {network} not found in pool {pool}; create it first (caas network create)"
    ))
}

/// Checks a DNS create request without reading anything; returns domain and forward.
pub fn validate_dns(request: &CreateDnsRequest) -> Result<(String, Option<String>), CentralError> {
    validate_dns_label("name", &request.name)?;
    validate_dns_label("network", &request.network)?;
    let domain = validate_domain(
        "domain",
        request.domain.as_deref().unwrap_or(DEFAULT_DOMAIN),
    )?;
    let forward = match &request.forward {
        Some(text) => Some(parse_forward("forward", text)?.to_string()),
        None => None,
    };
    Ok((domain, forward))
}

/// DNS and load balancers answer on addresses every node's bridge owns; a vlan network's
/// segment belongs to the data centre (its gateway is the physical router).
fn refuse_on_vlan(
    net: &caas_api::network::NetworkSpec,
    field: &str,
    what: &str,
) -> Result<(), CentralError> {
    if net.driver == caas_api::network::NetworkDriver::Vlan {
        return Err(CentralError::invalid(
            field,
            format!(
                "network {} is a vlan network: a {what} needs a vxlan or bridge network (nodes \
                 own no address on a data-centre VLAN; use the data centre's own {what})",
                net.name
            ),
        ));
    }
    Ok(())
}

pub async fn dns_create(
    central: &Central,
    pool: &str,
    request: &CreateDnsRequest,
) -> Result<DnsSpec, CentralError> {
    let (domain, forward) = validate_dns(request)?;
    let layout = central.layout();
    for _ in 0..MAX_ATTEMPTS {
        let dir_version = networks_version(central, pool).await?;
        let net = networks::get(central, pool, &request.network)
            .await
            .map_err(|_| network_missing(pool, &request.network))?;
        refuse_on_vlan(&net, "network", "DNS service")?;
        let existing = dns_list(central, pool).await?;
        if let Some(other) = existing.iter().find(|d| d.network == net.name) {
            if other.name == request.name && other.domain == domain && other.forward == forward {
                return Ok(other.clone());
            }
            return Err(CentralError::conflict(
                ConflictKind::Exists,
                format!(
                    "network {} already has the DNS service {}; one per network (caas dns rm {} first)",
                    net.name, other.name, other.name
                ),
            ));
        }
        if existing.iter().any(|d| d.name == request.name) {
            return Err(CentralError::conflict(
                ConflictKind::Exists,
                format!("DNS service {} already exists in pool {pool}", request.name),
            ));
        }
        let spec = DnsSpec {
            version: caas_api::PAYLOAD_VERSION,
            pool: pool.to_string(),
            name: request.name.clone(),
            network: net.name.clone(),
            domain: domain.clone(),
            forward: forward.clone(),
            created_at: crate::now(),
        };
        let ops = vec![
            Op::Set {
                path: layout.networks(pool),
                data: Vec::new(),
                version: dir_version,
            },
            Op::exists(layout.network(pool, &net.name)),
            Op::create(layout.dns(pool, &net.name), &spec)?,
        ];
        match central.store.commit(&ops, None).await {
            Ok(()) => return Ok(spec),
            Err(e) => match e.conflict() {
                Some((OpFailure::BadVersion | OpFailure::NodeExists, _)) => continue,
                Some((OpFailure::NoNode, _)) => return Err(network_missing(pool, &net.name)),
                _ => return Err(e.into()),
            },
        }
    }
    Err(CentralError::contention(
        "networks of this pool are being changed concurrently; retry",
    ))
}

pub async fn dns_remove(central: &Central, pool: &str, name: &str) -> Result<(), CentralError> {
    validate_dns_label("name", name)?;
    let found = dns_list(central, pool)
        .await?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            CentralError::not_found(format!("DNS service {name} not found in pool {pool}"))
        })?;
    let ops = vec![Op::Delete {
        path: central.layout().dns(pool, &found.network),
        version: None,
    }];
    central.store.commit(&ops, None).await?;
    Ok(())
}

/// Checks an LB create request without reading anything.
pub fn validate_lb(
    request: &CreateLbRequest,
) -> Result<(u16, Option<u16>, LbProtocol, Option<Ipv4Addr>), CentralError> {
    validate_dns_label("name", &request.name)?;
    validate_dns_label("network", &request.network)?;
    let port = validate_port("port", request.port)?;
    let publish = request
        .publish
        .map(|p| validate_port("publish", p))
        .transpose()?;
    let protocol = match &request.protocol {
        Some(p) => LbProtocol::parse("protocol", p)?,
        None => LbProtocol::Tcp,
    };
    let vip = match &request.vip {
        Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|_| {
            CentralError::invalid("vip", format!("{text:?} is not an IPv4 address"))
        })?),
        None => None,
    };
    Ok((port, publish, protocol, vip))
}

pub async fn lb_create(
    central: &Central,
    pool: &str,
    request: &CreateLbRequest,
) -> Result<LbSpec, CentralError> {
    let (port, publish, protocol, vip) = validate_lb(request)?;
    let layout = central.layout();
    for _ in 0..MAX_ATTEMPTS {
        let dir_version = networks_version(central, pool).await?;
        let net = networks::get(central, pool, &request.network)
            .await
            .map_err(|_| network_missing(pool, &request.network))?;
        refuse_on_vlan(&net, "network", "load balancer")?;
        let subnet = net
            .subnet()
            .map_err(|e| CentralError::internal(format!("network {}: {e}", net.name)))?;
        let existing = lb_list(central, pool).await?;
        if let Some((other, _)) = existing.iter().find(|(l, _)| l.name == request.name) {
            return Err(CentralError::conflict(
                ConflictKind::Exists,
                format!(
                    "load balancer {} already exists in pool {pool} (network {})",
                    other.name, other.network
                ),
            ));
        }
        if let Some(p) = publish {
            if let Some((other, _)) = existing.iter().find(|(l, _)| l.publish == Some(p)) {
                return Err(CentralError::conflict(
                    ConflictKind::PortTaken,
                    format!(
                        "port {p} is already published on the nodes by load balancer {}; pick another Publish port",
                        other.name
                    ),
                ));
            }
        }
        let used = networks::allocations(central, pool, &net.name).await?;
        let taken: BTreeSet<Ipv4Addr> =
            used.iter().filter_map(|(a, _)| a.ip.parse().ok()).collect();
        let vip = match vip {
            Some(ip) => {
                subnet.check_host("vip", ip)?;
                if let Some((owner, _)) = used.iter().find(|(a, _)| a.ip == ip.to_string()) {
                    return Err(CentralError::conflict(
                        ConflictKind::AddressTaken,
                        format!(
                            "{ip} is already used in network {} by {}; pick a free address or leave Vip out",
                            net.name, owner.workload
                        ),
                    ));
                }
                ip
            }
            None => subnet
                .hosts()
                .find(|ip| !taken.contains(ip))
                .ok_or_else(|| {
                    CentralError::conflict(
                        ConflictKind::Exhausted,
                        format!("network {} has no free address left for a VIP", net.name),
                    )
                })?,
        };
        let spec = LbSpec {
            version: caas_api::PAYLOAD_VERSION,
            pool: pool.to_string(),
            name: request.name.clone(),
            network: net.name.clone(),
            vip: vip.to_string(),
            port,
            protocol,
            publish,
            backends: Vec::new(),
            created_at: crate::now(),
        };
        let allocation = IpAllocation {
            version: caas_api::PAYLOAD_VERSION,
            ip: vip.to_string(),
            mac: mac_for(vip),
            workload: format!("{LB_OWNER_PREFIX}{}", request.name),
            node: String::new(),
            service: None,
        };
        let mut ops = vec![Op::Set {
            path: layout.networks(pool),
            data: Vec::new(),
            version: dir_version,
        }];
        if central
            .store
            .get_raw(&layout.lbs(pool, &net.name))
            .await?
            .is_none()
        {
            ops.push(Op::Create {
                path: layout.lbs(pool, &net.name),
                data: Vec::new(),
            });
        }
        ops.push(Op::create(
            layout.lb(pool, &net.name, &request.name),
            &spec,
        )?);
        ops.push(Op::create(
            layout.ip(pool, &net.name, &vip.to_string()),
            &allocation,
        )?);
        match central.store.commit(&ops, None).await {
            Ok(()) => return Ok(spec),
            Err(e) => match e.conflict() {
                Some((OpFailure::BadVersion | OpFailure::NodeExists, _)) => continue,
                Some((OpFailure::NoNode, _)) => return Err(network_missing(pool, &net.name)),
                _ => return Err(e.into()),
            },
        }
    }
    Err(CentralError::contention(
        "networks of this pool are being changed concurrently; retry",
    ))
}

pub async fn lb_get(
    central: &Central,
    pool: &str,
    name: &str,
) -> Result<(LbSpec, i32), CentralError> {
    validate_dns_label("name", name)?;
    lb_list(central, pool)
        .await?
        .into_iter()
        .find(|(l, _)| l.name == name)
        .ok_or_else(|| {
            CentralError::not_found(format!("load balancer {name} not found in pool {pool}"))
        })
}

/// Removes an LB and releases its VIP in one commit.
pub async fn lb_remove(central: &Central, pool: &str, name: &str) -> Result<(), CentralError> {
    let (spec, version) = lb_get(central, pool, name).await?;
    let layout = central.layout();
    let ops = vec![
        Op::Delete {
            path: layout.lb(pool, &spec.network, name),
            version: Some(version),
        },
        Op::Delete {
            path: layout.ip(pool, &spec.network, &spec.vip),
            version: None,
        },
    ];
    match central.store.commit(&ops, None).await {
        Ok(()) => Ok(()),
        Err(e)
            if e.conflict()
                .is_some_and(|(f, _)| f == OpFailure::BadVersion) =>
        {
            Err(CentralError::contention(
                "the load balancer changed meanwhile; retry",
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Adds (or updates the port and weight of) a backend.
pub async fn lb_add_backend(
    central: &Central,
    pool: &str,
    name: &str,
    request: &AddBackendRequest,
) -> Result<LbSpec, CentralError> {
    validate_dns_label("name", name)?;
    validate_dns_label("container", &request.container)?;
    let port = request.port.map(|p| validate_port("port", p)).transpose()?;
    let weight = validate_weight("weight", request.weight.unwrap_or(1))?;
    for _ in 0..MAX_ATTEMPTS {
        let (mut spec, version) = lb_get(central, pool, name).await?;
        let (record, _) = central
            .store
            .container(pool, &request.container)
            .await?
            .ok_or_else(|| {
                CentralError::not_found(format!(
                    "container {} not found in pool {pool}",
                    request.container
                ))
            })?;
        if !record
            .spec
            .networks
            .iter()
            .any(|e| e.network == spec.network)
        {
            return Err(CentralError::invalid(
                "container",
                format!(
                    "container {} is not attached to network {} of load balancer {name}; create it with --public-service=.{}",
                    request.container, spec.network, spec.network
                ),
            ));
        }
        let backend = LbBackend {
            container: request.container.clone(),
            port: port.unwrap_or(spec.port),
            weight,
        };
        match spec
            .backends
            .iter_mut()
            .find(|b| b.container == backend.container)
        {
            Some(b) => *b = backend,
            None => spec.backends.push(backend),
        }
        let path = central.layout().lb(pool, &spec.network, name);
        match central
            .store
            .commit(&[Op::set(path, &spec, version)?], None)
            .await
        {
            Ok(()) => return Ok(spec),
            Err(e)
                if e.conflict()
                    .is_some_and(|(f, _)| f == OpFailure::BadVersion) =>
            {
                continue
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CentralError::contention(
        "the load balancer is being changed concurrently; retry",
    ))
}

pub async fn lb_remove_backend(
    central: &Central,
    pool: &str,
    name: &str,
    container: &str,
) -> Result<LbSpec, CentralError> {
    validate_dns_label("container", container)?;
    for _ in 0..MAX_ATTEMPTS {
        let (mut spec, version) = lb_get(central, pool, name).await?;
        let before = spec.backends.len();
        spec.backends.retain(|b| b.container != container);
        if spec.backends.len() == before {
            return Err(CentralError::not_found(format!(
                "container {container} is not a backend of load balancer {name}"
            )));
        }
        let path = central.layout().lb(pool, &spec.network, name);
        match central
            .store
            .commit(&[Op::set(path, &spec, version)?], None)
            .await
        {
            Ok(()) => return Ok(spec),
            Err(e)
                if e.conflict()
                    .is_some_and(|(f, _)| f == OpFailure::BadVersion) =>
            {
                continue
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CentralError::contention(
        "the load balancer is being changed concurrently; retry",
    ))
}

/// An LB with each backend's address and state.
pub async fn lb_view(central: &Central, spec: LbSpec) -> Result<LbView, CentralError> {
    let mut members = Vec::new();
    for b in &spec.backends {
        let record = central.store.container(&spec.pool, &b.container).await?;
        let (ip, state) = match record {
            None => (None, "missing".to_string()),
            Some((record, _)) => {
                let ip = record
                    .spec
                    .networks
                    .iter()
                    .find(|e| e.network == spec.network)
                    .map(|e| e.ip.clone());
                let key = WorkloadKey::new(&spec.pool, &b.container);
                let status = central.store.status(&record.node, &key).await?;
                let state = match &status {
                    Some(s) if s.state != WorkloadState::Running => "not-running",
                    None => "not-running",
                    Some(s)
                        if s.health
                            .as_ref()
                            .is_some_and(|h| h.state == HealthState::Unhealthy) =>
                    {
                        "unhealthy"
                    }
                    Some(_) => "up",
                };
                (ip, state.to_string())
            }
        };
        members.push(LbMember {
            container: b.container.clone(),
            ip,
            port: b.port,
            weight: b.weight,
            state,
        });
    }
    Ok(LbView { spec, members })
}

/// The DNS names and LBs a container takes part in.
pub async fn membership(
    central: &Central,
    record: &ContainerRecord,
) -> Result<ServiceMembership, CentralError> {
    let pool = &record.spec.pool;
    let mut out = ServiceMembership::default();
    let attached: Vec<&str> = record
        .spec
        .networks
        .iter()
        .map(|e| e.network.as_str())
        .collect();
    if attached.is_empty() {
        return Ok(out);
    }
    for dns in dns_list(central, pool).await? {
        let Some(endpoint) = record
            .spec
            .networks
            .iter()
            .find(|e| e.network == dns.network)
        else {
            continue;
        };
        out.dns_names.push(format!(
            "{}.{}",
            record.spec.effective_hostname(),
            dns.domain
        ));
        if let Some(service) = &endpoint.service {
            out.dns_names.push(format!("{service}.{}", dns.domain));
            out.dns_names
                .push(format!("{service}.{}.{}", dns.network, dns.domain));
        }
    }
    for (lb, _) in lb_list(central, pool).await? {
        if attached.contains(&lb.network.as_str())
            && lb.backends.iter().any(|b| b.container == record.spec.name)
        {
            out.lbs.push(lb.name);
        }
    }
    Ok(out)
}

/// Ops that remove a network's DNS service and empty LB directory along with the network.
pub async fn network_teardown_ops(
    central: &Central,
    net: &NetworkSpec,
) -> Result<Vec<Op>, CentralError> {
    let layout = central.layout();
    let mut ops = Vec::new();
    if central
        .store
        .get_raw(&layout.dns(&net.pool, &net.name))
        .await?
        .is_some()
    {
        ops.push(Op::Delete {
            path: layout.dns(&net.pool, &net.name),
            version: None,
        });
    }
    if central
        .store
        .get_raw(&layout.lbs(&net.pool, &net.name))
        .await?
        .is_some()
    {
        // Fails NotEmpty while load balancers exist (their VIPs also keep `ips/` non-empty).
        ops.push(Op::Delete {
            path: layout.lbs(&net.pool, &net.name),
            version: None,
        });
    }
    Ok(ops)
}
