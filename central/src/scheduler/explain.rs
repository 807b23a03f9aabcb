//! `Unschedulable`: why no node of the pool can take a request, as grouped reason counts.

use std::collections::BTreeMap;
use std::fmt;

use super::filter::{hard_filters, Reason};
use super::model::{NodeView, PlacementRequest};

/// No node fits. Mentions only nodes of the request's pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unschedulable {
    pub pool: String,
    /// Nodes of the request's pool that were checked.
    pub considered: usize,
    /// Reason text -> number of nodes that failed for that reason first.
    pub reasons: BTreeMap<String, usize>,
}

impl std::error::Error for Unschedulable {}

impl Unschedulable {
    /// Explains a request no node fits, checking every node of `nodes` (the failure path only:
    /// a successful placement never pays for formatting reasons).
    pub(crate) fn explain(req: &PlacementRequest, nodes: &[NodeView]) -> Self {
        // Counted by `Reason` first and formatted once per distinct reason, not once per node.
        let mut counts: BTreeMap<Reason, usize> = BTreeMap::new();
        let mut considered = 0;
        for node in nodes {
            let reason = match hard_filters(req, node) {
                Err(Reason::OtherPool) => continue,
                Err(reason) => reason,
                // Unreachable from `place`, which would have chosen such a node (softly, for
                // anti-affinity); handled so that the explanation is right on its own.
                Ok(0) => {
                    considered += 1;
                    continue;
                }
                Ok(_) => Reason::AntiAffinity,
            };
            considered += 1;
            *counts.entry(reason).or_default() += 1;
        }
        let reasons = counts
            .into_iter()
            .map(|(reason, n)| (reason.describe(req).to_string(), n))
            .collect();
        Self {
            pool: req.pool.clone(),
            considered,
            reasons,
        }
    }

    fn only_not_ready(&self) -> bool {
        let not_ready = self.reasons.get("node not ready").copied().unwrap_or(0);
        not_ready == self.reasons.values().sum::<usize>()
    }
}

impl fmt::Display for Unschedulable {
    /// `no node fits: 3 nodes: not enough memory; 2 nodes: label rack!=r1`, biggest group
    /// first, or `no node fits: pool p1 has no ready nodes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no node fits: ")?;
        if self.considered == 0 || self.only_not_ready() {
            return write!(f, "pool {} has no ready nodes", self.pool);
        }
        let mut groups: Vec<(&String, usize)> = self.reasons.iter().map(|(r, n)| (r, *n)).collect();
        groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        for (i, (reason, n)) in groups.into_iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let noun = if n == 1 { "node" } else { "nodes" };
            write!(f, "{n} {noun}: {reason}")?;
        }
        Ok(())
    }
}
