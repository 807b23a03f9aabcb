//! The agent's main loop: open the ZooKeeper session, register the node, watch this node's
//! assignments, run reconcile passes on every change and on a timer, publish status, serve the
//! HTTP API, and on cancellation deregister and stop, leaving containers running.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use caas_api::{Assignment, WorkloadKey, WorkloadStatus};
use caas_zk::zookeeper_client::{Client, Error as ZkError};
use caas_zk::{
    CacheOptions, ChildMap, ChildrenCache, EphemeralOptions, EphemeralState, PersistentEphemeral,
    ZkConfig, ZkSession,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AgentConfig;
use crate::network::netlink::NetlinkBackend;
use crate::network::remote::{NetworkRef, RemoteView};
use crate::network::wiring::{NetworkDesc, NodeNetworks};
use crate::network::Wiring;
use crate::reconcile::{DesiredState, Reconciler, ReconcilerConfig};
use crate::runtime::{ContainerRuntime, LazyDocker};
use crate::sandbox_image::{data_image_tag, ensure_sandbox_image, sandbox_image_tag};
use crate::status_sync::StatusWriter;
use crate::view::AgentView;

/// Longest a single ZooKeeper call may hold up a reconcile pass. While disconnected the client
/// queues requests until it reconnects; the pass must go on with what it knows instead.
const ZK_CALL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("ZooKeeper setup: {0}")]
    Zk(String),
    #[error("encoding the node registration: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Runs the agent on the local Docker engine until `cancel` fires.
pub async fn run(
    config: AgentConfig,
    listener: TcpListener,
    cancel: CancellationToken,
) -> Result<(), AgentError> {
    let runtime = Arc::new(LazyDocker::new(&config.docker_socket));
    run_with(config, listener, runtime, cancel).await
}

/// Runs the agent on the given engine until `cancel` fires.
pub async fn run_with<R: ContainerRuntime>(
    config: AgentConfig,
    listener: TcpListener,
    runtime: Arc<R>,
    cancel: CancellationToken,
) -> Result<(), AgentError> {
    let view = AgentView::default();
    let tracker = TaskTracker::new();
    let work = cancel.child_token();

    let routes = crate::http::routes(
        view.clone(),
        runtime.clone(),
        config.node_id.clone(),
        crate::control::ControlOptions {
            token: config.control_token.clone(),
            max_unpacked: config.deploy_max_unpacked,
            terminal: crate::terminal::TerminalOptions {
                idle_timeout: config.terminal_idle_timeout,
                max_sessions: config.max_terminal_sessions,
            },
            stop: work.clone(),
            tasks: tracker.clone(),
        },
    );
    let http_stop = work.clone();
    tracker.spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { http_stop.cancelled().await })
            .run(),
    );

    let mut zk_config = ZkConfig::new(config.zk_servers.clone());
    zk_config.session_timeout = config.zk_session_timeout;
    let session =
        ZkSession::start(zk_config, work.clone()).map_err(|e| AgentError::Zk(e.to_string()))?;

    let mut info = crate::node_info::node_info(&config);
    let wiring = start_networking(&config).await;
    info.networks = match &wiring {
        Some(w) => w.support().clone(),
        None => caas_api::network::NetworkSupport {
            missing: Some("the agent cannot open a netlink socket".into()),
            ..Default::default()
        },
    };
    tracing::info!(bridge = info.networks.bridge, vxlan = info.networks.vxlan, vlan = info.networks.vlan, missing = ?info.networks.missing, "network drivers this node can wire");
    tracing::info!(
        node = %config.node_id, pool = %config.pool, zk = %config.zk_servers, root = %config.layout.root(),
        cpus_millis = info.capacity.cpu_millis, memory = info.capacity.memory_bytes, api = %info.api_addr,
        "caas-agent starting"
    );
    let registration = PersistentEphemeral::start_on(
        session.clients(),
        config.layout.node(&config.node_id),
        serde_json::to_vec(&info)?,
        EphemeralOptions::default(),
        work.clone(),
    )
    .map_err(|e| AgentError::Zk(e.to_string()))?;
    tracker.spawn(follow_registration(
        registration.state(),
        view.clone(),
        work.clone(),
    ));

    let cache = ChildrenCache::start(
        session.clients(),
        config.layout.assign_dir(&config.node_id),
        CacheOptions {
            relist_interval: config.resync_interval.max(Duration::from_secs(2)) * 5,
        },
        work.clone(),
    )
    .map_err(|e| AgentError::Zk(e.to_string()))?;

    let mut reconciler = Reconciler::new(
        runtime.clone(),
        ReconcilerConfig {
            node_id: config.node_id.clone(),
            pool: config.pool.clone(),
            name_prefix: config.name_prefix.clone(),
            sandbox_image: sandbox_image_tag(),
            data_image: data_image_tag(),
            stop_grace: config.stop_grace,
        },
    );
    if let Some(w) = &wiring {
        reconciler = reconciler.with_network(w.clone());
    }
    // Images missing on the node are pulled through the pool's registry proxies.
    let proxies = crate::images::proxies::ProxyFollower::start(
        session.clients(),
        &config.layout,
        &config.pool,
        CacheOptions {
            relist_interval: config.resync_interval.max(Duration::from_secs(2)) * 5,
        },
        work.clone(),
    )
    .map_err(|e| AgentError::Zk(e.to_string()))?;
    let puller = Arc::new(crate::images::Puller::new(
        runtime.clone(),
        config.pool.clone(),
        Some(config.docker_certs_dir.clone()),
        proxies.proxies(),
    ));
    let mut pulls_changed = puller.subscribe();
    tracker.spawn(crate::images::prewarm::run(
        session.clients(),
        crate::images::prewarm::PrewarmConfig {
            layout: config.layout.clone(),
            pool: config.pool.clone(),
            node_id: config.node_id.clone(),
            relist_interval: config.resync_interval.max(Duration::from_secs(2)) * 5,
        },
        puller.clone(),
        work.clone(),
    ));
    tracker.spawn(crate::images::prune::run(
        puller.clone(),
        config.image_prune,
        config.image_prune_interval,
        work.clone(),
    ));
    reconciler = reconciler.with_images(puller.clone());
    let mut remote = RemoteView::start(
        session.clients(),
        config.layout.clone(),
        config.node_id.clone(),
        config.resync_interval.max(Duration::from_secs(2)) * 5,
        work.clone(),
    )
    .map_err(|e| AgentError::Zk(e.to_string()))?;
    let remote_changed = remote.changed();
    tracker.spawn(crate::stats::run_collector(
        view.stats().clone(),
        view.clone(),
        config.node_id.clone(),
        config.stats_interval,
        work.clone(),
    ));
    // Internal DNS and load balancing (issue 11): a task of its own, following ZooKeeper.
    tracker.spawn(crate::services::run(
        session.clients(),
        crate::services::ServicesConfig::of(&config),
        work.clone(),
    ));
    let health = crate::health::HealthBook::default();
    tracker.spawn(crate::health::run_prober(
        health.clone(),
        view.clone(),
        runtime.clone(),
        work.clone(),
    ));
    let mut loop_state = LoopState {
        config: &config,
        runtime: &*runtime,
        reconciler: &reconciler,
        view: &view,
        writer: StatusWriter::new(config.layout.clone(), &config.node_id),
        statuses: BTreeMap::new(),
        sandbox_ready: false,
        registration: &registration,
        info: info.clone(),
        health: health.clone(),
        wiring: wiring.clone(),
        remote: &mut remote,
        networks: NetworkUse::default(),
        ever_passed: false,
        images: puller,
    };
    let mut snapshots = cache.snapshot();
    let mut synced = cache.synced();
    let mut clients = session.clients();
    let mut registration_state = registration.state();
    let mut ever_registered = false;
    let mut ticker = tokio::time::interval(config.resync_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = snapshots.changed() => if changed.is_err() { break },
            changed = synced.changed() => if changed.is_err() { break },
            changed = registration_state.changed() => if changed.is_err() { break },
            _ = ticker.tick() => {}
            _ = health.changed() => {}
            changed = pulls_changed.changed() => if changed.is_err() { break },
            _ = remote_changed.notified() => {
                // Another node's endpoint came or went: only the node-wide network part.
                if loop_state.ever_passed {
                    loop_state.sync_networks().await;
                    continue;
                }
            }
        }
        if !loop_state.ensure_engine().await {
            continue;
        }
        // Until the first complete listing, an empty view means "unknown", not "run nothing".
        if !*synced.borrow_and_update() {
            continue;
        }
        // Nothing is changed before this agent owns its node id: while another live session
        // holds the registration (a cloned machine, a copied config, or our own predecessor
        // whose session has not expired yet), acting on the same assignments would run every
        // workload twice. Once registered, a later disconnect does not stop reconciling.
        let state = *registration_state.borrow_and_update();
        if matches!(state, EphemeralState::Registered { .. }) {
            ever_registered = true;
        }
        if !ever_registered || matches!(state, EphemeralState::Conflict { .. }) {
            tracing::debug!(
                ?state,
                "not reconciling until this agent owns its registration"
            );
            continue;
        }
        let children = snapshots.borrow_and_update().clone();
        let client = clients.borrow_and_update().clone();
        loop_state.pass(&children, client.as_ref()).await;
    }

    tracing::info!("deregistering node; containers keep running");
    registration.shutdown().await;
    cache.shutdown().await;
    proxies.shutdown().await;
    remote.shutdown().await;
    session.shutdown().await;
    work.cancel();
    tracker.close();
    tracker.wait().await;
    tracing::info!("caas-agent stopped");
    Ok(())
}

async fn follow_registration(
    mut states: tokio::sync::watch::Receiver<EphemeralState>,
    view: AgentView,
    cancel: CancellationToken,
) {
    loop {
        let text = match &*states.borrow_and_update() {
            EphemeralState::Registered { .. } => "registered".to_string(),
            other => format!("{other:?}").to_lowercase(),
        };
        view.write().await.health.zookeeper = text;
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = states.changed() => if r.is_err() { return },
        }
    }
}

struct LoopState<'a, R: ?Sized> {
    config: &'a AgentConfig,
    runtime: &'a R,
    reconciler: &'a Reconciler<R>,
    view: &'a AgentView,
    writer: StatusWriter,
    statuses: BTreeMap<WorkloadKey, WorkloadStatus>,
    sandbox_ready: bool,
    registration: &'a PersistentEphemeral,
    /// The registration as last published.
    info: caas_api::NodeInfo,
    health: crate::health::HealthBook,
    wiring: Option<Arc<Wiring>>,
    remote: &'a mut RemoteView,
    /// The networks used by the workloads of the last pass.
    networks: NetworkUse,
    ever_passed: bool,
    /// Pulls images; told which images the node's assignments need (for pruning).
    images: Arc<crate::images::Puller<R>>,
}

/// Networks the assigned workloads use: by VNI, and (pool, name) -> VNI.
#[derive(Default)]
struct NetworkUse {
    local: BTreeMap<u32, NetworkDesc>,
    refs: BTreeMap<NetworkRef, u32>,
    /// The sandboxes' veths (only `veths` is used).
    expected: NodeNetworks,
}

impl NetworkUse {
    fn of(desired: &DesiredState, statuses: &BTreeMap<WorkloadKey, WorkloadStatus>) -> Self {
        let mut out = Self::default();
        for (key, a) in &desired.workloads {
            let Ok(a) = a else { continue };
            if a.desired != caas_api::Desired::Run {
                continue;
            }
            if let Some(sandbox) = statuses
                .get(key)
                .and_then(|s| s.containers.sandbox.as_deref())
            {
                out.expected
                    .expect_veths(&key.to_string(), sandbox, &a.spec.networks);
            }
            for e in &a.spec.networks {
                if let Ok(desc) = NetworkDesc::from_endpoint(e) {
                    out.refs
                        .insert((a.spec.pool.clone(), e.network.clone()), e.vni);
                    out.local.insert(e.vni, desc);
                }
            }
        }
        out
    }
}

/// Opens netlink, probes the kernel's drivers and builds the wiring (None without netlink).
async fn start_networking(config: &AgentConfig) -> Option<Arc<Wiring>> {
    let backend = match NetlinkBackend::new() {
        Ok(b) => Arc::new(b),
        Err(e) => {
            tracing::warn!(error = %e, "no netlink: this node wires no networks");
            return None;
        }
    };
    let underlay = match config.underlay {
        Some(std::net::IpAddr::V4(v4)) => Some(v4),
        _ => None,
    };
    let support =
        crate::network::probe::probe_support(&*backend, underlay, config.uplink.as_deref()).await;
    // Between full reads of the node's devices and entries, passes apply differences only.
    let full_sync_every = config.resync_interval.max(Duration::from_secs(2)) * 5;
    Some(Arc::new(
        Wiring::new(backend, underlay, support).with_full_sync_every(full_sync_every),
    ))
}

impl<R: ContainerRuntime + ?Sized> LoopState<'_, R> {
    /// Makes sure the engine answers and has the sandbox image; reports the engine's health.
    async fn ensure_engine(&mut self) -> bool {
        if self.sandbox_ready {
            return true;
        }
        match ensure_sandbox_image(self.runtime).await {
            Ok(_) => {
                self.sandbox_ready = true;
                self.view.write().await.health.docker = "ok".into();
                self.publish_engine(true);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "the Docker engine is not usable yet; retrying");
                self.view.write().await.health.docker = e.to_string();
                self.publish_engine(false);
                false
            }
        }
    }

    /// Tells central (through the registration) whether this node can take new workloads.
    fn publish_engine(&mut self, ready: bool) {
        if self.info.engine_ready != ready {
            self.info.engine_ready = ready;
            tracing::info!(engine_ready = ready, "updating the node registration");
            match serde_json::to_vec(&self.info) {
                Ok(data) => self.registration.update_data(data),
                Err(e) => tracing::warn!(error = %e, "encoding the node registration failed"),
            }
        }
    }

    async fn pass(&mut self, children: &ChildMap, client: Option<&Client>) {
        let (desired, versions) = self.desired(children, client).await;
        // What the assignments need is known before the pass, so a prune never takes an image
        // the pass is about to create a container from. A view that is not authoritative keeps
        // everything, images included.
        if desired.authoritative {
            self.images.set_wanted(
                crate::images::WantedBy::Assignments,
                desired
                    .workloads
                    .values()
                    .filter_map(|a| a.as_ref().ok())
                    .map(|a| a.spec.image.clone())
                    .collect(),
            );
        }
        let outcome = match self.reconciler.pass(&desired, &self.statuses).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(error = %e, "reconcile pass failed; retrying");
                self.view.write().await.health.docker = e.to_string();
                self.sandbox_ready = false;
                if matches!(e, crate::runtime::RuntimeError::Unavailable(_)) {
                    self.publish_engine(false);
                }
                return;
            }
        };
        self.statuses = outcome.statuses.clone();
        // A view that is not authoritative keeps everything, devices included.
        if desired.authoritative {
            self.networks = NetworkUse::of(&desired, &self.statuses);
            self.ever_passed = true;
            self.sync_networks().await;
        }
        for (key, status) in self.statuses.iter_mut() {
            status.health = self.health.get(key);
        }
        {
            let mut view = self.view.write().await;
            view.health.docker = "ok".into();
            view.assignments = desired.workloads.clone();
            view.statuses = self.statuses.clone();
        }
        let Some(client) = client else { return };
        // Status of workloads that are no longer assigned here goes away.
        let mut gone: BTreeSet<WorkloadKey> = outcome.purged.iter().cloned().collect();
        if desired.authoritative {
            let listing =
                client.list_children(&self.config.layout.status_dir(&self.config.node_id));
            match tokio::time::timeout(ZK_CALL_TIMEOUT, listing)
                .await
                .unwrap_or(Err(ZkError::Timeout))
            {
                Ok(names) => gone.extend(
                    names
                        .iter()
                        .filter_map(|n| WorkloadKey::parse(n).ok())
                        .filter(|k| !desired.workloads.contains_key(k)),
                ),
                Err(ZkError::NoNode) => {}
                Err(e) => tracing::debug!(error = %e, "listing status znodes failed"),
            }
        }
        let gone: Vec<WorkloadKey> = gone.into_iter().collect();
        let sync = self.writer.sync(client, &self.statuses, &gone);
        match tokio::time::timeout(ZK_CALL_TIMEOUT * 5, sync).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "publishing status failed; will retry");
                self.writer.reset();
            }
            Err(_) => {
                tracing::warn!("publishing status timed out (ZooKeeper unreachable?); will retry");
                self.writer.reset();
            }
        }
        for key in &outcome.purged {
            if let Some(version) = versions.get(key) {
                let clear = self.writer.clear_purged(client, key, *version);
                match tokio::time::timeout(ZK_CALL_TIMEOUT, clear).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(workload = %key, error = %e, "clearing purged assignment failed")
                    }
                    Err(_) => {
                        tracing::warn!(workload = %key, "clearing purged assignment timed out")
                    }
                }
            }
        }
    }

    /// The node-wide network pass: follow the networks in use, program the remote endpoints,
    /// remove unused devices, replace the firewall table.
    async fn sync_networks(&mut self) {
        let Some(wiring) = self.wiring.clone() else {
            return;
        };
        let wanted = self.networks.refs.keys().cloned().collect();
        self.remote.follow(&wanted).await;
        let (remote, complete) = self.remote.view(&self.networks.refs, &self.networks.local);
        let nets = NodeNetworks {
            local: self.networks.local.clone(),
            remote,
            complete,
            veths: self.networks.expected.veths.clone(),
            vlan_ports: self.networks.expected.vlan_ports.clone(),
        };
        match wiring.sync(&nets).await {
            Ok(report) => {
                if report != Default::default() {
                    tracing::info!(?report, "network pass");
                }
            }
            Err(e) => tracing::warn!(error = %e, "network pass failed; will retry"),
        }
    }

    /// Parses the cached assignment znodes into the desired state.
    async fn desired(
        &self,
        children: &ChildMap,
        client: Option<&Client>,
    ) -> (DesiredState, BTreeMap<WorkloadKey, i32>) {
        let mut workloads = BTreeMap::new();
        let mut versions = BTreeMap::new();
        for (name, entry) in children.iter() {
            let key = match WorkloadKey::parse(name) {
                Ok(key) => key,
                Err(e) => {
                    tracing::warn!(znode = %name, error = %e, "ignoring an assignment whose name is not <pool>.<name>");
                    continue;
                }
            };
            let parsed = serde_json::from_slice::<Assignment>(&entry.data)
                .map_err(|e| format!("assignment znode {name} is not a valid assignment: {e}"));
            versions.insert(key.clone(), entry.stat.version);
            workloads.insert(key, parsed);
        }
        // An empty view only means "run nothing" if the directory really exists.
        let authoritative = !workloads.is_empty()
            || match client {
                Some(c) => {
                    let stat = c.check_stat(&self.config.layout.assign_dir(&self.config.node_id));
                    matches!(
                        tokio::time::timeout(ZK_CALL_TIMEOUT, stat).await,
                        Ok(Ok(Some(_)))
                    )
                }
                None => false,
            };
        (
            DesiredState {
                authoritative,
                workloads,
            },
            versions,
        )
    }
}
