//! `/v1/pools/{pool}/containers/{name}/exec` and `/deploy`: work that only the node running a
//! container can do, forwarded to its agent through `AgentLink` after central checked the
//! caller's access to the pool.

use std::time::Duration;

use bytes::Bytes;
use caas_api::central::{ContainerRecord, DeployResult, ExecRequest};
use caas_api::roles::SessionKind;
use warp::http::StatusCode;

use super::{json, parse_body, Ctx, Response};
use crate::audit;
use crate::error::CentralError;

/// How long a deploy may take on one instance (copy, restart, wait for the app's state).
const DEPLOY_WAIT: Duration = Duration::from_secs(120);

/// The agent address of the node running `record`, or why it cannot be reached.
pub(super) fn agent_of(ctx: &Ctx, record: &ContainerRecord) -> Result<String, CentralError> {
    let registrations = ctx.central.registrations()?;
    match registrations.get(&record.node) {
        Some(info) => Ok(info.api_addr.clone()),
        None => Err(CentralError::unavailable(format!(
            "node {} of container {} is not connected; try again when it is back, or reschedule",
            record.node, record.spec.name
        ))),
    }
}

/// Turns an agent's answer into ours: success as it is, errors with the instance named.
fn relay(instance: &str, status: StatusCode, body: Bytes) -> Result<Bytes, CentralError> {
    if status.is_success() {
        return Ok(body);
    }
    Err(crate::agent_link::agent_error(
        instance,
        status.as_u16(),
        &body,
    ))
}

pub async fn exec(
    ctx: Ctx,
    pool: String,
    name: String,
    body: Bytes,
) -> Result<Response, CentralError> {
    super::containers::require_pool(&ctx, &pool).await?;
    let request: ExecRequest = parse_body(&body)?;
    request.validate()?;
    let record = super::logs::checked_container(&ctx, &pool, &name).await?;
    let value = audited_exec(&ctx, &record, &request).await?;
    Ok(json(StatusCode::OK, &value))
}

/// Runs a non-interactive exec through the container's agent, with an audit entry written
/// before it runs and completed after.
async fn audited_exec(
    ctx: &Ctx,
    record: &ContainerRecord,
    request: &ExecRequest,
) -> Result<serde_json::Value, CentralError> {
    let who = super::principal(ctx).await?;
    let pool = &record.spec.pool;
    let name = &record.spec.name;
    let addr = agent_of(ctx, record)?;
    let mut entry = audit::begin(
        &who,
        ctx.via,
        record,
        SessionKind::Exec,
        request.user.as_deref(),
        &request.command,
    );
    audit::record_start(ctx.central.store.as_ref(), &entry).await?;
    let body = Bytes::from(
        serde_json::to_vec(request)
            .map_err(|e| CentralError::Internal(format!("encoding the exec request: {e}")))?,
    );
    let wait = Duration::from_secs(u64::from(request.timeout_seconds.unwrap_or(60)));
    let answer = ctx
        .agents
        .post(
            &addr,
            &format!("/v1/containers/{pool}/{name}/exec"),
            "application/json",
            body,
            wait,
        )
        .await
        .and_then(|(status, answer)| relay(name, status, answer))
        .and_then(|answer| {
            serde_json::from_slice::<serde_json::Value>(&answer).map_err(|e| {
                CentralError::unavailable(format!("the agent's exec answer is not JSON: {e}"))
            })
        });
    entry.ended_at = crate::now_millis();
    match &answer {
        Ok(value) => {
            entry.exit_code = value["exit_code"].as_i64();
            entry.ended_by = if value["timed_out"].as_bool() == Some(true) {
                "timeout".into()
            } else {
                "exit".into()
            };
        }
        Err(e) => entry.ended_by = format!("error: {e}"),
    }
    audit::record_end(ctx.central.store.as_ref(), &entry).await?;
    answer
}

/// `POST .../restart-app`: `supervisorctl restart app` as root in a rich container (the
/// console's button for ops).
pub async fn restart_app(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    let record = super::logs::checked_container(&ctx, &pool, &name).await?;
    if !record.spec.rich {
        return Err(CentralError::invalid(
            "name",
            format!("{name} is not a rich container: it has no supervisord app program to restart"),
        ));
    }
    let request = ExecRequest {
        command: vec!["supervisorctl".into(), "restart".into(), "app".into()],
        user: Some("root".into()),
        timeout_seconds: Some(60),
    };
    let value = audited_exec(&ctx, &record, &request).await?;
    tracing::info!(pool = %pool, container = %name, "app program restarted");
    Ok(json(StatusCode::OK, &value))
}

pub async fn deploy(
    ctx: Ctx,
    pool: String,
    name: String,
    body: Bytes,
) -> Result<Response, CentralError> {
    super::containers::require_pool(&ctx, &pool).await?;
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Err(CentralError::invalid(
            "package",
            "the body is not a gzip tarball; send the .tgz app package as the request body",
        ));
    }
    let instances: Vec<ContainerRecord> = match ctx.central.store.container(&pool, &name).await? {
        Some((record, _)) => vec![record],
        None => {
            let mut replicas: Vec<ContainerRecord> = ctx
                .central
                .store
                .containers(&pool)
                .await?
                .into_iter()
                .map(|(r, _)| r)
                .filter(|r| r.app == name)
                .collect();
            replicas.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
            replicas
        }
    };
    if instances.is_empty() {
        return Err(CentralError::not_found(format!(
            "container {name} not found in pool {pool}"
        )));
    }
    if let Some(plain) = instances.iter().find(|r| !r.spec.rich) {
        return Err(CentralError::invalid(
            "name",
            format!(
                "{} is not a rich container: deploy copies a package into a sofa image's \
                 supervisord; recreate it with --rich on a caas/sofa-* image",
                plain.spec.name
            ),
        ));
    }
    let mut results = Vec::new();
    for record in &instances {
        let addr = agent_of(&ctx, record)?;
        let instance = &record.spec.name;
        let (status, answer) = ctx
            .agents
            .post(
                &addr,
                &format!("/v1/containers/{pool}/{instance}/deploy"),
                "application/gzip",
                body.clone(),
                DEPLOY_WAIT,
            )
            .await?;
        let answer = relay(instance, status, answer)?;
        let result: DeployResult = serde_json::from_slice(&answer).map_err(|e| {
            CentralError::unavailable(format!("the agent's deploy answer is not understood: {e}"))
        })?;
        tracing::info!(pool = %pool, name = %instance, state = %result.program.state, "deployed a package");
        let failed = result.program.state != "RUNNING";
        results.push(result);
        if failed {
            // Stop the rollout: the remaining instances keep the version that works.
            break;
        }
    }
    Ok(json(StatusCode::OK, &results))
}
