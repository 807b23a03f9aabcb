//! The leader's background work on the in-memory store with a stepped clock: liveness
//! transitions, re-placement of stateless workloads keeping name and hostname, workloads with
//! data waiting for ops, revival, the fence that silences a deposed leader, and forgetting nodes
//! lost for longer than the inventory retention.

mod support;

use std::time::Duration;

use caas_api::central::{Liveness, Placement};
use caas_central::leader::{tick_at, Timers};
use caas_central::store::{Op, Store, StoreError};
use serde_json::json;
use support::{container, node_info, World};

const GI: u64 = 1 << 30;
const GRACE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn liveness_goes_ready_disconnected_lost_ready_and_stateless_work_moves() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    world.register(node_info("n1", "p", 4000, 8 * GI));
    world.register(node_info("n2", "p", 4000, 8 * GI));
    let session = world.store.new_session();
    let fence = world.store.leader_fence(session).unwrap();
    let t0 = 1_000_000;
    tick_at(&a.central, &fence, GRACE, t0).await.unwrap();
    let inventory = world.inventory().await;
    assert_eq!(inventory["n1"].liveness, Liveness::Ready);
    assert_eq!(inventory["n2"].liveness, Liveness::Ready);

    let mut web = container("web", "100m", "64Mi");
    web["hostname"] = json!("web-host");
    let mut db = container("db", "100m", "64Mi");
    db["volumes"] = json!(["/data"]);
    // Pin both to n1 by filling n2 first.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(container("filler", "4", "64Mi")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let filler_node = body[0]["node"].as_str().unwrap().to_string();
    let victim = if filler_node == "n1" { "n2" } else { "n1" };
    for spec in [web.clone(), db.clone()] {
        let (status, body) = a
            .call("POST", "/v1/pools/p/containers", &token, Some(spec))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body[0]["node"], victim);
    }
    // Room for web elsewhere once the victim is gone.
    let (status, _) = a
        .call(
            "DELETE",
            "/v1/pools/p/containers/filler",
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 204);

    world.kill(victim);
    tick_at(&a.central, &fence, GRACE, t0 + 1).await.unwrap();
    assert_eq!(
        world.inventory().await[victim].liveness,
        Liveness::Disconnected
    );
    // Within the grace period nothing moves.
    tick_at(&a.central, &fence, GRACE, t0 + 20).await.unwrap();
    assert_eq!(
        world.inventory().await[victim].liveness,
        Liveness::Disconnected
    );
    let records = world.records("p").await;
    assert!(records.iter().all(|r| r.node == victim));
    // Past it, the node is lost; the next pass handles its workloads.
    tick_at(&a.central, &fence, GRACE, t0 + 40).await.unwrap();
    assert_eq!(world.inventory().await[victim].liveness, Liveness::Lost);
    tick_at(&a.central, &fence, GRACE, t0 + 41).await.unwrap();
    let records = world.records("p").await;
    let web = records.iter().find(|r| r.spec.name == "web").unwrap();
    let db = records.iter().find(|r| r.spec.name == "db").unwrap();
    assert_eq!(web.node, filler_node, "stateless web moved");
    assert_eq!(
        web.spec.hostname.as_deref(),
        Some("web-host"),
        "and kept its hostname"
    );
    assert_eq!(web.placement, Placement::Placed);
    assert_eq!(db.node, victim, "db keeps its data node");
    assert_eq!(db.placement, Placement::Lost);
    world.check_invariants(&["p"]).await;

    // The node returns: ready again, db runs there again, web stays where it moved.
    world.revive(victim);
    tick_at(&a.central, &fence, GRACE, t0 + 50).await.unwrap();
    assert_eq!(world.inventory().await[victim].liveness, Liveness::Ready);
    let records = world.records("p").await;
    let db = records.iter().find(|r| r.spec.name == "db").unwrap();
    assert_eq!(db.placement, Placement::Placed);
    assert_eq!(
        records.iter().find(|r| r.spec.name == "web").unwrap().node,
        filler_node
    );
    world.check_invariants(&["p"]).await;
}

#[tokio::test]
async fn a_deposed_leader_writes_nothing() {
    let mut world = World::new();
    let a = world.instance();
    let b = world.instance();
    world.pool(&a, "p").await;
    world.register(node_info("n1", "p", 4000, 8 * GI));
    let old_session = world.store.new_session();
    let old_fence = world.store.leader_fence(old_session).unwrap();
    tick_at(&a.central, &old_fence, GRACE, 100).await.unwrap();
    world.kill("n1");
    // The old leader's session ends; a new leader takes over.
    world.store.end_session(old_session);
    let new_fence = world.store.leader_fence(world.store.new_session()).unwrap();
    let before = world.store.dump();
    tick_at(&a.central, &old_fence, GRACE, 200).await.unwrap();
    assert_eq!(
        world.store.dump(),
        before,
        "the deposed leader's pass was rejected whole"
    );
    let op = Op::Create {
        path: "/caas/pools/late".into(),
        data: Vec::new(),
    };
    let err = world
        .store
        .commit(&[op], Some(&old_fence))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced(_)), "{err}");
    tick_at(&b.central, &new_fence, GRACE, 200).await.unwrap();
    assert_eq!(
        world.inventory().await["n1"].liveness,
        Liveness::Disconnected
    );
}

#[tokio::test]
async fn a_node_placed_on_before_the_leader_recorded_it_is_still_seen_and_marked_lost() {
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    let session = world.store.new_session();
    let fence = world.store.leader_fence(session).unwrap();
    world.register(node_info("n1", "p", 4000, 8 * GI));
    world.register(node_info("n2", "p", 4000, 8 * GI));
    // No leader pass yet: the placement itself records the node it uses.
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(container("web", "100m", "64Mi")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let victim = body[0]["node"].as_str().unwrap().to_string();
    let survivor = if victim == "n1" { "n2" } else { "n1" };
    world.kill(&victim);
    let t0 = 5_000;
    tick_at(&a.central, &fence, GRACE, t0).await.unwrap();
    assert_eq!(
        world.inventory().await[&victim].liveness,
        Liveness::Disconnected
    );
    tick_at(&a.central, &fence, GRACE, t0 + 40).await.unwrap();
    assert_eq!(world.inventory().await[&victim].liveness, Liveness::Lost);
    tick_at(&a.central, &fence, GRACE, t0 + 41).await.unwrap();
    let records = world.records("p").await;
    assert_eq!(records[0].node, survivor, "web moved off the dead node");
    world.check_invariants(&["p"]).await;
}

#[tokio::test]
async fn a_long_lost_node_with_nothing_left_is_forgotten_and_returns_as_new() {
    let timers = Timers {
        lost_grace: GRACE,
        inventory_retention: Duration::from_secs(3600),
    };
    let mut world = World::new();
    let a = world.instance();
    let token = world.pool(&a, "p").await;
    let session = world.store.new_session();
    let fence = world.store.leader_fence(session).unwrap();
    // web (stateless) on n1, db (with data) on n3; n2 has room for web later.
    world.register(node_info("n1", "p", 1000, 8 * GI));
    let (status, body) = a
        .call(
            "POST",
            "/v1/pools/p/containers",
            &token,
            Some(container("web", "100m", "64Mi")),
        )
        .await;
    assert_eq!(
        (status, body[0]["node"].as_str()),
        (201, Some("n1")),
        "{body}"
    );
    world.register(node_info("n3", "p", 4000, 8 * GI));
    let mut db = container("db", "2", "64Mi");
    db["volumes"] = json!(["/data"]);
    let (status, body) = a
        .call("POST", "/v1/pools/p/containers", &token, Some(db))
        .await;
    assert_eq!(
        (status, body[0]["node"].as_str()),
        (201, Some("n3")),
        "{body}"
    );
    world.register(node_info("n2", "p", 4000, 8 * GI));
    let t0 = 10_000;
    tick_at(&a.central, &fence, timers, t0).await.unwrap();

    world.kill("n1");
    world.kill("n3");
    tick_at(&a.central, &fence, timers, t0 + 1).await.unwrap();
    tick_at(&a.central, &fence, timers, t0 + 40).await.unwrap();
    tick_at(&a.central, &fence, timers, t0 + 41).await.unwrap();
    let inventory = world.inventory().await;
    assert_eq!(inventory["n1"].liveness, Liveness::Lost);
    assert!(inventory["n1"].workloads.is_empty(), "web moved away");

    // Within the retention the record stays.
    tick_at(&a.central, &fence, timers, t0 + 40 + 3599)
        .await
        .unwrap();
    assert!(world.inventory().await.contains_key("n1"));
    // Past it, n1 (nothing left) is forgotten whole; n3 keeps db's record: its data waits.
    tick_at(&a.central, &fence, timers, t0 + 40 + 3600)
        .await
        .unwrap();
    let inventory = world.inventory().await;
    assert!(!inventory.contains_key("n1"), "{inventory:?}");
    assert_eq!(inventory["n3"].liveness, Liveness::Lost);
    let left: Vec<String> = world
        .store
        .dump()
        .into_keys()
        .filter(|p| p.split('/').any(|part| part == "n1"))
        .collect();
    assert!(left.is_empty(), "nothing of n1 is left: {left:?}");
    let records = world.records("p").await;
    let db = records.iter().find(|r| r.spec.name == "db").unwrap();
    assert_eq!((db.node.as_str(), db.placement), ("n3", Placement::Lost));
    world.check_invariants(&["p"]).await;

    // n1 comes back: a new node, ready, with nothing on it.
    world.revive("n1");
    tick_at(&a.central, &fence, timers, t0 + 5000)
        .await
        .unwrap();
    let n1 = &world.inventory().await["n1"];
    assert_eq!(n1.liveness, Liveness::Ready);
    assert!(n1.workloads.is_empty());
    world.check_invariants(&["p"]).await;
}
