//! An in-memory `ContainerRuntime` for fast unit tests of the reconciler and the HTTP API. It
//! models only what they rely on: names are unique, ids are stable, state is
//! created/running/exited; an attached exec echoes its input back as output (plus what a test
//! pushes) until the test ends it or it is killed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{
    AttachedExec, ByteStream, ContainerDetails, ContainerRuntime, CreateRequest, ExecAttachRequest,
    ExecOutput, ExecRequest, ExecStatus, FileKind, ImageInfo, ManagedContainer, PathStat,
    PullEvent, PullFailure, RegistryCredentials, RuntimeError,
};

/// Bytes an attached fake exec buffers between its input and its echo.
const ECHO_BUFFER: usize = 4096;

/// An attached exec of the fake engine.
#[derive(Debug)]
pub struct FakeExec {
    pub container: String,
    pub request: ExecAttachRequest,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub resizes: Vec<(u16, u16)>,
    /// Ended by `kill_exec` (not by the test).
    pub killed: bool,
    /// Ends its output stream.
    finish: Option<tokio::sync::oneshot::Sender<()>>,
    /// Output a test pushes besides the echo (bounded: a push waits for the reader); dropped
    /// when the exec ends, so what was pushed before is still read.
    push: Option<tokio::sync::mpsc::Sender<Bytes>>,
}

#[derive(Debug, Clone)]
struct FakeContainer {
    request: CreateRequest,
    running: bool,
    started_at: Option<String>,
    starts: u32,
}

/// An image a fake registry holds: its labels and the (user, password) it requires.
type RegistryEntry = (BTreeMap<String, String>, Option<(String, String)>);

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    containers: BTreeMap<String, FakeContainer>,
    images: BTreeSet<String>,
    image_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Files put into containers by `upload` (or by tests), by (container id, path).
    files: BTreeMap<(String, String), Vec<u8>>,
    /// Every mutating call, in order, e.g. "create caas.p.web", "start <id>".
    calls: Vec<String>,
    /// Create calls for names in here fail (to test rollback).
    fail_create: BTreeSet<String>,
    /// Create calls for names in here are refused as invalid, as Docker answers 400.
    refuse_spec: BTreeSet<String>,
    /// How long a stop of a running container takes (as an app that uses its grace period).
    stop_takes: Duration,
    /// Stops in progress now, and the most there ever were at once.
    stopping: usize,
    most_stopping: usize,
    down: bool,
    /// What registries hold: reference -> (image labels, the credentials they require).
    registry: BTreeMap<String, RegistryEntry>,
    /// Every pull fails this way while set.
    pull_failure: Option<PullFailure>,
    /// Pulls never answer (a registry that accepted the connection and hangs).
    pulls_hang: bool,
    /// Inspect and image look-up calls (reads the reconciler should spare settled workloads).
    reads: usize,
    /// Attached execs by id.
    execs: BTreeMap<String, FakeExec>,
    /// What a non-interactive exec whose command starts with the key prints (stdout).
    exec_replies: Vec<(Vec<String>, Vec<u8>)>,
}

/// In-memory engine.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

impl FakeRuntime {
    pub fn with_images(images: &[&str]) -> Self {
        let fake = Self::default();
        if let Ok(mut s) = fake.state.lock() {
            s.images = images.iter().map(|i| i.to_string()).collect();
        }
        fake
    }

    /// Adds an image carrying `labels` (e.g. the rich-image contract label).
    pub fn add_image_with_labels(&self, image: &str, labels: &[(&str, &str)]) {
        self.with(|s| {
            s.images.insert(image.to_string());
            s.image_labels.insert(
                image.to_string(),
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        });
    }

    /// A registry (a proxy) holds `reference`; pulling it needs `credentials` when given.
    pub fn add_to_registry(
        &self,
        reference: &str,
        labels: &[(&str, &str)],
        credentials: Option<(&str, &str)>,
    ) {
        self.with(|s| {
            s.registry.insert(
                reference.to_string(),
                (
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    credentials.map(|(u, p)| (u.to_string(), p.to_string())),
                ),
            );
        });
    }

    /// Makes every pull fail this way (`None`: pulls work again).
    pub fn fail_pulls(&self, failure: Option<PullFailure>) {
        self.with(|s| s.pull_failure = failure);
    }

    /// Makes every pull hang without a word.
    pub fn hang_pulls(&self, hang: bool) {
        self.with(|s| s.pulls_hang = hang);
    }

    /// Removes a local image (as a prune would).
    pub fn remove_image(&self, image: &str) {
        self.with(|s| {
            s.images.remove(image);
            s.image_labels.remove(image);
        });
    }

    /// A file inside a container, as `upload` left it.
    pub fn file(&self, id: &str, path: &str) -> Option<Vec<u8>> {
        self.with(|s| s.files.get(&(id.to_string(), path.to_string())).cloned())
    }

    /// Puts a file into a container (as its processes would write it).
    pub fn put_file(&self, id: &str, path: &str, content: &[u8]) {
        self.with(|s| {
            s.files
                .insert((id.to_string(), path.to_string()), content.to_vec())
        });
    }

    /// Makes a non-interactive exec whose command starts with `prefix` print `stdout`.
    pub fn reply_to_exec(&self, prefix: &[&str], stdout: &[u8]) {
        self.with(|s| {
            s.exec_replies.push((
                prefix.iter().map(|p| p.to_string()).collect(),
                stdout.to_vec(),
            ))
        });
    }

    /// Ids of the attached execs, in the order they were started.
    pub fn exec_ids(&self) -> Vec<String> {
        self.with(|s| {
            let mut ids: Vec<String> = s.execs.keys().cloned().collect();
            ids.sort_by_key(|id| id.trim_start_matches("exec").parse::<u64>().unwrap_or(0));
            ids
        })
    }

    /// Looks at an attached exec.
    pub fn with_exec<T>(&self, exec_id: &str, f: impl FnOnce(&FakeExec) -> T) -> Option<T> {
        self.with(|s| s.execs.get(exec_id).map(f))
    }

    /// The attached exec's process exits with `code`: its output ends.
    pub fn finish_exec(&self, exec_id: &str, code: i64) {
        self.with(|s| {
            if let Some(e) = s.execs.get_mut(exec_id) {
                e.running = false;
                e.exit_code = Some(code);
                e.push = None;
                if let Some(finish) = e.finish.take() {
                    let _ = finish.send(());
                }
            }
        });
    }

    /// Pushes output of an attached exec; waits while the reader does not keep up. False when
    /// the exec's output is gone.
    pub async fn push_output(&self, exec_id: &str, bytes: Bytes) -> bool {
        let Some(push) = self.with(|s| s.execs.get(exec_id).and_then(|e| e.push.clone())) else {
            return false;
        };
        push.send(bytes).await.is_ok()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }
    pub fn clear_calls(&self) {
        self.with(|s| s.calls.clear());
    }
    /// Inspect and image look-up calls so far.
    pub fn reads(&self) -> usize {
        self.with(|s| s.reads)
    }
    pub fn names(&self) -> Vec<String> {
        self.with(|s| {
            s.containers
                .values()
                .map(|c| c.request.name.clone())
                .collect()
        })
    }
    pub fn request(&self, name: &str) -> Option<CreateRequest> {
        self.with(|s| {
            s.containers
                .values()
                .find(|c| c.request.name == name)
                .map(|c| c.request.clone())
        })
    }
    pub fn fail_create_of(&self, name: &str) {
        self.with(|s| s.fail_create.insert(name.to_string()));
    }
    /// Makes every stop of a running container take `duration` (tokio time).
    pub fn stops_take(&self, duration: Duration) {
        self.with(|s| s.stop_takes = duration);
    }
    /// The most stops that were in progress at the same time.
    pub fn most_concurrent_stops(&self) -> usize {
        self.with(|s| s.most_stopping)
    }
    pub fn refuse_spec_of(&self, name: &str) {
        self.with(|s| s.refuse_spec.insert(name.to_string()));
    }
    pub fn set_down(&self, down: bool) {
        self.with(|s| s.down = down);
    }
    /// Simulates the app process exiting.
    pub fn kill(&self, name: &str) {
        self.with(|s| {
            for c in s.containers.values_mut().filter(|c| c.request.name == name) {
                c.running = false;
            }
        });
    }

    fn check_up(&self) -> Result<(), RuntimeError> {
        if self.with(|s| s.down) {
            return Err(RuntimeError::Unavailable("fake engine is down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.check_up()
    }

    async fn list(
        &self,
        labels: &[(String, String)],
    ) -> Result<Vec<ManagedContainer>, RuntimeError> {
        self.check_up()?;
        Ok(self.with(|s| {
            s.containers
                .iter()
                .filter(|(_, c)| {
                    labels
                        .iter()
                        .all(|(k, v)| c.request.labels.get(k) == Some(v))
                })
                .map(|(id, c)| ManagedContainer {
                    id: id.clone(),
                    name: c.request.name.clone(),
                    labels: c.request.labels.clone(),
                    running: c.running,
                })
                .collect()
        }))
    }

    async fn inspect(&self, id: &str) -> Result<ContainerDetails, RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            s.reads += 1;
            let c = s
                .containers
                .get(id)
                .ok_or_else(|| RuntimeError::ContainerNotFound(id.into()))?;
            Ok(ContainerDetails {
                id: id.to_string(),
                name: c.request.name.clone(),
                image: c.request.image.clone(),
                running: c.running,
                restarting: false,
                status: if c.running {
                    "running"
                } else if c.starts == 0 {
                    "created"
                } else {
                    "exited"
                }
                .to_string(),
                started_at: c.started_at.clone(),
                exit_code: (!c.running && c.starts > 0).then_some(0),
                restart_count: 0,
                labels: c.request.labels.clone(),
                nano_cpus: c.request.nano_cpus,
                memory: c.request.memory,
                pids_limit: c.request.pids_limit,
                pid: None,
            })
        })
    }

    async fn image_labels(
        &self,
        image: &str,
    ) -> Result<Option<BTreeMap<String, String>>, RuntimeError> {
        self.check_up()?;
        Ok(self.with(|s| {
            s.reads += 1;
            s.images
                .contains(image)
                .then(|| s.image_labels.get(image).cloned().unwrap_or_default())
        }))
    }

    async fn upload(&self, id: &str, dest: &str, tar: Vec<u8>) -> Result<(), RuntimeError> {
        self.check_up()?;
        let mut files = Vec::new();
        let mut archive = tar::Archive::new(tar.as_slice());
        let refused = |e: std::io::Error| RuntimeError::Refused {
            op: "upload",
            target: id.to_string(),
            message: e.to_string(),
        };
        for entry in archive.entries().map_err(refused)? {
            let mut entry = entry.map_err(refused)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(refused)?.to_string_lossy().to_string();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).map_err(refused)?;
            files.push((format!("{}/{path}", dest.trim_end_matches('/')), content));
        }
        self.with(|s| {
            if !s.containers.contains_key(id) {
                return Err(RuntimeError::ContainerNotFound(id.into()));
            }
            s.calls.push(format!("upload {id} {dest}"));
            for (path, content) in files {
                s.files.insert((id.to_string(), path), content);
            }
            Ok(())
        })
    }

    async fn read_file(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>, RuntimeError> {
        self.check_up()?;
        Ok(self.file(id, path))
    }

    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            if !s.containers.get(id).is_some_and(|c| c.running) {
                return Err(RuntimeError::Refused {
                    op: "exec",
                    target: id.to_string(),
                    message: "container is not running".into(),
                });
            }
            s.calls
                .push(format!("exec {id} {}", request.command.join(" ")));
            let stdout = s
                .exec_replies
                .iter()
                .find(|(prefix, _)| request.command.starts_with(prefix))
                .map(|(_, out)| out.clone())
                .unwrap_or_default();
            Ok(ExecOutput {
                stdout,
                ..ExecOutput::default()
            })
        })
    }

    async fn exec_attach(
        &self,
        id: &str,
        request: &ExecAttachRequest,
    ) -> Result<AttachedExec, RuntimeError> {
        self.check_up()?;
        let (input, echo) = tokio::io::duplex(ECHO_BUFFER);
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let (push, pushed) = tokio::sync::mpsc::channel::<Bytes>(1);
        let exec_id = self.with(|s| {
            if !s.containers.get(id).is_some_and(|c| c.running) {
                return Err(RuntimeError::Refused {
                    op: "exec",
                    target: id.to_string(),
                    message: "container is not running".into(),
                });
            }
            s.next_id += 1;
            let exec_id = format!("exec{}", s.next_id);
            s.calls.push(format!(
                "exec-attach {id} {} {exec_id}",
                request.command.join(" ")
            ));
            s.execs.insert(
                exec_id.clone(),
                FakeExec {
                    container: id.to_string(),
                    request: request.clone(),
                    running: true,
                    exit_code: None,
                    resizes: Vec::new(),
                    killed: false,
                    finish: Some(finish),
                    push: Some(push),
                },
            );
            Ok(exec_id)
        })?;
        let echo = futures::stream::unfold(echo, |mut echo| async move {
            let mut buf = vec![0u8; ECHO_BUFFER];
            match tokio::io::AsyncReadExt::read(&mut echo, &mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), echo))
                }
            }
        });
        let pushed = futures::stream::unfold(pushed, |mut pushed| async move {
            pushed.recv().await.map(|b| (Ok(b), pushed))
        });
        // Ends when the exec finishes (or is killed), whatever the echo still holds, once what
        // was pushed before was read.
        let echo = echo.take_until(async move {
            let _ = finished.await;
        });
        let output: ByteStream = Box::pin(futures::stream::select(echo, pushed));
        Ok(AttachedExec {
            exec_id,
            output,
            input: Box::pin(input),
        })
    }

    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            s.calls.push(format!("resize-exec {exec_id} {cols}x{rows}"));
            let e = s
                .execs
                .get_mut(exec_id)
                .ok_or_else(|| RuntimeError::ContainerNotFound(exec_id.into()))?;
            e.resizes.push((cols, rows));
            Ok(())
        })
    }

    async fn exec_status(&self, exec_id: &str) -> Result<ExecStatus, RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            let e = s
                .execs
                .get(exec_id)
                .ok_or_else(|| RuntimeError::ContainerNotFound(exec_id.into()))?;
            Ok(ExecStatus {
                running: e.running,
                exit_code: e.exit_code,
                pid: None,
            })
        })
    }

    async fn kill_exec(&self, exec_id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            s.calls.push(format!("kill-exec {exec_id}"));
            if let Some(e) = s.execs.get_mut(exec_id) {
                if e.running {
                    e.running = false;
                    e.killed = true;
                    e.exit_code = Some(137);
                }
                e.push = None;
                if let Some(finish) = e.finish.take() {
                    let _ = finish.send(());
                }
            }
        });
        Ok(())
    }

    async fn follow_logs(&self, id: &str, _tail: usize) -> Result<ByteStream, RuntimeError> {
        self.check_up()?;
        // A container that writes one line and stops.
        let line = Bytes::from(format!("logs of {id}\n"));
        Ok(Box::pin(futures::stream::once(async move { Ok(line) })))
    }

    async fn stat_path(&self, id: &str, path: &str) -> Result<Option<PathStat>, RuntimeError> {
        self.check_up()?;
        Ok(self.with(|s| {
            let id = id.to_string();
            if let Some(content) = s.files.get(&(id.clone(), path.to_string())) {
                return Some(PathStat {
                    kind: FileKind::Regular,
                    size: content.len() as u64,
                });
            }
            let dir = format!("{}/", path.trim_end_matches('/'));
            s.files
                .keys()
                .any(|(c, p)| *c == id && p.starts_with(&dir))
                .then_some(PathStat {
                    kind: FileKind::Directory,
                    size: 0,
                })
        }))
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            s.calls.push(format!("create {}", request.name));
            if s.fail_create.contains(&request.name) {
                return Err(RuntimeError::Refused {
                    op: "create",
                    target: request.name.clone(),
                    message: "injected failure".into(),
                });
            }
            if s.refuse_spec.contains(&request.name) {
                return Err(RuntimeError::RefusedSpec {
                    op: "create",
                    target: request.name.clone(),
                    message: "injected invalid parameter".into(),
                });
            }
            if !s.images.contains(&request.image) {
                return Err(RuntimeError::ImageNotFound(request.image.clone()));
            }
            if s.containers
                .values()
                .any(|c| c.request.name == request.name)
            {
                return Err(RuntimeError::NameConflict(request.name.clone()));
            }
            s.next_id += 1;
            let id = format!("fake{:04}", s.next_id);
            s.containers.insert(
                id.clone(),
                FakeContainer {
                    request: request.clone(),
                    running: false,
                    started_at: None,
                    starts: 0,
                },
            );
            Ok(id)
        })
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            s.calls.push(format!("start {id}"));
            let c = s
                .containers
                .get_mut(id)
                .ok_or_else(|| RuntimeError::ContainerNotFound(id.into()))?;
            if !c.running {
                c.running = true;
                c.starts += 1;
                c.started_at = Some(format!("start-{}", c.starts));
            }
            Ok(())
        })
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        self.check_up()?;
        let takes = self.with(|s| {
            s.calls.push(format!("stop {id}"));
            let running = s.containers.get(id).is_some_and(|c| c.running);
            if running {
                s.stopping += 1;
                s.most_stopping = s.most_stopping.max(s.stopping);
            }
            running.then_some(s.stop_takes)
        });
        if let Some(takes) = takes {
            tokio::time::sleep(takes).await;
        }
        self.with(|s| {
            if takes.is_some() {
                s.stopping -= 1;
            }
            if let Some(c) = s.containers.get_mut(id) {
                c.running = false;
            }
            Ok(())
        })
    }

    async fn remove(&self, id: &str, _volumes: bool) -> Result<(), RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            s.calls.push(format!("remove {id}"));
            s.containers.remove(id);
            Ok(())
        })
    }

    async fn logs(&self, id: &str, _tail: usize) -> Result<String, RuntimeError> {
        self.check_up()?;
        Ok(format!("logs of {id}\n"))
    }

    async fn pull_image(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: tokio::sync::mpsc::UnboundedSender<PullEvent>,
    ) -> Result<(), RuntimeError> {
        self.check_up()?;
        if self.with(|s| s.pulls_hang) {
            std::future::pending::<()>().await;
        }
        let presented = credentials.map(|c| (c.username.clone(), c.password.clone()));
        let outcome = self.with(|s| {
            s.calls.push(format!("pull {reference}"));
            if let Some(failure) = s.pull_failure {
                return Err(failure);
            }
            let Some((labels, wanted)) = s.registry.get(reference).cloned() else {
                return Err(PullFailure::NotFound);
            };
            if wanted.is_some() && wanted != presented {
                return Err(PullFailure::Unauthorized);
            }
            s.images.insert(reference.to_string());
            s.image_labels.insert(reference.to_string(), labels);
            Ok(())
        });
        if let Err(failure) = outcome {
            return Err(RuntimeError::PullFailed {
                reference: reference.to_string(),
                failure,
                message: "the fake registry said no".into(),
            });
        }
        for (status, current) in [("Downloading", 512), ("Pull complete", 1024)] {
            let _ = progress.send(PullEvent {
                layer: Some("layer1".into()),
                status: status.into(),
                current: Some(current),
                total: Some(1024),
            });
        }
        Ok(())
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            s.calls.push(format!("tag {source} {target}"));
            if !s.images.contains(source) {
                return Err(RuntimeError::ImageNotFound(source.to_string()));
            }
            s.images.insert(target.to_string());
            if let Some(labels) = s.image_labels.get(source).cloned() {
                s.image_labels.insert(target.to_string(), labels);
            }
            Ok(())
        })
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.check_up()?;
        // One image per name (the fake keeps no ids); `created` orders them as added.
        Ok(self.with(|s| {
            s.images
                .iter()
                .enumerate()
                .map(|(i, name)| ImageInfo {
                    id: name.clone(),
                    names: vec![name.clone()],
                    created: i64::try_from(i).unwrap_or(0),
                    size: 1,
                })
                .collect()
        }))
    }

    async fn remove_image(&self, id: &str) -> Result<bool, RuntimeError> {
        self.check_up()?;
        Ok(self.with(|s| {
            if s.containers.values().any(|c| c.request.image == id) {
                return false;
            }
            s.calls.push(format!("remove-image {id}"));
            s.images.remove(id);
            s.image_labels.remove(id);
            true
        }))
    }

    async fn import_image(
        &self,
        tag: &str,
        _rootfs: Vec<u8>,
        _changes: Vec<String>,
    ) -> Result<(), RuntimeError> {
        self.check_up()?;
        self.with(|s| {
            s.calls.push(format!("import {tag}"));
            s.images.insert(tag.to_string());
        });
        Ok(())
    }
}
