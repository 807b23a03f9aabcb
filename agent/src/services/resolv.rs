//! `/etc/resolv.conf` of this node's containers: a workload attached to a network with a DNS
//! service gets that network's gateway as its resolver and the service's domain as its search
//! domain. The file is the one Docker keeps for the sandbox (`ResolvConfPath`, which the app
//! shares through `network_mode: container:`), rewritten in place, so a DNS service created or
//! removed after the containers takes effect without restarting them. Files the agent wrote are
//! marked; a marked file whose DNS service is gone is emptied of its resolver.

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;

use super::model::NetModel;
use crate::naming::{LABEL_NAME, LABEL_NODE, LABEL_POOL, LABEL_ROLE};

const MARK: &str = "# written by caas-agent";

/// Connects to the engine (API version negotiated down, as the runtime does).
pub async fn connect(socket: &str) -> Option<Docker> {
    let docker = Docker::connect_with_unix(socket, 10, bollard::API_DEFAULT_VERSION).ok()?;
    docker.negotiate_version().await.ok()
}

/// The resolv.conf a workload with these endpoints gets, or `None` when none of its networks
/// has a DNS service.
pub fn content(networks: &[String], models: &[NetModel]) -> Option<String> {
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for net in networks {
        let Some(m) = models.iter().find(|m| &m.name == net) else {
            continue;
        };
        let Some(zone) = &m.dns else { continue };
        servers.push(m.gateway.to_string());
        if !search.contains(&zone.domain) {
            search.push(zone.domain.clone());
        }
    }
    if servers.is_empty() {
        return None;
    }
    let mut out = format!("{MARK}: the DNS service of the container's network\n");
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out.push_str(&format!(
        "search {}\noptions ndots:1 timeout:1 attempts:2\n",
        search.join(" ")
    ));
    Some(out)
}

/// Rewrites the resolv.conf of every local sandbox of `pool` whose content is not what
/// `networks_of` (workload name → its networks in interface order) and the models say.
pub async fn sync(
    docker: &Docker,
    node_id: &str,
    pool: &str,
    networks_of: &BTreeMap<String, Vec<String>>,
    models: &[NetModel],
) -> Result<(), bollard::errors::Error> {
    let mut filters = HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![
            format!("{LABEL_NODE}={node_id}"),
            format!("{LABEL_POOL}={pool}"),
            format!("{LABEL_ROLE}=sandbox"),
        ],
    );
    let sandboxes = docker
        .list_containers(Some(ListContainersOptions {
            all: false,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    for s in sandboxes {
        let (Some(id), Some(labels)) = (s.id, s.labels) else {
            continue;
        };
        let Some(name) = labels.get(LABEL_NAME) else {
            continue;
        };
        let wanted = networks_of.get(name).and_then(|nets| content(nets, models));
        let details = docker.inspect_container(&id, None).await?;
        let Some(path) = details.resolv_conf_path.filter(|p| !p.is_empty()) else {
            continue;
        };
        let current = tokio::fs::read_to_string(&path).await.unwrap_or_default();
        let next = match wanted {
            Some(text) => text,
            None if current.starts_with(MARK) => {
                format!("{MARK}: no DNS service on the container's networks\n")
            }
            None => continue,
        };
        if current != next {
            // In place (not a rename): the file is bind-mounted into the containers.
            match tokio::fs::write(&path, next.as_bytes()).await {
                Ok(()) => tracing::info!(workload = %name, %path, "resolv.conf updated"),
                Err(e) => {
                    tracing::warn!(workload = %name, %path, error = %e, "cannot write resolv.conf")
                }
            }
        }
    }
    Ok(())
}
