#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

//! Time from `container create` to the app answering, for a jar on `caas/sofa-jdk17` through
//! the real platform path, against the same jar run with `java -jar` in a plain container of
//! `caas-ref/debian-jre17` (no supervisord, no sshd), measured in the same run.
//!
//! `ROUNDS=5 cargo bench -p caas-tests --bench sofa_start`
//!
//! Environment: `ROUNDS` (timed rounds per path, default 5), `WARMUP` (untimed rounds per path
//! first, default 1), `CPU` / `MEMORY` (the workload's `--cpu` / `--memory`; unset means no
//! flag, so central's defaults apply). Needs what the end-to-end tests need (Docker, Java for
//! ZooKeeper, busybox-static, netns) plus `javac`/`jar` 17 on the host. No registry, no network.
//!
//! * Fixture: a ~20-line `com.sun.net.httpserver` server answering "hello" on 8080, compiled
//!   with `javac` and packed with `jar --create --main-class`, built into two throwaway images
//!   (`--network=none`): `caas-bench/jar-sofa:<hash>` (`FROM caas/sofa-jdk17:latest`, jar in
//!   `/home/admin/app.jar`) and `caas-bench/jar-ref:<hash>` (`FROM caas-ref/debian-jre17:<tag>`,
//!   `CMD ["java", "-jar", "/app.jar"]`).
//! * sofa path: ZooKeeper + one central + one agent (`caas_tests::cluster::Cluster`), a pool with
//!   an SSH key, then `caas container create jarN --rich --image caas-bench/jar-sofa:<hash> --
//!   java -jar /home/admin/app.jar` through the CLI. t0 is taken right before the CLI runs.
//! * reference path: bollard create + start of the reference image, `network_mode: none`, with
//!   the same cpu/memory limits the sofa workload got (swap = memory, as the agent sets them).
//!   t0 is taken right before the create.
//! * "Answers": the container's network namespace (the sandbox's for sofa, found by its labels;
//!   the container's own for the reference) is entered by a short-lived thread with `setns`,
//!   which connects to 127.0.0.1:8080 and sends `GET /` every 20 ms until "hello" comes back,
//!   the way the agent's health prober reaches workloads (they have network none).
//! * Rounds alternate (sofa first, then reference first, ...). Teardown is never timed: the sofa
//!   workload is removed with `container rm --purge-data` and the bench waits until its
//!   containers are gone; the reference container is removed with `rm -f -v`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, CreateContainerOptions, ListContainersOptions,
    RemoveContainerOptions,
};
use bollard::Docker;
use caas_agent::naming::{LABEL_NAME, LABEL_NODE, LABEL_ROLE};
use caas_api::central::ContainerView;
use caas_tests::cluster::{Cluster, NodeSpec};
use futures::StreamExt;
use sha2::{Digest, Sha256};

const POOL: &str = "jarbench";
const PORT: u16 = 8080;
/// Interval of every poll on the timed path (sandbox lookup, HTTP probe).
const POLL: Duration = Duration::from_millis(20);
/// Longest a round may take from t0 to the answer.
const ROUND_TIMEOUT: Duration = Duration::from_secs(180);
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// Label (value: this process's pid) on everything the bench creates itself.
const BENCH_LABEL: &str = "caas-bench.sofa-start";
const SOFA_BASE: &str = "caas/sofa-jdk17:latest";
const SOFA_REPO: &str = "caas-bench/jar-sofa";
const REF_REPO: &str = "caas-bench/jar-ref";
const SOFA_JAR: &str = "/home/admin/app.jar";
const SUPERVISORD_LOG: &str = "/home/admin/logs/supervisord.log";

const HELLO_JAVA: &str = r#"import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

/** The bench fixture: answers "hello" to every request on port 8080. */
public class Hello {
    public static void main(String[] args) throws Exception {
        byte[] body = "hello\n".getBytes(StandardCharsets.US_ASCII);
        HttpServer server = HttpServer.create(new InetSocketAddress(8080), 0);
        server.createContext("/", exchange -> {
            exchange.getResponseHeaders().set("Content-Type", "text/plain");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
        System.out.println("hello: listening on 8080");
    }
}
"#;

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug)]
struct Settings {
    rounds: usize,
    warmup: usize,
    cpu: Option<String>,
    memory: Option<String>,
}

fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a count")),
        _ => Ok(default),
    }
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v != "default")
}

fn settings() -> Result<Settings> {
    let s = Settings {
        rounds: env_count("ROUNDS", 5)?,
        warmup: env_count("WARMUP", 1)?,
        cpu: env_text("CPU"),
        memory: env_text("MEMORY"),
    };
    if s.rounds == 0 {
        bail!("ROUNDS must be at least 1");
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Time helpers

fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYY-MM-DD` + `HH:MM:SS[.,]frac` (UTC) -> unix µs.
fn civil_micros(date: &str, time: &str) -> Option<i64> {
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = match time.split_once(['.', ',']) {
        Some((hms, frac)) => (hms, frac),
        None => (time, "0"),
    };
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    let digits: String = frac
        .chars()
        .take_while(char::is_ascii_digit)
        .take(6)
        .collect();
    let micros = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10_i64.pow(6 - digits.len() as u32)
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60 + s) * 1_000_000 + micros)
}

/// Docker's `2026-11-22T01:44:12.123456789Z`.
fn docker_time_micros(text: &str) -> Option<i64> {
    let (date, time) = text.trim().split_once('T')?;
    civil_micros(date, time.trim_end_matches('Z'))
}

/// supervisord's log line `2026-11-22 01:44:12,345 INFO spawned: 'app' with pid 42` (its local
/// time; the sofa images run in UTC).
fn supervisord_line_micros(line: &str) -> Option<i64> {
    let mut parts = line.split_whitespace();
    civil_micros(parts.next()?, parts.next()?)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Cleanup guards

fn docker_cli(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes the bench's own containers (by label) and then its images, on drop. Declared before
/// the cluster, so it drops after it: by then the cluster has removed the sofa workloads'
/// containers and no container uses the images any more.
struct BenchGuard {
    images: Vec<String>,
}

impl BenchGuard {
    fn new() -> Self {
        sweep_dead_runs();
        Self { images: Vec::new() }
    }
}

fn remove_labelled_containers(filter: &str) {
    if let Some(ids) = docker_cli(&["ps", "-aq", "--filter", filter]) {
        let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            let _ = docker_cli(&args);
        }
    }
}

impl Drop for BenchGuard {
    fn drop(&mut self) {
        remove_labelled_containers(&format!("label={BENCH_LABEL}={}", std::process::id()));
        for image in &self.images {
            let _ = docker_cli(&["image", "rm", image]);
        }
    }
}

/// Containers and images of earlier runs of this bench whose process is gone (killed runs).
fn sweep_dead_runs() {
    let dead =
        |pid: &str| pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists();
    let format = format!("{{{{.ID}}}} {{{{index .Labels \"{BENCH_LABEL}\"}}}}");
    if let Some(list) = docker_cli(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={BENCH_LABEL}"),
        "--format",
        &format,
    ]) {
        for (id, pid) in list.lines().filter_map(|l| l.split_once(' ')) {
            if dead(pid) {
                let _ = docker_cli(&["rm", "-f", "-v", id]);
            }
        }
    }
    for repo in [SOFA_REPO, REF_REPO] {
        let Some(tags) = docker_cli(&["images", repo, "--format", "{{.Repository}}:{{.Tag}}"])
        else {
            continue;
        };
        for tag in tags.lines().filter(|l| !l.is_empty()) {
            let owner = docker_cli(&[
                "image",
                "inspect",
                tag,
                "--format",
                &format!("{{{{index .Config.Labels \"{BENCH_LABEL}\"}}}}"),
            ])
            .unwrap_or_default();
            if dead(owner.trim()) {
                let _ = docker_cli(&["image", "rm", tag]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture jar and images

struct Fixture {
    _dir: tempfile::TempDir,
    jar: Vec<u8>,
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {what} (needs a JDK 17 on the host)"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn build_jar() -> Result<Fixture> {
    let dir = tempfile::Builder::new()
        .prefix("caas-bench-jar-")
        .tempdir()?;
    let src = dir.path().join("Hello.java");
    std::fs::write(&src, HELLO_JAVA)?;
    let classes = dir.path().join("classes");
    run(
        Command::new("javac")
            .args(["--release", "17", "-d"])
            .arg(&classes)
            .arg(&src),
        "javac",
    )?;
    let jar = dir.path().join("app.jar");
    run(
        Command::new("jar")
            .args(["--create", "--file"])
            .arg(&jar)
            .args(["--main-class", "Hello", "-C"])
            .arg(&classes)
            .arg("."),
        "jar",
    )?;
    Ok(Fixture {
        jar: std::fs::read(&jar)?,
        _dir: dir,
    })
}

fn tar_context(dockerfile: &str, files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, body: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, body)?;
        Ok(())
    };
    add("Dockerfile", dockerfile.as_bytes())?;
    for (path, body) in files {
        add(path, body)?;
    }
    Ok(b.into_inner()?)
}

/// Builds `tag` from a Dockerfile and the jar with the classic builder and no network.
async fn build_image(docker: &Docker, tag: &str, dockerfile: &str, jar: &[u8]) -> Result<()> {
    let context = tar_context(dockerfile, &[("app.jar", jar)])?;
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.to_string()),
        rm: true,
        forcerm: true,
        networkmode: Some("none".into()),
        labels: Some(HashMap::from([(
            BENCH_LABEL.to_string(),
            std::process::id().to_string(),
        )])),
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    };
    let mut stream = docker.build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    let mut log = String::new();
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("building {tag}:\n{log}"))?;
        if let Some(text) = info.stream {
            log.push_str(&text);
        }
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            bail!("building {tag}: {message}\n{log}");
        }
    }
    docker
        .inspect_image(tag)
        .await
        .with_context(|| format!("{tag} missing after its build:\n{log}"))?;
    Ok(())
}

fn reference_base() -> Result<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("supervisor-images")
        .join("reference-jre-image");
    let out = Command::new(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tag = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if tag.is_empty() {
        bail!("{} printed no tag", script.display());
    }
    Ok(tag)
}

async fn image_id(docker: &Docker, image: &str) -> Result<String> {
    docker
        .inspect_image(image)
        .await
        .with_context(|| format!("image {image} is missing"))?
        .id
        .with_context(|| format!("image {image} has no id"))
}

// ---------------------------------------------------------------------------------------------
// Probing

/// `GET /` on 127.0.0.1:8080 of the current network namespace; Ok when the body is "hello".
fn get_hello(timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], PORT));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("sending: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("reading: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && body.trim() == "hello" => Ok(()),
        _ => Err(format!("unexpected answer {text:?}")),
    }
}

/// In the network namespace of `pid`: probes every [`POLL`] until "hello" comes back. Returns
/// the instant of the answer and the number of attempts.
fn probe_in_netns(pid: i64, deadline: Instant) -> Result<(Instant, u32)> {
    let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .with_context(|| format!("opening the network namespace of pid {pid}"))?;
    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
        .context("entering the container's network namespace (run as root)")?;
    let mut attempts = 0;
    loop {
        let tick = Instant::now();
        attempts += 1;
        let last = match get_hello(Duration::from_secs(2)) {
            Ok(()) => return Ok((Instant::now(), attempts)),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            bail!("no \"hello\" from pid {pid}'s 127.0.0.1:{PORT} after {attempts} attempts; last: {last}");
        }
        std::thread::sleep(POLL.saturating_sub(tick.elapsed()));
    }
}

/// Runs [`probe_in_netns`] on a thread of its own: `setns` changes only the calling thread, so
/// no runtime thread ever leaves the host's namespace.
async fn wait_for_hello(pid: i64, deadline: Instant) -> Result<(Instant, u32)> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("hello-probe".into())
        .spawn(move || {
            let _ = tx.send(probe_in_netns(pid, deadline));
        })
        .context("starting the probe thread")?;
    rx.await
        .map_err(|_| anyhow!("the probe thread ended without a result"))?
}

/// Seconds of CPU the container's cgroup has used (cgroup v1 or v2), if readable.
fn cgroup_cpu_secs(id: &str) -> Option<f64> {
    let v1 = format!("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage");
    if let Ok(text) = std::fs::read_to_string(v1) {
        return text.trim().parse::<f64>().ok().map(|ns| ns / 1e9);
    }
    for v2 in [
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat"),
        format!("/sys/fs/cgroup/docker/{id}/cpu.stat"),
    ] {
        if let Ok(text) = std::fs::read_to_string(v2) {
            return text
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|us| us / 1e6);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Samples

/// One timed round of one path. Every time is seconds from t0; NaN when not applicable or not
/// observable.
#[derive(Debug, Clone)]
struct Sample {
    /// t0 -> "hello".
    answer: f64,
    /// sofa: the CLI returned (central committed). reference: create returned.
    requested: f64,
    /// sofa: the sandbox's pid was seen. reference: start returned.
    netns_ready: f64,
    /// Docker's `State.StartedAt` of the app container.
    app_started: f64,
    /// sofa: supervisord's first log line / its `spawned: 'app'` line.
    supervisord_up: f64,
    app_spawned: f64,
    /// CPU seconds the app container had used when it answered.
    cpu: f64,
    attempts: u32,
}

impl Sample {
    fn new(answer: f64) -> Self {
        Self {
            answer,
            requested: f64::NAN,
            netns_ready: f64::NAN,
            app_started: f64::NAN,
            supervisord_up: f64::NAN,
            app_spawned: f64::NAN,
            cpu: f64::NAN,
            attempts: 0,
        }
    }
}

fn rel(wall0_us: i64, at_us: Option<i64>) -> f64 {
    at_us.map_or(f64::NAN, |t| (t - wall0_us) as f64 / 1e6)
}

// ---------------------------------------------------------------------------------------------
// The two paths

struct Bench {
    docker: Docker,
    cluster: Cluster,
    token: String,
    node: String,
    sofa_image: String,
    ref_image: String,
    settings: Settings,
    /// Limits the sofa workloads got (from central's answer): (nano cpus, memory bytes).
    limits: Option<(Option<i64>, Option<i64>)>,
}

impl Bench {
    async fn cli(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["--pool", POOL];
        all.extend_from_slice(args);
        let out = self.cluster.cli(0, &self.token, &all).await?;
        if out.code != Some(0) {
            bail!(
                "caas {}: exit {:?}\n{}{}",
                all.join(" "),
                out.code,
                out.stdout,
                out.stderr
            );
        }
        Ok(out.stdout)
    }

    /// Ids of the workload's containers (all states), optionally of one role.
    async fn workload_containers(&self, name: &str, role: Option<&str>) -> Result<Vec<String>> {
        let mut labels = vec![
            format!("{LABEL_NODE}={}", self.node),
            format!("{LABEL_NAME}={name}"),
        ];
        if let Some(role) = role {
            labels.push(format!("{LABEL_ROLE}={role}"));
        }
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([("label".to_string(), labels)])),
                ..Default::default()
            }))
            .await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Pid of the workload's running sandbox, polled every [`POLL`].
    async fn sandbox_pid(&self, name: &str, deadline: Instant) -> Result<i64> {
        loop {
            for id in self.workload_containers(name, Some("sandbox")).await? {
                // A container listed a moment ago may be gone: keep polling.
                let Ok(details) = self.docker.inspect_container(&id, None).await else {
                    continue;
                };
                if let Some(pid) = details.state.and_then(|s| s.pid).filter(|p| *p > 0) {
                    return Ok(pid);
                }
            }
            if Instant::now() >= deadline {
                bail!("{name}: no running sandbox");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn create_args<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        let mut args = vec!["-o", "json", "container", "create", name, "--rich"];
        args.extend(["--image", self.sofa_image.as_str()]);
        if let Some(cpu) = &self.settings.cpu {
            args.extend(["--cpu", cpu.as_str()]);
        }
        if let Some(memory) = &self.settings.memory {
            args.extend(["--memory", memory.as_str()]);
        }
        args.extend(["--", "java", "-jar", SOFA_JAR]);
        args
    }

    async fn sofa_round(&mut self, name: &str) -> Result<Sample> {
        let result = self.sofa_timed(name).await;
        let teardown = self.sofa_teardown(name).await;
        match (result, teardown) {
            (Ok(s), Ok(())) => Ok(s),
            (Err(e), _) => Err(e.context(format!(
                "sofa round {name}; agent log tail:\n{}",
                tail(&self.cluster.agents[0].log(), 30)
            ))),
            (Ok(_), Err(e)) => Err(e),
        }
    }

    async fn sofa_timed(&mut self, name: &str) -> Result<Sample> {
        let args = self.create_args(name);
        let wall0 = unix_micros(SystemTime::now());
        let t0 = Instant::now();
        let deadline = t0 + ROUND_TIMEOUT;
        let created = self.cli(&args).await.context("container create")?;
        let requested = t0.elapsed();
        let pid = self
            .sandbox_pid(name, deadline)
            .await
            .context("finding the sandbox")?;
        let netns_ready = t0.elapsed();
        let (at, attempts) = wait_for_hello(pid, deadline)
            .await
            .with_context(|| format!("waiting for hello in sandbox pid {pid}"))?;
        let answer = at.duration_since(t0);

        // Not timed: where the time went.
        let app = self
            .workload_containers(name, Some("app"))
            .await
            .context("listing the app container")?
            .into_iter()
            .next()
            .context("no app container")?;
        let cpu = cgroup_cpu_secs(&app).unwrap_or(f64::NAN);
        let views: Vec<ContainerView> =
            serde_json::from_str(&created).context("`container create -o json` output")?;
        let view = views.first().context("create returned no container")?;
        let limits = view.spec.resources.parse()?;
        self.limits = Some((
            limits.cpu_millis.map(|m| {
                i64::try_from(m)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1_000_000)
            }),
            limits
                .memory_bytes
                .map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
        ));
        let started = self
            .docker
            .inspect_container(&app, None)
            .await
            .with_context(|| format!("inspecting the app container {app}"))?
            .state
            .and_then(|s| s.started_at)
            .and_then(|t| docker_time_micros(&t));
        let log = docker_cli(&["exec", &app, "cat", SUPERVISORD_LOG]).unwrap_or_default();
        let first_line = log.lines().find_map(supervisord_line_micros);
        let spawned = log
            .lines()
            .find(|l| l.contains("spawned: 'app'"))
            .and_then(supervisord_line_micros);
        let mut s = Sample::new(secs(answer));
        s.requested = secs(requested);
        s.netns_ready = secs(netns_ready);
        s.app_started = rel(wall0, started);
        s.supervisord_up = rel(wall0, first_line);
        s.app_spawned = rel(wall0, spawned);
        s.cpu = cpu;
        s.attempts = attempts;
        Ok(s)
    }

    async fn sofa_teardown(&self, name: &str) -> Result<()> {
        self.cli(&["container", "rm", name, "--purge-data"]).await?;
        let deadline = Instant::now() + TEARDOWN_TIMEOUT;
        while !self.workload_containers(name, None).await?.is_empty() {
            if Instant::now() >= deadline {
                bail!("{name}: containers still there {TEARDOWN_TIMEOUT:?} after rm");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    async fn reference_round(&self, n: &str) -> Result<Sample> {
        let name = format!("caas-bench-jarref-{}-{n}", std::process::id());
        let (nano_cpus, memory) = self
            .limits
            .context("the reference needs the sofa workload's limits: run a sofa round first")?;
        let body = ContainerCreateBody {
            image: Some(self.ref_image.clone()),
            labels: Some(HashMap::from([(
                BENCH_LABEL.to_string(),
                std::process::id().to_string(),
            )])),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                nano_cpus,
                memory,
                memory_swap: memory,
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let mut id = None;
        let result = self.reference_timed(options, body, &mut id).await;
        if let Some(id) = id {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            self.docker
                .remove_container(&id, Some(options))
                .await
                .with_context(|| format!("removing {name}"))?;
        }
        result.with_context(|| format!("reference round {name}"))
    }

    async fn reference_timed(
        &self,
        options: CreateContainerOptions,
        body: ContainerCreateBody,
        id_out: &mut Option<String>,
    ) -> Result<Sample> {
        let wall0 = unix_micros(SystemTime::now());
        let t0 = Instant::now();
        let deadline = t0 + ROUND_TIMEOUT;
        let id = self.docker.create_container(Some(options), body).await?.id;
        *id_out = Some(id.clone());
        let requested = t0.elapsed();
        self.docker.start_container(&id, None).await?;
        let started_returned = t0.elapsed();
        let pid = self
            .docker
            .inspect_container(&id, None)
            .await?
            .state
            .and_then(|s| s.pid)
            .filter(|p| *p > 0)
            .context("the reference container is not running")?;
        let (at, attempts) = wait_for_hello(pid, deadline).await?;
        let answer = at.duration_since(t0);
        let cpu = cgroup_cpu_secs(&id).unwrap_or(f64::NAN);
        let started = self
            .docker
            .inspect_container(&id, None)
            .await?
            .state
            .and_then(|s| s.started_at)
            .and_then(|t| docker_time_micros(&t));
        let mut s = Sample::new(secs(answer));
        s.requested = secs(requested);
        s.netns_ready = secs(started_returned);
        s.app_started = rel(wall0, started);
        s.cpu = cpu;
        s.attempts = attempts;
        Ok(s)
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Statistics and report

fn finite(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The median (mean of the two middle values for an even count).
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let v = finite(values);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile (p90 of 5 values is the largest).
fn nearest_rank(values: impl IntoIterator<Item = f64>, p: f64) -> f64 {
    let v = finite(values);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let v = finite(values);
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn fmt_s(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "-".to_string()
    }
}

fn stage_row(what: &str, values: Vec<f64>) {
    let n = finite(values.iter().copied()).len();
    println!(
        "| {what:<52} | {n:>2} | {:>7} | {:>7} | {:>7} |",
        fmt_s(median(values.iter().copied())),
        fmt_s(nearest_rank(values.iter().copied(), 90.0)),
        fmt_s(mean(values.iter().copied())),
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn describe_limits(limits: Option<(Option<i64>, Option<i64>)>) -> String {
    let Some((cpu, mem)) = limits else {
        return "unknown".into();
    };
    let cpu = cpu.map_or("unlimited".to_string(), |n| {
        format!("{} CPU", n as f64 / 1e9)
    });
    let mem = mem.map_or("unlimited".to_string(), |b| {
        format!("{} MiB (swap = memory)", b / (1024 * 1024))
    });
    format!("{cpu}, memory {mem}")
}

// ---------------------------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let settings = settings()?;
    // Before the cluster's own (test-writer, info) subscriber: only warnings, on stderr.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .try_init();
    let load_before = loadavg();
    let docker = caas_tests::images::docker().await?;
    let version = docker.version().await?;
    let info = docker.info().await?;

    eprintln!("sofa_start: images (supervisor-images/build, reference-jre-image), fixture jar");
    caas_tests::sofa::ensure_images()?;
    let ref_base = reference_base()?;
    let fixture = build_jar()?;
    let sofa_base_id = image_id(&docker, SOFA_BASE).await?;
    let ref_base_id = image_id(&docker, &ref_base).await?;
    let hash = |base: &str| {
        let mut h = Sha256::new();
        h.update(base.as_bytes());
        h.update(&fixture.jar);
        hex::encode(h.finalize())[..12].to_string()
    };
    let sofa_image = format!("{SOFA_REPO}:{}", hash(&sofa_base_id));
    let ref_image = format!("{REF_REPO}:{}", hash(&ref_base_id));

    // Drops after the cluster (declared before it): containers first, then these images.
    let mut guard = BenchGuard::new();
    guard.images.push(sofa_image.clone());
    build_image(
        &docker,
        &sofa_image,
        &format!("FROM {SOFA_BASE}\nCOPY app.jar {SOFA_JAR}\n"),
        &fixture.jar,
    )
    .await?;
    guard.images.push(ref_image.clone());
    build_image(
        &docker,
        &ref_image,
        &format!(
            "FROM {ref_base}\nCOPY app.jar /app.jar\nCMD [\"java\", \"-jar\", \"/app.jar\"]\n"
        ),
        &fixture.jar,
    )
    .await?;

    eprintln!("sofa_start: starting ZooKeeper, central and an agent");
    let cluster = Cluster::start("sofab", &[NodeSpec::new(POOL, &[])], 1, 30).await?;
    let keys = tempfile::tempdir()?;
    let (_key, public) = caas_tests::sofa::ssh_keypair(keys.path(), "bench")?;
    let admin = cluster.admin_token.clone();
    let out = cluster
        .cli(
            0,
            &admin,
            &["pool", "create", POOL, "--ssh-key", &public, "-o", "json"],
        )
        .await?;
    if out.code != Some(0) {
        bail!("pool create: {out:?}");
    }
    let token = serde_json::from_str::<serde_json::Value>(&out.stdout)?["token"]
        .as_str()
        .context("pool create printed no token")?
        .to_string();
    let node = cluster.node_ids[0].clone();
    let mut bench = Bench {
        docker,
        cluster,
        token,
        node,
        sofa_image,
        ref_image,
        settings,
        limits: None,
    };

    let rounds = bench.settings.rounds;
    let warmup = bench.settings.warmup;
    eprintln!("sofa_start: {warmup} warm-up round(s), then {rounds} timed rounds per path");
    for i in 1..=warmup {
        let s = bench.sofa_round(&format!("jarw{i}")).await?;
        let r = bench.reference_round(&format!("w{i}")).await?;
        eprintln!(
            "  warm-up {i}: sofa {:.3}s, plain JRE {:.3}s (not counted)",
            s.answer, r.answer
        );
    }
    let mut sofa = Vec::with_capacity(rounds);
    let mut plain = Vec::with_capacity(rounds);
    let mut sofa_first = Vec::with_capacity(rounds);
    for n in 1..=rounds {
        // Alternate which path goes first, so drift and "who went first" hit both alike. The
        // first round is sofa-first: the reference takes the limits the sofa workload got.
        let first = n % 2 == 1 || bench.limits.is_none();
        if first {
            sofa.push(bench.sofa_round(&format!("jar{n}")).await?);
            plain.push(bench.reference_round(&n.to_string()).await?);
        } else {
            plain.push(bench.reference_round(&n.to_string()).await?);
            sofa.push(bench.sofa_round(&format!("jar{n}")).await?);
        }
        sofa_first.push(first);
        eprintln!(
            "  round {n}/{rounds}: sofa {:.3}s, plain JRE {:.3}s",
            sofa[n - 1].answer,
            plain[n - 1].answer
        );
    }

    // Report.
    println!();
    println!(
        "# caas sofa_start: container create -> app answers, {rounds} rounds per path (+{warmup} warm-up)"
    );
    println!(
        "Docker {} (API {}), storage {}, cgroup v{} ({}), {} CPUs; load average at start {load_before}, at end {}.",
        version.version.unwrap_or_default(),
        version.api_version.unwrap_or_default(),
        info.driver.unwrap_or_default(),
        info.cgroup_version
            .map(|v| v.to_string())
            .unwrap_or_default(),
        info.cgroup_driver
            .map(|v| v.to_string())
            .unwrap_or_default(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        loadavg()
    );
    println!(
        "sofa: {} on {SOFA_BASE} ({}), `caas container create jarN --rich --image ...{}{} -- java -jar {SOFA_JAR}` through central + agent.",
        bench.sofa_image,
        &sofa_base_id.trim_start_matches("sha256:")[..12],
        bench
            .settings
            .cpu
            .as_ref()
            .map(|c| format!(" --cpu {c}"))
            .unwrap_or_default(),
        bench
            .settings
            .memory
            .as_ref()
            .map(|m| format!(" --memory {m}"))
            .unwrap_or_default(),
    );
    println!(
        "plain JRE: {} on {ref_base}, bollard create+start, CMD java -jar /app.jar, network none.",
        bench.ref_image
    );
    println!(
        "Limits on both app containers: {}.",
        describe_limits(bench.limits)
    );
    println!("Answer = first `GET /` on 127.0.0.1:{PORT} in the container's netns that returns \"hello\" (polled every {} ms).", POLL.as_millis());
    println!();
    println!("## per round (seconds from t0 to \"hello\")");
    println!("| round | first | sofa s | plain JRE s | ratio | sofa probes | plain probes |");
    println!("|------:|-------|-------:|------------:|------:|------------:|-------------:|");
    for n in 0..rounds {
        println!(
            "| {:>5} | {:<5} | {:>6.3} | {:>11.3} | {:>5.2} | {:>11} | {:>12} |",
            n + 1,
            if sofa_first[n] { "sofa" } else { "plain" },
            sofa[n].answer,
            plain[n].answer,
            sofa[n].answer / plain[n].answer,
            sofa[n].attempts,
            plain[n].attempts
        );
    }
    let sofa_p50 = median(sofa.iter().map(|s| s.answer));
    let plain_p50 = median(plain.iter().map(|s| s.answer));
    let sofa_p90 = nearest_rank(sofa.iter().map(|s| s.answer), 90.0);
    let plain_p90 = nearest_rank(plain.iter().map(|s| s.answer), 90.0);
    println!();
    println!("## create -> answer (seconds)");
    println!("| path      | rounds | median | p90    | mean   | min    | max    |");
    println!("|-----------|-------:|-------:|-------:|-------:|-------:|-------:|");
    for (label, samples) in [("sofa", &sofa), ("plain JRE", &plain)] {
        let v: Vec<f64> = samples.iter().map(|s| s.answer).collect();
        let sorted = finite(v.iter().copied());
        println!(
            "| {label:<9} | {:>6} | {:>6.3} | {:>6.3} | {:>6.3} | {:>6.3} | {:>6.3} |",
            sorted.len(),
            median(v.iter().copied()),
            nearest_rank(v.iter().copied(), 90.0),
            mean(v.iter().copied()),
            sorted.first().copied().unwrap_or(f64::NAN),
            sorted.last().copied().unwrap_or(f64::NAN),
        );
    }
    println!(
        "ratio sofa / plain JRE: median {:.2}x, p90 {:.2}x; paired (same round) median {:.2}x",
        sofa_p50 / plain_p50,
        sofa_p90 / plain_p90,
        median(sofa.iter().zip(&plain).map(|(s, p)| s.answer / p.answer))
    );
    println!();
    println!("## where the time goes (seconds; median / p90 nearest-rank / mean over rounds)");
    println!(
        "| stage                                                | n  | median  | p90     | mean    |"
    );
    println!(
        "|------------------------------------------------------|---:|--------:|--------:|--------:|"
    );
    let col =
        |samples: &[Sample], f: fn(&Sample) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
    stage_row(
        "sofa: t0 -> CLI returned (central committed)",
        col(&sofa, |s| s.requested),
    );
    stage_row(
        "sofa: t0 -> sandbox running (pid seen)",
        col(&sofa, |s| s.netns_ready),
    );
    stage_row(
        "sofa: t0 -> app container started (Docker)",
        col(&sofa, |s| s.app_started),
    );
    stage_row(
        "sofa: app started -> supervisord logging (sofa-init)",
        col(&sofa, |s| s.supervisord_up - s.app_started),
    );
    stage_row(
        "sofa: supervisord logging -> app spawned",
        col(&sofa, |s| s.app_spawned - s.supervisord_up),
    );
    stage_row(
        "sofa: app spawned -> hello (JVM start)",
        col(&sofa, |s| s.answer - s.app_spawned),
    );
    stage_row(
        "sofa: app container started -> hello",
        col(&sofa, |s| s.answer - s.app_started),
    );
    stage_row(
        "sofa: CPU s used by the app container until hello",
        col(&sofa, |s| s.cpu),
    );
    stage_row("plain: t0 -> create returned", col(&plain, |s| s.requested));
    stage_row(
        "plain: t0 -> start returned",
        col(&plain, |s| s.netns_ready),
    );
    stage_row(
        "plain: t0 -> container started (Docker)",
        col(&plain, |s| s.app_started),
    );
    stage_row(
        "plain: container started -> hello (JVM start)",
        col(&plain, |s| s.answer - s.app_started),
    );
    stage_row(
        "plain: CPU s used by the container until hello",
        col(&plain, |s| s.cpu),
    );
    println!();
    println!(
        "create->answer p50: sofa {sofa_p50:.2}s, plain JRE {plain_p50:.2}s, ratio {:.2}x (p90: sofa {sofa_p90:.2}s, plain JRE {plain_p90:.2}s, ratio {:.2}x)",
        sofa_p50 / plain_p50,
        sofa_p90 / plain_p90
    );
    drop(bench);
    drop(guard);
    Ok(())
}
