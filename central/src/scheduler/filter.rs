//! Feasibility filters: why a node cannot take a request, checked in a fixed order.

use std::fmt;

use caas_api::network::NetworkDriver;

use super::model::{NodeView, PlacementRequest};

/// The first filter a node fails. The order of the variants is the order of the checks, so each
/// node is counted under exactly one reason in an explanation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Reason {
    /// The node belongs to another pool. Never shown to users: a tenant must not learn about
    /// other pools' nodes.
    OtherPool,
    NotReady,
    NotEnoughCpu,
    NotEnoughMemory,
    NotEnoughPids,
    /// The node's agent cannot wire this kind of network.
    CannotCarry(NetworkDriver),
    /// A bridge network the request joins lives on another node.
    PinnedElsewhere,
    /// The request's constraint at this index is not satisfied.
    Constraint(usize),
    /// The node already runs a replica of the request's app.
    AntiAffinity,
}

impl Reason {
    /// The user-facing text, e.g. `not enough memory` or `label rack!=r1`.
    pub fn describe<'a>(&'a self, req: &'a PlacementRequest) -> impl fmt::Display + 'a {
        Describe { reason: self, req }
    }
}

struct Describe<'a> {
    reason: &'a Reason,
    req: &'a PlacementRequest,
}

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Reason::OtherPool => f.write_str("node in another pool"),
            Reason::NotReady => f.write_str("node not ready"),
            Reason::NotEnoughCpu => f.write_str("not enough cpu"),
            Reason::NotEnoughMemory => f.write_str("not enough memory"),
            Reason::NotEnoughPids => f.write_str("not enough pids"),
            Reason::CannotCarry(NetworkDriver::Vlan) => f.write_str(
                "cannot carry vlan networks (no `uplink` in its agent.toml, or its kernel lacks \
                 802.1Q or ebtables; `caas node inspect` shows what its agent found)",
            ),
            Reason::CannotCarry(driver) => {
                write!(f, "cannot carry {} networks", driver.as_str())
            }
            Reason::PinnedElsewhere => match &self.req.pinned {
                Some((network, node)) => {
                    write!(f, "bridge network {network} lives on node {node}")
                }
                None => f.write_str("bridge network lives elsewhere"),
            },
            Reason::Constraint(i) => match self.req.constraints.get(*i) {
                Some(c) => write!(f, "label {c}"),
                None => f.write_str("label constraint"),
            },
            Reason::AntiAffinity => match &self.req.app {
                Some(app) => write!(f, "already runs a replica of {app}"),
                None => f.write_str("already runs a replica"),
            },
        }
    }
}

/// Every filter except anti-affinity. On success returns how many replicas of the request's app
/// the node already runs, because anti-affinity is only a hard filter while it can be
/// satisfied (see `walk`), so the caller decides.
#[inline]
pub(crate) fn hard_filters(req: &PlacementRequest, node: &NodeView) -> Result<u32, Reason> {
    if node.pool != req.pool {
        return Err(Reason::OtherPool);
    }
    if !node.ready {
        return Err(Reason::NotReady);
    }
    let (cap, used, want) = (&node.capacity, &node.allocated, &req.request);
    // saturating: `allocated` may exceed `capacity` after an operator shrank a node.
    if used.cpu_millis.saturating_add(want.cpu_millis) > cap.cpu_millis {
        return Err(Reason::NotEnoughCpu);
    }
    if used.memory_bytes.saturating_add(want.memory_bytes) > cap.memory_bytes {
        return Err(Reason::NotEnoughMemory);
    }
    if cap.pids > 0 && used.pids.saturating_add(want.pids) > cap.pids {
        return Err(Reason::NotEnoughPids);
    }
    if let Some(driver) = req.drivers.iter().find(|d| !node.drivers.contains(d)) {
        return Err(Reason::CannotCarry(*driver));
    }
    if let Some((_, pinned)) = &req.pinned {
        if *pinned != node.id {
            return Err(Reason::PinnedElsewhere);
        }
    }
    if let Some(i) = req
        .constraints
        .iter()
        .position(|c| !c.matches(&node.labels))
    {
        return Err(Reason::Constraint(i));
    }
    Ok(match &req.app {
        Some(app) => node.apps.get(app).copied().unwrap_or(0),
        None => 0,
    })
}

/// All filters with anti-affinity as a hard filter: why this one node cannot take the request
/// in the normal case. Useful to explain a single node (`caas node explain`-style).
pub fn check_node(req: &PlacementRequest, node: &NodeView) -> Result<(), Reason> {
    match hard_filters(req, node)? {
        0 => Ok(()),
        _ => Err(Reason::AntiAffinity),
    }
}
