//! A multi-node world for central tests: ZooKeeper and N central instances in the fabric
//! namespace, one real agent per node namespace, an HTTP client and the `caas` CLI that run
//! inside the fabric, and cleanup of all of it on drop.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use caas_api::ZkLayout;
use caas_zk::zookeeper_client::Client;

use crate::agent::{test_node_id, AgentOptions, AgentProcess, ContainerSweeper};
use crate::netns::{node_ip, NetnsExecutor, Topology, FABRIC_IP};
use crate::process::ChildGuard;
use crate::zk_server::ZkServer;

/// One node of the cluster: its pool and labels.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub pool: String,
    pub labels: Vec<String>,
    /// The node runs its own Docker engine (in its namespace, with its own images and
    /// certs.d), as production nodes do; otherwise it shares the host's.
    pub own_engine: bool,
    /// Extra lines for the node's agent.toml.
    pub extra_config: String,
}

impl NodeSpec {
    pub fn new(pool: &str, labels: &[&str]) -> Self {
        Self {
            pool: pool.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            own_engine: false,
            extra_config: String::new(),
        }
    }

    /// Adds lines to the node's agent.toml (e.g. `image_prune = "keep:0"`).
    pub fn with_config(mut self, lines: &str) -> Self {
        self.extra_config.push_str(lines);
        self.extra_config.push('\n');
        self
    }

    /// The node gets its own Docker engine (`crate::dockerd::NodeEngine`).
    pub fn with_own_engine(mut self) -> Self {
        self.own_engine = true;
        self
    }
}

/// A running caas-central.
#[derive(Debug)]
pub struct CentralProcess {
    pub url: String,
    args: Vec<String>,
    netns: String,
    child: Option<ChildGuard>,
    log: PathBuf,
}

impl CentralProcess {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let envs = vec![(
            "CAAS_LOG".to_string(),
            "info,caas_central=debug".to_string(),
        )];
        self.child = Some(ChildGuard::spawn(
            "central",
            Some(&self.netns),
            &crate::binaries::central()?,
            &self.args,
            &envs,
            &self.log,
        )?);
        Ok(())
    }
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        self.child
            .as_ref()
            .context("central not running")?
            .signal(sig)
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// The running central's pid (its memory is read from /proc by the console tests).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(ChildGuard::pid)
    }
}

/// Output of one CLI run.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub struct Cluster {
    pub agents: Vec<AgentProcess>,
    pub centrals: Vec<CentralProcess>,
    _sweeper: ContainerSweeper,
    /// The engines of nodes that have their own (by node index, 0-based); dropped after the
    /// agents (fields drop in order).
    pub engines: Vec<Option<crate::dockerd::NodeEngine>>,
    pub zk_client: Client,
    pub fabric: NetnsExecutor,
    pub zk: ZkServer,
    pub topo: Topology,
    pub dir: tempfile::TempDir,
    pub layout: ZkLayout,
    pub node_ids: Vec<String>,
    pub admin_token: String,
    pub busybox: String,
}

impl Cluster {
    /// Starts ZooKeeper, `centrals` central instances (lost-node grace `grace_secs`) and one
    /// agent per node spec, and waits until central lists every node.
    pub async fn start(
        name: &str,
        nodes: &[NodeSpec],
        centrals: usize,
        grace_secs: u64,
    ) -> anyhow::Result<Self> {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let docker = crate::images::docker().await?;
        let busybox = crate::images::ensure_busybox(&docker).await?;
        let node_ids: Vec<String> = (1..=nodes.len())
            .map(|i| test_node_id(&format!("{name}{i}")))
            .collect();
        let sweeper = ContainerSweeper::new(&node_ids);
        let topo = Topology::create(nodes.len())?;
        let zk = ZkServer::start_in(&topo.fabric, IpAddr::V4(FABRIC_IP)).await?;
        let fabric = NetnsExecutor::enter(&topo.fabric)?;
        let servers = zk.connect_string();
        let zk_client = fabric
            .run(async move { caas_zk::connect(&caas_zk::ZkConfig::new(servers)).await })
            .await??;
        let dir = tempfile::Builder::new().prefix("caas-cluster-").tempdir()?;
        let admin_token = format!("admin-{}", hex::encode(rand::random::<[u8; 16]>()));
        let token_file = dir.path().join("admin.token");
        std::fs::write(&token_file, &admin_token)?;
        // The token central sends agents for exec and deploy.
        let agent_token_file = dir.path().join("agent.token");
        std::fs::write(
            &agent_token_file,
            format!("agent-{}", hex::encode(rand::random::<[u8; 16]>())),
        )?;
        let mut central_procs = Vec::new();
        for i in 0..centrals {
            let listen = SocketAddr::new(IpAddr::V4(FABRIC_IP), 8080 + i as u16);
            let args = vec![
                "--zk".into(),
                zk.connect_string(),
                "--listen".into(),
                listen.to_string(),
                "--admin-token-file".into(),
                token_file.display().to_string(),
                "--agent-token-file".into(),
                agent_token_file.display().to_string(),
                "--lost-grace".into(),
                grace_secs.to_string(),
            ];
            let mut c = CentralProcess {
                url: format!("http://{listen}"),
                args,
                netns: topo.fabric.clone(),
                child: None,
                log: dir.path().join(format!("central{i}.log")),
            };
            c.spawn()?;
            central_procs.push(c);
        }
        let mut engines = Vec::new();
        for (i, spec) in nodes.iter().enumerate() {
            engines.push(if spec.own_engine {
                Some(crate::dockerd::NodeEngine::start(topo.node(i + 1), dir.path()).await?)
            } else {
                None
            });
        }
        let mut agents = Vec::new();
        for (i, spec) in nodes.iter().enumerate() {
            let engine_config = match &engines[i] {
                Some(engine) => format!(
                    "docker_socket = \"{}\"\ndocker_certs_dir = \"{}\"\n",
                    engine.socket().display(),
                    engine.certs_dir().display()
                ),
                None => String::new(),
            };
            agents.push(AgentProcess::start(AgentOptions {
                node_id: node_ids[i].clone(),
                pool: spec.pool.clone(),
                zk: zk.connect_string(),
                zk_root: "/caas".into(),
                netns: Some(topo.node(i + 1).to_string()),
                listen: SocketAddr::new(IpAddr::V4(node_ip(i + 1)), 7070),
                underlay: Some(node_ip(i + 1).to_string()),
                labels: spec.labels.clone(),
                // The fabric link is each node's uplink: vlan networks would ride on it (this
                // kernel has no 802.1Q, so the agents report that they cannot).
                extra_config: format!(
                    "control_token_file = \"{}\"\nuplink = \"{}\"\n{engine_config}{}",
                    agent_token_file.display(),
                    Topology::NODE_LINK,
                    spec.extra_config
                ),
            })?);
        }
        let cluster = Self {
            agents,
            centrals: central_procs,
            _sweeper: sweeper,
            engines,
            zk_client,
            fabric,
            zk,
            topo,
            dir,
            layout: ZkLayout::new("/caas")?,
            node_ids,
            admin_token,
            busybox,
        };
        for c in 0..centrals {
            let expected = nodes.len();
            crate::wait::until(
                "central sees every node",
                Duration::from_secs(60),
                || async {
                    let (code, body) = cluster
                        .request(c, "GET", "/v1/nodes", None, &cluster.admin_token)
                        .await?;
                    let nodes: Vec<serde_json::Value> = if code == 200 {
                        serde_json::from_str(&body)?
                    } else {
                        Vec::new()
                    };
                    let usable = nodes
                        .iter()
                        .filter(|n| n["liveness"] == "ready" && n["engine_ready"] == true)
                        .count();
                    Ok((usable == expected).then_some(()))
                },
            )
            .await
            .with_context(|| format!("central {c} log:\n{}", cluster.centrals[c].log()))?;
        }
        // The leader records every node in the inventory shortly after it registers; wait for
        // that so tests start from a settled ZooKeeper tree.
        let expected = cluster.node_ids.len();
        crate::wait::until(
            "every node in the inventory",
            Duration::from_secs(60),
            || async {
                let kids = cluster
                    .zk_client
                    .list_children(&cluster.layout.inventory_root())
                    .await
                    .unwrap_or_default();
                Ok((kids.len() == expected).then_some(()))
            },
        )
        .await?;
        Ok(cluster)
    }

    /// An HTTP request to central `c` from inside the fabric; returns (status, body).
    pub async fn request(
        &self,
        c: usize,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        token: &str,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.centrals[c].url);
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let token = token.to_string();
        self.fabric
            .run(async move {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(30))
                    .build()?;
                let mut req = client.request(method, &url).bearer_auth(token);
                if let Some(b) = body {
                    req = req
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&b)?);
                }
                let resp = req.send().await?;
                let code = resp.status().as_u16();
                Ok::<_, anyhow::Error>((code, resp.text().await?))
            })
            .await?
    }

    /// Runs the `caas` CLI inside the fabric against central `c`.
    pub async fn cli(&self, c: usize, token: &str, args: &[&str]) -> anyhow::Result<CliOutput> {
        let binary = crate::binaries::cli()?;
        let out = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.topo.fabric])
            .arg(binary)
            .args(args)
            .env("CAAS_URL", &self.centrals[c].url)
            .env("CAAS_TOKEN", token)
            .output()
            .await?;
        Ok(CliOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Creates a pool through central 0; returns its token.
    /// A container as central 0 shows it to `token`.
    pub async fn container(
        &self,
        token: &str,
        pool: &str,
        name: &str,
    ) -> anyhow::Result<caas_api::central::ContainerView> {
        let path = format!("/v1/pools/{pool}/containers/{name}");
        let (code, body) = self.request(0, "GET", &path, None, token).await?;
        anyhow::ensure!(code == 200, "GET {path}: {code} {body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// Waits until the container runs; returns its view.
    pub async fn wait_running(
        &self,
        token: &str,
        pool: &str,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<caas_api::central::ContainerView> {
        crate::wait::until(&format!("{name} running"), timeout, || async {
            let v = self.container(token, pool, name).await?;
            let state = v.status.as_ref().map(|s| s.state);
            Ok((state == Some(caas_api::WorkloadState::Running)).then_some(v))
        })
        .await
    }

    /// Waits until the container's status reports `code` as its last error; returns its view.
    /// A timeout names the last error seen instead.
    pub async fn wait_last_error(
        &self,
        token: &str,
        pool: &str,
        name: &str,
        code: &str,
        timeout: Duration,
    ) -> anyhow::Result<caas_api::central::ContainerView> {
        crate::wait::until(&format!("{name} failing with {code}"), timeout, || async {
            let v = self.container(token, pool, name).await?;
            match v.status.as_ref().and_then(|s| s.last_error.clone()) {
                Some(e) if e.code == code => Ok(Some(v)),
                Some(e) => Err(anyhow::anyhow!("last_error {}: {}", e.code, e.message)),
                None => Err(anyhow::anyhow!("no error; status {:?}", v.status)),
            }
        })
        .await
    }

    pub async fn create_pool(&self, name: &str) -> anyhow::Result<String> {
        let (code, body) = self
            .request(
                0,
                "POST",
                "/v1/pools",
                Some(serde_json::json!({"name": name})),
                &self.admin_token,
            )
            .await?;
        anyhow::ensure!(code == 201, "creating pool {name}: {code} {body}");
        let v: serde_json::Value = serde_json::from_str(&body)?;
        Ok(v["token"].as_str().context("no token")?.to_string())
    }

    /// A dump of every znode under the root (path -> data), to prove a refused request wrote nothing.
    pub async fn dump(&self) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u8>>> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![self.layout.root().to_string()];
        while let Some(path) = stack.pop() {
            // Ephemeral registrations and status change on their own; they are not central's writes.
            if path.starts_with(&self.layout.nodes())
                || path.starts_with(&self.layout.status_root())
                || path.starts_with(&self.layout.leader())
            {
                continue;
            }
            let Ok((data, _)) = self.zk_client.get_data(&path).await else {
                continue;
            };
            out.insert(path.clone(), data);
            for child in self
                .zk_client
                .list_children(&path)
                .await
                .unwrap_or_default()
            {
                stack.push(format!("{path}/{child}"));
            }
        }
        Ok(out)
    }
}
