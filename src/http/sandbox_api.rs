//! The sandbox: grants, models, dry runs, model runs, outputs and their review.
//!
//! Who may do what (the role half is in [`super::policies`], the organisation half
//! here and in `pdx_sandbox`):
//! - developers apply for grants, register models, dry-run them on dummy data, start
//!   runs and download their *released* outputs;
//! - providers answer and revoke grants on their own datasets and set each dataset's
//!   output policy;
//! - reviewers see the quarantine queue (model text, check report, preview) and the
//!   outputs they decided, compare an output with the previous release of its model or
//!   grant, and approve or reject outputs of other organisations, each without seeing
//!   the others' votes until the output is decided;
//! - supervisors read grants and output metadata.
//!
//! Every other combination is refused with 403 (wrong role) or 404 (another
//! organisation's resource), so ids cannot be probed.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pdx_algorithms::deid::storage::to_json_rows;
use pdx_ids::{DatasetId, GrantId, ModelId, OutputId};
use pdx_sandbox::Job;
use pdx_sandbox::grants::{Grant, GrantAnswer, GrantApplication, GrantView};
use pdx_sandbox::models::{Model, NewModel};
use pdx_sandbox::review::{Output, OutputView, PreviousRelease, ReviewDecision, ReviewItem};
use pdx_sandbox::runs::{DryRunRequest, DryRunResult, OutputPolicy, RunRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::auth::Role;
use crate::http::Caller;
use crate::http::api_doc::RawBytes;
use crate::http::json::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, ApiResult, Problem};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_grants, apply_for_grant))
        .routes(routes!(get_grant))
        .routes(routes!(decide_grant))
        .routes(routes!(revoke_grant))
        .routes(routes!(get_output_policy, set_output_policy))
        .routes(routes!(list_models, register_model))
        .routes(routes!(get_model))
        .routes(routes!(dry_run))
        .routes(routes!(start_run))
        .routes(routes!(list_outputs))
        .routes(routes!(get_output))
        .routes(routes!(download_output))
        .routes(routes!(review_queue))
        .routes(routes!(review_detail, review_output))
        .routes(routes!(previous_release_rows))
}

fn grant_view(caller: &Caller) -> GrantView {
    match caller.principal.role {
        Role::Provider => GrantView::Provider,
        Role::Supervisor => GrantView::All,
        _ => GrantView::Applicant,
    }
}

/// Grants the caller may see: a developer's own, a provider's incoming, or all
/// (supervisors). Each shows its working-day answer deadline and whether it is overdue.
#[utoipa::path(get, path = "/v1/grants", tag = "sandbox", security(("bearer" = [])),
    responses((status = 200, body = Vec<Grant>)))]
async fn list_grants(State(app): State<App>, caller: Caller) -> ApiResult<Json<Vec<Grant>>> {
    Ok(Json(
        app.sandbox
            .grants()
            .grants(&caller.principal.org_id, grant_view(&caller))
            .await?,
    ))
}

/// Apply for a grant (open-use agreement) on a conditional dataset (developers); a
/// not-open dataset is a 403. The application states its purpose and the purpose's kind
/// (`purpose_kind`: research, public_interest or commercial) and carries the agreement
/// text the developer accepts (`agreement`; left out, the platform's standard
/// agreement): it is stored with the grant, and its BLAKE3 is on the grant's
/// `GrantDecision` entries with the purpose. A research-only grant with a commercial
/// purpose is a 422.
#[utoipa::path(post, path = "/v1/grants", tag = "sandbox", security(("bearer" = [])),
    request_body = GrantApplication,
    responses((status = 201, body = Grant), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn apply_for_grant(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<GrantApplication>,
) -> ApiResult<(StatusCode, Json<Grant>)> {
    let grant = app
        .sandbox
        .grants()
        .apply_for_grant(&caller.principal.actor(), body)
        .await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

/// One grant (its applicant, its provider, or a supervisor).
#[utoipa::path(get, path = "/v1/grants/{id}", tag = "sandbox", security(("bearer" = [])),
    params(("id" = GrantId, Path, description = "grant id")),
    responses((status = 200, body = Grant), (status = 404, body = Problem)))]
async fn get_grant(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<GrantId>,
) -> ApiResult<Json<Grant>> {
    Ok(Json(
        app.sandbox
            .grants()
            .grant(&id, &caller.principal.org_id, grant_view(&caller))
            .await?,
    ))
}

/// Approve (possibly narrowing the terms) or refuse (with a reason) a grant on one of
/// the provider's datasets. Writes a `GrantDecision` ledger entry. A grant on a
/// not-open dataset can only be refused (403 on approval).
#[utoipa::path(post, path = "/v1/grants/{id}/decision", tag = "sandbox", security(("bearer" = [])),
    params(("id" = GrantId, Path, description = "grant id")),
    request_body = GrantAnswer,
    responses((status = 200, body = Grant), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn decide_grant(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<GrantId>,
    ApiJson(body): ApiJson<GrantAnswer>,
) -> ApiResult<Json<Grant>> {
    Ok(Json(
        app.sandbox
            .grants()
            .decide_grant(&caller.principal.actor(), &id, body)
            .await?,
    ))
}

/// Body of a revocation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Revocation {
    /// Why the grant is withdrawn.
    reason: String,
}

/// Revoke an approved grant (its provider); jobs refuse it from the next start.
#[utoipa::path(post, path = "/v1/grants/{id}/revoke", tag = "sandbox", security(("bearer" = [])),
    params(("id" = GrantId, Path, description = "grant id")),
    request_body = Revocation,
    responses((status = 200, body = Grant), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn revoke_grant(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<GrantId>,
    ApiJson(body): ApiJson<Revocation>,
) -> ApiResult<Json<Grant>> {
    Ok(Json(
        app.sandbox
            .grants()
            .revoke_grant(&caller.principal.actor(), &id, &body.reason)
            .await?,
    ))
}

/// A dataset's output policy (its provider).
#[utoipa::path(get, path = "/v1/datasets/{id}/output-policy", tag = "sandbox", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    responses((status = 200, body = OutputPolicy), (status = 404, body = Problem)))]
async fn get_output_policy(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
) -> ApiResult<Json<OutputPolicy>> {
    let dataset = app
        .sandbox
        .catalog()
        .dataset(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such dataset"))?;
    caller.owns(&dataset.provider_org)?;
    Ok(Json(app.sandbox.runs().output_policy(&id).await?))
}

/// Set a dataset's output policy: disclosure thresholds, reviewers, DP auto-release.
#[utoipa::path(put, path = "/v1/datasets/{id}/output-policy", tag = "sandbox", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    request_body = OutputPolicy,
    responses((status = 200, body = OutputPolicy), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_output_policy(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
    ApiJson(body): ApiJson<OutputPolicy>,
) -> ApiResult<Json<OutputPolicy>> {
    let dataset = app
        .sandbox
        .catalog()
        .dataset(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such dataset"))?;
    caller.owns(&dataset.provider_org)?;
    app.sandbox.runs().set_output_policy(&id, &body).await?;
    Ok(Json(app.sandbox.runs().output_policy(&id).await?))
}

/// The caller's models.
#[utoipa::path(get, path = "/v1/models", tag = "sandbox", security(("bearer" = [])),
    responses((status = 200, body = Vec<Model>)))]
async fn list_models(State(app): State<App>, caller: Caller) -> ApiResult<Json<Vec<Model>>> {
    Ok(Json(
        app.sandbox
            .models()
            .models(&caller.principal.org_id)
            .await?,
    ))
}

/// Register a model (SQL or DP); its hash goes on the ledger.
#[utoipa::path(post, path = "/v1/models", tag = "sandbox", security(("bearer" = [])),
    request_body = NewModel,
    responses((status = 201, body = Model), (status = 422, body = Problem)))]
async fn register_model(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<NewModel>,
) -> ApiResult<(StatusCode, Json<Model>)> {
    let model = app
        .sandbox
        .models()
        .register_model(&caller.principal.actor(), body)
        .await?;
    Ok((StatusCode::CREATED, Json(model)))
}

/// One of the caller's models.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "sandbox", security(("bearer" = [])),
    params(("id" = ModelId, Path, description = "model id")),
    responses((status = 200, body = Model), (status = 404, body = Problem)))]
async fn get_model(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ModelId>,
) -> ApiResult<Json<Model>> {
    Ok(Json(
        app.sandbox
            .models()
            .model(&id, &caller.principal.org_id)
            .await?,
    ))
}

/// Run a model text on the dataset's dummy data at once: output schema, a sample and
/// the check report. No grant, no budget, no real row. Not on a not-open dataset (403).
#[utoipa::path(post, path = "/v1/dry-run", tag = "sandbox", security(("bearer" = [])),
    request_body = DryRunRequest,
    responses((status = 200, body = DryRunResult), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn dry_run(
    State(app): State<App>,
    _caller: Caller,
    ApiJson(body): ApiJson<DryRunRequest>,
) -> ApiResult<Json<DryRunResult>> {
    Ok(Json(app.sandbox.runs().dry_run(body).await?))
}

/// Start a model run as a job (202 with its location). Open attributes (no not-open
/// input), grants, budgets and the organisation's concurrency cap are checked first; a
/// refusal starts nothing.
#[utoipa::path(post, path = "/v1/runs", tag = "sandbox", security(("bearer" = [])),
    request_body = RunRequest,
    responses((status = 202, body = Job), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn start_run(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<RunRequest>,
) -> ApiResult<Response> {
    let job = app
        .sandbox
        .runs()
        .start_run(&caller.principal.actor(), body)
        .await?;
    tracing::info!(job = %job.id, org = %job.org_id, "started a model run");
    let location = format!("/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

/// The caller's outputs (developers), newest first.
#[utoipa::path(get, path = "/v1/outputs", tag = "sandbox", security(("bearer" = [])),
    responses((status = 200, body = Vec<Output>)))]
async fn list_outputs(State(app): State<App>, caller: Caller) -> ApiResult<Json<Vec<Output>>> {
    Ok(Json(
        app.sandbox
            .reviews()
            .outputs_of(&caller.principal.org_id)
            .await?,
    ))
}

fn output_view(caller: &Caller) -> OutputView {
    match caller.principal.role {
        Role::Reviewer => OutputView::Reviewer,
        Role::Supervisor => OutputView::Supervisor,
        _ => OutputView::Owner,
    }
}

/// One output's metadata and check report (its developer, reviewers, supervisors).
#[utoipa::path(get, path = "/v1/outputs/{id}", tag = "sandbox", security(("bearer" = [])),
    params(("id" = OutputId, Path, description = "output id")),
    responses((status = 200, body = Output), (status = 404, body = Problem)))]
async fn get_output(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OutputId>,
) -> ApiResult<Json<Output>> {
    let output = app
        .sandbox
        .reviews()
        .output(&id, &caller.principal.org_id, output_view(&caller))
        .await?;
    Ok(Json(for_caller(&caller, output)))
}

/// An output as the caller may see its reviews: a reviewer only their own until the
/// output is decided (two independent reviewers), everyone else as given.
fn for_caller(caller: &Caller, output: Output) -> Output {
    match caller.principal.role {
        Role::Reviewer => output.for_reviewer(&caller.principal.key_id),
        _ => output,
    }
}

/// A queue item as the calling reviewer may see it ([`for_caller`]).
fn item_for_caller(caller: &Caller, mut item: ReviewItem) -> ReviewItem {
    item.output = for_caller(caller, item.output);
    item
}

/// Download format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DownloadParams {
    /// `parquet` (default), `csv` or `json`.
    #[param(pattern = "^(parquet|csv|json)$")]
    format: Option<String>,
}

/// Download an output: its developer once released; reviewers while quarantined.
#[utoipa::path(get, path = "/v1/outputs/{id}/download", tag = "sandbox", security(("bearer" = [])),
    params(("id" = OutputId, Path, description = "output id"), DownloadParams),
    responses((status = 200, description = "the output's rows: its Parquet file (`format=parquet`), or its rows \
            as CSV or as JSON objects",
            content((RawBytes = "application/vnd.apache.parquet"), (String = "text/csv"), (Vec<Object> = "application/json"))),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn download_output(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OutputId>,
    ApiQuery(params): ApiQuery<DownloadParams>,
) -> ApiResult<Response> {
    let format = params.format.as_deref().unwrap_or("parquet");
    if !matches!(format, "parquet" | "csv" | "json") {
        return Err(ApiError::invalid_field(
            "format",
            "format is parquet, csv or json",
        ));
    }
    let view = match caller.principal.role {
        Role::Reviewer => OutputView::Reviewer,
        Role::Developer => OutputView::Owner,
        _ => return Err(ApiError::not_found("no such output")),
    };
    let org = &caller.principal.org_id;
    let (output, content_type, bytes) = if format == "parquet" {
        // The stored bytes themselves, so their hash matches the release entry.
        let (output, path) = app.sandbox.reviews().output_path(&id, org, view).await?;
        let bytes = app.sandbox.read_zone_file(path).await?;
        (output, "application/vnd.apache.parquet", bytes)
    } else {
        let (output, mut frame) = app.sandbox.reviews().output_rows(&id, org, view).await?;
        let (content_type, bytes) = crate::http::usage_api::frame_body(&mut frame, format)?;
        (output, content_type, bytes)
    };
    tracing::info!(output = %output.id, key_id = %caller.principal.key_id, format, "output download");
    // Every download is a `DataAccess` ledger entry, written before the bytes leave
    // (GD18 Art.28; XT Art.34(4)).
    app.sandbox
        .usage()
        .record_output_download(&caller.principal.actor(), &output, format, &bytes)
        .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// Which part of the review queue.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct QueueParams {
    /// `open` (default: outputs awaiting review) or `decided` (released or rejected
    /// after review, most recently decided first).
    #[param(pattern = "^(open|decided)$")]
    state: Option<String>,
    /// Most decided outputs to return (default 50, at most 200).
    limit: Option<u32>,
}

/// The review queue (reviewers): quarantined outputs of other organisations with the
/// job, the model text, the check report, a preview, the grant and the previous release
/// of the same model or grant; with `state=decided`, those reviewers released or
/// rejected. Other reviewers' votes are counted (`votes`) but not shown until an output
/// is decided.
#[utoipa::path(get, path = "/v1/review", tag = "sandbox", security(("bearer" = [])),
    params(QueueParams),
    responses((status = 200, body = Vec<ReviewItem>), (status = 422, body = Problem)))]
async fn review_queue(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(params): ApiQuery<QueueParams>,
) -> ApiResult<Json<Vec<ReviewItem>>> {
    let org = &caller.principal.org_id;
    let items = match params.state.as_deref().unwrap_or("open") {
        "open" => app.sandbox.reviews().review_queue(org).await?,
        "decided" => {
            let limit = params.limit.unwrap_or(50).clamp(1, 200);
            app.sandbox
                .reviews()
                .decided_reviews(org, i64::from(limit))
                .await?
        }
        _ => {
            return Err(ApiError::invalid_field("state", "state is open or decided"));
        }
    };
    Ok(Json(
        items
            .into_iter()
            .map(|item| item_for_caller(&caller, item))
            .collect(),
    ))
}

/// One output as its reviewers see it, whatever its status: the job, the model text,
/// the whole check report, a preview, the grant and the previous release of the same
/// model or grant. An output of the reviewer's own organisation is not found.
#[utoipa::path(get, path = "/v1/review/{id}", tag = "sandbox", security(("bearer" = [])),
    params(("id" = OutputId, Path, description = "output id")),
    responses((status = 200, body = ReviewItem), (status = 404, body = Problem)))]
async fn review_detail(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OutputId>,
) -> ApiResult<Json<ReviewItem>> {
    let item = app
        .sandbox
        .reviews()
        .review_detail(&id, &caller.principal.org_id)
        .await?;
    Ok(Json(item_for_caller(&caller, item)))
}

/// The rows of the release an output is compared with.
#[derive(Debug, Serialize, ToSchema)]
struct PreviousRows {
    /// Which release, and why it is the one.
    release: PreviousRelease,
    /// BLAKE3 of its Parquet file, hex (as on its `Release` entry).
    output_hash: String,
    /// Its rows, as JSON objects.
    #[schema(value_type = Vec<Object>)]
    rows: serde_json::Value,
}

/// The rows of the previous release of an output's model (else of its grant), so that a
/// reviewer sees which cells were added, removed or changed since (404 when there is
/// none, or for an output of the reviewer's own organisation). Logged as a
/// `DataAccess` entry, as every download.
#[utoipa::path(get, path = "/v1/review/{id}/previous", tag = "sandbox", security(("bearer" = [])),
    params(("id" = OutputId, Path, description = "output id (the one under review)")),
    responses((status = 200, body = PreviousRows), (status = 404, body = Problem)))]
async fn previous_release_rows(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OutputId>,
) -> ApiResult<Json<PreviousRows>> {
    let (release, output, frame) = app
        .sandbox
        .reviews()
        .previous_release_rows(&id, &caller.principal.org_id)
        .await?;
    let rows = to_json_rows(&frame, usize::MAX);
    let bytes = serde_json::to_vec(&rows).map_err(ApiError::internal)?;
    tracing::info!(output = %output.id, key_id = %caller.principal.key_id, "previous release read for review");
    app.sandbox
        .usage()
        .record_output_download(&caller.principal.actor(), &output, "json", &bytes)
        .await?;
    Ok(Json(PreviousRows {
        release,
        output_hash: output.output_hash,
        rows,
    }))
}

/// Approve or reject a quarantined output (reviewers). The last approval needed
/// releases it and writes a `Release` ledger entry. An output of the reviewer's own
/// organisation is refused (403); a decided one, or a second vote of the same key, is a
/// 409.
#[utoipa::path(post, path = "/v1/review/{id}", tag = "sandbox", security(("bearer" = [])),
    params(("id" = OutputId, Path, description = "output id")),
    request_body = ReviewDecision,
    responses((status = 200, body = Output), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn review_output(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OutputId>,
    ApiJson(body): ApiJson<ReviewDecision>,
) -> ApiResult<Json<Output>> {
    let output = app
        .sandbox
        .reviews()
        .review_output(&caller.principal.actor(), &id, body)
        .await?;
    Ok(Json(for_caller(&caller, output)))
}
