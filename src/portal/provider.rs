//! The provider's pages: a public agency's data staff registers datasets, uploads
//! versions with a progress bar, reads each version's de-identification report and
//! certificate, answers grant applications, objections, share requests, requests to
//! open data and rectification orders by their working-day deadlines, and sees how each
//! dataset was used.
//!
//! Every page gets its data and performs its actions through the JSON API, in process
//! and as the viewer ([`Portal::get`], [`Portal::send`], [`Portal::raw`]), so a page is
//! refused exactly when its API route would be:
//! - pages about one dataset first read its output policy
//!   (`GET /v1/datasets/{id}/output-policy`, for its own provider only), so another
//!   role gets the API's 403 and another organisation's (or an absent) dataset the
//!   API's 404, as on every provider route of the API;
//! - the lists whose read routes admit other roles too (the catalog, grants,
//!   objections) are refused to a role that may not call the page's action route, by
//!   the same policy table the API's middleware reads ([`crate::http::policies`]);
//! - the usage page is the usage route's answer itself.
//!
//! The upload streams the browser's file to `POST /v1/datasets/{id}/versions` without
//! buffering it: `static/upload.js` sends the raw file with `XMLHttpRequest` (the CSRF
//! token in the `X-CSRF-Token` header, since the body is the file), shows
//! `upload.onprogress` in a `<progress>`, then polls `/provider/jobs/{job}` until the
//! ingest job has de-identified and certified the version, and links to the report.
//!
//! Forms carry the viewer's CSRF token and redirect back with a notice (a fixed code,
//! never text from the request); an API refusal is shown with the API's status and
//! detail.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::{Markup, html};
use pdx_ids::{
    DatasetId, GrantId, IdError, JobId, ObjectionId, OpenDataRequestId, RectificationId,
    ShareRequestId,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::portal::Portal;
use crate::portal::api::{PageError, with_query};
use crate::portal::i18n::{Lang, t, tf};
use crate::portal::layout::{china_time, china_time_rfc3339, csrf_field, page};
use crate::portal::session::{Viewer, check_csrf};
use crate::portal::svg::bar_chart;

/// The header that carries the CSRF token of an upload (its body is the file itself).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Datasets listed per page of the provider's home.
const DATASETS_PER_PAGE: u32 = 50;

/// The provider pages.
pub fn routes() -> Router<Portal> {
    Router::new()
        .route("/provider", get(dashboard))
        .route("/provider/datasets", post(register))
        .route("/provider/datasets/{id}", get(dataset_page))
        .route("/provider/datasets/{id}/submit", post(submit))
        .route(
            "/provider/datasets/{id}/upload",
            get(upload_page).post(upload),
        )
        .route(
            "/provider/datasets/{id}/versions/{version}/report",
            get(report_page),
        )
        .route("/provider/datasets/{id}/usage", get(usage_page))
        .route("/provider/jobs/{job}", get(job_status))
        .route("/provider/grants", get(grants_page))
        .route("/provider/grants/{id}/decision", post(decide_grant))
        .route("/provider/grants/{id}/revoke", post(revoke_grant))
        .route("/provider/objections", get(objections_page))
        .route("/provider/objections/{id}/answer", post(answer_objection))
        .route("/provider/share-requests/{id}/decision", post(decide_share))
        .route(
            "/provider/open-data-requests/{id}/answer",
            post(answer_open_data),
        )
        .route(
            "/provider/rectifications/{id}/response",
            post(respond_rectification),
        )
}

// ---------------------------------------------------------------------------------
// What the pages read from the API: only the fields they show.
// ---------------------------------------------------------------------------------

/// `GET /v1/datasets`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DatasetList {
    items: Vec<DatasetView>,
    total: u64,
    page: u32,
    per_page: u32,
}

/// A catalog entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DatasetView {
    id: String,
    title: String,
    description: String,
    theme: String,
    source_department: String,
    collecting_department: String,
    approving_department: String,
    providing_department: String,
    data_form: String,
    update_frequency: String,
    level: String,
    share_type: String,
    share_conditions: String,
    legal_basis: String,
    open_attribute: String,
    effective_open_attribute: String,
    research_only: bool,
    schema: SchemaView,
    elements: Vec<String>,
    latest_version: Option<u64>,
    updated_ms: i64,
    status: String,
    revision: u64,
    review_due: Option<String>,
    return_reason: Option<String>,
    destroyed: Option<Value>,
}

/// A dataset's column schema.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SchemaView {
    columns: Vec<ColumnView>,
    privacy: PrivacyView,
}

/// One declared column.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ColumnView {
    name: String,
    #[serde(rename = "type")]
    column_type: String,
    role: String,
    rule: Value,
    nullable: bool,
}

/// The privacy targets of a schema.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PrivacyView {
    k: u64,
    l: Option<u64>,
    max_suppression: f64,
}

/// A dataset's output policy (`GET /v1/datasets/{id}/output-policy`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OutputPolicyView {
    threshold: u64,
    dominance_n: u64,
    dominance_p_percent: u64,
    rounding_base: Option<u64>,
    reviewers_required: Option<u64>,
    dp_auto_release: bool,
}

/// A certified version.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VersionView {
    version: u64,
    rows: u64,
    bytes: u64,
    content_hash: String,
    schema_hash: String,
    report: Value,
    certificate_no: String,
    certificate_seq: u64,
    valid_from: String,
    valid_until: String,
    created_ms: i64,
    corrects: Vec<CorrectedView>,
    destroyed: Option<Value>,
}

/// An objection a version corrects.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CorrectedView {
    objection_id: String,
    corrected_late: bool,
}

/// A certificate with its offline receipt.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CertificateView {
    certificate: CertificateBody,
    receipt: ReceiptView,
}

/// The `AssetCertificate` ledger payload.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CertificateBody {
    certificate_no: String,
    holder_org: String,
    content_hash: String,
    schema_hash: String,
    level: String,
    open_attribute: String,
}

/// The receipt: the entry and the tree it is proved in.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReceiptView {
    entry: ReceiptEntry,
    tree_size: u64,
}

/// The ledger entry of a receipt.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReceiptEntry {
    seq: u64,
    entry_hash: String,
}

/// The de-identification report of a version.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeidReportView {
    k_target: u64,
    k_achieved: u64,
    l_target: Option<u64>,
    l_achieved: Option<u64>,
    records_in: u64,
    records_out: u64,
    suppressed: u64,
    suppression_limit: u64,
    levels: BTreeMap<String, u64>,
    risk: RiskView,
    information_loss: LossView,
    masked: BTreeMap<String, MaskView>,
    dropped: Vec<String>,
    pseudonymised: Vec<String>,
}

/// Re-identification risk.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RiskView {
    prosecutor_max: f64,
    prosecutor_avg: f64,
    journalist_max: f64,
    journalist_avg: f64,
    marketer_avg: f64,
    unique_share_before: f64,
    unique_share_after: f64,
}

/// Information loss.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LossView {
    metric: String,
    value: f64,
    generalisation_intensity: f64,
    suppressed_share: f64,
    per_column: BTreeMap<String, f64>,
    optimised: String,
    optimised_value: f64,
    non_uniform_entropy: f64,
    discernibility: f64,
    average_class_size: f64,
}

/// Masking counts of one column.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MaskView {
    masked: u64,
    invalid: u64,
}

/// A job (`GET /v1/jobs`, `GET /v1/jobs/{id}`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JobView {
    id: String,
    kind: String,
    subject: String,
    status: String,
    stage: String,
    progress: f64,
    result: Option<Value>,
    error: Option<JobFailureView>,
    created_ms: i64,
}

/// Why a job failed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JobFailureView {
    status: u16,
    detail: String,
}

/// A grant application or grant.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GrantView {
    id: String,
    dataset_id: String,
    applicant_org: String,
    purpose: String,
    purpose_kind: String,
    columns: Vec<String>,
    model_kinds: Vec<String>,
    term_days: u64,
    epsilon: f64,
    delta: f64,
    query_budget: u64,
    research_only: bool,
    status: String,
    reason: Option<String>,
    answer_deadline: String,
    applied_ms: i64,
    decided_ms: Option<i64>,
    expires_ms: Option<i64>,
    epsilon_spent: f64,
    queries_used: u64,
    overdue: bool,
}

/// An objection to a version.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ObjectionView {
    id: String,
    dataset_id: String,
    version: u64,
    provider_org: String,
    objector_org: String,
    ground: String,
    detail: String,
    status: String,
    answer_deadline: String,
    filed_ms: i64,
    outcome: Option<String>,
    answer: Option<String>,
    answered_late: bool,
    overdue: bool,
    correction: Option<CorrectionView>,
}

/// The corrected version an accepted objection obliges.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CorrectionView {
    correction_due: String,
    status: String,
    version: Option<u64>,
    certificate_no: Option<String>,
    corrected_late: bool,
    overdue: bool,
}

/// A share request between departments.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShareView {
    id: String,
    dataset_id: String,
    owner_org: String,
    requester_org: String,
    purpose: String,
    duty_legal_basis: String,
    until: String,
    answer_deadline: Option<String>,
    overdue: bool,
}

/// A request to open data.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OpenDataView {
    id: String,
    request: String,
    dataset_id: Option<String>,
    subject: String,
    description: String,
    contact: Option<String>,
    answer_due: Option<String>,
    overdue: bool,
}

/// A rectification order.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RectificationView {
    id: String,
    findings: String,
    deadline: String,
    overdue: bool,
}

/// A request to change an open attribute, waiting for the data authority.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChangeView {
    dataset_id: String,
    from: String,
    to: String,
    requested_ms: i64,
}

/// How a dataset was used (`GET /v1/datasets/{id}/usage`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UsageView {
    grants: Vec<GrantUseView>,
    versions: Vec<VersionUseView>,
}

/// A grant on the dataset.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GrantUseView {
    grant_id: String,
    applicant_org: String,
    purpose: String,
    status: String,
    applied_ms: i64,
    decided_ms: Option<i64>,
    queries_used: u64,
}

/// How one version was used.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VersionUseView {
    version: u64,
    certificate_no: String,
    destroyed: Option<Value>,
    runs: Vec<TallyView>,
    fhe_queries: Vec<TallyView>,
    outputs: Vec<TallyView>,
    releases: Vec<ReleaseUseView>,
    downloads: Vec<DownloadTallyView>,
}

/// A count of one organisation's items in one state.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TallyView {
    org: String,
    status: String,
    count: u64,
}

/// A release of an output that read the version.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReleaseUseView {
    release_id: String,
    output_id: String,
    org: String,
    released_ms: Option<i64>,
}

/// Downloads of one organisation of one kind.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DownloadTallyView {
    org: String,
    what: String,
    count: u64,
    bytes: u64,
}

// ---------------------------------------------------------------------------------
// Forms and queries.
// ---------------------------------------------------------------------------------

/// The query of the provider's pages: a notice code after a form, a page number, the
/// objections an upload corrects.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PageQuery {
    notice: Option<String>,
    page: Option<String>,
    corrects: Option<String>,
}

/// A form with nothing but its CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

/// A form with a choice (approve/refuse, accepted/rejected…) and a text.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChoiceForm {
    csrf: String,
    choice: String,
    text: String,
}

/// A form with a text only (a revocation's reason, a rectification's response).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TextForm {
    csrf: String,
    text: String,
}

/// A provider's answer to a grant application; approval may narrow the terms.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GrantDecisionForm {
    csrf: String,
    decision: String,
    reason: String,
    columns: String,
    term_days: String,
    epsilon: String,
    query_budget: String,
}

/// The registration form: the fields of the API's `NewDataset`, the schema as JSON.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
struct RegisterForm {
    csrf: String,
    title: String,
    description: String,
    theme: String,
    source_department: String,
    collecting_department: String,
    approving_department: String,
    providing_department: String,
    data_form: String,
    update_frequency: String,
    level: String,
    share_type: String,
    share_conditions: String,
    legal_basis: String,
    open_attribute: String,
    research_only: Option<String>,
    elements: String,
    schema: String,
}

impl Default for RegisterForm {
    fn default() -> Self {
        RegisterForm {
            csrf: String::new(),
            title: String::new(),
            description: String::new(),
            theme: String::new(),
            source_department: String::new(),
            collecting_department: String::new(),
            approving_department: String::new(),
            providing_department: String::new(),
            data_form: "table".into(),
            update_frequency: "yearly".into(),
            level: "L2".into(),
            share_type: "conditional".into(),
            share_conditions: String::new(),
            legal_basis: String::new(),
            open_attribute: "conditional".into(),
            research_only: None,
            elements: String::new(),
            schema: String::new(),
        }
    }
}

impl RegisterForm {
    /// The body of `POST /v1/datasets`; the error is why the form cannot make one (the
    /// schema is not JSON), for a 422 shown with the form.
    fn to_body(&self, lang: Lang) -> Result<Value, String> {
        let schema: Value = serde_json::from_str(&self.schema).map_err(|e| {
            // Line and column only: serde's message may quote the text.
            let (line, column) = (e.line().to_string(), e.column().to_string());
            tf(
                lang,
                "provider.register.schema_not_json",
                &[("line", line.as_str()), ("column", column.as_str())],
            )
        })?;
        Ok(json!({
            "title": self.title.trim(),
            "description": self.description.trim(),
            "theme": self.theme.trim(),
            "source_department": self.source_department.trim(),
            "collecting_department": self.collecting_department.trim(),
            "approving_department": self.approving_department.trim(),
            "providing_department": self.providing_department.trim(),
            "data_form": self.data_form.trim(),
            "update_frequency": self.update_frequency.trim(),
            "level": self.level.trim(),
            "share_type": self.share_type.trim(),
            "share_conditions": self.share_conditions.trim(),
            "legal_basis": self.legal_basis.trim(),
            "open_attribute": self.open_attribute.trim(),
            "research_only": self.research_only.is_some(),
            "schema": schema,
            "elements": comma_list(&self.elements),
        }))
    }
}

// ---------------------------------------------------------------------------------
// Shared helpers.
// ---------------------------------------------------------------------------------

/// A real schema to copy from: the sample electricity dataset's (a pseudonymised
/// identifier, two generalised quasi-identifiers, a sensitive value).
static EXAMPLE_SCHEMA: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string_pretty(&crate::samples::electricity_dataset().schema).unwrap_or_default()
});

/// The 404 of an id that is malformed or not the viewer's to see (as the API answers).
fn not_found(lang: Lang) -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        t(lang, "provider.error.not_found"),
        lang,
    )
}

/// Parses an id from a URL path; a malformed one is "not found", as in the API.
fn parse_id<T>(
    raw: &str,
    parse: fn(&str) -> Result<T, IdError>,
    lang: Lang,
) -> Result<T, PageError> {
    parse(raw).map_err(|_| not_found(lang))
}

/// Refuses a viewer whose role may not call `method route` by the API's policy table
/// (the route a page's actions go to): 401 without a session, 403 for another role.
fn admitted(viewer: &Viewer, method: &Method, route: &str) -> Result<(), PageError> {
    let lang = viewer.lang;
    let Some(role) = viewer.role() else {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            t(lang, "provider.error.sign_in"),
            lang,
        ));
    };
    match crate::http::policies::policy_for(method, route) {
        Some(policy) if policy.roles.contains(&role) => Ok(()),
        _ => Err(PageError::new(
            StatusCode::FORBIDDEN,
            t(lang, "provider.error.role"),
            lang,
        )),
    }
}

/// The viewer's organisation id ("" without a session; the API then refuses).
fn org_of(viewer: &Viewer) -> String {
    viewer
        .signed_in
        .as_ref()
        .map(|s| s.org_id.to_string())
        .unwrap_or_default()
}

/// The viewer's own dataset and its output policy: the policy route is its provider's
/// only, so another role gets the API's 403 and another organisation's or an absent
/// dataset the API's 404.
async fn own_dataset(
    portal: &Portal,
    viewer: &Viewer,
    id: &DatasetId,
) -> Result<(DatasetView, OutputPolicyView), PageError> {
    let policy: OutputPolicyView = portal
        .get(viewer, &format!("/v1/datasets/{id}/output-policy"))
        .await?;
    let dataset: DatasetView = portal.get(viewer, &format!("/v1/datasets/{id}")).await?;
    Ok((dataset, policy))
}

/// The items of a comma-separated field, trimmed, empty ones left out.
fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A text field, trimmed, or None when blank.
fn non_blank(raw: &str) -> Option<&str> {
    Some(raw.trim()).filter(|s| !s.is_empty())
}

/// An optional number field: None when blank, a 422 naming the field when it is not a
/// finite number of the type.
fn optional_number<T: FromStr>(
    raw: &str,
    field_key: &'static str,
    lang: Lang,
) -> Result<Option<T>, PageError> {
    let Some(text) = non_blank(raw) else {
        return Ok(None);
    };
    let finite = text.parse::<f64>().is_ok_and(f64::is_finite);
    match text.parse::<T>() {
        Ok(value) if finite => Ok(Some(value)),
        _ => Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            tf(
                lang,
                "provider.error.number",
                &[("field", t(lang, field_key))],
            ),
            lang,
        )),
    }
}

/// The viewer's words for a wire value (a status, an attribute, a kind); an unknown
/// value as it is.
fn label(lang: Lang, value: &str) -> &str {
    let key = match value {
        "draft" => "provider.value.draft",
        "submitted" => "provider.value.submitted",
        "published" => "provider.value.published",
        "returned" => "provider.value.returned",
        "unconditional" => "provider.value.unconditional",
        "conditional" => "provider.value.conditional",
        "not_open" => "provider.value.not_open",
        "not_shared" => "provider.value.not_shared",
        "pending" => "provider.value.pending",
        "approved" => "provider.value.approved",
        "refused" => "provider.value.refused",
        "revoked" => "provider.value.revoked",
        "suspended" => "provider.value.suspended",
        "open" => "provider.value.open",
        "answered" => "provider.value.answered",
        "accepted" => "provider.value.accepted",
        "rejected" => "provider.value.rejected",
        "corrected" => "provider.value.corrected",
        "granted" => "provider.value.granted",
        "expired" => "provider.value.expired",
        "queued" => "provider.value.queued",
        "running" => "provider.value.running",
        "succeeded" => "provider.value.succeeded",
        "failed" => "provider.value.failed",
        "finished" => "provider.value.finished",
        "cancelled" => "provider.value.cancelled",
        "done" => "provider.value.done",
        "quarantined" => "provider.value.quarantined",
        "released" => "provider.value.released",
        "research" => "provider.value.research",
        "public_interest" => "provider.value.public_interest",
        "commercial" => "provider.value.commercial",
        "error" => "provider.value.error",
        "omission" => "provider.value.omission",
        "open_dataset" => "provider.value.open_dataset",
        "new_dataset" => "provider.value.new_dataset",
        "daily" => "provider.value.daily",
        "weekly" => "provider.value.weekly",
        "monthly" => "provider.value.monthly",
        "quarterly" => "provider.value.quarterly",
        "yearly" => "provider.value.yearly",
        "irregular" => "provider.value.irregular",
        "dataset_version" => "provider.value.dataset_version",
        "output" => "provider.value.output",
        "product" => "provider.value.product",
        "department_share" => "provider.value.department_share",
        "direct_identifier" => "provider.value.direct_identifier",
        "quasi_identifier" => "provider.value.quasi_identifier",
        "sensitive" => "provider.value.sensitive",
        "other" => "provider.value.other",
        _ => return value,
    };
    t(lang, key)
}

/// A share (0 to 1) as a percentage.
fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

/// A deadline (`YYYY-MM-DD`, counted in working days by the API) with a text badge
/// when it has passed.
fn deadline_cell(lang: Lang, day: &str, overdue: bool) -> Markup {
    html! {
        time datetime=(day) { (day) }
        @if overdue {
            " "
            span.badge.badge-danger { (t(lang, "provider.overdue")) }
        }
    }
}

/// The notice after a form (a fixed code; anything else shows nothing).
fn notice_box(lang: Lang, code: Option<&str>) -> Markup {
    let key = match code {
        Some("registered") => "provider.notice.registered",
        Some("submitted") => "provider.notice.submitted",
        Some("grant_approved") => "provider.notice.grant_approved",
        Some("grant_refused") => "provider.notice.grant_refused",
        Some("grant_revoked") => "provider.notice.grant_revoked",
        Some("objection_answered") => "provider.notice.objection_answered",
        Some("share_decided") => "provider.notice.share_decided",
        Some("open_data_answered") => "provider.notice.open_data_answered",
        Some("rectification_answered") => "provider.notice.rectification_answered",
        _ => return html! {},
    };
    html! { p.notice role="status" { (t(lang, key)) } }
}

/// An API refusal: its status and its detail.
fn refusal_box(lang: Lang, refused: &PageError) -> Markup {
    html! {
        div.error role="alert" {
            p { (tf(lang, "provider.refused", &[("status", refused.status.as_str())])) }
            p { (refused.detail) }
        }
    }
}

/// A list the page can do without: its entries, or none with the refusal kept to show.
fn or_refused<T>(result: Result<Vec<T>, PageError>, refusals: &mut Vec<PageError>) -> Vec<T> {
    result.unwrap_or_else(|refused| {
        refusals.push(refused);
        Vec::new()
    })
}

/// A form with a choice of radio buttons and a text area, posted to `action`.
struct ChoiceFormSpec<'a> {
    action: String,
    /// Unique per page: the inputs' ids start with it.
    id_prefix: String,
    legend: &'a str,
    choices: &'a [(&'a str, &'a str)],
    text_label: &'a str,
    submit: &'a str,
}

/// The form a [`ChoiceFormSpec`] describes.
fn choice_form(viewer: &Viewer, spec: &ChoiceFormSpec<'_>) -> Markup {
    let text_id = format!("{}-text", spec.id_prefix);
    html! {
        form.form method="post" action=(spec.action) {
            (csrf_field(viewer))
            fieldset {
                legend { (spec.legend) }
                @for (i, (value, text)) in spec.choices.iter().copied().enumerate() {
                    @let input_id = format!("{}-choice-{i}", spec.id_prefix);
                    input type="radio" name="choice" id=(input_id) value=(value) required;
                    " "
                    label for=(input_id) { (text) }
                    " "
                }
            }
            p {
                label for=(text_id) { (spec.text_label) }
                textarea id=(text_id) name="text" rows="3" {}
            }
            button type="submit" { (spec.submit) }
        }
    }
}

/// A decision (grant or refuse, with a reason required for a refusal) posted to
/// `action`.
fn decision_form(
    viewer: &Viewer,
    action: String,
    id_prefix: String,
    choices: &[(&str, &str)],
) -> Markup {
    let lang = viewer.lang;
    choice_form(
        viewer,
        &ChoiceFormSpec {
            action,
            id_prefix,
            legend: t(lang, "provider.decision"),
            choices,
            text_label: t(lang, "provider.reason_if_refused"),
            submit: t(lang, "provider.send"),
        },
    )
}

/// A form with one text area, posted to `action`.
fn text_form(
    viewer: &Viewer,
    action: &str,
    text_id: &str,
    text_label: &str,
    submit: &str,
) -> Markup {
    html! {
        form.form method="post" action=(action) {
            (csrf_field(viewer))
            p {
                label for=(text_id) { (text_label) }
                textarea id=(text_id) name="text" rows="2" required {}
            }
            button type="submit" { (submit) }
        }
    }
}

/// A dataset id from the API, as a link to its provider page (plain text if it is not
/// an id, so nothing but an id ever reaches a URL).
fn dataset_link(dataset_id: &str) -> Markup {
    match DatasetId::parse(dataset_id) {
        Ok(id) => html! { a href={ "/provider/datasets/" (id) } { (id) } },
        Err(_) => html! { (dataset_id) },
    }
}

// ---------------------------------------------------------------------------------
// /provider: the organisation's datasets, the registration form, what is due.
// ---------------------------------------------------------------------------------

/// One thing the provider must do by a deadline.
struct Due {
    kind: &'static str,
    what: String,
    dataset_id: Option<String>,
    link: String,
    day: String,
    overdue: bool,
}

async fn dashboard(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Markup, PageError> {
    admitted(&viewer, &Method::POST, "/v1/datasets")?;
    render_dashboard(&portal, &viewer, &query, &RegisterForm::default(), None).await
}

/// The provider's home, with the registration form filled with `draft` and, after a
/// refused registration, the API's refusal above it.
async fn render_dashboard(
    portal: &Portal,
    viewer: &Viewer,
    query: &PageQuery,
    draft: &RegisterForm,
    refused: Option<&PageError>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let org = org_of(viewer);
    let page_no = query
        .page
        .as_deref()
        .and_then(|p| p.parse::<u32>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let page_text = page_no.to_string();
    let per_page = DATASETS_PER_PAGE.to_string();
    let datasets_path = with_query(
        "/v1/datasets",
        &[
            ("provider", org.as_str()),
            ("per_page", per_page.as_str()),
            ("page", page_text.as_str()),
        ],
    );
    let open_data_path = with_query(
        "/v1/open-data-requests",
        &[("status", "routed"), ("provider_org", org.as_str())],
    );
    let rectifications_path = with_query(
        "/v1/rectifications",
        &[("org", org.as_str()), ("status", "issued")],
    );
    let (datasets, grants, objections, shares, open_data, rectifications, changes) = tokio::join!(
        portal.get::<DatasetList>(viewer, &datasets_path),
        portal.get::<Vec<GrantView>>(viewer, "/v1/grants"),
        portal.get::<Vec<ObjectionView>>(viewer, "/v1/objections"),
        portal.get::<Vec<ShareView>>(viewer, "/v1/share-requests?status=pending"),
        portal.get::<Vec<OpenDataView>>(viewer, &open_data_path),
        portal.get::<Vec<RectificationView>>(viewer, &rectifications_path),
        portal.get::<Vec<ChangeView>>(viewer, "/v1/open-attribute-changes?status=pending")
    );
    let datasets = datasets?;
    let mut refusals = Vec::new();
    let grants = or_refused(grants, &mut refusals);
    let objections = or_refused(objections, &mut refusals);
    let shares: Vec<ShareView> = or_refused(shares, &mut refusals)
        .into_iter()
        .filter(|s| s.owner_org == org)
        .collect();
    let open_data = or_refused(open_data, &mut refusals);
    let rectifications = or_refused(rectifications, &mut refusals);
    let changes = or_refused(changes, &mut refusals);

    let mut due = Vec::new();
    for g in grants.iter().filter(|g| g.status == "pending") {
        due.push(Due {
            kind: "provider.due.grant",
            what: tf(
                lang,
                "provider.due.grant_what",
                &[
                    ("org", g.applicant_org.as_str()),
                    ("purpose", g.purpose.as_str()),
                ],
            ),
            dataset_id: Some(g.dataset_id.clone()),
            link: "/provider/grants".into(),
            day: g.answer_deadline.clone(),
            overdue: g.overdue,
        });
    }
    for o in objections.iter().filter(|o| o.provider_org == org) {
        if o.status == "open" {
            due.push(Due {
                kind: "provider.due.objection",
                what: tf(
                    lang,
                    "provider.due.objection_what",
                    &[
                        ("version", o.version.to_string().as_str()),
                        ("ground", label(lang, &o.ground)),
                    ],
                ),
                dataset_id: Some(o.dataset_id.clone()),
                link: "/provider/objections".into(),
                day: o.answer_deadline.clone(),
                overdue: o.overdue,
            });
        }
        if let Some(c) = o.correction.as_ref().filter(|c| c.status == "pending") {
            let link = match (DatasetId::parse(&o.dataset_id), ObjectionId::parse(&o.id)) {
                (Ok(d), Ok(obj)) => with_query(
                    &format!("/provider/datasets/{d}/upload"),
                    &[("corrects", obj.as_str())],
                ),
                _ => "/provider/objections".into(),
            };
            due.push(Due {
                kind: "provider.due.correction",
                what: tf(
                    lang,
                    "provider.due.correction_what",
                    &[("objection", o.id.as_str())],
                ),
                dataset_id: Some(o.dataset_id.clone()),
                link,
                day: c.correction_due.clone(),
                overdue: c.overdue,
            });
        }
    }
    for s in &shares {
        due.push(Due {
            kind: "provider.due.share",
            what: tf(
                lang,
                "provider.due.share_what",
                &[("org", s.requester_org.as_str())],
            ),
            dataset_id: Some(s.dataset_id.clone()),
            link: format!("#share-{}", s.id),
            day: s.answer_deadline.clone().unwrap_or_default(),
            overdue: s.overdue,
        });
    }
    for r in &open_data {
        due.push(Due {
            kind: "provider.due.open_data",
            what: r.subject.clone(),
            dataset_id: r.dataset_id.clone(),
            link: format!("#open-data-{}", r.id),
            day: r.answer_due.clone().unwrap_or_default(),
            overdue: r.overdue,
        });
    }
    for r in &rectifications {
        due.push(Due {
            kind: "provider.due.rectification",
            what: r.findings.clone(),
            dataset_id: None,
            link: format!("#rectification-{}", r.id),
            day: r.deadline.clone(),
            overdue: r.overdue,
        });
    }
    // The most pressing first: overdue, then by deadline (ISO dates sort as text).
    due.sort_by(|a, b| b.overdue.cmp(&a.overdue).then_with(|| a.day.cmp(&b.day)));

    let body = html! {
        h1 { (t(lang, "provider.home.title")) }
        (notice_box(lang, query.notice.as_deref()))
        @for refusal in &refusals {
            (refusal_box(lang, refusal))
        }
        nav.muted aria-label=(t(lang, "provider.home.sections")) {
            a href="/provider/grants" { (t(lang, "provider.grants.title")) }
            " · "
            a href="/provider/objections" { (t(lang, "provider.objections.title")) }
            " · "
            a href="#register" { (t(lang, "provider.register.title")) }
        }

        section {
            h2 { (t(lang, "provider.due.title")) }
            p.muted { (t(lang, "provider.due.intro")) }
            @if due.is_empty() {
                p { (t(lang, "provider.due.none")) }
            } @else {
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.due.kind")) }
                            th scope="col" { (t(lang, "provider.due.what")) }
                            th scope="col" { (t(lang, "provider.dataset")) }
                            th scope="col" { (t(lang, "provider.due.deadline")) }
                        }
                    }
                    tbody {
                        @for d in &due {
                            tr {
                                td { a href=(d.link) { (t(lang, d.kind)) } }
                                td { (d.what) }
                                td {
                                    @if let Some(id) = &d.dataset_id { (dataset_link(id)) }
                                }
                                td { (deadline_cell(lang, &d.day, d.overdue)) }
                            }
                        }
                    }
                }
            }
        }

        section {
            h2 { (t(lang, "provider.datasets.title")) }
            @if datasets.items.is_empty() {
                p { (t(lang, "provider.datasets.none")) }
            } @else {
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.dataset.title_field")) }
                            th scope="col" { (t(lang, "provider.dataset.status")) }
                            th scope="col" { (t(lang, "provider.dataset.open_attribute")) }
                            th scope="col" { (t(lang, "provider.dataset.level")) }
                            th scope="col" { (t(lang, "provider.dataset.latest_version")) }
                            th scope="col" { (t(lang, "provider.dataset.review_due")) }
                            th scope="col" { (t(lang, "provider.dataset.updated")) }
                        }
                    }
                    tbody {
                        @for d in &datasets.items {
                            tr {
                                td {
                                    (dataset_title_link(&d.id, &d.title))
                                    @if d.destroyed.is_some() {
                                        " " span.badge { (t(lang, "provider.dataset.destroyed")) }
                                    }
                                }
                                td { span.badge { (label(lang, &d.status)) } }
                                td {
                                    (label(lang, &d.effective_open_attribute))
                                    @if d.effective_open_attribute != d.open_attribute {
                                        " "
                                        span.muted {
                                            (tf(lang, "provider.dataset.catalog_attribute", &[("attribute", label(lang, &d.open_attribute))]))
                                        }
                                    }
                                }
                                td { (d.level) }
                                td {
                                    @match (DatasetId::parse(&d.id), d.latest_version) {
                                        (Ok(id), Some(v)) => {
                                            a href={ "/provider/datasets/" (id) "/versions/" (v) "/report" } {
                                                (tf(lang, "provider.version.name", &[("version", v.to_string().as_str())]))
                                            }
                                        },
                                        _ => { span.muted { (t(lang, "provider.dataset.no_version")) } },
                                    }
                                }
                                td {
                                    @if let Some(day) = &d.review_due { time datetime=(day) { (day) } }
                                }
                                td { (china_time(d.updated_ms)) }
                            }
                        }
                    }
                }
                p.muted {
                    (tf(lang, "provider.datasets.count", &[("total", datasets.total.to_string().as_str())]))
                    @if datasets.page > 1 {
                        " "
                        a href=(with_query("/provider", &[("page", (datasets.page - 1).to_string().as_str())])) {
                            (t(lang, "provider.page.previous"))
                        }
                    }
                    @if u64::from(datasets.page) * u64::from(datasets.per_page.max(1)) < datasets.total {
                        " "
                        a href=(with_query("/provider", &[("page", (datasets.page + 1).to_string().as_str())])) {
                            (t(lang, "provider.page.next"))
                        }
                    }
                }
            }
        }

        @if !shares.is_empty() {
            section {
                h2 { (t(lang, "provider.shares.title")) }
                @for s in &shares {
                    article.card id={ "share-" (s.id) } {
                        h3 { (tf(lang, "provider.shares.item", &[("org", s.requester_org.as_str())])) }
                        dl.facts {
                            dt { (t(lang, "provider.dataset")) } dd { (dataset_link(&s.dataset_id)) }
                            dt { (t(lang, "provider.shares.purpose")) } dd { (s.purpose) }
                            dt { (t(lang, "provider.shares.legal_basis")) } dd { (s.duty_legal_basis) }
                            dt { (t(lang, "provider.shares.until")) } dd { (s.until) }
                            dt { (t(lang, "provider.due.deadline")) }
                            dd { (deadline_cell(lang, s.answer_deadline.as_deref().unwrap_or_default(), s.overdue)) }
                        }
                        @if let Ok(id) = ShareRequestId::parse(&s.id) {
                            (decision_form(
                                viewer,
                                format!("/provider/share-requests/{id}/decision"),
                                format!("share-{id}"),
                                &[("approve", t(lang, "provider.approve")), ("refuse", t(lang, "provider.refuse"))],
                            ))
                        }
                    }
                }
            }
        }

        @if !open_data.is_empty() {
            section {
                h2 { (t(lang, "provider.open_data.title")) }
                @for r in &open_data {
                    article.card id={ "open-data-" (r.id) } {
                        h3 { (r.subject) }
                        dl.facts {
                            dt { (t(lang, "provider.open_data.kind")) } dd { (label(lang, &r.request)) }
                            @if let Some(d) = &r.dataset_id {
                                dt { (t(lang, "provider.dataset")) } dd { (dataset_link(d)) }
                            }
                            dt { (t(lang, "provider.open_data.description")) } dd { (r.description) }
                            @if let Some(contact) = &r.contact {
                                dt { (t(lang, "provider.open_data.contact")) } dd { (contact) }
                            }
                            dt { (t(lang, "provider.due.deadline")) }
                            dd { (deadline_cell(lang, r.answer_due.as_deref().unwrap_or_default(), r.overdue)) }
                        }
                        @if let Ok(id) = OpenDataRequestId::parse(&r.id) {
                            (decision_form(
                                viewer,
                                format!("/provider/open-data-requests/{id}/answer"),
                                format!("open-data-{id}"),
                                &[("accepted", t(lang, "provider.accept")), ("refused", t(lang, "provider.refuse"))],
                            ))
                        }
                    }
                }
            }
        }

        @if !rectifications.is_empty() {
            section {
                h2 { (t(lang, "provider.rectifications.title")) }
                @for r in &rectifications {
                    article.card id={ "rectification-" (r.id) } {
                        p { (r.findings) }
                        p { (t(lang, "provider.due.deadline")) ": " (deadline_cell(lang, &r.deadline, r.overdue)) }
                        @if let Ok(id) = RectificationId::parse(&r.id) {
                            (text_form(
                                viewer,
                                &format!("/provider/rectifications/{id}/response"),
                                &format!("rectification-{id}-text"),
                                t(lang, "provider.rectifications.response"),
                                t(lang, "provider.send"),
                            ))
                        }
                    }
                }
            }
        }

        @if !changes.is_empty() {
            section {
                h2 { (t(lang, "provider.changes.title")) }
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.dataset")) }
                            th scope="col" { (t(lang, "provider.changes.from_to")) }
                            th scope="col" { (t(lang, "provider.changes.requested")) }
                        }
                    }
                    tbody {
                        @for c in &changes {
                            tr {
                                td { (dataset_link(&c.dataset_id)) }
                                td { (label(lang, &c.from)) " → " (label(lang, &c.to)) }
                                td { (china_time(c.requested_ms)) }
                            }
                        }
                    }
                }
            }
        }

        section #register {
            h2 { (t(lang, "provider.register.title")) }
            p.muted { (t(lang, "provider.register.intro")) }
            @if let Some(refused) = refused {
                (refusal_box(lang, refused))
            }
            (register_form(viewer, draft))
        }
    };
    Ok(page(viewer, t(lang, "provider.home.title"), body))
}

/// A dataset's title as a link to its page (plain text for an id that is not one).
fn dataset_title_link(id: &str, title: &str) -> Markup {
    match DatasetId::parse(id) {
        Ok(id) => html! { a href={ "/provider/datasets/" (id) } { (title) } },
        Err(_) => html! { (title) },
    }
}

/// A labelled one-line text input of the registration form.
fn text_input(
    lang: Lang,
    name: &str,
    label_key: &'static str,
    value: &str,
    required: bool,
) -> Markup {
    let id = format!("register-{name}");
    html! {
        p {
            label for=(id) { (t(lang, label_key)) }
            input type="text" id=(id) name=(name) value=(value) required[required];
        }
    }
}

/// A labelled select of the registration form, with the viewer's words for each value.
fn select_input(
    lang: Lang,
    name: &str,
    label_key: &'static str,
    values: &[&str],
    current: &str,
) -> Markup {
    let id = format!("register-{name}");
    html! {
        p {
            label for=(id) { (t(lang, label_key)) }
            select id=(id) name=(name) {
                @for value in values.iter().copied() {
                    option value=(value) selected[value == current] { (label(lang, value)) }
                }
            }
        }
    }
}

/// A labelled text area of the registration form.
fn text_area(lang: Lang, name: &str, label_key: &'static str, value: &str, rows: u32) -> Markup {
    let id = format!("register-{name}");
    html! {
        p {
            label for=(id) { (t(lang, label_key)) }
            textarea id=(id) name=(name) rows=(rows) { (value) }
        }
    }
}

/// The registration form (`POST /provider/datasets` → `POST /v1/datasets`).
fn register_form(viewer: &Viewer, draft: &RegisterForm) -> Markup {
    let lang = viewer.lang;
    html! {
        form.form method="post" action="/provider/datasets" {
            (csrf_field(viewer))
            (text_input(lang, "title", "provider.register.field.title", &draft.title, true))
            (text_area(lang, "description", "provider.register.field.description", &draft.description, 3))
            (text_input(lang, "theme", "provider.register.field.theme", &draft.theme, true))
            (text_input(lang, "source_department", "provider.register.field.source_department", &draft.source_department, true))
            (text_input(lang, "collecting_department", "provider.register.field.collecting_department", &draft.collecting_department, true))
            (text_input(lang, "approving_department", "provider.register.field.approving_department", &draft.approving_department, true))
            (text_input(lang, "providing_department", "provider.register.field.providing_department", &draft.providing_department, true))
            (text_input(lang, "data_form", "provider.register.field.data_form", &draft.data_form, true))
            (select_input(lang, "update_frequency", "provider.register.field.update_frequency",
                &["daily", "weekly", "monthly", "quarterly", "yearly", "irregular"], &draft.update_frequency))
            (select_input(lang, "level", "provider.register.field.level", &["L1", "L2", "L3", "L4"], &draft.level))
            (select_input(lang, "share_type", "provider.register.field.share_type",
                &["unconditional", "conditional", "not_shared"], &draft.share_type))
            (text_area(lang, "share_conditions", "provider.register.field.share_conditions", &draft.share_conditions, 2))
            (text_area(lang, "legal_basis", "provider.register.field.legal_basis", &draft.legal_basis, 2))
            (select_input(lang, "open_attribute", "provider.register.field.open_attribute",
                &["unconditional", "conditional", "not_open"], &draft.open_attribute))
            p {
                input type="checkbox" id="register-research_only" name="research_only" value="on"
                    checked[draft.research_only.is_some()];
                " "
                label for="register-research_only" { (t(lang, "provider.register.field.research_only")) }
            }
            (text_input(lang, "elements", "provider.register.field.elements", &draft.elements, false))
            p {
                label for="register-schema" { (t(lang, "provider.register.field.schema")) }
                textarea id="register-schema" name="schema" rows="16" spellcheck="false" required
                    aria-describedby="register-schema-help" { (draft.schema) }
            }
            div #register-schema-help {
                p.muted { (t(lang, "provider.register.schema_help")) }
                details {
                    summary { (t(lang, "provider.register.schema_example")) }
                    pre { code { (EXAMPLE_SCHEMA.as_str()) } }
                }
            }
            button type="submit" { (t(lang, "provider.register.submit")) }
        }
    }
}

async fn register(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(form): Form<RegisterForm>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    admitted(&viewer, &Method::POST, "/v1/datasets")?;
    let lang = viewer.lang;
    let refused = match form.to_body(lang) {
        Ok(body) => match portal
            .send::<Value>(&viewer, Method::POST, "/v1/datasets", &body)
            .await
        {
            Ok(created) => {
                let target = created["id"]
                    .as_str()
                    .and_then(|id| DatasetId::parse(id).ok())
                    .map_or_else(
                        || "/provider?notice=registered".to_string(),
                        |id| format!("/provider/datasets/{id}?notice=registered"),
                    );
                return Ok(Redirect::to(&target).into_response());
            }
            Err(refused) => refused,
        },
        Err(detail) => PageError::new(StatusCode::UNPROCESSABLE_ENTITY, detail, lang),
    };
    // The form again, as filled, under the API's refusal.
    let markup = render_dashboard(
        &portal,
        &viewer,
        &PageQuery::default(),
        &form,
        Some(&refused),
    )
    .await?;
    Ok((refused.status, markup).into_response())
}

// ---------------------------------------------------------------------------------
// /provider/datasets/{id}: metadata, versions, submission, ingest jobs.
// ---------------------------------------------------------------------------------

async fn dataset_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = parse_id(&id, DatasetId::parse, lang)?;
    let (dataset, policy) = own_dataset(&portal, &viewer, &id).await?;
    // Bound first: the futures of `join!` borrow them.
    let versions_path = format!("/v1/datasets/{id}/versions");
    let (versions, jobs) = tokio::join!(
        portal.get::<Vec<VersionView>>(&viewer, &versions_path),
        portal.get::<Vec<JobView>>(&viewer, "/v1/jobs")
    );
    let versions = versions?;
    let mut refusals = Vec::new();
    let jobs: Vec<JobView> = or_refused(jobs, &mut refusals)
        .into_iter()
        .filter(|j| j.kind == "ingest" && j.subject == id.as_str())
        .take(10)
        .collect();
    let live = dataset.destroyed.is_none();
    let can_submit = live && matches!(dataset.status.as_str(), "draft" | "returned");
    let body = html! {
        h1 { (dataset.title) }
        (notice_box(lang, query.notice.as_deref()))
        @for refusal in &refusals { (refusal_box(lang, refusal)) }
        p {
            span.badge { (label(lang, &dataset.status)) }
            @if !live { " " span.badge { (t(lang, "provider.dataset.destroyed")) } }
            " "
            span.muted { (tf(lang, "provider.dataset.revision", &[("revision", dataset.revision.to_string().as_str())])) }
        }
        @if let Some(reason) = &dataset.return_reason {
            div.error role="alert" {
                p { (t(lang, "provider.dataset.returned_because")) }
                p { (reason) }
            }
        }
        @if let Some(day) = &dataset.review_due {
            @if dataset.status == "submitted" {
                p { (t(lang, "provider.dataset.review_due")) ": " time datetime=(day) { (day) } }
            }
        }
        nav aria-label=(t(lang, "provider.dataset.actions")) {
            ul {
                @if live {
                    li { a href={ "/provider/datasets/" (id) "/upload" } { (t(lang, "provider.upload.link")) } }
                }
                li { a href={ "/provider/datasets/" (id) "/usage" } { (t(lang, "provider.usage.link")) } }
                li { a href={ "/catalog/" (id) } { (t(lang, "provider.dataset.public_page")) } }
            }
        }
        @if can_submit {
            form.form method="post" action={ "/provider/datasets/" (id) "/submit" } {
                (csrf_field(&viewer))
                p.muted { (t(lang, "provider.dataset.submit_help")) }
                button type="submit" { (t(lang, "provider.dataset.submit")) }
            }
        }

        section {
            h2 { (t(lang, "provider.versions.title")) }
            @if versions.is_empty() {
                p { (t(lang, "provider.versions.none")) }
            } @else {
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.version")) }
                            th scope="col" { (t(lang, "provider.version.rows")) }
                            th scope="col" { (t(lang, "provider.version.certificate")) }
                            th scope="col" { (t(lang, "provider.version.certified")) }
                            th scope="col" { (t(lang, "provider.version.report")) }
                        }
                    }
                    tbody {
                        @for v in &versions {
                            tr {
                                td {
                                    (v.version)
                                    @if v.destroyed.is_some() { " " span.badge { (t(lang, "provider.dataset.destroyed")) } }
                                }
                                td { (v.rows) }
                                td { code { (v.certificate_no) } }
                                td { (china_time(v.created_ms)) }
                                td {
                                    a href={ "/provider/datasets/" (id) "/versions/" (v.version) "/report" } {
                                        (t(lang, "provider.version.report_link"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        @if !jobs.is_empty() {
            section {
                h2 { (t(lang, "provider.jobs.title")) }
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.jobs.job")) }
                            th scope="col" { (t(lang, "provider.jobs.status")) }
                            th scope="col" { (t(lang, "provider.jobs.started")) }
                            th scope="col" { (t(lang, "provider.jobs.detail")) }
                        }
                    }
                    tbody {
                        @for j in &jobs {
                            tr {
                                td { code { (j.id) } }
                                td {
                                    span.badge { (label(lang, &j.status)) }
                                    @if j.status == "running" || j.status == "queued" {
                                        " " (j.stage) " " (percent(j.progress))
                                    }
                                }
                                td { (china_time(j.created_ms)) }
                                td {
                                    @if let Some(e) = &j.error {
                                        (tf(lang, "provider.refused", &[("status", e.status.to_string().as_str())]))
                                        " " (e.detail)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        section {
            h2 { (t(lang, "provider.dataset.metadata")) }
            dl.facts {
                dt { (t(lang, "provider.register.field.description")) } dd { (dataset.description) }
                dt { (t(lang, "provider.register.field.theme")) } dd { (dataset.theme) }
                dt { (t(lang, "provider.register.field.source_department")) } dd { (dataset.source_department) }
                dt { (t(lang, "provider.register.field.collecting_department")) } dd { (dataset.collecting_department) }
                dt { (t(lang, "provider.register.field.approving_department")) } dd { (dataset.approving_department) }
                dt { (t(lang, "provider.register.field.providing_department")) } dd { (dataset.providing_department) }
                dt { (t(lang, "provider.register.field.data_form")) } dd { (dataset.data_form) }
                dt { (t(lang, "provider.register.field.update_frequency")) } dd { (label(lang, &dataset.update_frequency)) }
                dt { (t(lang, "provider.register.field.level")) } dd { (dataset.level) }
                dt { (t(lang, "provider.register.field.share_type")) } dd { (label(lang, &dataset.share_type)) }
                dt { (t(lang, "provider.register.field.share_conditions")) } dd { (dataset.share_conditions) }
                dt { (t(lang, "provider.register.field.legal_basis")) } dd { (dataset.legal_basis) }
                dt { (t(lang, "provider.register.field.open_attribute")) }
                dd {
                    (label(lang, &dataset.effective_open_attribute))
                    @if dataset.effective_open_attribute != dataset.open_attribute {
                        " "
                        span.muted {
                            (tf(lang, "provider.dataset.catalog_attribute", &[("attribute", label(lang, &dataset.open_attribute))]))
                        }
                    }
                }
                dt { (t(lang, "provider.register.field.research_only")) }
                dd { @if dataset.research_only { (t(lang, "provider.yes")) } @else { (t(lang, "provider.no")) } }
                dt { (t(lang, "provider.register.field.elements")) } dd { (dataset.elements.join(", ")) }
            }
        }

        section {
            h2 { (t(lang, "provider.schema.title")) }
            p.muted {
                (tf(lang, "provider.schema.privacy", &[
                    ("k", dataset.schema.privacy.k.to_string().as_str()),
                    ("suppression", percent(dataset.schema.privacy.max_suppression).as_str()),
                ]))
                @if let Some(l) = dataset.schema.privacy.l {
                    " " (tf(lang, "provider.schema.l", &[("l", l.to_string().as_str())]))
                }
            }
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "provider.schema.column")) }
                        th scope="col" { (t(lang, "provider.schema.type")) }
                        th scope="col" { (t(lang, "provider.schema.role")) }
                        th scope="col" { (t(lang, "provider.schema.rule")) }
                        th scope="col" { (t(lang, "provider.schema.nullable")) }
                    }
                }
                tbody {
                    @for c in &dataset.schema.columns {
                        tr {
                            th scope="row" { (c.name) }
                            td { (c.column_type) }
                            td { (label(lang, &c.role)) }
                            td { (c.rule["kind"].as_str().unwrap_or_default()) }
                            td { @if c.nullable { (t(lang, "provider.yes")) } @else { (t(lang, "provider.no")) } }
                        }
                    }
                }
            }
        }

        section {
            h2 { (t(lang, "provider.policy.title")) }
            dl.facts {
                dt { (t(lang, "provider.policy.threshold")) } dd { (policy.threshold) }
                dt { (t(lang, "provider.policy.dominance")) }
                dd { (tf(lang, "provider.policy.dominance_value", &[
                    ("n", policy.dominance_n.to_string().as_str()),
                    ("p", policy.dominance_p_percent.to_string().as_str()),
                ])) }
                dt { (t(lang, "provider.policy.rounding")) }
                dd { @if let Some(base) = policy.rounding_base { (base) } @else { (t(lang, "provider.none")) } }
                dt { (t(lang, "provider.policy.reviewers")) }
                dd { @if let Some(n) = policy.reviewers_required { (n) } @else { (t(lang, "provider.policy.reviewers_default")) } }
                dt { (t(lang, "provider.policy.dp_auto_release")) }
                dd { @if policy.dp_auto_release { (t(lang, "provider.yes")) } @else { (t(lang, "provider.no")) } }
            }
        }
    };
    Ok(page(&viewer, &dataset.title, body))
}

async fn submit(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let id = parse_id(&id, DatasetId::parse, viewer.lang)?;
    portal
        .send::<Value>(
            &viewer,
            Method::POST,
            &format!("/v1/datasets/{id}/submit"),
            &json!({}),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/provider/datasets/{id}?notice=submitted"
    )))
}

// ---------------------------------------------------------------------------------
// Upload with a progress bar.
// ---------------------------------------------------------------------------------

async fn upload_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = parse_id(&id, DatasetId::parse, lang)?;
    let (dataset, _) = own_dataset(&portal, &viewer, &id).await?;
    let corrects = query.corrects.unwrap_or_default();
    let title = tf(
        lang,
        "provider.upload.title",
        &[("title", dataset.title.as_str())],
    );
    let body = html! {
        h1 { (title) }
        p { a href={ "/provider/datasets/" (id) } { (t(lang, "provider.back_to_dataset")) } }
        p.muted { (t(lang, "provider.upload.intro")) }
        noscript { p.error { (t(lang, "provider.upload.needs_script")) } }
        form.form method="post" action={ "/provider/datasets/" (id) "/upload" }
            data-upload
            data-upload-url={ "/provider/datasets/" (id) "/upload" }
            data-job-url="/provider/jobs/"
            data-msg-choose=(t(lang, "provider.upload.msg_choose"))
            data-msg-uploading=(t(lang, "provider.upload.msg_uploading"))
            data-msg-processing=(t(lang, "provider.upload.msg_processing"))
            data-msg-done=(t(lang, "provider.upload.msg_done"))
            data-msg-report=(t(lang, "provider.upload.msg_report"))
            data-msg-failed=(t(lang, "provider.upload.msg_failed"))
            data-msg-network=(t(lang, "provider.upload.msg_network")) {
            (csrf_field(&viewer))
            p {
                label for="upload-file" { (t(lang, "provider.upload.file")) }
                input type="file" id="upload-file" name="file" required
                    accept=".csv,.txt,.parquet,text/csv,application/vnd.apache.parquet";
            }
            p {
                label for="upload-format" { (t(lang, "provider.upload.format")) }
                select id="upload-format" name="format" {
                    option value="csv" selected { "CSV" }
                    option value="parquet" { "Parquet" }
                }
            }
            p {
                label for="upload-delimiter" { (t(lang, "provider.upload.delimiter")) }
                input type="text" id="upload-delimiter" name="delimiter" value="," maxlength="1" size="2";
            }
            p {
                label for="upload-encoding" { (t(lang, "provider.upload.encoding")) }
                select id="upload-encoding" name="encoding" {
                    option value="utf8" selected { "UTF-8" }
                    option value="gbk" { "GBK" }
                }
            }
            p {
                label for="upload-corrects" { (t(lang, "provider.upload.corrects")) }
                input type="text" id="upload-corrects" name="corrects" value=(corrects);
            }
            button type="submit" { (t(lang, "provider.upload.submit")) }
            p {
                label for="upload-progress" { (t(lang, "provider.upload.progress")) }
                " "
                progress.progress id="upload-progress" max="100" value="0" { "0%" }
            }
            p data-upload-status role="status" aria-live="polite" {}
            div data-upload-result {}
        }
    };
    Ok(page(&viewer, &title, body))
}

/// Streams the browser's file to `POST /v1/datasets/{id}/versions` (the query, its
/// upload parameters, passed on as they are): the API's answer is returned whatever
/// its status (202 with the ingest job, or the API's problem). The CSRF token is in
/// the `X-CSRF-Token` header; without it nothing is sent on.
async fn upload(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let checked = if token.is_empty() {
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            t(lang, "provider.error.csrf_header"),
            lang,
        ))
    } else {
        check_csrf(&viewer, token)
    };
    if let Err(refused) = checked {
        // Read (a bounded part of) the rest, so that a client still sending gets the
        // 403 rather than a reset connection.
        let limit = portal.app.config.sandbox.upload_limit;
        crate::http::body::discard_rest(&mut body.into_data_stream(), limit).await;
        return Err(refused);
    }
    let id = parse_id(&id, DatasetId::parse, lang)?;
    // The query is the browser's, from a valid request URI: it goes on unchanged, after
    // a path made of a parsed id only, and the API validates every parameter.
    let uri = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("/v1/datasets/{id}/versions?{q}"),
        None => format!("/v1/datasets/{id}/versions"),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(length) = headers.get(header::CONTENT_LENGTH) {
        request = request.header(header::CONTENT_LENGTH, length.clone());
    }
    let request = request.body(body).map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            t(lang, "provider.error.bad_upload"),
            lang,
        )
    })?;
    portal.raw(&viewer, request).await
}

/// An ingest job's state for `static/upload.js`: status, stage, progress, the failure,
/// and once certified the version, its certificate and the report page.
async fn job_status(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(job): Path<String>,
) -> Result<Json<Value>, PageError> {
    let lang = viewer.lang;
    let job = parse_id(&job, JobId::parse, lang)?;
    let job: JobView = portal.get(&viewer, &format!("/v1/jobs/{job}")).await?;
    let result = job.result.unwrap_or(Value::Null);
    let version = result["version"].as_u64();
    let report_url = match (result["dataset_id"].as_str().map(DatasetId::parse), version) {
        (Some(Ok(dataset)), Some(v)) => {
            Some(format!("/provider/datasets/{dataset}/versions/{v}/report"))
        }
        _ => None,
    };
    Ok(Json(json!({
        "status": job.status,
        "status_label": label(lang, &job.status),
        "stage": job.stage,
        "progress": job.progress,
        "error_status": job.error.as_ref().map(|e| e.status),
        "error": job.error.as_ref().map(|e| e.detail.clone()),
        "version": version,
        "certificate_no": result["certificate_no"],
        "report_url": report_url,
    })))
}

// ---------------------------------------------------------------------------------
// The de-identification report and certificate of a version.
// ---------------------------------------------------------------------------------

async fn report_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path((id, version)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = parse_id(&id, DatasetId::parse, lang)?;
    let version: u64 = version.parse().map_err(|_| not_found(lang))?;
    let (dataset, _) = own_dataset(&portal, &viewer, &id).await?;
    // Bound first: the futures of `join!` borrow them.
    let version_path = format!("/v1/datasets/{id}/versions/{version}");
    let certificate_path = format!("{version_path}/certificate");
    let (v, certificate) = tokio::join!(
        portal.get::<VersionView>(&viewer, &version_path),
        portal.get::<CertificateView>(&viewer, &certificate_path)
    );
    let v = v?;
    let certificate = certificate?;
    // A report the page cannot read is shown as empty rather than refused: the
    // certificate above it stays the authority.
    let report: DeidReportView = serde_json::from_value(v.report.clone()).unwrap_or_default();
    let loss = &report.information_loss;
    let risk = &report.risk;
    let loss_bars: Vec<(String, f64)> = loss
        .per_column
        .iter()
        .map(|(column, value)| (column.clone(), value * 100.0))
        .collect();
    let risk_bars: Vec<(String, f64)> = [
        ("provider.report.risk.prosecutor_max", risk.prosecutor_max),
        ("provider.report.risk.prosecutor_avg", risk.prosecutor_avg),
        ("provider.report.risk.marketer_avg", risk.marketer_avg),
        (
            "provider.report.risk.unique_before",
            risk.unique_share_before,
        ),
        ("provider.report.risk.unique_after", risk.unique_share_after),
    ]
    .into_iter()
    .map(|(key, value)| (t(lang, key).to_string(), value * 100.0))
    .collect();
    let title = tf(
        lang,
        "provider.report.title",
        &[
            ("title", dataset.title.as_str()),
            ("version", version.to_string().as_str()),
        ],
    );
    let cert = &certificate.certificate;
    let body = html! {
        h1 { (title) }
        p { a href={ "/provider/datasets/" (id) } { (t(lang, "provider.back_to_dataset")) } }
        @if v.destroyed.is_some() {
            p.error { (t(lang, "provider.version.destroyed")) }
        }

        section.card {
            h2 { (t(lang, "provider.certificate.title")) }
            dl.facts {
                dt { (t(lang, "provider.certificate.number")) } dd { code { (cert.certificate_no) } }
                dt { (t(lang, "provider.certificate.holder")) } dd { (cert.holder_org) }
                dt { (t(lang, "provider.certificate.content_hash")) } dd { code { (cert.content_hash) } }
                dt { (t(lang, "provider.certificate.schema_hash")) } dd { code { (cert.schema_hash) } }
                dt { (t(lang, "provider.register.field.level")) } dd { (cert.level) }
                dt { (t(lang, "provider.register.field.open_attribute")) } dd { (label(lang, &cert.open_attribute)) }
                dt { (t(lang, "provider.certificate.valid")) }
                dd { (china_time_rfc3339(&v.valid_from)) " – " (china_time_rfc3339(&v.valid_until)) }
                dt { (t(lang, "provider.certificate.rows")) } dd { (v.rows) " · " (tf(lang, "provider.certificate.bytes", &[("bytes", v.bytes.to_string().as_str())])) }
                dt { (t(lang, "provider.certificate.ledger_seq")) } dd { (v.certificate_seq) }
                dt { (t(lang, "provider.certificate.entry_hash")) } dd { code { (certificate.receipt.entry.entry_hash) } }
                dt { (t(lang, "provider.certificate.tree_size")) } dd { (certificate.receipt.tree_size) }
            }
            @if certificate.receipt.entry.seq != v.certificate_seq {
                p.error { (t(lang, "provider.certificate.seq_mismatch")) }
            }
            @if !v.content_hash.eq_ignore_ascii_case(&cert.content_hash)
                || !v.schema_hash.eq_ignore_ascii_case(&cert.schema_hash) {
                p.error { (t(lang, "provider.certificate.hash_mismatch")) }
            }
            p {
                a href={ "/catalog/" (id) "/versions/" (version) } { (t(lang, "provider.certificate.verify_link")) }
            }
            @if !v.corrects.is_empty() {
                p { (t(lang, "provider.certificate.corrects")) }
                ul {
                    @for c in &v.corrects {
                        li {
                            code { (c.objection_id) }
                            @if c.corrected_late { " " span.badge.badge-warn { (t(lang, "provider.late")) } }
                        }
                    }
                }
            }
        }

        section {
            h2 { (t(lang, "provider.report.summary")) }
            dl.facts {
                dt { (t(lang, "provider.report.k")) }
                dd { (tf(lang, "provider.report.target_achieved", &[
                    ("target", report.k_target.to_string().as_str()),
                    ("achieved", report.k_achieved.to_string().as_str()),
                ])) }
                @if let Some(l) = report.l_target {
                    dt { (t(lang, "provider.report.l")) }
                    dd { (tf(lang, "provider.report.target_achieved", &[
                        ("target", l.to_string().as_str()),
                        ("achieved", report.l_achieved.map(|a| a.to_string()).unwrap_or_default().as_str()),
                    ])) }
                }
                dt { (t(lang, "provider.report.records")) }
                dd { (tf(lang, "provider.report.records_value", &[
                    ("in", report.records_in.to_string().as_str()),
                    ("out", report.records_out.to_string().as_str()),
                ])) }
                dt { (t(lang, "provider.report.suppressed")) }
                dd { (tf(lang, "provider.report.suppressed_value", &[
                    ("suppressed", report.suppressed.to_string().as_str()),
                    ("limit", report.suppression_limit.to_string().as_str()),
                    ("share", percent(loss.suppressed_share).as_str()),
                ])) }
                @if !report.dropped.is_empty() {
                    dt { (t(lang, "provider.report.dropped")) } dd { (report.dropped.join(", ")) }
                }
                @if !report.pseudonymised.is_empty() {
                    dt { (t(lang, "provider.report.pseudonymised")) } dd { (report.pseudonymised.join(", ")) }
                }
            }
        }

        section {
            h2 { (t(lang, "provider.report.levels")) }
            @if report.levels.is_empty() {
                p { (t(lang, "provider.report.no_qi")) }
            } @else {
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.schema.column")) }
                            th scope="col" { (t(lang, "provider.report.level")) }
                            th scope="col" { (t(lang, "provider.report.column_loss")) }
                        }
                    }
                    tbody {
                        @for (column, level) in &report.levels {
                            tr {
                                th scope="row" { (column) }
                                td { (level) }
                                td {
                                    @if let Some(l) = loss.per_column.get(column) { (percent(*l)) }
                                }
                            }
                        }
                    }
                }
            }
        }

        section {
            h2 { (t(lang, "provider.report.loss")) }
            dl.facts {
                dt { (tf(lang, "provider.report.loss_value", &[("metric", loss.metric.as_str())])) } dd { (percent(loss.value)) }
                dt { (t(lang, "provider.report.intensity")) } dd { (percent(loss.generalisation_intensity)) }
                dt { (t(lang, "provider.report.optimised")) } dd { (loss.optimised) " = " (format!("{:.4}", loss.optimised_value)) }
                dt { (t(lang, "provider.report.nue")) } dd { (format!("{:.4}", loss.non_uniform_entropy)) }
                dt { (t(lang, "provider.report.discernibility")) } dd { (format!("{:.0}", loss.discernibility)) }
                dt { (t(lang, "provider.report.aecs")) } dd { (format!("{:.2}", loss.average_class_size)) }
            }
            @if !loss_bars.is_empty() {
                figure.chart {
                    (bar_chart(t(lang, "provider.report.chart_loss"), &loss_bars, "%"))
                }
            }
        }

        section {
            h2 { (t(lang, "provider.report.risk")) }
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "provider.report.risk.model")) }
                        th scope="col" { (t(lang, "provider.report.risk.highest")) }
                        th scope="col" { (t(lang, "provider.report.risk.average")) }
                    }
                }
                tbody {
                    tr {
                        th scope="row" { (t(lang, "provider.report.risk.prosecutor")) }
                        td { (percent(risk.prosecutor_max)) }
                        td { (percent(risk.prosecutor_avg)) }
                    }
                    tr {
                        th scope="row" { (t(lang, "provider.report.risk.journalist")) }
                        td { (percent(risk.journalist_max)) }
                        td { (percent(risk.journalist_avg)) }
                    }
                    tr {
                        th scope="row" { (t(lang, "provider.report.risk.marketer")) }
                        td { "—" }
                        td { (percent(risk.marketer_avg)) }
                    }
                }
            }
            p {
                (tf(lang, "provider.report.uniques", &[
                    ("before", percent(risk.unique_share_before).as_str()),
                    ("after", percent(risk.unique_share_after).as_str()),
                ]))
            }
            figure.chart {
                (bar_chart(t(lang, "provider.report.chart_risk"), &risk_bars, "%"))
            }
        }

        @if !report.masked.is_empty() {
            section {
                h2 { (t(lang, "provider.report.masked")) }
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.schema.column")) }
                            th scope="col" { (t(lang, "provider.report.masked_values")) }
                            th scope="col" { (t(lang, "provider.report.masked_invalid")) }
                        }
                    }
                    tbody {
                        @for (column, m) in &report.masked {
                            tr {
                                th scope="row" { (column) }
                                td { (m.masked) }
                                td { (m.invalid) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, &title, body))
}

// ---------------------------------------------------------------------------------
// How a dataset was used.
// ---------------------------------------------------------------------------------

async fn usage_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = parse_id(&id, DatasetId::parse, lang)?;
    // The usage route first: its policy and ownership check decide the page.
    let usage: UsageView = portal
        .get(&viewer, &format!("/v1/datasets/{id}/usage"))
        .await?;
    let dataset: DatasetView = portal.get(&viewer, &format!("/v1/datasets/{id}")).await?;
    let runs_per_version: Vec<(String, f64)> = usage
        .versions
        .iter()
        .map(|v| {
            let runs: u64 = v.runs.iter().map(|r| r.count).sum();
            (
                tf(
                    lang,
                    "provider.version.name",
                    &[("version", v.version.to_string().as_str())],
                ),
                runs as f64,
            )
        })
        .collect();
    let title = tf(
        lang,
        "provider.usage.title",
        &[("title", dataset.title.as_str())],
    );
    let body = html! {
        h1 { (title) }
        p { a href={ "/provider/datasets/" (id) } { (t(lang, "provider.back_to_dataset")) } }
        p.muted { (t(lang, "provider.usage.intro")) }

        section {
            h2 { (t(lang, "provider.usage.grants")) }
            @if usage.grants.is_empty() {
                p { (t(lang, "provider.usage.no_grants")) }
            } @else {
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.grant")) }
                            th scope="col" { (t(lang, "provider.grants.applicant")) }
                            th scope="col" { (t(lang, "provider.grants.purpose")) }
                            th scope="col" { (t(lang, "provider.grants.status")) }
                            th scope="col" { (t(lang, "provider.grants.applied")) }
                            th scope="col" { (t(lang, "provider.grants.decided")) }
                            th scope="col" { (t(lang, "provider.grants.queries_used")) }
                        }
                    }
                    tbody {
                        @for g in &usage.grants {
                            tr {
                                td { code { (g.grant_id) } }
                                td { (g.applicant_org) }
                                td { (g.purpose) }
                                td { span.badge { (label(lang, &g.status)) } }
                                td { (china_time(g.applied_ms)) }
                                td { @if let Some(ms) = g.decided_ms { (china_time(ms)) } }
                                td { (g.queries_used) }
                            }
                        }
                    }
                }
            }
        }

        @if !runs_per_version.is_empty() {
            figure.chart {
                (bar_chart(t(lang, "provider.usage.chart_runs"), &runs_per_version, t(lang, "provider.usage.runs_unit")))
            }
        }

        @for v in &usage.versions {
            section {
                h2 {
                    (tf(lang, "provider.version.name", &[("version", v.version.to_string().as_str())]))
                    " · " code { (v.certificate_no) }
                    @if v.destroyed.is_some() { " " span.badge { (t(lang, "provider.dataset.destroyed")) } }
                }
                (tally_table(lang, "provider.usage.runs", &v.runs))
                (tally_table(lang, "provider.usage.fhe_queries", &v.fhe_queries))
                (tally_table(lang, "provider.usage.outputs", &v.outputs))
                h3 { (t(lang, "provider.usage.releases")) }
                @if v.releases.is_empty() {
                    p.muted { (t(lang, "provider.none")) }
                } @else {
                    table.table {
                        thead {
                            tr {
                                th scope="col" { (t(lang, "provider.usage.release")) }
                                th scope="col" { (t(lang, "provider.usage.output")) }
                                th scope="col" { (t(lang, "provider.usage.org")) }
                                th scope="col" { (t(lang, "provider.usage.released")) }
                            }
                        }
                        tbody {
                            @for r in &v.releases {
                                tr {
                                    td { code { (r.release_id) } }
                                    td { code { (r.output_id) } }
                                    td { (r.org) }
                                    td { @if let Some(ms) = r.released_ms { (china_time(ms)) } }
                                }
                            }
                        }
                    }
                }
                h3 { (t(lang, "provider.usage.downloads")) }
                @if v.downloads.is_empty() {
                    p.muted { (t(lang, "provider.none")) }
                } @else {
                    table.table {
                        thead {
                            tr {
                                th scope="col" { (t(lang, "provider.usage.org")) }
                                th scope="col" { (t(lang, "provider.usage.what")) }
                                th scope="col" { (t(lang, "provider.usage.count")) }
                                th scope="col" { (t(lang, "provider.usage.bytes")) }
                            }
                        }
                        tbody {
                            @for d in &v.downloads {
                                tr {
                                    td { (d.org) }
                                    td { (label(lang, &d.what)) }
                                    td { (d.count) }
                                    td { (d.bytes) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, &title, body))
}

/// Counts by organisation and state under a heading.
fn tally_table(lang: Lang, heading_key: &'static str, tallies: &[TallyView]) -> Markup {
    html! {
        h3 { (t(lang, heading_key)) }
        @if tallies.is_empty() {
            p.muted { (t(lang, "provider.none")) }
        } @else {
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "provider.usage.org")) }
                        th scope="col" { (t(lang, "provider.usage.state")) }
                        th scope="col" { (t(lang, "provider.usage.count")) }
                    }
                }
                tbody {
                    @for tally in tallies {
                        tr {
                            td { (tally.org) }
                            td { (label(lang, &tally.status)) }
                            td { (tally.count) }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Grant applications.
// ---------------------------------------------------------------------------------

async fn grants_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Markup, PageError> {
    admitted(&viewer, &Method::POST, "/v1/grants/{id}/decision")?;
    let lang = viewer.lang;
    let grants: Vec<GrantView> = portal.get(&viewer, "/v1/grants").await?;
    let (pending, decided): (Vec<&GrantView>, Vec<&GrantView>) =
        grants.iter().partition(|g| g.status == "pending");
    let body = html! {
        h1 { (t(lang, "provider.grants.title")) }
        (notice_box(lang, query.notice.as_deref()))
        p.muted { (t(lang, "provider.grants.intro")) }
        section {
            h2 { (t(lang, "provider.grants.pending")) }
            @if pending.is_empty() {
                p { (t(lang, "provider.grants.none_pending")) }
            }
            @for g in &pending {
                @if let Ok(id) = GrantId::parse(&g.id) {
                    (pending_grant(&viewer, &id, g))
                }
            }
        }
        section {
            h2 { (t(lang, "provider.grants.decided")) }
            @if decided.is_empty() {
                p { (t(lang, "provider.none")) }
            } @else {
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.grant")) }
                            th scope="col" { (t(lang, "provider.dataset")) }
                            th scope="col" { (t(lang, "provider.grants.applicant")) }
                            th scope="col" { (t(lang, "provider.grants.status")) }
                            th scope="col" { (t(lang, "provider.grants.decided")) }
                            th scope="col" { (t(lang, "provider.grants.expires")) }
                            th scope="col" { (t(lang, "provider.grants.budget_used")) }
                            th scope="col" { (t(lang, "provider.grants.reason")) }
                        }
                    }
                    tbody {
                        @for g in &decided {
                            tr id={ "grant-" (g.id) } {
                                td { code { (g.id) } }
                                td { (dataset_link(&g.dataset_id)) }
                                td { (g.applicant_org) }
                                td { span.badge { (label(lang, &g.status)) } }
                                td { @if let Some(ms) = g.decided_ms { (china_time(ms)) } }
                                td { @if let Some(ms) = g.expires_ms { (china_time(ms)) } }
                                td {
                                    (tf(lang, "provider.grants.budget_value", &[
                                        ("eps_spent", format!("{:.3}", g.epsilon_spent).as_str()),
                                        ("eps", format!("{:.3}", g.epsilon).as_str()),
                                        ("used", g.queries_used.to_string().as_str()),
                                        ("budget", g.query_budget.to_string().as_str()),
                                    ]))
                                }
                                td {
                                    @if let Some(reason) = &g.reason { (reason) }
                                    @if g.status == "approved" {
                                        @if let Ok(id) = GrantId::parse(&g.id) {
                                            (text_form(
                                                &viewer,
                                                &format!("/provider/grants/{id}/revoke"),
                                                &format!("grant-{id}-revoke"),
                                                t(lang, "provider.grants.revoke_reason"),
                                                t(lang, "provider.grants.revoke"),
                                            ))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, t(lang, "provider.grants.title"), body))
}

/// A pending application with its terms, its deadline and the forms to answer it.
fn pending_grant(viewer: &Viewer, id: &GrantId, g: &GrantView) -> Markup {
    let lang = viewer.lang;
    let action = format!("/provider/grants/{id}/decision");
    html! {
        article.card id={ "grant-" (id) } {
            h3 { (tf(lang, "provider.grants.application", &[("org", g.applicant_org.as_str())])) }
            dl.facts {
                dt { (t(lang, "provider.grant")) } dd { code { (id) } }
                dt { (t(lang, "provider.dataset")) } dd { (dataset_link(&g.dataset_id)) }
                dt { (t(lang, "provider.grants.purpose")) }
                dd { (g.purpose) " " span.badge { (label(lang, &g.purpose_kind)) } }
                dt { (t(lang, "provider.grants.columns")) } dd { (g.columns.join(", ")) }
                dt { (t(lang, "provider.grants.model_kinds")) } dd { (g.model_kinds.join(", ")) }
                dt { (t(lang, "provider.grants.term_days")) } dd { (g.term_days) }
                dt { (t(lang, "provider.grants.epsilon_delta")) } dd { (g.epsilon) " / " (g.delta) }
                dt { (t(lang, "provider.grants.query_budget")) } dd { (g.query_budget) }
                dt { (t(lang, "provider.register.field.research_only")) }
                dd { @if g.research_only { (t(lang, "provider.yes")) } @else { (t(lang, "provider.no")) } }
                dt { (t(lang, "provider.grants.applied")) } dd { (china_time(g.applied_ms)) }
                dt { (t(lang, "provider.due.deadline")) } dd { (deadline_cell(lang, &g.answer_deadline, g.overdue)) }
            }
            div.grid {
                form.form method="post" action=(action) {
                    (csrf_field(viewer))
                    input type="hidden" name="decision" value="approve";
                    p.muted { (t(lang, "provider.grants.narrow_help")) }
                    p {
                        label for={ "grant-" (id) "-columns" } { (t(lang, "provider.grants.columns")) }
                        input type="text" id={ "grant-" (id) "-columns" } name="columns" placeholder=(g.columns.join(", "));
                    }
                    p {
                        label for={ "grant-" (id) "-term" } { (t(lang, "provider.grants.term_days")) }
                        input type="number" min="1" id={ "grant-" (id) "-term" } name="term_days" placeholder=(g.term_days);
                    }
                    p {
                        label for={ "grant-" (id) "-epsilon" } { (t(lang, "provider.grants.epsilon")) }
                        input type="number" min="0" step="any" id={ "grant-" (id) "-epsilon" } name="epsilon" placeholder=(g.epsilon);
                    }
                    p {
                        label for={ "grant-" (id) "-queries" } { (t(lang, "provider.grants.query_budget")) }
                        input type="number" min="1" id={ "grant-" (id) "-queries" } name="query_budget" placeholder=(g.query_budget);
                    }
                    button type="submit" { (t(lang, "provider.approve")) }
                }
                form.form method="post" action=(action) {
                    (csrf_field(viewer))
                    input type="hidden" name="decision" value="refuse";
                    p {
                        label for={ "grant-" (id) "-reason" } { (t(lang, "provider.grants.refuse_reason")) }
                        textarea id={ "grant-" (id) "-reason" } name="reason" rows="3" {}
                    }
                    button type="submit" { (t(lang, "provider.refuse")) }
                }
            }
        }
    }
}

async fn decide_grant(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<GrantDecisionForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let lang = viewer.lang;
    let id = parse_id(&id, GrantId::parse, lang)?;
    let approve = match form.decision.as_str() {
        "approve" => true,
        "refuse" => false,
        _ => {
            return Err(PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                t(lang, "provider.error.decision"),
                lang,
            ));
        }
    };
    let mut body = serde_json::Map::new();
    body.insert("approve".into(), Value::Bool(approve));
    if let Some(reason) = non_blank(&form.reason) {
        body.insert("reason".into(), json!(reason));
    }
    if approve {
        let columns = comma_list(&form.columns);
        if !columns.is_empty() {
            body.insert("columns".into(), json!(columns));
        }
        if let Some(days) =
            optional_number::<u64>(&form.term_days, "provider.grants.term_days", lang)?
        {
            body.insert("term_days".into(), json!(days));
        }
        if let Some(epsilon) =
            optional_number::<f64>(&form.epsilon, "provider.grants.epsilon", lang)?
        {
            body.insert("epsilon".into(), json!(epsilon));
        }
        if let Some(queries) =
            optional_number::<u64>(&form.query_budget, "provider.grants.query_budget", lang)?
        {
            body.insert("query_budget".into(), json!(queries));
        }
    }
    portal
        .send::<Value>(
            &viewer,
            Method::POST,
            &format!("/v1/grants/{id}/decision"),
            &Value::Object(body),
        )
        .await?;
    Ok(Redirect::to(if approve {
        "/provider/grants?notice=grant_approved"
    } else {
        "/provider/grants?notice=grant_refused"
    }))
}

async fn revoke_grant(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let id = parse_id(&id, GrantId::parse, viewer.lang)?;
    portal
        .send::<Value>(
            &viewer,
            Method::POST,
            &format!("/v1/grants/{id}/revoke"),
            &json!({ "reason": form.text.trim() }),
        )
        .await?;
    Ok(Redirect::to("/provider/grants?notice=grant_revoked"))
}

// ---------------------------------------------------------------------------------
// Objections and the corrections they oblige.
// ---------------------------------------------------------------------------------

async fn objections_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Markup, PageError> {
    admitted(&viewer, &Method::POST, "/v1/objections/{id}/answer")?;
    let lang = viewer.lang;
    let org = org_of(&viewer);
    let objections: Vec<ObjectionView> = portal.get(&viewer, "/v1/objections").await?;
    // The provider's pages show the objections it must answer, not those it filed.
    let (open, answered): (Vec<&ObjectionView>, Vec<&ObjectionView>) = objections
        .iter()
        .filter(|o| o.provider_org == org)
        .partition(|o| o.status == "open");
    let body = html! {
        h1 { (t(lang, "provider.objections.title")) }
        (notice_box(lang, query.notice.as_deref()))
        p.muted { (t(lang, "provider.objections.intro")) }
        section {
            h2 { (t(lang, "provider.objections.open")) }
            @if open.is_empty() {
                p { (t(lang, "provider.objections.none_open")) }
            }
            @for o in &open {
                article.card id={ "objection-" (o.id) } {
                    h3 { (tf(lang, "provider.objections.item", &[
                        ("org", o.objector_org.as_str()),
                        ("ground", label(lang, &o.ground)),
                    ])) }
                    dl.facts {
                        dt { (t(lang, "provider.dataset")) } dd { (dataset_link(&o.dataset_id)) }
                        dt { (t(lang, "provider.version")) } dd { (o.version) }
                        dt { (t(lang, "provider.objections.detail")) } dd { (o.detail) }
                        dt { (t(lang, "provider.objections.filed")) } dd { (china_time(o.filed_ms)) }
                        dt { (t(lang, "provider.due.deadline")) } dd { (deadline_cell(lang, &o.answer_deadline, o.overdue)) }
                    }
                    @if let Ok(id) = ObjectionId::parse(&o.id) {
                        (choice_form(&viewer, &ChoiceFormSpec {
                            action: format!("/provider/objections/{id}/answer"),
                            id_prefix: format!("objection-{id}"),
                            legend: t(lang, "provider.objections.finding"),
                            choices: &[("accepted", t(lang, "provider.objections.accept")), ("rejected", t(lang, "provider.objections.reject"))],
                            text_label: t(lang, "provider.objections.answer"),
                            submit: t(lang, "provider.send"),
                        }))
                    }
                }
            }
        }
        section {
            h2 { (t(lang, "provider.objections.answered")) }
            @if answered.is_empty() {
                p { (t(lang, "provider.none")) }
            } @else {
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "provider.objections.objection")) }
                            th scope="col" { (t(lang, "provider.dataset")) }
                            th scope="col" { (t(lang, "provider.objections.outcome")) }
                            th scope="col" { (t(lang, "provider.objections.answer")) }
                            th scope="col" { (t(lang, "provider.objections.correction")) }
                        }
                    }
                    tbody {
                        @for o in &answered {
                            tr id={ "objection-" (o.id) } {
                                td { code { (o.id) } }
                                td {
                                    (dataset_link(&o.dataset_id)) " "
                                    (tf(lang, "provider.version.name", &[("version", o.version.to_string().as_str())]))
                                }
                                td {
                                    @if let Some(outcome) = &o.outcome { span.badge { (label(lang, outcome)) } }
                                    @if o.answered_late { " " span.badge.badge-warn { (t(lang, "provider.late")) } }
                                }
                                td { @if let Some(answer) = &o.answer { (answer) } }
                                td { (correction_cell(lang, o)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, t(lang, "provider.objections.title"), body))
}

/// Where an accepted objection's correction is: due, with the upload that makes it, or
/// done, with the version that made it.
fn correction_cell(lang: Lang, o: &ObjectionView) -> Markup {
    let Some(c) = &o.correction else {
        return html! {};
    };
    let dataset = DatasetId::parse(&o.dataset_id).ok();
    let objection = ObjectionId::parse(&o.id).ok();
    html! {
        span.badge { (label(lang, &c.status)) }
        " "
        @if c.status == "pending" {
            (t(lang, "provider.objections.correction_due")) " "
            (deadline_cell(lang, &c.correction_due, c.overdue))
            @if let (Some(d), Some(obj)) = (&dataset, &objection) {
                " "
                a href=(with_query(&format!("/provider/datasets/{d}/upload"), &[("corrects", obj.as_str())])) {
                    (t(lang, "provider.objections.upload_correction"))
                }
            }
        } @else {
            @if let (Some(d), Some(v)) = (&dataset, c.version) {
                a href={ "/provider/datasets/" (d) "/versions/" (v) "/report" } {
                    (tf(lang, "provider.version.name", &[("version", v.to_string().as_str())]))
                }
            }
            @if let Some(no) = &c.certificate_no { " " code { (no) } }
            @if c.corrected_late { " " span.badge.badge-warn { (t(lang, "provider.late")) } }
        }
    }
}

async fn answer_objection(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ChoiceForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let id = parse_id(&id, ObjectionId::parse, viewer.lang)?;
    portal
        .send::<Value>(
            &viewer,
            Method::POST,
            &format!("/v1/objections/{id}/answer"),
            &json!({ "outcome": form.choice, "answer": form.text.trim() }),
        )
        .await?;
    Ok(Redirect::to(
        "/provider/objections?notice=objection_answered",
    ))
}

// ---------------------------------------------------------------------------------
// Share requests, requests to open data and rectification orders (on /provider).
// ---------------------------------------------------------------------------------

async fn decide_share(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ChoiceForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let lang = viewer.lang;
    let id = parse_id(&id, ShareRequestId::parse, lang)?;
    let approve = match form.choice.as_str() {
        "approve" => true,
        "refuse" => false,
        _ => {
            return Err(PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                t(lang, "provider.error.decision"),
                lang,
            ));
        }
    };
    let mut body = json!({ "approve": approve });
    if let Some(reason) = non_blank(&form.text) {
        body["reason"] = json!(reason);
    }
    portal
        .send::<Value>(
            &viewer,
            Method::POST,
            &format!("/v1/share-requests/{id}/decision"),
            &body,
        )
        .await?;
    Ok(Redirect::to("/provider?notice=share_decided"))
}

async fn answer_open_data(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ChoiceForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let id = parse_id(&id, OpenDataRequestId::parse, viewer.lang)?;
    let mut body = json!({ "outcome": form.choice });
    if let Some(reason) = non_blank(&form.text) {
        body["reason"] = json!(reason);
    }
    portal
        .send::<Value>(
            &viewer,
            Method::POST,
            &format!("/v1/open-data-requests/{id}/answer"),
            &body,
        )
        .await?;
    Ok(Redirect::to("/provider?notice=open_data_answered"))
}

async fn respond_rectification(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let id = parse_id(&id, RectificationId::parse, viewer.lang)?;
    portal
        .send::<Value>(
            &viewer,
            Method::POST,
            &format!("/v1/rectifications/{id}/response"),
            &json!({ "response": form.text.trim() }),
        )
        .await?;
    Ok(Redirect::to("/provider?notice=rectification_answered"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_lists_drop_blanks_and_trim() {
        assert_eq!(comma_list(" a, b ,,c "), vec!["a", "b", "c"]);
        assert!(comma_list(" , ").is_empty());
    }

    #[test]
    fn numbers_are_optional_but_must_be_finite() {
        let lang = Lang::En;
        assert_eq!(
            optional_number::<u64>(" ", "provider.grants.term_days", lang).unwrap(),
            None
        );
        assert_eq!(
            optional_number::<u64>("30", "provider.grants.term_days", lang).unwrap(),
            Some(30)
        );
        assert!(optional_number::<f64>("NaN", "provider.grants.epsilon", lang).is_err());
        assert!(optional_number::<f64>("inf", "provider.grants.epsilon", lang).is_err());
        assert!(optional_number::<u64>("-1", "provider.grants.term_days", lang).is_err());
    }

    #[test]
    fn a_schema_that_is_not_json_is_named_by_position_only() {
        let form = RegisterForm {
            schema: "{\"columns\": [secret".into(),
            ..RegisterForm::default()
        };
        let detail = form.to_body(Lang::En).unwrap_err();
        assert!(!detail.contains("secret"), "{detail}");
    }

    #[test]
    fn the_example_schema_is_a_real_one() {
        let schema: Value = serde_json::from_str(&EXAMPLE_SCHEMA).unwrap();
        assert!(schema["columns"].as_array().is_some_and(|c| !c.is_empty()));
    }
}
