//! The prewarms this node is named in (`pools/<pool>/prewarms/<id>`): their images are pulled
//! through the puller before any workload needs them, and this node's state is written under
//! each prewarm (`.../<id>/<node>`) whenever it changes.
//!
//! The first node of a prewarm is its seed: the others wait until the seed is done (or failed,
//! or silent: not reported within 30 s, or its state unchanged for 2 minutes), so the pool's proxy fetches the image from the center once and serves every other
//! node from its cache. distribution 2.8 stores a blob only when a whole fetch ends and fetches
//! it again from the center for every request that finds it in flight: ten nodes pulling a new
//! image at once cost ~9-11 copies over the WAN, seeded ones 2 (BENCHMARKS.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use caas_api::image::{Prewarm, PrewarmNodeStatus, PrewarmState};
use caas_api::{StatusError, ZkLayout};
use caas_zk::zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};
use caas_zk::{CacheOptions, ChildMap, ChildrenCache, ClientWatch};
use tokio_util::sync::CancellationToken;

use super::{Availability, Puller};
use crate::runtime::ContainerRuntime;

/// Failed pulls are retried on this beat too (the puller's backoff decides when).
const RECHECK: Duration = Duration::from_secs(2);
/// The other nodes stop waiting for a seed that has not reported for this long (its agent is
/// down or slow to start), or that has not finished within `SEED_LIMIT` of the prewarm.
const SEED_SILENCE: Duration = Duration::from_secs(30);
const SEED_LIMIT: Duration = Duration::from_secs(15 * 60);
/// A seed whose state has not changed for this long is taken to be gone (ZooKeeper's clock
/// against the agent's: generous for skew; extraction of a big layer writes nothing for a while).
const SEED_STALL: Duration = Duration::from_secs(120);

pub struct PrewarmConfig {
    pub layout: ZkLayout,
    pub pool: String,
    pub node_id: String,
    pub relist_interval: Duration,
}

/// Follows the pool's prewarms until `cancel`.
pub async fn run<R: ContainerRuntime + ?Sized>(
    clients: ClientWatch,
    config: PrewarmConfig,
    puller: Arc<Puller<R>>,
    cancel: CancellationToken,
) {
    let cache = match ChildrenCache::start(
        clients.clone(),
        config.layout.prewarms(&config.pool),
        CacheOptions {
            relist_interval: config.relist_interval,
        },
        cancel.clone(),
    ) {
        Ok(cache) => cache,
        Err(e) => {
            tracing::error!(error = %e, "cannot follow prewarms; images are pulled only when workloads need them");
            return;
        }
    };
    let mut snapshots = cache.snapshot();
    let mut pulls = puller.subscribe();
    let mut clients = clients;
    // What this node last wrote per prewarm (so unchanged states are not rewritten).
    let mut written: BTreeMap<String, PrewarmNodeStatus> = BTreeMap::new();
    let mut beat = tokio::time::interval(RECHECK);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = snapshots.changed() => if r.is_err() { break },
            r = pulls.changed() => if r.is_err() { break },
            r = clients.changed() => if r.is_err() { break },
            _ = beat.tick() => {}
        }
        let mine = mine(&config, &snapshots.borrow_and_update());
        written.retain(|id, _| mine.iter().any(|p| &p.id == id));
        if *cache.synced().borrow() {
            puller.set_wanted(
                super::WantedBy::Prewarms,
                mine.iter().map(|p| p.image.clone()).collect(),
            );
        }
        let client = clients.borrow_and_update().clone();
        for prewarm in mine {
            let seed_busy = match &client {
                Some(client) => seed_busy(client, &config, &prewarm).await,
                None => false,
            };
            let state = if seed_busy {
                PrewarmNodeStatus {
                    node: config.node_id.clone(),
                    state: PrewarmState::Waiting,
                    progress: None,
                    error: None,
                }
            } else {
                state_of(&config.node_id, &puller, &prewarm.image).await
            };
            if written.get(&prewarm.id) == Some(&state) {
                continue;
            }
            let Some(client) = &client else { continue };
            let path = config
                .layout
                .prewarm_node(&config.pool, &prewarm.id, &config.node_id);
            match report(client, &path, &state).await {
                Ok(()) => {
                    written.insert(prewarm.id.clone(), state);
                }
                Err(e) => {
                    tracing::warn!(prewarm = %prewarm.id, error = %e, "writing the prewarm state failed; retried")
                }
            }
        }
    }
    cache.shutdown().await;
}

/// Whether this node should wait for the prewarm's seed (its first node) to pull first.
async fn seed_busy(client: &Client, config: &PrewarmConfig, prewarm: &Prewarm) -> bool {
    let Some(seed) = prewarm.nodes.first() else {
        return false;
    };
    if *seed == config.node_id {
        return false;
    }
    let age = Duration::from_secs(unix_now().saturating_sub(prewarm.created_at));
    if age >= SEED_LIMIT {
        return false;
    }
    let path = config.layout.prewarm_node(&config.pool, &prewarm.id, seed);
    match client.get_data(&path).await {
        Ok((data, stat)) => match serde_json::from_slice::<PrewarmNodeStatus>(&data) {
            // A seed that stopped writing (its agent died mid-pull) is not waited for: a pull
            // under way rewrites its state at least every few seconds.
            Ok(status) => {
                let written_ms = u64::try_from(stat.mtime).unwrap_or(0);
                let silent = unix_now().saturating_mul(1000).saturating_sub(written_ms)
                    >= u64::try_from(SEED_STALL.as_millis()).unwrap_or(u64::MAX);
                !status.state.finished() && !silent
            }
            Err(_) => false,
        },
        // Not reported yet: wait a while for the seed's agent.
        Err(ZkError::NoNode) => age < SEED_SILENCE,
        Err(_) => false,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The prewarms naming this node.
fn mine(config: &PrewarmConfig, children: &ChildMap) -> Vec<Prewarm> {
    children
        .values()
        .filter_map(|entry| serde_json::from_slice::<Prewarm>(&entry.data).ok())
        .filter(|p| p.pool == config.pool && p.nodes.contains(&config.node_id))
        .collect()
}

async fn state_of<R: ContainerRuntime + ?Sized>(
    node: &str,
    puller: &Arc<Puller<R>>,
    image: &str,
) -> PrewarmNodeStatus {
    let (state, progress, error) = match puller.resolve(image).await {
        Ok(Availability::Local { .. }) => (PrewarmState::Done, None, None),
        Ok(Availability::Pulling(progress)) => (PrewarmState::Pulling, Some(progress), None),
        Err(e) => (
            PrewarmState::Failed,
            None,
            Some(StatusError {
                code: crate::codes::LastErrorCode::Engine(e.code)
                    .as_str()
                    .to_string(),
                message: e.message,
                // Kept at 0: a retry that fails the same way is not a new state to write.
                at: 0,
            }),
        ),
    };
    PrewarmNodeStatus {
        node: node.to_string(),
        state,
        progress,
        error,
    }
}

/// Sets (or creates) this node's state; a prewarm removed meanwhile is left alone (its parent
/// is never re-created).
async fn report(client: &Client, path: &str, state: &PrewarmNodeStatus) -> Result<(), ZkError> {
    let data = serde_json::to_vec(state).unwrap_or_default();
    match client.set_data(path, &data, None).await {
        Ok(_) => Ok(()),
        Err(ZkError::NoNode) => {
            let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
            match client.create(path, &data, &options).await {
                Ok(_) | Err(ZkError::NoNode) => Ok(()),
                Err(ZkError::NodeExists) => client.set_data(path, &data, None).await.map(|_| ()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}
