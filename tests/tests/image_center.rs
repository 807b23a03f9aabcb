//! Images reach every node, end to end: an image center and one registry proxy per pool (Debian's
//! docker-registry, TLS from a dev CA, htpasswd) in the fabric, three nodes each with its own
//! Docker engine (two in pool `pa`, one in `pb`), real agents and central. An image pushed to the
//! center is pulled through the pool's proxy by the node a workload lands on (the center serves
//! it once, a second node gets it from the proxy's cache); pool `pb`'s nodes are refused by
//! `pa`'s proxy; a prewarm puts an image on a node before any workload exists; with the center
//! down cached images still start and uncached ones fail `registry-unreachable` and recover on
//! their own; a proxy that is down is named; bad input is refused with the field named.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use caas_api::central::ContainerView;
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::netns::FABRIC_IP;
use caas_tests::registry::{push_local_image, DevCa, Registry};
use caas_tests::wait::until;

const CENTER_USER: &str = "ci";
const CENTER_PASSWORD: &str = "center-secret";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(FABRIC_IP), port)
}

async fn view(c: &Cluster, token: &str, pool: &str, name: &str) -> anyhow::Result<ContainerView> {
    c.container(token, pool, name).await
}

/// Waits until the workload runs; returns its view.
async fn running(c: &Cluster, token: &str, pool: &str, name: &str) -> ContainerView {
    c.wait_running(token, pool, name, Duration::from_secs(120))
        .await
        .unwrap()
}

/// Waits until the workload reports `code` in its last error; returns the message.
async fn failing(c: &Cluster, token: &str, pool: &str, name: &str, code: &str) -> String {
    let v = c
        .wait_last_error(token, pool, name, code, Duration::from_secs(60))
        .await
        .unwrap();
    v.status
        .and_then(|s| s.last_error)
        .map(|e| e.message)
        .unwrap_or_default()
}

async fn create(c: &Cluster, token: &str, pool: &str, name: &str, image: &str, node: &str) {
    let out = c
        .cli(
            0,
            token,
            &[
                &format!("--pool={pool}"),
                "container",
                "create",
                name,
                "--image",
                image,
                "--memory",
                "32Mi",
                "-c",
                &format!("node=={node}"),
                "--",
                "sleep",
                "3600",
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{name}: {out:?}");
}

async fn engine_has(c: &Cluster, node: usize, image: &str) -> bool {
    let engine = c.engines[node].as_ref().unwrap().client().await.unwrap();
    engine.inspect_image(image).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_reach_every_node_through_their_pools_proxy() {
    let nodes = [
        NodeSpec::new("pa", &["node=a1"])
            .with_own_engine()
            .with_config("image_prune = \"keep:0\"\nimage_prune_interval_secs = 1"),
        NodeSpec::new("pa", &["node=a2"]).with_own_engine(),
        NodeSpec::new("pb", &["node=b1"]).with_own_engine(),
    ];
    let c = Cluster::start("imgc", &nodes, 1, 30).await.unwrap();
    let fabric = Some(c.topo.fabric.as_str());
    let ca = DevCa::create(&c.dir.path().join("registries")).unwrap();
    let mut center = Registry::start_center(fabric, addr(5000), &ca, CENTER_USER, CENTER_PASSWORD)
        .await
        .unwrap();
    let mut proxy_a = Registry::start_proxy(
        fabric,
        addr(5001),
        &ca,
        &center,
        CENTER_USER,
        CENTER_PASSWORD,
        "pa-nodes",
        "pa-secret",
    )
    .await
    .unwrap();
    let _proxy_b = Registry::start_proxy(
        fabric,
        addr(5002),
        &ca,
        &center,
        CENTER_USER,
        CENTER_PASSWORD,
        "pb-nodes",
        "pb-secret",
    )
    .await
    .unwrap();
    let center_host = center.host();
    let image = |tag: &str| format!("{center_host}/team/app:{tag}");
    // Tag 5 is another image (a label more), so an upgrade to it leaves tag 1 unused.
    let variant = format!("caas-test/busybox-variant:{}", std::process::id());
    let holder = format!("caas-imgc-variant-{}", std::process::id());
    let run = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "docker {args:?}: {out:?}");
    };
    run(&["create", "--name", &holder, &c.busybox, "true"]);
    run(&[
        "commit",
        "-c",
        "LABEL caas.test.variant=5",
        &holder,
        &variant,
    ]);
    run(&["rm", &holder]);
    push_local_image(
        &ca,
        &center,
        CENTER_USER,
        CENTER_PASSWORD,
        &variant,
        "team/app:5",
        fabric,
    )
    .await
    .unwrap();
    run(&["rmi", &variant]);
    for tag in ["1", "2", "3", "4"] {
        push_local_image(
            &ca,
            &center,
            CENTER_USER,
            CENTER_PASSWORD,
            &c.busybox,
            &format!("team/app:{tag}"),
            fabric,
        )
        .await
        .unwrap();
    }
    let admin = c.admin_token.clone();
    let pa = c.create_pool("pa").await.unwrap();
    let pb = c.create_pool("pb").await.unwrap();
    let files = c.dir.path();
    std::fs::write(files.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(files.join("pa.pw"), "pa-secret\n").unwrap();
    std::fs::write(files.join("pb.pw"), "pb-secret\n").unwrap();
    let ca_file = files.join("ca.pem").display().to_string();

    // Bad input first: refused naming the flag or field, nothing written.
    let before = c.dump().await.unwrap();
    let out = c
        .cli(
            0,
            &pa,
            &[
                "--pool=pa",
                "registry-proxy",
                "add",
                "site-a",
                "ftp://198.18.0.1:5001",
                "--center",
                &center_host,
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(64), "{out:?}");
    assert!(
        out.stderr.contains("URL") && out.stderr.contains("https"),
        "{}",
        out.stderr
    );
    let out = c
        .cli(
            0,
            &pa,
            &[
                "--pool=pa",
                "registry-proxy",
                "add",
                "site-a",
                "not a url",
                "--center",
                &center_host,
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(64), "{out:?}");
    let out = c
        .cli(
            0,
            &pa,
            &[
                "--pool=pa",
                "container",
                "create",
                "bad",
                "--image",
                &format!("{center_host}/Team/App:1"),
            ],
        )
        .await
        .unwrap();
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("image"), "{}", out.stderr);
    assert_eq!(
        c.dump().await.unwrap(),
        before,
        "refused requests wrote nothing"
    );

    // Each pool declares its own proxy.
    for (pool, token, name, port, user, pw) in [
        ("pa", &pa, "site-a", 5001, "pa-nodes", "pa.pw"),
        ("pb", &pb, "site-b", 5002, "pb-nodes", "pb.pw"),
    ] {
        let out = c
            .cli(
                0,
                token,
                &[
                    &format!("--pool={pool}"),
                    "registry-proxy",
                    "add",
                    name,
                    &format!("https://{}", addr(port)),
                    "--center",
                    &center_host,
                    "--ca-file",
                    &ca_file,
                    "--username",
                    user,
                    "--password-file",
                    &files.join(pw).display().to_string(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let out = c
        .cli(0, &pa, &["--pool=pa", "registry-proxy", "ls"])
        .await
        .unwrap();
    assert!(
        out.stdout.contains("site-a") && !out.stdout.contains("site-b"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("pa-secret"));

    // A fresh node pulls through its pool's proxy; the center serves the blobs.
    assert!(!engine_has(&c, 0, &image("1")).await);
    create(&c, &pa, "pa", "web", &image("1"), "a1").await;
    let web = running(&c, &pa, "pa", "web").await;
    assert_eq!(web.node, c.node_ids[0]);
    assert!(
        engine_has(&c, 0, &image("1")).await,
        "kept under the center's name"
    );
    let center_blobs = center.count_fetches("/v2/team/app/blobs/");
    assert!(center_blobs >= 1, "{}", center.access_log());
    assert!(proxy_a.blob_count() >= 1, "the proxy cached the blobs");

    // A second node of the pool: from the proxy's cache, the center untouched.
    create(&c, &pa, "pa", "web2", &image("1"), "a2").await;
    running(&c, &pa, "pa", "web2").await;
    assert_eq!(
        center.count_fetches("/v2/team/app/blobs/"),
        center_blobs,
        "{}",
        center.access_log()
    );

    // Pool pb's node through pa's proxy (with pb's credentials): refused by the proxy itself.
    let out = c
        .cli(
            0,
            &pb,
            &[
                "--pool=pb",
                "registry-proxy",
                "add",
                "steal",
                &format!("https://{}", addr(5001)),
                "--center",
                &center_host,
                "--ca-file",
                &ca_file,
                "--username",
                "pb-nodes",
                "--password-file",
                &files.join("pb.pw").display().to_string(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = c
        .cli(0, &pb, &["--pool=pb", "registry-proxy", "rm", "site-b"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    create(&c, &pb, "pb", "thief", &image("1"), "b1").await;
    let message = failing(&c, &pb, "pb", "thief", "registry-unauthorized").await;
    assert!(message.contains("steal"), "{message}");
    assert!(!engine_has(&c, 2, &image("1")).await);
    let _ = admin;

    // Prewarm: the image is on the chosen node before any workload exists; the later create
    // pulls nothing.
    let out = c
        .cli(
            0,
            &pa,
            &[
                "--pool=pa",
                "image",
                "prewarm",
                &image("2"),
                "-c",
                "node==a2",
                "--watch",
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains(&format!("{}: done", c.node_ids[1])),
        "{}",
        out.stdout
    );
    assert!(engine_has(&c, 1, &image("2")).await);
    assert!(
        !engine_has(&c, 0, &image("2")).await,
        "only the chosen node"
    );
    let proxy_manifests = proxy_a.count_fetches("/manifests/2");
    create(&c, &pa, "pa", "warm", &image("2"), "a2").await;
    running(&c, &pa, "pa", "warm").await;
    assert_eq!(
        proxy_a.count_fetches("/manifests/2"),
        proxy_manifests,
        "no pull for a prewarmed image"
    );

    // An upgrade: the new image is prewarmed on the node running the app before anything
    // changes, then the app is replaced; an upgrade to an image a node cannot get stops with
    // nothing changed.
    let before = view(&c, &pa, "pa", "web").await.unwrap();
    let old_app = before.status.unwrap().containers.app.unwrap();
    let out = c
        .cli(
            0,
            &pa,
            &[
                "--pool=pa",
                "container",
                "upgrade",
                "web",
                "--image",
                &image("5"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    let prewarmed = out.stdout.find(&format!("{}: done", c.node_ids[0]));
    let switched = out.stdout.find("now on");
    assert!(
        prewarmed.is_some() && prewarmed < switched,
        "{}",
        out.stdout
    );
    let upgraded = until("web on the new image", Duration::from_secs(60), || async {
        let v = view(&c, &pa, "pa", "web").await?;
        let s = v.status.clone().unwrap();
        Ok((s.generation == 2 && s.state == caas_api::WorkloadState::Running).then_some(v))
    })
    .await
    .unwrap();
    assert_eq!(upgraded.spec.image, image("5"));
    assert_ne!(upgraded.status.unwrap().containers.app.unwrap(), old_app);
    // a1 prunes with "keep:0": the old image, which nothing there names any more, goes; the
    // images its workloads use stay.
    // (An image the node used is kept a minute after its last use: a container may be about
    // to be created from it.)
    until(
        "a1 pruned the old image",
        Duration::from_secs(120),
        || async { Ok((!engine_has(&c, 0, &image("1")).await).then_some(())) },
    )
    .await
    .unwrap();
    assert!(engine_has(&c, 0, &image("5")).await);
    assert!(
        engine_has(&c, 1, &image("1")).await,
        "a2 has no prune policy of keep:0"
    );
    let out = c
        .cli(
            0,
            &pa,
            &[
                "--pool=pa",
                "container",
                "upgrade",
                "web2",
                "--image",
                &image("nope"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("not upgraded"), "{}", out.stdout);
    let web2 = view(&c, &pa, "pa", "web2").await.unwrap();
    assert_eq!(
        (web2.spec.image.as_str(), web2.spec.generation),
        (image("1").as_str(), 1)
    );

    // The center down: what the proxy cached still starts on a node that never had it;
    // what it never saw fails and recovers on its own once the center is back. The proxy
    // (distribution 2.8) answers "manifest unknown" for an uncached tag whether the center
    // lacks it or cannot be reached, so the node reports image-not-found and says that.
    center.stop();
    create(&c, &pa, "pa", "cached", &image("2"), "a1").await;
    running(&c, &pa, "pa", "cached").await;
    create(&c, &pa, "pa", "uncached", &image("3"), "a1").await;
    let message = failing(&c, &pa, "pa", "uncached", "image-not-found").await;
    assert!(
        message.contains("site-a") && message.contains("cannot reach the image center"),
        "{message}"
    );
    center.restart().await.unwrap();
    running(&c, &pa, "pa", "uncached").await;

    // The proxy down: named in the error; recovers when it is back.
    proxy_a.stop();
    create(&c, &pa, "pa", "noproxy", &image("4"), "a1").await;
    let message = failing(&c, &pa, "pa", "noproxy", "registry-unreachable").await;
    assert!(
        message.contains("site-a") && message.contains(&addr(5001).to_string()),
        "{message}"
    );
    proxy_a.restart().await.unwrap();
    running(&c, &pa, "pa", "noproxy").await;

    // A tag that does not exist: image-not-found, nothing of the workload created.
    create(&c, &pa, "pa", "typo", &image("nope"), "a1").await;
    let message = failing(&c, &pa, "pa", "typo", "image-not-found").await;
    assert!(message.contains("site-a"), "{message}");
    let v = view(&c, &pa, "pa", "typo").await.unwrap();
    let status = v.status.unwrap();
    assert_eq!(
        status.containers,
        Default::default(),
        "nothing half made: {status:?}"
    );
}
