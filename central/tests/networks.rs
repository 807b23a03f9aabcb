//! Networks and IPAM through the real routes on the in-memory store: validation with the store
//! unchanged, VNI claims, attach at create with requested and allocated addresses, exhaustion,
//! release on delete, pool isolation, and addresses kept across a move.

mod support;

use std::time::Duration;

use caas_api::network::{IpAllocation, NetworkSupport};
use caas_api::NodeInfo;
use caas_central::leader::tick_at;
use caas_central::store::Store;
use serde_json::{json, Value};
use support::{container, node_info, World, ADMIN};

const GI: u64 = 1 << 30;

fn net_node(id: &str, pool: &str, vxlan: bool) -> NodeInfo {
    let mut info = node_info(id, pool, 4000, 8 * GI);
    info.networks = NetworkSupport {
        bridge: true,
        vxlan,
        missing: (!vxlan).then(|| "vxlan: operation not supported".to_string()),
        ..Default::default()
    };
    info
}

fn network(name: &str, subnet: &str, gateway: &str) -> Value {
    json!({"name": name, "driver": "vxlan", "subnet": subnet, "gateway": gateway})
}

fn attached(name: &str, networks: Value) -> Value {
    let mut body = container(name, "100m", "64Mi");
    body["networks"] = networks;
    body
}

#[tokio::test]
async fn bad_networks_are_refused_naming_the_field_and_write_nothing() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    world.register(net_node("n1", "p", true));
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/networks",
            &token,
            Some(network("myvxlan", "192.168.0.0/19", "192.168.31.254")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["vni"], 1, "the first free VNI");
    let before = world.store.dump();
    let cases = [
        (network("x", "10.0.0.1/24", "10.0.0.254"), 400, "subnet"),
        (
            network("x", "192.168.16.0/24", "192.168.16.1"),
            400,
            "subnet",
        ),
        (network("x", "10.0.0.0/24", "10.0.1.1"), 400, "gateway"),
        (network("x", "10.0.0.0/24", "10.0.0.0"), 400, "gateway"),
        (network("x", "10.0.0.0/24", "10.0.0.255"), 400, "gateway"),
        (
            json!({"name": "x", "driver": "vxlan", "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "vni": 0}),
            400,
            "vni",
        ),
        (
            json!({"name": "x", "driver": "vxlan", "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "vni": 16777216}),
            400,
            "vni",
        ),
        (
            json!({"name": "x", "driver": "vlan9", "subnet": "10.0.0.0/24", "gateway": "10.0.0.1"}),
            400,
            "driver",
        ),
        (
            json!({"name": "x", "driver": "vxlan", "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "mtu": 9000}),
            400,
            "mtu",
        ),
        (
            json!({"name": "x", "driver": "vxlan", "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "vni": 1}),
            409,
            "vni-taken",
        ),
        (network("myvxlan", "10.9.0.0/24", "10.9.0.1"), 409, "exists"),
    ];
    for (request, want_status, what) in cases {
        let (status, body) = a
            .call(
                "POST",
                "/v1/pools/p/networks",
                &token,
                Some(request.clone()),
            )
            .await;
        assert_eq!(status, want_status, "{request} -> {body}");
        if want_status == 400 {
            assert_eq!(body["field"], what, "{request} -> {body}");
        } else {
            assert_eq!(body["code"], what, "{request} -> {body}");
        }
    }
    assert_eq!(world.store.dump(), before, "no refusal wrote anything");
    // The overlap message names the network it collides with.
    let (_, body) = a
        .call(
            "POST",
            "/v1/pools/p/networks",
            &token,
            Some(network("x", "192.168.16.0/24", "192.168.16.1")),
        )
        .await;
    assert!(
        body["message"].as_str().unwrap().contains("myvxlan"),
        "{body}"
    );
}

#[tokio::test]
async fn addresses_are_requested_or_allocated_checked_and_released() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    world.register(net_node("n1", "p", true));
    let (status, _) = a
        .call(
            "POST",
            "/v1/pools/p/networks",
            &token,
            Some(network("small", "10.0.0.0/29", "10.0.0.1")),
        )
        .await;
    assert_eq!(status, 201);
    let path = "/v1/pools/p/containers";
    let (status, body) = a
        .call(
            "POST",
            path,
            &token,
            Some(attached(
                "core",
                json!([{"network": "small", "ip": "10.0.0.5", "service": "db"}]),
            )),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let eth0 = &body[0]["spec"]["networks"][0];
    assert_eq!(eth0["interface"], "eth0");
    assert_eq!(eth0["ip"], "10.0.0.5");
    assert_eq!(eth0["mac"], "02:ca:0a:00:00:05");
    let (status, body) = a
        .call(
            "POST",
            path,
            &token,
            Some(attached("auto", json!([{"network": "small"}]))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body[0]["spec"]["networks"][0]["ip"], "10.0.0.2",
        "the lowest free address"
    );
    // Idempotent with the same attachments, even though the address was allocated.
    let (status, _) = a
        .call(
            "POST",
            path,
            &token,
            Some(attached("auto", json!([{"network": "small"}]))),
        )
        .await;
    assert_eq!(status, 200);
    // And with the requested address it holds itself (not "address taken" by itself).
    let (status, body) = a
        .call(
            "POST",
            path,
            &token,
            Some(attached(
                "core",
                json!([{"network": "small", "ip": "10.0.0.5", "service": "db"}]),
            )),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["spec"]["networks"][0]["ip"], "10.0.0.5");

    let before = world.store.dump();
    let bad = [
        (
            json!([{"network": "small", "ip": "10.0.0.5"}]),
            409,
            "address-taken",
        ),
        (
            json!([{"network": "small", "ip": "10.0.0.0"}]),
            400,
            "networks[0].ip",
        ),
        (
            json!([{"network": "small", "ip": "10.0.0.7"}]),
            400,
            "networks[0].ip",
        ),
        (
            json!([{"network": "small", "ip": "10.0.0.1"}]),
            400,
            "networks[0].ip",
        ),
        (
            json!([{"network": "small", "ip": "10.0.1.9"}]),
            400,
            "networks[0].ip",
        ),
        (json!([{"network": "nope"}]), 404, "not-found"),
        (
            json!([{"network": "small"}, {"network": "small"}]),
            400,
            "networks[1]",
        ),
    ];
    for (networks, want_status, what) in bad {
        let (status, body) = a
            .call(
                "POST",
                path,
                &token,
                Some(attached("bad", networks.clone())),
            )
            .await;
        assert_eq!(status, want_status, "{networks} -> {body}");
        let got = if want_status == 400 {
            &body["field"]
        } else {
            &body["code"]
        };
        assert_eq!(got, what, "{networks} -> {body}");
    }
    let mut replicas = attached("many", json!([{"network": "small", "ip": "10.0.0.6"}]));
    replicas["instances"] = json!(2);
    let (status, body) = a.call("POST", path, &token, Some(replicas)).await;
    assert_eq!(
        (status, body["field"].clone()),
        (400, json!("networks[0].ip")),
        "{body}"
    );
    // Three addresses are left (.3 .4 .6): four replicas do not fit, and none is allocated.
    let mut four = attached("four", json!([{"network": "small"}]));
    four["instances"] = json!(4);
    let (status, body) = a.call("POST", path, &token, Some(four)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("exhausted")),
        "{body}"
    );
    assert_eq!(world.store.dump(), before, "no refusal allocated anything");

    let (status, body) = a
        .call(
            "DELETE",
            "/v1/pools/p/networks/small",
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("not-empty")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("core (10.0.0.5)"),
        "{body}"
    );
    let (_, view) = a
        .call("GET", "/v1/pools/p/networks/small", &token, None)
        .await;
    assert_eq!(view["endpoints"].as_array().unwrap().len(), 2, "{view}");
    for name in ["core", "auto"] {
        let (status, _) = a
            .call("DELETE", &format!("{path}/{name}"), &token, Some(json!({})))
            .await;
        assert_eq!(status, 204);
    }
    let store: &dyn Store = &world.store;
    assert!(
        store
            .children("/caas/pools/p/networks/small/ips")
            .await
            .unwrap()
            .is_empty(),
        "addresses released"
    );
    let (status, _) = a
        .call(
            "DELETE",
            "/v1/pools/p/networks/small",
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        store.children("/caas/vnis").await.unwrap().is_empty(),
        "VNI released"
    );
    assert!(store
        .children("/caas/pools/p/networks")
        .await
        .unwrap()
        .is_empty());
    world.check_invariants(&["p"]).await;
}

#[tokio::test]
async fn another_pools_network_is_not_there() {
    let mut world = World::new();
    let a = world.instance();
    let token_a = world.pool(&a, "pa").await;
    let token_b = world.pool(&a, "pb").await;
    world.register(net_node("na", "pa", true));
    world.register(net_node("nb", "pb", true));
    let (status, _) = a
        .call(
            "POST",
            "/v1/pools/pb/networks",
            &token_b,
            Some(network("secret", "10.1.0.0/24", "10.1.0.1")),
        )
        .await;
    assert_eq!(status, 201);
    let before = world.store.dump();
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/pa/containers",
            &token_a,
            Some(attached("x", json!([{"network": "secret"}]))),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    for (method, path) in [
        ("GET", "/v1/pools/pb/networks"),
        ("GET", "/v1/pools/pb/networks/secret"),
        ("DELETE", "/v1/pools/pb/networks/secret"),
        ("POST", "/v1/pools/pb/containers"),
    ] {
        let (status, body) = a
            .call(
                method,
                path,
                &token_a,
                Some(attached("x", json!([{"network": "secret"}]))),
            )
            .await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    let (_, list) = a.call("GET", "/v1/pools/pa/networks", &token_a, None).await;
    assert_eq!(list, json!([]));
    // Pool A may use the same subnet: overlap is checked within a pool only.
    let (status, _) = a
        .call(
            "POST",
            "/v1/pools/pa/networks",
            &token_a,
            Some(network("mine", "10.1.0.0/24", "10.1.0.1")),
        )
        .await;
    assert_eq!(status, 201);
    let (_, dump_after) = (before.len(), world.store.dump());
    assert!(
        dump_after.contains_key("/caas/vnis/2"),
        "its own VNI: VNIs are cluster-wide"
    );
    let _ = ADMIN;
}

#[tokio::test]
async fn only_nodes_that_carry_the_driver_get_the_workload_and_a_move_keeps_the_address() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    world.register(net_node("plain", "p", false));
    world.register(net_node("n1", "p", true));
    world.register(net_node("n2", "p", true));
    let fence = world.store.leader_fence(world.store.new_session()).unwrap();
    tick_at(&a.central, &fence, Duration::from_secs(30), 1000)
        .await
        .unwrap();
    let (status, _) = a
        .call(
            "POST",
            "/v1/pools/p/networks",
            &token,
            Some(network("ov", "192.168.0.0/24", "192.168.0.254")),
        )
        .await;
    assert_eq!(status, 201);
    let mut web = attached("web", json!([{"network": "ov", "ip": "192.168.0.3"}]));
    web["hostname"] = json!("core-1");
    let (status, body) = a
        .call("POST", "/v1/pools/p/containers", &token, Some(web))
        .await;
    assert_eq!(status, 201, "{body}");
    let first = body[0]["node"].as_str().unwrap().to_string();
    assert_ne!(
        first, "plain",
        "a node without vxlan never gets an overlay workload"
    );
    let other = if first == "n1" { "n2" } else { "n1" };
    world.kill(&first);
    world.kill("plain");
    tick_at(&a.central, &fence, Duration::from_secs(30), 1001)
        .await
        .unwrap();
    tick_at(&a.central, &fence, Duration::from_secs(30), 1040)
        .await
        .unwrap();
    tick_at(&a.central, &fence, Duration::from_secs(30), 1041)
        .await
        .unwrap();
    let records = world.records("p").await;
    assert_eq!(records[0].node, other, "re-placed on the other vxlan node");
    assert_eq!(records[0].spec.hostname.as_deref(), Some("core-1"));
    assert_eq!(records[0].spec.networks[0].ip, "192.168.0.3");
    assert_eq!(records[0].spec.networks[0].mac, "02:ca:c0:a8:00:03");
    let store: &dyn Store = &world.store;
    let (allocation, _): (IpAllocation, _) = store
        .get("/caas/pools/p/networks/ov/ips/192.168.0.3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        allocation.node, other,
        "the allocation follows the workload"
    );
    world.check_invariants(&["p"]).await;

    // With no vxlan node left, the explanation says why.
    world.kill(other);
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(attached("late", json!([{"network": "ov"}]))),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let _ = body;
}

#[tokio::test]
async fn a_bridge_network_keeps_its_workloads_on_one_node() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    world.register(net_node("n1", "p", true));
    world.register(net_node("n2", "p", true));
    let (status, _) = a
        .call("POST", "/v1/pools/p/networks", &token, Some(json!({"name": "lan", "driver": "bridge", "subnet": "10.5.0.0/24", "gateway": "10.5.0.1"})))
        .await;
    assert_eq!(status, 201);
    let mut nodes = std::collections::BTreeSet::new();
    for i in 0..4 {
        let (status, body) = a
            .call(
                "POST",
                "/v1/pools/p/containers",
                &token,
                Some(attached(&format!("w{i}"), json!([{"network": "lan"}]))),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        nodes.insert(body[0]["node"].as_str().unwrap().to_string());
    }
    assert_eq!(
        nodes.len(),
        1,
        "spread would use both nodes; the bridge network pins them: {nodes:?}"
    );
}

fn vlan_node(id: &str, pool: &str, vlan: bool) -> NodeInfo {
    let mut info = node_info(id, pool, 4000, 8 * GI);
    info.networks = NetworkSupport {
        bridge: true,
        vlan,
        uplink: Some("eth1".into()),
        uplink_mac: Some("52:54:00:00:01:01".into()),
        missing: (!vlan).then(|| {
            "vlan: 802.1Q: the kernel cannot create 802.1Q VLAN sub-interfaces".to_string()
        }),
        ..Default::default()
    };
    info
}

fn vlan_network(name: &str, third: u8, extra: Value) -> Value {
    let mut body = json!({
        "name": name, "driver": "vlan",
        "subnet": format!("10.209.{third}.0/22"), "gateway": format!("10.209.{third}.1"),
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[tokio::test]
async fn vlan_networks_are_checked_claimed_once_in_the_cluster_and_placed_on_nodes_that_carry_them()
{
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    let other = world.pool(&a, "q").await;
    world.register(vlan_node("nodot1q", "p", false));
    world.register(vlan_node("n1", "p", true));
    let fence = world.store.leader_fence(world.store.new_session()).unwrap();
    tick_at(&a.central, &fence, Duration::from_secs(30), 1000)
        .await
        .unwrap();
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/networks",
            &token,
            Some(vlan_network(
                "myvlan",
                164,
                json!({"vlan_id": 164, "arp_proxy": true, "mac_nat": true}),
            )),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["driver"], "vlan");
    assert_eq!(
        body["vlan"],
        json!({"vlan_id": 164, "arp_proxy": true, "mac_nat": true})
    );

    // Bad input: refused naming the field (or the owner), nothing written.
    let before = world.store.dump();
    let cases = [
        (
            vlan_network("x", 168, json!({"vlan_id": 0})),
            400,
            "vlan_id",
        ),
        (
            vlan_network("x", 168, json!({"vlan_id": 4095})),
            400,
            "vlan_id",
        ),
        (
            json!({"name": "x", "driver": "vxlan", "subnet": "10.0.0.0/24",
                   "gateway": "10.0.0.1", "mac_nat": true}),
            400,
            "mac_nat",
        ),
        (
            json!({"name": "x", "driver": "vxlan", "subnet": "10.0.0.0/24",
                   "gateway": "10.0.0.1", "vlan_id": 12}),
            400,
            "vlan_id",
        ),
        (
            json!({"name": "x", "driver": "bridge", "subnet": "10.0.0.0/24",
                   "gateway": "10.0.0.1", "arp_proxy": false}),
            400,
            "arp_proxy",
        ),
        (
            vlan_network("x", 168, json!({"arp_proxy": "maybe"})),
            400,
            "arp_proxy",
        ),
        (
            vlan_network("again", 168, json!({"vlan_id": 164})),
            409,
            "vlan-taken",
        ),
    ];
    for (request, want_status, what) in cases {
        let (status, body) = a
            .call(
                "POST",
                "/v1/pools/p/networks",
                &token,
                Some(request.clone()),
            )
            .await;
        assert_eq!(status, want_status, "{request} -> {body}");
        if want_status == 400 {
            assert_eq!(body["field"], what, "{request} -> {body}");
        } else if want_status == 409 {
            assert_eq!(body["code"], what, "{request} -> {body}");
            assert!(
                body["message"].as_str().unwrap().contains("myvlan"),
                "the owner is named: {body}"
            );
        }
    }
    // Another pool cannot take the same VLAN either (it would share the broadcast domain), and
    // is not told which network of which pool has it.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/q/networks",
            &other,
            Some(vlan_network("theirs", 168, json!({"vlan_id": 164}))),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("another pool") && !message.contains("myvlan"),
        "{body}"
    );
    assert_eq!(world.store.dump(), before, "no refusal wrote anything");

    // DNS and load balancers need a network whose addresses the nodes own.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/dns",
            &token,
            Some(json!({"name": "dns", "network": "myvlan", "domain": "p.local"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("vlan network"),
        "{body}"
    );

    // Placement: only the node whose agent can carry vlan networks, with the settings in the
    // endpoint; with none left, the explanation names the cause.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(attached(
                "web",
                json!([{"network": "myvlan", "ip": "10.209.164.8"}]),
            )),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body[0]["node"], "n1");
    let records = world.records("p").await;
    let endpoint = &records[0].spec.networks[0];
    assert_eq!(endpoint.driver, caas_api::network::NetworkDriver::Vlan);
    assert_eq!(
        endpoint.vlan.and_then(|v| v.vlan_id),
        Some(164),
        "{endpoint:?}"
    );
    world.kill("n1");
    tick_at(&a.central, &fence, Duration::from_secs(30), 1001)
        .await
        .unwrap();
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(attached("late", json!([{"network": "myvlan"}]))),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let why = body["message"].as_str().unwrap();
    assert!(
        why.contains("cannot carry vlan networks")
            && why.contains("uplink")
            && why.contains("802.1Q"),
        "{why}"
    );
    world.check_invariants(&["p"]).await;
}

#[tokio::test]
async fn removing_a_vlan_network_frees_its_vlan() {
    let world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    for (name, third, status) in [("one", 164, 201), ("two", 176, 409)] {
        let (got, body) = a
            .call(
                "POST",
                "/v1/pools/p/networks",
                &token,
                Some(vlan_network(name, third, json!({"vlan_id": 7}))),
            )
            .await;
        assert_eq!(got, status, "{body}");
    }
    // The untagged access port is one segment too.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/networks",
            &token,
            Some(vlan_network("access", 168, json!({}))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["vlan"], json!({}), "no VLAN id: untagged");
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/networks",
            &token,
            Some(vlan_network("access2", 172, json!({}))),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("untagged"),
        "{body}"
    );
    let (status, _) = a
        .call("DELETE", "/v1/pools/p/networks/one", &token, None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/networks",
            &token,
            Some(vlan_network("two", 176, json!({"vlan_id": 7}))),
        )
        .await;
    assert_eq!(status, 201, "VLAN 7 is free again: {body}");
}
