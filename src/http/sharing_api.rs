//! Data sharing between government departments over HTTP (GD18; GD21 Art.22–23;
//! [`pdx_sandbox::sharing`]).
//!
//! - A providing department asks for another provider's published dataset for its
//!   duty (`POST /v1/share-requests`, with the purpose, the duty's legal basis and the
//!   term's last day). The dataset's share type decides at once (unconditional:
//!   granted; not shared: refused with the catalog's legal basis) or leaves it to the
//!   owning department (conditional), which answers within 10 working days
//!   (`POST /v1/share-requests/{id}/decision`) and may revoke a granted share
//!   (`POST /v1/share-requests/{id}/revoke`).
//! - While a share is active, the requesting department downloads the certified,
//!   de-identified version files (`GET /v1/share-requests/{id}/download?version=N`,
//!   Parquet); each download is a `DepartmentShare` `access` ledger entry, whose seq
//!   the `x-pdx-access-seq` header names. Like every download it is not among the
//!   reads a suspended organisation keeps, so a suspended department is refused.
//! - Both departments, the data authority and supervisors read a share
//!   (`GET /v1/share-requests`, `GET /v1/share-requests/{id}`); any other provider gets
//!   404, and other roles are refused by the policy table (403).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pdx_ids::ShareRequestId;
use pdx_sandbox::sharing::{
    NewShareRequest, ShareDecision, ShareQuery, ShareRequest, ShareRevocation,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::http::Caller;
use crate::http::api_doc::RawBytes;
use crate::http::catalog::reader;
use crate::http::json::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiResult, Problem};

/// The response header naming the seq of a download's `access` ledger entry.
pub const ACCESS_SEQ_HEADER: &str = "x-pdx-access-seq";

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_shares, request_share))
        .routes(routes!(get_share))
        .routes(routes!(decide_share))
        .routes(routes!(revoke_share))
        .routes(routes!(download_shared))
}

/// Ask for another provider's published dataset for the department's own duty (a
/// provider organisation): `{"dataset_id", "purpose", "duty_legal_basis", "until"}`.
/// The dataset's share type decides: unconditional is granted at once, not shared is
/// refused at once (the refusal names the catalog's legal basis), conditional waits for
/// the owning department (10 working days). 422 for one's own dataset or bad input, 404
/// for a dataset the department cannot see, 409 for a second pending request or active
/// share.
#[utoipa::path(post, path = "/v1/share-requests", tag = "sharing", security(("bearer" = [])),
    request_body = NewShareRequest,
    responses((status = 201, body = ShareRequest), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn request_share(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<NewShareRequest>,
) -> ApiResult<(StatusCode, Json<ShareRequest>)> {
    let share = app
        .sandbox
        .sharing()
        .request(&caller.principal.actor(), body)
        .await?;
    Ok((StatusCode::CREATED, Json(share)))
}

/// Share requests, newest first: a department's own (as requester or as owner), every
/// one for the data authority and supervisors; filter by `status` (`pending` is an
/// owner's queue) and `dataset_id`.
#[utoipa::path(get, path = "/v1/share-requests", tag = "sharing", security(("bearer" = [])),
    params(ShareQuery),
    responses((status = 200, body = Vec<ShareRequest>), (status = 400, body = Problem)))]
async fn list_shares(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ShareQuery>,
) -> ApiResult<Json<Vec<ShareRequest>>> {
    Ok(Json(
        app.sandbox
            .sharing()
            .shares(&query, reader(&caller))
            .await?,
    ))
}

/// One share request (both departments, the data authority and supervisors; 404 for
/// any other provider).
#[utoipa::path(get, path = "/v1/share-requests/{id}", tag = "sharing", security(("bearer" = [])),
    params(("id" = ShareRequestId, Path, description = "share request id")),
    responses((status = 200, body = ShareRequest), (status = 404, body = Problem)))]
async fn get_share(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ShareRequestId>,
) -> ApiResult<Json<ShareRequest>> {
    Ok(Json(
        app.sandbox.sharing().share(&id, reader(&caller)).await?,
    ))
}

/// Approve or refuse a pending conditional share request (the owning department):
/// `{"approve": true}` or `{"approve": false, "reason": "…"}`. A decision after the
/// 10-working-day deadline is accepted, marked late and listed on the compliance
/// report. 409 for a request already decided (also one decided at once by its share
/// type), 403 for the requesting department, 404 for anyone else.
#[utoipa::path(post, path = "/v1/share-requests/{id}/decision", tag = "sharing", security(("bearer" = [])),
    params(("id" = ShareRequestId, Path, description = "share request id")),
    request_body = ShareDecision,
    responses((status = 200, body = ShareRequest), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn decide_share(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ShareRequestId>,
    ApiJson(body): ApiJson<ShareDecision>,
) -> ApiResult<Json<ShareRequest>> {
    Ok(Json(
        app.sandbox
            .sharing()
            .decide(&caller.principal.actor(), &id, body)
            .await?,
    ))
}

/// Revoke an active share before its term (the owning department), with a `reason`;
/// downloads stop at once. 409 for a share that is not active, 403 for the requesting
/// department, 404 for anyone else.
#[utoipa::path(post, path = "/v1/share-requests/{id}/revoke", tag = "sharing", security(("bearer" = [])),
    params(("id" = ShareRequestId, Path, description = "share request id")),
    request_body = ShareRevocation,
    responses((status = 200, body = ShareRequest), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn revoke_share(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ShareRequestId>,
    ApiJson(body): ApiJson<ShareRevocation>,
) -> ApiResult<Json<ShareRequest>> {
    Ok(Json(
        app.sandbox
            .sharing()
            .revoke(&caller.principal.actor(), &id, body)
            .await?,
    ))
}

/// Which version a shared download serves.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SharedDownloadParams {
    /// The version (default: the latest certified one).
    version: Option<u64>,
}

/// Download a certified, de-identified version of the shared dataset as Parquet (the
/// requesting department, while the share is granted and within its term). Each
/// download is a `DepartmentShare` `access` ledger entry (its seq in the
/// `x-pdx-access-seq` header). 403 for a share not active and for the owning
/// department, 404 for anyone else and for an absent version.
#[utoipa::path(get, path = "/v1/share-requests/{id}/download", tag = "sharing", security(("bearer" = [])),
    params(("id" = ShareRequestId, Path, description = "share request id"), SharedDownloadParams),
    responses((status = 200, description = "the version's certified Parquet file", body = RawBytes,
            content_type = "application/vnd.apache.parquet"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn download_shared(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ShareRequestId>,
    ApiQuery(params): ApiQuery<SharedDownloadParams>,
) -> ApiResult<Response> {
    let download = app
        .sandbox
        .sharing()
        .download(&caller.principal.actor(), &id, params.version)
        .await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.apache.parquet".to_string(),
            ),
            (
                HeaderName::from_static(ACCESS_SEQ_HEADER),
                download.access_seq.to_string(),
            ),
        ],
        download.bytes,
    )
        .into_response())
}
