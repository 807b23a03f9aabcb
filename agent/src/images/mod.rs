//! Images that are not on the node yet: the pool's registry proxies (followed in ZooKeeper) and
//! pulls through them. One pull per image however many workloads wait for it, its progress
//! readable while it runs, failures kept with a backoff so a dead registry is not hammered.

pub mod prewarm;
mod progress;
pub mod proxies;
pub mod prune;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caas_api::{ImageRef, PullProgress, RegistryProxy};
use tokio::sync::watch;

use crate::codes::EngineCode;
use crate::runtime::{ContainerRuntime, RegistryCredentials, RuntimeError};

pub use progress::Tally;

/// The first retry of a failed pull; doubled per failure up to `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Retries of a pull that filled the disk: from 30 s doubling to 10 minutes.
const DISK_FULL_RETRY: Duration = Duration::from_secs(30);
const DISK_FULL_MAX_RETRY: Duration = Duration::from_secs(600);
/// The engine reports every layer's download and extraction as it goes; this long without a
/// word means the registry stopped answering.
const STALL_AFTER: Duration = Duration::from_secs(300);
/// Progress wakes the reconcile loop at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Whether a workload's image can be used now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// On the node: create containers from `reference` (the workload's own name for it, or the
    /// proxy's name for an image referred to by digest, which Docker cannot tag).
    Local {
        reference: String,
        labels: BTreeMap<String, String>,
    },
    /// Being pulled; the workload waits (nothing of it is created meanwhile).
    Pulling(PullProgress),
}

/// Why an image cannot be had (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ImageError {
    pub code: EngineCode,
    pub message: String,
}

impl From<RuntimeError> for ImageError {
    fn from(e: RuntimeError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// What `resolve` does about an image that is not on the node.
enum Next {
    /// Its pull runs: report the progress.
    Wait(PullProgress),
    /// Its last pull failed and the retry is not due: report the failure.
    Fail(ImageError),
    /// Start a pull (after a failure, its backoff doubles from `Duration`).
    Start(PullProgress, Duration),
}

#[derive(Debug)]
enum PullState {
    Running(PullProgress),
    Failed {
        error: ImageError,
        retry_at: Instant,
        delay: Duration,
    },
}

/// Pulls images through the pool's registry proxies.
pub struct Puller<R: ?Sized> {
    runtime: Arc<R>,
    pool: String,
    /// Where the engine looks for registry CAs (`<dir>/<host:port>/ca.crt`).
    certs_dir: Option<PathBuf>,
    /// A pull that sends no progress for this long is given up (a proxy that accepted the
    /// connection and hangs would otherwise hold the pull, and its workloads, forever).
    stall_after: Duration,
    proxies: watch::Receiver<Arc<Vec<RegistryProxy>>>,
    pulls: Mutex<BTreeMap<String, PullState>>,
    /// Bumped when a pull makes progress, ends or fails.
    changed: watch::Sender<u64>,
    /// The images this node must keep, per source (`None` until that source has reported).
    wanted: Mutex<BTreeMap<WantedBy, Option<BTreeSet<String>>>>,
    /// When each image was last found on the node by `resolve` (a container may be about to
    /// be created from it: prune keeps it for `RECENTLY`).
    resolved: Mutex<BTreeMap<String, Instant>>,
}

/// How long an image found on the node for a workload or prewarm is safe from pruning.
const RECENTLY: Duration = Duration::from_secs(60);

/// Who says which images the node needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WantedBy {
    /// The node's assignments (only from a complete view).
    Assignments,
    /// The prewarms naming the node.
    Prewarms,
}

impl<R: ContainerRuntime + ?Sized> Puller<R> {
    pub fn new(
        runtime: Arc<R>,
        pool: String,
        certs_dir: Option<PathBuf>,
        proxies: watch::Receiver<Arc<Vec<RegistryProxy>>>,
    ) -> Self {
        Self {
            runtime,
            pool,
            certs_dir,
            stall_after: STALL_AFTER,
            proxies,
            pulls: Mutex::new(BTreeMap::new()),
            changed: watch::channel(0).0,
            wanted: Mutex::new([(WantedBy::Assignments, None), (WantedBy::Prewarms, None)].into()),
            resolved: Mutex::new(BTreeMap::new()),
        }
    }

    fn touch(&self, reference: &str) {
        let mut guard = match self.resolved.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        guard.retain(|_, at| now.duration_since(*at) < RECENTLY);
        guard.insert(reference.to_string(), now);
    }

    /// Images `resolve` found on the node within the last `RECENTLY`.
    pub fn recently_resolved(&self) -> BTreeSet<String> {
        let guard = match self.resolved.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        guard
            .iter()
            .filter(|(_, at)| now.duration_since(**at) < RECENTLY)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// What `source` needs on the node now.
    pub fn set_wanted(&self, source: WantedBy, images: BTreeSet<String>) {
        let mut guard = match self.wanted.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.insert(source, Some(images));
    }

    /// Every image some source needs, or `None` while a source has not reported yet.
    pub fn wanted(&self) -> Option<BTreeSet<String>> {
        let guard = match self.wanted.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut all = BTreeSet::new();
        for images in guard.values() {
            all.extend(images.as_ref()?.iter().cloned());
        }
        Some(all)
    }

    /// The registries the pool's proxies name (centers and proxies): images named on them are
    /// the ones this agent pulls (and may prune).
    pub fn registry_hosts(&self) -> BTreeSet<String> {
        self.proxies
            .borrow()
            .iter()
            .flat_map(|p| [p.center.clone(), p.host.clone()])
            .collect()
    }

    /// Gives up pulls that send no progress for `after` (tests use a short one).
    pub fn with_stall_after(mut self, after: Duration) -> Self {
        self.stall_after = after;
        self
    }

    /// Changes when a pull makes progress, ends or fails: the reconcile loop runs a pass, the
    /// prewarm worker reports.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn with_pulls<T>(&self, f: impl FnOnce(&mut BTreeMap<String, PullState>) -> T) -> T {
        let mut guard = match self.pulls.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Whether `image` is on the node; if not, starts (or reports) its pull through the pool's
    /// proxies. Never creates anything else.
    pub async fn resolve(self: &Arc<Self>, image: &str) -> Result<Availability, ImageError> {
        if let Some(labels) = self.runtime.image_labels(image).await? {
            self.touch(image);
            return Ok(Availability::Local {
                reference: image.to_string(),
                labels,
            });
        }
        let reference = ImageRef::parse("image", image).map_err(|e| ImageError {
            code: EngineCode::ImageNotFound,
            message: e.to_string(),
        })?;
        let proxies = self.mirrors_of(&reference)?;
        // An image named by digest cannot be tagged with the center's name: it is used under
        // the proxy's name, which may already be here.
        if reference.digest.is_some() {
            for proxy in &proxies {
                let local = reference.on_registry(&proxy.host);
                if let Some(labels) = self.runtime.image_labels(&local).await? {
                    self.touch(&local);
                    return Ok(Availability::Local {
                        reference: local,
                        labels,
                    });
                }
            }
        }
        let now = Instant::now();
        let next = self.with_pulls(|pulls| match pulls.get(image) {
            Some(PullState::Running(progress)) => Next::Wait(progress.clone()),
            Some(PullState::Failed {
                error, retry_at, ..
            }) if *retry_at > now => Next::Fail(error.clone()),
            previous => {
                let delay = match previous {
                    Some(PullState::Failed { delay, .. }) => *delay,
                    _ => Duration::ZERO,
                };
                let progress = PullProgress {
                    image: image.to_string(),
                    via: proxies[0].host.clone(),
                    ..Default::default()
                };
                pulls.insert(image.to_string(), PullState::Running(progress.clone()));
                Next::Start(progress, delay)
            }
        });
        match next {
            Next::Wait(progress) => Ok(Availability::Pulling(progress)),
            Next::Fail(error) => Err(error),
            Next::Start(progress, delay) => {
                let this = self.clone();
                let image = image.to_string();
                tokio::spawn(async move { this.pull(image, reference, proxies, delay).await });
                Ok(Availability::Pulling(progress))
            }
        }
    }

    /// The pool's proxies that mirror the image's registry, or why the image cannot be pulled.
    fn mirrors_of(&self, reference: &ImageRef) -> Result<Vec<RegistryProxy>, ImageError> {
        let all = self.proxies.borrow().clone();
        let Some(registry) = &reference.registry else {
            return Err(ImageError {
                code: EngineCode::ImageNotFound,
                message: format!(
                    "image {:?} is not on this node and names no registry; images are pulled only \
                     from the image center (e.g. center.example:5000/{}), through the pool's \
                     registry proxy; otherwise load or build it on the node first",
                    reference.on_registry("").trim_start_matches('/'),
                    reference.repository
                ),
            });
        };
        let mirrors: Vec<RegistryProxy> = all
            .iter()
            .filter(|p| &p.center == registry)
            .cloned()
            .collect();
        if mirrors.is_empty() {
            let known: Vec<&str> = all.iter().map(|p| p.center.as_str()).collect();
            return Err(ImageError {
                code: EngineCode::ImageNotFound,
                message: format!(
                    "image {} is not on this node and pool {} has no registry proxy for {registry} \
                     (its proxies mirror: {}); declare one with `caas --pool={} registry-proxy add`",
                    reference.on_registry(registry),
                    self.pool,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    },
                    self.pool
                ),
            });
        }
        Ok(mirrors)
    }

    async fn pull(
        self: Arc<Self>,
        image: String,
        reference: ImageRef,
        proxies: Vec<RegistryProxy>,
        delay: Duration,
    ) {
        let mut failures = Vec::new();
        for proxy in &proxies {
            match self.pull_through(&image, &reference, proxy).await {
                Ok(()) => {
                    self.with_pulls(|pulls| pulls.remove(&image));
                    tracing::info!(%image, via = %proxy.host, "image pulled");
                    self.notify();
                    return;
                }
                Err(e) => {
                    tracing::warn!(%image, proxy = %proxy.name, via = %proxy.host, error = %e.message, "pull failed");
                    // A full disk is the node's, not the proxy's: another proxy would only
                    // fill it again.
                    let disk_full = e.code == EngineCode::DiskFull;
                    failures.push((proxy, e));
                    if disk_full {
                        break;
                    }
                }
            }
        }
        // The failure people see: the first proxy's (a full disk wherever it happened), naming
        // every proxy that was tried.
        let code = if failures.iter().any(|(_, e)| e.code == EngineCode::DiskFull) {
            EngineCode::DiskFull
        } else {
            failures
                .first()
                .map(|(_, e)| e.code)
                .unwrap_or(EngineCode::PullFailed)
        };
        let message = failures
            .iter()
            .map(|(proxy, e)| {
                format!(
                    "through registry proxy {} ({}) of pool {}: {}",
                    proxy.name, proxy.host, self.pool, e.message
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        // Every attempt on a full disk fills it to the brim again (running apps that write
        // suffer): those wait much longer, until a prune or ops free space.
        let delay = if code == EngineCode::DiskFull {
            (delay * 2).clamp(DISK_FULL_RETRY, DISK_FULL_MAX_RETRY)
        } else {
            (delay * 2).clamp(FIRST_RETRY, MAX_RETRY)
        };
        self.with_pulls(|pulls| {
            pulls.insert(
                image.clone(),
                PullState::Failed {
                    error: ImageError {
                        code,
                        message: format!(
                            "pulling {image} failed {message} (retried in {}s)",
                            delay.as_secs()
                        ),
                    },
                    retry_at: Instant::now() + delay,
                    delay,
                },
            )
        });
        self.notify();
    }

    async fn pull_through(
        &self,
        image: &str,
        reference: &ImageRef,
        proxy: &RegistryProxy,
    ) -> Result<(), ImageError> {
        if let Some(pem) = &proxy.ca_pem {
            self.trust(&proxy.host, pem).await?;
        }
        let source = reference.on_registry(&proxy.host);
        let credentials = match (&proxy.username, &proxy.password) {
            (Some(username), Some(password)) => Some(RegistryCredentials {
                server: proxy.host.clone(),
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let runtime = self.runtime.clone();
        let pull_source = source.clone();
        let pull = tokio::spawn(async move {
            runtime
                .pull_image(&pull_source, credentials.as_ref(), events_tx)
                .await
        });
        let mut tally = Tally::default();
        let mut last_wake = Instant::now();
        loop {
            let event = match tokio::time::timeout(self.stall_after, events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(_) => {
                    // Dropping the request closes the connection: the engine stops this pull.
                    pull.abort();
                    return Err(ImageError {
                        code: EngineCode::RegistryUnreachable,
                        message: format!(
                            "pulling {source}: no progress for {} s (the registry stopped \
                             answering); given up",
                            self.stall_after.as_secs()
                        ),
                    });
                }
            };
            tally.add(&event);
            let progress = tally.progress(image, &proxy.host);
            self.with_pulls(|pulls| {
                pulls.insert(image.to_string(), PullState::Running(progress));
            });
            if last_wake.elapsed() >= PROGRESS_EVERY {
                last_wake = Instant::now();
                self.notify();
            }
        }
        match pull.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let mut error = ImageError::from(e);
                if error.code == EngineCode::ImageNotFound {
                    // distribution's pull-through cache hides its remote's failures: a tag it
                    // has not cached is "manifest unknown" both when the center lacks it and
                    // when the center cannot be reached. Say so instead of guessing.
                    error.message.push_str(&format!(
                        " (the proxy answers this too while it cannot reach the image center {}; \
                         retried until it appears)",
                        proxy.center
                    ));
                }
                return Err(error);
            }
            Err(join) => {
                return Err(ImageError {
                    code: EngineCode::PullFailed,
                    message: format!("the pull task ended: {join}"),
                })
            }
        }
        if reference.digest.is_none() {
            // The workload keeps the center's name; the node keeps the image under it too.
            self.runtime.tag_image(&source, image).await?;
        }
        Ok(())
    }

    /// Puts the proxy's CA where the engine looks for it (rewritten only when it changed).
    async fn trust(&self, host: &str, pem: &str) -> Result<(), ImageError> {
        let Some(dir) = &self.certs_dir else {
            return Ok(());
        };
        let dir = dir.join(host);
        let path = dir.join("ca.crt");
        if tokio::fs::read_to_string(&path).await.ok().as_deref() == Some(pem) {
            return Ok(());
        }
        let write = async {
            tokio::fs::create_dir_all(&dir).await?;
            // Two pulls through one proxy may write at once: each its own temporary file.
            let tmp = dir.join(format!(".ca.crt.{:016x}.tmp", rand::random::<u64>()));
            tokio::fs::write(&tmp, pem).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        write.await.map_err(|e| ImageError {
            code: EngineCode::PullFailed,
            message: format!(
                "writing the CA of registry proxy {host} to {}: {e} (check docker_certs_dir)",
                path.display()
            ),
        })
    }

    /// The failure kind of the last pull of `image`, if it failed (tests and prewarm).
    pub fn last_failure(&self, image: &str) -> Option<ImageError> {
        self.with_pulls(|pulls| match pulls.get(image) {
            Some(PullState::Failed { error, .. }) => Some(error.clone()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests;
