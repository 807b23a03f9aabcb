//! Roles through the real routes on the in-memory store: developer tokens issued by a pool's
//! ops, listed and revoked; a developer reads containers but is refused (403) every route that
//! changes something, exec included, with the store unchanged; another pool's container is 404;
//! a revoked or wrong token is 401 without saying why; the OpenAPI document names every
//! operation's role.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::json;
use support::{container, node_info, World, ADMIN};

#[tokio::test]
async fn developer_tokens_read_but_never_change() {
    let mut world = World::new();
    world.register(node_info("n1", "p", 4000, 8 << 30));
    world.register(node_info("n2", "q", 4000, 8 << 30));
    let a = world.instance();
    let ops = world.pool(&a, "p").await;
    let other_ops = world.pool(&a, "q").await;

    // Ops issue developer tokens, not ops tokens; the admin issues both.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/tokens",
            &ops,
            Some(json!({"role": "developer", "label": "alice"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["role"], "developer");
    let dev = body["token"].as_str().unwrap().to_string();
    let dev_id = body["id"].as_str().unwrap().to_string();
    assert!(dev_id.starts_with("tok-"));
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/tokens",
            &ops,
            Some(json!({"role": "ops"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/tokens",
            &ops,
            Some(json!({"role": "root"})),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("role")),
        "{body}"
    );
    let (status, _) = a
        .call(
            "POST",
            "/v1/pools/p/tokens",
            ADMIN,
            Some(json!({"role": "ops"})),
        )
        .await;
    assert_eq!(status, 201);
    // A developer cannot mint tokens, list them, or read the audit log.
    for (method, path, body) in [
        (
            "POST",
            "/v1/pools/p/tokens",
            Some(json!({"role": "developer"})),
        ),
        ("GET", "/v1/pools/p/tokens", None),
        ("GET", "/v1/pools/p/audit", None),
    ] {
        let (status, answer) = a.call(method, path, &dev, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    let (status, list) = a.call("GET", "/v1/pools/p/tokens", &ops, None).await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list
        .iter()
        .any(|t| t["id"] == dev_id.as_str() && t["role"] == "developer" && t["label"] == "alice"));
    assert!(
        !serde_json::to_string(list).unwrap().contains(&dev),
        "tokens are never listed"
    );

    // Ops create; the developer sees it.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &ops,
            Some(container("web", "100m", "64Mi")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = a.call("GET", "/v1/pools/p/containers", &dev, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 1);
    let (status, _) = a
        .call("GET", "/v1/pools/p/containers/web", &dev, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = a.call("GET", "/v1/pools/p", &dev, None).await;
    assert_eq!(status, 200);

    // Everything that changes something, or runs as root, is 403 with nothing written.
    let before = world.store.dump();
    let refused = [
        (
            "POST",
            "/v1/pools/p/containers",
            Some(container("evil", "100m", "64Mi")),
        ),
        ("DELETE", "/v1/pools/p/containers/web", None),
        (
            "POST",
            "/v1/pools/p/containers/web/reschedule",
            Some(json!({"force": true})),
        ),
        (
            "POST",
            "/v1/pools/p/containers/web/exec",
            Some(json!({"command": ["id"], "user": "root"})),
        ),
        (
            "POST",
            "/v1/pools/p/containers/web/exec",
            Some(json!({"command": ["id"]})),
        ),
        ("POST", "/v1/pools/p/containers/web/restart-app", None),
        (
            "PUT",
            "/v1/pools/p/containers/web/image",
            Some(json!({"image": "caas/test:2"})),
        ),
        ("PUT", "/v1/pools/p/ssh-keys", Some(json!({"ssh_keys": []}))),
        (
            "POST",
            "/v1/pools/p/networks",
            Some(json!({"name": "n", "driver": "bridge", "subnet": "10.9.0.0/24"})),
        ),
        (
            "POST",
            "/v1/pools/p/prewarms",
            Some(json!({"image": "caas/test:1"})),
        ),
        ("DELETE", "/v1/pools/p", None),
        ("DELETE", &format!("/v1/pools/p/tokens/{dev_id}"), None),
        ("GET", "/v1/nodes", None),
        ("GET", "/v1/stats/nodes", None),
    ];
    for (method, path, body) in refused {
        let (status, answer) = a.call(method, path, &dev, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "forbidden", "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("developer"),
            "{answer}"
        );
    }
    // The deploy route refuses before reading the package.
    let (status, _) = a
        .call("POST", "/v1/pools/p/containers/web/deploy", &dev, None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        world.store.dump(),
        before,
        "a refused request wrote something"
    );

    // Another pool's container: 404, as if it did not exist, for reads; another pool's
    // developer does not see ours.
    let (status, _) = a
        .call(
            "POST",
            "/v1/pools/q/containers",
            &other_ops,
            Some(container("db", "100m", "64Mi")),
        )
        .await;
    assert_eq!(status, 201);
    for path in [
        "/v1/pools/q/containers/db",
        "/v1/pools/q/containers",
        "/v1/pools/q/containers/db/logs",
        "/v1/pools/q",
    ] {
        let (status, answer) = a.call("GET", path, &dev, None).await;
        assert_eq!(status, 404, "{path}: {answer}");
    }
    let (status, pools) = a.call("GET", "/v1/pools", &dev, None).await;
    assert_eq!(status, 200);
    assert_eq!(pools.as_array().unwrap().len(), 1, "{pools}");

    // A terminal for a developer into a plain (not rich) container: refused before upgrading.
    let response = a
        .raw(
            warp::test::request()
                .method("GET")
                .path("/v1/pools/p/containers/web/terminal")
                .header("authorization", format!("Bearer {dev}"))
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(String::from_utf8_lossy(response.body()).contains("no admin user"));
    // A page of another site opening a terminal: refused whatever the token.
    let response = a
        .raw(
            warp::test::request()
                .method("GET")
                .path("/v1/pools/p/containers/web/terminal")
                .header("authorization", format!("Bearer {ops}"))
                .header("origin", "http://evil.example")
                .header("host", "central:8080")
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        )
        .await;
    assert_eq!(response.status(), 403);

    // Revoked: 401 at once, like a token that never existed; ops cannot revoke ops tokens.
    let ops_id = list.iter().find(|t| t["role"] == "ops").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = a
        .call(
            "DELETE",
            &format!("/v1/pools/p/tokens/{ops_id}"),
            &ops,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = a
        .call(
            "DELETE",
            &format!("/v1/pools/p/tokens/{dev_id}"),
            &ops,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, revoked) = a.call("GET", "/v1/pools/p/containers", &dev, None).await;
    let (_, wrong) = a
        .call("GET", "/v1/pools/p/containers", "caas_nope", None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        revoked, wrong,
        "a revoked token is answered like a wrong one"
    );
    let (status, _) = a
        .call("DELETE", "/v1/pools/p/tokens/tok-000000000000", &ops, None)
        .await;
    assert_eq!(status, 404);

    // A pool token from before roles (a bare hash in the record) still works as ops.
    let (status, _) = a.call("GET", "/v1/pools/p/tokens", &ops, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn openapi_names_the_role_of_every_operation() {
    let world = World::new();
    let a = world.instance();
    let response = a
        .raw(warp::test::request().method("GET").path("/v1/openapi.json"))
        .await;
    let doc: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths["/v1/pools/{pool}/containers"]["get"]["x-caas-role"],
        "developer"
    );
    assert_eq!(
        paths["/v1/pools/{pool}/containers"]["post"]["x-caas-role"],
        "ops"
    );
    assert_eq!(paths["/v1/pools"]["post"]["x-caas-role"], "admin");
    assert_eq!(
        paths["/v1/pools/{pool}/containers/{name}/terminal"]["get"]["x-caas-role"],
        "developer"
    );
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["x-caas-role"].is_string(), "{method} {path} has no role");
        }
    }
}

#[tokio::test]
async fn tokens_issued_before_roles_keep_working_as_ops() {
    let world = World::new();
    let a = world.instance();
    world.pool(&a, "p").await;
    // Rewrite the record as an older central wrote it: a bare hash.
    let legacy = "caas_legacy_token_0123456789";
    let hash = caas_central::auth::hash_token(legacy);
    let store: &dyn caas_central::store::Store = &world.store;
    let (mut record, version) = store.pool("p").await.unwrap().unwrap();
    record.tokens.clear();
    record.token_hashes = vec![hash.clone()];
    store
        .commit(
            &[caas_central::store::Op::set(world.layout.pool("p"), &record, version).unwrap()],
            None,
        )
        .await
        .unwrap();
    let (status, list) = a.call("GET", "/v1/pools/p/tokens", legacy, None).await;
    assert_eq!(status, 200, "{list}");
    let id = caas_api::roles::token_id(&hash);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["role"], "ops");
    let (status, _) = a
        .call("DELETE", &format!("/v1/pools/p/tokens/{id}"), ADMIN, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = a.call("GET", "/v1/pools/p/tokens", legacy, None).await;
    assert_eq!(status, 401);
}
