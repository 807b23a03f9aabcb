//! `run` and `down` through caas central, when `CAAS_URL` is set: the image is built on the
//! local engine (the nodes must be able to use it: in a one-engine setup they share it, else
//! it has to reach them another way), then a rich workload carrying the plan's health check is
//! created in the pool (`CAAS_POOL`, token `CAAS_TOKEN`) and watched until central reports it
//! healthy. `down` deletes it with its data container.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use caas_api::central::CreateContainerRequest;
use caas_api::{HealthCheck as ApiHealthCheck, HealthState, Probe as ApiProbe};
use caas_client::{CentralClient, ClientError};
use serde::{Deserialize, Serialize};

use crate::error::{Error, RunError};
use crate::plan::{HealthCheck, Plan, Probe, LOGS};
use crate::progress::Progress;

/// Where and as whom to talk to central.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub pool: String,
}

/// The central target from the environment: `None` without `CAAS_URL`; `CAAS_POOL` is
/// required with it.
pub fn target() -> Result<Option<Target>, Error> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let Some(url) = var("CAAS_URL") else {
        return Ok(None);
    };
    let pool = var("CAAS_POOL").ok_or_else(|| {
        Error::Usage(format!(
            "CAAS_URL={url} is set, so run goes through central: set CAAS_POOL (and CAAS_TOKEN) \
             too, or unset CAAS_URL to run on the local engine"
        ))
    })?;
    Ok(Some(Target {
        url,
        token: var("CAAS_TOKEN"),
        pool,
    }))
}

/// What `run` created through central.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentralRun {
    pub central: String,
    pub pool: String,
    pub name: String,
    pub node: String,
    pub image: String,
    pub health: String,
}

/// The plan's health check in the workload spec's terms.
pub fn health_check(h: &HealthCheck) -> ApiHealthCheck {
    ApiHealthCheck {
        probe: match &h.probe {
            Probe::Tcp { port } => ApiProbe::Tcp { port: *port },
            Probe::Http { port, path } => ApiProbe::Http {
                port: *port,
                path: path.clone(),
            },
            Probe::Command(c) => ApiProbe::Command(c.clone()),
        },
        interval_seconds: h.interval_seconds,
        timeout_seconds: h.timeout_seconds,
        failure_threshold: h.failure_threshold,
    }
}

/// The create request for the plan's workload.
pub fn request(plan: &Plan, image: &str, env: &[String]) -> Result<CreateContainerRequest, Error> {
    let mut vars = BTreeMap::new();
    for e in env {
        let Some((k, v)) = e.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Error::Usage(format!("-e {e:?}: use KEY=VALUE")));
        };
        vars.insert(k.to_string(), v.to_string());
    }
    Ok(CreateContainerRequest {
        name: plan.name.clone(),
        image: image.to_string(),
        env: vars,
        // Rich workloads get /home/admin/logs in their data container anyway.
        volumes: plan
            .volumes
            .iter()
            .filter(|v| *v != LOGS)
            .cloned()
            .collect(),
        rich: true,
        health_check: plan.health.as_ref().map(health_check),
        ..Default::default()
    })
}

fn central_err(t: &Target) -> impl Fn(ClientError) -> Error + '_ {
    move |e| {
        RunError::Central {
            url: t.url.clone(),
            detail: e.to_string(),
        }
        .into()
    }
}

/// Creates the workload and waits until central reports it healthy (or running, without a
/// health check).
pub async fn up(
    t: &Target,
    plan: &Plan,
    image: &str,
    env: &[String],
    timeout: Duration,
    progress: &Progress,
) -> Result<CentralRun, Error> {
    let client = CentralClient::new(&t.url, t.token.as_deref()).map_err(central_err(t))?;
    let req = request(plan, image, env)?;
    progress.stage(&format!(
        "creating {}/{} through {}",
        t.pool, plan.name, t.url
    ));
    client
        .create_containers(&t.pool, &req)
        .await
        .map_err(central_err(t))?;
    let start = Instant::now();
    let mut last = String::from("no status yet");
    loop {
        let view = client
            .get_container(&t.pool, &plan.name)
            .await
            .map_err(central_err(t))?;
        if let Some(status) = &view.status {
            match (&status.health, &plan.health) {
                (Some(h), _) if h.state == HealthState::Healthy => {
                    return Ok(done(t, plan, image, &view.node, "healthy"));
                }
                (Some(h), _) => last = format!("health {:?}: {}", h.state, h.message),
                (None, None) if format!("{:?}", status.state) == "Running" => {
                    return Ok(done(
                        t,
                        plan,
                        image,
                        &view.node,
                        "running (no health check)",
                    ));
                }
                (None, _) => last = format!("state {:?}", status.state),
            }
            if let Some(err) = &status.last_error {
                last.push_str(&format!(" (last error: {err:?})"));
            }
        }
        if start.elapsed() >= timeout {
            return Err(RunError::Central {
                url: t.url.clone(),
                detail: format!(
                    "{}/{} did not become healthy within {}s (last: {last}); see `caas container inspect {}`",
                    t.pool,
                    plan.name,
                    timeout.as_secs(),
                    plan.name
                ),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn done(t: &Target, plan: &Plan, image: &str, node: &str, health: &str) -> CentralRun {
    CentralRun {
        central: t.url.clone(),
        pool: t.pool.clone(),
        name: plan.name.clone(),
        node: node.to_string(),
        image: image.to_string(),
        health: health.to_string(),
    }
}

/// Deletes the workload `name` with its data container.
pub async fn down(t: &Target, name: &str) -> Result<(), Error> {
    let client = CentralClient::new(&t.url, t.token.as_deref()).map_err(central_err(t))?;
    client
        .delete_container(&t.pool, name, true)
        .await
        .map_err(central_err(t))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::detect::{self, Source};
    use crate::fixtures;
    use crate::planner::{self, PlanOptions};

    #[test]
    fn the_request_is_a_valid_rich_workload_with_the_plans_health_check() {
        let dir = tempfile::tempdir().unwrap();
        let jar = fixtures::sample("spring-boot", dir.path()).unwrap();
        let src = Source::open(&jar).unwrap();
        let det = detect::detect(&src, None).unwrap();
        let opts = PlanOptions {
            volumes: vec!["/home/admin/data".into()],
            ..Default::default()
        };
        let plan = planner::plan(&det, &src, &opts).unwrap();
        let req = request(&plan, "dfgen/orders:abc", &["A=1".into()]).unwrap();
        assert!(req.rich);
        assert_eq!(req.volumes, ["/home/admin/data"]);
        assert_eq!(req.env["A"], "1");
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json["health_check"]["probe"],
            serde_json::json!({"http": {"port": 8081, "path": "/actuator/health"}})
        );
        req.health_check.unwrap().validate("health_check").unwrap();
        assert!(request(&plan, "x", &["novalue".into()]).is_err());
    }
}
