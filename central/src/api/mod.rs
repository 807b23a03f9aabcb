//! The REST API routes (warp). Handlers are plain async functions returning
//! `Result<Response, CentralError>`; this module does the plumbing: auth header, body parsing with
//! field-naming errors, and the error mapping.

pub(crate) mod access;
pub(crate) mod containers;
pub(crate) mod logs;
mod networks;
pub(crate) mod nodes;
mod openapi;
pub(crate) mod pools;
mod prewarm;
mod registry;
pub mod reply;
pub mod roles;
mod services;
mod stats;
pub mod terminal;
mod upgrade;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::agent_link::AgentLink;
use crate::auth::Principal;
use crate::error::CentralError;
use crate::state::Central;

/// Largest request body accepted.
const MAX_BODY: u64 = 1 << 20;
/// Largest app package `deploy` accepts.
pub const MAX_PACKAGE: u64 = 512 << 20;

pub type Response = warp::reply::Response;

pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// Parses a JSON body, refusing unknown fields (the types say `deny_unknown_fields`) with a
/// message that names the field.
pub fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, CentralError> {
    if body.is_empty() {
        return Err(CentralError::invalid("body", "a JSON body is required"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // A value of the wrong type names its own path (`arp_proxy`, `networks[0].ip`); an
        // unknown or missing field is named by the message.
        let path = e.path().to_string();
        let text = e.into_inner().to_string();
        let field = text
            .split('`')
            .nth(1)
            .filter(|_| text.starts_with("unknown field") || text.starts_with("missing field"))
            .map(str::to_string)
            .or_else(|| (path != "." && path != "?").then_some(path))
            .unwrap_or_else(|| "body".to_string());
        CentralError::invalid(field, format!("the body is not a valid request: {text}"))
    })
}

/// Resolves the caller (a session's, or the bearer token's) or fails with 401, and checks that
/// the caller's role covers what the route needs (the `roles` table) or fails with 403. Pool
/// visibility is checked apart (`check_pool_access`: 404, as for a pool that does not exist).
pub async fn principal(ctx: &Ctx) -> Result<Principal, CentralError> {
    let who = match &ctx.caller {
        Some(caller) => caller.clone(),
        None => {
            let token = ctx
                .auth
                .as_deref()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim);
            ctx.central.authenticate(token).await?
        }
    };
    if !who.has(ctx.need) {
        return Err(CentralError::forbidden(format!(
            "this needs {} (the token used is {})",
            match ctx.need {
                caas_api::roles::Need::Admin => "the admin token",
                caas_api::roles::Need::Ops => "an ops token of the pool",
                caas_api::roles::Need::Developer => "a token of the pool",
            },
            who.role_name()
        )));
    }
    Ok(who)
}

/// 404 for a pool the caller may not see, exactly as for one that does not exist.
pub fn check_pool_access(principal: &Principal, pool: &str) -> Result<(), CentralError> {
    if principal.sees(pool) {
        Ok(())
    } else {
        Err(CentralError::not_found(format!("pool {pool} not found")))
    }
}

pub fn require_admin(principal: &Principal) -> Result<(), CentralError> {
    match principal {
        Principal::Admin => Ok(()),
        Principal::Pool { .. } => Err(CentralError::forbidden("this needs the admin token")),
    }
}

fn finish(result: Result<Response, CentralError>) -> Response {
    result.unwrap_or_else(reply::error_response)
}

/// Everything a handler receives.
#[derive(Clone)]
pub struct Ctx {
    pub central: Arc<Central>,
    pub agents: Arc<AgentLink>,
    /// The `Authorization` header, when the caller is not already known.
    pub auth: Option<String>,
    /// A caller resolved elsewhere (the console's session); wins over `auth`.
    pub caller: Option<Principal>,
    /// What the route needs (from `roles::ROUTES`, by the request's method and path).
    pub need: caas_api::roles::Need,
    /// `console` or `api`: where the request came from (audit).
    pub via: &'static str,
}

fn ctx(
    central: Arc<Central>,
    agents: Arc<AgentLink>,
) -> impl Filter<Extract = (Ctx,), Error = Infallible> + Clone {
    warp::any()
        .map(move || (central.clone(), agents.clone()))
        .and(
            warp::header::optional::<String>("authorization")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(warp::method())
        .and(warp::path::full())
        .map(
            |(central, agents), auth, method: warp::http::Method, path: warp::path::FullPath| Ctx {
                central,
                agents,
                auth,
                caller: None,
                need: roles::need(method.as_str(), path.as_str()),
                via: "api",
            },
        )
}

fn body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY).and(warp::body::bytes())
}

#[derive(Debug, serde::Deserialize)]
struct DeleteQuery {
    purge_data: Option<bool>,
}

/// All routes, the web console with its default settings included.
pub fn routes(
    central: Arc<Central>,
    agents: Arc<AgentLink>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let console = crate::console::Console::new(crate::console::ConsoleConfig::default());
    routes_with_console(central, agents, console)
}

/// All routes, with the web console (`/console/`) served by `console`.
pub fn routes_with_console(
    central: Arc<Central>,
    agents: Arc<AgentLink>,
    console: Arc<crate::console::Console>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let console_routes = crate::console::routes(central.clone(), agents.clone(), console);
    let c = ctx(central, agents);
    let service_routes = services::routes(c.clone());
    let v1 = warp::path("v1");

    let healthz = warp::path!("healthz").and(warp::get()).and(c.clone()).map(|ctx: Ctx| {
        let ok = ctx.central.synced();
        json(
            if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE },
            &serde_json::json!({"status": if ok { "ok" } else { "loading" }, "version": env!("CARGO_PKG_VERSION")}),
        )
    });
    let openapi = v1
        .and(warp::path!("openapi.json"))
        .and(warp::get())
        .map(|| json(StatusCode::OK, &openapi::document()));

    let pools_list = v1
        .and(warp::path!("pools"))
        .and(warp::get())
        .and(c.clone())
        .then(|ctx: Ctx| async move { finish(pools::list(ctx).await) });
    let pools_create = v1
        .and(warp::path!("pools"))
        .and(warp::post())
        .and(c.clone())
        .and(body())
        .then(|ctx: Ctx, body: Bytes| async move { finish(pools::create(ctx, body).await) });
    let pool_get = v1
        .and(warp::path!("pools" / String))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(pools::get(ctx, pool).await) });
    let pool_delete = v1
        .and(warp::path!("pools" / String))
        .and(warp::delete())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(pools::delete(ctx, pool).await) });
    let pool_keys = v1
        .and(warp::path!("pools" / String / "ssh-keys"))
        .and(warp::put())
        .and(c.clone())
        .and(body())
        .then(|pool: String, ctx: Ctx, body: Bytes| async move {
            finish(pools::set_ssh_keys(ctx, pool, body).await)
        });
    // A body is optional here (clients from before roles post none, which issues an ops
    // token): without a Content-Length nothing is read; with one, the usual limit applies.
    let optional_body = body()
        .or(warp::header::optional::<u64>("content-length").and_then(
            |length: Option<u64>| async move {
                match length {
                    None => Ok(Bytes::new()),
                    Some(_) => Err(warp::reject::not_found()),
                }
            },
        ))
        .unify();
    let pool_token = v1
        .and(warp::path!("pools" / String / "tokens"))
        .and(warp::post())
        .and(c.clone())
        .and(optional_body)
        .then(|pool: String, ctx: Ctx, body: Bytes| async move {
            finish(pools::new_token(ctx, pool, body).await)
        });
    let pool_tokens = v1
        .and(warp::path!("pools" / String / "tokens"))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(pools::list_tokens(ctx, pool).await) });
    let pool_token_revoke = v1
        .and(warp::path!("pools" / String / "tokens" / String))
        .and(warp::delete())
        .and(c.clone())
        .then(|pool: String, id: String, ctx: Ctx| async move {
            finish(pools::revoke_token(ctx, pool, id).await)
        });

    let nodes_list = v1
        .and(warp::path!("nodes"))
        .and(warp::get())
        .and(c.clone())
        .then(|ctx: Ctx| async move { finish(nodes::list(ctx).await) });
    let node_get = v1
        .and(warp::path!("nodes" / String))
        .and(warp::get())
        .and(c.clone())
        .then(|id: String, ctx: Ctx| async move { finish(nodes::get(ctx, id).await) });

    let networks_list = v1
        .and(warp::path!("pools" / String / "networks"))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(networks::list(ctx, pool).await) });
    let networks_create = v1
        .and(warp::path!("pools" / String / "networks"))
        .and(warp::post())
        .and(c.clone())
        .and(body())
        .then(|pool: String, ctx: Ctx, body: Bytes| async move {
            finish(networks::create(ctx, pool, body).await)
        });
    let network_get = v1
        .and(warp::path!("pools" / String / "networks" / String))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(networks::get(ctx, pool, name).await)
        });
    let network_delete = v1
        .and(warp::path!("pools" / String / "networks" / String))
        .and(warp::delete())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(networks::delete(ctx, pool, name).await)
        });

    let proxies_list = v1
        .and(warp::path!("pools" / String / "registry-proxies"))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(registry::list(ctx, pool).await) });
    let proxies_add = v1
        .and(warp::path!("pools" / String / "registry-proxies"))
        .and(warp::post())
        .and(c.clone())
        .and(body())
        .then(|pool: String, ctx: Ctx, body: Bytes| async move {
            finish(registry::add(ctx, pool, body).await)
        });
    let proxy_remove = v1
        .and(warp::path!("pools" / String / "registry-proxies" / String))
        .and(warp::delete())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(registry::remove(ctx, pool, name).await)
        });

    let container_image = v1
        .and(warp::path!(
            "pools" / String / "containers" / String / "image"
        ))
        .and(warp::put())
        .and(c.clone())
        .and(body())
        .then(
            |pool: String, name: String, ctx: Ctx, body: Bytes| async move {
                finish(upgrade::set_image(ctx, pool, name, body).await)
            },
        );
    let prewarms_list = v1
        .and(warp::path!("pools" / String / "prewarms"))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(prewarm::list(ctx, pool).await) });
    let prewarms_create = v1
        .and(warp::path!("pools" / String / "prewarms"))
        .and(warp::post())
        .and(c.clone())
        .and(body())
        .then(|pool: String, ctx: Ctx, body: Bytes| async move {
            finish(prewarm::create(ctx, pool, body).await)
        });
    let prewarm_get = v1
        .and(warp::path!("pools" / String / "prewarms" / String))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, id: String, ctx: Ctx| async move {
            finish(prewarm::get(ctx, pool, id).await)
        });
    let prewarm_delete = v1
        .and(warp::path!("pools" / String / "prewarms" / String))
        .and(warp::delete())
        .and(c.clone())
        .then(|pool: String, id: String, ctx: Ctx| async move {
            finish(prewarm::delete(ctx, pool, id).await)
        });

    let containers_list = v1
        .and(warp::path!("pools" / String / "containers"))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(containers::list(ctx, pool).await) });
    let containers_create = v1
        .and(warp::path!("pools" / String / "containers"))
        .and(warp::post())
        .and(c.clone())
        .and(body())
        .then(|pool: String, ctx: Ctx, body: Bytes| async move {
            finish(containers::create(ctx, pool, body).await)
        });
    let container_get = v1
        .and(warp::path!("pools" / String / "containers" / String))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(containers::get(ctx, pool, name).await)
        });
    let container_delete = v1
        .and(warp::path!("pools" / String / "containers" / String))
        .and(warp::delete())
        .and(warp::query::<DeleteQuery>())
        .and(c.clone())
        .then(
            |pool: String, name: String, q: DeleteQuery, ctx: Ctx| async move {
                finish(containers::delete(ctx, pool, name, q.purge_data.unwrap_or(false)).await)
            },
        );
    // The caller's access to the pool is checked before a body is read, so nobody without
    // a token makes central buffer a package.
    let pool_access = |pool: String, name: String, ctx: Ctx| async move {
        match containers::require_pool(&ctx, &pool).await {
            Ok(()) => Ok((pool, name, ctx)),
            Err(e) => Err(warp::reject::custom(reply::Refused(e))),
        }
    };
    let container_exec = v1
        .and(warp::path!(
            "pools" / String / "containers" / String / "exec"
        ))
        .and(warp::post())
        .and(c.clone())
        .and_then(pool_access)
        .untuple_one()
        .and(body())
        .then(
            |pool: String, name: String, ctx: Ctx, body: Bytes| async move {
                finish(access::exec(ctx, pool, name, body).await)
            },
        );
    let container_deploy = v1
        .and(warp::path!(
            "pools" / String / "containers" / String / "deploy"
        ))
        .and(warp::post())
        .and(c.clone())
        .and_then(pool_access)
        .untuple_one()
        .and(warp::body::content_length_limit(MAX_PACKAGE).and(warp::body::bytes()))
        .then(
            |pool: String, name: String, ctx: Ctx, body: Bytes| async move {
                finish(access::deploy(ctx, pool, name, body).await)
            },
        );
    let container_restart_app = v1
        .and(warp::path!(
            "pools" / String / "containers" / String / "restart-app"
        ))
        .and(warp::post())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(access::restart_app(ctx, pool, name).await)
        });
    let container_logs = v1
        .and(warp::path!(
            "pools" / String / "containers" / String / "logs"
        ))
        .and(warp::get())
        .and(warp::query::<logs::LogsQuery>())
        .and(c.clone())
        .then(
            |pool: String, name: String, q: logs::LogsQuery, ctx: Ctx| async move {
                finish(logs::logs(ctx, pool, name, q).await)
            },
        );
    let container_log_files = v1
        .and(warp::path!(
            "pools" / String / "containers" / String / "log-files"
        ))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(logs::log_files(ctx, pool, name).await)
        });
    let container_terminal = v1
        .and(warp::path!(
            "pools" / String / "containers" / String / "terminal"
        ))
        .and(warp::get())
        .and(c.clone())
        .and(warp::ws())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .then(
            |pool: String,
             name: String,
             ctx: Ctx,
             ws: warp::ws::Ws,
             origin: Option<String>,
             host: Option<String>| async move {
                finish(terminal::open(ctx, pool, name, ws, origin, host).await)
            },
        );
    let pool_audit = v1
        .and(warp::path!("pools" / String / "audit"))
        .and(warp::get())
        .and(warp::query::<logs::AuditQuery>())
        .and(c.clone())
        .then(|pool: String, q: logs::AuditQuery, ctx: Ctx| async move {
            finish(logs::audit(ctx, pool, q).await)
        });
    let pool_stats = v1
        .and(warp::path!("pools" / String / "stats"))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, ctx: Ctx| async move { finish(stats::pool(ctx, pool).await) });
    let container_stats = v1
        .and(warp::path!(
            "pools" / String / "containers" / String / "stats"
        ))
        .and(warp::get())
        .and(c.clone())
        .then(|pool: String, name: String, ctx: Ctx| async move {
            finish(stats::container(ctx, pool, name).await)
        });
    let node_stats = v1
        .and(warp::path!("stats" / "nodes"))
        .and(warp::get())
        .and(c.clone())
        .then(|ctx: Ctx| async move { finish(stats::nodes(ctx).await) });
    let container_reschedule = v1
        .and(warp::path!(
            "pools" / String / "containers" / String / "reschedule"
        ))
        .and(warp::post())
        .and(c)
        .and(body())
        .then(
            |pool: String, name: String, ctx: Ctx, body: Bytes| async move {
                finish(containers::reschedule(ctx, pool, name, body).await)
            },
        );

    // Boxed in groups: one long `or` chain makes a type deep enough to overflow the compiler's
    // trait solver in release builds.
    let meta = healthz.or(openapi).unify().boxed();
    let pool_routes = pools_list
        .or(pools_create)
        .unify()
        .or(pool_token)
        .unify()
        .or(pool_tokens)
        .unify()
        .or(pool_token_revoke)
        .unify()
        .or(pool_get)
        .unify()
        .or(pool_delete)
        .unify()
        .or(pool_keys)
        .unify()
        .boxed();
    let node_routes = nodes_list.or(node_get).unify().boxed();
    let container_routes = containers_list
        .or(containers_create)
        .unify()
        .or(container_reschedule)
        .unify()
        .or(container_get)
        .unify()
        .or(container_delete)
        .unify()
        .boxed();
    let access_routes = container_exec
        .or(container_deploy)
        .unify()
        .or(container_restart_app)
        .unify()
        .or(container_logs)
        .unify()
        .or(container_log_files)
        .unify()
        .or(container_terminal)
        .unify()
        .or(pool_audit)
        .unify()
        .boxed();
    let network_routes = networks_list
        .or(networks_create)
        .unify()
        .or(network_get)
        .unify()
        .or(network_delete)
        .unify()
        .boxed();
    let registry_routes = proxies_list
        .or(proxies_add)
        .unify()
        .or(proxy_remove)
        .unify()
        .or(prewarms_list)
        .unify()
        .or(prewarms_create)
        .unify()
        .or(prewarm_get)
        .unify()
        .or(prewarm_delete)
        .unify()
        .or(container_image)
        .unify()
        .boxed();
    let stats_routes = pool_stats
        .or(container_stats)
        .unify()
        .or(node_stats)
        .unify()
        .boxed();
    meta.or(pool_routes)
        .unify()
        .or(node_routes)
        .unify()
        .or(container_routes)
        .unify()
        .or(access_routes)
        .unify()
        .or(network_routes)
        .unify()
        .or(stats_routes)
        .unify()
        .or(registry_routes)
        .unify()
        .or(service_routes)
        .unify()
        .or(console_routes)
        .unify()
        .recover(|rejection: warp::Rejection| async move {
            let err = if let Some(reply::Refused(refused)) = rejection.find::<reply::Refused>() {
                refused.clone()
            // The body's own problems first: warp combines the rejections of every route
            // tried, and the routes that share the path with another method add
            // MethodNotAllowed to the one route that matched and refused the body.
            } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
                CentralError::TooLarge(format!(
                    "bodies are limited to {MAX_BODY} bytes ({MAX_PACKAGE} for deploy packages)"
                ))
            } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
                CentralError::BadRequest(
                    "this request needs a Content-Length header (send a JSON body, `{}` if empty)"
                        .into(),
                )
            } else if rejection.is_not_found() {
                CentralError::not_found("no such endpoint; see /v1/openapi.json")
            } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
                CentralError::MethodNotAllowed
            } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
                CentralError::invalid(
                    "query",
                    "invalid query string (see /v1/openapi.json: e.g. purge_data=true|false, \
                     tail=N&follow=true&file=NAME, container=NAME&limit=N)",
                )
            } else {
                CentralError::BadRequest(format!("{rejection:?}"))
            };
            Ok::<_, Infallible>(reply::error_response(err))
        })
        .unify()
}
