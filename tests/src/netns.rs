//! Network namespaces for multi-node tests: a `fabric` namespace holding a bridge (where
//! ZooKeeper and central live) and node namespaces `n1..nN`, each with a veth into the fabric
//! and an underlay address from 198.18.0.0/24. Nothing is routed or NATed out: the namespaces
//! have no default route and no link to the host's network.
//!
//! Names carry the test process id (`c<pid>-...`), so a later run can sweep namespaces whose
//! creator died without cleaning up.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;

use anyhow::{bail, Context};

/// Address of the fabric bridge (ZooKeeper and central listen here).
pub const FABRIC_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// Underlay address of node `i` (1-based): 198.18.0.(10+i).
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 10 + i as u8)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ns_ip(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    ip(&full)
}

/// A fabric plus `n` node namespaces; deleted on drop.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    pub fabric: String,
    pub nodes: Vec<String>,
}

impl Topology {
    /// Creates the fabric and `n` nodes (n <= 200).
    pub fn create(n: usize) -> anyhow::Result<Self> {
        sweep_stale();
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let seq = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Short: interface names built from it must fit 15 characters.
        let prefix = format!("c{}x{seq}", std::process::id());
        let mut topo = Self {
            prefix: prefix.clone(),
            fabric: format!("{prefix}-fabric"),
            nodes: Vec::new(),
        };
        ip(&["netns", "add", &topo.fabric])?;
        ns_ip(&topo.fabric, &["link", "set", "lo", "up"])?;
        ns_ip(&topo.fabric, &["link", "add", "br0", "type", "bridge"])?;
        ns_ip(
            &topo.fabric,
            &["addr", "add", &format!("{FABRIC_IP}/24"), "dev", "br0"],
        )?;
        ns_ip(&topo.fabric, &["link", "set", "br0", "up"])?;
        for i in 1..=n {
            topo.add_node(i)?;
        }
        Ok(topo)
    }

    fn add_node(&mut self, i: usize) -> anyhow::Result<()> {
        let ns = format!("{}-n{i}", self.prefix);
        ip(&["netns", "add", &ns])?;
        self.nodes.push(ns.clone());
        let outer = format!("{}f{i}", self.prefix);
        let inner = format!("{}n{i}", self.prefix);
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ])?;
        ip(&["link", "set", &outer, "netns", &self.fabric])?;
        ip(&["link", "set", &inner, "netns", &ns])?;
        ns_ip(
            &self.fabric,
            &["link", "set", &outer, "master", "br0", "up"],
        )?;
        ns_ip(&ns, &["link", "set", "lo", "up"])?;
        ns_ip(&ns, &["link", "set", &inner, "name", "eth0"])?;
        ns_ip(
            &ns,
            &["addr", "add", &format!("{}/24", node_ip(i)), "dev", "eth0"],
        )?;
        ns_ip(&ns, &["link", "set", "eth0", "up"])?;
        Ok(())
    }

    /// Namespace of node `i` (1-based).
    pub fn node(&self, i: usize) -> &str {
        &self.nodes[i - 1]
    }

    /// The name of every node's interface into the fabric, inside its namespace.
    pub const NODE_LINK: &'static str = "eth0";

    /// Cuts node `i` off the fabric (link down) or reconnects it.
    pub fn set_node_link(&self, i: usize, up: bool) -> anyhow::Result<()> {
        let outer = format!("{}f{i}", self.prefix);
        ns_ip(
            &self.fabric,
            &["link", "set", &outer, if up { "up" } else { "down" }],
        )
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(std::iter::once(&self.fabric)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Deletes namespaces left by test processes that no longer exist.
pub fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix('c') else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('x') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// A tokio runtime on a thread that lives inside a network namespace: every socket its tasks
/// open (ZooKeeper clients, HTTP requests) is in that namespace, while the test itself stays
/// in the host namespace.
#[derive(Debug)]
pub struct NetnsExecutor {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NetnsExecutor {
    pub fn enter(netns: &str) -> anyhow::Result<Self> {
        let path = format!("/run/netns/{netns}");
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{netns}"))
            .spawn(move || {
                let setup = nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| anyhow::anyhow!("setns: {e}"))
                    .and_then(|()| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(Into::into)
                    });
                match setup {
                    Ok(rt) => {
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async move {
                            let _ = stop_rx.await;
                        });
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })?;
        let handle = handle_rx.recv().context("netns thread died")??;
        Ok(Self {
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Runs `fut` inside the namespace and returns its output.
    pub async fn run<F, T>(&self, fut: F) -> anyhow::Result<T>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.handle
            .spawn(fut)
            .await
            .context("task in netns panicked")
    }

    /// GET `url` from inside the namespace; returns (status, body).
    pub async fn http_get(&self, url: &str) -> anyhow::Result<(u16, String)> {
        self.http_get_as(url, None).await
    }

    /// GET with `bearer` as the bearer token, if any.
    pub async fn http_get_as(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        let url = url.to_string();
        let bearer = bearer.map(str::to_string);
        self.run(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(10))
                .build()?;
            let mut request = client.get(&url);
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            let resp = request.send().await?;
            let status = resp.status().as_u16();
            Ok::<_, anyhow::Error>((status, resp.text().await?))
        })
        .await?
    }
}

impl Drop for NetnsExecutor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
