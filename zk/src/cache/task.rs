//! The background loop of `ChildrenCache`: follows the published session, keeps a persistent
//! recursive watch on the parent, refreshes children named by events, re-lists when events may
//! have been missed, and publishes a snapshot whenever the content changed.

use std::collections::BTreeSet;
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zookeeper_client::{
    AddWatchMode, Client, Error as ZkErr, EventType, PersistentWatcher, SessionState, WatchedEvent,
};

use super::load::{fetch, list_all};
use super::{CacheError, CacheOptions, ChildMap};
use crate::backoff::Backoff;
use crate::client::is_connected;
use crate::path;
use crate::session::{is_replaced, wait_for_client, ClientWatch};

pub(crate) struct Ctx {
    pub(crate) parent: String,
    pub(crate) clients: ClientWatch,
    pub(crate) options: CacheOptions,
    pub(crate) snapshot: watch::Sender<Arc<ChildMap>>,
    pub(crate) synced: watch::Sender<bool>,
    pub(crate) cancel: CancellationToken,
}

pub(crate) async fn run(mut ctx: Ctx) {
    // Servers without persistent watches (before 3.6) leave us with periodic re-lists only.
    let mut watch_supported = true;
    loop {
        let mut clients = ctx.clients.clone();
        let Some(client) = wait_for_client(&mut clients, &ctx.cancel).await else {
            break;
        };
        Session {
            ctx: &mut ctx,
            client: &client,
            watch_supported: &mut watch_supported,
        }
        .serve()
        .await;
        if ctx.cancel.is_cancelled() {
            break;
        }
    }
}

/// What an event asks for.
enum Need {
    Nothing,
    Child(String),
    Relist,
    SessionOver,
}

struct Session<'a> {
    ctx: &'a mut Ctx,
    client: &'a Client,
    watch_supported: &'a mut bool,
}

impl Session<'_> {
    async fn serve(&mut self) {
        let mut states = self.client.state_watcher();
        let mut watcher: Option<PersistentWatcher> = None;
        let mut need_relist = true;
        let mut pending_children = BTreeSet::new();
        let mut wake_at = Instant::now() + self.ctx.options.relist_interval;
        let mut backoff =
            Backoff::new(Duration::from_millis(200), self.ctx.options.relist_interval);
        loop {
            if self.client.state().is_terminated() {
                return;
            }
            if is_connected(self.client) {
                let result = self
                    .catch_up(&mut watcher, &mut need_relist, &mut pending_children)
                    .await;
                match result {
                    Ok(true) => {
                        wake_at = Instant::now() + self.ctx.options.relist_interval;
                        backoff.reset();
                    }
                    Ok(false) => {}
                    Err(e) if e.is_session_lost() => return,
                    Err(e) => {
                        warn!(error = %e, "children cache refresh failed, re-listing later");
                        need_relist = false;
                        pending_children.clear();
                        wake_at = Instant::now() + backoff.next_delay();
                    }
                }
            }
            tokio::select! {
                biased;
                _ = self.ctx.cancel.cancelled() => return,
                state = states.changed() => match state {
                    SessionState::SyncConnected | SessionState::ConnectedReadOnly => need_relist = true,
                    s if s.is_terminated() => return,
                    _ => {},
                },
                r = self.ctx.clients.changed() => {
                    if r.is_err() || is_replaced(&self.ctx.clients, self.client) {
                        return;
                    }
                },
                event = next_event(&mut watcher) => {
                    let mut event = Some(event);
                    // Take a burst of events in one go so it costs one snapshot, not one each.
                    while let Some(e) = event {
                        match self.classify(&e) {
                            Need::Nothing => {},
                            Need::Child(name) => { pending_children.insert(name); },
                            Need::Relist => need_relist = true,
                            Need::SessionOver => return,
                        }
                        event = watcher.as_mut().and_then(|w| w.changed().now_or_never());
                    }
                },
                _ = sleep_until(wake_at) => {
                    need_relist = true;
                    wake_at = Instant::now() + self.ctx.options.relist_interval;
                },
            }
        }
    }

    /// Arms the watch if needed, then re-lists or refreshes what events named. True after a
    /// full re-list.
    async fn catch_up(
        &mut self,
        watcher: &mut Option<PersistentWatcher>,
        need_relist: &mut bool,
        pending: &mut BTreeSet<String>,
    ) -> Result<bool, CacheError> {
        let parent = self.ctx.parent.clone();
        if watcher.is_none() && *self.watch_supported {
            match self
                .client
                .watch(&parent, AddWatchMode::PersistentRecursive)
                .await
            {
                Ok(w) => {
                    *watcher = Some(w);
                    // Events before the watch existed are unknown: re-list behind it.
                    *need_relist = true;
                }
                Err(ZkErr::Unimplemented) => {
                    warn!(
                        parent,
                        "server lacks persistent watches, children cache relies on re-listing"
                    );
                    *self.watch_supported = false;
                }
                Err(source) => {
                    return Err(CacheError::Zk {
                        path: parent,
                        source,
                    })
                }
            }
        }
        if *need_relist {
            let map = list_all(self.client, &parent).await?;
            *need_relist = false;
            pending.clear();
            self.publish(|current| if *current != map { Some(map) } else { None });
            self.ctx
                .synced
                .send_if_modified(|s| !std::mem::replace(s, true));
            return Ok(true);
        }
        if !pending.is_empty() {
            let names: Vec<String> = std::mem::take(pending).into_iter().collect();
            let fetched = fetch(self.client, &parent, names).await?;
            self.publish(|current| {
                let mut next = current.clone();
                for (name, entry) in fetched {
                    match entry {
                        Some(e) => next.insert(name, e),
                        None => next.remove(&name),
                    };
                }
                (next != *current).then_some(next)
            });
        }
        Ok(false)
    }

    fn publish(&self, update: impl FnOnce(&ChildMap) -> Option<ChildMap>) {
        self.ctx.snapshot.send_if_modified(|snapshot| match update(snapshot) {
            Some(next) => {
                debug!(parent = %self.ctx.parent, children = next.len(), "children cache changed");
                *snapshot = Arc::new(next);
                true
            },
            None => false,
        });
    }

    fn classify(&self, event: &WatchedEvent) -> Need {
        if event.event_type == EventType::Session {
            return match event.session_state {
                // Events during the reconnect may be lost (ZOOKEEPER-4698).
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => Need::Relist,
                s if s.is_terminated() => Need::SessionOver,
                _ => Need::Nothing,
            };
        }
        if event.path == self.ctx.parent {
            return Need::Relist;
        }
        match path::child_name(&self.ctx.parent, &event.path) {
            Some(name) => Need::Child(name.to_string()),
            // Grandchildren: the recursive watch reports them too, but they are not cached.
            None => Need::Nothing,
        }
    }
}

async fn next_event(watcher: &mut Option<PersistentWatcher>) -> WatchedEvent {
    match watcher {
        Some(w) => w.changed().await,
        None => pending().await,
    }
}
