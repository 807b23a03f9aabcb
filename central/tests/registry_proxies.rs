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
