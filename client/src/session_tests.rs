//! The client's token, audit, log and terminal calls against a fake central: paths, queries,
//! bodies, streaming, the WebSocket session and how refusals come back.

use std::time::{Duration, Instant};

use caas_api::terminal::ClientMessage;
use serde_json::json;

use crate::fake::{json as ok, FakeCentral, Reply, TerminalFrame};
use crate::*;

fn client(fake: &FakeCentral) -> CentralClient {
    CentralClient::new(fake.url(), Some("t0k")).unwrap()
}

fn audit_entry() -> serde_json::Value {
    json!({
        "id": "1714558830000-ab12", "pool": "pool2", "container": "web-1", "kind": "terminal",
        "token_id": "tok-0123456789ab", "role": "developer", "via": "api", "user": "admin",
        "command": ["bash", "-l"], "started_at": 1_714_558_830_000u64,
        "ended_at": 1_714_558_895_500u64, "exit_code": 0, "ended_by": "exit",
        "input": ["ls -l", "exit"]
    })
}

#[tokio::test]
async fn token_calls_send_the_role_and_decode_the_answers() {
    let fake = FakeCentral::start(|s| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/v1/pools/pool2/tokens") => ok(
            201,
            json!({"token": "caas_xyz", "id": "tok-0123456789ab",
                   "role": s.body.as_ref().map_or(json!("ops"), |b| b["role"].clone())}),
        ),
        ("GET", "/v1/pools/pool2/tokens") => ok(
            200,
            json!([{"id": "tok-0123456789ab", "role": "developer", "created_at": 1_714_558_830,
                    "label": "alice"},
                   {"id": "tok-ffffffffffff", "role": "ops"}]),
        ),
        ("DELETE", "/v1/pools/pool2/tokens/tok-0123456789ab") => (204, String::new()),
        _ => ok(
            404,
            json!({"code": "not-found", "message": "no token tok-gone"}),
        ),
    })
    .await
    .unwrap();
    let client = client(&fake);
    let answer = client
        .create_token(
            "pool2",
            &CreateTokenRequest {
                role: Role::Developer,
                label: Some("alice".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (answer.token.as_str(), answer.id.as_str(), answer.role),
        ("caas_xyz", "tok-0123456789ab", Role::Developer)
    );
    let tokens = client.list_tokens("pool2").await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].label.as_deref(), Some("alice"));
    assert_eq!((tokens[1].role, tokens[1].created_at), (Role::Ops, None));
    client
        .delete_token("pool2", "tok-0123456789ab")
        .await
        .unwrap();
    let err = client.delete_token("pool2", "tok-gone").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("not-found")));

    let seen = fake.seen();
    assert_eq!(
        seen[0].body,
        Some(json!({"role": "developer", "label": "alice"}))
    );
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer t0k"));
}

#[tokio::test]
async fn audit_asks_only_for_what_was_given() {
    let fake = FakeCentral::start(|s| match s.path.as_str() {
        "/v1/pools/pool2/audit" => ok(200, json!([audit_entry()])),
        _ => ok(403, json!({"code": "forbidden", "message": "needs ops"})),
    })
    .await
    .unwrap();
    let client = client(&fake);
    let entries = client.audit("pool2", &AuditQuery::default()).await.unwrap();
    assert_eq!(entries[0].input, ["ls -l", "exit"]);
    assert_eq!(entries[0].kind, SessionKind::Terminal);
    let query = AuditQuery {
        container: Some("web-1".into()),
        limit: Some(5),
    };
    client.audit("pool2", &query).await.unwrap();
    let err = client.audit("other", &query).await.unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));
    let queries: Vec<String> = fake.seen().into_iter().map(|s| s.query).collect();
    assert_eq!(
        queries,
        ["", "container=web-1&limit=5", "container=web-1&limit=5"]
    );
}

#[tokio::test]
async fn logs_stream_chunk_by_chunk_and_errors_are_api_errors() {
    let pause = Duration::from_millis(300);
    let fake = FakeCentral::start_with(move |s| match s.path.as_str() {
        "/v1/pools/pool2/containers/web-1/logs" => Reply::Chunks {
            status: 200,
            chunks: vec!["line 1\n".into(), "line 2\n".into()],
            pause,
        },
        "/v1/pools/pool2/containers/web-1/log-files" => ok(
            200,
            json!([{"name": "app.log", "size": 1234}, {"name": "gc.log", "size": 0}]),
        )
        .into(),
        _ => ok(
            404,
            json!({"code": "not-found", "message": "no container web-9"}),
        )
        .into(),
    })
    .await
    .unwrap();
    let client = client(&fake);
    let request = LogsRequest {
        tail: Some(100),
        follow: true,
        file: Some("app.log".into()),
    };
    let mut stream = client
        .container_logs("pool2", "web-1", &request)
        .await
        .unwrap();
    let begun = Instant::now();
    let first = stream.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"line 1\n");
    assert!(
        begun.elapsed() < pause,
        "the first chunk comes before the second is sent"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = stream.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"line 2\n");

    let files = client.list_log_files("pool2", "web-1").await.unwrap();
    assert_eq!(
        files,
        [
            LogFile {
                name: "app.log".into(),
                size: 1234
            },
            LogFile {
                name: "gc.log".into(),
                size: 0
            }
        ]
    );
    let err = client
        .container_logs("pool2", "web-9", &LogsRequest::default())
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("not-found")));
    assert_eq!(err.to_string(), "no container web-9");

    let seen = fake.seen();
    assert_eq!(seen[0].query, "tail=100&follow=true&file=app.log");
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer t0k"));
    assert_eq!(seen[2].query, "follow=false");
}

#[tokio::test]
async fn terminal_sends_start_input_and_resize_and_receives_the_exit() {
    let fake = FakeCentral::start_with(|s| match s.path.as_str() {
        "/v1/pools/pool2/containers/web-1/terminal" => Reply::Terminal,
        _ => ok(
            404,
            json!({"code": "not-found", "message": "no such container"}),
        )
        .into(),
    })
    .await
    .unwrap();
    let start = TerminalStart {
        command: vec!["bash".into()],
        user: Some("admin".into()),
        tty: true,
        cols: 120,
        rows: 40,
    };
    let mut session = client(&fake)
        .terminal("pool2", "web-1", &start)
        .await
        .unwrap();
    assert_eq!(
        session.next().await.unwrap(),
        Some(TerminalEvent::Started {
            session: "fake-session".into()
        })
    );
    session.resize(100, 30).await.unwrap();
    session.input(b"ls\r").await.unwrap();
    let (mut sender, mut receiver) = session.split();
    assert_eq!(
        receiver.next().await.unwrap(),
        Some(TerminalEvent::Output(bytes::Bytes::from_static(b"ls\r")))
    );
    sender.input(b"exit 7\n").await.unwrap();
    let mut events = Vec::new();
    while let Some(event) = receiver.next().await.unwrap() {
        events.push(event);
    }
    assert_eq!(
        events,
        [
            TerminalEvent::Output(bytes::Bytes::from_static(b"exit 7\n")),
            TerminalEvent::Exit { code: 7 }
        ]
    );
    assert_eq!(
        fake.terminal_frames(),
        [
            TerminalFrame::Message(ClientMessage::Start(start)),
            TerminalFrame::Message(ClientMessage::Resize {
                cols: 100,
                rows: 30
            }),
            TerminalFrame::Input(b"ls\r".to_vec()),
            TerminalFrame::Input(b"exit 7\n".to_vec()),
        ]
    );
    let seen = fake.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer t0k"));
    assert_eq!(seen[0].query, "", "the token is never in the URL");
}

#[tokio::test]
async fn terminal_errors_in_band_and_refused_upgrades() {
    let fake = FakeCentral::start_with(|s| match s.path.as_str() {
        "/v1/pools/pool2/containers/web-1/terminal" => Reply::Terminal,
        "/v1/pools/pool2/containers/db-1/terminal" => ok(
            403,
            json!({"code": "forbidden", "message": "developer tokens may only be admin"}),
        )
        .into(),
        "/v1/pools/pool2/containers/plain/terminal" => (200, "<html>hi</html>".into()).into(),
        _ => (404, String::new()).into(),
    })
    .await
    .unwrap();
    let client = client(&fake);
    let mut session = client
        .terminal("pool2", "web-1", &TerminalStart::default())
        .await
        .unwrap();
    session.input(b"error idle-timeout\r").await.unwrap();
    let mut last = None;
    while let Some(event) = session.next().await.unwrap() {
        last = Some(event);
    }
    assert_eq!(
        last,
        Some(TerminalEvent::Error {
            code: "idle-timeout".into(),
            message: "fake error idle-timeout".into()
        })
    );

    let err = client
        .terminal("pool2", "db-1", &TerminalStart::default())
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(403), Some("forbidden")));
    assert_eq!(err.to_string(), "developer tokens may only be admin");
    assert!(err.from_central());

    let err = client
        .terminal("pool2", "gone", &TerminalStart::default())
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("http-404")));
    assert!(!err.from_central());

    let err = client
        .terminal("pool2", "plain", &TerminalStart::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Protocol { status: 200, .. }),
        "{err:?}"
    );

    let err = client
        .terminal("pool2", "..", &TerminalStart::default())
        .await
        .unwrap_err();
    assert!(err.is_local(), "{err:?}");
}

#[tokio::test]
async fn terminal_to_nobody_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = CentralClient::new(&format!("http://{addr}"), None).unwrap();
    let err = client
        .terminal("p", "c", &TerminalStart::default())
        .await
        .unwrap_err();
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
}
