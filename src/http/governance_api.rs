//! The data authority's supervision of providers over HTTP: yearly evaluations (GD21
//! Art.48–49; GD18 Art.30; XT Art.41; [`pdx_sandbox::evaluation`]) and rectification
//! orders (GD21 Art.52; GD18 Art.31; [`pdx_sandbox::rectification`]), both public to
//! every authenticated caller (SD22 Art.5).
//!
//! - The data authority publishes a provider's evaluation for a year
//!   (`POST /v1/evaluations`, `{"provider_org": "org-…", "year": 2026}`): five
//!   indicators counted from the tables, each with its numerator and denominator, and a
//!   score under the formula in the sandbox module and the README; one per provider and
//!   year (409 for a second). Everyone authenticated reads them
//!   (`GET /v1/evaluations?provider=&year=`).
//! - The data authority issues a rectification order to an organisation with findings
//!   and a deadline (`POST /v1/rectifications`); the organisation answers it once
//!   (`POST /v1/rectifications/{id}/response`; any other organisation gets 404); the
//!   authority closes it (`POST /v1/rectifications/{id}/close`; a second closing is a
//!   409). Each step is a public `Rectification` ledger entry; open orders are on the
//!   compliance report until closed. Everyone authenticated reads them
//!   (`GET /v1/rectifications`, `GET /v1/rectifications/{id}`).
//!
//! An organisation that does not exist is "not found"; a wrong role is refused by the
//! policy table (403).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pdx_ids::{OrgId, RectificationId};
use pdx_sandbox::evaluation::{Evaluation, EvaluationQuery, NewEvaluation};
use pdx_sandbox::rectification::{
    NewRectification, RectificationClosing, RectificationOrder, RectificationQuery,
    RectificationResponse,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::http::Caller;
use crate::http::json::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, ApiResult, Problem};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_evaluations, publish_evaluation))
        .routes(routes!(list_rectifications, issue_rectification))
        .routes(routes!(get_rectification))
        .routes(routes!(respond_rectification))
        .routes(routes!(close_rectification))
}

/// 404 unless the organisation exists.
async fn existing_org(app: &App, org: &OrgId) -> ApiResult<()> {
    match app.accounts.org(org).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("no such organisation")),
    }
}

/// Publish a provider's yearly evaluation (the data authority): the five indicators of
/// the formula `pdx-evaluation-v1`, each with its numerator and denominator, and the
/// score, on the ledger as an `Evaluation` entry. 404 for an organisation that does not
/// exist, 409 when the provider already has one for that year, 422 for a year before
/// 2000 or after the current one.
#[utoipa::path(post, path = "/v1/evaluations", tag = "governance", security(("bearer" = [])),
    request_body = NewEvaluation,
    responses((status = 201, body = Evaluation), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn publish_evaluation(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<NewEvaluation>,
) -> ApiResult<(StatusCode, Json<Evaluation>)> {
    existing_org(&app, &body.provider_org).await?;
    let evaluation = app
        .sandbox
        .evaluations()
        .evaluate(&caller.principal.actor(), body)
        .await?;
    tracing::info!(evaluation = %evaluation.id, provider = %evaluation.provider_org, year = evaluation.year, "published an evaluation");
    Ok((StatusCode::CREATED, Json(evaluation)))
}

/// Published evaluations, newest year first, filtered by `provider` and `year`
/// (public: every authenticated caller).
#[utoipa::path(get, path = "/v1/evaluations", tag = "governance", security(("bearer" = [])),
    params(EvaluationQuery),
    responses((status = 200, body = Vec<Evaluation>), (status = 400, body = Problem)))]
async fn list_evaluations(
    State(app): State<App>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<EvaluationQuery>,
) -> ApiResult<Json<Vec<Evaluation>>> {
    Ok(Json(app.sandbox.evaluations().evaluations(&query).await?))
}

/// Order an organisation to rectify (the data authority): `{"org": "org-…",
/// "deadline": "YYYY-MM-DD", "findings": "…", "evaluation_id": "evl_…"}` (the
/// evaluation is optional). 404 for an organisation that does not exist; 422 for the
/// authority's own organisation, a deadline in the past or more than 366 days ahead, or
/// an evaluation of another organisation.
#[utoipa::path(post, path = "/v1/rectifications", tag = "governance", security(("bearer" = [])),
    request_body = NewRectification,
    responses((status = 201, body = RectificationOrder), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn issue_rectification(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<NewRectification>,
) -> ApiResult<(StatusCode, Json<RectificationOrder>)> {
    existing_org(&app, &body.org).await?;
    let order = app
        .sandbox
        .rectifications()
        .issue(&caller.principal.actor(), body)
        .await?;
    tracing::info!(order = %order.id, org = %order.org_id, deadline = %order.deadline, "issued a rectification order");
    Ok((StatusCode::CREATED, Json(order)))
}

/// Rectification orders, newest first, filtered by `org` and `status` (public: every
/// authenticated caller).
#[utoipa::path(get, path = "/v1/rectifications", tag = "governance", security(("bearer" = [])),
    params(RectificationQuery),
    responses((status = 200, body = Vec<RectificationOrder>), (status = 400, body = Problem)))]
async fn list_rectifications(
    State(app): State<App>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<RectificationQuery>,
) -> ApiResult<Json<Vec<RectificationOrder>>> {
    Ok(Json(app.sandbox.rectifications().orders(&query).await?))
}

/// One rectification order (public: every authenticated caller).
#[utoipa::path(get, path = "/v1/rectifications/{id}", tag = "governance", security(("bearer" = [])),
    params(("id" = RectificationId, Path, description = "rectification order id")),
    responses((status = 200, body = RectificationOrder), (status = 404, body = Problem)))]
async fn get_rectification(
    State(app): State<App>,
    _caller: Caller,
    ApiPath(id): ApiPath<RectificationId>,
) -> ApiResult<Json<RectificationOrder>> {
    Ok(Json(app.sandbox.rectifications().order(&id).await?))
}

/// Answer a rectification order (the ordered organisation, once): `{"response": "…"}`.
/// After the deadline the answer is accepted and marked late. Another organisation's
/// order is 404; an answered or closed one 409.
#[utoipa::path(post, path = "/v1/rectifications/{id}/response", tag = "governance", security(("bearer" = [])),
    params(("id" = RectificationId, Path, description = "rectification order id")),
    request_body = RectificationResponse,
    responses((status = 200, body = RectificationOrder), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn respond_rectification(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<RectificationId>,
    ApiJson(body): ApiJson<RectificationResponse>,
) -> ApiResult<Json<RectificationOrder>> {
    let order = app.sandbox.rectifications().order(&id).await?;
    caller.owns(&order.org_id)?;
    let order = app
        .sandbox
        .rectifications()
        .respond(&caller.principal.actor(), &order.id, body)
        .await?;
    tracing::info!(order = %order.id, late = order.responded_late, "answered a rectification order");
    Ok(Json(order))
}

/// Close a rectification order (the data authority): `{"note": "…"}`. An order already
/// closed is a 409.
#[utoipa::path(post, path = "/v1/rectifications/{id}/close", tag = "governance", security(("bearer" = [])),
    params(("id" = RectificationId, Path, description = "rectification order id")),
    request_body = RectificationClosing,
    responses((status = 200, body = RectificationOrder), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn close_rectification(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<RectificationId>,
    ApiJson(body): ApiJson<RectificationClosing>,
) -> ApiResult<Json<RectificationOrder>> {
    let order = app
        .sandbox
        .rectifications()
        .close(&caller.principal.actor(), &id, body)
        .await?;
    tracing::info!(order = %order.id, "closed a rectification order");
    Ok(Json(order))
}
