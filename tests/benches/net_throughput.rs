//! TCP throughput container-to-container over the agent's VXLAN wiring between two node
//! namespaces, against the same pair on one plain bridge, iperf3, same run.
//!
//! `cargo bench -p caas-tests --bench net_throughput` (`CAAS_BENCH_ROUNDS=N`, default 3;
//! `CAAS_BENCH_SECONDS=S` per iperf3 run, default 5). Needs root, iproute2, nftables, iperf3.
//!
//! * `netns::Topology` with two nodes (underlays 198.18.0.11/.12 on one fabric bridge).
//! * Every pair is wired by the agent's own `Wiring` (`wire` + `sync`, rtnetlink backend)
//!   running on a thread inside the node's namespace, into throwaway sandbox namespaces:
//!   - `vxlan`: a VXLAN network (MTU 1450), one container on node 1, one on node 2, with the
//!     FDB and neighbour entries `sync` programs for the remote endpoint.
//!   - `bridge`: a bridge network (MTU 1500), both containers on node 1 (the reference).
//!   - `bridge-1450`: the same bridge pair with every MTU set to 1450 afterwards with `ip`,
//!     to split the MTU's share of the cost from encapsulation and the extra hops.
//! * One iperf3 client stream per run (`-t S`, default 5 s), pairs alternating each round;
//!   reported: the median over rounds of the receiver's bits per second.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use caas_agent::network::netlink::NetlinkBackend;
use caas_agent::network::wiring::{NetworkDesc, NodeNetworks, RemoteEndpoint};
use caas_agent::network::{parse_mac, Wiring};
use caas_api::network::{mac_for, Endpoint, NetworkDriver, NetworkSupport};
use caas_tests::netns::{node_ip, NetnsExecutor, Topology};
use caas_tests::sandbox_ns::SandboxNs;

const VXLAN_VNI: u32 = 5001;
const BRIDGE_VNI: u32 = 5002;
const BRIDGE1450_VNI: u32 = 5003;

fn endpoint(driver: NetworkDriver, vni: u32, third: u8, host: u8) -> Endpoint {
    let ip = Ipv4Addr::new(10, 88, third, host);
    Endpoint {
        interface: "eth0".into(),
        network: format!("net{vni}"),
        driver,
        vni,
        subnet: format!("10.88.{third}.0/24"),
        gateway: format!("10.88.{third}.254"),
        ip: ip.to_string(),
        mac: mac_for(ip),
        service: None,
        vlan: None,
    }
}

fn remote(e: &Endpoint, vtep: Ipv4Addr) -> Result<RemoteEndpoint> {
    Ok(RemoteEndpoint {
        ip: e.ip.parse()?,
        mac: parse_mac(&e.mac).context("mac")?,
        vtep,
        node_mac: None,
    })
}

/// Wires `locals` (sandbox pid, endpoint) on the node whose namespace `exec` runs in, with
/// `remotes` as the other node's endpoints, through the agent's `Wiring`.
async fn wire_node(
    exec: &NetnsExecutor,
    underlay: Ipv4Addr,
    locals: Vec<(u32, Endpoint)>,
    remotes: Vec<(u32, RemoteEndpoint)>,
) -> Result<()> {
    exec.run(async move {
        let backend = Arc::new(NetlinkBackend::new()?);
        let wiring = Wiring::new(
            backend,
            Some(underlay),
            NetworkSupport {
                bridge: true,
                vxlan: true,
                missing: None,
                ..Default::default()
            },
        );
        let mut nets = NodeNetworks::default();
        for (i, (pid, e)) in locals.iter().enumerate() {
            let eps = [e.clone()];
            let (workload, sandbox) = (format!("pool.w{i}"), format!("s{i}"));
            wiring.wire(&workload, &sandbox, *pid, &eps).await?;
            nets.expect_veths(&workload, &sandbox, &eps);
            nets.local.insert(e.vni, NetworkDesc::from_endpoint(e)?);
        }
        for (vni, r) in remotes {
            nets.remote.entry(vni).or_default().push(r);
            nets.complete.insert(vni);
        }
        wiring.sync(&nets).await?;
        Ok::<_, anyhow::Error>(())
    })
    .await?
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn iperf_server(ns: &str) -> Result<Server> {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "iperf3", "-s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 (install iperf3)")?;
    Ok(Server(child))
}

/// One iperf3 run; receiver bits per second.
fn iperf(client_ns: &str, server_ip: &str, seconds: u64) -> Result<f64> {
    let start = Instant::now();
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", client_ns, "iperf3", "-J", "-c", server_ip])
            .args(["-t", &seconds.to_string()])
            .output()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(bps) = json["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bps);
        }
        // The server may not listen yet: retry for a while.
        if start.elapsed() > Duration::from_secs(20) {
            bail!(
                "iperf3 to {server_ip} from {client_ns}: {}",
                json["error"].as_str().unwrap_or("no result")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_num(name: &str, default: u64) -> Result<u64> {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .with_context(|| format!("{name} must be a number"))
        })
        .transpose()
        .map(|v| v.unwrap_or(default))
}

#[tokio::main]
async fn main() -> Result<()> {
    let rounds = env_num("CAAS_BENCH_ROUNDS", 3)?.max(1);
    let seconds = env_num("CAAS_BENCH_SECONDS", 5)?.max(1);
    let topo = Topology::create(2)?;
    let prefix = format!("c{}xt", std::process::id());
    let sb: Vec<SandboxNs> = (0..6)
        .map(|i| SandboxNs::create(format!("{prefix}-s{i}")))
        .collect::<Result<_>>()?;
    let vx_a = endpoint(NetworkDriver::Vxlan, VXLAN_VNI, 1, 1);
    let vx_b = endpoint(NetworkDriver::Vxlan, VXLAN_VNI, 1, 2);
    let br_a = endpoint(NetworkDriver::Bridge, BRIDGE_VNI, 2, 1);
    let br_b = endpoint(NetworkDriver::Bridge, BRIDGE_VNI, 2, 2);
    let bm_a = endpoint(NetworkDriver::Bridge, BRIDGE1450_VNI, 3, 1);
    let bm_b = endpoint(NetworkDriver::Bridge, BRIDGE1450_VNI, 3, 2);
    let n1 = NetnsExecutor::enter(topo.node(1))?;
    let n2 = NetnsExecutor::enter(topo.node(2))?;
    wire_node(
        &n1,
        node_ip(1),
        vec![
            (sb[0].pid(), vx_a.clone()),
            (sb[2].pid(), br_a.clone()),
            (sb[3].pid(), br_b.clone()),
            (sb[4].pid(), bm_a.clone()),
            (sb[5].pid(), bm_b.clone()),
        ],
        vec![(VXLAN_VNI, remote(&vx_b, node_ip(2))?)],
    )
    .await?;
    wire_node(
        &n2,
        node_ip(2),
        vec![(sb[1].pid(), vx_b.clone())],
        vec![(VXLAN_VNI, remote(&vx_a, node_ip(1))?)],
    )
    .await?;
    // The bridge-1450 pair: every MTU on its path down to the VXLAN network's.
    for s in &sb[4..6] {
        run(Command::new("ip").args(["-n", &s.name, "link", "set", "eth0", "mtu", "1450"]))?;
    }
    run(Command::new("ip").args(["-n", topo.node(1), "link", "set", "cb5003", "mtu", "1450"]))?;
    let links = run(Command::new("ip").args([
        "-n",
        topo.node(1),
        "-o",
        "link",
        "show",
        "master",
        "cb5003",
    ]))?;
    for l in links.lines() {
        let name = l.split(':').nth(1).unwrap_or_default().trim();
        let name = name.split('@').next().unwrap_or_default();
        run(Command::new("ip").args(["-n", topo.node(1), "link", "set", name, "mtu", "1450"]))?;
    }
    let _servers = [
        iperf_server(&sb[1].name)?,
        iperf_server(&sb[3].name)?,
        iperf_server(&sb[5].name)?,
    ];
    let pairs = [
        ("vxlan (2 nodes, MTU 1450)", &sb[0].name, vx_b.ip.clone()),
        ("bridge (1 node, MTU 1500)", &sb[2].name, br_b.ip.clone()),
        ("bridge-1450 (1 node)", &sb[4].name, bm_b.ip.clone()),
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
    for round in 0..rounds as usize {
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.rotate_left(round % pairs.len());
        for i in order {
            let (name, client, server) = &pairs[i];
            let bps = iperf(client, server, seconds)?;
            println!("round {round}: {name:<28} {:>7.2} Gbit/s", bps / 1e9);
            results[i].push(bps);
        }
    }
    let medians: Vec<f64> = results.into_iter().map(median).collect();
    println!("\nTCP throughput, median of {rounds} runs of {seconds} s (one stream):");
    for ((name, _, _), m) in pairs.iter().zip(&medians) {
        println!(
            "{name:<28} {:>7.2} Gbit/s   {:>5.1} % of bridge",
            m / 1e9,
            100.0 * m / medians[1]
        );
    }
    println!("ratio vxlan/bridge: {:.2}", medians[0] / medians[1]);
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average: {}", l.trim());
    }
    drop(n1);
    drop(n2);
    drop(sb);
    drop(topo);
    Ok(())
}
