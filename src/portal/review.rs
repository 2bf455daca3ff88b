//! The output checkers' pages, in the manner of OpenSAFELY's Airlock and more: a queue
//! of outputs awaiting the viewer and of those decided; for each output the job, the
//! model text, the whole disclosure check report, the output table with every flagged
//! cell coloured *and* labelled by its rule, the rows the checks removed, a diff
//! against the previous release of the same model or grant, the votes and the vote
//! form; and a CSV summary of the report for the checkers' own records.
//!
//! Every page reads and acts through the JSON API, in process and as the viewer
//! ([`Portal::get`], [`Portal::send`]), so a page is refused exactly when its API route
//! is: `GET /v1/review` (the queue), `GET /v1/review/{id}` (one output; another
//! organisation's only, so the author's organisation gets the API's 404),
//! `GET /v1/outputs/{id}/download` (the rows while quarantined, when the stored preview
//! does not hold them all), `GET /v1/review/{id}/previous` (the compared release's rows)
//! and `POST /v1/review/{id}` (the vote: the API refuses the author's organisation with
//! 403 and a second vote or a decided output with 409, and the page shows just that).
//!
//! **Two independent reviewers.** The API shows a reviewer only their own vote until
//! the output is decided (it counts the others in `votes`), so this page cannot show
//! the first decision to the second reviewer: it shows the count, and every decision
//! once the output is released or returned.
//!
//! **The diff.** Rows of the two outputs are matched by their group keys, i.e. the
//! columns that are not computed from an aggregate. The API does not say which those
//! are, so they are read off the model text ([`measure_names`]: every `SELECT` item
//! that calls `COUNT`, `SUM` or `AVG`, or names such an item, is a measure; so is an
//! unaliased aggregate's generated name and every column a rule hit names). The page
//! names the key columns it used, so a reviewer can tell when a query was too unusual
//! for that reading (rows then show as removed and added rather than changed).
//!
//! **The CSV summary** has one line per rule hit (`output_id,row,released_row,column,
//! rule,detail`), then totals whose `row` is `total`: hits by rule and the report's
//! counters. Fields are quoted as RFC 4180 says, and a field that a spreadsheet would
//! read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return)
//! gets a leading `'`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{Markup, html};
use pdx_ids::OutputId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::portal::Portal;
use crate::portal::api::{PageError, with_query};
use crate::portal::i18n::{Lang, t, tf};
use crate::portal::layout::{china_time, csrf_field, page};
use crate::portal::session::{Viewer, check_csrf};

/// Rows of an output drawn in its table; the report and the CSV list every hit.
const TABLE_ROWS: usize = 1000;

/// Changed rows drawn in a diff; the counts cover them all.
const DIFF_ROWS: usize = 500;

/// Decided outputs listed in the queue.
const DECIDED_LISTED: &str = "50";

/// The reviewer pages.
pub fn routes() -> Router<Portal> {
    Router::new()
        .route("/review", get(queue))
        .route("/review/outputs/{id}", get(output_page).post(vote))
        .route("/review/outputs/{id}/summary.csv", get(summary_csv))
}

// ---------------------------------------------------------------------------------
// What the pages read from the API: only the fields they show.
// ---------------------------------------------------------------------------------

/// A queue item (`GET /v1/review`, `GET /v1/review/{id}`).
#[derive(Debug, Deserialize)]
struct Item {
    output: OutputJson,
    #[serde(default)]
    model_text: String,
    #[serde(default)]
    model_kind: String,
    #[serde(default)]
    model_hash: String,
    #[serde(default)]
    dataset_versions: Vec<String>,
    #[serde(default)]
    preview: Value,
    #[serde(default)]
    grant_id: Option<String>,
    #[serde(default)]
    previous_release: Option<PreviousJson>,
}

/// An output as its reviewers see it.
#[derive(Debug, Deserialize)]
struct OutputJson {
    id: String,
    #[serde(default)]
    job_id: String,
    #[serde(default)]
    org_id: String,
    #[serde(default)]
    model_id: String,
    #[serde(default)]
    output_hash: String,
    #[serde(default)]
    rows: u64,
    #[serde(default)]
    check_report: Value,
    #[serde(default)]
    required_reviews: u32,
    #[serde(default)]
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    release_id: Option<String>,
    #[serde(default)]
    release_seq: Option<u64>,
    #[serde(default)]
    reviews: Vec<ReviewJson>,
    #[serde(default)]
    votes: u32,
    #[serde(default)]
    created_ms: i64,
}

/// One review the viewer may see.
#[derive(Debug, Deserialize)]
struct ReviewJson {
    #[serde(default)]
    reviewer_org: String,
    #[serde(default)]
    reviewer_key: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    created_ms: i64,
}

/// The release an output is compared with.
#[derive(Clone, Debug, Deserialize)]
struct PreviousJson {
    output_id: String,
    #[serde(default)]
    model_id: String,
    #[serde(default)]
    matched_by: String,
    #[serde(default)]
    release_seq: Option<u64>,
    #[serde(default)]
    created_ms: i64,
}

/// `GET /v1/review/{id}/previous`.
#[derive(Debug, Deserialize)]
struct PreviousRowsJson {
    #[serde(default)]
    rows: Vec<Value>,
}

/// One rule hit of a check report (`pdx_algorithms::disclosure::RuleHit`).
#[derive(Clone, Debug, Deserialize)]
struct Hit {
    #[serde(default)]
    row: Option<u64>,
    #[serde(default)]
    released_row: Option<u64>,
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    detail: String,
    /// A regression hit's term, level or target (`pdx_algorithms::regression`).
    #[serde(default)]
    term: Option<String>,
}

/// The hits of a report (none for a DP or unconditional report).
fn hits_of(report: &Value) -> Vec<Hit> {
    report
        .get("hits")
        .and_then(|hits| serde_json::from_value(hits.clone()).ok())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------

/// Parses an output id from a URL path; a malformed one is "not found", as in the API.
fn output_id(raw: &str, lang: Lang) -> Result<OutputId, PageError> {
    OutputId::parse(raw).map_err(|_| {
        PageError::new(
            StatusCode::NOT_FOUND,
            t(lang, "review.error.not_found"),
            lang,
        )
    })
}

/// The viewer's key id ("" without a session).
fn key_of(viewer: &Viewer) -> String {
    viewer
        .signed_in
        .as_ref()
        .map(|s| s.key_id.to_string())
        .unwrap_or_default()
}

/// Whether the viewer already voted on `output`.
fn voted(viewer: &Viewer, output: &OutputJson) -> bool {
    let key = key_of(viewer);
    !key.is_empty() && output.reviews.iter().any(|r| r.reviewer_key == key)
}

/// The CSS class of a rule's flag; none for a rule this page does not know.
fn flag_class(rule: &str) -> Option<&'static str> {
    match rule {
        "threshold" => Some("flag-threshold"),
        "dominance" => Some("flag-dominance"),
        "rounded" => Some("flag-rounded"),
        "differencing" => Some("flag-differencing"),
        "secondary" => Some("flag-secondary"),
        _ => None,
    }
}

/// The rules, in the legend's order.
const RULES: [&str; 5] = [
    "threshold",
    "dominance",
    "rounded",
    "differencing",
    "secondary",
];

/// A rule's short name for its badge (an unknown rule shows as it is named).
fn rule_label(lang: Lang, rule: &str) -> String {
    match rule {
        "threshold" => t(lang, "review.rule.threshold").to_owned(),
        "dominance" => t(lang, "review.rule.dominance").to_owned(),
        "rounded" => t(lang, "review.rule.rounded").to_owned(),
        "differencing" => t(lang, "review.rule.differencing").to_owned(),
        "secondary" => t(lang, "review.rule.secondary").to_owned(),
        other => other.to_owned(),
    }
}

/// What a rule means, for the legend.
fn rule_help(lang: Lang, rule: &str) -> &'static str {
    match rule {
        "threshold" => t(lang, "review.rule.threshold.help"),
        "dominance" => t(lang, "review.rule.dominance.help"),
        "rounded" => t(lang, "review.rule.rounded.help"),
        "differencing" => t(lang, "review.rule.differencing.help"),
        _ => t(lang, "review.rule.secondary.help"),
    }
}

/// A status for people.
fn status_label(lang: Lang, status: &str) -> &'static str {
    match status {
        "quarantined" => t(lang, "review.status.quarantined"),
        "released" => t(lang, "review.status.released"),
        "rejected" => t(lang, "review.status.rejected"),
        _ => t(lang, "review.status.unknown"),
    }
}

/// A decision for people.
fn decision_label(lang: Lang, decision: &str) -> &'static str {
    match decision {
        "approve" => t(lang, "review.decision.approve"),
        _ => t(lang, "review.decision.return"),
    }
}

/// A badge naming a rule, coloured by its flag class (colour is never the only sign:
/// the badge says the rule's name).
fn rule_badge(lang: Lang, rule: &str, detail: Option<&str>) -> Markup {
    let class = match flag_class(rule) {
        Some(flag) => format!("badge {flag}"),
        None => "badge".to_owned(),
    };
    html! {
        span class=(class) data-rule=(rule) title=[detail] { (rule_label(lang, rule)) }
    }
}

/// A cell value as text: JSON strings as they are, numbers as written, NULL named.
fn cell_text(lang: Lang, value: &Value) -> String {
    match value {
        Value::Null => t(lang, "review.null").to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The column names of JSON rows, in the order the API wrote them.
fn columns_of(rows: &[Value]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        if let Some(object) = row.as_object() {
            for name in object.keys() {
                if !columns.iter().any(|c| c == name) {
                    columns.push(name.clone());
                }
            }
        }
    }
    columns
}

// ---------------------------------------------------------------------------------
// The queue.
// ---------------------------------------------------------------------------------

/// `GET /review`: outputs awaiting the viewer's vote, those awaiting the other
/// reviewers, and those decided.
async fn queue(State(portal): State<Portal>, viewer: Viewer) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let decided_path = with_query(
        "/v1/review",
        &[("state", "decided"), ("limit", DECIDED_LISTED)],
    );
    let (open, decided) = tokio::join!(
        portal.get::<Vec<Item>>(&viewer, "/v1/review"),
        portal.get::<Vec<Item>>(&viewer, &decided_path),
    );
    let (open, decided) = (open?, decided?);
    let (waiting_for_others, awaiting_me): (Vec<&Item>, Vec<&Item>) =
        open.iter().partition(|item| voted(&viewer, &item.output));
    let decided: Vec<&Item> = decided.iter().collect();
    let title = t(lang, "review.queue.title");
    let body = html! {
        h1 { (title) }
        p.muted { (t(lang, "review.queue.intro")) }
        section aria-labelledby="awaiting-me" {
            h2 id="awaiting-me" { (t(lang, "review.queue.awaiting_me")) }
            (queue_table(lang, &awaiting_me, "awaiting-me"))
        }
        section aria-labelledby="awaiting-others" {
            h2 id="awaiting-others" { (t(lang, "review.queue.awaiting_others")) }
            (queue_table(lang, &waiting_for_others, "awaiting-others"))
        }
        section aria-labelledby="decided" {
            h2 id="decided" { (t(lang, "review.queue.decided")) }
            (queue_table(lang, &decided, "decided"))
        }
    };
    Ok(page(&viewer, title, body))
}

/// One list of the queue (`list` names it for tests and scripts).
fn queue_table(lang: Lang, items: &[&Item], list: &str) -> Markup {
    html! {
        @if items.is_empty() {
            p.muted data-queue=(list) { (t(lang, "review.queue.empty")) }
        } @else {
            table.table data-queue=(list) {
                thead {
                    tr {
                        th scope="col" { (t(lang, "review.field.output")) }
                        th scope="col" { (t(lang, "review.field.job")) }
                        th scope="col" { (t(lang, "review.field.organisation")) }
                        th scope="col" { (t(lang, "review.field.submitted")) }
                        th scope="col" { (t(lang, "review.field.votes")) }
                        th scope="col" { (t(lang, "review.field.hits")) }
                        th scope="col" { (t(lang, "review.field.status")) }
                    }
                }
                tbody {
                    @for item in items {
                        @let output = &item.output;
                        tr data-output=(output.id) {
                            th scope="row" {
                                a href=(format!("/review/outputs/{}", output.id)) { (output.id) }
                            }
                            td { code { (output.job_id) } }
                            td { code { (output.org_id) } }
                            td { (china_time(output.created_ms)) }
                            td data-votes=(output.votes) {
                                (votes_text(lang, output))
                            }
                            td { (hits_of(&output.check_report).len()) }
                            td { (status_label(lang, &output.status)) }
                        }
                    }
                }
            }
        }
    }
}

/// "1 of 2 votes".
fn votes_text(lang: Lang, output: &OutputJson) -> String {
    tf(
        lang,
        "review.votes.count",
        &[
            ("votes", &output.votes.to_string()),
            ("required", &output.required_reviews.to_string()),
        ],
    )
}

// ---------------------------------------------------------------------------------
// One output.
// ---------------------------------------------------------------------------------

/// Everything the output page shows, read through the API.
struct OutputPage {
    item: Item,
    hits: Vec<Hit>,
    /// The output's rows: all of them, or its preview when the API no longer hands
    /// them out (a decided output larger than its preview).
    rows: Vec<Value>,
    /// Whether `rows` is the whole output.
    whole: bool,
    comparison: Comparison,
}

/// The diff against the previous release, or why there is none.
enum Comparison {
    /// No earlier release of the model or grant.
    Nothing,
    /// The output's rows are not all at hand, so no honest diff can be drawn.
    Unavailable(PreviousJson),
    /// The API refused or failed to hand out the release's rows (its detail).
    Refused(PreviousJson, String),
    /// The diff.
    Drawn(PreviousJson, Diff),
}

/// `GET /review/outputs/{id}`.
async fn output_page(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let id = output_id(&id, viewer.lang)?;
    let view = load_output(&portal, &viewer, &id).await?;
    Ok(render_output(&viewer, &view))
}

/// Reads an output, its rows and the release it is compared with.
async fn load_output(
    portal: &Portal,
    viewer: &Viewer,
    id: &OutputId,
) -> Result<OutputPage, PageError> {
    let item: Item = portal.get(viewer, &format!("/v1/review/{id}")).await?;
    let hits = hits_of(&item.output.check_report);
    let preview: Vec<Value> = item.preview.as_array().cloned().unwrap_or_default();
    // The stored preview is the output's first rows: when it holds them all, reading
    // them again (a logged download) adds nothing.
    let (rows, whole) = if preview.len() as u64 >= item.output.rows {
        (preview, true)
    } else if item.output.status == "quarantined" {
        let path = with_query(&format!("/v1/outputs/{id}/download"), &[("format", "json")]);
        (portal.get::<Vec<Value>>(viewer, &path).await?, true)
    } else {
        (preview, false)
    };
    let comparison = match item.previous_release.clone() {
        None => Comparison::Nothing,
        Some(previous) if !whole => Comparison::Unavailable(previous),
        Some(previous) => {
            let path = format!("/v1/review/{id}/previous");
            match portal.get::<PreviousRowsJson>(viewer, &path).await {
                Ok(old) => {
                    let measures = measure_names(&item.model_text);
                    let flagged: HashSet<&str> =
                        hits.iter().filter_map(|h| h.column.as_deref()).collect();
                    let diff = diff_rows(&old.rows, &rows, &measures, &flagged);
                    Comparison::Drawn(previous, diff)
                }
                Err(refused) => Comparison::Refused(previous, refused.detail),
            }
        }
    };
    Ok(OutputPage {
        item,
        hits,
        rows,
        whole,
        comparison,
    })
}

/// The whole output page.
fn render_output(viewer: &Viewer, view: &OutputPage) -> Markup {
    let lang = viewer.lang;
    let output = &view.item.output;
    let title = tf(lang, "review.output.title", &[("id", &output.id)]);
    let body = html! {
        h1 { (title) }
        p {
            span.badge data-status=(output.status) { (status_label(lang, &output.status)) }
            " "
            a href=(format!("/review/outputs/{}/summary.csv", output.id)) download {
                (t(lang, "review.csv.link"))
            }
        }
        (job_section(lang, &view.item))
        section aria-labelledby="model" {
            h2 id="model" { (t(lang, "review.model.title")) }
            pre.model-text { code { (view.item.model_text) } }
        }
        (report_section(lang, &output.check_report, &view.hits))
        (table_section(lang, view))
        // A regression removes no row: its hits concern terms and the whole model.
        @if view.item.model_kind != "regression" {
            (removed_section(lang, &view.hits))
        }
        (diff_section(lang, &view.comparison))
        (votes_section(viewer, output))
    };
    page(viewer, &title, body)
}

/// The job and where the output came from.
fn job_section(lang: Lang, item: &Item) -> Markup {
    let output = &item.output;
    let dash = "—";
    html! {
        section aria-labelledby="job" {
            h2 id="job" { (t(lang, "review.job.title")) }
            dl.grid {
                dt { (t(lang, "review.field.job")) }
                dd { code { (output.job_id) } }
                dt { (t(lang, "review.field.organisation")) }
                dd { code { (output.org_id) } }
                dt { (t(lang, "review.field.model")) }
                dd { code { (output.model_id) } " (" (item.model_kind) ")" }
                dt { (t(lang, "review.field.model_hash")) }
                dd { code { (item.model_hash) } }
                dt { (t(lang, "review.field.versions")) }
                dd {
                    @for (i, version) in item.dataset_versions.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (version) }
                    }
                }
                dt { (t(lang, "review.field.grant")) }
                dd {
                    @match &item.grant_id {
                        Some(grant) => { code { (grant) } }
                        None => { (dash) }
                    }
                }
                dt { (t(lang, "review.field.submitted")) }
                dd { (china_time(output.created_ms)) }
                dt { (t(lang, "review.field.rows")) }
                dd { (output.rows) }
                dt { (t(lang, "review.field.output_hash")) }
                dd { code { (output.output_hash) } }
                dt { (t(lang, "review.field.release")) }
                dd {
                    @match (&output.release_id, output.release_seq) {
                        (Some(release), Some(seq)) => {
                            code { (release) } " "
                            (tf(lang, "review.field.release_seq", &[("seq", &seq.to_string())]))
                        }
                        _ => { (dash) }
                    }
                }
            }
        }
    }
}

/// The whole check report: counters, rules, checks passed, every hit, and the raw
/// report for anything this page does not lay out.
fn report_section(lang: Lang, report: &Value, hits: &[Hit]) -> Markup {
    let counters = [
        ("cells_total", t(lang, "review.report.cells_total")),
        (
            "cells_suppressed",
            t(lang, "review.report.cells_suppressed"),
        ),
        (
            "values_suppressed",
            t(lang, "review.report.values_suppressed"),
        ),
        ("values_released", t(lang, "review.report.values_released")),
    ];
    let rules = report.get("rules").and_then(Value::as_object);
    let passed: Vec<String> = report
        .get("passed")
        .or_else(|| report.get("checks"))
        .and_then(Value::as_array)
        .map(|list| list.iter().map(|v| cell_text(lang, v)).collect())
        .unwrap_or_default();
    let failed = report.get("run_failed") == Some(&Value::Bool(true));
    let raw = serde_json::to_string_pretty(report).unwrap_or_default();
    html! {
        section aria-labelledby="report" {
            h2 id="report" { (t(lang, "review.report.title")) }
            @if failed {
                p.error {
                    (t(lang, "review.report.run_failed")) " "
                    @if let Some(failure) = report.get("failure").and_then(Value::as_str) {
                        code { (failure) }
                    }
                }
            }
            dl.grid {
                @for (field, label) in counters {
                    @if let Some(n) = report.get(field).and_then(Value::as_u64) {
                        dt { (label) }
                        dd data-counter=(field) { (n) }
                    }
                }
                @if let Some(rules) = rules {
                    @for (name, value) in rules {
                        dt { code { (name) } }
                        dd { (cell_text(lang, value)) }
                    }
                }
            }
            @if !passed.is_empty() {
                h3 { (t(lang, "review.report.passed")) }
                ul {
                    @for check in &passed {
                        li { code { (check) } }
                    }
                }
            }
            h3 { (tf(lang, "review.report.hits", &[("count", &hits.len().to_string())])) }
            @if hits.is_empty() {
                p.muted { (t(lang, "review.report.no_hits")) }
            } @else {
                table.table data-hits=(hits.len()) {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "review.field.row")) }
                            th scope="col" { (t(lang, "review.field.released_row")) }
                            th scope="col" { (t(lang, "review.field.column")) }
                            th scope="col" { (t(lang, "review.field.rule")) }
                            th scope="col" { (t(lang, "review.field.detail")) }
                        }
                    }
                    tbody {
                        @for hit in hits {
                            tr {
                                td { (optional_number(hit.row)) }
                                td { (optional_number(hit.released_row)) }
                                td { (hit.column.as_deref().or(hit.term.as_deref()).unwrap_or("—")) }
                                td { (rule_badge(lang, &hit.rule, None)) }
                                td { (hit.detail) }
                            }
                        }
                    }
                }
            }
            details {
                summary { (t(lang, "review.report.raw")) }
                pre { code { (raw) } }
            }
        }
    }
}

/// A row index, or a dash.
fn optional_number(n: Option<u64>) -> String {
    n.map_or_else(|| "—".to_owned(), |n| n.to_string())
}

/// The legend of the flag colours.
fn legend(lang: Lang) -> Markup {
    html! {
        ul.legend aria-label=(t(lang, "review.legend.title")) {
            @for rule in RULES {
                li {
                    span class=(format!("badge {}", flag_class(rule).unwrap_or_default())) data-legend=(rule) {
                        (rule_label(lang, rule))
                    }
                    " " (rule_help(lang, rule))
                }
            }
        }
    }
}

/// The output table, every flagged cell coloured by its rules and labelled with them.
fn table_section(lang: Lang, view: &OutputPage) -> Markup {
    let columns = columns_of(&view.rows);
    let mut flags: HashMap<(u64, &str), Vec<&Hit>> = HashMap::new();
    for hit in &view.hits {
        if let (Some(row), Some(column)) = (hit.released_row, hit.column.as_deref()) {
            flags.entry((row, column)).or_default().push(hit);
        }
    }
    let shown = view.rows.len().min(TABLE_ROWS);
    html! {
        section aria-labelledby="table" {
            h2 id="table" { (t(lang, "review.table.title")) }
            (legend(lang))
            @if !view.whole {
                p.notice { (tf(lang, "review.table.preview", &[("rows", &view.rows.len().to_string())])) }
            }
            @if shown < view.rows.len() {
                p.notice { (tf(lang, "review.table.truncated", &[("rows", &shown.to_string())])) }
            }
            @if view.rows.is_empty() {
                p.muted { (t(lang, "review.table.empty")) }
            } @else {
                div.table-scroll {
                    table.table data-output-table {
                        thead {
                            tr {
                                th scope="col" { "#" }
                                @for column in &columns {
                                    th scope="col" { (column) }
                                }
                            }
                        }
                        tbody {
                            @for (r, row) in view.rows.iter().take(shown).enumerate() {
                                tr {
                                    th scope="row" { (r) }
                                    @for column in &columns {
                                        @let value = row.get(column.as_str()).unwrap_or(&Value::Null);
                                        @let cell_flags = flags.get(&(r as u64, column.as_str()));
                                        (flagged_cell(lang, value, cell_flags.map(Vec::as_slice)))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One cell of the output table: its value and, when flagged, one class and one badge
/// per rule.
fn flagged_cell(lang: Lang, value: &Value, hits: Option<&[&Hit]>) -> Markup {
    let text = cell_text(lang, value);
    let Some(hits) = hits.filter(|h| !h.is_empty()) else {
        return html! { td { (text) } };
    };
    let mut rules: Vec<&str> = Vec::new();
    for hit in hits {
        if !rules.contains(&hit.rule.as_str()) {
            rules.push(&hit.rule);
        }
    }
    let classes: Vec<&str> = rules.iter().copied().filter_map(flag_class).collect();
    html! {
        td class=(classes.join(" ")) data-flags=(rules.join(" ")) {
            (text)
            @for hit in hits {
                " " (rule_badge(lang, &hit.rule, Some(hit.detail.as_str())))
            }
        }
    }
}

/// Rows the checks removed, and withheld aggregates that are not output columns: the
/// rule and its detail, never a value.
fn removed_section(lang: Lang, hits: &[Hit]) -> Markup {
    let removed: Vec<&Hit> = hits.iter().filter(|h| h.released_row.is_none()).collect();
    let hidden: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.released_row.is_some() && h.column.is_none())
        .collect();
    html! {
        section aria-labelledby="removed" {
            h2 id="removed" { (t(lang, "review.removed.title")) }
            @if removed.is_empty() {
                p.muted data-removed="0" { (t(lang, "review.removed.none")) }
            } @else {
                ul data-removed=(removed.len()) {
                    @for hit in &removed {
                        li {
                            (tf(lang, "review.removed.row", &[("row", &optional_number(hit.row))]))
                            " " (rule_badge(lang, &hit.rule, None)) " " (hit.detail)
                        }
                    }
                }
            }
            @if !hidden.is_empty() {
                h3 { (t(lang, "review.removed.hidden")) }
                ul {
                    @for hit in &hidden {
                        li {
                            (tf(lang, "review.removed.row", &[("row", &optional_number(hit.released_row))]))
                            " " (rule_badge(lang, &hit.rule, None)) " " (hit.detail)
                        }
                    }
                }
            }
        }
    }
}

/// The diff against the previous release, or why there is none.
fn diff_section(lang: Lang, comparison: &Comparison) -> Markup {
    html! {
        section aria-labelledby="diff" {
            h2 id="diff" { (t(lang, "review.diff.title")) }
            @match comparison {
                Comparison::Nothing => {
                    p.muted data-previous="" { (t(lang, "review.diff.none")) }
                }
                Comparison::Unavailable(previous) => {
                    (previous_line(lang, previous))
                    p.notice { (t(lang, "review.diff.unavailable")) }
                }
                Comparison::Refused(previous, detail) => {
                    (previous_line(lang, previous))
                    p.error { (detail) }
                }
                Comparison::Drawn(previous, diff) => {
                    (previous_line(lang, previous))
                    (diff_table(lang, diff))
                }
            }
        }
    }
}

/// Which release the output is compared with, and why that one.
fn previous_line(lang: Lang, previous: &PreviousJson) -> Markup {
    let why = match previous.matched_by.as_str() {
        "model" => t(lang, "review.diff.same_model"),
        _ => t(lang, "review.diff.same_grant"),
    };
    let seq = previous
        .release_seq
        .map(|s| s.to_string())
        .unwrap_or_default();
    html! {
        p data-previous=(previous.output_id) {
            (tf(lang, "review.diff.against", &[
                ("output", &previous.output_id),
                ("time", &china_time(previous.created_ms)),
            ]))
            " (" (why) ", " code { (previous.model_id) }
            @if !seq.is_empty() {
                ", " (tf(lang, "review.field.release_seq", &[("seq", &seq)]))
            }
            ")"
        }
    }
}

/// The changed rows of a diff, with its counts.
fn diff_table(lang: Lang, diff: &Diff) -> Markup {
    let keys = if diff.keys.is_empty() {
        t(lang, "review.diff.no_keys").to_owned()
    } else {
        diff.keys.join(", ")
    };
    let counts = tf(
        lang,
        "review.diff.counts",
        &[
            ("added_rows", &diff.added_rows.to_string()),
            ("removed_rows", &diff.removed_rows.to_string()),
            ("changed", &diff.changed_cells.to_string()),
            ("added", &diff.added_cells.to_string()),
            ("removed", &diff.removed_cells.to_string()),
            ("unchanged", &diff.unchanged_rows.to_string()),
        ],
    );
    let shown = diff.rows.len().min(DIFF_ROWS);
    html! {
        p data-diff-counts=(format!("{},{},{},{},{}", diff.added_rows, diff.removed_rows, diff.changed_cells, diff.added_cells, diff.removed_cells)) {
            (counts)
        }
        p.muted { (tf(lang, "review.diff.keys", &[("keys", &keys)])) }
        @if diff.rows.is_empty() {
            p.muted { (t(lang, "review.diff.identical")) }
        } @else {
            @if shown < diff.rows.len() {
                p.notice { (tf(lang, "review.diff.truncated", &[("rows", &shown.to_string())])) }
            }
            div.table-scroll {
                table.table data-diff-table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "review.diff.change")) }
                            @for column in &diff.columns {
                                th scope="col" { (column) }
                            }
                        }
                    }
                    tbody {
                        @for row in diff.rows.iter().take(shown) {
                            @let (marker, label) = match row.change {
                                RowChange::Added => ("added-row", t(lang, "review.diff.row_added")),
                                RowChange::Removed => ("removed-row", t(lang, "review.diff.row_removed")),
                                RowChange::Kept => ("changed-row", t(lang, "review.diff.row_changed")),
                            };
                            tr class=(format!("diff-{marker}")) data-diff=(marker) {
                                th scope="row" { span.badge { (label) } }
                                @for cell in &row.cells {
                                    (diff_cell(lang, cell))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One cell of a diff: old → new when changed, the value with a badge when added or
/// removed.
fn diff_cell(lang: Lang, cell: &DiffCell) -> Markup {
    match cell {
        DiffCell::Same(value) => html! { td { (cell_text(lang, value)) } },
        DiffCell::Changed(old, new) => html! {
            td.diff-changed data-diff="changed" {
                (format!("{} → {}", cell_text(lang, old), cell_text(lang, new)))
                " " span.badge { (t(lang, "review.diff.changed")) }
            }
        },
        DiffCell::Added(value) => html! {
            td.diff-added data-diff="added" {
                (cell_text(lang, value)) " " span.badge { (t(lang, "review.diff.added")) }
            }
        },
        DiffCell::Removed(value) => html! {
            td.diff-removed data-diff="removed" {
                (cell_text(lang, value)) " " span.badge { (t(lang, "review.diff.removed")) }
            }
        },
        DiffCell::Absent => html! { td {} },
    }
}

/// The votes the viewer may see and, while the output awaits the viewer, the form.
fn votes_section(viewer: &Viewer, output: &OutputJson) -> Markup {
    let lang = viewer.lang;
    let undecided = output.status == "quarantined";
    let mine = voted(viewer, output);
    html! {
        section aria-labelledby="votes" {
            h2 id="votes" { (t(lang, "review.votes.title")) }
            p data-votes=(output.votes) data-required=(output.required_reviews) {
                (votes_text(lang, output))
            }
            @if undecided {
                p.muted { (t(lang, "review.votes.hidden")) }
            }
            @if let Some(reason) = &output.reason {
                p { (t(lang, "review.votes.outcome")) " " (reason) }
            }
            @if !output.reviews.is_empty() {
                table.table data-reviews=(output.reviews.len()) {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "review.field.reviewer")) }
                            th scope="col" { (t(lang, "review.field.decision")) }
                            th scope="col" { (t(lang, "review.field.comment")) }
                            th scope="col" { (t(lang, "review.field.time")) }
                        }
                    }
                    tbody {
                        @for review in &output.reviews {
                            tr {
                                td { code { (review.reviewer_org) } " / " code { (review.reviewer_key) } }
                                td data-decision=(review.decision) { (decision_label(lang, &review.decision)) }
                                td { (review.reason) }
                                td { (china_time(review.created_ms)) }
                            }
                        }
                    }
                }
            }
            @if undecided && mine {
                p.notice { (t(lang, "review.votes.yours_recorded")) }
            }
            @if undecided && !mine {
                form.form method="post" action=(format!("/review/outputs/{}", output.id)) {
                    (csrf_field(viewer))
                    p.muted { (t(lang, "review.vote.help")) }
                    label for="review-reason" { (t(lang, "review.vote.reason")) }
                    textarea id="review-reason" name="reason" rows="4" maxlength="4000" required {}
                    div {
                        button type="submit" name="decision" value="approve" {
                            (t(lang, "review.vote.approve"))
                        }
                        " "
                        button type="submit" name="decision" value="return" {
                            (t(lang, "review.vote.return"))
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The vote.
// ---------------------------------------------------------------------------------

/// The vote form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VoteForm {
    csrf: String,
    /// `approve` or `return` (rejected with the comment as its reason).
    decision: String,
    reason: String,
}

/// `POST /review/outputs/{id}`: the vote, through `POST /v1/review/{id}`; the API's
/// refusal (403 for the author's organisation, 409 for a decided output or a second
/// vote, 422 for an empty comment) is the page's.
async fn vote(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let lang = viewer.lang;
    let id = output_id(&id, lang)?;
    let approve = match form.decision.as_str() {
        "approve" => true,
        "return" => false,
        _ => {
            return Err(PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                t(lang, "review.vote.pick"),
                lang,
            ));
        }
    };
    let body = json!({"approve": approve, "reason": form.reason});
    let _decided: Value = portal
        .send(&viewer, Method::POST, &format!("/v1/review/{id}"), &body)
        .await?;
    Ok(Redirect::to(&format!("/review/outputs/{id}")).into_response())
}

// ---------------------------------------------------------------------------------
// The CSV summary.
// ---------------------------------------------------------------------------------

/// `GET /review/outputs/{id}/summary.csv`.
async fn summary_csv(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = output_id(&id, viewer.lang)?;
    let item: Item = portal.get(&viewer, &format!("/v1/review/{id}")).await?;
    let body = summary_text(&item.output.id, &item.output.check_report);
    // The id is a checked `out_…` id, safe inside the quoted file name.
    let disposition = format!("attachment; filename=\"{id}-summary.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// The CSV header of the summary.
const CSV_HEADER: [&str; 6] = [
    "output_id",
    "row",
    "released_row",
    "column",
    "rule",
    "detail",
];

/// The summary of a report: one line per hit, then totals (`row` = `total`): hits by
/// rule, all hits, and the report's counters.
fn summary_text(output_id: &str, report: &Value) -> String {
    let hits = hits_of(report);
    let mut out = csv_line(&CSV_HEADER);
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for hit in &hits {
        *by_rule.entry(hit.rule.as_str()).or_default() += 1;
        let row = hit.row.map(|r| r.to_string()).unwrap_or_default();
        let released = hit.released_row.map(|r| r.to_string()).unwrap_or_default();
        out.push_str(&csv_line(&[
            output_id,
            &row,
            &released,
            hit.column.as_deref().unwrap_or_default(),
            &hit.rule,
            &hit.detail,
        ]));
    }
    for (rule, count) in &by_rule {
        out.push_str(&csv_line(&[
            output_id,
            "total",
            "",
            "",
            rule,
            &count.to_string(),
        ]));
    }
    out.push_str(&csv_line(&[
        output_id,
        "total",
        "",
        "",
        "hits",
        &hits.len().to_string(),
    ]));
    for counter in [
        "cells_total",
        "cells_suppressed",
        "values_suppressed",
        "values_released",
    ] {
        if let Some(n) = report.get(counter).and_then(Value::as_u64) {
            out.push_str(&csv_line(&[
                output_id,
                "total",
                "",
                "",
                counter,
                &n.to_string(),
            ]));
        }
    }
    out
}

/// One CSV line (CRLF-terminated, as RFC 4180 has it).
fn csv_line(fields: &[&str]) -> String {
    let mut line = fields
        .iter()
        .copied()
        .map(csv_field)
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// One CSV field: neutralised against formula injection (a leading `'` before `=`, `+`,
/// `-`, `@`, a tab or a carriage return), then quoted when it holds a comma, a quote or
/// a line break.
fn csv_field(value: &str) -> String {
    let neutral = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

// ---------------------------------------------------------------------------------
// Which columns are group keys: a reading of the model text.
// ---------------------------------------------------------------------------------

/// A token of a SQL text, as far as finding its `SELECT` items needs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// An identifier or keyword: lower-cased unless quoted (as DataFusion names
    /// columns).
    Word {
        text: String,
        quoted: bool,
    },
    Open,
    Close,
    Comma,
    Dot,
    /// Anything else: operators, numbers, string literals.
    Other,
}

/// Splits SQL into tokens, skipping comments and string literals.
fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && at(i + 1) == Some('-') {
            while at(i).is_some_and(|c| c != '\n') {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            i += 2;
            while let Some(inner) = at(i) {
                if inner == '*' && at(i + 1) == Some('/') {
                    break;
                }
                i += 1;
            }
            i += 2;
        } else if matches!(c, '\'' | '"' | '`') {
            // A quoted run; a doubled quote stands for itself.
            let mut text = String::new();
            i += 1;
            while let Some(inner) = at(i) {
                if inner == c {
                    if at(i + 1) == Some(c) {
                        text.push(c);
                        i += 2;
                        continue;
                    }
                    break;
                }
                text.push(inner);
                i += 1;
            }
            i += 1;
            tokens.push(if c == '\'' {
                Token::Other
            } else {
                Token::Word { text, quoted: true }
            });
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                i += 1;
            }
            let text: String = chars.get(start..i).unwrap_or_default().iter().collect();
            tokens.push(Token::Word {
                text: text.to_lowercase(),
                quoted: false,
            });
        } else if c.is_ascii_digit() {
            while at(i).is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_') {
                i += 1;
            }
            tokens.push(Token::Other);
        } else {
            tokens.push(match c {
                '(' => Token::Open,
                ')' => Token::Close,
                ',' => Token::Comma,
                '.' => Token::Dot,
                _ => Token::Other,
            });
            i += 1;
        }
    }
    tokens
}

/// Whether `token` is the unquoted keyword `word`.
fn is_keyword(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word { text, quoted: false } if text == word)
}

/// Keywords that end a `SELECT` list.
const SELECT_LIST_END: [&str; 12] = [
    "from",
    "where",
    "group",
    "having",
    "order",
    "limit",
    "offset",
    "union",
    "except",
    "intersect",
    "window",
    "qualify",
];

/// Words that end an expression but are not an implicit alias (`CASE … END`,
/// `x IS NULL`).
const NOT_ALIASES: [&str; 16] = [
    "end", "null", "true", "false", "and", "or", "not", "is", "then", "else", "when", "in", "like",
    "between", "distinct", "all",
];

/// The items of every `SELECT` list in `tokens`, each with its output name when it
/// has one (an alias, or a plain column's name) and its expression.
fn select_items(tokens: &[Token]) -> Vec<(Option<String>, &[Token])> {
    let mut items = Vec::new();
    for (start, token) in tokens.iter().enumerate() {
        if !is_keyword(token, "select") {
            continue;
        }
        let mut from = start + 1;
        if tokens
            .get(from)
            .is_some_and(|t| is_keyword(t, "distinct") || is_keyword(t, "all"))
        {
            from += 1;
        }
        let mut depth = 0usize;
        let mut item_start = from;
        let mut end = tokens.len();
        for (j, token) in tokens.iter().enumerate().skip(from) {
            match token {
                Token::Open => depth += 1,
                Token::Close if depth == 0 => {
                    end = j;
                    break;
                }
                Token::Close => depth -= 1,
                Token::Comma if depth == 0 => {
                    items.push(named(tokens.get(item_start..j).unwrap_or_default()));
                    item_start = j + 1;
                }
                Token::Word {
                    text,
                    quoted: false,
                } if depth == 0 && SELECT_LIST_END.contains(&text.as_str()) => {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        let last = tokens.get(item_start..end).unwrap_or_default();
        if !last.is_empty() {
            items.push(named(last));
        }
    }
    items
}

/// A `SELECT` item's output name, if it has one, and its expression.
fn named(item: &[Token]) -> (Option<String>, &[Token]) {
    match item {
        [rest @ .., keyword, Token::Word { text, .. }] if is_keyword(keyword, "as") => {
            (Some(text.clone()), rest)
        }
        [Token::Word { text, .. }] => (Some(text.clone()), item),
        [.., Token::Dot, Token::Word { text, .. }]
            if item
                .iter()
                .all(|t| matches!(t, Token::Word { .. } | Token::Dot)) =>
        {
            (Some(text.clone()), item)
        }
        [rest @ .., before, Token::Word { text, quoted }]
            if matches!(before, Token::Close | Token::Word { .. })
                && (*quoted || !NOT_ALIASES.contains(&text.as_str())) =>
        {
            (Some(text.clone()), rest)
        }
        _ => (None, item),
    }
}

/// Whether an expression calls `COUNT`, `SUM` or `AVG`.
fn calls_aggregate(expression: &[Token]) -> bool {
    expression.windows(2).any(|pair| {
        matches!(pair, [Token::Word { text, quoted: false }, Token::Open]
            if matches!(text.as_str(), "count" | "sum" | "avg"))
    })
}

/// The output names the model text computes from aggregates: every `SELECT` item that
/// calls `COUNT`, `SUM` or `AVG`, or names (directly or through other items) one that
/// does, as an outer query over a derived table does.
fn measure_names(sql: &str) -> HashSet<String> {
    let tokens = tokenize(sql);
    let items: Vec<(String, &[Token])> = select_items(&tokens)
        .into_iter()
        .filter_map(|(name, expression)| name.map(|n| (n, expression)))
        .collect();
    let mut measures: HashSet<String> = HashSet::new();
    loop {
        let mut grew = false;
        for (name, expression) in &items {
            if measures.contains(name) {
                continue;
            }
            let names_a_measure = expression
                .iter()
                .any(|t| matches!(t, Token::Word { text, .. } if measures.contains(text)));
            if calls_aggregate(expression) || names_a_measure {
                measures.insert(name.clone());
                grew = true;
            }
        }
        if !grew {
            return measures;
        }
    }
}

/// Whether an output column is a measure: named so by the model text, a generated
/// aggregate name (`count(*)`, `sum(data.x)`), or the column of a rule hit.
fn is_measure(column: &str, measures: &HashSet<String>, flagged: &HashSet<&str>) -> bool {
    let lower = column.to_lowercase();
    measures.contains(column)
        || measures.contains(&lower)
        || flagged.contains(column)
        || ["count(", "sum(", "avg("]
            .iter()
            .any(|prefix| lower.starts_with(prefix))
}

// ---------------------------------------------------------------------------------
// The diff.
// ---------------------------------------------------------------------------------

/// What happened to a row since the previous release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowChange {
    Added,
    Removed,
    /// In both, with at least one cell changed, added or removed.
    Kept,
}

/// One cell of a diff.
#[derive(Clone, Debug, PartialEq)]
enum DiffCell {
    Same(Value),
    Changed(Value, Value),
    Added(Value),
    Removed(Value),
    /// The column is not in this row's table.
    Absent,
}

/// A row of a diff, its cells aligned with [`Diff::columns`].
#[derive(Clone, Debug, PartialEq)]
struct DiffRow {
    change: RowChange,
    cells: Vec<DiffCell>,
}

/// The difference between a previous release and an output: the rows that changed
/// (kept rows without a change are only counted) and the counts.
#[derive(Clone, Debug, Default, PartialEq)]
struct Diff {
    /// The group-key columns rows were matched by.
    keys: Vec<String>,
    /// Every column of either table: the new table's, then those only the old one has.
    columns: Vec<String>,
    rows: Vec<DiffRow>,
    unchanged_rows: usize,
    added_rows: usize,
    removed_rows: usize,
    changed_cells: usize,
    added_cells: usize,
    removed_cells: usize,
}

/// Whether two cell values are the same (numbers by value: `1` equals `1.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y).is_eq(),
            _ => x == y,
        },
        _ => a == b,
    }
}

/// A row's group key, as comparable text (a number by value, NULL apart from text).
fn row_key(row: &Value, keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| match row.get(k.as_str()) {
            None | Some(Value::Null) => "null".to_owned(),
            Some(Value::Number(n)) => format!("n:{}", n.as_f64().unwrap_or_default()),
            Some(Value::String(s)) => format!("s:{s}"),
            Some(other) => format!("o:{other}"),
        })
        .collect()
}

/// Diffs `new` against `old`, matching rows by the group-key columns (every column
/// that is not a measure, [`is_measure`]); rows with equal keys pair up in order.
fn diff_rows(
    old: &[Value],
    new: &[Value],
    measures: &HashSet<String>,
    flagged: &HashSet<&str>,
) -> Diff {
    let mut columns = columns_of(new);
    for column in columns_of(old) {
        if !columns.contains(&column) {
            columns.push(column);
        }
    }
    let keys: Vec<String> = columns
        .iter()
        .filter(|c| !is_measure(c, measures, flagged))
        .cloned()
        .collect();
    let mut diff = Diff {
        keys,
        ..Diff::default()
    };
    let mut unmatched: HashMap<Vec<String>, VecDeque<usize>> = HashMap::new();
    for (index, row) in old.iter().enumerate() {
        unmatched
            .entry(row_key(row, &diff.keys))
            .or_default()
            .push_back(index);
    }
    let mut matched = vec![false; old.len()];
    for row in new {
        let partner = unmatched
            .get_mut(&row_key(row, &diff.keys))
            .and_then(VecDeque::pop_front);
        let Some(index) = partner else {
            diff.added_rows += 1;
            let cells = one_sided(&columns, row, DiffCell::Added);
            diff.added_cells += cells.iter().filter(|c| **c != DiffCell::Absent).count();
            diff.rows.push(DiffRow {
                change: RowChange::Added,
                cells,
            });
            continue;
        };
        if let Some(seen) = matched.get_mut(index) {
            *seen = true;
        }
        let before = old.get(index).unwrap_or(&Value::Null);
        let cells: Vec<DiffCell> = columns
            .iter()
            .map(|c| match (before.get(c.as_str()), row.get(c.as_str())) {
                (Some(a), Some(b)) if same_value(a, b) => DiffCell::Same(b.clone()),
                (Some(a), Some(b)) => DiffCell::Changed(a.clone(), b.clone()),
                (None, Some(b)) => DiffCell::Added(b.clone()),
                (Some(a), None) => DiffCell::Removed(a.clone()),
                (None, None) => DiffCell::Absent,
            })
            .collect();
        let mut changed = false;
        for cell in &cells {
            match cell {
                DiffCell::Changed(..) => diff.changed_cells += 1,
                DiffCell::Added(_) => diff.added_cells += 1,
                DiffCell::Removed(_) => diff.removed_cells += 1,
                DiffCell::Same(_) | DiffCell::Absent => continue,
            }
            changed = true;
        }
        if changed {
            diff.rows.push(DiffRow {
                change: RowChange::Kept,
                cells,
            });
        } else {
            diff.unchanged_rows += 1;
        }
    }
    for (index, row) in old.iter().enumerate() {
        if matched.get(index).copied().unwrap_or(true) {
            continue;
        }
        diff.removed_rows += 1;
        let cells = one_sided(&columns, row, DiffCell::Removed);
        diff.removed_cells += cells.iter().filter(|c| **c != DiffCell::Absent).count();
        diff.rows.push(DiffRow {
            change: RowChange::Removed,
            cells,
        });
    }
    diff.columns = columns;
    diff
}

/// The cells of a row only one side has.
fn one_sided(columns: &[String], row: &Value, side: fn(Value) -> DiffCell) -> Vec<DiffCell> {
    columns
        .iter()
        .map(|c| row.get(c.as_str()).cloned().map_or(DiffCell::Absent, side))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn aggregates_and_the_names_that_carry_them_are_measures() {
        let sql = "SELECT district, COUNT(*) AS enterprises, \
                   COUNT(*) FILTER (WHERE industry = 'software, retail') AS \"=Soft\" \
                   FROM data GROUP BY district";
        assert_eq!(measure_names(sql), set(&["enterprises", "=Soft"]));
        // An outer query over a derived table names the inner aggregates.
        let nested = "select d, n * 2 as twice, n from (select district as d, sum(kwh) n \
                      from data group by district) t -- count(x) as not_this";
        assert_eq!(measure_names(nested), set(&["n", "twice"]));
        // A CASE … END key is no alias; a comment holds no item.
        let case = "SELECT CASE WHEN a > 1 THEN 'x' ELSE 'y' END, AVG(b) /* , SUM(c) AS z */ \
                    FROM data GROUP BY 1";
        assert!(measure_names(case).is_empty());
    }

    #[test]
    fn key_columns_exclude_measures_generated_names_and_flagged_columns() {
        let measures = set(&["enterprises"]);
        let flagged: HashSet<&str> = ["share"].into_iter().collect();
        assert!(is_measure("Enterprises", &measures, &flagged));
        assert!(is_measure("count(*)", &measures, &flagged));
        assert!(is_measure("share", &measures, &flagged));
        assert!(!is_measure("district", &measures, &flagged));
    }

    #[test]
    fn the_diff_matches_rows_by_key_and_names_every_change() {
        let old = vec![
            json!({"district": "Futian", "n": 44, "soft": null}),
            json!({"district": "Luohu", "n": 50, "soft": 20}),
            json!({"district": "Nanshan", "n": 60, "soft": 20}),
        ];
        let new = vec![
            json!({"district": "Futian", "n": 44.0, "soft": null}),
            json!({"district": "Nanshan", "n": 75, "soft": 20}),
            json!({"district": "Yantian", "n": 30, "soft": null}),
        ];
        let diff = diff_rows(&old, &new, &set(&["n", "soft"]), &HashSet::new());
        assert_eq!(diff.keys, ["district"]);
        assert_eq!(diff.unchanged_rows, 1);
        assert_eq!((diff.added_rows, diff.removed_rows), (1, 1));
        assert_eq!(diff.changed_cells, 1);
        assert_eq!((diff.added_cells, diff.removed_cells), (3, 3));
        assert_eq!(diff.rows.len(), 3);
        assert_eq!(diff.rows[0].change, RowChange::Kept);
        assert_eq!(
            diff.rows[0].cells[1],
            DiffCell::Changed(json!(60), json!(75))
        );
        assert_eq!(diff.rows[1].change, RowChange::Added);
        assert_eq!(diff.rows[2].change, RowChange::Removed);
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("@cmd"), "'@cmd");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        let report = json!({
            "cells_total": 3,
            "hits": [
                {"row": 0, "released_row": 0, "column": "=x", "rule": "threshold", "detail": "x is backed by fewer than 10 records; value set to NULL"},
                {"row": 2, "released_row": null, "column": null, "rule": "threshold", "detail": "row removed"}
            ]
        });
        let text = summary_text("out_1", &report);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "output_id,row,released_row,column,rule,detail");
        assert_eq!(
            lines[1],
            "out_1,0,0,'=x,threshold,x is backed by fewer than 10 records; value set to NULL"
        );
        assert_eq!(lines[2], "out_1,2,,,threshold,row removed");
        assert_eq!(lines[3], "out_1,total,,,threshold,2");
        assert_eq!(lines[4], "out_1,total,,,hits,2");
        assert_eq!(lines[5], "out_1,total,,,cells_total,3");
    }
}
