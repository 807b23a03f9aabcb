//! The wiring logic against the in-memory kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use caas_api::network::{mac_for, Endpoint, NetworkDriver, NetworkSupport, GATEWAY_MAC};

use super::{NetworkDesc, NodeNetworks, RemoteEndpoint, Wiring, WiringError};
use crate::network::fake::FakeNetwork;
use crate::network::{format_mac, parse_mac, FdbEntry, NeighbourEntry, ZERO_MAC};

const UNDERLAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);

fn support() -> NetworkSupport {
    NetworkSupport {
        bridge: true,
        vxlan: true,
        missing: None,
        ..Default::default()
    }
}

fn wiring(fake: &Arc<FakeNetwork>) -> Wiring {
    Wiring::new(fake.clone(), Some(UNDERLAY), support())
}

fn endpoint(i: usize, network: &str, vni: u32, ip: &str) -> Endpoint {
    let third: u8 = (vni % 200) as u8;
    Endpoint {
        interface: format!("eth{i}"),
        network: network.into(),
        driver: NetworkDriver::Vxlan,
        vni,
        subnet: format!("10.{third}.0.0/24"),
        gateway: format!("10.{third}.0.1"),
        ip: ip.into(),
        mac: mac_for(ip.parse().unwrap()),
        service: None,
        vlan: None,
    }
}

fn local(endpoints: &[&Endpoint]) -> BTreeMap<u32, NetworkDesc> {
    endpoints
        .iter()
        .map(|e| (e.vni, NetworkDesc::from_endpoint(e).unwrap()))
        .collect()
}

fn remote(ip: &str, vtep: [u8; 4]) -> RemoteEndpoint {
    RemoteEndpoint {
        ip: ip.parse().unwrap(),
        mac: parse_mac(&mac_for(ip.parse().unwrap())).unwrap(),
        vtep: vtep.into(),
        node_mac: None,
    }
}

#[tokio::test]
async fn wires_bridge_vxlan_and_the_sandbox_interface() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let w = wiring(&fake);
    let e = endpoint(0, "blue", 100, "10.100.0.5");
    let ifs = w
        .wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    assert_eq!(ifs.len(), 1);
    assert_eq!(ifs[0].name, "eth0");
    assert_eq!(ifs[0].ip, "10.100.0.5");
    assert_eq!(ifs[0].mac, e.mac);
    assert_eq!(ifs[0].network, "blue");

    let bridge = fake.host_link("cb100").unwrap();
    assert_eq!(
        bridge.mac.map(|m| format_mac(&m)).as_deref(),
        Some(GATEWAY_MAC)
    );
    assert_eq!(bridge.mtu, 1450);
    assert!(bridge.up);
    assert_eq!(bridge.addresses, ["10.100.0.1/24".parse().unwrap()]);
    let vxlan = fake.host_link("cv100").unwrap();
    assert_eq!(vxlan.master, Some(bridge.index));
    assert!(vxlan.up);
    match vxlan.kind {
        crate::network::LinkKind::Vxlan(v) => {
            assert_eq!(
                (v.vni, v.local, v.port, v.learning, v.proxy),
                (100, Some(UNDERLAY), 4789, false, true)
            );
        }
        other => panic!("{other:?}"),
    }
    let host = fake
        .host_names()
        .into_iter()
        .find(|n| n.starts_with("cw"))
        .unwrap();
    assert_eq!(fake.host_link(&host).unwrap().master, Some(bridge.index));
    let sandbox = fake.sandbox_state(100).unwrap();
    assert_eq!(sandbox.default_gateway, Some(Ipv4Addr::new(10, 100, 0, 1)));
    assert!(sandbox.links.iter().any(|l| l.name == "lo" && l.up));
}

#[tokio::test]
async fn second_pass_touches_nothing() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let e0 = endpoint(0, "blue", 100, "10.100.0.5");
    let e1 = endpoint(1, "red", 101, "10.101.0.5");
    let w = wiring(&fake);
    w.wire("p.web", "sb1", 100, &[e0.clone(), e1.clone()])
        .await
        .unwrap();
    let mut nets = NodeNetworks {
        local: local(&[&e0, &e1]),
        remote: BTreeMap::from([(100, vec![remote("10.100.0.9", [198, 18, 0, 12])])]),
        complete: BTreeSet::from([100, 101]),
        veths: BTreeSet::new(),
        vlan_ports: BTreeMap::new(),
    };
    nets.expect_veths("p.web", "sb1", &[e0.clone(), e1.clone()]);
    w.sync(&nets).await.unwrap();
    fake.clear_calls();
    // A restarted agent: a new Wiring with no memory but the kernel's state.
    let again = wiring(&fake);
    let ifs = again
        .wire("p.web", "sb1", 100, &[e0.clone(), e1.clone()])
        .await
        .unwrap();
    assert_eq!(ifs.len(), 2);
    let report = again.sync(&nets).await.unwrap();
    // The new instance re-applies the table once (an atomic replace keeps conntrack), and
    // nothing else.
    assert_eq!(fake.calls(), ["apply_firewall set"]);
    assert!(report.removed_devices.is_empty());
    fake.clear_calls();
    again.sync(&nets).await.unwrap();
    again.wire("p.web", "sb1", 100, &[e0, e1]).await.unwrap();
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn wrong_state_is_fixed_and_a_new_sandbox_is_rewired() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let e = endpoint(0, "blue", 100, "10.100.0.5");
    let w = wiring(&fake);
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    // Someone removed the gateway address from the bridge.
    use crate::network::NetworkBackend;
    fake.del_address("cb100", "10.100.0.1/24".parse().unwrap())
        .await
        .unwrap();
    fake.clear_calls();
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    assert_eq!(fake.calls(), ["add_address cb100 10.100.0.1/24"]);
    // The sandbox is recreated: a new process, its old veth gone with its namespace.
    fake.remove_sandbox(100);
    fake.add_sandbox(200);
    let ifs = w.wire("p.web", "sb2", 200, &[e]).await.unwrap();
    assert_eq!(ifs[0].ip, "10.100.0.5");
    assert_eq!(
        fake.host_names()
            .iter()
            .filter(|n| n.starts_with("cw"))
            .count(),
        1
    );
}

#[tokio::test]
async fn remote_endpoints_come_and_go() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let e = endpoint(0, "blue", 100, "10.100.0.5");
    let w = wiring(&fake);
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    let a = remote("10.100.0.7", [198, 18, 0, 12]);
    let b = remote("10.100.0.8", [198, 18, 0, 13]);
    let mut nets = NodeNetworks {
        local: local(&[&e]),
        remote: BTreeMap::from([(100, vec![a, b])]),
        complete: BTreeSet::from([100]),
        veths: BTreeSet::new(),
        vlan_ports: BTreeMap::new(),
    };
    nets.expect_veths("p.web", "sb1", std::slice::from_ref(&e));
    w.sync(&nets).await.unwrap();
    let vtep = |v: [u8; 4]| Ipv4Addr::from(v);
    assert_eq!(
        fake.fdb_of("cv100"),
        BTreeSet::from([
            FdbEntry {
                mac: a.mac,
                vtep: a.vtep
            },
            FdbEntry {
                mac: b.mac,
                vtep: b.vtep
            },
            FdbEntry {
                mac: ZERO_MAC,
                vtep: vtep([198, 18, 0, 12])
            },
            FdbEntry {
                mac: ZERO_MAC,
                vtep: vtep([198, 18, 0, 13])
            },
        ])
    );
    assert_eq!(
        fake.neighbours_of("cv100"),
        BTreeSet::from([
            NeighbourEntry {
                ip: a.ip,
                mac: a.mac
            },
            NeighbourEntry {
                ip: b.ip,
                mac: b.mac
            },
        ])
    );
    let rules = fake.firewall().unwrap();
    assert!(
        rules.contains("@th,96,24 100 ip saddr { 198.18.0.12, 198.18.0.13 } accept"),
        "{rules}"
    );
    assert!(fake.forwarding());
    assert!(fake.docker_forward_allowed());

    // b leaves, a moves to another node.
    let moved = RemoteEndpoint {
        vtep: vtep([198, 18, 0, 14]),
        ..a
    };
    nets.remote.insert(100, vec![moved]);
    let report = w.sync(&nets).await.unwrap();
    assert_eq!(
        fake.fdb_of("cv100"),
        BTreeSet::from([
            FdbEntry {
                mac: a.mac,
                vtep: moved.vtep
            },
            FdbEntry {
                mac: ZERO_MAC,
                vtep: moved.vtep
            },
        ])
    );
    assert_eq!(
        fake.neighbours_of("cv100"),
        BTreeSet::from([NeighbourEntry {
            ip: a.ip,
            mac: a.mac
        }])
    );
    assert!(report.entries_removed >= 4, "{report:?}");
    assert!(fake.firewall().unwrap().contains("saddr { 198.18.0.14 }"));

    // An incomplete listing adds but never removes.
    nets.remote.insert(100, vec![]);
    nets.complete.clear();
    w.sync(&nets).await.unwrap();
    assert_eq!(fake.fdb_of("cv100").len(), 2);
}

#[tokio::test]
async fn last_endpoint_leaving_removes_devices_and_the_table() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let e = endpoint(0, "blue", 100, "10.100.0.5");
    let w = wiring(&fake);
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    let mut nets = NodeNetworks {
        local: local(&[&e]),
        remote: BTreeMap::from([(100, vec![remote("10.100.0.9", [198, 18, 0, 12])])]),
        complete: BTreeSet::from([100]),
        veths: BTreeSet::new(),
        vlan_ports: BTreeMap::new(),
    };
    nets.expect_veths("p.web", "sb1", std::slice::from_ref(&e));
    w.sync(&nets).await.unwrap();
    // The sandbox is removed, but the kernel has not freed its namespace yet: the host end
    // of its veth is still there, and goes with the network's devices.
    let report = w.sync(&NodeNetworks::default()).await.unwrap();
    assert_eq!(report.removed_devices.len(), 3, "{report:?}");
    assert_eq!(report.removed_devices[..2], ["cv100", "cb100"]);
    assert!(report.removed_devices[2].starts_with("cw"), "{report:?}");
    assert!(fake.host_names().is_empty(), "{:?}", fake.host_names());
    assert!(fake.fdb_of("cv100").is_empty());
    assert_eq!(fake.firewall(), None);
    assert!(report.firewall_applied);
    assert!(
        !fake.docker_forward_allowed(),
        "no network left: no exceptions"
    );
}

#[tokio::test]
async fn missing_vxlan_is_a_clear_error_and_leaves_nothing() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    // The node knew at start: nothing is even tried.
    let w = Wiring::new(
        fake.clone(),
        Some(UNDERLAY),
        NetworkSupport {
            bridge: true,
            vxlan: false,
            missing: Some("vxlan: module vxlan missing".into()),
            ..Default::default()
        },
    );
    let e = endpoint(0, "blue", 100, "10.100.0.5");
    match w.wire("p.web", "sb1", 100, std::slice::from_ref(&e)).await {
        Err(WiringError::Unsupported(m)) => assert!(m.contains("vxlan"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(fake.calls().is_empty());
    // The kernel says so only when asked: the bridge made for it is removed again.
    fake.without_vxlan();
    let w = wiring(&fake);
    match w.wire("p.web", "sb1", 100, &[e]).await {
        Err(WiringError::Unsupported(m)) => assert!(m.contains("VXLAN"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(fake.host_names().is_empty(), "{:?}", fake.host_names());
}

#[tokio::test]
async fn failure_midway_removes_what_the_attempt_created() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    fake.fail_configure(true);
    let w = wiring(&fake);
    let e = endpoint(0, "blue", 100, "10.100.0.5");
    assert!(matches!(
        w.wire("p.web", "sb1", 100, std::slice::from_ref(&e)).await,
        Err(WiringError::Failed(_))
    ));
    assert!(fake.host_names().is_empty(), "{:?}", fake.host_names());
    assert_eq!(fake.sandbox_state(100).unwrap().links.len(), 1, "only lo");
    fake.fail_configure(false);
    assert!(w.wire("p.web", "sb1", 100, &[e]).await.is_ok());
}

#[tokio::test]
async fn bridge_network_has_no_vxlan_device() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let w = wiring(&fake);
    let mut e = endpoint(0, "local", 7, "10.7.0.5");
    e.driver = NetworkDriver::Bridge;
    w.wire("p.web", "sb1", 100, &[e]).await.unwrap();
    assert!(fake.host_link("cv7").is_none());
    assert_eq!(fake.host_link("cb7").unwrap().mtu, 1500);
}

#[tokio::test]
async fn one_wiring_enters_the_sandbox_once_and_dumps_nothing() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let w = wiring(&fake);
    let e0 = endpoint(0, "blue", 100, "10.100.0.5");
    let e1 = endpoint(1, "red", 101, "10.101.0.5");
    w.wire("p.web", "sb1", 100, &[e0, e1]).await.unwrap();
    assert_eq!(fake.sandbox_entries(), 1);
    assert_eq!(fake.dumps(), 0, "devices are looked up by name");
    let sandbox = fake.sandbox_state(100).unwrap();
    let names: Vec<&str> = sandbox.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo", "eth0", "eth1"]);
}

#[tokio::test]
async fn differential_passes_read_nothing_and_full_passes_repair_what_others_changed() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let e = endpoint(0, "blue", 100, "10.100.0.5");
    let w = wiring(&fake);
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    let a = remote("10.100.0.7", [198, 18, 0, 12]);
    let mut nets = NodeNetworks {
        local: local(&[&e]),
        remote: BTreeMap::from([(100, vec![a])]),
        complete: BTreeSet::from([100]),
        veths: BTreeSet::new(),
        vlan_ports: BTreeMap::new(),
    };
    nets.expect_veths("p.web", "sb1", std::slice::from_ref(&e));
    w.sync(&nets).await.unwrap();
    let after_full = fake.dumps();
    assert!(after_full > 0, "the first pass reads the node whole");
    // Endpoints come and go: only their entries are written, nothing is read.
    for i in 10..60 {
        let r = remote(&format!("10.100.0.{i}"), [198, 18, 0, 12]);
        nets.remote.entry(100).or_default().push(r);
        fake.clear_calls();
        let report = w.sync(&nets).await.unwrap();
        assert_eq!(report.entries_added, 2, "{:?}", fake.calls());
    }
    assert_eq!(fake.dumps(), after_full);
    assert_eq!(fake.neighbours_of("cv100").len(), 51);

    // Someone deletes an entry behind the agent's back: a differential pass does not see it,
    // a full pass (here: every pass) puts it back.
    use crate::network::NetworkBackend;
    let lost = NeighbourEntry {
        ip: a.ip,
        mac: a.mac,
    };
    fake.del_neighbour("cv100", lost).await.unwrap();
    w.sync(&nets).await.unwrap();
    assert!(!fake.neighbours_of("cv100").contains(&lost));
    let always_full = wiring(&fake).with_full_sync_every(std::time::Duration::ZERO);
    let report = always_full.sync(&nets).await.unwrap();
    assert_eq!(report.entries_added, 1, "{report:?}");
    assert!(fake.neighbours_of("cv100").contains(&lost));
}

#[tokio::test]
async fn a_failed_wiring_makes_the_next_pass_read_the_node_whole() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    fake.add_sandbox(200);
    let w = wiring(&fake);
    let e = endpoint(0, "blue", 100, "10.100.0.5");
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    let mut nets = NodeNetworks {
        local: local(&[&e]),
        ..Default::default()
    };
    nets.expect_veths("p.web", "sb1", std::slice::from_ref(&e));
    w.sync(&nets).await.unwrap();
    let dumps = fake.dumps();
    fake.fail_configure(true);
    let other = endpoint(0, "blue", 100, "10.100.0.6");
    assert!(w.wire("p.other", "sb2", 200, &[other]).await.is_err());
    fake.fail_configure(false);
    w.sync(&nets).await.unwrap();
    assert!(
        fake.dumps() > dumps,
        "the pass after a failure reads the kernel"
    );
}

const NODE_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x11];
const ROUTER_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xfe];

fn vlan_wiring(fake: &Arc<FakeNetwork>) -> Wiring {
    fake.add_physical("eth1", NODE_MAC);
    let support = NetworkSupport {
        bridge: true,
        vlan: true,
        uplink: Some("eth1".into()),
        uplink_mac: Some(format_mac(&NODE_MAC)),
        ..Default::default()
    };
    Wiring::new(fake.clone(), None, support)
}

fn vlan_endpoint(ip: &str, id: Option<u16>, arp_proxy: bool, mac_nat: bool) -> Endpoint {
    Endpoint {
        driver: NetworkDriver::Vlan,
        subnet: "10.209.164.0/22".into(),
        gateway: "10.209.164.1".into(),
        vlan: Some(caas_api::network::VlanOptions {
            vlan_id: id,
            arp_proxy,
            mac_nat,
        }),
        ..endpoint(0, "myvlan", 300, ip)
    }
}

#[tokio::test]
async fn a_vlan_network_rides_a_sub_interface_and_the_node_owns_no_gateway() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let w = vlan_wiring(&fake);
    let e = vlan_endpoint("10.209.164.8", Some(164), false, false);
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    let uplink = fake.host_link("eth1").unwrap();
    let bridge = fake.host_link("cb300").unwrap();
    let port = fake.host_link("eth1.164").unwrap();
    assert_eq!(
        port.kind,
        crate::network::LinkKind::Vlan {
            id: 164,
            parent: Some(uplink.index)
        }
    );
    assert_eq!(port.master, Some(bridge.index));
    assert!(port.up);
    assert!(bridge.addresses.is_empty(), "the router owns the gateway");
    assert_eq!(
        bridge.mac,
        Some(NODE_MAC),
        "the bridge speaks with the node's MAC"
    );
    assert_eq!(bridge.mtu, 1500);
    assert!(fake.host_link("cv300").is_none(), "no VXLAN device");
    assert_eq!(
        uplink.master, None,
        "a tagged network leaves the uplink alone"
    );
    let sandbox = fake.sandbox_state(100).unwrap();
    assert_eq!(
        sandbox.default_gateway,
        Some(Ipv4Addr::new(10, 209, 164, 1))
    );
    // The node-wide pass: no masquerade for a segment the node does not route.
    let mut nets = NodeNetworks {
        local: local(&[&e]),
        ..Default::default()
    };
    nets.expect_veths("p.web", "sb1", std::slice::from_ref(&e));
    w.sync(&nets).await.unwrap();
    let table = fake.firewall().unwrap();
    assert!(!table.contains("masquerade"), "{table}");
    assert!(
        fake.bridge_rules().is_none(),
        "no proxy, no NAT, no ebtables rules"
    );
    // Idempotent: a second wiring changes nothing.
    fake.clear_calls();
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    // The last endpoint gone: sub-interface and bridge go, the uplink stays.
    fake.remove_sandbox(100);
    let report = w.sync(&NodeNetworks::default()).await.unwrap();
    assert!(report.removed_devices.contains(&"eth1.164".to_string()));
    assert!(report.removed_devices.contains(&"cb300".to_string()));
    assert_eq!(fake.host_names(), ["eth1"]);
}

#[tokio::test]
async fn an_untagged_vlan_network_enslaves_the_uplink_and_releases_it() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let w = vlan_wiring(&fake);
    let e = vlan_endpoint("10.209.164.8", None, false, false);
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    let bridge = fake.host_link("cb300").unwrap();
    assert_eq!(fake.host_link("eth1").unwrap().master, Some(bridge.index));
    fake.remove_sandbox(100);
    w.sync(&NodeNetworks::default()).await.unwrap();
    assert_eq!(fake.host_names(), ["eth1"], "the uplink is never deleted");
    assert_eq!(fake.host_link("eth1").unwrap().master, None);
    // An uplink that carries the node's own address is never made a bridge port.
    fake.add_host_address("eth1", "198.18.0.11/24".parse().unwrap());
    fake.add_sandbox(101);
    let err = w
        .wire("p.web", "sb2", 101, std::slice::from_ref(&e))
        .await
        .unwrap_err();
    assert!(matches!(err, WiringError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("198.18.0.11/24"), "{err}");
    assert_eq!(fake.host_link("eth1").unwrap().master, None);
    assert_eq!(fake.host_names(), ["eth1"], "the bridge it made is gone");
}

#[tokio::test]
async fn arp_proxy_answers_gateway_and_peers_and_mac_nat_rewrites_at_the_port() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    fake.answer_arp(Ipv4Addr::new(10, 209, 164, 1), ROUTER_MAC);
    let w = vlan_wiring(&fake);
    let e = vlan_endpoint("10.209.164.8", Some(164), true, true);
    w.wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap();
    let remote_node_mac = [0x52, 0x54, 0, 0, 0, 0x12];
    let mut nets = NodeNetworks {
        local: local(&[&e]),
        remote: BTreeMap::from([(
            300,
            vec![RemoteEndpoint {
                vtep: Ipv4Addr::UNSPECIFIED,
                node_mac: Some(remote_node_mac),
                ..remote("10.209.164.9", [0, 0, 0, 0])
            }],
        )]),
        ..Default::default()
    };
    nets.expect_veths("p.web", "sb1", std::slice::from_ref(&e));
    let report = w.sync(&nets).await.unwrap();
    assert!(report.bridge_rules_applied);
    let rules = fake.bridge_rules().unwrap();
    let veth = crate::network::host_veth_name("p.web", "sb1", "eth0");
    for want in [
        "--arp-ip-dst 10.209.164.1 -j arpreply --arpreply-mac 52:54:00:00:00:fe".to_string(),
        // The local peer by its own MAC, the remote one by its node's (MAC NAT).
        "--arp-ip-dst 10.209.164.8 -j arpreply --arpreply-mac 02:ca:0a:d1:a4:08".to_string(),
        "--arp-ip-dst 10.209.164.9 -j arpreply --arpreply-mac 52:54:00:00:00:12".to_string(),
        format!("-A CAAS-PRE -i {veth} -p ARP --arp-op Request -j CAAS-ARP-300"),
        "-A CAAS-PRE -i eth1.164 -p IPv4 --ip-dst 10.209.164.8 -j dnat --to-destination \
         02:ca:0a:d1:a4:08"
            .to_string(),
        "-A CAAS-POST -o eth1.164 -j snat --to-source 52:54:00:00:00:11 --snat-arp".to_string(),
    ] {
        assert!(rules.contains(&want), "missing {want:?} in\n{rules}");
    }
    // Nothing changed: no second transaction, no second probe (the answer is cached).
    fake.clear_calls();
    let report = w.sync(&nets).await.unwrap();
    assert!(!report.bridge_rules_applied);
    assert_eq!(fake.probes(), 1);
    // The network gone: the rules go with it.
    fake.remove_sandbox(100);
    let report = w.sync(&NodeNetworks::default()).await.unwrap();
    assert!(report.bridge_rules_applied);
    let rules = fake.bridge_rules().unwrap();
    assert!(rules.contains("-D PREROUTING -j CAAS-PRE"), "{rules}");
    assert!(rules.contains("-X CAAS-ARP-300"), "{rules}");
}

#[tokio::test]
async fn a_node_without_802_1q_or_an_uplink_says_which() {
    let fake = Arc::new(FakeNetwork::new());
    fake.add_sandbox(100);
    let e = vlan_endpoint("10.209.164.8", Some(164), false, false);
    // The probe found no 802.1Q: the node does not carry vlan networks.
    let w = Wiring::new(
        fake.clone(),
        None,
        NetworkSupport {
            bridge: true,
            uplink: Some("eth1".into()),
            missing: Some("vlan: 802.1Q: the kernel cannot create 802.1Q VLAN sub-interfaces (module 8021q missing)".into()),
            ..Default::default()
        },
    );
    let err = w
        .wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap_err();
    assert!(matches!(err, WiringError::Unsupported(_)));
    assert!(err.to_string().contains("802.1Q"), "{err}");
    assert!(
        fake.calls().is_empty(),
        "nothing touched: {:?}",
        fake.calls()
    );
    // Support claimed but the kernel refuses at wiring time: what was created is removed.
    fake.without_vlan();
    let w = vlan_wiring(&fake);
    let err = w
        .wire("p.web", "sb1", 100, std::slice::from_ref(&e))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("802.1Q"), "{err}");
    assert_eq!(fake.host_names(), ["eth1"], "the bridge it made is gone");
}
