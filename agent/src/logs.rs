//! App logs beyond the plain tail of `GET .../logs`: the app container's stdout and stderr
//! followed as Docker produces them (`follow=true`), files of the log directory
//! (`file=NAME`: their last lines, or followed through an exec of `tail -F` whose process is
//! ended when the client goes away), and the list of those files (`GET .../log-files`).
//! Bodies are streamed chunk by chunk: nothing is read from the engine before the client took
//! the previous chunk.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use caas_api::terminal::{validate_log_file, LogFile, LOG_DIR};
use caas_api::{ValidationError, WorkloadKey};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codes::HttpErrorCode;
use crate::control::{self, ControlError};
use crate::runtime::{
    self, ByteStream, ContainerRuntime, ExecAttachRequest, ExecGuard, FileKind, RuntimeError,
};
use crate::view::AgentView;

/// Who reads the log directory: `admin` in rich containers, the image's user else; never root.
/// A reader with root's rights would follow a link planted in the directory (or in place of it)
/// by the container's users to files they cannot read themselves (`ln -s /root ~/logs`).
async fn log_reader<R: ContainerRuntime + ?Sized>(
    runtime: &R,
    image: &str,
) -> Result<Option<String>, RuntimeError> {
    let labels = runtime.image_labels(image).await?.unwrap_or_default();
    Ok(crate::rich::is_rich_image(&labels).then(|| "admin".to_string()))
}
/// How long listing the log directory may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(20);
/// Lists the regular files directly in the log directory as `size/name` records, each ended by
/// a NUL (names cannot hold '/' or NUL); nothing when there is no such directory. Runs with
/// the container's own `sh` and `stat` (GNU or busybox), so symlinks resolve inside it.
const LIST_SCRIPT: &str = r#"cd "$1" 2>/dev/null || exit 0
for f in * .[!.]* ..?*; do
  if [ -f "$f" ] && [ ! -h "$f" ]; then
    s=$(stat -c %s -- "$f" 2>/dev/null) && printf '%s/%s\0' "$s" "$f"
  fi
done
exit 0"#;

/// What a logs request asks for besides the plain tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub tail: usize,
    pub follow: bool,
    /// A file directly in the log directory instead of stdout and stderr.
    pub file: Option<String>,
}

/// Why a logs request was refused; `code()` is what the HTTP answer carries.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("no app container for {0} on this node")]
    NoApp(WorkloadKey),
    #[error(transparent)]
    Control(#[from] ControlError),
    /// `file` is not a plain file name.
    #[error("{0}")]
    BadFile(ValidationError),
    #[error("{path} is not a file in the app container of {key}")]
    NoSuchFile { key: WorkloadKey, path: String },
    #[error("{0}")]
    Engine(#[from] RuntimeError),
    #[error("listing {LOG_DIR} failed (exit {exit_code}): {stderr}")]
    ListFailed { exit_code: i64, stderr: String },
}

impl LogsError {
    /// The code of the HTTP answer (which decides its status).
    pub fn code(&self) -> HttpErrorCode {
        match self {
            Self::NoApp(_) | Self::NoSuchFile { .. } => HttpErrorCode::NotFound,
            Self::Control(e) => e.code(),
            Self::BadFile(_) => HttpErrorCode::BadQuery,
            Self::Engine(e) => HttpErrorCode::Engine(e.code()),
            Self::ListFailed { .. } => HttpErrorCode::EngineError,
        }
    }
}

/// A streamed response body: the engine's output, and the exec producing it (if any), ended
/// when the body is dropped (the client went away, or everything was sent).
pub struct LogBody<R: ContainerRuntime + ?Sized> {
    /// Behind a mutex only so the body is `Sync` (warp wants that); it is never contended.
    stream: Mutex<ByteStream>,
    _exec: Option<ExecGuard<R>>,
}

impl<R: ContainerRuntime + ?Sized> std::fmt::Debug for LogBody<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBody")
            .field("exec", &self._exec)
            .finish_non_exhaustive()
    }
}

impl<R: ContainerRuntime + ?Sized> Stream for LogBody<R> {
    type Item = Result<Bytes, RuntimeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let stream = this.stream.get_mut().unwrap_or_else(|p| p.into_inner());
        stream.as_mut().poll_next(cx)
    }
}

/// The app container's id as last observed (running or not: Docker keeps a stopped one's logs).
async fn app_id(view: &AgentView, key: &WorkloadKey) -> Result<String, LogsError> {
    view.read()
        .await
        .statuses
        .get(key)
        .and_then(|s| s.containers.app.clone())
        .ok_or_else(|| LogsError::NoApp(key.clone()))
}

/// Ends `stream` when the agent stops (a followed log would never end by itself, and the
/// server's graceful shutdown waits for every response).
fn until_stop(stream: ByteStream, stop: CancellationToken) -> Mutex<ByteStream> {
    Mutex::new(Box::pin(stream.take_until(stop.cancelled_owned())))
}

/// Answers `follow` and `file` logs requests with a streamed body, which ends when the agent
/// stops; an exec's ending then runs on `tasks`.
pub async fn stream<R: ContainerRuntime + ?Sized>(
    view: &AgentView,
    runtime: Arc<R>,
    key: &WorkloadKey,
    request: &LogRequest,
    stop: CancellationToken,
    tasks: TaskTracker,
) -> Result<LogBody<R>, LogsError> {
    let Some(file) = &request.file else {
        let app = app_id(view, key).await?;
        let stream = runtime.follow_logs(&app, request.tail).await?;
        return Ok(LogBody {
            stream: until_stop(stream, stop),
            _exec: None,
        });
    };
    validate_log_file(file).map_err(LogsError::BadFile)?;
    let app = control::running_app(view, &*runtime, key).await?;
    let path = format!("{LOG_DIR}/{file}");
    match runtime.stat_path(&app.id, &path).await? {
        Some(stat) if stat.kind == FileKind::Regular => {}
        _ => {
            return Err(LogsError::NoSuchFile {
                key: key.clone(),
                path,
            })
        }
    }
    let reader = log_reader(&*runtime, &app.image).await?;
    let mut command = vec!["tail".to_string(), "-n".into(), request.tail.to_string()];
    if request.follow {
        command.push("-F".into());
    }
    command.extend(["--".to_string(), path]);
    let exec = runtime
        .exec_attach(
            &app.id,
            &ExecAttachRequest {
                command,
                user: reader,
                tty: false,
                stdin: false,
                env: Vec::new(),
            },
        )
        .await?;
    tracing::debug!(workload = %key, file = %file, follow = request.follow, exec = %exec.exec_id, "streaming a log file");
    Ok(LogBody {
        stream: until_stop(exec.output, stop),
        // `tail` needs no grace period.
        _exec: Some(ExecGuard::new(
            runtime,
            &exec.exec_id,
            Duration::ZERO,
            tasks,
        )),
    })
}

/// The regular files directly in the app container's log directory, by name.
pub async fn log_files<R: ContainerRuntime + ?Sized>(
    view: &AgentView,
    runtime: &R,
    key: &WorkloadKey,
) -> Result<Vec<LogFile>, LogsError> {
    let app = control::running_app(view, runtime, key).await?;
    let reader = log_reader(runtime, &app.image).await?;
    let output = runtime
        .exec(
            &app.id,
            &runtime::ExecRequest {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    LIST_SCRIPT.into(),
                    "sh".into(),
                    LOG_DIR.into(),
                ],
                user: reader,
                timeout: LIST_TIMEOUT,
                output_limit: 4 << 20,
            },
        )
        .await?;
    if output.exit_code != 0 {
        return Err(LogsError::ListFailed {
            exit_code: output.exit_code,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(parse_listing(&output.stdout))
}

/// Parses [`LIST_SCRIPT`]'s output; a record cut off by the output cap is left out.
fn parse_listing(out: &[u8]) -> Vec<LogFile> {
    // Every complete record ends with a NUL.
    let complete = out
        .iter()
        .rposition(|b| *b == 0)
        .map_or(&[][..], |end| &out[..end]);
    let mut files: Vec<LogFile> = complete
        .split(|b| *b == 0)
        .filter_map(|record| {
            let record = std::str::from_utf8(record).ok()?;
            let (size, name) = record.split_once('/')?;
            Some(LogFile {
                name: name.to_string(),
                size: size.trim().parse().ok()?,
            })
        })
        .filter(|f| validate_log_file(&f.name).is_ok())
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::runtime::fake::FakeRuntime;
    use crate::runtime::CreateRequest;

    const TOKEN: &str = "0123456789abcdef0123";

    /// The routes over a fake engine running `p1/web`, and the app container's id.
    async fn world() -> (
        Arc<FakeRuntime>,
        String,
        impl warp::Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone,
    ) {
        let (runtime, app, routes, _stop) = world_with_stop().await;
        (runtime, app, routes)
    }

    /// As `world`, with the agent's stop signal.
    async fn world_with_stop() -> (
        Arc<FakeRuntime>,
        String,
        impl warp::Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone,
        CancellationToken,
    ) {
        let stop = CancellationToken::new();
        let runtime = Arc::new(FakeRuntime::with_images(&["img"]));
        let app = runtime
            .create(&CreateRequest {
                name: "caas.p1.web".into(),
                image: "img".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        runtime.start(&app).await.unwrap();
        let view = AgentView::default();
        let status: caas_api::WorkloadStatus = serde_json::from_value(serde_json::json!({
            "version": 1, "pool": "p1", "name": "web", "node": "n1", "state": "running",
            "generation": 1, "app_hash": "h", "containers": {"app": app}, "observed_at": 0
        }))
        .unwrap();
        view.write()
            .await
            .statuses
            .insert(WorkloadKey::new("p1", "web"), status);
        let routes = crate::http::routes(
            view,
            runtime.clone(),
            "n1".into(),
            crate::control::ControlOptions {
                token: Some(TOKEN.into()),
                max_unpacked: 1 << 20,
                terminal: Default::default(),
                stop: stop.clone(),
                tasks: Default::default(),
            },
        );
        (runtime, app, routes, stop)
    }

    async fn get<F>(routes: &F, path: &str) -> (u16, String)
    where
        F: warp::Filter + 'static,
        F::Extract: warp::Reply + Send,
    {
        let reply = warp::test::request()
            .path(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .reply(routes)
            .await;
        (
            reply.status().as_u16(),
            String::from_utf8_lossy(reply.body()).into_owned(),
        )
    }

    #[tokio::test]
    async fn stdout_is_followed_and_the_plain_tail_stays_as_it_was() {
        let (_runtime, app, routes) = world().await;
        let base = "/v1/containers/p1/web/logs";
        assert_eq!(get(&routes, base).await, (200, format!("logs of {app}\n")));
        assert_eq!(
            get(&routes, &format!("{base}?follow=true&tail=5")).await,
            (200, format!("logs of {app}\n"))
        );
        assert_eq!(get(&routes, &format!("{base}?follow=yes")).await.0, 400);
        assert_eq!(
            get(&routes, "/v1/containers/p1/nope/logs?follow=true")
                .await
                .0,
            404
        );
    }

    #[tokio::test]
    async fn a_log_file_is_tailed_by_an_exec_that_ends_with_the_body() {
        let (runtime, app, routes) = world().await;
        for bad in ["..", "..%2Fx", "a%2Fb", "", "x%00y"] {
            let (status, body) =
                get(&routes, &format!("/v1/containers/p1/web/logs?file={bad}")).await;
            assert_eq!(status, 400, "{bad}: {body}");
            assert!(body.contains("file"), "{bad}: {body}");
        }
        let (status, body) = get(&routes, "/v1/containers/p1/web/logs?file=app.log").await;
        assert_eq!(status, 404, "{body}");
        assert!(runtime.exec_ids().is_empty());

        runtime.put_file(&app, "/home/admin/logs/app.log", b"old\n");
        for (query, tail) in [("", "200"), ("&follow=true&tail=7", "7")] {
            let request = {
                let routes = routes.clone();
                let path = format!("/v1/containers/p1/web/logs?file=app.log{query}");
                tokio::spawn(async move { get(&routes, &path).await })
            };
            let exec = loop {
                if let Some(exec) = runtime.exec_ids().last().cloned() {
                    if runtime.with_exec(&exec, |e| e.running).unwrap() {
                        break exec;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let command = runtime
                .with_exec(&exec, |e| {
                    (e.request.command.clone(), e.request.user.clone())
                })
                .unwrap();
            let mut expected = vec!["tail", "-n", tail];
            if !query.is_empty() {
                expected.push("-F");
            }
            expected.extend(["--", "/home/admin/logs/app.log"]);
            assert_eq!(
                command,
                (
                    expected.iter().map(|s| s.to_string()).collect(),
                    // Not a rich image: the image's user, never root.
                    None
                )
            );
            assert!(
                runtime
                    .push_output(&exec, Bytes::from_static(b"line\n"))
                    .await
            );
            runtime.finish_exec(&exec, 0);
            assert_eq!(request.await.unwrap(), (200, "line\n".to_string()));
            // The body is gone: so is the exec (ended, or killed had it run on).
            for _ in 0..100 {
                if runtime.calls().contains(&format!("kill-exec {exec}")) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(runtime.calls().contains(&format!("kill-exec {exec}")));
        }
    }

    #[tokio::test]
    async fn a_stopping_agent_ends_followed_files_and_kills_their_tail() {
        let (runtime, app, routes, stop) = world_with_stop().await;
        runtime.put_file(&app, "/home/admin/logs/app.log", b"old\n");
        let request = tokio::spawn(async move {
            get(
                &routes,
                "/v1/containers/p1/web/logs?file=app.log&follow=true",
            )
            .await
        });
        let exec = loop {
            if let Some(exec) = runtime.exec_ids().last().cloned() {
                break exec;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        stop.cancel();
        assert_eq!(request.await.unwrap(), (200, String::new()));
        for _ in 0..100 {
            if runtime.with_exec(&exec, |e| e.killed).unwrap() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the tail was not killed: {:?}", runtime.calls());
    }

    #[tokio::test]
    async fn log_files_are_listed() {
        let (runtime, _app, routes) = world().await;
        runtime.reply_to_exec(&["sh", "-c"], b"5/app.log\x0012/gc.log\x00");
        let (status, body) = get(&routes, "/v1/containers/p1/web/log-files").await;
        assert_eq!(status, 200, "{body}");
        let files: Vec<LogFile> = serde_json::from_str(&body).unwrap();
        assert_eq!(
            files,
            [
                LogFile {
                    name: "app.log".into(),
                    size: 5
                },
                LogFile {
                    name: "gc.log".into(),
                    size: 12
                }
            ]
        );
        assert_eq!(
            get(&routes, "/v1/containers/p1/nope/log-files").await.0,
            404
        );
    }

    #[test]
    fn listings_parse_and_cut_records_are_dropped() {
        let files = parse_listing(b"12/b.log\x000/a.log\x00");
        assert_eq!(
            files,
            [
                LogFile {
                    name: "a.log".into(),
                    size: 0
                },
                LogFile {
                    name: "b.log".into(),
                    size: 12
                }
            ]
        );
        assert_eq!(parse_listing(b"12/b.log\x003/c.l").len(), 1);
        assert!(parse_listing(b"").is_empty());
        assert!(parse_listing(b"x/y\x00").is_empty());
    }
}
