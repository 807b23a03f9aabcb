//! How the agent names and labels the Docker containers it owns. Labels are the agent's only
//! memory: after a restart it finds its containers by `caas.node` and reads everything else back
//! from the labels, so it keeps no local state.

use std::collections::BTreeMap;

use caas_api::WorkloadKey;

use crate::runtime::{ManagedContainer, Role};

pub const LABEL_NODE: &str = "caas.node";
pub const LABEL_POOL: &str = "caas.pool";
pub const LABEL_NAME: &str = "caas.name";
pub const LABEL_ROLE: &str = "caas.role";
pub const LABEL_GENERATION: &str = "caas.generation";
pub const LABEL_SPEC_HASH: &str = "caas.spec-hash";

/// Docker name of a workload's container: `<prefix>.<pool>.<name>[.sandbox|.data]`.
pub fn container_name(prefix: &str, key: &WorkloadKey, role: Role) -> String {
    match role {
        Role::App => format!("{prefix}.{}.{}", key.pool, key.name),
        Role::Sandbox => format!("{prefix}.{}.{}.sandbox", key.pool, key.name),
        Role::Data => format!("{prefix}.{}.{}.data", key.pool, key.name),
    }
}

/// The labels every container of a workload carries.
pub fn labels(
    node: &str,
    key: &WorkloadKey,
    role: Role,
    generation: u64,
    hash: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NODE.to_string(), node.to_string()),
        (LABEL_POOL.to_string(), key.pool.clone()),
        (LABEL_NAME.to_string(), key.name.clone()),
        (LABEL_ROLE.to_string(), role.as_str().to_string()),
        (LABEL_GENERATION.to_string(), generation.to_string()),
        (LABEL_SPEC_HASH.to_string(), hash.to_string()),
    ])
}

/// Reads workload key and role back from a listed container's labels; `None` for containers
/// whose labels are not ours (someone edited them by hand).
pub fn identify(container: &ManagedContainer) -> Option<(WorkloadKey, Role)> {
    let pool = container.labels.get(LABEL_POOL)?;
    let name = container.labels.get(LABEL_NAME)?;
    let role = Role::parse(container.labels.get(LABEL_ROLE)?)?;
    Some((WorkloadKey::new(pool, name), role))
}

pub fn spec_hash(container: &ManagedContainer) -> &str {
    container
        .labels
        .get(LABEL_SPEC_HASH)
        .map(String::as_str)
        .unwrap_or("")
}
