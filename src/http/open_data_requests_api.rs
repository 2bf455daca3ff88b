//! Requests to open data over HTTP (SD22 Art.9, 12; GD21 Art.34;
//! [`pdx_sandbox::open_data_requests`]).
//!
//! - Anyone files a request, the public without a key too
//!   (`POST /v1/open-data-requests`: a `subject`, a `description`, optionally the
//!   `dataset_id` to open further and a `contact`). Without a key it is counted against
//!   the address's hourly allowance of writes ([`crate::http::limits`]), and the body
//!   is bounded like every other.
//! - Everyone reads every request, the public without a key too
//!   (`GET /v1/open-data-requests`, `GET /v1/open-data-requests/{id}`); the contact
//!   only the data authority, supervisors, the requester's own organisation and the
//!   provider it is routed to.
//! - The data authority routes a filed request to the provider that must answer
//!   (`POST /v1/open-data-requests/{id}/route`; a named provider must be an
//!   organisation holding a provider key, 422 otherwise); that provider accepts or
//!   refuses it, a refusal with a reason (`POST /v1/open-data-requests/{id}/answer`).
//!   Another provider's request is "not found"; routing or answering twice is a 409; a
//!   wrong role is refused by the policy table (403).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pdx_ids::OpenDataRequestId;
use pdx_sandbox::open_data_requests::{
    NewOpenDataRequest, OpenDataAnswer, OpenDataReader, OpenDataRequest, OpenDataRequestQuery,
    OpenDataRouting,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::auth::Role;
use crate::http::catalog::visitor_reader;
use crate::http::json::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, ApiResult, Problem};
use crate::http::{Caller, Visitor};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_requests, file_request))
        .routes(routes!(get_request))
        .routes(routes!(route_request))
        .routes(routes!(answer_request))
}

/// Whose contacts a visitor sees: the data authority and supervisors every one, an
/// organisation those of its own requests and of those routed to it, the public none.
fn request_reader(visitor: &Visitor) -> OpenDataReader<'_> {
    match visitor.principal() {
        Some(p) if matches!(p.role, Role::Authority | Role::Supervisor) => OpenDataReader::Overseer,
        Some(p) => OpenDataReader::Org(&p.org_id),
        None => OpenDataReader::Public,
    }
}

/// File a request to open a catalogued dataset further (`dataset_id`) or to publish a
/// new one: anyone, without a key too. 404 for a dataset the requester does not see
/// (the public: an unpublished one), 409 for one unconditionally open already, 422 for
/// a subject, description or contact out of bounds.
#[utoipa::path(post, path = "/v1/open-data-requests", tag = "open data", security((), ("bearer" = [])),
    request_body = NewOpenDataRequest,
    responses((status = 201, body = OpenDataRequest), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn file_request(
    State(app): State<App>,
    visitor: Visitor,
    ApiJson(body): ApiJson<NewOpenDataRequest>,
) -> ApiResult<(StatusCode, Json<OpenDataRequest>)> {
    let actor = visitor.principal().map(|p| p.actor());
    let request = app
        .sandbox
        .open_data_requests()
        .file(actor.as_ref(), visitor_reader(&visitor), body)
        .await?;
    // The filer sees what it sent, its contact included.
    Ok((StatusCode::CREATED, Json(request)))
}

/// Requests to open data, newest first, filtered by `status` (`filed` is the data
/// authority's queue, `routed` the providers'), `dataset_id` and `provider_org`, a page
/// at a time. Public; the contact only for those who may see it.
#[utoipa::path(get, path = "/v1/open-data-requests", tag = "open data", security((), ("bearer" = [])),
    params(OpenDataRequestQuery),
    responses((status = 200, body = Vec<OpenDataRequest>), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn list_requests(
    State(app): State<App>,
    visitor: Visitor,
    ApiQuery(query): ApiQuery<OpenDataRequestQuery>,
) -> ApiResult<Json<Vec<OpenDataRequest>>> {
    Ok(Json(
        app.sandbox
            .open_data_requests()
            .requests(&query, request_reader(&visitor))
            .await?,
    ))
}

/// One request to open data. Public; the contact only for those who may see it.
#[utoipa::path(get, path = "/v1/open-data-requests/{id}", tag = "open data", security((), ("bearer" = [])),
    params(("id" = OpenDataRequestId, Path, description = "request id")),
    responses((status = 200, body = OpenDataRequest), (status = 404, body = Problem)))]
async fn get_request(
    State(app): State<App>,
    visitor: Visitor,
    ApiPath(id): ApiPath<OpenDataRequestId>,
) -> ApiResult<Json<OpenDataRequest>> {
    Ok(Json(
        app.sandbox
            .open_data_requests()
            .request(&id, request_reader(&visitor))
            .await?,
    ))
}

/// Route a filed request to the provider that must answer it (the data authority):
/// `{}` for a request about a dataset (its provider), `{"provider_org": "…"}` for a new
/// dataset. The answer is due 15 working days later. 409 once routed; 422 when the
/// named organisation holds no provider key, or differs from the dataset's provider.
#[utoipa::path(post, path = "/v1/open-data-requests/{id}/route", tag = "open data", security(("bearer" = [])),
    params(("id" = OpenDataRequestId, Path, description = "request id")),
    request_body = OpenDataRouting,
    responses((status = 200, body = OpenDataRequest), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn route_request(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OpenDataRequestId>,
    ApiJson(body): ApiJson<OpenDataRouting>,
) -> ApiResult<Json<OpenDataRequest>> {
    if let Some(provider) = &body.provider_org {
        // Only a provider can answer (the answer route is the providers'): routing to
        // an organisation without a provider key would leave the request unanswerable.
        let is_provider = app.accounts.org(provider).await?.is_some()
            && app.accounts.keys().await?.iter().any(|k| {
                k.org_id == *provider && k.role == Role::Provider && k.revoked_ms.is_none()
            });
        if !is_provider {
            return Err(ApiError::invalid_field(
                "provider_org",
                "`provider_org` must be an organisation holding a provider key",
            ));
        }
    }
    let request = app
        .sandbox
        .open_data_requests()
        .route(&caller.principal.actor(), &id, body)
        .await?;
    Ok(Json(request))
}

/// Answer a request routed to the caller's organisation (its provider):
/// `{"outcome": "accepted"}` or `{"outcome": "refused", "reason": "…"}`. An answer
/// after the deadline is accepted, marked late and shown on the compliance report.
/// 404 for a request not routed to the caller's organisation, 409 once answered, 422
/// for a refusal without a reason.
#[utoipa::path(post, path = "/v1/open-data-requests/{id}/answer", tag = "open data", security(("bearer" = [])),
    params(("id" = OpenDataRequestId, Path, description = "request id")),
    request_body = OpenDataAnswer,
    responses((status = 200, body = OpenDataRequest), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn answer_request(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OpenDataRequestId>,
    ApiJson(body): ApiJson<OpenDataAnswer>,
) -> ApiResult<Json<OpenDataRequest>> {
    let request = app
        .sandbox
        .open_data_requests()
        .answer(&caller.principal.actor(), &id, body)
        .await?;
    Ok(Json(request))
}
