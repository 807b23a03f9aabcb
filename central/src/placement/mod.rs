//! Turning requests into committed placements: [`plan`] decides (pure), this module commits
//! the plan in one version-checked `multi` and, after a lost race, re-reads what changed and
//! plans again, so two central instances can never over-commit a node. Also removal and the
//! move of a workload off its node.

mod plan;

use std::sync::Arc;

use caas_api::central::ContainerRecord;
use caas_api::{Assignment, WorkloadKey};
use caas_zk::Fence;
use rand::SeedableRng;

pub use plan::{allocation_of, plan, Intent, Plan, Snapshot, Want};

use crate::error::CentralError;
use crate::scheduler::{Constraint, Strategy};
use crate::state::Central;
use crate::store::{Op, StoreError};

/// How often a commit is retried after losing a race before giving up with 503.
const MAX_ATTEMPTS: usize = 30;

/// The node of an assignment path `<root>/assign/<node>/<key>`.
fn assignment_node(layout: &caas_api::ZkLayout, path: &str) -> Option<String> {
    let rest = path.strip_prefix(&format!("{}/", layout.assign_root()))?;
    let (node, key) = rest.split_once('/')?;
    (!key.is_empty()).then(|| node.to_string())
}

/// What a lost race teaches the next attempt.
enum Lesson {
    /// An inventory record changed: re-read it.
    Reread(String),
    /// A node still holds an assignment of this name: avoid it.
    Avoid(String),
    /// The pool record changed or vanished.
    PoolChanged,
    /// Not a race this loop can resolve.
    Fatal,
}

fn lesson(layout: &caas_api::ZkLayout, pool: &str, e: &StoreError) -> Lesson {
    let Some((_, path)) = e.conflict() else {
        return Lesson::Fatal;
    };
    if !e.is_race() {
        Lesson::Fatal
    } else if path.starts_with(&format!("{}/", layout.inventory_root())) {
        Lesson::Reread(path.rsplit('/').next().unwrap_or_default().to_string())
    } else if let Some(node) = assignment_node(layout, path) {
        Lesson::Avoid(node)
    } else if path == layout.pool(pool) {
        Lesson::PoolChanged
    } else {
        Lesson::Fatal
    }
}

/// Places `wants` (all of one pool) and commits them atomically with `extra_ops`; returns the
/// records written.
pub async fn place_and_commit(
    central: &Central,
    pool: &str,
    wants: &[Want],
    intent: Intent,
    extra_ops: Vec<Op>,
    fence: Option<&Fence>,
) -> Result<Vec<ContainerRecord>, CentralError> {
    let layout = central.layout();
    // Sampling needs no cryptographic randomness: a small fast generator, seeded per request.
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let mut snapshot = Snapshot::default();
    if let Intent::Move { from, .. } = &intent {
        // The node being left is read from the store, not the cache: a cache that has not yet
        // seen the workload arrive there would release nothing and leak its allocation.
        let fresh = central.fresh_inventory(from).await?.map(Arc::new);
        snapshot.fresh.insert(from.clone(), fresh);
    }
    for attempt in 0..MAX_ATTEMPTS {
        snapshot.nodes = central.pool_nodes(pool)?;
        if let Intent::Move { from, .. } = &intent {
            snapshot.leaving = snapshot.fresh.get(from).cloned().flatten();
        }
        let plan = plan(
            layout,
            pool,
            wants,
            &intent,
            &extra_ops,
            &snapshot,
            &mut rng,
            crate::now(),
        )?;
        for dir in &plan.dirs {
            central.store.ensure(dir).await?;
        }
        let e = match central.store.commit(&plan.ops, fence).await {
            Ok(()) => return Ok(plan.records),
            Err(e) => e,
        };
        tracing::debug!(attempt, error = %e, "placement commit refused");
        match lesson(layout, pool, &e) {
            Lesson::Reread(node) => {
                let fresh = central.fresh_inventory(&node).await?.map(Arc::new);
                snapshot.fresh.insert(node, fresh);
            }
            Lesson::Avoid(node) => {
                tracing::info!(%node, "an assignment of this name is still on the node (purge pending); avoiding it");
                snapshot.avoid.insert(node);
            }
            Lesson::PoolChanged => {
                if central.store.pool(pool).await?.is_none() {
                    return Err(CentralError::not_found(format!(
                        "pool {pool} does not exist"
                    )));
                }
                // The pool record changed since its SSH keys were read: the caller re-reads.
                return Err(CentralError::contention(format!(
                    "pool {pool} changed meanwhile (its SSH keys?); retry"
                )));
            }
            Lesson::Fatal => return Err(e.into()),
        }
        // Random pause so racing instances do not collide in lockstep.
        tokio::time::sleep(std::time::Duration::from_millis(
            rand::random_range(0..5) * (attempt as u64 + 1),
        ))
        .await;
    }
    Err(CentralError::contention(
        "too many concurrent placements on the same nodes; retry",
    ))
}

/// Removes a workload: its record, its assignment (or a purge instruction in its place), and
/// its share of the node, in one versioned `multi`.
pub async fn remove(
    central: &Central,
    pool: &str,
    name: &str,
    purge: bool,
) -> Result<(), CentralError> {
    let layout = central.layout();
    let key = WorkloadKey::new(pool, name);
    for _ in 0..MAX_ATTEMPTS {
        let (record, version) = central.store.container(pool, name).await?.ok_or_else(|| {
            CentralError::not_found(format!("container {name} not found in pool {pool}"))
        })?;
        let mut ops = vec![Op::Delete {
            path: layout.container(pool, name),
            version: Some(version),
        }];
        // Its addresses are released in the same commit.
        for endpoint in &record.spec.networks {
            let path = layout.ip(pool, &endpoint.network, &endpoint.ip);
            if let Some((_, v)) = central.store.get::<serde_json::Value>(&path).await? {
                ops.push(Op::Delete {
                    path,
                    version: Some(v),
                });
            }
        }
        let assignment = layout.assignment(&record.node, &key);
        let existing = central.store.get::<serde_json::Value>(&assignment).await?;
        if purge {
            let purge_it = Assignment::purge(record.spec.clone());
            match existing {
                Some((_, v)) => ops.push(Op::set(assignment, &purge_it, v)?),
                None => {
                    central
                        .store
                        .ensure(&layout.assign_dir(&record.node))
                        .await?;
                    ops.push(Op::create(assignment, &purge_it)?);
                }
            }
        } else if let Some((_, v)) = existing {
            ops.push(Op::Delete {
                path: assignment,
                version: Some(v),
            });
        }
        if let Some(node) = central.fresh_inventory(&record.node).await? {
            let mut updated = node.record.clone();
            if let Some(gone) = updated.workloads.remove(&key.to_string()) {
                updated.allocated.sub(gone.allocation);
                ops.push(Op::set(
                    layout.inventory(&record.node),
                    &updated,
                    node.version,
                )?);
            }
        }
        match central.store.commit(&ops, None).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_race() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CentralError::contention(
        "too many concurrent changes; retry",
    ))
}

/// Moves a workload off its node (lost, or forced) onto another node of its pool, keeping name,
/// hostname and spec. The old assignment is deleted in the same `multi`.
pub async fn move_elsewhere(
    central: &Central,
    record: &ContainerRecord,
    record_version: i32,
    fence: Option<&Fence>,
) -> Result<ContainerRecord, CentralError> {
    let layout = central.layout();
    let pool = record.spec.pool.clone();
    let key = WorkloadKey::new(&pool, &record.spec.name);
    let constraints = record
        .constraints
        .iter()
        .map(|c| Constraint::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CentralError::invalid("constraints", e.to_string()))?;
    let mut extra_ops = Vec::new();
    // Only a rich workload carries the pool's keys (read under a version check).
    let mut ssh_keys = Vec::new();
    if record.spec.rich {
        if let Some((p, version)) = central.store.pool(&pool).await? {
            extra_ops.push(Op::Check {
                path: layout.pool(&pool),
                version,
            });
            ssh_keys = p.ssh_keys;
        }
    }
    let want = Want {
        // A bridge network lives on one node: its workloads cannot move off it.
        pinned: record
            .spec
            .networks
            .iter()
            .find(|e| e.driver == caas_api::network::NetworkDriver::Bridge)
            .map(|e| (e.network.clone(), record.node.clone())),
        spec: record.spec.clone(),
        app: record.app.clone(),
        ssh_keys,
        constraints,
        strategy: if record.strategy == "binpack" {
            Strategy::Binpack
        } else {
            Strategy::Spread
        },
    };
    let old_assignment = layout.assignment(&record.node, &key);
    if let Some((_, version)) = central
        .store
        .get::<serde_json::Value>(&old_assignment)
        .await?
    {
        extra_ops.push(Op::Delete {
            path: old_assignment,
            version: Some(version),
        });
    }
    let mut ip_versions = Vec::new();
    for endpoint in &record.spec.networks {
        let path = layout.ip(&pool, &endpoint.network, &endpoint.ip);
        let (_, version) = central
            .store
            .get::<serde_json::Value>(&path)
            .await?
            .ok_or_else(|| {
                CentralError::internal(format!(
                    "the address allocation {path} of a placed workload is missing"
                ))
            })?;
        ip_versions.push(version);
    }
    let intent = Intent::Move {
        from: record.node.clone(),
        key,
        record_version,
        created_at: record.created_at,
        ip_versions,
    };
    let mut moved = place_and_commit(central, &pool, &[want], intent, extra_ops, fence).await?;
    moved
        .pop()
        .ok_or_else(|| CentralError::internal("a move placed no record"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_api::WorkloadSpec;

    #[test]
    fn assignment_paths_name_their_node() {
        let layout = caas_api::ZkLayout::new("/caas").unwrap();
        assert_eq!(
            assignment_node(&layout, "/caas/assign/n1/p.web").as_deref(),
            Some("n1")
        );
        assert_eq!(assignment_node(&layout, "/caas/assign/n1"), None);
        assert_eq!(assignment_node(&layout, "/caas/inventory/n1"), None);
    }

    #[test]
    fn allocation_follows_the_spec() {
        let spec: WorkloadSpec = serde_json::from_value(serde_json::json!({
            "pool": "p", "name": "n", "image": "i", "resources": {"cpu": "1.5", "memory": "1Gi", "pids": 10}
        }))
        .unwrap();
        let a = allocation_of(&spec);
        assert_eq!((a.cpu_millis, a.memory_bytes, a.pids), (1500, 1 << 30, 10));
    }
}
