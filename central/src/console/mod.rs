//! The web console at `/console/`: server-rendered pages plus a little JavaScript (no build
//! toolchain) for developers and ops to see a pool's containers, follow their logs and open a
//! terminal in them. A login with a token starts a server-side session; every page and action
//! calls the API's own handlers with a `Ctx` for the equivalent API route, so the roles table
//! and the pool checks decide exactly as for the API.
//!
//! Submodules: `session` (sessions), `ratelimit` (login limits), `security` (headers, cookies,
//! CSRF and origin checks), `form` (form bodies), `html` (escaping, page frame), `pages` (page
//! content), `gate` (session → caller → `Ctx`, errors), `views` (GET pages), `actions` (login,
//! logout, restart, delete), `live` (log streams, log files, the terminal WebSocket), `assets`
//! (console.js/css, xterm.js).

mod actions;
mod assets;
mod form;
mod gate;
mod html;
mod live;
mod pages;
mod ratelimit;
mod security;
mod session;
mod views;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use warp::filters::BoxedFilter;
use warp::Filter;

use crate::agent_link::AgentLink;
use crate::state::Central;

pub use assets::{XtermError, DEFAULT_XTERM_DIRS};
pub use security::{CSP, LOGIN_COOKIE, SESSION_COOKIE};
pub use session::SessionLimits;

pub type Response = warp::reply::Response;

/// Largest form body the console reads.
const MAX_FORM: u64 = 8 * 1024;

/// The console's settings.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Where xterm.js is read from (`console_xterm_dir`); `None`: [`DEFAULT_XTERM_DIRS`].
    pub xterm_dir: Option<PathBuf>,
    pub sessions: SessionLimits,
    /// Failed logins allowed per client address within `login_window`.
    pub failed_logins_per_address: usize,
    /// Successful logins allowed per token within `login_window`.
    pub logins_per_token: usize,
    pub login_window: Duration,
    /// Most addresses and tokens the login limits keep track of.
    pub limiter_keys: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            xterm_dir: None,
            sessions: SessionLimits::default(),
            failed_logins_per_address: 5,
            logins_per_token: 20,
            login_window: Duration::from_secs(60),
            limiter_keys: 10_000,
        }
    }
}

/// The console's state in one central instance.
#[derive(Debug)]
pub struct Console {
    config: ConsoleConfig,
    sessions: Mutex<session::Sessions>,
    failed_by_address: Mutex<ratelimit::RateLimiter<Option<IpAddr>>>,
    logins_by_token: Mutex<ratelimit::RateLimiter<String>>,
    xterm: assets::XtermCache,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Console {
    pub fn new(config: ConsoleConfig) -> Arc<Self> {
        let dirs = match &config.xterm_dir {
            Some(dir) => vec![dir.clone()],
            None => DEFAULT_XTERM_DIRS.iter().map(PathBuf::from).collect(),
        };
        Arc::new(Self {
            sessions: Mutex::new(session::Sessions::new(config.sessions)),
            failed_by_address: Mutex::new(ratelimit::RateLimiter::new(
                config.failed_logins_per_address,
                config.login_window,
                config.limiter_keys,
            )),
            logins_by_token: Mutex::new(ratelimit::RateLimiter::new(
                config.logins_per_token,
                config.login_window,
                config.limiter_keys,
            )),
            xterm: assets::XtermCache::new(dirs),
            config,
        })
    }

    fn sessions(&self) -> MutexGuard<'_, session::Sessions> {
        lock(&self.sessions)
    }

    /// Live sessions (for tests and metrics).
    pub fn session_count(&self) -> usize {
        self.sessions().count()
    }

    pub fn config(&self) -> &ConsoleConfig {
        &self.config
    }
}

/// What every handler needs.
#[derive(Clone)]
struct Env {
    central: Arc<Central>,
    agents: Arc<AgentLink>,
    console: Arc<Console>,
}

fn request() -> impl Filter<Extract = (gate::Req,), Error = std::convert::Infallible> + Clone {
    let text = |name: &'static str| {
        warp::header::optional::<String>(name)
            .or(warp::any().map(|| None))
            .unify()
    };
    warp::cookie::optional::<String>(SESSION_COOKIE)
        .and(warp::cookie::optional::<String>(LOGIN_COOKIE))
        .and(text("host"))
        .and(text("origin"))
        .and(text("x-csrf-token"))
        .and(text("sec-fetch-site"))
        .and(warp::addr::remote())
        .map(
            |session,
             login_csrf,
             host,
             origin,
             csrf_header,
             fetch_site,
             addr: Option<std::net::SocketAddr>| gate::Req {
                session,
                login_csrf,
                host,
                origin,
                csrf_header,
                fetch_site,
                addr: addr.map(|a| a.ip()),
            },
        )
}

fn form_body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_FORM).and(warp::body::bytes())
}

/// The console's routes, every answer with the security headers.
pub fn routes(
    central: Arc<Central>,
    agents: Arc<AgentLink>,
    console: Arc<Console>,
) -> BoxedFilter<(Response,)> {
    let env = Env {
        central,
        agents,
        console,
    };
    let e = warp::any().map(move || env.clone());
    let base = warp::path("console");
    let r = request();

    let index = base
        .and(warp::path::end())
        .and(warp::get())
        .and(e.clone())
        .and(r.clone())
        .then(|env: Env, req| async move { views::index(env, req).await });
    let login_page = base
        .and(warp::path!("login"))
        .and(warp::get())
        .then(|| async move { actions::login_page(None) });
    let login = base
        .and(warp::path!("login"))
        .and(warp::post())
        .and(e.clone())
        .and(r.clone())
        .and(form_body())
        .then(|env: Env, req, body: Bytes| async move { actions::login(env, req, body).await });
    let logout = base
        .and(warp::path!("logout"))
        .and(warp::post())
        .and(e.clone())
        .and(r.clone())
        .and(form_body())
        .then(|env: Env, req, body: Bytes| async move { actions::logout(env, req, body).await });
    let statics = base
        .and(warp::path!("static" / String))
        .and(warp::get())
        .and(e.clone())
        .then(|file: String, env: Env| async move { views::asset(env, &file).await });
    let pools = base
        .and(warp::path!("pools"))
        .and(warp::get())
        .and(e.clone())
        .and(r.clone())
        .then(|env: Env, req| async move { views::pools(env, req).await });
    let pool = base
        .and(warp::path!("pools" / String))
        .and(warp::get())
        .and(warp::query::<views::Notice>())
        .and(e.clone())
        .and(r.clone())
        .then(|pool: String, notice, env: Env, req| async move {
            views::containers(env, req, pool, notice).await
        });
    let nodes = base
        .and(warp::path!("pools" / String / "nodes"))
        .and(warp::get())
        .and(e.clone())
        .and(r.clone())
        .then(|pool: String, env: Env, req| async move { views::nodes(env, req, pool).await });
    let container = base
        .and(warp::path!("pools" / String / "containers" / String))
        .and(warp::get())
        .and(warp::query::<views::Notice>())
        .and(e.clone())
        .and(r.clone())
        .then(
            |pool: String, name: String, notice, env: Env, req| async move {
                views::container(env, req, pool, name, notice).await
            },
        );
    let terminal_page = base
        .and(warp::path!(
            "pools" / String / "containers" / String / "terminal"
        ))
        .and(warp::get())
        .and(e.clone())
        .and(r.clone())
        .then(|pool: String, name: String, env: Env, req| async move {
            views::terminal(env, req, pool, name).await
        });
    let terminal_ws = base
        .and(warp::path!(
            "pools" / String / "containers" / String / "terminal" / "ws"
        ))
        .and(warp::get())
        .and(warp::ws())
        .and(e.clone())
        .and(r.clone())
        .then(|pool: String, name: String, ws, env: Env, req| async move {
            live::terminal(env, req, pool, name, ws).await
        });
    let logs = base
        .and(warp::path!(
            "pools" / String / "containers" / String / "logs"
        ))
        .and(warp::get())
        .and(warp::query::<crate::api::logs::LogsQuery>())
        .and(e.clone())
        .and(r.clone())
        .then(
            |pool: String, name: String, query, env: Env, req| async move {
                live::logs(env, req, pool, name, query).await
            },
        );
    let log_files = base
        .and(warp::path!(
            "pools" / String / "containers" / String / "log-files"
        ))
        .and(warp::get())
        .and(e.clone())
        .and(r.clone())
        .then(|pool: String, name: String, env: Env, req| async move {
            live::log_files(env, req, pool, name).await
        });
    let restart = base
        .and(warp::path!(
            "pools" / String / "containers" / String / "restart-app"
        ))
        .and(warp::post())
        .and(e.clone())
        .and(r.clone())
        .and(form_body())
        .then(
            |pool: String, name: String, env: Env, req, body: Bytes| async move {
                actions::restart_app(env, req, pool, name, body).await
            },
        );
    let delete = base
        .and(warp::path!(
            "pools" / String / "containers" / String / "delete"
        ))
        .and(warp::post())
        .and(e)
        .and(r)
        .and(form_body())
        .then(
            |pool: String, name: String, env: Env, req, body: Bytes| async move {
                actions::delete(env, req, pool, name, body).await
            },
        );

    let pages = index
        .or(login_page)
        .unify()
        .or(statics)
        .unify()
        .or(pools)
        .unify()
        .or(pool)
        .unify()
        .or(nodes)
        .unify()
        .or(container)
        .unify()
        .or(terminal_page)
        .unify()
        .boxed();
    let posts = login
        .or(logout)
        .unify()
        .or(restart)
        .unify()
        .or(delete)
        .unify()
        .boxed();
    let live = terminal_ws.or(logs).unify().or(log_files).unify().boxed();
    // Everything under /console is answered here, refusals of the filters (unknown page, wrong
    // method, bad query, oversized form) included, so every answer carries the headers.
    let console_path = warp::path::full()
        .and_then(|path: warp::path::FullPath| async move {
            let p = path.as_str();
            if p == "/console" || p.starts_with("/console/") {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one();
    let all = pages
        .or(posts)
        .unify()
        .or(live)
        .unify()
        .recover(|rejection: warp::Rejection| async move {
            Ok::<_, std::convert::Infallible>(refused(&rejection))
        })
        .unify();
    console_path.and(all).map(security::harden).boxed()
}

/// A refusal by warp's filters as a console page.
fn refused(rejection: &warp::Rejection) -> Response {
    use warp::http::StatusCode;
    // The body's problems first: warp combines the refusals of every route tried, and a
    // route of the same path with another method adds MethodNotAllowed.
    let (status, message) = if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "The form needs a Content-Length.",
        )
    } else if rejection.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "There is no such page in the console.",
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "This page does not take that method.",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        (
            StatusCode::BAD_REQUEST,
            "The query string is not valid for this page.",
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            "The request is not valid for this page.",
        )
    };
    gate::html(status, pages::error(None, status.as_u16(), message))
}

/// A response with a content type.
fn typed(body: impl Into<Bytes>, content_type: &'static str) -> Response {
    let mut r = warp::reply::Response::new(body.into().into());
    r.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static(content_type),
    );
    r
}
