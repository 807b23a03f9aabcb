//! Container networks end to end: a fabric and three node namespaces, real agents, real Docker
//! and ZooKeeper, central and the `caas` CLI. The two commands of the issue as written; ping
//! and TCP across nodes at the addresses asked for; the hostname; egress to the node through
//! the gateway; isolation between networks; no ARP on the fabric; a TCP connection that
//! survives restarting both agents; an app-only update and a move that keep IP and MAC; and
//! nothing left in the kernel or ZooKeeper after the workloads and the network are removed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::time::Duration;

use caas_api::central::ContainerView;
use caas_api::Assignment;
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::netns::node_ip;
use caas_tests::wait::until;

const POOL: &str = "pool2";

/// Docker name of a workload's app container on `node`.
fn app(node: &str, name: &str) -> String {
    format!(
        "{}.{POOL}.{name}",
        caas_tests::agent::container_prefix(node)
    )
}

fn exec(container: &str, cmd: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .arg("exec")
        .arg(container)
        .args(cmd)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ns_run(ns: &str, cmd: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn cli_ok(c: &Cluster, token: &str, args: &[&str]) -> String {
    let out = c.cli(0, token, args).await.unwrap();
    assert_eq!(out.code, Some(0), "caas {args:?}: {out:?}");
    out.stdout
}

async fn inspect(c: &Cluster, token: &str, name: &str) -> ContainerView {
    let out = cli_ok(c, token, &["--pool", POOL, "container", "inspect", name]).await;
    serde_json::from_str(&out).unwrap()
}

/// Waits until `name` runs with its interfaces wired; returns its view.
async fn running(c: &Cluster, token: &str, name: &str) -> ContainerView {
    until(
        &format!("{name} running and wired"),
        Duration::from_secs(90),
        || async {
            let view = inspect(c, token, name).await;
            let ready = view.status.as_ref().is_some_and(|s| {
                s.state == caas_api::WorkloadState::Running
                    && s.interfaces.len() == view.spec.networks.len()
                    && s.generation == view.spec.generation
            });
            Ok(ready.then_some(view))
        },
    )
    .await
    .unwrap()
}

fn node_index(c: &Cluster, node: &str) -> usize {
    c.node_ids.iter().position(|n| n == node).unwrap() + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_network_end_to_end() {
    let nodes = vec![
        NodeSpec::new(POOL, &["slot=1"]),
        NodeSpec::new(POOL, &["slot=2"]),
        NodeSpec::new(POOL, &["slot=3"]),
    ];
    let mut c = Cluster::start("net", &nodes, 1, 3).await.unwrap();
    let token = c.create_pool(POOL).await.unwrap();
    let image = c.busybox.clone();

    // The two commands of the issue, as written.
    cli_ok(
        &c,
        &token,
        &[
            "--pool=pool2",
            "network",
            "create",
            "myvxlan",
            "-d",
            "vxlan",
            "-l",
            "Subnet=192.168.0.0/19",
            "-l",
            "Gateway=192.168.31.254",
        ],
    )
    .await;
    cli_ok(
        &c,
        &token,
        &[
            "--pool=pool2",
            "container",
            "create",
            "core",
            "--public-service=.myvxlan",
            "-l",
            "Ip=192.168.31.3",
            "-l",
            "Hostname=core-1",
            "--image",
            &image,
            "-c",
            "slot==1",
            "--",
            "sleep",
            "100000",
        ],
    )
    .await;
    // A peer that answers on TCP 5000 and records what arrives on 5001.
    cli_ok(
        &c,
        &token,
        &[
            "--pool=pool2",
            "container",
            "create",
            "peer",
            "--public-service=web.myvxlan",
            "-l",
            "ip=192.168.31.4",
            "--image",
            &image,
            "-c",
            "slot!=1",
            "--",
            "sh",
            "-c",
            "(sleep 100000 | nc -l -p 5001 > /tmp/got) & while true; do echo hello | nc -l -p 5000; done",
        ],
    )
    .await;
    // Capture on the fabric from before the first packet between them.
    let capture = c.dir.path().join("fabric.pcap");
    let mut tcpdump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &c.topo.fabric,
            "tcpdump",
            "-i",
            "br0",
            "-U",
            "-w",
        ])
        .arg(&capture)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let core = running(&c, &token, "core").await;
    let peer = running(&c, &token, "peer").await;
    assert_ne!(core.node, peer.node, "on different nodes");
    let core_c = app(&core.node, "core");
    let peer_c = app(&peer.node, "peer");
    let eth0 = &core.status.as_ref().unwrap().interfaces[0];
    assert_eq!(
        (eth0.name.as_str(), eth0.ip.as_str(), eth0.mac.as_str()),
        ("eth0", "192.168.31.3", "02:ca:c0:a8:1f:03")
    );
    assert_eq!(exec(&core_c, &["hostname"]).1.trim(), "core-1");
    // The node's side, as the kernel has it: bridge and VXLAN device of the network, and the
    // remote peer's neighbour and FDB entries (programmed from ZooKeeper, not learnt).
    let net: serde_json::Value = serde_json::from_str(
        &cli_ok(
            &c,
            &token,
            &["--pool", POOL, "network", "inspect", "myvxlan"],
        )
        .await,
    )
    .unwrap();
    let vni = net["vni"].as_u64().unwrap();
    assert_eq!(net["endpoints"].as_array().unwrap().len(), 2, "{net}");
    let core_ns = c.topo.node(node_index(&c, &core.node)).to_string();
    let links = ns_run(&core_ns, &["ip", "-o", "link", "show"]);
    assert!(
        links.contains(&format!(" cb{vni}:")) && links.contains(&format!(" cv{vni}:")),
        "{links}"
    );
    let neigh = ns_run(
        &core_ns,
        &["ip", "neigh", "show", "dev", &format!("cv{vni}")],
    );
    assert!(
        neigh.contains("192.168.31.4") && neigh.contains("02:ca:c0:a8:1f:04"),
        "{neigh}"
    );
    let fdb = ns_run(
        &core_ns,
        &["bridge", "fdb", "show", "dev", &format!("cv{vni}")],
    );
    let peer_underlay = node_ip(node_index(&c, &peer.node)).to_string();
    assert!(
        fdb.contains(&format!("02:ca:c0:a8:1f:04 dst {peer_underlay}")),
        "{fdb}"
    );

    // Ping and TCP across nodes at the addresses asked for.
    let (ok, out) = exec(&core_c, &["ping", "-c", "3", "-W", "2", "192.168.31.4"]);
    assert!(ok, "core -> peer ping: {out}");
    let (ok, out) = exec(&core_c, &["sh", "-c", "nc 192.168.31.4 5000 </dev/null"]);
    assert!(ok && out.contains("hello"), "core -> peer TCP: {out}");
    let (ok, out) = exec(&peer_c, &["ping", "-c", "2", "-W", "2", "192.168.31.3"]);
    assert!(ok, "peer -> core ping: {out}");

    // Egress: the container reaches its node's underlay address through the gateway.
    let own = node_ip(node_index(&c, &core.node)).to_string();
    let (ok, out) = exec(&core_c, &["ping", "-c", "2", "-W", "2", &own]);
    assert!(ok, "core -> its node {own}: {out}");
    // ... and, forwarded and masqueraded, another node's underlay, which has no route back to
    // the overlay's subnet: the reply can only come back to the node's own address.
    let elsewhere = node_ip(if node_index(&c, &core.node) == 3 {
        2
    } else {
        3
    })
    .to_string();
    let (ok, out) = exec(&core_c, &["ping", "-c", "2", "-W", "2", &elsewhere]);
    assert!(
        ok,
        "core -> another node {elsewhere} through the gateway: {out}"
    );

    // No ARP request of the containers crossed the fabric (encapsulated ARP inside VXLAN).
    std::thread::sleep(Duration::from_millis(500)); // let tcpdump flush its last packets
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tcpdump.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = tcpdump.wait();
    let count = |filter: &str| -> usize {
        let out = Command::new("tcpdump")
            .args(["-nn", "-r"])
            .arg(&capture)
            .arg(filter)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let vxlan = count("udp dst port 4789");
    let inner_arp = count("udp dst port 4789 and udp[28:2] = 0x0806");
    assert!(vxlan > 0, "the capture saw the overlay traffic");
    assert_eq!(
        inner_arp, 0,
        "ARP between containers stayed on the nodes ({vxlan} VXLAN packets)"
    );

    // Isolation: another network on the same node and on another node.
    cli_ok(
        &c,
        &token,
        &[
            "--pool",
            POOL,
            "network",
            "create",
            "other",
            "-l",
            "10.77.0.0/24",
            "-l",
            "Gateway=10.77.0.1",
        ],
    )
    .await;
    for (name, slot) in [("near", "slot==1"), ("far", "slot==3")] {
        cli_ok(
            &c,
            &token,
            &[
                "--pool",
                POOL,
                "container",
                "create",
                name,
                "--public-service=.other",
                "--image",
                &image,
                "-c",
                slot,
                "--",
                "sh",
                "-c",
                "while true; do echo secret | nc -l -p 5000; done",
            ],
        )
        .await;
    }
    let near = running(&c, &token, "near").await;
    let far = running(&c, &token, "far").await;
    let near_c = app(&near.node, "near");
    let far_c = app(&far.node, "far");
    let near_ip = near.spec.networks[0].ip.clone();
    for (from, to) in [
        (&near_c, "192.168.31.3"),
        (&far_c, "192.168.31.4"),
        (&core_c, near_ip.as_str()),
    ] {
        let (ok, out) = exec(from, &["ping", "-c", "1", "-W", "1", to]);
        assert!(!ok, "{from} must not reach {to}: {out}");
        let (_, out) = exec(
            from,
            &["sh", "-c", &format!("timeout 3 nc {to} 5000 </dev/null")],
        );
        assert!(
            !out.contains("hello") && !out.contains("secret"),
            "{from} -> {to} TCP: {out}"
        );
    }

    // A TCP connection held open across restarts of both agents.
    let streamer = Command::new("docker")
        .args([
            "exec",
            "-d",
            &core_c,
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.2; done | nc 192.168.31.4 5001",
        ])
        .status()
        .unwrap();
    assert!(streamer.success());
    let lines = |peer_c: &str| -> usize {
        exec(peer_c, &["sh", "-c", "wc -l < /tmp/got"])
            .1
            .trim()
            .parse()
            .unwrap_or(0)
    };
    until("the stream flows", Duration::from_secs(20), || async {
        Ok((lines(&peer_c) > 3).then_some(()))
    })
    .await
    .unwrap();
    for i in [node_index(&c, &core.node), node_index(&c, &peer.node)] {
        c.agents[i - 1].restart().unwrap();
    }
    for name in ["core", "peer"] {
        running(&c, &token, name).await;
    }
    let before = lines(&peer_c);
    until(
        "the same connection still flows after both agents restarted",
        Duration::from_secs(20),
        || async { Ok((lines(&peer_c) > before + 5).then_some(())) },
    )
    .await
    .unwrap();
    let started_before = exec(&peer_c, &["true"]).0;
    assert!(started_before);

    // An app-only update (a new image tag) keeps IP and MAC: the sandbox holds the interface.
    let docker = caas_tests::images::docker().await.unwrap();
    let v2 = caas_tests::images::tag(&docker, &image, "caas-test/busybox-v2", "net")
        .await
        .unwrap();
    let path = c
        .layout
        .assignment(&core.node, &caas_api::WorkloadKey::new(POOL, "core"));
    let (data, stat) = c.zk_client.get_data(&path).await.unwrap();
    let mut assignment: Assignment = serde_json::from_slice(&data).unwrap();
    assignment.spec.image = v2.clone();
    c.zk_client
        .set_data(
            &path,
            &serde_json::to_vec(&assignment).unwrap(),
            Some(stat.version),
        )
        .await
        .unwrap();
    let updated = until(
        "core runs the new image",
        Duration::from_secs(60),
        || async {
            let out = Command::new("docker")
                .args(["inspect", "-f", "{{.Config.Image}}", &core_c])
                .output()?;
            let image_now = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let view = inspect(&c, &token, "core").await;
            Ok((image_now == v2
                && view
                    .status
                    .as_ref()
                    .is_some_and(|s| s.interfaces.len() == 1))
            .then_some(view))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        updated.status.unwrap().interfaces[0],
        *eth0,
        "same IP and MAC after the app update"
    );
    let (ok, out) = exec(&core_c, &["ping", "-c", "2", "-W", "2", "192.168.31.4"]);
    assert!(ok, "after the update: {out}");

    // The peer's node is lost: it comes back elsewhere with the same IP, MAC and hostname, and
    // core reaches it again with no change on its side.
    let peer_node = node_index(&c, &peer.node);
    c.agents[peer_node - 1].kill9();
    let moved = until("peer re-placed", Duration::from_secs(90), || async {
        let view = inspect(&c, &token, "peer").await;
        Ok((view.node != peer.node).then_some(view))
    })
    .await
    .unwrap();
    let moved = running(&c, &token, &moved.name).await;
    assert_eq!(
        moved.spec.networks, peer.spec.networks,
        "same endpoint (IP, MAC)"
    );
    assert_eq!(
        moved.status.as_ref().unwrap().interfaces,
        peer.status.as_ref().unwrap().interfaces
    );
    let moved_c = app(&moved.node, "peer");
    until(
        "core reaches the moved peer",
        Duration::from_secs(30),
        || async {
            let (ok, out) = exec(&core_c, &["sh", "-c", "nc 192.168.31.4 5000 </dev/null"]);
            Ok((ok && out.contains("hello")).then_some(()))
        },
    )
    .await
    .unwrap();
    assert_eq!(exec(&moved_c, &["hostname"]).1.trim(), "peer");
    // The old node returns and tears its copy down.
    c.agents[peer_node - 1].restart().unwrap();
    let old_c = app(&peer.node, "peer");
    until("the old copy is gone", Duration::from_secs(60), || async {
        let out = Command::new("docker").args(["inspect", &old_c]).output()?;
        Ok((!out.status.success()).then_some(()))
    })
    .await
    .unwrap();

    // Removing everything leaves nothing behind, in the kernel and in ZooKeeper.
    for name in ["core", "peer", "near", "far"] {
        cli_ok(&c, &token, &["--pool", POOL, "container", "rm", name]).await;
    }
    for net in ["myvxlan", "other"] {
        until(
            &format!("network {net} removable"),
            Duration::from_secs(60),
            || async {
                let out = c
                    .cli(0, &token, &["--pool", POOL, "network", "rm", net])
                    .await?;
                Ok((out.code == Some(0)).then_some(()))
            },
        )
        .await
        .unwrap();
    }
    for i in 1..=3 {
        let ns = c.topo.node(i).to_string();
        until(
            &format!("node {i} clean"),
            Duration::from_secs(60),
            || async {
                let links = ns_run(&ns, &["ip", "-o", "link", "show"]);
                let devices: Vec<&str> = links
                    .lines()
                    .filter(|l| [" cb", " cv", " cw", " cp"].iter().any(|p| l.contains(p)))
                    .collect();
                let fdb = ns_run(&ns, &["bridge", "fdb", "show"]);
                let remote_fdb = fdb.lines().filter(|l| l.contains(" dst ")).count();
                let neigh = ns_run(&ns, &["ip", "neigh", "show"]);
                let container_neigh = neigh
                    .lines()
                    .filter(|l| l.starts_with("192.168.") || l.starts_with("10.77."))
                    .count();
                let nft = ns_run(&ns, &["nft", "list", "tables"]);
                let clean = devices.is_empty()
                    && remote_fdb == 0
                    && container_neigh == 0
                    && !nft.contains("caas");
                Ok(clean.then_some(()))
            },
        )
        .await
        .unwrap();
    }
    let networks = c
        .zk_client
        .list_children(&c.layout.networks(POOL))
        .await
        .unwrap();
    assert!(networks.is_empty(), "{networks:?}");
    let vnis = c
        .zk_client
        .list_children(&c.layout.vnis())
        .await
        .unwrap_or_default();
    assert!(vnis.is_empty(), "{vnis:?}");
}

/// The ZooKeeper tree without the inventory, which the leader keeps updating in the background
/// (a node's engine readiness settles just after start).
async fn central_writes(c: &Cluster) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut dump = c.dump().await.unwrap();
    dump.retain(|path, _| !path.starts_with(&c.layout.inventory_root()));
    dump
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_network_input_is_refused_before_anything_is_written() {
    let nodes = vec![NodeSpec::new(POOL, &[]), NodeSpec::new("other", &[])];
    let c = Cluster::start("netbad", &nodes, 1, 30).await.unwrap();
    let token = c.create_pool(POOL).await.unwrap();
    let other = c.create_pool("other").await.unwrap();
    cli_ok(
        &c,
        &other,
        &[
            "--pool",
            "other",
            "network",
            "create",
            "theirs",
            "-l",
            "Subnet=10.9.0.0/24",
            "-l",
            "Gateway=10.9.0.1",
        ],
    )
    .await;
    cli_ok(
        &c,
        &token,
        &[
            "--pool",
            POOL,
            "network",
            "create",
            "mine",
            "-l",
            "Subnet=10.8.0.0/24",
            "-l",
            "Gateway=10.8.0.1",
            "-l",
            "Vni=77",
        ],
    )
    .await;
    // A vlan network is a valid object; this kernel has no 802.1Q, so no node can carry it.
    cli_ok(
        &c,
        &token,
        &[
            "--pool",
            POOL,
            "network",
            "create",
            "myvlan",
            "-d",
            "vlan",
            "-l",
            "10.209.164.0/22",
            "-l",
            "Gateway=10.209.164.1",
            "-l",
            "VlanId=164",
            "-l",
            "ArpProxy=true",
            "-l",
            "MacNat=true",
        ],
    )
    .await;
    let node = cli_ok(&c, &token, &["node", "inspect", &c.node_ids[0]]).await;
    assert!(
        node.contains("802.1Q"),
        "the node says why it cannot carry vlan networks: {node}"
    );
    let before = central_writes(&c).await;
    let image = c.busybox.clone();
    let vlan = |extra: &[&'static str]| {
        let mut args = vec![
            "network",
            "create",
            "x",
            "-d",
            "vlan",
            "-l",
            "10.209.168.0/22",
            "-l",
            "Gateway=10.209.168.1",
        ];
        args.extend_from_slice(extra);
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vlan(&["-l", "VlanId=0"]), "1..=4094"),
        (vlan(&["-l", "VlanId=4095"]), "out of range"),
        (
            vlan(&["-l", "VlanId=164"]),
            "VLAN 164 is already used by network myvlan",
        ),
        (vlan(&["-l", "Subnet=10.209.172.0/22"]), "given twice"),
        (vlan(&["-l", "ArpProxy=maybe"]), "true or false"),
        (
            vec![
                "network",
                "create",
                "x",
                "-l",
                "10.1.0.0/24",
                "-l",
                "Gateway=10.1.0.1",
                "-l",
                "MacNat=true",
            ],
            "vlan networks only",
        ),
        (
            vec![
                "container",
                "create",
                "x",
                "--image",
                &image,
                "--public-service=.myvlan",
            ],
            "cannot carry vlan networks",
        ),
        (
            vec![
                "network",
                "create",
                "x",
                "-l",
                "Subnet=10.0.0.1/24",
                "-l",
                "Gateway=10.0.0.254",
            ],
            "10.0.0.0/24",
        ),
        (
            vec![
                "network",
                "create",
                "x",
                "-l",
                "Subnet=10.8.0.0/25",
                "-l",
                "Gateway=10.8.0.2",
            ],
            "overlaps",
        ),
        (
            vec![
                "network",
                "create",
                "x",
                "-l",
                "Subnet=10.1.0.0/24",
                "-l",
                "Gateway=10.2.0.1",
            ],
            "outside",
        ),
        (
            vec![
                "network",
                "create",
                "x",
                "-l",
                "Subnet=10.1.0.0/24",
                "-l",
                "Gateway=10.1.0.255",
            ],
            "broadcast",
        ),
        (
            vec![
                "network",
                "create",
                "x",
                "-l",
                "Subnet=10.1.0.0/24",
                "-l",
                "Gateway=10.1.0.1",
                "-l",
                "Vni=0",
            ],
            "Vni",
        ),
        (
            vec![
                "network",
                "create",
                "x",
                "-l",
                "Subnet=10.1.0.0/24",
                "-l",
                "Gateway=10.1.0.1",
                "-l",
                "Vni=16777216",
            ],
            "Vni",
        ),
        (
            vec![
                "network",
                "create",
                "x",
                "-l",
                "Subnet=10.1.0.0/24",
                "-l",
                "Gateway=10.1.0.1",
                "-l",
                "Vni=77",
            ],
            "77",
        ),
        (
            vec![
                "network",
                "create",
                "x",
                "-d",
                "ovs",
                "-l",
                "Subnet=10.1.0.0/24",
                "-l",
                "Gateway=10.1.0.1",
            ],
            "ovs",
        ),
        (
            vec![
                "network",
                "create",
                "x",
                "-l",
                "Subnet=10.1.0.0/24",
                "-l",
                "Gateway=10.1.0.1",
                "-l",
                "Mtu=9000",
            ],
            "Mtu",
        ),
        (
            vec![
                "container",
                "create",
                "x",
                "--image",
                &image,
                "--public-service=.mine",
                "-l",
                "Ip=10.8.0.0",
            ],
            "network address",
        ),
        (
            vec![
                "container",
                "create",
                "x",
                "--image",
                &image,
                "--public-service=.mine",
                "-l",
                "Ip=10.8.0.255",
            ],
            "broadcast",
        ),
        (
            vec![
                "container",
                "create",
                "x",
                "--image",
                &image,
                "--public-service=.mine",
                "-l",
                "Ip=10.8.0.1",
            ],
            "gateway",
        ),
        (
            vec![
                "container",
                "create",
                "x",
                "--image",
                &image,
                "--public-service=.mine",
                "-l",
                "Ip=10.3.0.5",
            ],
            "outside",
        ),
        (
            vec![
                "container",
                "create",
                "x",
                "--image",
                &image,
                "--public-service=.mine",
                "-l",
                "Ip=10.8.0.5",
                "--instances",
                "2",
            ],
            "instances",
        ),
        (
            vec![
                "container",
                "create",
                "x",
                "--image",
                &image,
                "--public-service=.theirs",
            ],
            "theirs",
        ),
    ];
    for (args, words) in cases {
        let mut full = vec!["--pool", POOL];
        full.extend(args.iter().copied());
        let out = c.cli(0, &token, &full).await.unwrap();
        assert_ne!(out.code, Some(0), "{args:?} must fail: {out:?}");
        assert!(
            out.stderr.contains(words),
            "{args:?}: the message should mention {words:?}: {}",
            out.stderr
        );
    }
    assert_eq!(
        central_writes(&c).await,
        before,
        "no refusal wrote anything"
    );
    // network rm with endpoints; an exhausted subnet.
    cli_ok(
        &c,
        &token,
        &[
            "--pool",
            POOL,
            "network",
            "create",
            "tiny",
            "-l",
            "Subnet=10.6.0.0/29",
            "-l",
            "Gateway=10.6.0.1",
        ],
    )
    .await;
    cli_ok(
        &c,
        &token,
        &[
            "--pool",
            POOL,
            "container",
            "create",
            "a",
            "--image",
            &image,
            "--public-service=.tiny",
            "--instances",
            "5",
            "--",
            "sleep",
            "100000",
        ],
    )
    .await;
    let before_more = central_writes(&c).await;
    let out = c
        .cli(
            0,
            &token,
            &[
                "--pool",
                POOL,
                "container",
                "create",
                "b",
                "--image",
                &image,
                "--public-service=.tiny",
            ],
        )
        .await
        .unwrap();
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("no free address"), "{}", out.stderr);
    let out = c
        .cli(0, &token, &["--pool", POOL, "network", "rm", "tiny"])
        .await
        .unwrap();
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("endpoint"), "{}", out.stderr);
    assert_eq!(
        central_writes(&c).await,
        before_more,
        "the refusals wrote nothing"
    );
}
