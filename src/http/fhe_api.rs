//! Private lookups over HTTP: FHE query templates, server keys and encrypted queries.
//!
//! Who may do what (the role half is in [`super::policies`], the organisation half
//! here and in `pdx_sandbox::fhe`):
//! - developers propose templates, upload server keys (public evaluation material) and
//!   submit encrypted queries under their grants, then poll the job and fetch the
//!   encrypted answer;
//! - providers approve, refuse and retire templates on their own datasets;
//! - supervisors read templates and query metadata (hashes, sizes, buckets, consent
//!   commitments), never the answer ciphertexts; opening a commitment is
//!   [`super::consent_api`].
//!
//! No endpoint accepts a client (secret) key: the server-key upload and the query
//! ciphertext are read by `pdx_algorithms::fhe::server`, which refuses one by its
//! serialised type name before any deserialisation. Every other combination of role and
//! resource is refused with 403 (wrong role) or 404 (another organisation's resource).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use pdx_ids::{DatasetId, FheKeyId, FheQueryId, FheTemplateId, GrantId};
use pdx_sandbox::fhe::{
    FheQuery, FheTemplate, NewTemplate, QueryRequest, ServerKeyInfo, TemplateDecision, TemplateView,
};
use pdx_sandbox::{Job, SandboxError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::auth::Role;
use crate::http::Caller;
use crate::http::api_doc::RawBytes;
use crate::http::body::discard_rest;
use crate::http::json::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, ApiResult, Problem};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, propose_template))
        .routes(routes!(get_template))
        .routes(routes!(decide_template))
        .routes(routes!(retire_template))
        .routes(routes!(list_keys, upload_key))
        .routes(routes!(get_key, delete_key))
        .routes(routes!(list_queries, submit_query))
        .routes(routes!(get_query))
}

fn template_view(caller: &Caller) -> TemplateView {
    match caller.principal.role {
        Role::Provider => TemplateView::Provider,
        Role::Supervisor => TemplateView::All,
        _ => TemplateView::Developer,
    }
}

/// Filter of the template list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TemplateFilter {
    /// Only templates of this dataset.
    dataset_id: Option<DatasetId>,
}

/// Templates the caller may see: developers the approved ones and their own proposals,
/// providers those on their datasets, supervisors all.
#[utoipa::path(get, path = "/v1/fhe/templates", tag = "fhe", security(("bearer" = [])),
    params(TemplateFilter),
    responses((status = 200, body = Vec<FheTemplate>)))]
async fn list_templates(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<TemplateFilter>,
) -> ApiResult<Json<Vec<FheTemplate>>> {
    Ok(Json(
        app.sandbox
            .fhe()
            .fhe_templates(
                &caller.principal.org_id,
                template_view(&caller),
                filter.dataset_id.as_ref(),
            )
            .await?,
    ))
}

/// Propose a query template for a dataset (developers). It waits for the provider.
#[utoipa::path(post, path = "/v1/fhe/templates", tag = "fhe", security(("bearer" = [])),
    request_body = NewTemplate,
    responses((status = 201, body = FheTemplate), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn propose_template(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<NewTemplate>,
) -> ApiResult<(StatusCode, Json<FheTemplate>)> {
    let t = app
        .sandbox
        .fhe()
        .propose_fhe_template(&caller.principal.actor(), body)
        .await?;
    tracing::info!(template = %t.id, dataset = %t.dataset_id, "proposed an FHE template");
    Ok((StatusCode::CREATED, Json(t)))
}

/// One template; an approved one shows the latest version's key count and the size of
/// every public bucket, so a client can weigh revealing one.
#[utoipa::path(get, path = "/v1/fhe/templates/{id}", tag = "fhe", security(("bearer" = [])),
    params(("id" = FheTemplateId, Path, description = "template id")),
    responses((status = 200, body = FheTemplate), (status = 404, body = Problem)))]
async fn get_template(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheTemplateId>,
) -> ApiResult<Json<FheTemplate>> {
    Ok(Json(
        app.sandbox
            .fhe()
            .fhe_template(&id, &caller.principal.org_id, template_view(&caller))
            .await?,
    ))
}

/// Approve or refuse (with a reason) a template on one of the provider's datasets.
/// Writes an `fhe_query` ledger entry holding the template and its hash. A template on
/// a not-open dataset can only be refused (403 on approval).
#[utoipa::path(post, path = "/v1/fhe/templates/{id}/decision", tag = "fhe", security(("bearer" = [])),
    params(("id" = FheTemplateId, Path, description = "template id")),
    request_body = TemplateDecision,
    responses((status = 200, body = FheTemplate), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn decide_template(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheTemplateId>,
    ApiJson(body): ApiJson<TemplateDecision>,
) -> ApiResult<Json<FheTemplate>> {
    Ok(Json(
        app.sandbox
            .fhe()
            .decide_fhe_template(&caller.principal.actor(), &id, body)
            .await?,
    ))
}

/// Body of a retirement.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Retirement {
    /// Why the template is withdrawn.
    reason: String,
}

/// Retire an approved template (its provider); queries refuse it from then on.
#[utoipa::path(post, path = "/v1/fhe/templates/{id}/retire", tag = "fhe", security(("bearer" = [])),
    params(("id" = FheTemplateId, Path, description = "template id")),
    request_body = Retirement,
    responses((status = 200, body = FheTemplate), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn retire_template(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheTemplateId>,
    ApiJson(body): ApiJson<Retirement>,
) -> ApiResult<Json<FheTemplate>> {
    Ok(Json(
        app.sandbox
            .fhe()
            .retire_fhe_template(&caller.principal.actor(), &id, &body.reason)
            .await?,
    ))
}

/// The caller's uploaded server keys. (Its operation id is its own: `list_keys` lists
/// API keys.)
#[utoipa::path(get, path = "/v1/fhe/keys", tag = "fhe", operation_id = "list_server_keys", security(("bearer" = [])),
    responses((status = 200, body = Vec<ServerKeyInfo>)))]
async fn list_keys(State(app): State<App>, caller: Caller) -> ApiResult<Json<Vec<ServerKeyInfo>>> {
    Ok(Json(
        app.sandbox
            .fhe()
            .server_keys(&caller.principal.org_id)
            .await?,
    ))
}

/// Upload a `CompressedServerKey` (TFHE-rs safe serialisation), once per key pair. It
/// is checked against the platform's parameters under a size cap; a client key is
/// refused by type and never stored. 201 for a new key, 200 when the organisation had
/// already uploaded it.
#[utoipa::path(post, path = "/v1/fhe/keys", tag = "fhe", security(("bearer" = [])),
    request_body(content = RawBytes, content_type = "application/octet-stream"),
    responses((status = 201, body = ServerKeyInfo), (status = 200, body = ServerKeyInfo),
        (status = 413, body = Problem), (status = 422, body = Problem)))]
async fn upload_key(State(app): State<App>, caller: Caller, body: Body) -> ApiResult<Response> {
    let mut upload = app.sandbox.fhe().start_key_upload().await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("the upload was cut off"))?;
        if let Err(e) = upload.write(&chunk).await {
            // Removes the partial file before anything else.
            drop(upload);
            if let SandboxError::TooLarge { limit } = &e {
                // Read the rest (within a bound) so that a client still sending gets
                // the 413 rather than a reset.
                discard_rest(&mut stream, *limit).await;
            }
            return Err(e.into());
        }
    }
    let (key, created) = app
        .sandbox
        .fhe()
        .register_server_key(&caller.principal.actor(), upload)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/fhe/keys/{}", key.id);
    Ok((status, [(header::LOCATION, location)], Json(key)).into_response())
}

/// One of the caller's server keys.
#[utoipa::path(get, path = "/v1/fhe/keys/{id}", tag = "fhe", security(("bearer" = [])),
    params(("id" = FheKeyId, Path, description = "server key id")),
    responses((status = 200, body = ServerKeyInfo), (status = 404, body = Problem)))]
async fn get_key(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheKeyId>,
) -> ApiResult<Json<ServerKeyInfo>> {
    Ok(Json(
        app.sandbox
            .fhe()
            .server_key(&id, &caller.principal.org_id)
            .await?,
    ))
}

/// Delete one of the caller's server keys.
#[utoipa::path(delete, path = "/v1/fhe/keys/{id}", tag = "fhe", security(("bearer" = [])),
    params(("id" = FheKeyId, Path, description = "server key id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_key(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheKeyId>,
) -> ApiResult<StatusCode> {
    app.sandbox
        .fhe()
        .delete_server_key(&caller.principal.actor(), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An encrypted query.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    /// An approved template.
    template_id: FheTemplateId,
    /// The grant covering the dataset (not needed for unconditionally open data).
    grant_id: Option<GrantId>,
    /// One of the caller's server keys.
    server_key_id: FheKeyId,
    /// Scan only this public bucket (the top `bucket_bits` of the hashed key): faster,
    /// but the platform learns the enterprise is one of the bucket's keys.
    bucket: Option<u64>,
    /// Base64 (standard alphabet) of a TFHE-rs safe serialisation of a
    /// `CompressedFheUint16`, `CompressedFheUint32` or `CompressedFheUint64` (the
    /// template's key width) encrypting the hashed key.
    #[schema(min_length = 1, pattern = "^[A-Za-z0-9+/]+={0,2}$")]
    ciphertext: String,
    /// Commitment to the enterprise's signed authorisation, 64 hex digits (GD21
    /// Art.41): `BLAKE3("pdx consent commitment v1" || 0x00 || authorisation bytes ||
    /// signature || nonce)` with a fresh random nonce. Required on conditionally open
    /// data; see `pdx_algorithms::fhe::consent`.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    consent_commitment: Option<String>,
}

/// What a submitted query returns at once.
#[derive(Debug, Serialize, ToSchema)]
struct QueryAccepted {
    /// The query.
    query: FheQuery,
    /// The job evaluating it; poll it for progress.
    job: Job,
}

/// Submit an encrypted lookup as a job (202 with its location). The template, the
/// grant (and its query budget), the consent commitment (required on conditionally
/// open data: 403 without one; 409 if already used), the server key and the ciphertext
/// are all checked first; a refusal starts and spends nothing.
#[utoipa::path(post, path = "/v1/fhe/queries", tag = "fhe", security(("bearer" = [])),
    request_body = QueryBody,
    responses((status = 202, body = QueryAccepted), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn submit_query(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<QueryBody>,
) -> ApiResult<Response> {
    let ciphertext = STANDARD
        .decode(body.ciphertext.trim())
        .map_err(|_| ApiError::invalid_field("ciphertext", "the ciphertext is not base64"))?;
    let request = QueryRequest {
        template_id: body.template_id,
        grant_id: body.grant_id,
        server_key_id: body.server_key_id,
        bucket: body.bucket,
        consent_commitment: body.consent_commitment,
    };
    let (query, job) = app
        .sandbox
        .fhe()
        .start_fhe_query(&caller.principal.actor(), request, ciphertext)
        .await?;
    let location = format!("/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(QueryAccepted { query, job }),
    )
        .into_response())
}

/// The caller's queries (developers), or all of them (supervisors), newest first.
#[utoipa::path(get, path = "/v1/fhe/queries", tag = "fhe", security(("bearer" = [])),
    responses((status = 200, body = Vec<FheQuery>)))]
async fn list_queries(State(app): State<App>, caller: Caller) -> ApiResult<Json<Vec<FheQuery>>> {
    let all = caller.principal.role == Role::Supervisor;
    Ok(Json(
        app.sandbox
            .fhe()
            .fhe_queries(&caller.principal.org_id, all)
            .await?,
    ))
}

/// The encrypted answer, base64 of TFHE-rs safe serialisations under the client's key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct AnswerBody {
    /// `FheUint8`: the template's value (0 when the key is absent).
    value: String,
    /// `FheBool`: whether the key is in the table.
    found: String,
}

/// A query and, for its owner once done, the encrypted answer.
#[derive(Debug, Serialize, ToSchema)]
struct QueryView {
    /// The query.
    #[serde(flatten)]
    query: FheQuery,
    /// The answer (owner only, once done).
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<AnswerBody>,
}

/// One query: its owner sees the encrypted answer once done; supervisors see the
/// metadata only.
#[utoipa::path(get, path = "/v1/fhe/queries/{id}", tag = "fhe", security(("bearer" = [])),
    params(("id" = FheQueryId, Path, description = "query id")),
    responses((status = 200, body = QueryView), (status = 404, body = Problem)))]
async fn get_query(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<FheQueryId>,
) -> ApiResult<Json<QueryView>> {
    let org = &caller.principal.org_id;
    if caller.principal.role == Role::Supervisor {
        let query = app.sandbox.fhe().fhe_query(&id, org, true).await?;
        return Ok(Json(QueryView {
            query,
            answer: None,
        }));
    }
    let query = app.sandbox.fhe().fhe_query(&id, org, false).await?;
    let answer = app
        .sandbox
        .fhe()
        .fhe_answer(&id, org)
        .await?
        .map(|a| AnswerBody {
            value: STANDARD.encode(&a.value),
            found: STANDARD.encode(&a.found),
        });
    Ok(Json(QueryView { query, answer }))
}
