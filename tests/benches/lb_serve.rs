//! Load balancing through a VIP against the same client hitting the backend directly, and
//! backend failover time, on the real cluster (fabric + 3 node namespaces, agents, Docker,
//! ZooKeeper, central, the CLI).
//!
//! `cargo bench -p caas-tests --bench lb_serve [-- --requests N --rounds R]`
//!
//! * Backends: busybox `httpd` in `web-1` (node 2) and `web-2` (node 3), health check TCP 80
//!   every 1 s, unhealthy after 1 failure. A sleeper on node 1 makes node 1 carry the network.
//! * The load generator runs in node 1's namespace (the VIP is DNATed by node 1's `caaslb`
//!   table, output hook), `CONCURRENCY` clients, one new TCP connection per request
//!   (`GET / HTTP/1.0`), so every request goes through the balancer's DNAT.
//! * Throughput: LB with `web-1` as its only backend vs `web-1`'s address directly, rounds
//!   alternating; requests per second and p99, median ratio.
//! * Failover: LB with both backends, the generator running; `web-2`'s httpd is killed at T0;
//!   reported: the time from T0 to the last request that failed (the last connection attempt
//!   that still went to the dead backend). Goal: under health interval (1 s) + 1 s.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::netns::NetnsExecutor;
use caas_tests::wait::until;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POOL: &str = "pool2";
const VIP: &str = "192.168.31.100";
const CONCURRENCY: usize = 8;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn cli_ok(c: &Cluster, token: &str, args: &[&str]) -> String {
    let out = c.cli(0, token, args).await.unwrap();
    assert_eq!(out.code, Some(0), "caas {args:?}: {out:?}");
    out.stdout
}

/// A connection from node 1's underlay address: a process on the node would otherwise take
/// the VIP (a local address of the bridge) as its source, which every node holds.
async fn connect(addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from((
        caas_tests::netns::node_ip(1),
        0,
    )))?;
    let ip: std::net::Ipv4Addr = addr.parse().map_err(std::io::Error::other)?;
    socket.connect(std::net::SocketAddr::from((ip, 80))).await
}

/// One request on a new connection; the body's first line.
async fn get(addr: &str) -> Result<String, std::io::Error> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect timeout"))??;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("read timeout"))??;
    let text = String::from_utf8_lossy(&buf);
    Ok(text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string())
}

struct Load {
    rps: f64,
    p99: Duration,
    failed: usize,
}

async fn load(node: &NetnsExecutor, addr: String, total: usize) -> Load {
    node.run(async move {
        let start = Instant::now();
        let per = total / CONCURRENCY;
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut failed = 0;
                for _ in 0..per {
                    let t = Instant::now();
                    match get(&addr).await {
                        Ok(_) => lat.push(t.elapsed()),
                        Err(_) => failed += 1,
                    }
                }
                (lat, failed)
            }));
        }
        let mut all = Vec::new();
        let mut failed = 0;
        for t in tasks {
            let (l, f) = t.await.unwrap();
            all.extend(l);
            failed += f;
        }
        let elapsed = start.elapsed();
        all.sort();
        Load {
            rps: all.len() as f64 / elapsed.as_secs_f64(),
            p99: all[(all.len() * 99 / 100).min(all.len() - 1)],
            failed,
        }
    })
    .await
    .unwrap()
}

/// Requests until `stop`; (time since `t0` of each request's start, its answer or None).
async fn run_until(
    node: &NetnsExecutor,
    t0: Arc<Instant>,
    stop: Duration,
) -> Vec<(Duration, Option<String>)> {
    node.run(async move {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let t0 = t0.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                while t0.elapsed() < stop {
                    let at = t0.elapsed();
                    out.push((at, get(VIP).await.ok()));
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_by_key(|(at, _)| *at);
        all
    })
    .await
    .unwrap()
}

async fn member_state(c: &Cluster, token: &str, container: &str) -> String {
    let lb: serde_json::Value =
        serde_json::from_str(&cli_ok(c, token, &["--pool", POOL, "lb", "inspect", "web-lb"]).await)
            .unwrap();
    lb["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["container"] == container)
        .map(|m| m["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total = arg("--requests", 4000);
    let rounds = arg("--rounds", 3);
    let nodes = vec![
        NodeSpec::new(POOL, &["slot=1"]),
        NodeSpec::new(POOL, &["slot=2"]),
        NodeSpec::new(POOL, &["slot=3"]),
    ];
    let c = Cluster::start("lbb", &nodes, 1, 3).await.unwrap();
    eprintln!("cluster up");
    let token = c.create_pool(POOL).await.unwrap();
    let image = c.busybox.clone();
    let p = "--pool=pool2";
    cli_ok(
        &c,
        &token,
        &[
            p,
            "network",
            "create",
            "myvxlan",
            "-l",
            "Subnet=192.168.0.0/19",
            "-l",
            "Gateway=192.168.31.254",
        ],
    )
    .await;
    for (name, slot, cmd) in [
        ("anchor", "1", "sleep 100000".to_string()),
        (
            "web-1",
            "2",
            "mkdir -p /www && echo web-1 > /www/index.html && exec httpd -f -p 80 -h /www"
                .to_string(),
        ),
        (
            "web-2",
            "3",
            "mkdir -p /www && echo web-2 > /www/index.html && httpd -p 80 -h /www && sleep 100000"
                .to_string(),
        ),
    ] {
        let constraint = format!("slot=={slot}");
        cli_ok(
            &c,
            &token,
            &[
                p,
                "container",
                "create",
                name,
                "--public-service",
                "web.myvxlan",
                "--image",
                &image,
                "-c",
                &constraint,
                "--health-tcp",
                "80",
                "--health-interval",
                "1",
                "--health-retries",
                "1",
                "--",
                "sh",
                "-c",
                &cmd,
            ],
        )
        .await;
    }
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
        ],
    )
    .await;
    cli_ok(&c, &token, &[p, "lb", "add_container", "web-lb", "web-1"]).await;
    let view: serde_json::Value =
        serde_json::from_str(&cli_ok(&c, &token, &[p, "container", "inspect", "web-1"]).await)
            .unwrap();
    let web1_ip = view["spec"]["networks"][0]["ip"]
        .as_str()
        .unwrap()
        .to_string();
    eprintln!("workloads and LB created; web-1 at {web1_ip}");
    let node1 = NetnsExecutor::enter(c.topo.node(1)).unwrap();
    until(
        "the VIP answers from node 1",
        Duration::from_secs(120),
        || async {
            let ok = node1
                .run(async { get(VIP).await.ok() })
                .await
                .unwrap()
                .is_some_and(|b| b == "web-1");
            Ok(ok.then_some(()))
        },
    )
    .await
    .unwrap();

    println!("LB throughput: {total} requests per run, {CONCURRENCY} clients, one connection per request, from node 1 to web-1 on node 2");
    println!("round  path     req/s     p99       failed");
    let mut ratios = Vec::new();
    load(&node1, VIP.to_string(), 500).await;
    load(&node1, web1_ip.clone(), 500).await;
    for r in 0..rounds {
        let via = load(&node1, VIP.to_string(), total).await;
        let direct = load(&node1, web1_ip.clone(), total).await;
        for (who, l) in [("vip", &via), ("direct", &direct)] {
            println!(
                "{:<6} {:<8} {:<9.0} {:<9} {}",
                r + 1,
                who,
                l.rps,
                format!("{:.2}ms", l.p99.as_secs_f64() * 1e3),
                l.failed
            );
        }
        ratios.push(via.rps / direct.rps);
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "median ratio vip/direct: {:.2}x (goal >= 0.9x)",
        ratios[ratios.len() / 2]
    );

    // Failover.
    cli_ok(&c, &token, &[p, "lb", "add_container", "web-lb", "web-2"]).await;
    let web2 = format!(
        "{}.{POOL}.web-2",
        caas_tests::agent::container_prefix(&c.node_ids[2])
    );
    println!("failover: web-2's httpd killed at T0 while 4 clients loop on the VIP");
    let mut times = Vec::new();
    for r in 0..rounds {
        until("web-2 is up in the LB", Duration::from_secs(60), || async {
            Ok((member_state(&c, &token, "web-2").await == "up").then_some(()))
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t0 = Arc::new(Instant::now() + Duration::from_secs(1));
        let runner = {
            let t0 = t0.clone();
            let node1 = &node1;
            async move { run_until(node1, t0, Duration::from_secs(6)).await }
        };
        let killer = async {
            tokio::time::sleep_until((*t0).into()).await;
            let out = Command::new("docker")
                .args(["exec", &web2, "sh", "-c", "kill $(pidof httpd)"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        };
        let (results, ()) = tokio::join!(runner, killer);
        let last_fail = results
            .iter()
            .filter(|(at, r)| r.is_none() && *at >= Duration::ZERO)
            .map(|(at, _)| *at)
            .max();
        let last_web2 = results
            .iter()
            .filter(|(_, r)| r.as_deref() == Some("web-2"))
            .map(|(at, _)| *at)
            .max();
        let failed = results.iter().filter(|(_, r)| r.is_none()).count();
        println!(
            "round {}: {} requests, {failed} failed; last failed attempt at T0+{}, last answer from web-2 started at T0+{}",
            r + 1,
            results.len(),
            last_fail.map_or("-".into(), |d| format!("{} ms", d.as_millis())),
            last_web2.map_or("-".into(), |d| format!("{} ms", d.as_millis())),
        );
        if let Some(d) = last_fail {
            times.push(d);
        }
        Command::new("docker")
            .args(["exec", &web2, "httpd", "-p", "80", "-h", "/www"])
            .output()
            .unwrap();
    }
    times.sort();
    if !times.is_empty() {
        println!(
            "failover p50 {} ms, max {} ms (goal < 2000 ms: health interval 1 s + 1 s)",
            times[times.len() / 2].as_millis(),
            times[times.len() - 1].as_millis()
        );
    }
}
