//! Rich ("sofa") containers end to end, through central, a real agent, real Docker and the real
//! OpenSSH client: key-only SSH as admin with per-container host keys, supervisord restarting a
//! killed app (restart count in the status), `container deploy` without a container restart,
//! health checks in `container inspect`, logs kept in the data container across a recreate,
//! and each bad input with its explanation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use caas_api::central::ContainerView;
use caas_api::HealthState;
use caas_tests::cluster::{CliOutput, Cluster, NodeSpec};
use caas_tests::sofa;
use caas_tests::wait::until;

const BASE: &str = "caas/sofa-base:latest";
const POOL: &str = "rich";

struct Rich {
    c: Cluster,
    token: String,
    key: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Rich {
    async fn start(name: &str) -> Self {
        sofa::ensure_images().unwrap();
        let c = Cluster::start(name, &[NodeSpec::new(POOL, &[])], 1, 30)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = sofa::ssh_keypair(dir.path(), "ops").unwrap();
        let out = c
            .cli(
                0,
                &c.admin_token.clone(),
                &["pool", "create", POOL, "--ssh-key", &public, "-o", "json"],
            )
            .await
            .unwrap();
        assert_eq!(out.code, Some(0), "{out:?}");
        let token = serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        Self { c, token, key, dir }
    }

    async fn cli(&self, args: &[&str]) -> CliOutput {
        let mut all = vec!["--pool", POOL];
        all.extend_from_slice(args);
        self.c.cli(0, &self.token, &all).await.unwrap()
    }

    async fn create(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["container", "create", name, "--rich"];
        args.extend_from_slice(extra);
        let out = self.cli(&args).await;
        assert_eq!(out.code, Some(0), "{out:?}");
    }

    async fn inspect(&self, name: &str) -> ContainerView {
        let out = self.cli(&["container", "inspect", name]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// Waits until the container's status satisfies `ok`.
    async fn wait_for(
        &self,
        name: &str,
        what: &str,
        ok: impl Fn(&ContainerView) -> bool,
    ) -> ContainerView {
        until(what, Duration::from_secs(90), || async {
            let view = self.inspect(name).await;
            Ok(ok(&view).then_some(view))
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{}", self.c.agents[0].log()))
    }

    async fn exec(&self, name: &str, command: &[&str]) -> CliOutput {
        let mut args = vec!["container", "exec", name, "--"];
        args.extend_from_slice(command);
        self.cli(&args).await
    }

    /// Host pid of the workload's sandbox (its network namespace).
    async fn sandbox_pid(&self, view: &ContainerView) -> i64 {
        let sandbox = view
            .status
            .as_ref()
            .unwrap()
            .containers
            .sandbox
            .clone()
            .unwrap();
        let docker = caas_tests::images::docker().await.unwrap();
        docker
            .inspect_container(&sandbox, None)
            .await
            .unwrap()
            .state
            .unwrap()
            .pid
            .unwrap()
    }

    fn ssh(&self, pid: i64, user: &str, extra: &[&str], command: &str) -> std::process::Output {
        let key = self.key.display().to_string();
        let target = format!("{user}@127.0.0.1");
        let mut args = vec![
            "ssh",
            "-i",
            &key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
        ];
        args.extend_from_slice(extra);
        args.push(&target);
        args.push(command);
        sofa::in_netns_of(pid, &args).unwrap()
    }

    fn package(&self, name: &str, entries: &[(&str, u32, &str)]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, sofa::tgz(entries).unwrap()).unwrap();
        path.display().to_string()
    }
}

fn program<'a>(view: &'a ContainerView, name: &str) -> Option<&'a caas_api::ProgramStatus> {
    view.status
        .as_ref()?
        .programs
        .iter()
        .find(|p| p.name == name)
}

fn app_state(view: &ContainerView) -> Option<&str> {
    program(view, "app").map(|p| p.state.as_str())
}

/// A package whose start script serves its version over HTTP on 8080 with python3 (in
/// sofa-base for supervisord), writing a line to the app log on each start.
fn web_package(version: &str) -> Vec<(&'static str, u32, String)> {
    vec![
        (
            "web/bin/start.sh",
            0o755,
            format!(
                "#!/bin/sh\nset -e\ncd \"$(dirname \"$0\")/..\"\necho \"web {version} starting\"\n\
                 mkdir -p /tmp/www && echo {version} > /tmp/www/version.txt\n\
                 exec python3 -m http.server 8080 --bind 127.0.0.1 --directory /tmp/www\n"
            ),
        ),
        (
            "web/conf/app.properties",
            0o644,
            format!("version={version}\n"),
        ),
    ]
}

fn as_entries<'a>(v: &'a [(&'static str, u32, String)]) -> Vec<(&'static str, u32, &'a str)> {
    v.iter().map(|(p, m, b)| (*p, *m, b.as_str())).collect()
}

const FETCH_VERSION: &str = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8080/version.txt').read().decode().strip())";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_is_key_only_with_per_container_host_keys_and_supervisord_restarts_a_killed_app() {
    let r = Rich::start("rssh").await;
    for name in ["vm1", "vm2"] {
        r.create(
            name,
            &[
                "--image",
                BASE,
                "--",
                "sh",
                "-c",
                "echo app up; exec sleep 100000",
            ],
        )
        .await;
    }
    let vm1 = r
        .wait_for("vm1", "vm1's app and sshd RUNNING", |v| {
            app_state(v) == Some("RUNNING")
                && program(v, "sshd").is_some_and(|p| p.state == "RUNNING")
        })
        .await;
    let vm2 = r
        .wait_for("vm2", "vm2's app RUNNING", |v| {
            app_state(v) == Some("RUNNING")
        })
        .await;

    // A real ssh client, from inside the container's network, with the pool's key.
    let pid = r.sandbox_pid(&vm1).await;
    let out = r.ssh(pid, "admin", &[], "id -un; hostname");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("admin") && text.contains("vm1"),
        "key login as admin failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Passwords are off, and root may not log in even with the key.
    let out = r.ssh(
        pid,
        "admin",
        &[
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "PubkeyAuthentication=no",
        ],
        "true",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = r.ssh(pid, "root", &[], "true");
    assert!(!out.status.success(), "root logged in");

    // Rotating the pool's keys reaches the running container in place: the new key gets in,
    // the old one no longer does, and the container is not restarted.
    let (new_key, new_public) = sofa::ssh_keypair(r.dir.path(), "ops2").unwrap();
    let out =
        r.c.cli(
            0,
            &r.token.clone(),
            &["pool", "ssh-keys", POOL, "--ssh-key", &new_public],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("2 rich container(s)"), "{}", out.stdout);
    let new_key = new_key.display().to_string();
    until("the new key logs in", Duration::from_secs(30), || async {
        let out = r.ssh(
            pid,
            "admin",
            &["-i", &new_key, "-o", "IdentitiesOnly=yes"],
            "true",
        );
        Ok(out.status.success().then_some(()))
    })
    .await
    .unwrap();
    let out = r.ssh(pid, "admin", &["-o", "IdentitiesOnly=yes"], "true");
    assert!(!out.status.success(), "the rotated-out key still logs in");
    let out = r
        .cli(&["container", "deploy", "vm1", "/nonexistent.tgz"])
        .await;
    assert_eq!(out.code, Some(64), "{out:?}");

    // Host keys are made per container at first start.
    let keys: Vec<String> = futures::future::join_all(
        ["vm1", "vm2"].map(|n| r.exec(n, &["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])),
    )
    .await
    .into_iter()
    .map(|o| {
        assert_eq!(o.code, Some(0), "{o:?}");
        o.stdout.split_whitespace().nth(1).unwrap().to_string()
    })
    .collect();
    assert_ne!(keys[0], keys[1], "two containers share a host key");
    let _ = vm2;

    // Kill the app: supervisord starts it again, the container does not restart, the restart
    // count shows in the status.
    let started_at = vm1.status.as_ref().unwrap().started_at.clone();
    let out = r
        .exec("vm1", &["sh", "-c", "kill -9 $(supervisorctl pid app)"])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let after = r
        .wait_for("vm1", "app restarted by supervisord", |v| {
            program(v, "app").is_some_and(|p| p.state == "RUNNING" && p.restarts >= 1)
        })
        .await;
    assert_eq!(after.status.as_ref().unwrap().started_at, started_at);
    // The same counts in the agent's metrics.
    let metrics = std::process::Command::new("ip")
        .args(["netns", "exec", &r.c.topo.fabric, "curl", "-sf"])
        .arg(format!("{}/metrics", r.c.agents[0].url()))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let restarts = metrics
        .lines()
        .find(|l| {
            // Label order is the exporter's business: match the labels, not their order.
            l.starts_with("caas_program_restarts_total{")
                && ["pool=\"rich\"", "name=\"vm1\"", "program=\"app\""]
                    .iter()
                    .all(|label| l.contains(label))
        })
        .unwrap_or_else(|| panic!("no restart series:\n{metrics}"));
    assert!(!restarts.ends_with(" 0"), "{restarts}");
    // exec reports the command's own exit code.
    let out = r
        .exec("vm1", &["sh", "-c", "echo out; echo err >&2; exit 7"])
        .await;
    assert_eq!(
        (out.code, out.stdout.trim(), out.stderr.trim()),
        (Some(7), "out", "err")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_replaces_the_app_without_restarting_the_container_and_logs_survive() {
    let r = Rich::start("rdeploy").await;
    // No command and no package yet: the app program ends FATAL and says why.
    r.create(
        "web",
        &[
            "--image",
            BASE,
            "--health-http",
            "8080/version.txt",
            "--health-interval",
            "1",
            "--health-timeout",
            "1",
            "--health-retries",
            "2",
        ],
    )
    .await;
    let fatal = r
        .wait_for("web", "app FATAL without a package", |v| {
            app_state(v) == Some("FATAL")
                && v.status
                    .as_ref()
                    .unwrap()
                    .last_error
                    .as_ref()
                    .is_some_and(|e| e.code == "app-fatal")
        })
        .await;
    let message = &fatal
        .status
        .as_ref()
        .unwrap()
        .last_error
        .as_ref()
        .unwrap()
        .message;
    assert!(message.contains("sofa-app"), "{message}");
    let fatal = r
        .wait_for("web", "unhealthy with nothing listening", |v| {
            v.status
                .as_ref()
                .unwrap()
                .health
                .as_ref()
                .is_some_and(|h| h.state == HealthState::Unhealthy)
        })
        .await;
    let started_at = fatal.status.as_ref().unwrap().started_at.clone();

    // Bad packages are refused before anything is copied.
    let not_tar = r.dir.path().join("not-tar.tgz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"plain text, not a tar").unwrap();
    std::fs::write(&not_tar, gz.finish().unwrap()).unwrap();
    let out = r
        .cli(&["container", "deploy", "web", &not_tar.display().to_string()])
        .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("not a readable gzip tarball"),
        "{}",
        out.stderr
    );
    let no_script = r.package("no-script.tgz", &[("web/README", 0o644, "hi")]);
    let out = r.cli(&["container", "deploy", "web", &no_script]).await;
    assert!(
        out.stderr.contains("no start script") && out.stderr.contains("bin/start.sh"),
        "{}",
        out.stderr
    );
    let not_exec = r.package("not-exec.tgz", &[("bin/start.sh", 0o644, "#!/bin/sh\n")]);
    let out = r.cli(&["container", "deploy", "web", &not_exec]).await;
    assert!(
        out.stderr.contains("chmod +x bin/start.sh"),
        "{}",
        out.stderr
    );
    let plain = r.dir.path().join("plain.txt");
    std::fs::write(&plain, "hello").unwrap();
    let out = r
        .cli(&["container", "deploy", "web", &plain.display().to_string()])
        .await;
    assert_eq!(out.code, Some(64), "{out:?}");

    // Version 1, then version 2: each answers, the container's start time never changes.
    for version in ["v1", "v2"] {
        let pkg = web_package(version);
        let path = r.package(&format!("web-{version}.tgz"), &as_entries(&pkg));
        let out = r
            .cli(&["container", "deploy", "web", &path, "-o", "json"])
            .await;
        if out.code != Some(0) {
            let logs = r
                .exec("web", &["sh", "-c", "tail -n 30 /home/admin/logs/supervisord.log /home/admin/logs/app.err.log /home/admin/logs/app.out.log; ls -laR /home/admin/release | head -40"])
                .await;
            panic!(
                "deploy {version} failed: {out:?}\ncontainer:\n{}{}",
                logs.stdout, logs.stderr
            );
        }
        let results: Vec<caas_api::central::DeployResult> =
            serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(results[0].program.state, "RUNNING", "{results:?}");
        assert_eq!(results[0].start_script, "web/bin/start.sh");
        let answer = until(
            "the new version answers",
            Duration::from_secs(30),
            || async {
                let out = r.exec("web", &["python3", "-c", FETCH_VERSION]).await;
                Ok((out.code == Some(0) && out.stdout.trim() == version).then_some(out.stdout))
            },
        )
        .await
        .unwrap();
        assert_eq!(answer.trim(), version);
        assert_eq!(
            results[0].container_started_at, started_at,
            "deploy restarted the container"
        );
    }
    let healthy = r
        .wait_for("web", "healthy once v2 answers", |v| {
            v.status
                .as_ref()
                .unwrap()
                .health
                .as_ref()
                .is_some_and(|h| h.state == HealthState::Healthy)
        })
        .await;
    assert_eq!(healthy.status.as_ref().unwrap().started_at, started_at);

    // The app's log lives in the data container: remove the app container behind the agent's
    // back; the agent recreates it and the old lines are still there.
    let app_id = healthy
        .status
        .as_ref()
        .unwrap()
        .containers
        .app
        .clone()
        .unwrap();
    let docker = caas_tests::images::docker().await.unwrap();
    docker
        .remove_container(
            &app_id,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    r.wait_for("web", "app recreated", |v| {
        v.status
            .as_ref()
            .unwrap()
            .containers
            .app
            .as_deref()
            .is_some_and(|id| id != app_id)
            && app_state(v).is_some()
    })
    .await;
    let out = r
        .exec("web", &["cat", "/home/admin/logs/app.out.log"])
        .await;
    assert!(
        out.stdout.contains("web v2 starting") && out.stdout.contains("web v1 starting"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rich_requests_explain_themselves() {
    let r = Rich::start("rbad").await;
    // rich: true on an image that is not rich.
    r.create(
        "plain",
        &["--image", &r.c.busybox.clone(), "--", "sleep", "100"],
    )
    .await;
    let v = r
        .wait_for("plain", "not-rich-image reported", |v| {
            v.status
                .as_ref()
                .and_then(|s| s.last_error.as_ref())
                .is_some_and(|e| e.code == "not-rich-image")
        })
        .await;
    let status = v.status.unwrap();
    assert_eq!(status.state, caas_api::WorkloadState::Failed);
    assert!(status
        .last_error
        .unwrap()
        .message
        .contains("FROM caas/sofa-base"));
    assert!(status.containers.app.is_none(), "nothing is left behind");

    // An app that exits at once ends FATAL, with its last words in the status.
    r.create(
        "crash",
        &[
            "--image",
            BASE,
            "--",
            "sh",
            "-c",
            "echo 'config missing: /home/admin/conf/app.yml' >&2; exit 3",
        ],
    )
    .await;
    let v = r
        .wait_for("crash", "FATAL with the reason", |v| {
            app_state(v) == Some("FATAL")
        })
        .await;
    let app = program(&v, "app").unwrap();
    assert!(
        app.log_tail.iter().any(|l| l.contains("config missing")),
        "{app:?}"
    );
    assert!(v
        .status
        .unwrap()
        .last_error
        .unwrap()
        .message
        .contains("config missing"));

    // A pool without SSH keys cannot have rich containers.
    let out =
        r.c.cli(
            0,
            &r.c.admin_token.clone(),
            &["pool", "create", "nokeys", "-o", "json"],
        )
        .await
        .unwrap();
    let token = serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let out =
        r.c.cli(
            0,
            &token,
            &[
                "--pool",
                "nokeys",
                "container",
                "create",
                "x",
                "--rich",
                "--image",
                BASE,
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("no SSH keys") && out.stderr.contains("rich"),
        "{}",
        out.stderr
    );

    // Bad health-check flags are refused before anything is sent.
    let out = r
        .cli(&[
            "container",
            "create",
            "h",
            "--image",
            BASE,
            "--health-http",
            "web/health",
        ])
        .await;
    assert_eq!(out.code, Some(64), "{out:?}");
    // Without the control token the agent refuses exec and deploy before reading a body; central
    // refuses a caller without a token the same way.
    let curl = |url: String, token: Option<&str>| {
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            r.c.topo.fabric.clone(),
            "curl".into(),
            "-s".into(),
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
            "-X".into(),
            "POST".into(),
            "--data-binary".into(),
            "@/dev/null".into(),
        ];
        if let Some(t) = token {
            args.extend(["-H".to_string(), format!("Authorization: Bearer {t}")]);
        }
        args.push(url);
        let out = std::process::Command::new("ip")
            .args(&args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let agent = r.c.agents[0].url();
    assert_eq!(
        curl(format!("{agent}/v1/containers/{POOL}/crash/exec"), None),
        "401"
    );
    assert_eq!(
        curl(
            format!("{agent}/v1/containers/{POOL}/crash/deploy"),
            Some("not-the-token-1234")
        ),
        "401"
    );
    let central = r.c.centrals[0].url.clone();
    assert_eq!(
        curl(
            format!("{central}/v1/pools/{POOL}/containers/crash/deploy"),
            None
        ),
        "401"
    );

    // Deploy to a container that is not rich.
    r.c.cli(
        0,
        &r.token.clone(),
        &[
            "--pool",
            POOL,
            "container",
            "create",
            "bb",
            "--image",
            &r.c.busybox.clone(),
            "--",
            "sleep",
            "100",
        ],
    )
    .await
    .unwrap();
    let pkg = r.package(
        "ok.tgz",
        &[("run.sh", 0o755, "#!/bin/sh\nexec sleep 100\n")],
    );
    let out = r.cli(&["container", "deploy", "bb", &pkg]).await;
    assert!(
        out.stderr.contains("not a rich container"),
        "{}",
        out.stderr
    );
}

/// The agents' ZooKeeper session timeout in the harness (`tests/src/agent.rs`).
const AGENT_SESSION_TIMEOUT: Duration = Duration::from_secs(2);

/// What a watcher saw of agent 0 while some work ran.
#[derive(Debug, Default)]
struct Watched {
    /// `/healthz` polls made, and those that were not a 200 with ZooKeeper `registered`
    /// within the session timeout.
    polls: usize,
    misses: Vec<String>,
    /// Reads of the node's ephemeral registration, and the sessions that owned it.
    registration_reads: usize,
    owners: std::collections::BTreeSet<i64>,
    registration_gone: usize,
}

/// Runs `work` while polling agent 0's `/healthz` (from the fabric, each poll allowed the
/// session timeout) and its ephemeral registration in ZooKeeper, one after the other with
/// 100 ms between polls, until `work` is done.
async fn watch_agent<T>(r: &Rich, work: impl std::future::Future<Output = T>) -> (T, Watched) {
    let stop = tokio_util::sync::CancellationToken::new();
    let url = format!("{}/healthz", r.c.agents[0].url());
    let health_stop = stop.clone();
    let health = r.c.fabric.run(async move {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(AGENT_SESSION_TIMEOUT)
            .build()
            .unwrap();
        let (mut polls, mut misses) = (0, Vec::new());
        while !health_stop.is_cancelled() {
            polls += 1;
            match client.get(&url).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    if status != 200 || body["zookeeper"] != "registered" {
                        misses.push(format!("poll {polls}: {status} {body}"));
                    }
                }
                Err(e) => misses.push(format!("poll {polls}: {e}")),
            }
            tokio::select! {
                _ = health_stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        (polls, misses)
    });
    let registration = async {
        let mut watched = Watched::default();
        while !stop.is_cancelled() {
            watched.registration_reads += 1;
            match caas_tests::zk_io::registration(&r.c.zk_client, &r.c.layout, &r.c.node_ids[0])
                .await
                .unwrap()
            {
                Some((_, stat)) => {
                    watched.owners.insert(stat.ephemeral_owner);
                }
                None => watched.registration_gone += 1,
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        watched
    };
    let work = async {
        let out = work.await;
        stop.cancel();
        out
    };
    let (out, health, mut watched) = tokio::join!(work, health, registration);
    let (polls, misses) = health.unwrap();
    watched.polls = polls;
    watched.misses = misses;
    (out, watched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500mb_deploy_leaves_the_agent_responsive_and_a_zip_bomb_is_refused_unread() {
    let r = Rich::start("rbig").await;
    for name in ["big1", "big2"] {
        r.create(name, &["--image", BASE]).await;
    }
    for name in ["big1", "big2"] {
        r.wait_for(name, "app FATAL without a package", |v| {
            app_state(v) == Some("FATAL")
        })
        .await;
    }
    let owner = caas_tests::zk_io::registration(&r.c.zk_client, &r.c.layout, &r.c.node_ids[0])
        .await
        .unwrap()
        .unwrap()
        .1
        .ephemeral_owner;

    // 1 GiB of zeros unpacked, a few MB packed: refused with the typed error, nothing copied.
    let bomb = sofa::zeros_package(r.dir.path(), "bomb", 1 << 30, "exec sleep 100000").unwrap();
    let bomb_bytes = std::fs::read(&bomb).unwrap();
    assert!(bomb_bytes.len() < 16 << 20, "{} bytes", bomb_bytes.len());
    let out = r
        .cli(&["container", "deploy", "big1", &bomb.display().to_string()])
        .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("unpacks to more than 512 MiB")
            && out.stderr.contains("deploy_max_unpacked_mib"),
        "{}",
        out.stderr
    );
    // The agent's own answer: 413 with its code (central relays the status and message).
    let token = std::fs::read_to_string(r.c.dir.path().join("agent.token")).unwrap();
    let url = format!("{}/v1/containers/{POOL}/big1/deploy", r.c.agents[0].url());
    let (status, body) =
        r.c.fabric
            .run(async move {
                let resp = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .unwrap()
                    .post(url)
                    .bearer_auth(token.trim())
                    .body(bomb_bytes)
                    .send()
                    .await
                    .unwrap();
                (
                    resp.status().as_u16(),
                    resp.json::<serde_json::Value>().await.unwrap(),
                )
            })
            .await
            .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("package-too-large")),
        "{body}"
    );
    let out = r
        .exec("big1", &["sh", "-c", "ls -A /home/admin/release/run 2>&1"])
        .await;
    assert!(
        !out.stdout.contains("app.tgz"),
        "a refused package was copied: {out:?}"
    );

    // ~500 MB unpacked (under the cap) to two containers of the node at once: the agent's
    // two async workers would both be stuck in gunzip and sha256 if that ran on them. It runs
    // on the blocking pool, so /healthz answers every poll and the ZooKeeper session holds.
    let package = sofa::zeros_package(
        r.dir.path(),
        "big",
        500_000_000,
        "echo big starting; exec sleep 100000",
    )
    .unwrap();
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&package).unwrap(),
    ));
    let path = package.display().to_string();
    let deploy = |name: &'static str| {
        let path = path.clone();
        let r = &r;
        async move {
            r.cli(&["container", "deploy", name, &path, "-o", "json"])
                .await
        }
    };
    let (outs, watched) =
        watch_agent(&r, async { tokio::join!(deploy("big1"), deploy("big2")) }).await;
    eprintln!(
        "during the deploys: {} /healthz polls, {} registration reads",
        watched.polls, watched.registration_reads
    );
    for out in [outs.0, outs.1] {
        assert_eq!(
            out.code,
            Some(0),
            "{out:?}\nagent log:\n{}",
            r.c.agents[0].log()
        );
        let results: Vec<caas_api::central::DeployResult> =
            serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(results[0].program.state, "RUNNING", "{results:?}");
        assert_eq!(results[0].package_sha256, sha256);
    }
    assert!(
        watched.polls > 0 && watched.registration_reads > 0,
        "{watched:?}"
    );
    assert!(
        watched.misses.is_empty(),
        "/healthz missed polls during the deploys: {watched:?}"
    );
    assert_eq!(
        (
            watched.registration_gone,
            watched.owners.iter().copied().collect::<Vec<_>>()
        ),
        (0, vec![owner]),
        "the node's registration was lost or re-created during the deploys"
    );
    // Reconcile passes went on: the status shows the new apps running.
    for name in ["big1", "big2"] {
        r.wait_for(name, "the deployed app RUNNING in the status", |v| {
            app_state(v) == Some("RUNNING")
        })
        .await;
        let out = r
            .exec(
                name,
                &["stat", "-c", "%s", "/home/admin/release/run/app.tgz"],
            )
            .await;
        assert_eq!(
            out.stdout.trim(),
            std::fs::metadata(&package).unwrap().len().to_string(),
            "{out:?}"
        );
    }
}
