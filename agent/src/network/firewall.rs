//! The agent's nftables table `inet caas`: rendered from the networks wired on the node and
//! replaced in one `nft -f -` transaction (declare, delete, define — as kube-proxy's nftables
//! mode does), so there is never a moment without rules and established flows keep their
//! conntrack state. Deleted (same transaction shape) when no network is left.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::Stdio;

use caas_api::network::VXLAN_PORT;
use ipnet::Ipv4Net;
use tokio::io::AsyncWriteExt;

use super::{bridge_name, NetError};

/// The table the agent owns.
pub const TABLE: &str = "caas";

/// One network wired on the node, as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallNetwork {
    pub vni: u32,
    pub subnet: Ipv4Net,
    pub vxlan: bool,
    /// Whether the node routes the network (owns its gateway); a vlan network's traffic goes
    /// to the data centre's router and is never masqueraded.
    pub routed: bool,
    /// Underlay addresses of the other nodes that carry this network.
    pub peers: BTreeSet<Ipv4Addr>,
}

/// The table for these networks; `None` when there are none (the table goes).
pub fn render(networks: &[FirewallNetwork]) -> Option<String> {
    if networks.is_empty() {
        return None;
    }
    let mut t = String::new();
    let _ = writeln!(t, "table inet {TABLE} {{");
    // Input: encapsulated traffic only from the VTEPs of nodes that carry its VNI; a container
    // sends no VXLAN; a network does not reach another network's gateway address.
    let _ = writeln!(t, "  chain input {{");
    let _ = writeln!(
        t,
        "    type filter hook input priority filter; policy accept;"
    );
    let _ = writeln!(t, "    iifname \"cb*\" udp dport {VXLAN_PORT} drop");
    for n in networks.iter().filter(|n| n.vxlan && !n.peers.is_empty()) {
        let _ = writeln!(
            t,
            "    udp dport {VXLAN_PORT} @th,96,24 {} ip saddr {{ {} }} accept",
            n.vni,
            join(&n.peers)
        );
    }
    let _ = writeln!(t, "    udp dport {VXLAN_PORT} drop");
    for n in networks {
        let others: BTreeSet<Ipv4Net> = networks
            .iter()
            .filter(|o| o.vni != n.vni && o.subnet != n.subnet)
            .map(|o| o.subnet)
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                t,
                "    iifname \"{}\" ip daddr {{ {} }} drop",
                bridge_name(n.vni),
                join(&others)
            );
        }
    }
    let _ = writeln!(t, "  }}");
    // Forward: no VXLAN out of a container, no traffic between two networks.
    let _ = writeln!(t, "  chain forward {{");
    let _ = writeln!(
        t,
        "    type filter hook forward priority filter; policy accept;"
    );
    let _ = writeln!(t, "    iifname \"cb*\" udp dport {VXLAN_PORT} drop");
    for n in networks {
        let b = bridge_name(n.vni);
        let _ = writeln!(
            t,
            "    iifname \"{b}\" oifname \"cb*\" oifname != \"{b}\" drop"
        );
    }
    let _ = writeln!(t, "  }}");
    // Egress: from a network to anything outside its subnet, masqueraded.
    let _ = writeln!(t, "  chain postrouting {{");
    let _ = writeln!(
        t,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    let subnets: BTreeSet<Ipv4Net> = networks
        .iter()
        .filter(|n| n.routed)
        .map(|n| n.subnet)
        .collect();
    for s in subnets {
        let _ = writeln!(t, "    ip saddr {s} ip daddr != {s} masquerade");
    }
    let _ = writeln!(t, "  }}");
    let _ = writeln!(t, "}}");
    Some(t)
}

fn join<T: std::fmt::Display>(items: &BTreeSet<T>) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `nft -f` script that replaces the table with `ruleset` (or removes it) atomically: the
/// empty declaration makes the delete valid whether or not the table exists.
pub fn transaction(ruleset: Option<&str>) -> String {
    let mut script = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
    if let Some(r) = ruleset {
        script.push_str(r);
    }
    script
}

/// Runs `nft -f -` with `script` on its standard input.
pub async fn run_nft(script: &str) -> Result<(), NetError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                NetError::Unsupported("nft is not installed (install the nftables package)".into())
            }
            _ => NetError::Failed(format!("running nft: {e}")),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| NetError::Failed(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| NetError::Failed(format!("waiting for nft: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = format!("nft -f refused the caas table: {}", stderr.trim());
        // A kernel without nf_tables (or its nat support) says "Operation not supported".
        return Err(if stderr.contains("not supported") {
            NetError::Unsupported(message)
        } else {
            NetError::Failed(message)
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(vni: u32, subnet: &str, peers: &[&str]) -> FirewallNetwork {
        FirewallNetwork {
            vni,
            subnet: subnet.parse().unwrap(),
            vxlan: true,
            routed: true,
            peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn no_network_no_table() {
        assert_eq!(render(&[]), None);
        assert_eq!(
            transaction(None),
            "table inet caas\ndelete table inet caas\n"
        );
    }

    #[test]
    fn ruleset_isolates_networks_and_filters_vxlan_by_vni_and_peer() {
        let rules = render(&[
            net(100, "10.1.0.0/24", &["198.18.0.12", "198.18.0.13"]),
            net(200, "10.2.0.0/24", &[]),
        ])
        .unwrap();
        assert!(rules
            .contains("udp dport 4789 @th,96,24 100 ip saddr { 198.18.0.12, 198.18.0.13 } accept"));
        assert!(
            !rules.contains("@th,96,24 200"),
            "no peers, no accept: {rules}"
        );
        assert!(rules.contains("iifname \"cb100\" oifname \"cb*\" oifname != \"cb100\" drop"));
        assert!(rules.contains("iifname \"cb200\" ip daddr { 10.1.0.0/24 } drop"));
        assert!(rules.contains("ip saddr 10.1.0.0/24 ip daddr != 10.1.0.0/24 masquerade"));
        // The container's own VXLAN drop comes before any accept.
        let drop = rules.find("iifname \"cb*\" udp dport 4789 drop").unwrap();
        let accept = rules.find("} accept").unwrap();
        assert!(drop < accept);
        assert!(transaction(Some(&rules)).ends_with(&rules));
    }
}
