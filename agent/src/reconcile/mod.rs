//! The reconciler: makes the containers of this node match its assignments. One pass lists the
//! node's containers (by the `caas.node` label), converges every assigned workload, removes
//! what is no longer assigned, and returns the observed status of each workload. Passes are
//! level-triggered and idempotent; the loop in `crate::agent` runs them on change and on a timer.

mod backoff;
mod settled;
mod workload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caas_api::{Assignment, Desired, WorkloadKey, WorkloadStatus};
use futures::StreamExt;

pub use backoff::Backoff;
pub use workload::WorkloadContainers;

use crate::naming::{identify, LABEL_NODE};
use crate::runtime::{ContainerRuntime, Role, RuntimeError};

/// How many workloads converge at the same time.
const PARALLEL_WORKLOADS: usize = 4;

/// What one pass must converge to.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    /// False when the assignment directory of this node does not exist (never assigned, or a
    /// wrong ZooKeeper root): then nothing is removed, because an empty view that was never
    /// written is not an instruction to stop everything.
    pub authoritative: bool,
    /// Assignment per workload, or why its znode could not be read.
    pub workloads: BTreeMap<WorkloadKey, Result<Assignment, String>>,
}

/// Result of one pass.
#[derive(Debug, Default)]
pub struct PassOutcome {
    /// Observed status of every assigned workload that was looked at in this pass.
    pub statuses: BTreeMap<WorkloadKey, WorkloadStatus>,
    /// Workloads whose containers are all gone after a purge: their znodes can be deleted.
    pub purged: Vec<WorkloadKey>,
    /// Workloads that are no longer assigned and whose app and sandbox were removed.
    pub removed: Vec<WorkloadKey>,
}

/// Settings of the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    pub node_id: String,
    /// This node's pool: assignments for any other pool are refused (a tenant's workload never
    /// runs on another tenant's node, whatever is written in ZooKeeper).
    pub pool: String,
    pub name_prefix: String,
    pub sandbox_image: String,
    /// Image of data containers (the idle pause program and admin's log directory).
    pub data_image: String,
    pub stop_grace: Duration,
}

/// Converges this node's containers; holds per-workload backoff between passes.
pub struct Reconciler<R: ?Sized> {
    runtime: Arc<R>,
    config: ReconcilerConfig,
    backoff: tokio::sync::Mutex<BTreeMap<WorkloadKey, Backoff>>,
    /// SSH keys last written into each rich app container (by container id).
    keys_written: std::sync::Mutex<BTreeMap<String, String>>,
    /// Wires sandboxes into their networks (None: this node wires nothing).
    network: Option<Arc<crate::network::Wiring>>,
    /// Workloads whose timer passes need no engine call (see `settled`).
    settled: settled::Settled,
    /// Pulls missing images through the pool's registry proxies (None: images must be local).
    images: Option<Arc<crate::images::Puller<R>>>,
}

impl<R: ContainerRuntime + ?Sized> Reconciler<R> {
    pub fn new(runtime: Arc<R>, config: ReconcilerConfig) -> Self {
        Self {
            runtime,
            config,
            backoff: tokio::sync::Mutex::new(BTreeMap::new()),
            keys_written: std::sync::Mutex::new(BTreeMap::new()),
            network: None,
            settled: settled::Settled::default(),
            images: None,
        }
    }

    /// Pulls images missing on the node through `puller`.
    pub fn with_images(mut self, puller: Arc<crate::images::Puller<R>>) -> Self {
        self.images = Some(puller);
        self
    }

    /// Wires workloads' sandboxes into their networks through `wiring`.
    pub fn with_network(mut self, wiring: Arc<crate::network::Wiring>) -> Self {
        self.network = Some(wiring);
        self
    }

    pub fn config(&self) -> &ReconcilerConfig {
        &self.config
    }

    /// Lists this node's containers grouped by workload.
    pub async fn actual(&self) -> Result<BTreeMap<WorkloadKey, WorkloadContainers>, RuntimeError> {
        let filter = [(LABEL_NODE.to_string(), self.config.node_id.clone())];
        let mut grouped: BTreeMap<WorkloadKey, WorkloadContainers> = BTreeMap::new();
        for container in self.runtime.list(&filter).await? {
            match identify(&container) {
                Some((key, role)) => grouped.entry(key).or_default().add(role, container),
                None => tracing::warn!(
                    container = %container.name,
                    "container carries this node's label but not a valid caas.pool/name/role; ignoring it"
                ),
            }
        }
        Ok(grouped)
    }

    /// Whether the workload waits for a new assignment (its spec cannot run as written).
    #[cfg(test)]
    pub async fn waits_for_new_spec(&self, key: &WorkloadKey) -> bool {
        self.backoff
            .lock()
            .await
            .get(key)
            .is_some_and(Backoff::parked)
    }

    /// One full pass. `previous` statuses are kept for workloads still backing off.
    pub async fn pass(
        &self,
        desired: &DesiredState,
        previous: &BTreeMap<WorkloadKey, WorkloadStatus>,
    ) -> Result<PassOutcome, RuntimeError> {
        let mut actual = self.actual().await?;
        // Forget the keys written into app containers that no longer exist.
        let app_ids: std::collections::BTreeSet<&str> = actual
            .values()
            .flat_map(|c| c.all(Role::App).iter().map(|a| a.id.as_str()))
            .collect();
        if let Ok(mut written) = self.keys_written.lock() {
            written.retain(|id, _| app_ids.contains(id.as_str()));
        }
        drop(app_ids);
        let now = Instant::now();
        let mut outcome = PassOutcome::default();

        let mut due = Vec::new();
        {
            let mut backoff = self.backoff.lock().await;
            backoff.retain(|key, _| desired.workloads.contains_key(key));
            self.settled
                .retain(|key| desired.workloads.contains_key(key));
            for (key, assignment) in &desired.workloads {
                let fingerprint = match assignment {
                    Ok(a) => format!("{:?}{}{}", a.desired, a.spec.generation, a.spec.app_hash()),
                    Err(e) => e.clone(),
                };
                let entry = backoff.entry(key.clone()).or_default();
                if entry.is_due(now, &fingerprint) {
                    let containers = actual.remove(key).unwrap_or_default();
                    let settled_fp = match assignment {
                        Ok(a) if a.desired == Desired::Run => {
                            Some(settled::fingerprint(a, &containers))
                        }
                        _ => None,
                    };
                    if let Some(status) = settled_fp
                        .as_deref()
                        .and_then(|fp| self.settled.reuse(key, fp, now))
                    {
                        outcome.statuses.insert(key.clone(), status);
                        continue;
                    }
                    due.push((key.clone(), assignment.clone(), containers, settled_fp));
                } else {
                    actual.remove(key);
                    if let Some(status) = previous.get(key) {
                        outcome.statuses.insert(key.clone(), status.clone());
                    }
                }
            }
        }

        let results: Vec<_> = futures::stream::iter(due)
            .map(|(key, assignment, containers, settled_fp)| async move {
                let result = self.converge(&key, assignment, containers).await;
                (key, result, settled_fp)
            })
            .buffer_unordered(PARALLEL_WORKLOADS)
            .collect()
            .await;

        let mut backoff = self.backoff.lock().await;
        for (key, result, settled_fp) in results {
            let entry = backoff.entry(key.clone()).or_default();
            match result {
                workload::Converged::Status {
                    status,
                    healthy,
                    park,
                    settle,
                } => {
                    self.settled
                        .record(&key, settled_fp, &status, healthy && settle, now);
                    if park {
                        tracing::warn!(workload = %key, "the spec cannot run as written; waiting for a new assignment (retried in 10 min)");
                        entry.park(now);
                    } else if healthy {
                        entry.succeeded();
                    } else {
                        entry.failed(now);
                    }
                    outcome.statuses.insert(key, status);
                }
                workload::Converged::Purged => outcome.purged.push(key),
                workload::Converged::PurgeFailed(status) => {
                    entry.failed(now);
                    outcome.statuses.insert(key, status);
                }
            }
        }
        drop(backoff);

        // What is left in `actual` is not assigned here any more. Removed in parallel like
        // converges are: each stop may take the whole grace period, and a node that returns
        // from a partition must drop every moved copy within one grace, not one per copy.
        if desired.authoritative {
            let unassigned: Vec<_> = actual
                .into_iter()
                .filter(|(_, c)| c.has_role(Role::App) || c.has_role(Role::Sandbox))
                .collect();
            let removals: Vec<_> = futures::stream::iter(unassigned)
                .map(|(key, containers)| async move {
                    let result = self.remove_workload(&key, &containers, false).await;
                    (key, result)
                })
                .buffer_unordered(PARALLEL_WORKLOADS)
                .collect()
                .await;
            for (key, result) in removals {
                match result {
                    Ok(()) => outcome.removed.push(key),
                    Err(e) => {
                        tracing::warn!(workload = %key, error = %e, "removing unassigned workload failed; will retry")
                    }
                }
            }
        } else if actual.values().any(|c| c.has_role(Role::App)) {
            tracing::warn!(
                workloads = actual.len(),
                "this node's assignment directory does not exist; leaving its containers alone"
            );
        }
        Ok(outcome)
    }

    async fn converge(
        &self,
        key: &WorkloadKey,
        assignment: Result<Assignment, String>,
        containers: WorkloadContainers,
    ) -> workload::Converged {
        let step = workload::WorkloadStep {
            runtime: &*self.runtime,
            config: &self.config,
            key,
            containers,
            ids: Default::default(),
            rich: false,
            keys: Vec::new(),
            keys_written: &self.keys_written,
            network: self.network.as_deref(),
            interfaces: Vec::new(),
            images: self.images.as_ref(),
            image: String::new(),
            pulling: None,
        };
        match assignment {
            Err(message) => step.report_unreadable(message).await,
            Ok(a) if a.desired == Desired::Purge => step.purge(&a).await,
            Ok(a) => step.run(&a).await,
        }
    }

    /// Removes a workload's app and sandbox (and, with `purge`, its data container).
    pub async fn remove_workload(
        &self,
        key: &WorkloadKey,
        containers: &WorkloadContainers,
        purge: bool,
    ) -> Result<(), RuntimeError> {
        tracing::info!(workload = %key, purge, "removing workload containers");
        let mut roles = vec![Role::App, Role::Sandbox];
        if purge {
            roles.push(Role::Data);
        }
        for role in roles {
            for c in containers.all(role) {
                self.runtime.stop(&c.id, self.config.stop_grace).await?;
                self.runtime.remove(&c.id, role == Role::Data).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
