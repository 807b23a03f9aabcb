//! Scoring of feasible nodes (spread or binpack) and the total order used to pick the best.

use std::cmp::Ordering;

use super::model::{NodeView, PlacementRequest, Strategy};

/// Fraction of `capacity` in use after adding the request. A zero capacity counts as full so
/// such a node is never the "emptiest" (it can only be feasible for a zero request anyway).
#[inline]
fn used_fraction(allocated: u64, request: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        return 1.0;
    }
    allocated.saturating_add(request) as f64 / capacity as f64
}

/// Higher is better. Both strategies look at the node *after* placement, averaging cpu and
/// memory so that neither dimension alone decides (pids are rarely the bottleneck).
#[inline]
pub(crate) fn score(req: &PlacementRequest, node: &NodeView) -> f64 {
    let (cap, used, want) = (&node.capacity, &node.allocated, &req.request);
    let cpu = used_fraction(used.cpu_millis, want.cpu_millis, cap.cpu_millis);
    let mem = used_fraction(used.memory_bytes, want.memory_bytes, cap.memory_bytes);
    let utilisation = (cpu + mem) / 2.0;
    match req.strategy {
        Strategy::Spread => 1.0 - utilisation,
        Strategy::Binpack => utilisation,
    }
}

/// A scored feasible node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub index: usize,
    /// Replicas of the request's app already on the node; 0 unless anti-affinity fell back.
    pub replicas: u32,
    pub score: f64,
}

impl Candidate {
    /// Whether `self` beats `other`: fewer replicas of the same app first (keeps replicas apart
    /// even when anti-affinity had to give up), then the higher score, then the smaller node id
    /// so that results do not depend on the walk order and tests are stable.
    #[inline]
    pub fn beats(&self, other: &Candidate, nodes: &[NodeView]) -> bool {
        let order = other
            .replicas
            .cmp(&self.replicas)
            .then(self.score.total_cmp(&other.score))
            .then_with(|| nodes[other.index].id.cmp(&nodes[self.index].id));
        order == Ordering::Greater
    }
}
