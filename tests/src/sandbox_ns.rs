//! Throwaway "sandboxes" for network benchmarks: a named network namespace with a `sleep`
//! process in it (its pid is what the agent's wiring takes). Both go on drop.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A named namespace with a `sleep` in it.
#[derive(Debug)]
pub struct SandboxNs {
    pub name: String,
    child: std::process::Child,
}

impl SandboxNs {
    /// Creates namespace `name` (use a `c<pid>x...` name so `netns::sweep_stale` finds
    /// leftovers) and starts `sleep` inside it.
    pub fn create(name: String) -> anyhow::Result<Self> {
        let out = Command::new("ip").args(["netns", "add", &name]).output()?;
        if !out.status.success() {
            bail!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &name, "sleep", "3600"])
            .spawn()
            .context("starting the sandbox's sleep")?;
        // `ip netns exec` execs the command: once /proc/<pid>/ns/net differs from ours, the
        // process is in the sandbox.
        let ours = std::fs::read_link("/proc/thread-self/ns/net")?;
        let path = format!("/proc/{}/ns/net", child.id());
        let start = Instant::now();
        while std::fs::read_link(&path).ok().is_none_or(|l| l == ours) {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
                bail!("sandbox {name} never entered its namespace");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Self { name, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SandboxNs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
