//! `GET .../containers/{name}/logs` and `.../log-files`: the app's output and the files of
//! `/home/admin/logs`, streamed from the agent of the container's node (followed live with
//! `follow=true` until the client goes away), and `GET /v1/pools/{pool}/audit`.

use caas_api::central::ContainerRecord;
use caas_api::terminal::{validate_log_file, LogFile, MAX_LOG_TAIL};
use futures::StreamExt;
use warp::http::{header, StatusCode};

use super::{check_pool_access, json, principal, Ctx, Response};
use crate::error::CentralError;

/// Query of the logs route.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    pub tail: Option<u32>,
    pub follow: Option<bool>,
    pub file: Option<String>,
}

/// Query of the audit route.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub container: Option<String>,
    pub limit: Option<usize>,
}

/// The container, after the caller's access to it was checked.
pub(super) async fn checked_container(
    ctx: &Ctx,
    pool: &str,
    name: &str,
) -> Result<ContainerRecord, CentralError> {
    let who = principal(ctx).await?;
    check_pool_access(&who, pool)?;
    super::containers::require_pool(ctx, pool).await?;
    ctx.central
        .store
        .container(pool, name)
        .await?
        .map(|(record, _)| record)
        .ok_or_else(|| {
            CentralError::not_found(format!(
                "container {name} not found in pool {pool} (with replicas, name one: {name}-1)"
            ))
        })
}

/// An agent's error answer as ours.
async fn agent_error(name: &str, response: reqwest::Response) -> CentralError {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    crate::agent_link::agent_error(name, status, &body)
}

pub async fn logs(
    ctx: Ctx,
    pool: String,
    name: String,
    query: LogsQuery,
) -> Result<Response, CentralError> {
    let record = checked_container(&ctx, &pool, &name).await?;
    let tail = query.tail.unwrap_or(100);
    if tail > MAX_LOG_TAIL {
        return Err(CentralError::invalid(
            "tail",
            format!("must be 0..={MAX_LOG_TAIL}"),
        ));
    }
    if let Some(file) = &query.file {
        validate_log_file(file)?;
    }
    let addr = super::access::agent_of(&ctx, &record)?;
    let mut url = reqwest::Url::parse(&format!("http://{addr}/v1/containers/{pool}/{name}/logs"))
        .map_err(|e| {
        CentralError::unavailable(format!("the agent address {addr} is not usable: {e}"))
    })?;
    {
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("tail", &tail.to_string());
        if query.follow.unwrap_or(false) {
            pairs.append_pair("follow", "true");
        }
        if let Some(file) = &query.file {
            pairs.append_pair("file", file);
        }
    }
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let response = ctx.agents.get_stream(&addr, &path).await?;
    if !response.status().is_success() {
        return Err(agent_error(&name, response).await);
    }
    // Passed on as the agent sends it, a few chunks at a time through a small channel: the
    // client's reading paces the agent's, and when the client goes away the copy stops, which
    // drops the agent's stream (the agent then ends its follow).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        loop {
            // A client that leaves a quiet log ends the copy at once (not at the next line),
            // which drops the agent's stream and its `tail -F`.
            let chunk = tokio::select! {
                () = tx.closed() => break,
                chunk = body.next() => chunk,
            };
            let Some(chunk) = chunk else { break };
            let chunk = chunk.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    let mut reply = warp::reply::Reply::into_response(warp::reply::stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        "x-content-type-options",
        header::HeaderValue::from_static("nosniff"),
    );
    Ok(reply)
}

pub async fn log_files(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    let record = checked_container(&ctx, &pool, &name).await?;
    let addr = super::access::agent_of(&ctx, &record)?;
    let files: Vec<LogFile> = ctx
        .agents
        .get_json(&addr, &format!("/v1/containers/{pool}/{name}/log-files"))
        .await?;
    Ok(json(StatusCode::OK, &files))
}

pub async fn audit(ctx: Ctx, pool: String, query: AuditQuery) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    check_pool_access(&who, &pool)?;
    super::containers::require_pool(&ctx, &pool).await?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > caas_api::roles::MAX_AUDIT_LIST {
        return Err(CentralError::invalid(
            "limit",
            format!("must be 1..={}", caas_api::roles::MAX_AUDIT_LIST),
        ));
    }
    // The log outlives the pool; a pool created again under the name sees only its own.
    let since = match ctx.central.store.pool(&pool).await? {
        Some((record, _)) => record.created_at.saturating_mul(1000),
        None => return Err(CentralError::not_found(format!("pool {pool} not found"))),
    };
    let entries = crate::audit::list(
        ctx.central.store.as_ref(),
        &pool,
        query.container.as_deref(),
        limit,
        since,
    )
    .await?;
    Ok(json(StatusCode::OK, &entries))
}
