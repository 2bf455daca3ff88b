//! Destruction of a dataset version or a whole dataset by its provider (GD21 Art.40; XT
//! Art.34(4); [`pdx_sandbox::destruction`]).
//!
//! - `POST /v1/datasets/{id}/versions/{version}/destruction` destroys one version;
//!   `POST /v1/datasets/{id}/destruction` the whole dataset (every remaining version,
//!   its grants suspended, its catalog entry retired). The body is `{"reason": "…",
//!   "legal_basis": "…"}` (the legal basis optional). The answer (201) names the files
//!   deleted by zone and BLAKE3 hash and the seq of the `Destruction` ledger entry.
//! - The dataset and its versions stay readable as tombstones (`destroyed` on
//!   `GET /v1/datasets/{id}` and on each version); everything that would use their data
//!   is a 409 from then on, as is destroying again, destroying while a run or FHE query
//!   reads the version (or, for a dataset, while a version is ingested or the entry is
//!   under review).
//!
//! Only providers may call these routes (403 for every other role, by the policy
//! table); another organisation's dataset is "not found"; a missing or blank reason is
//! a 422.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pdx_ids::DatasetId;
use pdx_sandbox::destruction::{DestructionRecord, DestructionRequest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::http::Caller;
use crate::http::catalog::owned_dataset;
use crate::http::json::{ApiJson, ApiPath};
use crate::http::problem::{ApiResult, Problem};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(destroy_version))
        .routes(routes!(destroy_dataset))
}

/// Destroy one version of the caller's dataset (its provider): its files are deleted
/// from every zone, a `Destruction` ledger entry records their hashes, the reason and
/// the legal basis, and the version stays readable as a tombstone. 409 when it is
/// destroyed already or a model run or FHE query reading it is in progress.
#[utoipa::path(post, path = "/v1/datasets/{id}/versions/{version}/destruction", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id"), ("version" = u64, Path, description = "version")),
    request_body = DestructionRequest,
    responses((status = 201, body = DestructionRecord), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn destroy_version(
    State(app): State<App>,
    caller: Caller,
    ApiPath((id, version)): ApiPath<(DatasetId, u64)>,
    ApiJson(body): ApiJson<DestructionRequest>,
) -> ApiResult<(StatusCode, Json<DestructionRecord>)> {
    let dataset = owned_dataset(&app, &caller, &id).await?;
    let record = app
        .sandbox
        .destructions()
        .destroy_version(&caller.principal.actor(), &dataset.id, version, body)
        .await?;
    tracing::info!(dataset = %record.dataset_id, version, seq = record.ledger_seq, "destroyed a version");
    Ok((StatusCode::CREATED, Json(record)))
}

/// Destroy the caller's whole dataset (its provider): every remaining version as above,
/// its pending and approved grants suspended, and the catalog entry retired to a
/// tombstone. 409 when it is destroyed already, under the data authority's review, or
/// while a version is being ingested or read by a job.
#[utoipa::path(post, path = "/v1/datasets/{id}/destruction", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    request_body = DestructionRequest,
    responses((status = 201, body = DestructionRecord), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn destroy_dataset(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
    ApiJson(body): ApiJson<DestructionRequest>,
) -> ApiResult<(StatusCode, Json<DestructionRecord>)> {
    let dataset = owned_dataset(&app, &caller, &id).await?;
    let record = app
        .sandbox
        .destructions()
        .destroy_dataset(&caller.principal.actor(), &dataset.id, body)
        .await?;
    tracing::info!(dataset = %record.dataset_id, versions = ?record.versions, seq = record.ledger_seq, "destroyed a dataset");
    Ok((StatusCode::CREATED, Json(record)))
}
