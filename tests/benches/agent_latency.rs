//! Create+start latency of a workload through `caas-agent` (assignment written -> status
//! "running") against bollard create+start of the same containers directly, plus the agent's
//! idle RSS.
//!
//! `cargo bench -p caas-tests --bench agent_latency [-- --runs N --variants plain,volume]`
//! (or `CAAS_BENCH_RUNS` / `CAAS_BENCH_VARIANTS`). Needs Docker, Java (ZooKeeper) and the
//! busybox-static binary, like the end-to-end tests.
//!
//! * One real ZooKeeper on 127.0.0.1 and one real agent in the host network namespace.
//! * Agent path: t0 just before the single `create` of the assignment znode; done when a
//!   ZooKeeper data watch on the status znode reports it with state `running`.
//! * Direct path: the same containers (same images, command, env, labels, limits, network
//!   modes, restart policies) created and started with bollard from this process, in the order
//!   the agent uses; done when the last start returns.
//! * The two paths alternate (A/B, then B/A) so drift hits both; teardown is never timed.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions,
};
use bollard::Docker;
use caas_agent::naming::{labels, LABEL_NAME, LABEL_NODE};
use caas_agent::runtime::Role;
use caas_api::{Assignment, WorkloadKey, WorkloadSpec, WorkloadState, WorkloadStatus, ZkLayout};
use caas_tests::agent::{test_node_id, AgentOptions, AgentProcess, ContainerSweeper};
use caas_tests::zk_server::ZkServer;
use caas_zk::zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, OneshotWatcher};

const POOL: &str = "pool1";
/// Longest any single step may take before the bench gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Quiet time before an idle RSS reading.
const QUIET: Duration = Duration::from_secs(10);
const IDLE_WORKLOADS: usize = 10;
const WARMUP_RUNS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// sandbox + app.
    Plain,
    /// data (one volume) + sandbox + app.
    Volume,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Plain => "plain (sandbox+app)",
            Variant::Volume => "volume (data+sandbox+app)",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Volume => "volume",
        }
    }
    fn prefix(self) -> char {
        match self {
            Variant::Plain => 'p',
            Variant::Volume => 'v',
        }
    }
    fn volumes(self) -> Vec<String> {
        match self {
            Variant::Plain => Vec::new(),
            Variant::Volume => vec!["/data".to_string()],
        }
    }
}

#[derive(Debug)]
struct Args {
    runs: usize,
    variants: Vec<Variant>,
}

fn parse_variants(text: &str) -> Result<Vec<Variant>> {
    text.split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| match v.trim() {
            "plain" => Ok(Variant::Plain),
            "volume" => Ok(Variant::Volume),
            other => Err(anyhow!("unknown variant {other:?}; use plain, volume")),
        })
        .collect()
}

/// `--runs N` / `--variants a,b` (also `--x=v`), else the environment; anything else that
/// cargo passes (e.g. `--bench`) is ignored.
fn parse_args() -> Result<Args> {
    let mut runs = match std::env::var("CAAS_BENCH_RUNS") {
        Ok(v) => v.parse().context("CAAS_BENCH_RUNS")?,
        Err(_) => 100,
    };
    let mut variants = parse_variants(
        &std::env::var("CAAS_BENCH_VARIANTS").unwrap_or_else(|_| "plain,volume".to_string()),
    )?;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let (flag, inline) = match argv[i].split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (argv[i].clone(), None),
        };
        if flag == "--runs" || flag == "--variants" {
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    argv.get(i)
                        .cloned()
                        .with_context(|| format!("{flag} needs a value"))?
                }
            };
            if flag == "--runs" {
                runs = value.parse().context("--runs")?;
            } else {
                variants = parse_variants(&value)?;
            }
        }
        i += 1;
    }
    if runs == 0 || variants.is_empty() {
        bail!("nothing to do: --runs must be > 0 and --variants not empty");
    }
    Ok(Args { runs, variants })
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One agent-path run.
#[derive(Debug, Clone)]
struct AgentSample {
    name: String,
    total: Duration,
    /// Wall clock at t0, to line the run up with the agent's log.
    wall0_us: i64,
    /// Whether `total` is the watch notification time (status created already running) or the
    /// time the data read behind a later notification returned.
    at_notification: bool,
}

/// One direct-path run.
#[derive(Debug, Clone, Default)]
struct DirectSample {
    total: Duration,
    data: Duration,
    sandbox: Duration,
    app: Duration,
}

struct Ctx {
    docker: Docker,
    client: Client,
    layout: ZkLayout,
    node_id: String,
    direct_node: String,
    busybox: String,
    sandbox_image: String,
}

fn zk_options() -> caas_zk::zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

impl Ctx {
    fn spec(&self, name: &str, variant: Variant) -> Result<WorkloadSpec> {
        Ok(serde_json::from_value(serde_json::json!({
            "pool": POOL,
            "name": name,
            "image": self.busybox,
            "command": ["sleep", "3600"],
            "resources": {"cpu": "500m", "memory": "64Mi", "pids": 64},
            "volumes": variant.volumes(),
        }))?)
    }

    /// Containers of `node` whose workload name is `name` (all states).
    async fn containers_of(&self, node: &str, name: &str) -> Result<Vec<String>> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![
                format!("{LABEL_NODE}={node}"),
                format!("{LABEL_NAME}={name}"),
            ],
        );
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    async fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.client.check_stat(path).await?.is_some())
    }

    /// Waits (polling, untimed teardown) until `probe` holds.
    async fn wait_for<F, Fut>(&self, what: &str, mut probe: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if probe().await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads the status znode and re-arms the watch. `Ok(None)` when it does not exist (the
    /// returned watcher then fires on its creation).
    async fn read_status(
        &self,
        path: &str,
    ) -> Result<(Option<(WorkloadStatus, i32)>, OneshotWatcher)> {
        loop {
            match self.client.get_and_watch_data(path).await {
                Ok((data, stat, watcher)) => {
                    let status: WorkloadStatus =
                        serde_json::from_slice(&data).context("status znode")?;
                    return Ok((Some((status, stat.version)), watcher));
                }
                Err(ZkError::NoNode) => match self.client.check_and_watch_stat(path).await? {
                    (None, watcher) => return Ok((None, watcher)),
                    // Created in between: read it.
                    (Some(_), _) => continue,
                },
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes the assignment and times it until the status znode says running.
    async fn agent_run(&self, name: &str, variant: Variant) -> Result<AgentSample> {
        let key = WorkloadKey::new(POOL, name);
        let spec = self.spec(name, variant)?;
        let data = serde_json::to_vec(&Assignment::run(spec.clone()))?;
        let status_path = self.layout.status(&self.node_id, &key);
        let assign_path = self.layout.assignment(&self.node_id, &key);
        let (existing, mut watcher) = self.client.check_and_watch_stat(&status_path).await?;
        if existing.is_some() {
            bail!("stale status znode {status_path}");
        }

        let wall0_us = unix_micros();
        let t0 = Instant::now();
        self.client
            .create(&assign_path, &data, &zk_options())
            .await
            .with_context(|| format!("creating {assign_path}"))?;
        let deadline = t0 + STEP_TIMEOUT;
        let (total, at_notification) = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(remaining, watcher.changed())
                .await
                .map_err(|_| anyhow!("{name}: no running status within {STEP_TIMEOUT:?}"))?;
            let notified = t0.elapsed();
            if event.event_type == caas_zk::zookeeper_client::EventType::Session {
                bail!("{name}: ZooKeeper session event {:?}", event.session_state);
            }
            let (status, next) = self.read_status(&status_path).await?;
            watcher = next;
            if let Some((status, version)) = status {
                match status.state {
                    // Version 0: the write that fired the notification already said running.
                    WorkloadState::Running if version == 0 => break (notified, true),
                    WorkloadState::Running => break (t0.elapsed(), false),
                    WorkloadState::Failed | WorkloadState::Exited => {
                        bail!(
                            "{name}: workload {:?}: {:?}",
                            status.state,
                            status.last_error
                        )
                    }
                    WorkloadState::Pending => {}
                }
            }
        };

        // Teardown, not timed: a deleted assignment keeps the data container, a purge removes
        // everything and the agent then deletes the assignment itself.
        match variant {
            Variant::Plain => match self.client.delete(&assign_path, None).await {
                Ok(()) | Err(ZkError::NoNode) => {}
                Err(e) => return Err(e.into()),
            },
            Variant::Volume => {
                let purge = serde_json::to_vec(&Assignment::purge(spec))?;
                self.client.set_data(&assign_path, &purge, None).await?;
            }
        }
        self.wait_for(&format!("{name} torn down by the agent"), || async {
            Ok(!self.exists(&assign_path).await?
                && !self.exists(&status_path).await?
                && self.containers_of(&self.node_id, name).await?.is_empty())
        })
        .await?;
        Ok(AgentSample {
            name: name.to_string(),
            total,
            wall0_us,
            at_notification,
        })
    }

    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        Ok(self.docker.create_container(Some(options), body).await?.id)
    }

    /// The containers the agent would create for `spec`, created and started with bollard.
    async fn direct_run(&self, n: usize, variant: Variant) -> Result<DirectSample> {
        let mut created = Vec::new();
        let result = self.direct_inner(n, variant, &mut created).await;
        // Teardown, not timed (and also after a failure).
        for id in created.iter().rev() {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            if let Err(e) = self.docker.remove_container(id, Some(options)).await {
                eprintln!("removing direct container {id}: {e}");
            }
        }
        result
    }

    async fn direct_inner(
        &self,
        n: usize,
        variant: Variant,
        created: &mut Vec<String>,
    ) -> Result<DirectSample> {
        let name = format!("{}{n:04}", variant.prefix());
        let key = WorkloadKey::new(POOL, &name);
        let spec = self.spec(&name, variant)?;
        let limits = spec.validate()?;
        let base = format!("caas-bench-direct-{}-{name}", std::process::id());
        let node = &self.direct_node;
        let label_map = |role: Role, hash: &str| -> HashMap<String, String> {
            labels(node, &key, role, spec.generation, hash)
                .into_iter()
                .collect()
        };
        let always = Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        });
        // Built before t0: the agent builds its requests in memory too.
        let data_body = (!spec.volumes.is_empty()).then(|| ContainerCreateBody {
            image: Some(self.sandbox_image.clone()),
            labels: Some(label_map(Role::Data, &spec.data_hash())),
            volumes: Some(spec.volumes.clone()),
            host_config: Some(HostConfig {
                network_mode: Some("none".to_string()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let sandbox_body = ContainerCreateBody {
            image: Some(self.sandbox_image.clone()),
            labels: Some(label_map(Role::Sandbox, &spec.sandbox_hash())),
            hostname: Some(spec.effective_hostname().to_string()),
            host_config: Some(HostConfig {
                network_mode: Some("none".to_string()),
                restart_policy: always.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let env = vec![
            format!("CAAS_POOL={POOL}"),
            format!("CAAS_NAME={name}"),
            format!("CAAS_NODE={node}"),
        ];
        let memory = limits
            .memory_bytes
            .map(|b| i64::try_from(b).unwrap_or(i64::MAX));

        let t0 = Instant::now();
        let mut sample = DirectSample::default();
        let data_id = match data_body {
            Some(body) => {
                let id = self.create(&format!("{base}-data"), body).await?;
                created.push(id.clone());
                sample.data = t0.elapsed();
                Some(id)
            }
            None => None,
        };
        let t_sandbox = Instant::now();
        let sandbox_id = self
            .create(&format!("{base}-sandbox"), sandbox_body)
            .await?;
        created.push(sandbox_id.clone());
        self.docker.start_container(&sandbox_id, None).await?;
        sample.sandbox = t_sandbox.elapsed();
        let t_app = Instant::now();
        let app_body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.command.clone()),
            env: Some(env),
            labels: Some(label_map(Role::App, &spec.app_hash())),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{sandbox_id}")),
                volumes_from: data_id.map(|d| vec![d]),
                nano_cpus: limits.cpu_millis.map(|m| {
                    i64::try_from(m)
                        .unwrap_or(i64::MAX)
                        .saturating_mul(1_000_000)
                }),
                memory,
                memory_swap: memory,
                pids_limit: limits.pids,
                restart_policy: always,
                ..Default::default()
            }),
            ..Default::default()
        };
        let app_id = self.create(&base, app_body).await?;
        created.push(app_id.clone());
        self.docker.start_container(&app_id, None).await?;
        sample.app = t_app.elapsed();
        sample.total = t0.elapsed();
        Ok(sample)
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Clone, Copy)]
struct Summary {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    mean: f64,
    min: f64,
    max: f64,
}

fn summarize(values: &[f64]) -> Summary {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let mean = if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    };
    Summary {
        n: v.len(),
        p50: percentile(&v, 50.0),
        p90: percentile(&v, 90.0),
        p99: percentile(&v, 99.0),
        mean,
        min: v.first().copied().unwrap_or(f64::NAN),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

fn row(variant: &str, path: &str, s: &Summary) -> String {
    format!(
        "| {variant:<6} | {path:<26} | {:>4} | {:>7.1} | {:>7.1} | {:>7.1} | {:>7.1} | {:>7.1} | {:>7.1} |",
        s.n, s.p50, s.p90, s.p99, s.mean, s.min, s.max
    )
}

const TABLE_HEAD: &str = "| variant | path                       | runs |  p50 ms |  p90 ms |  p99 ms | mean ms |  min ms |  max ms |\n\
                          |---------|----------------------------|-----:|--------:|--------:|--------:|--------:|--------:|--------:|";

/// VmRSS and VmHWM of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} missing in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("/proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the command.
    let get = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .context("/proc/<pid>/stat field")
    };
    Ok(get(11)? + get(12)?)
}

fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[derive(Debug, Clone, Copy)]
struct IdleReading {
    rss_kib: u64,
    hwm_kib: u64,
    cpu_percent: f64,
}

/// Sleeps `QUIET`, then reads RSS and the CPU used over that quiet period.
async fn idle_reading(pid: u32) -> Result<IdleReading> {
    let ticks0 = cpu_ticks(pid)?;
    let start = Instant::now();
    tokio::time::sleep(QUIET).await;
    let ticks = cpu_ticks(pid)?.saturating_sub(ticks0);
    let (rss_kib, hwm_kib) = rss_kib(pid)?;
    Ok(IdleReading {
        rss_kib,
        hwm_kib,
        cpu_percent: ticks as f64 / clock_ticks_per_sec() / start.elapsed().as_secs_f64() * 100.0,
    })
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `2025-01-02T03:04:05.123456Z` -> unix microseconds.
fn parse_rfc3339_micros(ts: &str) -> Option<i64> {
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    let frac_digits: String = frac.chars().take(6).collect();
    let micros = frac_digits.parse::<i64>().ok()? * 10_i64.pow(6 - frac_digits.len() as u32);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + min * 60 + s) * 1_000_000) + micros)
}

/// Wall-clock time (unix µs) of the agent's log line `message` for workload `name`.
fn log_time(lines: &[String], message: &str, name: &str) -> Option<i64> {
    let needle = format!("workload={POOL}.{name} ");
    lines
        .iter()
        .find(|l| l.contains(message) && (l.contains(&needle) || l.ends_with(needle.trim_end())))
        .and_then(|l| l.split_whitespace().next())
        .and_then(parse_rfc3339_micros)
}

/// Per-step timings of agent runs from the agent's own log lines (ms).
fn agent_breakdown(log: &str, samples: &[AgentSample], variant: Variant) -> Vec<(String, Summary)> {
    let lines: Vec<String> = log.lines().map(strip_ansi).collect();
    let mut to_data = Vec::new();
    let mut to_sandbox = Vec::new();
    let mut app = Vec::new();
    let mut publish = Vec::new();
    for s in samples {
        let at = |m: &str| log_time(&lines, m, &s.name).map(|t| (t - s.wall0_us) as f64 / 1000.0);
        let (Some(sb), Some(ap)) = (at("created sandbox"), at("started app")) else {
            continue;
        };
        match variant {
            Variant::Plain => to_sandbox.push(sb),
            Variant::Volume => {
                let Some(d) = at("created data container") else {
                    continue;
                };
                to_data.push(d);
                to_sandbox.push(sb - d);
            }
        }
        app.push(ap - sb);
        publish.push(ms(s.total) - ap);
    }
    let mut out = Vec::new();
    match variant {
        Variant::Plain => out.push((
            "t0 -> sandbox created+started".to_string(),
            summarize(&to_sandbox),
        )),
        Variant::Volume => {
            out.push(("t0 -> data created".to_string(), summarize(&to_data)));
            out.push((
                "data -> sandbox created+started".to_string(),
                summarize(&to_sandbox),
            ));
        }
    }
    out.push((
        "sandbox -> app created+started".to_string(),
        summarize(&app),
    ));
    out.push((
        "app started -> status seen running".to_string(),
        summarize(&publish),
    ));
    out
}

struct VariantResult {
    variant: Variant,
    agent: Vec<AgentSample>,
    direct: Vec<DirectSample>,
}

async fn run_variant(ctx: &Ctx, variant: Variant, runs: usize) -> Result<VariantResult> {
    let p = variant.prefix();
    // Warm-up: the first creates of a kind are slower (engine caches, first status dir write).
    for i in 0..WARMUP_RUNS {
        ctx.agent_run(&format!("warm{p}{i}"), variant).await?;
        ctx.direct_run(9000 + i, variant).await?;
    }
    let mut agent = Vec::with_capacity(runs);
    let mut direct = Vec::with_capacity(runs);
    for n in 1..=runs {
        let name = format!("{p}{n:04}");
        // A/B then B/A, so slow drift and "who went first" hit both paths alike.
        if n % 2 == 1 {
            agent.push(ctx.agent_run(&name, variant).await?);
            direct.push(ctx.direct_run(n, variant).await?);
        } else {
            direct.push(ctx.direct_run(n, variant).await?);
            agent.push(ctx.agent_run(&name, variant).await?);
        }
        if n % 10 == 0 {
            let a = summarize(&agent.iter().map(|s| ms(s.total)).collect::<Vec<_>>());
            let d = summarize(&direct.iter().map(|s| ms(s.total)).collect::<Vec<_>>());
            eprintln!(
                "  {} {n}/{runs}: p50 agent {:.1} ms, direct {:.1} ms",
                variant.short(),
                a.p50,
                d.p50
            );
        }
    }
    Ok(VariantResult {
        variant,
        agent,
        direct,
    })
}

fn print_idle(what: &str, r: &IdleReading) {
    println!(
        "| {what:<44} | {:>7.1} | {:>8.1} | {:>6.2} |",
        r.rss_kib as f64 / 1024.0,
        r.hwm_kib as f64 / 1024.0,
        r.cpu_percent
    );
}

async fn wait_sandbox_image(ctx: &Ctx, agent: &AgentProcess) -> Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let registered = ctx.exists(&ctx.layout.node(&ctx.node_id)).await?;
        if registered && ctx.docker.inspect_image(&ctx.sandbox_image).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "agent did not register and import {} within {STEP_TIMEOUT:?}; log:\n{}",
                ctx.sandbox_image,
                agent.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let load_before = loadavg();
    let docker = caas_tests::images::docker().await?;
    let busybox = caas_tests::images::ensure_busybox(&docker).await?;
    let version = docker.version().await?;
    let node_id = test_node_id("bench");
    let direct_node = test_node_id("benchdirect");
    // Declared before agent and ZooKeeper so it drops last: the agent dies first, then every
    // container labelled with either node id goes.
    let _sweeper = ContainerSweeper::new(&[node_id.clone(), direct_node.clone()]);
    let zk = ZkServer::start().await?;
    let client = caas_zk::connect(&caas_zk::ZkConfig::new(zk.connect_string())).await?;
    let layout = ZkLayout::new("/caas")?;
    // The assignment directory exists before the agent starts, as central would leave it, so a
    // run's t0 covers exactly one znode create.
    client
        .mkdir(&layout.assign_dir(&node_id), &zk_options())
        .await?;
    let agent = AgentProcess::start(AgentOptions {
        node_id: node_id.clone(),
        pool: POOL.into(),
        zk: zk.connect_string(),
        zk_root: layout.root().to_string(),
        netns: None,
        listen: std::net::SocketAddr::new(
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            caas_tests::process::free_port(),
        ),
        underlay: None,
        labels: vec![],
        extra_config: String::new(),
    })?;
    let pid = agent.pid().context("agent pid")?;
    let mut ctx = Ctx {
        docker,
        client,
        layout,
        node_id,
        direct_node,
        busybox,
        sandbox_image: caas_agent::sandbox_image::sandbox_image_tag(),
    };
    wait_sandbox_image(&ctx, &agent).await?;

    eprintln!("agent pid {pid} up; idle reading with 0 workloads ({QUIET:?})");
    let idle_start = idle_reading(pid).await?;

    // The agent must use the image we use for the direct sandboxes.
    {
        let name = "probe";
        let key = WorkloadKey::new(POOL, name);
        let spec = ctx.spec(name, Variant::Plain)?;
        caas_tests::zk_io::put_assignment(
            &ctx.client,
            &ctx.layout,
            &ctx.node_id,
            &Assignment::run(spec),
        )
        .await?;
        let status = caas_tests::wait::until("probe running", STEP_TIMEOUT, || async {
            let s = caas_tests::zk_io::status(&ctx.client, &ctx.layout, &ctx.node_id, &key).await?;
            Ok(s.filter(|s| s.state == WorkloadState::Running))
        })
        .await?;
        let sandbox = status
            .containers
            .sandbox
            .context("probe has no sandbox id")?;
        let image = ctx
            .docker
            .inspect_container(&sandbox, None)
            .await?
            .config
            .and_then(|c| c.image)
            .unwrap_or_default();
        if image != ctx.sandbox_image {
            eprintln!(
                "note: agent sandbox image {image} differs from the library's {}; using the agent's",
                ctx.sandbox_image
            );
            ctx.sandbox_image = image;
        }
        let path = ctx.layout.assignment(&ctx.node_id, &key);
        ctx.client.delete(&path, None).await?;
        ctx.wait_for("probe removed", || async {
            Ok(ctx.containers_of(&ctx.node_id, name).await?.is_empty())
        })
        .await?;
    }

    let mut results = Vec::new();
    for &variant in &args.variants {
        eprintln!(
            "{}: {} runs (+{WARMUP_RUNS} warm-up)",
            variant.label(),
            args.runs
        );
        results.push(run_variant(&ctx, variant, args.runs).await?);
    }

    eprintln!("idle reading with 0 workloads after the runs ({QUIET:?})");
    let idle_after = idle_reading(pid).await?;

    eprintln!("starting {IDLE_WORKLOADS} workloads for the loaded idle reading");
    let started = Instant::now();
    for i in 0..IDLE_WORKLOADS {
        let spec = ctx.spec(&format!("idle{i:02}"), Variant::Plain)?;
        caas_tests::zk_io::put_assignment(
            &ctx.client,
            &ctx.layout,
            &ctx.node_id,
            &Assignment::run(spec),
        )
        .await?;
    }
    for i in 0..IDLE_WORKLOADS {
        let key = WorkloadKey::new(POOL, &format!("idle{i:02}"));
        caas_tests::wait::until("idle workload running", STEP_TIMEOUT, || async {
            let s = caas_tests::zk_io::status(&ctx.client, &ctx.layout, &ctx.node_id, &key).await?;
            Ok(s.filter(|s| s.state == WorkloadState::Running))
        })
        .await?;
    }
    let ten_up = started.elapsed();
    eprintln!("{IDLE_WORKLOADS} workloads running after {ten_up:?}; idle reading ({QUIET:?})");
    let idle_ten = idle_reading(pid).await?;

    // Report.
    let log = agent.log();
    println!();
    println!(
        "# caas agent_latency — {} runs per path, Docker {} (API {}), storage {}, {} CPUs",
        args.runs,
        version.version.unwrap_or_default(),
        version.api_version.unwrap_or_default(),
        caas_storage_driver(&ctx.docker).await,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "Load average (1/5/15 min) at start: {load_before}; at end: {}.",
        loadavg()
    );
    println!("App: busybox `sleep 3600`, cpu 500m, memory 64Mi (swap = memory), pids 64, restart always.");
    println!(
        "Sandbox: {} (network none, restart always).",
        ctx.sandbox_image
    );
    println!();
    println!("## create+start latency (ms)");
    println!("{TABLE_HEAD}");
    for r in &results {
        let a = summarize(&r.agent.iter().map(|s| ms(s.total)).collect::<Vec<_>>());
        let d = summarize(&r.direct.iter().map(|s| ms(s.total)).collect::<Vec<_>>());
        let v = r.variant.short();
        println!("{}", row(v, "direct bollard", &d));
        println!("{}", row(v, "agent (assign -> running)", &a));
    }
    println!();
    println!("## overhead of the agent over direct bollard");
    println!(
        "| variant | p50 ratio | p50 delta ms | p99 ratio | p99 delta ms | mean delta ms | paired median delta ms |"
    );
    println!(
        "|---------|----------:|-------------:|----------:|-------------:|--------------:|-----------------------:|"
    );
    for r in &results {
        let a = summarize(&r.agent.iter().map(|s| ms(s.total)).collect::<Vec<_>>());
        let d = summarize(&r.direct.iter().map(|s| ms(s.total)).collect::<Vec<_>>());
        // Runs n of both paths ran back to back: the median of their differences cancels most
        // of the drift that the separate percentiles carry.
        let paired: Vec<f64> = r
            .agent
            .iter()
            .zip(&r.direct)
            .map(|(a, d)| ms(a.total) - ms(d.total))
            .collect();
        let pm = summarize(&paired).p50;
        println!(
            "| {:<7} | {:>8.3}x | {:>+12.1} | {:>8.3}x | {:>+12.1} | {:>+13.1} | {:>+10.1} ({:>+5.1}%) |",
            r.variant.short(),
            a.p50 / d.p50,
            a.p50 - d.p50,
            a.p99 / d.p99,
            a.p99 - d.p99,
            a.mean - d.mean,
            pm,
            pm / d.p50 * 100.0
        );
    }
    for r in &results {
        let late = r.agent.iter().filter(|s| !s.at_notification).count();
        println!();
        println!(
            "## breakdown, {} (ms; agent steps from its log timestamps, p50 over runs)",
            r.variant.label()
        );
        println!("| step | p50 | p90 | p99 | mean |");
        println!("|------|----:|----:|----:|-----:|");
        for (what, s) in agent_breakdown(&log, &r.agent, r.variant) {
            println!(
                "| agent: {what} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.p50, s.p90, s.p99, s.mean
            );
        }
        let direct_steps: Vec<(&str, Vec<f64>)> = match r.variant {
            Variant::Plain => vec![],
            Variant::Volume => vec![(
                "data created",
                r.direct.iter().map(|s| ms(s.data)).collect(),
            )],
        }
        .into_iter()
        .chain([
            (
                "sandbox created+started",
                r.direct.iter().map(|s| ms(s.sandbox)).collect(),
            ),
            (
                "app created+started",
                r.direct.iter().map(|s| ms(s.app)).collect(),
            ),
        ])
        .collect();
        for (what, values) in direct_steps {
            let s = summarize(&values);
            println!(
                "| direct: {what} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.p50, s.p90, s.p99, s.mean
            );
        }
        if late > 0 {
            println!(
                "({late} agent runs saw a non-running status first; their end time is the read after the running write)"
            );
        }
    }
    println!();
    println!("## agent idle footprint (after {QUIET:?} of quiet)");
    println!("| state                                        | RSS MiB | peak MiB |  CPU % |");
    println!("|----------------------------------------------|--------:|---------:|-------:|");
    print_idle("started, 0 workloads", &idle_start);
    print_idle("0 workloads, after the latency runs", &idle_after);
    print_idle(&format!("{IDLE_WORKLOADS} workloads running"), &idle_ten);
    println!();
    println!(
        "{IDLE_WORKLOADS} workloads assigned at once were all running after {:.0} ms.",
        ms(ten_up)
    );
    Ok(())
}

async fn caas_storage_driver(docker: &Docker) -> String {
    docker
        .info()
        .await
        .ok()
        .and_then(|i| i.driver)
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
