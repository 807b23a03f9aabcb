//! Interactive terminals (issue 13) against `docker exec` on the same container: keystroke-to-
//! echo latency and output throughput.
//!
//! `cargo bench -p caas-tests --bench terminal [-- --keys 200 --mb 100]`
//!
//! World: the real cluster (ZooKeeper, central, one agent, real Docker) with one rich (sofa)
//! container. Both sides run the same program in the same container:
//!
//! 1. Latency: `caas container exec -it web -- bash` (CLI → central → agent → engine) against
//!    `docker exec -it <app> bash` (docker CLI → engine), each in a pseudo-terminal made by
//!    `script`, the bench typing one character at a time into it and waiting for bash's
//!    readline to echo it: `--keys` keystrokes each, p50/p99. Goal: caas p50 and p99 within 2x.
//! 2. Throughput: `cat` of a ~100 MB text file through the console's path (a terminal
//!    WebSocket through central with a TTY, read by `caas_client`) against `docker exec <app>
//!    cat FILE > /dev/null` (the docker CLI, no TTY; and `docker exec -t`, with one, as the
//!    console has). Goal: at least 0.5x docker's MB/s.
//!
//! Timing is reported, never asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

use std::process::Stdio;
use std::time::{Duration, Instant};

use caas_api::terminal::TerminalStart;
use caas_client::{CentralClient, TerminalEvent};
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::sofa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POOL: &str = "bench";
const BASE: &str = "caas/sofa-base:latest";

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Reads from `out` until `needle` has been seen (in what was read since the call).
async fn read_until(out: &mut tokio::process::ChildStdout, needle: &[u8], seen: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        if seen.windows(needle.len()).any(|w| w == needle) {
            seen.clear();
            return;
        }
        let n = tokio::time::timeout(Duration::from_secs(30), out.read(&mut buf))
            .await
            .expect("output within 30 s")
            .expect("reading the terminal");
        assert!(
            n > 0,
            "the terminal ended while waiting for {:?}",
            String::from_utf8_lossy(needle)
        );
        seen.extend_from_slice(&buf[..n]);
    }
}

/// Types `keys` characters into `command` (run under `script`, so it has a pseudo-terminal)
/// and returns each keystroke's time to echo.
async fn keystrokes(command: &str, keys: usize) -> Vec<Duration> {
    let mut child = tokio::process::Command::new("script")
        .args(["-qfec", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("script runs");
    let mut input = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    input.write_all(b"echo READY-$((20+22))\r").await.unwrap();
    read_until(&mut out, b"READY-42", &mut seen).await;
    // Let the prompt settle, then type.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut times = Vec::with_capacity(keys);
    let mut buf = [0u8; 1024];
    for i in 0..keys {
        let key = b'a' + (i % 26) as u8;
        // Drain whatever is pending so the echo read is this key's.
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), out.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
        }
        let sent = Instant::now();
        input.write_all(&[key]).await.unwrap();
        input.flush().await.unwrap();
        loop {
            let n = tokio::time::timeout(Duration::from_secs(10), out.read(&mut buf))
                .await
                .expect("an echo within 10 s")
                .unwrap();
            assert!(n > 0, "the terminal ended");
            if buf[..n].contains(&key) {
                break;
            }
        }
        times.push(sent.elapsed());
        if i % 60 == 59 {
            // Keep the line short: Ctrl-U clears it.
            input.write_all(&[0x15]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    input.write_all(&[0x15]).await.unwrap();
    input.write_all(b"exit\r").await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    times
}

fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let keys: usize = arg("--keys", 200);
    let mb: u64 = arg("--mb", 100);
    sofa::ensure_images().unwrap();
    let c = Cluster::start("termbench", &[NodeSpec::new(POOL, &[])], 1, 30)
        .await
        .unwrap();
    let key_dir = tempfile::tempdir().unwrap();
    let (_, public) = sofa::ssh_keypair(key_dir.path(), "ops").unwrap();
    let (code, body) = c
        .request(
            0,
            "POST",
            "/v1/pools",
            Some(serde_json::json!({"name": POOL, "ssh_keys": [public]})),
            &c.admin_token,
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let ops = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = c
        .cli(
            0,
            &ops,
            &[
                "--pool",
                POOL,
                "container",
                "create",
                "web",
                "--rich",
                "--image",
                BASE,
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    let view = c
        .wait_running(&ops, POOL, "web", Duration::from_secs(120))
        .await
        .unwrap();
    let app = view.status.unwrap().containers.app.unwrap();
    let cli = caas_tests::binaries::cli().unwrap();

    // 1. Keystroke to echo. Alternating runs, twice each, so neither side gets a warmer cache.
    let caas_cmd = format!(
        "ip netns exec {} env CAAS_URL={} CAAS_TOKEN={ops} {} --pool {POOL} container exec -it web -- bash",
        c.topo.fabric,
        c.centrals[0].url,
        cli.display()
    );
    let docker_cmd = format!("docker exec -it -u admin {app} bash");
    let mut caas_times = Vec::new();
    let mut docker_times = Vec::new();
    for _ in 0..2 {
        docker_times.extend(keystrokes(&docker_cmd, keys / 2).await);
        caas_times.extend(keystrokes(&caas_cmd, keys / 2).await);
    }
    let (c50, c99) = (percentile(&caas_times, 0.5), percentile(&caas_times, 0.99));
    let (d50, d99) = (
        percentile(&docker_times, 0.5),
        percentile(&docker_times, 0.99),
    );
    println!(
        "keystroke to echo, {} keys each (bash readline in a pty made by script):",
        caas_times.len()
    );
    println!("| path | p50 ms | p99 ms |");
    println!("|---|---|---|");
    println!(
        "| docker exec -it (reference) | {:.2} | {:.2} |",
        ms(d50),
        ms(d99)
    );
    println!(
        "| caas container exec -it (CLI → central → agent) | {:.2} | {:.2} |",
        ms(c50),
        ms(c99)
    );
    println!(
        "ratio caas/docker: p50 {:.2}x, p99 {:.2}x (goal <= 2x)",
        c50.as_secs_f64() / d50.as_secs_f64(),
        c99.as_secs_f64() / d99.as_secs_f64()
    );

    // 2. Throughput of `cat` of a big text file.
    let docker = caas_tests::images::docker().await.unwrap();
    let make = tokio::process::Command::new("docker")
        .args([
            "exec",
            &app,
            "sh",
            "-c",
            &format!(
                "head -c {} /dev/urandom | base64 -w 76 > /tmp/big && stat -c %s /tmp/big",
                mb * 750_000
            ),
        ])
        .output()
        .await
        .unwrap();
    assert!(make.status.success(), "{make:?}");
    let size: u64 = String::from_utf8_lossy(&make.stdout)
        .trim()
        .parse()
        .unwrap();
    drop(docker);
    let mut docker_rates = Vec::new();
    let mut docker_tty_rates = Vec::new();
    let mut caas_rates = Vec::new();
    let mut caas_plain_rates = Vec::new();
    for _ in 0..3 {
        let begun = Instant::now();
        let status = tokio::process::Command::new("docker")
            .args(["exec", "-t", &app, "cat", "/tmp/big"])
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success());
        docker_tty_rates.push(size as f64 / begun.elapsed().as_secs_f64() / 1e6);

        let begun = Instant::now();
        let status = tokio::process::Command::new("docker")
            .args(["exec", &app, "cat", "/tmp/big"])
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success());
        docker_rates.push(size as f64 / begun.elapsed().as_secs_f64() / 1e6);

        for tty in [true, false] {
            let url = c.centrals[0].url.clone();
            let token = ops.clone();
            let (bytes, secs) = c
                .fabric
                .run(async move {
                    let client = CentralClient::new(&url, Some(&token)).unwrap();
                    let start = TerminalStart {
                        command: vec!["cat".into(), "/tmp/big".into()],
                        tty,
                        ..Default::default()
                    };
                    let begun = Instant::now();
                    let mut session = client.terminal(POOL, "web", &start).await.unwrap();
                    let mut bytes = 0u64;
                    loop {
                        match session.next().await.unwrap() {
                            Some(TerminalEvent::Output(b)) => bytes += b.len() as u64,
                            Some(TerminalEvent::Started { .. }) => {}
                            Some(TerminalEvent::Exit { code }) => {
                                assert_eq!(code, 0);
                                break;
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                    (bytes, begun.elapsed().as_secs_f64())
                })
                .await
                .unwrap();
            // With a TTY every \n arrives as \r\n: the file's bytes plus one per line.
            assert!(bytes >= size, "{bytes} < {size}");
            let rate = size as f64 / secs / 1e6;
            if tty {
                caas_rates.push(rate);
            } else {
                caas_plain_rates.push(rate);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (d, k) = (median(&mut docker_rates), median(&mut caas_rates));
    let dt = median(&mut docker_tty_rates);
    let kp = median(&mut caas_plain_rates);
    println!("cat of a {:.1} MB file, median of 3:", size as f64 / 1e6);
    println!("| path | MB/s |");
    println!("|---|---|");
    println!("| docker exec (reference, no TTY) | {d:.1} |");
    println!("| docker exec -t (reference, TTY) | {dt:.1} |");
    println!("| caas terminal (console path: WebSocket through central, TTY) | {k:.1} |");
    println!("| caas terminal without a TTY (tty: false) | {kp:.1} |");
    println!(
        "ratio caas/docker: TTY {:.2}x against docker exec -t; no TTY {:.2}x against docker exec (goal >= 0.5x); console (TTY) against docker exec (no TTY) {:.2}x",
        k / dt,
        kp / d,
        k / d
    );
}
