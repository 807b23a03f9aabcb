//! DNS: queries per second and latency of the agent's DNS server (`services::dns::serve`: UDP
//! receive loops answering from the agent's zone, on its own two-worker runtime as in the
//! agent) against dnsmasq from
//! Debian serving the same records, same run, same load generator: `CONCURRENCY` clients on
//! loopback, each with one query in flight, asking random names of `RECORDS` A records. Rounds
//! alternate between the two servers; the report gives each one's rate and p50/p99 and the
//! ratios. Saturation inflates every latency with queueing on a 2-core machine, so each round
//! also measures latency the way a resolver is used: one client thread (blocking socket, outside
//! any runtime) sending at a fixed rate well below either server's capacity, one query in flight,
//! p50/p99/max of those queries. Loopback only (127.0.10.1 and 127.0.10.2), nothing leaves the
//! machine.
//!
//! `cargo bench -p caas-tests --bench dns_serve [-- --queries N --rounds R --paced-rate QPS --paced-queries N]`

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caas_agent::services::dns::{serve, ZoneHandler};
use caas_agent::services::model::Zone;
use hickory_server::proto::op::{Message, Query};
use hickory_server::proto::rr::{Name, RecordType};

const RECORDS: usize = 200;
const CONCURRENCY: usize = 16;
const CAAS: Ipv4Addr = Ipv4Addr::new(127, 0, 10, 1);
const DNSMASQ: Ipv4Addr = Ipv4Addr::new(127, 0, 10, 2);

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn names() -> Vec<(String, Ipv4Addr)> {
    (0..RECORDS)
        .map(|i| {
            (
                format!("svc-{i}.caas.local"),
                Ipv4Addr::new(10, 20, (i / 250) as u8, (i % 250 + 1) as u8),
            )
        })
        .collect()
}

/// Encoded A queries, one per name.
fn queries() -> Vec<Vec<u8>> {
    names()
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let mut m = Message::query();
            m.metadata.id = i as u16;
            m.metadata.recursion_desired = true;
            m.add_query(Query::query(
                Name::from_ascii(format!("{name}.")).unwrap(),
                RecordType::A,
            ));
            m.to_vec().unwrap()
        })
        .collect()
}

struct Result {
    qps: f64,
    p50: Duration,
    p99: Duration,
    failed: usize,
}

impl Result {
    /// Rate and percentiles of the answered queries' latencies over `elapsed`.
    fn of(mut latencies: Vec<Duration>, elapsed: Duration, failed: usize) -> Self {
        latencies.sort();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        Self {
            qps: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: pct(0.50),
            p99: pct(0.99),
            failed,
        }
    }
}

async fn load(server: SocketAddr, total: usize, queries: Arc<Vec<Vec<u8>>>) -> Result {
    let per = total / CONCURRENCY;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONCURRENCY {
        let queries = queries.clone();
        tasks.push(tokio::spawn(async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            socket.connect(server).await.unwrap();
            let mut buf = [0u8; 1500];
            let mut lat = Vec::with_capacity(per);
            let mut failed = 0;
            for i in 0..per {
                let q = &queries[(c * 7919 + i * 31) % queries.len()];
                let t = Instant::now();
                socket.send(q).await.unwrap();
                match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
                    Ok(Ok(n)) if n > 12 && buf[..2] == q[..2] => lat.push(t.elapsed()),
                    _ => failed += 1,
                }
            }
            (lat, failed)
        }));
    }
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (lat, f) = t.await.unwrap();
        all.extend(lat);
        failed += f;
    }
    Result::of(all, start.elapsed(), failed)
}

/// Latency at a fixed offered rate: one blocking client, one query in flight, a query every
/// `1/rate` seconds (a slow answer delays the next send; it is not made up for with a burst).
fn paced(server: SocketAddr, rate: usize, total: usize, queries: &[Vec<u8>]) -> Result {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut buf = [0u8; 1500];
    let mut lat = Vec::with_capacity(total);
    let mut failed = 0;
    let start = Instant::now();
    let mut next = start;
    for i in 0..total {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        let q = &queries[(i * 31) % queries.len()];
        let t = Instant::now();
        socket.send(q).unwrap();
        match socket.recv(&mut buf) {
            Ok(n) if n > 12 && buf[..2] == q[..2] => lat.push(t.elapsed()),
            _ => failed += 1,
        }
    }
    Result::of(lat, start.elapsed(), failed)
}

fn main() {
    let total = arg("--queries", 200_000);
    let rounds = arg("--rounds", 3);
    let paced_rate = arg("--paced-rate", 1_000);
    let paced_queries = arg("--paced-queries", 10_000);
    assert!(
        std::path::Path::new("/usr/sbin/dnsmasq").exists(),
        "dnsmasq is missing; run scripts/install-deps"
    );

    // The agent's server, on a runtime of its own (two workers, like the agent).
    let mut zone = Zone {
        domain: "caas.local".into(),
        ..Default::default()
    };
    for (name, ip) in names() {
        zone.a.entry(name).or_default().insert(ip);
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let server_cancel = cancel.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            serve(CAAS, ZoneHandler::new(zone), server_cancel.clone())
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            server_cancel.cancelled().await;
        });
    });
    ready_rx.recv().unwrap();

    let mut dnsmasq = Command::new("/usr/sbin/dnsmasq");
    dnsmasq.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--bind-interfaces",
        "--listen-address=127.0.10.2",
        "--port=53",
        "--user=root",
        "--pid-file=/tmp/caas-bench-dnsmasq.pid",
        "--cache-size=1000",
        "--local-ttl=5",
    ]);
    for (name, ip) in names() {
        dnsmasq.arg(format!("--host-record={name},{ip}"));
    }
    let mut dnsmasq = dnsmasq
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let queries = Arc::new(queries());
    let mut caas = Vec::new();
    let mut reference = Vec::new();
    let mut caas_paced = Vec::new();
    let mut reference_paced = Vec::new();
    // Warm up both.
    rt.block_on(async {
        load(SocketAddr::from((CAAS, 53)), 10_000, queries.clone()).await;
        load(SocketAddr::from((DNSMASQ, 53)), 10_000, queries.clone()).await;
    });
    for _ in 0..rounds {
        rt.block_on(async {
            caas.push(load(SocketAddr::from((CAAS, 53)), total, queries.clone()).await);
            reference.push(load(SocketAddr::from((DNSMASQ, 53)), total, queries.clone()).await);
        });
        caas_paced.push(paced(
            SocketAddr::from((CAAS, 53)),
            paced_rate,
            paced_queries,
            &queries,
        ));
        reference_paced.push(paced(
            SocketAddr::from((DNSMASQ, 53)),
            paced_rate,
            paced_queries,
            &queries,
        ));
    }
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    cancel.cancel();
    let _ = server.join();

    println!("DNS: {RECORDS} A records, {CONCURRENCY} clients with one query in flight, {total} queries per round, {rounds} rounds");
    println!("round  server   load       qps       p50       p99       failed");
    for (i, (a, b)) in caas.iter().zip(&reference).enumerate() {
        let paced = [&caas_paced[i], &reference_paced[i]];
        for (who, r, p) in [("caas", a, paced[0]), ("dnsmasq", b, paced[1])] {
            for (load, r) in [("saturated", r), ("paced", p)] {
                println!(
                    "{:<6} {:<8} {:<10} {:<9.0} {:<9} {:<9} {}",
                    i + 1,
                    who,
                    load,
                    r.qps,
                    format!("{:.3}ms", r.p50.as_secs_f64() * 1e3),
                    format!("{:.3}ms", r.p99.as_secs_f64() * 1e3),
                    r.failed
                );
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let qps_ratio = median(
        &mut caas
            .iter()
            .zip(&reference)
            .map(|(a, b)| a.qps / b.qps)
            .collect(),
    );
    let p99_ratio = median(
        &mut caas
            .iter()
            .zip(&reference)
            .map(|(a, b)| a.p99.as_secs_f64() / b.p99.as_secs_f64())
            .collect(),
    );
    let p99 = median(&mut caas.iter().map(|a| a.p99.as_secs_f64() * 1e3).collect());
    println!("saturated, median ratio caas/dnsmasq: qps {qps_ratio:.2}x, p99 {p99_ratio:.2}x; caas p99 {p99:.3} ms");
    let paced_p99_ratio = median(
        &mut caas_paced
            .iter()
            .zip(&reference_paced)
            .map(|(a, b)| a.p99.as_secs_f64() / b.p99.as_secs_f64())
            .collect(),
    );
    let paced_p99 = median(
        &mut caas_paced
            .iter()
            .map(|a| a.p99.as_secs_f64() * 1e3)
            .collect(),
    );
    println!("paced at {paced_rate} qps, median: caas p99 {paced_p99:.3} ms, ratio caas/dnsmasq p99 {paced_p99_ratio:.2}x (goals: saturated qps >= 1.0x, p99 < 1 ms)");
}
