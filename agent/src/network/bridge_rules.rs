//! The agent's ebtables rules for VLAN networks, in the bridge family's `nat` table, replaced in
//! one `ebtables-restore --noflush` transaction (declaring a chain there empties it):
//! - **ARP proxy**: `CAAS-PRE` sends ARP requests from each local container's veth to the
//!   network's `CAAS-ARP-<vni>` chain, which answers (`arpreply`) for the gateway and every
//!   endpoint the node knows of; requests for other addresses go on to the switch.
//! - **MAC NAT**: `CAAS-POST` rewrites the source MAC (and the ARP sender address) of every
//!   frame leaving the network's uplink port to the node's MAC; `CAAS-PRE` rewrites frames coming
//!   in for a local container's address back to its MAC.
//!
//! The base chains only get one jump each; chains of networks that are gone are emptied and
//! deleted in the same transaction.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::{format_mac, Mac, NetError};

/// Chain of the nat table's PREROUTING hook.
pub const PRE: &str = "CAAS-PRE";
/// Chain of the nat table's POSTROUTING hook.
pub const POST: &str = "CAAS-POST";
/// Prefix of a network's ARP proxy chain.
pub const ARP_PREFIX: &str = "CAAS-ARP-";

/// A local container on a VLAN network.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalPort {
    /// Host end of its veth.
    pub veth: String,
    pub ip: Ipv4Addr,
    pub mac: Mac,
}

/// One VLAN network with ARP proxy or MAC NAT on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanRules {
    pub vni: u32,
    /// The bridge's port on the uplink (`eth1.164`, or the uplink itself).
    pub port: String,
    pub node_mac: Mac,
    pub mac_nat: bool,
    /// With the proxy on: the addresses answered and the MAC each is answered with.
    pub arp_answers: Option<Vec<(Ipv4Addr, Mac)>>,
    pub local: Vec<LocalPort>,
}

/// What the table holds of ours, as read before the first change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub chains: BTreeSet<String>,
    pub pre_jump: bool,
    pub post_jump: bool,
}

/// The `ebtables-restore --noflush` script that makes the table hold exactly `networks`' rules,
/// given what it holds now; `None` when nothing is ours and nothing is wanted.
pub fn transaction(networks: &[VlanRules], installed: &Installed) -> Option<String> {
    let wanted = !networks.is_empty();
    if !wanted && installed.chains.is_empty() && !installed.pre_jump && !installed.post_jump {
        return None;
    }
    let mut t = String::from("*nat\n");
    let mut chains: BTreeSet<String> = BTreeSet::new();
    if wanted {
        chains.insert(PRE.into());
        chains.insert(POST.into());
        let _ = writeln!(t, ":{PRE} RETURN\n:{POST} RETURN");
        for n in networks.iter().filter(|n| n.arp_answers.is_some()) {
            let chain = format!("{ARP_PREFIX}{}", n.vni);
            let _ = writeln!(t, ":{chain} RETURN");
            chains.insert(chain);
        }
        for n in networks {
            if let Some(answers) = &n.arp_answers {
                let chain = format!("{ARP_PREFIX}{}", n.vni);
                for (ip, mac) in answers {
                    let _ = writeln!(
                        t,
                        "-A {chain} -p ARP --arp-op Request --arp-ip-dst {ip} -j arpreply \
                         --arpreply-mac {}",
                        format_mac(mac)
                    );
                }
                for l in &n.local {
                    let _ = writeln!(
                        t,
                        "-A {PRE} -i {} -p ARP --arp-op Request -j {chain}",
                        l.veth
                    );
                }
            }
            if n.mac_nat {
                for l in &n.local {
                    let mac = format_mac(&l.mac);
                    let _ = writeln!(
                        t,
                        "-A {PRE} -i {} -p IPv4 --ip-dst {} -j dnat --to-destination {mac} \
                         --dnat-target ACCEPT",
                        n.port, l.ip
                    );
                    let _ = writeln!(
                        t,
                        "-A {PRE} -i {} -p ARP --arp-ip-dst {} -j dnat --to-destination {mac} \
                         --dnat-target ACCEPT",
                        n.port, l.ip
                    );
                }
                let _ = writeln!(
                    t,
                    "-A {POST} -o {} -j snat --to-source {} --snat-arp --snat-target ACCEPT",
                    n.port,
                    format_mac(&n.node_mac)
                );
            }
        }
        if !installed.pre_jump {
            let _ = writeln!(t, "-A PREROUTING -j {PRE}");
        }
        if !installed.post_jump {
            let _ = writeln!(t, "-A POSTROUTING -j {POST}");
        }
    } else {
        if installed.pre_jump {
            let _ = writeln!(t, "-D PREROUTING -j {PRE}");
        }
        if installed.post_jump {
            let _ = writeln!(t, "-D POSTROUTING -j {POST}");
        }
    }
    // Chains no longer wanted: emptied, then deleted (a chain must be empty to go). The
    // jumps into them went with the flush of CAAS-PRE above.
    let stale: Vec<&String> = installed.chains.difference(&chains).collect();
    for c in &stale {
        let _ = writeln!(t, "-F {c}");
    }
    for c in &stale {
        let _ = writeln!(t, "-X {c}");
    }
    t.push_str("COMMIT\n");
    Some(t)
}

/// Parses `ebtables -t nat -L` for our chains and the two jumps.
pub fn parse_installed(listing: &str) -> Installed {
    let mut installed = Installed::default();
    let mut chain = "";
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("Bridge chain: ") {
            chain = rest.split(',').next().unwrap_or_default();
            if chain.starts_with("CAAS-") {
                installed.chains.insert(chain.to_string());
            }
            continue;
        }
        let line = line.trim();
        if chain == "PREROUTING" && line == format!("-j {PRE}") {
            installed.pre_jump = true;
        }
        if chain == "POSTROUTING" && line == format!("-j {POST}") {
            installed.post_jump = true;
        }
    }
    installed
}

fn missing_ebtables(e: &std::io::Error) -> NetError {
    match e.kind() {
        std::io::ErrorKind::NotFound => NetError::Unsupported(
            "ebtables is not installed (install the ebtables package): VLAN networks need it \
             for ARP proxy and MAC NAT"
                .into(),
        ),
        _ => NetError::Failed(format!("running ebtables: {e}")),
    }
}

/// Reads what the nat table holds of ours.
pub async fn read_installed() -> Result<Installed, NetError> {
    let out = tokio::process::Command::new("ebtables")
        .args(["-t", "nat", "-L"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| missing_ebtables(&e))?;
    if !out.status.success() {
        return Err(classify(
            &String::from_utf8_lossy(&out.stderr),
            "ebtables -t nat -L",
        ));
    }
    Ok(parse_installed(&String::from_utf8_lossy(&out.stdout)))
}

/// Runs `ebtables-restore --noflush` with `script` on its standard input.
pub async fn run_restore(script: &str) -> Result<(), NetError> {
    let mut child = tokio::process::Command::new("ebtables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| missing_ebtables(&e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| NetError::Failed(format!("writing to ebtables-restore: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| NetError::Failed(format!("waiting for ebtables-restore: {e}")))?;
    if !out.status.success() {
        return Err(classify(
            &String::from_utf8_lossy(&out.stderr),
            "ebtables-restore refused the caas bridge rules",
        ));
    }
    Ok(())
}

/// A kernel without a bridge netfilter target (arpreply, snat, dnat) says "Operation not
/// supported": the node cannot do it, retrying does not help.
fn classify(stderr: &str, what: &str) -> NetError {
    let message = format!("{what}: {}", stderr.trim());
    if stderr.contains("not supported") {
        NetError::Unsupported(format!(
            "{message} (the kernel lacks an ebtables target: ebt_arpreply, ebt_snat or ebt_dnat)"
        ))
    } else {
        NetError::Failed(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(vni: u32, proxy: bool, nat: bool) -> VlanRules {
        VlanRules {
            vni,
            port: "eth1.164".into(),
            node_mac: [2, 0, 0, 0, 0, 0x11],
            mac_nat: nat,
            arp_answers: proxy.then(|| {
                vec![
                    (Ipv4Addr::new(10, 0, 0, 1), [0x52, 0x54, 0, 0, 0, 1]),
                    (Ipv4Addr::new(10, 0, 0, 9), [2, 0, 0, 0, 0, 0x12]),
                ]
            }),
            local: vec![LocalPort {
                veth: "cwaaaa".into(),
                ip: Ipv4Addr::new(10, 0, 0, 5),
                mac: [2, 0xca, 10, 0, 0, 5],
            }],
        }
    }

    #[test]
    fn proxy_and_nat_rules_and_one_jump_each() {
        let t = transaction(&[net(7, true, true)], &Installed::default()).unwrap();
        assert!(t.starts_with("*nat\n:CAAS-PRE RETURN\n:CAAS-POST RETURN\n:CAAS-ARP-7 RETURN\n"));
        assert!(t.contains(
            "-A CAAS-ARP-7 -p ARP --arp-op Request --arp-ip-dst 10.0.0.1 -j arpreply \
             --arpreply-mac 52:54:00:00:00:01"
        ));
        assert!(t.contains("-A CAAS-PRE -i cwaaaa -p ARP --arp-op Request -j CAAS-ARP-7"));
        assert!(t.contains(
            "-A CAAS-PRE -i eth1.164 -p IPv4 --ip-dst 10.0.0.5 -j dnat --to-destination \
             02:ca:0a:00:00:05 --dnat-target ACCEPT"
        ));
        assert!(
            t.contains("-A CAAS-POST -o eth1.164 -j snat --to-source 02:00:00:00:00:11 --snat-arp")
        );
        assert!(t.contains("-A PREROUTING -j CAAS-PRE\n-A POSTROUTING -j CAAS-POST\n"));
        assert!(t.ends_with("COMMIT\n"));
        // Installed already: no second jump.
        let installed = Installed {
            chains: ["CAAS-PRE", "CAAS-POST", "CAAS-ARP-7", "CAAS-ARP-8"]
                .map(String::from)
                .into(),
            pre_jump: true,
            post_jump: true,
        };
        let t = transaction(&[net(7, false, true)], &installed).unwrap();
        assert!(!t.contains("PREROUTING"), "{t}");
        assert!(!t.contains("arpreply"), "{t}");
        assert!(t.contains("-F CAAS-ARP-7\n-F CAAS-ARP-8\n-X CAAS-ARP-7\n-X CAAS-ARP-8\n"));
    }

    #[test]
    fn nothing_wanted_removes_ours_or_does_nothing() {
        assert_eq!(transaction(&[], &Installed::default()), None);
        let installed = Installed {
            chains: ["CAAS-PRE", "CAAS-POST"].map(String::from).into(),
            pre_jump: true,
            post_jump: true,
        };
        let t = transaction(&[], &installed).unwrap();
        assert_eq!(
            t,
            "*nat\n-D PREROUTING -j CAAS-PRE\n-D POSTROUTING -j CAAS-POST\n-F CAAS-POST\n\
             -F CAAS-PRE\n-X CAAS-POST\n-X CAAS-PRE\nCOMMIT\n"
        );
    }

    #[test]
    fn listing_parses() {
        let listing = "Bridge table: nat\n\nBridge chain: PREROUTING, entries: 1, policy: ACCEPT\n\
                       -j CAAS-PRE\n\nBridge chain: OUTPUT, entries: 0, policy: ACCEPT\n\n\
                       Bridge chain: POSTROUTING, entries: 0, policy: ACCEPT\n\n\
                       Bridge chain: CAAS-PRE, entries: 0, policy: RETURN\n\n\
                       Bridge chain: CAAS-ARP-7, entries: 1, policy: RETURN\n\
                       -p ARP -j arpreply --arpreply-mac 02:00:00:00:00:01\n";
        let i = parse_installed(listing);
        assert!(i.pre_jump && !i.post_jump);
        assert_eq!(
            i.chains,
            ["CAAS-PRE", "CAAS-ARP-7"].map(String::from).into()
        );
    }
}
