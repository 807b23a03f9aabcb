//! `ClientError`: everything a call to central can fail with, from a URL refused before
//! anything is sent to the `{code,message,field}` body of an error answer.

use caas_api::central::ErrorBody;

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
pub enum ClientError {
    /// Central's address is not a URL.
    #[error("--url/CAAS_URL {url:?} is not a URL ({reason}); write it like http://central:8080")]
    InvalidUrl { url: String, reason: String },

    /// Central's address uses a scheme this client does not speak.
    #[error("{}", scheme_message(.url, .scheme))]
    UnsupportedScheme { url: String, scheme: String },

    /// The token cannot be sent in an HTTP header.
    #[error(
        "--token/CAAS_TOKEN contains characters that cannot be sent in an HTTP header; copy the \
         token again"
    )]
    InvalidToken,

    /// A name that would change the request's path instead of naming something in it.
    #[error("{name:?} is not a name; names are lowercase letters, digits and '-'")]
    InvalidName { name: String },

    /// Central answered with an error status and (normally) an `ErrorBody`. When the answer
    /// carried none, `body.code` is `http-<status>` and `body.message` quotes the answer.
    #[error("{}", .body.message)]
    Api {
        /// HTTP status code.
        status: u16,
        body: ErrorBody,
        /// Central's base URL.
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
}

fn scheme_message(url: &str, scheme: &str) -> String {
    if scheme == "https" {
        format!(
            "--url/CAAS_URL {url:?}: this build of caas speaks plain http only; use an http:// \
             address"
        )
    } else {
        format!(
            "--url/CAAS_URL {url:?}: unsupported scheme {scheme:?}; write it like \
             http://central:8080"
        )
    }
}

fn network_message(kind: NetworkKind, url: &str, detail: &str) -> String {
    match kind {
        NetworkKind::Connect => format!("cannot connect to central at {url}: {detail}"),
        NetworkKind::Timeout => format!("central at {url} did not answer in time: {detail}"),
        NetworkKind::Other => format!("request to central at {url} failed: {detail}"),
    }
}

/// `ErrorBody.code` the client makes up when an error answer carries no `ErrorBody`.
pub fn synthetic_code(status: u16) -> String {
    format!("http-{status}")
}

impl ClientError {
    /// Whether the client refused its own input (URL, token, name) before sending anything.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            Self::InvalidUrl { .. }
                | Self::UnsupportedScheme { .. }
                | Self::InvalidToken
                | Self::InvalidName { .. }
        )
    }

    /// HTTP status of an answer central (or something in front of it) gave.
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

    /// The request field central named as the culprit (`ErrorBody.field`).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. } => body.field.as_deref(),
            _ => None,
        }
    }

    /// Whether the error body came from central itself rather than being made up from an
    /// answer without one (a proxy, or not central at all).
    pub fn from_central(&self) -> bool {
        match self {
            Self::Api { status, body, .. } => body.code != synthetic_code(*status),
            _ => false,
        }
    }
}
