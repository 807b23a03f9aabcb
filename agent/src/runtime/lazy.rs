//! A `ContainerRuntime` that connects to Docker on first use and reconnects after the engine
//! went away, so a missing or stopped engine is an error the agent reports and retries, not a
//! crash at start.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::RwLock;

use super::{
    AttachedExec, ByteStream, ContainerDetails, ContainerRuntime, CreateRequest, DockerRuntime,
    ExecAttachRequest, ExecOutput, ExecRequest, ExecStatus, ManagedContainer, PathStat,
    RuntimeError,
};

pub struct LazyDocker {
    socket: String,
    connected: RwLock<Option<DockerRuntime>>,
}

impl LazyDocker {
    pub fn new(socket: &str) -> Self {
        Self {
            socket: socket.to_string(),
            connected: RwLock::new(None),
        }
    }

    async fn engine(&self) -> Result<DockerRuntime, RuntimeError> {
        if let Some(docker) = self.connected.read().await.as_ref() {
            return Ok(docker.clone());
        }
        let mut slot = self.connected.write().await;
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        let docker = DockerRuntime::connect(&self.socket).await?;
        tracing::info!(socket = %self.socket, api_version = %docker.api_version(), "connected to the Docker engine");
        *slot = Some(docker.clone());
        Ok(docker)
    }

    /// Forgets the connection after the engine became unreachable, so the next call negotiates
    /// again (the engine may come back as a different version).
    async fn check<T>(&self, result: Result<T, RuntimeError>) -> Result<T, RuntimeError> {
        if let Err(RuntimeError::Unavailable(_)) = &result {
            *self.connected.write().await = None;
        }
        result
    }
}

#[async_trait]
impl ContainerRuntime for LazyDocker {
    async fn ping(&self) -> Result<(), RuntimeError> {
        let r = self.engine().await?.ping().await;
        self.check(r).await
    }
    async fn list(
        &self,
        labels: &[(String, String)],
    ) -> Result<Vec<ManagedContainer>, RuntimeError> {
        let r = self.engine().await?.list(labels).await;
        self.check(r).await
    }
    async fn inspect(&self, id: &str) -> Result<ContainerDetails, RuntimeError> {
        let r = self.engine().await?.inspect(id).await;
        self.check(r).await
    }
    async fn image_labels(
        &self,
        image: &str,
    ) -> Result<Option<BTreeMap<String, String>>, RuntimeError> {
        let r = self.engine().await?.image_labels(image).await;
        self.check(r).await
    }
    async fn upload(&self, id: &str, dest: &str, tar: Vec<u8>) -> Result<(), RuntimeError> {
        let r = self.engine().await?.upload(id, dest, tar).await;
        self.check(r).await
    }
    async fn read_file(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>, RuntimeError> {
        let r = self.engine().await?.read_file(id, path).await;
        self.check(r).await
    }
    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        let r = self.engine().await?.exec(id, request).await;
        self.check(r).await
    }
    async fn exec_attach(
        &self,
        id: &str,
        request: &ExecAttachRequest,
    ) -> Result<AttachedExec, RuntimeError> {
        let r = self.engine().await?.exec_attach(id, request).await;
        self.check(r).await
    }
    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        let r = self.engine().await?.resize_exec(exec_id, cols, rows).await;
        self.check(r).await
    }
    async fn exec_status(&self, exec_id: &str) -> Result<ExecStatus, RuntimeError> {
        let r = self.engine().await?.exec_status(exec_id).await;
        self.check(r).await
    }
    async fn kill_exec(&self, exec_id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let r = self.engine().await?.kill_exec(exec_id, grace).await;
        self.check(r).await
    }
    async fn follow_logs(&self, id: &str, tail: usize) -> Result<ByteStream, RuntimeError> {
        let r = self.engine().await?.follow_logs(id, tail).await;
        self.check(r).await
    }
    async fn stat_path(&self, id: &str, path: &str) -> Result<Option<PathStat>, RuntimeError> {
        let r = self.engine().await?.stat_path(id, path).await;
        self.check(r).await
    }
    async fn create(&self, request: &CreateRequest) -> Result<String, RuntimeError> {
        let r = self.engine().await?.create(request).await;
        self.check(r).await
    }
    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let r = self.engine().await?.start(id).await;
        self.check(r).await
    }
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let r = self.engine().await?.stop(id, grace).await;
        self.check(r).await
    }
    async fn remove(&self, id: &str, volumes: bool) -> Result<(), RuntimeError> {
        let r = self.engine().await?.remove(id, volumes).await;
        self.check(r).await
    }
    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError> {
        let r = self.engine().await?.logs(id, tail).await;
        self.check(r).await
    }
    async fn pull_image(
        &self,
        reference: &str,
        credentials: Option<&super::RegistryCredentials>,
        progress: tokio::sync::mpsc::UnboundedSender<super::PullEvent>,
    ) -> Result<(), RuntimeError> {
        let r = self
            .engine()
            .await?
            .pull_image(reference, credentials, progress)
            .await;
        self.check(r).await
    }
    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        let r = self.engine().await?.tag_image(source, target).await;
        self.check(r).await
    }
    async fn list_images(&self) -> Result<Vec<super::ImageInfo>, RuntimeError> {
        let r = self.engine().await?.list_images().await;
        self.check(r).await
    }
    async fn remove_image(&self, id: &str) -> Result<bool, RuntimeError> {
        let r = self.engine().await?.remove_image(id).await;
        self.check(r).await
    }
    async fn import_image(
        &self,
        tag: &str,
        rootfs_tar: Vec<u8>,
        changes: Vec<String>,
    ) -> Result<(), RuntimeError> {
        let r = self
            .engine()
            .await?
            .import_image(tag, rootfs_tar, changes)
            .await;
        self.check(r).await
    }
}
