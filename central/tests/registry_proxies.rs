//! Registry proxies through the real routes on the in-memory store: declared by the pool's own
//! token, listed without passwords, bad input refused naming the field with the store unchanged,
//! another pool's proxies invisible, and removed with the pool.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::json;
use support::{World, ADMIN};

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

#[tokio::test]
async fn registry_proxies_are_validated_kept_per_pool_and_go_with_the_pool() {
    let world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    let other = world.pool(&a, "q").await;
    let proxy = json!({"name": "site1", "url": "https://198.18.0.1:5001",
        "center": "198.18.0.1:5000", "ca_pem": CA, "username": "pool-p", "password": "s3cret"});
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/registry-proxies",
            &token,
            Some(proxy.clone()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["url"], "https://198.18.0.1:5001");
    assert_eq!(body["ca"], true);
    assert!(body.get("password").is_none(), "{body}");
    // What the agents read: the record, password included, under the pool.
    let stored = world
        .store
        .dump()
        .into_iter()
        .find(|(path, _)| path.ends_with("/pools/p/registry-proxies/site1"))
        .expect("the proxy's znode");
    let record: serde_json::Value = serde_json::from_slice(&stored.1).unwrap();
    assert_eq!(record["host"], "198.18.0.1:5001");
    assert_eq!(record["password"], "s3cret");

    let (status, list) = a
        .call("GET", "/v1/pools/p/registry-proxies", &token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("s3cret"));

    // Bad input and conflicts: refused naming the field, nothing written.
    let before = world.store.dump();
    let with = |k: &str, v: serde_json::Value| {
        let mut p = proxy.clone();
        p["name"] = json!("site2");
        p[k] = v;
        p
    };
    let cases = [
        (with("url", json!("http://198.18.0.1:5001")), 400, "url"),
        (with("url", json!("not a url")), 400, "url"),
        (with("center", json!("center:99999")), 400, "center"),
        (with("ca_pem", json!("hello")), 400, "ca_pem"),
        (with("password", serde_json::Value::Null), 400, "password"),
        (with("name", json!("Bad_Name")), 400, "name"),
        (with("extra", json!(1)), 400, "extra"),
        (proxy.clone(), 409, ""),
    ];
    for (case, code, field) in cases {
        let (status, body) = a
            .call(
                "POST",
                "/v1/pools/p/registry-proxies",
                &token,
                Some(case.clone()),
            )
            .await;
        assert_eq!(status, code, "{case} -> {body}");
        if !field.is_empty() {
            assert_eq!(body["field"], field, "{case} -> {body}");
        }
    }
    // Another pool's token sees nothing of p, and q's list is its own.
    let (status, _) = a
        .call("GET", "/v1/pools/p/registry-proxies", &other, None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = a
        .call("DELETE", "/v1/pools/p/registry-proxies/site1", &other, None)
        .await;
    assert_eq!(status, 404);
    let (status, list) = a
        .call("GET", "/v1/pools/q/registry-proxies", &other, None)
        .await;
    assert_eq!((status, list), (200, json!([])));
    let (status, _) = a
        .call("DELETE", "/v1/pools/p/registry-proxies/nope", &token, None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(world.store.dump(), before, "refused requests wrote nothing");

    // Removed by name; and a pool's proxies go with the pool.
    let (status, _) = a
        .call("DELETE", "/v1/pools/p/registry-proxies/site1", &token, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = a
        .call("POST", "/v1/pools/q/registry-proxies", &other, Some(proxy))
        .await;
    assert_eq!(status, 201);
    let (status, body) = a.call("DELETE", "/v1/pools/q", ADMIN, None).await;
    assert_eq!(status, 204, "{body}");
    assert!(
        !world
            .store
            .dump()
            .iter()
            .any(|(p, _)| p.contains("/pools/q")),
        "the pool and its proxies are gone"
    );
}

#[tokio::test]
async fn prewarms_pick_the_pools_matching_nodes_and_show_what_their_agents_report() {
    use caas_api::image::{PrewarmNodeStatus, PrewarmState};
    use caas_central::store::{Op, Store as _};
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    let other = world.pool(&a, "q").await;
    for (id, pool, rack) in [("n1", "p", "r1"), ("n2", "p", "r2"), ("m1", "q", "r1")] {
        let mut info = support::node_info(id, pool, 4000, 1 << 33);
        info.labels.insert("rack".into(), rack.into());
        world.register(info);
    }
    let image = "198.18.0.1:5000/team/app:1.4";
    let prewarm = |c: &[&str]| json!({"image": image, "constraints": c});

    // Refused before anything is written: no proxy for the center, bad image or constraint,
    // no node matching.
    let before = world.store.dump();
    for (body, field) in [
        (prewarm(&[]), "image"),
        (json!({"image": "Not An Image"}), "image"),
        (json!({"image": "team/app:1"}), "image"),
    ] {
        let (status, answer) = a
            .call("POST", "/v1/pools/p/prewarms", &token, Some(body))
            .await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(field)),
            "{answer}"
        );
    }
    assert_eq!(world.store.dump(), before);
    let (status, _) = a
        .call(
            "POST",
            "/v1/pools/p/registry-proxies",
            &token,
            Some(json!({"name": "site1",
            "url": "https://198.18.0.1:5001", "center": "198.18.0.1:5000"})),
        )
        .await;
    assert_eq!(status, 201);
    let before = world.store.dump();
    for (body, field) in [
        (prewarm(&["rack==r9"]), "constraints"),
        (prewarm(&["rack=r1"]), "constraints[0]"),
    ] {
        let (status, answer) = a
            .call("POST", "/v1/pools/p/prewarms", &token, Some(body))
            .await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(field)),
            "{answer}"
        );
    }
    assert_eq!(world.store.dump(), before);

    // Only the pool's nodes that match; each waiting until its agent reports.
    let (status, view) = a
        .call(
            "POST",
            "/v1/pools/p/prewarms",
            &token,
            Some(prewarm(&["rack==r1"])),
        )
        .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["nodes"], json!([{"node": "n1", "state": "waiting"}]));
    let id = view["id"].as_str().unwrap().to_string();
    let (_, all) = a
        .call("POST", "/v1/pools/p/prewarms", &token, Some(prewarm(&[])))
        .await;
    let nodes: Vec<&str> = all["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["n1", "n2"], "never another pool's node");

    // What an agent writes under the prewarm is what the API shows.
    let layout = world.store.layout().clone();
    let done = PrewarmNodeStatus {
        node: "n1".into(),
        state: PrewarmState::Done,
        progress: None,
        error: None,
    };
    world
        .store
        .commit(
            &[Op::create(layout.prewarm_node("p", &id, "n1"), &done).unwrap()],
            None,
        )
        .await
        .unwrap();
    let (status, got) = a
        .call("GET", &format!("/v1/pools/p/prewarms/{id}"), &token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["nodes"], json!([{"node": "n1", "state": "done"}]));
    let (status, _) = a
        .call("GET", &format!("/v1/pools/p/prewarms/{id}"), &other, None)
        .await;
    assert_eq!(status, 404, "another pool's token sees nothing");

    // Forgetting it removes the record with its nodes' states; the pool takes the rest along.
    let (status, _) = a
        .call(
            "DELETE",
            &format!("/v1/pools/p/prewarms/{id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(!world.store.dump().keys().any(|p| p.contains(&id)));
    let (status, list) = a.call("GET", "/v1/pools/p/prewarms", &token, None).await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1));
    let (status, body) = a.call("DELETE", "/v1/pools/p", ADMIN, None).await;
    assert_eq!(status, 204, "{body}");
    assert!(!world.store.dump().keys().any(|p| p.contains("/pools/p")));
}
