//! Placement through the real routes on the in-memory store: races between two central
//! instances, idempotent create, conflicts, pool isolation and bad input, in milliseconds.

mod support;

use futures::future::join_all;
use serde_json::json;
use support::{container, node_info, World, ADMIN};

const GI: u64 = 1 << 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stale_centrals_under_a_burst_place_exactly_what_fits() {
    let mut world = World::new();
    let a = world.instance();
    let b = world.instance();
    let token = world.pool(&a, "p").await;
    for n in ["n1", "n2", "n3"] {
        world.register(node_info(n, "p", 1000, 4 * GI));
    }
    // Both instances keep the view they have now (no allocations anywhere): every placement
    // after the first on a node is decided on stale data and must lose its race at commit.
    a.store.freeze_caches();
    b.store.freeze_caches();
    let calls = (0..24).map(|i| {
        let at = if i % 2 == 0 { &a } else { &b };
        let token = token.clone();
        async move {
            at.call(
                "POST",
                "/v1/pools/p/containers",
                &token,
                Some(container(&format!("w{i}"), "250m", "64Mi")),
            )
            .await
        }
    });
    let results = join_all(calls).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s != 201).collect();
    assert_eq!(created, 12, "4 x 250m fit on each of 3 nodes: {refused:?}");
    for (status, body) in &refused {
        assert_eq!(*status, 422, "{body}");
        assert_eq!(body["code"], "unschedulable");
    }
    world.check_invariants(&["p"]).await;
    let inventory = world.inventory().await;
    for (id, node) in &inventory {
        assert_eq!(node.allocated.cpu_millis, 1000, "{id} is full");
    }
}

#[tokio::test]
async fn create_is_idempotent_and_a_different_spec_is_a_conflict_naming_fields() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    world.register(node_info("n1", "p", 4000, 8 * GI));
    let path = "/v1/pools/p/containers";
    let (status, first) = a
        .call("POST", path, &token, Some(container("web", "100m", "64Mi")))
        .await;
    assert_eq!(status, 201, "{first}");
    let before = world.store.dump();
    let (status, again) = a
        .call("POST", path, &token, Some(container("web", "100m", "64Mi")))
        .await;
    assert_eq!(
        status, 200,
        "the same spec answers the existing record: {again}"
    );
    assert_eq!(again[0]["node"], first[0]["node"]);
    assert_eq!(
        world.store.dump(),
        before,
        "an idempotent create writes nothing"
    );
    let mut different = container("web", "200m", "64Mi");
    different["env"] = json!({"A": "1"});
    let (status, body) = a.call("POST", path, &token, Some(different)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "exists-different");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("env") && message.contains("resources"),
        "{message}"
    );
    assert_eq!(world.store.dump(), before, "a conflict writes nothing");
    world.check_invariants(&["p"]).await;
}

#[tokio::test]
async fn pools_never_see_or_use_each_other() {
    let mut world = World::new();
    let a = world.instance();
    let token_a = world.pool(&a, "pa").await;
    let token_b = world.pool(&a, "pb").await;
    world.register(node_info("na", "pa", 4000, 8 * GI));
    world.register(node_info("nb", "pb", 4000, 8 * GI));
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/pb/containers",
            &token_b,
            Some(container("db", "100m", "64Mi")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body[0]["node"], "nb");

    let before = world.store.dump();
    for (method, path) in [
        ("GET", "/v1/pools/pb/containers"),
        ("GET", "/v1/pools/pb/containers/db"),
        ("DELETE", "/v1/pools/pb/containers/db"),
        ("GET", "/v1/pools/pb"),
        ("POST", "/v1/pools/pb/containers/db/reschedule"),
    ] {
        let (status, body) = a.call(method, path, &token_a, Some(json!({}))).await;
        assert_eq!(status, 404, "{method} {path} with pool A's token: {body}");
    }
    let (status, _) = a
        .call(
            "POST",
            "/v1/pools/pb/containers",
            &token_a,
            Some(container("x", "100m", "64Mi")),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(world.store.dump(), before, "refusals wrote nothing");

    // Pool A has one node; with it full, A's workloads never spill onto B's idle node.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/pa/containers",
            &token_a,
            Some(container("big", "4", "64Mi")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body[0]["node"], "na");
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/pa/containers",
            &token_a,
            Some(container("more", "100m", "64Mi")),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        !body["message"].as_str().unwrap().contains("nb"),
        "explanations never name another pool's nodes: {body}"
    );
    let (_, nodes) = a.call("GET", "/v1/nodes", &token_a, None).await;
    let ids: Vec<_> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("na")]);
    world.check_invariants(&["pa", "pb"]).await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_writes_nothing() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    world.register(node_info("n1", "p", 4000, 8 * GI));
    let before = world.store.dump();
    let cases = [
        (json!({"name": "Bad_Name", "image": "i"}), "name"),
        (
            json!({"name": "ok", "image": "i", "instances": 0}),
            "instances",
        ),
        (
            json!({"name": "ok", "image": "i", "strategy": "random"}),
            "strategy",
        ),
        (
            json!({"name": "ok", "image": "i", "constraints": ["nope"]}),
            "constraints[0]",
        ),
        (
            json!({"name": "ok", "image": "i", "resources": {"cpu": "lots"}}),
            "resources.cpu",
        ),
        (
            json!({"name": "ok", "image": "i", "volumes": ["relative"]}),
            "volumes[0]",
        ),
        (json!({"name": "ok", "image": "i", "unknown": 1}), "unknown"),
        (json!({"name": "ok", "image": "i", "rich": true}), "rich"),
        // Specs the engine could never run: refused here, not retried forever on a node.
        (
            json!({"name": "ok", "image": "i", "resources": {"cpu": "1m"}}),
            "resources.cpu",
        ),
        (
            json!({"name": "ok", "image": "i", "env": {"DB_PASSWORD": "se\u{0}cret"}}),
            "env.DB_PASSWORD",
        ),
        (
            json!({"name": "ok", "image": "i", "command": ["sh", "-c", "echo \u{0}"]}),
            "command[2]",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = a
            .call("POST", "/v1/pools/p/containers", &token, Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["code"], "invalid");
        assert_eq!(answer["field"], field, "{body} -> {answer}");
    }
    let (status, _) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            "wrong-token",
            Some(container("x", "1", "64Mi")),
        )
        .await;
    assert_eq!(status, 401);
    let (status, answer) = a
        .call("POST", "/v1/pools", ADMIN, Some(json!({"name": "p"})))
        .await;
    assert_eq!((status, answer["code"].clone()), (409, json!("exists")));
    // A body over the limit is 413 with the limit named, whatever other routes share the path.
    let huge = json!({"name": "ok", "image": "i", "env": {"BIG": "x".repeat(2 << 20)}});
    let (status, answer) = a
        .call("POST", "/v1/pools/p/containers", &token, Some(huge))
        .await;
    assert_eq!(
        (status, answer["code"].clone()),
        (413, json!("too-large")),
        "{answer}"
    );
    assert!(
        answer["message"].as_str().unwrap_or("").contains("bytes"),
        "{answer}"
    );
    assert_eq!(world.store.dump(), before, "nothing written by any refusal");
}

#[tokio::test]
async fn a_central_without_zookeeper_or_a_loaded_view_says_so() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    world.register(node_info("n1", "p", 4000, 8 * GI));
    a.store.set_synced(false);
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(container("w", "1", "64Mi")),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (503, json!("unavailable")),
        "{body}"
    );
    a.store.set_synced(true);
    world.store.set_reachable(false);
    let (status, body) = a.call("GET", "/v1/pools/p/containers", &token, None).await;
    assert_eq!(status, 503, "{body}");
    world.store.set_reachable(true);
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(container("w", "1", "64Mi")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn delete_releases_the_node_and_purge_leaves_an_instruction() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    world.register(node_info("n1", "p", 1000, 8 * GI));
    let mut with_data = container("db", "1", "64Mi");
    with_data["volumes"] = json!(["/data"]);
    let (status, body) = a
        .call("POST", "/v1/pools/p/containers", &token, Some(with_data))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(container("x", "100m", "64Mi")),
        )
        .await;
    assert_eq!(status, 422, "the node is full: {body}");
    let (status, _) = a
        .call(
            "DELETE",
            "/v1/pools/p/containers/db?purge_data=true",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let inventory = world.inventory().await;
    assert_eq!(inventory["n1"].allocated.cpu_millis, 0);
    let store: &dyn caas_central::store::Store = &world.store;
    let (assignment, _): (caas_api::Assignment, _) =
        store.get("/caas/assign/n1/p.db").await.unwrap().unwrap();
    assert_eq!(assignment.desired, caas_api::Desired::Purge);
    // A re-create of the same name avoids the node that still has the purge pending.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(container("db", "100m", "64Mi")),
        )
        .await;
    assert_eq!(status, 422, "the only node still holds db's purge: {body}");
    world.check_invariants(&["p"]).await;
}
