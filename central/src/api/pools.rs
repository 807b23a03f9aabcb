//! `/v1/pools`: tenants. Creating and deleting pools needs the admin token; a pool token sees
//! only its own pool.

use bytes::Bytes;
use caas_api::central::{
    validate_ssh_keys, ContainerRecord, CreatePoolRequest, PoolRecord, PoolView, SshKeysRequest,
    SshKeysView, TokenResponse,
};
use caas_api::name::validate_dns_label;
use caas_api::roles::{token_id, CreateTokenRequest, Role, TokenView};
use caas_api::{Assignment, Desired, WorkloadKey};
use warp::http::StatusCode;
use warp::Reply;

use super::{check_pool_access, json, parse_body, principal, require_admin, Ctx, Response};
use crate::auth::issue;
use crate::error::{CentralError, ConflictKind};
use crate::store::{Op, OpFailure};

async fn view(ctx: &Ctx, pool: &str) -> Result<PoolView, CentralError> {
    let containers = ctx
        .central
        .store
        .children(&ctx.central.layout().containers(pool))
        .await?
        .len();
    let nodes = ctx
        .central
        .registrations()?
        .values()
        .filter(|n| n.pool == pool)
        .count();
    Ok(PoolView {
        name: pool.to_string(),
        containers,
        nodes,
        token: None,
    })
}

pub async fn list(ctx: Ctx) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    let mut out = Vec::new();
    for pool in ctx.central.store.pools().await? {
        if who.sees(&pool.name) {
            out.push(view(&ctx, &pool.name).await?);
        }
    }
    Ok(json(StatusCode::OK, &out))
}

pub async fn get(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    check_pool_access(&who, &pool)?;
    if ctx.central.store.pool(&pool).await?.is_none() {
        return Err(CentralError::not_found(format!("pool {pool} not found")));
    }
    Ok(json(StatusCode::OK, &view(&ctx, &pool).await?))
}

pub async fn create(ctx: Ctx, body: Bytes) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    require_admin(&who)?;
    let request: CreatePoolRequest = parse_body(&body)?;
    validate_dns_label("name", &request.name)?;
    validate_ssh_keys("ssh_keys", &request.ssh_keys)?;
    let (token, first) = issue(Role::Ops, Some("first token".into()), crate::now());
    let record = PoolRecord {
        version: caas_api::PAYLOAD_VERSION,
        name: request.name.clone(),
        token_hashes: Vec::new(),
        tokens: vec![first],
        ssh_keys: request.ssh_keys,
        created_at: crate::now(),
    };
    let layout = ctx.central.layout();
    ctx.central.store.ensure(&layout.pools()).await?;
    let ops = vec![
        Op::create(layout.pool(&record.name), &record)?,
        Op::Create {
            path: layout.containers(&record.name),
            data: Vec::new(),
        },
        Op::Create {
            path: layout.networks(&record.name),
            data: Vec::new(),
        },
    ];
    match ctx.central.store.commit(&ops, None).await {
        Ok(()) => {}
        Err(e)
            if e.conflict()
                .is_some_and(|(f, _)| f == OpFailure::NodeExists) =>
        {
            return Err(CentralError::conflict(
                ConflictKind::Exists,
                format!("pool {} already exists", record.name),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(pool = %record.name, "pool created");
    let mut v = view(&ctx, &record.name).await?;
    v.token = Some(token);
    Ok(json(StatusCode::CREATED, &v))
}

/// Issues a token. Admin issues any role; a pool's ops issue developer tokens only (an ops
/// token cannot mint more ops tokens: that stays with the admin). No body means an ops token.
pub async fn new_token(ctx: Ctx, pool: String, body: Bytes) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    check_pool_access(&who, &pool)?;
    let request: CreateTokenRequest = if body.is_empty() {
        CreateTokenRequest::default()
    } else {
        parse_body(&body)?
    };
    request.validate()?;
    if request.role == Role::Ops {
        require_admin(&who).map_err(|_| {
            CentralError::forbidden(
                "ops tokens are issued with the admin token; an ops token issues developer tokens (role developer)",
            )
        })?;
    }
    for _ in 0..10 {
        let (mut record, version) = ctx
            .central
            .store
            .pool(&pool)
            .await?
            .ok_or_else(|| CentralError::not_found(format!("pool {pool} not found")))?;
        let (token, issued) = issue(request.role, request.label.clone(), crate::now());
        let answer = TokenResponse {
            token,
            id: issued.id.clone(),
            role: issued.role,
        };
        record.tokens.push(issued);
        let op = Op::set(ctx.central.layout().pool(&pool), &record, version)?;
        match ctx.central.store.commit(&[op], None).await {
            Ok(()) => {
                tracing::info!(pool = %pool, id = %answer.id, role = %answer.role, by = %who.token_id(), "token issued");
                return Ok(json(StatusCode::CREATED, &answer));
            }
            Err(e) if e.is_race() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CentralError::unavailable(
        "the pool is being changed concurrently; retry",
    ))
}

/// The pool's tokens (ids and roles; never the tokens).
fn token_views(record: &PoolRecord) -> Vec<TokenView> {
    record
        .token_hashes
        .iter()
        .map(|hash| TokenView {
            id: token_id(hash),
            role: Role::Ops,
            created_at: None,
            label: Some("issued before token records".into()),
        })
        .chain(record.tokens.iter().map(|t| TokenView {
            id: t.id.clone(),
            role: t.role,
            created_at: Some(t.created_at),
            label: t.label.clone(),
        }))
        .collect()
}

pub async fn list_tokens(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    check_pool_access(&who, &pool)?;
    let (record, _) = ctx
        .central
        .store
        .pool(&pool)
        .await?
        .ok_or_else(|| CentralError::not_found(format!("pool {pool} not found")))?;
    Ok(json(StatusCode::OK, &token_views(&record)))
}

/// Revokes a token. Ops revoke developer tokens; ops tokens need the admin.
pub async fn revoke_token(ctx: Ctx, pool: String, id: String) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    check_pool_access(&who, &pool)?;
    for _ in 0..10 {
        let (mut record, version) = ctx
            .central
            .store
            .pool(&pool)
            .await?
            .ok_or_else(|| CentralError::not_found(format!("pool {pool} not found")))?;
        let role = token_views(&record)
            .into_iter()
            .find(|t| t.id == id)
            .map(|t| t.role)
            .ok_or_else(|| {
                CentralError::not_found(format!(
                    "token {id} not found in pool {pool}; `caas pool token ls {pool}` lists them"
                ))
            })?;
        if role == Role::Ops {
            require_admin(&who).map_err(|_| {
                CentralError::forbidden("ops tokens are revoked with the admin token")
            })?;
        }
        record.token_hashes.retain(|h| token_id(h) != id);
        record.tokens.retain(|t| t.id != id);
        let op = Op::set(ctx.central.layout().pool(&pool), &record, version)?;
        match ctx.central.store.commit(&[op], None).await {
            Ok(()) => {
                tracing::info!(pool = %pool, id = %id, by = %who.token_id(), "token revoked");
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            Err(e) if e.is_race() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CentralError::unavailable(
        "the pool is being changed concurrently; retry",
    ))
}

pub async fn delete(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    check_pool_access(&who, &pool)?;
    require_admin(&who)?;
    let layout = ctx.central.layout();
    let Some((_, version)) = ctx.central.store.pool(&pool).await? else {
        return Err(CentralError::not_found(format!("pool {pool} not found")));
    };
    let containers = ctx
        .central
        .store
        .children(&layout.containers(&pool))
        .await?;
    let networks = ctx.central.store.children(&layout.networks(&pool)).await?;
    if !containers.is_empty() || !networks.is_empty() {
        return Err(CentralError::conflict(
            ConflictKind::NotEmpty,
            format!(
                "pool {pool} still has {} container(s) and {} network(s); remove them first",
                containers.len(),
                networks.len()
            ),
        ));
    }
    // The pool's registry proxies are its settings: they go with it.
    let mut ops = Vec::new();
    let proxies_dir = layout.registry_proxies(&pool);
    if ctx.central.store.get_raw(&proxies_dir).await?.is_some() {
        for name in ctx.central.store.children(&proxies_dir).await? {
            ops.push(Op::Delete {
                path: layout.registry_proxy(&pool, &name),
                version: None,
            });
        }
        ops.push(Op::Delete {
            path: proxies_dir,
            version: None,
        });
    }
    // So are its prewarms (and their nodes' states).
    let prewarms_dir = layout.prewarms(&pool);
    if ctx.central.store.get_raw(&prewarms_dir).await?.is_some() {
        for id in ctx.central.store.children(&prewarms_dir).await? {
            for node in ctx
                .central
                .store
                .children(&layout.prewarm(&pool, &id))
                .await?
            {
                ops.push(Op::Delete {
                    path: layout.prewarm_node(&pool, &id, &node),
                    version: None,
                });
            }
            ops.push(Op::Delete {
                path: layout.prewarm(&pool, &id),
                version: None,
            });
        }
        ops.push(Op::Delete {
            path: prewarms_dir,
            version: None,
        });
    }
    // The deletes of the child directories fail with NotEmpty if something was added meanwhile.
    ops.extend([
        Op::Delete {
            path: layout.containers(&pool),
            version: None,
        },
        Op::Delete {
            path: layout.networks(&pool),
            version: None,
        },
        Op::Delete {
            path: layout.pool(&pool),
            version: Some(version),
        },
    ]);
    match ctx.central.store.commit(&ops, None).await {
        Ok(()) => {}
        Err(e) if e.conflict().is_some_and(|(f, _)| f == OpFailure::NotEmpty) => {
            return Err(CentralError::conflict(
                ConflictKind::NotEmpty,
                format!(
                    "pool {pool} changed while it was being removed (a container, network, \
                     prewarm or node report appeared); check it and retry"
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// Replaces a pool's SSH keys and, in the same commit, the keys in the assignments of its rich
/// containers: agents write them into the running containers in place (no restart).
pub async fn set_ssh_keys(ctx: Ctx, pool: String, body: Bytes) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    check_pool_access(&who, &pool)?;
    let request: SshKeysRequest = parse_body(&body)?;
    validate_ssh_keys("ssh_keys", &request.ssh_keys)?;
    let store = &ctx.central.store;
    let layout = store.layout();
    for _ in 0..10 {
        let (mut record, version) = store
            .pool(&pool)
            .await?
            .ok_or_else(|| CentralError::not_found(format!("pool {pool} not found")))?;
        let rich: Vec<ContainerRecord> = store
            .containers(&pool)
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .filter(|r| r.spec.rich)
            .collect();
        if request.ssh_keys.is_empty() && !rich.is_empty() {
            return Err(CentralError::invalid(
                "ssh_keys",
                format!(
                    "pool {pool} has {} rich container(s); it needs at least one key",
                    rich.len()
                ),
            ));
        }
        record.ssh_keys = request.ssh_keys.clone();
        let mut ops = vec![Op::set(layout.pool(&pool), &record, version)?];
        for container in &rich {
            let key = WorkloadKey::new(&pool, &container.spec.name);
            let path = layout.assignment(&container.node, &key);
            if let Some((mut assignment, assignment_version)) =
                store.get::<Assignment>(&path).await?
            {
                if assignment.desired == Desired::Run {
                    assignment.ssh_authorized_keys = request.ssh_keys.clone();
                    ops.push(Op::set(path, &assignment, assignment_version)?);
                }
            }
        }
        match store.commit(&ops, None).await {
            Ok(()) => {
                // A rich create that committed between the listing above and this commit holds
                // the old keys (it checked the pool version it read, which was still current):
                // bring such assignments up to date before answering.
                catch_up_keys(&ctx, &pool, &request.ssh_keys).await?;
                tracing::info!(pool = %pool, keys = request.ssh_keys.len(), containers = rich.len(), "pool SSH keys replaced");
                return Ok(json(
                    StatusCode::OK,
                    &SshKeysView {
                        pool,
                        ssh_keys: request.ssh_keys,
                        containers_updated: rich.len(),
                    },
                ));
            }
            Err(e) if e.is_race() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CentralError::unavailable(
        "the pool is being changed concurrently; retry",
    ))
}

/// Sets `keys` in every run assignment of the pool's rich containers that still differs.
async fn catch_up_keys(ctx: &Ctx, pool: &str, keys: &[String]) -> Result<(), CentralError> {
    let store = &ctx.central.store;
    for _ in 0..10 {
        let mut ops = Vec::new();
        for (container, _) in store.containers(pool).await? {
            if !container.spec.rich {
                continue;
            }
            let key = WorkloadKey::new(pool, &container.spec.name);
            let path = store.layout().assignment(&container.node, &key);
            if let Some((mut assignment, version)) = store.get::<Assignment>(&path).await? {
                if assignment.desired == Desired::Run && assignment.ssh_authorized_keys != keys {
                    assignment.ssh_authorized_keys = keys.to_vec();
                    ops.push(Op::set(path, &assignment, version)?);
                }
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        match store.commit(&ops, None).await {
            Ok(()) => continue,
            Err(e) if e.is_race() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CentralError::unavailable(
        "rich containers of the pool kept changing while their keys were updated; retry",
    ))
}
