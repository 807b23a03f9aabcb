//! Headless Chromium driven over WebDriver for the web console's end-to-end tests: starts
//! `chromedriver` (which starts Chromium) with a throw-away profile and no network beyond this
//! machine, offers the few page operations a test needs (navigate, find, wait for text, click,
//! type, send keys to a focused xterm.js textarea, run JS, cookies, console logs), saves a
//! screenshot and the page source when a test step fails, and kills every browser process it
//! started when dropped, also on panic and when the test process itself is killed.
//!
//! Process ownership: chromedriver runs in a process group of its own (Chromium and its helpers
//! inherit that group) under `setpriv --pdeathsig KILL`, like the harness's other children
//! ([`crate::process`]); Chromium itself is started through a small launcher in the profile
//! directory that also gives it `--pdeathsig KILL`, so it dies with chromedriver even when the
//! test process is SIGKILLed (Chromium otherwise outlives a killed chromedriver, and its helpers
//! die with it). Chromium's crash handler daemonises out of the group; its command line names the
//! profile directory (through `XDG_CONFIG_HOME`), which is how it is found and killed.
//!
//! Call [`Browser::start`] from the thread that keeps running the test (a `#[tokio::test]`'s
//! thread or a runtime worker): `--pdeathsig` fires when the *thread* that spawned chromedriver
//! exits, so spawning it from `spawn_blocking` would kill it when that pool thread retires.

use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use fantoccini::elements::Element;

use crate::process::free_port;
use crate::wait::until;

/// The WebDriver key code of Enter; `send_keys_to_active` also turns `'\n'` and `'\r'` into it.
pub const ENTER: char = '\u{E007}';

/// Where Debian's `chromium-driver` puts chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium binary itself: `/usr/bin/chromium` is a shell wrapper that adds flags of its
/// own (`--enable-remote-extensions`, API keys, a `--load-extension` list), so it is bypassed.
pub const CHROMIUM: &str = "/usr/lib/chromium/chromium";

const INSTALL_HINT: &str =
    "install the Debian packages chromium and chromium-driver with scripts/install-deps";
/// How long chromedriver and the first session may take to come up on a loaded 2-core machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on saving one failure artifact, so a hung page cannot hang the report of its failure.
const ARTIFACT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on each of the blocking steps of the graceful close in `Drop`.
const DROP_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `Drop` keeps killing until every browser process is gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// How the browser is started; [`Default`] is what the console tests use.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// chromedriver to run (default [`CHROMEDRIVER`]).
    pub chromedriver: PathBuf,
    /// Chromium binary chromedriver starts (default [`CHROMIUM`]).
    pub chromium: PathBuf,
    /// Window size in CSS pixels (default 1280x900). Headless Chromium keeps room for its
    /// (invisible) browser UI inside the window: 1280x900 gives a 1280x757 viewport.
    pub window: (u32, u32),
    /// Write Chromium's network log to `chromium-netlog.json` in the artifacts directory, to see
    /// every connection and name lookup the browser attempted (complete once the browser closed).
    pub net_log: bool,
    /// WebDriver page-load and script timeouts (default 30 s).
    pub command_timeout: Duration,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            chromedriver: PathBuf::from(CHROMEDRIVER),
            chromium: PathBuf::from(CHROMIUM),
            window: (1280, 900),
            net_log: false,
            command_timeout: Duration::from_secs(30),
        }
    }
}

/// One browser console entry (`console.log`/`error`, uncaught exceptions, CSP violations,
/// failed loads), as chromedriver reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleEntry {
    /// `SEVERE`, `WARNING`, `INFO` or `DEBUG`.
    pub level: String,
    /// Source URL, line and text, e.g. `http://127.0.0.1:1234/app.js 3:12 "hello"`.
    pub message: String,
    /// Where it came from: `console-api`, `javascript`, `network`, `security`, ...
    #[serde(default)]
    pub source: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: Option<f64>,
}

/// A cookie as the browser holds it (the WebDriver view, so `HttpOnly` cookies are included).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserCookie {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub secure: bool,
    #[serde(default, rename = "httpOnly")]
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`.
    #[serde(default, rename = "sameSite")]
    pub same_site: Option<String>,
    /// Seconds since the epoch; `None` for a session cookie.
    #[serde(default)]
    pub expiry: Option<u64>,
}

/// The browser's processes at one moment (pid and start time, so a reused pid is not mistaken
/// for a survivor), to check afterwards that none of them outlived the browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessSnapshot {
    /// A path only this browser's processes carry on their command line (its profile directory).
    pub marker: String,
    pub processes: Vec<SnapshotProcess>,
}

/// One process of a [`ProcessSnapshot`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotProcess {
    pub pid: i32,
    /// Start time in clock ticks since boot.
    pub start: u64,
    /// Its command line, arguments joined with spaces.
    pub command: String,
}

impl ProcessSnapshot {
    pub fn pids(&self) -> Vec<i32> {
        self.processes.iter().map(|p| p.pid).collect()
    }

    /// How many of the processes run `program` (matched against the command's first word).
    pub fn count_of(&self, program: &str) -> usize {
        self.processes
            .iter()
            .filter(|p| {
                p.command
                    .split(' ')
                    .next()
                    .is_some_and(|exe| exe.ends_with(program))
            })
            .count()
    }

    /// Processes of the snapshot still running (zombies awaiting reaping count as gone), plus
    /// any running process whose command line names the marker; each as `pid command line`.
    pub fn survivors(&self) -> Vec<String> {
        let mut out = Vec::new();
        for info in all_processes() {
            if info.state == 'Z' {
                continue;
            }
            let listed = self
                .processes
                .iter()
                .any(|p| p.pid == info.pid && p.start == info.start);
            if listed || info.cmdline.contains(&self.marker) {
                out.push(format!("{} {}", info.pid, info.cmdline));
            }
        }
        out
    }
}

/// A headless Chromium session. Dropping it closes the session and kills chromedriver, Chromium
/// and every helper process they started.
pub struct Browser {
    client: Client,
    session_id: String,
    port: u16,
    http: reqwest::Client,
    artifacts: PathBuf,
    closed: bool,
    // Declared before `profile` so the processes are gone before their profile is deleted.
    driver: DriverProcess,
    profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("session_id", &self.session_id)
            .field("chromedriver_port", &self.port)
            .field("chromedriver_pid", &self.driver.pid)
            .field("profile", &self.profile.path())
            .field("artifacts", &self.artifacts)
            .finish()
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with [`BrowserOptions::default`]; screenshots,
    /// page sources and `chromedriver.log` go to `artifacts_dir` (created if missing).
    pub async fn start(artifacts_dir: &Path) -> anyhow::Result<Browser> {
        Self::start_with(artifacts_dir, BrowserOptions::default()).await
    }

    /// Like [`Browser::start`] with explicit options.
    pub async fn start_with(
        artifacts_dir: &Path,
        options: BrowserOptions,
    ) -> anyhow::Result<Browser> {
        for (what, path) in [
            ("chromedriver", &options.chromedriver),
            ("Chromium", &options.chromium),
        ] {
            if !path.is_file() {
                bail!(
                    "{what} not found at {}: the browser tests need headless Chromium; {INSTALL_HINT}",
                    path.display()
                );
            }
        }
        std::fs::create_dir_all(artifacts_dir)
            .with_context(|| format!("creating artifacts dir {}", artifacts_dir.display()))?;
        // Absolute and without `..`: Chromium refuses a net-log path that references a parent.
        let artifacts_dir = &std::fs::canonicalize(artifacts_dir)
            .with_context(|| format!("resolving {}", artifacts_dir.display()))?;
        let profile = tempfile::Builder::new()
            .prefix("caas-browser-")
            .tempdir()
            .context("creating the browser's profile directory")?;
        for sub in ["user-data", "config", "cache", "home"] {
            std::fs::create_dir_all(profile.path().join(sub))
                .with_context(|| format!("creating {sub} in the browser profile"))?;
        }
        let launcher = write_launcher(profile.path(), &options.chromium)?;
        let log = artifacts_dir.join("chromedriver.log");
        let (driver, port) =
            spawn_driver_until_ready(&options.chromedriver, profile.path(), &log).await?;

        let caps = capabilities(&options, profile.path(), &launcher, artifacts_dir);
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let url = format!("http://127.0.0.1:{port}");
        let client = match tokio::time::timeout(STARTUP_TIMEOUT, builder.connect(&url)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => bail!(
                "creating a Chromium session through chromedriver at {url}: {e}\nchromedriver log:\n{}",
                log_tail(&log, 30)
            ),
            Err(_) => bail!(
                "Chromium did not start within {STARTUP_TIMEOUT:?}\nchromedriver log:\n{}",
                log_tail(&log, 30)
            ),
        };
        let session_id = client
            .session_id()
            .await
            .context("asking fantoccini for the session id")?
            .ok_or_else(|| anyhow!("chromedriver created no session id"))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client for chromedriver")?;
        Ok(Browser {
            client,
            session_id,
            port,
            http,
            artifacts: artifacts_dir.to_path_buf(),
            closed: false,
            driver,
            profile,
        })
    }

    /// The fantoccini client, for anything this wrapper does not offer.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn artifacts_dir(&self) -> &Path {
        &self.artifacts
    }

    /// The throw-away profile directory (user data, config, cache, HOME of the browser).
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }

    /// chromedriver and the browser processes running now.
    pub fn processes(&self) -> ProcessSnapshot {
        let marker = self.marker();
        let processes = all_processes()
            .into_iter()
            .filter(|p| {
                p.state != 'Z' && (p.pgid == self.driver.pid || p.cmdline.contains(&marker))
            })
            .map(|p| SnapshotProcess {
                pid: p.pid,
                start: p.start,
                command: p.cmdline,
            })
            .collect();
        ProcessSnapshot { marker, processes }
    }

    fn marker(&self) -> String {
        self.profile.path().display().to_string()
    }

    /// Navigates and waits for the page's load event.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("navigating to {url}"))
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        let url = self
            .client
            .current_url()
            .await
            .context("reading the current URL")?;
        Ok(url.to_string())
    }

    /// The first element matching `css`, now (no waiting).
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("finding `{css}`"))
    }

    /// Every element matching `css`, now.
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .with_context(|| format!("finding all of `{css}`"))
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> anyhow::Result<bool> {
        Ok(!self.find_all(css).await?.is_empty())
    }

    /// Waits until an element matches `css` and returns it.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element> {
        until(
            &format!("an element matching `{css}`"),
            timeout,
            || async move { Ok(self.find_all(css).await?.into_iter().next()) },
        )
        .await
    }

    /// Waits until no element matches `css`.
    pub async fn wait_gone(&self, css: &str, timeout: Duration) -> anyhow::Result<()> {
        until(
            &format!("no element matching `{css}`"),
            timeout,
            || async move {
                let n = self.find_all(css).await?.len();
                if n == 0 {
                    Ok(Some(()))
                } else {
                    Err(anyhow!("{n} element(s) still match"))
                }
            },
        )
        .await
    }

    /// Waits until an element matching `css` has rendered text containing `needle`; returns that
    /// element's whole text. Text is what WebDriver sees: hidden elements have none.
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        until(
            &format!("`{css}` to show {needle:?}"),
            timeout,
            || async move {
                let elements = self.find_all(css).await?;
                if elements.is_empty() {
                    bail!("no element matches `{css}`");
                }
                let mut seen = Vec::new();
                for element in elements {
                    let text = element.text().await.context("reading element text")?;
                    if text.contains(needle) {
                        return Ok(Some(text));
                    }
                    seen.push(text);
                }
                Err(anyhow!("text was {}", abbreviate(&seen.join(" | "), 300)))
            },
        )
        .await
    }

    /// Waits until the current URL contains `needle`; returns the URL.
    pub async fn wait_for_url(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        until(
            &format!("the URL to contain {needle:?}"),
            timeout,
            || async move {
                let url = self.current_url().await?;
                if url.contains(needle) {
                    Ok(Some(url))
                } else {
                    Err(anyhow!("URL is {url}"))
                }
            },
        )
        .await
    }

    /// Polls `script` (a function body: use `return`) until it returns something truthy (not
    /// null, false, 0 or ""), and returns that value.
    pub async fn wait_for_js(
        &self,
        what: &str,
        script: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        until(what, timeout, || async move {
            let value = self.execute_js(script, Vec::new()).await?;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(_) | Value::Object(_) => true,
            };
            if truthy {
                Ok(Some(value))
            } else {
                Err(anyhow!("script returned {value}"))
            }
        })
        .await
    }

    /// Clicks the first element matching `css` (fails if it is hidden or covered).
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .click()
            .await
            .with_context(|| format!("clicking `{css}`"))
    }

    /// Types `text` into the first element matching `css` (appends to what it holds).
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .send_keys(text)
            .await
            .with_context(|| format!("typing into `{css}`"))
    }

    /// Empties the input matching `css`.
    pub async fn clear(&self, css: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .clear()
            .await
            .with_context(|| format!("clearing `{css}`"))
    }

    /// Focuses the first element matching `css` through JS; works for elements WebDriver deems
    /// not interactable, like xterm.js's off-screen `.xterm-helper-textarea`.
    pub async fn focus(&self, css: &str) -> anyhow::Result<()> {
        let focused = self
            .execute_js(
                "const el = document.querySelector(arguments[0]);
                 if (!el) { return 'missing'; }
                 el.focus();
                 return document.activeElement === el ? 'focused' : 'not focusable';",
                vec![json!(css)],
            )
            .await?;
        match focused.as_str() {
            Some("focused") => Ok(()),
            Some("missing") => bail!("no element matches `{css}`"),
            _ => bail!("`{css}` did not take the focus ({focused})"),
        }
    }

    /// Types `text` as real key presses into whatever has the focus (WebDriver actions), the way
    /// to drive an xterm.js terminal: `focus(".xterm-helper-textarea")` first. `'\n'` and `'\r'`
    /// press Enter; WebDriver key codes such as [`ENTER`] pass through.
    pub async fn send_keys_to_active(&self, text: &str) -> anyhow::Result<()> {
        let mut keys = KeyActions::new("caas-keyboard".to_string());
        for c in text.chars() {
            let c = if c == '\n' || c == '\r' { ENTER } else { c };
            keys = keys
                .then(KeyAction::Down { value: c })
                .then(KeyAction::Up { value: c });
        }
        self.client
            .perform_actions(keys)
            .await
            .with_context(|| format!("pressing keys {text:?}"))?;
        self.client
            .release_actions()
            .await
            .context("releasing the keys")
    }

    /// Presses Enter on whatever has the focus.
    pub async fn press_enter(&self) -> anyhow::Result<()> {
        self.send_keys_to_active(&ENTER.to_string()).await
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        self.find(css)
            .await?
            .text()
            .await
            .with_context(|| format!("reading the text of `{css}`"))
    }

    /// The `value` property of the first element matching `css` (inputs, textareas, selects).
    pub async fn value(&self, css: &str) -> anyhow::Result<String> {
        let value = self
            .find(css)
            .await?
            .prop("value")
            .await
            .with_context(|| format!("reading the value of `{css}`"))?;
        Ok(value.unwrap_or_default())
    }

    /// An attribute of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        self.find(css)
            .await?
            .attr(name)
            .await
            .with_context(|| format!("reading attribute {name} of `{css}`"))
    }

    /// The current DOM serialised as HTML.
    pub async fn page_source(&self) -> anyhow::Result<String> {
        self.client
            .source()
            .await
            .context("reading the page source")
    }

    /// Runs `script` as a function body (use `return`; arguments are `arguments[0..]`) and
    /// returns its JSON result. Elements come back as WebDriver element references.
    pub async fn execute_js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("running JS {}", abbreviate(script, 120)))
    }

    /// The cookies of the current page's origin, HttpOnly ones included.
    pub async fn cookies(&self) -> anyhow::Result<Vec<BrowserCookie>> {
        let value = self
            .driver_request(reqwest::Method::GET, "cookie", None)
            .await?;
        serde_json::from_value(value).context("decoding chromedriver's cookie list")
    }

    /// Browser console entries logged since the previous call (chromedriver hands each entry out
    /// once): `console.*` calls, uncaught exceptions, CSP violations, failed resource loads.
    pub async fn console_logs(&self) -> anyhow::Result<Vec<ConsoleEntry>> {
        let value = self
            .driver_request(
                reqwest::Method::POST,
                "se/log",
                Some(json!({ "type": "browser" })),
            )
            .await?;
        serde_json::from_value(value).context("decoding chromedriver's browser log")
    }

    /// Saves a PNG of the viewport as `<name>.png` in the artifacts directory.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot")?;
        let path = self.artifacts.join(format!("{}.png", file_stem(name)));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Saves `<name>.png` (screenshot), `<name>.html` (page source) and `<name>.console.txt`
    /// (URL and console entries) in the artifacts directory; tries all three and fails with what
    /// went wrong if any failed.
    pub async fn save_artifacts(&self, name: &str) -> anyhow::Result<Vec<PathBuf>> {
        let stem = file_stem(name);
        let mut saved = Vec::new();
        let mut problems = Vec::new();

        match tokio::time::timeout(ARTIFACT_TIMEOUT, self.screenshot(&stem)).await {
            Ok(Ok(path)) => saved.push(path),
            Ok(Err(e)) => problems.push(format!("{e:#}")),
            Err(_) => problems.push("screenshot timed out".to_string()),
        }

        let html = self.artifacts.join(format!("{stem}.html"));
        match tokio::time::timeout(ARTIFACT_TIMEOUT, self.page_source()).await {
            Ok(Ok(source)) => match std::fs::write(&html, source) {
                Ok(()) => saved.push(html),
                Err(e) => problems.push(format!("writing {}: {e}", html.display())),
            },
            Ok(Err(e)) => problems.push(format!("{e:#}")),
            Err(_) => problems.push("page source timed out".to_string()),
        }

        let mut report = String::new();
        match tokio::time::timeout(ARTIFACT_TIMEOUT, self.current_url()).await {
            Ok(Ok(url)) => report.push_str(&format!("url: {url}\n")),
            Ok(Err(e)) => report.push_str(&format!("url: ({e:#})\n")),
            Err(_) => report.push_str("url: (timed out)\n"),
        }
        match tokio::time::timeout(ARTIFACT_TIMEOUT, self.console_logs()).await {
            Ok(Ok(entries)) => {
                for entry in entries {
                    report.push_str(&format!("{} {}\n", entry.level, entry.message));
                }
            }
            Ok(Err(e)) => report.push_str(&format!("console: ({e:#})\n")),
            Err(_) => report.push_str("console: (timed out)\n"),
        }
        let console = self.artifacts.join(format!("{stem}.console.txt"));
        match std::fs::write(&console, report) {
            Ok(()) => saved.push(console),
            Err(e) => problems.push(format!("writing {}: {e}", console.display())),
        }

        if problems.is_empty() {
            Ok(saved)
        } else {
            bail!(
                "saving artifacts {stem}: {} (saved: {saved:?})",
                problems.join("; ")
            )
        }
    }

    /// Runs one named step of a test; if it fails, saves a screenshot, the page source and the
    /// console as `<name>.png/.html/.console.txt` in the artifacts directory and returns the
    /// error with where they are.
    pub async fn step<T, F>(&self, name: &str, step: F) -> anyhow::Result<T>
    where
        F: Future<Output = anyhow::Result<T>>,
    {
        tracing::info!(step = name, "browser step");
        match step.await {
            Ok(value) => Ok(value),
            Err(e) => {
                let saved = match self.save_artifacts(name).await {
                    Ok(paths) => format!(
                        "saved {}",
                        paths
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Err(save) => format!("{save:#}"),
                };
                Err(e.context(format!("browser step `{name}` failed ({saved})")))
            }
        }
    }

    /// Ends the WebDriver session (Chromium exits cleanly, flushing its net log) and then makes
    /// sure every process is gone. Dropping the browser does the same without reporting errors.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.closed = true;
        let result = tokio::time::timeout(STARTUP_TIMEOUT, self.client.clone().close()).await;
        self.driver.terminate();
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow!("closing the WebDriver session: {e}")),
            Err(_) => bail!("closing the WebDriver session timed out"),
        }
    }

    /// A chromedriver endpoint under this session, outside what fantoccini covers; returns the
    /// response's `value`.
    async fn driver_request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!(
            "http://127.0.0.1:{}/session/{}/{path}",
            self.port, self.session_id
        );
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let mut reply: Value = response
            .json()
            .await
            .with_context(|| format!("decoding the reply to {method} {url}"))?;
        if !status.is_success() {
            bail!("{method} {url}: {status}: {reply}");
        }
        Ok(reply
            .get_mut("value")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            // Best effort: a clean quit lets Chromium flush its files; the kill below is what
            // guarantees nothing survives.
            let _ = delete_session_blocking(self.port, &self.session_id);
        }
        self.driver.terminate();
    }
}

/// A fresh directory for a test's browser artifacts, `<target>/browser-artifacts/<test>`
/// (`CARGO_TARGET_DIR` if set), emptied first; it outlives the test so a failure can be looked at.
pub fn fresh_artifacts_dir(test: &str) -> anyhow::Result<PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .join("target"),
    };
    let dir = target.join("browser-artifacts").join(file_stem(test));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Reads a net log written with [`BrowserOptions::net_log`] (after the browser closed) and lists
/// everything in it that could have left this machine: a name resolved other than through the
/// `~NOTFOUND` rule, or bytes sent on a socket connected to a non-loopback address. Chromium
/// still *tries* background requests (account lookup, component updates, search engine; they
/// fail in the resolver) and `connect()`s a UDP socket to a public address to learn whether IPv6
/// is reachable, which sends nothing; neither is reported.
pub fn net_log_external_traffic(net_log: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(net_log)
        .with_context(|| format!("reading {}", net_log.display()))?;
    let log: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", net_log.display()))?;
    let names: std::collections::HashMap<u64, String> = log["constants"]["logEventTypes"]
        .as_object()
        .map(|types| {
            types
                .iter()
                .filter_map(|(name, id)| Some((id.as_u64()?, name.clone())))
                .collect()
        })
        .unwrap_or_default();
    let is_local = |s: &str| {
        s.contains("127.0.0.1")
            || s.contains("localhost")
            || s.contains("[::1]")
            || s.starts_with("127.")
    };
    let mut problems = Vec::new();
    let mut foreign_sockets = std::collections::BTreeMap::new();
    let mut sending_sockets = std::collections::BTreeSet::new();
    for event in log["events"].as_array().into_iter().flatten() {
        let kind = event["type"]
            .as_u64()
            .and_then(|t| names.get(&t))
            .map(String::as_str)
            .unwrap_or("?");
        let source = event["source"]["id"].as_u64().unwrap_or(0);
        let params = &event["params"];
        if kind.starts_with("HOST_RESOLVER") {
            if let Some(host) = params["host"].as_str() {
                if !is_local(host) && !host.contains("~notfound") {
                    problems.push(format!("resolved {host}"));
                }
            }
        }
        for key in ["address", "remote_address"] {
            if let Some(address) = params[key].as_str() {
                if !is_local(address) {
                    foreign_sockets.insert(source, format!("{kind} {address}"));
                }
            }
        }
        if kind.ends_with("BYTES_SENT") {
            sending_sockets.insert(source);
        }
    }
    for (source, what) in foreign_sockets {
        if sending_sockets.contains(&source) {
            problems.push(format!("sent data after {what}"));
        }
    }
    Ok(problems)
}

/// chromedriver, in a process group of its own so that it and every Chromium process it starts
/// can be killed together.
struct DriverProcess {
    child: Option<Child>,
    /// Its pid, which is also its process group id.
    pid: i32,
    /// The profile directory, named on the command line of every process that leaves the group.
    marker: String,
}

impl DriverProcess {
    fn spawn(program: &Path, port: u16, profile: &Path, log: &Path) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(program)
            .arg(format!("--port={port}"))
            // Chromium's config (and its crash handler's database), cache and NSS database live
            // in the profile, not in /root; the crash handler's command line then names it.
            .env("XDG_CONFIG_HOME", profile.join("config"))
            .env("XDG_CACHE_HOME", profile.join("cache"))
            .env("HOME", profile.join("home"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {} through setpriv", program.display()))?;
        let pid = i32::try_from(child.id()).context("chromedriver pid out of range")?;
        Ok(Self {
            child: Some(child),
            pid,
            marker: profile.display().to_string(),
        })
    }

    /// Whether chromedriver has exited (a zombie not yet reaped counts as exited).
    fn has_exited(&self) -> bool {
        read_process(self.pid).is_none_or(|p| p.state == 'Z')
    }

    /// SIGKILLs the process group and every process naming the marker, repeating until none is
    /// left running, then reaps chromedriver. chromedriver stays unreaped until then, so its pid
    /// (the group id) cannot be reused by an unrelated process meanwhile.
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let marker = self.marker.as_str();
        let group = nix::unistd::Pid::from_raw(self.pid);
        let deadline = Instant::now() + KILL_TIMEOUT;
        loop {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let left: Vec<ProcessInfo> = all_processes()
                .into_iter()
                .filter(|p| p.state != 'Z' && (p.pgid == self.pid || p.cmdline.contains(marker)))
                .collect();
            if left.is_empty() {
                break;
            }
            for p in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = left
                    .iter()
                    .map(|p| format!("{} {}", p.pid, abbreviate(&p.cmdline, 100)))
                    .collect();
                tracing::error!(?names, "browser processes survived SIGKILL");
                eprintln!("browser processes survived SIGKILL: {names:?}");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // Reached with a live child only when `Browser::start` failed half-way.
        self.terminate();
    }
}

/// Starts chromedriver on a free port and waits until it reports ready; retries with another
/// port when it exits at once (the port was taken between choosing and binding it).
async fn spawn_driver_until_ready(
    program: &Path,
    profile: &Path,
    log: &Path,
) -> anyhow::Result<(DriverProcess, u16)> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client for chromedriver")?;
    let mut last = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        if port == 0 {
            bail!("found no free port for chromedriver");
        }
        let driver = DriverProcess::spawn(program, port, profile, log)?;
        let status_url = format!("http://127.0.0.1:{port}/status");
        let outcome = until(
            &format!("chromedriver to answer on port {port}"),
            STARTUP_TIMEOUT,
            || {
                let http = &http;
                let status_url = &status_url;
                let driver = &driver;
                async move {
                    if driver.has_exited() {
                        return Ok(Some(Err(())));
                    }
                    let reply: Value = http
                        .get(status_url)
                        .send()
                        .await
                        .context("GET /status")?
                        .json()
                        .await
                        .context("decoding /status")?;
                    if reply["value"]["ready"] == json!(true) {
                        Ok(Some(Ok(())))
                    } else {
                        Err(anyhow!("not ready: {reply}"))
                    }
                }
            },
        )
        .await
        .with_context(|| format!("chromedriver log:\n{}", log_tail(log, 30)))?;
        match outcome {
            Ok(()) => return Ok((driver, port)),
            Err(()) => last = log_tail(log, 30),
        }
    }
    bail!("chromedriver exited at start three times; its log:\n{last}")
}

/// A launcher script that runs Chromium with `--pdeathsig KILL`, so it dies with chromedriver.
fn write_launcher(profile: &Path, chromium: &Path) -> anyhow::Result<PathBuf> {
    let quoted = chromium.display().to_string().replace('\'', r"'\''");
    let script = format!("#!/bin/sh\nexec setpriv --pdeathsig KILL -- '{quoted}' \"$@\"\n");
    let path = profile.join("chromium-launcher");
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))?;
    Ok(path)
}

/// The WebDriver capabilities: headless Chromium as root, a fresh profile, and no name lookups
/// or background connections, so the browser reaches nothing but 127.0.0.1.
fn capabilities(
    options: &BrowserOptions,
    profile: &Path,
    launcher: &Path,
    artifacts: &Path,
) -> serde_json::Map<String, Value> {
    let (width, height) = options.window;
    let mut args = vec![
        "--headless=new".to_string(),
        // Chromium runs as root here; its sandbox refuses that.
        "--no-sandbox".to_string(),
        "--disable-gpu".to_string(),
        "--disable-dev-shm-usage".to_string(),
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", profile.join("user-data").display()),
        "--no-first-run".to_string(),
        "--no-default-browser-check".to_string(),
        "--disable-background-networking".to_string(),
        "--disable-sync".to_string(),
        "--disable-default-apps".to_string(),
        "--disable-component-update".to_string(),
        "--disable-extensions".to_string(),
        "--dns-prefetch-disable".to_string(),
        "--disable-domain-reliability".to_string(),
        "--disable-client-side-phishing-detection".to_string(),
        "--no-pings".to_string(),
        "--disable-breakpad".to_string(),
        "--password-store=basic".to_string(),
        "--no-proxy-server".to_string(),
        "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,\
         CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,\
         NetworkTimeServiceQuerying"
            .to_string(),
        // Every host name fails to resolve without a query leaving the machine; only the
        // loopback names work.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost".to_string(),
    ];
    if options.net_log {
        args.push(format!(
            "--log-net-log={}",
            artifacts.join("chromium-netlog.json").display()
        ));
    }
    let ms = u64::try_from(options.command_timeout.as_millis()).unwrap_or(u64::MAX);
    let caps = json!({
        "browserName": "chrome",
        "pageLoadStrategy": "normal",
        "timeouts": { "implicit": 0, "pageLoad": ms, "script": ms },
        "goog:loggingPrefs": { "browser": "ALL" },
        "goog:chromeOptions": {
            "binary": launcher.display().to_string(),
            "args": args,
            // No sign-in (its account lookup) and no preconnects to the search engine.
            "prefs": {
                "signin": { "allowed": false },
                "net": { "network_prediction_options": 2 },
            },
        },
    });
    match caps {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// `DELETE /session/<id>` over a plain blocking socket (usable in `Drop`, inside or outside a
/// runtime); waits for chromedriver's reply, which comes once Chromium has quit.
fn delete_session_blocking(port: u16, session_id: &str) -> std::io::Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, DROP_CLOSE_TIMEOUT)?;
    stream.set_read_timeout(Some(DROP_CLOSE_TIMEOUT))?;
    stream.set_write_timeout(Some(DROP_CLOSE_TIMEOUT))?;
    write!(
        stream,
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver answers once Chromium has quit; the status line is all that matters (it may
    // keep the connection open, so do not wait for the end of the stream).
    let mut reply = [0u8; 512];
    let n = stream.read(&mut reply)?;
    if n == 0 {
        return Err(std::io::Error::other("chromedriver closed without a reply"));
    }
    Ok(())
}

/// What /proc says about one process.
#[derive(Debug)]
struct ProcessInfo {
    pid: i32,
    state: char,
    pgid: i32,
    /// Start time in clock ticks since boot, to tell a reused pid apart.
    start: u64,
    /// NUL-separated arguments joined with spaces.
    cmdline: String,
}

fn read_process(pid: i32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state) of proc(5): pgrp is field 5, starttime field 22.
    let state = fields.first()?.chars().next()?;
    let pgid = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some(ProcessInfo {
        pid,
        state,
        pgid,
        start,
        cmdline,
    })
}

fn all_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_process)
        .collect()
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `name` made safe as a file name: letters, digits, `.`, `_` and `-` kept, the rest `_`.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() || stem.starts_with('.') {
        format!("step{stem}")
    } else {
        stem
    }
}

fn abbreviate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}
