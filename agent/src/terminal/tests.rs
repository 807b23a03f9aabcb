//! The terminal endpoint against the fake engine, whose attached execs echo their input: the
//! protocol, the defaults, the refusals, the idle timeout, the session limit and back-pressure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use caas_api::{WorkloadKey, WorkloadStatus};
use warp::ws::Message;
use warp::{Filter, Reply};

use super::TerminalOptions;
use crate::control::ControlOptions;
use crate::runtime::fake::FakeRuntime;
use crate::runtime::{ContainerRuntime, CreateRequest};
use crate::view::AgentView;

const TOKEN: &str = "0123456789abcdef0123";
const PATH: &str = "/v1/containers/p1/web/terminal";

struct World {
    runtime: Arc<FakeRuntime>,
    view: AgentView,
    app: String,
    /// The agent's stop signal.
    stop: tokio_util::sync::CancellationToken,
}

impl World {
    /// A running app container of `p1/web` on `image`.
    async fn new(image: &str, labels: &[(&str, &str)]) -> Self {
        let runtime = Arc::new(FakeRuntime::default());
        runtime.add_image_with_labels(image, labels);
        let app = runtime
            .create(&CreateRequest {
                name: "caas.p1.web".into(),
                image: image.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        runtime.start(&app).await.unwrap();
        let view = AgentView::default();
        let status: WorkloadStatus = serde_json::from_value(serde_json::json!({
            "version": 1, "pool": "p1", "name": "web", "node": "n1", "state": "running",
            "generation": 1, "app_hash": "h", "containers": {"app": app}, "observed_at": 0
        }))
        .unwrap();
        view.write()
            .await
            .statuses
            .insert(WorkloadKey::new("p1", "web"), status);
        Self {
            runtime,
            view,
            app,
            stop: Default::default(),
        }
    }

    fn routes(
        &self,
        terminal: TerminalOptions,
    ) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone
    {
        crate::http::routes(
            self.view.clone(),
            self.runtime.clone(),
            "n1".into(),
            ControlOptions {
                token: Some(TOKEN.into()),
                max_unpacked: 1 << 20,
                terminal,
                stop: self.stop.clone(),
                tasks: Default::default(),
            },
        )
    }

    /// The exec id of the `n`th session (0-based), once it was started.
    async fn exec(&self, n: usize) -> String {
        wait("the exec to start", || {
            self.runtime.exec_ids().get(n).cloned()
        })
        .await
    }
}

fn options() -> TerminalOptions {
    TerminalOptions {
        idle_timeout: Duration::from_secs(60),
        max_sessions: 4,
    }
}

/// Polls `probe` (every 10 ms, 10 s at most).
async fn wait<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(value) = probe() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn connect<F>(routes: F) -> warp::test::WsClient
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply + Send,
{
    warp::test::ws()
        .path(PATH)
        .header("authorization", format!("Bearer {TOKEN}"))
        .handshake(routes)
        .await
        .expect("handshake")
}

async fn recv(client: &mut warp::test::WsClient) -> Message {
    tokio::time::timeout(Duration::from_secs(10), client.recv())
        .await
        .expect("a message within 10s")
        .expect("a message")
}

/// The next text frame as JSON.
async fn recv_json(client: &mut warp::test::WsClient) -> serde_json::Value {
    let message = recv(client).await;
    serde_json::from_str(message.to_str().expect("a text frame")).unwrap()
}

/// Binary frames until their bytes contain `wanted`.
async fn recv_output(client: &mut warp::test::WsClient, wanted: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(wanted) {
        let message = recv(client).await;
        assert!(
            message.is_binary(),
            "{message:?} while waiting for {wanted:?}"
        );
        seen.push_str(&String::from_utf8_lossy(message.as_bytes()));
    }
    seen
}

async fn start(client: &mut warp::test::WsClient, start: serde_json::Value) -> String {
    client
        .send_text(serde_json::json!({ "start": start }).to_string())
        .await;
    let started = recv_json(client).await;
    started["started"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("not started: {started}"))
        .to_string()
}

#[tokio::test]
async fn input_reaches_the_exec_output_the_client_resizes_and_the_exit_code_pass() {
    let w = World::new("img", &[]).await;
    let mut client = connect(w.routes(options())).await;
    let session = start(
        &mut client,
        serde_json::json!({"command": ["sh", "-i"], "cols": 100, "rows": 30}),
    )
    .await;
    let exec = w.exec(0).await;
    assert_eq!(session, exec);
    let (request, container, resizes) = w
        .runtime
        .with_exec(&exec, |e| {
            (e.request.clone(), e.container.clone(), e.resizes.clone())
        })
        .unwrap();
    assert_eq!(container, w.app);
    assert_eq!(request.command, ["sh", "-i"]);
    assert_eq!(request.user, None, "not rich: the image's user");
    assert!(request.tty && request.stdin);
    assert_eq!(request.env, ["TERM=xterm-256color"]);
    assert_eq!(resizes, [(100, 30)], "the initial size is set");

    client.send(Message::binary(&b"echo hi\r"[..])).await;
    recv_output(&mut client, "echo hi\r").await;

    client
        .send_text(r#"{"resize":{"cols":120,"rows":40}}"#)
        .await;
    wait("the resize", || {
        w.runtime
            .with_exec(&exec, |e| e.resizes.contains(&(120, 40)))
            .unwrap()
            .then_some(())
    })
    .await;

    w.runtime.finish_exec(&exec, 3);
    assert_eq!(
        recv_json(&mut client).await,
        serde_json::json!({"exit": {"code": 3}})
    );
    client.recv_closed().await.expect("closed after exit");
    assert!(!w.runtime.with_exec(&exec, |e| e.killed).unwrap());
}

#[tokio::test]
async fn rich_containers_default_to_admin_and_a_login_bash_others_to_sh() {
    let w = World::new("rich", &[("caas.image.contract", "sofa/1")]).await;
    w.runtime.put_file(&w.app, "/bin/bash", b"\x7fELF");
    let mut client = connect(w.routes(options())).await;
    start(&mut client, serde_json::json!({})).await;
    let request = w
        .runtime
        .with_exec(&w.exec(0).await, |e| e.request.clone())
        .unwrap();
    assert_eq!(request.command, ["/bin/bash", "-l"]);
    assert_eq!(request.user.as_deref(), Some("admin"));

    // A named user wins; without bash the shell is sh.
    let w = World::new("plain", &[]).await;
    let mut client = connect(w.routes(options())).await;
    start(
        &mut client,
        serde_json::json!({"user": "root", "tty": false}),
    )
    .await;
    let request = w
        .runtime
        .with_exec(&w.exec(0).await, |e| e.request.clone())
        .unwrap();
    assert_eq!(request.command, ["/bin/sh"]);
    assert_eq!(request.user.as_deref(), Some("root"));
    assert!(!request.tty);
}

#[tokio::test]
async fn bad_starts_and_missing_workloads_are_error_frames() {
    let w = World::new("img", &[]).await;
    let routes = w.routes(options());
    for (first, code, mentions) in [
        (Message::text(r#"{"start":{"cols":0}}"#), "invalid", "cols"),
        (
            Message::text(r#"{"start":{"user":"a b"}}"#),
            "invalid",
            "user",
        ),
        (
            Message::text(r#"{"start":{"command":[""]}}"#),
            "invalid",
            "command",
        ),
        (
            Message::text(r#"{"resize":{"cols":1,"rows":1}}"#),
            "invalid",
            "start",
        ),
        (Message::text("{"), "invalid", "start"),
        (Message::binary(&b"ls\r"[..]), "invalid", "text frame"),
    ] {
        let mut client = connect(routes.clone()).await;
        client.send(first.clone()).await;
        let error = recv_json(&mut client).await;
        assert_eq!(error["error"]["code"], code, "{first:?}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{first:?}: {message}");
        client.recv_closed().await.expect("closed after the error");
    }
    assert!(w.runtime.exec_ids().is_empty());

    // No such workload; a stopped app; an engine that is down.
    let mut client = warp::test::ws()
        .path("/v1/containers/p1/nope/terminal")
        .header("authorization", format!("Bearer {TOKEN}"))
        .handshake(routes.clone())
        .await
        .unwrap();
    client.send_text(r#"{"start":{}}"#).await;
    assert_eq!(recv_json(&mut client).await["error"]["code"], "not-found");
    w.runtime.kill("caas.p1.web");
    let mut client = connect(routes.clone()).await;
    client.send_text(r#"{"start":{}}"#).await;
    assert_eq!(recv_json(&mut client).await["error"]["code"], "not-found");
    w.runtime.set_down(true);
    let mut client = connect(routes.clone()).await;
    client.send_text(r#"{"start":{}}"#).await;
    assert_eq!(recv_json(&mut client).await["error"]["code"], "unavailable");
}

#[tokio::test]
async fn a_bad_message_during_a_session_ends_it() {
    let w = World::new("img", &[]).await;
    let mut client = connect(w.routes(options())).await;
    start(&mut client, serde_json::json!({})).await;
    client
        .send_text(r#"{"resize":{"cols":5000,"rows":40}}"#)
        .await;
    let error = recv_json(&mut client).await;
    assert_eq!(error["error"]["code"], "invalid");
    assert!(error["error"]["message"].as_str().unwrap().contains("cols"));
    let exec = w.exec(0).await;
    assert!(w.runtime.with_exec(&exec, |e| e.killed).unwrap());
}

#[tokio::test]
async fn an_idle_session_is_ended_and_its_exec_killed() {
    let w = World::new("img", &[]).await;
    let mut client = connect(w.routes(TerminalOptions {
        idle_timeout: Duration::from_millis(300),
        max_sessions: 4,
    }))
    .await;
    start(&mut client, serde_json::json!({})).await;
    let exec = w.exec(0).await;
    // Input keeps it alive.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        client.send(Message::binary(&b"x"[..])).await;
        recv_output(&mut client, "x").await;
    }
    assert!(w.runtime.with_exec(&exec, |e| e.running).unwrap());
    let error = recv_json(&mut client).await;
    assert_eq!(error["error"]["code"], "idle-timeout", "{error}");
    assert!(w.runtime.with_exec(&exec, |e| e.killed).unwrap());
    assert!(w.runtime.calls().contains(&format!("kill-exec {exec}")));
    client.recv_closed().await.expect("closed after the error");
}

#[tokio::test]
async fn a_client_that_goes_away_ends_the_session() {
    let w = World::new("img", &[]).await;
    let routes = w.routes(options());
    let mut client = connect(routes.clone()).await;
    start(&mut client, serde_json::json!({})).await;
    let exec = w.exec(0).await;
    assert!(metrics(&routes)
        .await
        .contains("caas_agent_terminal_sessions 1"));
    drop(client);
    wait("the exec to be killed", || {
        w.runtime
            .with_exec(&exec, |e| e.killed)
            .unwrap()
            .then_some(())
    })
    .await;
    for _ in 0..100 {
        if metrics(&routes)
            .await
            .contains("caas_agent_terminal_sessions 0")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the session is still counted:\n{}", metrics(&routes).await);
}

async fn metrics<F>(routes: &F) -> String
where
    F: Filter + 'static,
    F::Extract: Reply + Send,
{
    let reply = warp::test::request().path("/metrics").reply(routes).await;
    String::from_utf8_lossy(reply.body()).into_owned()
}

#[tokio::test]
async fn sessions_over_the_limit_are_busy() {
    let w = World::new("img", &[]).await;
    let routes = w.routes(TerminalOptions {
        idle_timeout: Duration::from_secs(60),
        max_sessions: 1,
    });
    let mut first = connect(routes.clone()).await;
    start(&mut first, serde_json::json!({})).await;
    let mut second = connect(routes.clone()).await;
    let error = recv_json(&mut second).await;
    assert_eq!(error["error"]["code"], "busy", "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_terminal_sessions"));
    w.runtime.finish_exec(&w.exec(0).await, 0);
    assert_eq!(recv_json(&mut first).await["exit"]["code"], 0);
    // The slot is free again.
    let mut third = connect(routes.clone()).await;
    for _ in 0..100 {
        third.send_text(r#"{"start":{}}"#).await;
        let reply = recv_json(&mut third).await;
        if reply.get("started").is_some() {
            return;
        }
        assert_eq!(reply["error"]["code"], "busy");
        third = connect(routes.clone()).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the slot was not freed");
}

#[tokio::test]
async fn the_token_is_checked_before_the_upgrade() {
    let w = World::new("img", &[]).await;
    let routes = w.routes(options());
    let upgrade = |token: Option<&str>| {
        let mut request = warp::test::request()
            .path(PATH)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request
    };
    for token in [None, Some("wrong-token-of-some-length")] {
        let reply = upgrade(token).reply(&routes).await;
        assert_eq!(reply.status(), 401, "{token:?}");
    }
    assert!(warp::test::ws()
        .path(PATH)
        .handshake(routes.clone())
        .await
        .is_err());
    // With the token but without the upgrade: 426, not a 500.
    let reply = warp::test::request()
        .path(PATH)
        .header("authorization", format!("Bearer {TOKEN}"))
        .reply(&routes)
        .await;
    assert_eq!(reply.status(), 426);
    assert!(w.runtime.exec_ids().is_empty());
}

/// A client that reads nothing holds the output up: pushes stop being taken once the socket's
/// buffers are full, instead of piling up in the agent.
#[tokio::test]
async fn a_client_that_does_not_read_holds_the_output_up() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

    let w = World::new("img", &[]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(w.routes(options())).incoming(listener).run());
    let mut request = format!("ws://{addr}{PATH}").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(tungstenite::Message::text(r#"{"start":{}}"#))
        .await
        .unwrap();
    let started = socket.next().await.unwrap().unwrap();
    assert!(
        started.to_text().unwrap().contains("started"),
        "{started:?}"
    );
    let exec = w.exec(0).await;

    const CHUNK: usize = 64 << 10;
    let mut pushed = 0usize;
    while pushed < 256 << 20 {
        let push = w.runtime.push_output(&exec, Bytes::from(vec![b'x'; CHUNK]));
        match tokio::time::timeout(Duration::from_secs(1), push).await {
            Ok(true) => pushed += CHUNK,
            Ok(false) => panic!("the exec's output went away"),
            Err(_) => break,
        }
    }
    // Socket buffers on both ends (a few MiB each on loopback) and one frame in flight.
    assert!(pushed < 32 << 20, "{} MiB were taken", pushed >> 20);

    // Reading again lets the output flow.
    let mut read = 0usize;
    while read < pushed {
        let message = socket.next().await.unwrap().unwrap();
        read += message.len();
    }
    assert!(tokio::time::timeout(
        Duration::from_secs(5),
        w.runtime.push_output(&exec, Bytes::from_static(b"more"))
    )
    .await
    .unwrap());
    drop(socket);
    wait("the exec to be killed", || {
        w.runtime
            .with_exec(&exec, |e| e.killed)
            .unwrap()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stopping_agent_ends_its_sessions() {
    let w = World::new("img", &[]).await;
    let mut client = connect(w.routes(options())).await;
    start(&mut client, serde_json::json!({})).await;
    let exec = w.exec(0).await;
    w.stop.cancel();
    let error = recv_json(&mut client).await;
    assert_eq!(error["error"]["code"], "unavailable", "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("stopping"));
    wait("the exec to be killed", || {
        w.runtime
            .with_exec(&exec, |e| e.killed)
            .unwrap()
            .then_some(())
    })
    .await;
}

/// A client that stops reading is ended by the idle timeout like a silent one: its exec is
/// killed and its slot freed, although the final frame cannot be delivered.
#[tokio::test]
async fn a_client_that_stops_reading_is_ended_by_the_idle_timeout() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

    let w = World::new("img", &[]).await;
    let routes = w.routes(TerminalOptions {
        idle_timeout: Duration::from_millis(500),
        max_sessions: 4,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes.clone()).incoming(listener).run());
    let mut request = format!("ws://{addr}{PATH}").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(tungstenite::Message::text(r#"{"start":{}}"#))
        .await
        .unwrap();
    let exec = w.exec(0).await;
    // Output the client never reads, until it is no longer taken.
    while tokio::time::timeout(
        Duration::from_millis(300),
        w.runtime
            .push_output(&exec, Bytes::from(vec![b'x'; 64 << 10])),
    )
    .await
    .is_ok_and(|taken| taken)
    {}
    wait("the exec to be killed", || {
        w.runtime
            .with_exec(&exec, |e| e.killed)
            .unwrap()
            .then_some(())
    })
    .await;
    for _ in 0..300 {
        if metrics(&routes)
            .await
            .contains("caas_agent_terminal_sessions 0")
        {
            drop(socket);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the session is still counted:\n{}", metrics(&routes).await);
}
