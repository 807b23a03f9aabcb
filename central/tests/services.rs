//! DNS services and load balancers through the real routes on the in-memory store: bad input
//! refused naming the field with the store unchanged, one DNS service per network, the VIP
//! allocated by IPAM in the LB's commit and released by `lb rm`, backends checked against the
//! network, membership in `container inspect`, and `network rm` taking the DNS service along.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use caas_api::network::NetworkSupport;
use caas_api::NodeInfo;
use serde_json::{json, Value};
use support::{container, node_info, World};

const GI: u64 = 1 << 30;

fn net_node(id: &str, pool: &str) -> NodeInfo {
    let mut info = node_info(id, pool, 4000, 8 * GI);
    info.networks = NetworkSupport {
        bridge: true,
        vxlan: true,
        missing: None,
        ..Default::default()
    };
    info
}

#[tokio::test]
async fn dns_and_load_balancers_are_validated_committed_and_released() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    let other = world.pool(&a, "q").await;
    world.register(net_node("n1", "p"));
    for (pool, tok, name, subnet, gw) in [
        ("p", &token, "myvxlan", "192.168.0.0/19", "192.168.31.254"),
        ("p", &token, "back", "10.1.0.0/24", "10.1.0.1"),
        ("q", &other, "theirs", "10.9.0.0/24", "10.9.0.1"),
    ] {
        let (status, body) = a
            .call(
                "POST",
                &format!("/v1/pools/{pool}/networks"),
                tok,
                Some(json!({"name": name, "driver": "vxlan", "subnet": subnet, "gateway": gw})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    for (name, net) in [("web-1", "myvxlan"), ("db", "back")] {
        let mut body = container(name, "100m", "64Mi");
        body["networks"] = json!([{"network": net, "service": "web"}]);
        let (status, body) = a
            .call("POST", "/v1/pools/p/containers", &token, Some(body))
            .await;
        assert!(status == 201 || status == 200, "{body}");
    }

    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/dns",
            &token,
            Some(json!({"name": "dns1", "network": "myvxlan", "forward": "198.18.0.1"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["domain"], "caas.local");
    assert_eq!(body["forward"], "198.18.0.1:53");
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/lbs",
            &token,
            Some(json!({"name": "web-lb", "network": "myvxlan", "port": 80, "publish": 8080})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let vip = body["vip"].as_str().unwrap().to_string();
    assert_eq!(vip, "192.168.0.2", "the lowest free address after web-1");

    let before = world.store.dump();
    let bad: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/v1/pools/p/dns",
            json!({"name": "Bad", "network": "myvxlan"}),
            400,
            "name",
        ),
        (
            "POST",
            "/v1/pools/p/dns",
            json!({"name": "d", "network": "myvxlan", "domain": "a..b"}),
            400,
            "domain",
        ),
        (
            "POST",
            "/v1/pools/p/dns",
            json!({"name": "d", "network": "myvxlan", "forward": "x"}),
            400,
            "forward",
        ),
        (
            "POST",
            "/v1/pools/p/dns",
            json!({"name": "dns2", "network": "myvxlan"}),
            409,
            "exists",
        ),
        (
            "POST",
            "/v1/pools/p/dns",
            json!({"name": "dns1", "network": "back"}),
            409,
            "exists",
        ),
        (
            "POST",
            "/v1/pools/p/dns",
            json!({"name": "d", "network": "theirs"}),
            404,
            "not-found",
        ),
        (
            "POST",
            "/v1/pools/p/lbs",
            json!({"name": "l", "network": "myvxlan", "port": 0}),
            400,
            "port",
        ),
        (
            "POST",
            "/v1/pools/p/lbs",
            json!({"name": "l", "network": "myvxlan", "port": 65536}),
            400,
            "port",
        ),
        (
            "POST",
            "/v1/pools/p/lbs",
            json!({"name": "l", "network": "myvxlan", "port": 80, "publish": 0}),
            400,
            "publish",
        ),
        (
            "POST",
            "/v1/pools/p/lbs",
            json!({"name": "l", "network": "myvxlan", "port": 80, "vip": "10.0.0.1"}),
            400,
            "vip",
        ),
        (
            "POST",
            "/v1/pools/p/lbs",
            json!({"name": "l", "network": "myvxlan", "port": 80, "vip": "192.168.31.254"}),
            400,
            "vip",
        ),
        (
            "POST",
            "/v1/pools/p/lbs",
            json!({"name": "l", "network": "myvxlan", "port": 80, "vip": vip}),
            409,
            "address-taken",
        ),
        (
            "POST",
            "/v1/pools/p/lbs",
            json!({"name": "l", "network": "back", "port": 80, "publish": 8080}),
            409,
            "port-taken",
        ),
        (
            "POST",
            "/v1/pools/p/lbs",
            json!({"name": "web-lb", "network": "back", "port": 80}),
            409,
            "exists",
        ),
        (
            "POST",
            "/v1/pools/p/lbs",
            json!({"name": "l", "network": "nonet", "port": 80}),
            404,
            "not-found",
        ),
        (
            "POST",
            "/v1/pools/q/lbs",
            json!({"name": "l", "network": "myvxlan", "port": 80}),
            404,
            "not-found",
        ),
        (
            "POST",
            "/v1/pools/p/lbs/web-lb/backends",
            json!({"container": "db"}),
            400,
            "container",
        ),
        (
            "POST",
            "/v1/pools/p/lbs/web-lb/backends",
            json!({"container": "ghost"}),
            404,
            "not-found",
        ),
        (
            "POST",
            "/v1/pools/p/lbs/web-lb/backends",
            json!({"container": "web-1", "weight": 0}),
            400,
            "weight",
        ),
        (
            "POST",
            "/v1/pools/p/lbs/web-lb/backends",
            json!({"container": "web-1", "port": 70000}),
            400,
            "port",
        ),
        (
            "POST",
            "/v1/pools/p/lbs/nolb/backends",
            json!({"container": "web-1"}),
            404,
            "not-found",
        ),
    ];
    for (method, path, body, want, what) in bad {
        let tok = if path.contains("/pools/q/") {
            &other
        } else {
            &token
        };
        let (status, reply) = a.call(method, path, tok, Some(body.clone())).await;
        assert_eq!(status, want, "{path} {body} -> {reply}");
        if want == 400 {
            assert_eq!(reply["field"], what, "{path} {body} -> {reply}");
        } else {
            assert_eq!(reply["code"], what, "{path} {body} -> {reply}");
        }
        assert!(!reply["message"].as_str().unwrap_or("").is_empty());
    }
    assert_eq!(world.store.dump(), before, "no refusal wrote anything");

    // A backend; inspect shows the membership; the LB view shows its address.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/lbs/web-lb/backends",
            &token,
            Some(json!({"container": "web-1", "port": 8080, "weight": 3})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backends"][0]["weight"], 3);
    let (_, view) = a
        .call("GET", "/v1/pools/p/containers/web-1", &token, None)
        .await;
    assert_eq!(view["services"]["lbs"], json!(["web-lb"]));
    assert_eq!(
        view["services"]["dns_names"],
        json!([
            "web-1.caas.local",
            "web.caas.local",
            "web.myvxlan.caas.local"
        ])
    );
    let (_, lb) = a.call("GET", "/v1/pools/p/lbs/web-lb", &token, None).await;
    assert_eq!(lb["members"][0]["ip"], "192.168.0.1");
    assert_eq!(lb["members"][0]["state"], "not-running");
    // Another pool sees none of it.
    let (status, _) = a.call("GET", "/v1/pools/p/lbs/web-lb", &other, None).await;
    assert_eq!(status, 404);
    let (_, list) = a.call("GET", "/v1/pools/q/dns", &other, None).await;
    assert_eq!(list, json!([]));

    // The network cannot go while the LB holds its VIP; lb rm releases it.
    let (status, _) = a
        .call("DELETE", "/v1/pools/p/networks/myvxlan", &token, None)
        .await;
    assert_eq!(status, 409);
    let (status, _) = a
        .call(
            "DELETE",
            "/v1/pools/p/lbs/web-lb/backends/web-1",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = a
        .call("DELETE", "/v1/pools/p/lbs/web-lb", &token, None)
        .await;
    assert_eq!(status, 204);
    let dump = world.store.dump();
    assert!(!dump.keys().any(|k| k.ends_with(&format!("/ips/{vip}"))));
    assert!(!dump.keys().any(|k| k.contains("/lbs/web-lb")));

    // network rm (once its containers are gone) takes the DNS service along.
    let (status, _) = a
        .call("DELETE", "/v1/pools/p/containers/web-1", &token, None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = a
        .call("DELETE", "/v1/pools/p/networks/myvxlan", &token, None)
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, list) = a.call("GET", "/v1/pools/p/dns", &token, None).await;
    assert_eq!(list, json!([]));
    assert!(!world
        .store
        .dump()
        .keys()
        .any(|k| k.contains("/networks/myvxlan")));
}
