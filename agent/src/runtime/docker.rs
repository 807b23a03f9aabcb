//! `ContainerRuntime` on the real Docker engine through bollard. The API version is negotiated
//! down to what the engine speaks (Debian's docker.io speaks 1.41).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions,
    ListContainersOptions, LogsOptions, RemoveContainerOptions, StopContainerOptions,
    UploadToContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;

use super::{
    AttachedExec, ByteStream, ContainerDetails, ContainerRuntime, CreateRequest, ExecAttachRequest,
    ExecOutput, ExecRequest, ExecStatus, FileKind, ImageInfo, ManagedContainer, PathStat,
    PullEvent, PullFailure, RegistryCredentials, RestartMode, RuntimeError,
};

/// Seconds bollard waits for one engine request; image imports can be slow on busy disks.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Docker through its unix socket.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime").finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// Connects to the engine at `socket` and negotiates the API version. Fails with
    /// `Unavailable` when the engine is not running; callers retry.
    pub async fn connect(socket: &str) -> Result<Self, RuntimeError> {
        let docker =
            Docker::connect_with_unix(socket, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(|e| RuntimeError::Unavailable(format!("{socket}: {e}")))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError::Unavailable(format!("{socket}: {e}")))?;
        Ok(Self { docker })
    }

    /// The negotiated API version, e.g. "1.41".
    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// The underlying client, for harness code that needs engine features the trait omits.
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

/// The `/tmp` of an app whose root is read-only: writable, no devices, no setuid, bounded.
const READ_ONLY_ROOT_TMP: &str = "rw,nosuid,nodev,size=64m";

fn map_err(op: &'static str, target: &str, err: BollardError) -> RuntimeError {
    // A full disk fails any operation that writes (create, start, tag, import, upload) with
    // the kernel's ENOSPC text; it is the node's problem, whatever the operation.
    if let BollardError::DockerResponseServerError { message, .. }
    | BollardError::DockerStreamError { error: message } = &err
    {
        if message.contains("no space left on device") {
            return RuntimeError::DiskFull {
                op,
                target: target.to_string(),
                message: message.clone(),
            };
        }
    }
    match err {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => {
            if op == "create" && message.contains("image") || op == "inspect-image" {
                RuntimeError::ImageNotFound(target.to_string())
            } else {
                RuntimeError::ContainerNotFound(target.to_string())
            }
        }
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } if op == "create" && message.contains("already in use") => {
            RuntimeError::NameConflict(target.to_string())
        }
        // Docker answers 400 for an invalid parameter (its errdefs.InvalidParameter); on
        // create and start that parameter came from the workload's spec.
        BollardError::DockerResponseServerError {
            status_code: 400,
            message,
        } if op == "create" || op == "start" => RuntimeError::RefusedSpec {
            op,
            target: target.to_string(),
            message,
        },
        BollardError::DockerResponseServerError { message, .. } => RuntimeError::Refused {
            op,
            target: target.to_string(),
            message,
        },
        BollardError::DockerStreamError { error } => RuntimeError::Refused {
            op,
            target: target.to_string(),
            message: error,
        },
        other => RuntimeError::Unavailable(format!("{op} {target}: {other}")),
    }
}

/// What kind of failure the engine's answer to a pull describes. The engine passes the
/// registry's failure on as text (with HTTP 404 for an unknown manifest, 500 for most else), so
/// the text is read here, once, into the closed `PullFailure`.
fn classify_pull(status_code: Option<u16>, message: &str) -> PullFailure {
    let text = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&["no space left on device"]) {
        PullFailure::NoSpace
    } else if has(&[
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "incorrect username or password",
        "access denied",
        "denied: ",
    ]) || status_code == Some(401)
    {
        PullFailure::Unauthorized
    } else if status_code == Some(404) || has(&["manifest unknown", "not found", "name unknown"]) {
        PullFailure::NotFound
    } else if has(&[
        "connection refused",
        "no route to host",
        "i/o timeout",
        "no such host",
        "network is unreachable",
        "connection reset",
        "tls: ",
        "x509",
        "eof",
        "timeout",
        "unexpected http status: 50",
        "502 bad gateway",
        "503 service unavailable",
        "unknown: unknown error",
        "received unexpected http status",
    ]) {
        PullFailure::Unreachable
    } else {
        PullFailure::Other
    }
}

fn pull_error(reference: &str, err: BollardError) -> RuntimeError {
    let (status, message) = match err {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => (Some(status_code), message),
        BollardError::DockerStreamError { error } => (None, error),
        other @ (BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }
        | BollardError::RequestTimeoutError) => {
            return RuntimeError::Unavailable(format!("pull {reference}: {other}"))
        }
        other => (None, other.to_string()),
    };
    RuntimeError::PullFailed {
        reference: reference.to_string(),
        failure: classify_pull(status, &message),
        message,
    }
}

fn restart_policy(mode: RestartMode) -> RestartPolicy {
    let name = match mode {
        RestartMode::No => RestartPolicyNameEnum::NO,
        RestartMode::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        RestartMode::Always => RestartPolicyNameEnum::ALWAYS,
        RestartMode::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: None,
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))
    }

    async fn list(
        &self,
        labels: &[(String, String)],
    ) -> Result<Vec<ManagedContainer>, RuntimeError> {
        let label_filters: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), label_filters);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| map_err("list", "containers", e))?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let id = c.id?;
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default();
                let running = matches!(
                    c.state,
                    Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                        | Some(bollard::models::ContainerSummaryStateEnum::RESTARTING)
                );
                Some(ManagedContainer {
                    id,
                    name,
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                    running,
                })
            })
            .collect())
    }

    async fn inspect(&self, id: &str) -> Result<ContainerDetails, RuntimeError> {
        let c = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| map_err("inspect", id, e))?;
        let state = c.state.unwrap_or_default();
        let host = c.host_config.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        Ok(ContainerDetails {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            running: state.running.unwrap_or(false),
            restarting: state.restarting.unwrap_or(false),
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            started_at: state.started_at.filter(|s| !s.starts_with("0001-")),
            exit_code: state.exit_code,
            restart_count: c.restart_count.unwrap_or(0),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            nano_cpus: host.nano_cpus.filter(|v| *v > 0),
            memory: host.memory.filter(|v| *v > 0),
            pids_limit: host.pids_limit.filter(|v| *v > 0),
            pid: state.pid.filter(|p| *p > 0),
        })
    }

    async fn image_labels(
        &self,
        image: &str,
    ) -> Result<Option<BTreeMap<String, String>>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(Some(
                inspect
                    .config
                    .and_then(|c| c.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            )),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(map_err("inspect-image", image, e)),
        }
    }

    async fn upload(&self, id: &str, dest: &str, tar: Vec<u8>) -> Result<(), RuntimeError> {
        let options = UploadToContainerOptions {
            path: dest.to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(
                id,
                Some(options),
                bollard::body_full(bytes::Bytes::from(tar)),
            )
            .await
            .map_err(|e| map_err("upload", id, e))
    }

    async fn read_file(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>, RuntimeError> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => archive.extend_from_slice(&bytes),
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(None),
                Err(e) => return Err(map_err("read-file", id, e)),
            }
        }
        first_file_of(&archive).map_err(|message| RuntimeError::Refused {
            op: "read-file",
            target: format!("{id}:{path}"),
            message,
        })
    }

    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        let created = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(request.command.clone()),
                    user: request.user.clone(),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| map_err("exec", id, e))?;
        let started = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| map_err("exec", id, e))?;
        let mut out = ExecOutput::default();
        if let StartExecResults::Attached { mut output, .. } = started {
            let collect = async {
                while let Some(item) = output.next().await {
                    let (sink, message) = match item.map_err(|e| map_err("exec", id, e))? {
                        LogOutput::StdOut { message } => (&mut out.stdout, message),
                        LogOutput::StdErr { message } => (&mut out.stderr, message),
                        _ => continue,
                    };
                    let room = request.output_limit.saturating_sub(sink.len());
                    if message.len() > room {
                        out.truncated = true;
                    }
                    sink.extend_from_slice(&message[..message.len().min(room)]);
                }
                Ok::<(), RuntimeError>(())
            };
            match tokio::time::timeout(request.timeout, collect).await {
                Ok(result) => result?,
                Err(_) => {
                    out.timed_out = true;
                    if let Err(e) = self.kill_exec(&created.id, Duration::ZERO).await {
                        tracing::warn!(exec = %created.id, error = %e, "killing a timed-out exec failed");
                    }
                }
            }
        }
        if out.timed_out {
            out.exit_code = 124;
            return Ok(out);
        }
        // The stream ends when the process closes its output; its exit code follows shortly.
        for _ in 0..50 {
            let inspect = self
                .docker
                .inspect_exec(&created.id)
                .await
                .map_err(|e| map_err("exec", id, e))?;
            if inspect.running != Some(true) {
                out.exit_code = inspect.exit_code.unwrap_or(-1);
                return Ok(out);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        out.exit_code = -1;
        Ok(out)
    }

    async fn exec_attach(
        &self,
        id: &str,
        request: &ExecAttachRequest,
    ) -> Result<AttachedExec, RuntimeError> {
        let created = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(request.command.clone()),
                    user: request.user.clone(),
                    env: (!request.env.is_empty()).then(|| request.env.clone()),
                    tty: Some(request.tty),
                    attach_stdin: Some(request.stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| map_err("exec", id, e))?;
        let options = StartExecOptions {
            detach: false,
            tty: request.tty,
            output_capacity: None,
        };
        let started = self
            .docker
            .start_exec(&created.id, Some(options))
            .await
            .map_err(|e| map_err("exec", id, e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::Refused {
                op: "exec",
                target: id.to_string(),
                message: "the engine started the exec detached".into(),
            });
        };
        let target = id.to_string();
        let output = output.filter_map(move |item| {
            futures::future::ready(match item {
                Ok(
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message },
                ) => Some(Ok(message)),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(map_err("exec", &target, e))),
            })
        });
        Ok(AttachedExec {
            exec_id: created.id,
            output: Box::pin(output),
            input,
        })
    }

    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        self.docker
            .resize_exec(
                exec_id,
                ResizeExecOptions {
                    width: cols,
                    height: rows,
                },
            )
            .await
            .map_err(|e| map_err("resize-exec", exec_id, e))
    }

    async fn exec_status(&self, exec_id: &str) -> Result<ExecStatus, RuntimeError> {
        let inspect = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| map_err("inspect-exec", exec_id, e))?;
        Ok(ExecStatus {
            running: inspect.running == Some(true),
            exit_code: inspect.exit_code,
            pid: inspect.pid.filter(|p| *p > 0),
        })
    }

    async fn kill_exec(&self, exec_id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let status = match self.exec_status(exec_id).await {
            Ok(status) => status,
            // The engine forgets an exec with its container: nothing of it is left.
            Err(RuntimeError::ContainerNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if let Some(pid) = status.pid {
            let found = super::host_procs::end_exec_processes(pid, status.running, grace).await;
            if found > 0 {
                tracing::debug!(exec = %exec_id, pid, found, "ended the processes of an exec");
            }
        }
        Ok(())
    }

    async fn follow_logs(&self, id: &str, tail: usize) -> Result<ByteStream, RuntimeError> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            follow: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        let target = id.to_string();
        let stream = self.docker.logs(id, Some(options)).map(move |item| {
            item.map(LogOutput::into_bytes)
                .map_err(|e| map_err("logs", &target, e))
        });
        Ok(Box::pin(stream))
    }

    async fn stat_path(&self, id: &str, path: &str) -> Result<Option<PathStat>, RuntimeError> {
        let options = bollard::query_parameters::ContainerArchiveInfoOptions {
            path: path.to_string(),
        };
        match self
            .docker
            .get_container_archive_info(id, Some(options))
            .await
        {
            Ok(stat) => Ok(Some(PathStat {
                kind: file_kind(stat.file_mode),
                size: u64::try_from(stat.size).unwrap_or(0),
            })),
            // 404 for a missing path (or container: inspect tells those apart first).
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(map_err("stat", id, e)),
        }
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, RuntimeError> {
        let host_config = HostConfig {
            network_mode: request.network_mode.clone(),
            volumes_from: (!request.volumes_from.is_empty()).then(|| request.volumes_from.clone()),
            nano_cpus: request.nano_cpus,
            memory: request.memory,
            // No swap beyond the memory limit: a limit that swaps is not a limit.
            memory_swap: request.memory,
            pids_limit: request.pids_limit,
            restart_policy: Some(restart_policy(request.restart)),
            cap_drop: (!request.cap_drop.is_empty()).then(|| request.cap_drop.clone()),
            security_opt: request
                .no_new_privileges
                .then(|| vec!["no-new-privileges:true".to_string()]),
            readonly_rootfs: request.read_only_root.then_some(true),
            tmpfs: request.read_only_root.then(|| {
                std::collections::HashMap::from([(
                    "/tmp".to_string(),
                    READ_ONLY_ROOT_TMP.to_string(),
                )])
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(request.image.clone()),
            cmd: (!request.command.is_empty()).then(|| request.command.clone()),
            env: (!request.env.is_empty()).then(|| request.env.clone()),
            labels: Some(request.labels.clone().into_iter().collect()),
            hostname: request.hostname.clone(),
            volumes: (!request.volumes.is_empty()).then(|| request.volumes.clone()),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(request.name.clone()),
            ..Default::default()
        };
        let response = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| match map_err("create", &request.name, e) {
                RuntimeError::ImageNotFound(_) => {
                    RuntimeError::ImageNotFound(request.image.clone())
                }
                other => other,
            })?;
        Ok(response.id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            // 304: already started.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(map_err("start", id, e)),
        }
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptions {
            t: Some(secs),
            ..Default::default()
        };
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(map_err("stop", id, e)),
        }
    }

    async fn remove(&self, id: &str, volumes: bool) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptions {
            force: true,
            v: volumes,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(map_err("remove", id, e)),
        }
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| map_err("logs", id, e))?;
            text.push_str(&String::from_utf8_lossy(chunk.as_ref()));
        }
        Ok(text)
    }

    async fn pull_image(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: tokio::sync::mpsc::UnboundedSender<PullEvent>,
    ) -> Result<(), RuntimeError> {
        let options = CreateImageOptions {
            from_image: Some(reference.to_string()),
            ..Default::default()
        };
        let credentials = credentials.map(|c| bollard::auth::DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(c.server.clone()),
            ..Default::default()
        });
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| pull_error(reference, e))?;
            if let Some(detail) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
                return Err(pull_error(
                    reference,
                    BollardError::DockerStreamError { error: detail },
                ));
            }
            let detail = info.progress_detail.unwrap_or_default();
            // A receiver that went away only means nobody watches the progress any more.
            let _ = progress.send(PullEvent {
                layer: info.id,
                status: info.status.unwrap_or_default(),
                current: detail.current.and_then(|c| u64::try_from(c).ok()),
                total: detail.total.and_then(|t| u64::try_from(t).ok()),
            });
        }
        Ok(())
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        let (repo, tag) = match target.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (target, "latest"),
        };
        let options = bollard::query_parameters::TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| map_err("tag", source, e))
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        let images = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(|e| map_err("list", "images", e))?;
        Ok(images
            .into_iter()
            .map(|i| ImageInfo {
                id: i.id,
                names: i
                    .repo_tags
                    .into_iter()
                    .chain(i.repo_digests)
                    .filter(|n| n != "<none>:<none>" && n != "<none>@<none>")
                    .collect(),
                created: i.created,
                size: u64::try_from(i.size).unwrap_or(0),
            })
            .collect())
    }

    async fn remove_image(&self, id: &str) -> Result<bool, RuntimeError> {
        // Every name goes with it (force), but never from under a container: the engine refuses
        // that with 409 even when forced only for running ones, so containers are checked first.
        let users = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "ancestor".to_string(),
                    vec![id.to_string()],
                )])),
                ..Default::default()
            }))
            .await
            .map_err(|e| map_err("list", "containers", e))?;
        if !users.is_empty() {
            return Ok(false);
        }
        let options = bollard::query_parameters::RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        match self.docker.remove_image(id, Some(options), None).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(false),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(true),
            Err(e) => Err(map_err("remove-image", id, e)),
        }
    }

    async fn import_image(
        &self,
        tag: &str,
        rootfs_tar: Vec<u8>,
        changes: Vec<String>,
    ) -> Result<(), RuntimeError> {
        let (repo, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options = CreateImageOptions {
            from_src: Some("-".to_string()),
            repo: Some(repo.to_string()),
            tag: Some(version.to_string()),
            changes,
            ..Default::default()
        };
        let body = bollard::body_full(bytes::Bytes::from(rootfs_tar));
        let mut stream = self.docker.create_image(Some(options), Some(body), None);
        while let Some(progress) = stream.next().await {
            progress.map_err(|e| map_err("import", tag, e))?;
        }
        Ok(())
    }
}

/// The kind of file of a Go `os.FileMode` (what the engine's path stat reports).
fn file_kind(mode: u32) -> FileKind {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    // Device, named pipe, socket, character device, irregular.
    const OTHER: u32 = (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);
    if mode & DIR != 0 {
        FileKind::Directory
    } else if mode & SYMLINK != 0 {
        FileKind::Symlink
    } else if mode & OTHER != 0 {
        FileKind::Other
    } else {
        FileKind::Regular
    }
}

/// The content of the first regular file in a tar archive (what the engine's archive endpoint
/// sends for one file), or `None` when the path is not a regular file.
fn first_file_of(archive: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut tar = tar::Archive::new(archive);
    let entries = tar.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if entry.header().entry_type().is_file() {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(|e| e.to_string())?;
            return Ok(Some(content));
        }
    }
    Ok(None)
}
