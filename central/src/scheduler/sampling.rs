//! Candidate sampling: how many feasible nodes to score, and the walk that finds them.

use super::filter::hard_filters;
use super::model::{NodeView, PlacementRequest, Strategy};
use super::score::{score, Candidate};

/// How many feasible nodes a placement scores before it stops looking.
///
/// Scoring every node costs O(N) per placement; scoring a random handful (Nomad scores about
/// log2 N, kube-scheduler a percentage) is nearly as good because any of the near-best nodes is
/// fine. Binpack needs more candidates than Spread: Spread only has to avoid crowded nodes,
/// which most random nodes are not, whereas Binpack has to find the few partly-filled nodes among
/// many empty ones, or it opens new nodes too early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplingConfig {
    /// Never score fewer feasible nodes than this.
    pub min_candidates: usize,
    /// Feasible nodes to score per log2(N) nodes with `Strategy::Spread`.
    pub spread_per_log2: usize,
    /// Feasible nodes to score per log2(N) nodes with `Strategy::Binpack`.
    pub binpack_per_log2: usize,
}

impl Default for SamplingConfig {
    /// Tuned with `cargo bench -p caas-central --bench scheduler` (10,000 nodes, 100,000
    /// placements); see the report printed there.
    fn default() -> Self {
        Self {
            min_candidates: 8,
            spread_per_log2: 2,
            binpack_per_log2: 8,
        }
    }
}

impl SamplingConfig {
    /// Feasible nodes to find before picking the best, for a list of `nodes` nodes.
    pub fn candidates(&self, nodes: usize, strategy: Strategy) -> usize {
        let per_log2 = match strategy {
            Strategy::Spread => self.spread_per_log2,
            Strategy::Binpack => self.binpack_per_log2,
        };
        // ceil(log2 N), at least 1.
        let log2 = (usize::BITS - nodes.saturating_sub(1).leading_zeros()).max(1) as usize;
        self.min_candidates.max(per_log2.saturating_mul(log2))
    }
}

/// Walks `nodes` from `start`, wrapping around, until `wanted` feasible nodes were found or every
/// node was seen, and returns the best one.
///
/// Anti-affinity is a hard filter only while it can be satisfied: nodes already running a
/// replica of the app do not count as feasible, but the least-loaded of them is remembered. If
/// the walk covers the whole list without any other feasible node, that fallback is returned
/// instead of failing, because a replica sharing a node is better than a replica not running at
/// all (the user asked for N replicas; anti-affinity is about failure domains, not correctness).
/// The fallback can only be taken after a full walk, so it never hides a free node.
pub(crate) fn walk(
    req: &PlacementRequest,
    nodes: &[NodeView],
    start: usize,
    wanted: usize,
) -> Option<Candidate> {
    let mut best: Option<Candidate> = None;
    let mut fallback: Option<Candidate> = None;
    let mut found = 0;
    let order = (start..nodes.len()).chain(0..start.min(nodes.len()));
    for index in order {
        let Some(node) = nodes.get(index) else {
            continue;
        };
        let Ok(replicas) = hard_filters(req, node) else {
            continue;
        };
        let candidate = Candidate {
            index,
            replicas,
            score: score(req, node),
        };
        let slot = if replicas == 0 {
            &mut best
        } else {
            &mut fallback
        };
        if slot.as_ref().is_none_or(|b| candidate.beats(b, nodes)) {
            *slot = Some(candidate);
        }
        if replicas == 0 {
            found += 1;
            if found >= wanted {
                break;
            }
        }
    }
    best.or(fallback)
}
