//! Placement constraints live in `caas-api` (the CLI parses them too); the scheduler matches them.

pub use caas_api::constraint::{Constraint, ConstraintError, ConstraintOp};
