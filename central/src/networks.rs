//! A pool's networks: create (validated; no subnet overlap within the pool; a cluster-wide VNI
//! claimed in the same commit), list and inspect with endpoints, remove (refused while
//! endpoints exist); and IPAM: turning a create request's attachments into endpoints with
//! addresses, whose allocation znodes the placement commit creates.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use caas_api::central::CreateContainerRequest;
use caas_api::name::validate_dns_label;
use caas_api::network::{
    mac_for, validate_vlan_id, validate_vni, CreateNetworkRequest, Endpoint, IpAllocation,
    NetworkDriver, NetworkSpec, NetworkView, Subnet, VlanOptions, MAX_ENDPOINTS, MAX_VNI,
};
use serde::{Deserialize, Serialize};

use crate::error::{CentralError, ConflictKind};
use crate::state::Central;
use crate::store::{Op, OpFailure};

const MAX_ATTEMPTS: usize = 10;

/// What `vnis/<vni>` records: who owns the VNI.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VniClaim {
    pool: String,
    network: String,
}

/// What `vlans/<segment>` records: who owns the segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VlanClaim {
    pool: String,
    network: String,
}

/// A create request, checked.
#[derive(Debug)]
pub struct ValidNetwork {
    pub driver: NetworkDriver,
    pub subnet: Subnet,
    pub vlan: Option<VlanOptions>,
}

/// The claim name of a VLAN network's segment.
fn segment(vlan: &VlanOptions) -> String {
    vlan.vlan_id
        .map_or_else(|| "untagged".to_string(), |id| id.to_string())
}

/// Checks a create request before anything is read: name, driver, subnet, gateway, VNI, and
/// the VLAN settings (only with the vlan driver).
pub fn validate_request(
    pool: &str,
    request: &CreateNetworkRequest,
) -> Result<ValidNetwork, CentralError> {
    validate_dns_label("name", &request.name)?;
    let driver = NetworkDriver::parse("driver", &request.driver)?;
    let subnet = Subnet::parse(&request.subnet, &request.gateway)?;
    if let Some(vni) = request.vni {
        validate_vni("vni", vni)?;
    }
    let vlan = if driver == NetworkDriver::Vlan {
        if let Some(id) = request.vlan_id {
            validate_vlan_id("vlan_id", id)?;
        }
        Some(VlanOptions {
            vlan_id: request.vlan_id,
            arp_proxy: request.arp_proxy.unwrap_or(false),
            mac_nat: request.mac_nat.unwrap_or(false),
        })
    } else {
        let given = [
            ("vlan_id", request.vlan_id.is_some(), "a VLAN id"),
            ("arp_proxy", request.arp_proxy.is_some(), "ARP proxy"),
            ("mac_nat", request.mac_nat.is_some(), "MAC NAT"),
        ];
        if let Some((field, _, what)) = given.into_iter().find(|(_, given, _)| *given) {
            return Err(CentralError::invalid(
                field,
                format!(
                    "{what} applies to vlan networks only; a {} network {}; leave it out or \
                     use -d vlan",
                    driver.as_str(),
                    match driver {
                        NetworkDriver::Vxlan => "is an overlay whose frames the switch never sees",
                        _ => "never leaves its node",
                    }
                ),
            ));
        }
        None
    };
    tracing::debug!(%pool, network = %request.name, "network request valid");
    Ok(ValidNetwork {
        driver,
        subnet,
        vlan,
    })
}

pub async fn networks(central: &Central, pool: &str) -> Result<Vec<NetworkSpec>, CentralError> {
    let layout = central.layout();
    let mut out = Vec::new();
    for name in central.store.children(&layout.networks(pool)).await? {
        if let Some((spec, _)) = central
            .store
            .get::<NetworkSpec>(&layout.network(pool, &name))
            .await?
        {
            out.push(spec);
        }
    }
    Ok(out)
}

/// The allocations of a network with their znode versions.
pub async fn allocations(
    central: &Central,
    pool: &str,
    network: &str,
) -> Result<Vec<(IpAllocation, i32)>, CentralError> {
    let layout = central.layout();
    let mut out = Vec::new();
    for ip in central.store.children(&layout.ips(pool, network)).await? {
        if let Some(found) = central
            .store
            .get::<IpAllocation>(&layout.ip(pool, network, &ip))
            .await?
        {
            out.push(found);
        }
    }
    Ok(out)
}

pub async fn view(central: &Central, spec: NetworkSpec) -> Result<NetworkView, CentralError> {
    let endpoints = allocations(central, &spec.pool, &spec.name)
        .await?
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    Ok(NetworkView { spec, endpoints })
}

pub async fn get(central: &Central, pool: &str, name: &str) -> Result<NetworkSpec, CentralError> {
    central
        .store
        .get::<NetworkSpec>(&central.layout().network(pool, name))
        .await?
        .map(|(spec, _)| spec)
        .ok_or_else(|| CentralError::not_found(format!("network {name} not found in pool {pool}")))
}

/// Creates a network. Two creates in one pool serialise on the version of the pool's networks
/// directory, so the overlap check cannot be raced.
pub async fn create(
    central: &Central,
    pool: &str,
    request: &CreateNetworkRequest,
) -> Result<NetworkSpec, CentralError> {
    let ValidNetwork {
        driver,
        subnet,
        vlan,
    } = validate_request(pool, request)?;
    let layout = central.layout();
    central.store.ensure(&layout.vnis()).await?;
    if vlan.is_some() {
        central.store.ensure(&layout.vlans()).await?;
    }
    for _ in 0..MAX_ATTEMPTS {
        let Some((_, dir_version)) = central.store.get_raw(&layout.networks(pool)).await? else {
            return Err(CentralError::not_found(format!("pool {pool} not found")));
        };
        let existing = networks(central, pool).await?;
        if existing.iter().any(|n| n.name == request.name) {
            return Err(CentralError::conflict(
                ConflictKind::Exists,
                format!("network {} already exists in pool {pool}", request.name),
            ));
        }
        if let Some(other) = existing
            .iter()
            .find(|n| n.subnet().is_ok_and(|s| s.overlaps(&subnet)))
        {
            return Err(CentralError::invalid(
                "subnet",
                format!(
                    "{} overlaps network {} ({}) of pool {pool}; pick a subnet that does not",
                    subnet.net, other.name, other.subnet
                ),
            ));
        }
        let vni = match request.vni {
            Some(vni) => vni,
            None => {
                let taken: BTreeSet<u32> = central
                    .store
                    .children(&layout.vnis())
                    .await?
                    .iter()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                (1..=MAX_VNI).find(|v| !taken.contains(v)).ok_or_else(|| {
                    CentralError::conflict(ConflictKind::Exhausted, "every VNI is in use")
                })?
            }
        };
        let spec = NetworkSpec {
            version: caas_api::PAYLOAD_VERSION,
            pool: pool.to_string(),
            name: request.name.clone(),
            driver,
            subnet: subnet.net.to_string(),
            gateway: subnet.gateway.to_string(),
            vni,
            vlan,
            created_at: crate::now(),
        };
        let mut ops = vec![
            Op::Set {
                path: layout.networks(pool),
                data: Vec::new(),
                version: dir_version,
            },
            Op::create(
                layout.vni(vni),
                &VniClaim {
                    pool: pool.to_string(),
                    network: request.name.clone(),
                },
            )?,
            Op::create(layout.network(pool, &request.name), &spec)?,
            Op::Create {
                path: layout.ips(pool, &request.name),
                data: Vec::new(),
            },
            Op::exists(layout.pool(pool)),
        ];
        if let Some(v) = &vlan {
            ops.push(Op::create(
                layout.vlan(&segment(v)),
                &VlanClaim {
                    pool: pool.to_string(),
                    network: request.name.clone(),
                },
            )?);
        }
        match central.store.commit(&ops, None).await {
            Ok(()) => return Ok(spec),
            Err(e) => match e.conflict() {
                Some((OpFailure::NodeExists, path))
                    if vlan.is_some_and(|v| path == layout.vlan(&segment(&v))) =>
                {
                    return Err(vlan_taken(central, pool, vlan.unwrap_or_default()).await);
                }
                Some((OpFailure::NodeExists, path)) if path == layout.vni(vni) => {
                    if request.vni.is_some() {
                        return Err(CentralError::conflict(
                            ConflictKind::VniTaken,
                            format!("VNI {vni} is already used by another network; pick another or leave it out to get a free one"),
                        ));
                    }
                }
                Some((OpFailure::BadVersion, _)) => {}
                Some((_, path)) if path == layout.pool(pool) || path == layout.networks(pool) => {
                    return Err(CentralError::not_found(format!("pool {pool} not found")));
                }
                _ => return Err(e.into()),
            },
        }
    }
    Err(CentralError::contention(
        "networks of this pool are being changed concurrently; retry",
    ))
}

/// Says who holds a VLAN segment.
async fn vlan_taken(central: &Central, pool: &str, vlan: VlanOptions) -> CentralError {
    let path = central.layout().vlan(&segment(&vlan));
    let owner = match central.store.get::<VlanClaim>(&path).await {
        Ok(Some((claim, _))) if claim.pool == pool => {
            format!("network {} of this pool", claim.network)
        }
        Ok(Some(_)) => "a network of another pool".to_string(),
        _ => "another network".to_string(),
    };
    let what = match vlan.vlan_id {
        Some(id) => format!("VLAN {id}"),
        None => "the untagged uplink (no VlanId)".to_string(),
    };
    CentralError::conflict(
        ConflictKind::VlanTaken,
        format!(
            "{what} is already used by {owner}; one VLAN is one network (two would share a \
             broadcast domain): pick another VlanId"
        ),
    )
}

/// Removes a network that has no endpoints.
pub async fn remove(central: &Central, pool: &str, name: &str) -> Result<(), CentralError> {
    let layout = central.layout();
    let Some((spec, version)) = central
        .store
        .get::<NetworkSpec>(&layout.network(pool, name))
        .await?
    else {
        return Err(CentralError::not_found(format!(
            "network {name} not found in pool {pool}"
        )));
    };
    let endpoints = allocations(central, pool, name).await?;
    if !endpoints.is_empty() {
        let names: Vec<String> = endpoints
            .iter()
            .map(|(a, _)| format!("{} ({})", a.workload, a.ip))
            .collect();
        return Err(CentralError::conflict(
            ConflictKind::NotEmpty,
            format!(
                "network {name} still has {} endpoint(s): {}; remove those containers first",
                names.len(),
                names.join(", ")
            ),
        ));
    }
    // The network's DNS service goes with it; a load balancer keeps it (its VIP is listed above).
    let mut ops = crate::services::network_teardown_ops(central, &spec).await?;
    ops.extend([
        // Fails with NotEmpty if an address was allocated meanwhile.
        Op::Delete {
            path: layout.ips(pool, name),
            version: None,
        },
        Op::Delete {
            path: layout.network(pool, name),
            version: Some(version),
        },
        Op::Delete {
            path: layout.vni(spec.vni),
            version: None,
        },
    ]);
    if let Some(v) = &spec.vlan {
        ops.push(Op::Delete {
            path: layout.vlan(&segment(v)),
            version: None,
        });
    }
    match central.store.commit(&ops, None).await {
        Ok(()) => Ok(()),
        Err(e) if e.conflict().is_some_and(|(f, _)| f == OpFailure::NotEmpty) => {
            Err(CentralError::conflict(
                ConflictKind::NotEmpty,
                format!("network {name} got an endpoint meanwhile; remove that container first"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// The networks part of a create request, checked without reading anything.
pub fn validate_attachments(request: &CreateContainerRequest) -> Result<(), CentralError> {
    if request.networks.len() > MAX_ENDPOINTS {
        return Err(CentralError::invalid(
            "networks",
            format!("at most {MAX_ENDPOINTS} networks per container"),
        ));
    }
    let replicas = request.instances.unwrap_or(1);
    for (i, a) in request.networks.iter().enumerate() {
        let field = format!("networks[{i}]");
        validate_dns_label(&format!("{field}.network"), &a.network)?;
        if let Some(service) = &a.service {
            validate_dns_label(&format!("{field}.service"), service)?;
        }
        if request.networks[..i].iter().any(|o| o.network == a.network) {
            return Err(CentralError::invalid(
                field,
                format!(
                    "network {} is given twice; one interface per network",
                    a.network
                ),
            ));
        }
        if let Some(ip) = &a.ip {
            ip.parse::<Ipv4Addr>().map_err(|_| {
                CentralError::invalid(
                    format!("{field}.ip"),
                    format!("{ip:?} is not an IPv4 address"),
                )
            })?;
            if replicas > 1 {
                return Err(CentralError::invalid(
                    format!("{field}.ip"),
                    format!("{replicas} instances cannot share the address {ip}; leave the IP out to get one per replica"),
                ));
            }
        }
    }
    Ok(())
}

/// Endpoints for each replica of a create request (in replica order), with addresses chosen
/// now (requested ones checked, others the lowest free), and the node a bridge network pins
/// the replicas to.
pub struct Resolved {
    pub endpoints: Vec<Vec<Endpoint>>,
    pub pinned: Option<(String, String)>,
}

pub async fn resolve(
    central: &Central,
    pool: &str,
    request: &CreateContainerRequest,
    replicas: usize,
) -> Result<Resolved, CentralError> {
    let mut endpoints: Vec<Vec<Endpoint>> = vec![Vec::new(); replicas];
    let mut pinned: Option<(String, String)> = None;
    for (i, attachment) in request.networks.iter().enumerate() {
        let field = format!("networks[{i}]");
        let spec = get(central, pool, &attachment.network).await?;
        let subnet = spec
            .subnet()
            .map_err(|e| CentralError::internal(format!("network {}: {e}", spec.name)))?;
        let used = allocations(central, pool, &spec.name).await?;
        if spec.driver == NetworkDriver::Bridge {
            if let Some((a, _)) = used.first() {
                match &pinned {
                    Some((other, node)) if *node != a.node => {
                        return Err(CentralError::invalid(
                            field,
                            format!(
                                "bridge networks {other} and {} live on different nodes ({node}, {}); a container can join both only if they share a node",
                                spec.name, a.node
                            ),
                        ));
                    }
                    _ => pinned = Some((spec.name.clone(), a.node.clone())),
                }
            }
        }
        let mut taken: BTreeSet<Ipv4Addr> =
            used.iter().filter_map(|(a, _)| a.ip.parse().ok()).collect();
        for replica in endpoints.iter_mut() {
            let ip = match &attachment.ip {
                Some(text) => {
                    let ip: Ipv4Addr = text.parse().map_err(|_| {
                        CentralError::invalid(format!("{field}.ip"), format!("{text:?} is not an IPv4 address"))
                    })?;
                    subnet.check_host(&format!("{field}.ip"), ip)?;
                    if taken.contains(&ip) {
                        let owner = used
                            .iter()
                            .find(|(a, _)| a.ip == ip.to_string())
                            .map(|(a, _)| a.workload.clone())
                            .unwrap_or_default();
                        return Err(CentralError::conflict(
                            ConflictKind::AddressTaken,
                            format!("{ip} is already used in network {} by {owner}; pick a free address or leave it out", spec.name),
                        ));
                    }
                    ip
                }
                None => subnet.hosts().find(|ip| !taken.contains(ip)).ok_or_else(|| {
                    CentralError::conflict(
                        ConflictKind::Exhausted,
                        format!(
                            "network {} ({}) has no free address left; remove containers or create a larger network",
                            spec.name, spec.subnet
                        ),
                    )
                })?,
            };
            taken.insert(ip);
            replica.push(Endpoint {
                interface: format!("eth{i}"),
                network: spec.name.clone(),
                driver: spec.driver,
                vni: spec.vni,
                subnet: spec.subnet.clone(),
                gateway: spec.gateway.clone(),
                ip: ip.to_string(),
                mac: mac_for(ip),
                service: attachment.service.clone(),
                vlan: spec.vlan,
            });
        }
    }
    Ok(Resolved { endpoints, pinned })
}
