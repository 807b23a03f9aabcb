//! The throwaway test environment on the local engine: a data container from `caas/data`
//! holding the plan's volumes, the app (`volumes_from` it) on its own `--internal` network (no
//! route out of the machine), a wait for the health check probed from this host, and `down`,
//! which finds everything again by label and removes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions,
    ListNetworksOptions, RemoveContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::docker::{api, is_not_found};
use crate::error::{Error, RunError};
use crate::plan::{Plan, Probe, LOGS};
use crate::progress::Progress;

/// Every object `run` creates carries this label (value `1`).
pub const LABEL: &str = "caas.dfgen";
/// The environment an object belongs to.
pub const LABEL_RUN: &str = "caas.dfgen.run";
/// The absolute path of the app the environment was started from.
pub const LABEL_PATH: &str = "caas.dfgen.path";
/// `app` or `data`.
pub const LABEL_ROLE: &str = "caas.dfgen.role";
/// The image of data containers.
pub const DATA_IMAGE: &str = "caas/data:latest";

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long to wait for the health check.
    pub timeout: Duration,
    /// Extra environment (`KEY=VALUE`) for the app.
    pub env: Vec<String>,
    /// Keep the environment when it fails to become healthy (for debugging).
    pub keep_on_failure: bool,
}

/// What `run` started and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub image: String,
    pub network: String,
    pub app_container: String,
    pub data_container: String,
    pub ip: String,
    pub port: Option<u16>,
    pub url: Option<String>,
    pub health: String,
    /// `--publish`: where this host forwards to the app (127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_url: Option<String>,
}

/// Checks `KEY=VALUE` pairs.
pub fn check_env(env: &[String]) -> Result<(), Error> {
    for e in env {
        let key = e.split('=').next().unwrap_or_default();
        if !e.contains('=') || !valid_key(key) {
            return Err(Error::Usage(format!(
                "-e {e:?}: use KEY=VALUE (KEY of letters, digits and _)"
            )));
        }
    }
    Ok(())
}

fn valid_key(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Reads an env file: `KEY=VALUE` lines (an `export ` prefix is allowed), blank lines and `#`
/// comments; values are taken as written (no quotes removed, as `docker run --env-file`).
pub fn read_env_file(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "--env-file {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        match l.split_once('=') {
            Some((k, _)) if valid_key(k) => out.push(l.to_string()),
            _ => {
                return Err(Error::Usage(format!(
                    "{}:{}: {line:?} is not KEY=VALUE (KEY of letters, digits and _)",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownReport {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
}

/// Which environments `down` removes.
#[derive(Debug, Clone)]
pub enum Selector {
    /// The one started from this app path.
    Path(PathBuf),
    /// Every environment dockerfile-gen started.
    All,
    /// Those whose app path no longer exists.
    Stale,
}

/// The absolute form of an app path, as recorded in labels (also for deleted paths).
pub fn label_path(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The environment id: the app name and a digest of its path (two checkouts of one app get
/// two environments).
pub fn run_id(name: &str, path: &Path) -> String {
    let digest = Sha256::digest(path.to_string_lossy().as_bytes());
    format!("{name}-{}", &hex::encode(digest)[..8])
}

/// Starts the environment for `plan` from `image` and waits until it is healthy.
pub async fn up(
    docker: &Docker,
    plan: &Plan,
    image: &str,
    app_path: &Path,
    opts: &RunOptions,
    progress: &Progress,
) -> Result<RunInfo, Error> {
    check_env(&opts.env)?;
    let path = label_path(app_path);
    // One environment per app path: a new run replaces the previous one.
    down(docker, &Selector::Path(path.clone())).await?;
    let data_image = data_image(docker).await?;

    let id = run_id(&plan.name, &path);
    let network = format!("caas-dfgen-{id}");
    let app_name = format!("caas-dfgen-{id}");
    let data_name = format!("caas-dfgen-{id}-data");
    let labels = |role: Option<&str>| {
        let mut l = HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (LABEL_RUN.to_string(), id.clone()),
            (LABEL_PATH.to_string(), path.to_string_lossy().into_owned()),
        ]);
        if let Some(role) = role {
            l.insert(LABEL_ROLE.to_string(), role.to_string());
        }
        l
    };

    let result = async {
        progress.stage(&format!("creating internal network {network}"));
        docker
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                internal: Some(true),
                labels: Some(labels(None)),
                ..Default::default()
            })
            .await
            .map_err(api(format!("create network {network}")))?;

        progress.stage(&format!("creating data container {data_name}"));
        create_and_start(
            docker,
            &data_name,
            ContainerCreateBody {
                image: Some(data_image.clone()),
                volumes: Some(plan.volumes.clone()),
                labels: Some(labels(Some("data"))),
                host_config: Some(HostConfig {
                    network_mode: Some("none".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?;

        progress.stage(&format!("starting {app_name} from {image}"));
        let mut app_labels = labels(Some("app"));
        app_labels.insert(crate::plan::LABEL_PLAN_HASH.into(), plan.hash.clone());
        create_and_start(
            docker,
            &app_name,
            ContainerCreateBody {
                image: Some(image.to_string()),
                hostname: Some(plan.name.clone()),
                env: (!opts.env.is_empty()).then(|| opts.env.clone()),
                labels: Some(app_labels),
                host_config: Some(HostConfig {
                    network_mode: Some(network.clone()),
                    volumes_from: Some(vec![data_name.clone()]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?;

        let ip = container_ip(docker, &app_name, &network).await?;
        let port = plan.main_port();
        let health = wait_healthy(docker, plan, &app_name, &ip, opts.timeout, progress).await?;
        Ok::<_, Error>(RunInfo {
            id: id.clone(),
            image: image.to_string(),
            network: network.clone(),
            app_container: app_name.clone(),
            data_container: data_name.clone(),
            url: port.map(|p| format!("http://{ip}:{p}/")),
            ip,
            port,
            health,
            local_url: None,
        })
    }
    .await;
    match result {
        Ok(info) => {
            progress.finish(&format!("{} is up", info.app_container));
            Ok(info)
        }
        Err(e) => {
            progress.abandon();
            if !opts.keep_on_failure {
                let _ = down(docker, &Selector::Path(path)).await;
            }
            Err(e)
        }
    }
}

/// The data container image: `caas/data:latest`, or else the newest `caas/data:<hash>` (the
/// agent imports it under its content hash only).
async fn data_image(docker: &Docker) -> Result<String, Error> {
    match docker.inspect_image(DATA_IMAGE).await {
        Ok(_) => return Ok(DATA_IMAGE.to_string()),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(api(format!("inspect image {DATA_IMAGE}"))(e).into()),
    }
    let images = docker
        .list_images(Some(bollard::query_parameters::ListImagesOptions {
            filters: Some(HashMap::from([(
                "reference".to_string(),
                vec!["caas/data".to_string()],
            )])),
            ..Default::default()
        }))
        .await
        .map_err(api("list images"))?;
    images
        .into_iter()
        .max_by_key(|i| i.created)
        .and_then(|i| {
            i.repo_tags
                .into_iter()
                .find(|t| t.starts_with("caas/data:"))
        })
        .ok_or_else(|| {
            crate::error::DockerError::BaseImageMissing {
                image: DATA_IMAGE.to_string(),
            }
            .into()
        })
}

async fn create_and_start(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
) -> Result<(), Error> {
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.to_string()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(api(format!("create container {name}")))?;
    docker
        .start_container(
            name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(api(format!("start container {name}")))?;
    Ok(())
}

async fn container_ip(docker: &Docker, name: &str, network: &str) -> Result<String, Error> {
    let info = docker
        .inspect_container(name, None)
        .await
        .map_err(api(format!("inspect container {name}")))?;
    info.network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get(network).cloned())
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| {
            RunError::Failed(format!(
                "{name} has no address on {network} (did it exit at once? see `docker logs {name}`)"
            ))
            .into()
        })
}

/// The monitor's view of the app (`/run/caas/status.json`, contract sofa/1).
#[derive(Debug, Clone, Deserialize)]
struct Status {
    #[serde(default)]
    programs: Vec<ProgramStatus>,
}

#[derive(Debug, Clone, Deserialize)]
struct ProgramStatus {
    name: String,
    state: String,
    #[serde(default)]
    log_tail: Vec<String>,
}

/// Reads one file out of a container (through the archive endpoint: no exec needed).
async fn read_file(docker: &Docker, container: &str, path: &str) -> Option<Vec<u8>> {
    let mut stream = docker.download_from_container(
        container,
        Some(DownloadFromContainerOptions {
            path: path.to_string(),
        }),
    );
    let mut tar_bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        tar_bytes.extend_from_slice(&chunk.ok()?);
        if tar_bytes.len() > 4 << 20 {
            break;
        }
    }
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut entry = archive.entries().ok()?.next()?.ok()?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut out).ok()?;
    Some(out)
}

async fn app_status(docker: &Docker, container: &str) -> Option<ProgramStatus> {
    let bytes = read_file(docker, container, "/run/caas/status.json").await?;
    let status: Status = serde_json::from_slice(&bytes).ok()?;
    status.programs.into_iter().find(|p| p.name == "app")
}

fn tail(text: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What we know about a container that is not healthy: its state, the monitor's view and
/// the tails of the app's logs.
async fn diagnose(docker: &Docker, container: &str) -> String {
    let mut out = Vec::new();
    if let Ok(info) = docker.inspect_container(container, None).await {
        if let Some(state) = info.state {
            out.push(format!(
                "container state: {} (exit code {})",
                state.status.map(|s| s.to_string()).unwrap_or_default(),
                state.exit_code.unwrap_or_default()
            ));
        }
    }
    if let Some(app) = app_status(docker, container).await {
        out.push(format!("supervisord program app: {}", app.state));
        if !app.log_tail.is_empty() {
            out.push(
                app.log_tail
                    .iter()
                    .map(|l| format!("  | {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
    }
    for log in ["app.err.log", "app.out.log"] {
        if let Some(bytes) = read_file(docker, container, &format!("{LOGS}/{log}")).await {
            if !bytes.is_empty() {
                out.push(format!("{LOGS}/{log} (last lines):\n{}", tail(&bytes, 15)));
            }
        }
    }
    let mut logs = docker.logs(
        container,
        Some(bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: "15".into(),
            ..Default::default()
        }),
    );
    let mut text = Vec::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.extend_from_slice(&chunk.into_bytes());
    }
    if !text.is_empty() {
        out.push(format!(
            "docker logs {container} (last lines):\n{}",
            tail(&text, 15)
        ));
    }
    out.join("\n")
}

/// One probe from this host against the container.
async fn probe_once(
    docker: &Docker,
    container: &str,
    ip: &str,
    probe: &Probe,
    timeout: Duration,
) -> Result<(), String> {
    match probe {
        Probe::Tcp { port } => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, *port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("tcp {ip}:{port}: {e}")),
                Err(_) => Err(format!("tcp {ip}:{port}: timed out")),
            }
        }
        Probe::Http { port, path } => {
            let url = format!("http://{ip}:{port}{path}");
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(timeout)
                .build()
                .map_err(|e| e.to_string())?;
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() || r.status().is_redirection() => Ok(()),
                Ok(r) => Err(format!("GET {url}: HTTP {}", r.status())),
                Err(e) => Err(format!("GET {url}: {}", crate::docker::innermost(&e))),
            }
        }
        Probe::Command(cmd) => exec_probe(docker, container, cmd, timeout).await,
    }
}

async fn exec_probe(
    docker: &Docker,
    container: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<(), String> {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let run = async {
        if let Ok(StartExecResults::Attached { mut output, .. }) =
            docker.start_exec(&exec.id, None).await
        {
            while output.next().await.is_some() {}
        }
    };
    if tokio::time::timeout(timeout, run).await.is_err() {
        return Err(format!("`{}` timed out", cmd.join(" ")));
    }
    let code = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(|e| e.to_string())?
        .exit_code;
    match code {
        Some(0) => Ok(()),
        other => Err(format!(
            "`{}` exited {}",
            cmd.join(" "),
            other.unwrap_or(-1)
        )),
    }
}

async fn wait_healthy(
    docker: &Docker,
    plan: &Plan,
    container: &str,
    ip: &str,
    timeout: Duration,
    progress: &Progress,
) -> Result<String, Error> {
    let start = Instant::now();
    let probe = plan.health.as_ref().map(|h| h.probe.clone());
    let probe_timeout = Duration::from_secs(
        plan.health
            .as_ref()
            .map_or(2, |h| u64::from(h.timeout_seconds.max(1))),
    );
    progress.stage(&match &probe {
        Some(p) => format!("waiting for health: {} at {ip}", p.describe()),
        None => "waiting for the app program to run".into(),
    });
    let mut last;
    loop {
        let state = docker
            .inspect_container(container, None)
            .await
            .map_err(api(format!("inspect container {container}")))?
            .state;
        if !state.as_ref().and_then(|s| s.running).unwrap_or(false) {
            return Err(RunError::Failed(format!(
                "the app container {container} stopped\n{}",
                diagnose(docker, container).await
            ))
            .into());
        }
        let app = app_status(docker, container).await;
        if let Some(app) = &app {
            if app.state == "FATAL" {
                return Err(RunError::Failed(format!(
                    "the app cannot start: supervisord gave up on it (FATAL)\n{}",
                    diagnose(docker, container).await
                ))
                .into());
            }
        }
        match &probe {
            Some(p) => match probe_once(docker, container, ip, p, probe_timeout).await {
                Ok(()) => return Ok("healthy".into()),
                Err(e) => last = e,
            },
            None => {
                if app.as_ref().is_some_and(|a| a.state == "RUNNING") {
                    return Ok("running (no health check)".into());
                }
                last = format!(
                    "app program is {}",
                    app.map_or("not reported yet".into(), |a| a.state)
                );
            }
        }
        if start.elapsed() >= timeout {
            return Err(RunError::Unhealthy {
                seconds: timeout.as_secs(),
                probe: probe.map_or("app RUNNING".into(), |p| p.describe()),
                last,
                diagnosis: diagnose(docker, container).await,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Removes the environments `sel` names: containers (with their anonymous volumes) first,
/// then networks.
pub async fn down(docker: &Docker, sel: &Selector) -> Result<DownReport, Error> {
    let filter = match sel {
        Selector::Path(p) => format!("{LABEL_PATH}={}", label_path(p).to_string_lossy()),
        Selector::All | Selector::Stale => format!("{LABEL}=1"),
    };
    let filters = HashMap::from([("label".to_string(), vec![filter])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .map_err(api("list containers"))?;
    let stale = |labels: Option<&HashMap<String, String>>| match sel {
        Selector::Stale => labels
            .and_then(|l| l.get(LABEL_PATH))
            .is_some_and(|p| !Path::new(p).exists()),
        _ => true,
    };
    let mut report = DownReport::default();
    let mut runs = Vec::new();
    // Apps before data containers: a data container in use by volumes_from can still be
    // removed, but this order mirrors creation.
    let mut ordered: Vec<_> = containers
        .into_iter()
        .filter(|c| stale(c.labels.as_ref()))
        .collect();
    ordered.sort_by_key(|c| {
        c.labels
            .as_ref()
            .and_then(|l| l.get(LABEL_ROLE))
            .is_some_and(|r| r == "data")
    });
    for c in ordered {
        let Some(id) = c.id else { continue };
        if let Some(run) = c.labels.as_ref().and_then(|l| l.get(LABEL_RUN)) {
            runs.push(run.clone());
        }
        match docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api(format!("remove container {id}"))(e).into()),
        }
        report.containers.push(
            c.names
                .and_then(|n| n.first().cloned())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or(id),
        );
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(api("list networks"))?;
    for n in networks {
        let labels = n.labels.as_ref();
        let belongs = match sel {
            Selector::Stale => {
                stale(labels)
                    || labels
                        .and_then(|l| l.get(LABEL_RUN))
                        .is_some_and(|r| runs.contains(r))
            }
            _ => true,
        };
        if !belongs {
            continue;
        }
        let Some(name) = n.name.clone().or(n.id.clone()) else {
            continue;
        };
        match docker.remove_network(&name).await {
            Ok(()) => report.networks.push(name),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api(format!("remove network {name}"))(e).into()),
        }
    }
    report.containers.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_differ_by_path() {
        let a = run_id("app", Path::new("/a/app"));
        let b = run_id("app", Path::new("/b/app"));
        assert_ne!(a, b);
        assert!(a.starts_with("app-"));
        assert_eq!(a.len(), "app-".len() + 8);
    }
}
