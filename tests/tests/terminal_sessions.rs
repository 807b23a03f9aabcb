//! Interactive terminals end to end, through the real CLI, central, agent and Docker, with a
//! rich (sofa) container: `caas container exec -it` in a real pseudo-terminal (tmux) runs bash,
//! survives a resize and passes the exit code through; a developer token gets a terminal as
//! admin but is refused delete, exec, root and plain containers; closing the client kills what
//! ran; `caas audit ls` shows the sessions with the typed commands; and 20 sessions with
//! continuous output for a minute (plus one client that never reads) all get their output while
//! central's memory stays bounded and every exec process is gone afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::{Duration, Instant};

use caas_api::roles::AuditEntry;
use caas_api::terminal::TerminalStart;
use caas_client::{CentralClient, TerminalEvent};
use caas_tests::cluster::{Cluster, NodeSpec};
use caas_tests::sofa;
use caas_tests::wait::until;

const POOL: &str = "term";
const BASE: &str = "caas/sofa-base:latest";

struct Env {
    c: Cluster,
    ops: String,
    dev: String,
}

impl Env {
    async fn start(name: &str) -> Self {
        sofa::ensure_images().unwrap();
        let c = Cluster::start(name, &[NodeSpec::new(POOL, &[])], 1, 30)
            .await
            .unwrap();
        // Rich containers need the pool's SSH keys (nobody could log in otherwise).
        let keys = tempfile::tempdir().unwrap();
        let (_, public) = sofa::ssh_keypair(keys.path(), "ops").unwrap();
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
        let (code, body) = c
            .request(
                0,
                "POST",
                &format!("/v1/pools/{POOL}/tokens"),
                Some(serde_json::json!({"role": "developer", "label": "e2e"})),
                &ops,
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
        let dev = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        let env = Self { c, ops, dev };
        let out = env
            .c
            .cli(
                0,
                &env.ops,
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
        env.c
            .wait_running(&env.ops, POOL, "web", Duration::from_secs(120))
            .await
            .unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{}", env.c.agents[0].log()));
        env
    }

    /// The app container's processes as `docker top` lists them (command lines).
    async fn processes(&self) -> Vec<String> {
        let view = self.c.container(&self.ops, POOL, "web").await.unwrap();
        let app = view.status.unwrap().containers.app.unwrap();
        let docker = caas_tests::images::docker().await.unwrap();
        let top = docker
            .top_processes(
                &app,
                Some(bollard::query_parameters::TopOptions {
                    ps_args: "-eo pid,args".into(),
                }),
            )
            .await
            .unwrap();
        top.processes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.into_iter().last())
            .collect()
    }

    async fn audit(&self) -> Vec<AuditEntry> {
        let (code, body) = self
            .c
            .request(
                0,
                "GET",
                &format!("/v1/pools/{POOL}/audit?container=web&limit=100"),
                None,
                &self.ops,
            )
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// A private tmux server: sessions in real pseudo-terminals, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        let socket = format!("caas-test-{}", std::process::id());
        let tmux = Self { socket };
        tmux.run(&["-f", "/dev/null", "start-server"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self, session: &str) -> String {
        self.run(&["capture-pane", "-p", "-J", "-t", session])
    }

    async fn wait_screen(&self, session: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        until(what, Duration::from_secs(60), || async {
            let screen = self.screen(session);
            Ok(ok(&screen).then_some(screen))
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nscreen:\n{}", self.screen(session)))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn has_line(screen: &str, line: &str) -> bool {
    screen.lines().any(|l| l.trim_end() == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_it_in_a_real_terminal_roles_and_audit() {
    let env = Env::start("termcli").await;
    let tmux = Tmux::new();
    let cli = caas_tests::binaries::cli().unwrap();
    let command = |token: &str, extra: &str| {
        format!(
            "ip netns exec {} env CAAS_URL={} CAAS_TOKEN={token} {} --pool {POOL} container exec -it {extra}; echo EXIT=$?; sleep 600",
            env.c.topo.fabric,
            env.c.centrals[0].url,
            cli.display()
        )
    };
    // A developer's terminal: admin in the rich container, bash, resize, exit code.
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "dev",
        "-x",
        "100",
        "-y",
        "30",
        &command(&env.dev, "web -- bash"),
    ]);
    tmux.run(&["set-option", "-t", "dev", "status", "off"]);
    tmux.run(&[
        "send-keys",
        "-t",
        "dev",
        "whoami; hostname; echo W-$((1+1))",
        "Enter",
    ]);
    let screen = tmux
        .wait_screen("dev", "whoami answered", |s| has_line(s, "W-2"))
        .await;
    assert!(has_line(&screen, "admin"), "{screen}");
    let view = env.c.container(&env.ops, POOL, "web").await.unwrap();
    let hostname = view.spec.effective_hostname().to_string();
    assert!(
        screen.contains(&hostname),
        "hostname {hostname} not on screen:\n{screen}"
    );
    tmux.run(&["resize-window", "-t", "dev", "-x", "120", "-y", "40"]);
    tmux.run(&[
        "send-keys",
        "-t",
        "dev",
        "stty size; echo S-$((2+3))",
        "Enter",
    ]);
    let screen = tmux
        .wait_screen("dev", "stty size answered", |s| has_line(s, "S-5"))
        .await;
    assert!(
        has_line(&screen, "40 120"),
        "the resize did not reach the terminal:\n{screen}"
    );
    tmux.run(&["send-keys", "-t", "dev", "exit 7", "Enter"]);
    tmux.wait_screen("dev", "the CLI passes the exit code", |s| {
        has_line(s, "EXIT=7")
    })
    .await;

    // A session whose client goes away: what it ran is killed.
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "gone",
        "-x",
        "100",
        "-y",
        "30",
        &command(&env.ops, "web -- bash"),
    ]);
    tmux.run(&["send-keys", "-t", "gone", "sleep 4242", "Enter"]);
    until(
        "sleep 4242 runs in the container",
        Duration::from_secs(60),
        || async {
            Ok(env
                .processes()
                .await
                .iter()
                .any(|p| p == "sleep 4242")
                .then_some(()))
        },
    )
    .await
    .unwrap();
    tmux.run(&["kill-session", "-t", "gone"]);
    until(
        "sleep 4242 is gone with its terminal",
        Duration::from_secs(30),
        || async { Ok((!env.processes().await.iter().any(|p| p == "sleep 4242")).then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{}", env.c.agents[0].log()));

    // Developers: no root, no plain exec, no delete, no plain containers.
    let out = env
        .c
        .cli(0, &env.dev, &["--pool", POOL, "container", "rm", "web"])
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("developer"), "{out:?}");
    let out = env
        .c
        .cli(
            0,
            &env.dev,
            &["--pool", POOL, "container", "exec", "web", "--", "id"],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{out:?}");
    let out = env
        .c
        .cli(
            0,
            &env.dev,
            &[
                "--pool",
                POOL,
                "container",
                "exec",
                "-i",
                "-u",
                "root",
                "web",
                "--",
                "id",
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("admin"), "{out:?}");
    let out = env
        .c
        .cli(
            0,
            &env.ops,
            &[
                "--pool",
                POOL,
                "container",
                "create",
                "plain",
                "--image",
                &env.c.busybox,
                "--",
                "sleep",
                "3600",
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    env.c
        .wait_running(&env.ops, POOL, "plain", Duration::from_secs(60))
        .await
        .unwrap();
    let out = env
        .c
        .cli(
            0,
            &env.dev,
            &[
                "--pool",
                POOL,
                "container",
                "exec",
                "-i",
                "plain",
                "--",
                "id",
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("no admin user"), "{out:?}");
    // Ops may use root in any container.
    let out = env
        .c
        .cli(
            0,
            &env.ops,
            &[
                "--pool",
                POOL,
                "container",
                "exec",
                "-i",
                "-u",
                "root",
                "web",
                "--",
                "id",
                "-u",
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), "0", "{out:?}");

    // Without a TTY the end of the CLI's stdin closes the command's (a piped `cat` ends).
    let out = env
        .c
        .cli(
            0,
            &env.ops,
            &[
                "--pool",
                POOL,
                "container",
                "exec",
                "-i",
                "web",
                "--",
                "sh",
                "-c",
                "cat; echo done-$((1+1))",
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), "done-2", "{out:?}");

    // The audit log: both terminals, who, the typed lines, how they ended.
    let entries = env.audit().await;
    let dev_session = entries
        .iter()
        .find(|e| e.role == "developer" && e.input.iter().any(|l| l.starts_with("whoami")))
        .unwrap_or_else(|| panic!("no developer session in {entries:#?}"));
    assert_eq!(dev_session.user, "admin");
    assert_eq!(dev_session.exit_code, Some(7));
    assert_eq!(dev_session.ended_by, "exit");
    assert_eq!(
        dev_session.input,
        [
            "whoami; hostname; echo W-$((1+1))",
            "stty size; echo S-$((2+3))",
            "exit 7"
        ]
    );
    assert!(dev_session.ended_at >= dev_session.started_at);
    let gone = entries
        .iter()
        .find(|e| e.input.iter().any(|l| l == "sleep 4242"))
        .unwrap_or_else(|| panic!("no closed session in {entries:#?}"));
    assert_eq!(
        (gone.role.as_str(), gone.ended_by.as_str(), gone.exit_code),
        ("ops", "closed", None)
    );
    let out = env
        .c
        .cli(
            0,
            &env.ops,
            &["--pool", POOL, "audit", "ls", "--container", "web", "-v"],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("whoami; hostname") && out.stdout.contains("developer"),
        "{}",
        out.stdout
    );
    let out = env
        .c
        .cli(0, &env.dev, &["--pool", POOL, "audit", "ls"])
        .await
        .unwrap();
    assert_eq!(
        out.code,
        Some(1),
        "developers cannot read the audit log: {out:?}"
    );
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_terminals_with_continuous_output_for_a_minute() {
    const SESSIONS: usize = 20;
    const WINDOW: Duration = Duration::from_secs(10);
    const WINDOWS: usize = 6;
    let env = Env::start("termload").await;
    let central_pid = env.c.centrals[0].pid().unwrap();
    let baseline = rss(central_pid);
    let url = env.c.centrals[0].url.clone();
    let token = env.ops.clone();
    let sampler = {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut max = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                max = max.max(rss(central_pid));
                std::thread::sleep(Duration::from_millis(250));
            }
            max
        });
        (stop, handle)
    };
    let before = env.processes().await;
    let results = env
        .c
        .fabric
        .run(async move {
            let client = CentralClient::new(&url, Some(&token)).unwrap();
            // One client opens a flood and never reads.
            let flood = TerminalStart {
                command: vec!["sh".into(), "-c".into(), "exec yes never-read".into()],
                ..Default::default()
            };
            let idle_reader = client.terminal(POOL, "web", &flood).await.unwrap();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..SESSIONS {
                let client = client.clone();
                tasks.spawn(async move {
                    let start = TerminalStart {
                        command: vec![
                            "sh".into(),
                            "-c".into(),
                            format!("while :; do head -c 3000 /dev/urandom | base64 -w 100; echo tick-{i}; sleep 0.05; done"),
                        ],
                        ..Default::default()
                    };
                    let mut session = client.terminal(POOL, "web", &start).await.unwrap();
                    // Twenty execs start one after another on a loaded 2-core engine: the
                    // minute is counted from this session's start.
                    match tokio::time::timeout(Duration::from_secs(120), session.next()).await {
                        Ok(Ok(Some(TerminalEvent::Started { .. }))) => {}
                        other => return Err(format!("session {i} did not start: {other:?}")),
                    }
                    let begun = Instant::now();
                    let mut windows = vec![0u64; WINDOWS];
                    while begun.elapsed() < WINDOW * WINDOWS as u32 {
                        match tokio::time::timeout(Duration::from_secs(30), session.next()).await {
                            Ok(Ok(Some(TerminalEvent::Output(bytes)))) => {
                                let w = (begun.elapsed().as_secs() / WINDOW.as_secs()) as usize;
                                if w < WINDOWS {
                                    windows[w] += bytes.len() as u64;
                                }
                            }
                            other => return Err(format!("session {i} after {:?}: {other:?}", begun.elapsed())),
                        }
                    }
                    session.close().await;
                    Ok(windows)
                });
            }
            let mut all = Vec::new();
            while let Some(done) = tasks.join_next().await {
                all.push(done.unwrap());
            }
            (all, idle_reader)
        })
        .await
        .unwrap();
    let (windows, idle_reader) = results;
    let windows: Vec<Vec<u64>> = windows
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            panic!(
                "{e}\ncentral log:\n{}\nagent log:\n{}",
                env.c.centrals[0].log(),
                env.c.agents[0].log()
            )
        });
    sampler.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let max_rss = sampler.1.join().unwrap();
    assert_eq!(windows.len(), SESSIONS);
    for (i, w) in windows.iter().enumerate() {
        // Each session prints up to ~80 KB per second (less on a loaded machine); every
        // 10-second window of every session got output.
        assert!(
            w.iter().all(|&b| b > 10_000),
            "session {i} starved in a window: {w:?}"
        );
    }
    let total: u64 = windows.iter().flatten().sum();
    eprintln!(
        "20 sessions: {:.1} MB relayed in {}s; central RSS {:.1} MB before, {:.1} MB at most",
        total as f64 / 1e6,
        WINDOW.as_secs() * WINDOWS as u64,
        baseline as f64 / 1e6,
        max_rss as f64 / 1e6
    );
    assert!(
        max_rss < baseline + 150 * 1024 * 1024,
        "central grew from {baseline} to {max_rss} bytes"
    );
    // The reading sessions' processes are gone at once; the flood that nobody read is ended
    // by central (client-not-reading) and its `yes` killed.
    until(
        "every reader's exec process is gone",
        Duration::from_secs(30),
        || async {
            let ps = env.processes().await;
            Ok((!ps
                .iter()
                .any(|p| p.contains("tick-") || p.contains("base64")))
            .then_some(()))
        },
    )
    .await
    .unwrap();
    until(
        "the unread flood is ended",
        Duration::from_secs(120),
        || async {
            let ps = env.processes().await;
            Ok((!ps.iter().any(|p| p.contains("never-read"))).then_some(ps))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\ncentral log:\n{}", env.c.centrals[0].log()));
    drop(idle_reader);
    // Only the container's own processes are left (its init, supervisord, monitor, sshd).
    let after = env.processes().await;
    let ours = ["sofa-init", "supervisord", "caas-monitor", "sshd"];
    assert!(
        after.iter().all(|p| ours.iter().any(|o| p.contains(o))),
        "exec processes left: {after:?} (before the sessions: {before:?})"
    );
    let entries = env.audit().await;
    assert!(
        entries
            .iter()
            .any(|e| e.command.iter().any(|a| a.contains("never-read"))
                && e.ended_by == "client-not-reading"),
        "{entries:#?}"
    );
    assert_eq!(
        entries.iter().filter(|e| e.ended_by == "closed").count(),
        SESSIONS,
        "{entries:#?}"
    );
    let grown = rss(central_pid);
    eprintln!("central RSS after: {:.1} MB", grown as f64 / 1e6);
}
