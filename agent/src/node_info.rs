//! Builds this node's `NodeInfo` registration: capacity from sysinfo, identity from config.

use std::time::{SystemTime, UNIX_EPOCH};

use caas_api::{Capacity, NodeInfo};
use sysinfo::System;

use crate::AgentConfig;

/// Capacity of this machine: all CPUs and all memory (cgroup limits of the agent itself are not
/// the node's capacity). Falls back to the parallelism the runtime sees if sysinfo fails.
pub fn capacity() -> Capacity {
    let fallback_cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    match System::new() {
        Ok(mut system) => {
            system.refresh_memory();
            system.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
            let cpus = (system.cpus().len() as u64).max(1);
            Capacity {
                cpu_millis: cpus * 1000,
                memory_bytes: system.total_memory(),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "sysinfo cannot read this machine; reporting no memory capacity");
            Capacity {
                cpu_millis: fallback_cpus * 1000,
                memory_bytes: 0,
            }
        }
    }
}

/// The registration payload for this node.
pub fn node_info(config: &AgentConfig) -> NodeInfo {
    NodeInfo {
        version: caas_api::PAYLOAD_VERSION,
        node_id: config.node_id.clone(),
        pool: config.pool.clone(),
        api_addr: config.advertise.clone(),
        underlay: config.underlay.map(|ip| ip.to_string()),
        capacity: capacity(),
        labels: config.labels.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: System::host_name().unwrap_or_default(),
        // Published as usable only once the engine has been checked.
        engine_ready: false,
        // Probed by the network module when it starts; nothing until then.
        networks: Default::default(),
        started_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}
