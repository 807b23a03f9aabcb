//! Endpoint churn: time from an endpoint's IpAllocation znode appearing in ZooKeeper (written by
//! central in the container create's multi) to the neighbour entry for that IP on the other
//! node's VXLAN device, p50/p99 over N endpoints.
//!
//! `cargo bench -p caas-tests --bench net_churn` (`CAAS_BENCH_ENDPOINTS=N`, default 100).
//! Needs what the end-to-end tests need (Docker, Java for ZooKeeper, busybox-static).
//!
//! * `cluster::Cluster`: fabric + 2 node namespaces, real ZooKeeper and central in the fabric,
//!   real `caas-agent` binaries in the nodes (resync 1 s, the harness config).
//! * A VXLAN network, and one container on node 2 (so node 2 carries the network and follows
//!   its endpoints). Then N containers, one at a time, created through the `caas` CLI on node 1.
//! * t0: the allocation znode's `ctime` (ZooKeeper's clock, same machine, ms resolution);
//!   t1: the first poll (`ip -n <node2> neigh show dev cv<vni>`, every 5 ms) that shows the
//!   IP with its MAC. The poll interval and `ip`'s start-up (a few ms) are in the figure.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use caas_api::network::mac_for;
use caas_tests::cluster::{Cluster, NodeSpec};

const POOL: &str = "bench";
const NET: &str = "churnnet";
const VNI: u32 = 7001;

fn neigh(ns: &str) -> Result<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "neigh", "show", "dev", &format!("cv{VNI}")])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn cli(c: &Cluster, token: &str, args: &[&str]) -> Result<()> {
    let out = c.cli(0, token, args).await?;
    if out.code != Some(0) {
        bail!("caas {}: {} {}", args.join(" "), out.stdout, out.stderr);
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::var("CAAS_BENCH_ENDPOINTS")
        .ok()
        .map(|v| v.parse().context("CAAS_BENCH_ENDPOINTS must be a number"))
        .transpose()?
        .unwrap_or(100)
        .clamp(1, 250);
    let nodes = vec![
        NodeSpec::new(POOL, &["slot=1"]),
        NodeSpec::new(POOL, &["slot=2"]),
    ];
    let c = Cluster::start("churn", &nodes, 1, 3).await?;
    let token = c.create_pool(POOL).await?;
    let image = c.busybox.clone();
    let pool = format!("--pool={POOL}");
    let vni = VNI.to_string();
    cli(
        &c,
        &token,
        &[
            &pool,
            "network",
            "create",
            NET,
            "-d",
            "vxlan",
            "-l",
            "Subnet=10.99.0.0/16",
            "-l",
            "Gateway=10.99.255.254",
            "-l",
            &format!("Vni={vni}"),
        ],
    )
    .await?;
    let create = |name: String, ip: Option<String>, slot: &'static str| {
        let mut args = vec![
            pool.clone(),
            "container".into(),
            "create".into(),
            name,
            format!("--public-service=.{NET}"),
            "--image".into(),
            image.clone(),
            "-c".into(),
            slot.into(),
            // A small request, so a hundred endpoints fit on one test node.
            "--cpu".into(),
            "10m".into(),
            "--memory".into(),
            "16Mi".into(),
        ];
        if let Some(ip) = ip {
            args.extend(["-l".into(), format!("Ip={ip}")]);
        }
        args.extend(["--".into(), "sleep".into(), "100000".into()]);
        args
    };
    let anchor = create("anchor".into(), Some("10.99.0.1".into()), "slot==2");
    cli(
        &c,
        &token,
        &anchor.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await?;
    let node2 = c.topo.node(2).to_string();
    let start = Instant::now();
    while !std::process::Command::new("ip")
        .args(["-n", &node2, "link", "show", &format!("cv{VNI}")])
        .output()?
        .status
        .success()
    {
        if start.elapsed() > Duration::from_secs(180) {
            bail!("node 2 never wired the network");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("node 2 carries the network after {:?}", start.elapsed());
    let mut lat = Vec::new();
    for i in 0..n {
        let ip = format!("10.99.1.{}", i + 1);
        let mac = mac_for(ip.parse()?);
        let args = create(format!("e{i}"), Some(ip.clone()), "slot==1");
        cli(
            &c,
            &token,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await?;
        let wait = Instant::now();
        let seen = loop {
            if neigh(&node2)?
                .lines()
                .any(|l| l.starts_with(&format!("{ip} ")) && l.contains(&mac))
            {
                break SystemTime::now();
            }
            if wait.elapsed() > Duration::from_secs(60) {
                bail!("no neighbour entry for {ip} on node 2 after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let path = c.layout.ip(POOL, NET, &ip);
        let (_, stat) = c
            .zk_client
            .get_data(&path)
            .await
            .with_context(|| format!("reading {path}"))?;
        let t0 = UNIX_EPOCH + Duration::from_millis(stat.ctime as u64);
        let d = seen.duration_since(t0).unwrap_or_default();
        lat.push(d);
        if i % 10 == 0 {
            println!("endpoint {i}: {:.1} ms", d.as_secs_f64() * 1e3);
        }
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\nendpoint churn (allocation znode ctime -> neighbour on node 2), {n} endpoints: \
         p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 99.0)),
        ms(lat[lat.len() - 1])
    );
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average: {}", l.trim());
    }
    Ok(())
}
