//! Who may do what: the roles of pool tokens, the token records kept in a pool, and the audit
//! log of interactive sessions.
//!
//! Three kinds of caller exist: the admin token (everything, every pool), a pool's `ops` tokens
//! (everything within the pool), and a pool's `developer` tokens (read the pool's containers and
//! their logs, open a terminal as `admin` in rich containers; nothing else).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The role of a pool token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the pool's containers and logs; terminals as `admin` in rich containers.
    Developer,
    /// Everything within the pool (today's pool tokens).
    Ops,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Developer => "developer",
            Role::Ops => "ops",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "developer" => Ok(Role::Developer),
            "ops" => Ok(Role::Ops),
            _ => Err(ValidationError::new(
                "role",
                format!("unknown role {s:?}: use ops or developer"),
            )),
        }
    }
}

/// The least a route needs, in increasing order: any token that sees the pool, an ops token of
/// the pool, the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    Developer,
    Ops,
    Admin,
}

impl Need {
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Developer => "developer",
            Need::Ops => "ops",
            Need::Admin => "admin",
        }
    }
}

/// A pool token as the pool record keeps it: never the token, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolToken {
    /// Public handle (`tok-` + the first 12 hex digits of the hash); shown, listed, revoked by.
    pub id: String,
    pub role: Role,
    /// SHA-256 (hex) of the token.
    pub hash: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Free text saying whose it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The public id of a token with this hash.
pub fn token_id(hash: &str) -> String {
    format!("tok-{}", hash.get(..12).unwrap_or(hash))
}

/// Longest token label.
pub const MAX_LABEL: usize = 100;

/// Body of `POST /v1/pools/{pool}/tokens` (optional: no body issues an ops token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    #[serde(default = "ops")]
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

fn ops() -> Role {
    Role::Ops
}

impl Default for CreateTokenRequest {
    fn default() -> Self {
        CreateTokenRequest {
            role: Role::Ops,
            label: None,
        }
    }
}

impl CreateTokenRequest {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(label) = &self.label {
            if label.len() > MAX_LABEL || label.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "label",
                    format!("at most {MAX_LABEL} characters, no control characters"),
                ));
            }
        }
        Ok(())
    }
}

/// A token as `GET /v1/pools/{pool}/tokens` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub role: Role,
    /// Unix seconds; absent for tokens issued before tokens had records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// What kind of session an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// An interactive terminal (CLI `exec -it` or the web console).
    Terminal,
    /// A non-interactive `exec`.
    Exec,
}

/// One session in a pool's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sorts by start time.
    pub id: String,
    pub pool: String,
    pub container: String,
    pub kind: SessionKind,
    /// Who: the token's id (`admin` for the admin token) and role (`admin`, `ops`, `developer`).
    pub token_id: String,
    pub role: String,
    /// Where from: `console` (browser) or `api` (CLI and other clients).
    pub via: String,
    /// The user in the container and what was run.
    pub user: String,
    pub command: Vec<String>,
    /// Unix milliseconds.
    pub started_at: u64,
    pub ended_at: u64,
    /// The process's exit code; absent when the session ended without one (closed, idle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// How it ended: `exit`, `closed` (the client went away), `idle-timeout`, `error: ...`.
    pub ended_by: String,
    /// The lines typed, as the terminal recorded them (editing keys applied, control sequences
    /// dropped). Everything typed is recorded, passwords included: tell your users.
    #[serde(default)]
    pub input: Vec<String>,
    /// More was typed than an entry keeps.
    #[serde(default)]
    pub input_truncated: bool,
}

/// Largest number of typed lines and bytes an audit entry keeps (a ZooKeeper znode is at most
/// 1 MB; a session that types more keeps its first lines and says so).
pub const MAX_AUDIT_LINES: usize = 2000;
pub const MAX_AUDIT_BYTES: usize = 256 * 1024;

/// Most entries one audit listing returns (each may hold up to `MAX_AUDIT_BYTES` of input).
pub const MAX_AUDIT_LIST: usize = 500;

/// The pool's audit entries kept, oldest removed first.
pub const MAX_AUDIT_ENTRIES: usize = 5000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_order() {
        assert_eq!("developer".parse::<Role>(), Ok(Role::Developer));
        assert_eq!("ops".parse::<Role>(), Ok(Role::Ops));
        assert_eq!("root".parse::<Role>().expect_err("refused").field, "role");
        assert!(Need::Developer < Need::Ops && Need::Ops < Need::Admin);
        assert_eq!(token_id("0123456789abcdef"), "tok-0123456789ab");
        let request: CreateTokenRequest = serde_json::from_str("{}").expect("parses");
        assert_eq!(request.role, Role::Ops);
        assert!(serde_json::from_str::<CreateTokenRequest>(r#"{"role":"root"}"#).is_err());
        let long = CreateTokenRequest {
            role: Role::Developer,
            label: Some("x".repeat(MAX_LABEL + 1)),
        };
        assert_eq!(long.validate().expect_err("refused").field, "label");
    }
}
