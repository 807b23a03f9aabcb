//! The console's state-changing requests: login (double-submit CSRF cookie, rate limits per
//! client address and per token, a session on success), logout, and the ops buttons "Restart
//! app" and "Delete", which call the API's handlers (the roles table refuses developers).
//! Every one of them checks the Origin; all but login need the session's CSRF token.

use std::time::{Duration, Instant};

use bytes::Bytes;
use caas_api::central::ExecResult;
use warp::http::{header, HeaderValue, StatusCode};

use super::form::Form;
use super::gate::{api_json, html, see_other, ConsoleError, Req};
use super::html::segment;
use super::security::{cookie, same_secret, set_cookie, LOGIN_COOKIE, SESSION_COOKIE};
use super::session::random_hex;
use super::{lock, pages, Env, Response};
use crate::api;
use crate::error::CentralError;

/// The login form with a fresh double-submit cookie; `problem` shown above it.
pub fn login_page(problem: Option<(StatusCode, &str)>) -> Response {
    let csrf = random_hex();
    let (status, text) = match problem {
        Some((status, text)) => (status, Some(text)),
        None => (StatusCode::OK, None),
    };
    let mut r = html(status, pages::login(&csrf, text));
    set_cookie(&mut r, &cookie(LOGIN_COOKIE, &csrf));
    r
}

fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut r = login_page(Some((
        StatusCode::TOO_MANY_REQUESTS,
        &format!("Too many login attempts: try again in {secs} s."),
    )));
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

pub async fn login(env: Env, req: Req, body: Bytes) -> Response {
    let now = Instant::now();
    if !req.same_origin() {
        return login_page(Some((
            StatusCode::FORBIDDEN,
            "A login from another site's page is refused.",
        )));
    }
    let Ok(form) = Form::parse(&body) else {
        return login_page(Some((
            StatusCode::BAD_REQUEST,
            "The login form was not understood; try again.",
        )));
    };
    // Double submit: the form's hidden field must be the cookie the login page set, which a
    // page of another site can neither read nor set.
    let sent = form.get("csrf").unwrap_or("");
    if !same_secret(sent, req.login_csrf.as_deref().unwrap_or("")) {
        return login_page(Some((
            StatusCode::FORBIDDEN,
            "The login form expired; log in again.",
        )));
    }
    let token = form.get("token").unwrap_or("").trim();
    let token_key = crate::auth::hash_token(token);
    if let Some(wait) = lock(&env.console.failed_by_address).blocked(&req.addr, now) {
        return too_many(wait);
    }
    if let Some(wait) = lock(&env.console.logins_by_token).blocked(&token_key, now) {
        return too_many(wait);
    }
    // Counted before the check and taken back after it, so parallel attempts cannot all pass
    // the limits while the first ones are being checked.
    lock(&env.console.failed_by_address).record(req.addr, now);
    lock(&env.console.logins_by_token).record(token_key.clone(), now);
    let who = match env.central.authenticate(Some(token)).await {
        Ok(who) => {
            lock(&env.console.failed_by_address).undo(&req.addr);
            who
        }
        Err(CentralError::Unauthorized) => {
            lock(&env.console.logins_by_token).undo(&token_key);
            tracing::info!(addr = ?req.addr, "console login refused");
            // No hint which part was wrong.
            return login_page(Some((
                StatusCode::UNAUTHORIZED,
                "The token was not accepted.",
            )));
        }
        Err(e) => {
            lock(&env.console.failed_by_address).undo(&req.addr);
            lock(&env.console.logins_by_token).undo(&token_key);
            return login_page(Some((
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Logging in failed: {e}"),
            )));
        }
    };
    let (id, _) = env.console.sessions().create(token.to_string(), now);
    tracing::info!(token = %who.token_id(), role = %who.role_name(), addr = ?req.addr,
        "console session started");
    let mut r = see_other("/console/");
    set_cookie(&mut r, &cookie(SESSION_COOKIE, &id));
    set_cookie(&mut r, &cookie(LOGIN_COOKIE, ""));
    r
}

pub async fn logout(env: Env, req: Req, body: Bytes) -> Response {
    let form = match Form::parse(&body) {
        Ok(f) => f,
        Err(e) => return ConsoleError::from(e).page(None),
    };
    match env
        .changing(&req, form.get("csrf"), "GET", "/v1/pools")
        .await
    {
        Ok(caller) => {
            if let Some(id) = &req.session {
                env.console.sessions().remove(id);
            }
            tracing::info!(token = %caller.who.token_id(), "console session ended by logout");
        }
        Err(ConsoleError::NoSession) => {}
        Err(e) => return e.page(None),
    }
    let mut r = see_other("/console/login");
    set_cookie(&mut r, &cookie(SESSION_COOKIE, ""));
    r
}

pub async fn restart_app(env: Env, req: Req, pool: String, name: String, body: Bytes) -> Response {
    let path = format!("/v1/pools/{pool}/containers/{name}/restart-app");
    let form = match Form::parse(&body) {
        Ok(f) => f,
        Err(e) => return ConsoleError::from(e).page(None),
    };
    let caller = match env.changing(&req, form.get("csrf"), "POST", &path).await {
        Ok(c) => c,
        Err(e) => return e.page(None),
    };
    let page = format!(
        "/console/pools/{}/containers/{}",
        segment(&pool),
        segment(&name)
    );
    let answer = api::access::restart_app(caller.ctx.clone(), pool, name).await;
    match api_json::<ExecResult>(answer).await {
        Ok(result) if result.exit_code == 0 => see_other(&format!("{page}?notice=app-restarted")),
        Ok(result) => html(
            StatusCode::BAD_GATEWAY,
            pages::error(
                Some(caller.frame()),
                502,
                &format!(
                    "supervisorctl restart app exited with {}: {}{}",
                    result.exit_code, result.stdout, result.stderr
                ),
            ),
        ),
        Err(e) => e.page(Some(caller.frame())),
    }
}

pub async fn delete(env: Env, req: Req, pool: String, name: String, body: Bytes) -> Response {
    let path = format!("/v1/pools/{pool}/containers/{name}");
    let form = match Form::parse(&body) {
        Ok(f) => f,
        Err(e) => return ConsoleError::from(e).page(None),
    };
    let caller = match env.changing(&req, form.get("csrf"), "DELETE", &path).await {
        Ok(c) => c,
        Err(e) => return e.page(None),
    };
    let list = format!("/console/pools/{}?notice=deleted", segment(&pool));
    match api::containers::delete(caller.ctx.clone(), pool, name, false).await {
        Ok(_) => see_other(&list),
        Err(e) => ConsoleError::from(e).page(Some(caller.frame())),
    }
}
