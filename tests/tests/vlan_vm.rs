//! VLAN networks on a kernel with 802.1Q. This machine's kernel has none, so
//! `vlan_networks_in_a_vm` boots a Debian kernel in a VM (`scripts/vm-run`: qemu under
//! virtme-ng, over this filesystem, with no network device) and runs `in_vm_vlan_scenarios` (this
//! same test binary) inside it. There, network namespaces stand for a switch (a plain bridge
//! carrying tagged frames: a trunk), two nodes with an uplink `eth1` into it, the data centre's
//! router (VLAN sub-interfaces holding the gateways) and the containers (a `sleep` per sandbox
//! namespace). The agent's own wiring code (`Wiring` on rtnetlink, its nftables and ebtables
//! rules, its ARP probe) wires them, exactly as the agent would; captures on the switch's ports
//! check what reaches the switch. `vlan_on_this_kernel_fails_naming_802_1q` runs here, on the
//! host kernel, and checks the clear error.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caas_agent::network::netlink::NetlinkBackend;
use caas_agent::network::probe::probe_support;
use caas_agent::network::Wiring;
use caas_tests::netns::NetnsExecutor;
use caas_tests::vlan_lab::{
    arp_requests, build_topology, endpoint, macs_seen, must, ping, run, sh, wire_and_sync, Capture,
    Container, Net, Node, NsGuard, NODES, NODE_MACS, NODE_PORTS, ROUTER, ROUTER_MAC, SWITCH,
};

/// Set by the outer test for the run inside the VM.
const IN_VM: &str = "CAAS_IN_VLAN_VM";

/// The outer test: one VM boot runs every VLAN scenario.
#[test]
fn vlan_networks_in_a_vm() -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let started = Instant::now();
    let out = Command::new(root.join("scripts/vm-run"))
        .current_dir(&root)
        .env("VM_TIMEOUT", "900")
        // The VM's command starts with a fresh environment: `env` carries the marker in.
        .arg("env")
        .arg(format!("{IN_VM}=1"))
        .arg(&me)
        .args([
            "--exact",
            "in_vm_vlan_scenarios",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .output()
        .context("running scripts/vm-run")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!("VM run took {:.0} s", started.elapsed().as_secs_f64());
    if out.status.code() == Some(125) {
        bail!(
            "the VM with an 802.1Q kernel could not run the VLAN tests (scripts/vm-run said why \
             above): VLAN networks are NOT tested"
        );
    }
    assert!(
        out.status.success(),
        "the VLAN scenarios failed inside the VM: {:?}",
        out.status
    );
    // The inner run really ran (and was not filtered away).
    assert!(
        stdout.contains("VLAN SCENARIOS PASSED") || stderr.contains("VLAN SCENARIOS PASSED"),
        "the inner test did not report its scenarios"
    );
    Ok(())
}

/// On this machine's kernel (no 802.1Q): the probe names the missing feature and wiring a vlan
/// endpoint fails with it, touching nothing.
#[tokio::test]
async fn vlan_on_this_kernel_fails_naming_802_1q() -> anyhow::Result<()> {
    let host_has_8021q = std::fs::read_to_string("/proc/modules")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("8021q "));
    let ns = format!("c{}xvlan", std::process::id());
    let _guard = NsGuard::new(vec![ns.clone()]);
    run("ip", &["netns", "add", &ns])?;
    run(
        "ip",
        &[
            "-n", &ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
        ],
    )?;
    let exec = NetnsExecutor::enter(&ns)?;
    let (support, err, links) = exec
        .run(async move {
            let backend = Arc::new(NetlinkBackend::new()?);
            let support = probe_support(&*backend, None, Some("eth1")).await;
            let wiring = Wiring::new(backend.clone(), None, support.clone());
            let e = endpoint(300, Some(164), false, false, "10.209.164.8");
            let err = wiring.wire("p.web", "sb", 1, &[e]).await.err();
            let links: Vec<String> = caas_agent::network::NetworkBackend::links(&*backend)
                .await?
                .into_iter()
                .map(|l| l.name)
                .collect();
            Ok::<_, anyhow::Error>((support, err, links))
        })
        .await??;
    if host_has_8021q {
        eprintln!("this kernel has 8021q loaded: the missing-feature path is not reachable here");
        assert!(support.vlan, "{support:?}");
        return Ok(());
    }
    assert!(!support.vlan, "{support:?}");
    let missing = support.missing.unwrap_or_default();
    assert!(missing.contains("802.1Q"), "{missing}");
    let err = err.context("wiring a vlan endpoint on a kernel without 802.1Q succeeded")?;
    assert!(err.to_string().contains("802.1Q"), "{err}");
    links
        .iter()
        .find(|l| l.starts_with("cb") || l.contains('.'))
        .map_or(Ok(()), |l| Err(anyhow::anyhow!("left behind: {l}")))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inside the VM.

const A: Net = Net {
    vni: 300,
    vlan: 164,
    third: 164,
    arp_proxy: false,
    mac_nat: false,
};
const B: Net = Net {
    vni: 301,
    vlan: 165,
    third: 168,
    arp_proxy: false,
    mac_nat: false,
};
const C: Net = Net {
    vni: 302,
    vlan: 166,
    third: 172,
    arp_proxy: true,
    mac_nat: false,
};
const D: Net = Net {
    vni: 303,
    vlan: 167,
    third: 176,
    arp_proxy: false,
    mac_nat: true,
};

/// Every scenario, in one VM boot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside the 802.1Q VM that vlan_networks_in_a_vm boots"]
async fn in_vm_vlan_scenarios() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var(IN_VM).is_ok(),
        "this test runs inside the VM; run vlan_networks_in_a_vm instead"
    );
    let _guard = NsGuard::new(
        [SWITCH, ROUTER, NODES[0], NODES[1]]
            .map(String::from)
            .to_vec(),
    );
    build_topology(&[&A, &B, &C, &D])?;
    let nodes = [Node::start(NODES[0]).await?, Node::start(NODES[1]).await?];
    let spec = [
        ("a1", 0, A.endpoint(8)),
        ("a2", 1, A.endpoint(9)),
        ("b1", 0, B.endpoint(8)),
        ("c1", 0, C.endpoint(8)),
        ("c2", 1, C.endpoint(9)),
        ("d1", 0, D.endpoint(8)),
        ("d2", 1, D.endpoint(9)),
    ];
    let mut containers = Vec::new();
    for (name, node, endpoint) in spec {
        containers.push(Container {
            name: name.to_string(),
            node,
            endpoint,
            sandbox: Some(caas_tests::sandbox_ns::SandboxNs::create(format!(
                "vlc{name}"
            ))?),
        });
    }
    let t = Instant::now();
    wire_and_sync(&nodes, &containers).await?;
    println!(
        "wired {} containers on 2 nodes in {:.0} ms",
        containers.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let ns = |name: &str| format!("vlc{name}");

    // 1. Tagged across nodes, and the gateway; a capture on the trunk shows the tag.
    let cap = Capture::start(&[NODE_PORTS[0]], "icmp")?;
    anyhow::ensure!(
        ping(&ns("a1"), &A.ip(9), 10),
        "a1 cannot reach a2 across nodes"
    );
    anyhow::ensure!(
        ping(&ns("a1"), &A.gateway(), 10),
        "a1 cannot reach its gateway"
    );
    let lines = cap.finish().remove(NODE_PORTS[0]).unwrap_or_default();
    let tagged = lines
        .iter()
        .filter(|l| l.contains("vlan 164") && l.contains(&format!("{} > {}", A.ip(8), A.ip(9))))
        .count();
    anyhow::ensure!(
        tagged > 0,
        "no ICMP tagged with VLAN 164 on the trunk: {lines:#?}"
    );
    anyhow::ensure!(
        lines.iter().all(|l| l.contains("802.1Q")),
        "untagged frames on the trunk: {lines:#?}"
    );
    println!(
        "ok: VLAN 164 across two nodes and to the gateway, tagged on the trunk ({tagged} frames)"
    );

    // 2. Another VLAN on the same nodes cannot reach it (its own gateway it can).
    anyhow::ensure!(
        ping(&ns("b1"), &B.gateway(), 10),
        "b1 cannot reach its gateway"
    );
    anyhow::ensure!(
        !ping(&ns("b1"), &A.ip(8), 3) && !ping(&ns("b1"), &A.ip(9), 2),
        "VLAN 165 reaches VLAN 164"
    );
    let (_, neigh) = sh(&ns("b1"), &format!("ip neigh show {}", A.ip(8)));
    anyhow::ensure!(
        !neigh.contains("lladdr"),
        "b1 resolved a VLAN 164 address: {neigh}"
    );
    println!("ok: VLAN 165 on the same nodes cannot reach VLAN 164");

    // 3. ARP proxy: after warm-up, no ARP request for a known peer or the gateway reaches the
    // switch; one for an unknown address still does.
    for c in ["c1", "c2"] {
        must(&ns(c), "ip neigh flush all")?;
    }
    let cap = Capture::start(&NODE_PORTS, "arp")?;
    anyhow::ensure!(ping(&ns("c1"), &C.ip(9), 10), "c1 cannot reach c2");
    anyhow::ensure!(
        ping(&ns("c1"), &C.gateway(), 10),
        "c1 cannot reach its gateway"
    );
    anyhow::ensure!(ping(&ns("c2"), &C.ip(8), 10), "c2 cannot reach c1");
    let captured = cap.finish();
    let senders = [C.ip(8), C.ip(9)];
    let requests: Vec<&String> = captured
        .values()
        .flat_map(|l| arp_requests(l, &senders, None))
        .collect();
    anyhow::ensure!(
        requests.is_empty(),
        "ARP requests for known addresses reached the switch: {requests:#?}"
    );
    let (_, neigh) = sh(&ns("c1"), &format!("ip neigh show {}", C.gateway()));
    anyhow::ensure!(
        neigh.contains(ROUTER_MAC),
        "the proxy answered the gateway with a wrong MAC: {neigh}"
    );
    let cap = Capture::start(&[NODE_PORTS[0]], "arp")?;
    let unknown = C.ip(200);
    let _ = ping(&ns("c1"), &unknown, 2);
    let lines = cap.finish().remove(NODE_PORTS[0]).unwrap_or_default();
    anyhow::ensure!(
        !arp_requests(&lines, &senders, Some(&unknown)).is_empty(),
        "the request for an unknown address did not go out: {lines:#?}"
    );
    println!("ok: ARP proxy: 0 requests for peers and gateway on the trunk; unknown ones go out");

    // 4. MAC NAT: only node MACs (and the router's) on the trunk; traffic both ways, TCP too.
    must(
        &ns("d2"),
        "mkdir -p /tmp/www-d2 && echo hello-from-d2 > /tmp/www-d2/index.html",
    )?;
    let mut httpd = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns("d2"),
            "/usr/bin/python3",
            "-m",
            "http.server",
            "8080",
            "--directory",
            "/tmp/www-d2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let cap = Capture::start(&NODE_PORTS, "vlan 167")?;
    anyhow::ensure!(ping(&ns("d1"), &D.ip(9), 10), "d1 cannot reach d2");
    anyhow::ensure!(
        ping(&ns("d1"), &D.gateway(), 10),
        "d1 cannot reach its gateway"
    );
    let (_, _) = sh(ROUTER, &format!("ip neigh flush dev eth0.{}", D.vlan));
    anyhow::ensure!(ping(ROUTER, &D.ip(8), 10), "the gateway cannot reach d1");
    let mut body = String::new();
    // Python starts slowly under emulation: try for up to a minute.
    for _ in 0..60 {
        let (ok, out) = sh(
            &ns("d1"),
            &format!("curl -sS -m 3 http://{}:8080/", D.ip(9)),
        );
        body = out;
        if ok {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = httpd.kill();
    let _ = httpd.wait();
    if !body.contains("hello-from-d2") {
        let (_, diag) = sh(&ns("d2"), "ss -ltn; ip neigh; ip -s link");
        let (_, diag1) = sh(&ns("d1"), "ip neigh; ip -s link");
        let (_, rules) = sh(NODES[1], "ebtables -t nat -L --Lc");
        bail!("TCP from d1 to d2 through MAC NAT failed: {body}\nd2: {diag}\nd1: {diag1}\nn2 rules: {rules}\ncapture: {:#?}", cap.finish());
    }
    let captured = cap.finish();
    let allowed: BTreeSet<String> = NODE_MACS
        .iter()
        .chain([&ROUTER_MAC])
        .map(|m| m.to_string())
        .collect();
    let mut seen = BTreeSet::new();
    for lines in captured.values() {
        anyhow::ensure!(!lines.is_empty(), "nothing captured on the trunk");
        seen.extend(macs_seen(lines));
    }
    let foreign: Vec<&String> = seen.difference(&allowed).collect();
    anyhow::ensure!(
        foreign.is_empty(),
        "container MACs reached the switch through MAC NAT: {foreign:?} (seen {seen:?})"
    );
    println!("ok: MAC NAT: the trunk saw only {seen:?}; ping both ways and TCP work");

    // 5. Teardown: the sandboxes go, the node-wide pass removes sub-interfaces, bridges and
    // rules.
    for c in &mut containers {
        c.sandbox = None;
    }
    for (i, n) in nodes.iter().enumerate() {
        n.sync(i, &containers).await?;
        let links = must(NODES[i], "ip -o link show")?;
        for stale in ["eth1.16", "cb30", "cw"] {
            anyhow::ensure!(
                !links.contains(stale),
                "{stale}* left on {}: {links}",
                NODES[i]
            );
        }
        let rules = must(NODES[i], "ebtables -t nat -L")?;
        anyhow::ensure!(!rules.contains("CAAS"), "ebtables rules left: {rules}");
        let tables = must(NODES[i], "nft list tables")?;
        anyhow::ensure!(!tables.contains("caas"), "nft table left: {tables}");
        anyhow::ensure!(
            links.contains("eth1"),
            "the uplink itself must stay: {links}"
        );
    }
    println!("ok: teardown left no sub-interface, bridge or rule");
    println!("VLAN SCENARIOS PASSED");
    Ok(())
}
