//! `/v1/pools/{pool}/containers`: create (idempotent on pool+name, N replicas in one atomic
//! commit), list, inspect, delete (optionally purging data), and reschedule off a lost node.

use bytes::Bytes;
use caas_api::central::{
    ContainerRecord, ContainerView, CreateContainerRequest, Liveness, RescheduleRequest,
    MAX_INSTANCES,
};
use caas_api::name::validate_dns_label;
use caas_api::{Resources, WorkloadKey, WorkloadSpec};
use warp::http::StatusCode;
use warp::Reply;

use super::{check_pool_access, json, parse_body, principal, Ctx, Response};
use crate::error::{CentralError, ConflictKind};
use crate::placement::{self, Intent, Want};
use crate::scheduler::{Constraint, Strategy};
use crate::store::Op;

/// Requests a workload gets when the spec names none, so every placement is accounted for.
pub const DEFAULT_CPU: &str = "100m";
pub const DEFAULT_MEMORY: &str = "128Mi";

pub(super) async fn require_pool(ctx: &Ctx, pool: &str) -> Result<(), CentralError> {
    let who = principal(ctx).await?;
    check_pool_access(&who, pool)?;
    // The pools cache answers for pools that exist; a miss is confirmed in ZooKeeper (a pool
    // created through another instance a moment ago). Writes re-check the pool in their multi.
    if !ctx.central.pool_cached(pool) && ctx.central.store.pool(pool).await?.is_none() {
        return Err(CentralError::not_found(format!("pool {pool} not found")));
    }
    Ok(())
}

pub(super) async fn view(
    ctx: &Ctx,
    record: ContainerRecord,
) -> Result<ContainerView, CentralError> {
    let key = WorkloadKey::new(&record.spec.pool, &record.spec.name);
    let status = ctx.central.store.status(&record.node, &key).await?;
    Ok(ContainerView {
        services: Default::default(),
        pool: record.spec.pool.clone(),
        name: record.spec.name.clone(),
        node: record.node,
        placement: record.placement,
        app: record.app,
        spec: record.spec,
        status,
    })
}

/// The plan for one create request: the wants per replica, validated.
fn plan(
    pool: &str,
    request: &CreateContainerRequest,
    pool_keys: &[String],
) -> Result<Vec<Want>, CentralError> {
    validate_dns_label("name", &request.name)?;
    crate::networks::validate_attachments(request)?;
    if request.rich && pool_keys.is_empty() {
        return Err(CentralError::invalid(
            "rich",
            format!(
                "pool {pool} has no SSH keys, so nobody could log in to a rich container; \
                 create the pool with --ssh-key (or add keys to it) first"
            ),
        ));
    }
    let instances = request.instances.unwrap_or(1);
    if instances == 0 || instances > MAX_INSTANCES {
        return Err(CentralError::invalid(
            "instances",
            format!("{instances} is out of range; use 1..={MAX_INSTANCES}"),
        ));
    }
    let constraints = request
        .constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Constraint::parse(c)
                .map_err(|e| CentralError::invalid(format!("constraints[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let strategy = match request.strategy.as_deref() {
        None | Some("spread") => Strategy::Spread,
        Some("binpack") => Strategy::Binpack,
        Some(other) => {
            return Err(CentralError::invalid(
                "strategy",
                format!("{other:?} is not a strategy; use \"spread\" or \"binpack\""),
            ))
        }
    };
    let resources = Resources {
        cpu: request
            .resources
            .cpu
            .clone()
            .or_else(|| Some(DEFAULT_CPU.into())),
        memory: request
            .resources
            .memory
            .clone()
            .or_else(|| Some(DEFAULT_MEMORY.into())),
        pids: request.resources.pids,
    };
    let mut wants = Vec::new();
    for i in 1..=instances {
        let (name, hostname) = if instances == 1 {
            (request.name.clone(), request.hostname.clone())
        } else {
            (
                format!("{}-{i}", request.name),
                request.hostname.as_ref().map(|h| format!("{h}-{i}")),
            )
        };
        let spec = WorkloadSpec {
            version: caas_api::PAYLOAD_VERSION,
            pool: pool.to_string(),
            name,
            image: request.image.clone(),
            command: request.command.clone(),
            env: request.env.clone(),
            resources: resources.clone(),
            restart: request.restart,
            labels: request.labels.clone(),
            volumes: request.volumes.clone(),
            hostname,
            rich: request.rich,
            health_check: request.health_check.clone(),
            generation: 1,
            networks: Vec::new(),
            read_only_root: request.read_only_root,
        };
        spec.validate().map_err(|e| {
            if e.field == "name" {
                CentralError::invalid("name", format!("replica names must be DNS labels too: {e}"))
            } else {
                CentralError::from(e)
            }
        })?;
        wants.push(Want {
            pinned: None,
            spec,
            app: request.name.clone(),
            ssh_keys: if request.rich {
                pool_keys.to_vec()
            } else {
                Vec::new()
            },
            constraints: constraints.clone(),
            strategy,
        });
    }
    Ok(wants)
}

/// Whether an existing workload's endpoints are what the request's attachments ask for: the
/// same networks in order, the same service names, and every requested address.
fn same_networks(existing: &ContainerRecord, request: &CreateContainerRequest) -> bool {
    existing.spec.networks.len() == request.networks.len()
        && existing
            .spec
            .networks
            .iter()
            .zip(&request.networks)
            .all(|(e, a)| {
                e.network == a.network
                    && e.service == a.service
                    && a.ip.as_ref().is_none_or(|ip| *ip == e.ip)
            })
}

/// Fields that differ between an existing record and a wanted one (generation excluded).
fn differences(
    existing: &ContainerRecord,
    want: &Want,
    request: &CreateContainerRequest,
) -> Vec<&'static str> {
    let (a, b) = (&existing.spec, &want.spec);
    let mut diff = Vec::new();
    let checks: [(&'static str, bool); 13] = [
        ("networks", !same_networks(existing, request)),
        ("rich", a.rich != b.rich),
        ("read_only_root", a.read_only_root != b.read_only_root),
        ("health_check", a.health_check != b.health_check),
        ("image", a.image != b.image),
        ("command", a.command != b.command),
        ("env", a.env != b.env),
        ("resources", a.resources != b.resources),
        ("restart", a.restart != b.restart),
        ("labels", a.labels != b.labels),
        ("volumes", a.volumes != b.volumes),
        ("hostname", a.hostname != b.hostname),
        (
            "constraints",
            existing.constraints
                != want
                    .constraints
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
        ),
    ];
    for (field, differs) in checks {
        if differs {
            diff.push(field);
        }
    }
    diff
}

/// Splits the wants into those already created (identically) and those still missing; a
/// different existing spec is a 409 that names the fields.
async fn existing(
    ctx: &Ctx,
    pool: &str,
    wants: &[Want],
    request: &CreateContainerRequest,
) -> Result<(Vec<ContainerRecord>, Vec<Want>), CentralError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for want in wants {
        match ctx.central.store.container(pool, &want.spec.name).await? {
            Some((record, _)) => {
                let diff = differences(&record, want, request);
                if !diff.is_empty() {
                    return Err(CentralError::conflict(
                        ConflictKind::ExistsDifferent,
                        format!(
                            "container {} already exists in pool {pool} with a different {}; delete it first or send the same spec",
                            want.spec.name,
                            diff.join(", ")
                        ),
                    ));
                }
                found.push(record);
            }
            None => missing.push(want.clone()),
        }
    }
    Ok((found, missing))
}

pub async fn create(ctx: Ctx, pool: String, body: Bytes) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let request: CreateContainerRequest = parse_body(&body)?;
    let pool_keys = if request.rich {
        ctx.central
            .store
            .pool(&pool)
            .await?
            .map(|(p, _)| p.ssh_keys)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let wants = plan(&pool, &request, &pool_keys)?;
    // The common case is a new name: commit first and look at existing records only when the
    // commit says a name is taken (or nothing fits, which must not hide an identical existing
    // workload: re-creating it is answered 200 even in a full pool).
    for attempt in 0..3 {
        let (done, missing) = if attempt == 0 {
            (Vec::new(), wants.clone())
        } else {
            existing(&ctx, &pool, &wants, &request).await?
        };
        if missing.is_empty() {
            let mut views = Vec::new();
            for r in done {
                views.push(view(&ctx, r).await?);
            }
            return Ok(json(StatusCode::OK, &views));
        }
        let mut missing = missing;
        if !request.networks.is_empty() {
            // Addresses are chosen for the replicas still missing; their allocation znodes are
            // created in the placement's commit, so a lost race allocates nothing.
            let resolved = match crate::networks::resolve(
                &ctx.central,
                &pool,
                &request,
                missing.len(),
            )
            .await
            {
                Ok(resolved) => resolved,
                // An identical container that already exists holds its own requested
                // address (or the last free one): look at existing records before refusing.
                Err(CentralError::Conflict {
                    kind: ConflictKind::AddressTaken | ConflictKind::Exhausted,
                    ..
                }) if attempt == 0 => continue,
                Err(e) => return Err(e),
            };
            for (want, endpoints) in missing.iter_mut().zip(resolved.endpoints) {
                want.spec.networks = endpoints;
                want.pinned = resolved.pinned.clone();
            }
        }
        let mut extra_ops = Vec::new();
        if request.rich {
            // The keys go into the assignments; the commit checks the pool record is still the
            // one they were read from, so a concurrent key change cannot be missed.
            let (record, version) = ctx
                .central
                .store
                .pool(&pool)
                .await?
                .ok_or_else(|| CentralError::not_found(format!("pool {pool} not found")))?;
            for want in &mut missing {
                want.ssh_keys = record.ssh_keys.clone();
            }
            extra_ops.push(Op::Check {
                path: ctx.central.layout().pool(&pool),
                version,
            });
        }
        match placement::place_and_commit(
            &ctx.central,
            &pool,
            &missing,
            Intent::Create,
            extra_ops,
            None,
        )
        .await
        {
            Ok(records) => {
                for r in &records {
                    tracing::info!(pool = %pool, name = %r.spec.name, node = %r.node, "container placed");
                }
                let mut views = Vec::new();
                for r in done {
                    views.push(view(&ctx, r).await?);
                }
                // Just created: no agent has reported on them yet.
                views.extend(records.into_iter().map(unreported_view));
                return Ok(json(StatusCode::CREATED, &views));
            }
            Err(CentralError::Contention(_)) if attempt < 2 => continue,
            Err(CentralError::Unschedulable(_)) if attempt == 0 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(CentralError::unavailable(
        "concurrent creates of the same names; retry",
    ))
}

fn unreported_view(record: ContainerRecord) -> ContainerView {
    ContainerView {
        pool: record.spec.pool.clone(),
        name: record.spec.name.clone(),
        node: record.node,
        placement: record.placement,
        app: record.app,
        spec: record.spec,
        status: None,
        services: Default::default(),
    }
}

pub async fn list(ctx: Ctx, pool: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let mut out = Vec::new();
    for (record, _) in ctx.central.store.containers(&pool).await? {
        out.push(view(&ctx, record).await?);
    }
    Ok(json(StatusCode::OK, &out))
}

pub async fn get(ctx: Ctx, pool: String, name: String) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let (record, _) = ctx
        .central
        .store
        .container(&pool, &name)
        .await?
        .ok_or_else(|| {
            CentralError::not_found(format!("container {name} not found in pool {pool}"))
        })?;
    // Inspect (not list) shows the DNS names and load balancers it is part of.
    let services = crate::services::membership(&ctx.central, &record).await?;
    let mut shown = view(&ctx, record).await?;
    shown.services = services;
    Ok(json(StatusCode::OK, &shown))
}

pub async fn delete(
    ctx: Ctx,
    pool: String,
    name: String,
    purge: bool,
) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    placement::remove(&ctx.central, &pool, &name, purge).await?;
    tracing::info!(pool = %pool, name = %name, purge, "container deleted");
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

pub async fn reschedule(
    ctx: Ctx,
    pool: String,
    name: String,
    body: Bytes,
) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let request: RescheduleRequest = if body.is_empty() {
        RescheduleRequest::default()
    } else {
        parse_body(&body)?
    };
    let (record, version) = ctx
        .central
        .store
        .container(&pool, &name)
        .await?
        .ok_or_else(|| {
            CentralError::not_found(format!("container {name} not found in pool {pool}"))
        })?;
    let node_ready = ctx.central.registrations()?.contains_key(&record.node)
        && ctx
            .central
            .inventory()?
            .get(&record.node)
            .is_none_or(|n| n.record.liveness != Liveness::Lost);
    if node_ready && !request.force {
        return Err(CentralError::conflict(
            ConflictKind::NodeReady,
            format!(
                "{name} runs on node {}, which is ready; use --force to move it anyway",
                record.node
            ),
        ));
    }
    if !record.spec.volumes.is_empty() && !request.force {
        return Err(CentralError::conflict(
            ConflictKind::HasData,
            format!(
                "{name} has a data container on node {}; its data stays there. Use --force to re-place it without its data",
                record.node
            ),
        ));
    }
    let moved = placement::move_elsewhere(&ctx.central, &record, version, None).await?;
    tracing::info!(pool = %pool, name = %name, from = %record.node, to = %moved.node, "container rescheduled");
    Ok(json(StatusCode::OK, &view(&ctx, moved).await?))
}
