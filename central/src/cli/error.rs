//! `CliError`: everything a `caas` command can fail with, its exit code, and the hint that tells
//! the operator what to do next.

use caas_api::central::ErrorBody;

/// Exit code for a command line that caas itself refused (sysexits' `EX_USAGE`). Clap's own
/// parse errors keep clap's exit code 2.
pub const EXIT_BAD_ARGUMENT: u8 = 64;
/// Exit code for an error answered by central or a failed exchange with it.
pub const EXIT_FAILURE: u8 = 1;

/// Why a request never got an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKind {
    /// Nothing accepted the connection (central down, wrong host or port).
    Connect,
    /// Connected, but no complete answer in time.
    Timeout,
    /// The exchange broke off some other way.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A local argument caas checked itself, e.g. `-e` without `=` or a missing `--pool`.
    #[error("{message}")]
    BadArgument { message: String },

    /// Central answered with an error status and (normally) an `ErrorBody`.
    #[error("{}", .body.message)]
    Api {
        /// HTTP status code.
        status: u16,
        body: ErrorBody,
        /// Central's base URL, for hints.
        url: String,
    },

    /// Central could not be reached, or the exchange broke off.
    #[error("{}", network_message(*.kind, .url, .detail))]
    Network {
        kind: NetworkKind,
        url: String,
        detail: String,
    },

    /// Central answered, but not with what the API promises (e.g. a proxy's HTML page).
    #[error("unexpected answer from {url} (HTTP {status}): {detail}")]
    Protocol {
        status: u16,
        url: String,
        detail: String,
    },

    /// Writing the output failed (e.g. the reader of a pipe went away).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

fn network_message(kind: NetworkKind, url: &str, detail: &str) -> String {
    match kind {
        NetworkKind::Connect => format!("cannot connect to central at {url}: {detail}"),
        NetworkKind::Timeout => format!("central at {url} did not answer in time: {detail}"),
        NetworkKind::Other => format!("request to central at {url} failed: {detail}"),
    }
}

/// `ErrorBody.code` the client makes up when an error answer carries no `ErrorBody`.
pub(crate) fn synthetic_code(status: u16) -> String {
    format!("http-{status}")
}

impl CliError {
    pub fn bad_argument(message: impl Into<String>) -> Self {
        Self::BadArgument {
            message: message.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadArgument { .. } => EXIT_BAD_ARGUMENT,
            _ => EXIT_FAILURE,
        }
    }

    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Protocol { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API's machine-readable error code (`ErrorBody.code`).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }

    /// Whether the error only means nobody reads our output any more (`caas ... | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// What the operator should try next, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::BadArgument { .. } | Self::Output(_) => None,
            Self::Network { kind, url, .. } => Some(match kind {
                NetworkKind::Connect => {
                    format!("is central running at {url}? set --url or CAAS_URL to its address")
                }
                NetworkKind::Timeout => {
                    format!("check that central at {url} is healthy and reachable, then retry")
                }
                NetworkKind::Other => {
                    format!("check that {url} is central's address (--url / CAAS_URL) and retry")
                }
            }),
            Self::Protocol { url, .. } => Some(format!(
                "is {url} really caas central? set --url or CAAS_URL to its address"
            )),
            Self::Api {
                status, body, url, ..
            } => api_hint(*status, body, url),
        }
    }
}

fn api_hint(status: u16, body: &ErrorBody, url: &str) -> Option<String> {
    let from_central = body.code != synthetic_code(status);
    match status {
        401 => Some(
            "central did not accept the token: pass --token or set CAAS_TOKEN to the admin token \
             or to a pool token (from `caas pool create` or `caas pool token`)"
                .to_string(),
        ),
        403 => Some(
            "managing pools (create, rm, token) needs the admin token; a pool token works only \
             for its own pool (--token / CAAS_TOKEN)"
                .to_string(),
        ),
        404 if !from_central => Some(format!(
            "{url} does not look like caas central; set --url or CAAS_URL to its address"
        )),
        404 => Some(
            "check the name and the pool (--pool / CAAS_POOL); `caas pool ls`, `caas node ls` \
             and `caas container ls` list what exists"
                .to_string(),
        ),
        500..=599 => Some(
            "central failed to handle the request; retry, and check central's logs if it persists"
                .to_string(),
        ),
        _ => None,
    }
}
