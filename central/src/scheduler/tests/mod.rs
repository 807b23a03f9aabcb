//! Unit tests of the scheduler, with small builders for nodes and requests.

mod explain;
mod placement;
mod sampling;

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Constraint, NodeView, Placement, PlacementRequest, Resources, Strategy};

const GIB: u64 = 1 << 30;

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn res(cpu_millis: u64, memory_gib: u64) -> Resources {
    Resources {
        cpu_millis,
        memory_bytes: memory_gib * GIB,
        pids: 0,
    }
}

fn node(id: &str, pool: &str, cpu_millis: u64, memory_gib: u64) -> NodeView {
    NodeView {
        id: id.to_string(),
        pool: pool.to_string(),
        ready: true,
        capacity: res(cpu_millis, memory_gib),
        allocated: Resources::default(),
        labels: BTreeMap::new(),
        apps: BTreeMap::new(),
    }
}

fn labelled(mut n: NodeView, labels: &[(&str, &str)]) -> NodeView {
    for (k, v) in labels {
        n.labels.insert(k.to_string(), v.to_string());
    }
    n
}

fn request(pool: &str, cpu_millis: u64, memory_gib: u64) -> PlacementRequest {
    PlacementRequest {
        pool: pool.to_string(),
        request: res(cpu_millis, memory_gib),
        constraints: Vec::new(),
        app: None,
        strategy: Strategy::Spread,
    }
}

fn constraints(texts: &[&str]) -> Vec<Constraint> {
    texts
        .iter()
        .map(|t| Constraint::parse(t).unwrap())
        .collect()
}

/// What central does after committing a placement: account the workload on its node.
fn commit(nodes: &mut [NodeView], req: &PlacementRequest, placement: &Placement) {
    let n = &mut nodes[placement.node];
    n.allocated.cpu_millis += req.request.cpu_millis;
    n.allocated.memory_bytes += req.request.memory_bytes;
    n.allocated.pids += req.request.pids;
    if let Some(app) = &req.app {
        *n.apps.entry(app.clone()).or_default() += 1;
    }
}

/// Places `count` copies of `req` one after the other, returning the chosen node ids.
fn place_many(nodes: &mut [NodeView], req: &PlacementRequest, count: usize) -> Vec<String> {
    let mut rng = rng();
    (0..count)
        .map(|_| {
            let p = super::place(req, nodes, &mut rng).unwrap();
            commit(nodes, req, &p);
            p.node_id
        })
        .collect()
}

fn per_node(ids: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(id.clone()).or_default() += 1;
    }
    counts
}
