//! The central scheduler: a pure function from a request and the nodes of a pool to a placement
//! or an explanation. No I/O; callers build `NodeView`s from ZooKeeper and commit the result.
//!
//! A placement filters nodes (pool, readiness, cpu, memory, pids, label constraints,
//! anti-affinity), scores the feasible ones (spread or binpack) and picks the best. To stay
//! cheap on large fleets it does not scan every node: it walks the list from a random offset
//! until it has found enough feasible candidates (see [`SamplingConfig`]).

mod constraint;
mod explain;
mod filter;
mod model;
mod pool;
mod sampling;
mod score;

#[cfg(test)]
mod tests;

pub use constraint::{Constraint, ConstraintError, ConstraintOp};
pub use explain::Unschedulable;
pub use filter::{check_node, Reason};
pub use model::{NodeView, Placement, PlacementRequest, Resources, Strategy};
pub use pool::group_by_pool;
pub use sampling::SamplingConfig;

use rand::Rng;

use sampling::walk;
use score::Candidate;

/// Places `req` with the default sampling.
pub fn place(
    req: &PlacementRequest,
    nodes: &[NodeView],
    rng: &mut impl Rng,
) -> Result<Placement, Unschedulable> {
    place_with(req, nodes, rng, SamplingConfig::default())
}

/// Places `req`, scoring about `config.candidates(..)` feasible nodes found by walking `nodes`
/// from a random offset (`config.start(..)`). The walk is contiguous rather than a shuffle so
/// that a placement allocates nothing; node order carries no meaning (ids are unrelated to
/// size or labels), so a random start over a fixed order samples as well as a shuffle.
pub fn place_with(
    req: &PlacementRequest,
    nodes: &[NodeView],
    rng: &mut impl Rng,
    config: SamplingConfig,
) -> Result<Placement, Unschedulable> {
    if nodes.is_empty() {
        return Err(Unschedulable::explain(req, nodes));
    }
    let start = config.start(nodes.len(), req.strategy, rng);
    let wanted = config.candidates(nodes.len(), req.strategy);
    finish(req, nodes, walk(req, nodes, start, wanted))
}

/// The naive reference: scores every feasible node and picks the best. O(N) per placement; used
/// by tests and the benchmark to judge the sampling's quality.
pub fn place_full_scan(
    req: &PlacementRequest,
    nodes: &[NodeView],
) -> Result<Placement, Unschedulable> {
    finish(req, nodes, walk(req, nodes, 0, usize::MAX))
}

fn finish(
    req: &PlacementRequest,
    nodes: &[NodeView],
    best: Option<Candidate>,
) -> Result<Placement, Unschedulable> {
    let chosen = best.and_then(|c| nodes.get(c.index).map(|node| (c, node)));
    match chosen {
        Some((c, node)) => Ok(Placement {
            node: c.index,
            node_id: node.id.clone(),
            score: c.score,
        }),
        // Only reached after a walk over every node, so the explanation covers all of them.
        None => Err(Unschedulable::explain(req, nodes)),
    }
}
