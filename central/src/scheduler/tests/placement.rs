//! Placement behaviour: strategies, constraints, anti-affinity, pools and readiness.

use super::super::{group_by_pool, place, place_full_scan, Strategy};
use super::{commit, constraints, labelled, node, per_node, place_many, request, rng};

#[test]
fn spread_distributes_evenly_across_equal_nodes() {
    let mut nodes = vec![
        node("n1", "p1", 4000, 8),
        node("n2", "p1", 4000, 8),
        node("n3", "p1", 4000, 8),
    ];
    let req = request("p1", 250, 1);
    let ids = place_many(&mut nodes, &req, 6);
    // Ties are broken by node id, so the order itself is stable.
    assert_eq!(ids, ["n1", "n2", "n3", "n1", "n2", "n3"]);
    assert!(per_node(&ids).values().all(|&n| n == 2));
}

#[test]
fn binpack_fills_one_node_before_the_next() {
    let mut nodes = vec![
        node("n1", "p1", 4000, 8),
        node("n2", "p1", 4000, 8),
        node("n3", "p1", 4000, 8),
    ];
    let mut req = request("p1", 1000, 2);
    req.strategy = Strategy::Binpack;
    let ids = place_many(&mut nodes, &req, 6);
    assert_eq!(ids, ["n1", "n1", "n1", "n1", "n2", "n2"]);
    assert_eq!(nodes[2].allocated, Default::default());
}

#[test]
fn binpack_prefers_the_fuller_node() {
    let mut nodes = vec![node("n1", "p1", 4000, 8), node("n2", "p1", 4000, 8)];
    nodes[1].allocated = super::res(2000, 4);
    let mut req = request("p1", 500, 1);
    req.strategy = Strategy::Binpack;
    assert_eq!(place(&req, &nodes, &mut rng()).unwrap().node_id, "n2");
    req.strategy = Strategy::Spread;
    assert_eq!(place(&req, &nodes, &mut rng()).unwrap().node_id, "n1");
}

#[test]
fn constraints_filter_nodes() {
    let nodes = vec![
        labelled(
            node("n1", "p1", 4000, 8),
            &[("rack", "r1"), ("ssd", "true")],
        ),
        labelled(node("n2", "p1", 4000, 8), &[("rack", "r2")]),
        node("n3", "p1", 4000, 8),
    ];
    let mut req = request("p1", 100, 1);
    let chosen = |req: &super::PlacementRequest| -> Vec<String> {
        let mut rng = rng();
        let mut ids: Vec<String> = (0..20)
            .map(|_| place(req, &nodes, &mut rng).unwrap().node_id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    req.constraints = constraints(&["rack==r1"]);
    assert_eq!(chosen(&req), ["n1"]);
    req.constraints = constraints(&["ssd==true", "rack!=r2"]);
    assert_eq!(chosen(&req), ["n1"]);
    // A node without the label passes `!=`.
    req.constraints = constraints(&["rack!=r1"]);
    req.strategy = Strategy::Binpack;
    let mut nodes2 = nodes.clone();
    nodes2[2].allocated = super::res(1000, 1);
    assert_eq!(place(&req, &nodes2, &mut rng()).unwrap().node_id, "n3");
    req.constraints = constraints(&["rack==r9"]);
    let err = place(&req, &nodes, &mut rng()).unwrap_err();
    assert_eq!(err.to_string(), "no node fits: 3 nodes: label rack==r9");
}

#[test]
fn anti_affinity_spreads_replicas_even_with_binpack() {
    let mut nodes = vec![
        node("n1", "p1", 8000, 16),
        node("n2", "p1", 8000, 16),
        node("n3", "p1", 8000, 16),
    ];
    let mut req = request("p1", 500, 1);
    req.strategy = Strategy::Binpack;
    req.app = Some("web".into());
    let ids = place_many(&mut nodes, &req, 3);
    assert_eq!(per_node(&ids).len(), 3, "{ids:?}");
    // Another app is not repelled by web's replicas: binpack stacks it on the fullest node.
    let mut other = req.clone();
    other.app = Some("db".into());
    let p = place(&other, &nodes, &mut rng()).unwrap();
    assert_eq!(nodes[p.node].apps.get("web"), Some(&1));
}

#[test]
fn anti_affinity_falls_back_to_the_node_with_fewest_replicas() {
    let mut nodes = vec![
        node("n1", "p1", 8000, 16),
        node("n2", "p1", 8000, 16),
        node("n3", "p1", 8000, 16),
    ];
    let mut req = request("p1", 500, 1);
    req.strategy = Strategy::Binpack;
    req.app = Some("web".into());
    // 3 nodes, 7 replicas: every node gets 2 before any gets 3, even though binpack would stack.
    let ids = place_many(&mut nodes, &req, 7);
    let counts = per_node(&ids);
    assert_eq!(
        counts
            .values()
            .copied()
            .collect::<Vec<_>>()
            .iter()
            .sum::<usize>(),
        7
    );
    assert!(counts.values().all(|&n| n == 2 || n == 3), "{counts:?}");
    for n in &nodes {
        assert!(n.apps["web"] >= 2);
    }
}

#[test]
fn anti_affinity_fallback_never_hides_a_free_node() {
    // n1 already runs web and is the only node binpack would like; n2 is free but nearly full.
    let mut nodes = vec![node("n1", "p1", 8000, 16), node("n2", "p1", 8000, 16)];
    nodes[0].apps.insert("web".into(), 1);
    nodes[0].allocated = super::res(1000, 1);
    nodes[1].allocated = super::res(100, 1);
    let mut req = request("p1", 500, 1);
    req.app = Some("web".into());
    req.strategy = Strategy::Binpack;
    assert_eq!(place(&req, &nodes, &mut rng()).unwrap().node_id, "n2");
    // The free node cannot take it: fall back to sharing rather than failing.
    nodes[1].ready = false;
    let p = place(&req, &nodes, &mut rng()).unwrap();
    assert_eq!(p.node_id, "n1");
    assert_eq!(place_full_scan(&req, &nodes).unwrap(), p);
}

#[test]
fn pools_never_mix() {
    let mut nodes = vec![
        node("a1", "pool-a", 1000, 2),
        node("b1", "pool-b", 64000, 256),
        node("a2", "pool-a", 1000, 2),
        node("b2", "pool-b", 64000, 256),
    ];
    nodes[0].allocated = super::res(900, 1);
    let req = request("pool-a", 500, 1);
    let mut rng = rng();
    for _ in 0..10 {
        let p = place(&req, &nodes, &mut rng).unwrap();
        assert_eq!(p.node_id, "a2");
    }
    let p = place(&req, &nodes, &mut rng).unwrap();
    commit(&mut nodes, &req, &p);
    commit(&mut nodes, &req, &p);
    // Pool A is full while pool B has plenty of room: unschedulable, and pool B is invisible.
    let err = place(&req, &nodes, &mut rng).unwrap_err();
    assert_eq!(err.considered, 2);
    assert_eq!(err.reasons.values().sum::<usize>(), 2);
    assert_eq!(err.to_string(), "no node fits: 2 nodes: not enough cpu");
    assert!(!err.to_string().contains("pool-b"));
    assert_eq!(place_full_scan(&req, &nodes).unwrap_err(), err);
}

#[test]
fn not_ready_nodes_are_skipped() {
    let mut nodes = vec![node("big", "p1", 64000, 256), node("small", "p1", 2000, 4)];
    nodes[0].ready = false;
    let mut rng = rng();
    for _ in 0..10 {
        assert_eq!(
            place(&request("p1", 100, 1), &nodes, &mut rng)
                .unwrap()
                .node_id,
            "small"
        );
    }
}

#[test]
fn group_by_pool_keeps_order_within_each_pool() {
    let nodes = vec![
        node("a1", "a", 1, 1),
        node("b1", "b", 1, 1),
        node("a2", "a", 1, 1),
    ];
    let pools = group_by_pool(nodes);
    let ids = |p: &str| pools[p].iter().map(|n| n.id.as_str()).collect::<Vec<_>>();
    assert_eq!(ids("a"), ["a1", "a2"]);
    assert_eq!(ids("b"), ["b1"]);
}

#[test]
fn strategy_serde_is_kebab_case_and_defaults_to_spread() {
    assert_eq!(Strategy::default(), Strategy::Spread);
    assert_eq!(
        serde_json::to_string(&Strategy::Binpack).unwrap(),
        "\"binpack\""
    );
    assert_eq!(
        serde_json::from_str::<Strategy>("\"spread\"").unwrap(),
        Strategy::Spread
    );
}
