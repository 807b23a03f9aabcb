//! Start-up checks of the node's networking: the configured `underlay` must be an address of
//! one of this namespace's interfaces (else every tunnel would silently break), and which
//! drivers the kernel can wire, found by creating and deleting a throwaway bridge, VXLAN device
//! and 802.1Q sub-interface (on the configured `uplink`) and reading the ebtables nat table, for
//! `NodeInfo.networks`.

use std::net::{IpAddr, Ipv4Addr};

use caas_api::network::{NetworkSupport, VXLAN_PORT};

use super::{NetError, NetworkBackend};

/// Names of the throwaway probe devices.
const PROBE_BRIDGE: &str = "caasprobe-br";
const PROBE_VXLAN: &str = "caasprobe-vx";
const PROBE_VLAN: &str = "caasprobe-vl";
/// The VLAN id of the probe's sub-interface (down for its whole short life).
const PROBE_VLAN_ID: u16 = 4094;
/// A VNI only the probe uses (not reachable by central's allocator: it never sends traffic).
const PROBE_VNI: u32 = 16_777_215;

/// The underlay as an IPv4 VTEP address that this namespace owns, or why not.
pub fn check_underlay(underlay: IpAddr) -> Result<Ipv4Addr, String> {
    let IpAddr::V4(v4) = underlay else {
        return Err(format!(
            "{underlay} is an IPv6 address; the VXLAN underlay must be IPv4"
        ));
    };
    let addresses = nix::ifaddrs::getifaddrs()
        .map_err(|e| format!("cannot list this machine's addresses: {e}"))?;
    let mut seen = Vec::new();
    for a in addresses {
        if let Some(ip) = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip())
        {
            if ip == v4 {
                return Ok(v4);
            }
            seen.push(format!("{ip} ({})", a.interface_name));
        }
    }
    Err(format!(
        "{underlay} is not an address of any interface here (found: {}); set `underlay` to this \
         node's address on the network between nodes",
        if seen.is_empty() {
            "none".to_string()
        } else {
            seen.join(", ")
        }
    ))
}

/// Which drivers the kernel supports, found by creating and deleting throwaway devices.
pub async fn probe_support(
    backend: &dyn NetworkBackend,
    underlay: Option<Ipv4Addr>,
    uplink: Option<&str>,
) -> NetworkSupport {
    let mut missing = Vec::new();
    let _ = backend.del_link(PROBE_BRIDGE).await;
    let _ = backend.del_link(PROBE_VXLAN).await;
    let bridge = match backend.add_bridge(PROBE_BRIDGE).await {
        Ok(()) => true,
        Err(e) => {
            missing.push(format!("bridge: {e}"));
            false
        }
    };
    let _ = backend.del_link(PROBE_BRIDGE).await;
    let vxlan = match underlay {
        None => {
            missing.push("vxlan: no `underlay` address configured".into());
            false
        }
        Some(local) => match backend
            .add_vxlan(PROBE_VXLAN, PROBE_VNI, local, VXLAN_PORT)
            .await
        {
            Ok(()) => true,
            Err(
                e @ (NetError::Unsupported(_) | NetError::Failed(_) | NetError::SandboxGone(_)),
            ) => {
                missing.push(format!("vxlan: {e}"));
                false
            }
        },
    };
    let _ = backend.del_link(PROBE_VXLAN).await;
    // Bridges without a firewall table would leave networks open to each other.
    let nft = match super::firewall::run_nft("list tables\n").await {
        Ok(()) => true,
        Err(e) => {
            missing.push(format!("nftables: {e}"));
            false
        }
    };
    let (vlan, uplink_mac) = probe_vlan(backend, uplink, &mut missing).await;
    NetworkSupport {
        bridge: bridge && nft,
        vxlan: vxlan && bridge && nft,
        vlan: vlan && bridge && nft,
        uplink: uplink.map(str::to_string),
        uplink_mac,
        missing: (!missing.is_empty()).then(|| missing.join("; ")),
    }
}

/// Whether vlan networks can ride on `uplink`: it exists, the kernel makes 802.1Q
/// sub-interfaces on it, and ebtables answers (ARP proxy and MAC NAT need it). Returns the
/// uplink's MAC too.
async fn probe_vlan(
    backend: &dyn NetworkBackend,
    uplink: Option<&str>,
    missing: &mut Vec<String>,
) -> (bool, Option<String>) {
    let Some(name) = uplink else {
        missing.push("vlan: no `uplink` interface configured".into());
        return (false, None);
    };
    let link = match backend.link(name).await {
        Ok(Some(link)) => link,
        Ok(None) => {
            missing.push(format!("vlan: the uplink {name} is not an interface here"));
            return (false, None);
        }
        Err(e) => {
            missing.push(format!("vlan: reading the uplink {name}: {e}"));
            return (false, None);
        }
    };
    let mac = link.mac.as_ref().map(super::format_mac);
    let _ = backend.del_link(PROBE_VLAN).await;
    let dot1q = match backend
        .add_vlan(PROBE_VLAN, link.index, PROBE_VLAN_ID)
        .await
    {
        Ok(()) => true,
        Err(e) => {
            missing.push(format!("vlan: 802.1Q: {e}"));
            false
        }
    };
    let _ = backend.del_link(PROBE_VLAN).await;
    let ebtables = match backend.bridge_rules_state().await {
        Ok(_) => true,
        Err(e) => {
            missing.push(format!("vlan: ebtables: {e}"));
            false
        }
    };
    (dot1q && ebtables, mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underlay_must_be_local() {
        assert!(check_underlay("127.0.0.1".parse().unwrap()).is_ok());
        let e = check_underlay("198.19.255.254".parse().unwrap()).unwrap_err();
        assert!(e.contains("not an address of any interface"), "{e}");
        assert!(check_underlay("::1".parse().unwrap())
            .unwrap_err()
            .contains("IPv4"));
    }

    #[tokio::test]
    async fn probe_reports_a_missing_vxlan() {
        let fake = super::super::fake::FakeNetwork::new();
        fake.without_vxlan();
        let s = probe_support(&fake, Some(Ipv4Addr::new(198, 18, 0, 11)), None).await;
        assert!(!s.vxlan);
        let missing = s.missing.unwrap();
        assert!(missing.contains("vxlan"), "{missing}");
        assert!(fake.host_names().is_empty(), "probe devices are removed");
        assert!(!s.vlan);
        assert!(missing.contains("no `uplink`"), "{missing}");
    }

    #[tokio::test]
    async fn probe_names_a_missing_802_1q_and_keeps_the_uplink() {
        let fake = super::super::fake::FakeNetwork::new();
        fake.add_physical("eth1", [2, 0, 0, 0, 0, 0x11]);
        let s = probe_support(&fake, None, Some("eth1")).await;
        assert!(s.vlan && s.bridge);
        assert_eq!(s.uplink.as_deref(), Some("eth1"));
        assert_eq!(s.uplink_mac.as_deref(), Some("02:00:00:00:00:11"));
        fake.without_vlan();
        let s = probe_support(&fake, None, Some("eth1")).await;
        assert!(!s.vlan);
        let missing = s.missing.unwrap();
        assert!(missing.contains("802.1Q"), "{missing}");
        assert_eq!(fake.host_names(), ["eth1"], "probe devices are removed");
        let s = probe_support(&fake, None, Some("eth9")).await;
        assert!(s.missing.unwrap().contains("eth9 is not an interface"));
    }
}
