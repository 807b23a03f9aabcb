//! `/v1/pools/{pool}/prewarms`: pull an image on a pool's nodes ahead of a deploy. Central
//! picks the nodes (the pool's registered nodes matching the constraints) and writes the
//! record; each chosen node's agent pulls through the pool's proxy and writes its state under it.

use bytes::Bytes;
use caas_api::constraint::Constraint;
use caas_api::image::{
    CreatePrewarmRequest, Prewarm, PrewarmNodeStatus, PrewarmState, PrewarmView,
};
use caas_api::ImageRef;
use rand::RngCore;
use warp::http::StatusCode;
use warp::Reply;

use super::containers::require_pool;
use super::{json, parse_body, Ctx, Response};
use crate::error::{CentralError, ConflictKind};
use crate::store::{Op, OpFailure};

pub async fn create(ctx: Ctx, pool: String, body: Bytes) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let request: CreatePrewarmRequest = parse_body(&body)?;
    let image = ImageRef::parse("image", &request.image)?;
    let constraints = request
        .constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Constraint::parse(c)
                .map_err(|e| CentralError::invalid(format!("constraints[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let store = &ctx.central.store;
    let layout = store.layout();
    // Only what a proxy of the pool can serve can be prewarmed.
    let proxies = super::registry::proxies(store, &pool).await?;
    let Some(registry) = image.registry.as_deref() else {
        return Err(CentralError::invalid(
            "image",
            format!(
                "{:?} names no registry; prewarm images of the image center, e.g. \
                 center.example:5000/{}",
                request.image, image.repository
            ),
        ));
    };
    if !proxies.iter().any(|p| p.center == registry) {
        return Err(CentralError::invalid(
            "image",
            format!(
                "pool {pool} has no registry proxy for {registry}; declare one first \
                 (caas --pool={pool} registry-proxy add NAME https://HOST:PORT --center {registry})"
            ),
        ));
    }
    let registered = ctx.central.registrations()?;
    for (i, node) in request.nodes.iter().enumerate() {
        if registered.get(node).is_none_or(|info| info.pool != pool) {
            return Err(CentralError::invalid(
                format!("nodes[{i}]"),
                format!("{node} is not a registered node of pool {pool}; see caas node ls"),
            ));
        }
    }
    let nodes: Vec<String> = registered
        .iter()
        .filter(|(id, info)| {
            info.pool == pool
                && constraints.iter().all(|c| c.matches(&info.labels))
                && (request.nodes.is_empty() || request.nodes.contains(id))
        })
        .map(|(id, _)| id.clone())
        .collect();
    if nodes.is_empty() {
        return Err(CentralError::invalid(
            "constraints",
            format!(
                "no registered node of pool {pool} matches {}; see caas node ls",
                if request.constraints.is_empty() {
                    "(the pool has no node)".to_string()
                } else {
                    request.constraints.join(", ")
                }
            ),
        ));
    }
    let mut suffix = [0u8; 3];
    rand::rng().fill_bytes(&mut suffix);
    let id = format!("pw-{}-{}", crate::now(), hex::encode(suffix));
    let record = Prewarm {
        version: caas_api::PAYLOAD_VERSION,
        id: id.clone(),
        pool: pool.clone(),
        image: request.image.clone(),
        nodes,
        constraints: request.constraints.clone(),
        created_at: crate::now(),
    };
    let dir = layout.prewarms(&pool);
    for _ in 0..3 {
        let mut ops = vec![Op::exists(layout.pool(&pool))];
        if store.get_raw(&dir).await?.is_none() {
            ops.push(Op::Create {
                path: dir.clone(),
                data: Vec::new(),
            });
        }
        ops.push(Op::create(layout.prewarm(&pool, &id), &record)?);
        match store.commit(&ops, None).await {
            Ok(()) => {
                tracing::info!(pool = %pool, prewarm = %id, image = %record.image, nodes = record.nodes.len(), "prewarm created");
                return Ok(json(StatusCode::CREATED, &view_of(&ctx, record).await?));
            }
            Err(e) => match e.conflict() {
                Some((OpFailure::NodeExists, p)) if p == dir => continue,
                Some((OpFailure::NoNode, _)) => {
                    return Err(CentralError::not_found(format!("pool {pool} not found")))
                }
                Some((OpFailure::NodeExists, _)) => {
                    return Err(CentralError::conflict(
                        ConflictKind::Exists,
                        format!("prewarm {id} exists; retry"),
                    ))
                }
                _ => return Err(e.into()),
            },
        }
    }
    Err(CentralError::Contention(
        "prewarms of this pool changed concurrently; retry".into(),
    ))
}

/// The record with each chosen node's state (`waiting` until its agent reports).
async fn view_of(ctx: &Ctx, record: Prewarm) -> Result<PrewarmView, CentralError> {
    let store = &ctx.central.store;
    let layout = store.layout();
    let mut nodes = Vec::with_capacity(record.nodes.len());
    for node in &record.nodes {
        let path = layout.prewarm_node(&record.pool, &record.id, node);
        let status = match store.get::<PrewarmNodeStatus>(&path).await {
            Ok(Some((status, _))) => status,
            Ok(None) => PrewarmNodeStatus {
                node: node.clone(),
                state: PrewarmState::Waiting,
                progress: None,
                error: None,
            },
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "unreadable prewarm state");
                PrewarmNodeStatus {
                    node: node.clone(),
                    state: PrewarmState::Waiting,
                    progress: None,
                    error: None,
                }
            }
        };
        nodes.push(status);
    }
    Ok(PrewarmView {
        id: record.id,
        pool: record.pool,
        image: record.image,
        constraints: record.constraints,
        created_at: record.created_at,
        nodes,
    })
}

async fn record(ctx: &Ctx, pool: &str, id: &str) -> Result<Prewarm, CentralError> {
    let path = ctx.central.store.layout().prewarm(pool, id);
    ctx.central
        .store
        .get::<Prewarm>(&path)
        .await?
        .map(|(r, _)| r)
        .ok_or_else(|| CentralError::not_found(format!("pool {pool} has no prewarm {id}")))
}

pub async fn list(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let store = &ctx.central.store;
    let mut out = Vec::new();
    for id in store.children(&store.layout().prewarms(&pool)).await? {
        if let Ok(r) = record(&ctx, &pool, &id).await {
            out.push(view_of(&ctx, r).await?);
        }
    }
    Ok(json(StatusCode::OK, &out))
}

pub async fn get(ctx: Ctx, pool: String, id: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let r = record(&ctx, &pool, &id).await?;
    Ok(json(StatusCode::OK, &view_of(&ctx, r).await?))
}

/// Forgets a prewarm (the images stay on the nodes until pruned).
pub async fn delete(ctx: Ctx, pool: String, id: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let store = &ctx.central.store;
    let layout = store.layout();
    let path = layout.prewarm(&pool, &id);
    for _ in 0..5 {
        let mut ops: Vec<Op> = store
            .children(&path)
            .await?
            .into_iter()
            .map(|node| Op::Delete {
                path: layout.prewarm_node(&pool, &id, &node),
                version: None,
            })
            .collect();
        ops.push(Op::Delete {
            path: path.clone(),
            version: None,
        });
        match store.commit(&ops, None).await {
            Ok(()) => {
                return Ok(
                    warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response(),
                )
            }
            Err(e) => match e.conflict() {
                Some((OpFailure::NoNode, p)) if p == path => {
                    return Err(CentralError::not_found(format!(
                        "pool {pool} has no prewarm {id}"
                    )))
                }
                // A node reported meanwhile (NotEmpty) or a state went (NoNode): list again.
                Some((OpFailure::NotEmpty | OpFailure::NoNode, _)) => continue,
                _ => return Err(e.into()),
            },
        }
    }
    Err(CentralError::Contention(
        "the prewarm's nodes kept reporting; retry".into(),
    ))
}
