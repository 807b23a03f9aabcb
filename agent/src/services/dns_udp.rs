//! The UDP side of this node's DNS servers: one receive loop per socket (the sockets share the
//! port through SO_REUSEPORT, so the kernel spreads clients over them) that answers from the
//! zone in place, with hickory-proto decoding the query and encoding the answer. No task, channel
//! or response builder per query: that costs more than the lookup. Names of other zones are
//! forwarded from a task of their own, so a slow upstream never holds the loop. Each loop keeps
//! the answers it encoded for plain queries (one question, no EDNS), by the question's exact
//! bytes, until the zone changes: a repeated question costs a header decode, a map look-up and
//! the query's id and flags copied in. An answer that
//! does not fit the client's datagram size goes out truncated (TC), and the client asks again
//! over TCP, which hickory-server serves with the same zone handler.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{
    Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::dns::{lookup, Answer, ZoneHandler};
use super::model::Zone;

/// How long a forwarded query waits for the upstream resolver.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// The datagram size this server offers EDNS clients (the DNS flag day's safe size).
const EDNS_PAYLOAD: u16 = 1232;

/// Most answers one loop keeps; a full cache starts over (a flood of random names must not grow
/// memory).
const CACHE_ENTRIES: usize = 4096;

/// Answers encoded by one receive loop, by the exact bytes of their question, for one zone.
struct AnswerCache {
    zone: Arc<Zone>,
    answers: HashMap<Vec<u8>, Vec<u8>>,
}

impl AnswerCache {
    /// The answer to `raw`: from the cache when it is a plain query asked before, else built
    /// (and kept when plain).
    fn reply(&mut self, zone: Arc<Zone>, raw: &[u8]) -> Reply {
        if !Arc::ptr_eq(&zone, &self.zone) {
            self.zone = zone;
            self.answers.clear();
        }
        let Some(question) = plain_question(raw) else {
            return answer(&self.zone, raw);
        };
        if let Some(cached) = self.answers.get(question) {
            return Reply::Now(with_query_fields(cached, raw));
        }
        let reply = answer(&self.zone, raw);
        if let Reply::Now(bytes) = &reply {
            if self.answers.len() >= CACHE_ENTRIES {
                self.answers.clear();
            }
            self.answers.insert(question.to_vec(), bytes.clone());
        }
        reply
    }
}

/// The question bytes of a plain query: a query with opcode QUERY, one question and no other
/// records (so no EDNS, whose answers depend on the client's datagram size).
fn plain_question(raw: &[u8]) -> Option<&[u8]> {
    let mut decoder = BinDecoder::new(raw);
    let header = Header::read(&mut decoder).ok()?;
    let counts = header.counts;
    if header.metadata.message_type != MessageType::Query
        || header.metadata.op_code != OpCode::Query
        || (
            counts.queries,
            counts.answers,
            counts.authorities,
            counts.additionals,
        ) != (1, 0, 0, 0)
    {
        return None;
    }
    let start = decoder.index();
    Query::read(&mut decoder).ok()?;
    let end = decoder.index();
    (end == raw.len()).then(|| &raw[start..end])
}

/// A cached answer with this query's id and the flags a response copies from its query (RD and
/// CD).
fn with_query_fields(cached: &[u8], query: &[u8]) -> Vec<u8> {
    let mut bytes = cached.to_vec();
    bytes[..2].copy_from_slice(&query[..2]);
    const RD: u8 = 0x01;
    const CD: u8 = 0x10;
    bytes[2] = (bytes[2] & !RD) | (query[2] & RD);
    bytes[3] = (bytes[3] & !CD) | (query[3] & CD);
    bytes
}

/// What to do with one datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back.
    Now(Vec<u8>),
    /// Not this zone's: relay the query as it came to this resolver.
    Forward(SocketAddr),
    /// Not a query (or not even a header): say nothing.
    Ignore,
}

/// Answers one datagram from `zone`.
pub fn answer(zone: &Zone, raw: &[u8]) -> Reply {
    let request = match Message::from_vec(raw) {
        Ok(request) => request,
        // The header is there (its id and QR bit), the rest does not parse.
        Err(_) if raw.len() >= 12 && raw[2] & 0x80 == 0 => {
            let id = u16::from_be_bytes([raw[0], raw[1]]);
            return encoded(&Message::error_msg(
                id,
                OpCode::Query,
                ResponseCode::FormErr,
            ));
        }
        Err(_) => return Reply::Ignore,
    };
    if request.metadata.message_type != MessageType::Query {
        return Reply::Ignore;
    }
    let mut response = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    response.metadata = Metadata::response_from_request(&request.metadata);
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return encoded(&response);
    };
    response.add_query(query.clone());
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return encoded(&response);
    }
    match lookup(zone, &query.name().to_string(), query.query_type()) {
        Answer::Records(records) => {
            response.metadata.authoritative = true;
            response.add_answers(records);
        }
        Answer::NoData => response.metadata.authoritative = true,
        Answer::NxDomain => {
            response.metadata.authoritative = true;
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        Answer::Elsewhere => match zone.forward {
            Some(upstream) => return Reply::Forward(upstream),
            None => response.metadata.response_code = ResponseCode::Refused,
        },
    }
    let Ok(bytes) = response.to_vec() else {
        return encoded(&Message::error_msg(
            request.metadata.id,
            OpCode::Query,
            ResponseCode::ServFail,
        ));
    };
    if bytes.len() > usize::from(request.max_payload()) {
        return encoded(&response.truncate());
    }
    Reply::Now(bytes)
}

fn encoded(message: &Message) -> Reply {
    match message.to_vec() {
        Ok(bytes) => Reply::Now(bytes),
        Err(e) => {
            tracing::debug!(error = %e, "cannot encode a DNS answer");
            Reply::Ignore
        }
    }
}

/// A non-blocking UDP socket on `addr` that shares the port with its siblings.
pub fn reuseport_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(v4) = addr else {
        return Err(std::io::Error::other("DNS serves IPv4 gateways only"));
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// Serves queries arriving on `socket` until `cancel`.
pub async fn serve(socket: Arc<UdpSocket>, handler: ZoneHandler, cancel: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    let mut cache = AnswerCache {
        zone: handler.current(),
        answers: HashMap::new(),
    };
    loop {
        let (n, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::Interrupted) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the DNS socket failed; this socket stops serving");
                    return;
                }
            },
        };
        match cache.reply(handler.current(), &buf[..n]) {
            Reply::Now(bytes) => {
                if let Err(e) = socket.send_to(&bytes, peer).await {
                    tracing::debug!(error = %e, %peer, "cannot send a DNS answer");
                }
            }
            Reply::Forward(upstream) => {
                let socket = socket.clone();
                let query = buf[..n].to_vec();
                tokio::spawn(async move {
                    let bytes = relay(&query, upstream).await.unwrap_or_else(|| {
                        // The upstream said nothing: SERVFAIL, as a resolver would.
                        let id = u16::from_be_bytes([query[0], query[1]]);
                        Message::error_msg(id, OpCode::Query, ResponseCode::ServFail)
                            .to_vec()
                            .unwrap_or_default()
                    });
                    if let Err(e) = socket.send_to(&bytes, peer).await {
                        tracing::debug!(error = %e, %peer, "cannot send a forwarded DNS answer");
                    }
                });
            }
            Reply::Ignore => {}
        }
    }
}

/// Sends `query` to `upstream` and returns its answer as it came, if it is the answer to it.
pub(super) async fn relay(query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .await
        .ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        // Same id and a response: anything else is not the answer (keep waiting for it).
        if n >= 12 && buf[..2] == query[..2] && buf[2] & 0x80 != 0 {
            buf.truncate(n);
            return Some(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::op::Query;
    use hickory_server::proto::rr::{Name, RData, RecordType};

    fn zone() -> Zone {
        let mut z = Zone {
            domain: "caas.local".into(),
            ..Default::default()
        };
        z.a.entry("core-1.caas.local".into())
            .or_default()
            .insert(Ipv4Addr::new(10, 0, 0, 3));
        let many = z.a.entry("web.caas.local".into()).or_default();
        for i in 1..=60 {
            many.insert(Ipv4Addr::new(10, 0, 1, i));
        }
        z
    }

    fn query(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            m.set_edns(edns);
        }
        m.to_vec().unwrap()
    }

    fn reply(zone: &Zone, raw: &[u8]) -> Message {
        match answer(zone, raw) {
            Reply::Now(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_from_the_zone_with_the_query_id_authoritatively() {
        let m = reply(&zone(), &query("core-1.caas.local.", RecordType::A, false));
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.authoritative && m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(
            m.answers[0].data,
            RData::A(Ipv4Addr::new(10, 0, 0, 3).into())
        );
        // The short name through the search domain.
        let m = reply(&zone(), &query("core-1.", RecordType::A, false));
        assert_eq!(m.answers.len(), 1);
    }

    #[test]
    fn unknown_names_nodata_and_other_zones() {
        let z = zone();
        let m = reply(&z, &query("nope.caas.local.", RecordType::A, false));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = reply(&z, &query("core-1.caas.local.", RecordType::AAAA, false));
        assert_eq!(
            (m.metadata.response_code, m.answers.len()),
            (ResponseCode::NoError, 0)
        );
        let m = reply(&z, &query("example.org.", RecordType::A, false));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        let mut forwarding = zone();
        let upstream = SocketAddr::from(([198, 18, 0, 53], 53));
        forwarding.forward = Some(upstream);
        assert_eq!(
            answer(&forwarding, &query("example.org.", RecordType::A, false)),
            Reply::Forward(upstream)
        );
    }

    #[test]
    fn an_answer_too_big_for_the_datagram_is_truncated_and_edns_gets_more_room() {
        let z = zone();
        let plain = reply(&z, &query("web.caas.local.", RecordType::A, false));
        assert!(
            plain.metadata.truncation,
            "60 A records do not fit 512 bytes"
        );
        assert!(plain.answers.is_empty());
        let edns = reply(&z, &query("web.caas.local.", RecordType::A, true));
        assert!(!edns.metadata.truncation);
        assert_eq!(edns.answers.len(), 60);
        assert!(edns.edns.is_some(), "an EDNS query gets an OPT record back");
    }

    #[test]
    fn a_cached_answer_carries_the_new_query_id_and_flags_and_follows_zone_changes() {
        let handler = ZoneHandler::new(zone());
        let mut cache = AnswerCache {
            zone: handler.current(),
            answers: HashMap::new(),
        };
        let first = query("core-1.caas.local.", RecordType::A, false);
        let Reply::Now(built) = cache.reply(handler.current(), &first) else {
            panic!()
        };
        assert_eq!(cache.answers.len(), 1, "a plain query's answer is kept");
        let mut again = Message::from_vec(&first).unwrap();
        again.metadata.id = 7;
        again.metadata.recursion_desired = false;
        let Reply::Now(cached) = cache.reply(handler.current(), &again.to_vec().unwrap()) else {
            panic!()
        };
        let cached = Message::from_vec(&cached).unwrap();
        let mut expected = Message::from_vec(&built).unwrap();
        expected.metadata.id = 7;
        expected.metadata.recursion_desired = false;
        assert_eq!(cached, expected);
        // EDNS queries are answered, not kept.
        cache.reply(
            handler.current(),
            &query("core-1.caas.local.", RecordType::A, true),
        );
        assert_eq!(cache.answers.len(), 1);
        // A new zone: the old answers are gone.
        let mut moved = zone();
        moved.a.insert(
            "core-1.caas.local".into(),
            [Ipv4Addr::new(10, 0, 0, 9)].into(),
        );
        handler.replace(moved);
        let m = reply_with(&mut cache, handler.current(), &first);
        assert_eq!(
            m.answers[0].data,
            RData::A(Ipv4Addr::new(10, 0, 0, 9).into())
        );
    }

    fn reply_with(cache: &mut AnswerCache, zone: Arc<Zone>, raw: &[u8]) -> Message {
        match cache.reply(zone, raw) {
            Reply::Now(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        let mut raw = query("core-1.caas.local.", RecordType::A, false);
        raw.truncate(14);
        let m = reply(&zone(), &raw);
        assert_eq!(
            (m.metadata.id, m.metadata.response_code),
            (4242, ResponseCode::FormErr)
        );
        assert_eq!(answer(&zone(), &[1, 2, 3]), Reply::Ignore);
        // A response is never answered (no loops between servers).
        let mut response = Message::from_vec(&query("a.", RecordType::A, false)).unwrap();
        response.metadata.message_type = MessageType::Response;
        assert_eq!(answer(&zone(), &response.to_vec().unwrap()), Reply::Ignore);
    }
}
