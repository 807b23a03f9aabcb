//! Candidate sampling on large fleets.

use rand::Rng;

use super::super::{check_node, place, place_full_scan, place_with, SamplingConfig, Strategy};
use super::{commit, labelled, node, request, rng, NodeView};

fn fleet(n: usize) -> Vec<NodeView> {
    let mut rng = rng();
    (0..n)
        .map(|i| {
            let mut v = node(&format!("node-{i:05}"), "p1", 16000, 64);
            v.allocated = super::res(rng.random_range(0..16000), rng.random_range(0..64));
            v.ready = rng.random_ratio(9, 10);
            v
        })
        .collect()
}

#[test]
fn candidate_count_grows_with_log2_of_the_fleet() {
    let c = SamplingConfig {
        min_candidates: 8,
        spread_per_log2: 2,
        binpack_per_log2: 8,
        binpack_fronts: 16,
    };
    assert_eq!(c.candidates(3, Strategy::Spread), 8);
    assert_eq!(c.candidates(1, Strategy::Binpack), 8);
    assert_eq!(c.candidates(10_000, Strategy::Spread), 28);
    assert_eq!(c.candidates(10_000, Strategy::Binpack), 112);
    assert_eq!(c.candidates(1024, Strategy::Spread), 20);
}

#[test]
fn sampling_picks_only_feasible_nodes() {
    let mut nodes = fleet(2000);
    let mut rng = rng();
    for i in 0..2000 {
        let mut req = request("p1", 500 + (i % 7) * 500, 1 + (i % 5) * 4);
        req.strategy = if i % 2 == 0 {
            Strategy::Spread
        } else {
            Strategy::Binpack
        };
        let Ok(p) = place(&req, &nodes, &mut rng) else {
            continue;
        };
        assert_eq!(check_node(&req, &nodes[p.node]), Ok(()), "{}", p.node_id);
        assert_eq!(nodes[p.node].id, p.node_id);
        commit(&mut nodes, &req, &p);
    }
}

#[test]
fn sampling_finds_the_only_fitting_node_of_ten_thousand() {
    let mut nodes: Vec<NodeView> = (0..10_000)
        .map(|i| node(&format!("node-{i:05}"), "p1", 4000, 8))
        .collect();
    nodes[7321] = labelled(nodes[7321].clone(), &[("gpu", "a100")]);
    let mut req = request("p1", 1000, 1);
    req.constraints = super::constraints(&["gpu==a100"]);
    let mut rng = rng();
    for _ in 0..20 {
        assert_eq!(place(&req, &nodes, &mut rng).unwrap().node_id, "node-07321");
    }
    // Same with resources: only one node has room.
    let mut req = request("p1", 3000, 1);
    for n in &mut nodes {
        n.allocated = super::res(2000, 1);
    }
    nodes[42].allocated = super::res(0, 0);
    req.strategy = Strategy::Binpack;
    assert_eq!(place(&req, &nodes, &mut rng).unwrap().node_id, "node-00042");
}

#[test]
fn sampling_scores_only_a_sample_but_matches_the_full_scan_with_enough_candidates() {
    let nodes = fleet(1000);
    let req = request("p1", 1000, 1);
    let full = place_full_scan(&req, &nodes).unwrap();
    let everything = SamplingConfig {
        min_candidates: usize::MAX,
        ..SamplingConfig::default()
    };
    assert_eq!(
        place_with(&req, &nodes, &mut rng(), everything).unwrap(),
        full
    );
    // With a small sample, different random offsets reach different (still feasible) nodes.
    let small = SamplingConfig {
        min_candidates: 2,
        spread_per_log2: 0,
        binpack_per_log2: 0,
        binpack_fronts: 0,
    };
    let mut rng = rng();
    let mut chosen: Vec<usize> = (0..50)
        .map(|_| place_with(&req, &nodes, &mut rng, small).unwrap().node)
        .collect();
    chosen.sort_unstable();
    chosen.dedup();
    assert!(chosen.len() > 10, "{chosen:?}");
    assert!(chosen.iter().all(|&i| check_node(&req, &nodes[i]).is_ok()));
}

/// Whether a start offset is one of the 16 fronts of a 10,000-node list.
fn at_front(start: usize) -> bool {
    start / 625 * 625 == start
}

#[test]
fn binpack_starts_at_a_front_and_spread_anywhere() {
    let c = SamplingConfig::default();
    assert_eq!(c.binpack_fronts, 16);
    let mut rng = rng();
    let mut binpack: Vec<usize> = (0..500)
        .map(|_| c.start(10_000, Strategy::Binpack, &mut rng))
        .collect();
    binpack.sort_unstable();
    binpack.dedup();
    assert_eq!(binpack.len(), 16);
    assert!(binpack.iter().all(|&s| at_front(s)), "{binpack:?}");
    let spread = (0..500)
        .filter(|_| !at_front(c.start(10_000, Strategy::Spread, &mut rng)))
        .count();
    assert!(spread > 400);
    // Fewer nodes than fronts, or fronts disabled: any node can be the start.
    assert!((0..100).all(|_| c.start(3, Strategy::Binpack, &mut rng) < 3));
    let anywhere = SamplingConfig {
        binpack_fronts: 0,
        ..c
    };
    assert!((0..100).any(|_| !at_front(anywhere.start(10_000, Strategy::Binpack, &mut rng))));
}
