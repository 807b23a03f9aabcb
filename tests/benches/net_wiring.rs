//! Wiring one container into a VXLAN network through the agent's own code (`Wiring::wire` then
//! `Wiring::sync` with the new remote endpoint, on the rtnetlink `NetlinkBackend`) against the
//! same steps done by an `ip`/`bridge` shell script, same run, p50/p99 over N containers.
//!
//! `cargo bench -p caas-tests --bench net_wiring` (`CAAS_BENCH_CONTAINERS=N`, default 100).
//! Needs root and iproute2.
//!
//! * The bench process moves itself into a fresh network namespace (the "node") before any
//!   thread starts; it holds an underlay veth `ul0` (198.18.1.1/24) and, once the warm-up
//!   container is wired, the network's bridge `cb<vni>` and VXLAN device `cv<vni>`.
//! * Every container is a named throwaway namespace (`c<pid>xw-a<i>` / `-b<i>`) with a `sleep`
//!   process in it standing in for the sandbox; creating them is not timed.
//! * Agent path (timed): `wire` (veth pair, peer moved into the sandbox, renamed `eth0`, MAC,
//!   MTU 1450, address, lo up, default route via the gateway, host end on the bridge and up)
//!   then `sync` with one more remote endpoint (its FDB entry and neighbour entry on `cv<vni>`;
//!   the nftables table is already applied, so `sync` only reads and adds entries).
//! * Script path (timed): one `sh -e` process running the same steps with `ip` and `bridge`.
//! * The paths alternate (A/B, then B/A) so drift on the shared machine hits both.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use caas_agent::network::netlink::NetlinkBackend;
use caas_agent::network::wiring::{NetworkDesc, NodeNetworks, RemoteEndpoint};
use caas_agent::network::{bridge_name, parse_mac, vxlan_name, Wiring};
use caas_api::network::{mac_for, Endpoint, NetworkDriver, NetworkSupport};
use caas_tests::sandbox_ns::SandboxNs;

const VNI: u32 = 4242;
const SUBNET: &str = "10.77.0.0/16";
const GATEWAY: &str = "10.77.255.254";
const UNDERLAY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const REMOTE_VTEP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

fn sh(cmd: &str) -> Result<()> {
    let out = Command::new("sh").args(["-ec", cmd]).output()?;
    if !out.status.success() {
        bail!("{cmd}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn endpoint(ip: Ipv4Addr) -> Endpoint {
    Endpoint {
        interface: "eth0".into(),
        network: "benchnet".into(),
        driver: NetworkDriver::Vxlan,
        vni: VNI,
        subnet: SUBNET.into(),
        gateway: GATEWAY.into(),
        ip: ip.to_string(),
        mac: mac_for(ip),
        service: None,
        vlan: None,
    }
}

fn ip_of(group: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, group + (i / 250) as u8, 1 + (i % 250) as u8)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Bench {
    wiring: Wiring,
    nets: NodeNetworks,
    prefix: String,
}

impl Bench {
    /// Returns (total, wire part, sandbox).
    async fn agent(&mut self, i: usize) -> Result<(Duration, Duration, SandboxNs)> {
        let sandbox = SandboxNs::create(format!("{}-a{i}", self.prefix))?;
        let ep = endpoint(ip_of(1, i));
        let workload = format!("pool.bench{i}");
        let sandbox_id = format!("sb{i}");
        let remote_ip = ip_of(3, i);
        let remote = RemoteEndpoint {
            ip: remote_ip,
            mac: parse_mac(&mac_for(remote_ip)).context("mac")?,
            vtep: REMOTE_VTEP,
            node_mac: None,
        };
        let t0 = Instant::now();
        let eps = [ep];
        self.wiring
            .wire(&workload, &sandbox_id, sandbox.pid(), &eps)
            .await?;
        let wired = t0.elapsed();
        self.nets.expect_veths(&workload, &sandbox_id, &eps);
        self.nets.remote.entry(VNI).or_default().push(remote);
        self.wiring.sync(&self.nets).await?;
        Ok((t0.elapsed(), wired, sandbox))
    }

    fn script(&self, i: usize) -> Result<(Duration, SandboxNs)> {
        let sandbox = SandboxNs::create(format!("{}-b{i}", self.prefix))?;
        let ns = &sandbox.name;
        let ip = ip_of(2, i);
        let mac = mac_for(ip);
        let remote_ip = ip_of(4, i);
        let remote_mac = mac_for(remote_ip);
        let (host, peer) = (format!("sx{i:05}"), format!("sy{i:05}"));
        let (br, vx) = (bridge_name(VNI), vxlan_name(VNI));
        let script = format!(
            "ip link add {host} type veth peer name {peer} netns {ns}\n\
             ip -n {ns} link set {peer} name eth0\n\
             ip -n {ns} link set eth0 address {mac} mtu 1450\n\
             ip -n {ns} addr add {ip}/16 dev eth0\n\
             ip -n {ns} link set lo up\n\
             ip -n {ns} link set eth0 up\n\
             ip -n {ns} route add default via {GATEWAY} dev eth0\n\
             ip link set {host} mtu 1450 master {br} up\n\
             bridge fdb append {remote_mac} dev {vx} dst {REMOTE_VTEP} self permanent\n\
             ip neigh replace {remote_ip} lladdr {remote_mac} dev {vx} nud permanent\n"
        );
        let t0 = Instant::now();
        sh(&script)?;
        Ok((t0.elapsed(), sandbox))
    }
}

fn main() -> Result<()> {
    let n: usize = std::env::var("CAAS_BENCH_CONTAINERS")
        .ok()
        .map(|v| v.parse().context("CAAS_BENCH_CONTAINERS must be a number"))
        .transpose()?
        .unwrap_or(100);
    caas_tests::netns::sweep_stale();
    // The node: a namespace of our own, entered before any thread exists.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
    sh(&format!(
        "ip link set lo up; ip link add ul0 type veth peer name ul1; ip addr add {UNDERLAY}/24 dev ul0; ip link set ul1 up; ip link set ul0 up"
    ))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(n))
}

async fn run(n: usize) -> Result<()> {
    let backend = Arc::new(NetlinkBackend::new()?);
    let wiring = Wiring::new(
        backend,
        Some(UNDERLAY),
        NetworkSupport {
            bridge: true,
            vxlan: true,
            missing: None,
            ..Default::default()
        },
    );
    let mut nets = NodeNetworks::default();
    nets.local
        .insert(VNI, NetworkDesc::from_endpoint(&endpoint(ip_of(1, 0)))?);
    let mut bench = Bench {
        wiring,
        nets,
        prefix: format!("c{}xw", std::process::id()),
    };
    let mut keep = Vec::new();
    // Warm-up (not counted): creates the bridge, the VXLAN device and the nftables table, and
    // pages in `ip`, `bridge` and `sh`.
    let (d, _, s) = bench.agent(10_000).await?;
    println!(
        "warm-up agent (creates bridge, VXLAN device, firewall): {:.2} ms",
        ms(d)
    );
    keep.push(s);
    let (d, s) = bench.script(10_000)?;
    println!("warm-up script: {:.2} ms", ms(d));
    keep.push(s);
    let (mut agent, mut script, mut wire) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        if i % 2 == 0 {
            let (d, w, s) = bench.agent(i).await?;
            agent.push(d);
            wire.push(w);
            keep.push(s);
            let (d, s) = bench.script(i)?;
            script.push(d);
            keep.push(s);
        } else {
            let (d, s) = bench.script(i)?;
            script.push(d);
            keep.push(s);
            let (d, w, s) = bench.agent(i).await?;
            agent.push(d);
            wire.push(w);
            keep.push(s);
        }
    }
    // The kernel shows what the agent wired (a check that the timed work really happened).
    let out = Command::new("ip")
        .args(["-n", &keep[2].name, "-br", "addr", "show", "eth0"])
        .output()?;
    println!(
        "sample sandbox: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    let neigh = Command::new("ip")
        .args(["neigh", "show", "dev", &vxlan_name(VNI), "nud", "permanent"])
        .output()?;
    let neighbours = String::from_utf8_lossy(&neigh.stdout).lines().count();
    println!(
        "permanent neighbours on {}: {neighbours} (expect {})",
        vxlan_name(VNI),
        2 * n + 2
    );
    agent.sort();
    wire.sort();
    script.sort();
    let row = |name: &str, v: &[Duration]| {
        println!(
            "{name:<28} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            ms(percentile(v, 50.0)),
            ms(percentile(v, 99.0)),
            ms(v[v.len() - 1])
        );
    };
    println!("\nwiring per container, {n} containers per path:");
    row("agent (rtnetlink)", &agent);
    row("  of which wire()", &wire);
    row("ip/bridge script", &script);
    println!(
        "ratio script/agent: p50 {:.1}x   p99 {:.1}x",
        percentile(&script, 50.0).as_secs_f64() / percentile(&agent, 50.0).as_secs_f64(),
        percentile(&script, 99.0).as_secs_f64() / percentile(&agent, 99.0).as_secs_f64()
    );
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average: {}", l.trim());
    }
    drop(keep);
    // The nftables table lives in our namespace and goes with it.
    Ok(())
}
