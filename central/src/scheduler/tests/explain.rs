//! Explanations of failed placements.

use super::super::{check_node, place, place_full_scan, Reason, Resources, Unschedulable};
use super::{constraints, labelled, node, request, rng};

#[test]
fn explanation_groups_counts_largest_first() {
    let mut nodes = vec![
        node("n1", "p1", 4000, 1),
        node("n2", "p1", 4000, 1),
        node("n3", "p1", 4000, 1),
        labelled(node("n4", "p1", 4000, 64), &[("rack", "r1")]),
        labelled(node("n5", "p1", 4000, 64), &[("rack", "r1")]),
        node("n6", "p1", 100, 64),
        node("n7", "p1", 4000, 64),
    ];
    nodes[6].ready = false;
    let mut req = request("p1", 1000, 8);
    req.constraints = constraints(&["rack!=r1"]);
    let err = place(&req, &nodes, &mut rng()).unwrap_err();
    assert_eq!(err.considered, 7);
    assert_eq!(err.reasons.get("not enough memory"), Some(&3));
    assert_eq!(err.reasons.get("label rack!=r1"), Some(&2));
    assert_eq!(
        err.to_string(),
        "no node fits: 3 nodes: not enough memory; 2 nodes: label rack!=r1; \
         1 node: node not ready; 1 node: not enough cpu"
    );
    assert_eq!(place_full_scan(&req, &nodes).unwrap_err(), err);
}

#[test]
fn each_node_counts_once_under_its_first_failing_filter() {
    // Fails cpu, memory and the label: counted only as cpu.
    let nodes = vec![node("n1", "p1", 100, 1)];
    let mut req = request("p1", 1000, 8);
    req.constraints = constraints(&["ssd==true"]);
    let err = place_full_scan(&req, &nodes).unwrap_err();
    assert_eq!(err.reasons.len(), 1);
    assert_eq!(err.to_string(), "no node fits: 1 node: not enough cpu");
}

#[test]
fn pids_only_count_when_the_capacity_is_known() {
    let mut limited = node("n1", "p1", 4000, 8);
    limited.capacity.pids = 100;
    limited.allocated.pids = 90;
    let unlimited = node("n2", "p1", 4000, 8);
    let mut req = request("p1", 1000, 1);
    req.request = Resources {
        pids: 20,
        ..req.request
    };
    assert_eq!(
        place_full_scan(&req, &nodes_of(&[limited.clone(), unlimited]))
            .unwrap()
            .node_id,
        "n2"
    );
    let err = place_full_scan(&req, &nodes_of(&[limited])).unwrap_err();
    assert_eq!(err.to_string(), "no node fits: 1 node: not enough pids");
}

fn nodes_of(nodes: &[super::NodeView]) -> Vec<super::NodeView> {
    nodes.to_vec()
}

#[test]
fn empty_or_all_not_ready_pool_says_no_ready_nodes() {
    let mut nodes = vec![node("n1", "p1", 4000, 8), node("b1", "p2", 4000, 8)];
    nodes[0].ready = false;
    let err = place(&request("p1", 100, 1), &nodes, &mut rng()).unwrap_err();
    assert_eq!(err.to_string(), "no node fits: pool p1 has no ready nodes");
    let err = place(&request("p3", 100, 1), &nodes, &mut rng()).unwrap_err();
    assert_eq!(err.considered, 0);
    assert_eq!(err.to_string(), "no node fits: pool p3 has no ready nodes");
    let err = place(&request("p3", 100, 1), &[], &mut rng()).unwrap_err();
    assert_eq!(
        err,
        Unschedulable {
            pool: "p3".into(),
            considered: 0,
            reasons: Default::default()
        }
    );
}

#[test]
fn check_node_reports_anti_affinity_as_hard() {
    let mut n = node("n1", "p1", 4000, 8);
    n.apps.insert("web".into(), 1);
    let mut req = request("p1", 100, 1);
    assert_eq!(check_node(&req, &n), Ok(()));
    req.app = Some("web".into());
    assert_eq!(check_node(&req, &n), Err(Reason::AntiAffinity));
    assert_eq!(
        Reason::AntiAffinity.describe(&req).to_string(),
        "already runs a replica of web"
    );
    req.pool = "p2".into();
    assert_eq!(check_node(&req, &n), Err(Reason::OtherPool));
}
