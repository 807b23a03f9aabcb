//! caas-zk: ZooKeeper recipes (persistent ephemeral node, fenced leader latch, children cache).
//!
//! Every recipe runs as a background task that follows a `watch::Receiver<Option<Client>>`: the
//! current session, `None` while there is none. [`ZkSession`] owns such a session and replaces it
//! after expiry, so the recipes survive expiry by following the replacement client.

mod backoff;
pub mod cache;
pub mod client;
pub mod ephemeral;
pub mod leader;
pub mod path;
pub mod session;

pub use cache::{CacheError, CacheOptions, ChildEntry, ChildMap, ChildrenCache};
pub use client::{check_servers, connect, ensure_path, ClientError, ZkConfig};
pub use ephemeral::{EphemeralError, EphemeralOptions, EphemeralState, PersistentEphemeral};
pub use leader::{Fence, FenceError, FencedWriter, LeaderError, LeaderLatch, Leadership};
pub use session::{wait_for_client, ClientWatch, ZkSession};
pub use zookeeper_client;
