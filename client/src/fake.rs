//! `FakeCentral`: a tiny HTTP server standing in for central in unit tests of this client and of
//! the crates using it (feature `fake`). It records every request and answers with what a
//! handler returns for it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the fake central saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: String,
    /// The path, percent-escapes kept.
    pub path: String,
    /// The raw query string, empty without one.
    pub query: String,
    /// The `Authorization` header.
    pub auth: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    /// The body as sent.
    pub raw: Vec<u8>,
}

type Handler = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

/// A fake central on a free port of 127.0.0.1, serving until dropped.
#[derive(Debug)]
pub struct FakeCentral {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: JoinHandle<()>,
}

impl FakeCentral {
    /// Serves `handler`'s `(status, body)` answers (bodies labelled as JSON).
    pub async fn start(
        handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let log = seen.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let log = log.clone();
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    let log = log.clone();
                    async move { Ok::<_, Infallible>(answer(req, &*handler, &log).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            seen,
            server,
        })
    }

    /// The fake's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeCentral {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A `(status, body)` answer with `value` as JSON.
pub fn json(status: u16, value: impl serde::Serialize) -> (u16, String) {
    (
        status,
        serde_json::to_string(&value).unwrap_or_else(|e| format!("unserializable: {e}")),
    )
}

async fn answer(
    req: Request<Incoming>,
    handler: &Handler,
    log: &Mutex<Vec<Seen>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        auth: header(AUTHORIZATION),
        content_type: header(CONTENT_TYPE),
        body: serde_json::from_slice(&body).ok(),
        raw: body.to_vec(),
    };
    let (status, text) = handler(&seen);
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(seen);
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
