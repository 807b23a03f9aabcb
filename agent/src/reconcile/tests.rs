//! Reconciler behaviour against the in-memory engine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use caas_api::{Assignment, WorkloadKey, WorkloadSpec, WorkloadState};

use super::{DesiredState, Reconciler, ReconcilerConfig};
use crate::runtime::fake::FakeRuntime;

const PAUSE: &str = "caas/pause:test";

fn reconciler(fake: Arc<FakeRuntime>) -> Reconciler<FakeRuntime> {
    Reconciler::new(
        fake,
        ReconcilerConfig {
            node_id: "n1".into(),
            pool: "p1".into(),
            name_prefix: "caas".into(),
            sandbox_image: PAUSE.into(),
            data_image: PAUSE.into(),
            stop_grace: Duration::from_secs(1),
        },
    )
}

fn spec(name: &str, image: &str) -> WorkloadSpec {
    serde_json::from_value(serde_json::json!({
        "pool": "p1", "name": name, "image": image,
        "resources": {"memory": "64Mi", "cpu": "250m", "pids": 50},
        "volumes": ["/data"]
    }))
    .unwrap()
}

fn desired(specs: &[WorkloadSpec]) -> DesiredState {
    DesiredState {
        authoritative: true,
        workloads: specs
            .iter()
            .map(|s| {
                (
                    WorkloadKey::new(&s.pool, &s.name),
                    Ok(Assignment::run(s.clone())),
                )
            })
            .collect(),
    }
}

#[tokio::test]
async fn creates_data_sandbox_and_app_with_limits() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let out = r
        .pass(&desired(&[spec("web", "app:1")]), &BTreeMap::new())
        .await
        .unwrap();
    let status = &out.statuses[&WorkloadKey::new("p1", "web")];
    assert_eq!(status.state, WorkloadState::Running, "{status:?}");
    assert!(status.last_error.is_none());
    let mut names = fake.names();
    names.sort();
    assert_eq!(
        names,
        ["caas.p1.web", "caas.p1.web.data", "caas.p1.web.sandbox"]
    );
    let app = fake.request("caas.p1.web").unwrap();
    assert_eq!(app.memory, Some(64 << 20));
    assert_eq!(app.nano_cpus, Some(250_000_000));
    assert_eq!(app.pids_limit, Some(50));
    assert_eq!(
        app.network_mode.as_deref(),
        Some(format!("container:{}", status.containers.sandbox.as_ref().unwrap()).as_str())
    );
    assert_eq!(
        app.volumes_from,
        vec![status.containers.data.clone().unwrap()]
    );
    // Hardened by default: no new privileges anywhere, no capability at all for the pause
    // containers, and the app without device nodes, file capabilities, chroot or audit.
    assert!(app.no_new_privileges);
    assert!(!app.read_only_root, "only when the spec asks");
    assert_eq!(
        app.cap_drop,
        ["MKNOD", "SETFCAP", "SYS_CHROOT", "AUDIT_WRITE"]
    );
    for infra in ["caas.p1.web.data", "caas.p1.web.sandbox"] {
        let r = fake.request(infra).unwrap();
        assert!(r.no_new_privileges, "{infra}");
        assert_eq!(r.cap_drop, ["ALL"], "{infra}");
        assert_eq!(
            (r.pids_limit, r.memory),
            (Some(16), Some(32 << 20)),
            "{infra}"
        );
    }
}

#[tokio::test]
async fn second_pass_touches_nothing() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let d = desired(&[spec("web", "app:1")]);
    r.pass(&d, &BTreeMap::new()).await.unwrap();
    fake.clear_calls();
    let r2 = reconciler(fake.clone()); // a restarted agent: no memory but the labels
    r2.pass(&d, &BTreeMap::new()).await.unwrap();
    assert!(
        fake.calls().is_empty(),
        "a converged workload must not be touched: {:?}",
        fake.calls()
    );
}

#[tokio::test]
async fn new_image_recreates_only_the_app() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1", "app:2"]));
    let r = reconciler(fake.clone());
    let first = r
        .pass(&desired(&[spec("web", "app:1")]), &BTreeMap::new())
        .await
        .unwrap();
    let second = r
        .pass(&desired(&[spec("web", "app:2")]), &BTreeMap::new())
        .await
        .unwrap();
    let key = WorkloadKey::new("p1", "web");
    let (a, b) = (
        &first.statuses[&key].containers,
        &second.statuses[&key].containers,
    );
    assert_eq!(a.sandbox, b.sandbox);
    assert_eq!(a.data, b.data);
    assert_ne!(a.app, b.app);
    assert_eq!(fake.request("caas.p1.web").unwrap().image, "app:2");
}

#[tokio::test]
async fn unknown_image_creates_nothing_and_reports() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE]));
    let r = reconciler(fake.clone());
    let out = r
        .pass(&desired(&[spec("web", "nope:1")]), &BTreeMap::new())
        .await
        .unwrap();
    let status = &out.statuses[&WorkloadKey::new("p1", "web")];
    assert_eq!(status.state, WorkloadState::Failed);
    assert_eq!(status.last_error.as_ref().unwrap().code, "image-not-found");
    assert!(fake.names().is_empty());
}

#[tokio::test]
async fn failure_midway_removes_what_it_created_and_others_still_run() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    fake.fail_create_of("caas.p1.bad");
    let r = reconciler(fake.clone());
    let out = r
        .pass(
            &desired(&[spec("bad", "app:1"), spec("good", "app:1")]),
            &BTreeMap::new(),
        )
        .await
        .unwrap();
    assert!(out.statuses[&WorkloadKey::new("p1", "bad")]
        .last_error
        .is_some());
    assert_eq!(
        out.statuses[&WorkloadKey::new("p1", "good")].state,
        WorkloadState::Running
    );
    assert!(
        fake.names().iter().all(|n| !n.contains(".bad")),
        "{:?}",
        fake.names()
    );
}

#[tokio::test]
async fn invalid_spec_is_reported_with_its_field() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let mut s = spec("web", "app:1");
    s.resources.memory = Some("12parsecs".into());
    let out = r.pass(&desired(&[s]), &BTreeMap::new()).await.unwrap();
    let err = out.statuses[&WorkloadKey::new("p1", "web")]
        .last_error
        .clone()
        .unwrap();
    assert_eq!(err.code, "invalid-spec");
    assert!(err.message.contains("resources.memory"), "{}", err.message);
    assert!(fake.names().is_empty());
}

#[tokio::test]
async fn a_spec_the_engine_calls_invalid_fails_leaves_nothing_and_waits_for_a_new_one() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    fake.refuse_spec_of("caas.p1.web");
    let r = reconciler(fake.clone());
    let first = spec("web", "app:1");
    let out = r
        .pass(&desired(std::slice::from_ref(&first)), &BTreeMap::new())
        .await
        .unwrap();
    let status = &out.statuses[&WorkloadKey::new("p1", "web")];
    assert_eq!(status.state, WorkloadState::Failed);
    assert_eq!(
        status.last_error.as_ref().unwrap().code,
        "engine-refused-spec"
    );
    assert!(fake.names().is_empty(), "{:?}", fake.names());
    let key = WorkloadKey::new("p1", "web");
    assert!(r.waits_for_new_spec(&key).await);
    // The same assignment again: not attempted (no engine call), the failure still reported.
    let calls = fake.calls().len();
    let out = r
        .pass(&desired(std::slice::from_ref(&first)), &out.statuses)
        .await
        .unwrap();
    assert_eq!(fake.calls().len(), calls, "{:?}", fake.calls());
    assert_eq!(
        out.statuses[&WorkloadKey::new("p1", "web")].state,
        WorkloadState::Failed
    );
    // A new assignment is attempted at once.
    let mut second = first;
    second.generation += 1;
    second.env.insert("MODE".into(), "fixed".into());
    r.pass(&desired(&[second]), &out.statuses).await.unwrap();
    assert!(fake.calls().len() > calls, "{:?}", fake.calls());
    assert!(
        r.waits_for_new_spec(&key).await,
        "refused again, parked again"
    );
}

#[tokio::test(start_paused = true)]
async fn unassigned_workloads_are_stopped_in_parallel() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let specs: Vec<WorkloadSpec> = (1..=4).map(|i| spec(&format!("w{i}"), "app:1")).collect();
    let out = r.pass(&desired(&specs), &BTreeMap::new()).await.unwrap();
    assert_eq!(out.statuses.len(), 4);
    fake.stops_take(Duration::from_secs(10));
    let out = r.pass(&desired(&[]), &out.statuses).await.unwrap();
    assert_eq!(out.removed.len(), 4, "{:?}", out.removed);
    assert_eq!(
        fake.most_concurrent_stops(),
        4,
        "the four apps' grace periods overlap"
    );
    let left = fake.names();
    assert!(
        left.len() == 4 && left.iter().all(|n| n.ends_with(".data")),
        "only the data containers stay: {left:?}"
    );
}

#[tokio::test]
async fn unassigned_keeps_data_until_purge() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let s = spec("web", "app:1");
    r.pass(&desired(std::slice::from_ref(&s)), &BTreeMap::new())
        .await
        .unwrap();
    let out = r.pass(&desired(&[]), &BTreeMap::new()).await.unwrap();
    assert_eq!(out.removed, vec![WorkloadKey::new("p1", "web")]);
    assert_eq!(fake.names(), ["caas.p1.web.data"]);
    let mut purge = desired(&[]);
    purge
        .workloads
        .insert(WorkloadKey::new("p1", "web"), Ok(Assignment::purge(s)));
    let out = r.pass(&purge, &BTreeMap::new()).await.unwrap();
    assert_eq!(out.purged, vec![WorkloadKey::new("p1", "web")]);
    assert!(fake.names().is_empty());
}

#[tokio::test]
async fn non_authoritative_view_removes_nothing() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    r.pass(&desired(&[spec("web", "app:1")]), &BTreeMap::new())
        .await
        .unwrap();
    let out = r
        .pass(&DesiredState::default(), &BTreeMap::new())
        .await
        .unwrap();
    assert!(out.removed.is_empty());
    assert_eq!(fake.names().len(), 3);
}

#[tokio::test]
async fn stopped_app_is_started_again_without_recreate() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let d = desired(&[spec("web", "app:1")]);
    let first = r.pass(&d, &BTreeMap::new()).await.unwrap();
    fake.kill("caas.p1.web");
    let second = r.pass(&d, &BTreeMap::new()).await.unwrap();
    let key = WorkloadKey::new("p1", "web");
    assert_eq!(
        first.statuses[&key].containers.app,
        second.statuses[&key].containers.app
    );
    assert_eq!(second.statuses[&key].state, WorkloadState::Running);
}

#[tokio::test]
async fn engine_down_is_an_error_not_a_removal() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let d = desired(&[spec("web", "app:1")]);
    r.pass(&d, &BTreeMap::new()).await.unwrap();
    fake.set_down(true);
    assert!(r.pass(&d, &BTreeMap::new()).await.is_err());
    fake.set_down(false);
    assert_eq!(fake.names().len(), 3);
}

#[tokio::test]
async fn another_pools_workload_is_refused() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let mut s = spec("web", "app:1");
    s.pool = "p2".into();
    let out = r.pass(&desired(&[s]), &BTreeMap::new()).await.unwrap();
    let status = &out.statuses[&WorkloadKey::new("p2", "web")];
    assert_eq!(status.last_error.as_ref().unwrap().code, "wrong-pool");
    assert_eq!(status.state, WorkloadState::Failed);
    assert!(fake.names().is_empty());
}

#[tokio::test]
async fn a_vanished_data_container_is_not_replaced_by_an_empty_one() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let d = desired(&[spec("db", "app:1")]);
    let first = r.pass(&d, &BTreeMap::new()).await.unwrap();
    let data = first.statuses[&WorkloadKey::new("p1", "db")]
        .containers
        .data
        .clone()
        .unwrap();
    // Someone prunes the data container behind the agent's back.
    crate::runtime::ContainerRuntime::remove(&*fake, &data, false)
        .await
        .unwrap();
    fake.clear_calls();
    let second = r.pass(&d, &BTreeMap::new()).await.unwrap();
    let status = &second.statuses[&WorkloadKey::new("p1", "db")];
    assert_eq!(status.last_error.as_ref().unwrap().code, "data-missing");
    assert!(
        !fake.names().contains(&"caas.p1.db.data".to_string()),
        "no empty replacement"
    );
    assert_eq!(
        status.state,
        WorkloadState::Running,
        "the app keeps running"
    );
    assert!(
        fake.calls()
            .iter()
            .all(|c| !c.starts_with("stop") && !c.starts_with("remove")),
        "{:?}",
        fake.calls()
    );
}

fn rich_assignment(name: &str, image: &str, keys: &[&str]) -> DesiredState {
    let mut s = spec(name, image);
    s.rich = true;
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    DesiredState {
        authoritative: true,
        workloads: [(
            WorkloadKey::new("p1", name),
            Ok(Assignment::run_with_keys(s, &keys)),
        )]
        .into_iter()
        .collect(),
    }
}

#[tokio::test]
async fn rich_workloads_get_keys_before_start_logs_in_data_and_programs_in_status() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE]));
    fake.add_image_with_labels("sofa:1", &[("caas.image.contract", "sofa/1")]);
    let r = reconciler(fake.clone());
    let wanted = rich_assignment("vm", "sofa:1", &["ssh-ed25519 AAAA ops"]);
    let out = r.pass(&wanted, &BTreeMap::new()).await.unwrap();
    let status = &out.statuses[&WorkloadKey::new("p1", "vm")];
    assert_eq!(status.state, WorkloadState::Running, "{status:?}");
    let app = status.containers.app.clone().unwrap();
    // The keys are written between create and start, so sshd never starts without them.
    let calls = fake.calls();
    let pos = |needle: &str| calls.iter().position(|c| c.starts_with(needle)).unwrap();
    assert!(pos("create caas.p1.vm") < pos(&format!("upload {app}")));
    assert!(pos(&format!("upload {app}")) < pos(&format!("start {app}")));
    assert_eq!(
        fake.file(&app, "/home/admin/.ssh/authorized_keys")
            .as_deref(),
        Some(&b"ssh-ed25519 AAAA ops\n"[..])
    );
    let data = fake.request("caas.p1.vm.data").unwrap();
    assert_eq!(data.volumes, ["/data", "/home/admin/logs"]);
    assert!(fake
        .request("caas.p1.vm")
        .unwrap()
        .env
        .contains(&"CAAS_VOLUMES=/data:/home/admin/logs".to_string()));

    // Unchanged keys are not written again; the monitor's view shows in the status.
    fake.put_file(
        &app,
        "/run/caas/status.json",
        br#"{"programs":[{"name":"app","state":"FATAL","pid":0,"restarts":3,"log_tail":["sofa-app: no start script"]}]}"#,
    );
    fake.clear_calls();
    let out = r.pass(&wanted, &out.statuses).await.unwrap();
    assert!(
        fake.calls().iter().all(|c| !c.starts_with("upload")),
        "{:?}",
        fake.calls()
    );
    let status = &out.statuses[&WorkloadKey::new("p1", "vm")];
    assert_eq!(status.programs[0].state, "FATAL");
    let error = status.last_error.as_ref().unwrap();
    assert_eq!(error.code, "app-fatal");
    assert!(
        error.message.contains("no start script"),
        "{}",
        error.message
    );

    // New pool keys are written in place: no container is recreated or restarted.
    fake.clear_calls();
    let rotated = rich_assignment("vm", "sofa:1", &["ssh-ed25519 BBBB ops2"]);
    r.pass(&rotated, &out.statuses).await.unwrap();
    assert_eq!(fake.calls(), [format!("upload {app} /")]);
}

#[tokio::test]
async fn rich_on_an_image_without_the_contract_is_refused_and_leaves_nothing() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let out = r
        .pass(&rich_assignment("vm", "app:1", &["k"]), &BTreeMap::new())
        .await
        .unwrap();
    let status = &out.statuses[&WorkloadKey::new("p1", "vm")];
    assert_eq!(status.state, WorkloadState::Failed);
    assert_eq!(status.last_error.as_ref().unwrap().code, "not-rich-image");
    assert!(fake.names().is_empty(), "{:?}", fake.names());
}

#[tokio::test]
async fn a_settled_workload_costs_no_engine_call_until_something_changes() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE, "app:1"]));
    let r = reconciler(fake.clone());
    let d = desired(&[spec("web", "app:1")]);
    let first = r.pass(&d, &BTreeMap::new()).await.unwrap();
    // The pass after a change looks in full once, then the workload is settled.
    let second = r.pass(&d, &first.statuses).await.unwrap();
    let reads = fake.reads();
    let third = r.pass(&d, &second.statuses).await.unwrap();
    assert_eq!(fake.reads(), reads, "a settled workload is not inspected");
    assert_eq!(third.statuses, second.statuses);
    // The app stops: the listing differs, so the next pass converges in full and starts it.
    fake.kill("caas.p1.web");
    fake.clear_calls();
    let fourth = r.pass(&d, &third.statuses).await.unwrap();
    assert!(fake.reads() > reads);
    assert!(
        fake.calls().iter().any(|c| c.starts_with("start")),
        "{:?}",
        fake.calls()
    );
    assert_eq!(
        fourth.statuses[&WorkloadKey::new("p1", "web")].state,
        WorkloadState::Running
    );
    // A new assignment (here: a new generation) is never answered from the settled status.
    let mut next = spec("web", "app:1");
    next.generation = 2;
    let reads = fake.reads();
    r.pass(&desired(&[next]), &fourth.statuses).await.unwrap();
    assert!(fake.reads() > reads);
}
