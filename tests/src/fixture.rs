//! A one-node world for agent tests: a fabric and a node namespace, ZooKeeper in the fabric, a
//! real `caas-agent` in the node namespace, a ZooKeeper client and an HTTP client that live in
//! those namespaces, the busybox test image, and cleanup of everything on drop.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bollard::Docker;
use caas_api::{Assignment, NodeInfo, WorkloadKey, WorkloadSpec, WorkloadStatus, ZkLayout};
use caas_zk::zookeeper_client::{Client, Error as ZkError, Stat};

use crate::agent::{test_node_id, AgentOptions, AgentProcess, ContainerSweeper};
use crate::netns::{node_ip, NetnsExecutor, Topology, FABRIC_IP};
use crate::zk_server::ZkServer;

/// Port of the agent API inside the node namespace.
pub const AGENT_PORT: u16 = 7070;

/// Fields drop in declaration order: the agent dies first, then its containers are removed,
/// then ZooKeeper stops and the namespaces go.
pub struct NodeFixture {
    pub agent: AgentProcess,
    _sweeper: ContainerSweeper,
    pub zk_client: Client,
    pub node_ns: NetnsExecutor,
    pub fabric: NetnsExecutor,
    pub zk: ZkServer,
    pub topo: Topology,
    pub docker: Docker,
    pub busybox: String,
    pub layout: ZkLayout,
    pub node_id: String,
    pub pool: String,
    /// The agent's control token (central's agent token), sent by `agent_get`.
    pub agent_token: String,
    _token_dir: tempfile::TempDir,
}

impl NodeFixture {
    /// Starts everything; `extra_config` is appended to the agent's TOML file.
    pub async fn start(name: &str, extra_config: &str) -> anyhow::Result<Self> {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let docker = crate::images::docker().await?;
        let busybox = crate::images::ensure_busybox(&docker).await?;
        let node_id = test_node_id(name);
        let sweeper = ContainerSweeper::new(std::slice::from_ref(&node_id));
        let topo = Topology::create(1)?;
        let zk = ZkServer::start_in(&topo.fabric, IpAddr::V4(FABRIC_IP)).await?;
        let fabric = NetnsExecutor::enter(&topo.fabric)?;
        let node_ns = NetnsExecutor::enter(topo.node(1))?;
        let servers = zk.connect_string();
        let zk_client = fabric
            .run(async move {
                let mut config = caas_zk::ZkConfig::new(servers);
                config.session_timeout = Duration::from_secs(10);
                caas_zk::connect(&config).await
            })
            .await??;
        let layout = ZkLayout::new("/caas")?;
        let pool = "pool1".to_string();
        let token_dir = tempfile::Builder::new()
            .prefix("caas-node-token-")
            .tempdir()?;
        let agent_token = format!("agent-token-{node_id}");
        let token_file = token_dir.path().join("control.token");
        std::fs::write(&token_file, &agent_token)?;
        let extra_config = format!(
            "control_token_file = \"{}\"\n{extra_config}",
            token_file.display()
        );
        let agent = AgentProcess::start(AgentOptions {
            node_id: node_id.clone(),
            pool: pool.clone(),
            zk: zk.connect_string(),
            zk_root: layout.root().to_string(),
            netns: Some(topo.node(1).to_string()),
            listen: SocketAddr::new(IpAddr::V4(node_ip(1)), AGENT_PORT),
            underlay: Some(node_ip(1).to_string()),
            labels: vec!["rack=r1".into()],
            extra_config,
        })?;
        let fixture = Self {
            agent,
            _sweeper: sweeper,
            zk_client,
            node_ns,
            fabric,
            zk,
            topo,
            docker,
            busybox,
            layout,
            node_id,
            pool,
            agent_token,
            _token_dir: token_dir,
        };
        Ok(fixture)
    }

    /// A spec in this fixture's pool running busybox `sh -c script`.
    pub fn spec(&self, name: &str, script: &str) -> WorkloadSpec {
        serde_json::from_value(serde_json::json!({
            "pool": self.pool, "name": name, "image": self.busybox,
            "command": ["sh", "-c", script],
        }))
        .unwrap_or_else(|e| panic!("test spec: {e}"))
    }

    pub fn key(&self, name: &str) -> WorkloadKey {
        WorkloadKey::new(&self.pool, name)
    }

    /// Writes (creates or replaces) an assignment znode for this node.
    pub async fn put_assignment(&self, assignment: &Assignment) -> anyhow::Result<()> {
        crate::zk_io::put_assignment(&self.zk_client, &self.layout, &self.node_id, assignment).await
    }

    /// Writes raw bytes as assignment znode `name` (to test unparsable input).
    pub async fn put_raw(&self, name: &str, data: &[u8]) -> anyhow::Result<()> {
        let path = format!("{}/{name}", self.layout.assign_dir(&self.node_id));
        crate::zk_io::put(&self.zk_client, &path, data).await
    }

    pub async fn assign(&self, spec: &WorkloadSpec) -> anyhow::Result<()> {
        self.put_assignment(&Assignment::run(spec.clone())).await
    }

    pub async fn unassign(&self, name: &str) -> anyhow::Result<()> {
        let path = self.layout.assignment(&self.node_id, &self.key(name));
        match self.zk_client.delete(&path, None).await {
            Ok(()) | Err(ZkError::NoNode) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn status(&self, name: &str) -> anyhow::Result<Option<WorkloadStatus>> {
        crate::zk_io::status(
            &self.zk_client,
            &self.layout,
            &self.node_id,
            &self.key(name),
        )
        .await
    }

    /// Waits until the status of `name` satisfies `pred`.
    pub async fn wait_status(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&WorkloadStatus) -> bool,
    ) -> anyhow::Result<WorkloadStatus> {
        let result = crate::wait::until(what, timeout, || async {
            Ok(self.status(name).await?.filter(|s| pred(s)))
        })
        .await;
        match result {
            Ok(status) => Ok(status),
            Err(e) => {
                let now = self.status(name).await.ok().flatten();
                Err(e.context(format!(
                    "status now: {now:?}\nagent log:\n{}",
                    self.agent_log_tail(40)
                )))
            }
        }
    }

    pub async fn node_registration(&self) -> anyhow::Result<Option<(NodeInfo, Stat)>> {
        crate::zk_io::registration(&self.zk_client, &self.layout, &self.node_id).await
    }

    /// Containers of this node (all states) as (name, id, StartedAt).
    pub async fn containers(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        let mut filters = std::collections::HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("caas.node={}", self.node_id)],
        );
        let list = self
            .docker
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await?;
        let mut out = Vec::new();
        for c in list {
            let id = c.id.unwrap_or_default();
            let inspect = self.docker.inspect_container(&id, None).await?;
            let started = inspect.state.and_then(|s| s.started_at).unwrap_or_default();
            let name = inspect
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            out.push((name, id, started));
        }
        out.sort();
        Ok(out)
    }

    /// GET on the agent API from inside the node namespace, with central's token.
    pub async fn agent_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        self.node_ns
            .http_get_as(
                &format!("{}{path}", self.agent.url()),
                Some(&self.agent_token),
            )
            .await
    }

    /// GET on the agent API with no token (or a wrong one).
    pub async fn agent_get_as(
        &self,
        path: &str,
        bearer: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        self.node_ns
            .http_get_as(&format!("{}{path}", self.agent.url()), bearer)
            .await
    }

    pub fn agent_log_tail(&self, lines: usize) -> String {
        let log = self.agent.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Runs `docker exec <container> cmd...` and returns stdout.
    pub fn docker_exec(&self, container: &str, cmd: &[&str]) -> anyhow::Result<String> {
        let out = std::process::Command::new("docker")
            .arg("exec")
            .arg(container)
            .args(cmd)
            .output()?;
        if !out.status.success() {
            anyhow::bail!(
                "docker exec {container} {cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
