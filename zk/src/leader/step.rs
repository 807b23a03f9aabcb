//! One election step: make sure our candidate exists, then either lead (watching our own node)
//! or follow (watching only the predecessor).

use futures::future::BoxFuture;
use futures::FutureExt;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkErr, WatchedEvent};

use super::candidates::{own_prefix, position, Position};
use super::{Fence, LeaderError};
use crate::client::ensure_path;
use crate::path;

pub(crate) type Watch = BoxFuture<'static, WatchedEvent>;

pub(crate) enum Outcome {
    Leader { fence: Fence, watch: Watch },
    Follower { watch: Watch },
}

/// Bounded retries for races (predecessor vanished between list and watch, node deleted).
const ATTEMPTS: usize = 5;

pub(crate) struct Candidate<'a> {
    pub(crate) client: &'a Client,
    pub(crate) dir: &'a str,
    pub(crate) data: &'a [u8],
    pub(crate) nonce: &'a str,
    /// Our candidate node's name in this session, once known.
    pub(crate) mine: &'a mut Option<String>,
}

impl Candidate<'_> {
    fn zk(&self, path: &str) -> impl Fn(ZkErr) -> LeaderError {
        let path = path.to_string();
        move |source| LeaderError::Zk {
            path: path.clone(),
            source,
        }
    }

    pub(crate) async fn step(&mut self) -> Result<Outcome, LeaderError> {
        for _ in 0..ATTEMPTS {
            let mine = match self.mine.clone() {
                Some(m) => m,
                None => self.create().await?,
            };
            let children = self
                .client
                .list_children(self.dir)
                .await
                .map_err(self.zk(self.dir))?;
            match position(&children, &mine) {
                Position::Missing => *self.mine = None,
                Position::Leader => {
                    let my_path = path::join(self.dir, &mine);
                    let (stat, watcher) = self
                        .client
                        .check_and_watch_stat(&my_path)
                        .await
                        .map_err(self.zk(&my_path))?;
                    let Some(stat) = stat else {
                        *self.mine = None;
                        continue;
                    };
                    let fence = Fence {
                        path: my_path,
                        version: stat.version,
                        session_id: self.client.session_id().0,
                    };
                    return Ok(Outcome::Leader {
                        fence,
                        watch: watcher.changed().boxed(),
                    });
                }
                Position::Follower { predecessor } => {
                    let pred_path = path::join(self.dir, predecessor);
                    let (stat, watcher) = self
                        .client
                        .check_and_watch_stat(&pred_path)
                        .await
                        .map_err(self.zk(&pred_path))?;
                    if stat.is_some() {
                        return Ok(Outcome::Follower {
                            watch: watcher.changed().boxed(),
                        });
                    }
                }
            }
        }
        Err(LeaderError::Contended {
            path: self.dir.to_string(),
        })
    }

    /// Creates our candidate; after a lost reply, finds it again by the session's nonce.
    async fn create(&mut self) -> Result<String, LeaderError> {
        ensure_path(self.client, self.dir)
            .await
            .map_err(|source| LeaderError::Client {
                path: self.dir.to_string(),
                source,
            })?;
        let prefix = own_prefix(self.nonce);
        let prefix_path = path::join(self.dir, &prefix);
        let options = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
        let name = match self.client.create(&prefix_path, self.data, &options).await {
            Ok((_, sequence)) => format!("{prefix}{sequence}"),
            Err(ZkErr::ConnectionLoss) => {
                let children = self
                    .client
                    .list_children(self.dir)
                    .await
                    .map_err(self.zk(self.dir))?;
                match children.into_iter().find(|c| c.starts_with(&prefix)) {
                    Some(found) => found,
                    None => return Err(self.zk(&prefix_path)(ZkErr::ConnectionLoss)),
                }
            }
            Err(e) => return Err(self.zk(&prefix_path)(e)),
        };
        *self.mine = Some(name.clone());
        Ok(name)
    }
}
