//! End-to-end tests of the caas-zk recipes (persistent ephemeral node, fenced leader latch,
//! children cache) against real ZooKeeper servers started by the harness.

use std::future::Future;
use std::time::Duration;

use caas_tests::zk_server::{force_session_expiry, ZkEnsemble, ZkServer};
use caas_zk::{
    ensure_path, CacheOptions, ChildrenCache, EphemeralOptions, EphemeralState, LeaderLatch,
    PersistentEphemeral, ZkConfig, ZkSession,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acls, Client, CreateMode};

const DEADLINE: Duration = Duration::from_secs(20);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

fn config(servers: String, session_timeout: Duration) -> ZkConfig {
    ZkConfig {
        servers,
        session_timeout,
        connect_timeout: Duration::from_secs(10),
    }
}

fn fast_ephemeral() -> EphemeralOptions {
    EphemeralOptions {
        conflict_retry: Duration::from_millis(500),
        verify_interval: Duration::from_secs(2),
    }
}

/// Polls `probe` until it yields a value; panics with `what` after `DEADLINE`.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_state(
    pe: &PersistentEphemeral,
    what: &str,
    pred: impl Fn(EphemeralState) -> bool,
) -> EphemeralState {
    let state = pe.state();
    eventually(what, || {
        let s = *state.borrow();
        let matched = pred(s);
        async move { matched.then_some(s) }
    })
    .await
}

async fn registered(pe: &PersistentEphemeral) -> i64 {
    match wait_state(pe, "registration", |s| {
        matches!(s, EphemeralState::Registered { .. })
    })
    .await
    {
        EphemeralState::Registered { session_id } => session_id,
        other => unreachable!("{other:?}"),
    }
}

/// Owner session and data of `path`, if it exists.
async fn node(client: &Client, path: &str) -> Option<(i64, Vec<u8>)> {
    client
        .get_data(path)
        .await
        .ok()
        .map(|(data, stat)| (stat.ephemeral_owner, data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_is_recreated_by_a_new_session_after_expiry_and_deleted_on_shutdown() {
    init_tracing();
    let zk = ZkServer::start().await.unwrap();
    let raw = Client::connect(&zk.connect_string()).await.unwrap();
    let path = "/caas/nodes/n1";
    let cfg = config(zk.connect_string(), Duration::from_secs(2));
    let pe = PersistentEphemeral::start_with(
        cfg,
        path,
        b"v1".to_vec(),
        fast_ephemeral(),
        CancellationToken::new(),
    )
    .unwrap();

    let first = registered(&pe).await;
    assert_eq!(node(&raw, path).await, Some((first, b"v1".to_vec())));

    pe.update_data(b"v2".to_vec());
    eventually("updated data", || async {
        (node(&raw, path).await == Some((first, b"v2".to_vec()))).then_some(())
    })
    .await;

    let session = pe.client().borrow().clone().unwrap();
    assert_eq!(session.session_id().0, first);
    force_session_expiry(&zk.connect_string(), &session)
        .await
        .unwrap();
    drop(session);

    let second = wait_state(
        &pe,
        "registration in a new session",
        |s| matches!(s, EphemeralState::Registered { session_id } if session_id != first),
    )
    .await;
    let EphemeralState::Registered { session_id: second } = second else {
        unreachable!()
    };
    eventually("node owned by the new session", || async {
        (node(&raw, path).await == Some((second, b"v2".to_vec()))).then_some(())
    })
    .await;

    pe.shutdown().await;
    assert_eq!(
        raw.check_stat(path).await.unwrap(),
        None,
        "shutdown deletes the node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_replaces_node_left_by_previous_session() {
    init_tracing();
    let zk = ZkServer::start().await.unwrap();
    let raw = Client::connect(&zk.connect_string()).await.unwrap();
    let path = "/caas/nodes/stale";
    let old = Client::connect(&zk.connect_string()).await.unwrap();
    let (tx, rx) = watch::channel(Some(old.clone()));
    let pe = PersistentEphemeral::start_on(
        rx,
        path,
        b"d".to_vec(),
        fast_ephemeral(),
        CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(registered(&pe).await, old.session_id().0);

    // The old session stays alive (we hold `old`), so its node survives the switch: it is
    // ours from a previous session and must be replaced, not reported as a conflict.
    let new = Client::connect(&zk.connect_string()).await.unwrap();
    tx.send_replace(Some(new.clone()));
    let new_id = new.session_id().0;
    wait_state(&pe, "registration in the new session", |s| {
        s == EphemeralState::Registered { session_id: new_id }
    })
    .await;
    assert_eq!(node(&raw, path).await.map(|n| n.0), Some(new_id));
    assert_eq!(
        old.state(),
        zookeeper_client::SessionState::SyncConnected,
        "old session was still alive"
    );
    pe.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_does_not_steal_a_live_foreign_node_and_takes_over_after_it_goes() {
    init_tracing();
    let zk = ZkServer::start().await.unwrap();
    let raw = Client::connect(&zk.connect_string()).await.unwrap();
    let path = "/caas/nodes/twin";
    ensure_path(&raw, "/caas/nodes").await.unwrap();
    let foreign = Client::connect(&zk.connect_string()).await.unwrap();
    let foreign_id = foreign.session_id().0;
    foreign
        .create(
            path,
            b"theirs",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();

    let cfg = config(zk.connect_string(), Duration::from_secs(2));
    let pe = PersistentEphemeral::start_with(
        cfg,
        path,
        b"ours".to_vec(),
        fast_ephemeral(),
        CancellationToken::new(),
    )
    .unwrap();
    wait_state(&pe, "conflict", |s| {
        s == EphemeralState::Conflict { owner: foreign_id }
    })
    .await;
    assert_eq!(
        node(&raw, path).await,
        Some((foreign_id, b"theirs".to_vec())),
        "foreign node untouched"
    );

    drop(foreign);
    let mine = registered(&pe).await;
    assert_ne!(mine, foreign_id);
    eventually("our node", || async {
        (node(&raw, path).await == Some((mine, b"ours".to_vec()))).then_some(())
    })
    .await;
    pe.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_survives_losing_the_ensemble_member_it_is_connected_to() {
    init_tracing();
    let mut ens = ZkEnsemble::start(3).await.unwrap();
    let raw = Client::connect(&ens.connect_string()).await.unwrap();
    let path = "/caas/nodes/ens";
    let cfg = config(ens.connect_string(), Duration::from_secs(4));
    let pe = PersistentEphemeral::start_with(
        cfg,
        path,
        b"x".to_vec(),
        fast_ephemeral(),
        CancellationToken::new(),
    )
    .unwrap();
    let sid = registered(&pe).await;
    let member = eventually("the member serving our session", || {
        ens.member_with_session(sid)
    })
    .await;

    ens.kill(member);
    // Either the session moved to another member or it expired and a new one re-registered:
    // in both cases the node is there, owned by the recipe's current session.
    eventually("node present after member loss", || async {
        let EphemeralState::Registered { session_id } = *pe.state().borrow() else {
            return None;
        };
        (node(&raw, path).await.map(|n| n.0) == Some(session_id)).then_some(())
    })
    .await;

    ens.restart(member).await.unwrap();
    ens.wait_quorum().await.unwrap();
    assert!(node(&raw, path).await.is_some());
    pe.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_latch_fails_over_and_fences_the_deposed_leader() {
    init_tracing();
    let zk = ZkServer::start().await.unwrap();
    let raw = Client::connect(&zk.connect_string()).await.unwrap();
    ensure_path(&raw, "/caas/work").await.unwrap();
    let dir = "/caas/leader/lost-nodes";
    let cancel = CancellationToken::new();
    let cfg = config(zk.connect_string(), Duration::from_secs(2));
    let sa = ZkSession::start(cfg.clone(), cancel.clone()).unwrap();
    let sb = ZkSession::start(cfg, cancel.clone()).unwrap();

    let a = LeaderLatch::start(sa.clients(), dir, b"a".to_vec(), cancel.clone()).unwrap();
    let fence_a = eventually("a leads", || async { a.fence() }).await;
    let b = LeaderLatch::start(sb.clients(), dir, b"b".to_vec(), cancel.clone()).unwrap();
    eventually("b has joined", || async {
        (raw.list_children(dir).await.ok()?.len() == 2).then_some(())
    })
    .await;
    assert!(a.is_leader() && !b.is_leader(), "exactly one leader");

    let client_a = sa.current().unwrap();
    let mut w = fence_a.writer(&client_a).unwrap();
    w.add_create(
        "/caas/work/1",
        b"by a",
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .unwrap();
    assert_eq!(
        w.commit().await.unwrap().len(),
        1,
        "fenced write of the leader succeeds"
    );

    force_session_expiry(&zk.connect_string(), &client_a)
        .await
        .unwrap();
    drop(client_a);
    let fence_b = eventually("b takes over", || async { b.fence() }).await;
    assert!(!a.is_leader());
    assert_ne!(fence_a.path, fence_b.path);

    // A late write prepared by the deposed leader, even when sent through a live session.
    let client_b = sb.current().unwrap();
    let mut late = fence_a.writer(&client_b).unwrap();
    late.add_create(
        "/caas/work/2",
        b"late",
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .unwrap();
    let err = late.commit().await.unwrap_err();
    assert!(err.is_fenced(), "{err}");
    assert_eq!(raw.check_stat("/caas/work/2").await.unwrap(), None);

    let mut w = fence_b.writer(&client_b).unwrap();
    w.add_set_data("/caas/work/1", b"by b", None).unwrap();
    w.commit().await.unwrap();

    // a comes back with a new session, as a follower.
    eventually("a rejoins", || async {
        (raw.list_children(dir).await.ok()?.len() == 2).then_some(())
    })
    .await;
    assert!(b.is_leader() && !a.is_leader());

    b.shutdown().await;
    eventually("a leads after b resigns", || async { a.fence() }).await;
    a.shutdown().await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_while_disconnected_and_returns_after_reconnect() {
    init_tracing();
    let mut zk = ZkServer::start().await.unwrap();
    let cancel = CancellationToken::new();
    // Long enough for the session to outlive the server restart.
    let session = ZkSession::start(
        config(zk.connect_string(), Duration::from_secs(8)),
        cancel.clone(),
    )
    .unwrap();
    let latch = LeaderLatch::start(
        session.clients(),
        "/caas/leader/x",
        Vec::new(),
        cancel.clone(),
    )
    .unwrap();
    eventually("leader", || async { latch.fence() }).await;

    zk.kill();
    eventually("stepped down", || async {
        (!latch.is_leader()).then_some(())
    })
    .await;
    zk.restart().await.unwrap();
    eventually("leader again", || async { latch.fence() }).await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_cache_follows_creates_changes_and_deletes() {
    init_tracing();
    let zk = ZkServer::start().await.unwrap();
    let raw = Client::connect(&zk.connect_string()).await.unwrap();
    let cancel = CancellationToken::new();
    let session = ZkSession::start(
        config(zk.connect_string(), Duration::from_secs(2)),
        cancel.clone(),
    )
    .unwrap();
    let parent = "/caas/assign/n1";
    // A re-list interval far beyond the deadlines: only watch events can explain what we see.
    let options = CacheOptions {
        relist_interval: Duration::from_secs(600),
    };
    let cache = ChildrenCache::start(session.clients(), parent, options, cancel.clone()).unwrap();
    assert!(cache.wait_synced().await);
    assert!(cache.current().is_empty(), "missing parent is an empty map");

    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    ensure_path(&raw, parent).await.unwrap();
    raw.create("/caas/assign/n1/a", b"1", &open).await.unwrap();
    raw.create("/caas/assign/n1/b", b"2", &open).await.unwrap();
    let snapshots = cache.snapshot();
    let has = |want: Vec<(&'static str, &'static [u8])>| {
        let snapshots = snapshots.clone();
        move || {
            let current = snapshots.borrow().clone();
            let got: Vec<(&str, &[u8])> = current
                .iter()
                .map(|(k, v)| (k.as_str(), v.data.as_slice()))
                .collect();
            let matched = got == want;
            async move { matched.then_some(()) }
        }
    };
    eventually("a and b", has(vec![("a", b"1"), ("b", b"2")])).await;

    raw.set_data("/caas/assign/n1/a", b"1b", None)
        .await
        .unwrap();
    eventually("a changed", has(vec![("a", b"1b"), ("b", b"2")])).await;
    assert_eq!(cache.current()["a"].stat.version, 1);

    raw.create("/caas/assign/n1/a/deeper", b"", &open)
        .await
        .unwrap();
    raw.delete("/caas/assign/n1/b", None).await.unwrap();
    eventually("b deleted, grandchild ignored", has(vec![("a", b"1b")])).await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_cache_catches_up_after_session_expiry() {
    init_tracing();
    let zk = ZkServer::start().await.unwrap();
    let raw = Client::connect(&zk.connect_string()).await.unwrap();
    let cancel = CancellationToken::new();
    let session = ZkSession::start(
        config(zk.connect_string(), Duration::from_secs(2)),
        cancel.clone(),
    )
    .unwrap();
    let parent = "/caas/status/n2";
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    ensure_path(&raw, parent).await.unwrap();
    raw.create("/caas/status/n2/a", b"1", &open).await.unwrap();
    let options = CacheOptions {
        relist_interval: Duration::from_secs(600),
    };
    let cache = ChildrenCache::start(session.clients(), parent, options, cancel.clone()).unwrap();
    assert!(cache.wait_synced().await);
    assert_eq!(cache.current().keys().collect::<Vec<_>>(), ["a"]);

    let old = session.current().unwrap();
    force_session_expiry(&zk.connect_string(), &old)
        .await
        .unwrap();
    drop(old);
    raw.create("/caas/status/n2/c", b"3", &open).await.unwrap();
    raw.delete("/caas/status/n2/a", None).await.unwrap();

    let snapshots = cache.snapshot();
    eventually("state after expiry", || {
        let keys: Vec<String> = snapshots.borrow().keys().cloned().collect();
        async move { (keys == ["c"]).then_some(()) }
    })
    .await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_cache_keeps_last_snapshot_without_session_and_relists_on_new_one() {
    init_tracing();
    let zk = ZkServer::start().await.unwrap();
    let raw = Client::connect(&zk.connect_string()).await.unwrap();
    let parent = "/caas/pools/p1/containers";
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    ensure_path(&raw, parent).await.unwrap();
    raw.create("/caas/pools/p1/containers/web", b"v1", &open)
        .await
        .unwrap();

    let first = Client::connect(&zk.connect_string()).await.unwrap();
    let mut first_state = first.state_watcher();
    let (tx, rx) = watch::channel(Some(first));
    let options = CacheOptions {
        relist_interval: Duration::from_secs(600),
    };
    let cache = ChildrenCache::start(rx, parent, options, CancellationToken::new()).unwrap();
    assert!(cache.wait_synced().await);

    // Withdraw the session; it closes once the cache has dropped its clone too. From then on
    // nothing is watched, so these changes can only be found by re-listing.
    tx.send_replace(None);
    let closed = tokio::time::timeout(DEADLINE, async {
        while !first_state.changed().await.is_terminated() {}
    });
    closed.await.expect("cache releases a withdrawn session");
    raw.set_data("/caas/pools/p1/containers/web", b"v2", None)
        .await
        .unwrap();
    raw.create("/caas/pools/p1/containers/db", b"v1", &open)
        .await
        .unwrap();
    assert_eq!(
        cache.current()["web"].data,
        b"v1",
        "last snapshot kept without a session"
    );

    tx.send_replace(Some(Client::connect(&zk.connect_string()).await.unwrap()));
    let snapshots = cache.snapshot();
    eventually("re-listed state", || {
        let got: Vec<(String, Vec<u8>)> = snapshots
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.data.clone()))
            .collect();
        async move {
            (got == [
                ("db".to_string(), b"v1".to_vec()),
                ("web".to_string(), b"v2".to_vec()),
            ])
            .then_some(())
        }
    })
    .await;
    cache.shutdown().await;
}
