//! Supervision over HTTP: ledger verification, reports, lineage, suspensions,
//! objections and witness cosignatures.
//!
//! Who may do what (the role half is in [`super::policies`]):
//! - supervisors start ledger verifications, read the compliance and budget reports,
//!   trace a product's lineage, suspend and reinstate organisations, and submit witness
//!   cosignatures (the revenue reconciliation, `GET /v1/reconciliation`, is the
//!   products API's and open to supervisors too);
//! - everyone reads the public list of suspensions, the public without a key too;
//! - every authenticated caller files objections and reads the objections it filed or
//!   must answer;
//! - a dataset's provider answers objections to it (others get 404).
//!
//! The domain logic is in `pdx_sandbox` (objections, reports, release lineage, the
//! verification job), [`crate::supervision`] (suspension, product lineage) and
//! `pdx_ledger` (witness cosignatures, [`pdx_ledger::witness`]); this module only
//! adapts it.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pdx_ids::{DatasetId, ObjectionId, ProductId};
use pdx_ledger::WitnessError;
use pdx_sandbox::Job;
use pdx_sandbox::compliance::{BudgetReport, ComplianceReport, report_instant};
use pdx_sandbox::disclosure_audit::DisclosureReport;
use pdx_sandbox::objections::{NewObjection, Objection, ObjectionReply, ObjectionView};
use pdx_sandbox::workdays::parse_day;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::auth::Role;
use crate::http::json::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, ApiResult, Problem};
use crate::http::{Caller, Visitor};
use crate::supervision::{
    self, ProductLineage, SupervisionError, SuspensionList, SuspensionOutcome, SuspensionRequest,
};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(start_verification))
        .routes(routes!(compliance))
        .routes(routes!(budgets))
        .routes(routes!(disclosure))
        .routes(routes!(product_lineage))
        .routes(routes!(list_suspensions, set_suspension))
        .routes(routes!(list_objections, file_objection))
        .routes(routes!(get_objection))
        .routes(routes!(answer_objection))
        .routes(routes!(submit_cosignature))
}

impl From<SupervisionError> for ApiError {
    fn from(e: SupervisionError) -> Self {
        match e {
            SupervisionError::Invalid(msg) => ApiError::unprocessable(msg),
            SupervisionError::NotFound(msg) => ApiError::not_found(msg),
            SupervisionError::Conflict(msg) => ApiError::conflict(msg),
            SupervisionError::Sandbox(e) => e.into(),
            SupervisionError::Products(e) => e.into(),
            SupervisionError::Ledger(e) => e.into(),
            SupervisionError::Accounts(e) => e.into(),
            SupervisionError::Db(e) => ApiError::internal(e),
        }
    }
}

impl From<WitnessError> for ApiError {
    fn from(e: WitnessError) -> Self {
        if let WitnessError::RootMismatch { size } = &e {
            // Signed by our key, but not what we signed: evidence of a fork. Refuse it loudly.
            tracing::error!(
                size = *size,
                "a cosigned checkpoint has a root this server never signed"
            );
        }
        match e {
            WitnessError::Ledger(e) => e.into(),
            e @ WitnessError::UnknownCheckpoint { .. } => ApiError::not_found(e.to_string()),
            e @ WitnessError::RootMismatch { .. } => ApiError::conflict(e.to_string()),
            e => ApiError::unprocessable(e.to_string()),
        }
    }
}

/// Run a full ledger verification as a job; poll `GET /v1/jobs/{id}`. The result holds
/// the entries and checkpoints checked and the first bad seq, if any.
#[utoipa::path(post, path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 202, body = Job), (status = 403, body = Problem), (status = 429, body = Problem)))]
async fn start_verification(State(app): State<App>, caller: Caller) -> ApiResult<Response> {
    let job = app
        .sandbox
        .verification()
        .start_ledger_verification(&caller.principal.actor())
        .await?;
    let location = format!("/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

/// The date a report is for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AsOf {
    /// `YYYY-MM-DD`: the report as of 00:00 UTC that day (default: now).
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// Compliance: grant applications and objections past their working-day deadline,
/// grants expiring within 30 days, certificates past their validity, and releases
/// approved by fewer reviewers than required.
#[utoipa::path(get, path = "/v1/audit/compliance", tag = "audit", security(("bearer" = [])),
    params(AsOf),
    responses((status = 200, body = ComplianceReport), (status = 400, body = Problem)))]
async fn compliance(
    State(app): State<App>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<AsOf>,
) -> ApiResult<Json<ComplianceReport>> {
    let as_of = match q.as_of.as_deref() {
        None => None,
        Some(text) => Some(
            parse_day(text)
                .ok_or_else(|| ApiError::bad_request("`as_of` must be a YYYY-MM-DD date"))?,
        ),
    };
    Ok(Json(
        app.sandbox
            .compliance()
            .compliance_report(report_instant(as_of))
            .await?,
    ))
}

/// Privacy budgets: ε and δ granted against spent and queries used, per grant, dataset
/// and developer organisation, checked against the ledger's `PrivacySpend` entries.
#[utoipa::path(get, path = "/v1/audit/budgets", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = BudgetReport)))]
async fn budgets(State(app): State<App>, _caller: Caller) -> ApiResult<Json<BudgetReport>> {
    Ok(Json(app.sandbox.compliance().budget_report().await?))
}

/// Which dataset's disclosure record.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DisclosureQuery {
    /// The dataset id.
    pub dataset: DatasetId,
}

/// What left the sandbox from a dataset, per version and developer organisation:
/// outputs by status, values released, values withheld by each rule, cells removed and
/// DP budget spent (supervisors; a provider for its own datasets, others are 404).
#[utoipa::path(get, path = "/v1/audit/disclosure", tag = "audit", security(("bearer" = [])),
    params(DisclosureQuery),
    responses((status = 200, body = DisclosureReport), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn disclosure(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DisclosureQuery>,
) -> ApiResult<Json<DisclosureReport>> {
    let provider = (caller.principal.role != Role::Supervisor).then_some(&caller.principal.org_id);
    Ok(Json(
        app.sandbox
            .disclosure_audit()
            .disclosure_report(&q.dataset, provider)
            .await?,
    ))
}

/// A product's lineage: releases, jobs, models and their hashes, dataset versions and
/// certificates, providers and source departments; each ledger hop with its receipt.
#[utoipa::path(get, path = "/v1/audit/lineage/product/{id}", tag = "audit", security(("bearer" = [])),
    params(("id" = ProductId, Path, description = "product id")),
    responses((status = 200, body = ProductLineage), (status = 404, body = Problem)))]
async fn product_lineage(
    State(app): State<App>,
    _caller: Caller,
    ApiPath(id): ApiPath<ProductId>,
) -> ApiResult<Json<ProductLineage>> {
    Ok(Json(supervision::product_lineage(&app, &id).await?))
}

/// The public list of suspensions: who is suspended now, and every suspension and
/// reinstatement with its reason and ledger seq. Public: it answers without a key too
/// (XT Art.33; SD22 Art.19: violations may be publicised).
#[utoipa::path(get, path = "/v1/audit/suspensions", tag = "audit", security((), ("bearer" = [])),
    responses((status = 200, body = SuspensionList)))]
async fn list_suspensions(
    State(app): State<App>,
    _visitor: Visitor,
) -> ApiResult<Json<SuspensionList>> {
    Ok(Json(supervision::suspensions(&app).await?))
}

/// Suspend or reinstate an organisation, with a reason (supervisors). A suspension
/// refuses the organisation's writes from its next request, cancels its running model
/// runs and delists its products; it is a public `Suspension` ledger entry.
#[utoipa::path(post, path = "/v1/audit/suspensions", tag = "audit", security(("bearer" = [])),
    request_body = SuspensionRequest,
    responses((status = 201, body = SuspensionOutcome), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn set_suspension(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<SuspensionRequest>,
) -> ApiResult<(StatusCode, Json<SuspensionOutcome>)> {
    let outcome = supervision::set_suspension(&app, &caller.principal, body).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

fn objection_view(caller: &Caller) -> ObjectionView {
    if caller.principal.role == Role::Supervisor {
        ObjectionView::All
    } else {
        ObjectionView::Org(caller.principal.org_id.clone())
    }
}

/// Objections the caller's organisation filed or must answer (supervisors: all), each
/// with its working-day deadline and whether it is overdue.
#[utoipa::path(get, path = "/v1/objections", tag = "objections", security(("bearer" = [])),
    responses((status = 200, body = Vec<Objection>)))]
async fn list_objections(
    State(app): State<App>,
    caller: Caller,
) -> ApiResult<Json<Vec<Objection>>> {
    Ok(Json(
        app.sandbox
            .objections()
            .objections(&objection_view(&caller))
            .await?,
    ))
}

/// Object to a dataset version for an error or omission (any authenticated caller).
/// The provider must answer within the configured working days; the objection is a
/// ledger entry the provider can read.
#[utoipa::path(post, path = "/v1/objections", tag = "objections", security(("bearer" = [])),
    request_body = NewObjection,
    responses((status = 201, body = Objection), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn file_objection(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<NewObjection>,
) -> ApiResult<(StatusCode, Json<Objection>)> {
    let objection = app
        .sandbox
        .objections()
        .file_objection(&caller.principal.actor(), body)
        .await?;
    Ok((StatusCode::CREATED, Json(objection)))
}

/// One objection (its objector, the dataset's provider, or a supervisor).
#[utoipa::path(get, path = "/v1/objections/{id}", tag = "objections", security(("bearer" = [])),
    params(("id" = ObjectionId, Path, description = "objection id")),
    responses((status = 200, body = Objection), (status = 404, body = Problem)))]
async fn get_objection(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ObjectionId>,
) -> ApiResult<Json<Objection>> {
    Ok(Json(
        app.sandbox
            .objections()
            .objection(&id, &objection_view(&caller))
            .await?,
    ))
}

/// Answer an objection to one of the provider's datasets (once): `accepted` or
/// `rejected`, with the reply. A late answer is accepted and marked late.
#[utoipa::path(post, path = "/v1/objections/{id}/answer", tag = "objections", security(("bearer" = [])),
    params(("id" = ObjectionId, Path, description = "objection id")),
    request_body = ObjectionReply,
    responses((status = 200, body = Objection), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn answer_objection(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ObjectionId>,
    ApiJson(body): ApiJson<ObjectionReply>,
) -> ApiResult<Json<Objection>> {
    Ok(Json(
        app.sandbox
            .objections()
            .answer_objection(&caller.principal.actor(), &id, body)
            .await?,
    ))
}

/// A witness's cosignature, as sent.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CosignatureSubmission {
    /// The witness's verifier key (`name+keyid+base64(0x04 || key)`).
    pub witness_key: String,
    /// The checkpoint note with the witness's cosignature line added.
    pub checkpoint: String,
}

/// A stored cosignature.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AcceptedCosignature {
    /// Tree size cosigned.
    pub size: u64,
    /// Witness key name.
    pub witness: String,
    /// The cosignature's timestamp, seconds since epoch.
    pub timestamp: u64,
}

/// Submit a witness cosignature (C2SP tlog-cosignature/v1) of a checkpoint this log
/// signed; it is served with that checkpoint from then on.
#[utoipa::path(post, path = "/v1/ledger/cosignatures", tag = "ledger", security(("bearer" = [])),
    request_body = CosignatureSubmission,
    responses((status = 201, body = AcceptedCosignature), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn submit_cosignature(
    State(app): State<App>,
    _caller: Caller,
    ApiJson(body): ApiJson<CosignatureSubmission>,
) -> ApiResult<(StatusCode, Json<AcceptedCosignature>)> {
    let accepted = app
        .ledger
        .accept_cosignature(&body.witness_key, &body.checkpoint)
        .await?;
    let accepted = AcceptedCosignature {
        size: accepted.size,
        witness: accepted.witness,
        timestamp: accepted.timestamp,
    };
    Ok((StatusCode::CREATED, Json(accepted)))
}
