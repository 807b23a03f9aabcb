//! Start-up checks of the node's networking: the configured `underlay` must be an address of
//! one of this namespace's interfaces (else every tunnel would silently break), and which
//! drivers the kernel can wire, found by creating and deleting a throwaway bridge and VXLAN
//! device, for `NodeInfo.networks`.

use std::net::{IpAddr, Ipv4Addr};

use caas_api::network::{NetworkSupport, VXLAN_PORT};

use super::{NetError, NetworkBackend};

/// Names of the throwaway probe devices.
const PROBE_BRIDGE: &str = "caasprobe-br";
const PROBE_VXLAN: &str = "caasprobe-vx";
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
    NetworkSupport {
        bridge: bridge && nft,
        vxlan: vxlan && bridge && nft,
        missing: (!missing.is_empty()).then(|| missing.join("; ")),
    }
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
        let s = probe_support(&fake, Some(Ipv4Addr::new(198, 18, 0, 11))).await;
        assert!(!s.vxlan);
        let missing = s.missing.unwrap();
        assert!(missing.contains("vxlan"), "{missing}");
        assert!(fake.host_names().is_empty(), "probe devices are removed");
    }
}
