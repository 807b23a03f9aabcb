//! Unit tests of the scheduler, with small builders for nodes and requests.

mod explain;
mod placement;
mod sampling;

use caas_api::network::NetworkDriver;
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
        drivers: vec![NetworkDriver::Vxlan, NetworkDriver::Bridge],
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
        drivers: Vec::new(),
        pinned: None,
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

#[test]
fn networks_need_a_node_that_carries_them_and_bridge_networks_stay_on_their_node() {
    let mut no_vxlan = node("a", "p", 4000, 8);
    no_vxlan.drivers = vec![NetworkDriver::Bridge];
    let nodes = vec![no_vxlan, node("b", "p", 4000, 8), node("c", "p", 4000, 8)];
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut req = request("p", 100, 1);
    req.drivers = vec![NetworkDriver::Vxlan];
    for _ in 0..20 {
        let chosen = crate::scheduler::place(&req, &nodes, &mut rng).unwrap();
        assert_ne!(nodes[chosen.node].id, "a");
    }
    req.drivers = vec![NetworkDriver::Bridge];
    req.pinned = Some(("lan".into(), "c".into()));
    let chosen = crate::scheduler::place(&req, &nodes, &mut rng).unwrap();
    assert_eq!(nodes[chosen.node].id, "c");
    req.drivers = vec![NetworkDriver::Vxlan];
    req.pinned = Some(("lan".into(), "a".into()));
    let why = crate::scheduler::place(&req, &nodes, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(why.contains("cannot carry vxlan networks"), "{why}");
    assert!(why.contains("bridge network lan lives on node a"), "{why}");
}
