//! Organisations and API keys (admin), and `whoami` for everyone.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pdx_ids::{KeyId, OrgId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{IssuedKey, KeyInfo, Org};
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::http::Caller;
use crate::http::json::{ApiJson, ApiPath};
use crate::http::problem::{ApiError, ApiResult, Problem};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(whoami))
}

/// Body of `POST /v1/orgs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Unique name.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// Administrative region (default `national`).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub region: Option<String>,
}

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Organisation name or id.
    pub org: String,
    /// Role of the key.
    pub role: Role,
    /// Label.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub label: Option<String>,
}

/// List organisations.
#[utoipa::path(get, path = "/v1/orgs", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Vec<Org>), (status = 403, body = Problem)))]
async fn list_orgs(State(app): State<App>, _caller: Caller) -> ApiResult<Json<Vec<Org>>> {
    Ok(Json(app.accounts.orgs().await?))
}

/// Create an organisation.
#[utoipa::path(post, path = "/v1/orgs", tag = "accounts", security(("bearer" = [])), request_body = CreateOrg,
    responses((status = 201, body = Org), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_org(
    State(app): State<App>,
    _caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<Org>)> {
    let region = body.region.as_deref().unwrap_or("national");
    let org = app.accounts.create_org(&body.name, region).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// List keys (ids and roles only; never secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Vec<KeyInfo>), (status = 403, body = Problem)))]
async fn list_keys(State(app): State<App>, _caller: Caller) -> ApiResult<Json<Vec<KeyInfo>>> {
    Ok(Json(app.accounts.keys().await?))
}

/// Issue a key. The secret is in the response once and never again.
#[utoipa::path(post, path = "/v1/keys", tag = "accounts", security(("bearer" = [])), request_body = CreateKey,
    responses((status = 201, body = IssuedKey), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn create_key(
    State(app): State<App>,
    _caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<IssuedKey>)> {
    // An organisation id names it; anything else is tried as a name.
    let by_id = match body.org.parse::<OrgId>() {
        Ok(id) => app.accounts.org(&id).await?,
        Err(_) => None,
    };
    let org = match by_id {
        Some(org) => org,
        None => app
            .accounts
            .org_by_name(&body.org)
            .await?
            .ok_or_else(|| ApiError::not_found("no such organisation"))?,
    };
    let label = body.label.as_deref().unwrap_or("api");
    let key = app.accounts.issue_key(&org.id, body.role, label).await?;
    tracing::info!(key_id = %key.key_id, org = %org.id, role = %key.role, "issued key");
    Ok((StatusCode::CREATED, Json(key)))
}

/// Revoke a key; it is refused from the next request on.
///
/// The last active admin key of the platform cannot be revoked (409): to rotate it, issue
/// a new admin key first (`POST /v1/keys` with `"role": "admin"`), then revoke the old one.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", tag = "accounts", security(("bearer" = [])),
    params(("key_id" = KeyId, Path, description = "public key id")),
    responses((status = 204), (status = 404, body = Problem),
        (status = 409, description = "the last active admin key: issue a new admin key first, then revoke this one", body = Problem)))]
async fn revoke_key(
    State(app): State<App>,
    _caller: Caller,
    ApiPath(key_id): ApiPath<KeyId>,
) -> ApiResult<StatusCode> {
    if app.accounts.revoke_key(&key_id).await? {
        tracing::info!(%key_id, "revoked key");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such active key"))
    }
}

/// Who the caller is.
#[utoipa::path(get, path = "/v1/whoami", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Principal), (status = 401, body = Problem)))]
async fn whoami(caller: Caller) -> Json<Principal> {
    Json(caller.principal)
}
