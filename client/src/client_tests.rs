//! The client against a fake central: paths, auth header, bodies, status codes and error
//! decoding.

use serde_json::json;

use crate::fake::{json as ok, FakeCentral, Seen};
use crate::*;

/// Two nodes as central lists them.
fn nodes() -> Vec<NodeView> {
    serde_json::from_value(json!([
        {
            "id": "n2", "pool": "pool2", "liveness": "lost",
            "capacity": {"cpu_millis": 4000, "memory_bytes": 8_375_000_000u64},
            "allocated": {"cpu_millis": 0, "memory_bytes": 0},
            "labels": {}, "containers": 0, "api_addr": "198.18.0.12:7070",
            "agent_version": "0.1.0"
        },
        {
            "id": "n1", "pool": "pool2", "liveness": "ready",
            "capacity": {"cpu_millis": 8000, "memory_bytes": 17_179_869_184u64},
            "allocated": {"cpu_millis": 1500, "memory_bytes": 536_870_912u64, "pids": 200},
            "labels": {"rack": "r1"}, "containers": 3, "api_addr": "198.18.0.11:7070",
            "agent_version": "0.1.0"
        }
    ]))
    .unwrap()
}

/// A placed container with a status.
fn container() -> ContainerView {
    serde_json::from_value(json!({
        "pool": "pool2", "name": "web-1", "node": "n1", "placement": "placed", "app": "web",
        "spec": {"pool": "pool2", "name": "web-1", "image": "caas/app:1.0", "generation": 1},
        "status": {
            "version": 1, "pool": "pool2", "name": "web-1", "node": "n1", "state": "running",
            "generation": 1, "app_hash": "abcd", "containers": {}, "observed_at": 1_714_558_830
        }
    }))
    .unwrap()
}

async fn fake(handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> FakeCentral {
    FakeCentral::start(handler).await.unwrap()
}

fn client(fake: &FakeCentral) -> CentralClient {
    CentralClient::new(fake.url(), Some("t0k")).unwrap()
}

#[tokio::test]
async fn sends_bearer_token_and_decodes_lists() {
    let fake = fake(|s| match s.auth.as_deref() {
        Some("Bearer t0k") => ok(200, nodes()),
        _ => ok(
            401,
            json!({"code": "unauthorized", "message": "missing or unknown token"}),
        ),
    })
    .await;
    assert_eq!(client(&fake).list_nodes().await.unwrap(), nodes());

    let anonymous = CentralClient::new(fake.url(), None).unwrap();
    let err = anonymous.list_nodes().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some("unauthorized"));
    assert_eq!(err.to_string(), "missing or unknown token");
    assert!(err.from_central());

    let seen = fake.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/v1/nodes");
    assert_eq!(seen[1].auth, None);
}

#[tokio::test]
async fn error_bodies_are_decoded_with_their_field() {
    let fake = fake(|_| {
        ok(
            400,
            json!({"code": "invalid", "message": "must be at least 6Mi", "field": "resources.memory"}),
        )
    })
    .await;
    let req = CreateContainerRequest {
        name: "web".into(),
        image: "busybox:1".into(),
        ..Default::default()
    };
    let err = client(&fake)
        .create_containers("p1", &req)
        .await
        .unwrap_err();
    match &err {
        ClientError::Api { status, body, .. } => {
            assert_eq!(*status, 400);
            assert_eq!(body.field.as_deref(), Some("resources.memory"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string(), "must be at least 6Mi");
    assert_eq!(err.field(), Some("resources.memory"));
    assert_eq!(err.code(), Some("invalid"));
    assert!(!err.is_local());
}

#[tokio::test]
async fn non_json_errors_and_answers_are_reported_not_misread() {
    let fake = fake(|s| match s.path.as_str() {
        "/v1/nodes" => (502, "<html>Bad Gateway</html>".into()),
        "/v1/pools" => (200, "<html>login</html>".into()),
        _ => (404, String::new()),
    })
    .await;
    let client = client(&fake);

    let err = client.list_nodes().await.unwrap_err();
    assert_eq!(err.code(), Some("http-502"));
    assert_eq!(
        err.to_string(),
        "HTTP 502 Bad Gateway: <html>Bad Gateway</html>"
    );

    let err = client.list_pools().await.unwrap_err();
    assert!(
        matches!(err, ClientError::Protocol { status: 200, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("<html>login</html>"), "{err}");

    let err = client.get_node("n1").await.unwrap_err();
    assert_eq!(err.to_string(), "HTTP 404 Not Found");
    assert_eq!(err.status(), Some(404));
    assert!(!err.from_central(), "a made-up body is not central's");
}

#[tokio::test]
async fn container_calls_use_the_documented_paths() {
    let view = container();
    let answer = view.clone();
    let fake = fake(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/v1/pools/pool2/containers") => {
            let status = if s.body.as_ref().and_then(|b| b.get("instances")).is_some() {
                201
            } else {
                200
            };
            ok(status, vec![answer.clone()])
        }
        ("GET", "/v1/pools/pool2/containers") => ok(200, vec![answer.clone()]),
        ("GET", "/v1/pools/pool2/containers/web-1") => ok(200, answer.clone()),
        ("POST", "/v1/pools/pool2/containers/web-1/reschedule") => ok(200, answer.clone()),
        ("DELETE", "/v1/pools/pool2/containers/web-1") => (204, String::new()),
        _ => ok(
            404,
            json!({"code": "not-found", "message": "no such thing"}),
        ),
    })
    .await;
    let client = client(&fake);
    let mut req = CreateContainerRequest {
        name: "web".into(),
        image: "caas/app:1.0".into(),
        ..Default::default()
    };

    let outcome = client
        .create_containers_outcome("pool2", &req)
        .await
        .unwrap();
    assert!(!outcome.created, "200 means it all existed already");
    req.instances = Some(2);
    let outcome = client
        .create_containers_outcome("pool2", &req)
        .await
        .unwrap();
    assert!(outcome.created);
    assert_eq!(outcome.containers, vec![view.clone()]);
    assert_eq!(
        client.create_containers("pool2", &req).await.unwrap(),
        vec![view.clone()]
    );
    assert_eq!(
        client.list_containers("pool2").await.unwrap(),
        vec![view.clone()]
    );
    assert_eq!(client.get_container("pool2", "web-1").await.unwrap(), view);
    assert_eq!(
        client
            .reschedule_container("pool2", "web-1", true)
            .await
            .unwrap(),
        view
    );
    client
        .delete_container("pool2", "web-1", false)
        .await
        .unwrap();
    client
        .delete_container("pool2", "web-1", true)
        .await
        .unwrap();
    let err = client.get_container("pool2", "nope").await.unwrap_err();
    assert_eq!(err.code(), Some("not-found"));

    let seen = fake.seen();
    assert_eq!(
        seen[1].body,
        Some(
            json!({"name": "web", "image": "caas/app:1.0", "resources": {}, "restart": "always", "instances": 2})
        )
    );
    let reschedule = seen
        .iter()
        .find(|s| s.path.ends_with("/reschedule"))
        .unwrap();
    assert_eq!(reschedule.body, Some(json!({"force": true})));
    let deletes: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.query.as_str())
        .collect();
    assert_eq!(deletes, ["", "purge_data=true"]);
}

#[tokio::test]
async fn pool_calls_and_path_escaping() {
    let fake = fake(|s| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/prefix/v1/pools") => ok(
            201,
            json!({"name": "p1", "containers": 0, "nodes": 0, "token": "caas_abc"}),
        ),
        ("POST", "/prefix/v1/pools/p1/tokens") => ok(201, json!({"token": "caas_def"})),
        ("GET", "/prefix/v1/pools/p1") => {
            ok(200, json!({"name": "p1", "containers": 2, "nodes": 1}))
        }
        ("DELETE", "/prefix/v1/pools/p1") => (204, String::new()),
        _ => ok(404, json!({"code": "not-found", "message": s.path.clone()})),
    })
    .await;
    // A base URL with a path prefix (central behind a reverse proxy).
    let client = CentralClient::new(&format!("{}/prefix/", fake.url()), Some("t0k")).unwrap();
    let view = client
        .create_pool(&CreatePoolRequest {
            name: "p1".into(),
            ssh_keys: vec!["ssh-ed25519 AAA".into()],
        })
        .await
        .unwrap();
    assert_eq!(view.token.as_deref(), Some("caas_abc"));
    assert_eq!(client.create_pool_token("p1").await.unwrap(), "caas_def");
    assert_eq!(client.get_pool("p1").await.unwrap().containers, 2);
    client.delete_pool("p1").await.unwrap();
    // Names are path segments, never path syntax.
    let err = client.get_pool("../nodes").await.unwrap_err();
    assert_eq!(err.to_string(), "/prefix/v1/pools/..%2Fnodes");
    for name in ["", ".", ".."] {
        let err = client.delete_pool(name).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::InvalidName { name: n } if n == name),
            "{err:?}"
        );
        assert!(err.is_local());
    }
    assert_eq!(
        fake.seen()[0].body,
        Some(json!({"name": "p1", "ssh_keys": ["ssh-ed25519 AAA"]}))
    );
}

#[tokio::test]
async fn exec_deploy_and_ssh_keys_send_their_bodies() {
    let fake = fake(|s| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/v1/pools/pool2/containers/web-1/exec") => ok(
            200,
            json!({"name": "web-1", "exit_code": 3, "stdout": "out", "stderr": "err"}),
        ),
        ("POST", "/v1/pools/pool2/containers/web/deploy") => ok(
            200,
            json!([{"name": "web-1", "package_sha256": "ab", "start_script": "bin/start.sh",
                    "program": {"name": "app", "state": "RUNNING"}}]),
        ),
        ("PUT", "/v1/pools/pool2/ssh-keys") => ok(
            200,
            json!({"pool": "pool2", "ssh_keys": ["ssh-ed25519 AAA"], "containers_updated": 2}),
        ),
        _ => ok(404, json!({"code": "not-found", "message": "nope"})),
    })
    .await;
    let client = client(&fake);
    let request = ExecRequest {
        command: vec!["ls".into(), "-l".into()],
        user: Some("admin".into()),
        timeout_seconds: Some(5),
    };
    let result = client
        .exec_container("pool2", "web-1", &request)
        .await
        .unwrap();
    assert_eq!((result.exit_code, result.stdout.as_str()), (3, "out"));
    assert!(!result.timed_out);

    let package = vec![0x1f, 0x8b, 0, 1, 2];
    let results = client
        .deploy_container("pool2", "web", package.clone())
        .await
        .unwrap();
    assert_eq!(results[0].program.state, "RUNNING");

    let view = client
        .set_pool_ssh_keys("pool2", &["ssh-ed25519 AAA".to_string()])
        .await
        .unwrap();
    assert_eq!(view.containers_updated, 2);

    let seen = fake.seen();
    assert_eq!(
        seen[0].body,
        Some(json!({"command": ["ls", "-l"], "user": "admin", "timeout_seconds": 5}))
    );
    assert_eq!(seen[1].content_type.as_deref(), Some("application/gzip"));
    assert_eq!(seen[1].raw, package, "the package is sent as is");
    assert_eq!(seen[1].auth.as_deref(), Some("Bearer t0k"));
    assert_eq!(seen[2].body, Some(json!({"ssh_keys": ["ssh-ed25519 AAA"]})));
}

#[tokio::test]
async fn connection_refused_says_where_central_was_expected() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = CentralClient::new(&format!("http://{addr}"), None).unwrap();
    let err = client.list_pools().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Network {
                kind: NetworkKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_local());
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to central at http://{addr}/: ")),
        "{err}"
    );
}

#[test]
fn bad_urls_and_tokens_are_refused_locally() {
    for url in ["central:8080", "https://central", "ftp://x", "not a url"] {
        let err = CentralClient::new(url, None).unwrap_err();
        assert!(err.is_local(), "{url}: {err}");
        assert!(err.to_string().contains("CAAS_URL"), "{err}");
    }
    assert!(matches!(
        CentralClient::new("https://central", None),
        Err(ClientError::UnsupportedScheme { scheme, .. }) if scheme == "https"
    ));
    assert!(matches!(
        CentralClient::new("not a url", None),
        Err(ClientError::InvalidUrl { .. })
    ));
    let err = CentralClient::new("http://c", Some("bad\ntoken")).unwrap_err();
    assert!(matches!(err, ClientError::InvalidToken), "{err:?}");
    // Surrounding whitespace (a token read from a file) is not part of the token.
    assert!(CentralClient::new("http://c", Some(" tok\n")).is_ok());
}

/// A vxlan network with one endpoint, as central shows it.
fn network() -> NetworkView {
    serde_json::from_value(json!({
        "version": 1, "pool": "pool2", "name": "myvxlan", "driver": "vxlan",
        "subnet": "192.168.0.0/19", "gateway": "192.168.31.254", "vni": 4097,
        "created_at": 1_714_558_830,
        "endpoints": [{"version": 1, "ip": "192.168.31.3", "mac": "02:ca:c0:a8:1f:03",
                       "workload": "core", "node": "n1"}]
    }))
    .unwrap()
}

#[tokio::test]
async fn network_calls_use_the_documented_paths_and_bodies() {
    let view = network();
    let answer = view.clone();
    let fake = fake(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/v1/pools/pool2/networks") => match s.body.as_ref().and_then(|b| b.get("vni")) {
            Some(_) => ok(
                409,
                json!({"code": "vni-taken", "message": "VNI 7 belongs to network other"}),
            ),
            None => ok(201, &answer.spec),
        },
        ("GET", "/v1/pools/pool2/networks") => ok(200, vec![answer.clone()]),
        ("GET", "/v1/pools/pool2/networks/myvxlan") => ok(200, answer.clone()),
        ("DELETE", "/v1/pools/pool2/networks/myvxlan") => ok(
            409,
            json!({"code": "not-empty", "message": "network myvxlan has 1 endpoint"}),
        ),
        ("DELETE", "/v1/pools/pool2/networks/empty") => (204, String::new()),
        _ => ok(
            404,
            json!({"code": "not-found", "message": "no such network"}),
        ),
    })
    .await;
    let client = client(&fake);
    let mut req = CreateNetworkRequest {
        name: "myvxlan".into(),
        driver: "vxlan".into(),
        subnet: "192.168.0.0/19".into(),
        gateway: "192.168.31.254".into(),
        vni: None,
        vlan_id: None,
        arp_proxy: None,
        mac_nat: None,
    };
    assert_eq!(
        client.create_network("pool2", &req).await.unwrap(),
        view.spec
    );
    req.vni = Some(7);
    let err = client.create_network("pool2", &req).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(409), Some("vni-taken")));

    assert_eq!(
        client.list_networks("pool2").await.unwrap(),
        vec![view.clone()]
    );
    let one = client.get_network("pool2", "myvxlan").await.unwrap();
    assert_eq!(one.endpoints[0].workload, "core");
    assert_eq!(one, view);
    let err = client.get_network("pool2", "nope").await.unwrap_err();
    assert_eq!(err.code(), Some("not-found"));

    let err = client.delete_network("pool2", "myvxlan").await.unwrap_err();
    assert_eq!(err.code(), Some("not-empty"));
    client.delete_network("pool2", "empty").await.unwrap();
    let err = client.delete_network("pool2", "..").await.unwrap_err();
    assert!(err.is_local(), "{err:?}");

    let seen = fake.seen();
    assert_eq!(
        seen[0].body,
        Some(
            json!({"name": "myvxlan", "driver": "vxlan", "subnet": "192.168.0.0/19",
                    "gateway": "192.168.31.254"})
        ),
        "no vni: central allocates one"
    );
    assert_eq!(seen[1].body.as_ref().unwrap()["vni"], 7);
    assert_eq!(seen.len(), 7, "the refused name was never sent");
}

#[tokio::test]
async fn container_create_sends_its_network_attachments() {
    let fake = fake(|_| ok(201, vec![container()])).await;
    let req = CreateContainerRequest {
        name: "core".into(),
        image: "caas/app:1.0".into(),
        networks: vec![
            NetworkAttachment {
                network: "myvxlan".into(),
                service: None,
                ip: Some("192.168.31.3".into()),
            },
            NetworkAttachment {
                network: "backend".into(),
                service: Some("web".into()),
                ip: None,
            },
        ],
        ..Default::default()
    };
    client(&fake)
        .create_containers("pool2", &req)
        .await
        .unwrap();
    assert_eq!(
        fake.seen()[0].body.as_ref().unwrap()["networks"],
        json!([{"network": "myvxlan", "ip": "192.168.31.3"},
               {"network": "backend", "service": "web"}])
    );
}
