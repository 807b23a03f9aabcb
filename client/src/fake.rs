//! `FakeCentral`: a tiny HTTP server standing in for central in unit tests of this client and of
//! the crates using it (feature `fake`). It records every request and answers with what a
//! handler returns for it: a JSON body, text streamed in chunks (`logs --follow`), or a
//! WebSocket upgrade into a scripted echo terminal (`exec -it`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use caas_api::terminal::{ClientMessage, ServerMessage, TerminalStart};
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{
    HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

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

/// What the fake answers a request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// This status and body, labelled as JSON.
    Json(u16, String),
    /// This status, then each chunk (labelled text/plain, chunked) with `pause` before each
    /// but the first: a log being followed.
    Chunks {
        status: u16,
        chunks: Vec<String>,
        pause: Duration,
    },
    /// Accepts a WebSocket upgrade and plays the echo terminal (`FakeCentral::terminal_frames`
    /// describes it); `400` to a request that is no upgrade.
    Terminal,
}

impl From<(u16, String)> for Reply {
    fn from((status, body): (u16, String)) -> Self {
        Reply::Json(status, body)
    }
}

/// A frame the echo terminal received, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalFrame {
    /// A text frame (`start`, `resize`).
    Message(ClientMessage),
    /// A binary frame: input.
    Input(Vec<u8>),
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;
type Frames = Arc<Mutex<Vec<TerminalFrame>>>;

/// A fake central on a free port of 127.0.0.1, serving until dropped.
#[derive(Debug)]
pub struct FakeCentral {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    frames: Frames,
    server: JoinHandle<()>,
}

impl FakeCentral {
    /// Serves `handler`'s `(status, body)` answers (bodies labelled as JSON).
    pub async fn start(
        handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Self::start_with(move |seen| Reply::from(handler(seen))).await
    }

    /// Serves `handler`'s `Reply`s: JSON, chunked text or the echo terminal.
    pub async fn start_with(
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let frames: Frames = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let log = seen.clone();
        let terminal_log = frames.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let log = log.clone();
                let terminal_log = terminal_log.clone();
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    let log = log.clone();
                    let terminal_log = terminal_log.clone();
                    async move { Ok::<_, Infallible>(answer(req, &*handler, &log, terminal_log).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades(),
                );
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            seen,
            frames,
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

    /// Every frame the echo terminal received so far, across sessions, oldest first.
    ///
    /// The echo terminal (`Reply::Terminal`) answers the `start` message with
    /// `started {session: "fake-session"}`, then sends every input frame back as output. A
    /// typed line `exit N` ends the session with `exit {code: N}`, a line `error CODE` with
    /// `error {code: CODE}`; both close the socket after. A start whose command is
    /// `["exit", "N"]` prints `bye\r\n` and exits with N at once, without input.
    pub fn terminal_frames(&self) -> Vec<TerminalFrame> {
        self.frames
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

type Body = BoxBody<Bytes, Infallible>;

async fn answer(
    mut req: Request<Incoming>,
    handler: &Handler,
    log: &Mutex<Vec<Seen>>,
    frames: Frames,
) -> Response<Body> {
    let wants_upgrade = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
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
    let reply = handler(&seen);
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(seen);
    let status =
        |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply {
        Reply::Json(code, text) => {
            let mut resp = Response::new(Full::new(Bytes::from(text)).boxed());
            *resp.status_mut() = status(code);
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Reply::Chunks {
            status: code,
            chunks,
            pause,
        } => {
            let stream = futures_util::stream::iter(chunks.into_iter().enumerate()).then(
                move |(i, chunk)| async move {
                    if i > 0 {
                        tokio::time::sleep(pause).await;
                    }
                    Ok::<_, Infallible>(Frame::data(Bytes::from(chunk)))
                },
            );
            let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            *resp.status_mut() = status(code);
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp
        }
        Reply::Terminal => {
            let key = parts.headers.get(SEC_WEBSOCKET_KEY);
            let (Some(upgrade), Some(key)) = (upgrade, key) else {
                let mut resp = Response::new(
                    Full::new(Bytes::from_static(
                        br#"{"code":"invalid","message":"expected a WebSocket upgrade"}"#,
                    ))
                    .boxed(),
                );
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                return resp;
            };
            let accept = derive_accept_key(key.as_bytes());
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let socket = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        None,
                    )
                    .await;
                    echo_terminal(socket, &frames).await;
                }
            });
            let mut resp = Response::new(Full::new(Bytes::new()).boxed());
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = resp.headers_mut();
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(accept) = HeaderValue::from_str(&accept) {
                headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
            }
            resp
        }
    }
}

/// The echo terminal's script (see `FakeCentral::terminal_frames`).
async fn echo_terminal<S>(mut socket: WebSocketStream<S>, frames: &Mutex<Vec<TerminalFrame>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let record = |frame| {
        frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(frame);
    };
    let send =
        |message: ServerMessage| Message::text(serde_json::to_string(&message).unwrap_or_default());
    let start: TerminalStart = match socket.next().await {
        Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
            Ok(ClientMessage::Start(start)) => {
                record(TerminalFrame::Message(ClientMessage::Start(start.clone())));
                start
            }
            _ => {
                let _ = socket
                    .send(send(ServerMessage::Error {
                        code: "invalid".into(),
                        message: format!("the first message must be start, not {text}"),
                    }))
                    .await;
                let _ = socket.close(None).await;
                return;
            }
        },
        _ => return,
    };
    let started = ServerMessage::Started {
        session: "fake-session".into(),
    };
    if socket.send(send(started)).await.is_err() {
        return;
    }
    if let [exit, code] = start.command.as_slice() {
        if let (true, Ok(code)) = (exit == "exit", code.parse()) {
            let _ = socket.send(Message::binary(&b"bye\r\n"[..])).await;
            let _ = socket.send(send(ServerMessage::Exit { code })).await;
            let _ = socket.close(None).await;
            drain(&mut socket).await;
            return;
        }
    }
    let mut line = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Text(text) => {
                if let Ok(message) = serde_json::from_str(text.as_str()) {
                    record(TerminalFrame::Message(message));
                }
            }
            Message::Binary(bytes) => {
                record(TerminalFrame::Input(bytes.to_vec()));
                if socket.send(Message::Binary(bytes.clone())).await.is_err() {
                    return;
                }
                for &b in bytes.iter() {
                    if b != b'\n' && b != b'\r' {
                        line.push(b);
                        continue;
                    }
                    let typed = String::from_utf8_lossy(&line).trim().to_string();
                    line.clear();
                    let end = if let Some(code) = typed.strip_prefix("exit ") {
                        code.trim()
                            .parse()
                            .ok()
                            .map(|code| ServerMessage::Exit { code })
                    } else {
                        typed
                            .strip_prefix("error ")
                            .map(|code| ServerMessage::Error {
                                code: code.trim().to_string(),
                                message: format!("fake error {}", code.trim()),
                            })
                    };
                    if let Some(end) = end {
                        let _ = socket.send(send(end)).await;
                        let _ = socket.close(None).await;
                        drain(&mut socket).await;
                        return;
                    }
                }
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// Reads what the client still sends after the close (up to its close reply), as a real
/// server does: a socket dropped with unread data is reset, and the reset can destroy the
/// last frames before the client reads them.
async fn drain<S>(socket: &mut S)
where
    S: futures_util::Stream + Unpin,
{
    use futures_util::StreamExt;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while socket.next().await.is_some() {}
    })
    .await;
}
