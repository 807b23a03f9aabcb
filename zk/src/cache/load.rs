//! Reads for the cache: a full listing of the parent, and refreshes of single children.

use futures::future::join_all;
use zookeeper_client::{Client, Error as ZkErr};

use super::{CacheError, ChildEntry, ChildMap};
use crate::path;

/// Lists all children with data. A missing parent is an empty map; children deleted between
/// the listing and their read are left out.
pub(crate) async fn list_all(client: &Client, parent: &str) -> Result<ChildMap, CacheError> {
    let names = match client.list_children(parent).await {
        Ok(names) => names,
        Err(ZkErr::NoNode) => return Ok(ChildMap::new()),
        Err(source) => {
            return Err(CacheError::Zk {
                path: parent.to_string(),
                source,
            })
        }
    };
    fetch(client, parent, names).await.map(|entries| {
        entries
            .into_iter()
            .filter_map(|(n, e)| Some((n, e?)))
            .collect()
    })
}

/// Reads the given children concurrently (the client pipelines the requests). `None` marks a
/// child that does not exist.
pub(crate) async fn fetch(
    client: &Client,
    parent: &str,
    names: Vec<String>,
) -> Result<Vec<(String, Option<ChildEntry>)>, CacheError> {
    let reads = names
        .iter()
        .map(|name| client.get_data(&path::join(parent, name)))
        .collect::<Vec<_>>();
    let results = join_all(reads).await;
    let mut out = Vec::with_capacity(names.len());
    for (name, result) in names.into_iter().zip(results) {
        match result {
            Ok((data, stat)) => out.push((name, Some(ChildEntry { data, stat }))),
            Err(ZkErr::NoNode) => out.push((name, None)),
            Err(source) => {
                return Err(CacheError::Zk {
                    path: path::join(parent, &name),
                    source,
                })
            }
        }
    }
    Ok(out)
}
