//! Health checks of running workloads: a prober task probes each workload whose spec has a
//! `health_check` (TCP connect or HTTP GET from inside the workload's network namespace, or a
//! command in the app container), keeps the result per workload, and wakes the reconcile loop
//! when a result changes so the status in ZooKeeper follows.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use caas_api::{HealthCheck, HealthState, HealthStatus, Probe, WorkloadKey, WorkloadState};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::runtime::{ContainerRuntime, ExecRequest};
use crate::view::AgentView;

/// How often the prober looks for due probes.
const TICK: Duration = Duration::from_millis(250);
/// First probe after an app (re)started or a check changed.
const FIRST_PROBE_DELAY: Duration = Duration::from_secs(1);

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug)]
struct Track {
    app_id: String,
    check: HealthCheck,
    status: HealthStatus,
    next_due: Instant,
    in_flight: bool,
}

/// Latest health per workload, shared by the prober (writer) and the reconcile loop (reader).
#[derive(Debug, Default, Clone)]
pub struct HealthBook {
    tracks: Arc<Mutex<BTreeMap<WorkloadKey, Track>>>,
    changed: Arc<Notify>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl HealthBook {
    /// The health of `key` as last probed.
    pub fn get(&self, key: &WorkloadKey) -> Option<HealthStatus> {
        self.tracks
            .lock()
            .ok()
            .and_then(|t| t.get(key).map(|t| t.status.clone()))
    }

    /// Resolves when a workload's health changed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Applies a probe result; returns whether what the status shows changed.
    fn record(&self, key: &WorkloadKey, app_id: &str, result: ProbeResult) -> bool {
        let Ok(mut tracks) = self.tracks.lock() else {
            return false;
        };
        let Some(track) = tracks.get_mut(key).filter(|t| t.app_id == app_id) else {
            return false;
        };
        track.in_flight = false;
        track.next_due =
            Instant::now() + Duration::from_secs(u64::from(track.check.interval_seconds));
        let before = (track.status.state, track.status.consecutive_failures);
        let status = &mut track.status;
        status.checked_at = unix_now();
        status.message = result.message;
        if result.ok {
            status.consecutive_failures = 0;
            status.state = HealthState::Healthy;
        } else {
            status.consecutive_failures = status.consecutive_failures.saturating_add(1);
            if status.consecutive_failures >= track.check.failure_threshold {
                status.state = HealthState::Unhealthy;
            }
        }
        before != (status.state, status.consecutive_failures)
    }
}

/// Probes due workloads until cancelled.
pub async fn run_prober<R: ContainerRuntime + ?Sized>(
    book: HealthBook,
    view: AgentView,
    runtime: Arc<R>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        for (key, app_id, sandbox_id, check) in due(&book, &view).await {
            let book = book.clone();
            let runtime = runtime.clone();
            tokio::spawn(async move {
                let result = probe(&*runtime, &app_id, &sandbox_id, &check).await;
                if !result.ok {
                    tracing::debug!(workload = %key, message = %result.message, "health probe failed");
                }
                if book.record(&key, &app_id, result) {
                    book.changed.notify_one();
                }
            });
        }
    }
}

/// Brings the tracks in line with what runs and returns the probes that are due now.
async fn due(
    book: &HealthBook,
    view: &AgentView,
) -> Vec<(WorkloadKey, String, String, HealthCheck)> {
    let state = view.read().await;
    let Ok(mut tracks) = book.tracks.lock() else {
        return Vec::new();
    };
    let mut wanted = BTreeMap::new();
    for (key, assignment) in &state.assignments {
        let Ok(assignment) = assignment else { continue };
        let Some(check) = &assignment.spec.health_check else {
            continue;
        };
        let Some(status) = state.statuses.get(key) else {
            continue;
        };
        if status.state != WorkloadState::Running {
            continue;
        }
        if let (Some(app), Some(sandbox)) = (&status.containers.app, &status.containers.sandbox) {
            wanted.insert(key.clone(), (app.clone(), sandbox.clone(), check.clone()));
        }
    }
    tracks.retain(|key, _| wanted.contains_key(key));
    let now = Instant::now();
    let mut out = Vec::new();
    for (key, (app, sandbox, check)) in wanted {
        let track = tracks.entry(key.clone()).or_insert_with(|| Track {
            app_id: String::new(),
            check: check.clone(),
            status: starting(),
            next_due: now,
            in_flight: false,
        });
        if track.app_id != app || track.check != check {
            // A new app container or a new check starts over.
            *track = Track {
                app_id: app.clone(),
                check: check.clone(),
                status: starting(),
                next_due: now + FIRST_PROBE_DELAY,
                in_flight: false,
            };
        }
        if !track.in_flight && track.next_due <= now {
            track.in_flight = true;
            out.push((key, app, sandbox, check));
        }
    }
    out
}

fn starting() -> HealthStatus {
    HealthStatus {
        state: HealthState::Starting,
        consecutive_failures: 0,
        message: "not probed yet".into(),
        checked_at: 0,
    }
}

/// Runs one probe of `check` against a workload.
pub async fn probe<R: ContainerRuntime + ?Sized>(
    runtime: &R,
    app_id: &str,
    sandbox_id: &str,
    check: &HealthCheck,
) -> ProbeResult {
    let timeout = Duration::from_secs(u64::from(check.timeout_seconds));
    match &check.probe {
        Probe::Command(command) => {
            let request = ExecRequest {
                command: command.clone(),
                user: None,
                timeout,
                output_limit: 4096,
            };
            match runtime.exec(app_id, &request).await {
                Ok(out) if out.timed_out => fail(format!("timed out after {}s", timeout.as_secs())),
                Ok(out) => {
                    let text = String::from_utf8_lossy(if out.stderr.is_empty() {
                        &out.stdout
                    } else {
                        &out.stderr
                    })
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect::<String>();
                    ProbeResult {
                        ok: out.exit_code == 0,
                        message: format!(
                            "exit {}{}",
                            out.exit_code,
                            if text.is_empty() {
                                String::new()
                            } else {
                                format!(": {text}")
                            }
                        ),
                    }
                }
                Err(e) => fail(format!("exec failed: {e}")),
            }
        }
        Probe::Tcp { .. } | Probe::Http { .. } => {
            let pid = match runtime.inspect(sandbox_id).await {
                Ok(d) => d.pid,
                Err(e) => return fail(format!("inspecting the sandbox: {e}")),
            };
            let Some(pid) = pid else {
                return fail("the sandbox is not running".into());
            };
            let probe = check.probe.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            // setns changes the calling thread only: a short-lived thread of its own enters the
            // workload's network namespace, so no runtime thread ever leaves the host's.
            let spawned = std::thread::Builder::new()
                .name("health-probe".into())
                .spawn(move || {
                    let _ = tx.send(probe_in_netns(pid, &probe, timeout));
                });
            if let Err(e) = spawned {
                return fail(format!("cannot start a probe thread: {e}"));
            }
            rx.await
                .unwrap_or_else(|_| fail("the probe thread ended without a result".into()))
        }
    }
}

fn fail(message: String) -> ProbeResult {
    ProbeResult { ok: false, message }
}

/// Connects (and for HTTP, GETs) on 127.0.0.1 inside the network namespace of process `pid`.
fn probe_in_netns(pid: i64, probe: &Probe, timeout: Duration) -> ProbeResult {
    let netns = match std::fs::File::open(format!("/proc/{pid}/ns/net")) {
        Ok(f) => f,
        Err(e) => return fail(format!("opening the network namespace of pid {pid}: {e}")),
    };
    if let Err(e) = nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET) {
        return fail(format!(
            "entering the workload's network namespace: {e} (the agent must run as root)"
        ));
    }
    let port = match probe {
        Probe::Tcp { port } | Probe::Http { port, .. } => *port,
        Probe::Command(_) => return fail("not a network probe".into()),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return fail(format!("tcp {port}: {e}")),
    };
    let Probe::Http { path, .. } = probe else {
        return ProbeResult {
            ok: true,
            message: format!("tcp {port}: connected"),
        };
    };
    http_get(&mut stream, port, path, timeout)
}

/// A minimal HTTP/1.0 GET: healthy on a 2xx or 3xx status line.
fn http_get(stream: &mut TcpStream, port: u16, path: &str, timeout: Duration) -> ProbeResult {
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: caas-agent-health\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return fail(format!("http {port}{path}: sending: {e}"));
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return fail(format!("http {port}{path}: reading: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim().to_string();
    match line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
    {
        Some(code) => ProbeResult {
            ok: (200..400).contains(&code),
            message: format!("http {port}{path}: {code}"),
        },
        None => fail(format!("http {port}{path}: not an HTTP answer: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book_with(check: HealthCheck) -> (HealthBook, WorkloadKey) {
        let book = HealthBook::default();
        let key = WorkloadKey::new("p", "w");
        book.tracks.lock().unwrap().insert(
            key.clone(),
            Track {
                app_id: "app1".into(),
                check,
                status: starting(),
                next_due: Instant::now(),
                in_flight: true,
            },
        );
        (book, key)
    }

    #[test]
    fn unhealthy_only_after_the_threshold_and_healthy_again_at_once() {
        let mut check = HealthCheck::new(Probe::Tcp { port: 1 });
        check.failure_threshold = 2;
        let (book, key) = book_with(check);
        let bad = || ProbeResult {
            ok: false,
            message: "refused".into(),
        };
        assert!(book.record(&key, "app1", bad()));
        assert_eq!(book.get(&key).unwrap().state, HealthState::Starting);
        assert!(book.record(&key, "app1", bad()));
        assert_eq!(book.get(&key).unwrap().state, HealthState::Unhealthy);
        assert!(book.record(
            &key,
            "app1",
            ProbeResult {
                ok: true,
                message: "ok".into()
            }
        ));
        let status = book.get(&key).unwrap();
        assert_eq!(
            (status.state, status.consecutive_failures),
            (HealthState::Healthy, 0)
        );
        assert!(!book.record(
            &key,
            "app1",
            ProbeResult {
                ok: true,
                message: "ok".into()
            }
        ));
        assert!(
            !book.record(&key, "old-app", bad()),
            "a result for a replaced app is dropped"
        );
    }

    #[test]
    fn http_probe_reads_the_status_line() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for answer in [
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.0 503 Busy\r\n\r\n",
            ] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                s.write_all(answer.as_bytes()).unwrap();
            }
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TcpStream::connect(addr).unwrap();
        let ok = http_get(&mut s, port, "/health", Duration::from_secs(2));
        assert!(ok.ok, "{ok:?}");
        let mut s = TcpStream::connect(addr).unwrap();
        let busy = http_get(&mut s, port, "/health", Duration::from_secs(2));
        assert!(!busy.ok && busy.message.contains("503"), "{busy:?}");
        server.join().unwrap();
    }
}
