//! Open attributes after publication (SD22 Art.8, 10, 20; XT Art.23(7);
//! [`pdx_sandbox::open_attributes`]).
//!
//! - A provider asks to change its published dataset's open attribute
//!   (`POST /v1/datasets/{id}/open-attribute`, with a reason and a legal basis); the data
//!   authority approves or refuses (`POST /v1/open-attribute-changes/{id}/decision`),
//!   never for its own organisation's datasets. The authority, supervisors and the
//!   provider (its own datasets' only) list the requests
//!   (`GET /v1/open-attribute-changes?status=pending` is the authority's queue). A
//!   not-open dataset is not opened this way (409): only as a de-identified derivative.
//! - The data authority relaxes a published dataset's attribute for a stated emergency
//!   until an end date (`POST /v1/datasets/{id}/emergency-relaxation`); it ends by
//!   itself, and everyone who sees the dataset reads its relaxations
//!   (`GET /v1/datasets/{id}/emergency-relaxations`).
//!
//! Another organisation's dataset is "not found" for a provider; a wrong role is refused
//! by the policy table (403).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pdx_ids::{AttributeChangeId, DatasetId};
use pdx_sandbox::open_attributes::{
    AttributeChange, ChangeDecision, ChangeQuery, ChangeRequest, Relaxation, RelaxationRequest,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::http::Caller;
use crate::http::catalog::{owned_dataset, reader};
use crate::http::json::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiResult, Problem};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(request_change))
        .routes(routes!(list_changes))
        .routes(routes!(decide_change))
        .routes(routes!(relax))
        .routes(routes!(list_relaxations))
}

/// Ask for a change of a published dataset's open attribute (its provider), with a
/// `reason` and a `legal_basis`; the data authority decides. 409 for a not-open dataset
/// (opened only as a de-identified derivative), an unpublished one, one under an
/// emergency relaxation, or one with a pending request.
#[utoipa::path(post, path = "/v1/datasets/{id}/open-attribute", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    request_body = ChangeRequest,
    responses((status = 201, body = AttributeChange), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn request_change(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
    ApiJson(body): ApiJson<ChangeRequest>,
) -> ApiResult<(StatusCode, Json<AttributeChange>)> {
    let dataset = owned_dataset(&app, &caller, &id).await?;
    let change = app
        .sandbox
        .open_attributes()
        .request_change(&caller.principal.actor(), &dataset.id, body)
        .await?;
    tracing::info!(change = %change.id, dataset = %change.dataset_id, "open-attribute change requested");
    Ok((StatusCode::CREATED, Json(change)))
}

/// Open-attribute change requests, newest first: every one for the data authority and
/// supervisors, a provider's own datasets' for a provider; filter by `status`
/// (`pending` is the authority's queue) and `dataset_id`.
#[utoipa::path(get, path = "/v1/open-attribute-changes", tag = "catalog", security(("bearer" = [])),
    params(ChangeQuery),
    responses((status = 200, body = Vec<AttributeChange>), (status = 400, body = Problem)))]
async fn list_changes(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ChangeQuery>,
) -> ApiResult<Json<Vec<AttributeChange>>> {
    Ok(Json(
        app.sandbox
            .open_attributes()
            .changes(&query, reader(&caller))
            .await?,
    ))
}

/// Approve or refuse a pending change request (the data authority, not for its own
/// organisation's datasets: 403): `{"approve": true}` or `{"approve": false, "reason":
/// "…"}`. An approval changes the catalog's attribute (a catalog revision), suspends the
/// dataset's grants when it becomes not open, and writes an `OpenAttributeChange` ledger
/// entry; a decided request is a 409.
#[utoipa::path(post, path = "/v1/open-attribute-changes/{id}/decision", tag = "catalog", security(("bearer" = [])),
    params(("id" = AttributeChangeId, Path, description = "change request id")),
    request_body = ChangeDecision,
    responses((status = 200, body = AttributeChange), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn decide_change(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<AttributeChangeId>,
    ApiJson(body): ApiJson<ChangeDecision>,
) -> ApiResult<Json<AttributeChange>> {
    let change = app
        .sandbox
        .open_attributes()
        .decide_change(&caller.principal.actor(), &id, body)
        .await?;
    tracing::info!(change = %change.id, status = %change.status.as_str(), "open-attribute change decided");
    Ok(Json(change))
}

/// Relax a published dataset's open attribute for a stated emergency through the
/// `until` day (the data authority; XT Art.23(7)): `{"to": "conditional", "emergency":
/// "…", "until": "YYYY-MM-DD"}`. It ends by itself at 00:00 UTC after `until`; both
/// events are `EmergencyRelaxation` ledger entries.
#[utoipa::path(post, path = "/v1/datasets/{id}/emergency-relaxation", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    request_body = RelaxationRequest,
    responses((status = 201, body = Relaxation), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn relax(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
    ApiJson(body): ApiJson<RelaxationRequest>,
) -> ApiResult<(StatusCode, Json<Relaxation>)> {
    let relaxation = app
        .sandbox
        .open_attributes()
        .relax(&caller.principal.actor(), &id, body)
        .await?;
    Ok((StatusCode::CREATED, Json(relaxation)))
}

/// A dataset's emergency relaxations, oldest first, each with whether it is in force.
#[utoipa::path(get, path = "/v1/datasets/{id}/emergency-relaxations", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    responses((status = 200, body = Vec<Relaxation>), (status = 404, body = Problem)))]
async fn list_relaxations(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
) -> ApiResult<Json<Vec<Relaxation>>> {
    Ok(Json(
        app.sandbox
            .open_attributes()
            .relaxations(&id, reader(&caller))
            .await?,
    ))
}
