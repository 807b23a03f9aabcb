//! End-to-end: a real `caas-agent` in its own network namespace, a real ZooKeeper in the fabric
//! namespace, the real Docker engine. Assignments written to ZooKeeper become containers; the
//! agent survives kill -9, session expiry and engine trouble without touching what runs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use caas_api::{Assignment, WorkloadState};
use caas_tests::fixture::NodeFixture;

const CONVERGE: Duration = Duration::from_secs(30);

fn app_name(f: &NodeFixture, name: &str) -> String {
    format!("caas-{}.{}.{name}", f.node_id, f.pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_runs_with_limits_and_reports_status() {
    let f = NodeFixture::start("limits", "").await.unwrap();

    // The node registers with its capacity and labels.
    let (info, _) = caas_tests::wait::until("node registration", CONVERGE, || async {
        f.node_registration().await
    })
    .await
    .unwrap();
    assert_eq!(info.pool, f.pool);
    assert_eq!(info.labels.get("rack").map(String::as_str), Some("r1"));
    assert!(
        info.capacity.cpu_millis >= 1000 && info.capacity.memory_bytes > 0,
        "{info:?}"
    );
    assert_eq!(
        info.api_addr,
        format!("{}:7070", caas_tests::netns::node_ip(1))
    );
    caas_tests::wait::until(
        "the registration says the engine is ready",
        CONVERGE,
        || async {
            Ok(f.node_registration()
                .await?
                .filter(|(info, _)| info.engine_ready))
        },
    )
    .await
    .unwrap();

    let mut spec = f.spec("web", "echo hello-from-web; exec sleep 3600");
    spec.resources.cpu = Some("250m".into());
    spec.resources.memory = Some("48Mi".into());
    spec.resources.pids = Some(77);
    spec.env.insert("GREETING".into(), "hi".into());
    spec.volumes = vec!["/data".into()];
    f.assign(&spec).await.unwrap();

    let status = f
        .wait_status("web", "web running", CONVERGE, |s| {
            s.state == WorkloadState::Running
        })
        .await
        .unwrap();
    assert!(status.last_error.is_none(), "{status:?}");
    assert!(status.started_at.is_some());
    let ids = status.containers.clone();

    let app = f
        .docker
        .inspect_container(&app_name(&f, "web"), None)
        .await
        .unwrap();
    let host = app.host_config.unwrap();
    assert_eq!(host.memory, Some(48 << 20));
    assert_eq!(host.nano_cpus, Some(250_000_000));
    assert_eq!(host.pids_limit, Some(77));
    assert_eq!(
        host.network_mode,
        Some(format!("container:{}", ids.sandbox.clone().unwrap()))
    );
    assert_eq!(host.volumes_from, Some(vec![ids.data.clone().unwrap()]));
    assert_eq!(app.id, ids.app);
    let env = app.config.unwrap().env.unwrap();
    assert!(env.contains(&"GREETING=hi".to_string()), "{env:?}");

    // The agent API shows the same, from inside the node's namespace.
    let (code, body) = f.agent_get("/healthz").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = f.agent_get("/v1/containers").await.unwrap();
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{body}");
    let (code, body) = f
        .agent_get(&format!("/v1/containers/{}/web", f.pool))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let one: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        one["status"]["containers"]["app"],
        serde_json::json!(ids.app)
    );
    assert_eq!(one["spec"]["resources"]["memory"], "48Mi");
    let logs = caas_tests::wait::until("app logs", CONVERGE, || async {
        let (code, body) = f
            .agent_get(&format!("/v1/containers/{}/web/logs", f.pool))
            .await?;
        Ok((code == 200 && body.contains("hello-from-web")).then_some(body))
    })
    .await
    .unwrap();
    assert!(logs.contains("hello-from-web"));
    let (code, _) = f
        .agent_get(&format!("/v1/containers/{}/nope", f.pool))
        .await
        .unwrap();
    assert_eq!(code, 404);
    // Hardened by default, as the engine and the kernel see it.
    let inspect = |id: &str| {
        let out = std::process::Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}} {{.HostConfig.PidsLimit}} {{.HostConfig.MemorySwap}}",
                id,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        inspect(ids.sandbox.as_deref().unwrap()),
        format!("[\"ALL\"] [\"no-new-privileges:true\"] 16 {}", 32 << 20)
    );
    assert!(
        inspect(ids.app.as_deref().unwrap()).starts_with(
            "[\"MKNOD\",\"SETFCAP\",\"SYS_CHROOT\",\"AUDIT_WRITE\"] [\"no-new-privileges:true\"]"
        ),
        "{}",
        inspect(ids.app.as_deref().unwrap())
    );
    let status = f
        .docker_exec(ids.app.as_deref().unwrap(), &["cat", "/proc/self/status"])
        .unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]),
        "{status}"
    );
    // Without central's token the /v1 API answers nothing of the workloads (their env holds
    // tenants' secrets); /healthz and /metrics stay open.
    for path in [
        "/v1/containers".to_string(),
        format!("/v1/containers/{}/web", f.pool),
        format!("/v1/containers/{}/web/logs", f.pool),
        format!("/v1/containers/{}/web/stats", f.pool),
        "/v1/stats".to_string(),
        "/v1/node/stats".to_string(),
    ] {
        for bearer in [None, Some("not-the-token")] {
            let (code, body) = f.agent_get_as(&path, bearer).await.unwrap();
            assert_eq!(code, 401, "{path} with {bearer:?}: {body}");
            assert!(
                !body.contains("48Mi") && !body.contains("hello-from-web"),
                "{body}"
            );
        }
    }
    for path in ["/healthz", "/metrics"] {
        let (code, body) = f.agent_get_as(path, None).await.unwrap();
        assert_eq!(code, 200, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_root_leaves_volumes_and_tmp_writable() {
    let f = NodeFixture::start("ro", "").await.unwrap();
    let mut spec = f.spec(
        "ro",
        "touch /data/ok && touch /tmp/ok && echo volume-and-tmp-writable; \
         touch /etc/nope 2>/dev/null || echo root-refused; exec sleep 3600",
    );
    spec.volumes = vec!["/data".into()];
    spec.read_only_root = true;
    f.assign(&spec).await.unwrap();
    let logs = caas_tests::wait::until("the app's verdict", CONVERGE, || async {
        let (code, body) = f
            .agent_get(&format!("/v1/containers/{}/ro/logs", f.pool))
            .await?;
        Ok((code == 200 && body.contains("root-refused")).then_some(body))
    })
    .await
    .unwrap();
    assert!(logs.contains("volume-and-tmp-writable"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unassign_keeps_data_until_purge() {
    let f = NodeFixture::start("purge", "").await.unwrap();
    let mut spec = f.spec("db", "exec sleep 3600");
    spec.volumes = vec!["/var/lib/db".into()];
    f.assign(&spec).await.unwrap();
    let running = f
        .wait_status("db", "db running", CONVERGE, |s| {
            s.state == WorkloadState::Running
        })
        .await
        .unwrap();

    f.unassign("db").await.unwrap();
    let data_name = format!("{}.data", app_name(&f, "db"));
    let left = caas_tests::wait::until("app and sandbox removed", CONVERGE, || async {
        let c = f.containers().await?;
        Ok((c.len() == 1).then_some(c))
    })
    .await
    .unwrap();
    assert_eq!(left[0].0, data_name);
    assert_eq!(Some(left[0].1.clone()), running.containers.data);
    caas_tests::wait::until("status removed", CONVERGE, || async {
        Ok(f.status("db").await?.is_none().then_some(()))
    })
    .await
    .unwrap();

    // Purge: everything goes, and the agent clears the purge instruction itself.
    f.put_assignment(&Assignment::purge(spec.clone()))
        .await
        .unwrap();
    caas_tests::wait::until("data purged", CONVERGE, || async {
        Ok(f.containers().await?.is_empty().then_some(()))
    })
    .await
    .unwrap();
    let assignment = f.layout.assignment(&f.node_id, &f.key("db"));
    caas_tests::wait::until("purge assignment cleared", CONVERGE, || async {
        Ok(f.zk_client
            .check_stat(&assignment)
            .await?
            .is_none()
            .then_some(()))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_and_restart_adopts_without_restarting() {
    let mut f = NodeFixture::start("adopt", "").await.unwrap();
    let mut spec = f.spec("svc", "exec sleep 3600");
    spec.volumes = vec!["/data".into()];
    f.assign(&spec).await.unwrap();
    f.assign(&f.spec("other", "exec sleep 3600")).await.unwrap();
    for name in ["svc", "other"] {
        f.wait_status(name, "running", CONVERGE, |s| {
            s.state == WorkloadState::Running
        })
        .await
        .unwrap();
    }
    let before = f.containers().await.unwrap();
    assert_eq!(before.len(), 5, "{before:?}");

    f.agent.kill9();
    // Change nothing while it is down, then bring it back.
    f.agent.restart().unwrap();
    caas_tests::wait::until("agent healthy again", CONVERGE, || async {
        let (code, _) = f.agent_get("/healthz").await?;
        Ok((code == 200).then_some(()))
    })
    .await
    .unwrap();
    // A workload assigned after the restart proves the new agent ran full passes over the old
    // ones; then give it a few more passes to do something wrong.
    f.assign(&f.spec("marker", "exec sleep 3600"))
        .await
        .unwrap();
    f.wait_status("marker", "marker running", CONVERGE, |s| {
        s.state == WorkloadState::Running
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<_> = f
        .containers()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| !c.0.contains(".marker"))
        .collect();
    assert_eq!(before, after, "same containers, same ids, same StartedAt");
    let log = f.agent.log();
    let restarted = log.rsplit("caas-agent starting").next().unwrap_or_default();
    assert_eq!(
        restarted.matches("started app").count(),
        1,
        "only the marker is started after restart:\n{restarted}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreating_the_app_with_a_new_tag_keeps_its_data() {
    let f = NodeFixture::start("retag", "").await.unwrap();
    let script = "echo run-$(cat /proc/sys/kernel/random/uuid) >> /data/history; exec sleep 3600";
    let mut spec = f.spec("keep", script);
    spec.volumes = vec!["/data".into()];
    f.assign(&spec).await.unwrap();
    let first = f
        .wait_status("keep", "v1 running", CONVERGE, |s| {
            s.state == WorkloadState::Running
        })
        .await
        .unwrap();

    let v2 = caas_tests::images::tag(&f.docker, &f.busybox, "caas-test/busybox-v2", "2")
        .await
        .unwrap();
    spec.image = v2.clone();
    spec.generation = 2;
    f.assign(&spec).await.unwrap();
    let second = f
        .wait_status("keep", "v2 running", CONVERGE, |s| {
            s.state == WorkloadState::Running && s.generation == 2
        })
        .await
        .unwrap();
    assert_ne!(first.containers.app, second.containers.app, "app recreated");
    assert_eq!(
        first.containers.sandbox, second.containers.sandbox,
        "sandbox kept"
    );
    assert_eq!(
        first.containers.data, second.containers.data,
        "data container kept"
    );
    let history = caas_tests::wait::until("two runs in history", CONVERGE, || async {
        let h = f.docker_exec(&app_name(&f, "keep"), &["cat", "/data/history"])?;
        Ok((h.lines().count() == 2).then_some(h))
    })
    .await
    .unwrap();
    assert_eq!(history.lines().count(), 2, "{history}");
    let image = f
        .docker
        .inspect_container(&app_name(&f, "keep"), None)
        .await
        .unwrap()
        .config
        .unwrap()
        .image;
    assert_eq!(image.as_deref(), Some(v2.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_and_leaves_nothing_behind() {
    let f = NodeFixture::start("bad", "").await.unwrap();
    f.assign(&f.spec("good", "exec sleep 3600")).await.unwrap();

    let mut unknown_image = f.spec("unknown-image", "true");
    unknown_image.image = "caas-test/does-not-exist:1".into();
    let mut bad_memory = f.spec("bad-memory", "true");
    bad_memory.resources.memory = Some("12parsecs".into());
    let mut bad_name = f.spec("bad-name", "true");
    bad_name.name = "Bad_Name".into();
    let mut relative_volume = f.spec("relative-volume", "true");
    relative_volume.volumes = vec!["data/db".into()];
    // Specs the engine can never run: caught by validation (central refuses them the same
    // way), or refused by the engine as invalid and then not retried.
    let mut nul_env = f.spec("nul-env", "true");
    nul_env.env.insert("DB_PASSWORD".into(), "se\0cret".into());
    let mut tiny_cpu = f.spec("tiny-cpu", "true");
    tiny_cpu.resources.cpu = Some("1m".into());
    let mut no_such_command = f.spec("no-such-command", "true");
    no_such_command.command = vec!["/no/such/binary".into()];
    for spec in [
        &unknown_image,
        &bad_memory,
        &relative_volume,
        &nul_env,
        &tiny_cpu,
        &no_such_command,
    ] {
        f.assign(spec).await.unwrap();
    }
    // The znode name is valid, the name inside the spec is not.
    f.put_raw(
        &format!("{}.bad-name", f.pool),
        &serde_json::to_vec(&Assignment::run(bad_name)).unwrap(),
    )
    .await
    .unwrap();
    f.put_raw(&format!("{}.not-json", f.pool), b"{this is not json")
        .await
        .unwrap();

    for (name, code, needle) in [
        (
            "unknown-image",
            "image-not-found",
            "caas-test/does-not-exist:1",
        ),
        ("bad-memory", "invalid-spec", "resources.memory"),
        ("bad-name", "invalid-spec", "name"),
        ("relative-volume", "invalid-spec", "volumes[0]"),
        ("nul-env", "invalid-spec", "env.DB_PASSWORD"),
        ("tiny-cpu", "invalid-spec", "resources.cpu"),
        (
            "no-such-command",
            "engine-refused-spec",
            "cannot run as written",
        ),
        ("not-json", "invalid-assignment", "not a valid assignment"),
    ] {
        let status = f
            .wait_status(name, "an error in the status", CONVERGE, |s| {
                s.last_error.is_some()
            })
            .await
            .unwrap();
        let err = status.last_error.clone().unwrap();
        assert_eq!(err.code, code, "{name}: {err:?}");
        assert!(err.message.contains(needle), "{name}: {}", err.message);
        assert_eq!(status.state, WorkloadState::Failed, "{name}");
        assert_eq!(
            status.containers,
            Default::default(),
            "{name}: nothing created"
        );
    }
    f.wait_status("good", "good running", CONVERGE, |s| {
        s.state == WorkloadState::Running
    })
    .await
    .unwrap();
    let names: Vec<String> = f
        .containers()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        names.len(),
        2,
        "only the good workload's app and sandbox exist: {names:?}"
    );
    assert!(names.iter().all(|n| n.contains(".good")), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_deregisters_and_leaves_containers_running() {
    let mut f = NodeFixture::start("term", "").await.unwrap();
    f.assign(&f.spec("stay", "exec sleep 3600")).await.unwrap();
    f.wait_status("stay", "running", CONVERGE, |s| {
        s.state == WorkloadState::Running
    })
    .await
    .unwrap();
    let before = f.containers().await.unwrap();
    assert!(f.node_registration().await.unwrap().is_some());

    let code = f.agent.terminate().unwrap();
    assert_eq!(code, Some(0), "{}", f.agent_log_tail(20));
    assert!(
        f.node_registration().await.unwrap().is_none(),
        "node znode deleted on SIGTERM"
    );
    let after = f.containers().await.unwrap();
    assert_eq!(before, after);
    let running = f
        .docker
        .inspect_container(&app_name(&f, "stay"), None)
        .await
        .unwrap()
        .state
        .unwrap()
        .running;
    assert_eq!(running, Some(true));
}
