//! The enterprise developer's pages (issue #21): grants and budgets, dataset pages with
//! their schema and dummy data, the SQL editor with a dry run on dummy data, runs with
//! live progress, outputs with their check reports, and packaging released outputs as a
//! product.
//!
//! Design:
//! - **Every page is the API.** Each handler reads and acts only through
//!   [`Portal::get`], [`Portal::send`] and [`Portal::raw`] (the `/v1` router called
//!   in-process as the viewer), so a page shows exactly what the API gives this
//!   developer: before an output is released the API withholds its cell-level hits,
//!   counts, rows and hash, and so does the page. The flow is the README's: grant
//!   application (`POST /v1/grants`) → grant → model (`POST /v1/models`) → run
//!   (`POST /v1/runs`, a polled job) → output with its check report
//!   (`GET /v1/outputs/{id}`) → review (an output enters the reviewers' queue by itself:
//!   the API has nothing to request) → release → product (`POST /v1/products`).
//! - **Refused as the API refuses.** Every page first reads the developer's models
//!   (`GET /v1/models`, which admits developers and supervisors only) and shows them
//!   where they matter (the editor, runs, outputs). So a provider, reviewer or buyer
//!   gets the API's own 403 on every page here, also on pages whose other reads are
//!   public (a dataset's metadata), and another organisation's run or output is the
//!   API's 404.
//! - **Forms** carry the viewer's CSRF token, checked first; the JSON endpoints that
//!   `static/runs.js` calls take it in the [`CSRF_HEADER`] header. An API refusal is
//!   shown with the API's status (also the page's) and detail, and the form keeps what
//!   was typed.
//! - **JavaScript is optional.** Without it, the editor's dry run posts the form and the
//!   page comes back with the result; with it, `runs.js` posts the same fields to
//!   `POST /developer/sql/dry-run` and inserts the same server-rendered fragment. A run
//!   page shows a `<progress>` and a reload link; `runs.js` polls
//!   `GET /developer/runs/{job}/status` and reloads the page once the job is done.
//! - Ids from paths are parsed before they go into an API path (a malformed one is a
//!   404, as the API answers for an id it does not know), and every value, SQL text
//!   included, is escaped by maud.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::{Markup, html};
use pdx_ids::{DatasetId, GrantId, JobId, OutputId, ProductId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::portal::Portal;
use crate::portal::api::{PageError, page_error, with_query};
use crate::portal::i18n::{Lang, t, tf};
use crate::portal::layout::{china_time, china_time_rfc3339, csrf_field, json_table, page, yuan};
use crate::portal::session::{Viewer, check_csrf};

/// The header in which `static/runs.js` sends the viewer's CSRF token with a JSON call.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The job kind of a model run (`pdx_sandbox::runs::RUN_JOB_KIND`).
const RUN_KIND: &str = "model_run";
/// Dummy rows shown on a dataset page.
const DUMMY_PREVIEW_ROWS: &str = "10";
/// Rows of a released output shown on its page (the download holds them all).
const OUTPUT_TABLE_ROWS: usize = 200;
/// The largest download read into a page.
const MAX_TABLE_BYTES: usize = 16 * 1024 * 1024;
/// Most dataset titles looked up for one page (each is one API read).
const MAX_TITLE_LOOKUPS: usize = 50;
/// Runs, outputs and models shown on the home page.
const RECENT: usize = 10;
/// Values of a released domain listed before "and n more".
const MAX_DOMAIN_VALUES: usize = 30;

/// The developer pages.
pub fn routes() -> Router<Portal> {
    Router::new()
        .route("/developer", get(home))
        .route(
            "/developer/datasets/{id}",
            get(dataset_page).post(apply_for_grant),
        )
        .route("/developer/sql", get(sql_editor).post(sql_submit))
        .route("/developer/sql/dry-run", post(dry_run_json))
        .route("/developer/runs", get(runs_page))
        .route("/developer/runs/{job}", get(run_page))
        .route("/developer/runs/{job}/status", get(run_status_json))
        .route("/developer/outputs/{id}", get(output_page))
        .route("/developer/outputs/{id}/download", get(output_download))
        .route(
            "/developer/products/new",
            get(product_form).post(create_product),
        )
}

// ---------------------------------------------------------------------------------------
// The API's JSON, as far as these pages show it.

/// A grant (`GET /v1/grants`).
#[derive(Clone, Debug, Deserialize)]
struct GrantRow {
    id: String,
    dataset_id: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    purpose_kind: String,
    #[serde(default)]
    model_kinds: Vec<String>,
    #[serde(default)]
    epsilon: f64,
    #[serde(default)]
    epsilon_spent: f64,
    #[serde(default)]
    query_budget: u64,
    #[serde(default)]
    queries_used: u64,
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    answer_deadline: String,
    #[serde(default)]
    expires_ms: Option<i64>,
    #[serde(default)]
    overdue: bool,
}

/// A registered model (`GET /v1/models`).
#[derive(Clone, Debug, Deserialize)]
struct ModelRow {
    id: String,
    name: String,
    kind: String,
    body: String,
    #[serde(default)]
    model_hash: String,
    #[serde(default)]
    created_ms: i64,
}

/// A job (`GET /v1/jobs`).
#[derive(Clone, Debug, Deserialize)]
struct JobRow {
    id: String,
    kind: String,
    #[serde(default)]
    subject: String,
    status: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    progress: f64,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<JobFailure>,
    #[serde(default)]
    created_ms: i64,
    #[serde(default)]
    updated_ms: i64,
}

impl JobRow {
    /// Whether the job has finished, one way or the other.
    fn done(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed")
    }

    /// The output a finished run left (an id the API gave, checked as one).
    fn output_id(&self) -> Option<OutputId> {
        self.result
            .as_ref()
            .and_then(|r| r.get("output_id"))
            .and_then(Value::as_str)
            .and_then(|id| OutputId::parse(id).ok())
    }
}

/// Why a job failed, as the API shows its owner.
#[derive(Clone, Debug, Deserialize)]
struct JobFailure {
    status: u16,
    detail: String,
}

/// An output as its developer sees it (`GET /v1/outputs/{id}`).
#[derive(Clone, Debug, Deserialize)]
struct OutputRow {
    id: String,
    #[serde(default)]
    job_id: String,
    #[serde(default)]
    model_id: String,
    #[serde(default)]
    output_hash: String,
    #[serde(default)]
    rows: u64,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    check_report: Value,
    #[serde(default)]
    required_reviews: u8,
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    release_id: Option<String>,
    #[serde(default)]
    release_seq: Option<u64>,
    #[serde(default)]
    reviews: Vec<ReviewRow>,
    #[serde(default)]
    created_ms: i64,
}

/// One review of an output.
#[derive(Clone, Debug, Deserialize)]
struct ReviewRow {
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    created_ms: i64,
}

/// A product (`GET /v1/products?mine=true`).
#[derive(Clone, Debug, Deserialize)]
struct ProductRow {
    id: String,
    title: String,
    status: String,
    #[serde(default)]
    price_minor: i64,
    #[serde(default)]
    status_reason: Option<String>,
    #[serde(default)]
    registration_no: Option<String>,
    #[serde(default)]
    created_at: String,
}

/// A catalog entry (`GET /v1/datasets/{id}`).
#[derive(Clone, Debug, Deserialize)]
struct DatasetView {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    theme: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    effective_open_attribute: String,
    #[serde(default)]
    research_only: bool,
    #[serde(default)]
    share_conditions: String,
    #[serde(default)]
    source_department: String,
    #[serde(default)]
    update_frequency: String,
    #[serde(default)]
    latest_version: Option<u64>,
    #[serde(default)]
    schema: SchemaView,
}

/// A dataset's declared columns.
#[derive(Clone, Debug, Default, Deserialize)]
struct SchemaView {
    #[serde(default)]
    columns: Vec<ColumnView>,
}

/// One declared column.
#[derive(Clone, Debug, Deserialize)]
struct ColumnView {
    name: String,
    #[serde(rename = "type", default)]
    column_type: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    rule: Value,
}

impl ColumnView {
    /// The de-identification rule's kind (`keep`, `hierarchy`, `drop`, …).
    fn rule_kind(&self) -> &str {
        self.rule.get("kind").and_then(Value::as_str).unwrap_or("")
    }
}

/// A certified version (`GET /v1/datasets/{id}/versions/{v}`), for its released domains.
#[derive(Clone, Debug, Deserialize)]
struct VersionView {
    version: u64,
    #[serde(default)]
    rows: u64,
    #[serde(default)]
    certificate_no: String,
    #[serde(default)]
    released_domains: Vec<ReleasedDomainView>,
}

/// What a released column holds (bands, hierarchy labels, …).
#[derive(Clone, Debug, Deserialize)]
struct ReleasedDomainView {
    column: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    level: Option<u8>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    values: Option<Vec<String>>,
}

/// A dry run's answer (`POST /v1/dry-run`).
#[derive(Clone, Debug, Default, Deserialize)]
struct DryRunView {
    #[serde(default)]
    columns: Vec<OutputColumn>,
    #[serde(default)]
    sample: Value,
    #[serde(default)]
    report: Value,
    #[serde(default)]
    released_domains: Vec<ReleasedDomainView>,
}

/// One output column of a dry run.
#[derive(Clone, Debug, Deserialize)]
struct OutputColumn {
    name: String,
    #[serde(rename = "type", default)]
    dtype: String,
}

/// Only a dataset's title.
#[derive(Debug, Deserialize)]
struct TitleOnly {
    title: String,
}

// ---------------------------------------------------------------------------------------
// Shared helpers.

/// The 404 of an id that is malformed or not the viewer's, as the API words it.
fn not_found(lang: Lang) -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        t(lang, "developer.error.not_found"),
        lang,
    )
}

/// A 422 for a form field the page could not turn into the API's type.
fn unprocessable(lang: Lang, detail: &str) -> PageError {
    PageError::new(StatusCode::UNPROCESSABLE_ENTITY, detail, lang)
}

/// A form field parsed as a number (a 422 naming the field otherwise).
fn parse_field<T: std::str::FromStr>(raw: &str, lang: Lang, key: &str) -> Result<T, PageError> {
    raw.trim()
        .parse::<T>()
        .map_err(|_| unprocessable(lang, t(lang, key)))
}

/// A finite, non-negative decimal (ε, δ); an empty field is 0.
fn parse_budget(raw: &str, lang: Lang, key: &str) -> Result<f64, PageError> {
    if raw.trim().is_empty() {
        return Ok(0.0);
    }
    let value: f64 = parse_field(raw, lang, key)?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(unprocessable(lang, t(lang, key)))
    }
}

/// The developer's models. Every page of this area reads them first: the route admits
/// developers and supervisors only, so every other role gets the API's 403 here.
async fn my_models(portal: &Portal, viewer: &Viewer) -> Result<Vec<ModelRow>, PageError> {
    portal.get(viewer, "/v1/models").await
}

/// The titles of some datasets, by id (ids the viewer cannot see are left out).
async fn dataset_titles(
    portal: &Portal,
    viewer: &Viewer,
    ids: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut titles = BTreeMap::new();
    for id in ids.iter().take(MAX_TITLE_LOOKUPS) {
        let Ok(id) = DatasetId::parse(id) else {
            continue;
        };
        let path = format!("/v1/datasets/{id}");
        if let Ok(found) = portal.get::<TitleOnly>(viewer, &path).await {
            titles.insert(id.into_string(), found.title);
        }
    }
    titles
}

/// A link to a dataset's developer page, named by its title when known.
fn dataset_link(id: &str, titles: &BTreeMap<String, String>) -> Markup {
    let name = titles.get(id).map_or(id, String::as_str);
    html! { a href={ "/developer/datasets/" (id) } { (name) } }
}

/// An API refusal: its status and its detail.
fn refusal(lang: Lang, error: &PageError) -> Markup {
    let status = error.status.as_u16().to_string();
    html! {
        div.error role="alert" {
            p { strong { (tf(lang, "developer.error.refused", &[("status", status.as_str())])) } }
            p { (error.detail) }
        }
    }
}

/// A JSON pointer to a top-level member named `name`.
fn pointer(name: &str) -> String {
    format!("/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// A table of JSON rows with one column per name, in the given order.
fn rows_table(rows: &[Value], names: &[String]) -> Markup {
    let pointers: Vec<String> = names.iter().map(|n| pointer(n.as_str())).collect();
    let columns: Vec<(&str, &str)> = names
        .iter()
        .zip(&pointers)
        .map(|(name, pointer)| (name.as_str(), pointer.as_str()))
        .collect();
    json_table(rows, &columns)
}

/// A JSON value as short text (strings without their quotes).
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// ε as people read it: up to six decimals, no trailing zeros.
fn epsilon_text(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A grant status for people.
fn grant_status_label(lang: Lang, status: &str) -> String {
    match status {
        "pending" => t(lang, "developer.grant.status.pending").to_owned(),
        "approved" => t(lang, "developer.grant.status.approved").to_owned(),
        "refused" => t(lang, "developer.grant.status.refused").to_owned(),
        "revoked" => t(lang, "developer.grant.status.revoked").to_owned(),
        "suspended" => t(lang, "developer.grant.status.suspended").to_owned(),
        other => other.to_owned(),
    }
}

/// A job status for people.
fn job_status_label(lang: Lang, status: &str) -> String {
    match status {
        "queued" => t(lang, "developer.run.status.queued").to_owned(),
        "running" => t(lang, "developer.run.status.running").to_owned(),
        "succeeded" => t(lang, "developer.run.status.succeeded").to_owned(),
        "failed" => t(lang, "developer.run.status.failed").to_owned(),
        other => other.to_owned(),
    }
}

/// An output status for people.
fn output_status_label(lang: Lang, status: &str) -> String {
    match status {
        "quarantined" => t(lang, "developer.output.status.quarantined").to_owned(),
        "released" => t(lang, "developer.output.status.released").to_owned(),
        "rejected" => t(lang, "developer.output.status.rejected").to_owned(),
        other => other.to_owned(),
    }
}

/// A product status for people.
fn product_status_label(lang: Lang, status: &str) -> String {
    match status {
        "pending_review" => t(lang, "developer.product.status.pending_review").to_owned(),
        "listed" => t(lang, "developer.product.status.listed").to_owned(),
        "rejected" => t(lang, "developer.product.status.rejected").to_owned(),
        "delisted" => t(lang, "developer.product.status.delisted").to_owned(),
        other => other.to_owned(),
    }
}

/// An open attribute for people.
fn open_attribute_label(lang: Lang, attribute: &str) -> String {
    match attribute {
        "unconditional" => t(lang, "developer.dataset.open.unconditional").to_owned(),
        "conditional" => t(lang, "developer.dataset.open.conditional").to_owned(),
        "not_open" => t(lang, "developer.dataset.open.not_open").to_owned(),
        other => other.to_owned(),
    }
}

/// A column role for people.
fn role_label(lang: Lang, role: &str) -> String {
    match role {
        "direct_identifier" => t(lang, "developer.dataset.role.direct_identifier").to_owned(),
        "quasi_identifier" => t(lang, "developer.dataset.role.quasi_identifier").to_owned(),
        "sensitive" => t(lang, "developer.dataset.role.sensitive").to_owned(),
        "other" => t(lang, "developer.dataset.role.other").to_owned(),
        other => other.to_owned(),
    }
}

/// A purpose kind for people.
fn purpose_label(lang: Lang, kind: &str) -> String {
    match kind {
        "research" => t(lang, "developer.grant.purpose.research").to_owned(),
        "public_interest" => t(lang, "developer.grant.purpose.public_interest").to_owned(),
        "commercial" => t(lang, "developer.grant.purpose.commercial").to_owned(),
        other => other.to_owned(),
    }
}

/// A model kind for people.
fn model_kind_label(lang: Lang, kind: &str) -> String {
    match kind {
        "sql" => t(lang, "developer.model.kind.sql").to_owned(),
        "dp" => t(lang, "developer.model.kind.dp").to_owned(),
        "regression" => t(lang, "developer.model.kind.regression").to_owned(),
        other => other.to_owned(),
    }
}

/// A disclosure rule of a check report for people, and the CSS class of its flag.
fn rule_flag(lang: Lang, rule: &str) -> (String, &'static str) {
    match rule {
        "threshold" => (
            t(lang, "developer.report.rule.threshold").to_owned(),
            "flag-threshold",
        ),
        "dominance" => (
            t(lang, "developer.report.rule.dominance").to_owned(),
            "flag-dominance",
        ),
        "rounded" => (
            t(lang, "developer.report.rule.rounded").to_owned(),
            "flag-rounded",
        ),
        "differencing" => (
            t(lang, "developer.report.rule.differencing").to_owned(),
            "flag-differencing",
        ),
        "secondary" => (
            t(lang, "developer.report.rule.secondary").to_owned(),
            "flag-secondary",
        ),
        other => (other.to_owned(), "badge"),
    }
}

/// The members of a check report rendered by name; anything else is listed as given.
const REPORT_SECTIONS: [&str; 5] = ["rules", "passed", "checks", "cell_checks", "hits"];

/// A check report exactly as the API gave it to this viewer: the rules, the checks
/// passed and, for a released output, the hits on released cells, each flagged by rule
/// (colour and a text badge). Nothing is added: before release the API's owner view has
/// no cell-level detail, so neither has this.
fn report_view(lang: Lang, report: &Value) -> Markup {
    let Some(members) = report.as_object() else {
        return html! {
            @if report.is_null() {
                p.muted { (t(lang, "developer.report.empty")) }
            } @else {
                pre { code { (report.to_string()) } }
            }
        };
    };
    let rest: Vec<(&String, &Value)> = members
        .iter()
        .filter(|(name, _)| !REPORT_SECTIONS.contains(&name.as_str()))
        .collect();
    html! {
        @if members.is_empty() {
            p.muted { (t(lang, "developer.report.empty")) }
        }
        @if let Some(rules) = members.get("rules").and_then(Value::as_object) {
            h4 { (t(lang, "developer.report.rules")) }
            table.table {
                thead { tr {
                    th scope="col" { (t(lang, "developer.report.rule")) }
                    th scope="col" { (t(lang, "developer.report.value")) }
                } }
                tbody {
                    @for (name, value) in rules {
                        tr { th scope="row" { code { (name) } } td { (scalar(value)) } }
                    }
                }
            }
        }
        @for section in ["passed", "checks"] {
            @if let Some(list) = members.get(section).and_then(Value::as_array) {
                h4 { (t(lang, "developer.report.passed")) }
                @if list.is_empty() {
                    p.muted { (t(lang, "developer.report.none")) }
                } @else {
                    ul {
                        @for check in list {
                            li { span.badge { (t(lang, "developer.report.passed_badge")) } " " code { (scalar(check)) } }
                        }
                    }
                }
            }
        }
        @if let Some(note) = members.get("cell_checks").and_then(Value::as_str) {
            h4 { (t(lang, "developer.report.cell_checks")) }
            p.notice { (note) }
        }
        @if let Some(hits) = members.get("hits").and_then(Value::as_array) {
            h4 { (t(lang, "developer.report.hits")) }
            @if hits.is_empty() {
                p.muted { (t(lang, "developer.report.no_hits")) }
            } @else {
                table.table {
                    thead { tr {
                        th scope="col" { (t(lang, "developer.report.hit.row")) }
                        th scope="col" { (t(lang, "developer.report.hit.column")) }
                        th scope="col" { (t(lang, "developer.report.hit.rule")) }
                        th scope="col" { (t(lang, "developer.report.hit.detail")) }
                    } }
                    tbody {
                        @for hit in hits {
                            @let rule = hit.get("rule").map(scalar).unwrap_or_default();
                            @let flag = rule_flag(lang, &rule);
                            tr {
                                td { (hit.get("released_row").map(scalar).unwrap_or_default()) }
                                td { code { (hit.get("column").map(scalar).unwrap_or_default()) } }
                                td class=(flag.1) { span.badge { (flag.0) } }
                                td { (hit.get("detail").map(scalar).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        @if !rest.is_empty() {
            h4 { (t(lang, "developer.report.other")) }
            dl {
                @for (name, value) in &rest {
                    dt { code { (name) } }
                    dd { code { (scalar(value)) } }
                }
            }
        }
    }
}

/// What a released column holds: its generalisation level, the API's words for its
/// values, and the values themselves when they are a known set (bands, labels).
fn domain_cell(lang: Lang, domain: &ReleasedDomainView) -> Markup {
    let values = domain.values.as_deref().unwrap_or_default();
    let shown = values
        .iter()
        .take(MAX_DOMAIN_VALUES)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let more = values.len().saturating_sub(MAX_DOMAIN_VALUES).to_string();
    html! {
        @if let Some(level) = domain.level {
            @let level = level.to_string();
            span.badge { (tf(lang, "developer.domain.level", &[("level", level.as_str())])) }
            " "
        }
        (domain.description)
        @if !values.is_empty() {
            br;
            span.muted {
                (shown)
                @if values.len() > MAX_DOMAIN_VALUES {
                    " " (tf(lang, "developer.domain.more", &[("count", more.as_str())]))
                }
            }
        }
    }
}

/// A table of released domains (the dry run's view of the columns).
fn domains_table(lang: Lang, domains: &[ReleasedDomainView]) -> Markup {
    html! {
        table.table {
            thead { tr {
                th scope="col" { (t(lang, "developer.dataset.column")) }
                th scope="col" { (t(lang, "developer.dataset.rule")) }
                th scope="col" { (t(lang, "developer.dataset.released_domain")) }
            } }
            tbody {
                @for domain in domains {
                    tr {
                        th scope="row" { code { (domain.column) } }
                        td { code { (domain.rule) } }
                        td { (domain_cell(lang, domain)) }
                    }
                }
            }
        }
    }
}

/// The grants table of the home and dataset pages: status, budgets spent and left.
fn grants_table(lang: Lang, grants: &[GrantRow], titles: &BTreeMap<String, String>) -> Markup {
    html! {
        table.table {
            thead { tr {
                th scope="col" { (t(lang, "developer.grant.id")) }
                th scope="col" { (t(lang, "developer.grant.dataset")) }
                th scope="col" { (t(lang, "developer.grant.purpose")) }
                th scope="col" { (t(lang, "developer.grant.status")) }
                th scope="col" { (t(lang, "developer.grant.queries")) }
                th scope="col" { (t(lang, "developer.grant.epsilon")) }
                th scope="col" { (t(lang, "developer.grant.term")) }
                th scope="col" { (t(lang, "developer.grant.actions")) }
            } }
            tbody {
                @for grant in grants {
                    @let queries_left = grant.query_budget.saturating_sub(grant.queries_used).to_string();
                    @let queries_used = grant.queries_used.to_string();
                    @let query_budget = grant.query_budget.to_string();
                    @let dp = grant.epsilon > 0.0 || grant.model_kinds.iter().any(|k| k == "dp");
                    @let eps_left = epsilon_text((grant.epsilon - grant.epsilon_spent).max(0.0));
                    @let eps_spent = epsilon_text(grant.epsilon_spent);
                    @let eps_budget = epsilon_text(grant.epsilon);
                    tr {
                        td { code { (grant.id) } }
                        td { (dataset_link(&grant.dataset_id, titles)) }
                        td {
                            (grant.purpose)
                            @if !grant.purpose_kind.is_empty() {
                                " " span.badge { (purpose_label(lang, &grant.purpose_kind)) }
                            }
                        }
                        td {
                            span.badge { (grant_status_label(lang, &grant.status)) }
                            @if grant.overdue {
                                " " span.badge { (t(lang, "developer.grant.overdue")) }
                            }
                            @if let Some(reason) = &grant.reason {
                                br; span.muted { (reason) }
                            }
                        }
                        td { (tf(lang, "developer.grant.budget_used", &[
                            ("used", queries_used.as_str()),
                            ("budget", query_budget.as_str()),
                            ("left", queries_left.as_str()),
                        ])) }
                        td {
                            @if dp {
                                (tf(lang, "developer.grant.budget_used", &[
                                    ("used", eps_spent.as_str()),
                                    ("budget", eps_budget.as_str()),
                                    ("left", eps_left.as_str()),
                                ]))
                            } @else {
                                span.muted { (t(lang, "developer.grant.no_dp")) }
                            }
                        }
                        td {
                            @if let Some(expires) = grant.expires_ms {
                                (tf(lang, "developer.grant.expires", &[("date", china_time(expires).as_str())]))
                            } @else if grant.status == "pending" {
                                (tf(lang, "developer.grant.answer_by", &[("date", grant.answer_deadline.as_str())]))
                            }
                        }
                        td {
                            @if grant.status == "approved" {
                                a href=(with_query("/developer/sql", &[("grant", grant.id.as_str())])) {
                                    (t(lang, "developer.grant.write_sql"))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The runs table of the home and runs pages.
fn runs_table(lang: Lang, runs: &[&JobRow], models: &[ModelRow], outputs: &[OutputRow]) -> Markup {
    html! {
        table.table {
            thead { tr {
                th scope="col" { (t(lang, "developer.run.id")) }
                th scope="col" { (t(lang, "developer.run.model")) }
                th scope="col" { (t(lang, "developer.run.status")) }
                th scope="col" { (t(lang, "developer.run.progress")) }
                th scope="col" { (t(lang, "developer.run.started")) }
                th scope="col" { (t(lang, "developer.run.output")) }
            } }
            tbody {
                @for job in runs {
                    @let model = models.iter().find(|m| m.id == job.subject);
                    @let output = outputs.iter().find(|o| o.job_id == job.id);
                    @let percent = format!("{:.0}%", job.progress * 100.0);
                    tr {
                        td { a href={ "/developer/runs/" (job.id) } { code { (job.id) } } }
                        td { (model.map_or(job.subject.as_str(), |m| m.name.as_str())) }
                        td { span.badge { (job_status_label(lang, &job.status)) } }
                        td { (percent) }
                        td { (china_time(job.created_ms)) }
                        td {
                            @if let Some(output) = output {
                                a href={ "/developer/outputs/" (output.id) } {
                                    (output_status_label(lang, &output.status))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The outputs table of the home page.
fn outputs_table(lang: Lang, outputs: &[OutputRow], models: &[ModelRow]) -> Markup {
    html! {
        table.table {
            thead { tr {
                th scope="col" { (t(lang, "developer.output.id")) }
                th scope="col" { (t(lang, "developer.run.model")) }
                th scope="col" { (t(lang, "developer.output.status")) }
                th scope="col" { (t(lang, "developer.output.approvals")) }
                th scope="col" { (t(lang, "developer.output.created")) }
            } }
            tbody {
                @for output in outputs {
                    @let model = models.iter().find(|m| m.id == output.model_id);
                    @let approvals = approval_count(output).to_string();
                    @let required = output.required_reviews.to_string();
                    tr {
                        td { a href={ "/developer/outputs/" (output.id) } { code { (output.id) } } }
                        td { (model.map_or(output.model_id.as_str(), |m| m.name.as_str())) }
                        td { span.badge { (output_status_label(lang, &output.status)) } }
                        td { (tf(lang, "developer.output.approvals_of", &[("count", approvals.as_str()), ("required", required.as_str())])) }
                        td { (china_time(output.created_ms)) }
                    }
                }
            }
        }
    }
}

/// How many reviewers approved an output so far.
fn approval_count(output: &OutputRow) -> usize {
    output
        .reviews
        .iter()
        .filter(|r| r.decision == "approve")
        .count()
}

// ---------------------------------------------------------------------------------------
// Home.

/// `/developer?product=…` after a product was created.
#[derive(Debug, Default, Deserialize)]
struct HomeQuery {
    product: Option<String>,
}

/// `GET /developer`: the organisation's grants with their budgets, models, recent runs
/// and outputs, products, and where to go next.
async fn home(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<HomeQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let models = my_models(&portal, &viewer).await?;
    let grants: Vec<GrantRow> = portal.get(&viewer, "/v1/grants").await?;
    let jobs: Vec<JobRow> = portal.get(&viewer, "/v1/jobs").await?;
    let outputs: Vec<OutputRow> = portal.get(&viewer, "/v1/outputs").await?;
    let products: Vec<ProductRow> = portal.get(&viewer, "/v1/products?mine=true").await?;
    let ids: BTreeSet<String> = grants.iter().map(|g| g.dataset_id.clone()).collect();
    let titles = dataset_titles(&portal, &viewer, &ids).await;
    let runs: Vec<&JobRow> = jobs
        .iter()
        .filter(|j| j.kind == RUN_KIND)
        .take(RECENT)
        .collect();
    let created = query
        .product
        .as_deref()
        .and_then(|id| ProductId::parse(id).ok());
    let body = html! {
        h1 { (t(lang, "developer.home.title")) }
        @if let Some(product) = &created {
            p.notice role="status" { (tf(lang, "developer.home.product_created", &[("id", product.as_str())])) }
        }
        nav aria-label=(t(lang, "developer.home.next")) {
            ul {
                li { a href="/catalog" { (t(lang, "developer.home.find_data")) } }
                li { a href="/developer/sql" { (t(lang, "developer.home.write_sql")) } }
                li { a href="/developer/runs" { (t(lang, "developer.home.all_runs")) } }
                li { a href="/developer/products/new" { (t(lang, "developer.home.new_product")) } }
            }
        }
        section id="grants" {
            h2 { (t(lang, "developer.home.grants")) }
            @if grants.is_empty() {
                p.muted { (t(lang, "developer.home.no_grants")) }
            } @else {
                (grants_table(lang, &grants, &titles))
            }
        }
        section id="runs" {
            h2 { (t(lang, "developer.home.runs")) }
            @if runs.is_empty() {
                p.muted { (t(lang, "developer.home.no_runs")) }
            } @else {
                (runs_table(lang, &runs, &models, &outputs))
            }
        }
        section id="outputs" {
            h2 { (t(lang, "developer.home.outputs")) }
            @if outputs.is_empty() {
                p.muted { (t(lang, "developer.home.no_outputs")) }
            } @else {
                (outputs_table(lang, &outputs[..outputs.len().min(RECENT)], &models))
            }
        }
        section id="models" {
            h2 { (t(lang, "developer.home.models")) }
            @if models.is_empty() {
                p.muted { (t(lang, "developer.home.no_models")) }
            } @else {
                (models_list(lang, &models[..models.len().min(RECENT)]))
            }
        }
        section id="products" {
            h2 { (t(lang, "developer.home.products")) }
            @if products.is_empty() {
                p.muted { (t(lang, "developer.home.no_products")) }
            } @else {
                table.table {
                    thead { tr {
                        th scope="col" { (t(lang, "developer.product.title")) }
                        th scope="col" { (t(lang, "developer.product.status")) }
                        th scope="col" { (t(lang, "developer.product.price")) }
                        th scope="col" { (t(lang, "developer.product.registration_no")) }
                        th scope="col" { (t(lang, "developer.product.created")) }
                    } }
                    tbody {
                        @for product in &products {
                            tr {
                                td { (product.title) br; code.muted { (product.id) } }
                                td {
                                    span.badge { (product_status_label(lang, &product.status)) }
                                    @if let Some(reason) = &product.status_reason { br; span.muted { (reason) } }
                                }
                                td { (yuan(product.price_minor)) }
                                td { (product.registration_no.as_deref().unwrap_or("")) }
                                td { (china_time_rfc3339(&product.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, t(lang, "developer.home.title"), body))
}

/// The developer's models, each with a link that loads it into the editor.
fn models_list(lang: Lang, models: &[ModelRow]) -> Markup {
    html! {
        table.table {
            thead { tr {
                th scope="col" { (t(lang, "developer.model.name")) }
                th scope="col" { (t(lang, "developer.model.kind")) }
                th scope="col" { (t(lang, "developer.model.hash")) }
                th scope="col" { (t(lang, "developer.model.created")) }
                th scope="col" { (t(lang, "developer.grant.actions")) }
            } }
            tbody {
                @for model in models {
                    tr {
                        td { (model.name) }
                        td { (model_kind_label(lang, &model.kind)) }
                        td { code { (model.model_hash.get(..16).unwrap_or(model.model_hash.as_str())) } }
                        td { (china_time(model.created_ms)) }
                        td {
                            a href=(with_query("/developer/sql", &[("model", model.id.as_str())])) {
                                (t(lang, "developer.model.open_in_editor"))
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dataset page and grant application.

/// What a grant application form holds (kept when the API refuses it).
#[derive(Clone, Debug)]
struct GrantDraft {
    /// Not submitted yet: every released column starts ticked.
    fresh: bool,
    purpose: String,
    purpose_kind: String,
    columns: Vec<String>,
    model_kinds: Vec<String>,
    term_days: String,
    epsilon: String,
    delta: String,
    query_budget: String,
    research_only: bool,
}

impl GrantDraft {
    /// The form as first shown.
    fn fresh() -> GrantDraft {
        GrantDraft {
            fresh: true,
            purpose: String::new(),
            purpose_kind: String::new(),
            columns: Vec::new(),
            model_kinds: vec!["sql".to_owned()],
            term_days: "365".to_owned(),
            epsilon: "0".to_owned(),
            delta: "0".to_owned(),
            query_budget: "100".to_owned(),
            research_only: false,
        }
    }

    /// The submitted form (repeated `columns` and `model_kinds`) and its CSRF field.
    fn from_pairs(pairs: &[(String, String)]) -> (String, GrantDraft) {
        let mut csrf = String::new();
        let mut draft = GrantDraft {
            fresh: false,
            model_kinds: Vec::new(),
            ..GrantDraft::fresh()
        };
        for (name, value) in pairs {
            match name.as_str() {
                "csrf" => csrf.clone_from(value),
                "purpose" => draft.purpose.clone_from(value),
                "purpose_kind" => draft.purpose_kind.clone_from(value),
                "columns" => draft.columns.push(value.clone()),
                "model_kinds" => draft.model_kinds.push(value.clone()),
                "term_days" => draft.term_days.clone_from(value),
                "epsilon" => draft.epsilon.clone_from(value),
                "delta" => draft.delta.clone_from(value),
                "query_budget" => draft.query_budget.clone_from(value),
                "research_only" => draft.research_only = true,
                _ => {}
            }
        }
        (csrf, draft)
    }

    /// The API's `GrantApplication`; the API judges everything but the number formats.
    fn request(&self, dataset: &DatasetId, lang: Lang) -> Result<Value, PageError> {
        let term_days: u32 = parse_field(&self.term_days, lang, "developer.grant.bad_term")?;
        let query_budget: u64 =
            parse_field(&self.query_budget, lang, "developer.grant.bad_queries")?;
        let epsilon = parse_budget(&self.epsilon, lang, "developer.grant.bad_epsilon")?;
        let delta = parse_budget(&self.delta, lang, "developer.grant.bad_delta")?;
        let purpose_kind = if self.purpose_kind.is_empty() {
            Value::Null
        } else {
            Value::String(self.purpose_kind.clone())
        };
        Ok(json!({
            "dataset_id": dataset.as_str(),
            "purpose": self.purpose,
            "purpose_kind": purpose_kind,
            "columns": self.columns,
            "model_kinds": self.model_kinds,
            "term_days": term_days,
            "epsilon": epsilon,
            "delta": delta,
            "query_budget": query_budget,
            "research_only": self.research_only,
        }))
    }
}

/// `GET /developer/datasets/{id}`: metadata, schema with released domains, dummy data,
/// the developer's grants on it and the application form.
async fn dataset_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = DatasetId::parse(&id).map_err(|_| not_found(lang))?;
    dataset_view(&portal, &viewer, &id, &GrantDraft::fresh(), None).await
}

/// `POST /developer/datasets/{id}`: files a grant application (`POST /v1/grants`).
async fn apply_for_grant(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let (csrf, draft) = GrantDraft::from_pairs(&pairs);
    check_csrf(&viewer, &csrf)?;
    let id = DatasetId::parse(&id).map_err(|_| not_found(lang))?;
    let filed = match draft.request(&id, lang) {
        Ok(body) => {
            portal
                .send::<GrantRow>(&viewer, Method::POST, "/v1/grants", &body)
                .await
        }
        Err(e) => Err(e),
    };
    match filed {
        Ok(_) => Ok(Redirect::to(&format!("/developer/datasets/{id}#grants")).into_response()),
        Err(refused) => {
            let page = dataset_view(&portal, &viewer, &id, &draft, Some(&refused)).await?;
            Ok((refused.status, page).into_response())
        }
    }
}

/// The dataset page, with the form as `draft` and an API refusal of it, if any.
async fn dataset_view(
    portal: &Portal,
    viewer: &Viewer,
    id: &DatasetId,
    draft: &GrantDraft,
    refused: Option<&PageError>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    my_models(portal, viewer).await?;
    let dataset: DatasetView = portal.get(viewer, &format!("/v1/datasets/{id}")).await?;
    let version: Option<VersionView> = match dataset.latest_version {
        Some(v) => portal
            .get(viewer, &format!("/v1/datasets/{id}/versions/{v}"))
            .await
            .ok(),
        None => None,
    };
    let dummy_path = with_query(
        &format!("/v1/datasets/{id}/dummy"),
        &[("rows", DUMMY_PREVIEW_ROWS), ("format", "json")],
    );
    let dummy = portal.get::<Vec<Value>>(viewer, &dummy_path).await;
    let grants: Vec<GrantRow> = portal
        .get::<Vec<GrantRow>>(viewer, "/v1/grants")
        .await?
        .into_iter()
        .filter(|g| g.dataset_id == id.as_str())
        .collect();
    let titles = BTreeMap::from([(dataset.id.clone(), dataset.title.clone())]);
    let domains: BTreeMap<&str, &ReleasedDomainView> = version
        .iter()
        .flat_map(|v| v.released_domains.iter())
        .map(|d| (d.column.as_str(), d))
        .collect();
    let released: Vec<String> = dataset
        .schema
        .columns
        .iter()
        .filter(|c| c.rule_kind() != "drop")
        .map(|c| c.name.clone())
        .collect();
    let version_no = version.as_ref().map(|v| v.version.to_string());
    let version_rows = version.as_ref().map(|v| v.rows.to_string());
    let body = html! {
        h1 { (dataset.title) }
        @if !dataset.description.is_empty() { p { (dataset.description) } }
        dl.grid {
            dt { (t(lang, "developer.dataset.open_attribute")) }
            dd { span.badge { (open_attribute_label(lang, &dataset.effective_open_attribute)) } }
            dt { (t(lang, "developer.dataset.level")) }
            dd { (dataset.level) }
            dt { (t(lang, "developer.dataset.theme")) }
            dd { (dataset.theme) }
            dt { (t(lang, "developer.dataset.source")) }
            dd { (dataset.source_department) }
            dt { (t(lang, "developer.dataset.frequency")) }
            dd { (dataset.update_frequency) }
            @if !dataset.share_conditions.is_empty() {
                dt { (t(lang, "developer.dataset.conditions")) }
                dd { (dataset.share_conditions) }
            }
            @if dataset.research_only {
                dt { (t(lang, "developer.dataset.research_only")) }
                dd { span.badge { (t(lang, "developer.dataset.research_only_yes")) } }
            }
            dt { (t(lang, "developer.dataset.version")) }
            dd {
                @if let (Some(v), Some(rows), Some(found)) = (&version_no, &version_rows, &version) {
                    (tf(lang, "developer.dataset.version_of", &[("version", v.as_str()), ("rows", rows.as_str())]))
                    " " a href={ "/catalog/" (dataset.id) "/versions/" (v) } { (found.certificate_no) }
                } @else {
                    span.muted { (t(lang, "developer.dataset.no_version")) }
                }
            }
        }
        p {
            a href=(with_query("/developer/sql", &[("dataset", dataset.id.as_str())])) {
                (t(lang, "developer.dataset.try_sql"))
            }
        }
        section id="schema" {
            h2 { (t(lang, "developer.dataset.schema")) }
            p.muted { (t(lang, "developer.dataset.schema_help")) }
            table.table {
                thead { tr {
                    th scope="col" { (t(lang, "developer.dataset.column")) }
                    th scope="col" { (t(lang, "developer.dataset.type")) }
                    th scope="col" { (t(lang, "developer.dataset.role")) }
                    th scope="col" { (t(lang, "developer.dataset.rule")) }
                    th scope="col" { (t(lang, "developer.dataset.released_domain")) }
                } }
                tbody {
                    @for column in &dataset.schema.columns {
                        tr {
                            th scope="row" { code { (column.name) } }
                            td { code { (column.column_type) } }
                            td { (role_label(lang, &column.role)) }
                            td { code { (column.rule_kind()) } }
                            td {
                                @if column.rule_kind() == "drop" {
                                    span.muted { (t(lang, "developer.dataset.dropped")) }
                                } @else if let Some(domain) = domains.get(column.name.as_str()) {
                                    (domain_cell(lang, domain))
                                } @else {
                                    span.muted { (t(lang, "developer.dataset.domain_unknown")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section id="dummy" {
            h2 { (t(lang, "developer.dataset.dummy")) }
            p.muted { (t(lang, "developer.dataset.dummy_help")) }
            @match &dummy {
                Ok(rows) => {
                    @if rows.is_empty() {
                        p.muted { (t(lang, "developer.dataset.no_rows")) }
                    } @else {
                        (rows_table(rows, &released))
                    }
                },
                Err(e) => { (refusal(lang, e)) },
            }
        }
        section id="grants" {
            h2 { (t(lang, "developer.dataset.my_grants")) }
            @if grants.is_empty() {
                p.muted { (t(lang, "developer.home.no_grants")) }
            } @else {
                (grants_table(lang, &grants, &titles))
            }
        }
        section id="apply" {
            h2 { (t(lang, "developer.grant.apply")) }
            @if let Some(e) = refused { (refusal(lang, e)) }
            (grant_form(viewer, &dataset.id, &released, draft))
        }
    };
    Ok(page(viewer, &dataset.title, body))
}

/// The grant application form.
fn grant_form(viewer: &Viewer, dataset: &str, released: &[String], draft: &GrantDraft) -> Markup {
    let lang = viewer.lang;
    html! {
        form.form method="post" action={ "/developer/datasets/" (dataset) } {
            (csrf_field(viewer))
            label for="purpose" { (t(lang, "developer.grant.purpose")) }
            textarea id="purpose" name="purpose" rows="3" maxlength="4000" required { (draft.purpose) }
            label for="purpose_kind" { (t(lang, "developer.grant.purpose_kind")) }
            select id="purpose_kind" name="purpose_kind" {
                option value="" selected[draft.purpose_kind.is_empty()] { (t(lang, "developer.grant.purpose.default")) }
                @for kind in ["research", "public_interest", "commercial"] {
                    option value=(kind) selected[draft.purpose_kind == kind] { (purpose_label(lang, kind)) }
                }
            }
            fieldset {
                legend { (t(lang, "developer.grant.columns")) }
                @for (i, column) in released.iter().enumerate() {
                    @let field = format!("grant-column-{i}");
                    div {
                        input type="checkbox" id=(field) name="columns" value=(column)
                            checked[draft.fresh || draft.columns.contains(column)];
                        " "
                        label for=(field) { code { (column) } }
                    }
                }
            }
            fieldset {
                legend { (t(lang, "developer.grant.model_kinds")) }
                @for kind in ["sql", "dp", "regression"] {
                    @let field = format!("grant-kind-{kind}");
                    div {
                        input type="checkbox" id=(field) name="model_kinds" value=(kind)
                            checked[draft.model_kinds.iter().any(|k| k == kind)];
                        " "
                        label for=(field) { (model_kind_label(lang, kind)) }
                    }
                }
            }
            label for="term_days" { (t(lang, "developer.grant.term_days")) }
            input type="number" id="term_days" name="term_days" min="1" max="1096" required value=(draft.term_days);
            label for="query_budget" { (t(lang, "developer.grant.query_budget")) }
            input type="number" id="query_budget" name="query_budget" min="1" required value=(draft.query_budget);
            label for="epsilon" { (t(lang, "developer.grant.epsilon_budget")) }
            input type="text" inputmode="decimal" id="epsilon" name="epsilon" value=(draft.epsilon);
            label for="delta" { (t(lang, "developer.grant.delta_budget")) }
            input type="text" inputmode="decimal" id="delta" name="delta" value=(draft.delta);
            div {
                input type="checkbox" id="research_only" name="research_only" value="true" checked[draft.research_only];
                " "
                label for="research_only" { (t(lang, "developer.grant.research_only")) }
            }
            p.muted { (t(lang, "developer.grant.agreement_note")) }
            button type="submit" { (t(lang, "developer.grant.submit")) }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The SQL editor, its dry run and run submission.

/// What the editor holds: the form fields (also the JSON body of the dry-run endpoint,
/// where `csrf` and `action` are not used).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct SqlDraft {
    csrf: String,
    /// `dry_run` or `run`: the button pressed.
    action: String,
    name: String,
    kind: String,
    body: String,
    epsilon: String,
    grant_id: String,
    dataset_id: String,
}

impl SqlDraft {
    /// ε for a DP model; none when the field is empty.
    fn epsilon(&self, lang: Lang) -> Result<Option<f64>, PageError> {
        if self.epsilon.trim().is_empty() {
            return Ok(None);
        }
        parse_budget(&self.epsilon, lang, "developer.sql.bad_epsilon").map(Some)
    }

    /// The grant chosen, if any (a malformed one is a 422: the selector offers ids only).
    fn grant(&self, lang: Lang) -> Result<Option<GrantId>, PageError> {
        let raw = self.grant_id.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        GrantId::parse(raw)
            .map(Some)
            .map_err(|_| unprocessable(lang, t(lang, "developer.sql.bad_grant")))
    }

    /// The dataset the model reads: the grant's, or the one the editor was opened on.
    async fn dataset(&self, portal: &Portal, viewer: &Viewer) -> Result<DatasetId, PageError> {
        let lang = viewer.lang;
        if let Some(grant) = self.grant(lang)? {
            let grant: GrantRow = portal.get(viewer, &format!("/v1/grants/{grant}")).await?;
            return DatasetId::parse(&grant.dataset_id).map_err(|_| not_found(lang));
        }
        let raw = self.dataset_id.trim();
        if raw.is_empty() {
            return Err(unprocessable(lang, t(lang, "developer.sql.no_dataset")));
        }
        DatasetId::parse(raw).map_err(|_| not_found(lang))
    }
}

/// `/developer/sql?grant=…&dataset=…&model=…`: what to open the editor on.
#[derive(Debug, Default, Deserialize)]
struct EditorQuery {
    grant: Option<String>,
    dataset: Option<String>,
    model: Option<String>,
}

/// `GET /developer/sql`: the editor.
async fn sql_editor(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<EditorQuery>,
) -> Result<Markup, PageError> {
    let models = my_models(&portal, &viewer).await?;
    let mut draft = SqlDraft {
        kind: "sql".to_owned(),
        ..SqlDraft::default()
    };
    if let Some(grant) = query.grant {
        draft.grant_id = grant;
    }
    if let Some(dataset) = query.dataset {
        draft.dataset_id = dataset;
    }
    if let Some(model) = query
        .model
        .as_deref()
        .and_then(|id| models.iter().find(|m| m.id == id))
    {
        draft.name.clone_from(&model.name);
        draft.kind.clone_from(&model.kind);
        draft.body.clone_from(&model.body);
    }
    editor_view(&portal, &viewer, &models, &draft, None).await
}

/// What the editor shows below the form.
enum EditorResult<'a> {
    /// A dry run's answer.
    Preview(&'a Value),
    /// An API refusal of the dry run or the run.
    Refused(&'a PageError),
}

/// `POST /developer/sql`: the form without JavaScript. `action=dry_run` shows the dry
/// run's result under the form; `action=run` registers the model, starts the run and
/// goes to its page.
async fn sql_submit(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(draft): Form<SqlDraft>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &draft.csrf)?;
    let models = my_models(&portal, &viewer).await?;
    if draft.action == "run" {
        return match start_run(&portal, &viewer, &draft).await {
            Ok(job) => Ok(Redirect::to(&format!("/developer/runs/{job}")).into_response()),
            Err(refused) => {
                let models = my_models(&portal, &viewer).await.unwrap_or(models);
                let page = editor_view(
                    &portal,
                    &viewer,
                    &models,
                    &draft,
                    Some(EditorResult::Refused(&refused)),
                )
                .await?;
                Ok((refused.status, page).into_response())
            }
        };
    }
    match dry_run(&portal, &viewer, &draft).await {
        Ok(result) => {
            let shown = Some(EditorResult::Preview(&result));
            Ok(editor_view(&portal, &viewer, &models, &draft, shown)
                .await?
                .into_response())
        }
        Err(refused) => {
            let shown = Some(EditorResult::Refused(&refused));
            let page = editor_view(&portal, &viewer, &models, &draft, shown).await?;
            Ok((refused.status, page).into_response())
        }
    }
}

/// `POST /developer/sql/dry-run` (JSON, CSRF token in [`CSRF_HEADER`]): the dry run for
/// `runs.js`. Answers `{status, result, html}` with the API's dry-run answer and the
/// fragment the page would show, or `{status, detail, html}` with the API's status.
async fn dry_run_json(
    State(portal): State<Portal>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = viewer.lang;
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(refused) = check_csrf(&viewer, token) {
        return json_refusal(&refused);
    }
    let Ok(draft) = serde_json::from_slice::<SqlDraft>(&body) else {
        let refused = PageError::new(
            StatusCode::BAD_REQUEST,
            t(lang, "developer.sql.bad_json"),
            lang,
        );
        return json_refusal(&refused);
    };
    match dry_run(&portal, &viewer, &draft).await {
        Ok(result) => {
            let html = dry_run_view(lang, &result).into_string();
            Json(json!({"status": 200, "result": result, "html": html})).into_response()
        }
        Err(refused) => json_refusal(&refused),
    }
}

/// A refusal as the JSON endpoints answer it: the API's status, its detail, and the
/// fragment the page would show.
fn json_refusal(refused: &PageError) -> Response {
    let html = refusal(refused.lang, refused).into_string();
    let body = json!({
        "status": refused.status.as_u16(),
        "detail": refused.detail,
        "html": html,
    });
    (refused.status, Json(body)).into_response()
}

/// Runs the model text on the dataset's dummy data (`POST /v1/dry-run`).
async fn dry_run(portal: &Portal, viewer: &Viewer, draft: &SqlDraft) -> Result<Value, PageError> {
    let lang = viewer.lang;
    let epsilon = draft.epsilon(lang)?;
    let dataset = draft.dataset(portal, viewer).await?;
    let mut request = json!({
        "kind": draft.kind,
        "body": draft.body,
        "dataset_id": dataset.as_str(),
    });
    if let Some(epsilon) = epsilon {
        request["epsilon"] = json!(epsilon);
    }
    portal
        .send(viewer, Method::POST, "/v1/dry-run", &request)
        .await
}

/// Registers the model (`POST /v1/models`) and starts it (`POST /v1/runs`); returns the
/// job id. The dataset is resolved first, so a wrong grant registers nothing.
async fn start_run(
    portal: &Portal,
    viewer: &Viewer,
    draft: &SqlDraft,
) -> Result<String, PageError> {
    let lang = viewer.lang;
    let epsilon = draft.epsilon(lang)?;
    let grant = draft.grant(lang)?;
    let dataset = draft.dataset(portal, viewer).await?;
    let name = if draft.name.trim().is_empty() {
        t(lang, "developer.sql.default_name").to_owned()
    } else {
        draft.name.trim().to_owned()
    };
    let model: ModelRow = portal
        .send(
            viewer,
            Method::POST,
            "/v1/models",
            &json!({"name": name, "kind": draft.kind, "body": draft.body}),
        )
        .await?;
    let mut input = json!({"dataset_id": dataset.as_str()});
    if let Some(grant) = &grant {
        input["grant_id"] = json!(grant.as_str());
    }
    let mut request = json!({"model_id": model.id, "inputs": [input]});
    if let Some(epsilon) = epsilon {
        request["epsilon"] = json!(epsilon);
    }
    let job: JobRow = portal
        .send(viewer, Method::POST, "/v1/runs", &request)
        .await?;
    JobId::parse(&job.id)
        .map(JobId::into_string)
        .map_err(|_| not_found(lang))
}

/// A dry run's answer: the output's columns, the sample on dummy data, the check report
/// the real run would produce on this shape, and what each input column holds.
fn dry_run_view(lang: Lang, result: &Value) -> Markup {
    let view: DryRunView = serde_json::from_value(result.clone()).unwrap_or_default();
    let names: Vec<String> = view.columns.iter().map(|c| c.name.clone()).collect();
    let sample = view
        .sample
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    html! {
        div.card {
            h2 { (t(lang, "developer.dry.title")) }
            p.muted { (t(lang, "developer.dry.note")) }
            h3 { (t(lang, "developer.dry.columns")) }
            table.table {
                thead { tr {
                    th scope="col" { (t(lang, "developer.dataset.column")) }
                    th scope="col" { (t(lang, "developer.dataset.type")) }
                } }
                tbody {
                    @for column in &view.columns {
                        tr { th scope="row" { code { (column.name) } } td { code { (column.dtype) } } }
                    }
                }
            }
            h3 { (t(lang, "developer.dry.sample")) }
            @if sample.is_empty() {
                p.muted { (t(lang, "developer.dataset.no_rows")) }
            } @else {
                (rows_table(sample, &names))
            }
            h3 { (t(lang, "developer.dry.report")) }
            (report_view(lang, &view.report))
            @if !view.released_domains.is_empty() {
                h3 { (t(lang, "developer.dry.domains")) }
                (domains_table(lang, &view.released_domains))
            }
        }
    }
}

/// The editor page.
async fn editor_view(
    portal: &Portal,
    viewer: &Viewer,
    models: &[ModelRow],
    draft: &SqlDraft,
    shown: Option<EditorResult<'_>>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let grants: Vec<GrantRow> = portal
        .get::<Vec<GrantRow>>(viewer, "/v1/grants")
        .await?
        .into_iter()
        .filter(|g| g.status == "approved")
        .collect();
    let mut ids: BTreeSet<String> = grants.iter().map(|g| g.dataset_id.clone()).collect();
    if !draft.dataset_id.is_empty() {
        ids.insert(draft.dataset_id.clone());
    }
    let titles = dataset_titles(portal, viewer, &ids).await;
    let opened_on = DatasetId::parse(draft.dataset_id.trim()).ok();
    let body = html! {
        h1 { (t(lang, "developer.sql.title")) }
        p.muted { (t(lang, "developer.sql.intro")) }
        form.form method="post" action="/developer/sql"
            data-dry-run-url="/developer/sql/dry-run"
            data-dry-run-target="dry-run-result"
            data-label-working=(t(lang, "developer.sql.working"))
            data-label-failed=(t(lang, "developer.sql.network_failed")) {
            (csrf_field(viewer))
            @if let Some(dataset) = &opened_on {
                input type="hidden" name="dataset_id" value=(dataset);
                p {
                    (t(lang, "developer.sql.dataset")) " "
                    (dataset_link(dataset.as_str(), &titles))
                }
            }
            label for="grant_id" { (t(lang, "developer.sql.grant")) }
            select id="grant_id" name="grant_id" {
                option value="" selected[draft.grant_id.is_empty()] { (t(lang, "developer.sql.no_grant")) }
                @for grant in &grants {
                    @let title = titles.get(&grant.dataset_id).map_or(grant.dataset_id.as_str(), String::as_str);
                    option value=(grant.id) selected[grant.id == draft.grant_id] {
                        (title) " · " (grant.id)
                    }
                }
            }
            @if grants.is_empty() {
                p.muted { (t(lang, "developer.sql.no_grants_help")) }
            }
            label for="kind" { (t(lang, "developer.model.kind")) }
            select id="kind" name="kind" {
                @for kind in ["sql", "dp", "regression"] {
                    option value=(kind) selected[draft.kind == kind] { (model_kind_label(lang, kind)) }
                }
            }
            label for="name" { (t(lang, "developer.model.name")) }
            input type="text" id="name" name="name" maxlength="200" value=(draft.name);
            label for="body" { (t(lang, "developer.sql.body")) }
            textarea id="body" name="body" rows="12" spellcheck="false" required
                placeholder="SELECT district, COUNT(*) AS n FROM data GROUP BY district" { (draft.body) }
            label for="sql-epsilon" { (t(lang, "developer.sql.epsilon")) }
            input type="text" inputmode="decimal" id="sql-epsilon" name="epsilon" value=(draft.epsilon);
            p.muted { (t(lang, "developer.sql.epsilon_help")) }
            div {
                button type="submit" name="action" value="dry_run" data-dry-run { (t(lang, "developer.sql.dry_run")) }
                " "
                button type="submit" name="action" value="run" { (t(lang, "developer.sql.run")) }
            }
            p.muted { (t(lang, "developer.sql.run_help")) }
        }
        section id="dry-run-result" aria-live="polite" {
            @match shown {
                Some(EditorResult::Preview(result)) => { (dry_run_view(lang, result)) },
                Some(EditorResult::Refused(refused)) => { (refusal(lang, refused)) },
                None => {},
            }
        }
        @if !models.is_empty() {
            section id="models" {
                h2 { (t(lang, "developer.home.models")) }
                (models_list(lang, &models[..models.len().min(RECENT)]))
            }
        }
    };
    Ok(page(viewer, t(lang, "developer.sql.title"), body))
}

// ---------------------------------------------------------------------------------------
// Runs.

/// A model run of the viewer's organisation (another organisation's is the API's 404;
/// a job that is not a model run is not found here either).
async fn run_job(portal: &Portal, viewer: &Viewer, id: &JobId) -> Result<JobRow, PageError> {
    let job: JobRow = portal.get(viewer, &format!("/v1/jobs/{id}")).await?;
    if job.kind != RUN_KIND {
        return Err(not_found(viewer.lang));
    }
    Ok(job)
}

/// `GET /developer/runs`: every model run of the organisation the API lists.
async fn runs_page(State(portal): State<Portal>, viewer: Viewer) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let models = my_models(&portal, &viewer).await?;
    let jobs: Vec<JobRow> = portal.get(&viewer, "/v1/jobs").await?;
    let outputs: Vec<OutputRow> = portal.get(&viewer, "/v1/outputs").await?;
    let runs: Vec<&JobRow> = jobs.iter().filter(|j| j.kind == RUN_KIND).collect();
    let body = html! {
        h1 { (t(lang, "developer.runs.title")) }
        p { a href="/developer/sql" { (t(lang, "developer.home.write_sql")) } }
        @if runs.is_empty() {
            p.muted { (t(lang, "developer.home.no_runs")) }
        } @else {
            (runs_table(lang, &runs, &models, &outputs))
        }
    };
    Ok(page(&viewer, t(lang, "developer.runs.title"), body))
}

/// `GET /developer/runs/{job}`: the run's status with live progress (`runs.js`), its
/// model text, and its output once done.
async fn run_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(job): Path<String>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let models = my_models(&portal, &viewer).await?;
    let id = JobId::parse(&job).map_err(|_| not_found(lang))?;
    let job = run_job(&portal, &viewer, &id).await?;
    let model = models.iter().find(|m| m.id == job.subject);
    let output = job.output_id();
    let done = job.done();
    let percent = format!("{:.0}%", job.progress * 100.0);
    let title = tf(lang, "developer.run.title", &[("id", id.as_str())]);
    let body = html! {
        h1 { (title) }
        section.card aria-live="polite"
            data-run-status-url={ "/developer/runs/" (id) "/status" }
            data-run-done=(if done { "true" } else { "false" }) {
            p {
                (t(lang, "developer.run.status")) ": "
                strong data-run-status-text { (job_status_label(lang, &job.status)) }
            }
            p {
                (t(lang, "developer.run.stage")) ": "
                span data-run-stage { (job.stage) }
            }
            label for="run-progress" { (t(lang, "developer.run.progress")) }
            " "
            progress.progress id="run-progress" max="1" value=(job.progress) { (percent) }
            p.muted {
                (t(lang, "developer.run.started")) ": " (china_time(job.created_ms))
                " · "
                (t(lang, "developer.run.updated")) ": " (china_time(job.updated_ms))
            }
            @if !done {
                p { a href={ "/developer/runs/" (id) } { (t(lang, "developer.run.reload")) } }
            }
            @if let Some(failure) = &job.error {
                @let status = failure.status.to_string();
                div.error role="alert" {
                    p { strong { (tf(lang, "developer.run.failed", &[("status", status.as_str())])) } }
                    p { (failure.detail) }
                }
            }
            @if let Some(output) = &output {
                p {
                    a href={ "/developer/outputs/" (output) } { (t(lang, "developer.run.output_link")) }
                }
            }
        }
        section id="model" {
            h2 { (t(lang, "developer.run.model")) }
            @if let Some(model) = model {
                p { (model.name) " " span.badge { (model_kind_label(lang, &model.kind)) } }
                pre { code { (model.body) } }
                p.muted { (t(lang, "developer.model.hash")) ": " code { (model.model_hash) } }
            } @else {
                p { code { (job.subject) } }
            }
        }
        p { a href="/developer/runs" { (t(lang, "developer.home.all_runs")) } }
    };
    Ok(page(&viewer, &title, body))
}

/// `GET /developer/runs/{job}/status` (JSON, for `runs.js`): the job's status, stage and
/// progress as the API gives them, whether it is done, and its output's page.
async fn run_status_json(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(job): Path<String>,
) -> Response {
    let lang = viewer.lang;
    let Ok(id) = JobId::parse(&job) else {
        return json_refusal(&not_found(lang));
    };
    match run_job(&portal, &viewer, &id).await {
        Ok(job) => {
            let output_url = job
                .output_id()
                .map(|output| format!("/developer/outputs/{output}"));
            Json(json!({
                "status": job.status,
                "status_label": job_status_label(lang, &job.status),
                "stage": job.stage,
                "progress": job.progress,
                "done": job.done(),
                "output_url": output_url,
            }))
            .into_response()
        }
        Err(refused) => json_refusal(&refused),
    }
}

// ---------------------------------------------------------------------------------------
// Outputs.

/// `/developer/outputs/{id}?show=table`: show the released table (a download, and so a
/// ledger entry, which is why it is not read on every visit).
#[derive(Debug, Default, Deserialize)]
struct OutputQuery {
    show: Option<String>,
}

/// `GET /developer/outputs/{id}`: the output as the API shows its developer: status,
/// reviews so far, the check report (redacted by the API until release), and once
/// released its table, downloads and the way to a product.
async fn output_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<OutputQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let models = my_models(&portal, &viewer).await?;
    let id = OutputId::parse(&id).map_err(|_| not_found(lang))?;
    let output: OutputRow = portal.get(&viewer, &format!("/v1/outputs/{id}")).await?;
    let model = models.iter().find(|m| m.id == output.model_id);
    let released = output.status == "released";
    let table = if released && query.show.as_deref() == Some("table") {
        Some(output_table(&portal, &viewer, &id).await)
    } else {
        None
    };
    let approvals = approval_count(&output).to_string();
    let required = output.required_reviews.to_string();
    let rows = output.rows.to_string();
    let bytes = output.bytes.to_string();
    let title = tf(lang, "developer.output.title", &[("id", id.as_str())]);
    let body = html! {
        h1 { (title) }
        dl.grid {
            dt { (t(lang, "developer.output.status")) }
            dd { span.badge { (output_status_label(lang, &output.status)) } }
            dt { (t(lang, "developer.output.run")) }
            dd { a href={ "/developer/runs/" (output.job_id) } { code { (output.job_id) } } }
            dt { (t(lang, "developer.run.model")) }
            dd { (model.map_or(output.model_id.as_str(), |m| m.name.as_str())) }
            dt { (t(lang, "developer.output.created")) }
            dd { (china_time(output.created_ms)) }
            dt { (t(lang, "developer.output.approvals")) }
            dd { (tf(lang, "developer.output.approvals_of", &[("count", approvals.as_str()), ("required", required.as_str())])) }
        }
        @match output.status.as_str() {
            "quarantined" => {
                p.notice role="status" { (t(lang, "developer.output.in_review")) }
            },
            "rejected" => {
                div.error role="alert" {
                    p { strong { (t(lang, "developer.output.rejected")) } }
                    @if let Some(reason) = &output.reason { p { (reason) } }
                }
            },
            _ => {},
        }
        @if released {
            section id="release" {
                h2 { (t(lang, "developer.output.release")) }
                dl.grid {
                    @if let Some(release) = &output.release_id {
                        dt { (t(lang, "developer.output.release_id")) }
                        dd { code { (release) } }
                    }
                    @if let Some(seq) = output.release_seq {
                        dt { (t(lang, "developer.output.ledger")) }
                        dd {
                            a href={ "/v1/ledger/receipt/" (seq) } {
                                (tf(lang, "developer.output.receipt", &[("seq", seq.to_string().as_str())]))
                            }
                        }
                    }
                    dt { (t(lang, "developer.output.hash")) }
                    dd { code { (output.output_hash) } }
                    dt { (t(lang, "developer.output.size")) }
                    dd { (tf(lang, "developer.output.size_of", &[("rows", rows.as_str()), ("bytes", bytes.as_str())])) }
                }
                ul {
                    li { a href={ "/developer/outputs/" (id) "?show=table" } { (t(lang, "developer.output.show_table")) } }
                    @for format in ["csv", "json", "parquet"] {
                        li {
                            a href={ "/developer/outputs/" (id) "/download?format=" (format) } {
                                (tf(lang, "developer.output.download", &[("format", format)]))
                            }
                        }
                    }
                    @if let Some(release) = &output.release_id {
                        li {
                            a href=(with_query("/developer/products/new", &[("release", release.as_str())])) {
                                (t(lang, "developer.output.make_product"))
                            }
                        }
                    }
                }
                p.muted { (t(lang, "developer.output.download_note")) }
            }
        }
        @if !output.reviews.is_empty() {
            section id="reviews" {
                h2 { (t(lang, "developer.output.reviews")) }
                ul {
                    @for review in &output.reviews {
                        li {
                            span.badge {
                                @if review.decision == "approve" {
                                    (t(lang, "developer.output.approved"))
                                } @else {
                                    (t(lang, "developer.output.rejected"))
                                }
                            }
                            " " (china_time(review.created_ms))
                            @if !review.reason.is_empty() { " · " (review.reason) }
                        }
                    }
                }
            }
        }
        section id="report" {
            h2 { (t(lang, "developer.output.report")) }
            @if !released {
                p.muted { (t(lang, "developer.output.report_redacted")) }
            }
            (report_view(lang, &output.check_report))
        }
        @if let Some(table) = &table {
            section id="table" {
                h2 { (t(lang, "developer.output.table")) }
                @match table {
                    Ok((header, rows)) => { (csv_table(lang, header, rows)) },
                    Err(refused) => { (refusal(lang, refused)) },
                }
            }
        }
        @if let Some(model) = model {
            section id="model" {
                h2 { (t(lang, "developer.run.model")) }
                pre { code { (model.body) } }
            }
        }
    };
    Ok(page(&viewer, &title, body))
}

/// A released output's rows, as the API's CSV download gives them: header and rows.
async fn output_table(
    portal: &Portal,
    viewer: &Viewer,
    id: &OutputId,
) -> Result<(Vec<String>, Vec<Vec<String>>), PageError> {
    let lang = viewer.lang;
    let path = with_query(&format!("/v1/outputs/{id}/download"), &[("format", "csv")]);
    let response = api_download(portal, viewer, &path).await?;
    let bytes = axum::body::to_bytes(response.into_body(), MAX_TABLE_BYTES)
        .await
        .map_err(|_| {
            PageError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                t(lang, "developer.output.too_large"),
                lang,
            )
        })?;
    let mut records = parse_csv(&String::from_utf8_lossy(&bytes)).into_iter();
    let header = records.next().unwrap_or_default();
    Ok((header, records.take(OUTPUT_TABLE_ROWS).collect()))
}

/// A table of CSV records under their header.
fn csv_table(lang: Lang, header: &[String], rows: &[Vec<String>]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { (t(lang, "developer.dataset.no_rows")) }
        } @else {
            table.table {
                thead { tr { @for name in header { th scope="col" { (name) } } } }
                tbody {
                    @for row in rows {
                        tr { @for cell in row { td { (cell) } } }
                    }
                }
            }
            @if rows.len() >= OUTPUT_TABLE_ROWS {
                p.muted { (t(lang, "developer.output.table_cut")) }
            }
        }
    }
}

/// Splits CSV text (RFC 4180: quoted fields, doubled quotes, LF or CRLF) into records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut started = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                started = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                started = true;
            }
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                started = false;
            }
            other => {
                field.push(other);
                started = true;
            }
        }
    }
    if started {
        record.push(field);
        records.push(record);
    }
    records
}

/// GETs a download from the API; a refusal is the API's status and problem detail.
async fn api_download(portal: &Portal, viewer: &Viewer, path: &str) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Body::empty())
        .map_err(|_| not_found(lang))?;
    let response = portal.raw(viewer, request).await?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(page_error(viewer, response).await)
    }
}

/// `/developer/outputs/{id}/download?format=…`.
#[derive(Debug, Default, Deserialize)]
struct DownloadQuery {
    format: Option<String>,
}

/// `GET /developer/outputs/{id}/download`: the released output through the API's
/// download (logged there as a `DataAccess` ledger entry), as an attachment.
async fn output_download(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    my_models(&portal, &viewer).await?;
    let id = OutputId::parse(&id).map_err(|_| not_found(lang))?;
    let format = match query.format.as_deref().unwrap_or("csv") {
        format @ ("csv" | "json" | "parquet") => format,
        _ => return Err(unprocessable(lang, t(lang, "developer.output.bad_format"))),
    };
    let path = with_query(&format!("/v1/outputs/{id}/download"), &[("format", format)]);
    let response = api_download(&portal, &viewer, &path).await?;
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let mut download = Response::new(response.into_body());
    if let Some(content_type) = content_type {
        download
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    // The id and the format are both checked, so the header value is plain ASCII.
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("attachment; filename=\"{id}.{format}\""))
    {
        download
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(download)
}

// ---------------------------------------------------------------------------------------
// Products.

/// What the product form holds (kept when the API refuses it).
#[derive(Clone, Debug)]
struct ProductDraft {
    title: String,
    description: String,
    licence_kind: String,
    term_days: String,
    permitted_use: String,
    price_yuan: String,
    public_finance_bp: String,
    platform_bp: String,
    developer_bp: String,
    releases: Vec<String>,
}

impl ProductDraft {
    /// The form as first shown.
    fn fresh() -> ProductDraft {
        ProductDraft {
            title: String::new(),
            description: String::new(),
            licence_kind: "commercial_internal".to_owned(),
            term_days: "365".to_owned(),
            permitted_use: String::new(),
            price_yuan: String::new(),
            public_finance_bp: "3000".to_owned(),
            platform_bp: "1000".to_owned(),
            developer_bp: "6000".to_owned(),
            releases: Vec::new(),
        }
    }

    /// The submitted form (repeated `releases`) and its CSRF field.
    fn from_pairs(pairs: &[(String, String)]) -> (String, ProductDraft) {
        let mut csrf = String::new();
        let mut draft = ProductDraft::fresh();
        for (name, value) in pairs {
            match name.as_str() {
                "csrf" => csrf.clone_from(value),
                "title" => draft.title.clone_from(value),
                "description" => draft.description.clone_from(value),
                "licence_kind" => draft.licence_kind.clone_from(value),
                "term_days" => draft.term_days.clone_from(value),
                "permitted_use" => draft.permitted_use.clone_from(value),
                "price_yuan" => draft.price_yuan.clone_from(value),
                "public_finance_bp" => draft.public_finance_bp.clone_from(value),
                "platform_bp" => draft.platform_bp.clone_from(value),
                "developer_bp" => draft.developer_bp.clone_from(value),
                "releases" => draft.releases.push(value.clone()),
                _ => {}
            }
        }
        (csrf, draft)
    }

    /// The API's product request: the price in fen, the split in basis points.
    fn request(&self, lang: Lang) -> Result<Value, PageError> {
        let price_minor = yuan_to_fen(&self.price_yuan)
            .ok_or_else(|| unprocessable(lang, t(lang, "developer.product.bad_price")))?;
        let term_days: u32 = parse_field(&self.term_days, lang, "developer.product.bad_term")?;
        let public_finance_bp: u32 =
            parse_field(&self.public_finance_bp, lang, "developer.product.bad_split")?;
        let platform_bp: u32 = parse_field(&self.platform_bp, lang, "developer.product.bad_split")?;
        let developer_bp: u32 =
            parse_field(&self.developer_bp, lang, "developer.product.bad_split")?;
        Ok(json!({
            "title": self.title,
            "description": self.description,
            "licence": {
                "kind": self.licence_kind,
                "term_days": term_days,
                "permitted_use": self.permitted_use,
            },
            "price_minor": price_minor,
            "split": {
                "public_finance_bp": public_finance_bp,
                "platform_bp": platform_bp,
                "developer_bp": developer_bp,
            },
            "releases": self.releases,
        }))
    }
}

/// A price in yuan as typed ("123.45", "¥123.45", "12") → fen, exactly: digits with at
/// most two decimals, no sign, no floating point. None for anything else.
fn yuan_to_fen(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let raw = raw
        .strip_prefix('¥')
        .or_else(|| raw.strip_prefix('￥'))
        .unwrap_or(raw)
        .trim();
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 13
        || fraction.len() > 2
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fen = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().ok()? * 10,
        _ => fraction.parse::<i64>().ok()?,
    };
    whole.checked_mul(100)?.checked_add(fen)
}

/// `/developer/products/new?release=…`: a release to tick.
#[derive(Debug, Default, Deserialize)]
struct ProductQuery {
    release: Option<String>,
}

/// `GET /developer/products/new`: the product form over the developer's releases.
async fn product_form(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<ProductQuery>,
) -> Result<Markup, PageError> {
    let mut draft = ProductDraft::fresh();
    draft.releases.extend(query.release);
    product_view(&portal, &viewer, &draft, None).await
}

/// `POST /developer/products/new`: creates the product (`POST /v1/products`), which then
/// waits for the exchange's review.
async fn create_product(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let (csrf, draft) = ProductDraft::from_pairs(&pairs);
    check_csrf(&viewer, &csrf)?;
    let created = match draft.request(lang) {
        Ok(body) => {
            portal
                .send::<ProductRow>(&viewer, Method::POST, "/v1/products", &body)
                .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(product) => {
            let to = with_query("/developer", &[("product", product.id.as_str())]);
            Ok(Redirect::to(&format!("{to}#products")).into_response())
        }
        Err(refused) => {
            let page = product_view(&portal, &viewer, &draft, Some(&refused)).await?;
            Ok((refused.status, page).into_response())
        }
    }
}

/// The product form page.
async fn product_view(
    portal: &Portal,
    viewer: &Viewer,
    draft: &ProductDraft,
    refused: Option<&PageError>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let models = my_models(portal, viewer).await?;
    let outputs: Vec<OutputRow> = portal.get(viewer, "/v1/outputs").await?;
    let released: Vec<&OutputRow> = outputs.iter().filter(|o| o.release_id.is_some()).collect();
    let body = html! {
        h1 { (t(lang, "developer.product.new")) }
        p.muted { (t(lang, "developer.product.intro")) }
        @if let Some(e) = refused { (refusal(lang, e)) }
        form.form method="post" action="/developer/products/new" {
            (csrf_field(viewer))
            fieldset {
                legend { (t(lang, "developer.product.releases")) }
                @if released.is_empty() {
                    p.muted { (t(lang, "developer.product.no_releases")) }
                }
                @for (i, output) in released.iter().enumerate() {
                    @let release = output.release_id.as_deref().unwrap_or_default();
                    @let field = format!("product-release-{i}");
                    @let model = models.iter().find(|m| m.id == output.model_id);
                    div {
                        input type="checkbox" id=(field) name="releases" value=(release)
                            checked[draft.releases.iter().any(|r| r == release || *r == output.id)];
                        " "
                        label for=(field) {
                            code { (release) } " · "
                            (model.map_or(output.model_id.as_str(), |m| m.name.as_str()))
                            " · " (china_time(output.created_ms))
                        }
                    }
                }
            }
            label for="title" { (t(lang, "developer.product.title")) }
            input type="text" id="title" name="title" maxlength="200" required value=(draft.title);
            label for="description" { (t(lang, "developer.product.description")) }
            textarea id="description" name="description" rows="4" maxlength="10000" { (draft.description) }
            label for="licence_kind" { (t(lang, "developer.product.licence")) }
            select id="licence_kind" name="licence_kind" {
                @for kind in ["research_only", "public_interest", "commercial_internal", "commercial_redistribution"] {
                    option value=(kind) selected[draft.licence_kind == kind] { (licence_label(lang, kind)) }
                }
            }
            label for="licence_term" { (t(lang, "developer.product.term_days")) }
            input type="number" id="licence_term" name="term_days" min="1" max="3650" required value=(draft.term_days);
            label for="permitted_use" { (t(lang, "developer.product.permitted_use")) }
            input type="text" id="permitted_use" name="permitted_use" value=(draft.permitted_use);
            label for="price_yuan" { (t(lang, "developer.product.price_yuan")) }
            input type="text" inputmode="decimal" id="price_yuan" name="price_yuan" required
                pattern="[¥￥]?[0-9]+(\\.[0-9]{1,2})?" value=(draft.price_yuan);
            p.muted { (t(lang, "developer.product.price_help")) }
            fieldset {
                legend { (t(lang, "developer.product.split")) }
                label for="public_finance_bp" { (t(lang, "developer.product.public_finance_bp")) }
                input type="number" id="public_finance_bp" name="public_finance_bp" min="0" max="10000" required value=(draft.public_finance_bp);
                label for="platform_bp" { (t(lang, "developer.product.platform_bp")) }
                input type="number" id="platform_bp" name="platform_bp" min="0" max="10000" required value=(draft.platform_bp);
                label for="developer_bp" { (t(lang, "developer.product.developer_bp")) }
                input type="number" id="developer_bp" name="developer_bp" min="0" max="10000" required value=(draft.developer_bp);
                p.muted { (t(lang, "developer.product.split_help")) }
            }
            button type="submit" { (t(lang, "developer.product.submit")) }
        }
    };
    Ok(page(viewer, t(lang, "developer.product.new"), body))
}

/// A licence kind for people.
fn licence_label(lang: Lang, kind: &str) -> String {
    match kind {
        "research_only" => t(lang, "developer.product.licence.research_only").to_owned(),
        "public_interest" => t(lang, "developer.product.licence.public_interest").to_owned(),
        "commercial_internal" => {
            t(lang, "developer.product.licence.commercial_internal").to_owned()
        }
        "commercial_redistribution" => {
            t(lang, "developer.product.licence.commercial_redistribution").to_owned()
        }
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_become_exact_fen() {
        assert_eq!(yuan_to_fen("123.45"), Some(12_345));
        assert_eq!(yuan_to_fen(" ¥12.3 "), Some(1_230));
        assert_eq!(yuan_to_fen("￥7"), Some(700));
        assert_eq!(yuan_to_fen("0"), Some(0));
        assert_eq!(yuan_to_fen("0.01"), Some(1));
        assert_eq!(yuan_to_fen("12."), Some(1_200));
        for bad in [
            "",
            "-1",
            "1.234",
            "1e3",
            "abc",
            ".5",
            "1,000",
            "1.2.3",
            "99999999999999",
        ] {
            assert_eq!(yuan_to_fen(bad), None, "{bad}");
        }
    }

    #[test]
    fn csv_records_keep_quotes_commas_and_line_breaks() {
        let text =
            "district,n\r\nFutian,12\n\"Bao'an, south\",\"say \"\"hi\"\"\"\n\"two\nlines\",\n";
        assert_eq!(
            parse_csv(text),
            vec![
                vec!["district".to_owned(), "n".to_owned()],
                vec!["Futian".to_owned(), "12".to_owned()],
                vec!["Bao'an, south".to_owned(), "say \"hi\"".to_owned()],
                vec!["two\nlines".to_owned(), String::new()],
            ]
        );
        assert_eq!(parse_csv("a,b"), vec![vec!["a".to_owned(), "b".to_owned()]]);
        assert!(parse_csv("").is_empty());
    }

    #[test]
    fn pointers_escape_their_special_characters() {
        assert_eq!(pointer("kwh_12m"), "/kwh_12m");
        assert_eq!(pointer("a/b~c"), "/a~1b~0c");
    }

    #[test]
    fn epsilon_reads_without_trailing_zeros() {
        assert_eq!(epsilon_text(3.0), "3");
        assert_eq!(epsilon_text(0.25), "0.25");
        assert_eq!(epsilon_text(0.0), "0");
    }

    #[test]
    fn a_report_shows_what_it_holds_and_nothing_more() {
        let report = json!({
            "rules": {"threshold": 10},
            "passed": ["aggregate_only"],
            "cell_checks": "applied",
        });
        let html = report_view(Lang::En, &report).into_string();
        assert!(html.contains("aggregate_only"), "{html}");
        assert!(!html.contains("cells_suppressed"), "{html}");
        let hits = json!({"hits": [{"released_row": 0, "column": "n", "rule": "threshold", "detail": "<b>"}]});
        let html = report_view(Lang::En, &hits).into_string();
        assert!(html.contains("flag-threshold"), "{html}");
        assert!(
            html.contains("&lt;b&gt;") && !html.contains("<b>"),
            "{html}"
        );
    }

    #[test]
    fn grant_forms_keep_repeated_fields() {
        let pairs: Vec<(String, String)> = [
            ("csrf", "tok"),
            ("purpose", "energy study"),
            ("columns", "district"),
            ("columns", "kwh_12m"),
            ("model_kinds", "sql"),
            ("term_days", "30"),
            ("query_budget", "5"),
            ("epsilon", ""),
            ("delta", "0"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let (csrf, draft) = GrantDraft::from_pairs(&pairs);
        assert_eq!(csrf, "tok");
        let dataset = DatasetId::parse("ds_0123456789abcdef").unwrap();
        let body = draft.request(&dataset, Lang::En).unwrap();
        assert_eq!(body["columns"], json!(["district", "kwh_12m"]));
        assert_eq!(body["model_kinds"], json!(["sql"]));
        assert_eq!(body["term_days"], 30);
        assert_eq!(body["epsilon"], 0.0);
        assert!(body["purpose_kind"].is_null());
        let bad = GrantDraft {
            term_days: "thirty".to_owned(),
            ..draft
        };
        assert_eq!(
            bad.request(&dataset, Lang::En).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
