//! Reading and writing caas znodes from tests, the way central will: assignments in, status and
//! registrations out.

use caas_api::{Assignment, NodeInfo, WorkloadKey, WorkloadStatus, ZkLayout};
use caas_zk::zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, Stat};

/// Creates or replaces znode `path` with `data`, creating parents.
pub async fn put(client: &Client, path: &str, data: &[u8]) -> anyhow::Result<()> {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    match client.set_data(path, data, None).await {
        Ok(_) => Ok(()),
        Err(ZkError::NoNode) => {
            if let Some((parent, _)) = path.rsplit_once('/') {
                match client.mkdir(parent, &options).await {
                    Ok(()) | Err(ZkError::NodeExists) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            client.create(path, data, &options).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn put_assignment(
    client: &Client,
    layout: &ZkLayout,
    node: &str,
    assignment: &Assignment,
) -> anyhow::Result<()> {
    let key = WorkloadKey::new(&assignment.spec.pool, &assignment.spec.name);
    put(
        client,
        &layout.assignment(node, &key),
        &serde_json::to_vec(assignment)?,
    )
    .await
}

pub async fn status(
    client: &Client,
    layout: &ZkLayout,
    node: &str,
    key: &WorkloadKey,
) -> anyhow::Result<Option<WorkloadStatus>> {
    match client.get_data(&layout.status(node, key)).await {
        Ok((data, _)) => Ok(Some(serde_json::from_slice(&data)?)),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn registration(
    client: &Client,
    layout: &ZkLayout,
    node: &str,
) -> anyhow::Result<Option<(NodeInfo, Stat)>> {
    match client.get_data(&layout.node(node)).await {
        Ok((data, stat)) => Ok(Some((serde_json::from_slice(&data)?, stat))),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
