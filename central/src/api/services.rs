//! `/v1/pools/{pool}/dns[/{name}]` and `/v1/pools/{pool}/lbs[/{name}[/backends[/{container}]]]`:
//! a network's DNS service and load balancers. A pool token sees only its pool's.

use std::convert::Infallible;

use bytes::Bytes;
use caas_api::service::{AddBackendRequest, CreateDnsRequest, CreateLbRequest};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::containers::require_pool;
use super::{body, finish, json, parse_body, Ctx, Response};
use crate::error::CentralError;
use crate::services;

fn no_content() -> Response {
    warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response()
}

async fn dns_list(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    Ok(json(
        StatusCode::OK,
        &services::dns_list(&ctx.central, &pool).await?,
    ))
}

async fn dns_create(ctx: Ctx, pool: String, body: Bytes) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let request: CreateDnsRequest = parse_body(&body)?;
    let spec = services::dns_create(&ctx.central, &pool, &request).await?;
    tracing::info!(pool = %pool, dns = %spec.name, network = %spec.network, domain = %spec.domain, "DNS service created");
    Ok(json(StatusCode::CREATED, &spec))
}

async fn dns_delete(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    services::dns_remove(&ctx.central, &pool, &name).await?;
    tracing::info!(pool = %pool, dns = %name, "DNS service removed");
    Ok(no_content())
}

async fn lb_list(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let mut out = Vec::new();
    for (spec, _) in services::lb_list(&ctx.central, &pool).await? {
        out.push(services::lb_view(&ctx.central, spec).await?);
    }
    Ok(json(StatusCode::OK, &out))
}

async fn lb_create(ctx: Ctx, pool: String, body: Bytes) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let request: CreateLbRequest = parse_body(&body)?;
    let spec = services::lb_create(&ctx.central, &pool, &request).await?;
    tracing::info!(pool = %pool, lb = %spec.name, network = %spec.network, vip = %spec.vip, port = spec.port, "load balancer created");
    Ok(json(StatusCode::CREATED, &spec))
}

async fn lb_get(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let (spec, _) = services::lb_get(&ctx.central, &pool, &name).await?;
    Ok(json(
        StatusCode::OK,
        &services::lb_view(&ctx.central, spec).await?,
    ))
}

async fn lb_delete(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    services::lb_remove(&ctx.central, &pool, &name).await?;
    tracing::info!(pool = %pool, lb = %name, "load balancer removed");
    Ok(no_content())
}

async fn backend_add(
    ctx: Ctx,
    pool: String,
    name: String,
    body: Bytes,
) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let request: AddBackendRequest = parse_body(&body)?;
    let spec = services::lb_add_backend(&ctx.central, &pool, &name, &request).await?;
    tracing::info!(pool = %pool, lb = %name, container = %request.container, "backend added");
    Ok(json(StatusCode::OK, &spec))
}

async fn backend_remove(
    ctx: Ctx,
    pool: String,
    name: String,
    container: String,
) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let spec = services::lb_remove_backend(&ctx.central, &pool, &name, &container).await?;
    tracing::info!(pool = %pool, lb = %name, container = %container, "backend removed");
    Ok(json(StatusCode::OK, &spec))
}

/// The DNS and LB routes, boxed.
pub fn routes(
    c: impl Filter<Extract = (Ctx,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> BoxedFilter<(Response,)> {
    let v1 = warp::path("v1");
    let dns_list_r = v1
        .and(warp::path!("pools" / String / "dns"))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(dns_list(ctx, pool).await) });
    let dns_create_r = v1
        .and(warp::path!("pools" / String / "dns"))
        .and(warp::post())
        .and(c.clone())
        .and(body())
        .then(|pool: String, ctx: Ctx, body: Bytes| async move {
            finish(dns_create(ctx, pool, body).await)
        });
    let dns_delete_r = v1
        .and(warp::path!("pools" / String / "dns" / String))
        .and(warp::delete())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(dns_delete(ctx, pool, name).await)
        });
    let lb_list_r = v1
        .and(warp::path!("pools" / String / "lbs"))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(lb_list(ctx, pool).await) });
    let lb_create_r = v1
        .and(warp::path!("pools" / String / "lbs"))
        .and(warp::post())
        .and(c.clone())
        .and(body())
        .then(|pool: String, ctx: Ctx, body: Bytes| async move {
            finish(lb_create(ctx, pool, body).await)
        });
    let lb_get_r = v1
        .and(warp::path!("pools" / String / "lbs" / String))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(lb_get(ctx, pool, name).await)
        });
    let lb_delete_r = v1
        .and(warp::path!("pools" / String / "lbs" / String))
        .and(warp::delete())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(lb_delete(ctx, pool, name).await)
        });
    let backend_add_r = v1
        .and(warp::path!("pools" / String / "lbs" / String / "backends"))
        .and(warp::post())
        .and(c.clone())
        .and(body())
        .then(
            |pool: String, name: String, ctx: Ctx, body: Bytes| async move {
                finish(backend_add(ctx, pool, name, body).await)
            },
        );
    let backend_remove_r = v1
        .and(warp::path!(
            "pools" / String / "lbs" / String / "backends" / String
        ))
        .and(warp::delete())
        .and(c)
        .then(
            |pool: String, name: String, container: String, ctx: Ctx| async move {
                finish(backend_remove(ctx, pool, name, container).await)
            },
        );
    let dns = dns_list_r
        .or(dns_create_r)
        .unify()
        .or(dns_delete_r)
        .unify()
        .boxed();
    let lbs = lb_list_r
        .or(lb_create_r)
        .unify()
        .or(lb_get_r)
        .unify()
        .or(lb_delete_r)
        .unify()
        .boxed();
    let backends = backend_add_r.or(backend_remove_r).unify().boxed();
    dns.or(lbs).unify().or(backends).unify().boxed()
}
