//! `CentralError`: the one error type of central's logic (placement, leader, pools, state and
//! the API handlers). It says what went wrong in domain terms; `api::reply` is the only place
//! that turns it into an HTTP status and the `{code, message, field}` body.

use caas_api::ValidationError;

use crate::store::StoreError;

/// Why a request that conflicts with existing state was refused (HTTP 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// The object already exists (a pool).
    Exists,
    /// A container of that name exists with a different spec.
    ExistsDifferent,
    /// A workload with a data container would lose its data by moving.
    HasData,
    /// A reschedule without `--force` of a workload whose node is ready.
    NodeReady,
    /// A pool (or network) that still holds objects.
    NotEmpty,
    /// A requested address is used by another container of the network.
    AddressTaken,
    /// A requested VNI belongs to another network.
    VniTaken,
    /// A VLAN (or the untagged access port) belongs to another network.
    VlanTaken,
    /// No address (or VNI) is left.
    Exhausted,
    /// A `Publish` port another load balancer of the pool already uses on the nodes.
    PortTaken,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CentralError {
    /// Bad input, refused before anything was written; `field` names what to fix.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// A request that could not be understood at all (not a field's fault).
    #[error("{0}")]
    BadRequest(String),
    /// No token, or an unknown one.
    #[error("missing or unknown bearer token: send `Authorization: Bearer <token>` (caas CLI: set CAAS_TOKEN)")]
    Unauthorized,
    /// A known caller that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Does not exist, or belongs to a pool the caller may not see (the same answer for both).
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("{0}")]
    TooLarge(String),
    /// Refused because of existing state.
    #[error("{message}")]
    Conflict { kind: ConflictKind, message: String },
    /// No node can take the workload; the message explains per node why not.
    #[error("{0}")]
    Unschedulable(String),
    /// Lost races too often (concurrent changes); retrying the request is safe.
    #[error("{0}")]
    Contention(String),
    /// A dependency (ZooKeeper, a node's agent, the caches) is not there right now.
    #[error("{0}")]
    Unavailable(String),
    /// An agent refused forwarded work (exec, deploy); its status and code are passed on.
    #[error("{message}")]
    Agent {
        status: u16,
        code: AgentCode,
        message: String,
    },
    /// A fault of central itself or of data it cannot read.
    #[error("{0}")]
    Internal(String),
}

/// The refusal codes agents answer control requests with, as far as central knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentCode {
    Busy,
    Invalid,
    InvalidPackage,
    PackageTooLarge,
    NotRich,
    NotRunning,
    NotFound,
    Forbidden,
    EngineError,
    /// A code this central does not know (a newer agent).
    Other,
}

impl AgentCode {
    const KNOWN: [(AgentCode, &'static str); 9] = [
        (AgentCode::Busy, "busy"),
        (AgentCode::Invalid, "invalid"),
        (AgentCode::InvalidPackage, "invalid-package"),
        (AgentCode::PackageTooLarge, "package-too-large"),
        (AgentCode::NotRich, "not-rich"),
        (AgentCode::NotRunning, "not-running"),
        (AgentCode::NotFound, "not-found"),
        (AgentCode::Forbidden, "forbidden"),
        (AgentCode::EngineError, "engine-error"),
    ];

    pub fn parse(code: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|(_, text)| *text == code)
            .map(|(c, _)| *c)
            .unwrap_or(AgentCode::Other)
    }

    pub fn as_str(self) -> &'static str {
        Self::KNOWN
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, text)| *text)
            .unwrap_or("agent-error")
    }
}

impl CentralError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
    pub fn conflict(kind: ConflictKind, message: impl Into<String>) -> Self {
        Self::Conflict {
            kind,
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }
    pub fn unschedulable(message: impl Into<String>) -> Self {
        Self::Unschedulable(message.into())
    }
    pub fn contention(message: impl Into<String>) -> Self {
        Self::Contention(message.into())
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }
}

impl From<ValidationError> for CentralError {
    fn from(e: ValidationError) -> Self {
        Self::invalid(e.field.clone(), e.to_string())
    }
}

impl From<StoreError> for CentralError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSession => Self::Unavailable(e.to_string()),
            StoreError::Conflict { .. } => {
                Self::Contention(format!("too many concurrent changes, retry: {e}"))
            }
            StoreError::Fenced(_)
            | StoreError::Backend { .. }
            | StoreError::Decode { .. }
            | StoreError::Encode { .. } => Self::Internal(e.to_string()),
        }
    }
}
