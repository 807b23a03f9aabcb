//! One convergence step for the ephemeral node: read it (arming a watch), then create, update,
//! replace or leave it alone according to who owns it.

use futures::future::BoxFuture;
use futures::FutureExt;
use tracing::{debug, info};
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkErr, WatchedEvent};

use super::owner::{decide, OwnerDecision};
use super::EphemeralError;
use crate::client::ensure_path;
use crate::path;

/// A pending one-shot watch on the node (data change or deletion).
pub(crate) type NodeWatch = BoxFuture<'static, WatchedEvent>;

pub(crate) enum Synced {
    Registered(NodeWatch),
    Conflict { owner: i64, watch: NodeWatch },
}

/// Races with other writers are retried a few times before giving the step up.
const ATTEMPTS: usize = 5;

pub(crate) async fn sync_node(
    client: &Client,
    node: &str,
    data: &[u8],
    previous: &[i64],
) -> Result<Synced, EphemeralError> {
    let zk = |source| EphemeralError::Zk {
        path: node.to_string(),
        source,
    };
    let me = client.session_id().0;
    for _ in 0..ATTEMPTS {
        match client.get_and_watch_data(node).await {
            Ok((current, stat, watcher)) => match decide(stat.ephemeral_owner, me, previous) {
                OwnerDecision::Ours => {
                    if current != data {
                        match client.set_data(node, data, Some(stat.version)).await {
                            // The watch fires for this write, which re-verifies the node.
                            Ok(_) | Err(ZkErr::BadVersion) | Err(ZkErr::NoNode) => {}
                            Err(e) => return Err(zk(e)),
                        }
                    }
                    return Ok(Synced::Registered(watcher.changed().boxed()));
                }
                OwnerDecision::Stale => {
                    info!(
                        node,
                        owner = stat.ephemeral_owner,
                        "replacing node left by our previous session"
                    );
                    match client.delete(node, Some(stat.version)).await {
                        Ok(()) | Err(ZkErr::NoNode) | Err(ZkErr::BadVersion) => continue,
                        Err(e) => return Err(zk(e)),
                    }
                }
                OwnerDecision::Foreign(owner) => {
                    return Ok(Synced::Conflict {
                        owner,
                        watch: watcher.changed().boxed(),
                    });
                }
            },
            Err(ZkErr::NoNode) => {
                let options = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
                match client.create(node, data, &options).await {
                    // Loop to arm the watch and confirm ownership (a lost reply may hide success).
                    Ok(_) | Err(ZkErr::NodeExists) => debug!(node, "ephemeral node created"),
                    Err(ZkErr::NoNode) => {
                        if let Some(parent) = path::parent(node) {
                            ensure_path(client, parent).await.map_err(|source| {
                                EphemeralError::Client {
                                    path: node.to_string(),
                                    source,
                                }
                            })?;
                        }
                    }
                    Err(e) => return Err(zk(e)),
                }
            }
            Err(e) => return Err(zk(e)),
        }
    }
    Err(EphemeralError::Contended {
        path: node.to_string(),
    })
}
