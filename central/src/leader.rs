//! Background work done by the elected leader only: track node liveness in the inventory
//! (ready -> disconnected -> lost after a grace period), re-place the stateless workloads of lost
//! nodes (same name, spec and hostname), mark workloads with data `lost` until ops force them,
//! and bring workloads back when their node returns; forget nodes that have been lost longer than
//! the inventory retention with nothing left on them. Every write carries the leader fence, so a
//! deposed leader's late writes are rejected by ZooKeeper.

use std::sync::Arc;
use std::time::Duration;

use caas_api::central::{ContainerRecord, Liveness, NodeRecord, Placement};
use caas_api::WorkloadKey;
use caas_zk::{Fence, LeaderLatch};
use tokio_util::sync::CancellationToken;

use crate::error::CentralError;
use crate::placement;
use crate::state::{Central, VersionedNode};
use crate::store::Op;

/// How often the leader looks at the fleet.
pub const TICK: Duration = Duration::from_millis(500);

/// How long lost nodes' records are kept by default once nothing is left on them.
pub const DEFAULT_INVENTORY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The leader's waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How long a node may be unregistered before it is lost.
    pub lost_grace: Duration,
    /// How long a lost node with no workload left keeps its inventory record, assignment and
    /// status directories before they are removed.
    pub inventory_retention: Duration,
}

/// A bare duration is the lost grace, with the default retention.
impl From<Duration> for Timers {
    fn from(lost_grace: Duration) -> Self {
        Self {
            lost_grace,
            inventory_retention: DEFAULT_INVENTORY_RETENTION,
        }
    }
}

/// Runs until `cancel`: whenever this instance leads, one `tick` per [`TICK`].
pub async fn run(
    central: Arc<Central>,
    latch: LeaderLatch,
    timers: Timers,
    cancel: CancellationToken,
) {
    let mut leadership = latch.leadership();
    loop {
        if let Some(fence) = latch.fence() {
            if let Err(e) = tick(&central, &fence, timers).await {
                tracing::warn!(error = %e, "leader background pass failed; retrying");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = leadership.changed() => {
                tracing::info!(leader = latch.is_leader(), "leadership changed");
            }
            _ = tokio::time::sleep(TICK) => {}
        }
    }
    latch.shutdown().await;
}

/// One pass over the fleet.
pub async fn tick(
    central: &Central,
    fence: &Fence,
    timers: impl Into<Timers>,
) -> Result<(), CentralError> {
    tick_at(central, fence, timers, crate::now()).await
}

/// One pass over the fleet at `now` (unix seconds), so tests can step the clock.
pub async fn tick_at(
    central: &Central,
    fence: &Fence,
    timers: impl Into<Timers>,
    now: u64,
) -> Result<(), CentralError> {
    let Timers {
        lost_grace: grace,
        inventory_retention,
    } = timers.into();
    if !central.synced() {
        return Ok(());
    }
    let registrations = central.registrations()?;
    let inventory = central.inventory()?;
    let layout = central.layout();
    tracing::debug!(
        registered = registrations.len(),
        known = inventory.len(),
        "leader pass"
    );
    for (id, info) in registrations.iter() {
        match inventory.get(id) {
            None => {
                let record = NodeRecord {
                    version: caas_api::PAYLOAD_VERSION,
                    info: (**info).clone(),
                    allocated: Default::default(),
                    workloads: Default::default(),
                    liveness: Liveness::Ready,
                    since: now,
                };
                central.store.ensure(&layout.inventory_root()).await?;
                central.store.ensure(&layout.assign_dir(id)).await?;
                commit_logged(
                    central,
                    fence,
                    vec![Op::create(layout.inventory(id), &record)?],
                    "register node",
                )
                .await;
            }
            Some(v) if v.record.liveness != Liveness::Ready || v.record.info != **info => {
                let was_lost = v.record.liveness == Liveness::Lost;
                let mut record = v.record.clone();
                if record.liveness != Liveness::Ready {
                    tracing::info!(node = %id, from = ?record.liveness, "node is ready again");
                    record.since = now;
                }
                record.liveness = Liveness::Ready;
                record.info = (**info).clone();
                commit_logged(
                    central,
                    fence,
                    vec![Op::set(layout.inventory(id), &record, v.version)?],
                    "mark node ready",
                )
                .await;
                if was_lost && v.record.info.pool == info.pool {
                    if let Err(e) = revive(central, fence, id, &record).await {
                        tracing::warn!(node = %id, error = %e, "reviving workloads failed; will retry");
                    }
                } else if was_lost {
                    tracing::warn!(node = %id, old = %v.record.info.pool, new = %info.pool,
                        "node came back in another pool; its old workloads stay lost (the agent refuses them)");
                }
            }
            Some(_) => {}
        }
    }
    for (id, v) in inventory.iter() {
        if registrations.contains_key(id) {
            continue;
        }
        let mut record = v.record.clone();
        match record.liveness {
            Liveness::Ready => {
                tracing::warn!(node = %id, "node registration is gone; disconnected");
                record.liveness = Liveness::Disconnected;
                record.since = now;
            }
            Liveness::Disconnected
                if now.saturating_sub(record.since) >= grace.as_secs().max(1) =>
            {
                tracing::warn!(node = %id, "node lost: gone longer than the grace period");
                record.liveness = Liveness::Lost;
                record.since = now;
            }
            Liveness::Disconnected => continue,
            Liveness::Lost => {
                // One node's trouble must not stop the pass for the others.
                if let Err(e) = handle_lost(central, fence, id, v).await {
                    tracing::warn!(node = %id, error = %e, "handling lost node failed; will retry");
                } else if record.workloads.is_empty()
                    && now.saturating_sub(record.since) >= inventory_retention.as_secs()
                {
                    if let Err(e) = forget(central, fence, id, v).await {
                        tracing::warn!(node = %id, error = %e, "forgetting a long-lost node failed; will retry");
                    }
                }
                continue;
            }
        }
        commit_logged(
            central,
            fence,
            vec![Op::set(layout.inventory(id), &record, v.version)?],
            "update liveness",
        )
        .await;
    }
    Ok(())
}

async fn commit_logged(central: &Central, fence: &Fence, ops: Vec<Op>, what: &str) {
    if let Err(e) = central.store.commit(&ops, Some(fence)).await {
        tracing::info!(error = %e, "{what}: write rejected; will look again");
    }
}

async fn records_on(
    central: &Central,
    node: &str,
    record: &NodeRecord,
) -> Result<Vec<(ContainerRecord, i32)>, CentralError> {
    let mut out = Vec::new();
    for key in record.workloads.keys() {
        let Ok(key) = WorkloadKey::parse(key) else {
            continue;
        };
        match central.store.container(&key.pool, &key.name).await {
            Ok(Some((c, version))) if c.node == node => out.push((c, version)),
            Ok(_) => {}
            Err(e @ crate::store::StoreError::Decode { .. }) => {
                tracing::warn!(workload = %key, error = %e, "skipping a container record this version cannot read");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Re-places stateless workloads of a lost node; marks the ones with data `lost`.
async fn handle_lost(
    central: &Central,
    fence: &Fence,
    node: &str,
    v: &VersionedNode,
) -> Result<(), CentralError> {
    for (record, version) in records_on(central, node, &v.record).await? {
        // Workloads with data wait for ops once marked lost. Stateless ones are retried on every
        // pass until they run elsewhere: a full pool or a lost race is not a reason to give up.
        if record.placement == Placement::Lost && !record.spec.volumes.is_empty() {
            continue;
        }
        let name = format!("{}.{}", record.spec.pool, record.spec.name);
        if record.spec.volumes.is_empty() {
            match placement::move_elsewhere(central, &record, version, Some(fence)).await {
                Ok(moved) => {
                    tracing::info!(workload = %name, from = %node, to = %moved.node, "re-placed workload of a lost node")
                }
                Err(e) => {
                    tracing::warn!(workload = %name, error = %e, "cannot re-place workload of a lost node yet; retrying");
                    if record.placement != Placement::Lost {
                        mark(central, fence, &record, version, Placement::Lost).await?;
                    }
                }
            }
        } else {
            tracing::warn!(workload = %name, node = %node, "workload with data on a lost node waits for `caas container reschedule --force`");
            mark(central, fence, &record, version, Placement::Lost).await?;
        }
    }
    Ok(())
}

/// Removes what central keeps of a node lost for longer than the retention with no workload
/// left on it: its inventory record, its (empty) assignment directory and its stale status
/// directory, in one multi that fails if the record changed meanwhile. A node that comes back
/// later registers as new.
async fn forget(
    central: &Central,
    fence: &Fence,
    node: &str,
    v: &VersionedNode,
) -> Result<(), CentralError> {
    let layout = central.layout();
    let assign_dir = layout.assign_dir(node);
    if !central.store.children(&assign_dir).await?.is_empty() {
        // An instruction (a purge) still waits for the node: keep everything.
        return Ok(());
    }
    let mut ops = Vec::new();
    let status_dir = layout.status_dir(node);
    for child in central.store.children(&status_dir).await? {
        ops.push(Op::Delete {
            path: format!("{status_dir}/{child}"),
            version: None,
        });
    }
    for dir in [status_dir, assign_dir] {
        if central.store.get_raw(&dir).await?.is_some() {
            ops.push(Op::Delete {
                path: dir,
                version: None,
            });
        }
    }
    ops.push(Op::Delete {
        path: layout.inventory(node),
        version: Some(v.version),
    });
    tracing::info!(node = %node, lost_since = v.record.since, "forgetting a node lost longer than the inventory retention");
    commit_logged(central, fence, ops, "forget lost node").await;
    Ok(())
}

/// A lost node came back: its workloads that still point at it run there again.
async fn revive(
    central: &Central,
    fence: &Fence,
    node: &str,
    record: &NodeRecord,
) -> Result<(), CentralError> {
    for (c, version) in records_on(central, node, record).await? {
        if c.placement == Placement::Lost {
            mark(central, fence, &c, version, Placement::Placed).await?;
        }
    }
    Ok(())
}

async fn mark(
    central: &Central,
    fence: &Fence,
    record: &ContainerRecord,
    version: i32,
    placement: Placement,
) -> Result<(), CentralError> {
    let mut updated = record.clone();
    updated.placement = placement;
    let path = central
        .layout()
        .container(&record.spec.pool, &record.spec.name);
    commit_logged(
        central,
        fence,
        vec![Op::set(path, &updated, version)?],
        "mark workload",
    )
    .await;
    Ok(())
}

/// The registration data the leader publishes in its candidate znode (for people debugging).
pub fn candidate_data(listen: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "listen": listen, "pid": std::process::id() }))
        .unwrap_or_default()
}
