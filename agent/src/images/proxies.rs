//! The pool's registry proxies as ZooKeeper holds them (`pools/<pool>/registry-proxies`),
//! decoded into a watch channel the puller reads.

use std::sync::Arc;

use caas_api::{RegistryProxy, ZkLayout};
use caas_zk::{CacheError, CacheOptions, ChildMap, ChildrenCache, ClientWatch};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Follows the pool's registry proxies.
pub struct ProxyFollower {
    cache: ChildrenCache,
    proxies: watch::Receiver<Arc<Vec<RegistryProxy>>>,
}

impl ProxyFollower {
    pub fn start(
        clients: ClientWatch,
        layout: &ZkLayout,
        pool: &str,
        options: CacheOptions,
        cancel: CancellationToken,
    ) -> Result<Self, CacheError> {
        let cache = ChildrenCache::start(
            clients,
            layout.registry_proxies(pool),
            options,
            cancel.clone(),
        )?;
        let (tx, proxies) = watch::channel(Arc::new(Vec::new()));
        let mut snapshots = cache.snapshot();
        let pool = pool.to_string();
        tokio::spawn(async move {
            loop {
                let decoded = decode(&pool, &snapshots.borrow_and_update());
                tx.send_if_modified(|current| {
                    if **current == decoded {
                        false
                    } else {
                        *current = Arc::new(decoded);
                        true
                    }
                });
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = snapshots.changed() => if r.is_err() { return },
                }
            }
        });
        Ok(Self { cache, proxies })
    }

    pub fn proxies(&self) -> watch::Receiver<Arc<Vec<RegistryProxy>>> {
        self.proxies.clone()
    }

    pub async fn shutdown(self) {
        self.cache.shutdown().await;
    }
}

/// The proxies in name order; a znode that does not decode (or claims another pool) is skipped
/// with a warning rather than trusted.
pub fn decode(pool: &str, children: &ChildMap) -> Vec<RegistryProxy> {
    children
        .iter()
        .filter_map(
            |(name, entry)| match serde_json::from_slice::<RegistryProxy>(&entry.data) {
                // The host becomes a directory name under certs.d: only host:port is used.
                Ok(proxy)
                    if proxy.pool == pool
                        && &proxy.name == name
                        && caas_api::image::validate_registry_host("host", &proxy.host).is_ok()
                        && caas_api::image::validate_registry_host("center", &proxy.center)
                            .is_ok() =>
                {
                    Some(proxy)
                }
                Ok(proxy) => {
                    tracing::warn!(znode = %name, pool = %proxy.pool, "registry proxy record names another pool or name; ignored");
                    None
                }
                Err(e) => {
                    tracing::warn!(znode = %name, error = %e, "unreadable registry proxy record; ignored");
                    None
                }
            },
        )
        .collect()
}
