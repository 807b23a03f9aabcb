//! The session owner: keeps one live ZooKeeper session published on a watch channel and opens a
//! new one when it expires (or is closed, or fails authentication). Disconnects are left to the
//! client, which reconnects by itself while the session is still valid on the servers.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zookeeper_client::Client;

use crate::backoff::Backoff;
use crate::client::{connect, ClientError, ZkConfig};

/// The current session's client, `None` while there is none. Recipes follow it.
pub type ClientWatch = watch::Receiver<Option<Client>>;

/// Owns the session. Dropping it (or cancelling its token) stops the owner, which then
/// publishes `None`; the session itself closes once every clone of its client is dropped.
#[derive(Debug)]
pub struct ZkSession {
    clients: ClientWatch,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ZkSession {
    /// Starts connecting in the background (must be called inside a tokio runtime).
    pub fn start(config: ZkConfig, cancel: CancellationToken) -> Result<Self, ClientError> {
        config.validate()?;
        let cancel = cancel.child_token();
        let (tx, clients) = watch::channel(None);
        let task = tokio::spawn(run(config, tx, cancel.clone()));
        Ok(Self {
            clients,
            cancel,
            task: Some(task),
        })
    }

    /// Follows the current client across session replacements.
    pub fn clients(&self) -> ClientWatch {
        self.clients.clone()
    }

    /// The current client, if a session is established.
    pub fn current(&self) -> Option<Client> {
        self.clients.borrow().clone()
    }

    /// Stops the owner and waits for it; its client is dropped and `None` published.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ZkSession {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn run(config: ZkConfig, tx: watch::Sender<Option<Client>>, cancel: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !cancel.is_cancelled() {
        let client = tokio::select! {
            _ = cancel.cancelled() => break,
            r = connect(&config) => match r {
                Ok(client) => client,
                Err(e) => {
                    warn!(servers = %config.servers, error = %e, "ZooKeeper connect failed, retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_delay()) => continue,
                    }
                }
            },
        };
        backoff.reset();
        info!(session = %client.session_id(), timeout = ?client.session_timeout(), "ZooKeeper session established");
        let mut states = client.state_watcher();
        tx.send_replace(Some(client.clone()));
        // The watcher only reports changes after its creation, so check the state it started from.
        let mut state = client.state();
        while !state.is_terminated() {
            state = tokio::select! {
                _ = cancel.cancelled() => break,
                s = states.changed() => s,
            };
        }
        tx.send_replace(None);
        if state.is_terminated() {
            warn!(session = %client.session_id(), %state, "ZooKeeper session ended, opening a new one");
        }
    }
    tx.send_replace(None);
}

/// Waits until `clients` holds a client whose session is not over. `None` when `cancel` fires
/// or the publisher is gone.
pub async fn wait_for_client(
    clients: &mut ClientWatch,
    cancel: &CancellationToken,
) -> Option<Client> {
    loop {
        let current = clients.borrow_and_update().clone();
        if let Some(client) = current {
            if !client.state().is_terminated() {
                return Some(client);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            r = clients.changed() => r.ok()?,
        }
    }
}

/// Whether `clients` now publishes something other than the session of `client`.
pub(crate) fn is_replaced(clients: &ClientWatch, client: &Client) -> bool {
    match &*clients.borrow() {
        Some(c) => c.session_id() != client.session_id(),
        None => true,
    }
}
