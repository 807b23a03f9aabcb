//! Whole command lines against a fake central (`caas_client::fake`): what is sent, what is
//! printed, and the error text, hint and exit code of each kind of failure.

use caas_client::fake::{json as ok, FakeCentral, Seen};
use clap::Parser;
use serde_json::{json, Value};

use crate::render::error_text;
use crate::render::tests::{containers, networks, nodes};
use crate::{Cli, CliError};

async fn fake(handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> FakeCentral {
    FakeCentral::start(handler).await.unwrap()
}

/// Runs a whole command line against the fake central; returns stdout or the error.
async fn caas(fake: &FakeCentral, args: &[&str]) -> Result<String, CliError> {
    let mut cli = Cli::try_parse_from(
        ["caas", "--url", fake.url(), "--token", "t0k"]
            .into_iter()
            .chain(args.iter().copied()),
    )
    .unwrap();
    if !args.iter().any(|a| a.starts_with("--pool")) {
        cli.pool = None;
    }
    let mut out = Vec::new();
    crate::run(&cli, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn commands_print_tables_json_and_tokens() {
    let fake = fake(|s| match (s.method.as_str(), s.path.as_str()) {
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
    let fake = fake(|_| ok(500, json!({"code": "x", "message": "reached"}))).await;
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
    assert!(err.to_string().contains("needs a network"), "{err}");
    for args in [
        &["network", "ls"][..],
        &[
            "--pool=p",
            "network",
            "create",
            "n",
            "-l",
            "Subnet=10.0.0.0/24",
        ],
        &[
            "--pool=p",
            "network",
            "create",
            "n",
            "-l",
            "Net=10.0.0.0/24",
        ],
    ] {
        let err = caas(&fake, args).await.unwrap_err();
        assert_eq!(err.exit_code(), 64, "{args:?}: {err}");
    }
    assert!(fake.seen().is_empty());
}

#[tokio::test]
async fn central_errors_keep_their_field_hint_and_exit_code() {
    let fake = fake(|s| match s.path.as_str() {
        "/v1/nodes" => ok(
            401,
            json!({"code": "unauthorized", "message": "missing or unknown token"}),
        ),
        "/v1/pools/p/containers" => ok(
            400,
            json!({"code": "invalid", "message": "must be at least 6Mi", "field": "resources.memory"}),
        ),
        _ => (404, String::new()),
    })
    .await;
    let err = caas(&fake, &["node", "ls"]).await.unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert_eq!(err.status(), Some(401));
    assert!(err.hint().unwrap().contains("CAAS_TOKEN"), "{err:?}");

    let err = caas(
        &fake,
        &["--pool=p", "container", "create", "web", "--image", "i"],
    )
    .await
    .unwrap_err();
    assert_eq!(
        error_text(&err),
        "caas: must be at least 6Mi (field: resources.memory)"
    );
    assert_eq!(err.exit_code(), 1);

    let err = caas(&fake, &["node", "inspect", "n1"]).await.unwrap_err();
    assert_eq!(
        error_text(&err).lines().next(),
        Some("caas: HTTP 404 Not Found")
    );
    assert!(
        err.hint()
            .unwrap()
            .contains("does not look like caas central"),
        "a 404 without central's error body is someone else's"
    );
}

#[tokio::test]
async fn unreachable_central_and_bad_urls() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cli =
        Cli::try_parse_from(["caas", "--url", &format!("http://{addr}"), "node", "ls"]).unwrap();
    let err = crate::run(&cli, &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), 1);
    let hint = err.hint().unwrap();
    assert!(
        hint.contains(&format!("http://{addr}/")) && hint.contains("CAAS_URL"),
        "{hint}"
    );

    for url in ["central:8080", "https://central"] {
        let cli = Cli::try_parse_from(["caas", "--url", url, "node", "ls"]).unwrap();
        let err = crate::run(&cli, &mut Vec::new()).await.unwrap_err();
        assert_eq!(err.exit_code(), 64, "{url}: {err}");
        assert!(err.hint().is_none());
        assert!(error_text(&err).contains("CAAS_URL"), "{err}");
    }
    let cli = Cli::try_parse_from([
        "caas",
        "--token",
        "bad\ntoken",
        "--pool=p",
        "container",
        "ls",
    ])
    .unwrap();
    let err = crate::run(&cli, &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), 64);
}

#[tokio::test]
async fn network_commands_send_and_print() {
    let fake = fake(|s| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/v1/pools/pool2/networks") => {
            let body = s.body.clone().unwrap_or_default();
            let mut spec = json!({"version": 1, "pool": "pool2", "vni": 4097, "created_at": 1});
            for key in ["name", "driver", "subnet", "gateway"] {
                spec[key] = body[key].clone();
            }
            ok(201, spec)
        }
        ("GET", "/v1/pools/pool2/networks") => ok(200, networks()),
        ("GET", "/v1/pools/pool2/networks/myvxlan") => ok(200, &networks()[0]),
        ("DELETE", "/v1/pools/pool2/networks/back") => (204, String::new()),
        ("DELETE", "/v1/pools/pool2/networks/myvxlan") => ok(
            409,
            json!({"code": "not-empty", "message": "network myvxlan has 2 endpoints"}),
        ),
        ("POST", "/v1/pools/pool2/containers") => ok(
            409,
            json!({"code": "address-taken", "field": "networks[0].ip",
                   "message": "192.168.31.3 is used by web-1"}),
        ),
        _ => ok(404, json!({"code": "not-found", "message": "nope"})),
    })
    .await;
    let p = "--pool=pool2";

    let created = caas(
        &fake,
        &[
            p,
            "network",
            "create",
            "myvxlan",
            "-d",
            "vxlan",
            "-l",
            "Subnet=192.168.0.0/19",
            "-l",
            "Gateway=192.168.31.254",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        created,
        "network myvxlan created in pool pool2: vxlan 192.168.0.0/19, gateway 192.168.31.254, \
         VNI 4097\n"
    );
    let table = caas(&fake, &[p, "network", "ls"]).await.unwrap();
    assert!(table.starts_with("NAME      DRIVER"), "{table}");
    let list: Value = serde_json::from_str(
        &caas(&fake, &[p, "network", "list", "-o", "json"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(2), "an array for ls");
    let one: Value = serde_json::from_str(
        &caas(&fake, &[p, "network", "inspect", "myvxlan"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(one["vni"], 4097, "the spec is flattened into the view");
    assert_eq!(one["endpoints"][0]["workload"], "web-1");
    assert_eq!(
        caas(&fake, &[p, "network", "rm", "back"]).await.unwrap(),
        "network back removed\n"
    );
    let err = caas(&fake, &[p, "network", "remove", "myvxlan"])
        .await
        .unwrap_err();
    assert_eq!((err.exit_code(), err.code()), (1, Some("not-empty")));
    assert!(
        err.hint().unwrap().contains("caas network inspect"),
        "{err:?}"
    );

    let err = caas(
        &fake,
        &[
            p,
            "container",
            "create",
            "core",
            "--public-service=.myvxlan",
            "-l",
            "ip=192.168.31.3",
            "-l",
            "Hostname=core-1",
            "--image",
            "caas/app:1.0",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(
        error_text(&err),
        "caas: 192.168.31.3 is used by web-1 (field: networks[0].ip)\nhint: leave out -l Ip to \
         get the lowest free address, or pick one that `caas network inspect NETWORK` does not \
         list"
    );

    let seen = fake.seen();
    assert_eq!(
        seen[0].body,
        Some(
            json!({"name": "myvxlan", "driver": "vxlan", "subnet": "192.168.0.0/19",
                    "gateway": "192.168.31.254"})
        )
    );
    let create = seen.last().unwrap().body.clone().unwrap();
    assert_eq!(
        create["networks"],
        json!([{"network": "myvxlan", "ip": "192.168.31.3"}])
    );
    assert_eq!(create["hostname"], "core-1");
    assert!(
        create.get("labels").is_none(),
        "Ip and Hostname are no labels: {create}"
    );
}
