//! Attached execs end with their owner: [`ExecGuard`] ends an exec's processes (`kill_exec`)
//! when it is dropped, whatever dropped it (a closed socket, a client gone mid-body, a panic),
//! unless its owner already did. The ending runs on the agent's task tracker, so a stopping
//! agent waits for it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use super::ContainerRuntime;

/// Ends an exec when dropped; [`ExecGuard::end`] does it in place and waits.
pub struct ExecGuard<R: ContainerRuntime + ?Sized> {
    runtime: Arc<R>,
    exec_id: String,
    /// SIGHUP, then SIGKILL after this long (at once when zero).
    grace: Duration,
    tasks: TaskTracker,
    armed: bool,
}

impl<R: ContainerRuntime + ?Sized> std::fmt::Debug for ExecGuard<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecGuard")
            .field("exec_id", &self.exec_id)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

impl<R: ContainerRuntime + ?Sized> ExecGuard<R> {
    /// Guards `exec_id`; a drop ends it on `tasks`.
    pub fn new(runtime: Arc<R>, exec_id: &str, grace: Duration, tasks: TaskTracker) -> Self {
        Self {
            runtime,
            exec_id: exec_id.to_string(),
            grace,
            tasks,
            armed: true,
        }
    }

    pub fn exec_id(&self) -> &str {
        &self.exec_id
    }

    /// Ends the exec's processes now and waits until they are gone.
    pub async fn end(mut self) {
        self.armed = false;
        if let Err(e) = self.runtime.kill_exec(&self.exec_id, self.grace).await {
            tracing::warn!(exec = %self.exec_id, error = %e, "ending an exec failed");
        }
    }
}

impl<R: ContainerRuntime + ?Sized> Drop for ExecGuard<R> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(exec = %self.exec_id, "an exec outlived the runtime; it was not ended");
            return;
        };
        let runtime = self.runtime.clone();
        let exec_id = std::mem::take(&mut self.exec_id);
        let grace = self.grace;
        self.tasks.spawn_on(
            async move {
                if let Err(e) = runtime.kill_exec(&exec_id, grace).await {
                    tracing::warn!(exec = %exec_id, error = %e, "ending an exec failed");
                }
            },
            &handle,
        );
    }
}
