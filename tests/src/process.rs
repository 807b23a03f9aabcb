//! Child processes the harness starts (ZooKeeper, agents, central). They are killed when their
//! guard drops (also on panic) and, through `setpriv --pdeathsig KILL`, when the test process
//! itself dies, so nothing outlives a test run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running child process owned by a test. Dropping it kills the process and waits for it.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns `program args` with stdout and stderr appended to `log`. When `netns` is given the
    /// process runs inside that network namespace (`ip netns exec`).
    pub fn spawn(
        name: &str,
        netns: Option<&str>,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c.arg("setpriv");
                c
            }
            None => Command::new("setpriv"),
        };
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(program)
            .args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("spawning {name} ({}): {e}", program.display()))?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the process log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends a signal (e.g. SIGTERM, SIGKILL) without waiting.
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow::anyhow!("{} is not running", self.name))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)?;
        Ok(())
    }

    /// Waits for the process to exit and returns its exit code (None if killed by a signal).
    pub fn wait(&mut self) -> anyhow::Result<Option<i32>> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("{} already reaped", self.name))?;
        let status = child.wait()?;
        self.child = None;
        Ok(status.code())
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free TCP port on the loopback interface (racy by nature; callers retry on bind failure).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
