//! caas-client: a typed async client of caas central's REST API (`CentralClient`), its error
//! type (`ClientError`), and the wire types it speaks, re-exported from `caas-api`. Used by the
//! `caas` CLI and by dockerfile-gen; it links no server code.

pub mod client;
pub mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;

pub use caas_api;
pub use caas_api::central::{
    ContainerView, CreateContainerRequest, CreatePoolRequest, DeployResult, ErrorBody, ExecRequest,
    ExecResult, Liveness, NodeView, Placement, PoolView, RescheduleRequest, SshKeysRequest,
    SshKeysView, TokenResponse,
};
pub use caas_api::image::{AddRegistryProxyRequest, RegistryProxyView};
pub use caas_api::network::{
    CreateNetworkRequest, Endpoint, InterfaceStatus, IpAllocation, NetworkAttachment,
    NetworkDriver, NetworkSpec, NetworkView,
};
pub use caas_api::roles::{AuditEntry, CreateTokenRequest, Role, SessionKind, TokenView};
pub use caas_api::service::{
    AddBackendRequest, CreateDnsRequest, CreateLbRequest, DnsSpec, LbBackend, LbMember, LbSpec,
    LbView, ServiceMembership,
};
pub use caas_api::stats::{NodeStats, NodeStatsEntry, WorkloadStats};
pub use caas_api::terminal::{LogFile, TerminalStart};
pub use client::terminal::{TerminalEvent, TerminalReceiver, TerminalSender, TerminalSession};
pub use client::{AuditQuery, CentralClient, CreateOutcome, LogStream, LogsRequest};
pub use error::{ClientError, NetworkKind};

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "session_tests.rs"]
mod session_tests;
