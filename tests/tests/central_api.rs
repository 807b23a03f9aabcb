//! End-to-end: central instances in the fabric namespace, real agents in node namespaces, real
//! ZooKeeper and Docker. Placement is atomic and never over-commits, tenants are isolated, lost
//! nodes are handled by the elected leader, and bad input writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Duration;

use caas_api::central::{ContainerView, NodeRecord, NodeView};
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::wait::until;
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(60);

async fn containers(c: &Cluster, central: usize, pool: &str, token: &str) -> Vec<ContainerView> {
    let (code, body) = c
        .request(
            central,
            "GET",
            &format!("/v1/pools/{pool}/containers"),
            None,
            token,
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn nodes(c: &Cluster, central: usize, token: &str) -> Vec<NodeView> {
    let (code, body) = c
        .request(central, "GET", "/v1/nodes", None, token)
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn wait_all_running(c: &Cluster, pool: &str, token: &str, n: usize) -> Vec<ContainerView> {
    until(&format!("{n} containers running"), CONVERGE, || async {
        let list = containers(c, 0, pool, token).await;
        let running = list
            .iter()
            .filter(|v| {
                v.status
                    .as_ref()
                    .is_some_and(|s| s.state == caas_api::WorkloadState::Running)
            })
            .count();
        Ok((list.len() == n && running == n).then_some(list))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_centrals_never_overcommit_a_node() {
    let nodes_spec = vec![NodeSpec::new("p1", &[]); 3];
    let c = Cluster::start("burst", &nodes_spec, 2, 30).await.unwrap();
    let token = c.create_pool("p1").await.unwrap();
    // Every node has 2000m of CPU; 500m each means at most 12 fit in the whole pool.
    let requests = (0..24).map(|i| {
        let body = json!({"name": format!("b{i}"), "image": c.busybox, "command": ["sleep", "3600"],
                          "resources": {"cpu": "500m", "memory": "32Mi"}});
        let c = &c;
        let token = token.clone();
        async move {
            c.request(i % 2, "POST", "/v1/pools/p1/containers", Some(body), &token)
                .await
                .unwrap()
        }
    });
    let results = futures::future::join_all(requests).await;
    let created = results.iter().filter(|(code, _)| *code == 201).count();
    let refused: Vec<_> = results.iter().filter(|(code, _)| *code != 201).collect();
    assert_eq!(created, 12, "exactly what fits is placed: {results:?}");
    for (code, body) in &refused {
        assert_eq!(*code, 422, "{body}");
        assert!(body.contains("not enough cpu"), "{body}");
    }
    // Sum of what the records say against each node's capacity.
    let list = containers(&c, 1, "p1", &token).await;
    let mut per_node: BTreeMap<String, u64> = BTreeMap::new();
    for v in &list {
        *per_node.entry(v.node.clone()).or_default() += 500;
    }
    for n in nodes(&c, 0, &c.admin_token).await {
        let from_records = per_node.get(&n.id).copied().unwrap_or(0);
        assert!(
            from_records <= n.capacity.cpu_millis,
            "{}: {from_records} > {}",
            n.id,
            n.capacity.cpu_millis
        );
        assert_eq!(
            n.allocated.cpu_millis, from_records,
            "inventory agrees with the records on {}",
            n.id
        );
    }
    wait_all_running(&c, "p1", &token, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_node_stateless_moves_data_waits_for_force() {
    let nodes_spec = vec![NodeSpec::new("p1", &[]); 3];
    let mut c = Cluster::start("lost", &nodes_spec, 1, 3).await.unwrap();
    let token = c.create_pool("p1").await.unwrap();
    for (name, volumes) in [("web", json!([])), ("db", json!(["/data"]))] {
        let body = json!({"name": name, "image": c.busybox, "command": ["sleep", "3600"], "volumes": volumes,
                          "hostname": format!("{name}-host"), "strategy": "binpack"});
        let (code, out) = c
            .request(0, "POST", "/v1/pools/p1/containers", Some(body), &token)
            .await
            .unwrap();
        assert_eq!(code, 201, "{out}");
    }
    let before = wait_all_running(&c, "p1", &token, 2).await;
    let node = before[0].node.clone();
    assert!(
        before.iter().all(|v| v.node == node),
        "binpack put both on one node: {before:?}"
    );
    let victim = c.node_ids.iter().position(|n| *n == node).unwrap();
    c.agents[victim].kill9();

    until("node lost", CONVERGE, || async {
        Ok(nodes(&c, 0, &c.admin_token)
            .await
            .into_iter()
            .find(|n| n.id == node && n.liveness == caas_api::central::Liveness::Lost))
    })
    .await
    .unwrap();
    let moved = until("web running on another node, db lost", CONVERGE, || async {
        let list = containers(&c, 0, "p1", &token).await;
        let web = list.iter().find(|v| v.name == "web").cloned();
        let db = list.iter().find(|v| v.name == "db").cloned();
        Ok(match (web, db) {
            (Some(w), Some(d))
                if w.node != node
                    && w.status
                        .as_ref()
                        .is_some_and(|s| s.state == caas_api::WorkloadState::Running)
                    && d.placement == caas_api::central::Placement::Lost =>
            {
                Some((w, d))
            }
            _ => None,
        })
    })
    .await
    .unwrap();
    let (web, db) = moved;
    assert_eq!(db.node, node, "the data workload stays with its data");
    assert_eq!(web.spec.hostname.as_deref(), Some("web-host"));
    let sandbox = web.status.unwrap().containers.sandbox.unwrap();
    let docker = caas_tests::images::docker().await.unwrap();
    let inspected = docker.inspect_container(&sandbox, None).await.unwrap();
    assert_eq!(
        inspected.config.unwrap().hostname.as_deref(),
        Some("web-host"),
        "same hostname on the new node"
    );

    let (code, body) = c
        .request(
            0,
            "POST",
            "/v1/pools/p1/containers/db/reschedule",
            Some(json!({})),
            &token,
        )
        .await
        .unwrap();
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("--force"), "{body}");
    let (code, body) = c
        .request(
            0,
            "POST",
            "/v1/pools/p1/containers/db/reschedule",
            Some(json!({"force": true})),
            &token,
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let after = wait_all_running(&c, "p1", &token, 2).await;
    assert!(after.iter().all(|v| v.node != node), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_tokens_see_only_their_pool() {
    let c = Cluster::start(
        "iso",
        &[NodeSpec::new("pa", &[]), NodeSpec::new("pb", &[])],
        1,
        30,
    )
    .await
    .unwrap();
    let token_a = c.create_pool("pa").await.unwrap();
    let token_b = c.create_pool("pb").await.unwrap();
    let (code, body) = c
        .request(
            0,
            "POST",
            "/v1/pools/pb/containers",
            Some(json!({"name": "secret", "image": c.busybox, "command": ["sleep", "3600"]})),
            &token_b,
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");

    for (method, path, body) in [
        ("GET", "/v1/pools/pb", None),
        ("GET", "/v1/pools/pb/containers", None),
        ("GET", "/v1/pools/pb/containers/secret", None),
        ("DELETE", "/v1/pools/pb/containers/secret", None),
        (
            "POST",
            "/v1/pools/pb/containers",
            Some(json!({"name": "intruder", "image": "x"})),
        ),
        (
            "POST",
            "/v1/pools/pb/containers/secret/reschedule",
            Some(json!({"force": true})),
        ),
    ] {
        let (code, out) = c.request(0, method, path, body, &token_a).await.unwrap();
        assert_eq!(code, 404, "{method} {path}: {out}");
        assert!(!out.contains("secret\":"), "{out}");
    }
    let visible_nodes = nodes(&c, 0, &token_a).await;
    assert_eq!(visible_nodes.len(), 1);
    assert_eq!(visible_nodes[0].pool, "pa");
    let (_, pools) = c
        .request(0, "GET", "/v1/pools", None, &token_a)
        .await
        .unwrap();
    assert!(
        pools.contains("\"pa\"") && !pools.contains("\"pb\""),
        "{pools}"
    );

    // Pool A's workloads only ever land on pool A's node, even when it is full and B has room.
    let a_node = c.node_ids[0].clone();
    for i in 0..3 {
        let (code, body) = c
            .request(0, "POST", "/v1/pools/pa/containers", Some(json!({"name": format!("a{i}"), "image": c.busybox, "command": ["sleep", "3600"], "resources": {"cpu": "600m"}})), &token_a)
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
        let v: Vec<ContainerView> = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0].node, a_node);
    }
    let (code, body) = c
        .request(
            0,
            "POST",
            "/v1/pools/pa/containers",
            Some(json!({"name": "a-big", "image": c.busybox, "resources": {"cpu": "1"}})),
            &token_a,
        )
        .await
        .unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("1 node"), "{body}");
    assert!(
        !body.contains(&c.node_ids[1]),
        "pool B's node is never mentioned: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_takes_over_background_work() {
    let nodes_spec = vec![NodeSpec::new("p1", &[]); 2];
    let mut c = Cluster::start("lead", &nodes_spec, 2, 2).await.unwrap();
    // Find the leader: the lowest candidate under /caas/leader names its listen address.
    let leader = until("a leader", CONVERGE, || async {
        let mut kids = c.zk_client.list_children(&c.layout.leader()).await?;
        kids.sort_by_key(|k| {
            k.rsplit('-')
                .next()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(i64::MAX)
        });
        let Some(first) = kids.first() else {
            return Ok(None);
        };
        let (data, _) = c
            .zk_client
            .get_data(&format!("{}/{first}", c.layout.leader()))
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&data)?;
        let listen = v["listen"].as_str().unwrap_or_default().to_string();
        Ok(c.centrals.iter().position(|cp| cp.url.ends_with(&listen)))
    })
    .await
    .unwrap();
    let other = 1 - leader;
    // Let the first leader record both nodes in the inventory before it dies.
    until("both nodes in the inventory", CONVERGE, || async {
        let kids = c
            .zk_client
            .list_children(&c.layout.inventory_root())
            .await
            .unwrap_or_default();
        Ok((kids.len() == 2).then_some(()))
    })
    .await
    .unwrap();
    c.centrals[leader].kill9();
    c.agents[1].kill9();
    let lost = c.node_ids[1].clone();
    until(
        "the surviving central marks the node lost",
        CONVERGE,
        || async {
            Ok(nodes(&c, other, &c.admin_token)
                .await
                .into_iter()
                .find(|n| n.id == lost && n.liveness == caas_api::central::Liveness::Lost))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", c.centrals[other].log()));
    let (record, _) = c
        .zk_client
        .get_data(&c.layout.inventory(&lost))
        .await
        .unwrap();
    let record: NodeRecord = serde_json::from_slice(&record).unwrap();
    assert_eq!(record.liveness, caas_api::central::Liveness::Lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_writes_nothing() {
    let c = Cluster::start("badin", &[NodeSpec::new("p1", &[])], 1, 30)
        .await
        .unwrap();
    let token = c.create_pool("p1").await.unwrap();
    let img = c.busybox.clone();
    // (method, path, body, caller, expected status, text the answer must contain)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<serde_json::Value>,
        &'a str,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/pools/nope/containers",
            Some(json!({"name": "x", "image": img})),
            "admin",
            404,
            "pool nope",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "Bad_Name", "image": img})),
            "pool",
            400,
            "\"field\":\"name\"",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "resources": {"memory": "99999999999Ti"}})),
            "pool",
            400,
            "resources.memory",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "resources": {"memory": "12XB"}})),
            "pool",
            400,
            "resources.memory",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "resources": {"cpu": "0"}})),
            "pool",
            400,
            "resources.cpu",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "resources": {"cpu": "-1"}})),
            "pool",
            400,
            "resources.cpu",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "resources": {"pids": 0}})),
            "pool",
            400,
            "resources.pids",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "constraints": ["rack=r1"]})),
            "pool",
            400,
            "constraints[0]",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "instances": 1000})),
            "pool",
            400,
            "instances",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "instances": 0})),
            "pool",
            400,
            "instances",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "imagee": "typo"})),
            "pool",
            400,
            "imagee",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "strategy": "random"})),
            "pool",
            400,
            "strategy",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img, "volumes": ["data"]})),
            "pool",
            400,
            "volumes[0]",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img})),
            "none",
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "x", "image": img})),
            "wrong",
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/v1/pools",
            Some(json!({"name": "Bad Pool"})),
            "admin",
            400,
            "name",
        ),
        (
            "POST",
            "/v1/pools",
            Some(json!({"name": "p2"})),
            "pool",
            403,
            "admin",
        ),
    ];
    for (method, path, body, who, want, needle) in cases {
        let before = c.dump().await.unwrap();
        let token = match who {
            "admin" => c.admin_token.clone(),
            "pool" => token.clone(),
            "wrong" => "caas_0000".to_string(),
            _ => String::new(),
        };
        let (code, out) = c
            .request(0, method, path, body.clone(), &token)
            .await
            .unwrap();
        assert_eq!(code, want, "{method} {path} {body:?}: {out}");
        assert!(
            out.contains(needle),
            "{method} {path} {body:?}: {out} should mention {needle}"
        );
        let error: caas_api::central::ErrorBody = serde_json::from_str(&out).unwrap();
        assert!(!error.message.is_empty());
        assert_eq!(
            before,
            c.dump().await.unwrap(),
            "{method} {path} {body:?} changed ZooKeeper"
        );
    }
    // A body that is not JSON at all.
    let url = format!("{}/v1/pools/p1/containers", c.centrals[0].url);
    let t = token.clone();
    let (code, out) = c
        .fabric
        .run(async move {
            let r = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .post(&url)
                .bearer_auth(t)
                .body("{not json")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
        .await
        .unwrap();
    assert_eq!(code, 400, "{out}");
    // Idempotent create: same spec -> 200 with the existing record; different -> 409 naming the field.
    let spec = json!({"name": "same", "image": img, "command": ["sleep", "3600"]});
    let (code, first) = c
        .request(
            0,
            "POST",
            "/v1/pools/p1/containers",
            Some(spec.clone()),
            &token,
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{first}");
    let (code, _) = c
        .request(0, "POST", "/v1/pools/p1/containers", Some(spec), &token)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let (code, out) = c
        .request(
            0,
            "POST",
            "/v1/pools/p1/containers",
            Some(json!({"name": "same", "image": img, "command": ["sleep", "1"]})),
            &token,
        )
        .await
        .unwrap();
    assert_eq!(code, 409, "{out}");
    assert!(out.contains("command"), "{out}");
    let (code, doc) = c
        .request(0, "GET", "/v1/openapi.json", None, "")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(doc.contains("/v1/pools/{pool}/containers"));
}
