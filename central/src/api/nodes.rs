//! `/v1/nodes`: registrations merged with central's inventory (capacity, allocation, liveness).
//! A pool token sees only its pool's nodes.

use std::collections::BTreeSet;

use caas_api::central::{Liveness, NodeView};
use warp::http::StatusCode;

use super::{json, principal, Ctx, Response};
use crate::error::CentralError;

/// All nodes the caller may see.
pub fn views(ctx: &Ctx, who: &crate::auth::Principal) -> Result<Vec<NodeView>, CentralError> {
    let registrations = ctx.central.registrations()?;
    let inventory = ctx.central.inventory()?;
    let ids: BTreeSet<&String> = registrations.keys().chain(inventory.keys()).collect();
    let mut out = Vec::new();
    for id in ids {
        let reg = registrations.get(id);
        let inv = inventory.get(id);
        let Some(info) = reg.map(|r| &**r).or(inv.map(|i| &i.record.info)) else {
            continue;
        };
        if !who.sees(&info.pool) {
            continue;
        }
        let liveness = match (reg, inv) {
            (Some(_), _) => Liveness::Ready,
            (None, Some(i)) if i.record.liveness == Liveness::Lost => Liveness::Lost,
            (None, _) => Liveness::Disconnected,
        };
        out.push(NodeView {
            id: id.clone(),
            pool: info.pool.clone(),
            liveness,
            capacity: info.capacity,
            allocated: inv.map(|i| i.record.allocated).unwrap_or_default(),
            labels: info.labels.clone(),
            containers: inv.map(|i| i.record.workloads.len()).unwrap_or(0),
            api_addr: info.api_addr.clone(),
            underlay: info.underlay.clone(),
            agent_version: info.agent_version.clone(),
            engine_ready: info.engine_ready,
            networks: info.networks.clone(),
        });
    }
    Ok(out)
}

pub async fn list(ctx: Ctx) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    Ok(json(StatusCode::OK, &views(&ctx, &who)?))
}

pub async fn get(ctx: Ctx, id: String) -> Result<Response, CentralError> {
    let who = principal(&ctx).await?;
    views(&ctx, &who)?
        .into_iter()
        .find(|n| n.id == id)
        .map(|n| json(StatusCode::OK, &n))
        .ok_or_else(|| CentralError::not_found(format!("node {id} not found")))
}
