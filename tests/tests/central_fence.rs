//! The leader's background writes are fenced: after its session expires and another instance
//! leads, the deposed leader's writes (with its old fence) are rejected by ZooKeeper, while the
//! same code with the new leader's fence goes through. Runs central's own code in-process
//! against a real ZooKeeper.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use caas_api::central::{Liveness, NodeRecord};
use caas_api::{Capacity, NodeInfo, ZkLayout};
use caas_central::state::Central;
use caas_central::store::ZkStore;
use caas_tests::wait::until;
use caas_tests::zk_server::{force_session_expiry, ZkServer};
use caas_zk::{LeaderLatch, ZkConfig, ZkSession};
use tokio_util::sync::CancellationToken;

fn ghost(id: &str) -> NodeRecord {
    NodeRecord {
        version: 1,
        info: NodeInfo {
            version: 1,
            node_id: id.into(),
            pool: "p".into(),
            api_addr: "127.0.0.1:1".into(),
            underlay: None,
            capacity: Capacity {
                cpu_millis: 1000,
                memory_bytes: 1 << 30,
            },
            labels: Default::default(),
            agent_version: "test".into(),
            hostname: "h".into(),
            started_at: 0,
            engine_ready: true,
            networks: Default::default(),
        },
        allocated: Default::default(),
        workloads: Default::default(),
        liveness: Liveness::Ready,
        since: 0,
    }
}

async fn liveness(
    client: &caas_zk::zookeeper_client::Client,
    layout: &ZkLayout,
    id: &str,
) -> Liveness {
    let (data, _) = client.get_data(&layout.inventory(id)).await.unwrap();
    serde_json::from_slice::<NodeRecord>(&data)
        .unwrap()
        .liveness
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposed_leader_writes_are_rejected() {
    let zk = ZkServer::start().await.unwrap();
    let cancel = CancellationToken::new();
    let layout = ZkLayout::new("/caas").unwrap();
    let mut config = ZkConfig::new(zk.connect_string());
    config.session_timeout = Duration::from_secs(2);
    let admin = caas_zk::connect(&ZkConfig::new(zk.connect_string()))
        .await
        .unwrap();
    for dir in [
        layout.leader(),
        layout.inventory_root(),
        layout.nodes(),
        layout.pools(),
    ] {
        caas_zk::ensure_path(&admin, &dir).await.unwrap();
    }
    for id in ["ghost-a", "ghost-b"] {
        let data = serde_json::to_vec(&ghost(id)).unwrap();
        caas_tests::zk_io::put(&admin, &layout.inventory(id), &data)
            .await
            .unwrap();
    }

    let s1 = ZkSession::start(config.clone(), cancel.clone()).unwrap();
    let s2 = ZkSession::start(config, cancel.clone()).unwrap();
    let c1 = Central::new(
        Arc::new(ZkStore::start(layout.clone(), s1.clients(), cancel.clone()).unwrap()),
        "admin-token-0123456789",
    );
    let c2 = Central::new(
        Arc::new(ZkStore::start(layout.clone(), s2.clients(), cancel.clone()).unwrap()),
        "admin-token-0123456789",
    );
    c1.wait_synced().await;
    c2.wait_synced().await;
    let latch1 = LeaderLatch::start(s1.clients(), layout.leader(), vec![], cancel.clone()).unwrap();
    until("instance 1 leads", Duration::from_secs(20), || async {
        Ok(latch1.is_leader().then_some(()))
    })
    .await
    .unwrap();
    let latch2 = LeaderLatch::start(s2.clients(), layout.leader(), vec![], cancel.clone()).unwrap();
    let old_fence = latch1.fence().unwrap();
    let grace = Duration::from_secs(60);

    // While it leads, its pass writes: ghost-a is not registered, so it becomes disconnected.
    caas_central::leader::tick(&c1, &old_fence, grace)
        .await
        .unwrap();
    assert_eq!(
        liveness(&admin, &layout, "ghost-a").await,
        Liveness::Disconnected
    );

    // Its session expires; instance 2 takes over.
    force_session_expiry(&zk.connect_string(), &s1.current().unwrap())
        .await
        .unwrap();
    until("instance 2 leads", Duration::from_secs(20), || async {
        Ok(latch2.is_leader().then_some(()))
    })
    .await
    .unwrap();
    until(
        "instance 1 has a new session and a synced view",
        Duration::from_secs(20),
        || async { Ok((s1.current().is_some() && c1.synced()).then_some(())) },
    )
    .await
    .unwrap();
    // Reset ghost-a so a write would be visible, then let the deposed leader try with its old fence.
    caas_tests::zk_io::put(
        &admin,
        &layout.inventory("ghost-a"),
        &serde_json::to_vec(&ghost("ghost-a")).unwrap(),
    )
    .await
    .unwrap();
    until(
        "instance 1 sees the reset",
        Duration::from_secs(20),
        || async {
            Ok(c1
                .inventory()
                .ok()
                .and_then(|inv| {
                    inv.get("ghost-a")
                        .map(|n| n.record.liveness == Liveness::Ready)
                })
                .filter(|r| *r))
        },
    )
    .await
    .unwrap();
    caas_central::leader::tick(&c1, &old_fence, grace)
        .await
        .unwrap();
    assert_eq!(
        liveness(&admin, &layout, "ghost-a").await,
        Liveness::Ready,
        "the deposed leader's write was rejected"
    );

    // The new leader's pass with its own fence goes through.
    let new_fence = latch2.fence().unwrap();
    until(
        "instance 2 sees the reset",
        Duration::from_secs(20),
        || async {
            Ok(c2
                .inventory()
                .ok()
                .and_then(|inv| {
                    inv.get("ghost-a")
                        .map(|n| n.record.liveness == Liveness::Ready)
                })
                .filter(|r| *r))
        },
    )
    .await
    .unwrap();
    caas_central::leader::tick(&c2, &new_fence, grace)
        .await
        .unwrap();
    assert_eq!(
        liveness(&admin, &layout, "ghost-a").await,
        Liveness::Disconnected
    );
    cancel.cancel();
}
