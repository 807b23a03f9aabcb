//! caas-central: the stateless REST API, the scheduler and the leader's background work.
//! Central keeps no state of its own: everything lives in ZooKeeper. (The `caas` CLI and its
//! REST client are the `caas-cli` and `caas-client` crates.)
pub mod agent_link;
pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod console;
pub mod decoded;
pub mod error;
pub mod leader;
pub mod networks;
pub mod placement;
pub mod scheduler;
pub mod server;
pub mod services;
pub mod state;
pub mod store;

/// Unix milliseconds now.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
