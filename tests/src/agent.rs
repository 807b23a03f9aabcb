//! Runs real `caas-agent` processes for tests (optionally inside a node's network namespace),
//! and removes every container a test's agents created when the test ends, even on panic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::process::ChildGuard;

/// How to start one agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub node_id: String,
    pub pool: String,
    pub zk: String,
    pub zk_root: String,
    /// Run inside this network namespace (None: the host's).
    pub netns: Option<String>,
    pub listen: SocketAddr,
    pub underlay: Option<String>,
    pub labels: Vec<String>,
    /// Extra lines for the TOML config file.
    pub extra_config: String,
}

/// A running agent; killed on drop.
#[derive(Debug)]
pub struct AgentProcess {
    pub options: AgentOptions,
    child: Option<ChildGuard>,
    config_path: PathBuf,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl AgentProcess {
    pub fn start(options: AgentOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("caas-agent-").tempdir()?;
        let config_path = dir.path().join("agent.toml");
        // Tests resync every second unless the extra config says otherwise (benchmarks run
        // the production default).
        let resync = if options.extra_config.contains("resync_interval_ms") {
            ""
        } else {
            "resync_interval_ms = 1000\n"
        };
        let config = format!(
            "node_id = \"{}\"\npool = \"{}\"\nzk = \"{}\"\nzk_root = \"{}\"\nlisten = \"{}\"\n\
             name_prefix = \"{}\"\nzk_session_timeout_ms = 2000\n{resync}stop_grace_secs = 2\n{}",
            options.node_id,
            options.pool,
            options.zk,
            options.zk_root,
            options.listen,
            container_prefix(&options.node_id),
            options.extra_config,
        );
        std::fs::write(&config_path, config)?;
        let log_path = dir.path().join("agent.log");
        let mut agent = Self {
            options,
            child: None,
            config_path,
            log_path,
            _dir: dir,
        };
        agent.spawn()?;
        Ok(agent)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let binary = crate::binaries::agent()?;
        let mut args = vec![
            "--config".to_string(),
            self.config_path.display().to_string(),
        ];
        if let Some(u) = &self.options.underlay {
            args.extend(["--underlay".to_string(), u.clone()]);
        }
        for l in &self.options.labels {
            args.extend(["-l".to_string(), l.clone()]);
        }
        let envs = vec![("CAAS_LOG".to_string(), "info,caas_agent=debug".to_string())];
        // Only the network namespace is entered (`nsenter --net`), not a new mount namespace
        // as `ip netns exec` makes: that one remounts /sys for the namespace, which hides the
        // host's cgroup hierarchies under /sys/fs/cgroup that the stats collector reads. A
        // real agent runs in the host's namespaces.
        let (program, args) = match self.options.netns.as_deref() {
            Some(ns) => {
                let mut wrapped = vec![
                    format!("--net=/run/netns/{ns}"),
                    "--".to_string(),
                    binary.display().to_string(),
                ];
                wrapped.extend(args);
                (PathBuf::from("nsenter"), wrapped)
            }
            None => (binary, args),
        };
        let child = ChildGuard::spawn(
            &format!("agent {}", self.options.node_id),
            None,
            &program,
            &args,
            &envs,
            &self.log_path,
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, no cleanup by the agent.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> anyhow::Result<Option<i32>> {
        let mut c = self.child.take().context("agent not running")?;
        c.signal(nix::sys::signal::Signal::SIGTERM)?;
        c.wait()
    }

    /// Waits for the agent to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self) -> anyhow::Result<Option<i32>> {
        let mut c = self.child.take().context("agent not running")?;
        c.wait()
    }

    /// Starts the agent again with the same config.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }

    /// Process id of the running agent (None after it was killed or terminated).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(ChildGuard::pid)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(ChildGuard::is_running)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Base URL of the agent API.
    pub fn url(&self) -> String {
        format!("http://{}", self.options.listen)
    }
}

/// Docker name prefix for a test node's containers (keeps parallel tests apart).
pub fn container_prefix(node_id: &str) -> String {
    format!("caas-{node_id}")
}

/// A node id unique to this test process: `t<pid>-<name>`.
pub fn test_node_id(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

/// Removes, on drop, every container labelled with one of the given node ids, plus containers
/// of test processes that died without cleaning up.
#[derive(Debug, Default)]
pub struct ContainerSweeper {
    pub node_ids: Vec<String>,
}

impl ContainerSweeper {
    pub fn new(node_ids: &[String]) -> Self {
        sweep_dead_test_containers();
        Self {
            node_ids: node_ids.to_vec(),
        }
    }
}

fn remove_where(filter: &str) {
    let Ok(out) = Command::new("docker")
        .args(["ps", "-aq", "--filter", filter])
        .output()
    else {
        return;
    };
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&ids)
            .output();
    }
}

impl Drop for ContainerSweeper {
    fn drop(&mut self) {
        for node in &self.node_ids {
            remove_where(&format!("label=caas.node={node}"));
        }
    }
}

/// Removes containers whose `caas.node` label names a test process that no longer exists.
pub fn sweep_dead_test_containers() {
    let Ok(out) = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=caas.node",
            "--format",
            "{{.Label \"caas.node\"}}",
        ])
        .output()
    else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for node in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = node.strip_prefix('t') else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() && seen.insert(node.to_string())
        {
            remove_where(&format!("label=caas.node={node}"));
        }
    }
}
