//! Writes observed workload status to `/caas/status/<node>/<pool>.<name>`, only when it changed
//! (ignoring the observation time), deletes the status of workloads that are gone, and clears
//! the assignment of a purged workload. What failed to write is retried on the next pass.

use std::collections::BTreeMap;

use caas_api::{WorkloadKey, WorkloadStatus, ZkLayout};
use caas_zk::zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

#[derive(Debug, thiserror::Error)]
pub enum StatusSyncError {
    #[error("writing {path}: {source}")]
    Write { path: String, source: ZkError },
    #[error("encoding the status of {key}: {source}")]
    Encode {
        key: WorkloadKey,
        source: serde_json::Error,
    },
}

/// Remembers what was last written, per workload.
#[derive(Debug)]
pub struct StatusWriter {
    layout: ZkLayout,
    node_id: String,
    written: BTreeMap<WorkloadKey, WorkloadStatus>,
}

/// Two statuses that differ only in when they were observed are the same.
fn same(a: &WorkloadStatus, b: &WorkloadStatus) -> bool {
    let strip = |s: &WorkloadStatus| {
        let mut s = s.clone();
        s.observed_at = 0;
        if let Some(e) = s.last_error.as_mut() {
            e.at = 0;
        }
        if let Some(h) = s.health.as_mut() {
            h.checked_at = 0;
        }
        s
    };
    strip(a) == strip(b)
}

impl StatusWriter {
    pub fn new(layout: ZkLayout, node_id: &str) -> Self {
        Self {
            layout,
            node_id: node_id.to_string(),
            written: BTreeMap::new(),
        }
    }

    /// Forget what was written (after a new session: another writer may have changed things).
    pub fn reset(&mut self) {
        self.written.clear();
    }

    /// Writes changed statuses and deletes the status of workloads in `gone`.
    pub async fn sync(
        &mut self,
        client: &Client,
        statuses: &BTreeMap<WorkloadKey, WorkloadStatus>,
        gone: &[WorkloadKey],
    ) -> Result<usize, StatusSyncError> {
        let mut writes = 0;
        for (key, status) in statuses {
            if self.written.get(key).is_some_and(|w| same(w, status)) {
                continue;
            }
            let path = self.layout.status(&self.node_id, key);
            let data = serde_json::to_vec(status).map_err(|source| StatusSyncError::Encode {
                key: key.clone(),
                source,
            })?;
            write(client, &path, &data, !self.written.contains_key(key)).await?;
            self.written.insert(key.clone(), status.clone());
            writes += 1;
        }
        for key in gone {
            let path = self.layout.status(&self.node_id, key);
            match client.delete(&path, None).await {
                Ok(()) | Err(ZkError::NoNode) => {
                    self.written.remove(key);
                }
                Err(source) => return Err(StatusSyncError::Write { path, source }),
            }
        }
        Ok(writes)
    }

    /// Deletes the assignment of a purged workload, only if it is still the purge instruction
    /// we acted on (`version`), so a re-create that raced with the purge is not lost.
    pub async fn clear_purged(
        &mut self,
        client: &Client,
        key: &WorkloadKey,
        version: i32,
    ) -> Result<(), StatusSyncError> {
        let path = self.layout.assignment(&self.node_id, key);
        match client.delete(&path, Some(version)).await {
            Ok(()) | Err(ZkError::NoNode) | Err(ZkError::BadVersion) => Ok(()),
            Err(source) => Err(StatusSyncError::Write { path, source }),
        }
    }
}

/// Writes one status znode. A status never written in this session is most likely new, so it
/// is created first (one fsynced write instead of a failed set, a mkdir and a create).
async fn write(
    client: &Client,
    path: &str,
    data: &[u8],
    probably_new: bool,
) -> Result<(), StatusSyncError> {
    let err = |source| StatusSyncError::Write {
        path: path.to_string(),
        source,
    };
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    if probably_new {
        match client.create(path, data, &options).await {
            Ok(_) => return Ok(()),
            Err(ZkError::NodeExists) => {}
            Err(ZkError::NoNode) => {
                if let Some((parent, _)) = path.rsplit_once('/') {
                    match client.mkdir(parent, &options).await {
                        Ok(()) | Err(ZkError::NodeExists) => {}
                        Err(source) => return Err(err(source)),
                    }
                }
                match client.create(path, data, &options).await {
                    Ok(_) => return Ok(()),
                    Err(ZkError::NodeExists) => {}
                    Err(source) => return Err(err(source)),
                }
            }
            Err(source) => return Err(err(source)),
        }
        return client
            .set_data(path, data, None)
            .await
            .map(|_| ())
            .map_err(err);
    }
    match client.set_data(path, data, None).await {
        Ok(_) => Ok(()),
        Err(ZkError::NoNode) => Box::pin(write(client, path, data, true)).await,
        Err(source) => Err(err(source)),
    }
}
