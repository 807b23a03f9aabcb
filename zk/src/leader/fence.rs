//! Fenced writes: a multi-op whose first op checks the leader's own candidate znode, so writes
//! prepared by a leader that has since been deposed (its session, and so its node, gone) fail
//! as a whole with [`FenceError::Fenced`] instead of clobbering the new leader's work.

use zookeeper_client::{
    Client, CreateOptions, Error as ZkErr, MultiWriteError, MultiWriteResult, MultiWriter,
};

/// Proof of leadership at the time it was handed out: the leader's candidate node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// Full path of the leader's candidate znode.
    pub path: String,
    /// Its data version when leadership was observed (candidates never change their data).
    pub version: i32,
    /// The session that owns the node.
    pub session_id: i64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FenceError {
    #[error("fenced: leader node {path} is gone or changed ({source}), this instance is no longer leader")]
    Fenced { path: String, source: ZkErr },
    #[error("fenced write: operation {index} on {path} failed: {source}")]
    Operation {
        index: usize,
        path: String,
        source: ZkErr,
    },
    #[error("fenced write (fence {fence}) failed: {source}")]
    Request { fence: String, source: ZkErr },
    #[error("fenced write: invalid operation on {path}: {source}")]
    InvalidOp { path: String, source: ZkErr },
}

impl FenceError {
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Fenced { .. })
    }
}

impl Fence {
    /// A multi-op writer that checks this fence before any of its operations.
    pub fn writer<'a>(&self, client: &'a Client) -> Result<FencedWriter<'a>, FenceError> {
        let mut writer = client.new_multi_writer();
        writer
            .add_check_version(&self.path, self.version)
            .map_err(|source| FenceError::InvalidOp {
                path: self.path.clone(),
                source,
            })?;
        Ok(FencedWriter {
            fence: self.clone(),
            writer,
            paths: Vec::new(),
        })
    }
}

/// Collects operations and commits them atomically behind the fence check.
pub struct FencedWriter<'a> {
    fence: Fence,
    writer: MultiWriter<'a>,
    /// Path of each added operation, to name it in errors.
    paths: Vec<String>,
}

impl std::fmt::Debug for FencedWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencedWriter")
            .field("fence", &self.fence)
            .field("paths", &self.paths)
            .finish()
    }
}

impl<'a> FencedWriter<'a> {
    fn added(&mut self, path: &str, r: Result<(), ZkErr>) -> Result<(), FenceError> {
        r.map_err(|source| FenceError::InvalidOp {
            path: path.to_string(),
            source,
        })?;
        self.paths.push(path.to_string());
        Ok(())
    }

    pub fn add_check_version(&mut self, path: &str, version: i32) -> Result<(), FenceError> {
        let r = self.writer.add_check_version(path, version);
        self.added(path, r)
    }

    pub fn add_create(
        &mut self,
        path: &str,
        data: &[u8],
        options: &CreateOptions<'_>,
    ) -> Result<(), FenceError> {
        let r = self.writer.add_create(path, data, options);
        self.added(path, r)
    }

    pub fn add_set_data(
        &mut self,
        path: &str,
        data: &[u8],
        expected_version: Option<i32>,
    ) -> Result<(), FenceError> {
        let r = self.writer.add_set_data(path, data, expected_version);
        self.added(path, r)
    }

    pub fn add_delete(
        &mut self,
        path: &str,
        expected_version: Option<i32>,
    ) -> Result<(), FenceError> {
        let r = self.writer.add_delete(path, expected_version);
        self.added(path, r)
    }

    /// Commits all operations or none. The results exclude the fence check, so index `i`
    /// belongs to the `i`-th added operation.
    pub async fn commit(mut self) -> Result<Vec<MultiWriteResult>, FenceError> {
        match self.writer.commit().await {
            Ok(results) => Ok(results.into_iter().skip(1).collect()),
            Err(MultiWriteError::OperationFailed { index: 0, source }) => Err(FenceError::Fenced {
                path: self.fence.path,
                source,
            }),
            Err(MultiWriteError::OperationFailed { index, source }) => {
                let path = self.paths.get(index - 1).cloned().unwrap_or_default();
                Err(FenceError::Operation {
                    index: index - 1,
                    path,
                    source,
                })
            }
            Err(MultiWriteError::RequestFailed { source }) => Err(FenceError::Request {
                fence: self.fence.path,
                source,
            }),
        }
    }
}
