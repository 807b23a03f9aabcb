//! Turning requests into committed placements: build the scheduler's view of a pool from the
//! caches, place every replica, and commit records, assignments and node allocations in one
//! version-checked `multi`. A lost race re-reads the nodes involved and tries again, so two
//! central instances can never over-commit a node.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use caas_api::central::{
    Allocation, ContainerRecord, Liveness, NodeRecord, PlacedWorkload, Placement,
};
use caas_api::{Assignment, NodeInfo, WorkloadKey, WorkloadSpec};
use caas_zk::Fence;

use crate::decoded::{apps_of, view_of, VersionedNode};
use crate::error::ApiError;
use crate::scheduler::{self, Constraint, NodeView, PlacementRequest, Resources, Strategy};
use crate::state::Central;
use crate::store::{Op, StoreError};

/// How often a commit is retried after losing a race before giving up with 503.
const MAX_ATTEMPTS: usize = 30;

pub fn allocation_of(spec: &WorkloadSpec) -> Allocation {
    let parsed = spec.resources.parse().unwrap_or_default();
    Allocation {
        cpu_millis: parsed.cpu_millis.unwrap_or(0),
        memory_bytes: parsed.memory_bytes.unwrap_or(0),
        pids: parsed.pids.map(|p| p.max(0) as u64).unwrap_or(0),
    }
}

fn to_resources(a: Allocation) -> Resources {
    Resources {
        cpu_millis: a.cpu_millis,
        memory_bytes: a.memory_bytes,
        pids: a.pids,
    }
}

/// The node of an assignment path `<root>/assign/<node>/<key>`.
fn assignment_node(layout: &caas_api::ZkLayout, path: &str) -> Option<String> {
    let rest = path.strip_prefix(&format!("{}/", layout.assign_root()))?;
    let (node, key) = rest.split_once('/')?;
    (!key.is_empty()).then(|| node.to_string())
}

fn new_record(info: &NodeInfo) -> NodeRecord {
    NodeRecord {
        version: caas_api::PAYLOAD_VERSION,
        info: info.clone(),
        allocated: Allocation::default(),
        workloads: BTreeMap::new(),
        liveness: Liveness::Ready,
        since: crate::now(),
    }
}

/// One workload to place.
#[derive(Debug, Clone)]
pub struct Want {
    pub spec: WorkloadSpec,
    pub app: String,
    pub constraints: Vec<Constraint>,
    pub strategy: Strategy,
    /// The pool's SSH keys, handed to the agent with a rich workload's assignment.
    pub ssh_keys: Vec<String>,
}

/// Extra operations a caller adds to the commit (e.g. the moved record's update) and the node a
/// workload leaves.
#[derive(Debug, Default)]
pub struct Extra {
    pub ops: Vec<Op>,
    /// Node to exclude from placement and remove `key` from (a move).
    pub leaving: Option<(String, WorkloadKey)>,
    /// Write records as updates of this version instead of creating them (a move).
    pub record_version: Option<i32>,
    pub created_at: u64,
}

/// Places `wants` (all of one pool) and commits them atomically; returns the records written.
pub async fn place_and_commit(
    central: &Central,
    pool: &str,
    wants: &[Want],
    extra: Extra,
    fence: Option<&Fence>,
) -> Result<Vec<ContainerRecord>, ApiError> {
    let layout = &central.store.layout;
    let mut overlay: BTreeMap<String, Option<Arc<VersionedNode>>> = BTreeMap::new();
    let mut rng = {
        use rand::SeedableRng;
        rand::rngs::StdRng::from_rng(&mut rand::rng())
    };
    let leaving = extra.leaving.as_ref().map(|(n, _)| n.as_str());
    // Nodes that still hold an assignment of the same name (a purge not yet carried out by
    // their agent): placing there again would collide, so they are avoided.
    let mut avoid: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for attempt in 0..MAX_ATTEMPTS {
        let nodes = central.pool_nodes(pool)?;
        // Borrowed from the shared snapshot; copied only if this request has to change a view
        // (a node to avoid, a record re-read after a race, or a second replica to place).
        let mut views: Cow<[NodeView]> = Cow::Borrowed(&nodes.views);
        let base = |i: usize| -> Option<Arc<VersionedNode>> {
            match overlay.get(&nodes.infos[i].node_id) {
                Some(fresh) => fresh.clone(),
                None => nodes.records[i].clone(),
            }
        };
        for (i, info) in nodes.infos.iter().enumerate() {
            if Some(info.node_id.as_str()) == leaving || avoid.contains(&info.node_id) {
                views.to_mut()[i].ready = false;
            } else if overlay.contains_key(&info.node_id) {
                let record = base(i);
                let apps = record.as_ref().map(|r| r.apps.clone()).unwrap_or_default();
                views.to_mut()[i] = view_of(info, record.as_ref().map(|r| &r.record), apps);
            }
        }
        let mut touched: BTreeMap<usize, (NodeRecord, Option<i32>)> = BTreeMap::new();
        let mut records = Vec::new();
        let mut ops = Vec::new();
        for (n, want) in wants.iter().enumerate() {
            let alloc = allocation_of(&want.spec);
            let request = PlacementRequest {
                pool: pool.to_string(),
                request: to_resources(alloc),
                constraints: want.constraints.clone(),
                app: Some(want.app.clone()),
                strategy: want.strategy,
            };
            let chosen = scheduler::place(&request, &views, &mut rng).map_err(|why| {
                ApiError::unschedulable(format!("cannot place {}: {why}", want.spec.name))
            })?;
            let i = chosen.node;
            let info = &nodes.infos[i];
            let (record, _) = touched.entry(i).or_insert_with(|| match base(i) {
                Some(v) => (v.record.clone(), Some(v.version)),
                None => (new_record(info), None),
            });
            let key = WorkloadKey::new(pool, &want.spec.name);
            record.allocated.add(alloc);
            record.workloads.insert(
                key.to_string(),
                PlacedWorkload {
                    app: want.app.clone(),
                    allocation: alloc,
                },
            );
            if n + 1 < wants.len() {
                views.to_mut()[i] = view_of(info, Some(record), apps_of(record));
            }
            let record = ContainerRecord {
                version: caas_api::PAYLOAD_VERSION,
                spec: want.spec.clone(),
                app: want.app.clone(),
                constraints: want.constraints.iter().map(ToString::to_string).collect(),
                strategy: match want.strategy {
                    Strategy::Spread => "spread".into(),
                    Strategy::Binpack => "binpack".into(),
                },
                node: info.node_id.clone(),
                placement: Placement::Placed,
                created_at: if extra.created_at > 0 {
                    extra.created_at
                } else {
                    crate::now()
                },
            };
            let record_path = layout.container(pool, &want.spec.name);
            ops.push(match extra.record_version {
                Some(v) => Op::set(record_path, &record, v)?,
                None => Op::create(record_path, &record)?,
            });
            ops.push(Op::create(
                layout.assignment(&info.node_id, &key),
                &Assignment::run_with_keys(want.spec.clone(), &want.ssh_keys),
            )?);
            records.push(record);
        }
        for (&i, (record, version)) in &touched {
            let info = &nodes.infos[i];
            let path = layout.inventory(&info.node_id);
            let mut record = record.clone();
            record.info = (**info).clone();
            ops.push(match version {
                Some(v) => Op::set(path, &record, *v)?,
                None => {
                    // First placement on this node: its assignment directory may not exist yet
                    // (the leader creates it when it records the node).
                    central
                        .store
                        .ensure(&layout.assign_dir(&info.node_id))
                        .await?;
                    Op::create(path, &record)?
                }
            });
        }
        if let Some((old_node, key)) = &extra.leaving {
            let fresh = match overlay.get(old_node) {
                Some(f) => f.clone(),
                None => central.inventory()?.get(old_node).cloned(),
            };
            if let Some(old) = fresh {
                let mut record = old.record.clone();
                if let Some(gone) = record.workloads.remove(&key.to_string()) {
                    record.allocated.sub(gone.allocation);
                    ops.push(Op::set(layout.inventory(old_node), &record, old.version)?);
                }
            }
        }
        ops.push(Op::Check {
            path: layout.pool(pool),
            version: -1,
        });
        ops.extend(extra.ops.iter().cloned());

        match central.store.commit(&ops, fence).await {
            Ok(()) => return Ok(records),
            Err(e) if e.is_race() => {
                let path = match &e {
                    StoreError::Conflict { path, .. } => path.clone(),
                    _ => String::new(),
                };
                tracing::debug!(attempt, %path, "placement lost a race; re-reading");
                if path.starts_with(&layout.inventory_root()) {
                    let node = path.rsplit('/').next().unwrap_or_default().to_string();
                    overlay.insert(
                        node.clone(),
                        central.fresh_inventory(&node).await?.map(Arc::new),
                    );
                } else if let Some(node) = assignment_node(layout, &path) {
                    tracing::info!(%node, %path, "an assignment of this name is still on the node (purge pending); avoiding it");
                    avoid.insert(node);
                } else if path == layout.pool(pool) {
                    if central.store.pool(pool).await?.is_none() {
                        return Err(ApiError::not_found(format!("pool {pool} does not exist")));
                    }
                    // The pool record changed since its SSH keys were read: the caller re-reads.
                    return Err(ApiError::new(
                        warp::http::StatusCode::SERVICE_UNAVAILABLE,
                        "contention",
                        format!("pool {pool} changed meanwhile (its SSH keys?); retry"),
                    ));
                } else {
                    return Err(e.into());
                }
                // Random pause so racing instances do not collide in lockstep.
                tokio::time::sleep(std::time::Duration::from_millis(
                    rand::random_range(0..5) * (attempt as u64 + 1),
                ))
                .await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        warp::http::StatusCode::SERVICE_UNAVAILABLE,
        "contention",
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
) -> Result<(), ApiError> {
    let layout = &central.store.layout;
    let key = WorkloadKey::new(pool, name);
    for _ in 0..MAX_ATTEMPTS {
        let (record, stat) = central.store.container(pool, name).await?.ok_or_else(|| {
            ApiError::not_found(format!("container {name} not found in pool {pool}"))
        })?;
        let mut ops = vec![Op::Delete {
            path: layout.container(pool, name),
            version: Some(stat.version),
        }];
        let assignment = layout.assignment(&record.node, &key);
        let existing = central.store.get::<serde_json::Value>(&assignment).await?;
        if purge {
            let purge_it = Assignment::purge(record.spec.clone());
            match existing {
                Some((_, s)) => ops.push(Op::set(assignment, &purge_it, s.version)?),
                None => {
                    central
                        .store
                        .ensure(&layout.assign_dir(&record.node))
                        .await?;
                    ops.push(Op::create(assignment, &purge_it)?);
                }
            }
        } else if let Some((_, s)) = existing {
            ops.push(Op::Delete {
                path: assignment,
                version: Some(s.version),
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
    Err(ApiError::new(
        warp::http::StatusCode::SERVICE_UNAVAILABLE,
        "contention",
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
) -> Result<ContainerRecord, ApiError> {
    let layout = &central.store.layout;
    let pool = record.spec.pool.clone();
    let key = WorkloadKey::new(&pool, &record.spec.name);
    let constraints = record
        .constraints
        .iter()
        .map(|c| Constraint::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid("constraints", e.to_string()))?;
    // Only a rich workload carries the pool's keys (read under a version check).
    let mut pool_check = None;
    let mut ssh_keys = Vec::new();
    if record.spec.rich {
        if let Some((p, stat)) = central.store.pool(&pool).await? {
            pool_check = Some(Op::Check {
                path: layout.pool(&pool),
                version: stat.version,
            });
            ssh_keys = p.ssh_keys;
        }
    }
    let want = Want {
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
    let mut extra = Extra {
        leaving: Some((record.node.clone(), key.clone())),
        record_version: Some(record_version),
        created_at: record.created_at,
        ..Default::default()
    };
    extra.ops.extend(pool_check);
    let old_assignment = layout.assignment(&record.node, &key);
    if let Some((_, s)) = central
        .store
        .get::<serde_json::Value>(&old_assignment)
        .await?
    {
        extra.ops.push(Op::Delete {
            path: old_assignment,
            version: Some(s.version),
        });
    }
    let mut moved = place_and_commit(central, &pool, &[want], extra, fence).await?;
    moved.pop().ok_or_else(|| {
        ApiError::new(
            warp::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no record",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
