//! The background loop of `PersistentEphemeral`: follows the published session, re-runs the
//! convergence step whenever something may have changed, and deregisters on cancellation.

use std::future::pending;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zookeeper_client::{Client, SessionState, WatchedEvent};

use super::sync::{sync_node, NodeWatch, Synced};
use super::{EphemeralOptions, EphemeralState};
use crate::backoff::Backoff;
use crate::client::is_connected;
use crate::session::{is_replaced, wait_for_client, ClientWatch};

/// Session ids kept as "ours" for stale-node takeover; older ones have long expired.
const REMEMBERED_SESSIONS: usize = 16;
/// Upper bound for deleting the node on shutdown when ZooKeeper is unreachable.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Ctx {
    pub(crate) path: String,
    pub(crate) clients: ClientWatch,
    pub(crate) data: watch::Receiver<Vec<u8>>,
    pub(crate) state: watch::Sender<EphemeralState>,
    pub(crate) options: EphemeralOptions,
    pub(crate) cancel: CancellationToken,
}

impl Ctx {
    fn publish(&self, state: EphemeralState) {
        self.state
            .send_if_modified(|s| std::mem::replace(s, state) != state);
    }
}

enum End {
    Cancelled,
    SessionLost,
    Replaced,
}

pub(crate) async fn run(mut ctx: Ctx) {
    let mut previous: Vec<i64> = Vec::new();
    loop {
        ctx.publish(EphemeralState::Connecting);
        let mut clients = ctx.clients.clone();
        let Some(client) = wait_for_client(&mut clients, &ctx.cancel).await else {
            break;
        };
        let end = serve(&mut ctx, &client, &previous).await;
        if ctx.cancel.is_cancelled() || matches!(end, End::Cancelled) {
            deregister(&client, &ctx.path).await;
            break;
        }
        if matches!(end, End::SessionLost) {
            warn!(path = %ctx.path, session = %client.session_id(), "session lost, registering again in a new one");
        }
        previous.push(client.session_id().0);
        if previous.len() > REMEMBERED_SESSIONS {
            previous.remove(0);
        }
    }
    ctx.publish(EphemeralState::Stopped);
}

async fn serve(ctx: &mut Ctx, client: &Client, previous: &[i64]) -> End {
    let mut states = client.state_watcher();
    let mut node_watch: Option<NodeWatch> = None;
    let mut need_sync = true;
    let mut wake_at = Instant::now() + ctx.options.verify_interval;
    let mut backoff = Backoff::new(Duration::from_millis(200), ctx.options.conflict_retry);
    loop {
        if client.state().is_terminated() {
            return End::SessionLost;
        }
        if !is_connected(client) {
            ctx.publish(EphemeralState::Disconnected);
        } else if need_sync {
            need_sync = false;
            let data = ctx.data.borrow_and_update().clone();
            match sync_node(client, &ctx.path, &data, previous).await {
                Ok(Synced::Registered(watch)) => {
                    ctx.publish(EphemeralState::Registered {
                        session_id: client.session_id().0,
                    });
                    node_watch = Some(watch);
                    wake_at = Instant::now() + ctx.options.verify_interval;
                    backoff.reset();
                }
                Ok(Synced::Conflict { owner, watch }) => {
                    if *ctx.state.borrow() != (EphemeralState::Conflict { owner }) {
                        warn!(path = %ctx.path, owner = %format_args!("{owner:#x}"), "node is owned by another session, not taking it over");
                    }
                    ctx.publish(EphemeralState::Conflict { owner });
                    node_watch = Some(watch);
                    wake_at = Instant::now() + ctx.options.conflict_retry;
                }
                Err(e) if e.is_session_lost() => return End::SessionLost,
                Err(e) => {
                    warn!(error = %e, "registering ephemeral node failed, retrying");
                    node_watch = None;
                    wake_at = Instant::now() + backoff.next_delay();
                }
            }
        }
        tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return End::Cancelled,
            state = states.changed() => match state {
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    info!(path = %ctx.path, "reconnected, verifying ephemeral node");
                    need_sync = true;
                },
                s if s.is_terminated() => return End::SessionLost,
                _ => {},
            },
            r = ctx.clients.changed() => {
                if r.is_err() || is_replaced(&ctx.clients, client) {
                    return End::Replaced;
                }
            },
            r = ctx.data.changed() => {
                if r.is_err() {
                    return End::Cancelled;
                }
                need_sync = true;
            },
            _ = next_event(&mut node_watch) => {
                node_watch = None;
                need_sync = true;
            },
            _ = sleep_until(wake_at) => {
                need_sync = true;
                wake_at = Instant::now() + ctx.options.verify_interval;
            },
        }
    }
}

async fn next_event(watch: &mut Option<NodeWatch>) -> WatchedEvent {
    match watch {
        Some(w) => w.await,
        None => pending().await,
    }
}

/// Deletes the node if the current session owns it, so peers see the deregistration at once
/// instead of after the session timeout.
async fn deregister(client: &Client, path: &str) {
    let attempt = async {
        let stat = client.check_stat(path).await?;
        match stat {
            Some(stat) if stat.ephemeral_owner == client.session_id().0 => {
                client.delete(path, Some(stat.version)).await
            }
            _ => Ok(()),
        }
    };
    let timeout = client.session_timeout().min(DEREGISTER_TIMEOUT);
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => info!(path, "ephemeral node deregistered"),
        Ok(Err(e)) => warn!(path, error = %e, "deregistering ephemeral node failed"),
        Err(_) => warn!(path, "deregistering ephemeral node timed out"),
    }
}
