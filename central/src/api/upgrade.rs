//! `PUT /v1/pools/{pool}/containers/{name}/image`: a new image for a container, or for every
//! replica of an app, in one commit (records and assignments, versioned). Each node keeps the
//! old version running until it has pulled the new image, then replaces the app; `caas
//! container upgrade` prewarms the image on every node concerned before calling this, so no
//! container changes before all of them have it.

use bytes::Bytes;
use caas_api::image::SetImageRequest;
use caas_api::{Assignment, Desired, ImageRef, WorkloadKey};
use warp::http::StatusCode;

use super::containers::{require_pool, view};
use super::{json, parse_body, Ctx, Response};
use crate::error::CentralError;
use crate::store::Op;

pub async fn set_image(
    ctx: Ctx,
    pool: String,
    name: String,
    body: Bytes,
) -> Result<Response, CentralError> {
    require_pool(&ctx, &pool).await?;
    let request: SetImageRequest = parse_body(&body)?;
    ImageRef::parse("image", &request.image)?;
    let store = &ctx.central.store;
    let layout = store.layout();
    for _ in 0..10 {
        let records: Vec<_> = store
            .containers(&pool)
            .await?
            .into_iter()
            .filter(|(r, _)| r.spec.name == name || r.app == name)
            .collect();
        if records.is_empty() {
            return Err(CentralError::not_found(format!(
                "container {name} not found in pool {pool}"
            )));
        }
        let mut ops = vec![Op::exists(layout.pool(&pool))];
        let mut updated = Vec::new();
        for (record, version) in &records {
            let mut next = record.clone();
            if record.spec.image != request.image {
                next.spec.image = request.image.clone();
                next.spec.generation += 1;
                next.spec.validate()?;
                ops.push(Op::set(
                    layout.container(&pool, &record.spec.name),
                    &next,
                    *version,
                )?);
                // A lost record's assignment stays on its node too (it runs there again if
                // the node returns), so it gets the new spec as well.
                let key = WorkloadKey::new(&pool, &record.spec.name);
                let path = layout.assignment(&record.node, &key);
                if let Some((mut assignment, av)) = store.get::<Assignment>(&path).await? {
                    if assignment.desired == Desired::Run {
                        assignment.spec = next.spec.clone();
                        ops.push(Op::set(path, &assignment, av)?);
                    }
                }
            }
            updated.push(next);
        }
        if ops.len() > 1 {
            match store.commit(&ops, None).await {
                Ok(()) => {}
                // A record or assignment changed meanwhile (a move, a delete): read again.
                Err(e) if e.conflict().is_some() => continue,
                Err(e) => return Err(e.into()),
            }
            tracing::info!(pool = %pool, name = %name, image = %request.image, containers = updated.len(), "image updated");
        }
        let mut views = Vec::with_capacity(updated.len());
        for record in updated {
            views.push(view(&ctx, record).await?);
        }
        return Ok(json(StatusCode::OK, &views));
    }
    Err(CentralError::Contention(format!(
        "{name} kept changing while its image was being set; retry"
    )))
}
