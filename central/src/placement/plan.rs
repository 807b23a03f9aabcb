//! Pure placement planning: from a snapshot of the pool's nodes and the wanted workloads to the
//! exact list of operations one atomic commit must make (container records, assignments, the
//! touched nodes' inventory records). No store, no clock, no global randomness: everything it
//! reads is passed in, so it is tested without any store.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use caas_api::central::{
    Allocation, ContainerRecord, Liveness, NodeRecord, PlacedWorkload, Placement,
};
use caas_api::network::IpAllocation;
use caas_api::{Assignment, NodeInfo, WorkloadKey, WorkloadSpec, ZkLayout};
use rand::Rng;

use crate::decoded::{apps_of, view_of, PoolNodes, VersionedNode};
use crate::error::CentralError;
use crate::scheduler::{self, Constraint, NodeView, PlacementRequest, Resources, Strategy};
use crate::store::Op;

/// One workload to place.
#[derive(Debug, Clone)]
pub struct Want {
    pub spec: WorkloadSpec,
    pub app: String,
    pub constraints: Vec<Constraint>,
    pub strategy: Strategy,
    /// The pool's SSH keys, handed to the agent with a rich workload's assignment.
    pub ssh_keys: Vec<String>,
    /// The node a bridge network of the workload lives on: `(network, node)`.
    pub pinned: Option<(String, String)>,
}

/// Whether the placement creates workloads or moves one that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// New records are created (a create request).
    Create,
    /// The one wanted workload leaves `from`: its record (at `record_version`) is updated in
    /// place, keeping `created_at`, its share of `from` is released, and its address
    /// allocations (at `ip_versions`, one per endpoint) now name the new node.
    Move {
        from: String,
        key: WorkloadKey,
        record_version: i32,
        created_at: u64,
        ip_versions: Vec<i32>,
    },
}

impl Intent {
    fn leaving(&self) -> Option<&str> {
        match self {
            Intent::Create => None,
            Intent::Move { from, .. } => Some(from),
        }
    }
}

/// What planning reads: the pool's nodes as the caches show them, corrected by what the commit
/// loop learnt from lost races.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: Arc<PoolNodes>,
    /// Inventory records re-read after a lost race (`None`: the record does not exist).
    pub fresh: BTreeMap<String, Option<Arc<VersionedNode>>>,
    /// Nodes that still hold an assignment of a wanted name (a purge not yet carried out).
    pub avoid: BTreeSet<String>,
    /// The inventory record of the node a moved workload leaves (it may be lost, so it is
    /// not among `nodes`).
    pub leaving: Option<Arc<VersionedNode>>,
}

/// The result of planning: the operations of one atomic commit and what they record.
#[derive(Debug, Clone)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub records: Vec<ContainerRecord>,
    /// Assignment directories that must exist before the commit (first workload on a node).
    pub dirs: Vec<String>,
}

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

fn new_node_record(info: &NodeInfo, now: u64) -> NodeRecord {
    NodeRecord {
        version: caas_api::PAYLOAD_VERSION,
        info: info.clone(),
        allocated: Allocation::default(),
        workloads: BTreeMap::new(),
        liveness: Liveness::Ready,
        since: now,
    }
}

/// Places every want (all of `pool`) on the snapshot's nodes and lists the operations that
/// commit the result atomically: per want its record and assignment, per touched node its
/// inventory record (version-checked), the left node's release for a move, a check that the
/// pool still exists, then `extra_ops`.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    layout: &ZkLayout,
    pool: &str,
    wants: &[Want],
    intent: &Intent,
    extra_ops: &[Op],
    snapshot: &Snapshot,
    rng: &mut impl Rng,
    now: u64,
) -> Result<Plan, CentralError> {
    let nodes = &snapshot.nodes;
    let record_of = |i: usize| -> Option<Arc<VersionedNode>> {
        match snapshot.fresh.get(&nodes.infos[i].node_id) {
            Some(fresh) => fresh.clone(),
            None => nodes.records[i].clone(),
        }
    };
    // Borrowed from the shared snapshot; copied only if this plan has to change a view.
    let mut views: Cow<[NodeView]> = Cow::Borrowed(&nodes.views);
    for (i, info) in nodes.infos.iter().enumerate() {
        if Some(info.node_id.as_str()) == intent.leaving() || snapshot.avoid.contains(&info.node_id)
        {
            views.to_mut()[i].ready = false;
        } else if snapshot.fresh.contains_key(&info.node_id) {
            let record = record_of(i);
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
            drivers: want.spec.networks.iter().map(|e| e.driver).collect(),
            pinned: want.pinned.clone(),
        };
        let chosen = scheduler::place(&request, &views, rng).map_err(|why| {
            CentralError::unschedulable(format!("cannot place {}: {why}", want.spec.name))
        })?;
        let i = chosen.node;
        let info = &nodes.infos[i];
        let (node_record, _) = touched.entry(i).or_insert_with(|| match record_of(i) {
            Some(v) => (v.record.clone(), Some(v.version)),
            None => (new_node_record(info, now), None),
        });
        let key = WorkloadKey::new(pool, &want.spec.name);
        node_record.allocated.add(alloc);
        node_record.workloads.insert(
            key.to_string(),
            PlacedWorkload {
                app: want.app.clone(),
                allocation: alloc,
            },
        );
        if n + 1 < wants.len() {
            views.to_mut()[i] = view_of(info, Some(node_record), apps_of(node_record));
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
            created_at: match intent {
                Intent::Move { created_at, .. } if *created_at > 0 => *created_at,
                _ => now,
            },
        };
        let record_path = layout.container(pool, &want.spec.name);
        ops.push(match intent {
            Intent::Move { record_version, .. } => Op::set(record_path, &record, *record_version)?,
            Intent::Create => Op::create(record_path, &record)?,
        });
        ops.push(Op::create(
            layout.assignment(&info.node_id, &key),
            &Assignment::run_with_keys(want.spec.clone(), &want.ssh_keys),
        )?);
        for (e, endpoint) in want.spec.networks.iter().enumerate() {
            let path = layout.ip(pool, &endpoint.network, &endpoint.ip);
            let allocation = IpAllocation {
                version: caas_api::PAYLOAD_VERSION,
                ip: endpoint.ip.clone(),
                mac: endpoint.mac.clone(),
                workload: want.spec.name.clone(),
                node: info.node_id.clone(),
                service: endpoint.service.clone(),
            };
            ops.push(match intent {
                Intent::Move { ip_versions, .. } => {
                    let version = ip_versions.get(e).copied().ok_or_else(|| {
                        CentralError::internal(format!("no allocation version for {path}"))
                    })?;
                    Op::set(path, &allocation, version)?
                }
                Intent::Create => Op::create(path, &allocation)?,
            });
        }
        records.push(record);
    }
    let mut dirs = Vec::new();
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
                dirs.push(layout.assign_dir(&info.node_id));
                Op::create(path, &record)?
            }
        });
    }
    if let (Intent::Move { from, key, .. }, Some(old)) = (intent, &snapshot.leaving) {
        let mut record = old.record.clone();
        if let Some(gone) = record.workloads.remove(&key.to_string()) {
            record.allocated.sub(gone.allocation);
            ops.push(Op::set(layout.inventory(from), &record, old.version)?);
        }
    }
    ops.push(Op::exists(layout.pool(pool)));
    ops.extend(extra_ops.iter().cloned());
    Ok(Plan { ops, records, dirs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_api::Capacity;
    use rand::SeedableRng;

    fn info(id: &str) -> Arc<NodeInfo> {
        Arc::new(NodeInfo {
            version: caas_api::PAYLOAD_VERSION,
            node_id: id.into(),
            pool: "p".into(),
            api_addr: "127.0.0.1:1".into(),
            underlay: None,
            capacity: Capacity {
                cpu_millis: 1000,
                memory_bytes: 1 << 30,
            },
            labels: BTreeMap::new(),
            agent_version: "t".into(),
            hostname: id.into(),
            started_at: 0,
            engine_ready: true,
            networks: Default::default(),
        })
    }

    fn nodes(records: Vec<(&str, Option<VersionedNode>)>) -> Arc<PoolNodes> {
        let mut out = PoolNodes::default();
        for (id, record) in records {
            let info = info(id);
            let apps = record.as_ref().map(|r| r.apps.clone()).unwrap_or_default();
            out.views
                .push(view_of(&info, record.as_ref().map(|r| &r.record), apps));
            out.infos.push(info);
            out.records.push(record.map(Arc::new));
        }
        Arc::new(out)
    }

    fn want(name: &str, cpu: &str) -> Want {
        let spec: WorkloadSpec = serde_json::from_value(serde_json::json!({
            "pool": "p", "name": name, "image": "i", "resources": {"cpu": cpu, "memory": "64Mi"}
        }))
        .unwrap();
        Want {
            spec,
            app: name.into(),
            constraints: Vec::new(),
            strategy: Strategy::Spread,
            ssh_keys: Vec::new(),
            pinned: None,
        }
    }

    fn layout() -> ZkLayout {
        ZkLayout::new("/caas").unwrap()
    }

    fn run(snapshot: &Snapshot, wants: &[Want], intent: &Intent) -> Result<Plan, CentralError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        plan(&layout(), "p", wants, intent, &[], snapshot, &mut rng, 42)
    }

    fn paths(plan: &Plan) -> Vec<(&'static str, &str)> {
        plan.ops
            .iter()
            .map(|op| {
                let kind = match op {
                    Op::Create { .. } => "create",
                    Op::Set { .. } => "set",
                    Op::Delete { .. } => "delete",
                    Op::Check { .. } => "check",
                };
                (kind, op.path())
            })
            .collect()
    }

    #[test]
    fn a_create_on_a_new_node_writes_record_assignment_inventory_and_checks_the_pool() {
        let snapshot = Snapshot {
            nodes: nodes(vec![("n1", None)]),
            ..Default::default()
        };
        let plan = run(&snapshot, &[want("web", "100m")], &Intent::Create).unwrap();
        assert_eq!(
            paths(&plan),
            vec![
                ("create", "/caas/pools/p/containers/web"),
                ("create", "/caas/assign/n1/p.web"),
                ("create", "/caas/inventory/n1"),
                ("check", "/caas/pools/p"),
            ]
        );
        assert_eq!(plan.dirs, vec!["/caas/assign/n1".to_string()]);
        assert_eq!(plan.records[0].created_at, 42);
    }

    #[test]
    fn replicas_see_each_other_and_nothing_overcommits() {
        let snapshot = Snapshot {
            nodes: nodes(vec![("n1", None), ("n2", None)]),
            ..Default::default()
        };
        let wants: Vec<Want> = (1..=4).map(|i| want(&format!("w-{i}"), "500m")).collect();
        let plan = run(&snapshot, &wants, &Intent::Create).unwrap();
        let per_node: Vec<&str> = plan.records.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(per_node.iter().filter(|n| **n == "n1").count(), 2);
        assert_eq!(per_node.iter().filter(|n| **n == "n2").count(), 2);
        let five: Vec<Want> = (1..=5).map(|i| want(&format!("w-{i}"), "500m")).collect();
        assert!(matches!(
            run(&snapshot, &five, &Intent::Create),
            Err(CentralError::Unschedulable(_))
        ));
    }

    #[test]
    fn a_record_reread_after_a_race_replaces_the_cached_one() {
        let mut full = new_node_record(&info("n1"), 0);
        full.allocated.cpu_millis = 1000;
        let snapshot = Snapshot {
            nodes: nodes(vec![("n1", None), ("n2", None)]),
            fresh: [(
                "n1".to_string(),
                Some(Arc::new(VersionedNode::new(full, 3))),
            )]
            .into(),
            ..Default::default()
        };
        let plan = run(&snapshot, &[want("web", "100m")], &Intent::Create).unwrap();
        assert_eq!(plan.records[0].node, "n2", "n1 is full in the fresh record");
        let avoid = Snapshot {
            nodes: nodes(vec![("n1", None), ("n2", None)]),
            avoid: ["n2".to_string()].into(),
            ..Default::default()
        };
        let plan = run(&avoid, &[want("web", "100m")], &Intent::Create).unwrap();
        assert_eq!(plan.records[0].node, "n1", "n2 still holds a purge of web");
    }

    #[test]
    fn a_move_updates_the_record_and_releases_the_node_it_leaves() {
        let key = WorkloadKey::new("p", "web");
        let mut old = new_node_record(&info("n1"), 0);
        let alloc = allocation_of(&want("web", "100m").spec);
        old.allocated.add(alloc);
        old.workloads.insert(
            key.to_string(),
            PlacedWorkload {
                app: "web".into(),
                allocation: alloc,
            },
        );
        let old = Arc::new(VersionedNode::new(old, 5));
        let snapshot = Snapshot {
            nodes: nodes(vec![("n1", Some((*old).clone())), ("n2", None)]),
            leaving: Some(old),
            ..Default::default()
        };
        let intent = Intent::Move {
            from: "n1".into(),
            key,
            record_version: 9,
            created_at: 7,
            ip_versions: Vec::new(),
        };
        let plan = run(&snapshot, &[want("web", "100m")], &intent).unwrap();
        assert_eq!(
            plan.records[0].node, "n2",
            "never back onto the node it leaves"
        );
        assert_eq!(plan.records[0].created_at, 7);
        assert!(matches!(&plan.ops[0], Op::Set { version: 9, .. }));
        let release = plan
            .ops
            .iter()
            .find(|op| op.path() == "/caas/inventory/n1")
            .unwrap();
        let Op::Set { data, version, .. } = release else {
            panic!("{release:?}")
        };
        assert_eq!(*version, 5);
        let released: NodeRecord = serde_json::from_slice(data).unwrap();
        assert_eq!(released.allocated.cpu_millis, 0);
        assert!(released.workloads.is_empty());
    }
}
