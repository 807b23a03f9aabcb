//! Stats served from the agents: `GET /v1/pools/{pool}/stats` (every container of the pool),
//! `GET /v1/pools/{pool}/containers/{name}/stats` (one) and `GET /v1/stats/nodes` (the nodes
//! the caller sees). Central keeps no figures itself: it asks the agents of the nodes involved,
//! concurrently, and a pool token sees only its pool, as everywhere else.

use std::collections::{BTreeMap, BTreeSet};

use caas_api::stats::{NodeStats, NodeStatsEntry, WorkloadStats};
use warp::http::StatusCode;

use super::{json, principal, Ctx, Response};
use crate::error::CentralError;

/// The API address of every registered node.
fn addresses(ctx: &Ctx) -> Result<BTreeMap<String, (String, String)>, CentralError> {
    Ok(ctx
        .central
        .registrations()?
        .iter()
        .map(|(id, info)| (id.clone(), (info.api_addr.clone(), info.pool.clone())))
        .collect())
}

pub async fn pool(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    super::containers::require_pool(&ctx, &pool).await?;
    let records = ctx.central.store.containers(&pool).await?;
    let addresses = addresses(&ctx)?;
    let nodes: BTreeSet<String> = records.iter().map(|(r, _)| r.node.clone()).collect();
    let mut asks = tokio::task::JoinSet::new();
    for node in nodes {
        let Some((addr, _)) = addresses.get(&node).cloned() else {
            continue;
        };
        let agents = ctx.agents.clone();
        let path = format!("/v1/stats?pool={pool}");
        asks.spawn(async move {
            let answer: Result<Vec<WorkloadStats>, _> = agents.get_json(&addr, &path).await;
            (node, answer)
        });
    }
    let mut found: BTreeMap<(String, String), WorkloadStats> = BTreeMap::new();
    while let Some(done) = asks.join_next().await {
        let Ok((node, answer)) = done else { continue };
        match answer {
            Ok(list) => {
                for w in list.into_iter().filter(|w| w.pool == pool) {
                    found.insert((node.clone(), w.name.clone()), w);
                }
            }
            Err(e) => tracing::debug!(node = %node, error = %e, "no stats from this node"),
        }
    }
    // Every container of the pool, with its figures when its node gave them.
    let mut out: Vec<WorkloadStats> = records
        .into_iter()
        .map(|(r, _)| {
            found
                .remove(&(r.node.clone(), r.spec.name.clone()))
                .unwrap_or(WorkloadStats {
                    pool: pool.clone(),
                    name: r.spec.name,
                    node: r.node,
                    containers: Vec::new(),
                })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(json(StatusCode::OK, &out))
}

pub async fn container(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    super::containers::require_pool(&ctx, &pool).await?;
    let (record, _) = ctx
        .central
        .store
        .container(&pool, &name)
        .await?
        .ok_or_else(|| {
            CentralError::not_found(format!("container {name} not found in pool {pool}"))
        })?;
    let addresses = addresses(&ctx)?;
    let Some((addr, _)) = addresses.get(&record.node) else {
        return Err(CentralError::unavailable(format!(
            "node {} of container {name} is not connected, so it has no figures now",
            record.node
        )));
    };
    let stats: WorkloadStats = ctx
        .agents
        .get_json(addr, &format!("/v1/containers/{pool}/{name}/stats"))
        .await?;
    Ok(json(StatusCode::OK, &stats))
}

pub async fn nodes(ctx: Ctx) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    let mut asks = tokio::task::JoinSet::new();
    for (node, (addr, pool)) in addresses(&ctx)? {
        if !who.sees(&pool) {
            continue;
        }
        let agents = ctx.agents.clone();
        asks.spawn(async move {
            let answer: Result<NodeStats, _> = agents.get_json(&addr, "/v1/node/stats").await;
            NodeStatsEntry {
                node,
                pool,
                error: answer.as_ref().err().map(ToString::to_string),
                stats: answer.ok(),
            }
        });
    }
    let mut out = Vec::new();
    while let Some(done) = asks.join_next().await {
        if let Ok(entry) = done {
            out.push(entry);
        }
    }
    out.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(json(StatusCode::OK, &out))
}
