//! End to end, without central: two real agents in two node namespaces of one fabric, real
//! Docker and ZooKeeper. The test writes what central would (assignments whose specs carry
//! endpoints, and the `IpAllocation` znodes of the networks) and checks the wiring in the kernel
//! and from inside the containers: traffic across nodes over VXLAN, the hostname, interfaces in
//! the status, the gateway, isolation between networks, the neighbour and FDB entries, a TCP
//! connection that survives restarting both agents, and a clean node after everything is deleted.
//! All traffic stays in the namespaces the test made (underlay 198.18.0.0/24, overlay 10.x).

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use caas_api::network::{mac_for, Endpoint, IpAllocation, NetworkDriver};
use caas_api::{Assignment, WorkloadKey, WorkloadSpec, WorkloadState, ZkLayout};
use caas_tests::agent::{
    container_prefix, test_node_id, AgentOptions, AgentProcess, ContainerSweeper,
};
use caas_tests::netns::{node_ip, NetnsExecutor, Topology, FABRIC_IP};
use caas_tests::zk_server::ZkServer;
use caas_zk::zookeeper_client::{Client, Error as ZkError};

const POOL: &str = "pool1";
const WAIT: Duration = Duration::from_secs(30);

struct Net {
    name: &'static str,
    vni: u32,
    subnet: &'static str,
    gateway: &'static str,
}

const BLUE: Net = Net {
    name: "blue",
    vni: 4242,
    subnet: "10.42.0.0/24",
    gateway: "10.42.0.254",
};
const RED: Net = Net {
    name: "red",
    vni: 4343,
    subnet: "10.43.0.0/24",
    gateway: "10.43.0.254",
};

fn endpoint(net: &Net, ip: &str) -> Endpoint {
    Endpoint {
        interface: "eth0".into(),
        network: net.name.into(),
        driver: NetworkDriver::Vxlan,
        vni: net.vni,
        subnet: net.subnet.into(),
        gateway: net.gateway.into(),
        ip: ip.into(),
        mac: mac_for(
            ip.parse()
                .unwrap_or_else(|e| panic!("test address {ip}: {e}")),
        ),
        service: None,
        vlan: None,
    }
}

/// Output of a command, failing with its stderr.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output()?;
    if !out.status.success() {
        bail!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

struct World {
    agents: Vec<AgentProcess>,
    _sweeper: ContainerSweeper,
    zk_client: Client,
    _fabric: NetnsExecutor,
    _zk: ZkServer,
    topo: Topology,
    busybox: String,
    layout: ZkLayout,
    nodes: Vec<String>,
}

impl World {
    async fn start() -> anyhow::Result<Self> {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let docker = caas_tests::images::docker().await?;
        let busybox = caas_tests::images::ensure_busybox(&docker).await?;
        let nodes = vec![test_node_id("net1"), test_node_id("net2")];
        let sweeper = ContainerSweeper::new(&nodes);
        let topo = Topology::create(2)?;
        let zk = ZkServer::start_in(&topo.fabric, IpAddr::V4(FABRIC_IP)).await?;
        let fabric = NetnsExecutor::enter(&topo.fabric)?;
        let servers = zk.connect_string();
        let zk_client = fabric
            .run(async move {
                let mut config = caas_zk::ZkConfig::new(servers);
                config.session_timeout = Duration::from_secs(10);
                caas_zk::connect(&config).await
            })
            .await??;
        let layout = ZkLayout::new("/caas")?;
        // Node 1 filters forwarding as a Docker host does: FORWARD policy DROP through a
        // DOCKER-USER chain, and bridged frames pass iptables (br_netfilter). Its agent must
        // add exceptions for its bridges or nothing in its networks gets through.
        in_ns(
            topo.node(1),
            "sh",
            &[
                "-ec",
                "iptables -w -N DOCKER-USER; iptables -w -A DOCKER-USER -j RETURN; \
                 iptables -w -A FORWARD -j DOCKER-USER; iptables -w -P FORWARD DROP; \
                 if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then \
                   sysctl -qw net.bridge.bridge-nf-call-iptables=1; fi",
            ],
        )?;
        let mut agents = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            agents.push(AgentProcess::start(AgentOptions {
                node_id: node.clone(),
                pool: POOL.into(),
                zk: zk.connect_string(),
                zk_root: layout.root().to_string(),
                netns: Some(topo.node(i + 1).to_string()),
                listen: SocketAddr::new(IpAddr::V4(node_ip(i + 1)), 7070),
                underlay: Some(node_ip(i + 1).to_string()),
                labels: Vec::new(),
                extra_config: String::new(),
            })?);
        }
        Ok(Self {
            agents,
            _sweeper: sweeper,
            zk_client,
            _fabric: fabric,
            _zk: zk,
            topo,
            busybox,
            layout,
            nodes,
        })
    }

    fn spec(&self, name: &str, hostname: Option<&str>, endpoints: Vec<Endpoint>) -> WorkloadSpec {
        let mut spec: WorkloadSpec = serde_json::from_value(serde_json::json!({
            "pool": POOL, "name": name, "image": self.busybox,
            "command": ["sleep", "3600"],
        }))
        .unwrap_or_else(|e| panic!("test spec: {e}"));
        spec.hostname = hostname.map(str::to_string);
        spec.networks = endpoints;
        spec
    }

    /// Writes what central would: the address allocation, then the assignment.
    async fn place(&self, node: usize, spec: &WorkloadSpec) -> anyhow::Result<()> {
        for e in &spec.networks {
            let alloc = IpAllocation {
                version: caas_api::PAYLOAD_VERSION,
                ip: e.ip.clone(),
                mac: e.mac.clone(),
                workload: spec.name.clone(),
                node: self.nodes[node].clone(),
                service: None,
            };
            caas_tests::zk_io::put(
                &self.zk_client,
                &self.layout.ip(POOL, &e.network, &e.ip),
                &serde_json::to_vec(&alloc)?,
            )
            .await?;
        }
        caas_tests::zk_io::put_assignment(
            &self.zk_client,
            &self.layout,
            &self.nodes[node],
            &Assignment::run(spec.clone()),
        )
        .await
    }

    async fn remove(&self, node: usize, spec: &WorkloadSpec) -> anyhow::Result<()> {
        let path = self
            .layout
            .assignment(&self.nodes[node], &WorkloadKey::new(POOL, &spec.name));
        ignore_no_node(self.zk_client.delete(&path, None).await)?;
        for e in &spec.networks {
            let path = self.layout.ip(POOL, &e.network, &e.ip);
            ignore_no_node(self.zk_client.delete(&path, None).await)?;
        }
        Ok(())
    }

    async fn wait_running(
        &self,
        node: usize,
        name: &str,
    ) -> anyhow::Result<caas_api::WorkloadStatus> {
        let key = WorkloadKey::new(POOL, name);
        let result =
            caas_tests::wait::until(&format!("{name} running and wired"), WAIT, || async {
                let s = caas_tests::zk_io::status(
                    &self.zk_client,
                    &self.layout,
                    &self.nodes[node],
                    &key,
                )
                .await?;
                Ok(s.filter(|s| s.state == WorkloadState::Running && !s.interfaces.is_empty()))
            })
            .await;
        result.with_context(|| format!("agent log:\n{}", tail(&self.agents[node].log(), 40)))
    }

    fn app(&self, node: usize, name: &str) -> String {
        format!("{}.{POOL}.{name}", container_prefix(&self.nodes[node]))
    }

    fn exec(&self, node: usize, name: &str, cmd: &[&str]) -> anyhow::Result<String> {
        let app = self.app(node, name);
        let mut args = vec!["exec", app.as_str()];
        args.extend_from_slice(cmd);
        run("docker", &args)
    }

    /// `docker exec -d`: starts `script` in the app container and returns at once.
    fn spawn(&self, node: usize, name: &str, script: &str) -> anyhow::Result<()> {
        let app = self.app(node, name);
        run("docker", &["exec", "-d", app.as_str(), "sh", "-c", script]).map(|_| ())
    }

    fn ping(&self, node: usize, name: &str, ip: &str) -> bool {
        self.exec(node, name, &["ping", "-c", "1", "-W", "1", ip])
            .is_ok()
    }

    fn ns(&self, node: usize) -> &str {
        self.topo.node(node + 1)
    }
}

fn ignore_no_node(r: Result<(), ZkError>) -> anyhow::Result<()> {
    match r {
        Ok(()) | Err(ZkError::NoNode) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    caas_tests::wait::until(what, WAIT, || {
        let ok = check();
        async move { Ok(ok.then_some(())) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_network_between_two_agents() -> anyhow::Result<()> {
    let mut w = World::start().await?;
    // Both nodes say what they can wire.
    for node in &w.nodes {
        let info = caas_tests::wait::until("registration with network support", WAIT, || async {
            Ok(
                caas_tests::zk_io::registration(&w.zk_client, &w.layout, node)
                    .await?
                    .map(|(info, _)| info)
                    .filter(|i| i.engine_ready),
            )
        })
        .await?;
        assert!(
            info.networks.vxlan && info.networks.bridge,
            "{:?}",
            info.networks
        );
    }

    let a = w.spec("a", Some("core-1"), vec![endpoint(&BLUE, "10.42.0.10")]);
    let b = w.spec("b", None, vec![endpoint(&BLUE, "10.42.0.20")]);
    let c = w.spec("c", None, vec![endpoint(&RED, "10.43.0.30")]);
    w.place(0, &a).await?;
    w.place(1, &b).await?;
    w.place(1, &c).await?;
    let status_a = w.wait_running(0, "a").await?;
    w.wait_running(1, "b").await?;
    w.wait_running(1, "c").await?;

    // The Docker-like node got its exceptions (the pings below cross its FORWARD filter).
    let rules = in_ns(w.ns(0), "iptables", &["-w", "-S", "DOCKER-USER"])?;
    assert!(
        rules.contains("-A DOCKER-USER -i cb+ -j ACCEPT")
            && rules.contains("-o cb+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        "{rules}"
    );

    // Interfaces in the status, hostname from the spec.
    assert_eq!(status_a.interfaces.len(), 1);
    let i = &status_a.interfaces[0];
    assert_eq!(
        (
            i.name.as_str(),
            i.network.as_str(),
            i.ip.as_str(),
            i.mac.as_str()
        ),
        (
            "eth0",
            "blue",
            "10.42.0.10",
            mac_for("10.42.0.10".parse()?).as_str()
        )
    );
    assert_eq!(w.exec(0, "a", &["hostname"])?.trim(), "core-1");

    // Across nodes over VXLAN, both ways.
    eventually("a pings b across nodes", || w.ping(0, "a", "10.42.0.20")).await?;
    eventually("b pings a across nodes", || w.ping(1, "b", "10.42.0.10")).await?;
    // The node's underlay through the gateway.
    assert!(
        w.ping(0, "a", &node_ip(1).to_string()),
        "a reaches its node's underlay"
    );

    // The kernel of node 2 knows a's endpoint statically.
    let neigh = in_ns(w.ns(1), "ip", &["neigh", "show", "dev", "cv4242"])?;
    assert!(
        neigh.contains("10.42.0.10")
            && neigh.contains(&mac_for("10.42.0.10".parse()?))
            && neigh.contains("PERMANENT"),
        "{neigh}"
    );
    let fdb = in_ns(w.ns(1), "bridge", &["fdb", "show", "dev", "cv4242"])?;
    assert!(
        fdb.contains(&format!(
            "{} dst {}",
            mac_for("10.42.0.10".parse()?),
            node_ip(1)
        )),
        "{fdb}"
    );
    assert!(
        fdb.contains(&format!("00:00:00:00:00:00 dst {}", node_ip(1))),
        "{fdb}"
    );
    let table = in_ns(w.ns(1), "nft", &["list", "table", "inet", "caas"])?;
    // nft prints the VNI in hex: 4242 = 0x1092; only node 1's VTEP may send it.
    assert!(
        table.contains(&format!(
            "udp dport 4789 @th,96,24 0x1092 ip saddr {} accept",
            node_ip(1)
        )),
        "{table}"
    );

    // Two networks cannot reach each other, on one node or across nodes (ICMP and TCP).
    assert!(
        !w.ping(1, "c", "10.42.0.20"),
        "red reached blue on the same node"
    );
    assert!(
        !w.ping(1, "c", "10.42.0.10"),
        "red reached blue on another node"
    );
    w.spawn(0, "a", "sleep 100000 | nc -l -p 7000 >/dev/null 2>&1")?;
    assert!(
        w.exec(1, "c", &["sh", "-c", "echo hi | nc -w 2 10.42.0.10 7000"])
            .is_err(),
        "red opened a TCP connection into blue"
    );

    // A TCP connection between a and b survives restarting both agents.
    // busybox nc closes the connection at EOF on its stdin: give it one that never ends.
    w.spawn(0, "a", "sleep 100000 | nc -l -p 5000 > /tmp/recv")?;
    let lines = |w: &World| -> usize {
        w.exec(0, "a", &["cat", "/tmp/recv"])
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    eventually("a listens on 5000", || {
        w.exec(0, "a", &["netstat", "-ltn"])
            .is_ok_and(|out| out.contains(":5000"))
    })
    .await?;
    w.spawn(
        1,
        "b",
        "i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done | nc 10.42.0.10 5000",
    )?;
    if let Err(e) = eventually("b's data arrives at a", || lines(&w) > 2).await {
        let debug = [
            w.exec(1, "b", &["ps"]),
            w.exec(0, "a", &["ps"]),
            w.exec(0, "a", &["netstat", "-tn"]),
            w.exec(1, "b", &["netstat", "-tn"]),
            w.exec(
                1,
                "b",
                &["sh", "-c", "echo hi | nc -w 3 10.42.0.10 7000; echo rc=$?"],
            ),
            w.exec(0, "a", &["cat", "/tmp/recv"]),
        ];
        panic!("{e:#}: {debug:#?}");
    }
    let before_restart = lines(&w);
    w.agents[0].restart()?;
    w.agents[1].restart()?;
    // The restarted agents converge (a fresh status write after each restart) and leave the
    // kernel alone: the connection keeps carrying data.
    for (node, name) in [(0, "a"), (1, "b")] {
        w.wait_running(node, name).await?;
    }
    caas_tests::wait::until(
        "both agents past a network pass after restart",
        WAIT,
        || async {
            let done = w.agents.iter().all(|a| {
                a.log()
                    .matches("network drivers this node can wire")
                    .count()
                    >= 2
            });
            Ok(done.then_some(()))
        },
    )
    .await?;
    let after_restart = lines(&w);
    eventually("data still flows on the old connection", || {
        lines(&w) > after_restart + 5
    })
    .await?;
    assert!(after_restart >= before_restart);
    // The restarted agents found the kernel right and changed nothing in it.
    for agent in &w.agents {
        let log = agent.log();
        let since = log
            .rfind("network drivers this node can wire")
            .map_or("", |i| &log[i..]);
        for changed in [
            "wiring the interface",
            "creating the network's",
            "fixing the interface",
            "removing the devices",
        ] {
            assert!(
                !since.contains(changed),
                "after restart: {changed}\n{since}"
            );
        }
        assert!(
            !since
                .lines()
                .any(|l| l.contains("entries_added: ") && !l.contains("entries_added: 0")),
            "remote entries re-added after restart:\n{since}"
        );
    }
    // One server accept: the data arrives on the same connection.
    assert!(w.exec(0, "a", &["sh", "-c", "pidof nc"]).is_ok());

    // Deleting everything leaves no device, entry or table.
    for (node, spec) in [(0, &a), (1, &b), (1, &c)] {
        w.remove(node, spec).await?;
    }
    for node in 0..2 {
        let ns = w.ns(node).to_string();
        let ours = |out: &str| {
            out.lines()
                .any(|l| l.contains(": cb") || l.contains(": cv") || l.contains(": cw"))
        };
        if let Err(e) = eventually("no caas devices left", || {
            in_ns(&ns, "ip", &["-o", "link", "show"]).is_ok_and(|out| !ours(&out))
        })
        .await
        {
            panic!(
                "{e:#}\n{:?}\nagent log:\n{}",
                in_ns(&ns, "ip", &["-o", "link", "show"]),
                tail(&w.agents[node].log(), 30)
            );
        }
        eventually("no nftables table left", || {
            in_ns(&ns, "nft", &["list", "tables"])
                .map(|out| !out.contains("caas"))
                .unwrap_or(false)
        })
        .await?;
        let neigh = in_ns(&ns, "ip", &["neigh", "show"])?;
        assert!(
            !neigh.contains("10.42.") && !neigh.contains("10.43."),
            "{neigh}"
        );
        let fdb = in_ns(&ns, "bridge", &["fdb", "show"])?;
        assert!(!fdb.contains("dst 198.18."), "{fdb}");
    }
    eventually(
        "Docker's FORWARD exceptions removed with the last network",
        || {
            in_ns(w.ns(0), "iptables", &["-w", "-S", "DOCKER-USER"])
                .is_ok_and(|r| !r.contains("cb+"))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_underlay_the_node_does_not_own_stops_the_agent_with_64() -> anyhow::Result<()> {
    let topo = Topology::create(1)?;
    let mut agent = AgentProcess::start(AgentOptions {
        node_id: test_node_id("badunderlay"),
        pool: POOL.into(),
        zk: format!("{FABRIC_IP}:2181"),
        zk_root: "/caas".into(),
        netns: Some(topo.node(1).to_string()),
        listen: SocketAddr::new(IpAddr::V4(node_ip(1)), 7070),
        underlay: Some("198.18.0.99".into()),
        labels: Vec::new(),
        extra_config: String::new(),
    })?;
    let code = agent.wait_exit()?;
    let log = agent.log();
    assert!(
        log.contains("underlay") && log.contains("198.18.0.99 is not an address of any interface"),
        "{log}"
    );
    assert_eq!(code, Some(64), "{log}");
    Ok(())
}
