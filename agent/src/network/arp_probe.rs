//! One ARP probe (RFC 5227: sender address 0.0.0.0, so nobody's cache changes) sent on a device
//! through a packet socket, and the answer's MAC: how a node learns the MAC of a VLAN network's
//! gateway (the data centre's router), which the ARP proxy then answers for. Blocking; the
//! backend runs it on the blocking pool.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, LinkAddr, SockFlag, SockProtocol, SockType,
};
use nix::sys::time::TimeVal;

use super::{Mac, NetError};

/// How long a probe waits for the answer; the request is sent again every `PROBE_RESEND`
/// within it (one lost frame or a slow router must not cost the proxy its gateway for the next
/// 10 s, as seen under emulation with a single 500 ms try).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
pub const PROBE_RESEND: Duration = Duration::from_millis(500);

const ETH_P_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
const BROADCAST: Mac = [0xff; 6];

/// The probe frame: who has `target`? tell 0.0.0.0 (at `source`).
pub fn request_frame(source: Mac, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&source);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes()); // Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f.extend_from_slice(&[6, 4]);
    f.extend_from_slice(&ARP_REQUEST.to_be_bytes());
    f.extend_from_slice(&source);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// The sender MAC of `frame` if it is an ARP reply from `ip`.
pub fn reply_from(frame: &[u8], ip: Ipv4Addr) -> Option<Mac> {
    if frame.len() < 42 || frame[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    let arp = &frame[14..];
    if arp[6..8] != ARP_REPLY.to_be_bytes() || arp[14..18] != ip.octets() {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&arp[8..14]);
    Some(mac)
}

/// Sends the probe on `device` and waits up to `timeout` for the reply.
pub fn probe(
    device: &str,
    source: Mac,
    ip: Ipv4Addr,
    timeout: Duration,
) -> Result<Option<Mac>, NetError> {
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map_err(|e| NetError::Failed(format!("opening a packet socket: {e}")))?;
    bind_to(&fd, device)?;
    let frame = request_frame(source, ip);
    let deadline = Instant::now() + timeout;
    let mut next_send = Instant::now();
    let mut buf = [0u8; 1514];
    loop {
        let now = Instant::now();
        if now >= next_send {
            nix::unistd::write(&fd, &frame).map_err(|e| {
                NetError::Failed(format!("sending an ARP probe for {ip} on {device}: {e}"))
            })?;
            next_send = now + PROBE_RESEND;
        }
        let left = deadline
            .min(next_send)
            .saturating_duration_since(Instant::now());
        if deadline <= Instant::now() {
            return Ok(None);
        }
        if left.is_zero() {
            continue;
        }
        let wait = TimeVal::new(
            i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            i64::from(left.subsec_micros().max(1)),
        );
        setsockopt(&fd, sockopt::ReceiveTimeout, &wait)
            .map_err(|e| NetError::Failed(format!("setting a receive timeout: {e}")))?;
        let n = match nix::unistd::read(fd.as_fd(), &mut buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(NetError::Failed(format!("reading an ARP reply: {e}"))),
        };
        if let Some(mac) = reply_from(&buf[..n], ip) {
            return Ok(Some(mac));
        }
    }
}

/// Binds a packet socket to one device. The device's link-layer address comes from
/// `getifaddrs` (it carries the interface index; its protocol 0 keeps the socket's own).
fn bind_to(fd: &OwnedFd, device: &str) -> Result<(), NetError> {
    let addresses = nix::ifaddrs::getifaddrs()
        .map_err(|e| NetError::Failed(format!("listing interfaces: {e}")))?;
    let link: LinkAddr = addresses
        .filter(|a| a.interface_name == device)
        .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
        .ok_or_else(|| NetError::Failed(format!("{device} has no link-layer address")))?;
    bind(std::os::fd::AsRawFd::as_raw_fd(fd), &link)
        .map_err(|e| NetError::Failed(format!("binding a packet socket to {device}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_frame_and_reply_parse() {
        let me = [2, 0, 0, 0, 0, 9];
        let gw = Ipv4Addr::new(10, 209, 164, 1);
        let f = request_frame(me, gw);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[28..32], &[0, 0, 0, 0], "sender IP of a probe is 0.0.0.0");
        assert_eq!(&f[38..42], &gw.octets());
        // The router's answer: swap roles, op 2.
        let router = [0x52, 0x54, 0, 1, 2, 3];
        let mut reply = f.clone();
        reply[0..6].copy_from_slice(&me);
        reply[6..12].copy_from_slice(&router);
        reply[20..22].copy_from_slice(&ARP_REPLY.to_be_bytes());
        reply[22..28].copy_from_slice(&router);
        reply[28..32].copy_from_slice(&gw.octets());
        assert_eq!(reply_from(&reply, gw), Some(router));
        assert_eq!(reply_from(&reply, Ipv4Addr::new(10, 209, 164, 2)), None);
        assert_eq!(reply_from(&f, gw), None, "a request is no answer");
    }
}
