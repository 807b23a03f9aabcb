//! caas-api: the wire types every component agrees on (specs, node registrations, observed
//! status), their validation, and the ZooKeeper layout. Pure data: no I/O lives here.

pub mod assignment;
pub mod central;
pub mod constraint;
pub mod error;
pub mod health;
pub mod image;
pub mod name;
pub mod network;
pub mod node;
pub mod paths;
pub mod quantity;
pub mod roles;
pub mod service;
pub mod spec;
pub mod stats;
pub mod status;
pub mod terminal;

pub use assignment::{Assignment, Desired};
pub use constraint::{Constraint, ConstraintError};
pub use error::ValidationError;
pub use health::{HealthCheck, HealthState, HealthStatus, Probe, ProgramStatus};
pub use image::{ImageRef, PullProgress, RegistryProxy};
pub use node::{Capacity, NodeInfo};
pub use paths::{WorkloadKey, ZkLayout};
pub use spec::{ResourceRequest, Resources, RestartPolicy, WorkloadSpec};
pub use status::{ContainerIds, StatusError, WorkloadState, WorkloadStatus};

/// Version of the JSON payload format written to ZooKeeper. Readers accept this version and
/// older; a newer version is reported rather than misread.
pub const PAYLOAD_VERSION: u32 = 1;

fn payload_version() -> u32 {
    PAYLOAD_VERSION
}
