//! Auditable consent for private lookups over HTTP (GD21 Art.41).
//!
//! Who may do what (the role half is in [`super::policies`], the organisation half in
//! `pdx_sandbox::fhe_consent`):
//! - subject organisations (the enterprises banks look up) register their Ed25519
//!   consent key (`PUT /v1/consent/keys`) and list their keys; supervisors list every
//!   organisation's;
//! - supervisors ask the bank that made a query to open its consent commitment
//!   (`POST /v1/fhe/queries/{id}/consent/request`);
//! - the bank (the query's organisation, developer role) opens it
//!   (`POST /v1/fhe/queries/{id}/consent/open`) or refuses
//!   (`POST /v1/fhe/queries/{id}/consent/refuse`);
//! - the bank and supervisors read the query's consent status
//!   (`GET /v1/fhe/queries/{id}/consent`); another organisation's query is 404, every
//!   other role 403.
//!
//! An opening that fails a check is answered 200 with `status: invalid` and the failed
//! check, because it was recorded (a ledger entry) as evidence; only an unreadable
//! opening is a 4xx problem, and it records nothing. The signed bytes and the
//! commitment are documented in `pdx_algorithms::fhe::consent`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pdx_algorithms::fhe::consent::{ConsentAuthorisation, OpeningText};
use pdx_ids::{FheQueryId, OrgId};
use pdx_sandbox::fhe_consent::{ConsentKey, ConsentView};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::auth::Role;
use crate::http::Caller;
use crate::http::json::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiResult, Problem};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_consent_keys, put_consent_key))
        .routes(routes!(get_consent))
        .routes(routes!(request_consent))
        .routes(routes!(open_consent))
        .routes(routes!(refuse_consent))
}

/// Filter of the key list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct KeyFilter {
    /// Only this organisation's keys (supervisors; subjects always see their own).
    org_id: Option<OrgId>,
}

/// Consent keys, newest first: a subject's own (current and superseded), or every
/// organisation's for supervisors.
#[utoipa::path(get, path = "/v1/consent/keys", tag = "consent", security(("bearer" = [])),
    params(KeyFilter),
    responses((status = 200, body = Vec<ConsentKey>)))]
async fn list_consent_keys(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<KeyFilter>,
) -> ApiResult<Json<Vec<ConsentKey>>> {
    let org = if caller.principal.role == Role::Supervisor {
        filter.org_id
    } else {
        Some(caller.principal.org_id.clone())
    };
    Ok(Json(
        app.sandbox.fhe_consent().consent_keys(org.as_ref()).await?,
    ))
}

/// A consent key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewConsentKey {
    /// Ed25519 public key, 64 hex digits.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    public_key: String,
}

/// Set the caller's current consent key (subject organisations). From now on the
/// authorisations it signs are checked under this key; the previous key still checks
/// the queries made while it was current. 201 for a new key, 200 when it is already the
/// current one. The registration is an `fhe_query` ledger entry (event `consent_key`).
#[utoipa::path(put, path = "/v1/consent/keys", tag = "consent", security(("bearer" = [])),
    request_body = NewConsentKey,
    responses((status = 201, body = ConsentKey), (status = 200, body = ConsentKey),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn put_consent_key(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<NewConsentKey>,
) -> ApiResult<(StatusCode, Json<ConsentKey>)> {
    let (key, created) = app
        .sandbox
        .fhe_consent()
        .register_consent_key(&caller.principal.actor(), &body.public_key)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(key)))
}

/// A query's consent: the commitment it carried and every request to open it, with the
/// bank's answers (openings as sent, the outcome and the first failed check).
#[utoipa::path(get, path = "/v1/fhe/queries/{id}/consent", tag = "consent", security(("bearer" = [])),
    params(("id" = FheQueryId, Path, description = "query id")),
    responses((status = 200, body = ConsentView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_consent(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheQueryId>,
) -> ApiResult<Json<ConsentView>> {
    let all = caller.principal.role == Role::Supervisor;
    Ok(Json(
        app.sandbox
            .fhe_consent()
            .fhe_consent(&id, &caller.principal.org_id, all)
            .await?,
    ))
}

/// Why a supervisor asks.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConsentRequestBody {
    /// The reason, shown to the bank and written to the ledger (1 to 4,000 characters).
    #[schema(min_length = 1, max_length = 4000)]
    reason: String,
}

/// Ask the bank that made a query to open its consent commitment (supervisors). The
/// bank has 5 working days; the request is an `fhe_query` ledger entry (event
/// `consent_request`). 409 when the query has no commitment, a request is already
/// open, or the commitment was already verified.
#[utoipa::path(post, path = "/v1/fhe/queries/{id}/consent/request", tag = "consent", security(("bearer" = [])),
    params(("id" = FheQueryId, Path, description = "query id")),
    request_body = ConsentRequestBody,
    responses((status = 201, body = ConsentView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn request_consent(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheQueryId>,
    ApiJson(body): ApiJson<ConsentRequestBody>,
) -> ApiResult<(StatusCode, Json<ConsentView>)> {
    let view = app
        .sandbox
        .fhe_consent()
        .request_fhe_consent(&caller.principal.actor(), &id, &body.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// An opening of a consent commitment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    /// The authorisation the subject signed: `subject_org`, `bank_org`, `template_id`,
    /// `valid_from_ms`, `valid_until_ms` (ms since the epoch, inclusive) and `purpose`.
    authorisation: ConsentAuthorisation,
    /// The subject's Ed25519 signature over the authorisation bytes, 128 hex digits.
    signature: String,
    /// The nonce drawn for this query, 64 hex digits.
    nonce: String,
}

/// Open a query's consent commitment (the bank that made it, once a supervisor has
/// asked). pdx checks, in order: the commitment, the authorisation's shape, the
/// subject's consent key at the query's time, the signature, the bank, the template and
/// the period. Whatever the outcome, it is recorded (event `consent_answer`) and
/// answered 200: `status` is `verified`, or `invalid` with `failed_check`.
#[utoipa::path(post, path = "/v1/fhe/queries/{id}/consent/open", tag = "consent", security(("bearer" = [])),
    params(("id" = FheQueryId, Path, description = "query id")),
    request_body = OpenBody,
    responses((status = 200, body = ConsentView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn open_consent(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheQueryId>,
    ApiJson(body): ApiJson<OpenBody>,
) -> ApiResult<Json<ConsentView>> {
    let text = OpeningText {
        authorisation: body.authorisation,
        signature: body.signature,
        nonce: body.nonce,
    };
    Ok(Json(
        app.sandbox
            .fhe_consent()
            .open_fhe_consent(&caller.principal.actor(), &id, text)
            .await?,
    ))
}

/// Why the bank refuses.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefuseBody {
    /// The reason, written to the ledger (1 to 4,000 characters).
    #[schema(min_length = 1, max_length = 4000)]
    reason: String,
}

/// Refuse to open a query's consent commitment (the bank that made it), with a reason.
/// The refusal is recorded (event `consent_answer`, outcome `refused`).
#[utoipa::path(post, path = "/v1/fhe/queries/{id}/consent/refuse", tag = "consent", security(("bearer" = [])),
    params(("id" = FheQueryId, Path, description = "query id")),
    request_body = RefuseBody,
    responses((status = 200, body = ConsentView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn refuse_consent(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheQueryId>,
    ApiJson(body): ApiJson<RefuseBody>,
) -> ApiResult<Json<ConsentView>> {
    Ok(Json(
        app.sandbox
            .fhe_consent()
            .refuse_fhe_consent(&caller.principal.actor(), &id, &body.reason)
            .await?,
    ))
}
