//! What the console's script connects to: a container's logs (streamed from its agent through
//! the API's `logs` handler, followed live), the files of its log directory, and the terminal
//! WebSocket (session cookie, same-origin check, then the API's terminal relay with `via` =
//! `console`, audited like any terminal). Errors are the API's JSON errors.

use warp::filters::ws::Ws;

use super::gate::{ConsoleError, Req};
use super::{Env, Response};
use crate::api;
use crate::api::logs::LogsQuery;

pub async fn logs(env: Env, req: Req, pool: String, name: String, query: LogsQuery) -> Response {
    let path = format!("/v1/pools/{pool}/containers/{name}/logs");
    let caller = match env.caller(&req, "GET", &path).await {
        Ok(c) => c,
        Err(e) => return e.json(),
    };
    match api::logs::logs(caller.ctx, pool, name, query).await {
        Ok(stream) => stream,
        Err(e) => ConsoleError::from(e).json(),
    }
}

pub async fn log_files(env: Env, req: Req, pool: String, name: String) -> Response {
    let path = format!("/v1/pools/{pool}/containers/{name}/log-files");
    let caller = match env.caller(&req, "GET", &path).await {
        Ok(c) => c,
        Err(e) => return e.json(),
    };
    match api::logs::log_files(caller.ctx, pool, name).await {
        Ok(files) => files,
        Err(e) => ConsoleError::from(e).json(),
    }
}

pub async fn terminal(env: Env, req: Req, pool: String, name: String, ws: Ws) -> Response {
    // Browsers always send Origin on a WebSocket; one from another site's page is refused
    // before anything else is looked at (the cookie would ride along with it).
    // (A WebSocket's Origin is never `null` for a page of ours: it is not a form post.)
    let origin = req.origin.as_deref();
    if origin.is_none() || !api::terminal::same_origin(origin, req.host.as_deref()) {
        return ConsoleError::ForeignOrigin.json();
    }
    let path = format!("/v1/pools/{pool}/containers/{name}/terminal");
    let caller = match env.caller(&req, "GET", &path).await {
        Ok(c) => c,
        Err(e) => return e.json(),
    };
    let prepared = api::terminal::prepare(
        &caller.ctx,
        &pool,
        &name,
        req.origin.as_deref(),
        req.host.as_deref(),
    )
    .await;
    match prepared {
        Ok((who, record, addr)) => api::terminal::upgrade(caller.ctx, ws, who, record, addr),
        Err(e) => ConsoleError::from(e).json(),
    }
}
