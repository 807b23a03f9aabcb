//! caas-agent: the node daemon. It registers the node in ZooKeeper, reconciles the workloads
//! assigned to the node against Docker, reports what it observes, and serves a local HTTP API.
//! `main.rs` only parses flags and calls [`agent::run`].

pub mod agent;
pub mod codes;
pub mod config;
pub mod control;
pub mod health;
pub mod http;
pub mod images;
pub mod logs;
pub mod metrics;
pub mod naming;
pub mod network;
pub mod node_info;
pub mod reconcile;
pub mod rich;
pub mod runtime;
pub mod sandbox_image;
pub mod services;
pub mod stats;
pub mod status_sync;
pub mod terminal;
pub mod view;

pub use config::{AgentConfig, Flags};
