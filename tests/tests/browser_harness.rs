//! The browser harness (`caas_tests::browser`) against a tiny page served by warp on 127.0.0.1:
//! typing into a form, clicking, waiting for JS-produced text, key presses into an xterm.js-like
//! hidden textarea, a same-origin WebSocket under a strict CSP, cookies, console logs,
//! screenshots, the artifacts a failing step leaves, and that no chromedriver or Chromium
//! process outlives the browser: after `close`, after drop, after a panic, and after the test
//! process itself is SIGKILLed. Needs Debian's chromium and chromium-driver (scripts/install-deps);
//! without them every test fails saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caas_tests::browser::{
    fresh_artifacts_dir, net_log_external_traffic, Browser, BrowserOptions, ProcessSnapshot,
};
use caas_tests::wait::until;
use futures::{SinkExt, StreamExt};
use warp::Filter;

const WAIT: Duration = Duration::from_secs(15);
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// What the console will send: scripts, styles and connections from its own origin only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'";

const INDEX: &str = r#"<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>harness page</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
<script>window.inlineRan = true;</script>
</head>
<body>
<form id="form">
  <input id="name" name="name" autocomplete="off">
  <button id="greet" type="submit">Greet</button>
</form>
<p id="greeting"></p>
<p id="ws-status">ws: connecting</p>
<div id="terminal">
  <textarea class="xterm-helper-textarea" aria-label="Terminal input" autocorrect="off"
    autocapitalize="off" spellcheck="false" tabindex="0"></textarea>
  <pre id="term-out"></pre>
</div>
</body>
</html>
"#;

/// The hidden textarea styled as xterm.js styles its `.xterm-helper-textarea`.
const APP_CSS: &str = r#"
#terminal { position: relative; width: 640px; height: 200px; background: #111; color: #8f8; }
.xterm-helper-textarea {
  position: absolute; opacity: 0; left: -9999em; top: 0; width: 0; height: 0; z-index: -5;
  overflow: hidden; white-space: nowrap; resize: none;
}
"#;

const APP_JS: &str = r#"'use strict';
document.getElementById('form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = document.getElementById('name').value;
  // Later, so the test has to wait for it.
  setTimeout(() => {
    document.getElementById('greeting').textContent = 'Hello, ' + name + '!';
  }, 300);
});

// Like xterm.js: printable keys arrive through the textarea, Enter through keydown.
const input = document.querySelector('.xterm-helper-textarea');
const out = document.getElementById('term-out');
let line = '';
input.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter') {
    out.textContent += '$ ' + line + '\n';
    line = '';
    ev.preventDefault();
  }
});
input.addEventListener('input', () => {
  line += input.value;
  input.value = '';
});
document.getElementById('terminal').addEventListener('click', () => input.focus());

const status = document.getElementById('ws-status');
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
ws.onopen = () => ws.send('ping');
ws.onmessage = (ev) => { status.textContent = 'ws: ' + ev.data; };
ws.onerror = () => { status.textContent = 'ws: error'; };

window.inlineRan = window.inlineRan || false;
console.error('harness-console-marker');
"#;

/// Serves the page on 127.0.0.1; the server lives as long as the test's runtime.
async fn serve_page() -> SocketAddr {
    let index = warp::path::end().map(|| {
        warp::http::Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("content-security-policy", CSP)
            .header(
                "set-cookie",
                "harness_session=s3cret; HttpOnly; SameSite=Strict; Path=/",
            )
            .body(INDEX)
            .unwrap()
    });
    let js = warp::path!("app.js")
        .map(|| warp::reply::with_header(APP_JS, "content-type", "text/javascript"));
    let css = warp::path!("app.css")
        .map(|| warp::reply::with_header(APP_CSS, "content-type", "text/css"));
    let ws = warp::path!("ws").and(warp::ws()).map(|ws: warp::ws::Ws| {
        ws.on_upgrade(|socket| async move {
            let (mut tx, mut rx) = socket.split();
            while let Some(Ok(message)) = rx.next().await {
                if let Ok(text) = message.to_str() {
                    let reply = warp::ws::Message::text(format!("pong:{text}"));
                    if tx.send(reply).await.is_err() {
                        break;
                    }
                }
            }
        })
    });
    let routes = warp::get().and(index.or(js).or(css).or(ws));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    addr
}

fn artifacts(test: &str) -> PathBuf {
    fresh_artifacts_dir(&format!("browser_harness-{test}")).unwrap()
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        bytes.starts_with(PNG_MAGIC),
        "{} is not a PNG ({} bytes)",
        path.display(),
        bytes.len()
    );
}

/// The snapshot must hold chromedriver and Chromium, and none of them may still run.
async fn assert_all_gone(snapshot: &ProcessSnapshot) {
    assert!(
        snapshot.processes.len() >= 2,
        "expected chromedriver and Chromium processes, saw {:?}",
        snapshot.processes
    );
    until("every browser process to be gone", WAIT, || async {
        let left = snapshot.survivors();
        if left.is_empty() {
            Ok(Some(()))
        } else {
            Err(anyhow::anyhow!("still running: {left:?}"))
        }
    })
    .await
    .unwrap();
}

fn running_chromium(snapshot: &ProcessSnapshot) -> usize {
    snapshot.count_of("/chromium")
}

#[tokio::test]
async fn drives_form_js_terminal_and_websocket_under_csp() -> anyhow::Result<()> {
    let addr = serve_page().await;
    let base = format!("http://{addr}/");
    let dir = artifacts("drives");
    let options = BrowserOptions {
        net_log: true,
        ..BrowserOptions::default()
    };
    let browser = Browser::start_with(&dir, options).await?;

    browser
        .step("load", async {
            browser.goto(&base).await?;
            browser.wait_for("#form", WAIT).await?;
            Ok(())
        })
        .await?;
    assert!(browser.current_url().await?.starts_with(&base));
    assert!(browser.page_source().await?.contains("harness page"));
    assert!(browser.exists("#greet").await?);
    assert!(!browser.exists("#no-such-thing").await?);

    let cookies = browser.cookies().await?;
    let session = cookies
        .iter()
        .find(|c| c.name == "harness_session")
        .unwrap_or_else(|| panic!("no harness_session cookie in {cookies:?}"));
    assert_eq!(session.value, "s3cret");
    assert!(session.http_only, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"), "{session:?}");

    browser
        .step("greet", async {
            browser.type_into("#name", "Ada").await?;
            browser.click("#greet").await?;
            browser
                .wait_for_text("#greeting", "Hello, Ada!", WAIT)
                .await?;
            Ok(())
        })
        .await?;
    assert_eq!(browser.value("#name").await?, "Ada");
    assert_eq!(browser.text("#greeting").await?, "Hello, Ada!");

    browser
        .step("terminal", async {
            // Focused through JS (WebDriver calls the off-screen textarea not interactable) ...
            browser.focus(".xterm-helper-textarea").await?;
            browser.send_keys_to_active("echo hi\n").await?;
            browser
                .wait_for_text("#term-out", "$ echo hi", WAIT)
                .await?;
            // ... or by clicking the terminal, as a person would.
            browser.click("#terminal").await?;
            browser.send_keys_to_active("ls -la").await?;
            browser.press_enter().await?;
            browser.wait_for_text("#term-out", "$ ls -la", WAIT).await?;
            Ok(())
        })
        .await?;

    browser
        .step("websocket", async {
            browser
                .wait_for_text("#ws-status", "ws: pong:ping", WAIT)
                .await?;
            Ok(())
        })
        .await?;

    // The CSP blocked the inline script, and said so on the console.
    let js = browser
        .execute_js(
            "return [document.title, window.inlineRan, arguments[0] + 1];",
            vec![serde_json::json!(41)],
        )
        .await?;
    assert_eq!(js, serde_json::json!(["harness page", false, 42]));
    let logs = browser.console_logs().await?;
    for entry in &logs {
        eprintln!("console: {} {}", entry.level, entry.message);
    }
    assert!(
        logs.iter()
            .any(|e| e.level == "SEVERE" && e.message.contains("harness-console-marker")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|e| e.message.contains("Content Security Policy")),
        "{logs:?}"
    );

    let shot = browser.screenshot("page").await?;
    assert_eq!(shot.file_name().unwrap(), "page.png");
    assert!(shot.starts_with(browser.artifacts_dir()));
    assert_png(&shot);

    let snapshot = browser.processes();
    assert!(running_chromium(&snapshot) >= 2, "{snapshot:?}");
    browser.close().await?;
    assert_all_gone(&snapshot).await;

    // Chromium's net log: nothing was resolved or sent beyond 127.0.0.1.
    let problems = net_log_external_traffic(&dir.join("chromium-netlog.json"))?;
    assert!(problems.is_empty(), "the browser reached out: {problems:?}");
    Ok(())
}

#[tokio::test]
async fn failing_step_saves_screenshot_source_and_console() -> anyhow::Result<()> {
    let addr = serve_page().await;
    let dir = artifacts("failing-step");
    let browser = Browser::start(&dir).await?;
    browser.goto(&format!("http://{addr}/")).await?;

    let err = browser
        .step("missing element", async {
            browser
                .wait_for("#does-not-exist", Duration::from_secs(1))
                .await?;
            Ok(())
        })
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("browser step `missing element` failed"),
        "{message}"
    );
    assert!(message.contains("#does-not-exist"), "{message}");
    assert!(message.contains("timed out"), "{message}");

    assert_png(&dir.join("missing_element.png"));
    let html = std::fs::read_to_string(dir.join("missing_element.html"))?;
    assert!(html.contains("harness page"), "{html}");
    let console = std::fs::read_to_string(dir.join("missing_element.console.txt"))?;
    assert!(
        console.contains(&format!("url: http://{addr}/")),
        "{console}"
    );
    assert!(console.contains("harness-console-marker"), "{console}");

    // Dropped, not closed: the drop path must clean up too.
    let snapshot = browser.processes();
    drop(browser);
    assert_all_gone(&snapshot).await;
    Ok(())
}

#[tokio::test]
async fn panicking_test_leaves_no_browser_process() {
    let addr = serve_page().await;
    let dir = artifacts("panic");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let browser = Browser::start(&dir).await.unwrap();
        browser.goto(&format!("http://{addr}/")).await.unwrap();
        tx.send(browser.processes()).unwrap();
        panic!("deliberate panic with a live browser");
    });
    let err = task.await.unwrap_err();
    assert!(err.is_panic());
    let snapshot = rx.await.unwrap();
    assert!(running_chromium(&snapshot) >= 2, "{snapshot:?}");
    assert_all_gone(&snapshot).await;
}

const CHILD_ENV: &str = "CAAS_BROWSER_HARNESS_CHILD";
const SNAPSHOT_PREFIX: &str = "BROWSER-SNAPSHOT ";

/// Runs itself again as a child that starts a browser, prints its processes and SIGKILLs
/// itself: no destructor runs, so only `--pdeathsig` stands between Chromium and a leak.
#[tokio::test]
async fn killed_test_process_leaves_no_browser_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let addr = serve_page().await;
        let browser = Browser::start(&artifacts("killed-child")).await.unwrap();
        browser.goto(&format!("http://{addr}/")).await.unwrap();
        let snapshot = serde_json::to_string(&browser.processes()).unwrap();
        println!("{SNAPSHOT_PREFIX}{snapshot}");
        nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL).unwrap();
        unreachable!("SIGKILLed itself");
    }

    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "killed_test_process_leaves_no_browser_process",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let snapshot: ProcessSnapshot = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(json) = line.strip_prefix(SNAPSHOT_PREFIX) {
                return serde_json::from_str(json).unwrap();
            }
        }
        panic!("the child exited without printing its browser processes");
    })
    .await
    .expect("the child printed its browser processes in time");
    let status = child.wait().await.unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(running_chromium(&snapshot) >= 2, "{snapshot:?}");
    assert_all_gone(&snapshot).await;
    // The child's profile directory is all it left behind.
    std::fs::remove_dir_all(&snapshot.marker).unwrap();
}

#[tokio::test]
async fn missing_browser_fails_naming_install_deps() {
    let dir = artifacts("missing");
    let options = BrowserOptions {
        chromedriver: PathBuf::from("/nonexistent/chromedriver"),
        ..BrowserOptions::default()
    };
    let err = Browser::start_with(&dir, options).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("/nonexistent/chromedriver"), "{message}");
    assert!(message.contains("scripts/install-deps"), "{message}");
}

/// The net-log check itself, on a made-up log: a name resolved for real and data sent to a
/// public address are reported; the resolver rule's `~notfound` and the IPv6 reachability probe
/// (a UDP `connect()` that sends nothing) are not.
#[test]
fn net_log_check_reports_what_could_leave_the_machine() {
    let log = serde_json::json!({
        "constants": { "logEventTypes": {
            "HOST_RESOLVER_MANAGER_REQUEST": 1, "UDP_CONNECT": 2, "TCP_CONNECT": 3,
            "SOCKET_BYTES_SENT": 4,
        }},
        "events": [
            { "type": 1, "source": { "id": 10 }, "params": { "host": "https://~notfound" } },
            { "type": 1, "source": { "id": 11 }, "params": { "host": "http://127.0.0.1:80" } },
            { "type": 2, "source": { "id": 12 }, "params": { "address": "[2001:4860:4860::8888]:443" } },
            { "type": 3, "source": { "id": 13 }, "params": { "remote_address": "127.0.0.1:8080" } },
            { "type": 4, "source": { "id": 13 }, "params": { "byte_count": 100 } },
            { "type": 1, "source": { "id": 14 }, "params": { "host": "https://example.com" } },
            { "type": 3, "source": { "id": 15 }, "params": { "remote_address": "192.0.2.1:443" } },
            { "type": 4, "source": { "id": 15 }, "params": { "byte_count": 10 } },
        ],
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netlog.json");
    std::fs::write(&path, log.to_string()).unwrap();
    let problems = net_log_external_traffic(&path).unwrap();
    assert_eq!(
        problems,
        vec![
            "resolved https://example.com".to_string(),
            "sent data after TCP_CONNECT 192.0.2.1:443".to_string(),
        ]
    );
}
