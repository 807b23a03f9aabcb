//! The web console in a real browser (headless Chromium over WebDriver, `caas_tests::browser`).
//!
//! - `console_pages_and_xterm_load_under_the_csp`: central's routes in this process on an
//!   in-memory store (no ZooKeeper, no Docker): the login form, the container list, a container
//!   page without ops buttons for a developer, and the terminal page with xterm.js from
//!   Debian's package, all without a single Content-Security-Policy violation.
//! - `developer_reads_logs_and_works_in_a_terminal`: the real binaries (ZooKeeper, central and an
//!   agent in network namespaces, Docker, a rich sofa container): a developer logs in, sees the
//!   container list, follows the app's log file and sees a line the app writes after the page
//!   opened, opens the terminal, types `whoami` and `hostname` and reads `admin` and the
//!   container's hostname on screen, finds no delete button; afterwards the pool's audit log
//!   holds the console session with both commands.
//!
//! Screenshots, page sources and browser consoles of a failed step are kept under
//! `target/browser-artifacts/console_browser-*`. Needs Debian's chromium, chromium-driver and
//! node-xterm (scripts/install-deps); the second test also Docker and root.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caas_api::central::ContainerView;
use caas_central::agent_link::AgentLink;
use caas_central::state::Central;
use caas_central::store::MemStore;
use caas_tests::browser::{fresh_artifacts_dir, Browser, ConsoleEntry};
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::netns::FABRIC_IP;
use caas_tests::sofa;
use caas_tests::wait::until;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const POOL: &str = "webdev";
const HOSTNAME: &str = "console-web-7";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops";

/// The app of the rich container: says it started, then prints whatever is put in /tmp/say.
const APP: &str = "echo console-app started; while true; do \
                   if [ -f /tmp/say ]; then cat /tmp/say; rm -f /tmp/say; fi; sleep 0.2; done";

/// Console entries that would mean the page broke its own policy or failed to load a part.
fn violations(entries: &[ConsoleEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| {
            e.message.contains("Content Security Policy")
                || e.message.contains("Refused to")
                || (e.level == "SEVERE" && e.message.contains("/console/static/"))
                || e.message.contains("Uncaught")
        })
        .map(|e| format!("{} {}", e.level, e.message))
        .collect()
}

/// A script returning the terminal's rows as xterm.js mirrors them into the DOM (trimmed,
/// joined by newlines) once one of them satisfies `test` (a JS expression on `row`), else null.
fn terminal_rows_when(test: &str) -> String {
    format!(
        "var rows = Array.prototype.map.call(\
           document.querySelectorAll('#terminal .xterm-accessibility-tree > div'),\
           function (r) {{ return r.textContent.replace(/\\u00a0/g, ' ').trim(); }});\
         return rows.some(function (row) {{ return {test}; }}) ? rows.join('\\n') : null;"
    )
}

/// `terminal_rows_when` a row is exactly `line`.
fn terminal_row_script(line: &str) -> String {
    terminal_rows_when(&format!("row === {}", serde_json::to_string(line).unwrap()))
}

async fn http(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

#[tokio::test]
async fn console_pages_and_xterm_load_under_the_csp() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let admin = "admin-token-0123456789";
    let layout = caas_api::ZkLayout::new("/caas")?;
    let store = MemStore::new(layout);
    let info = caas_api::NodeInfo {
        version: caas_api::PAYLOAD_VERSION,
        node_id: "n1".into(),
        pool: POOL.into(),
        api_addr: "127.0.0.1:9".into(),
        underlay: None,
        capacity: caas_api::Capacity {
            cpu_millis: 4000,
            memory_bytes: 8 << 30,
        },
        labels: Default::default(),
        agent_version: "test".into(),
        hostname: "n1".into(),
        started_at: 0,
        engine_ready: true,
        networks: Default::default(),
    };
    store
        .register(&info, store.new_session())
        .map_err(|e| anyhow::anyhow!("registering the node: {e:?}"))?;
    let central = Central::new(Arc::new(store.handle()), admin);
    let routes = caas_central::api::routes(central, Arc::new(AgentLink::new(None)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    let base = format!("http://{addr}");

    let (status, pool) = http(
        reqwest::Method::POST,
        &format!("{base}/v1/pools"),
        admin,
        Some(json!({"name": POOL, "ssh_keys": [KEY]})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{pool}");
    let ops = pool["token"].as_str().context("token")?.to_string();
    let (status, dev) = http(
        reqwest::Method::POST,
        &format!("{base}/v1/pools/{POOL}/tokens"),
        &ops,
        Some(json!({"role": "developer"})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{dev}");
    let dev = dev["token"].as_str().context("token")?.to_string();
    let (status, body) = http(
        reqwest::Method::POST,
        &format!("{base}/v1/pools/{POOL}/containers"),
        &ops,
        Some(json!({"name": "web", "image": "caas/sofa-base:latest", "rich": true})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{body}");

    let dir = fresh_artifacts_dir("console_browser-pages")?;
    let browser = Browser::start(&dir).await?;
    let mut seen = Vec::new();
    browser
        .step("login", async {
            browser.goto(&format!("{base}/console/")).await?;
            browser.wait_for("#token", WAIT).await?;
            browser.type_into("#token", &dev).await?;
            browser.click("#login").await?;
            browser
                .wait_for_url(&format!("/console/pools/{POOL}"), WAIT)
                .await?;
            browser.wait_for_text("#containers", "web", WAIT).await?;
            Ok(())
        })
        .await?;
    seen.extend(browser.console_logs().await?);
    let cookies = browser.cookies().await?;
    let session = cookies
        .iter()
        .find(|c| c.name == "caas_session")
        .context("no session cookie")?;
    assert!(session.http_only, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"));
    assert_eq!(session.path.as_deref(), Some("/console"));
    assert!(!browser.current_url().await?.contains(&dev));

    browser
        .step("container", async {
            browser.click("a.container-link").await?;
            browser.wait_for("#log-output", WAIT).await?;
            // No agent answers here: the page says so instead of breaking.
            browser
                .wait_for_text("#log-status", "app stdout/stderr:", WAIT)
                .await?;
            if browser.exists("#delete").await? || browser.exists("#restart-app").await? {
                bail!("a developer sees ops buttons");
            }
            browser.screenshot("container-page").await?;
            Ok(())
        })
        .await?;
    seen.extend(browser.console_logs().await?);

    browser
        .step("terminal-page", async {
            browser.click("#open-terminal").await?;
            browser.wait_for("#terminal .xterm canvas", WAIT).await?;
            browser
                .wait_for_js(
                    "xterm.js from the Debian package",
                    "return typeof window.CaasXterm.Terminal === 'function' && \
                            document.querySelectorAll('#terminal .xterm-accessibility-tree > div').length > 0;",
                    WAIT,
                )
                .await?;
            // The WebSocket connects (same origin, the CSP's connect-src 'self') and central
            // answers that the node's agent cannot be reached.
            browser
                .wait_for_text("#terminal-status", "ended:", WAIT)
                .await?;
            browser.screenshot("terminal-page").await?;
            Ok(())
        })
        .await?;
    seen.extend(browser.console_logs().await?);
    let problems = violations(&seen);
    assert!(problems.is_empty(), "{problems:#?}");
    browser.close().await?;
    Ok(())
}

/// Listens on 127.0.0.1 in this namespace and relays each connection to `target` from inside
/// the network namespace `netns` (where central listens), so the browser can reach central.
struct Forwarder {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    fn start(netns: &str, target: SocketAddr) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let ns = std::fs::File::open(format!("/run/netns/{netns}"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("console-forwarder".into())
            .spawn(move || {
                // The listener stays in the namespace it was made in; connections made from
                // here on are in `netns`.
                if let Err(e) = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                {
                    eprintln!("forwarder: setns: {e}");
                    return;
                }
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let accept = async {
                        while let Ok((mut inbound, _)) = listener.accept().await {
                            tokio::spawn(async move {
                                if let Ok(mut outbound) =
                                    tokio::net::TcpStream::connect(target).await
                                {
                                    let _ =
                                        tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                            .await;
                                }
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Milestones with the time since the test started, printed at the end.
struct Timings {
    start: Instant,
    marks: Vec<(String, Duration)>,
}

impl Timings {
    fn mark(&mut self, what: &str) {
        let at = self.start.elapsed();
        eprintln!("[{:>6.1}s] {what}", at.as_secs_f64());
        self.marks.push((what.to_string(), at));
    }
}

#[tokio::test]
async fn developer_reads_logs_and_works_in_a_terminal() -> anyhow::Result<()> {
    let mut t = Timings {
        start: Instant::now(),
        marks: Vec::new(),
    };
    sofa::ensure_images()?;
    t.mark("sofa images ready");
    let c = Cluster::start("console", &[NodeSpec::new(POOL, &[])], 1, 30).await?;
    t.mark("cluster up");
    let (status, body) = c
        .request(
            0,
            "POST",
            "/v1/pools",
            Some(json!({"name": POOL, "ssh_keys": [KEY]})),
            &c.admin_token,
        )
        .await?;
    anyhow::ensure!(status == 201, "creating the pool: {body}");
    let ops = serde_json::from_str::<Value>(&body)?["token"]
        .as_str()
        .context("no ops token")?
        .to_string();
    let (status, body) = c
        .request(
            0,
            "POST",
            &format!("/v1/pools/{POOL}/tokens"),
            Some(json!({"role": "developer", "label": "browser test"})),
            &ops,
        )
        .await?;
    anyhow::ensure!(status == 201, "issuing a developer token: {body}");
    let dev_view: Value = serde_json::from_str(&body)?;
    let dev = dev_view["token"].as_str().context("no token")?.to_string();
    let dev_id = dev_view["id"].as_str().context("no id")?.to_string();
    let (status, body) = c
        .request(
            0,
            "POST",
            &format!("/v1/pools/{POOL}/containers"),
            Some(json!({
                "name": "web",
                "image": "caas/sofa-base:latest",
                "rich": true,
                "hostname": HOSTNAME,
                "command": ["sh", "-c", APP],
            })),
            &ops,
        )
        .await?;
    anyhow::ensure!(status == 201, "creating the container: {body}");
    until(
        "the app program running",
        Duration::from_secs(120),
        || async {
            let v: ContainerView = c.container(&ops, POOL, "web").await?;
            let app = v
                .status
                .as_ref()
                .and_then(|s| s.programs.iter().find(|p| p.name == "app"))
                .map(|p| p.state.clone());
            Ok((app.as_deref() == Some("RUNNING")).then_some(()))
        },
    )
    .await
    .with_context(|| format!("agent log:\n{}", c.agents[0].log()))?;
    t.mark("rich container running");

    let central: SocketAddr = c.centrals[0]
        .url
        .trim_start_matches("http://")
        .parse()
        .context("central's address")?;
    anyhow::ensure!(
        central.ip() == IpAddr::V4(FABRIC_IP),
        "central listens at {central}"
    );
    let forwarder = Forwarder::start(&c.topo.fabric, central)?;
    let base = format!("http://{}", forwarder.addr);
    let dir = fresh_artifacts_dir("console_browser-developer")?;
    let browser = Browser::start(&dir).await?;
    t.mark("browser up");
    let mut seen = Vec::new();

    browser
        .step("01-login", async {
            browser.goto(&format!("{base}/console/")).await?;
            browser.wait_for("#token", WAIT).await?;
            browser.type_into("#token", &dev).await?;
            browser.click("#login").await?;
            browser
                .wait_for_url(&format!("/console/pools/{POOL}"), WAIT)
                .await?;
            Ok(())
        })
        .await?;
    seen.extend(browser.console_logs().await?);
    t.mark("logged in");

    browser
        .step("02-container-list", async {
            let row = "#containers tr[data-name='web']";
            browser.wait_for_text(row, "running", WAIT).await?;
            browser.wait_for_text(row, "app RUNNING", WAIT).await?;
            let text = browser.text(row).await?;
            if !text.contains(&c.node_ids[0]) {
                bail!("the row does not name the node {}: {text}", c.node_ids[0]);
            }
            Ok(())
        })
        .await?;
    t.mark("container list shown");

    let line = format!("console-line-{}", hex::encode(rand::random::<[u8; 6]>()));
    browser
        .step("03-logs", async {
            browser
                .click("#containers tr[data-name='web'] a.container-link")
                .await?;
            browser.wait_for("#log-output", WAIT).await?;
            // A developer has no delete (nor restart) button.
            if browser.exists("#delete").await?
                || browser.exists("form[action$='/delete']").await?
                || browser.exists("#restart-app").await?
            {
                bail!("a developer sees ops buttons");
            }
            browser
                .wait_for("#log-source option[value='app.out.log']", WAIT)
                .await?;
            browser
                .click("#log-source option[value='app.out.log']")
                .await?;
            browser
                .wait_for_text("#log-status", "following app.out.log", WAIT)
                .await?;
            browser
                .wait_for_text("#log-output", "console-app started", WAIT)
                .await?;
            // Now the app writes a fresh line (told to by an exec as admin through the API).
            let script = format!("echo {line} > /tmp/say.new && mv /tmp/say.new /tmp/say");
            let (status, body) = c
                .request(
                    0,
                    "POST",
                    &format!("/v1/pools/{POOL}/containers/web/exec"),
                    Some(json!({"command": ["sh", "-c", script], "user": "admin"})),
                    &c.admin_token,
                )
                .await?;
            if status != 200 {
                bail!("exec: {status} {body}");
            }
            browser.wait_for_text("#log-output", &line, WAIT).await?;
            browser.screenshot("03-logs-done").await?;
            Ok(())
        })
        .await?;
    seen.extend(browser.console_logs().await?);
    t.mark("fresh log line seen");

    browser
        .step("04-terminal", async {
            browser.click("#open-terminal").await?;
            browser.wait_for_url("/terminal", WAIT).await?;
            browser
                .wait_for_text("#terminal-status", "connected", WAIT)
                .await?;
            // bash's prompt, then the commands, as a person would type them.
            browser
                .wait_for_js(
                    "the shell's prompt",
                    &terminal_rows_when("row.endsWith('$')"),
                    WAIT,
                )
                .await?;
            browser.focus(".xterm-helper-textarea").await?;
            browser.send_keys_to_active("whoami\n").await?;
            browser
                .wait_for_js(
                    "`admin` on its own line",
                    &terminal_row_script("admin"),
                    WAIT,
                )
                .await?;
            browser.send_keys_to_active("hostname\n").await?;
            browser
                .wait_for_js(
                    "the hostname on its own line",
                    &terminal_row_script(HOSTNAME),
                    WAIT,
                )
                .await?;
            // A smaller window: the terminal is fitted again and the shell told its new size.
            let size = "return [window.caasTerminal.cols, window.caasTerminal.rows];";
            let before = browser.execute_js(size, Vec::new()).await?;
            browser.client().set_window_size(900, 700).await?;
            let after = browser
                .wait_for_js(
                    "the terminal fitted to the smaller window",
                    &format!(
                        "var s = [window.caasTerminal.cols, window.caasTerminal.rows]; \
                         return JSON.stringify(s) !== {:?} ? s : null;",
                        before.to_string()
                    ),
                    WAIT,
                )
                .await?;
            browser.focus(".xterm-helper-textarea").await?;
            browser.send_keys_to_active("stty size\n").await?;
            let expected = format!("{} {}", after[1], after[0]);
            browser
                .wait_for_js(
                    "`stty size` saying the new size",
                    &terminal_row_script(&expected),
                    WAIT,
                )
                .await?;
            // What the person sees, kept with the other artifacts.
            browser.screenshot("04-terminal-done").await?;
            Ok(())
        })
        .await?;
    seen.extend(browser.console_logs().await?);
    t.mark("whoami, hostname and the resized stty size read on screen");

    // Leaving the page closes the terminal; the session is then complete in the audit log.
    browser
        .step("05-leave-and-log-out", async {
            browser
                .goto(&format!("{base}/console/pools/{POOL}"))
                .await?;
            browser.wait_for("#logout", WAIT).await?;
            browser.click("#logout").await?;
            browser.wait_for_url("/console/login", WAIT).await?;
            Ok(())
        })
        .await?;
    seen.extend(browser.console_logs().await?);
    let problems = violations(&seen);
    assert!(problems.is_empty(), "{problems:#?}");

    let entry = until("the console session in the audit log", WAIT, || async {
        let (status, body) = c
            .request(
                0,
                "GET",
                &format!("/v1/pools/{POOL}/audit?container=web"),
                None,
                &ops,
            )
            .await?;
        anyhow::ensure!(status == 200, "audit: {status} {body}");
        let entries: Vec<Value> = serde_json::from_str(&body)?;
        let found = entries.into_iter().find(|e| {
            e["via"] == "console" && e["kind"] == "terminal" && e["ended_by"] != "running"
        });
        match found {
            Some(e) => Ok(Some(e)),
            None => Err(anyhow::anyhow!("no finished console session yet: {body}")),
        }
    })
    .await?;
    assert_eq!(entry["token_id"], dev_id.as_str(), "{entry}");
    assert_eq!(entry["role"], "developer", "{entry}");
    assert_eq!(entry["user"], "admin", "{entry}");
    let input: Vec<&str> = entry["input"]
        .as_array()
        .context("input")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        input.contains(&"whoami") && input.contains(&"hostname") && input.contains(&"stty size"),
        "typed lines {input:?} in {entry}"
    );
    // The developer may not read the audit log.
    let (status, _) = c
        .request(0, "GET", &format!("/v1/pools/{POOL}/audit"), None, &dev)
        .await?;
    assert_eq!(status, 403);
    t.mark("audit entry complete");
    browser.close().await?;
    drop(forwarder);
    eprintln!("timings (since the test started):");
    for (what, at) in &t.marks {
        eprintln!("  {:>6.1}s  {what}", at.as_secs_f64());
    }
    Ok(())
}
