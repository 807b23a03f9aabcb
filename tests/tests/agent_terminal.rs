//! End-to-end: the agent's terminal WebSocket and streamed logs against a real `caas-agent` in
//! its node namespace, real Docker and real workloads (busybox, and a rich sofa-base one with
//! bash and admin). A shell runs, is resized and reports its exit code; a closed socket or an
//! idle session leaves no process of the session behind; nobody without the token gets an
//! upgrade; followed logs see what is written after the request started, and the tail of a
//! followed file dies with the request.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use caas_api::WorkloadState;
use caas_tests::fixture::{NodeFixture, AGENT_PORT};
use caas_tests::netns::node_ip;
use caas_tests::wait::until;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};
use tokio_tungstenite::WebSocketStream;

const CONVERGE: Duration = Duration::from_secs(60);
/// The longest any single frame or chunk is waited for.
const FRAME: Duration = Duration::from_secs(30);

type Socket = WebSocketStream<TcpStream>;

fn app_name(f: &NodeFixture, name: &str) -> String {
    format!("caas-{}.{}.{name}", f.node_id, f.pool)
}

/// Assigns `spec` and waits until it runs.
async fn run(f: &NodeFixture, spec: &caas_api::WorkloadSpec) {
    f.assign(spec).await.unwrap();
    f.wait_status(&spec.name, "the workload running", CONVERGE, |s| {
        s.state == WorkloadState::Running
    })
    .await
    .unwrap();
}

/// A TCP connection to the agent, made inside the node namespace (where the agent listens)
/// and then driven from the test's runtime.
async fn connect(f: &NodeFixture) -> TcpStream {
    let addr = SocketAddr::new(IpAddr::V4(node_ip(1)), AGENT_PORT);
    let stream = f
        .node_ns
        .run(async move { std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) })
        .await
        .unwrap()
        .unwrap();
    stream.set_nonblocking(true).unwrap();
    TcpStream::from_std(stream).unwrap()
}

/// Opens the terminal of workload `name`, sending `token` as the bearer token.
async fn open_terminal(
    f: &NodeFixture,
    name: &str,
    token: Option<&str>,
) -> Result<Socket, tungstenite::Error> {
    let url = format!(
        "ws://{}:{AGENT_PORT}/v1/containers/{}/{name}/terminal",
        node_ip(1),
        f.pool
    );
    let mut request = url.into_client_request()?;
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (socket, _) = tokio_tungstenite::client_async(request, connect(f).await).await?;
    Ok(socket)
}

async fn next(socket: &mut Socket) -> Option<Message> {
    match tokio::time::timeout(FRAME, socket.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(Some(Err(_)) | None) => None,
        Err(_) => panic!("no frame within {FRAME:?}"),
    }
}

/// Starts a session and returns its id.
async fn start(socket: &mut Socket, start: serde_json::Value) -> String {
    let text = serde_json::json!({ "start": start }).to_string();
    socket.send(Message::text(text)).await.unwrap();
    let reply = control(socket).await;
    reply["started"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("the session did not start: {reply}"))
        .to_string()
}

/// The next text frame (output before it is skipped).
async fn control(socket: &mut Socket) -> serde_json::Value {
    loop {
        match next(socket).await {
            Some(Message::Text(text)) => return serde_json::from_str(&text).unwrap(),
            Some(Message::Binary(_) | Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("the socket ended without a text frame: {other:?}"),
        }
    }
}

async fn input(socket: &mut Socket, keys: &str) {
    socket
        .send(Message::binary(keys.as_bytes().to_vec()))
        .await
        .unwrap();
}

/// Reads output until it holds `wanted`; returns all of it.
async fn output_until(socket: &mut Socket, wanted: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(wanted) {
        match next(socket).await {
            Some(Message::Binary(bytes)) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Some(Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("{other:?} while waiting for {wanted:?} in output {seen:?}"),
        }
    }
    seen
}

/// Output until the final text frame; returns both.
async fn output_and_end(socket: &mut Socket) -> (String, serde_json::Value) {
    let mut seen = String::new();
    loop {
        match next(socket).await {
            Some(Message::Binary(bytes)) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Some(Message::Text(text)) => return (seen, serde_json::from_str(&text).unwrap()),
            Some(Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("{other:?} before the final frame; output {seen:?}"),
        }
    }
}

/// After the final frame the server closes.
async fn assert_closed(socket: &mut Socket) {
    match next(socket).await {
        None | Some(Message::Close(_)) => {}
        other => panic!("expected the close, got {other:?}"),
    }
}

/// The processes of a container as `docker top` (the host's view) lists them: (host pid, args).
fn top(container: &str) -> Vec<(i64, String)> {
    let out = std::process::Command::new("docker")
        .args(["top", container, "-eo", "pid,args"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (pid, args) = l.trim().split_once(' ')?;
            Some((pid.parse().ok()?, args.trim().to_string()))
        })
        .collect()
}

/// Host pids of the container's processes whose command line is `args`.
fn pids_of(container: &str, args: &str) -> Vec<i64> {
    top(container)
        .into_iter()
        .filter(|(_, a)| a == args)
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether host process `pid` still runs `args` (a pid may be reused by something else).
fn runs(pid: i64, args: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == args)
        .unwrap_or(false)
}

/// Waits until none of `commands` runs in the container (by `docker top` and by `/proc` for
/// the host pids seen before).
async fn wait_gone(container: &str, commands: &[&str], pids: &[(i64, &str)]) {
    until("the session's processes to be gone", CONVERGE, || async {
        let left: Vec<(i64, String)> = top(container)
            .into_iter()
            .filter(|(_, a)| commands.contains(&a.as_str()))
            .collect();
        let alive: Vec<i64> = pids
            .iter()
            .filter(|(pid, args)| runs(*pid, args))
            .map(|(pid, _)| *pid)
            .collect();
        if left.is_empty() && alive.is_empty() {
            Ok(Some(()))
        } else {
            anyhow::bail!("still there: {left:?}, host pids {alive:?}")
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_runs_resizes_and_exits_with_its_code_and_needs_the_token() {
    let f = NodeFixture::start("term", "").await.unwrap();
    run(&f, &f.spec("sh1", "exec sleep 3600")).await;

    // Nobody without the token gets an upgrade; a plain GET with it is told to upgrade.
    for token in [None, Some("not-the-agent-token-at-all")] {
        match open_terminal(&f, "sh1", token).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{token:?}")
            }
            other => panic!("{token:?}: expected 401 before the upgrade, got {other:?}"),
        }
    }
    let (status, body) = f
        .agent_get(&format!("/v1/containers/{}/sh1/terminal", f.pool))
        .await
        .unwrap();
    assert_eq!(status, 426, "{body}");

    // busybox has no bash: the default is /bin/sh, as the image's user (root).
    let mut socket = open_terminal(&f, "sh1", Some(&f.agent_token))
        .await
        .unwrap();
    start(&mut socket, serde_json::json!({"cols": 80, "rows": 24})).await;
    input(&mut socket, "stty size\r").await;
    output_until(&mut socket, "24 80").await;

    socket
        .send(Message::text(r#"{"resize":{"cols":132,"rows":43}}"#))
        .await
        .unwrap();
    input(&mut socket, "stty size\r").await;
    output_until(&mut socket, "43 132").await;

    input(&mut socket, "echo hi-$((1+2)); exit 3\r").await;
    let (out, end) = output_and_end(&mut socket).await;
    assert!(out.contains("hi-3"), "{out:?}");
    assert_eq!(end, serde_json::json!({"exit": {"code": 3}}));
    assert_closed(&mut socket).await;

    // An invalid start names the field; a workload that is not there is not-found.
    let mut socket = open_terminal(&f, "sh1", Some(&f.agent_token))
        .await
        .unwrap();
    socket
        .send(Message::text(r#"{"start":{"rows":0}}"#))
        .await
        .unwrap();
    let error = control(&mut socket).await;
    assert_eq!(error["error"]["code"], "invalid", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("rows"));
    let mut socket = open_terminal(&f, "nope", Some(&f.agent_token))
        .await
        .unwrap();
    socket.send(Message::text(r#"{"start":{}}"#)).await.unwrap();
    assert_eq!(control(&mut socket).await["error"]["code"], "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_socket_or_an_idle_session_leaves_no_process_behind() {
    let f = NodeFixture::start("termkill", "terminal_idle_timeout_secs = 5\n")
        .await
        .unwrap();
    run(&f, &f.spec("sh2", "exec sleep 3600")).await;
    let app = app_name(&f, "sh2");

    // A background job and a foreground command, then the client just goes away.
    let mut socket = open_terminal(&f, "sh2", Some(&f.agent_token))
        .await
        .unwrap();
    start(&mut socket, serde_json::json!({"command": ["/bin/sh"]})).await;
    input(&mut socket, "sleep 1000 & sleep 1001\r").await;
    let pids = until("both sleeps to run", CONVERGE, || async {
        let (a, b) = (pids_of(&app, "sleep 1000"), pids_of(&app, "sleep 1001"));
        Ok((a.len() == 1 && b.len() == 1).then(|| (a[0], b[0])))
    })
    .await
    .unwrap();
    let shell = pids_of(&app, "/bin/sh");
    assert_eq!(shell.len(), 1, "{:?}", top(&app));
    drop(socket);
    wait_gone(
        &app,
        &["sleep 1000", "sleep 1001", "/bin/sh"],
        &[
            (pids.0, "sleep 1000"),
            (pids.1, "sleep 1001"),
            (shell[0], "/bin/sh"),
        ],
    )
    .await;

    // The shell exits while a background job that ignores SIGHUP holds the terminal open: the
    // exit code still arrives, and the job (a member of the shell's session) is gone by then.
    let mut socket = open_terminal(&f, "sh2", Some(&f.agent_token))
        .await
        .unwrap();
    start(&mut socket, serde_json::json!({})).await;
    input(
        &mut socket,
        "(trap '' HUP; exec sleep 1004) & sleep 0.5; exit 5\r",
    )
    .await;
    let (out, end) = output_and_end(&mut socket).await;
    assert_eq!(end, serde_json::json!({"exit": {"code": 5}}), "{out:?}");
    assert_closed(&mut socket).await;
    wait_gone(&app, &["sleep 1004"], &[]).await;

    // Nothing in or out for the idle timeout: an error frame, and the session is gone by then.
    let mut socket = open_terminal(&f, "sh2", Some(&f.agent_token))
        .await
        .unwrap();
    start(&mut socket, serde_json::json!({})).await;
    input(&mut socket, "sleep 1002 & sleep 1003\r").await;
    until("both sleeps to run", CONVERGE, || async {
        Ok(
            (pids_of(&app, "sleep 1002").len() == 1 && pids_of(&app, "sleep 1003").len() == 1)
                .then_some(()),
        )
    })
    .await
    .unwrap();
    let (_, end) = output_and_end(&mut socket).await;
    assert_eq!(end["error"]["code"], "idle-timeout", "{end}");
    assert_closed(&mut socket).await;
    wait_gone(&app, &["sleep 1002", "sleep 1003"], &[]).await;
    // The app itself is untouched.
    assert_eq!(pids_of(&app, "sleep 3600").len(), 1, "{:?}", top(&app));
}

/// A raw HTTP/1.1 GET whose response is read as it arrives (chunk framing included, which
/// does not matter for looking for lines); dropping it closes the connection.
struct RawGet {
    stream: TcpStream,
    seen: String,
}

impl RawGet {
    async fn start(f: &NodeFixture, path: &str) -> Self {
        let mut stream = connect(f).await;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}:{AGENT_PORT}\r\nAuthorization: Bearer {}\r\n\
             Connection: close\r\n\r\n",
            node_ip(1),
            f.agent_token
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        Self {
            stream,
            seen: String::new(),
        }
    }

    async fn until(&mut self, wanted: &str) {
        let mut buf = vec![0u8; 8192];
        while !self.seen.contains(wanted) {
            let n = tokio::time::timeout(FRAME, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {wanted:?} within {FRAME:?}: {:?}", self.seen))
                .unwrap();
            assert!(
                n > 0,
                "the response ended before {wanted:?}: {:?}",
                self.seen
            );
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_logs_see_new_lines_and_the_file_tail_dies_with_the_request() {
    let f = NodeFixture::start("termlogs", "").await.unwrap();
    let script = "mkdir -p /home/admin/logs && echo first-file-line > /home/admin/logs/app.log \
                  && echo first-stdout-line && exec sleep 3600";
    run(&f, &f.spec("lg", script)).await;
    let app = app_name(&f, "lg");
    let base = format!("/v1/containers/{}/lg", f.pool);

    // stdout and stderr, followed: a line written after the request started arrives.
    let mut follow = RawGet::start(&f, &format!("{base}/logs?follow=true&tail=10")).await;
    follow.until("first-stdout-line").await;
    assert!(follow.seen.starts_with("HTTP/1.1 200"), "{}", follow.seen);
    assert!(follow.seen.contains("text/plain"), "{}", follow.seen);
    f.docker_exec(&app, &["sh", "-c", "echo later-stdout-line > /proc/1/fd/1"])
        .unwrap();
    follow.until("later-stdout-line").await;
    drop(follow);

    // A file, followed through `tail -F`; the tail is gone once the client is.
    let mut file =
        RawGet::start(&f, &format!("{base}/logs?file=app.log&follow=true&tail=10")).await;
    file.until("first-file-line").await;
    f.docker_exec(
        &app,
        &[
            "sh",
            "-c",
            "echo second-file-line >> /home/admin/logs/app.log",
        ],
    )
    .unwrap();
    file.until("second-file-line").await;
    let tail = "tail -n 10 -F -- /home/admin/logs/app.log";
    let tails = pids_of(&app, tail);
    assert_eq!(tails.len(), 1, "{:?}", top(&app));
    drop(file);
    wait_gone(&app, &[tail], &[(tails[0], tail)]).await;

    // Without follow: the last lines, and the request ends by itself.
    let (status, body) = f
        .agent_get(&format!("{base}/logs?file=app.log&tail=1"))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "second-file-line\n"));
    until("the one-shot tail to end", CONVERGE, || async {
        Ok(pids_of(&app, "tail -n 1 -- /home/admin/logs/app.log")
            .is_empty()
            .then_some(()))
    })
    .await
    .unwrap();

    // The log directory's files, with their sizes.
    f.docker_exec(
        &app,
        &[
            "sh",
            "-c",
            "mkdir /home/admin/logs/sub && ln -s app.log /home/admin/logs/link",
        ],
    )
    .unwrap();
    let (status, body) = f.agent_get(&format!("{base}/log-files")).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let files: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        files,
        serde_json::json!([{"name": "app.log", "size": "first-file-line\nsecond-file-line\n".len()}])
    );

    // Names that leave the directory are refused before anything runs; a missing file is 404.
    for bad in ["..%2Fx", "..", "a%2Fb"] {
        let (status, body) = f
            .agent_get(&format!("{base}/logs?file={bad}"))
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("file"), "{bad}: {body}");
    }
    let (status, body) = f
        .agent_get(&format!("{base}/logs?file=nope.log"))
        .await
        .unwrap();
    assert_eq!(status, 404, "{body}");

    // The plain tail is as it was.
    let (status, body) = f.agent_get(&format!("{base}/logs?tail=1")).await.unwrap();
    assert_eq!((status, body.trim()), (200, "later-stdout-line"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rich_container_gets_a_login_bash_as_admin() {
    caas_tests::sofa::ensure_images().unwrap();
    let f = NodeFixture::start("termrich", "").await.unwrap();
    let spec: caas_api::WorkloadSpec = serde_json::from_value(serde_json::json!({
        "pool": f.pool, "name": "vm", "image": "caas/sofa-base:latest", "rich": true,
        "command": ["sh", "-c", "echo app up; exec sleep 100000"],
    }))
    .unwrap();
    run(&f, &spec).await;

    let mut socket = open_terminal(&f, "vm", Some(&f.agent_token)).await.unwrap();
    start(&mut socket, serde_json::json!({"cols": 100, "rows": 30})).await;
    input(
        &mut socket,
        "echo \"user=$(id -un) login=$(shopt -q login_shell && echo yes) term=$TERM \
         size=$(stty size)\"; exit 7\r",
    )
    .await;
    let (out, end) = output_and_end(&mut socket).await;
    assert!(
        out.contains("user=admin login=yes term=xterm-256color size=30 100"),
        "{out:?}"
    );
    assert_eq!(end, serde_json::json!({"exit": {"code": 7}}));

    // The rich log directory lists (supervisord's and each program's logs live there, written
    // as supervisord starts: waited for).
    let path = format!("/v1/containers/{}/vm/log-files", f.pool);
    until("supervisord.log in log-files", CONVERGE, || async {
        let (status, body) = f.agent_get(&path).await?;
        anyhow::ensure!(status == 200, "{status}: {body}");
        let files: Vec<caas_api::terminal::LogFile> = serde_json::from_str(&body)?;
        Ok(files
            .iter()
            .any(|f| f.name == "supervisord.log")
            .then_some(()))
    })
    .await
    .unwrap();
}
