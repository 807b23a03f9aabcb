//! `CentralClient::terminal`: an interactive terminal in a container, over a WebSocket to
//! central (`GET /v1/pools/{pool}/containers/{name}/terminal`), speaking the protocol of
//! `caas_api::terminal`. The token goes in the `Authorization` header of the upgrade request,
//! never in the URL; a refused upgrade (401, 403, 404...) is the usual `ClientError::Api`.

use std::io::ErrorKind;

use bytes::Bytes;
use caas_api::terminal::{ClientMessage, ServerMessage, TerminalStart};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use reqwest::header::{HeaderValue, AUTHORIZATION, USER_AGENT};
use reqwest::StatusCode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{quote, CentralClient};
use crate::error::{ClientError, NetworkKind};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the server said, in order: `Started` once the process runs, `Output` any number of
/// times, then one `Exit` or `Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalEvent {
    /// The process runs; `session` names it in the pool's audit log.
    Started { session: String },
    /// Terminal output (with a TTY, stdout and stderr are one stream).
    Output(Bytes),
    /// The process ended with this code (`-1`: killed before it reported one).
    Exit { code: i64 },
    /// The session could not start or was ended (`idle-timeout`, `forbidden`, ...).
    Error { code: String, message: String },
}

/// An open terminal session: send input and resizes, receive events. `split` gives the two
/// halves to two tasks (or two branches of a `select!`).
#[derive(Debug)]
pub struct TerminalSession {
    sender: TerminalSender,
    receiver: TerminalReceiver,
}

/// The sending half of a `TerminalSession`.
#[derive(Debug)]
pub struct TerminalSender {
    sink: SplitSink<Socket, Message>,
    url: String,
}

/// The receiving half of a `TerminalSession`.
#[derive(Debug)]
pub struct TerminalReceiver {
    stream: SplitStream<Socket>,
    url: String,
}

impl TerminalSession {
    pub fn split(self) -> (TerminalSender, TerminalReceiver) {
        (self.sender, self.receiver)
    }

    /// See `TerminalSender::input`.
    pub async fn input(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.sender.input(bytes).await
    }

    /// See `TerminalSender::resize`.
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), ClientError> {
        self.sender.resize(cols, rows).await
    }

    /// See `TerminalReceiver::next`.
    pub async fn next(&mut self) -> Result<Option<TerminalEvent>, ClientError> {
        self.receiver.next().await
    }

    /// See `TerminalSender::close`.
    pub async fn close(&mut self) {
        self.sender.close().await;
    }
}

impl TerminalSender {
    /// Sends keystrokes or pasted text to the process.
    pub async fn input(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.send(Message::Binary(Bytes::copy_from_slice(bytes)))
            .await
    }

    /// Tells the process's terminal its new size (ignored by the server without a TTY).
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), ClientError> {
        self.message(&ClientMessage::Resize { cols, rows }).await
    }

    /// Says the input has ended: the process's stdin is closed (use without a TTY; with one,
    /// send Ctrl-D as input).
    pub async fn eof(&mut self) -> Result<(), ClientError> {
        self.message(&ClientMessage::Eof).await
    }

    /// Closes the socket, which ends the session: the process and everything it started in
    /// its terminal are killed. Errors are ignored: the session is over either way.
    pub async fn close(&mut self) {
        let _ = self.sink.close().await;
    }

    async fn message(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let text = serde_json::to_string(message).map_err(|e| ClientError::Protocol {
            status: 101,
            url: self.url.clone(),
            detail: format!("cannot encode {message:?}: {e}"),
        })?;
        self.send(Message::text(text)).await
    }

    async fn send(&mut self, message: Message) -> Result<(), ClientError> {
        self.sink
            .send(message)
            .await
            .map_err(|e| session_error(&self.url, &e))
    }
}

impl TerminalReceiver {
    /// The next event; `None` when the socket closed (after `Exit` or `Error`, or without
    /// either when the connection was cut). Cancel-safe: usable in a `select!` branch.
    pub async fn next(&mut self) -> Result<Option<TerminalEvent>, ClientError> {
        loop {
            let message = match self.stream.next().await {
                None => return Ok(None),
                Some(Ok(message)) => message,
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => return Ok(None),
                Some(Err(e)) => return Err(session_error(&self.url, &e)),
            };
            match message {
                Message::Binary(bytes) => return Ok(Some(TerminalEvent::Output(bytes))),
                Message::Text(text) => {
                    if let Some(event) = self.server_message(text.as_str())? {
                        return Ok(Some(event));
                    }
                }
                Message::Close(_) => return Ok(None),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// A text frame as an event; `None` for a message of a newer protocol this client does not
    /// know (a JSON object with another key), which it skips.
    fn server_message(&self, text: &str) -> Result<Option<TerminalEvent>, ClientError> {
        match serde_json::from_str::<ServerMessage>(text) {
            Ok(ServerMessage::Started { session }) => Ok(Some(TerminalEvent::Started { session })),
            Ok(ServerMessage::Exit { code }) => Ok(Some(TerminalEvent::Exit { code })),
            Ok(ServerMessage::Error { code, message }) => {
                Ok(Some(TerminalEvent::Error { code, message }))
            }
            Err(_) if is_newer_message(text) => Ok(None),
            Err(e) => Err(ClientError::Protocol {
                status: 101,
                url: self.url.clone(),
                detail: format!(
                    "unexpected terminal message ({e}): {}",
                    quote(text.as_bytes())
                ),
            }),
        }
    }
}

impl CentralClient {
    /// Opens an interactive terminal in a container and starts `start` in it. Returns once
    /// the start message is sent; the server then answers `Started` (or `Error`).
    pub async fn terminal(
        &self,
        pool: &str,
        name: &str,
        start: &TerminalStart,
    ) -> Result<TerminalSession, ClientError> {
        let mut url = self.url(&["v1", "pools", pool, "containers", name, "terminal"])?;
        // `parse_base_url` only lets http through, and http -> ws is always allowed.
        if url.set_scheme("ws").is_err() {
            return Err(ClientError::UnsupportedScheme {
                url: self.base_url().to_string(),
                scheme: url.scheme().to_string(),
            });
        }
        let mut request =
            url.as_str()
                .into_client_request()
                .map_err(|e| ClientError::InvalidUrl {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
        let headers = request.headers_mut();
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        headers.insert(USER_AGENT, HeaderValue::from_static(super::USER_AGENT));

        let connect = tokio_tungstenite::connect_async(request);
        let socket = match tokio::time::timeout(self.handshake_timeout, connect).await {
            Err(_) => {
                return Err(ClientError::Network {
                    kind: NetworkKind::Timeout,
                    url: self.base_url().to_string(),
                    detail: format!(
                        "no WebSocket upgrade within {}s",
                        self.handshake_timeout.as_secs()
                    ),
                })
            }
            Ok(Err(e)) => return Err(self.handshake_error(e)),
            Ok(Ok((socket, _response))) => socket,
        };
        let (sink, stream) = socket.split();
        let url = self.base_url().to_string();
        let mut session = TerminalSession {
            sender: TerminalSender {
                sink,
                url: url.clone(),
            },
            receiver: TerminalReceiver { stream, url },
        };
        session
            .sender
            .message(&ClientMessage::Start(start.clone()))
            .await?;
        Ok(session)
    }

    /// A failed upgrade as the REST calls report theirs: an error answer is `Api` with
    /// central's `ErrorBody`, a success that is no upgrade is `Protocol`.
    fn handshake_error(&self, e: WsError) -> ClientError {
        match e {
            WsError::Http(response) => {
                let status = response.status().as_u16();
                let body = response.body().as_deref().unwrap_or_default();
                match StatusCode::from_u16(status) {
                    Ok(code) if code.is_client_error() || code.is_server_error() => {
                        self.api_error(code, body)
                    }
                    _ => ClientError::Protocol {
                        status,
                        url: self.base_url().to_string(),
                        detail: format!(
                            "expected a WebSocket upgrade (HTTP 101); body: {}",
                            quote(body)
                        ),
                    },
                }
            }
            WsError::Io(io) => ClientError::Network {
                kind: match io.kind() {
                    ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable => NetworkKind::Connect,
                    ErrorKind::TimedOut => NetworkKind::Timeout,
                    _ => NetworkKind::Other,
                },
                url: self.base_url().to_string(),
                detail: io.to_string(),
            },
            e @ (WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Url(_)) => {
                ClientError::Network {
                    kind: NetworkKind::Other,
                    url: self.base_url().to_string(),
                    detail: e.to_string(),
                }
            }
            e => ClientError::Protocol {
                status: 101,
                url: self.base_url().to_string(),
                detail: format!("WebSocket handshake failed: {e}"),
            },
        }
    }
}

/// Whether a text frame is a message kind this client does not know: `{"kind": ...}` with a kind
/// other than those of `ServerMessage` (which, unreadable, are an error, not something to skip).
fn is_newer_message(text: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).is_ok_and(|m| {
        m.len() == 1
            && m.keys()
                .all(|k| !matches!(k.as_str(), "started" | "exit" | "error"))
    })
}

/// A failure of an open session's socket.
fn session_error(url: &str, e: &WsError) -> ClientError {
    ClientError::Network {
        kind: NetworkKind::Other,
        url: url.to_string(),
        detail: format!("terminal connection failed: {e}"),
    }
}
