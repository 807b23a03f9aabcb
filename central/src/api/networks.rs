//! `/v1/pools/{pool}/networks`: create, list, inspect (with endpoints) and remove a pool's
//! container networks. A pool token sees only its pool's networks.

use bytes::Bytes;
use caas_api::network::CreateNetworkRequest;
use warp::http::StatusCode;
use warp::Reply;

use super::containers::require_pool;
use super::{json, parse_body, Ctx, Response};
use crate::error::CentralError;
use crate::networks;

pub async fn create(ctx: Ctx, pool: String, body: Bytes) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let request: CreateNetworkRequest = parse_body(&body)?;
    let spec = networks::create(&ctx.central, &pool, &request).await?;
    tracing::info!(pool = %pool, network = %spec.name, driver = spec.driver.as_str(), subnet = %spec.subnet, vni = spec.vni, "network created");
    Ok(json(StatusCode::CREATED, &spec))
}

pub async fn list(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let mut out = Vec::new();
    for spec in networks::networks(&ctx.central, &pool).await? {
        out.push(networks::view(&ctx.central, spec).await?);
    }
    Ok(json(StatusCode::OK, &out))
}

pub async fn get(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let spec = networks::get(&ctx.central, &pool, &name).await?;
    Ok(json(
        StatusCode::OK,
        &networks::view(&ctx.central, spec).await?,
    ))
}

pub async fn delete(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    networks::remove(&ctx.central, &pool, &name).await?;
    tracing::info!(pool = %pool, network = %name, "network removed");
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}
