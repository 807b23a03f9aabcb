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
