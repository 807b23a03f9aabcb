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

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caas_agent::network::netlink::NetlinkBackend;
use caas_agent::network::probe::probe_support;
use caas_agent::network::wiring::{NetworkDesc, NodeNetworks, RemoteEndpoint};
use caas_agent::network::{parse_mac, Wiring};
use caas_api::network::{mac_for, Endpoint, NetworkDriver, VlanOptions};
use caas_tests::netns::NetnsExecutor;

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

const SWITCH: &str = "vlsw";
const ROUTER: &str = "vlgw";
const NODES: [&str; 2] = ["vln1", "vln2"];
const NODE_MACS: [&str; 2] = ["52:54:00:00:01:01", "52:54:00:00:02:01"];
const ROUTER_MAC: &str = "52:54:00:00:fe:01";
/// Switch port of each node, and of the router.
const NODE_PORTS: [&str; 2] = ["p1", "p2"];
const ROUTER_PORT: &str = "pg";

/// A network of the scenarios: (vni, VLAN id, third octet of its /22, ARP proxy, MAC NAT).
struct Net {
    vni: u32,
    vlan: u16,
    third: u8,
    arp_proxy: bool,
    mac_nat: bool,
}

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

impl Net {
    fn ip(&self, host: u8) -> String {
        format!("10.209.{}.{host}", self.third)
    }
    fn gateway(&self) -> String {
        self.ip(1)
    }
    fn endpoint(&self, host: u8) -> Endpoint {
        endpoint(
            self.vni,
            Some(self.vlan),
            self.arp_proxy,
            self.mac_nat,
            &self.ip(host),
        )
    }
}

fn endpoint(vni: u32, vlan: Option<u16>, arp_proxy: bool, mac_nat: bool, ip: &str) -> Endpoint {
    let third: u8 = ip
        .split('.')
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    Endpoint {
        interface: "eth0".into(),
        network: format!("net{vni}"),
        driver: NetworkDriver::Vlan,
        vni,
        subnet: format!("10.209.{third}.0/22"),
        gateway: format!("10.209.{third}.1"),
        ip: ip.into(),
        mac: mac_for(ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)),
        service: None,
        vlan: Some(VlanOptions {
            vlan_id: vlan,
            arp_proxy,
            mac_nat,
        }),
    }
}

/// A container: its sandbox namespace, node and endpoint.
struct Container {
    name: String,
    node: usize,
    endpoint: Endpoint,
    sandbox: Option<caas_tests::sandbox_ns::SandboxNs>,
}

/// Deletes namespaces on drop (the sandboxes delete their own).
struct NsGuard(Vec<String>);

impl NsGuard {
    fn new(names: Vec<String>) -> Self {
        Self(names)
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `sh -c script` inside namespace `ns`; whether it succeeded, and its output.
fn sh(ns: &str, script: &str) -> (bool, String) {
    match Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", script])
        .output()
    {
        Ok(out) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn must(ns: &str, script: &str) -> anyhow::Result<String> {
    let (ok, out) = sh(ns, script);
    if !ok {
        bail!("in {ns}: `{script}` failed: {out}");
    }
    Ok(out)
}

/// Pings until one answer comes (the first may wait for ARP), up to `tries` seconds.
fn ping(ns: &str, ip: &str, tries: u32) -> bool {
    (0..tries).any(|_| sh(ns, &format!("busybox ping -c 1 -W 1 {ip}")).0)
}

/// A tcpdump on switch ports, stopped and parsed by `finish`.
struct Capture {
    children: Vec<(String, std::process::Child)>,
}

impl Capture {
    fn start(ports: &[&str], filter: &str) -> anyhow::Result<Self> {
        let mut children = Vec::new();
        for port in ports {
            let out = format!("/tmp/cap-{port}.txt");
            let _ = std::fs::remove_file(&out);
            let file = std::fs::File::create(&out)?;
            let err = std::fs::File::create(format!("{out}.err"))?;
            let child = Command::new("ip")
                .args([
                    "netns", "exec", SWITCH, "tcpdump", "-e", "-n", "-l", "-i", port,
                ])
                .args(filter.split_whitespace())
                .stdout(file)
                .stderr(err)
                .spawn()
                .context("starting tcpdump")?;
            children.push((port.to_string(), child));
        }
        // tcpdump says "listening on" once its socket is open (slow under emulation).
        let deadline = Instant::now() + Duration::from_secs(60);
        for (port, _) in &children {
            while !std::fs::read_to_string(format!("/tmp/cap-{port}.txt.err"))
                .unwrap_or_default()
                .contains("listening on")
            {
                if Instant::now() > deadline {
                    bail!("tcpdump on {port} never started listening");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(Self { children })
    }

    /// Stops the captures; the lines per port.
    fn finish(mut self) -> BTreeMap<String, Vec<String>> {
        // Let the last frames be written.
        std::thread::sleep(Duration::from_millis(500));
        let mut out = BTreeMap::new();
        for (port, child) in &mut self.children {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .output();
            let _ = child.wait();
            let text = std::fs::read_to_string(format!("/tmp/cap-{port}.txt")).unwrap_or_default();
            out.insert(
                port.clone(),
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect(),
            );
        }
        self.children.clear();
        out
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Source MACs of the captured frames (`tcpdump -e`: "SRC > DST, ethertype ...") and the MACs
/// ARP replies announce ("is-at MAC").
fn macs_seen(lines: &[String]) -> BTreeSet<String> {
    let mut macs = BTreeSet::new();
    for l in lines {
        let words: Vec<&str> = l.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == ">") {
            if i > 0 {
                macs.insert(words[i - 1].to_string());
            }
        }
        if let Some(i) = words.iter().position(|w| *w == "is-at") {
            if let Some(mac) = words.get(i + 1) {
                macs.insert(mac.trim_end_matches(',').to_string());
            }
        }
    }
    macs
}

/// ARP requests sent by one of `senders` (tcpdump: "Request who-has X tell Y"), for `for_ip` if
/// given. The router's own requests for a container are the router's, not the containers'.
fn arp_requests<'a>(
    lines: &'a [String],
    senders: &[String],
    for_ip: Option<&str>,
) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| l.contains("Request who-has"))
        .filter(|l| senders.iter().any(|s| l.contains(&format!("tell {s},"))))
        .filter(|l| for_ip.is_none_or(|ip| l.contains(&format!("who-has {ip} "))))
        .collect()
}

/// One node's agent wiring, living in the node's namespace.
struct Node {
    exec: NetnsExecutor,
    wiring: Arc<Wiring>,
}

impl Node {
    async fn start(ns: &str) -> anyhow::Result<Self> {
        let exec = NetnsExecutor::enter(ns)?;
        let wiring = exec
            .run(async {
                let backend = Arc::new(NetlinkBackend::new()?);
                let support = probe_support(&*backend, None, Some("eth1")).await;
                anyhow::ensure!(
                    support.vlan,
                    "the VM's kernel cannot carry vlan networks: {:?}",
                    support.missing
                );
                Ok::<_, anyhow::Error>(Arc::new(Wiring::new(backend, None, support)))
            })
            .await??;
        Ok(Self { exec, wiring })
    }

    async fn wire(&self, c: &Container) -> anyhow::Result<()> {
        let wiring = self.wiring.clone();
        let name = c.name.clone();
        let pid = c.sandbox.as_ref().context("sandbox")?.pid();
        let e = c.endpoint.clone();
        self.exec
            .run(async move { wiring.wire(&format!("p.{name}"), &name, pid, &[e]).await })
            .await??;
        Ok(())
    }

    /// The node-wide pass with what ZooKeeper would say: every container of the scenario.
    async fn sync(&self, node: usize, containers: &[Container]) -> anyhow::Result<()> {
        let mut nets = NodeNetworks::default();
        for c in containers.iter().filter(|c| c.sandbox.is_some()) {
            if c.node == node {
                nets.local
                    .insert(c.endpoint.vni, NetworkDesc::from_endpoint(&c.endpoint)?);
                nets.expect_veths(
                    &format!("p.{}", c.name),
                    &c.name,
                    std::slice::from_ref(&c.endpoint),
                );
            }
        }
        for c in containers.iter().filter(|c| c.sandbox.is_some()) {
            if c.node != node && nets.local.contains_key(&c.endpoint.vni) {
                nets.remote
                    .entry(c.endpoint.vni)
                    .or_default()
                    .push(RemoteEndpoint {
                        ip: c.endpoint.ip.parse()?,
                        mac: parse_mac(&c.endpoint.mac).context("mac")?,
                        vtep: Ipv4Addr::UNSPECIFIED,
                        node_mac: parse_mac(NODE_MACS[c.node]),
                    });
            }
        }
        nets.complete = nets.local.keys().copied().collect();
        let wiring = self.wiring.clone();
        self.exec
            .run(async move { wiring.sync(&nets).await })
            .await??;
        Ok(())
    }
}

fn build_topology() -> anyhow::Result<()> {
    for ns in [SWITCH, ROUTER, NODES[0], NODES[1]] {
        run("ip", &["netns", "add", ns])?;
        must(ns, "ip link set lo up")?;
    }
    must(
        SWITCH,
        "ip link add sw0 type bridge && ip link set sw0 up && \
         sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
    )?;
    for (i, node) in NODES.iter().enumerate() {
        run(
            "ip",
            &[
                "-n",
                node,
                "link",
                "add",
                "eth1",
                "address",
                NODE_MACS[i],
                "type",
                "veth",
                "peer",
                "name",
                NODE_PORTS[i],
                "netns",
                SWITCH,
            ],
        )?;
        must(
            node,
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1; ip link set eth1 up",
        )?;
        must(
            SWITCH,
            &format!("ip link set {} master sw0 up", NODE_PORTS[i]),
        )?;
    }
    run(
        "ip",
        &[
            "-n",
            ROUTER,
            "link",
            "add",
            "eth0",
            "address",
            ROUTER_MAC,
            "type",
            "veth",
            "peer",
            "name",
            ROUTER_PORT,
            "netns",
            SWITCH,
        ],
    )?;
    must(SWITCH, &format!("ip link set {ROUTER_PORT} master sw0 up"))?;
    // The router holds every VLAN's gateway and routes nothing between them.
    let mut script = String::from(
        "sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.disable_ipv6=1; ip link set eth0 up",
    );
    for n in [&A, &B, &C, &D] {
        script.push_str(&format!(
            " && ip link add link eth0 name eth0.{v} type vlan id {v} && \
             ip addr add {gw}/22 dev eth0.{v} && ip link set eth0.{v} up",
            v = n.vlan,
            gw = n.gateway()
        ));
    }
    must(ROUTER, &script)?;
    Ok(())
}

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
    build_topology()?;
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
    for c in &containers {
        nodes[c.node].wire(c).await?;
    }
    for (i, n) in nodes.iter().enumerate() {
        n.sync(i, &containers).await?;
    }
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
