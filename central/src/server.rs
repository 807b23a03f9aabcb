//! `run`: one central instance: ZooKeeper session, caches, leader latch and background work,
//! and the REST API, until cancelled.

use caas_zk::{LeaderLatch, ZkConfig, ZkSession};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::CentralConfig;
use crate::state::Central;
use crate::store::ZkStore;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("ZooKeeper setup: {0}")]
    Zk(String),
}

pub async fn run(
    config: CentralConfig,
    listener: TcpListener,
    cancel: CancellationToken,
) -> Result<(), ServerError> {
    let work = cancel.child_token();
    let mut zk = ZkConfig::new(config.zk_servers.clone());
    zk.session_timeout = config.zk_session_timeout;
    let session = ZkSession::start(zk, work.clone()).map_err(|e| ServerError::Zk(e.to_string()))?;
    let store = ZkStore::start(config.layout.clone(), session.clients(), work.clone())
        .map_err(|e| ServerError::Zk(e.to_string()))?;
    let central = Central::new(std::sync::Arc::new(store), &config.admin_token);
    let listen = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(zk = %config.zk_servers, root = %config.layout.root(), listen = %listen, "caas-central starting");

    let tracker = TaskTracker::new();
    // The leader directory must exist before candidates can join.
    let mut clients = session.clients();
    let layout = config.layout.clone();
    let bootstrap_cancel = work.clone();
    let latch_central = central.clone();
    let timers = crate::leader::Timers {
        lost_grace: config.lost_grace,
        inventory_retention: config.inventory_retention,
    };
    let leader_cancel = work.clone();
    tracker.spawn(async move {
        let Some(client) = caas_zk::wait_for_client(&mut clients, &bootstrap_cancel).await else { return };
        for dir in [layout.leader(), layout.pools(), layout.inventory_root(), layout.assign_root(), layout.status_root(), layout.nodes()] {
            if let Err(e) = caas_zk::ensure_path(&client, &dir).await {
                tracing::warn!(path = %dir, error = %e, "creating base path failed");
            }
        }
        drop(client);
        match LeaderLatch::start(clients, layout.leader(), crate::leader::candidate_data(&listen), leader_cancel.clone()) {
            Ok(latch) => crate::leader::run(latch_central, latch, timers, leader_cancel).await,
            Err(e) => tracing::error!(error = %e, "cannot join the leader election; this instance serves the API only"),
        }
    });

    let agents = std::sync::Arc::new(crate::agent_link::AgentLink::new(
        config.agent_token.clone(),
    ));
    let console = crate::console::Console::new(crate::console::ConsoleConfig {
        xterm_dir: config.console_xterm_dir.clone(),
        ..Default::default()
    });
    let routes = crate::api::routes_with_console(central.clone(), agents, console);
    let stop = work.clone();
    tracker.spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { stop.cancelled().await })
            .run(),
    );

    cancel.cancelled().await;
    tracing::info!("caas-central stopping");
    work.cancel();
    tracker.close();
    tracker.wait().await;
    session.shutdown().await;
    Ok(())
}
