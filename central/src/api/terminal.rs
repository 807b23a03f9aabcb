//! `GET /v1/pools/{pool}/containers/{name}/terminal`: an interactive terminal, relayed between
//! the caller's WebSocket (CLI or web console) and the agent's, after the role check, with the
//! session written to the pool's audit log. The protocol is `caas_api::terminal`'s.
//!
//! Memory stays bounded: each direction forwards one message at a time and waits until it is
//! sent before reading the next, so a client that does not read stops the agent's output at
//! the socket (and the agent stops reading the process); a client that does not read for
//! `CLIENT_SEND_WAIT` ends the session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use caas_api::central::ContainerRecord;
use caas_api::roles::SessionKind;
use caas_api::terminal::{check_size, ClientMessage, ServerMessage, TerminalStart};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as AgentMessage;
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::Reply;

use super::{check_pool_access, principal, Ctx, Response};
use crate::agent_link::AgentSocket;
use crate::audit::{self, InputRecorder};
use crate::auth::Principal;
use crate::error::CentralError;

/// Longest central waits for the client's start message.
const START_WAIT: Duration = Duration::from_secs(30);
/// Longest one message to the client may take to be sent before the session is ended.
const CLIENT_SEND_WAIT: Duration = Duration::from_secs(60);
/// Most output bytes central puts into one message to the client.
const OUTPUT_BATCH: usize = 256 * 1024;
/// Largest message either side may send.
const MAX_MESSAGE: usize = 1 << 20;

/// Whether a browser's `Origin` is this central (`Host`). Clients that are not browsers send
/// none; a browser always does on a WebSocket, and a page of another site is refused.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host)
}

/// The container and its agent, or why a terminal cannot be opened; nothing is upgraded yet.
pub async fn prepare(
    ctx: &Ctx,
    pool: &str,
    name: &str,
    origin: Option<&str>,
    host: Option<&str>,
) -> Result<(Principal, ContainerRecord, String), CentralError> {
    if !same_origin(origin, host) {
        return Err(CentralError::forbidden(
            "a WebSocket from another site's page is refused (Origin does not match this central)",
        ));
    }
    let who = principal(ctx).await?;
    check_pool_access(&who, pool)?;
    super::containers::require_pool(ctx, pool).await?;
    let (record, _) = ctx
        .central
        .store
        .container(pool, name)
        .await?
        .ok_or_else(|| {
            CentralError::not_found(format!(
                "container {name} not found in pool {pool} (with replicas, name one: {name}-1)"
            ))
        })?;
    if who.is_developer() && !record.spec.rich {
        return Err(CentralError::forbidden(format!(
            "{name} is not a rich container, so it has no admin user; developers open terminals \
             as admin in rich (sofa) containers only"
        )));
    }
    let addr = super::access::agent_of(ctx, &record)?;
    Ok((who, record, addr))
}

/// The route: checks, then upgrades.
pub async fn open(
    ctx: Ctx,
    pool: String,
    name: String,
    ws: Ws,
    origin: Option<String>,
    host: Option<String>,
) -> Result<Response, CentralError> {
    let (who, record, addr) =
        prepare(&ctx, &pool, &name, origin.as_deref(), host.as_deref()).await?;
    Ok(upgrade(ctx, ws, who, record, addr))
}

/// Upgrades a checked request to a relayed session.
pub fn upgrade(
    ctx: Ctx,
    ws: Ws,
    who: Principal,
    record: ContainerRecord,
    addr: String,
) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let name = record.spec.name.clone();
            if let Err(e) = session(ctx, who, record, addr, socket).await {
                tracing::warn!(container = %name, error = %e, "terminal session failed");
            }
        })
        .into_response()
}

/// Which user the session runs as, by role: developers only `admin`.
fn user_for(
    who: &Principal,
    record: &ContainerRecord,
    asked: Option<String>,
) -> Result<String, CentralError> {
    match (who.is_developer(), asked) {
        (true, Some(user)) if user != "admin" => Err(CentralError::forbidden(format!(
            "developers open terminals as admin only, not as {user}"
        ))),
        (true, _) => Ok("admin".to_string()),
        (false, Some(user)) => Ok(user),
        (false, None) if record.spec.rich => Ok("admin".to_string()),
        (false, None) => Ok(String::new()),
    }
}

async fn send_error(
    client: &mut futures::stream::SplitSink<WebSocket, Message>,
    code: &str,
    message: &str,
) {
    let frame = ServerMessage::Error {
        code: code.to_string(),
        message: message.to_string(),
    };
    if let Ok(text) = serde_json::to_string(&frame) {
        let _ = tokio::time::timeout(CLIENT_SEND_WAIT, client.send(Message::text(text))).await;
    }
    let _ = client.send(Message::close()).await;
}

/// Reads the client's start message.
async fn read_start(
    client: &mut futures::stream::SplitStream<WebSocket>,
) -> Result<TerminalStart, CentralError> {
    loop {
        let message = match tokio::time::timeout(START_WAIT, client.next()).await {
            Err(_) => {
                return Err(CentralError::invalid(
                    "start",
                    "no start message within 30 s; send {\"start\":{...}} first",
                ))
            }
            Ok(None) | Ok(Some(Err(_))) => {
                return Err(CentralError::BadRequest("the client went away".into()))
            }
            Ok(Some(Ok(m))) => m,
        };
        if message.is_ping() || message.is_pong() {
            continue;
        }
        let text = message.to_str().map_err(|_| {
            CentralError::invalid(
                "start",
                "the first message must be a text frame {\"start\":{...}}",
            )
        })?;
        return match serde_json::from_str::<ClientMessage>(text) {
            Ok(ClientMessage::Start(start)) => {
                start.validate()?;
                Ok(start)
            }
            Ok(_) => Err(CentralError::invalid(
                "start",
                "the first message must be {\"start\":{...}}",
            )),
            Err(e) => Err(CentralError::invalid(
                "start",
                format!("not a start message: {e}"),
            )),
        };
    }
}

/// How a session ended, for the audit log.
#[derive(Debug)]
enum Ending {
    Exit(i64),
    Closed,
    AgentError(String, String),
    AgentGone,
    ClientNotReading,
}

async fn session(
    ctx: Ctx,
    who: Principal,
    record: ContainerRecord,
    addr: String,
    socket: WebSocket,
) -> Result<(), CentralError> {
    let (mut client_tx, mut client_rx) = socket.split();
    let pool = record.spec.pool.clone();
    let name = record.spec.name.clone();
    let mut start = match read_start(&mut client_rx).await {
        Ok(start) => start,
        Err(e) => {
            send_error(&mut client_tx, super::reply::code(&e), &e.to_string()).await;
            return Ok(());
        }
    };
    let user = match user_for(&who, &record, start.user.take()) {
        Ok(user) => user,
        Err(e) => {
            send_error(&mut client_tx, super::reply::code(&e), &e.to_string()).await;
            return Ok(());
        }
    };
    start.user = (!user.is_empty()).then(|| user.clone());
    let agent = match ctx.agents.open_terminal(&addr, &pool, &name).await {
        Ok(agent) => agent,
        Err(e) => {
            send_error(&mut client_tx, super::reply::code(&e), &e.to_string()).await;
            return Ok(());
        }
    };
    let mut entry = audit::begin(
        &who,
        ctx.via,
        &record,
        SessionKind::Terminal,
        start.user.as_deref(),
        &start.command,
    );
    // No audit, no session: a terminal that leaves no trace is not opened.
    if let Err(e) = audit::record_start(ctx.central.store.as_ref(), &entry).await {
        send_error(
            &mut client_tx,
            "unavailable",
            &format!("the audit log cannot be written, so no terminal is opened: {e}"),
        )
        .await;
        return Ok(());
    }
    tracing::info!(pool = %pool, container = %name, session = %entry.id, token = %entry.token_id,
        role = %entry.role, via = %entry.via, "terminal session started");
    let (mut agent_tx, mut agent_rx) = agent.split();
    let recorder = Arc::new(Mutex::new(InputRecorder::new()));
    let ending = match serde_json::to_string(&ClientMessage::Start(start)) {
        Ok(text) => match agent_tx.send(AgentMessage::text(text)).await {
            Ok(()) => {
                tokio::select! {
                    ending = client_to_agent(&mut client_rx, &mut agent_tx, &recorder) => ending,
                    ending = agent_to_client(&mut agent_rx, &mut client_tx, &entry.id) => ending,
                }
            }
            Err(_) => Ending::AgentGone,
        },
        Err(_) => Ending::AgentGone,
    };
    // Closing the agent's socket ends the process there, whoever ended first.
    let _ = agent_tx.send(AgentMessage::Close(None)).await;
    drop((agent_tx, agent_rx));
    if matches!(ending, Ending::AgentGone) {
        send_error(
            &mut client_tx,
            "unavailable",
            "the agent ended the session without an exit code",
        )
        .await;
    } else {
        let _ =
            tokio::time::timeout(Duration::from_secs(5), client_tx.send(Message::close())).await;
    }
    // Read what the client still sends until its close reply (at most 2 s): a socket dropped
    // with unread data is reset, and a reset can destroy the exit frame before the client
    // reads it (a client sending input or the end of its input as the process exits).
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = client_rx.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
    let recorder = Arc::try_unwrap(recorder)
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_default();
    let (input, truncated) = recorder.finish();
    entry.input = input;
    entry.input_truncated = truncated;
    entry.ended_at = crate::now_millis();
    entry.exit_code = match ending {
        Ending::Exit(code) => Some(code),
        _ => None,
    };
    entry.ended_by = match &ending {
        Ending::Exit(_) => "exit".into(),
        Ending::Closed => "closed".into(),
        Ending::AgentError(code, message) => format!("{code}: {message}"),
        Ending::AgentGone => "agent-gone".into(),
        Ending::ClientNotReading => "client-not-reading".into(),
    };
    tracing::info!(pool = %pool, container = %name, session = %entry.id, ended_by = %entry.ended_by,
        seconds = entry.ended_at.saturating_sub(entry.started_at) / 1000, "terminal session ended");
    audit::record_end(ctx.central.store.as_ref(), &entry).await
}

/// Input and resizes, client to agent, until the client goes away.
async fn client_to_agent(
    client: &mut futures::stream::SplitStream<WebSocket>,
    agent: &mut futures::stream::SplitSink<AgentSocket, AgentMessage>,
    recorder: &Mutex<InputRecorder>,
) -> Ending {
    while let Some(Ok(message)) = client.next().await {
        if message.is_binary() {
            let bytes = message.into_bytes();
            if let Ok(mut r) = recorder.lock() {
                r.feed(&bytes);
            }
            if agent.send(AgentMessage::Binary(bytes)).await.is_err() {
                return Ending::AgentGone;
            }
        } else if let Ok(text) = message.to_str() {
            // Only resizes and the end of input after the start; anything else is dropped.
            if let Ok(ClientMessage::Eof) = serde_json::from_str(text) {
                let Ok(text) = serde_json::to_string(&ClientMessage::Eof) else {
                    continue;
                };
                if agent.send(AgentMessage::text(text)).await.is_err() {
                    return Ending::AgentGone;
                }
            } else if let Ok(ClientMessage::Resize { cols, rows }) = serde_json::from_str(text) {
                if check_size(cols, rows).is_ok() {
                    let Ok(text) = serde_json::to_string(&ClientMessage::Resize { cols, rows })
                    else {
                        continue;
                    };
                    if agent.send(AgentMessage::text(text)).await.is_err() {
                        return Ending::AgentGone;
                    }
                }
            }
        } else if message.is_close() {
            break;
        }
    }
    Ending::Closed
}

/// Output and the end, agent to client.
async fn agent_to_client(
    agent: &mut futures::stream::SplitStream<AgentSocket>,
    client: &mut futures::stream::SplitSink<WebSocket, Message>,
    session_id: &str,
) -> Ending {
    let mut pending: Option<AgentMessage> = None;
    loop {
        let message = match pending.take() {
            Some(message) => message,
            None => match agent.next().await {
                Some(Ok(message)) => message,
                _ => break,
            },
        };
        let outgoing = match message {
            AgentMessage::Binary(first) => {
                // Output already waiting goes into the same message (up to OUTPUT_BATCH); a
                // message of another kind waits for the next turn.
                let mut batch = first.to_vec();
                while batch.len() < OUTPUT_BATCH {
                    match futures::FutureExt::now_or_never(agent.next()) {
                        Some(Some(Ok(AgentMessage::Binary(more)))) => {
                            batch.extend_from_slice(&more)
                        }
                        Some(Some(Ok(other))) => {
                            pending = Some(other);
                            break;
                        }
                        _ => break,
                    }
                }
                Message::binary(batch)
            }
            AgentMessage::Text(text) => {
                match serde_json::from_str::<ServerMessage>(text.as_str()) {
                    Ok(ServerMessage::Started { .. }) => {
                        let started = ServerMessage::Started {
                            session: session_id.to_string(),
                        };
                        match serde_json::to_string(&started) {
                            Ok(text) => Message::text(text),
                            Err(_) => continue,
                        }
                    }
                    Ok(ServerMessage::Exit { code }) => {
                        let _ = tokio::time::timeout(
                            CLIENT_SEND_WAIT,
                            client.send(Message::text(text.as_str())),
                        )
                        .await;
                        return Ending::Exit(code);
                    }
                    Ok(ServerMessage::Error { code, message }) => {
                        let _ = tokio::time::timeout(
                            CLIENT_SEND_WAIT,
                            client.send(Message::text(text.as_str())),
                        )
                        .await;
                        return Ending::AgentError(code, message);
                    }
                    Err(_) => continue,
                }
            }
            AgentMessage::Close(_) => return Ending::AgentGone,
            _ => continue,
        };
        match tokio::time::timeout(CLIENT_SEND_WAIT, client.send(outgoing)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Ending::Closed,
            Err(_) => return Ending::ClientNotReading,
        }
    }
    Ending::AgentGone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(same_origin(None, Some("central:8080")));
        assert!(same_origin(
            Some("http://central:8080"),
            Some("central:8080")
        ));
        assert!(same_origin(
            Some("https://Central:8080"),
            Some("central:8080")
        ));
        assert!(!same_origin(
            Some("http://evil.example"),
            Some("central:8080")
        ));
        assert!(!same_origin(
            Some("http://central:8081"),
            Some("central:8080")
        ));
        assert!(!same_origin(Some("null"), Some("central:8080")));
        assert!(!same_origin(Some("http://central:8080"), None));
    }
}
