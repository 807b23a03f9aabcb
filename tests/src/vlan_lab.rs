//! A VLAN lab for tests that run inside the 802.1Q VM (`scripts/vm-run`): network namespaces
//! for a switch (a plain bridge carrying tagged frames: a trunk), two nodes with an uplink
//! `eth1` into it, the data centre's router (VLAN sub-interfaces holding the gateways) and the
//! containers (a `sleep` per sandbox namespace); each node's wiring is the agent's own (`Wiring`
//! on rtnetlink, its nftables and ebtables rules, its ARP probe) running in the node's
//! namespace; captures on the switch's ports show what reaches the switch.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caas_agent::network::netlink::NetlinkBackend;
use caas_agent::network::probe::probe_support;
use caas_agent::network::wiring::{NetworkDesc, NodeNetworks, RemoteEndpoint};
use caas_agent::network::{parse_mac, Wiring};
use caas_api::network::{mac_for, Endpoint, NetworkDriver, VlanOptions};

use crate::netns::NetnsExecutor;

pub const SWITCH: &str = "vlsw";
pub const ROUTER: &str = "vlgw";
pub const NODES: [&str; 2] = ["vln1", "vln2"];
pub const NODE_MACS: [&str; 2] = ["52:54:00:00:01:01", "52:54:00:00:02:01"];
pub const ROUTER_MAC: &str = "52:54:00:00:fe:01";
/// Switch port of each node, and of the router.
pub const NODE_PORTS: [&str; 2] = ["p1", "p2"];
pub const ROUTER_PORT: &str = "pg";

/// A network of the scenarios: (vni, VLAN id, third octet of its /22, ARP proxy, MAC NAT).
pub struct Net {
    pub vni: u32,
    pub vlan: u16,
    pub third: u8,
    pub arp_proxy: bool,
    pub mac_nat: bool,
}

impl Net {
    pub fn ip(&self, host: u8) -> String {
        format!("10.209.{}.{host}", self.third)
    }
    pub fn gateway(&self) -> String {
        self.ip(1)
    }
    pub fn endpoint(&self, host: u8) -> Endpoint {
        endpoint(
            self.vni,
            Some(self.vlan),
            self.arp_proxy,
            self.mac_nat,
            &self.ip(host),
        )
    }
}

pub fn endpoint(vni: u32, vlan: Option<u16>, arp_proxy: bool, mac_nat: bool, ip: &str) -> Endpoint {
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
pub struct Container {
    pub name: String,
    pub node: usize,
    pub endpoint: Endpoint,
    pub sandbox: Option<crate::sandbox_ns::SandboxNs>,
}

/// Deletes namespaces on drop (the sandboxes delete their own).
pub struct NsGuard(pub Vec<String>);

impl NsGuard {
    pub fn new(names: Vec<String>) -> Self {
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

pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
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
pub fn sh(ns: &str, script: &str) -> (bool, String) {
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

pub fn must(ns: &str, script: &str) -> anyhow::Result<String> {
    let (ok, out) = sh(ns, script);
    if !ok {
        bail!("in {ns}: `{script}` failed: {out}");
    }
    Ok(out)
}

/// Pings until one answer comes (the first may wait for ARP), up to `tries` seconds.
pub fn ping(ns: &str, ip: &str, tries: u32) -> bool {
    (0..tries).any(|_| sh(ns, &format!("busybox ping -c 1 -W 1 {ip}")).0)
}

/// A tcpdump on switch ports, stopped and parsed by `finish`.
pub struct Capture {
    children: Vec<(String, std::process::Child)>,
}

impl Capture {
    pub fn start(ports: &[&str], filter: &str) -> anyhow::Result<Self> {
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
    pub fn finish(mut self) -> BTreeMap<String, Vec<String>> {
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
pub fn macs_seen(lines: &[String]) -> BTreeSet<String> {
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
pub fn arp_requests<'a>(
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
pub struct Node {
    pub exec: NetnsExecutor,
    pub wiring: Arc<Wiring>,
}

impl Node {
    pub async fn start(ns: &str) -> anyhow::Result<Self> {
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

    pub async fn wire(&self, c: &Container) -> anyhow::Result<()> {
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
    pub async fn sync(&self, node: usize, containers: &[Container]) -> anyhow::Result<()> {
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

/// Wires every container on its node, then runs the node-wide pass on both nodes.
pub async fn wire_and_sync(nodes: &[Node], containers: &[Container]) -> anyhow::Result<()> {
    for c in containers {
        nodes[c.node].wire(c).await?;
    }
    for (i, n) in nodes.iter().enumerate() {
        n.sync(i, containers).await?;
    }
    Ok(())
}

/// The switch, two nodes with an uplink `eth1` each, and the router holding the gateway of
/// each of `nets` on its VLAN (routing nothing between them).
pub fn build_topology(nets: &[&Net]) -> anyhow::Result<()> {
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
    for n in nets {
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
