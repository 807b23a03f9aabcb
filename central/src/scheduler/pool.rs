//! Grouping nodes by pool, so a placement only walks its own pool's nodes.
//!
//! The scheduler filters by pool itself, so passing the whole fleet is correct; but every
//! other-pool node still costs a string comparison during the walk, and with many pools the
//! walk would cover several times more nodes to find its candidates. Central builds its node
//! views from the flat `/caas/nodes` registrations, so it should group them once per refresh
//! with [`group_by_pool`] and pass only the request's pool to `place`.

use std::collections::BTreeMap;

use super::model::NodeView;

/// Pool name -> that pool's nodes, in their original relative order. `Placement::node` indexes
/// into the pool's vector.
pub fn group_by_pool(nodes: impl IntoIterator<Item = NodeView>) -> BTreeMap<String, Vec<NodeView>> {
    let mut pools: BTreeMap<String, Vec<NodeView>> = BTreeMap::new();
    for node in nodes {
        pools.entry(node.pool.clone()).or_default().push(node);
    }
    pools
}
