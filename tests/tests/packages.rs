//! End-to-end: the caas packages. `packaging/build` writes the RPMs and debs (once per test
//! run, shared by these tests through a lock file); their metadata is checked with rpm,
//! dpkg-deb, rpmlint and lintian; then each format is installed in a container booted with
//! systemd as PID 1 (caas/test-node, see packaging/test-node/build): the agent fails once on
//! the unedited config, starts on the edited one, registers in a real ZooKeeper, runs a
//! workload, is upgraded to a higher release without touching the workload's containers, and
//! is removed leaving them running.
//!
//! The packages hold the binaries the other end-to-end tests run (`caas_tests::binaries`, passed
//! to `packaging/build --bin-dir`), so the suite builds no binary twice and no release build at
//! all; CAAS_PACKAGES_PROFILE=release makes packaging/build build and package release binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caas_api::{Assignment, WorkloadKey, WorkloadState, ZkLayout};
use caas_tests::agent::{test_node_id, ContainerSweeper};
use caas_tests::zk_server::ZkServer;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const BOOT: Duration = Duration::from_secs(90);
const CONVERGE: Duration = Duration::from_secs(60);
/// A line the next release's shipped configs add, so an upgrade meets an edited config whose
/// packaged version changed (what makes .rpmnew and .dpkg-dist).
const NEXT_RELEASE_NOTE: &str = "# (a note the next release adds to the shipped file)";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// target/ (the test executable is target/<profile>/deps/packages-<hash>).
fn target_dir() -> anyhow::Result<(PathBuf, String)> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable outside target/<profile>/deps")?;
    let profile = match std::env::var("CAAS_PACKAGES_PROFILE") {
        Ok(p) => p,
        Err(_) if profile_dir.ends_with("release") => "release".to_string(),
        Err(_) => "dev".to_string(),
    };
    let target = profile_dir.parent().context("no target dir")?.to_path_buf();
    Ok((target, profile))
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// The packages of this test run: release 1 in `r1/`, release 2 (shipped configs changed) in
/// `r2/`.
struct Built {
    dir: PathBuf,
}

impl Built {
    /// The one file in `r<release>/` whose name starts with `prefix` and ends with `suffix`.
    fn file(&self, release: u32, prefix: &str, suffix: &str) -> PathBuf {
        let dir = self.dir.join(format!("r{release}"));
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(prefix) && name.ends_with(suffix)
            })
            .collect();
        assert_eq!(found.len(), 1, "{prefix}*{suffix} in {}", dir.display());
        found.remove(0)
    }

    /// The release a package file carries, read from its name (`name-V-R.arch.rpm`,
    /// `name_V-R_arch.deb`).
    fn release_of(path: &Path) -> String {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rest = name
            .split_once(&format!("{VERSION}-"))
            .unwrap_or_else(|| panic!("{name} does not carry version {VERSION}"))
            .1;
        rest.split(['.', '_']).next().unwrap().to_string()
    }
}

/// Builds the packages once per test run: the first test takes the lock and runs
/// packaging/build twice (release 1, then release 2 with changed shipped configs; the second
/// cargo build is a no-op); the others find the stamp of this run and reuse them.
fn built_packages() -> anyhow::Result<Built> {
    let (target, profile) = target_dir()?;
    let dir = target.join("packages-test").join(&profile);
    std::fs::create_dir_all(&dir)?;
    let lock = std::fs::File::create(dir.join(".lock"))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", dir.display()))?;
    let run_id =
        std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| format!("pid-{}", std::process::id()));
    let stamp = dir.join("stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(run_id.as_str()) {
        return Ok(Built { dir });
    }
    let _ = std::fs::remove_file(&stamp);
    let root = repo_root();
    let next_config = dir.join("next-config");
    std::fs::create_dir_all(&next_config)?;
    for name in ["agent.toml", "central.toml"] {
        let text = std::fs::read_to_string(root.join("packaging").join(name))?;
        std::fs::write(
            next_config.join(name),
            format!("{text}\n{NEXT_RELEASE_NOTE}\n"),
        )?;
    }
    // The binaries the other end-to-end tests run (built the same way, so cached), unless
    // another profile was asked for: then packaging/build builds them.
    let bin_dir = if std::env::var_os("CAAS_PACKAGES_PROFILE").is_none() {
        caas_tests::binaries::central()?;
        caas_tests::binaries::cli()?;
        let agent = caas_tests::binaries::agent()?;
        Some(agent.parent().context("agent binary path")?.to_path_buf())
    } else {
        None
    };
    for (release, config) in [(1, root.join("packaging")), (2, next_config)] {
        let started = Instant::now();
        let mut build = Command::new(root.join("packaging/build"));
        if let Some(dir) = &bin_dir {
            build.arg("--bin-dir").arg(dir);
        }
        run(build
            .args(["--profile", &profile, "--release", &release.to_string()])
            .arg("--out")
            .arg(dir.join(format!("r{release}")))
            .arg("--config-dir")
            .arg(&config)
            .env("CARGO_TARGET_DIR", &target))?;
        eprintln!(
            "packaging/build --profile {profile} --release {release}: {:?}",
            started.elapsed()
        );
    }
    std::fs::write(&stamp, &run_id)?;
    Ok(Built { dir })
}

#[test]
fn packages_carry_metadata_files_dependencies_scriptlets_and_pass_the_linters() {
    let built = built_packages().unwrap();
    let agent_rpm = built.file(1, "caas-agent-", ".rpm");
    let release = Built::release_of(&agent_rpm);
    assert_eq!(release, "1");
    let rpm = |args: &[&str], path: &Path| run(Command::new("rpm").args(args).arg(path)).unwrap();

    let info = rpm(&["-qpi"], &agent_rpm);
    for want in [
        "caas-agent",
        VERSION,
        "License     : Apache-2.0",
        "URL         :",
        "Summary     : Node agent of caas",
        "registers this node in ZooKeeper",
    ] {
        assert!(info.contains(want), "rpm -qpi lacks {want:?}:\n{info}");
    }
    assert!(
        info.contains(&format!("Release     : {release}")),
        "release:\n{info}"
    );
    let files = rpm(&["-qpl"], &agent_rpm);
    for want in [
        "/usr/bin/caas-agent",
        "/etc/caas/agent.toml",
        "/usr/lib/systemd/system/caas-agent.service",
        "/usr/share/doc/caas-agent/README.md",
    ] {
        assert!(
            files.lines().any(|l| l == want),
            "rpm -qpl lacks {want}:\n{files}"
        );
    }
    assert_eq!(rpm(&["-qpc"], &agent_rpm).trim(), "/etc/caas/agent.toml");
    let flags = rpm(
        &["-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]"],
        &agent_rpm,
    );
    assert!(
        flags.lines().any(|l| l == "/etc/caas/agent.toml cn"),
        "agent.toml must be %config(noreplace):\n{flags}"
    );
    let requires = rpm(&["-qpR"], &agent_rpm);
    for want in [
        "(docker-ce or moby-engine or docker)",
        "nftables",
        "systemd",
        "glibc >= 2.",
    ] {
        assert!(
            requires.contains(want),
            "rpm -qpR lacks {want}:\n{requires}"
        );
    }
    let scripts = rpm(&["-qp", "--scripts"], &agent_rpm);
    for want in [
        "postinstall scriptlet",
        "systemctl enable caas-agent.service",
        "preuninstall scriptlet",
        "disable --now caas-agent.service",
        "postuninstall scriptlet",
        "systemctl try-restart caas-agent.service",
    ] {
        assert!(scripts.contains(want), "--scripts lacks {want}:\n{scripts}");
    }
    let changelog = rpm(&["-qp", "--changelog"], &agent_rpm);
    assert!(
        changelog.contains(&format!("Release {VERSION}-{release} of caas")),
        "{changelog}"
    );

    let central_rpm = built.file(1, "caas-central-", ".rpm");
    assert_eq!(
        rpm(&["-qpc"], &central_rpm).trim(),
        "/etc/caas/central.toml"
    );
    assert!(rpm(&["-qpl"], &central_rpm).contains("/usr/lib/systemd/system/caas-central.service"));
    let cli_rpm = built.file(1, "caas-cli-", ".rpm");
    assert!(rpm(&["-qpl"], &cli_rpm)
        .lines()
        .any(|l| l == "/usr/bin/caas"));
    assert!(rpm(&["-qp", "--scripts"], &cli_rpm).trim().is_empty());

    // The debs: the same content, Debian's way.
    let agent_deb = built.file(1, "caas-agent_", ".deb");
    assert_eq!(Built::release_of(&agent_deb), release);
    let control = run(Command::new("dpkg-deb").arg("-I").arg(&agent_deb)).unwrap();
    for want in [
        "Package: caas-agent",
        &format!("Version: {VERSION}-{release}"),
        "docker.io | docker-ce | moby-engine",
        "nftables",
        "libc6 (>= 2.",
        "postinst",
        "conffiles",
    ] {
        assert!(
            control.contains(want),
            "dpkg-deb -I lacks {want}:\n{control}"
        );
    }
    let control_dir = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&agent_deb)
        .arg(control_dir.path().join("DEBIAN")))
    .unwrap();
    let conffiles = std::fs::read_to_string(control_dir.path().join("DEBIAN/conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/caas/agent.toml");
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&agent_deb)).unwrap();
    for want in [
        "usr/bin/caas-agent",
        "etc/caas/agent.toml",
        "lib/systemd/system/caas-agent.service",
        "usr/share/doc/caas-agent/copyright",
        "usr/share/doc/caas-agent/changelog.Debian.gz",
    ] {
        assert!(
            contents.contains(want),
            "dpkg-deb -c lacks {want}:\n{contents}"
        );
    }

    // The linters: no errors (the warnings left are explained in packaging/rpmlintrc and
    // packaging/lintian-overrides).
    let root = repo_root();
    let r1 = built.dir.join("r1");
    let rpms: Vec<PathBuf> = ["caas-agent-", "caas-central-", "caas-cli-"]
        .iter()
        .map(|p| built.file(1, p, ".rpm"))
        .collect();
    let out = run(Command::new("rpmlint")
        .arg("--rpmlintrc")
        .arg(root.join("packaging/rpmlintrc"))
        .args(&rpms))
    .unwrap();
    assert!(out.contains(" 0 errors"), "rpmlint:\n{out}");
    let debs: Vec<PathBuf> = ["caas-agent_", "caas-central_", "caas-cli_"]
        .iter()
        .map(|p| built.file(1, p, ".deb"))
        .collect();
    let out = run(Command::new("lintian")
        .args(["--fail-on", "error", "--suppress-tags-from-file"])
        .arg(root.join("packaging/lintian-overrides"))
        .args(&debs))
    .unwrap();
    assert!(
        !out.lines().any(|l| l.starts_with("E: ")),
        "lintian in {}:\n{out}",
        r1.display()
    );
}

/// A container booted with systemd as PID 1, on the host's network (so it reaches the test's
/// ZooKeeper on 127.0.0.1) and with the host's Docker socket. Removed on drop.
struct TestNode {
    name: String,
}

impl TestNode {
    fn boot(name: &str, packages: &Path) -> anyhow::Result<Self> {
        let image = run(&mut Command::new(
            repo_root().join("packaging/test-node/build"),
        ))?
        .trim()
        .to_string();
        let _ = Command::new("docker").args(["rm", "-f", name]).output();
        run(Command::new("docker")
            .args(["run", "-d", "--name", name, "--network", "host"])
            .args(["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE"])
            .args(["--security-opt", "seccomp=unconfined", "--cgroupns=host"])
            .args(["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"])
            .args([
                "--tmpfs",
                "/run",
                "--tmpfs",
                "/run/lock",
                "-e",
                "container=docker",
            ])
            .args(["--stop-signal", "SIGRTMIN+3"])
            .args(["-v", "/var/run/docker.sock:/var/run/docker.sock"])
            .arg("-v")
            .arg(format!("{}:/pkgs:ro", packages.display()))
            .args([&image, "/sbin/init"]))?;
        Ok(Self {
            name: name.to_string(),
        })
    }

    /// Runs `sh -c script` in the node; its stdout, or an error with both outputs.
    fn sh(&self, script: &str) -> anyhow::Result<String> {
        run(Command::new("docker").args(["exec", &self.name, "sh", "-c", script]))
    }

    /// `systemctl show` properties of `unit`.
    fn show(&self, unit: &str, props: &str) -> anyhow::Result<String> {
        self.sh(&format!("systemctl show -p {props} {unit}"))
    }

    async fn wait_booted(&self) -> anyhow::Result<()> {
        caas_tests::wait::until(
            "systemd in the test node to finish booting",
            BOOT,
            || async {
                // Non-zero exit while starting, or degraded: the answer is on stdout either way.
                let out = Command::new("docker")
                    .args(["exec", &self.name, "systemctl", "is-system-running"])
                    .output()?;
                let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
                Ok(matches!(state.as_str(), "running" | "degraded").then_some(()))
            },
        )
        .await
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Deb,
    Rpm,
}

impl Format {
    fn install(self, release: u32, packages: &[&str]) -> String {
        match self {
            // Debian's rpm database knows none of the Debian packages, so --nodeps; dpkg
            // lacks only the Docker engine package (the host's engine is used through its
            // socket), so --force-depends. Both say what they skipped.
            Format::Deb => format!(
                "dpkg --force-depends --force-confold -i {}",
                packages
                    .iter()
                    .map(|p| format!("/pkgs/r{release}/{p}_*.deb"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            // rpm -i for a first install, -U for an upgrade.
            Format::Rpm => format!(
                "rpm {} --nodeps {}",
                if release == 1 { "-i" } else { "-U" },
                packages
                    .iter()
                    .map(|p| format!("/pkgs/r{release}/{p}-{VERSION}-*.rpm"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }

    fn remove(self, package: &str) -> String {
        match self {
            Format::Deb => format!("dpkg -r {package}"),
            Format::Rpm => format!("rpm -e --nodeps {package}"),
        }
    }

    fn installed_version(self, package: &str) -> String {
        match self {
            Format::Deb => format!("dpkg-query -W -f='${{Version}}' {package}"),
            Format::Rpm => format!("rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {package}"),
        }
    }

    /// Where the upgrade leaves the new shipped config beside the edited one.
    fn new_config_suffix(self) -> &'static str {
        match self {
            Format::Deb => ".dpkg-dist",
            Format::Rpm => ".rpmnew",
        }
    }
}

/// Id and start time of every container of `node` (by the agent's caas.node label).
fn containers_of(node: &str) -> anyhow::Result<Vec<String>> {
    let ids = run(Command::new("docker").args([
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=caas.node={node}"),
    ]))?;
    let mut out = Vec::new();
    for id in ids.split_whitespace() {
        out.push(
            run(Command::new("docker").args([
                "inspect",
                "-f",
                "{{.Id}} {{.State.StartedAt}} {{.State.Running}}",
                id,
            ]))?
            .trim()
            .to_string(),
        );
    }
    out.sort();
    Ok(out)
}

async fn lifecycle(format: Format) {
    let built = built_packages().unwrap();
    let tag = match format {
        Format::Deb => "deb",
        Format::Rpm => "rpm",
    };
    let suffix = format!(".{tag}");
    let release1 = Built::release_of(&built.file(1, "caas-agent", &suffix));
    let release2 = Built::release_of(&built.file(2, "caas-agent", &suffix));
    assert!(release2.parse::<u32>().unwrap() > release1.parse::<u32>().unwrap());
    let node_id = test_node_id(&format!("pkg-{tag}"));
    let _sweeper = ContainerSweeper::new(std::slice::from_ref(&node_id));
    let zk = ZkServer::start().await.unwrap();
    let zk_client = caas_zk::connect(&caas_zk::ZkConfig::new(zk.connect_string()))
        .await
        .unwrap();
    let layout = ZkLayout::new("/caas").unwrap();
    let docker = caas_tests::images::docker().await.unwrap();
    let busybox = caas_tests::images::ensure_busybox(&docker).await.unwrap();

    let node = TestNode::boot(&format!("caas-test-node-{node_id}"), &built.dir).unwrap();
    let booted = Instant::now();
    node.wait_booted().await.unwrap();
    eprintln!("{tag}: test node booted in {:?}", booted.elapsed());

    // Install release 1 of all three packages: the agent's unit is enabled, not started.
    node.sh(&format!(
        "{} >/tmp/install.log 2>&1 || {{ cat /tmp/install.log; exit 1; }}",
        format.install(1, &["caas-agent", "caas-central", "caas-cli"])
    ))
    .unwrap();
    assert_eq!(
        node.sh("systemctl is-enabled caas-agent.service")
            .unwrap()
            .trim(),
        "enabled"
    );
    node.sh(
        "systemd-analyze verify /usr/lib/systemd/system/caas-agent.service \
         /usr/lib/systemd/system/caas-central.service",
    )
    .unwrap();
    for bin in ["caas-agent", "caas-central", "caas"] {
        let version = node.sh(&format!("{bin} --version")).unwrap();
        assert!(
            version.contains(VERSION) && version.contains("(git "),
            "{bin} --version: {version}"
        );
    }

    // Unedited: the agent fails once naming what to set, and systemd does not restart it.
    node.sh("systemctl start caas-agent.service").unwrap();
    let state = caas_tests::wait::until("the unedited agent to fail", CONVERGE, || async {
        let state = node.show(
            "caas-agent.service",
            "ActiveState,Result,ExecMainStatus,NRestarts",
        )?;
        Ok(state.contains("ActiveState=failed").then_some(state))
    })
    .await
    .unwrap();
    assert!(
        state.contains("ExecMainStatus=64") && state.contains("NRestarts=0"),
        "{state}"
    );
    let journal = node
        .sh("journalctl -u caas-agent.service --no-pager -o cat")
        .unwrap();
    assert!(
        journal.contains("invalid configuration: pool, zk: are required"),
        "{journal}"
    );
    node.sh("systemctl reset-failed caas-agent.service")
        .unwrap();

    // Edit the config as ops do: uncomment and set the required keys (and what this test
    // needs: a node id, a free port, a container name prefix of its own).
    let port = caas_tests::process::free_port();
    let pool = format!("pkg{tag}");
    node.sh(&format!(
        "sed -i -e 's|^# pool = .*|pool = \"{pool}\"|' -e 's|^# zk = .*|zk = \"{zk}\"|' \
         -e 's|^# node_id = .*|node_id = \"{node_id}\"|' \
         -e 's|^# listen = .*|listen = \"127.0.0.1:{port}\"|' \
         -e 's|^# name_prefix = .*|name_prefix = \"caas-{node_id}\"|' /etc/caas/agent.toml",
        zk = zk.connect_string()
    ))
    .unwrap();

    let started = Instant::now();
    node.sh("systemctl start caas-agent.service").unwrap();
    let registered = loop {
        if caas_tests::zk_io::registration(&zk_client, &layout, &node_id)
            .await
            .unwrap()
            .is_some()
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < CONVERGE,
            "not registered: {}",
            node.sh("journalctl -u caas-agent.service --no-pager -o cat | tail -n 30")
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    eprintln!("{tag}: systemctl start caas-agent -> registered in ZooKeeper: {registered:?}");

    // A workload.
    let spec: caas_api::WorkloadSpec = serde_json::from_value(serde_json::json!({
        "pool": pool, "name": "web", "image": busybox,
        "command": ["sh", "-c", "exec sleep 3600"],
    }))
    .unwrap();
    caas_tests::zk_io::put_assignment(&zk_client, &layout, &node_id, &Assignment::run(spec))
        .await
        .unwrap();
    let key = WorkloadKey::new(&pool, "web");
    caas_tests::wait::until("the workload running", CONVERGE, || async {
        let status = caas_tests::zk_io::status(&zk_client, &layout, &node_id, &key).await?;
        Ok(status.filter(|s| s.state == WorkloadState::Running))
    })
    .await
    .unwrap();
    let before = containers_of(&node_id).unwrap();
    assert!(before.len() >= 2, "sandbox and app: {before:?}");
    let pid_before = node.show("caas-agent.service", "MainPID").unwrap();

    // Upgrade to release 2, whose shipped agent.toml changed: the edited one stays, the new
    // one lands beside it, the agent restarts, the containers are untouched.
    node.sh(&format!(
        "{} >/tmp/upgrade.log 2>&1 || {{ cat /tmp/upgrade.log; exit 1; }}",
        format.install(2, &["caas-agent"])
    ))
    .unwrap();
    assert_eq!(
        node.sh(&format.installed_version("caas-agent"))
            .unwrap()
            .trim(),
        format!("{VERSION}-{release2}")
    );
    let config = node.sh("cat /etc/caas/agent.toml").unwrap();
    assert!(config.contains(&format!("pool = \"{pool}\"")), "{config}");
    let shipped = node
        .sh(&format!(
            "cat /etc/caas/agent.toml{}",
            format.new_config_suffix()
        ))
        .unwrap();
    assert!(shipped.contains(NEXT_RELEASE_NOTE), "{shipped}");
    let restarted = caas_tests::wait::until("the agent restarted", CONVERGE, || async {
        let state = node.show("caas-agent.service", "MainPID,ActiveState")?;
        let pid = state
            .lines()
            .find(|l| l.starts_with("MainPID="))
            .unwrap_or("");
        Ok((state.contains("ActiveState=active")
            && pid != "MainPID=0"
            && !pid_before.contains(pid))
        .then_some(state))
    })
    .await
    .unwrap();
    caas_tests::wait::until("the upgraded agent registered", CONVERGE, || async {
        caas_tests::zk_io::registration(&zk_client, &layout, &node_id).await
    })
    .await
    .unwrap();
    caas_tests::wait::until(
        "the workload running after the upgrade",
        CONVERGE,
        || async {
            let status = caas_tests::zk_io::status(&zk_client, &layout, &node_id, &key).await?;
            Ok(status.filter(|s| s.state == WorkloadState::Running))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        containers_of(&node_id).unwrap(),
        before,
        "the upgrade touched containers ({restarted})"
    );

    // Removal stops the agent (it deregisters) and leaves the containers running.
    node.sh(&format!(
        "{} >/tmp/remove.log 2>&1 || {{ cat /tmp/remove.log; exit 1; }}",
        format.remove("caas-agent")
    ))
    .unwrap();
    caas_tests::wait::until("the removed agent deregistered", CONVERGE, || async {
        Ok(
            caas_tests::zk_io::registration(&zk_client, &layout, &node_id)
                .await?
                .is_none()
                .then_some(()),
        )
    })
    .await
    .unwrap();
    let active = Command::new("docker")
        .args([
            "exec",
            &node.name,
            "systemctl",
            "is-active",
            "caas-agent.service",
        ])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&active.stdout).trim(), "active");
    assert_eq!(containers_of(&node_id).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deb_installs_starts_upgrades_and_removes_under_systemd() {
    lifecycle(Format::Deb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_installs_starts_upgrades_and_removes_under_systemd() {
    lifecycle(Format::Rpm).await;
}
