//! Internal DNS and load balancing end to end: a fabric and three node namespaces, real agents,
//! Docker, ZooKeeper, central and the `caas` CLI in the shapes. From a container: the
//! hostname, the service name (healthy replicas only), the LB name and an external name
//! (forwarded to a fake resolver in the fabric) resolve, another network's name does not; 300
//! requests through the VIP spread over three backends on three nodes; a killed backend drops
//! out and no request after that fails; `Publish` answers on every node's underlay address;
//! every bad input is refused with nothing written; `lb rm`, `dns rm` and the network's removal
//! leave no rules, addresses or records behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use caas_api::central::ContainerView;
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::netns::node_ip;
use caas_tests::process::ChildGuard;
use caas_tests::wait::until;

const POOL: &str = "pool2";
const GATEWAY: &str = "192.168.31.254";
const VIP: &str = "192.168.31.100";
/// What the fake upstream resolver in the fabric answers for `external.test`.
const EXTERNAL_IP: &str = "198.18.0.77";

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

fn ns_run(ns: &str, cmd: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
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

async fn running(c: &Cluster, token: &str, name: &str) -> ContainerView {
    until(
        &format!("{name} running, wired and not unhealthy"),
        Duration::from_secs(90),
        || async {
            let view = inspect(c, token, name).await;
            let ready = view.status.as_ref().is_some_and(|s| {
                s.state == caas_api::WorkloadState::Running
                    && s.interfaces.len() == view.spec.networks.len()
                    && s.health
                        .as_ref()
                        .is_none_or(|h| h.state == caas_api::HealthState::Healthy)
            });
            Ok(ready.then_some(view))
        },
    )
    .await
    .unwrap()
}

/// The addresses busybox `nslookup NAME` prints for the answer (after the server's lines).
fn resolve(container: &str, name: &str) -> Vec<String> {
    let (_, out) = exec(container, &["nslookup", "-type=a", name]);
    let mut ips: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// `n` HTTP requests to `ip`:80 from `container` (busybox nc: the image's static wget crashes
/// in getaddrinfo); the body of each (or "FAIL").
fn requests(container: &str, ip: &str, n: usize) -> Vec<String> {
    let script = format!(
        "for i in $(seq {n}); do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80 | tail -n 1); [ -n \"$r\" ] && echo \"$r\" || echo FAIL; done"
    );
    let (_, out) = exec(container, &["sh", "-c", &script]);
    out.lines().map(|l| l.trim().to_string()).collect()
}

fn counts(bodies: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for b in bodies {
        *out.entry(b.clone()).or_insert(0) += 1;
    }
    out
}

/// A fake upstream resolver in the fabric namespace (dnsmasq, no other source of names).
fn fake_upstream(c: &Cluster) -> ChildGuard {
    let dnsmasq = Path::new("/usr/sbin/dnsmasq");
    assert!(
        dnsmasq.exists(),
        "dnsmasq is missing; run scripts/install-deps"
    );
    let args: Vec<String> = [
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--bind-interfaces",
        "--listen-address=198.18.0.1",
        "--port=53",
        "--user=root",
        &format!("--pid-file={}", c.dir.path().join("dnsmasq.pid").display()),
        &format!("--address=/external.test/{EXTERNAL_IP}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ChildGuard::spawn(
        "dnsmasq",
        Some(&c.topo.fabric),
        dnsmasq,
        &args,
        &[],
        &c.dir.path().join("dnsmasq.log"),
    )
    .unwrap()
}

struct Creator<'a> {
    c: &'a Cluster,
    token: &'a str,
    image: &'a str,
}

impl Creator<'_> {
    /// `container create NAME --public-service SERVICE -c slot==SLOT EXTRA -- sh -c CMD`.
    async fn run(&self, name: &str, service: &str, slot: &str, cmd: &str, extra: &[&str]) {
        let constraint = format!("slot=={slot}");
        let mut args: Vec<&str> = vec![
            "--pool=pool2",
            "container",
            "create",
            name,
            "--public-service",
            service,
            "--image",
            self.image,
            "-c",
            &constraint,
        ];
        args.extend_from_slice(extra);
        args.extend(["--", "sh", "-c", cmd]);
        cli_ok(self.c, self.token, &args).await;
    }
}

/// The pool's part of ZooKeeper (statuses and registrations change on their own).
async fn pool_dump(c: &Cluster) -> BTreeMap<String, Vec<u8>> {
    let mut dump = c.dump().await.unwrap();
    let pools = c.layout.pools();
    dump.retain(|path, _| path.starts_with(&pools) || path.starts_with(&c.layout.vnis()));
    dump
}

/// What the nodes have, for a failure's message.
fn diagnose(c: &Cluster) {
    for i in 1..=3 {
        let ns = c.topo.node(i);
        eprintln!("=== node {i} ({ns})");
        eprintln!(
            "{}",
            ns_run(ns, &["nft", "list", "table", "ip", "caaslb"]).1
        );
        eprintln!("{}", ns_run(ns, &["ip", "-o", "addr", "show"]).1);
        let log = c.agents[i - 1].log();
        for line in log.lines().filter(|l| {
            l.contains("services")
                || l.contains("load balancer")
                || l.contains("VIP")
                || l.contains("DNS")
        }) {
            eprintln!("{line}");
        }
    }
}

fn web_command(name: &str) -> String {
    // httpd daemonizes (not PID 1, which would ignore the test's kill).
    format!("mkdir -p /www && echo {name} > /www/index.html && httpd -p 80 -h /www && exec sleep 100000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_and_load_balancing_end_to_end() {
    let nodes = vec![
        NodeSpec::new(POOL, &["slot=1"]),
        NodeSpec::new(POOL, &["slot=2"]),
        NodeSpec::new(POOL, &["slot=3"]),
    ];
    let c = Cluster::start("dnslb", &nodes, 1, 3).await.unwrap();
    let token = c.create_pool(POOL).await.unwrap();
    let image = c.busybox.clone();
    let _upstream = fake_upstream(&c);
    let p = "--pool=pool2";
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());

    cli_ok(
        &c,
        &token,
        &[
            p,
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
            p,
            "network",
            "create",
            "other",
            "-l",
            "Subnet=10.50.0.0/24",
            "-l",
            "Gateway=10.50.0.1",
        ],
    )
    .await;
    // The command, plus a forwarder in the fabric for other names.
    cli_ok(
        &c,
        &token,
        &[
            p,
            "dns",
            "create",
            "dns1",
            "-x",
            "myvxlan",
            "-l",
            "Forward=198.18.0.1",
        ],
    )
    .await;
    cli_ok(&c, &token, &[p, "dns", "create", "dns2", "-x", "other"]).await;

    let create = Creator {
        c: &c,
        token: &token,
        image: &image,
    };
    create
        .run(
            "core",
            ".myvxlan",
            "1",
            "sleep 100000",
            &["-l", "Ip=192.168.31.3", "-l", "Hostname=core-1"],
        )
        .await;
    for i in 1..=3 {
        let name = format!("web-{i}");
        create
            .run(
                &name,
                "web.myvxlan",
                &i.to_string(),
                &web_command(&name),
                &[
                    "--health-tcp",
                    "80",
                    "--health-interval",
                    "1",
                    "--health-retries",
                    "1",
                ],
            )
            .await;
    }
    create
        .run("client", ".myvxlan", "1", "sleep 100000", &[])
        .await;
    create
        .run(
            "stranger",
            ".other",
            "2",
            "sleep 100000",
            &["-l", "Hostname=stranger-1"],
        )
        .await;

    phase("containers created");
    let core = running(&c, &token, "core").await;
    let mut webs = Vec::new();
    for i in 1..=3 {
        webs.push(running(&c, &token, &format!("web-{i}")).await);
    }
    let client = running(&c, &token, "client").await;
    running(&c, &token, "stranger").await;
    let client_c = app(&client.node, "client");
    assert_eq!(client.node, webs[0].node, "client and web-1 share a node");
    let web_ips: Vec<String> = webs
        .iter()
        .map(|w| w.status.as_ref().unwrap().interfaces[0].ip.clone())
        .collect();

    phase("all running");
    // The agent wrote the container's resolver and search domain.
    until(
        "resolv.conf points at the gateway",
        Duration::from_secs(20),
        || async {
            let (_, conf) = exec(&client_c, &["cat", "/etc/resolv.conf"]);
            Ok((conf.contains(&format!("nameserver {GATEWAY}"))
                && conf.contains("search caas.local"))
            .then_some(()))
        },
    )
    .await
    .unwrap();

    // Names: the hostname (short, through the search domain, and fully qualified), the service
    // (every healthy replica), an external name (forwarded to the fabric's resolver).
    assert_eq!(resolve(&client_c, "core-1"), ["192.168.31.3"]);
    assert_eq!(resolve(&client_c, "core-1.caas.local"), ["192.168.31.3"]);
    until(
        "the service lists its three replicas",
        Duration::from_secs(20),
        || async {
            let mut want = web_ips.clone();
            want.sort();
            Ok((resolve(&client_c, "web") == want).then_some(()))
        },
    )
    .await
    .unwrap();
    assert_eq!(resolve(&client_c, "external.test"), [EXTERNAL_IP]);
    // Another network's name is not answered (not by this network's DNS, whose forwarder does
    // not know it either).
    assert!(resolve(&client_c, "stranger-1").is_empty());
    assert!(resolve(&client_c, "stranger-1.caas.local").is_empty());
    // The same answers from every node's server (dig straight at the gateway from a container
    // on another node).
    let core_view = inspect(&c, &token, "core").await;
    assert!(
        core_view
            .services
            .dns_names
            .contains(&"core-1.caas.local".to_string()),
        "{:?}",
        core_view.services
    );
    let _ = core;

    phase("DNS checked");
    // The load balancer, in the shapes.
    cli_ok(
        &c,
        &token,
        &[
            p,
            "lb",
            "create",
            "web-lb",
            "-x",
            "myvxlan",
            "-l",
            "Port=80",
            "-l",
            &format!("Vip={VIP}"),
            "-l",
            "Publish=8080",
        ],
    )
    .await;
    for i in 1..=3 {
        let name = format!("web-{i}");
        cli_ok(
            &c,
            &token,
            &[p, "lb", "add_container", "web-lb", &name, "--type=slb"],
        )
        .await;
    }
    let web1 = inspect(&c, &token, "web-1").await;
    assert_eq!(web1.services.lbs, ["web-lb"]);
    until(
        "the LB name resolves to the VIP",
        Duration::from_secs(20),
        || async { Ok((resolve(&client_c, "web-lb") == [VIP]).then_some(())) },
    )
    .await
    .unwrap();
    let url = VIP;
    if let Err(e) = until("the VIP answers", Duration::from_secs(20), || async {
        Ok(requests(&client_c, url, 1)
            .first()
            .is_some_and(|b| b.starts_with("web-"))
            .then_some(()))
    })
    .await
    {
        diagnose(&c);
        if std::env::var_os("CAAS_DNSLB_HOLD").is_some() {
            eprintln!("HOLDING client={client_c}");
            tokio::time::sleep(Duration::from_secs(900)).await;
        }
        panic!("{e}");
    }

    phase("LB answers");
    // 300 requests spread over the three backends (same node and other nodes).
    let bodies = requests(&client_c, url, 300);
    let spread = counts(&bodies);
    assert_eq!(bodies.len(), 300, "{spread:?}");
    for i in 1..=3 {
        let n = spread.get(&format!("web-{i}")).copied().unwrap_or(0);
        assert!(
            (60..=141).contains(&n),
            "web-{i} got {n} of 300: {spread:?}"
        );
    }

    phase("300 requests done");
    // Publish: every node's underlay address answers from the fabric.
    for i in 1..=3 {
        let target = format!("http://{}:8080/", node_ip(i));
        for _ in 0..6 {
            let (ok, body) = ns_run(&c.topo.fabric, &["curl", "-s", "-m", "3", &target]);
            assert!(ok && body.trim().starts_with("web-"), "{target}: {body}");
        }
    }

    phase("publish checked");
    // Failover: web-3's server dies; its health check turns it unhealthy, the LB and the
    // service name drop it, and no request after that fails.
    let web3_c = app(&webs[2].node, "web-3");
    exec(&web3_c, &["sh", "-c", "kill $(pidof httpd)"]);
    until("web-3 is taken out", Duration::from_secs(30), || async {
        let lb: serde_json::Value =
            serde_json::from_str(&cli_ok(&c, &token, &[p, "lb", "inspect", "web-lb"]).await)
                .unwrap();
        let state = lb["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["container"] == "web-3")
            .map(|m| m["state"].as_str().unwrap_or("").to_string());
        Ok((state.as_deref() == Some("unhealthy")).then_some(()))
    })
    .await
    .unwrap();
    until(
        "the service name drops web-3",
        Duration::from_secs(10),
        || async { Ok((!resolve(&client_c, "web").contains(&web_ips[2])).then_some(())) },
    )
    .await
    .unwrap();
    // The agents follow the status within a second; allow them that.
    until(
        "no request reaches web-3",
        Duration::from_secs(10),
        || async {
            let b = requests(&client_c, url, 20);
            Ok(b.iter().all(|x| x == "web-1" || x == "web-2").then_some(()))
        },
    )
    .await
    .unwrap();
    let after = requests(&client_c, url, 100);
    assert!(
        after.iter().all(|x| x == "web-1" || x == "web-2"),
        "{:?}",
        counts(&after)
    );

    phase("failover checked");
    // Bad input: refused with a clear message, nothing written.
    let before = pool_dump(&c).await;
    let bad: &[(&[&str], &str)] = &[
        (
            &[
                p, "lb", "create", "web-lb", "-x", "myvxlan", "-l", "Port=81",
            ],
            "already exists",
        ),
        (
            &[p, "lb", "create", "lb2", "-x", "nonet", "-l", "Port=80"],
            "not found",
        ),
        (
            &[
                p,
                "lb",
                "create",
                "lb2",
                "-x",
                "myvxlan",
                "-l",
                "Port=80",
                "-l",
                "Vip=10.9.9.9",
            ],
            "outside the subnet",
        ),
        (
            &[
                p,
                "lb",
                "create",
                "lb2",
                "-x",
                "myvxlan",
                "-l",
                "Port=80",
                "-l",
                "Vip=192.168.31.3",
            ],
            "already used",
        ),
        (
            &[
                p,
                "lb",
                "create",
                "lb2",
                "-x",
                "myvxlan",
                "-l",
                "Port=80",
                "-l",
                "Publish=8080",
            ],
            "already published",
        ),
        (
            &[p, "lb", "create", "lb2", "-x", "myvxlan", "-l", "Port=0"],
            "not a port",
        ),
        (
            &[
                p,
                "lb",
                "create",
                "lb2",
                "-x",
                "myvxlan",
                "-l",
                "Port=80",
                "-l",
                "slb.spec=x",
            ],
            "only the built-in",
        ),
        (
            &[p, "lb", "add_container", "web-lb", "stranger"],
            "not attached",
        ),
        (&[p, "lb", "add_container", "web-lb", "ghost"], "not found"),
        (
            &[
                p,
                "lb",
                "add_container",
                "web-lb",
                "web-1",
                "-l",
                "Weight=0",
            ],
            "not a weight",
        ),
        (
            &[p, "dns", "create", "dns3", "-x", "myvxlan"],
            "already has the DNS service",
        ),
        (
            &[p, "dns", "create", "Bad_Name", "-x", "myvxlan"],
            "not a valid name",
        ),
        (&[p, "dns", "create", "dns1", "-x", "nonet"], "not found"),
        (
            &["--pool=otherpool", "dns", "create", "dns9", "-x", "myvxlan"],
            "not found",
        ),
    ];
    for (args, words) in bad {
        let out = c.cli(0, &token, args).await.unwrap();
        assert_ne!(out.code, Some(0), "{args:?} was accepted");
        assert!(
            out.stderr.contains(words),
            "{args:?}: expected {words:?} in {}",
            out.stderr
        );
    }
    // Central itself refuses what the CLI would have caught (other clients).
    for (body, words) in [
        (
            serde_json::json!({"name": "lb3", "network": "myvxlan", "port": 70000}),
            "not a port",
        ),
        (
            serde_json::json!({"name": "lb3", "network": "myvxlan", "port": 80, "vip": GATEWAY}),
            "gateway",
        ),
        (
            serde_json::json!({"name": "x.y", "network": "myvxlan", "port": 80}),
            "not a valid name",
        ),
    ] {
        let (code, text) = c
            .request(0, "POST", "/v1/pools/pool2/lbs", Some(body.clone()), &token)
            .await
            .unwrap();
        assert!(code == 422 || code == 400, "{body}: {code} {text}");
        assert!(text.contains(words), "{body}: {text}");
    }
    assert_eq!(
        pool_dump(&c).await,
        before,
        "a refused request wrote something"
    );

    phase("bad input checked");
    // lb rm: no VIP on any bridge, no table on any node, the VIP's address is free again.
    cli_ok(&c, &token, &[p, "lb", "rm", "web-lb"]).await;
    until(
        "every node dropped the LB",
        Duration::from_secs(20),
        || async {
            let clean = (1..=3).all(|i| {
                let ns = c.topo.node(i);
                let (_, addrs) = ns_run(ns, &["ip", "-o", "addr", "show"]);
                let (_, tables) = ns_run(ns, &["nft", "list", "tables"]);
                !addrs.contains(VIP) && !tables.contains("caaslb")
            });
            Ok(clean.then_some(()))
        },
    )
    .await
    .unwrap();
    let net: serde_json::Value =
        serde_json::from_str(&cli_ok(&c, &token, &[p, "network", "inspect", "myvxlan"]).await)
            .unwrap();
    assert!(!net.to_string().contains(VIP), "{net}");

    phase("lb rm checked");
    // dns rm: the servers stop answering, resolv.conf loses the resolver.
    cli_ok(&c, &token, &[p, "dns", "rm", "dns1"]).await;
    until(
        "the DNS servers stopped",
        Duration::from_secs(60),
        || async {
            let (_, conf) = exec(&client_c, &["cat", "/etc/resolv.conf"]);
            let (ok, _) = exec(&client_c, &["nslookup", "core-1.caas.local", GATEWAY]);
            Ok((!ok && !conf.contains("nameserver")).then_some(()))
        },
    )
    .await
    .unwrap();

    phase("dns rm checked");
    // Deleting the network (after its containers) takes its DNS service along.
    for name in ["stranger"] {
        cli_ok(&c, &token, &[p, "container", "rm", name]).await;
    }
    until("stranger is gone", Duration::from_secs(60), || async {
        let out = c
            .cli(0, &token, &[p, "network", "rm", "other"])
            .await
            .unwrap();
        Ok((out.code == Some(0)).then_some(()))
    })
    .await
    .unwrap();
    let dump = c.dump().await.unwrap();
    assert!(
        !dump.keys().any(|k| k.contains("/networks/other")),
        "left behind: {:?}",
        dump.keys()
            .filter(|k| k.contains("/networks/other"))
            .collect::<Vec<_>>()
    );
    assert!(!dump
        .keys()
        .any(|k| k.ends_with("/dns") || k.contains("/lbs/")));
}
