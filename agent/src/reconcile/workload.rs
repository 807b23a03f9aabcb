//! Converging one workload: data container (created once, never recreated implicitly), sandbox
//! (owns network and hostname), app (recreated when its spec hash changes). Anything created in
//! a failed first attempt is removed again, so a bad spec leaves nothing behind.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use caas_api::{
    Assignment, ContainerIds, RestartPolicy, StatusError, WorkloadKey, WorkloadSpec, WorkloadState,
    WorkloadStatus,
};

use super::ReconcilerConfig;
use crate::codes::LastErrorCode;
use crate::naming::{container_name, labels, spec_hash, LABEL_GENERATION, LABEL_SPEC_HASH};
use crate::runtime::{
    ContainerRuntime, CreateRequest, ManagedContainer, RestartMode, Role, RuntimeError,
};

/// The containers of one workload found on the node, by role. Normally one per role; more
/// means an earlier crash mid-way, and the extras are removed.
#[derive(Debug, Clone, Default)]
pub struct WorkloadContainers {
    sandbox: Vec<ManagedContainer>,
    data: Vec<ManagedContainer>,
    app: Vec<ManagedContainer>,
}

impl WorkloadContainers {
    pub fn add(&mut self, role: Role, container: ManagedContainer) {
        self.list_mut(role).push(container);
    }
    fn list_mut(&mut self, role: Role) -> &mut Vec<ManagedContainer> {
        match role {
            Role::Sandbox => &mut self.sandbox,
            Role::Data => &mut self.data,
            Role::App => &mut self.app,
        }
    }
    pub fn all(&self, role: Role) -> &[ManagedContainer] {
        match role {
            Role::Sandbox => &self.sandbox,
            Role::Data => &self.data,
            Role::App => &self.app,
        }
    }
    pub fn has_role(&self, role: Role) -> bool {
        !self.all(role).is_empty()
    }
}

/// Result of converging one workload.
pub enum Converged {
    /// `healthy` is false when the pass hit an error and should be retried with backoff.
    Status {
        status: WorkloadStatus,
        healthy: bool,
        /// The error is about the spec itself and nothing of the workload is left: wait for a
        /// new assignment (or 10 minutes) instead of backing off.
        park: bool,
        /// Whether the workload may be settled: plain, unwired, running, nothing changed or
        /// wrong in this converge (see `settled`).
        settle: bool,
    },
    Purged,
    PurgeFailed(WorkloadStatus),
}

/// Why converging stopped; becomes `last_error` in the status.
struct StepError {
    code: LastErrorCode,
    message: String,
}

impl StepError {
    /// Errors that retrying cannot fix until the spec or the node changes.
    fn permanent(&self) -> bool {
        self.code.permanent()
    }

    fn into_status_error(self) -> StatusError {
        StatusError {
            code: self.code.as_str().to_string(),
            message: self.message,
            at: unix_now(),
        }
    }
}

impl From<RuntimeError> for StepError {
    fn from(e: RuntimeError) -> Self {
        Self {
            code: LastErrorCode::Engine(e.code()),
            message: e.to_string(),
        }
    }
}

pub struct WorkloadStep<'a, R: ?Sized> {
    pub runtime: &'a R,
    pub config: &'a ReconcilerConfig,
    pub key: &'a WorkloadKey,
    pub containers: WorkloadContainers,
    /// Ids of the workload's containers as converging leaves them.
    pub ids: ContainerIds,
    /// Whether the workload runs on a rich image (said by the spec or by the image's label).
    pub rich: bool,
    /// The pool's SSH keys from the assignment (rich workloads only).
    pub keys: Vec<String>,
    /// Fingerprint of the SSH keys last put into each rich app container, by container id.
    pub keys_written: &'a std::sync::Mutex<BTreeMap<String, String>>,
    /// Wires the sandbox into the spec's networks.
    pub network: Option<&'a crate::network::Wiring>,
    /// The sandbox's interfaces as the kernel showed them after wiring.
    pub interfaces: Vec<caas_api::network::InterfaceStatus>,
    /// Pulls the image when it is not on the node.
    pub images: Option<&'a std::sync::Arc<crate::images::Puller<R>>>,
    /// The local name of the spec's image the app is created from.
    pub image: String,
    /// The pull the workload waits for (nothing is created or changed meanwhile).
    pub pulling: Option<caas_api::PullProgress>,
}

impl From<crate::images::ImageError> for StepError {
    fn from(e: crate::images::ImageError) -> Self {
        Self {
            code: LastErrorCode::Engine(e.code),
            message: e.message,
        }
    }
}

impl From<crate::network::WiringError> for StepError {
    fn from(e: crate::network::WiringError) -> Self {
        use crate::network::WiringError;
        match e {
            WiringError::Unsupported(message) => Self {
                code: LastErrorCode::NetworkUnsupported,
                message,
            },
            WiringError::Failed(message) => Self {
                code: LastErrorCode::NetworkFailed,
                message: format!("wiring the sandbox's network: {message}"),
            },
        }
    }
}

/// Limits of the containers that only hold a namespace or volumes (sandbox and data): their
/// pause process needs no capability, few processes and little memory.
const INFRASTRUCTURE_PIDS: i64 = 16;
const INFRASTRUCTURE_MEMORY: i64 = 32 << 20;

/// The privileges of a sandbox or data container: none.
fn infrastructure() -> CreateRequest {
    CreateRequest {
        cap_drop: vec!["ALL".to_string()],
        no_new_privileges: true,
        pids_limit: Some(INFRASTRUCTURE_PIDS),
        memory: Some(INFRASTRUCTURE_MEMORY),
        ..Default::default()
    }
}

/// Capabilities taken from the engine's default set for apps: device nodes (MKNOD) and file
/// capabilities (SETFCAP) are no app's business; a plain app also has no use for chroot or the
/// audit log, which a rich container's sshd needs (supervisor-images/CONTRACT.md). NET_RAW stays
/// (ping is how people check a network) and NET_BIND_SERVICE (ports below 1024).
fn app_cap_drop(rich: bool) -> Vec<String> {
    let mut drop = vec!["MKNOD".to_string(), "SETFCAP".to_string()];
    if !rich {
        drop.extend(["SYS_CHROOT".to_string(), "AUDIT_WRITE".to_string()]);
    }
    drop
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<R: ContainerRuntime + ?Sized> WorkloadStep<'_, R> {
    /// Converges a workload that should run.
    pub async fn run(mut self, assignment: &Assignment) -> Converged {
        let spec = &assignment.spec;
        let existed = self.containers.has_role(Role::App);
        self.init_ids();
        let mut created: Vec<String> = Vec::new();
        let result = self.converge(assignment, &mut created).await;
        let (error, healthy) = match result {
            Ok(()) => (None, true),
            Err(e) => {
                tracing::warn!(workload = %self.key, code = %e.code, error = %e.message, "converging failed");
                // A first attempt that failed leaves nothing behind; an existing workload keeps
                // what runs (nothing is torn down because a new spec is bad).
                if !existed {
                    for id in created.iter().rev() {
                        if let Err(cleanup) = self
                            .runtime
                            .remove(id, self.ids.data.as_deref() == Some(id.as_str()))
                            .await
                        {
                            tracing::warn!(container = %id, error = %cleanup, "cleanup after failure failed");
                            continue;
                        }
                        for slot in [&mut self.ids.sandbox, &mut self.ids.data, &mut self.ids.app] {
                            if slot.as_deref() == Some(id.as_str()) {
                                *slot = None;
                            }
                        }
                    }
                }
                (Some(e), false)
            }
        };
        let changed = !created.is_empty();
        let park = !existed
            && self.ids == ContainerIds::default()
            && error.as_ref().is_some_and(|e| e.code.waits_for_new_spec());
        let mut status = self.observe(spec, error).await;
        status.pull = self.pulling.take();
        let settle = healthy
            && status.pull.is_none()
            && !changed
            && !self.rich
            && spec.networks.is_empty()
            && status.state == WorkloadState::Running
            && status.last_error.is_none();
        Converged::Status {
            status,
            healthy,
            park,
            settle,
        }
    }

    /// Removes everything of the workload, data included.
    pub async fn purge(self, assignment: &Assignment) -> Converged {
        let mut failure = None;
        for role in [Role::App, Role::Sandbox, Role::Data] {
            for c in self.containers.all(role) {
                let res = match self.runtime.stop(&c.id, self.config.stop_grace).await {
                    Ok(()) => self.runtime.remove(&c.id, true).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = res {
                    failure.get_or_insert(StepError::from(e));
                }
            }
        }
        match failure {
            None => {
                tracing::info!(workload = %self.key, "purged workload and its data");
                Converged::Purged
            }
            Some(e) => Converged::PurgeFailed(self.status_without_containers(
                &assignment.spec,
                Some(e),
                WorkloadState::Pending,
            )),
        }
    }

    fn init_ids(&mut self) {
        self.ids = ContainerIds {
            sandbox: self.containers.sandbox.first().map(|c| c.id.clone()),
            data: self.containers.data.first().map(|c| c.id.clone()),
            app: self.containers.app.first().map(|c| c.id.clone()),
        };
    }

    /// An assignment znode that does not parse: report it, touch nothing.
    pub async fn report_unreadable(mut self, message: String) -> Converged {
        self.init_ids();
        let spec = WorkloadSpec {
            version: caas_api::PAYLOAD_VERSION,
            pool: self.key.pool.clone(),
            name: self.key.name.clone(),
            image: String::new(),
            command: Vec::new(),
            env: Default::default(),
            resources: Default::default(),
            restart: RestartPolicy::default(),
            labels: Default::default(),
            volumes: Vec::new(),
            hostname: None,
            rich: false,
            health_check: None,
            generation: 0,
            networks: Vec::new(),
            read_only_root: false,
        };
        let error = StepError {
            code: LastErrorCode::InvalidAssignment,
            message,
        };
        let status = self.observe(&spec, Some(error)).await;
        Converged::Status {
            status,
            healthy: false,
            park: false,
            settle: false,
        }
    }

    async fn converge(
        &mut self,
        assignment: &Assignment,
        created: &mut Vec<String>,
    ) -> Result<(), StepError> {
        let spec = &assignment.spec;
        if spec.pool != self.config.pool {
            return Err(StepError {
                code: LastErrorCode::WrongPool,
                message: format!(
                    "{} belongs to pool {} but this node serves pool {}; nothing is run",
                    self.key, spec.pool, self.config.pool
                ),
            });
        }
        if spec.pool != self.key.pool || spec.name != self.key.name {
            return Err(StepError {
                code: LastErrorCode::InvalidSpec,
                message: format!(
                    "spec names {}.{} but is assigned as {}; the znode name and the spec must agree",
                    spec.pool, spec.name, self.key
                ),
            });
        }
        let limits = spec.validate().map_err(|e| StepError {
            code: LastErrorCode::InvalidSpec,
            message: e.to_string(),
        })?;
        let image_labels = match self.images {
            Some(puller) => match puller.resolve(&spec.image).await? {
                crate::images::Availability::Local { reference, labels } => {
                    self.image = reference;
                    labels
                }
                crate::images::Availability::Pulling(progress) => {
                    // Nothing is created or replaced until the image is here: a running old
                    // version keeps running meanwhile.
                    self.pulling = Some(progress);
                    return Ok(());
                }
            },
            None => {
                let Some(labels) = self.runtime.image_labels(&spec.image).await? else {
                    return Err(RuntimeError::ImageNotFound(spec.image.clone()).into());
                };
                self.image = spec.image.clone();
                labels
            }
        };
        let rich_image = crate::rich::is_rich_image(&image_labels);
        if spec.rich && !rich_image {
            return Err(StepError {
                code: LastErrorCode::NotRichImage,
                message: format!(
                    "the spec says rich: true but image {} is not a rich image (no label {}={}...); \
                     build it FROM caas/sofa-base (or sofa-jdk17/sofa-tomcat), or drop rich",
                    spec.image,
                    crate::rich::CONTRACT_LABEL,
                    crate::rich::CONTRACT_PREFIX
                ),
            });
        }
        self.rich = rich_image;
        self.keys = assignment.ssh_authorized_keys.clone();

        // A node that cannot carry the spec's networks says so before anything is created.
        if !spec.networks.is_empty() {
            match self.network {
                Some(wiring) => wiring.check(&spec.networks)?,
                None => {
                    return Err(StepError {
                        code: LastErrorCode::NetworkUnsupported,
                        message: "this agent wires no networks".into(),
                    })
                }
            }
        }
        let data_id = self.ensure_data(spec, created).await?;
        let (sandbox_id, sandbox_fresh) = self.ensure_sandbox(spec, created).await?;
        self.ensure_network(spec, &sandbox_id).await?;
        self.ensure_app(
            spec,
            &limits,
            &sandbox_id,
            sandbox_fresh,
            data_id.as_deref(),
            created,
        )
        .await?;
        if self.rich {
            self.ensure_keys().await?;
        }
        Ok(())
    }

    /// Wires the running sandbox into the spec's networks (before the app starts in it); a pass
    /// that finds everything right changes nothing.
    async fn ensure_network(
        &mut self,
        spec: &WorkloadSpec,
        sandbox_id: &str,
    ) -> Result<(), StepError> {
        let Some(wiring) = self.network.filter(|_| !spec.networks.is_empty()) else {
            return Ok(());
        };
        let details = self.runtime.inspect(sandbox_id).await?;
        let pid = details
            .pid
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| StepError {
                code: LastErrorCode::NetworkFailed,
                message: format!(
                    "the sandbox {} has no running process to wire",
                    details.name
                ),
            })?;
        self.interfaces = wiring
            .wire(&self.key.to_string(), sandbox_id, pid, &spec.networks)
            .await?;
        Ok(())
    }

    /// Puts the pool's keys into a rich app container, before its first start and again
    /// whenever they change (in place: no restart).
    async fn ensure_keys(&mut self) -> Result<(), StepError> {
        let Some(app) = self.ids.app.clone() else {
            return Ok(());
        };
        let keys = self.keys.as_slice();
        let fingerprint = crate::rich::keys_fingerprint(keys);
        let known = self
            .keys_written
            .lock()
            .ok()
            .and_then(|m| m.get(&app).cloned());
        if known.as_deref() == Some(fingerprint.as_str()) || (known.is_none() && keys.is_empty()) {
            return Ok(());
        }
        let tar = crate::rich::authorized_keys_tar(keys).map_err(|e| StepError {
            code: LastErrorCode::Internal,
            message: format!("packing the authorized keys: {e}"),
        })?;
        self.runtime.upload(&app, "/", tar).await?;
        if let Ok(mut m) = self.keys_written.lock() {
            m.insert(app, fingerprint);
        }
        tracing::info!(workload = %self.key, keys = keys.len(), "wrote the pool's SSH keys");
        Ok(())
    }

    async fn ensure_data(
        &mut self,
        spec: &WorkloadSpec,
        created: &mut Vec<String>,
    ) -> Result<Option<String>, StepError> {
        let volumes = spec.data_volumes(self.rich);
        let hash = caas_api::spec::volumes_hash(&volumes);
        if let Some(existing) = self.containers.data.first() {
            if spec_hash(existing) != hash && !volumes.is_empty() {
                return Err(StepError {
                    code: LastErrorCode::VolumesChanged,
                    message: format!(
                        "the spec's volumes differ from those of the existing data container {}; \
                         data is never dropped implicitly: delete the workload with purge to change volumes",
                        existing.name
                    ),
                });
            }
            if !existing.running {
                self.runtime.start(&existing.id).await?;
            }
            return Ok(Some(existing.id.clone()));
        }
        if volumes.is_empty() {
            return Ok(None);
        }
        if self.containers.has_role(Role::App) {
            // The app exists, so a data container existed and was removed behind our back (e.g.
            // `docker container prune`). A fresh, empty one would silently replace the data.
            return Err(StepError {
                code: LastErrorCode::DataMissing,
                message: format!(
                    "the data container of {} is gone while its app exists; refusing to create an \
                     empty one. Recover the volumes, or delete the workload with purge to start empty",
                    self.key
                ),
            });
        }
        let request = CreateRequest {
            name: container_name(&self.config.name_prefix, self.key, Role::Data),
            image: self.config.data_image.clone(),
            labels: labels(
                &self.config.node_id,
                self.key,
                Role::Data,
                spec.generation,
                &hash,
            ),
            network_mode: Some("none".to_string()),
            volumes,
            restart: RestartMode::Always,
            ..infrastructure()
        };
        let id = self.runtime.create(&request).await?;
        created.push(id.clone());
        self.ids.data = Some(id.clone());
        // Running (the idle pause process) keeps it out of `docker container prune`.
        self.runtime.start(&id).await?;
        tracing::info!(workload = %self.key, container = %request.name, "created data container");
        Ok(Some(id))
    }

    /// Returns the sandbox id and whether it was (re)created or (re)started in this step, in
    /// which case the app must be recreated to join its namespaces.
    async fn ensure_sandbox(
        &mut self,
        spec: &WorkloadSpec,
        created: &mut Vec<String>,
    ) -> Result<(String, bool), StepError> {
        let hash = spec.sandbox_hash();
        let mut sandboxes = std::mem::take(&mut self.containers.sandbox);
        // Keep the first matching sandbox; extras and mismatches go.
        let keep = sandboxes.iter().position(|s| spec_hash(s) == hash);
        let kept = keep.map(|i| sandboxes.remove(i));
        self.ids.sandbox = kept.as_ref().map(|k| k.id.clone());
        for stale in sandboxes {
            tracing::info!(workload = %self.key, container = %stale.name, "removing stale sandbox");
            self.runtime.stop(&stale.id, self.config.stop_grace).await?;
            self.runtime.remove(&stale.id, false).await?;
        }
        if let Some(sandbox) = kept {
            if sandbox.running {
                let id = sandbox.id.clone();
                self.containers.sandbox = vec![sandbox];
                return Ok((id, false));
            }
            tracing::info!(workload = %self.key, "sandbox is not running; starting it");
            self.runtime.start(&sandbox.id).await?;
            let id = sandbox.id.clone();
            self.containers.sandbox = vec![sandbox];
            return Ok((id, true));
        }
        let name = container_name(&self.config.name_prefix, self.key, Role::Sandbox);
        let request = CreateRequest {
            name: name.clone(),
            image: self.config.sandbox_image.clone(),
            labels: labels(
                &self.config.node_id,
                self.key,
                Role::Sandbox,
                spec.generation,
                &hash,
            ),
            hostname: Some(spec.effective_hostname().to_string()),
            network_mode: Some("none".to_string()),
            restart: RestartMode::Always,
            ..infrastructure()
        };
        let id = self.runtime.create(&request).await?;
        created.push(id.clone());
        self.ids.sandbox = Some(id.clone());
        self.runtime.start(&id).await?;
        tracing::info!(workload = %self.key, container = %name, "created sandbox");
        Ok((id, true))
    }

    async fn ensure_app(
        &mut self,
        spec: &WorkloadSpec,
        limits: &caas_api::ResourceRequest,
        sandbox_id: &str,
        sandbox_fresh: bool,
        data_id: Option<&str>,
        created: &mut Vec<String>,
    ) -> Result<(), StepError> {
        let hash = spec.app_hash();
        let mut apps = std::mem::take(&mut self.containers.app);
        let keep = if sandbox_fresh {
            None
        } else {
            apps.iter().position(|a| spec_hash(a) == hash)
        };
        let kept = keep.map(|i| apps.remove(i));
        self.ids.app = kept.as_ref().map(|k| k.id.clone());
        for stale in apps {
            tracing::info!(workload = %self.key, container = %stale.name, "replacing app container");
            self.runtime.stop(&stale.id, self.config.stop_grace).await?;
            self.runtime.remove(&stale.id, false).await?;
        }
        if let Some(app) = kept {
            // Docker's restart policy restarts a crashed app; the agent only starts an app that
            // should always run and is neither running nor being restarted (e.g. stopped by hand).
            if !app.running && spec.restart == RestartPolicy::Always {
                let details = self.runtime.inspect(&app.id).await?;
                if !details.running && !details.restarting {
                    tracing::info!(workload = %self.key, "app is stopped but should run; starting it");
                    self.runtime.start(&app.id).await?;
                }
            }
            self.containers.app = vec![app];
            return Ok(());
        }
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("CAAS_POOL={}", self.key.pool));
        env.push(format!("CAAS_NAME={}", self.key.name));
        env.push(format!("CAAS_NODE={}", self.config.node_id));
        if self.rich {
            env.push(format!(
                "CAAS_VOLUMES={}",
                spec.data_volumes(true).join(":")
            ));
        }
        let mut all_labels = spec.labels.clone();
        all_labels.extend(labels(
            &self.config.node_id,
            self.key,
            Role::App,
            spec.generation,
            &hash,
        ));
        let request = CreateRequest {
            name: container_name(&self.config.name_prefix, self.key, Role::App),
            image: self.image.clone(),
            command: spec.command.clone(),
            env,
            labels: all_labels,
            network_mode: Some(format!("container:{sandbox_id}")),
            volumes_from: data_id.map(|d| vec![d.to_string()]).unwrap_or_default(),
            nano_cpus: limits
                .cpu_millis
                .map(|m| (m as i64).saturating_mul(1_000_000)),
            memory: limits
                .memory_bytes
                .map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
            pids_limit: limits.pids,
            restart: match spec.restart {
                RestartPolicy::Never => RestartMode::No,
                RestartPolicy::OnFailure => RestartMode::OnFailure,
                RestartPolicy::Always => RestartMode::Always,
            },
            cap_drop: app_cap_drop(self.rich),
            no_new_privileges: true,
            read_only_root: spec.read_only_root,
            ..Default::default()
        };
        let id = self.runtime.create(&request).await?;
        created.push(id.clone());
        self.ids.app = Some(id.clone());
        if self.rich {
            // The keys are in place before sshd first starts.
            self.ensure_keys().await?;
        }
        self.runtime.start(&id).await?;
        tracing::info!(workload = %self.key, container = %request.name, image = %spec.image, "started app");
        Ok(())
    }

    /// Builds the status from what the engine reports now.
    async fn observe(&self, spec: &WorkloadSpec, error: Option<StepError>) -> WorkloadStatus {
        let mut status = self.status_without_containers(spec, None, WorkloadState::Pending);
        if let Some(app) = &self.ids.app {
            match self.runtime.inspect(app).await {
                Ok(details) => {
                    status.state = if details.running {
                        WorkloadState::Running
                    } else if details.restarting || details.status == "created" {
                        WorkloadState::Pending
                    } else {
                        WorkloadState::Exited
                    };
                    status.started_at = details.started_at;
                    status.exit_code = if details.running {
                        None
                    } else {
                        details.exit_code
                    };
                    status.app_hash = details
                        .labels
                        .get(LABEL_SPEC_HASH)
                        .cloned()
                        .unwrap_or_default();
                    status.generation = details
                        .labels
                        .get(LABEL_GENERATION)
                        .and_then(|g| g.parse().ok())
                        .unwrap_or(spec.generation);
                    if self.rich && details.running {
                        status.programs = self.programs(app).await;
                    }
                }
                Err(e) => {
                    tracing::debug!(container = %app, error = %e, "inspect after converge failed")
                }
            }
        } else if error.as_ref().is_some_and(|e| e.permanent()) {
            status.state = WorkloadState::Failed;
        }
        status.containers = self.ids.clone();
        status.interfaces = self.interfaces.clone();
        let error = error.or_else(|| fatal_app(&status.programs));
        status.last_error = error.map(StepError::into_status_error);
        status
    }

    fn status_without_containers(
        &self,
        spec: &WorkloadSpec,
        error: Option<StepError>,
        state: WorkloadState,
    ) -> WorkloadStatus {
        WorkloadStatus {
            version: caas_api::PAYLOAD_VERSION,
            pool: self.key.pool.clone(),
            name: self.key.name.clone(),
            node: self.config.node_id.clone(),
            state,
            generation: spec.generation,
            app_hash: String::new(),
            containers: ContainerIds::default(),
            started_at: None,
            exit_code: None,
            last_error: error.map(StepError::into_status_error),
            programs: Vec::new(),
            health: None,
            interfaces: Vec::new(),
            pull: None,
            observed_at: unix_now(),
        }
    }

    /// supervisord's programs as the container's monitor last wrote them; empty (and logged)
    /// when the file is not there yet or cannot be read.
    async fn programs(&self, app: &str) -> Vec<caas_api::ProgramStatus> {
        match self
            .runtime
            .read_file(app, crate::rich::MONITOR_STATUS)
            .await
        {
            Ok(Some(bytes)) => crate::rich::parse_monitor(&bytes).unwrap_or_else(|e| {
                tracing::warn!(workload = %self.key, error = %e, "unreadable monitor status");
                Vec::new()
            }),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::debug!(workload = %self.key, error = %e, "reading the monitor status failed");
                Vec::new()
            }
        }
    }
}

/// An app program that supervisord gave up on, as an error people see in the status.
fn fatal_app(programs: &[caas_api::ProgramStatus]) -> Option<StepError> {
    let app = programs
        .iter()
        .find(|p| p.name == crate::rich::APP_PROGRAM && p.state == "FATAL")?;
    let reason = app
        .log_tail
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| app.description.clone());
    Some(StepError {
        code: LastErrorCode::AppFatal,
        message: format!(
            "supervisord gave up starting the app after {} restarts: {reason}",
            app.restarts
        ),
    })
}
