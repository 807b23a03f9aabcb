//! The client against a tiny fake central (warp): paths, auth header, bodies, status codes and
//! error decoding. Also runs whole commands through `commands::run`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use caas_api::central::{ContainerView, CreateContainerRequest, CreatePoolRequest};
use clap::Parser;
use serde_json::{json, Value};
use warp::Filter;

use super::*;
use crate::cli::render::tests::{containers, nodes};
use crate::cli::Cli;

/// One request as the fake central saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    auth: Option<String>,
    body: Option<Value>,
}

type Handler = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

struct FakeCentral {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeCentral {
    /// Serves `handler`'s answers on a free port for the rest of the test.
    async fn start(handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Self {
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let routes = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      query: String,
                      auth: Option<String>,
                      body: warp::hyper::body::Bytes| {
                    let seen = Seen {
                        method: method.to_string(),
                        path: path.as_str().to_string(),
                        query,
                        auth,
                        body: serde_json::from_slice(&body).ok(),
                    };
                    let (status, body) = handler(&seen);
                    log.lock().unwrap().push(seen);
                    warp::http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(body)
                        .unwrap()
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        Self {
            url: format!("http://{addr}"),
            seen,
        }
    }

    fn client(&self) -> CentralClient {
        CentralClient::new(&self.url, Some("t0k")).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn ok(status: u16, value: impl serde::Serialize) -> (u16, String) {
    (status, serde_json::to_string(&value).unwrap())
}

#[tokio::test]
async fn sends_bearer_token_and_decodes_lists() {
    let fake = FakeCentral::start(|s| match s.auth.as_deref() {
        Some("Bearer t0k") => ok(200, nodes()),
        _ => ok(
            401,
            json!({"code": "unauthorized", "message": "missing or unknown token"}),
        ),
    })
    .await;
    assert_eq!(fake.client().list_nodes().await.unwrap(), nodes());

    let anonymous = CentralClient::new(&fake.url, None).unwrap();
    let err = anonymous.list_nodes().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some("unauthorized"));
    assert_eq!(err.to_string(), "missing or unknown token");
    assert!(err.hint().unwrap().contains("CAAS_TOKEN"));

    let seen = fake.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/v1/nodes");
    assert_eq!(seen[1].auth, None);
}

#[tokio::test]
async fn error_bodies_are_decoded_with_their_field() {
    let fake = FakeCentral::start(|_| {
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
    let err = fake
        .client()
        .create_containers("p1", &req)
        .await
        .unwrap_err();
    match &err {
        CliError::Api { status, body, .. } => {
            assert_eq!(*status, 400);
            assert_eq!(body.field.as_deref(), Some("resources.memory"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        crate::cli::render::error_text(&err),
        "caas: must be at least 6Mi (field: resources.memory)"
    );
}

#[tokio::test]
async fn non_json_errors_and_answers_are_reported_not_misread() {
    let fake = FakeCentral::start(|s| match s.path.as_str() {
        "/v1/nodes" => (502, "<html>Bad Gateway</html>".into()),
        "/v1/pools" => (200, "<html>login</html>".into()),
        _ => (404, String::new()),
    })
    .await;
    let client = fake.client();

    let err = client.list_nodes().await.unwrap_err();
    assert_eq!(err.code(), Some("http-502"));
    assert_eq!(
        err.to_string(),
        "HTTP 502 Bad Gateway: <html>Bad Gateway</html>"
    );

    let err = client.list_pools().await.unwrap_err();
    assert!(
        matches!(err, CliError::Protocol { status: 200, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("<html>login</html>"), "{err}");

    let err = client.get_node("n1").await.unwrap_err();
    assert_eq!(err.to_string(), "HTTP 404 Not Found");
    assert!(err
        .hint()
        .unwrap()
        .contains("does not look like caas central"));
}

#[tokio::test]
async fn container_calls_use_the_documented_paths() {
    let view: ContainerView = containers().remove(1);
    let answer = view.clone();
    let fake = FakeCentral::start(move |s| match (s.method.as_str(), s.path.as_str()) {
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
    let client = fake.client();
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
    let fake = FakeCentral::start(|s| match (s.method.as_str(), s.path.as_str()) {
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
    let client = CentralClient::new(&format!("{}/prefix/", fake.url), Some("t0k")).unwrap();
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
        assert_eq!(err.exit_code(), 64, "{name:?}");
    }
    assert_eq!(
        fake.seen()[0].body,
        Some(json!({"name": "p1", "ssh_keys": ["ssh-ed25519 AAA"]}))
    );
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
            CliError::Network {
                kind: NetworkKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 1);
    let hint = err.hint().unwrap();
    assert!(
        hint.contains(&format!("http://{addr}/")) && hint.contains("CAAS_URL"),
        "{hint}"
    );
}

#[test]
fn bad_urls_and_tokens_are_refused_locally() {
    for url in ["central:8080", "https://central", "ftp://x", "not a url"] {
        let err = CentralClient::new(url, None).unwrap_err();
        assert_eq!(err.exit_code(), 64, "{url}: {err}");
        assert!(err.to_string().contains("CAAS_URL"), "{err}");
    }
    let err = CentralClient::new("http://c", Some("bad\ntoken")).unwrap_err();
    assert_eq!(err.exit_code(), 64);
    // Surrounding whitespace (a token read from a file) is not part of the token.
    assert!(CentralClient::new("http://c", Some(" tok\n")).is_ok());
}

/// Runs a whole command line against the fake central; returns stdout or the error.
async fn caas(fake: &FakeCentral, args: &[&str]) -> Result<String, CliError> {
    let mut cli = Cli::try_parse_from(
        ["caas", "--url", &fake.url, "--token", "t0k"]
            .into_iter()
            .chain(args.iter().copied()),
    )
    .unwrap();
    if !args.iter().any(|a| a.starts_with("--pool")) {
        cli.pool = None;
    }
    let mut out = Vec::new();
    crate::cli::run(&cli, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn commands_print_tables_json_and_tokens() {
    let fake = FakeCentral::start(|s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/v1/nodes") => ok(200, nodes()),
        ("GET", "/v1/nodes/n1") => ok(200, &nodes()[1]),
        ("GET", "/v1/pools/pool2/containers") => ok(200, containers()),
        ("POST", "/v1/pools/pool2/containers") => ok(201, &containers()[1..2]),
        ("POST", "/v1/pools") => ok(
            201,
            json!({"name": "p1", "containers": 0, "nodes": 0, "token": "caas_abc"}),
        ),
        ("DELETE", _) => (204, String::new()),
        _ => ok(404, json!({"code": "not-found", "message": "nope"})),
    })
    .await;

    let table = caas(&fake, &["node", "ls"]).await.unwrap();
    assert!(table.starts_with("ID   POOL"), "{table}");
    let list: Value =
        serde_json::from_str(&caas(&fake, &["node", "ls", "-o", "json"]).await.unwrap()).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(2), "an array for ls");
    let one: Value =
        serde_json::from_str(&caas(&fake, &["node", "inspect", "n1"]).await.unwrap()).unwrap();
    assert_eq!(one["id"], "n1", "an object for inspect");

    let list: Value = serde_json::from_str(
        &caas(&fake, &["--pool=pool2", "-o", "json", "container", "ls"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(3));

    let created = caas(
        &fake,
        &[
            "--pool=pool2",
            "container",
            "create",
            "web",
            "--image",
            "caas/app:1.0",
        ],
    )
    .await
    .unwrap();
    assert!(
        created.starts_with("created 1 container in pool pool2\nNAME"),
        "{created}"
    );

    let pool = caas(&fake, &["pool", "create", "p1"]).await.unwrap();
    assert!(
        pool.contains("token: caas_abc\n") && pool.contains("shown only once"),
        "{pool}"
    );
    let removed = caas(
        &fake,
        &["--pool=pool2", "container", "rm", "web-1", "--purge-data"],
    )
    .await
    .unwrap();
    assert_eq!(removed, "container web-1 removed with its data\n");
    let quiet = caas(&fake, &["-o", "json", "pool", "rm", "p1"])
        .await
        .unwrap();
    assert_eq!(quiet, "", "json mode prints nothing for a delete");
}

#[tokio::test]
async fn local_mistakes_send_nothing() {
    let fake = FakeCentral::start(|_| ok(500, json!({"code": "x", "message": "reached"}))).await;
    let err = caas(&fake, &["container", "ls"]).await.unwrap_err();
    assert_eq!(err.exit_code(), 64);
    let err = caas(
        &fake,
        &[
            "--pool=p",
            "container",
            "create",
            "web",
            "--image",
            "i",
            "-e",
            "FOO",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 64);
    let err = caas(
        &fake,
        &[
            "--pool=p",
            "container",
            "create",
            "web",
            "--image",
            "i",
            "-l",
            "Ip=10.0.0.3",
        ],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not supported yet"), "{err}");
    assert!(fake.seen().is_empty());
}
