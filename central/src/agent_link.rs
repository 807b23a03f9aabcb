//! `AgentLink`: how central reaches the agent that runs a workload (its registered `api_addr`)
//! for what only that node can do (`exec`, `deploy`, its stats), authenticated with the agent
//! token that central and every agent share.

use std::time::Duration;

use bytes::Bytes;
use warp::http::StatusCode;

use crate::error::CentralError;

/// Longest central waits for an agent to answer a deploy or exec (beyond the exec's own timeout).
const AGENT_SLACK: Duration = Duration::from_secs(90);

/// A client for agents' control endpoints.
#[derive(Debug, Clone)]
pub struct AgentLink {
    token: Option<String>,
    http: reqwest::Client,
}

impl AgentLink {
    pub fn new(token: Option<String>) -> Self {
        // Agents live on the internal network: never through an HTTP(S)_PROXY.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { token, http }
    }

    /// POSTs `body` to `path` on the agent at `api_addr` and returns its status and body. An
    /// agent's JSON error is passed through with its status; a missing token or an unreachable
    /// agent becomes a clear 503.
    pub async fn post(
        &self,
        api_addr: &str,
        path: &str,
        content_type: &str,
        body: Bytes,
        wait: Duration,
    ) -> Result<(StatusCode, Bytes), CentralError> {
        let Some(token) = &self.token else {
            return Err(CentralError::unavailable(
                "this central has no agent token, so it cannot reach agents for exec or deploy; \
                 start it with --agent-token-file (the same token as the agents' --control-token-file)",
            ));
        };
        let url = format!("http://{api_addr}{path}");
        let response = self
            .http
            .post(&url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .timeout(wait + AGENT_SLACK)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                CentralError::unavailable(format!("the agent at {api_addr} did not answer: {e}"))
            })?;
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let bytes = response.bytes().await.map_err(|e| {
            CentralError::unavailable(format!(
                "reading the answer of the agent at {api_addr}: {e}"
            ))
        })?;
        Ok((status, bytes))
    }
}

/// Longest central waits for an agent's stats (they are read from memory on the agent).
pub const STATS_WAIT: Duration = Duration::from_secs(5);

impl AgentLink {
    /// GETs `path` from the agent at `api_addr` with the agent token (every `/v1` route of an
    /// agent needs it) and decodes the JSON answer; an unreachable agent or an error answer
    /// says which agent.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        api_addr: &str,
        path: &str,
    ) -> Result<T, CentralError> {
        let Some(token) = &self.token else {
            return Err(CentralError::unavailable(
                "this central has no agent token, so it cannot read from agents; start it with \
                 --agent-token-file (the same token as the agents' --control-token-file)",
            ));
        };
        let url = format!("http://{api_addr}{path}");
        let response = self
            .http
            .get(&url)
            .bearer_auth(token)
            .timeout(STATS_WAIT)
            .send()
            .await
            .map_err(|e| {
                CentralError::unavailable(format!("the agent at {api_addr} did not answer: {e}"))
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            CentralError::unavailable(format!(
                "reading the answer of the agent at {api_addr}: {e}"
            ))
        })?;
        if !status.is_success() {
            return Err(CentralError::unavailable(format!(
                "the agent at {api_addr} answered {status} to {path}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            CentralError::unavailable(format!(
                "the agent at {api_addr} sent an answer to {path} central does not understand: {e}"
            ))
        })
    }
}

/// A terminal session's socket to an agent.
pub type AgentSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Longest central waits for an agent to accept a terminal or a log stream.
const OPEN_WAIT: Duration = Duration::from_secs(10);

impl AgentLink {
    fn token(&self) -> Result<&str, CentralError> {
        self.token.as_deref().ok_or_else(|| {
            CentralError::unavailable(
                "this central has no agent token, so it cannot reach agents; start it with \
                 --agent-token-file (the same token as the agents' --control-token-file)",
            )
        })
    }

    /// Opens the agent's terminal WebSocket for a workload.
    pub async fn open_terminal(
        &self,
        api_addr: &str,
        pool: &str,
        name: &str,
    ) -> Result<AgentSocket, CentralError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let token = self.token()?;
        let url = format!("ws://{api_addr}/v1/containers/{pool}/{name}/terminal");
        let mut request = url.into_client_request().map_err(|e| {
            CentralError::unavailable(format!("the agent address {api_addr} is not usable: {e}"))
        })?;
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| CentralError::unavailable("the agent token cannot be sent in a header"))?;
        request.headers_mut().insert("authorization", bearer);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        match tokio::time::timeout(OPEN_WAIT, connect).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                let body = response.body().clone().unwrap_or_default();
                Err(agent_error(
                    &format!("{name}: the agent at {api_addr} refused the terminal"),
                    response.status().as_u16(),
                    &body,
                ))
            }
            Ok(Err(e)) => Err(CentralError::unavailable(format!(
                "the agent at {api_addr} did not open a terminal: {e}"
            ))),
            Err(_) => Err(CentralError::unavailable(format!(
                "the agent at {api_addr} did not answer within {}s",
                OPEN_WAIT.as_secs()
            ))),
        }
    }

    /// GETs `path` from the agent and returns the answer unread (for streams: logs).
    pub async fn get_stream(
        &self,
        api_addr: &str,
        path_and_query: &str,
    ) -> Result<reqwest::Response, CentralError> {
        let token = self.token()?;
        let url = format!("http://{api_addr}{path_and_query}");
        let send = self.http.get(&url).bearer_auth(token).send();
        match tokio::time::timeout(OPEN_WAIT, send).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(CentralError::unavailable(format!(
                "the agent at {api_addr} did not answer: {e}"
            ))),
            Err(_) => Err(CentralError::unavailable(format!(
                "the agent at {api_addr} did not answer within {}s",
                OPEN_WAIT.as_secs()
            ))),
        }
    }
}

/// An agent's error answer (`{code, message}`, or any text) as central's, prefixed with what
/// it concerns (`web-1`, ...).
pub fn agent_error(context: &str, status: u16, body: &[u8]) -> CentralError {
    let (code, message) = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => (
            v["code"].as_str().unwrap_or("agent-error").to_string(),
            v["message"].as_str().unwrap_or("").to_string(),
        ),
        Err(_) => (
            "agent-error".to_string(),
            String::from_utf8_lossy(body).chars().take(300).collect(),
        ),
    };
    CentralError::Agent {
        status,
        code: crate::error::AgentCode::parse(&code),
        message: format!("{context}: {message}"),
    }
}
