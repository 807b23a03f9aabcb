//! `/v1/pools/{pool}/registry-proxies`: the registry proxies a pool's nodes pull images through
//! (add, list, remove). A pool token manages its own pool's proxies; passwords are never shown.

use bytes::Bytes;
use caas_api::image::{AddRegistryProxyRequest, RegistryProxy, RegistryProxyView};
use warp::http::StatusCode;
use warp::Reply;

use super::containers::require_pool;
use super::{json, parse_body, Ctx, Response};
use crate::error::{CentralError, ConflictKind};
use crate::store::{Op, OpFailure};

pub async fn add(ctx: Ctx, pool: String, body: Bytes) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let request: AddRegistryProxyRequest = parse_body(&body)?;
    let host = request.validate()?;
    let store = &ctx.central.store;
    let layout = store.layout();
    let proxy = RegistryProxy {
        version: caas_api::PAYLOAD_VERSION,
        name: request.name.clone(),
        pool: pool.clone(),
        host,
        center: request.center.clone(),
        ca_pem: request.ca_pem.clone(),
        username: request.username.clone(),
        password: request.password.clone(),
        created_at: crate::now(),
    };
    let dir = layout.registry_proxies(&pool);
    // The directory is made in the same commit when it is missing (a pool from before proxies);
    // two first adds racing on it: the loser sees NodeExists on the directory and tries again.
    for _ in 0..3 {
        let mut ops = vec![Op::exists(layout.pool(&pool))];
        if store.get_raw(&dir).await?.is_none() {
            ops.push(Op::Create {
                path: dir.clone(),
                data: Vec::new(),
            });
        }
        let path = layout.registry_proxy(&pool, &proxy.name);
        ops.push(Op::create(path.clone(), &proxy)?);
        match store.commit(&ops, None).await {
            Ok(()) => {
                tracing::info!(pool = %pool, proxy = %proxy.name, host = %proxy.host, center = %proxy.center, "registry proxy added");
                return Ok(json(StatusCode::CREATED, &proxy.view()));
            }
            Err(e) => match e.conflict() {
                Some((OpFailure::NodeExists, p)) if p == path => {
                    return Err(CentralError::conflict(
                        ConflictKind::Exists,
                        format!(
                            "pool {pool} already has a registry proxy named {}; remove it first \
                             (caas --pool={pool} registry-proxy rm {})",
                            proxy.name, proxy.name
                        ),
                    ))
                }
                Some((OpFailure::NodeExists, _)) => continue,
                Some((OpFailure::NoNode, _)) => {
                    return Err(CentralError::not_found(format!("pool {pool} not found")))
                }
                _ => return Err(e.into()),
            },
        }
    }
    Err(CentralError::Contention(
        "registry proxies of this pool changed concurrently; retry".into(),
    ))
}

/// The pool's proxies, in name order.
pub async fn proxies(
    store: &std::sync::Arc<dyn crate::store::Store>,
    pool: &str,
) -> Result<Vec<RegistryProxy>, CentralError> {
    let layout = store.layout();
    let mut out = Vec::new();
    for name in store.children(&layout.registry_proxies(pool)).await? {
        if let Some((proxy, _)) = store
            .get::<RegistryProxy>(&layout.registry_proxy(pool, &name))
            .await?
        {
            out.push(proxy);
        }
    }
    Ok(out)
}

pub async fn list(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let views: Vec<RegistryProxyView> = proxies(&ctx.central.store, &pool)
        .await?
        .iter()
        .map(RegistryProxy::view)
        .collect();
    Ok(json(StatusCode::OK, &views))
}

pub async fn remove(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let path = ctx.central.store.layout().registry_proxy(&pool, &name);
    let ops = [Op::Delete {
        path: path.clone(),
        version: None,
    }];
    match ctx.central.store.commit(&ops, None).await {
        Ok(()) => {
            tracing::info!(pool = %pool, proxy = %name, "registry proxy removed");
            Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
        }
        Err(e) if e.conflict().is_some_and(|(f, _)| f == OpFailure::NoNode) => Err(
            CentralError::not_found(format!("pool {pool} has no registry proxy named {name}")),
        ),
        Err(e) => Err(e.into()),
    }
}
