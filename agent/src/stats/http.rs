//! The stats routes of the agent API, read from the collector's latest sweep:
//! `GET /v1/stats[?pool=P]` (every workload), `GET /v1/containers/{pool}/{name}/stats` (one
//! workload: latest sample and rates of its containers) and `GET /v1/node/stats`, each behind the
//! agent's token check like every `/v1` route.

use std::convert::Infallible;

use caas_api::stats::WorkloadStats;
use caas_api::WorkloadKey;
use warp::{Filter, Reply};

use crate::codes::HttpErrorCode;
use crate::view::AgentView;

#[derive(Debug, serde::Deserialize)]
struct PoolQuery {
    pool: Option<String>,
}

fn not_found(message: String) -> warp::reply::Response {
    let body = warp::reply::json(&serde_json::json!({
        "code": HttpErrorCode::NotFound.as_str(),
        "message": message,
    }));
    warp::reply::with_status(body, HttpErrorCode::NotFound.status()).into_response()
}

/// The three stats routes; `with_view` hands out the agent's view.
pub fn routes(
    with_view: impl Filter<Extract = (AgentView,), Error = Infallible> + Clone + Send + Sync + 'static,
    authorized: impl Filter<Extract = (), Error = warp::Rejection> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let all = warp::path!("v1" / "stats")
        .and(warp::get())
        .and(authorized.clone())
        .and(warp::query::<PoolQuery>())
        .and(with_view.clone())
        .map(|query: PoolQuery, view: AgentView| {
            let latest = view.stats().latest();
            let list: Vec<&WorkloadStats> = latest
                .workloads
                .values()
                .filter(|w| query.pool.as_ref().is_none_or(|p| *p == w.pool))
                .collect();
            warp::reply::json(&list).into_response()
        });
    let one = warp::path!("v1" / "containers" / String / String / "stats")
        .and(warp::get())
        .and(authorized.clone())
        .and(with_view.clone())
        .then(|pool: String, name: String, view: AgentView| async move {
            let key = WorkloadKey::new(&pool, &name);
            if let Some(w) = view.stats().latest().workloads.get(&key) {
                return warp::reply::json(w).into_response();
            }
            let known = {
                let state = view.read().await;
                state.statuses.contains_key(&key) || state.assignments.contains_key(&key)
            };
            if known {
                // Assigned here, but not sampled (yet, or not running).
                let node = view
                    .stats()
                    .latest()
                    .node
                    .as_ref()
                    .map(|n| n.node.clone())
                    .unwrap_or_default();
                warp::reply::json(&WorkloadStats {
                    pool,
                    name,
                    node,
                    containers: Vec::new(),
                })
                .into_response()
            } else {
                not_found(format!("no workload {pool}/{name} on this node"))
            }
        });
    let node = warp::path!("v1" / "node" / "stats")
        .and(warp::get())
        .and(authorized)
        .and(with_view)
        .map(|view: AgentView| match &view.stats().latest().node {
            Some(n) => warp::reply::json(n).into_response(),
            None => not_found("the first stats sweep has not run yet; try again shortly".into()),
        });
    all.or(one).unify().or(node).unify()
}
