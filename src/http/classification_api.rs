//! Classification filings over HTTP (GD21 Art.13; [`pdx_sandbox::classification`]).
//!
//! A not-shared classification is filed (备案) with the data authority with its legal
//! basis by the catalog registration or edit that makes it (`POST /v1/datasets`,
//! `PUT /v1/datasets/{id}` with `share_type: not_shared`; without a `legal_basis` they
//! are refused with 422 and nothing is filed). Each filing is a `ClassificationFiling`
//! ledger entry. The data authority and supervisors list every filing
//! (`GET /v1/classification-filings`, `?dataset_id=` narrows) and read each one
//! (`GET /v1/classification-filings/{id}`); a provider reads its own, and another
//! provider's filing is "not found" (404). Other roles are refused by the policy table
//! (403).

use axum::Json;
use axum::extract::State;
use pdx_ids::FilingId;
use pdx_sandbox::classification::{Filing, FilingQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::http::Caller;
use crate::http::catalog::reader;
use crate::http::json::{ApiPath, ApiQuery};
use crate::http::problem::{ApiResult, Problem};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_filings))
        .routes(routes!(get_filing))
}

/// Filings of not-shared classifications, newest first: every one for the data
/// authority and supervisors, a provider's own for a provider; `dataset_id` narrows.
#[utoipa::path(get, path = "/v1/classification-filings", tag = "catalog", security(("bearer" = [])),
    params(FilingQuery),
    responses((status = 200, body = Vec<Filing>), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn list_filings(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(query): ApiQuery<FilingQuery>,
) -> ApiResult<Json<Vec<Filing>>> {
    Ok(Json(
        app.sandbox
            .classification()
            .filings(&query, reader(&caller))
            .await?,
    ))
}

/// One filing: the data authority and supervisors read every one, a provider its own
/// (another provider's is 404).
#[utoipa::path(get, path = "/v1/classification-filings/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = FilingId, Path, description = "filing id")),
    responses((status = 200, body = Filing), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_filing(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FilingId>,
) -> ApiResult<Json<Filing>> {
    Ok(Json(
        app.sandbox
            .classification()
            .filing(&id, reader(&caller))
            .await?,
    ))
}
