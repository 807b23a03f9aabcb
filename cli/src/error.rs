//! `CliError`: everything a `caas` command can fail with, its exit code, and the hint that tells
//! the operator what to do next.

use caas_client::{ClientError, NetworkKind};

/// Exit code for a command line that caas itself refused (sysexits' `EX_USAGE`). Clap's own
/// parse errors keep clap's exit code 2.
pub const EXIT_BAD_ARGUMENT: u8 = 64;
/// Exit code for an error answered by central or a failed exchange with it.
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A local argument caas checked itself, e.g. `-e` without `=` or a missing `--pool`.
    #[error("{message}")]
    BadArgument { message: String },

    /// Talking to central failed: a URL or token the client refused, an error answer, a
    /// network failure or an answer that is not central's.
    #[error(transparent)]
    Client(#[from] ClientError),

    /// Writing the output failed (e.g. the reader of a pipe went away).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),

    /// An interactive session (`container exec -it`) that central ended with an error (`code`
    /// is the API's: `idle-timeout`, `forbidden`, `no-admin-user`...), that ended without an
    /// exit status, or that could not be run here (raw mode, stdin).
    #[error("{message}")]
    Session {
        code: Option<String>,
        message: String,
    },
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
            Self::Client(e) if e.is_local() => EXIT_BAD_ARGUMENT,
            _ => EXIT_FAILURE,
        }
    }

    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Client(e) => e.status(),
            _ => None,
        }
    }

    /// The API's machine-readable error code (`ErrorBody.code`, or a terminal's `error`).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Client(e) => e.code(),
            Self::Session { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The request field central named as the culprit (`ErrorBody.field`).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Client(e) => e.field(),
            _ => None,
        }
    }

    /// Whether the error only means nobody reads our output any more (`caas ... | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// What the operator should try next, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        if let Self::Session { code, .. } = self {
            return code.as_deref().and_then(session_hint);
        }
        let Self::Client(e) = self else {
            return None;
        };
        match e {
            _ if e.is_local() => None,
            ClientError::Network { kind, url, .. } => Some(match kind {
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
            ClientError::Protocol { url, .. } => Some(format!(
                "is {url} really caas central? set --url or CAAS_URL to its address"
            )),
            ClientError::Api { status, url, .. } => api_hint(*status, e.from_central(), url)
                .or_else(|| e.code().and_then(code_hint))
                .or_else(|| e.field().and_then(field_hint)),
            _ => None,
        }
    }
}

fn api_hint(status: u16, from_central: bool, url: &str) -> Option<String> {
    match status {
        401 => Some(
            "central did not accept the token: pass --token or set CAAS_TOKEN to the admin token \
             or to a pool token (from `caas pool create` or `caas pool token create`)"
                .to_string(),
        ),
        403 => Some(
            "the token may not do this: managing pools needs the admin token, a pool's tokens \
             work only for their pool, and a developer token only lists containers, reads logs \
             and opens terminals as admin in rich containers (--token / CAAS_TOKEN; `caas pool \
             token ls POOL` shows roles)"
                .to_string(),
        ),
        404 if !from_central => Some(format!(
            "{url} does not look like caas central; set --url or CAAS_URL to its address"
        )),
        404 => Some(
            "check the name and the pool (--pool / CAAS_POOL); `caas pool ls`, `caas node ls`, \
             `caas container ls` and `caas network ls` list what exists"
                .to_string(),
        ),
        500..=599 => Some(
            "central failed to handle the request; retry, and check central's logs if it persists"
                .to_string(),
        ),
        _ => None,
    }
}

/// `ErrorBody.code`s (the API's stable, machine-readable codes) that have a next step.
const CODE_NOT_EMPTY: &str = "not-empty";
const CODE_VNI_TAKEN: &str = "vni-taken";
const CODE_ADDRESS_TAKEN: &str = "address-taken";
const CODE_EXHAUSTED: &str = "exhausted";

fn code_hint(code: &str) -> Option<String> {
    let hint = match code {
        CODE_NOT_EMPTY => {
            "remove what it still holds first: `caas network inspect NAME` lists a network's \
             containers, `caas container ls` a pool's"
        }
        CODE_VNI_TAKEN => "leave out -l Vni and central picks a free VNI",
        CODE_ADDRESS_TAKEN => {
            "leave out -l Ip to get the lowest free address, or pick one that `caas network \
             inspect NETWORK` does not list"
        }
        CODE_EXHAUSTED => {
            "no address (or VNI) is left: remove containers from the network, or create a \
             network with a larger subnet"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// Terminal `error` codes that have a next step.
fn session_hint(code: &str) -> Option<String> {
    let hint = match code {
        "idle-timeout" => {
            "the session had neither input nor output for too long and was ended; open another"
        }
        "forbidden" => {
            "a developer token opens terminals only as admin (leave out -u or give -u admin) in \
             rich containers; anything else needs an ops token"
        }
        "no-admin-user" => {
            "the container has no admin user (not a rich image): an ops token can open the \
             terminal as another user with -u"
        }
        "unavailable" => {
            "the container's node did not answer: check `caas container inspect NAME` and \
             `caas node ls`, then retry"
        }
        "not-found" => "check the name and the pool; `caas container ls` lists the containers",
        _ => return None,
    };
    Some(hint.to_string())
}

/// A field of a container's network attachments (`networks[1].ip`) in the flags' words.
fn field_hint(field: &str) -> Option<String> {
    let (index, rest) = field.strip_prefix("networks[")?.split_once(']')?;
    let i: usize = index.parse().ok()?;
    let from = if rest == ".ip" {
        "; its ip is the one -l Ip asked for"
    } else {
        ""
    };
    Some(format!(
        "networks[{i}] is the {} --public-service (interface eth{i}){from}",
        ordinal(i + 1)
    ))
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}
