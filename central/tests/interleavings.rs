//! Property test: random interleavings of creates, deletes, reschedules, node losses and
//! returns, leader passes and stale caches, across two central instances, never over-commit a
//! node and never run two copies of one (pool, name). Each case is one interleaving; CI runs
//! 10,000 of them (`PROPTEST_CASES` overrides).

#![allow(clippy::unwrap_used)] // the property runs outside #[test] fns

mod support;

use std::time::Duration;

use caas_central::leader::tick_at;
use futures::future::join;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{container, node_info, Instance, World};

const GI: u64 = 1 << 30;
const NODES: [&str; 3] = ["n1", "n2", "n3"];
const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Debug, Clone)]
enum Step {
    /// A create; `net` attaches it to the overlay network (an address allocated).
    Create {
        at: usize,
        name: usize,
        cpu: u64,
        data: bool,
        net: bool,
    },
    Delete {
        at: usize,
        name: usize,
        purge: bool,
    },
    Reschedule {
        at: usize,
        name: usize,
        force: bool,
    },
    Kill(usize),
    Revive(usize),
    /// A leader pass `advance` seconds after the previous one.
    Tick {
        advance: u64,
    },
    Freeze(usize),
    Thaw(usize),
    /// Two creates in flight at once on the two instances.
    Race {
        a: usize,
        b: usize,
        cpu: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let at = 0..2usize;
    let name = 0..NAMES.len();
    let cpu = prop_oneof![Just(250u64), Just(500), Just(1000)];
    prop_oneof![
        4 => (at.clone(), name.clone(), cpu.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(at, name, cpu, data, net)| Step::Create { at, name, cpu, data, net }),
        2 => (at.clone(), name.clone(), any::<bool>())
            .prop_map(|(at, name, purge)| Step::Delete { at, name, purge }),
        1 => (at.clone(), name.clone(), any::<bool>())
            .prop_map(|(at, name, force)| Step::Reschedule { at, name, force }),
        1 => (0..NODES.len()).prop_map(Step::Kill),
        1 => (0..NODES.len()).prop_map(Step::Revive),
        2 => (0..45u64).prop_map(|advance| Step::Tick { advance }),
        1 => at.clone().prop_map(Step::Freeze),
        1 => at.clone().prop_map(Step::Thaw),
        2 => (name.clone(), name, cpu).prop_map(|(a, b, cpu)| Step::Race { a, b, cpu }),
    ]
}

fn spec(name: usize, cpu: u64, data: bool, net: bool) -> Value {
    let mut body = container(NAMES[name], &format!("{cpu}m"), "64Mi");
    if data {
        body["volumes"] = json!(["/data"]);
    }
    if net {
        body["networks"] = json!([{"network": "ov"}]);
    }
    body
}

async fn create(at: &Instance, token: &str, body: Value) -> u16 {
    let (status, answer) = at
        .call("POST", "/v1/pools/p/containers", token, Some(body))
        .await;
    // Anything but these is a bug (a 500, or a refusal of valid input).
    assert!(
        matches!(status, 200 | 201 | 409 | 422 | 503),
        "create answered {status}: {answer}"
    );
    status
}

async fn run(steps: Vec<Step>) {
    let mut world = World::new();
    let instances = [world.instance(), world.instance()];
    let token = world.pool(&instances[0], "p").await;
    for n in NODES {
        let mut info = node_info(n, "p", 1000, 4 * GI);
        info.networks.vxlan = true;
        world.register(info);
    }
    // A /29 has five addresses: creates on it also run out of addresses.
    let (status, _) = instances[0]
        .call(
            "POST",
            "/v1/pools/p/networks",
            &token,
            Some(json!({"name": "ov", "driver": "vxlan", "subnet": "10.0.0.0/29", "gateway": "10.0.0.1"})),
        )
        .await;
    assert_eq!(status, 201);
    let fence = world.store.leader_fence(world.store.new_session()).unwrap();
    let mut now = 1_000_000u64;
    for step in steps {
        match step {
            Step::Create {
                at,
                name,
                cpu,
                data,
                net,
            } => {
                create(&instances[at], &token, spec(name, cpu, data, net)).await;
            }
            Step::Delete { at, name, purge } => {
                let path = format!("/v1/pools/p/containers/{}?purge_data={purge}", NAMES[name]);
                let (status, answer) = instances[at]
                    .call("DELETE", &path, &token, Some(json!({})))
                    .await;
                assert!(
                    matches!(status, 204 | 404 | 503),
                    "delete answered {status}: {answer}"
                );
            }
            Step::Reschedule { at, name, force } => {
                let path = format!("/v1/pools/p/containers/{}/reschedule", NAMES[name]);
                let (status, answer) = instances[at]
                    .call("POST", &path, &token, Some(json!({ "force": force })))
                    .await;
                assert!(
                    matches!(status, 200 | 404 | 409 | 422 | 503),
                    "reschedule answered {status}: {answer}"
                );
            }
            Step::Kill(n) => world.kill(NODES[n]),
            Step::Revive(n) => world.revive(NODES[n]),
            Step::Tick { advance } => {
                now += advance;
                tick_at(&instances[0].central, &fence, Duration::from_secs(30), now)
                    .await
                    .unwrap();
            }
            Step::Freeze(at) => instances[at].store.freeze_caches(),
            Step::Thaw(at) => instances[at].store.thaw_caches(),
            Step::Race { a, b, cpu } => {
                join(
                    create(&instances[0], &token, spec(a, cpu, false, true)),
                    create(&instances[1], &token, spec(b, cpu, false, true)),
                )
                .await;
            }
        }
        world.check_invariants(&["p"]).await;
        world.check_addresses("p", "ov").await;
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn check(steps: Vec<Step>) {
    // Paused time: the commit loop's back-off sleeps advance the clock instead of waiting.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(run(steps));
}

// The cases in two halves, so the test runner spreads them over two cores.
proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 2, ..ProptestConfig::default() })]

    #[test]
    fn no_interleaving_overcommits_or_duplicates_first_half(steps in proptest::collection::vec(step(), 1..12)) {
        check(steps);
    }

    #[test]
    fn no_interleaving_overcommits_or_duplicates_second_half(steps in proptest::collection::vec(step(), 1..12)) {
        check(steps);
    }
}
