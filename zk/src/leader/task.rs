//! The background loop of `LeaderLatch`: follows the published session, re-runs the election
//! step when a watch fires or the connection comes back, and publishes leadership.

use std::future::pending;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zookeeper_client::{Client, SessionState, WatchedEvent};

use super::step::{Candidate, Outcome, Watch};
use super::Leadership;
use crate::backoff::Backoff;
use crate::client::is_connected;
use crate::path;
use crate::session::{is_replaced, wait_for_client, ClientWatch};

/// Re-check even without watch events, in case one was missed.
const RECHECK_INTERVAL: Duration = Duration::from_secs(10);
const RESIGN_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Ctx {
    pub(crate) dir: String,
    pub(crate) data: Vec<u8>,
    pub(crate) clients: ClientWatch,
    pub(crate) leadership: watch::Sender<Leadership>,
    pub(crate) cancel: CancellationToken,
}

impl Ctx {
    fn publish(&self, next: Leadership) {
        self.leadership.send_if_modified(|current| {
            if *current == next {
                return false;
            }
            match &next {
                Leadership::Leader(f) => info!(dir = %self.dir, node = %f.path, "became leader"),
                Leadership::NotLeader if current.is_leader() => {
                    warn!(dir = %self.dir, "stepped down as leader")
                }
                Leadership::NotLeader => {}
            }
            *current = next.clone();
            true
        });
    }
}

pub(crate) async fn run(mut ctx: Ctx) {
    loop {
        ctx.publish(Leadership::NotLeader);
        let mut clients = ctx.clients.clone();
        let Some(client) = wait_for_client(&mut clients, &ctx.cancel).await else {
            break;
        };
        let mut mine = None;
        serve(&mut ctx, &client, &mut mine).await;
        ctx.publish(Leadership::NotLeader);
        if let Some(mine) = mine {
            resign(&client, &path::join(&ctx.dir, &mine)).await;
        }
        if ctx.cancel.is_cancelled() {
            break;
        }
    }
    ctx.publish(Leadership::NotLeader);
}

/// Runs the election on one session until it ends, is replaced, or the latch is cancelled.
async fn serve(ctx: &mut Ctx, client: &Client, mine: &mut Option<String>) {
    let nonce = format!("{:016x}", rand::rng().random::<u64>());
    let mut states = client.state_watcher();
    let mut watch: Option<Watch> = None;
    let mut need_step = true;
    let mut wake_at = Instant::now() + RECHECK_INTERVAL;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        if client.state().is_terminated() {
            return;
        }
        if !is_connected(client) {
            // Disconnected may become expired without us hearing about it: stop leading now.
            ctx.publish(Leadership::NotLeader);
        } else if need_step {
            need_step = false;
            let mut candidate = Candidate {
                client,
                dir: &ctx.dir,
                data: &ctx.data,
                nonce: &nonce,
                mine,
            };
            match candidate.step().await {
                Ok(Outcome::Leader { fence, watch: w }) => {
                    ctx.publish(Leadership::Leader(fence));
                    watch = Some(w);
                    wake_at = Instant::now() + RECHECK_INTERVAL;
                    backoff.reset();
                }
                Ok(Outcome::Follower { watch: w }) => {
                    ctx.publish(Leadership::NotLeader);
                    watch = Some(w);
                    wake_at = Instant::now() + RECHECK_INTERVAL;
                    backoff.reset();
                }
                Err(e) if e.is_session_lost() => return,
                Err(e) => {
                    warn!(error = %e, "leader election step failed, retrying");
                    ctx.publish(Leadership::NotLeader);
                    watch = None;
                    wake_at = Instant::now() + backoff.next_delay();
                }
            }
        }
        tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return,
            state = states.changed() => match state {
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => need_step = true,
                s if s.is_terminated() => return,
                _ => {},
            },
            r = ctx.clients.changed() => {
                if r.is_err() || is_replaced(&ctx.clients, client) {
                    return;
                }
            },
            _ = next_event(&mut watch) => {
                watch = None;
                need_step = true;
            },
            _ = sleep_until(wake_at) => {
                need_step = true;
                wake_at = Instant::now() + RECHECK_INTERVAL;
            },
        }
    }
}

async fn next_event(watch: &mut Option<Watch>) -> WatchedEvent {
    match watch {
        Some(w) => w.await,
        None => pending().await,
    }
}

/// Deletes our candidate so the next one takes over at once rather than after session expiry.
async fn resign(client: &Client, node: &str) {
    if client.state().is_terminated() {
        return;
    }
    let timeout = client.session_timeout().min(RESIGN_TIMEOUT);
    match tokio::time::timeout(timeout, client.delete(node, None)).await {
        Ok(Ok(())) | Ok(Err(zookeeper_client::Error::NoNode)) => {
            info!(node, "withdrew leader candidacy")
        }
        Ok(Err(e)) => warn!(node, error = %e, "withdrawing leader candidacy failed"),
        Err(_) => warn!(node, "withdrawing leader candidacy timed out"),
    }
}
