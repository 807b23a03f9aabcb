//! Who is calling, for every console request: the session from its cookie, its token
//! authenticated again (a revoked token ends the session), and a `Ctx` for the equivalent API
//! route, so the API handlers do the role and pool checks exactly as for the API. Also the
//! console's error type and how errors become pages or JSON.

use std::net::IpAddr;
use std::pin::Pin;
use std::time::Instant;

use serde::de::DeserializeOwned;
use warp::http::{header, StatusCode};
use warp::Reply;

use super::form::FormError;
use super::{pages, security, Env, Response};
use crate::api::{reply, Ctx};
use crate::auth::Principal;
use crate::error::CentralError;

/// What the console reads from every request.
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub session: Option<String>,
    pub login_csrf: Option<String>,
    pub host: Option<String>,
    pub origin: Option<String>,
    pub csrf_header: Option<String>,
    /// `Sec-Fetch-Site`: where the browser says the request comes from.
    pub fetch_site: Option<String>,
    pub addr: Option<IpAddr>,
}

impl Req {
    /// Whether a state-changing request comes from this central's own pages.
    pub fn same_origin(&self) -> bool {
        security::origin_allowed(
            self.origin.as_deref(),
            self.host.as_deref(),
            self.fetch_site.as_deref(),
        )
    }
}

/// Why a console request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("not logged in, or the session ended")]
    NoSession,
    #[error("the form's CSRF token is missing or wrong: reload the page and try again")]
    Csrf,
    #[error("a request from another site's page is refused (its Origin is not this central)")]
    ForeignOrigin,
    #[error(transparent)]
    Form(#[from] FormError),
    #[error(transparent)]
    Central(#[from] CentralError),
}

impl ConsoleError {
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::NoSession => StatusCode::UNAUTHORIZED,
            ConsoleError::Csrf | ConsoleError::ForeignOrigin => StatusCode::FORBIDDEN,
            ConsoleError::Form(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Central(e) => reply::status(e),
        }
    }

    /// As a page: no session sends the browser to the login page.
    pub fn page(self, who: Option<(&Principal, &str)>) -> Response {
        if matches!(self, ConsoleError::NoSession) {
            return see_other("/console/login");
        }
        let status = self.status();
        html(
            status,
            pages::error(who, status.as_u16(), &self.to_string()),
        )
    }

    /// As the API's JSON error (fetch and WebSocket endpoints).
    pub fn json(self) -> Response {
        match self {
            ConsoleError::Central(e) => reply::error_response(e),
            ConsoleError::NoSession => reply::error_response(CentralError::Unauthorized),
            other => {
                let status = other.status();
                let mut r = reply::error_response(CentralError::Forbidden(other.to_string()));
                *r.status_mut() = status;
                r
            }
        }
    }
}

pub fn html(status: StatusCode, body: String) -> Response {
    let mut r = warp::reply::html(body).into_response();
    *r.status_mut() = status;
    r
}

pub fn see_other(location: &str) -> Response {
    let mut r = warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    if let Ok(v) = header::HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A logged-in caller, with a `Ctx` for one API route.
#[derive(Clone)]
pub struct Caller {
    pub ctx: Ctx,
    pub who: Principal,
    pub csrf: String,
}

impl Caller {
    /// Whether the roles table lets this caller do `method api_path`.
    pub fn may(&self, method: &str, api_path: &str) -> bool {
        self.who.has(crate::api::roles::need(method, api_path))
    }

    pub fn frame(&self) -> (&Principal, &str) {
        (&self.who, &self.csrf)
    }
}

impl Env {
    /// The session's caller, authenticated again now, with a `Ctx` for `method api_path`.
    pub async fn caller(
        &self,
        req: &Req,
        method: &str,
        api_path: &str,
    ) -> Result<Caller, ConsoleError> {
        let id = req.session.as_deref().ok_or(ConsoleError::NoSession)?;
        let session = self
            .console
            .sessions()
            .get(id, Instant::now())
            .ok_or(ConsoleError::NoSession)?;
        let who = match self.central.authenticate(Some(&session.token)).await {
            Ok(who) => who,
            Err(CentralError::Unauthorized) => {
                // Revoked (or its pool deleted): the session ends with it.
                self.console.sessions().remove(id);
                return Err(ConsoleError::NoSession);
            }
            Err(e) => return Err(e.into()),
        };
        let ctx = Ctx {
            central: self.central.clone(),
            agents: self.agents.clone(),
            auth: None,
            caller: Some(who.clone()),
            need: crate::api::roles::need(method, api_path),
            via: "console",
        };
        Ok(Caller {
            ctx,
            who,
            csrf: session.csrf,
        })
    }

    /// Like `caller`, for a state-changing request: the Origin must be this central and the
    /// session's CSRF token must come with it (form field `csrf` or `X-CSRF-Token`).
    pub async fn changing(
        &self,
        req: &Req,
        form_csrf: Option<&str>,
        method: &str,
        api_path: &str,
    ) -> Result<Caller, ConsoleError> {
        if !req.same_origin() {
            return Err(ConsoleError::ForeignOrigin);
        }
        let caller = self.caller(req, method, api_path).await?;
        let sent = form_csrf.or(req.csrf_header.as_deref()).unwrap_or("");
        if !security::same_secret(sent, &caller.csrf) {
            return Err(ConsoleError::Csrf);
        }
        Ok(caller)
    }
}

/// Largest API answer the console decodes.
const MAX_API_BODY: usize = 16 << 20;

/// Decodes the JSON an API handler answered.
pub async fn api_json<T: DeserializeOwned>(
    result: Result<Response, CentralError>,
) -> Result<T, ConsoleError> {
    use warp::hyper::body::Body as _;
    let response = result?;
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame =
            frame.map_err(|e| CentralError::Internal(format!("reading an API answer: {e}")))?;
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() > MAX_API_BODY {
                return Err(
                    CentralError::Internal("an API answer is too large to show".into()).into(),
                );
            }
        }
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| CentralError::Internal(format!("decoding an API answer: {e}")).into())
}
