//! The agent's local HTTP API (warp): health, the workloads of this node with their spec and
//! observed state, and app logs (a tail or followed, stdout and stderr or a file of the log
//! directory, and the list of those files), read-only; plus the control endpoints central
//! calls with the control token (`exec`, `deploy`, the `terminal` WebSocket). Desired state
//! only ever comes from ZooKeeper.

use std::convert::Infallible;
use std::sync::Arc;

use caas_api::{WorkloadKey, WorkloadSpec, WorkloadStatus};
use serde::Serialize;
use sha2::Digest;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::codes::HttpErrorCode;
use crate::control::ControlOptions;
use crate::runtime::ContainerRuntime;
use crate::view::AgentView;

/// Longest log tail one request may ask for.
const MAX_LOG_LINES: usize = 10_000;
/// Longest tail of a streamed log (followed, or a file): it is not held in memory.
const MAX_STREAMED_LOG_LINES: usize = caas_api::terminal::MAX_LOG_TAIL as usize;
/// Largest app package a deploy accepts.
const MAX_PACKAGE: u64 = 512 << 20;

/// One workload as the API shows it.
#[derive(Debug, Serialize)]
pub struct WorkloadView {
    pub pool: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<WorkloadSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignment_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkloadStatus>,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    code: &'static str,
    message: String,
}

/// An error answer: the code decides the HTTP status (`HttpErrorCode::status`).
fn error(code: HttpErrorCode, message: String) -> warp::reply::Response {
    let body = warp::reply::json(&ErrorBody {
        code: code.as_str(),
        message,
    });
    warp::reply::with_status(body, code.status()).into_response()
}

async fn workload_views(view: &AgentView) -> Vec<WorkloadView> {
    let state = view.read().await;
    let mut keys: std::collections::BTreeSet<WorkloadKey> =
        state.assignments.keys().cloned().collect();
    keys.extend(state.statuses.keys().cloned());
    keys.into_iter()
        .map(|key| {
            let assignment = state.assignments.get(&key);
            WorkloadView {
                spec: assignment
                    .and_then(|a| a.as_ref().ok())
                    .map(|a| a.spec.clone()),
                assignment_error: assignment.and_then(|a| a.as_ref().err()).cloned(),
                status: state.statuses.get(&key).cloned(),
                pool: key.pool,
                name: key.name,
            }
        })
        .collect()
}

#[derive(Debug, serde::Deserialize)]
struct LogQuery {
    tail: Option<usize>,
    /// Stream what is written from now on too, until the client goes away.
    #[serde(default)]
    follow: bool,
    /// A file directly in the log directory instead of stdout and stderr.
    file: Option<String>,
}

/// All routes of the agent API.
pub fn routes<R: ContainerRuntime + ?Sized>(
    view: AgentView,
    runtime: Arc<R>,
    node_id: String,
    control: ControlOptions,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let with_view = warp::any().map(move || view.clone());
    let with_runtime = warp::any().map(move || runtime.clone());
    let max_unpacked = control.max_unpacked;
    let terminals = crate::terminal::Terminals::new(
        control.terminal,
        control.stop.clone(),
        control.tasks.clone(),
    );
    let with_terminals = warp::any().map(move || terminals.clone());
    let (stop, tasks) = (control.stop, control.tasks);
    let with_lifetime = warp::any().map(move || (stop.clone(), tasks.clone()));
    let control_token = Arc::new(control.token);
    // Every `/v1` route needs central's token (specs carry tenants' env, logs their output);
    // only `/healthz` and `/metrics` (names and numbers, no spec) are open. Checked before a
    // body is read: nobody without the token makes the agent buffer a package.
    let authorized = warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let refusal = authorize(control_token.as_deref(), header.as_deref());
            async move {
                match refusal {
                    None => Ok(()),
                    Some(denied) => Err(warp::reject::custom(denied)),
                }
            }
        })
        .untuple_one();

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(with_view.clone())
        .then(move |view: AgentView| {
            let node_id = node_id.clone();
            async move {
                let health = view.read().await.health.clone();
                let ok = health.docker == "ok" && health.zookeeper == "registered";
                let body = serde_json::json!({
                    "status": if ok { "ok" } else { "degraded" },
                    "node": node_id,
                    "version": env!("CARGO_PKG_VERSION"),
                    "docker": health.docker,
                    "zookeeper": health.zookeeper,
                });
                let code = if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                warp::reply::with_status(warp::reply::json(&body), code).into_response()
            }
        });

    let list = warp::path!("v1" / "containers")
        .and(warp::get())
        .and(authorized.clone())
        .and(with_view.clone())
        .then(|view: AgentView| async move {
            warp::reply::json(&workload_views(&view).await).into_response()
        });

    let get = warp::path!("v1" / "containers" / String / String)
        .and(warp::get())
        .and(authorized.clone())
        .and(with_view.clone())
        .then(|pool: String, name: String, view: AgentView| async move {
            let key = WorkloadKey::new(&pool, &name);
            match workload_views(&view)
                .await
                .into_iter()
                .find(|w| w.pool == key.pool && w.name == key.name)
            {
                Some(w) => warp::reply::json(&w).into_response(),
                None => error(
                    HttpErrorCode::NotFound,
                    format!("no workload {pool}/{name} on this node"),
                ),
            }
        });

    let logs = warp::path!("v1" / "containers" / String / String / "logs")
        .and(warp::get())
        .and(authorized.clone())
        .and(warp::query::<LogQuery>())
        .and(with_view.clone())
        .and(with_runtime.clone())
        .and(with_lifetime)
        .then(
            |pool: String,
             name: String,
             query: LogQuery,
             view: AgentView,
             runtime: Arc<R>,
             (stop, tasks): (CancellationToken, TaskTracker)| async move {
                let key = WorkloadKey::new(&pool, &name);
                if query.follow || query.file.is_some() {
                    let request = crate::logs::LogRequest {
                        tail: query.tail.unwrap_or(200).min(MAX_STREAMED_LOG_LINES),
                        follow: query.follow,
                        file: query.file,
                    };
                    return match crate::logs::stream(&view, runtime, &key, &request, stop, tasks)
                        .await
                    {
                        Ok(body) => warp::reply::with_header(
                            warp::reply::stream(body),
                            "content-type",
                            "text/plain; charset=utf-8",
                        )
                        .into_response(),
                        Err(e) => error(e.code(), e.to_string()),
                    };
                }
                let app = view
                    .read()
                    .await
                    .statuses
                    .get(&key)
                    .and_then(|s| s.containers.app.clone());
                let Some(app) = app else {
                    return error(
                        HttpErrorCode::NotFound,
                        format!("no app container for {pool}/{name} on this node"),
                    );
                };
                let tail = query.tail.unwrap_or(200).min(MAX_LOG_LINES);
                match runtime.logs(&app, tail).await {
                    Ok(text) => {
                        warp::reply::with_header(text, "content-type", "text/plain; charset=utf-8")
                            .into_response()
                    }
                    Err(e) => error(HttpErrorCode::Engine(e.code()), e.to_string()),
                }
            },
        );

    let log_files = warp::path!("v1" / "containers" / String / String / "log-files")
        .and(warp::get())
        .and(authorized.clone())
        .and(with_view.clone())
        .and(with_runtime.clone())
        .then(
            |pool: String, name: String, view: AgentView, runtime: Arc<R>| async move {
                let key = WorkloadKey::new(&pool, &name);
                match crate::logs::log_files(&view, &*runtime, &key).await {
                    Ok(files) => warp::reply::json(&files).into_response(),
                    Err(e) => error(e.code(), e.to_string()),
                }
            },
        );

    // The token is checked before the upgrade: nobody without it gets a WebSocket.
    let terminal = warp::path!("v1" / "containers" / String / String / "terminal")
        .and(warp::get())
        .and(authorized.clone())
        .and(warp::ws())
        .and(with_view.clone())
        .and(with_runtime.clone())
        .and(with_terminals.clone())
        .map(
            |pool: String,
             name: String,
             ws: warp::ws::Ws,
             view: AgentView,
             runtime: Arc<R>,
             terminals: crate::terminal::Terminals| {
                let key = WorkloadKey::new(&pool, &name);
                ws.max_message_size(crate::terminal::MAX_CLIENT_FRAME)
                    .max_frame_size(crate::terminal::MAX_CLIENT_FRAME)
                    .on_upgrade(move |socket| async move {
                        // Tracked, so a stopping agent waits for the session to end its exec.
                        let tasks = terminals.tasks();
                        let session = crate::terminal::serve(socket, runtime, view, key, terminals);
                        let _ = tasks.spawn(session).await;
                    })
                    .into_response()
            },
        );

    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_view.clone())
        .and(with_terminals)
        .then(
            |view: AgentView, terminals: crate::terminal::Terminals| async move {
                let text = crate::metrics::render(
                    &view.read().await.statuses,
                    &view.stats().latest(),
                    terminals.active(),
                );
                warp::reply::with_header(text, "content-type", crate::metrics::CONTENT_TYPE)
                    .into_response()
            },
        );
    let stats = crate::stats::http::routes(with_view.clone(), authorized.clone());

    let exec =
        warp::path!("v1" / "containers" / String / String / "exec")
            .and(warp::post())
            .and(authorized.clone())
            .and(warp::body::content_length_limit(1 << 20))
            .and(warp::body::bytes())
            .and(with_view.clone())
            .and(with_runtime.clone())
            .then(
                |pool: String,
                 name: String,

                 body: bytes::Bytes,
                 view: AgentView,
                 runtime: Arc<R>| async move {
                    let request: caas_api::central::ExecRequest =
                        match serde_json::from_slice(&body) {
                            Ok(r) => r,
                            Err(e) => {
                                return error(
                                    HttpErrorCode::Invalid,
                                    format!("not an exec request: {e}"),
                                )
                            }
                        };
                    let key = WorkloadKey::new(&pool, &name);
                    match crate::control::exec(&view, &*runtime, &key, &request).await {
                        Ok(result) => warp::reply::json(&result).into_response(),
                        Err(e) => control_error(e),
                    }
                },
            );

    let deploy = warp::path!("v1" / "containers" / String / String / "deploy")
        .and(warp::post())
        .and(authorized)
        .and(warp::body::content_length_limit(MAX_PACKAGE))
        .and(warp::body::bytes())
        .and(with_view.clone())
        .and(with_runtime.clone())
        .then(
            move |pool: String,
                  name: String,

                  body: bytes::Bytes,
                  view: AgentView,
                  runtime: Arc<R>| async move {
                let key = WorkloadKey::new(&pool, &name);
                match crate::control::deploy(&view, &*runtime, &key, body, max_unpacked).await {
                    Ok(result) => warp::reply::json(&result).into_response(),
                    Err(e) => control_error(e),
                }
            },
        );

    let read = healthz
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(logs)
        .unify()
        .or(log_files)
        .unify()
        .or(metrics)
        .unify()
        .or(stats)
        .unify()
        .boxed();
    let control = exec.or(deploy).unify().or(terminal).unify().boxed();
    read.or(control)
        .unify()
        .recover(|rejection: warp::Rejection| async move {
            // The matched route's own refusals first: warp combines the rejections of every
            // route tried, and routes sharing the path with another method add
            // MethodNotAllowed to them.
            let reply = if let Some(denied) = rejection.find::<Denied>() {
                error(denied.code, denied.message.clone())
            } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
                error(
                    HttpErrorCode::TooLarge,
                    format!("packages are limited to {MAX_PACKAGE} bytes"),
                )
            } else if rejection.find::<warp::ws::MissingConnectionUpgrade>().is_some()
                || rejection.find::<warp::reject::MissingHeader>().is_some()
                || rejection.find::<warp::reject::InvalidHeader>().is_some()
            {
                error(
                    HttpErrorCode::UpgradeRequired,
                    "the terminal is a WebSocket: connect with `Connection: upgrade`, \
                     `Upgrade: websocket` and `Sec-WebSocket-Version: 13`"
                        .into(),
                )
            } else if rejection.is_not_found() {
                error(
                    HttpErrorCode::NotFound,
                    "no such endpoint; see /healthz, /metrics, /v1/containers, /v1/stats, /v1/node/stats"
                        .into(),
                )
            } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
                error(
                    HttpErrorCode::MethodNotAllowed,
                    "method not allowed on this path".into(),
                )
            } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
                error(
                    HttpErrorCode::BadQuery,
                    "bad query: tail must be a non-negative integer, follow true or false".into(),
                )
            } else {
                error(HttpErrorCode::Internal, format!("{rejection:?}"))
            };
            Ok::<_, Infallible>(reply)
        })
        .unify()
}

/// A refused control request (a warp rejection, so it happens before the body is read).
#[derive(Debug)]
struct Denied {
    code: HttpErrorCode,
    message: String,
}

impl warp::reject::Reject for Denied {}

/// Control endpoints need the control token; without one configured they are off. Returns the
/// refusal, or `None` when the caller may go on.
fn authorize(token: Option<&str>, header: Option<&str>) -> Option<Denied> {
    let Some(token) = token else {
        return Some(Denied {
            code: HttpErrorCode::Forbidden,
            message: "the agent's /v1 API is off: start it with --control-token-file (central's \
                      --agent-token-file); /healthz and /metrics stay open"
                .into(),
        });
    };
    let sent = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    // Compare digests, so the time taken does not depend on how much of the token matched.
    let digest = |t: &str| sha2::Sha256::digest(t.as_bytes());
    match sent {
        Some(sent) if digest(sent) == digest(token) => None,
        _ => Some(Denied {
            code: HttpErrorCode::Unauthorized,
            message: "the agent's /v1 API needs central's agent token as a bearer token".into(),
        }),
    }
}

fn control_error(e: crate::control::ControlError) -> warp::reply::Response {
    error(e.code(), e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::runtime::fake::FakeRuntime;
    use std::io::Read;

    const TOKEN: &str = "0123456789abcdef0123";

    /// A package with a start script and `size` zero bytes, streamed through gzip.
    fn package(size: u64) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(10);
        h.set_cksum();
        b.append_data(&mut h, "bin/start.sh", &b"#!/bin/sh\n"[..])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        b.append_data(&mut h, "lib/zeros", std::io::repeat(0).take(size))
            .unwrap();
        b.into_inner().unwrap().finish().unwrap()
    }

    async fn deploy(runtime: Arc<FakeRuntime>, body: Vec<u8>) -> (u16, serde_json::Value) {
        let routes = routes(
            AgentView::default(),
            runtime,
            "n1".into(),
            ControlOptions {
                token: Some(TOKEN.into()),
                max_unpacked: 1 << 20,
                terminal: Default::default(),
                stop: Default::default(),
                tasks: Default::default(),
            },
        );
        let reply = warp::test::request()
            .method("POST")
            .path("/v1/containers/p1/web/deploy")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(body)
            .reply(&routes)
            .await;
        let status = reply.status().as_u16();
        (status, serde_json::from_slice(reply.body()).unwrap())
    }

    #[tokio::test]
    async fn refusals_of_the_matched_route_win_over_its_siblings_methods() {
        let routes = routes(
            AgentView::default(),
            Arc::new(FakeRuntime::with_images(&[])),
            "n1".into(),
            ControlOptions {
                token: Some(TOKEN.into()),
                max_unpacked: 1 << 20,
                terminal: Default::default(),
                stop: Default::default(),
                tasks: Default::default(),
            },
        );
        let call =
            |method: &'static str, path: &'static str, token: Option<&'static str>, length: u64| {
                let routes = routes.clone();
                async move {
                    let mut request = warp::test::request()
                        .method(method)
                        .path(path)
                        .header("content-length", length.to_string());
                    if let Some(token) = token {
                        request = request.header("authorization", format!("Bearer {token}"));
                    }
                    let reply = request.reply(&routes).await;
                    let body: serde_json::Value =
                        serde_json::from_slice(reply.body()).unwrap_or_default();
                    (
                        reply.status().as_u16(),
                        body["code"].as_str().unwrap_or("").to_string(),
                    )
                }
            };
        // A declared body over the limit: 413, not the 405 of the GET routes on nearby paths.
        assert_eq!(
            call(
                "POST",
                "/v1/containers/p1/web/deploy",
                Some(TOKEN),
                MAX_PACKAGE + 1
            )
            .await,
            (413, "too-large".to_string())
        );
        // No or a wrong token: 401 on reads and writes alike, not 405 or 404.
        for (method, path) in [
            ("GET", "/v1/containers"),
            ("GET", "/v1/containers/p1/web"),
            ("POST", "/v1/containers/p1/web/exec"),
        ] {
            for token in [None, Some("wrong-token-of-some-length")] {
                assert_eq!(
                    call(method, path, token, 0).await,
                    (401, "unauthorized".to_string()),
                    "{method} {path} {token:?}"
                );
            }
        }
        // Open routes stay open; an unknown one is still 404 and a wrong method 405.
        assert_eq!(call("GET", "/metrics", None, 0).await.0, 200);
        assert_eq!(call("GET", "/nope", None, 0).await.0, 404);
        assert_eq!(call("DELETE", "/healthz", None, 0).await.0, 405);
    }

    #[tokio::test]
    async fn a_package_over_the_unpacked_cap_is_refused_before_anything_is_touched() {
        let runtime = Arc::new(FakeRuntime::with_images(&[]));
        let (status, body) = deploy(runtime.clone(), package(2 << 20)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (413, Some("package-too-large"))
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("1 MiB") && message.contains("deploy_max_unpacked_mib"),
            "{message}"
        );
        assert!(runtime.calls().is_empty(), "{:?}", runtime.calls());
        // Under the cap the package passes the check, and the next refusal is the workload's.
        let (status, body) = deploy(runtime.clone(), package(1000)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not-found")),
            "{body}"
        );
        assert!(runtime.calls().is_empty(), "{:?}", runtime.calls());
    }
}
