//! The load balancers' dataplane on this node: the nftables table `ip caaslb` (kept apart from
//! the networks' `inet caas` table), rendered from the model and replaced in one `nft -f -`
//! transaction when it changed, and the VIPs as /32 addresses on the bridges of the networks
//! this node carries (answered like the anycast gateway, with the gateway's MAC).
//!
//! A connection to a VIP is DNATed by the client's own node (numgen over the backends that are
//! up, by weight); conntrack keeps it on its backend, so a backend taken out lets its open
//! connections finish. The backend's reply goes straight back over the network to the client,
//! and the kernel's bridge netfilter hook (`bridge-nf-call-iptables`, switched on here) lets
//! the balancing node's conntrack undo the DNAT on it, on the same bridge or from the VXLAN
//! device. `Publish=PORT` on a node's underlay address: local backends are DNATed directly;
//! a backend on another node is reached through that node's underlay address at the same port
//! (masqueraded, so the reply comes back through the node that balanced), and a node receiving
//! from a peer node balances over its local backends only.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;

use super::model::{Backend, Balancer, NetModel};
use crate::network::{bridge_name, NetworkBackend};

pub const TABLE: &str = "caaslb";

/// Inputs of the ruleset besides the models.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub node_id: String,
    pub underlay: Option<Ipv4Addr>,
    /// Underlay address of each registered node.
    pub underlays: std::collections::BTreeMap<String, Ipv4Addr>,
}

/// `numgen random mod N map { 0-2 : ip . port, ... }` over `targets` (weight, ip, port).
fn spread(targets: &[(u32, Ipv4Addr, u16)]) -> Option<String> {
    let total: u32 = targets.iter().map(|t| t.0).sum();
    if total == 0 {
        return None;
    }
    let mut start = 0;
    let mut items = Vec::new();
    for (weight, ip, port) in targets {
        let end = start + weight - 1;
        let key = if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        };
        items.push(format!("{key} : {ip} . {port}"));
        start = end + 1;
    }
    Some(format!(
        "dnat ip to numgen random mod {total} map {{ {} }}",
        items.join(", ")
    ))
}

fn up(backends: &[Backend]) -> impl Iterator<Item = &Backend> {
    backends.iter().filter(|b| b.up)
}

/// The whole table, or `None` when there is nothing to balance.
pub fn render(models: &[NetModel], ctx: &Ctx) -> Option<String> {
    let balancers: Vec<&Balancer> = models.iter().flat_map(|m| &m.balancers).collect();
    if balancers.is_empty() {
        return None;
    }
    let peers: BTreeSet<Ipv4Addr> = ctx
        .underlays
        .iter()
        .filter(|(node, _)| **node != ctx.node_id)
        .map(|(_, ip)| *ip)
        .collect();
    let mut pre = String::new();
    let mut post = String::new();
    for lb in &balancers {
        let proto = lb.protocol.as_str();
        let targets: Vec<_> = up(&lb.backends).map(|b| (b.weight, b.ip, b.port)).collect();
        if let Some(dnat) = spread(&targets) {
            let _ = writeln!(
                pre,
                "    ip daddr {} {proto} dport {} {dnat}",
                lb.vip, lb.port
            );
        }
        let (Some(publish), Some(me)) = (lb.publish, ctx.underlay) else {
            continue;
        };
        let local: Vec<_> = up(&lb.backends)
            .filter(|b| b.node == ctx.node_id)
            .map(|b| (b.weight, b.ip, b.port))
            .collect();
        if !peers.is_empty() {
            if let Some(dnat) = spread(&local) {
                let _ = writeln!(
                    pre,
                    "    ip daddr {me} {proto} dport {publish} ip saddr @peers {dnat}"
                );
            }
        }
        let mut all = local.clone();
        all.extend(up(&lb.backends).filter_map(|b| {
            let peer = ctx.underlays.get(&b.node)?;
            (b.node != ctx.node_id).then_some((b.weight, *peer, publish))
        }));
        if let Some(dnat) = spread(&all) {
            let _ = writeln!(pre, "    ip daddr {me} {proto} dport {publish} {dnat}");
            if !peers.is_empty() {
                let _ = writeln!(
                    post,
                    "    ct status dnat ip daddr @peers {proto} dport {publish} masquerade"
                );
            }
        }
    }
    let mut out = format!("table ip {TABLE} {{\n");
    if !peers.is_empty() {
        let list: Vec<String> = peers.iter().map(Ipv4Addr::to_string).collect();
        let _ = writeln!(
            out,
            "  set peers {{\n    type ipv4_addr\n    elements = {{ {} }}\n  }}",
            list.join(", ")
        );
    }
    let _ = write!(
        out,
        "  chain prerouting {{\n    type nat hook prerouting priority -105; policy accept;\n{pre}  }}\n"
    );
    let _ = write!(
        out,
        "  chain output {{\n    type nat hook output priority -105; policy accept;\n{pre}  }}\n"
    );
    let _ = write!(
        out,
        "  chain postrouting {{\n    type nat hook postrouting priority 95; policy accept;\n{post}  }}\n}}\n"
    );
    Some(out)
}

#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("nft -f - failed: {0}")]
    Nft(String),
    #[error("{0}")]
    Net(String),
}

/// Replaces the table (or deletes it) in one transaction.
pub async fn apply_table(rules: Option<&str>) -> Result<(), LbError> {
    let script = match rules {
        Some(r) => format!("table ip {TABLE}\ndelete table ip {TABLE}\n{r}"),
        None => format!("table ip {TABLE}\ndelete table ip {TABLE}\n"),
    };
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| LbError::Nft(format!("cannot run nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| LbError::Nft(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| LbError::Nft(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LbError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Keeps exactly the wanted VIPs as /32 addresses on the bridges of carried networks.
pub async fn sync_vips(
    backend: &Arc<dyn NetworkBackend>,
    models: &[NetModel],
) -> Result<(), LbError> {
    let links = backend
        .links()
        .await
        .map_err(|e| LbError::Net(e.to_string()))?;
    for m in models {
        let bridge = bridge_name(m.vni);
        let Some(link) = links.iter().find(|l| l.name == bridge) else {
            continue;
        };
        let wanted: BTreeSet<Ipv4Net> = if m.carried {
            m.balancers
                .iter()
                .filter_map(|b| Ipv4Net::new(b.vip, 32).ok())
                .collect()
        } else {
            BTreeSet::new()
        };
        for a in &link.addresses {
            if a.prefix_len() == 32 && !wanted.contains(a) {
                backend
                    .del_address(&bridge, *a)
                    .await
                    .map_err(|e| LbError::Net(e.to_string()))?;
            }
        }
        for a in &wanted {
            if !link.addresses.contains(a) {
                backend
                    .add_address(&bridge, *a)
                    .await
                    .map_err(|e| LbError::Net(e.to_string()))?;
                // A connection from a container to a backend on its own bridge is routed back
                // out of the bridge it came in by; an ICMP redirect would teach the client to
                // bypass the VIP.
                for scope in ["all", bridge.as_str()] {
                    let path = format!("/proc/sys/net/ipv4/conf/{scope}/send_redirects");
                    if let Err(e) = tokio::fs::write(&path, "0").await {
                        tracing::warn!(%path, error = %e, "cannot switch off ICMP redirects");
                    }
                }
            }
        }
    }
    Ok(())
}

/// The bridge hook lets the balancing node's conntrack see replies that are bridged.
pub async fn ensure_bridge_netfilter() {
    let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    match tokio::fs::read_to_string(path).await {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => {
            if let Err(e) = tokio::fs::write(path, "1").await {
                tracing::warn!(error = %e, "cannot switch on bridge-nf-call-iptables; a backend on the client's own bridge will not answer through the VIP");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no bridge netfilter (br_netfilter); a backend on the client's own bridge will not answer through the VIP")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_api::service::LbProtocol;

    fn backend(name: &str, ip: &str, node: &str, weight: u32, up: bool) -> Backend {
        Backend {
            container: name.into(),
            ip: ip.parse().unwrap(),
            port: 80,
            weight,
            node: node.into(),
            up,
        }
    }

    fn model() -> NetModel {
        NetModel {
            name: "net".into(),
            vni: 7,
            gateway: "10.0.0.254".parse().unwrap(),
            subnet: "10.0.0.0/24".parse().unwrap(),
            carried: true,
            dns: None,
            balancers: vec![Balancer {
                name: "front".into(),
                vip: "10.0.0.100".parse().unwrap(),
                port: 80,
                protocol: LbProtocol::Tcp,
                publish: Some(8080),
                backends: vec![
                    backend("a", "10.0.0.1", "n1", 1, true),
                    backend("b", "10.0.0.2", "n2", 2, true),
                    backend("c", "10.0.0.3", "n3", 1, false),
                ],
            }],
        }
    }

    #[test]
    fn renders_weighted_dnat_and_publish() {
        let ctx = Ctx {
            node_id: "n1".into(),
            underlay: Some("198.18.0.11".parse().unwrap()),
            underlays: [
                ("n1".to_string(), "198.18.0.11".parse().unwrap()),
                ("n2".to_string(), "198.18.0.12".parse().unwrap()),
            ]
            .into(),
        };
        let text = render(&[model()], &ctx).unwrap();
        assert!(text.contains("ip daddr 10.0.0.100 tcp dport 80 dnat ip to numgen random mod 3 map { 0 : 10.0.0.1 . 80, 1-2 : 10.0.0.2 . 80 }"), "{text}");
        // c is down: nowhere.
        assert!(!text.contains("10.0.0.3"), "{text}");
        assert!(text.contains("ip daddr 198.18.0.11 tcp dport 8080 ip saddr @peers dnat ip to numgen random mod 1 map { 0 : 10.0.0.1 . 80 }"), "{text}");
        assert!(
            text.contains("map { 0 : 10.0.0.1 . 80, 1-2 : 198.18.0.12 . 8080 }"),
            "{text}"
        );
        assert!(text.contains("ct status dnat ip daddr @peers tcp dport 8080 masquerade"));
        assert!(render(&[], &ctx).is_none());
    }
}
