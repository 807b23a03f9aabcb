//! End-to-end: the agent keeps its registration through ZooKeeper trouble (session expiry, loss
//! of an ensemble member) without touching containers, reports a missing Docker engine instead
//! of crashing, and refuses invalid configuration before starting anything.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use caas_api::{Assignment, WorkloadKey, WorkloadSpec};
use caas_api::{NodeInfo, WorkloadState, ZkLayout};
use caas_tests::agent::{test_node_id, AgentOptions, AgentProcess, ContainerSweeper};
use caas_tests::fixture::NodeFixture;
use caas_tests::wait::until;
use caas_tests::zk_server::{ZkEnsemble, ZkServer};
use caas_zk::zookeeper_client::Client;

const CONVERGE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_reregisters_without_touching_containers() {
    let f = NodeFixture::start("expiry", "").await.unwrap();
    f.assign(&f.spec("calm", "exec sleep 3600")).await.unwrap();
    f.wait_status("calm", "running", CONVERGE, |s| {
        s.state == WorkloadState::Running
    })
    .await
    .unwrap();
    let (_, stat) = f.node_registration().await.unwrap().unwrap();
    let before = f.containers().await.unwrap();

    // Cut the node off the fabric for longer than its 2s session timeout: the servers expire the
    // session and drop the ephemeral node, while the agent only sees a disconnect.
    f.topo.set_node_link(1, false).unwrap();
    until("node znode dropped by the servers", CONVERGE, || async {
        Ok(f.node_registration().await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.topo.set_node_link(1, true).unwrap();

    let started = std::time::Instant::now();
    let (_, new_stat) = until("node re-registered", CONVERGE, || async {
        f.node_registration().await
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert_ne!(
        new_stat.ephemeral_owner, stat.ephemeral_owner,
        "a new session owns the node"
    );
    assert!(
        took < Duration::from_secs(15),
        "re-registration took {took:?}"
    );
    // Status writes resume on the new session too.
    f.assign(&f.spec("after", "exec sleep 3600")).await.unwrap();
    f.wait_status("after", "running", CONVERGE, |s| {
        s.state == WorkloadState::Running
    })
    .await
    .unwrap();
    let after: Vec<_> = f
        .containers()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| !c.0.contains(".after"))
        .collect();
    assert_eq!(before, after, "no container touched by the expiry");
}

async fn registration(
    client: &Client,
    layout: &ZkLayout,
    node: &str,
) -> anyhow::Result<Option<(NodeInfo, i64)>> {
    Ok(caas_tests::zk_io::registration(client, layout, node)
        .await?
        .map(|(info, stat)| (info, stat.ephemeral_owner)))
}

fn host_agent(node_id: &str, zk: String, extra: &str) -> AgentProcess {
    let port = caas_tests::process::free_port();
    AgentProcess::start(AgentOptions {
        node_id: node_id.to_string(),
        pool: "pool1".into(),
        zk,
        zk_root: "/caas".into(),
        netns: None,
        listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        underlay: None,
        labels: vec![],
        extra_config: extra.to_string(),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_an_ensemble_member_keeps_the_node_registered() {
    let node_id = test_node_id("ensemble");
    let _sweeper = ContainerSweeper::new(std::slice::from_ref(&node_id));
    let mut ensemble = ZkEnsemble::start(3).await.unwrap();
    let layout = ZkLayout::new("/caas").unwrap();
    let client = caas_zk::connect(&caas_zk::ZkConfig::new(ensemble.connect_string()))
        .await
        .unwrap();
    let agent = host_agent(&node_id, ensemble.connect_string(), "");

    let (_, owner) = until("registration", CONVERGE, || async {
        registration(&client, &layout, &node_id).await
    })
    .await
    .unwrap();
    let docker = caas_tests::images::docker().await.unwrap();
    let image = caas_tests::images::ensure_busybox(&docker).await.unwrap();
    let spec: WorkloadSpec = serde_json::from_value(serde_json::json!({
        "pool": "pool1", "name": "steady", "image": image, "command": ["sleep", "3600"]
    }))
    .unwrap();
    let key = WorkloadKey::new("pool1", "steady");
    caas_tests::zk_io::put_assignment(&client, &layout, &node_id, &Assignment::run(spec))
        .await
        .unwrap();
    let running = until("workload running", CONVERGE, || async {
        let s = caas_tests::zk_io::status(&client, &layout, &node_id, &key).await?;
        Ok(s.filter(|s| s.state == WorkloadState::Running))
    })
    .await
    .unwrap();
    let member = until("member holding the agent's session", CONVERGE, || async {
        Ok(ensemble.member_with_session(owner).await)
    })
    .await
    .unwrap();
    ensemble.kill(member);

    // The session moves to another member; the node never disappears for long.
    until(
        "registration after losing a member",
        Duration::from_secs(10),
        || async {
            let reg = registration(&client, &layout, &node_id).await?;
            let back = ensemble.member_with_session(owner).await;
            Ok(reg.filter(|_| back.is_some_and(|m| m != member)))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{}", agent.log()));
    ensemble.restart(member).await.unwrap();
    let (info, _) = registration(&client, &layout, &node_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.node_id, node_id);
    let app = docker
        .inspect_container(running.containers.app.as_deref().unwrap(), None)
        .await
        .unwrap();
    let state = app.state.unwrap();
    assert_eq!(state.running, Some(true));
    assert_eq!(
        state.started_at, running.started_at,
        "the app was not restarted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_docker_engine_is_reported_not_fatal() {
    let zk = ZkServer::start().await.unwrap();
    let node_id = test_node_id("nodocker");
    let mut agent = host_agent(
        &node_id,
        zk.connect_string(),
        "docker_socket = \"/run/caas-test-no-such-docker.sock\"\n",
    );
    let client = caas_zk::connect(&caas_zk::ZkConfig::new(zk.connect_string()))
        .await
        .unwrap();
    let layout = ZkLayout::new("/caas").unwrap();
    until("registration without docker", CONVERGE, || async {
        registration(&client, &layout, &node_id).await
    })
    .await
    .unwrap();
    let url = format!("{}/healthz", agent.url());
    let body = until("healthz reports docker", CONVERGE, || async {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(&url)
            .send()
            .await?;
        let code = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await?;
        Ok((code == 503
            && body["docker"]
                .as_str()
                .is_some_and(|d| d.contains("no-such-docker")))
        .then_some(body))
    })
    .await
    .unwrap();
    assert_eq!(body["zookeeper"], "registered", "{body}");
    // Central learns from the registration that this node must not get new workloads.
    let (info, _) = registration(&client, &layout, &node_id)
        .await
        .unwrap()
        .unwrap();
    assert!(!info.engine_ready, "{info:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        agent.is_running(),
        "the agent keeps retrying:\n{}",
        agent.log()
    );
}

#[test]
fn invalid_config_exits_64_before_starting_anything() {
    let binary = caas_tests::binaries::agent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "pool = \"p\"\nzk = \"127.0.0.1:1\"\npoool = \"typo\"\n",
            "poool",
        ),
        ("pool = \"Not A Label\"\nzk = \"127.0.0.1:1\"\n", "pool"),
        ("pool = \"p\"\nzk = \"127.0.0.1\"\n", "zk"),
        (
            "pool = \"p\"\nzk = \"127.0.0.1:1\"\nlisten = \"everywhere\"\n",
            "listen",
        ),
    ];
    for (text, field) in cases {
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(&binary)
            .args(["--config", path.to_str().unwrap(), "--node-id", "cfg-test"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{text}: {stderr}");
        assert!(
            stderr.contains(field),
            "{text}: message names {field}: {stderr}"
        );
        assert!(
            !stderr.contains("caas-agent starting"),
            "nothing started: {stderr}"
        );
    }
    let missing = std::process::Command::new(&binary)
        .args(["--config", "/nonexistent/agent.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/agent.toml"));
    // Flags beat environment: the env pool is invalid, the flag fixes it, so the error moves on.
    let out = std::process::Command::new(&binary)
        .env("CAAS_AGENT_POOL", "BAD POOL")
        .args(["--pool", "good", "--node-id", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr.contains("zk"),
        "pool from the flag was accepted, zk is missing: {stderr}"
    );
}
