//! `CentralClient`: a typed async client of central's REST API (`/v1/...`). Every error answer
//! is decoded into `ClientError::Api` with the `ErrorBody` central sent.

use std::time::Duration;

use caas_api::central::{
    ContainerView, CreateContainerRequest, CreatePoolRequest, DeployResult, ErrorBody, ExecRequest,
    ExecResult, NodeView, PoolView, RescheduleRequest, SshKeysRequest, SshKeysView, TokenResponse,
};
use caas_api::network::{CreateNetworkRequest, NetworkSpec, NetworkView};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{synthetic_code, ClientError, NetworkKind};

mod access;
mod logs;
mod registry;
mod services;
pub mod terminal;

pub use access::AuditQuery;
pub use logs::{LogStream, LogsRequest};

/// How long to wait for a TCP connection to central.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take in all. Creating many replicas commits to ZooKeeper with
/// retries, so this is generous.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of an unexpected body to quote in an error.
const BODY_QUOTE: usize = 200;
/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("caas/", env!("CARGO_PKG_VERSION"));

/// Result of a container create: the containers, and whether anything was new (`201`) or all
/// of them already existed with the same spec (`200`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOutcome {
    pub containers: Vec<ContainerView>,
    pub created: bool,
}

/// A client of one central (or a VIP in front of several).
#[derive(Debug, Clone)]
pub struct CentralClient {
    base: Url,
    auth: Option<HeaderValue>,
    http: reqwest::Client,
    /// Like `http` without the limit on a whole request: `logs --follow` streams for as long
    /// as the operator watches.
    streaming: reqwest::Client,
    /// How long a WebSocket handshake (`terminal`) may take in all.
    handshake_timeout: Duration,
}

impl CentralClient {
    /// `url` is central's base address (`http://host:port`, optionally with a path prefix);
    /// `token` is sent as `Authorization: Bearer <token>`.
    pub fn new(url: &str, token: Option<&str>) -> Result<Self, ClientError> {
        Self::with_timeouts(url, token, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
    }

    pub fn with_timeouts(
        url: &str,
        token: Option<&str>,
        connect: Duration,
        request: Duration,
    ) -> Result<Self, ClientError> {
        let base = parse_base_url(url)?;
        let auth = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                let mut value = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| ClientError::InvalidToken)?;
                value.set_sensitive(true);
                Ok::<_, ClientError>(value)
            })
            .transpose()?;
        let builder = || {
            reqwest::Client::builder()
                // Central lives on the internal network: an HTTP(S)_PROXY meant for the internet
                // must not swallow these requests, nor see the bearer token.
                .no_proxy()
                .connect_timeout(connect)
                .user_agent(USER_AGENT)
        };
        let build_error = |e: reqwest::Error| ClientError::Network {
            kind: NetworkKind::Other,
            url: url.to_string(),
            detail: innermost(&e),
        };
        let http = builder().timeout(request).build().map_err(build_error)?;
        let streaming = builder().build().map_err(build_error)?;
        Ok(Self {
            base,
            auth,
            http,
            streaming,
            handshake_timeout: connect.saturating_add(request),
        })
    }

    /// Central's base URL, normalised (with a trailing slash when it has no path).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    // ---- pools ----

    pub async fn list_pools(&self) -> Result<Vec<PoolView>, ClientError> {
        self.get(&["v1", "pools"]).await
    }

    /// Creates a pool; the answer's `token` holds its first token (shown only this once).
    pub async fn create_pool(&self, req: &CreatePoolRequest) -> Result<PoolView, ClientError> {
        let (_, view) = self.send(Method::POST, &["v1", "pools"], Some(req)).await?;
        Ok(view)
    }

    pub async fn get_pool(&self, pool: &str) -> Result<PoolView, ClientError> {
        self.get(&["v1", "pools", pool]).await
    }

    pub async fn delete_pool(&self, pool: &str) -> Result<(), ClientError> {
        self.delete(self.url(&["v1", "pools", pool])?).await
    }

    /// Issues one more token for a pool and returns it.
    pub async fn create_pool_token(&self, pool: &str) -> Result<String, ClientError> {
        let (_, answer): (_, TokenResponse) = self
            .send(Method::POST, &["v1", "pools", pool, "tokens"], None::<&()>)
            .await?;
        Ok(answer.token)
    }

    // ---- nodes ----

    pub async fn list_nodes(&self) -> Result<Vec<NodeView>, ClientError> {
        self.get(&["v1", "nodes"]).await
    }

    pub async fn get_node(&self, id: &str) -> Result<NodeView, ClientError> {
        self.get(&["v1", "nodes", id]).await
    }

    // ---- containers ----

    pub async fn create_containers(
        &self,
        pool: &str,
        req: &CreateContainerRequest,
    ) -> Result<Vec<ContainerView>, ClientError> {
        Ok(self.create_containers_outcome(pool, req).await?.containers)
    }

    /// Like `create_containers`, also telling whether anything was created.
    pub async fn create_containers_outcome(
        &self,
        pool: &str,
        req: &CreateContainerRequest,
    ) -> Result<CreateOutcome, ClientError> {
        let (status, containers) = self
            .send(
                Method::POST,
                &["v1", "pools", pool, "containers"],
                Some(req),
            )
            .await?;
        Ok(CreateOutcome {
            containers,
            created: status == StatusCode::CREATED,
        })
    }

    pub async fn list_containers(&self, pool: &str) -> Result<Vec<ContainerView>, ClientError> {
        self.get(&["v1", "pools", pool, "containers"]).await
    }

    pub async fn get_container(
        &self,
        pool: &str,
        name: &str,
    ) -> Result<ContainerView, ClientError> {
        self.get(&["v1", "pools", pool, "containers", name]).await
    }

    /// Deletes a container; with `purge_data` its data container (volumes) goes too.
    pub async fn delete_container(
        &self,
        pool: &str,
        name: &str,
        purge_data: bool,
    ) -> Result<(), ClientError> {
        let mut url = self.url(&["v1", "pools", pool, "containers", name])?;
        if purge_data {
            url.query_pairs_mut().append_pair("purge_data", "true");
        }
        self.delete(url).await
    }

    /// Re-places a container on another node; `force` also moves one with a data container
    /// (its data stays behind on the lost node).
    pub async fn reschedule_container(
        &self,
        pool: &str,
        name: &str,
        force: bool,
    ) -> Result<ContainerView, ClientError> {
        let (_, view) = self
            .send(
                Method::POST,
                &["v1", "pools", pool, "containers", name, "reschedule"],
                Some(&RescheduleRequest { force }),
            )
            .await?;
        Ok(view)
    }

    /// Replaces a pool's SSH keys.
    pub async fn set_pool_ssh_keys(
        &self,
        pool: &str,
        keys: &[String],
    ) -> Result<SshKeysView, ClientError> {
        let (_, view) = self
            .send(
                Method::PUT,
                &["v1", "pools", pool, "ssh-keys"],
                Some(&SshKeysRequest {
                    ssh_keys: keys.to_vec(),
                }),
            )
            .await?;
        Ok(view)
    }

    /// Runs a command in a container through central and its agent.
    pub async fn exec_container(
        &self,
        pool: &str,
        name: &str,
        request: &ExecRequest,
    ) -> Result<ExecResult, ClientError> {
        let (_, result) = self
            .send(
                Method::POST,
                &["v1", "pools", pool, "containers", name, "exec"],
                Some(request),
            )
            .await?;
        Ok(result)
    }

    /// Sends an app package to every instance of a rich container, one after the other.
    pub async fn deploy_container(
        &self,
        pool: &str,
        name: &str,
        package: Vec<u8>,
    ) -> Result<Vec<DeployResult>, ClientError> {
        let url = self.url(&["v1", "pools", pool, "containers", name, "deploy"])?;
        let req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .body(package);
        let (status, bytes) = self.exchange(req).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            status: status.as_u16(),
            url: self.base_url().to_string(),
            detail: format!("{e}; body: {}", quote(&bytes)),
        })
    }

    // ---- networks ----

    /// Creates a network in a pool; central allocates the VNI when `req.vni` is `None`.
    pub async fn create_network(
        &self,
        pool: &str,
        req: &CreateNetworkRequest,
    ) -> Result<NetworkSpec, ClientError> {
        let (_, spec) = self
            .send(Method::POST, &["v1", "pools", pool, "networks"], Some(req))
            .await?;
        Ok(spec)
    }

    /// The pool's networks with their endpoints.
    pub async fn list_networks(&self, pool: &str) -> Result<Vec<NetworkView>, ClientError> {
        self.get(&["v1", "pools", pool, "networks"]).await
    }

    pub async fn get_network(&self, pool: &str, name: &str) -> Result<NetworkView, ClientError> {
        self.get(&["v1", "pools", pool, "networks", name]).await
    }

    /// Removes a network; central refuses (409 `not-empty`) while containers are attached.
    pub async fn delete_network(&self, pool: &str, name: &str) -> Result<(), ClientError> {
        self.delete(self.url(&["v1", "pools", pool, "networks", name])?)
            .await
    }

    // ---- plumbing ----

    fn url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        if let Some(bad) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
            return Err(ClientError::InvalidName {
                name: (*bad).to_string(),
            });
        }
        let mut url = self.base.clone();
        // `parse_base_url` only accepts http URLs, which always have path segments. Each name
        // is one segment: a '/' in it is escaped, never followed.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        Ok(url)
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ClientError> {
        let (_, value) = self.send(Method::GET, segments, None::<&()>).await?;
        Ok(value)
    }

    async fn delete(&self, url: Url) -> Result<(), ClientError> {
        self.exchange(self.http.delete(url)).await.map(|_| ())
    }

    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<(StatusCode, T), ClientError> {
        self.send_url(method, self.url(segments)?, body).await
    }

    /// `send` to a URL made by `url` (with a query, say).
    async fn send_url<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<(StatusCode, T), ClientError> {
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req.json(body);
        }
        let (status, bytes) = self.exchange(req).await?;
        let value = serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            status: status.as_u16(),
            url: self.base_url().to_string(),
            detail: format!("{e}; body: {}", quote(&bytes)),
        })?;
        Ok((status, value))
    }

    /// Sends a request; returns the status and body of a success, or the decoded error.
    async fn exchange(&self, req: RequestBuilder) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let resp = self.open(req).await?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.network_error(&e))?
            .to_vec();
        Ok((status, bytes))
    }

    /// Sends a request; returns a success answer before its body is read, or the decoded error.
    async fn open(&self, req: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let req = match &self.auth {
            Some(auth) => req.header(AUTHORIZATION, auth.clone()),
            None => req,
        };
        let resp = req.send().await.map_err(|e| self.network_error(&e))?;
        let status = resp.status();
        if status.is_client_error() || status.is_server_error() {
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| self.network_error(&e))?
                .to_vec();
            return Err(self.api_error(status, &bytes));
        }
        Ok(resp)
    }

    fn api_error(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        let body = serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_else(|_| {
            let reason = status.canonical_reason().unwrap_or("error");
            let text = quote(bytes);
            ErrorBody {
                code: synthetic_code(status.as_u16()),
                message: if text.is_empty() {
                    format!("HTTP {} {reason}", status.as_u16())
                } else {
                    format!("HTTP {} {reason}: {text}", status.as_u16())
                },
                field: None,
            }
        });
        ClientError::Api {
            status: status.as_u16(),
            body,
            url: self.base_url().to_string(),
        }
    }

    fn network_error(&self, e: &reqwest::Error) -> ClientError {
        let kind = if e.is_connect() {
            NetworkKind::Connect
        } else if e.is_timeout() {
            NetworkKind::Timeout
        } else {
            NetworkKind::Other
        };
        ClientError::Network {
            kind,
            url: self.base_url().to_string(),
            detail: innermost(e),
        }
    }
}

fn parse_base_url(text: &str) -> Result<Url, ClientError> {
    let mut url = Url::parse(text.trim()).map_err(|e| ClientError::InvalidUrl {
        url: text.to_string(),
        reason: e.to_string(),
    })?;
    if url.scheme() != "http" {
        return Err(ClientError::UnsupportedScheme {
            url: text.to_string(),
            scheme: url.scheme().to_string(),
        });
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The most specific message in an error chain ("Connection refused (os error 111)" rather
/// than "error sending request").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// A body as text for an error message: trimmed and cut to `BODY_QUOTE` characters.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(BODY_QUOTE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Stats, served by central from the agents.
impl CentralClient {
    /// Latest figures of every container of `pool` (containers whose node did not answer come
    /// with no containers sampled).
    pub async fn pool_stats(
        &self,
        pool: &str,
    ) -> Result<Vec<caas_api::stats::WorkloadStats>, ClientError> {
        self.get(&["v1", "pools", pool, "stats"]).await
    }

    /// Latest figures and rates of one container.
    pub async fn container_stats(
        &self,
        pool: &str,
        name: &str,
    ) -> Result<caas_api::stats::WorkloadStats, ClientError> {
        self.get(&["v1", "pools", pool, "containers", name, "stats"])
            .await
    }

    /// Latest figures of the nodes the token sees.
    pub async fn node_stats(&self) -> Result<Vec<caas_api::stats::NodeStatsEntry>, ClientError> {
        self.get(&["v1", "stats", "nodes"]).await
    }
}
