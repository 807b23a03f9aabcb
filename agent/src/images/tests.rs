//! The puller against the in-memory engine and its fake registry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use caas_api::{Assignment, RegistryProxy, WorkloadKey, WorkloadSpec, WorkloadState};
use tokio::sync::watch;

use super::{Availability, Puller};
use crate::codes::EngineCode;
use crate::reconcile::{DesiredState, Reconciler, ReconcilerConfig};
use crate::runtime::fake::FakeRuntime;
use crate::runtime::PullFailure;

const CENTER: &str = "center.example:5000";
const PROXY: &str = "proxy.pool1:5001";
const PAUSE: &str = "caas/pause:test";

fn proxy(name: &str, host: &str, credentials: Option<(&str, &str)>) -> RegistryProxy {
    RegistryProxy {
        version: 1,
        name: name.into(),
        pool: "p1".into(),
        host: host.into(),
        center: CENTER.into(),
        ca_pem: None,
        username: credentials.map(|c| c.0.to_string()),
        password: credentials.map(|c| c.1.to_string()),
        created_at: 0,
    }
}

fn make(
    fake: &Arc<FakeRuntime>,
    proxies: Vec<RegistryProxy>,
) -> (
    Arc<Puller<FakeRuntime>>,
    watch::Sender<Arc<Vec<RegistryProxy>>>,
) {
    let (tx, rx) = watch::channel(Arc::new(proxies));
    (
        Arc::new(Puller::new(fake.clone(), "p1".into(), None, rx)),
        tx,
    )
}

/// Resolves until the pull is over (the pull runs on a task of its own).
async fn settle(
    puller: &Arc<Puller<FakeRuntime>>,
    image: &str,
) -> Result<Availability, super::ImageError> {
    for _ in 0..200 {
        match puller.resolve(image).await {
            Ok(Availability::Pulling(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
            other => {
                if other.is_err() || matches!(other, Ok(Availability::Local { .. })) {
                    return other;
                }
            }
        }
    }
    panic!("the pull of {image} never ended");
}

#[tokio::test]
async fn a_local_image_is_used_as_it_is_and_nothing_is_pulled() {
    let fake = Arc::new(FakeRuntime::with_images(&["app:1"]));
    let (puller, _tx) = make(&fake, vec![proxy("site1", PROXY, None)]);
    let got = puller.resolve("app:1").await.unwrap();
    assert!(matches!(got, Availability::Local { reference, .. } if reference == "app:1"));
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn a_center_image_is_pulled_through_the_pool_proxy_and_kept_under_its_center_name() {
    let fake = Arc::new(FakeRuntime::default());
    let image = format!("{CENTER}/team/app:1.4");
    fake.add_to_registry(
        &format!("{PROXY}/team/app:1.4"),
        &[("a", "b")],
        Some(("u", "pw")),
    );
    let (puller, _tx) = make(&fake, vec![proxy("site1", PROXY, Some(("u", "pw")))]);
    let first = puller.resolve(&image).await.unwrap();
    assert!(
        matches!(&first, Availability::Pulling(p) if p.via == PROXY && p.image == image),
        "{first:?}"
    );
    let got = settle(&puller, &image).await.unwrap();
    let Availability::Local { reference, labels } = got else {
        unreachable!()
    };
    assert_eq!(reference, image);
    assert_eq!(labels.get("a").map(String::as_str), Some("b"));
    let pulls: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("pull"))
        .collect();
    assert_eq!(
        pulls,
        [format!("pull {PROXY}/team/app:1.4")],
        "one pull, through the proxy"
    );
}

#[tokio::test]
async fn failures_say_which_proxy_and_what_and_are_not_retried_before_their_backoff() {
    let fake = Arc::new(FakeRuntime::default());
    let image = format!("{CENTER}/team/app:1.4");
    fake.add_to_registry(&format!("{PROXY}/team/app:1.4"), &[], Some(("u", "right")));
    let (pl, tx) = make(&fake, vec![proxy("site1", PROXY, Some(("u", "wrong")))]);
    let puller = pl;
    let err = settle(&puller, &image).await.unwrap_err();
    assert_eq!(err.code, EngineCode::Unauthorized);
    assert!(
        err.message.contains("site1") && err.message.contains(PROXY),
        "{}",
        err.message
    );
    // Within the backoff the same failure is answered without asking the engine again.
    let pulls_before = fake.calls().len();
    assert_eq!(
        puller.resolve(&image).await.unwrap_err().code,
        EngineCode::Unauthorized
    );
    assert_eq!(fake.calls().len(), pulls_before);

    fake.fail_pulls(Some(PullFailure::Unreachable));
    tx.send_replace(Arc::new(vec![proxy("site1", PROXY, Some(("u", "right")))]));
    assert_eq!(
        puller.last_failure(&image).unwrap().code,
        EngineCode::Unauthorized
    );

    // Not from the center, or no proxy for its registry: a clear image-not-found, no pull.
    let fresh = Arc::new(FakeRuntime::default());
    let (p, _tx2) = make(&fresh, vec![]);
    let err = p.resolve(&image).await.unwrap_err();
    assert_eq!(err.code, EngineCode::ImageNotFound);
    assert!(
        err.message.contains("registry-proxy add"),
        "{}",
        err.message
    );
    let err = p.resolve("team/app:1").await.unwrap_err();
    assert!(err.message.contains("names no registry"), "{}", err.message);
    assert!(fresh.calls().is_empty());
}

#[tokio::test]
async fn a_digest_reference_is_used_under_the_proxy_name() {
    let fake = Arc::new(FakeRuntime::default());
    let digest = format!("sha256:{}", "ab".repeat(32));
    let image = format!("{CENTER}/app@{digest}");
    let via_proxy = format!("{PROXY}/app@{digest}");
    fake.add_to_registry(&via_proxy, &[], None);
    let (puller, _tx) = make(&fake, vec![proxy("site1", PROXY, None)]);
    let got = settle(&puller, &image).await.unwrap();
    assert!(matches!(got, Availability::Local { reference, .. } if reference == via_proxy));
    assert!(!fake.calls().iter().any(|c| c.starts_with("tag")));
}

#[tokio::test]
async fn a_pull_that_hangs_is_given_up_as_registry_unreachable() {
    let fake = Arc::new(FakeRuntime::default());
    let image = format!("{CENTER}/team/app:1.4");
    fake.add_to_registry(&format!("{PROXY}/team/app:1.4"), &[], None);
    fake.hang_pulls(true);
    let (tx, rx) = watch::channel(Arc::new(vec![proxy("site1", PROXY, None)]));
    let puller = Arc::new(
        Puller::new(fake.clone(), "p1".into(), None, rx)
            .with_stall_after(Duration::from_millis(50)),
    );
    let err = settle(&puller, &image).await.unwrap_err();
    assert_eq!(err.code, EngineCode::RegistryUnreachable);
    assert!(
        err.message.contains("no progress") && err.message.contains("site1"),
        "{}",
        err.message
    );
    drop(tx);
}

fn spec(image: &str) -> WorkloadSpec {
    serde_json::from_value(serde_json::json!({
        "pool": "p1", "name": "web", "image": image,
        "resources": {"memory": "64Mi", "cpu": "250m"}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_workload_waits_for_its_pull_with_progress_and_nothing_created_then_runs() {
    let fake = Arc::new(FakeRuntime::with_images(&[PAUSE]));
    let image = format!("{CENTER}/team/app:2");
    fake.add_to_registry(&format!("{PROXY}/team/app:2"), &[], None);
    let (puller, _tx) = make(&fake, vec![proxy("site1", PROXY, None)]);
    let r = Reconciler::new(
        fake.clone(),
        ReconcilerConfig {
            node_id: "n1".into(),
            pool: "p1".into(),
            name_prefix: "caas".into(),
            sandbox_image: PAUSE.into(),
            data_image: PAUSE.into(),
            stop_grace: Duration::from_secs(1),
        },
    )
    .with_images(puller.clone());
    let key = WorkloadKey::new("p1", "web");
    let want = DesiredState {
        authoritative: true,
        workloads: [(key.clone(), Ok(Assignment::run(spec(&image))))].into(),
    };
    let first = r.pass(&want, &BTreeMap::new()).await.unwrap();
    let status = &first.statuses[&key];
    assert_eq!(status.state, WorkloadState::Pending);
    assert!(status.last_error.is_none(), "{status:?}");
    assert_eq!(status.pull.as_ref().map(|p| p.via.as_str()), Some(PROXY));
    assert!(fake.names().is_empty(), "nothing is created while pulling");
    settle(&puller, &image).await.unwrap();
    let second = r.pass(&want, &first.statuses).await.unwrap();
    let status = &second.statuses[&key];
    assert_eq!(status.state, WorkloadState::Running, "{status:?}");
    assert!(status.pull.is_none());
    assert_eq!(fake.request("caas.p1.web").unwrap().image, image);
}
