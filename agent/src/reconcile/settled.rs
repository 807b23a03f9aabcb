//! Settled workloads: a plain workload (not rich, no networks) whose last converge found
//! everything right, and whose containers (ids, running, spec hashes) and assignment are still
//! exactly what they were then, is not converged again on every timer pass: its last status is
//! kept without a single engine call, until `FULL_RESYNC` has passed since it was last looked
//! at in full. Any change in the listing (a container stopped, removed, replaced) or in the
//! assignment makes the next pass a full one at once. Rich workloads (their programs are read
//! every pass) and networked ones (wiring repairs) always converge in full.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use caas_api::{Assignment, WorkloadKey, WorkloadStatus};
use sha2::Digest;

use super::WorkloadContainers;
use crate::naming::spec_hash;
use crate::runtime::Role;

/// Longest a settled workload goes without a full converge (inspect, image check).
pub const FULL_RESYNC: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry {
    fingerprint: String,
    status: WorkloadStatus,
    at: Instant,
}

/// The settled workloads of one reconciler.
#[derive(Debug, Default)]
pub struct Settled {
    entries: Mutex<BTreeMap<WorkloadKey, Entry>>,
}

/// What must not change for a settled workload to stay settled: the assignment as written
/// and, per role, each listed container's id, running flag and spec hash.
pub fn fingerprint(assignment: &Assignment, containers: &WorkloadContainers) -> String {
    let mut h = sha2::Sha256::new();
    h.update(serde_json::to_vec(assignment).unwrap_or_default());
    for role in [Role::Sandbox, Role::Data, Role::App] {
        for c in containers.all(role) {
            h.update(role.as_str());
            h.update(&c.id);
            h.update([u8::from(c.running)]);
            h.update(spec_hash(c));
        }
    }
    hex::encode(h.finalize())
}

impl Settled {
    /// The kept status, when `key` is settled with this `fingerprint` and recent enough.
    pub fn reuse(
        &self,
        key: &WorkloadKey,
        fingerprint: &str,
        now: Instant,
    ) -> Option<WorkloadStatus> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(key)?;
        (e.fingerprint == fingerprint && now.duration_since(e.at) < FULL_RESYNC)
            .then(|| e.status.clone())
    }

    /// Records a full converge: settled when `settle`, forgotten otherwise.
    pub fn record(
        &self,
        key: &WorkloadKey,
        fingerprint: Option<String>,
        status: &WorkloadStatus,
        settle: bool,
        now: Instant,
    ) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        match fingerprint.filter(|_| settle) {
            Some(fingerprint) => {
                entries.insert(
                    key.clone(),
                    Entry {
                        fingerprint,
                        status: status.clone(),
                        at: now,
                    },
                );
            }
            None => {
                entries.remove(key);
            }
        }
    }

    /// Forgets workloads no longer assigned.
    pub fn retain(&self, keep: impl Fn(&WorkloadKey) -> bool) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|k, _| keep(k));
        }
    }
}
