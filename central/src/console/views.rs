//! The console's GET pages: the index (to the caller's pool or the pool list), pools, a pool's
//! containers, its nodes (ops), a container with its logs, its terminal, and the static files.
//! Each calls the API handler of the equivalent route with the session's caller.

use caas_api::central::{ContainerView, NodeView, PoolView};
use serde::Deserialize;
use warp::http::StatusCode;

use super::gate::{api_json, html, see_other, ConsoleError, Req};
use super::html::segment;
use super::{assets, pages, typed, Env, Response};
use crate::api;
use crate::auth::Principal;

/// `?notice=...` after an action: only known codes are shown.
#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

impl Notice {
    fn text(&self) -> Option<&'static str> {
        match self.notice.as_deref()? {
            "deleted" => Some("The container was deleted."),
            "app-restarted" => Some("The app program was restarted."),
            _ => None,
        }
    }
}

pub async fn index(env: Env, req: Req) -> Response {
    match env.caller(&req, "GET", "/v1/pools").await {
        Ok(caller) => match &caller.who {
            Principal::Admin => see_other("/console/pools"),
            Principal::Pool { pool, .. } => see_other(&format!("/console/pools/{}", segment(pool))),
        },
        Err(e) => e.page(None),
    }
}

pub async fn pools(env: Env, req: Req) -> Response {
    let caller = match env.caller(&req, "GET", "/v1/pools").await {
        Ok(c) => c,
        Err(e) => return e.page(None),
    };
    match api_json::<Vec<PoolView>>(api::pools::list(caller.ctx.clone()).await).await {
        Ok(list) => html(
            StatusCode::OK,
            pages::pools(&caller.who, &caller.csrf, &list),
        ),
        Err(e) => e.page(Some(caller.frame())),
    }
}

pub async fn containers(env: Env, req: Req, pool: String, notice: Notice) -> Response {
    let caller = match env
        .caller(&req, "GET", &format!("/v1/pools/{pool}/containers"))
        .await
    {
        Ok(c) => c,
        Err(e) => return e.page(None),
    };
    let list = api::containers::list(caller.ctx.clone(), pool.clone()).await;
    match api_json::<Vec<ContainerView>>(list).await {
        Ok(list) => html(
            StatusCode::OK,
            pages::containers(
                &caller.who,
                &caller.csrf,
                &pool,
                caller.may("GET", "/v1/nodes"),
                notice.text(),
                list,
            ),
        ),
        Err(e) => e.page(Some(caller.frame())),
    }
}

pub async fn nodes(env: Env, req: Req, pool: String) -> Response {
    let caller = match env.caller(&req, "GET", "/v1/nodes").await {
        Ok(c) => c,
        Err(e) => return e.page(None),
    };
    if let Err(e) = api::check_pool_access(&caller.who, &pool) {
        return ConsoleError::from(e).page(Some(caller.frame()));
    }
    match api_json::<Vec<NodeView>>(api::nodes::list(caller.ctx.clone()).await).await {
        Ok(list) => {
            let list = list.into_iter().filter(|n| n.pool == pool).collect();
            html(
                StatusCode::OK,
                pages::nodes(&caller.who, &caller.csrf, &pool, list),
            )
        }
        Err(e) => e.page(Some(caller.frame())),
    }
}

pub async fn container(env: Env, req: Req, pool: String, name: String, notice: Notice) -> Response {
    let path = format!("/v1/pools/{pool}/containers/{name}");
    let caller = match env.caller(&req, "GET", &path).await {
        Ok(c) => c,
        Err(e) => return e.page(None),
    };
    let view = api::containers::get(caller.ctx.clone(), pool, name).await;
    match api_json::<ContainerView>(view).await {
        Ok(view) => {
            let allowed = pages::Allowed {
                // Developers open terminals in rich containers only (no admin user elsewhere).
                terminal: caller.may("GET", &format!("{path}/terminal"))
                    && (view.spec.rich || !caller.who.is_developer()),
                restart: caller.may("POST", &format!("{path}/restart-app")),
                delete: caller.may("DELETE", &path),
                nodes: caller.may("GET", "/v1/nodes"),
            };
            html(
                StatusCode::OK,
                pages::container(&caller.who, &caller.csrf, &view, allowed, notice.text()),
            )
        }
        Err(e) => e.page(Some(caller.frame())),
    }
}

pub async fn terminal(env: Env, req: Req, pool: String, name: String) -> Response {
    let path = format!("/v1/pools/{pool}/containers/{name}/terminal");
    let caller = match env.caller(&req, "GET", &path).await {
        Ok(c) => c,
        Err(e) => return e.page(None),
    };
    // The same checks the WebSocket makes, so the page explains a refusal.
    if let Err(e) =
        api::terminal::prepare(&caller.ctx, &pool, &name, None, req.host.as_deref()).await
    {
        return ConsoleError::from(e).page(Some(caller.frame()));
    }
    let nodes_link = caller.may("GET", "/v1/nodes");
    match env.console.xterm.get().await {
        Ok(_) => html(
            StatusCode::OK,
            pages::terminal(&caller.who, &caller.csrf, &pool, &name, nodes_link, None),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "console: the terminal page has no xterm.js");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::terminal(
                    &caller.who,
                    &caller.csrf,
                    &pool,
                    &name,
                    nodes_link,
                    Some(&format!("The terminal cannot be shown: {e}")),
                ),
            )
        }
    }
}

/// `/console/static/<file>`.
pub async fn asset(env: Env, file: &str) -> Response {
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    match file {
        "console.js" => typed(assets::CONSOLE_JS, JS),
        "console.css" => typed(assets::CONSOLE_CSS, CSS),
        "xterm.js" | "xterm.css" => match env.console.xterm.get().await {
            Ok(x) if file == "xterm.js" => typed(x.js.clone(), JS),
            Ok(x) => typed(x.css.clone(), CSS),
            Err(e) => {
                let mut r = typed(e.to_string(), "text/plain; charset=utf-8");
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r
            }
        },
        _ => {
            let mut r = typed("no such file", "text/plain; charset=utf-8");
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}
