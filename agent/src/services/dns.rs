//! The DNS servers of this node: one per network that has a DNS service and is carried here,
//! bound to the network's gateway address (the anycast gateway every node's bridge holds), UDP
//! (`dns_udp`'s receive loops) and TCP (hickory-server with this zone handler) port 53. It answers its own network's zone only, authoritatively
//! with a short TTL; single-label names are looked up in the zone (the search domain); other
//! names go to the zone's `Forward` resolver or are REFUSED. The zone is swapped in place when
//! ZooKeeper changes, without restarting the server.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Message, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio_util::sync::CancellationToken;

use super::model::{NetModel, Zone};

pub const DNS_PORT: u16 = 53;
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

type SharedZone = Arc<RwLock<Arc<Zone>>>;

/// Answers one network's zone.
#[derive(Clone)]
pub struct ZoneHandler {
    zone: SharedZone,
}

impl ZoneHandler {
    pub fn new(zone: Zone) -> Self {
        Self {
            zone: Arc::new(RwLock::new(Arc::new(zone))),
        }
    }

    pub(super) fn current(&self) -> Arc<Zone> {
        match self.zone.read() {
            Ok(z) => z.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(super) fn replace(&self, zone: Zone) {
        match self.zone.write() {
            Ok(mut z) => *z = Arc::new(zone),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(zone),
        }
    }
}

/// What the zone says about a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Records(Vec<Record>),
    /// The name exists, not with that type.
    NoData,
    NxDomain,
    /// Not ours: forward or refuse.
    Elsewhere,
}

/// Looks `qname` (as asked, possibly with a trailing dot) up in `zone`.
pub fn lookup(zone: &Zone, qname: &str, qtype: RecordType) -> Answer {
    let asked = qname.trim_end_matches('.').to_ascii_lowercase();
    let name = if !asked.contains('.') && !asked.is_empty() {
        format!("{asked}.{}", zone.domain)
    } else {
        asked
    };
    if !zone.owns(&name) {
        return Answer::Elsewhere;
    }
    let Ok(owner) = Name::from_ascii(format!("{name}.")) else {
        return Answer::NxDomain;
    };
    let ttl = caas_api::service::DNS_TTL;
    let a = zone.a.get(&name);
    let srv = zone.srv.get(&name);
    let records: Vec<Record> = match qtype {
        RecordType::A => a
            .into_iter()
            .flatten()
            .map(|ip| Record::from_rdata(owner.clone(), ttl, RData::A(A(*ip))))
            .collect(),
        RecordType::SRV => srv
            .into_iter()
            .flatten()
            .filter_map(|(port, target)| {
                let target = Name::from_ascii(format!("{target}.")).ok()?;
                Some(Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::SRV(SRV::new(0, 0, *port, target)),
                ))
            })
            .collect(),
        _ => Vec::new(),
    };
    if !records.is_empty() {
        Answer::Records(records)
    } else if a.is_some() || srv.is_some() || name == zone.domain {
        Answer::NoData
    } else {
        Answer::NxDomain
    }
}

/// Sends the query as it came to `upstream` (UDP, as the UDP side relays) and returns the
/// decoded answer.
async fn forward(raw: &[u8], upstream: SocketAddr) -> Option<Message> {
    let answer = super::dns_udp::relay(raw, upstream).await?;
    Message::from_vec(&answer).ok()
}

#[async_trait::async_trait]
impl RequestHandler for ZoneHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let zone = self.current();
        let mut meta = Metadata::response_from_request(&request.metadata);
        let builder = MessageResponseBuilder::from_message_request(request);
        let Ok(info) = request.request_info() else {
            let response = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return send(&mut response_handle, response, &request.metadata).await;
        };
        let qname = info.query.name().to_string();
        let qtype = info.query.query_type();
        match lookup(&zone, &qname, qtype) {
            Answer::Records(records) => {
                meta.authoritative = true;
                let response = builder.build(meta, records.iter(), [], [], []);
                send(&mut response_handle, response, &request.metadata).await
            }
            Answer::NoData => {
                meta.authoritative = true;
                let response = builder.build_no_records(meta);
                send(&mut response_handle, response, &request.metadata).await
            }
            Answer::NxDomain => {
                meta.authoritative = true;
                meta.response_code = ResponseCode::NXDomain;
                let response = builder.build_no_records(meta);
                send(&mut response_handle, response, &request.metadata).await
            }
            Answer::Elsewhere => {
                let upstream = match zone.forward {
                    Some(addr) => forward(request.as_slice(), addr).await,
                    None => None,
                };
                match upstream {
                    Some(reply) => {
                        let mut meta = reply.metadata;
                        meta.id = request.metadata.id;
                        let response = builder.build(
                            meta,
                            reply.answers.iter(),
                            reply.authorities.iter(),
                            [],
                            reply.additionals.iter(),
                        );
                        send(&mut response_handle, response, &request.metadata).await
                    }
                    None => {
                        let code = if zone.forward.is_some() {
                            ResponseCode::ServFail
                        } else {
                            ResponseCode::Refused
                        };
                        let response = builder.error_msg(&request.metadata, code);
                        send(&mut response_handle, response, &request.metadata).await
                    }
                }
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Metadata,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "cannot send a DNS answer");
            let mut meta = Metadata::response_from_request(request);
            meta.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_server::proto::op::Header {
                metadata: meta,
                counts: Default::default(),
            })
        }
    }
}

struct Running {
    gateway: Ipv4Addr,
    handler: ZoneHandler,
    cancel: CancellationToken,
}

/// The servers of this node, by network.
#[derive(Default)]
pub struct DnsServers {
    running: BTreeMap<String, Running>,
}

impl DnsServers {
    /// Starts, updates and stops servers to match `models`; returns false when a wanted server
    /// could not be started yet (its gateway address is not on the bridge yet): try again soon.
    pub async fn apply(&mut self, models: &[NetModel], cancel: &CancellationToken) -> bool {
        let mut complete = true;
        let wanted: BTreeMap<&str, (Ipv4Addr, &Zone)> = models
            .iter()
            .filter(|m| m.carried)
            .filter_map(|m| Some((m.name.as_str(), (m.gateway, m.dns.as_ref()?))))
            .collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| {
                wanted
                    .get(name.as_str())
                    .is_none_or(|(gw, _)| *gw != r.gateway)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(r) = self.running.remove(&name) {
                r.cancel.cancel();
                tracing::info!(network = %name, gateway = %r.gateway, "DNS server stopped");
            }
        }
        for (name, (gateway, zone)) in wanted {
            if let Some(r) = self.running.get(name) {
                if *r.handler.current() != *zone {
                    r.handler.replace(zone.clone());
                }
                continue;
            }
            let handler = ZoneHandler::new(zone.clone());
            match serve(gateway, handler.clone(), cancel.child_token()).await {
                Ok(token) => {
                    tracing::info!(network = %name, %gateway, domain = %zone.domain, "DNS server listening on {gateway}:{DNS_PORT}");
                    self.running.insert(
                        name.to_string(),
                        Running {
                            gateway,
                            handler,
                            cancel: token,
                        },
                    );
                }
                Err(e) => {
                    complete = false;
                    tracing::debug!(network = %name, %gateway, error = %e, "DNS server not started yet");
                }
            }
        }
        complete
    }

    pub fn stop_all(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            r.cancel.cancel();
        }
    }
}

/// UDP sockets (and receive loops) per server; the agent's runtime has two workers.
const UDP_SOCKETS: usize = 2;

/// Binds UDP and TCP on `gateway:53` and serves until the returned token is cancelled.
pub async fn serve(
    gateway: Ipv4Addr,
    handler: ZoneHandler,
    cancel: CancellationToken,
) -> std::io::Result<CancellationToken> {
    let addr = SocketAddr::from((gateway, DNS_PORT));
    // UDP: this module's own receive loops (see `dns_udp`); TCP: hickory-server.
    let mut udp = Vec::new();
    for _ in 0..UDP_SOCKETS {
        udp.push(Arc::new(super::dns_udp::reuseport_socket(addr)?));
    }
    let tcp = tokio::net::TcpListener::bind(addr).await?;
    for socket in udp {
        tokio::spawn(super::dns_udp::serve(
            socket,
            handler.clone(),
            cancel.clone(),
        ));
    }
    let mut server = Server::new(handler);
    server.register_listener(tcp, TCP_TIMEOUT, 64);
    let token = cancel.clone();
    tokio::spawn(async move {
        cancel.cancelled().await;
        if let Err(e) = server.shutdown_gracefully().await {
            tracing::debug!(error = %e, "DNS server stopped with an error");
        }
    });
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        let mut z = Zone {
            domain: "caas.local".into(),
            ..Default::default()
        };
        z.a.entry("core-1.caas.local".into())
            .or_default()
            .insert(Ipv4Addr::new(10, 0, 0, 3));
        z.srv.insert(
            "_front._tcp.caas.local".into(),
            vec![(80, "front.caas.local".into())],
        );
        z
    }

    #[test]
    fn lookups() {
        let z = zone();
        let Answer::Records(r) = lookup(&z, "core-1.caas.local.", RecordType::A) else {
            panic!()
        };
        assert_eq!(r.len(), 1);
        assert!(matches!(
            lookup(&z, "core-1", RecordType::A),
            Answer::Records(_)
        ));
        assert!(matches!(
            lookup(&z, "CORE-1.Caas.Local", RecordType::A),
            Answer::Records(_)
        ));
        assert_eq!(
            lookup(&z, "core-1.caas.local", RecordType::AAAA),
            Answer::NoData
        );
        assert_eq!(
            lookup(&z, "nope.caas.local", RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(lookup(&z, "example.org", RecordType::A), Answer::Elsewhere);
        assert!(matches!(
            lookup(&z, "_front._tcp.caas.local", RecordType::SRV),
            Answer::Records(_)
        ));
    }
}
