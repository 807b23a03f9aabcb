//! End-to-end through the `caas` CLI: pools, 20 workloads spread over three nodes, then binpack
//! filling one node first, everything running; JSON output for scripts, errors with exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Duration;

use caas_api::central::{ContainerView, NodeView, PoolView};
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::wait::until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_then_binpack_through_the_cli() {
    let nodes_spec = vec![NodeSpec::new("pool2", &["rack=r1"]); 3];
    let c = Cluster::start("cli", &nodes_spec, 1, 30).await.unwrap();
    let admin = c.admin_token.clone();

    let out = c
        .cli(0, &admin, &["pool", "create", "pool2", "-o", "json"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    let pool: PoolView = serde_json::from_str(&out.stdout).unwrap();
    let token = pool.token.unwrap();

    let out = c
        .cli(0, &admin, &["node", "ls", "-o", "json"])
        .await
        .unwrap();
    let nodes: Vec<NodeView> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(nodes.len(), 3);
    let table = c.cli(0, &admin, &["node", "ls"]).await.unwrap();
    assert!(
        table.stdout.contains("ready") && table.stdout.contains(&c.node_ids[0]),
        "{}",
        table.stdout
    );

    for i in 0..20 {
        let name = format!("s{i:02}");
        let out = c
            .cli(
                0,
                &token,
                &[
                    "--pool=pool2",
                    "container",
                    "create",
                    &name,
                    "--image",
                    &c.busybox,
                    "--cpu",
                    "100m",
                    "--memory",
                    "32Mi",
                    "-l",
                    "team=pay",
                    "--",
                    "sleep",
                    "3600",
                ],
            )
            .await
            .unwrap();
        assert_eq!(out.code, Some(0), "{name}: {out:?}");
    }
    let out = c
        .cli(
            0,
            &token,
            &["--pool=pool2", "container", "ls", "-o", "json"],
        )
        .await
        .unwrap();
    let containers: Vec<ContainerView> = serde_json::from_str(&out.stdout).unwrap();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for v in &containers {
        *per_node.entry(v.node.clone()).or_default() += 1;
    }
    let counts: Vec<usize> = per_node.values().copied().collect();
    assert_eq!(per_node.len(), 3, "spread uses every node: {per_node:?}");
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "spread is even: {per_node:?}"
    );

    for i in 0..6 {
        let name = format!("b{i}");
        let out = c
            .cli(
                0,
                &token,
                &[
                    "--pool=pool2",
                    "container",
                    "create",
                    &name,
                    "--image",
                    &c.busybox,
                    "--cpu",
                    "100m",
                    "--memory",
                    "32Mi",
                    "--strategy",
                    "binpack",
                    "--",
                    "sleep",
                    "3600",
                ],
            )
            .await
            .unwrap();
        assert_eq!(out.code, Some(0), "{name}: {out:?}");
    }
    let out = c
        .cli(
            0,
            &token,
            &["--pool=pool2", "container", "ls", "-o", "json"],
        )
        .await
        .unwrap();
    let containers: Vec<ContainerView> = serde_json::from_str(&out.stdout).unwrap();
    let binpacked: std::collections::BTreeSet<&String> = containers
        .iter()
        .filter(|v| v.name.starts_with('b'))
        .map(|v| &v.node)
        .collect();
    assert_eq!(
        binpacked.len(),
        1,
        "binpack fills one node first: {binpacked:?}"
    );

    until("all 26 running", Duration::from_secs(120), || async {
        let out = c
            .cli(
                0,
                &token,
                &["--pool=pool2", "container", "ls", "-o", "json"],
            )
            .await?;
        let list: Vec<ContainerView> = serde_json::from_str(&out.stdout)?;
        let running = list
            .iter()
            .filter(|v| {
                v.status
                    .as_ref()
                    .is_some_and(|s| s.state == caas_api::WorkloadState::Running)
            })
            .count();
        Ok((running == 26).then_some(()))
    })
    .await
    .unwrap();
    let table = c
        .cli(0, &token, &["--pool=pool2", "container", "ls"])
        .await
        .unwrap();
    assert!(
        table.stdout.contains("s00") && table.stdout.contains("running"),
        "{}",
        table.stdout
    );

    // Errors: exit codes and messages that say what to do.
    let out = c.cli(0, &token, &["container", "ls"]).await.unwrap();
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("--pool") && out.stderr.contains("CAAS_POOL"),
        "{out:?}"
    );
    let out = c
        .cli(
            0,
            &token,
            &[
                "--pool=pool2",
                "container",
                "create",
                "x",
                "--image",
                &c.busybox,
                "-c",
                "rack=r1",
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(64), "{out:?}");
    let out = c
        .cli(0, &token, &["--pool=pool2", "container", "inspect", "nope"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("not found"), "{out:?}");
    let out = c.cli(0, "wrong-token", &["node", "ls"]).await.unwrap();
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.to_lowercase().contains("token"), "{out:?}");
    let out = c
        .cli(0, &token, &["--pool=pool2", "container", "rm", "s00"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");

    // Replicas: numbered, one commit, anti-affinity puts them on three different nodes.
    let rep = [
        "--pool=pool2",
        "container",
        "create",
        "rep",
        "--image",
        &c.busybox,
        "--instances",
        "3",
        "-v",
        "/data",
        "-o",
        "json",
        "--",
        "sleep",
        "3600",
    ];
    let out = c.cli(0, &token, &rep).await.unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    let replicas: Vec<ContainerView> = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = replicas.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["rep-1", "rep-2", "rep-3"]);
    let spread: std::collections::BTreeSet<&String> = replicas.iter().map(|r| &r.node).collect();
    assert_eq!(spread.len(), 3, "anti-affinity: {replicas:?}");
    // The same request again is idempotent.
    let again = c.cli(0, &token, &rep).await.unwrap();
    assert_eq!(again.code, Some(0), "{again:?}");
    let same: Vec<ContainerView> = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(
        same.iter().map(|r| &r.node).collect::<Vec<_>>(),
        replicas.iter().map(|r| &r.node).collect::<Vec<_>>()
    );

    // rm keeps the data container; rm --purge-data removes everything.
    let docker = caas_tests::images::docker().await.unwrap();
    let count = |name: &'static str| {
        let docker = docker.clone();
        async move {
            let mut filters = std::collections::HashMap::new();
            filters.insert("label".to_string(), vec![format!("caas.name={name}")]);
            let opts = bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            };
            docker
                .list_containers(Some(opts))
                .await
                .map(|l| l.len())
                .unwrap_or(usize::MAX)
        }
    };
    until(
        "replica containers exist",
        Duration::from_secs(60),
        || async { Ok((count("rep-1").await == 3 && count("rep-2").await == 3).then_some(())) },
    )
    .await
    .unwrap();
    let out = c
        .cli(0, &token, &["--pool=pool2", "container", "rm", "rep-1"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = c
        .cli(
            0,
            &token,
            &["--pool=pool2", "container", "rm", "rep-2", "--purge-data"],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    until(
        "rep-1 keeps its data, rep-2 is gone",
        Duration::from_secs(60),
        || async { Ok((count("rep-1").await == 1 && count("rep-2").await == 0).then_some(())) },
    )
    .await
    .unwrap();
}
