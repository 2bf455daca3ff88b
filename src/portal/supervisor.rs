//! The supervisor's and the data authority's pages.
//!
//! Supervisor (`/supervisor…`): an overview; the ledger browser, filtered by kind,
//! organisation and date range and paged forward; one entry with its payload, its
//! inclusion receipt against the latest checkpoint and the offline check with the real
//! `pdx ledger verify-receipt` command; "verify now", a polled job with a progress bar;
//! a product's lineage as a layered SVG graph; ε and queries spent against granted per
//! grant as bar charts; the compliance report; suspensions with suspend and reinstate
//! forms.
//!
//! Data authority (`/authority…`): catalog entries awaiting review (approve / return),
//! open-attribute change requests (approve / refuse), emergency relaxations, yearly
//! evaluations and rectification orders.
//!
//! Every page reads and acts through the JSON API in-process, as the viewer
//! ([`Portal::get`], [`Portal::send`]), so a page is refused exactly when its API call
//! is: the ledger pages list the organisations (`GET /v1/orgs`, supervisors and admins)
//! to name actors and to filter by them; the reports, lineage and suspension forms are
//! supervisor routes; the authority page reads the change requests (authority,
//! supervisors, providers for their own). The two pages backed only by routes every
//! role may read (the list of verification jobs, the list of products to trace) check
//! the viewer's role against the policy of the supervisor route they lead to, in the
//! one policy table ([`crate::http::policies`]).
//!
//! While a verification runs its page answers with a `Refresh: 2` header (no script:
//! the browser reloads it) and shows an HTML `<progress>` and a plain refresh link.

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Path, Query, State};
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use pdx_ids::{AttributeChangeId, DatasetId, JobId, ProductId, RectificationId};
use pdx_ledger::EntryKind;
use pdx_sandbox::verification::VERIFY_JOB_KIND;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Role;
use crate::http::policies::policy_for;
use crate::portal::Portal;
use crate::portal::api::{PageError, with_query};
use crate::portal::i18n::{Lang, t, tf};
use crate::portal::layout::{china_time, csrf_field, json_table, page};
use crate::portal::session::{Viewer, check_csrf};
use crate::portal::svg;

/// Entries per page of the ledger browser.
pub(crate) const LEDGER_PAGE: u32 = 50;
/// How long a running verification's page waits before the browser reloads it (s).
const REFRESH_SECONDS: &str = "2";
/// Largest public-key answer read (the key is one line).
const PUBLIC_KEY_LIMIT: usize = 16 * 1024;

/// The supervisor and data-authority pages.
pub fn routes() -> Router<Portal> {
    Router::new()
        .route("/supervisor", get(overview))
        .route("/supervisor/ledger", get(ledger))
        .route("/supervisor/ledger/{seq}", get(ledger_entry))
        .route(
            "/supervisor/ledger/{seq}/receipt.json",
            get(receipt_download),
        )
        .route(
            "/supervisor/verify",
            get(verify_page).post(start_verification),
        )
        .route("/supervisor/verify/{job_id}", get(verification_status))
        .route("/supervisor/lineage", get(lineage_index))
        .route("/supervisor/lineage/{product_id}", get(lineage))
        .route("/supervisor/budgets", get(budgets))
        .route("/supervisor/compliance", get(compliance))
        .route(
            "/supervisor/suspensions",
            get(suspensions).post(set_suspension),
        )
        .route("/authority", get(authority))
        .route("/authority/datasets/{id}/review", post(review_dataset))
        .route("/authority/changes/{id}/decision", post(decide_change))
        .route("/authority/relaxations", post(relax_attribute))
        .route("/authority/evaluations", post(publish_evaluation))
        .route("/authority/rectifications", post(issue_rectification))
        .route(
            "/authority/rectifications/{id}/close",
            post(close_rectification),
        )
}

// ---------------------------------------------------------------------------------
// Shared helpers

/// A JSON field's text, or "" when absent or not a string.
fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A JSON field as a number for people ("" when absent).
fn number(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A JSON array field's items (none when absent).
fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A query or form value that was actually given: trimmed, not empty.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn not_found(lang: Lang) -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        t(lang, "supervisor.error.not_found"),
        lang,
    )
}

fn internal(lang: Lang) -> PageError {
    PageError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        t(lang, "supervisor.error.internal"),
        lang,
    )
}

fn bad_request(lang: Lang, key: &str) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, t(lang, key), lang)
}

/// Admits the viewer as the policy of `method route` in the one policy table would:
/// 401 without a session, 403 for a role the route does not allow. For the pages whose
/// own API calls every role may make, so that they are refused as the supervisor route
/// they lead to is.
fn admit(viewer: &Viewer, method: &Method, route: &str) -> Result<(), PageError> {
    let lang = viewer.lang;
    let Some(role) = viewer.role() else {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            t(lang, "supervisor.error.sign_in"),
            lang,
        ));
    };
    match policy_for(method, route) {
        Some(policy) if policy.roles.contains(&role) => Ok(()),
        _ => Err(PageError::new(
            StatusCode::FORBIDDEN,
            t(lang, "supervisor.error.role"),
            lang,
        )),
    }
}

/// An organisation as `GET /v1/orgs` lists it.
#[derive(Debug, Deserialize)]
struct OrgRow {
    id: String,
    name: String,
    #[serde(default)]
    suspended: bool,
}

/// Every organisation (supervisors and admins; anyone else is refused, and so is the
/// page that asks).
async fn organisations(portal: &Portal, viewer: &Viewer) -> Result<Vec<OrgRow>, PageError> {
    portal.get(viewer, "/v1/orgs").await
}

fn org_names(orgs: &[OrgRow]) -> HashMap<String, String> {
    orgs.iter()
        .map(|o| (o.id.clone(), o.name.clone()))
        .collect()
}

/// "name (id)", or the id alone for an organisation not in the list.
fn org_label(names: &HashMap<String, String>, id: &str) -> String {
    match names.get(id) {
        Some(name) => format!("{name} ({id})"),
        None => id.to_string(),
    }
}

/// A time as RFC 3339 UTC (for `<time datetime>`), from ms since epoch.
fn rfc3339_utc(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A time for people, as `<time>` with its UTC value.
fn when(ms: i64) -> Markup {
    html! { time datetime=(rfc3339_utc(ms)) { (china_time(ms)) } }
}

/// A `YYYY-MM-DD` day, or None.
fn parse_day(day: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(day, format).ok()
}

/// 00:00 China time of `day` (plus `days_after` days) as RFC 3339: the ledger filter's
/// date range is in China time, as people read dates.
fn china_midnight(day: &str, days_after: i64, lang: Lang) -> Result<String, PageError> {
    let date = parse_day(day)
        .and_then(|d| d.checked_add(time::Duration::days(days_after)))
        .ok_or_else(|| bad_request(lang, "supervisor.error.bad_date"))?;
    Ok(format!("{date}T00:00:00+08:00"))
}

/// The first 16 hex digits of a hash, for tables (the entry page shows it whole).
fn short_hash(hash: &str) -> String {
    let cut: String = hash.chars().take(16).collect();
    if cut.len() < hash.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// A ledger entry kind for people, if this build names it.
fn kind_label(lang: Lang, kind: &str) -> Option<&'static str> {
    let key = match kind {
        "asset_certificate" => "supervisor.kind.asset_certificate",
        "open_attribute_change" => "supervisor.kind.open_attribute_change",
        "grant_decision" => "supervisor.kind.grant_decision",
        "grant_revocation" => "supervisor.kind.grant_revocation",
        "model_registration" => "supervisor.kind.model_registration",
        "release" => "supervisor.kind.release",
        "privacy_spend" => "supervisor.kind.privacy_spend",
        "product_listing" => "supervisor.kind.product_listing",
        "product_delisting" => "supervisor.kind.product_delisting",
        "transaction" => "supervisor.kind.transaction",
        "refund" => "supervisor.kind.refund",
        "remittance" => "supervisor.kind.remittance",
        "suspension" => "supervisor.kind.suspension",
        "objection" => "supervisor.kind.objection",
        "objection_answer" => "supervisor.kind.objection_answer",
        "fhe_query" => "supervisor.kind.fhe_query",
        "catalog_decision" => "supervisor.kind.catalog_decision",
        "catalog_revision" => "supervisor.kind.catalog_revision",
        "emergency_relaxation" => "supervisor.kind.emergency_relaxation",
        "destruction" => "supervisor.kind.destruction",
        "data_access" => "supervisor.kind.data_access",
        "open_data_request" => "supervisor.kind.open_data_request",
        "department_share" => "supervisor.kind.department_share",
        "evaluation" => "supervisor.kind.evaluation",
        "rectification" => "supervisor.kind.rectification",
        "classification_filing" => "supervisor.kind.classification_filing",
        _ => return None,
    };
    Some(t(lang, key))
}

/// An entry kind for people with its wire name (which the filter and the API use).
fn kind_cell(lang: Lang, kind: &str) -> Markup {
    html! {
        @if let Some(label) = kind_label(lang, kind) {
            (label) " "
        }
        code { (kind) }
    }
}

/// A status or action code for people, or the code itself if this page does not know it.
fn status_text(lang: Lang, code: &str) -> String {
    let key = match code {
        "queued" => "supervisor.status.queued",
        "running" => "supervisor.status.running",
        "succeeded" => "supervisor.status.succeeded",
        "failed" => "supervisor.status.failed",
        "pending_review" => "supervisor.status.pending_review",
        "listed" => "supervisor.status.listed",
        "rejected" => "supervisor.status.rejected",
        "delisted" => "supervisor.status.delisted",
        "suspended" => "supervisor.status.suspended",
        "reinstated" => "supervisor.status.reinstated",
        "pending" => "supervisor.status.pending",
        "approved" => "supervisor.status.approved",
        "refused" => "supervisor.status.refused",
        "revoked" => "supervisor.status.revoked",
        "issued" => "supervisor.status.issued",
        "responded" => "supervisor.status.responded",
        "closed" => "supervisor.status.closed",
        _ => return code.to_string(),
    };
    t(lang, key).to_string()
}

/// An open attribute for people.
fn open_attribute_text(lang: Lang, code: &str) -> String {
    let key = match code {
        "unconditional" => "authority.open.unconditional",
        "conditional" => "authority.open.conditional",
        "not_open" => "authority.open.not_open",
        _ => return code.to_string(),
    };
    t(lang, key).to_string()
}

/// A yes/no badge (text, not colour alone).
fn yes_no(lang: Lang, yes: bool) -> Markup {
    html! {
        span.badge { (t(lang, if yes { "supervisor.yes" } else { "supervisor.no" })) }
    }
}

// ---------------------------------------------------------------------------------
// Overview

/// The compliance report's lists, each with its heading and columns (message key,
/// JSON pointer into a row).
struct ComplianceSection {
    field: &'static str,
    heading: &'static str,
    columns: &'static [(&'static str, &'static str)],
}

const COMPLIANCE_SECTIONS: &[ComplianceSection] = &[
    ComplianceSection {
        field: "late_grant_applications",
        heading: "supervisor.compliance.late_grant_applications",
        columns: &[
            ("supervisor.col.grant", "/grant_id"),
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.applicant", "/applicant_org"),
            ("supervisor.col.provider", "/provider_org"),
            ("supervisor.col.deadline", "/answer_deadline"),
            ("supervisor.col.state", "/state"),
            ("supervisor.col.answered_on", "/answered_on"),
        ],
    },
    ComplianceSection {
        field: "late_objections",
        heading: "supervisor.compliance.late_objections",
        columns: &[
            ("supervisor.col.objection", "/objection_id"),
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.version", "/version"),
            ("supervisor.col.provider", "/provider_org"),
            ("supervisor.col.objector", "/objector_org"),
            ("supervisor.col.deadline", "/answer_deadline"),
            ("supervisor.col.state", "/state"),
            ("supervisor.col.answered_on", "/answered_on"),
            ("supervisor.col.seq", "/objection_seq"),
        ],
    },
    ComplianceSection {
        field: "late_catalog_reviews",
        heading: "supervisor.compliance.late_catalog_reviews",
        columns: &[
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.provider", "/provider_org"),
            ("supervisor.col.round", "/round"),
            ("supervisor.col.revision", "/revision"),
            ("supervisor.col.deadline", "/review_due"),
            ("supervisor.col.state", "/state"),
            ("supervisor.col.answered_on", "/answered_on"),
            ("supervisor.col.decision", "/decision"),
        ],
    },
    ComplianceSection {
        field: "late_catalog_revisions",
        heading: "supervisor.compliance.late_catalog_revisions",
        columns: &[
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.provider", "/provider_org"),
            ("supervisor.col.revision", "/revision"),
            ("supervisor.col.legal_change_date", "/legal_change_date"),
            ("supervisor.col.deadline", "/update_due"),
            ("supervisor.col.revised_on", "/revised_on"),
        ],
    },
    ComplianceSection {
        field: "late_share_decisions",
        heading: "supervisor.compliance.late_share_decisions",
        columns: &[
            ("supervisor.col.share", "/share_id"),
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.owner", "/owner_org"),
            ("supervisor.col.requester", "/requester_org"),
            ("supervisor.col.deadline", "/answer_deadline"),
            ("supervisor.col.state", "/state"),
            ("supervisor.col.answered_on", "/answered_on"),
        ],
    },
    ComplianceSection {
        field: "late_open_data_requests",
        heading: "supervisor.compliance.late_open_data_requests",
        columns: &[
            ("supervisor.col.request", "/request_id"),
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.provider", "/provider_org"),
            ("supervisor.col.deadline", "/answer_due"),
            ("supervisor.col.state", "/state"),
            ("supervisor.col.answered_on", "/answered_on"),
        ],
    },
    ComplianceSection {
        field: "late_corrections",
        heading: "supervisor.compliance.late_corrections",
        columns: &[
            ("supervisor.col.objection", "/objection_id"),
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.provider", "/provider_org"),
            ("supervisor.col.accepted_on", "/accepted_on"),
            ("supervisor.col.deadline", "/correction_due"),
            ("supervisor.col.state", "/state"),
            ("supervisor.col.corrected_on", "/corrected_on"),
        ],
    },
    ComplianceSection {
        field: "overdue_updates",
        heading: "supervisor.compliance.overdue_updates",
        columns: &[
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.provider", "/provider_org"),
            ("supervisor.col.update_frequency", "/update_frequency"),
            ("supervisor.col.version", "/latest_version"),
            ("supervisor.col.last_version_on", "/last_version_on"),
            ("supervisor.col.deadline", "/next_version_due"),
        ],
    },
    ComplianceSection {
        field: "open_rectifications",
        heading: "supervisor.compliance.open_rectifications",
        columns: &[
            ("supervisor.col.order", "/order_id"),
            ("supervisor.col.org", "/org_id"),
            ("supervisor.col.authority", "/authority_org"),
            ("supervisor.col.deadline", "/deadline"),
            ("supervisor.col.status", "/status"),
            ("supervisor.col.overdue", "/overdue"),
        ],
    },
    ComplianceSection {
        field: "expiring_grants",
        heading: "supervisor.compliance.expiring_grants",
        columns: &[
            ("supervisor.col.grant", "/grant_id"),
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.applicant", "/applicant_org"),
            ("supervisor.col.provider", "/provider_org"),
            ("supervisor.col.days_left", "/days_left"),
        ],
    },
    ComplianceSection {
        field: "expired_certificates",
        heading: "supervisor.compliance.expired_certificates",
        columns: &[
            ("supervisor.col.certificate", "/certificate_no"),
            ("supervisor.col.dataset", "/dataset_id"),
            ("supervisor.col.version", "/version"),
            ("supervisor.col.provider", "/provider_org"),
            ("supervisor.col.valid_until", "/valid_until"),
            ("supervisor.col.seq", "/certificate_seq"),
        ],
    },
    ComplianceSection {
        field: "under_reviewed_releases",
        heading: "supervisor.compliance.under_reviewed_releases",
        columns: &[
            ("supervisor.col.release", "/release_id"),
            ("supervisor.col.output", "/output_id"),
            ("supervisor.col.developer", "/developer_org"),
            ("supervisor.col.required_reviews", "/required_reviews"),
            ("supervisor.col.approvals", "/approvals"),
            ("supervisor.col.approving_orgs", "/approving_orgs"),
        ],
    },
];

/// Items on the compliance report, over every list.
fn compliance_items(report: &Value) -> usize {
    COMPLIANCE_SECTIONS
        .iter()
        .map(|s| items(report, s.field).len())
        .sum()
}

async fn overview(State(portal): State<Portal>, viewer: Viewer) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let report: Value = portal.get(&viewer, "/v1/audit/compliance").await?;
    let suspensions: Value = portal.get(&viewer, "/v1/audit/suspensions").await?;
    let open_items = compliance_items(&report).to_string();
    let suspended = items(&suspensions, "suspended").len().to_string();
    let links: [(&str, &str, &str); 7] = [
        (
            "/supervisor/ledger",
            "supervisor.ledger.title",
            "supervisor.overview.ledger",
        ),
        (
            "/supervisor/verify",
            "supervisor.verify.title",
            "supervisor.overview.verify",
        ),
        (
            "/supervisor/lineage",
            "supervisor.lineage.index_title",
            "supervisor.overview.lineage",
        ),
        (
            "/supervisor/budgets",
            "supervisor.budgets.title",
            "supervisor.overview.budgets",
        ),
        (
            "/supervisor/compliance",
            "supervisor.compliance.title",
            "supervisor.overview.compliance",
        ),
        (
            "/supervisor/suspensions",
            "supervisor.suspensions.title",
            "supervisor.overview.suspensions",
        ),
        (
            "/authority",
            "authority.title",
            "supervisor.overview.authority",
        ),
    ];
    let body = html! {
        h1 { (t(lang, "supervisor.title")) }
        p { (t(lang, "supervisor.overview.intro")) }
        p {
            (tf(lang, "supervisor.overview.open_items", &[("n", open_items.as_str())])) " "
            @if report["clean"].as_bool().unwrap_or(false) {
                span.badge { (t(lang, "supervisor.compliance.clean")) }
            }
        }
        p { (tf(lang, "supervisor.overview.suspended", &[("n", suspended.as_str())])) }
        div.grid {
            @for (href, title, description) in links {
                div.card {
                    h2 { a href=(href) { (t(lang, title)) } }
                    p { (t(lang, description)) }
                }
            }
        }
    };
    Ok(page(&viewer, t(lang, "supervisor.title"), body))
}

// ---------------------------------------------------------------------------------
// Ledger browser

/// The ledger browser's filters (all optional; dates are China-time days).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LedgerQuery {
    kind: Option<String>,
    org: Option<String>,
    since: Option<String>,
    until: Option<String>,
    from: Option<String>,
}

/// An entry as the ledger API lists it (the fields shown).
#[derive(Debug, Deserialize)]
struct EntryRow {
    seq: u64,
    timestamp_ms: i64,
    kind: String,
    actor: ActorRow,
    entry_hash: String,
}

#[derive(Debug, Deserialize)]
struct ActorRow {
    org: String,
}

#[derive(Debug, Deserialize)]
struct EntryPage {
    entries: Vec<EntryRow>,
    next_from: Option<u64>,
}

/// The ledger browser's `from` checked, and its day range as the API's times: from
/// 00:00 (China time) of `since` to 00:00 after `until` (400 for a bad one).
fn ledger_range(
    from: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
    lang: Lang,
) -> Result<(Option<String>, Option<String>), PageError> {
    if from.is_some_and(|f| f.parse::<u64>().is_err()) {
        return Err(bad_request(lang, "supervisor.error.bad_from"));
    }
    let since_at = since.map(|d| china_midnight(d, 0, lang)).transpose()?;
    let until_at = until.map(|d| china_midnight(d, 1, lang)).transpose()?;
    Ok((since_at, until_at))
}

async fn ledger(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<LedgerQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let kind = given(&query.kind);
    let org = given(&query.org);
    let since = given(&query.since);
    let until = given(&query.until);
    let from = given(&query.from);
    let (since_at, until_at) = match ledger_range(from, since, until, lang) {
        Ok(range) => range,
        Err(bad) => {
            // A viewer the API refuses hears that first, whatever the filters say.
            organisations(&portal, &viewer).await?;
            return Err(bad);
        }
    };
    let limit = LEDGER_PAGE.to_string();
    let api_path = with_query(
        "/v1/ledger/entries",
        &[
            ("kind", kind.unwrap_or_default()),
            ("org", org.unwrap_or_default()),
            ("since", since_at.as_deref().unwrap_or_default()),
            ("until", until_at.as_deref().unwrap_or_default()),
            ("from", from.unwrap_or_default()),
            ("limit", limit.as_str()),
        ],
    );
    // The organisations (to name actors and to filter by) and the entries are two
    // independent API calls: made together, the page waits for the longer one only.
    let (orgs, listed) = tokio::join!(
        organisations(&portal, &viewer),
        portal.get::<EntryPage>(&viewer, &api_path),
    );
    let (orgs, listed) = (orgs?, listed?);
    let names = org_names(&orgs);
    let link_from = |start: &str| {
        with_query(
            "/supervisor/ledger",
            &[
                ("kind", kind.unwrap_or_default()),
                ("org", org.unwrap_or_default()),
                ("since", since.unwrap_or_default()),
                ("until", until.unwrap_or_default()),
                ("from", start),
            ],
        )
    };
    let next = listed.next_from.map(|n| link_from(n.to_string().as_str()));
    let first = from.map(|_| link_from(""));
    let body = html! {
        h1 { (t(lang, "supervisor.ledger.title")) }
        p { (t(lang, "supervisor.ledger.intro")) }
        form.form method="get" action="/supervisor/ledger" {
            label for="ledger-kind" { (t(lang, "supervisor.ledger.kind")) }
            select #ledger-kind name="kind" {
                option value="" { (t(lang, "supervisor.ledger.all_kinds")) }
                @for name in EntryKind::known_names() {
                    option value=(name) selected[kind == Some(name)] {
                        (kind_label(lang, name).unwrap_or(name)) " (" (name) ")"
                    }
                }
            }
            label for="ledger-org" { (t(lang, "supervisor.ledger.org")) }
            select #ledger-org name="org" {
                option value="" { (t(lang, "supervisor.ledger.all_orgs")) }
                @for o in &orgs {
                    option value=(o.id) selected[org == Some(o.id.as_str())] {
                        (o.name) " (" (o.id) ")"
                    }
                }
            }
            label for="ledger-since" { (t(lang, "supervisor.ledger.since")) }
            input #ledger-since type="date" name="since" value=[since];
            label for="ledger-until" { (t(lang, "supervisor.ledger.until")) }
            input #ledger-until type="date" name="until" value=[until];
            button type="submit" { (t(lang, "supervisor.ledger.filter")) }
            " "
            a href="/supervisor/ledger" { (t(lang, "supervisor.ledger.clear")) }
        }
        @if listed.entries.is_empty() {
            p.muted { (t(lang, "supervisor.ledger.none")) }
        } @else {
            table.table {
                caption { (t(lang, "supervisor.ledger.caption")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "supervisor.col.seq")) }
                        th scope="col" { (t(lang, "supervisor.col.time")) }
                        th scope="col" { (t(lang, "supervisor.col.kind")) }
                        th scope="col" { (t(lang, "supervisor.col.actor")) }
                        th scope="col" { (t(lang, "supervisor.col.entry_hash")) }
                    }
                }
                tbody {
                    @for e in &listed.entries {
                        tr data-kind=(e.kind) {
                            td { a href={ "/supervisor/ledger/" (e.seq) } { (e.seq) } }
                            td { (when(e.timestamp_ms)) }
                            td { (kind_cell(lang, &e.kind)) }
                            td { (org_label(&names, &e.actor.org)) }
                            td { code { (short_hash(&e.entry_hash)) } }
                        }
                    }
                }
            }
        }
        nav aria-label=(t(lang, "supervisor.ledger.paging")) {
            @if let Some(href) = &first {
                a href=(href) { (t(lang, "supervisor.ledger.first_page")) } " "
            }
            @if let Some(href) = &next {
                a href=(href) rel="next" { (t(lang, "supervisor.ledger.next_page")) }
            }
        }
    };
    Ok(page(&viewer, t(lang, "supervisor.ledger.title"), body))
}

/// The log's public key in verifier-key form (`GET /v1/ledger/public-key`, text).
async fn public_key(portal: &Portal, viewer: &Viewer) -> Result<String, PageError> {
    let lang = viewer.lang;
    let request = Request::builder()
        .method(Method::GET)
        .uri("/v1/ledger/public-key")
        .body(Body::empty())
        .map_err(|_| internal(lang))?;
    let response = portal.raw(viewer, request).await?;
    let status = response.status();
    if !status.is_success() {
        return Err(PageError::new(
            status,
            t(lang, "supervisor.error.public_key"),
            lang,
        ));
    }
    let bytes = axum::body::to_bytes(response.into_body(), PUBLIC_KEY_LIMIT)
        .await
        .map_err(|_| internal(lang))?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// A seq from the path, or 404 (as the API answers for an absent entry).
fn seq_of(raw: &str, lang: Lang) -> Result<u64, PageError> {
    raw.parse().map_err(|_| not_found(lang))
}

async fn ledger_entry(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_seq): Path<String>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let seq = seq_of(&raw_seq, lang)?;
    let orgs = organisations(&portal, &viewer).await?;
    let names = org_names(&orgs);
    let receipt: Value = portal
        .get(&viewer, &format!("/v1/ledger/receipt/{seq}"))
        .await?;
    let key = public_key(&portal, &viewer).await?;
    let entry = &receipt["entry"];
    let kind = text(entry, "kind");
    let timestamp_ms = entry["timestamp_ms"].as_i64().unwrap_or(0);
    let payload = text(entry, "payload");
    let pretty_payload = serde_json::from_str::<Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_string());
    let checkpoint = text(&receipt, "checkpoint");
    let origin = checkpoint.lines().next().unwrap_or_default();
    let tree_size = number(&receipt, "tree_size");
    let proof: Vec<&str> = items(&receipt, "inclusion_proof")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let file = format!("receipt-{seq}.json");
    let fetch_command = format!(
        "curl -fsS -H \"Authorization: Bearer $PDX_API_KEY\" \"$PDX_URL/v1/ledger/receipt/{seq}\" -o {file}"
    );
    let verify_command = format!("pdx ledger verify-receipt {file} --key '{key}'");
    let expected = format!("ok: entry {seq} ({kind}) is in the log {origin} at size {tree_size}");
    let title = tf(
        lang,
        "supervisor.entry.title",
        &[("seq", seq.to_string().as_str())],
    );
    let body = html! {
        h1 { (title) }
        dl {
            dt { (t(lang, "supervisor.col.kind")) }
            dd data-kind=(kind) { (kind_cell(lang, kind)) }
            dt { (t(lang, "supervisor.col.time")) }
            dd { (when(timestamp_ms)) " · " code { (rfc3339_utc(timestamp_ms)) } }
            dt { (t(lang, "supervisor.col.actor")) }
            dd { (org_label(&names, text(&entry["actor"], "org"))) }
            dt { (t(lang, "supervisor.entry.actor_key")) }
            dd { code { (text(&entry["actor"], "key_id")) } }
            dt { (t(lang, "supervisor.entry.payload_hash")) }
            dd { code { (text(entry, "payload_hash")) } }
            dt { (t(lang, "supervisor.entry.prev_hash")) }
            dd { code { (text(entry, "prev_hash")) } }
            dt { (t(lang, "supervisor.col.entry_hash")) }
            dd { code { (text(entry, "entry_hash")) } }
        }
        h2 { (t(lang, "supervisor.entry.payload")) }
        pre { code { (pretty_payload) } }
        h2 { (t(lang, "supervisor.entry.receipt")) }
        p { (tf(lang, "supervisor.entry.receipt_intro", &[("size", tree_size.as_str()), ("origin", origin)])) }
        h3 { (t(lang, "supervisor.entry.proof")) }
        @if proof.is_empty() {
            p.muted { (t(lang, "supervisor.entry.proof_empty")) }
        } @else {
            ol { @for hash in &proof { li { code { (hash) } } } }
        }
        h3 { (t(lang, "supervisor.entry.checkpoint")) }
        pre { code { (checkpoint) } }
        h2 { (t(lang, "supervisor.entry.offline")) }
        ol {
            li {
                (t(lang, "supervisor.entry.step_download")) " "
                a href={ "/supervisor/ledger/" (seq) "/receipt.json" } download=(file) { (file) }
                " " (t(lang, "supervisor.entry.step_download_or"))
                pre { code { (fetch_command) } }
            }
            li {
                (t(lang, "supervisor.entry.step_verify"))
                pre { code { (verify_command) } }
            }
            li {
                (t(lang, "supervisor.entry.step_expect"))
                pre { code { (expected) } }
            }
        }
        p.muted { (t(lang, "supervisor.entry.key_note")) }
        nav aria-label=(t(lang, "supervisor.ledger.paging")) {
            @if seq > 0 {
                a href={ "/supervisor/ledger/" (seq - 1) } rel="prev" { (t(lang, "supervisor.entry.previous")) } " "
            }
            a href={ "/supervisor/ledger/" (seq + 1) } rel="next" { (t(lang, "supervisor.entry.next")) } " "
            a href=(with_query("/supervisor/ledger", &[("kind", kind)])) { (t(lang, "supervisor.entry.same_kind")) }
        }
    };
    Ok(page(&viewer, &title, body))
}

/// The entry's receipt as a file, to check offline.
async fn receipt_download(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_seq): Path<String>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let seq = seq_of(&raw_seq, lang)?;
    // Refused as the entry page is.
    organisations(&portal, &viewer).await?;
    let receipt: Value = portal
        .get(&viewer, &format!("/v1/ledger/receipt/{seq}"))
        .await?;
    let body = serde_json::to_string_pretty(&receipt).map_err(|_| internal(lang))?;
    let disposition = format!("attachment; filename=\"receipt-{seq}.json\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------
// Verify now

/// A job as `GET /v1/jobs` lists it (the fields shown).
#[derive(Debug, Deserialize)]
struct JobRow {
    id: String,
    kind: String,
    status: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    progress: f64,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    created_ms: i64,
}

impl JobRow {
    fn finished(&self) -> bool {
        self.status == "succeeded" || self.status == "failed"
    }
}

/// The policy the verification pages are refused by: starting a verification.
const VERIFY_ROUTE: &str = "/v1/audit/verify";

/// A form whose only field is the CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

async fn verify_page(State(portal): State<Portal>, viewer: Viewer) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    admit(&viewer, &Method::POST, VERIFY_ROUTE)?;
    let jobs: Vec<JobRow> = portal.get(&viewer, "/v1/jobs").await?;
    let verifications: Vec<&JobRow> = jobs.iter().filter(|j| j.kind == VERIFY_JOB_KIND).collect();
    let key = public_key(&portal, &viewer).await?;
    let offline = format!(
        "pdx ledger export --out ledger.jsonl\npdx ledger verify --export ledger.jsonl --key '{key}'"
    );
    let body = html! {
        h1 { (t(lang, "supervisor.verify.title")) }
        p { (t(lang, "supervisor.verify.intro")) }
        form.form method="post" action="/supervisor/verify" {
            (csrf_field(&viewer))
            button type="submit" { (t(lang, "supervisor.verify.start")) }
        }
        p.muted { (t(lang, "supervisor.verify.offline")) }
        pre { code { (offline) } }
        h2 { (t(lang, "supervisor.verify.recent")) }
        @if verifications.is_empty() {
            p.muted { (t(lang, "supervisor.verify.none")) }
        } @else {
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "supervisor.col.job")) }
                        th scope="col" { (t(lang, "supervisor.col.time")) }
                        th scope="col" { (t(lang, "supervisor.col.status")) }
                    }
                }
                tbody {
                    @for job in &verifications {
                        tr {
                            td { a href={ "/supervisor/verify/" (job.id) } { code { (job.id) } } }
                            td { (when(job.created_ms)) }
                            td { span.badge { (status_text(lang, &job.status)) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, t(lang, "supervisor.verify.title"), body))
}

async fn start_verification(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let job: JobRow = portal
        .send(&viewer, Method::POST, VERIFY_ROUTE, &json!({}))
        .await?;
    Ok(Redirect::to(&format!("/supervisor/verify/{}", job.id)))
}

async fn verification_status(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let id = JobId::parse(&raw_id).map_err(|_| not_found(lang))?;
    let job: JobRow = portal.get(&viewer, &format!("/v1/jobs/{id}")).await?;
    if job.kind != VERIFY_JOB_KIND {
        return Err(not_found(lang));
    }
    let percent = format!("{:.0}", job.progress.clamp(0.0, 1.0) * 100.0);
    let result = job.result.clone().unwrap_or(Value::Null);
    let ok = result["ok"].as_bool();
    let status_href = format!("/supervisor/verify/{id}");
    let body = html! {
        h1 { (t(lang, "supervisor.verify.title")) }
        section #verify-status data-status=(job.status) data-ok=[ok.map(|o| o.to_string())] {
            p {
                (t(lang, "supervisor.col.status")) ": "
                span.badge { (status_text(lang, &job.status)) }
                " · " (t(lang, "supervisor.col.job")) " " code { (job.id) }
            }
            @if !job.finished() {
                label for="verify-progress" {
                    (tf(lang, "supervisor.verify.progress", &[("percent", percent.as_str())]))
                }
                " "
                progress #verify-progress .progress value=(format!("{:.3}", job.progress.clamp(0.0, 1.0))) max="1" {
                    (percent) "%"
                }
                @if !job.stage.is_empty() {
                    p.muted { (job.stage) }
                }
                p {
                    (t(lang, "supervisor.verify.auto_refresh")) " "
                    a href=(status_href) { (t(lang, "supervisor.verify.refresh")) }
                }
            } @else if job.status == "failed" {
                p.error {
                    (t(lang, "supervisor.verify.failed")) " "
                    (job.error.as_ref().map(|e| text(e, "detail")).unwrap_or_default())
                }
            } @else if ok == Some(true) {
                p.notice {
                    (tf(lang, "supervisor.verify.ok", &[
                        ("entries", number(&result, "entries_checked").as_str()),
                        ("checkpoints", number(&result, "checkpoints_checked").as_str()),
                    ]))
                }
                dl {
                    dt { (t(lang, "supervisor.verify.root")) }
                    dd { code { (text(&result, "root")) } }
                    dt { (t(lang, "supervisor.verify.public_key")) }
                    dd { code { (text(&result, "public_key")) } }
                }
            } @else {
                p.error {
                    (tf(lang, "supervisor.verify.bad", &[
                        ("seq", number(&result, "first_bad_seq").as_str()),
                        ("entries", number(&result, "entries_checked").as_str()),
                    ]))
                    " " (text(&result, "reason"))
                }
                @if let Some(bad) = result["first_bad_seq"].as_u64() {
                    p { a href={ "/supervisor/ledger/" (bad) } { (t(lang, "supervisor.verify.open_bad")) } }
                }
            }
        }
        p { a href="/supervisor/verify" { (t(lang, "supervisor.verify.back")) } }
    };
    let markup = page(&viewer, t(lang, "supervisor.verify.title"), body);
    if job.finished() {
        Ok(markup.into_response())
    } else {
        // No script: the browser reloads the page while the job runs.
        Ok(([(header::REFRESH, REFRESH_SECONDS)], markup).into_response())
    }
}

// ---------------------------------------------------------------------------------
// Lineage

/// The lineage route, whose policy the product list is refused by.
const LINEAGE_ROUTE: &str = "/v1/audit/lineage/product/{id}";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LineageQuery {
    product_id: Option<String>,
}

async fn lineage_index(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<LineageQuery>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    admit(&viewer, &Method::GET, LINEAGE_ROUTE)?;
    if let Some(raw) = given(&query.product_id) {
        let id = ProductId::parse(raw).map_err(|_| not_found(lang))?;
        return Ok(Redirect::to(&format!("/supervisor/lineage/{id}")).into_response());
    }
    let products: Vec<Value> = portal.get(&viewer, "/v1/products").await?;
    let body = html! {
        h1 { (t(lang, "supervisor.lineage.index_title")) }
        form.form method="get" action="/supervisor/lineage" {
            label for="lineage-product" { (t(lang, "supervisor.lineage.product_id")) }
            input #lineage-product name="product_id" required;
            button type="submit" { (t(lang, "supervisor.lineage.trace")) }
        }
        @if products.is_empty() {
            p.muted { (t(lang, "supervisor.lineage.no_products")) }
        } @else {
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "supervisor.col.product")) }
                        th scope="col" { (t(lang, "supervisor.col.developer")) }
                        th scope="col" { (t(lang, "supervisor.col.status")) }
                    }
                }
                tbody {
                    @for product in &products {
                        tr data-product=(text(product, "id")) {
                            td {
                                a href={ "/supervisor/lineage/" (text(product, "id")) } { (text(product, "title")) }
                                " " code { (text(product, "id")) }
                            }
                            td { (text(product, "developer_org")) }
                            td { span.badge { (status_text(lang, text(product, "status"))) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, t(lang, "supervisor.lineage.index_title"), body).into_response())
}

/// Nodes and edges of a lineage graph, each node once.
#[derive(Default)]
struct Graph {
    nodes: Vec<(String, String)>,
    seen: HashSet<String>,
    edges: Vec<(String, String)>,
}

impl Graph {
    /// Adds a node (the first label of an id stays) and returns its id.
    fn node(&mut self, id: String, label: String) -> String {
        if self.seen.insert(id.clone()) {
            self.nodes.push((id.clone(), label));
        }
        id
    }

    fn edge(&mut self, from: &str, to: &str) {
        let pair = (from.to_string(), to.to_string());
        if !self.edges.contains(&pair) {
            self.edges.push(pair);
        }
    }
}

/// The lineage as a graph: dataset → version (certificate) → run ← model, grant;
/// run → output → release → product.
fn lineage_graph(lang: Lang, lineage: &Value) -> Graph {
    let mut graph = Graph::default();
    let product_id = text(lineage, "product_id");
    let product = graph.node(
        format!("product:{product_id}"),
        tf(
            lang,
            "supervisor.lineage.node_product",
            &[("title", text(lineage, "title"))],
        ),
    );
    for release in items(lineage, "releases") {
        let release_id = text(release, "release_id");
        let release_node = graph.node(
            format!("release:{release_id}"),
            tf(
                lang,
                "supervisor.lineage.node_release",
                &[("id", release_id)],
            ),
        );
        graph.edge(&release_node, &product);
        let output_id = text(release, "output_id");
        let output = graph.node(
            format!("output:{output_id}"),
            tf(lang, "supervisor.lineage.node_output", &[("id", output_id)]),
        );
        graph.edge(&output, &release_node);
        let job = &release["job"];
        let job_id = text(job, "job_id");
        let run = graph.node(
            format!("job:{job_id}"),
            tf(lang, "supervisor.lineage.node_run", &[("id", job_id)]),
        );
        graph.edge(&run, &output);
        let model = &release["model"];
        let model_node = graph.node(
            format!("model:{}", text(model, "model_id")),
            tf(
                lang,
                "supervisor.lineage.node_model",
                &[
                    ("kind", text(model, "kind")),
                    ("id", text(model, "model_id")),
                ],
            ),
        );
        graph.edge(&model_node, &run);
        if let Some(grant_id) = job["grant_id"].as_str() {
            let grant = graph.node(
                format!("grant:{grant_id}"),
                tf(lang, "supervisor.lineage.node_grant", &[("id", grant_id)]),
            );
            graph.edge(&grant, &run);
        }
        for version in items(release, "datasets") {
            let dataset_id = text(version, "dataset_id");
            let version_no = number(version, "version");
            let dataset = graph.node(
                format!("dataset:{dataset_id}"),
                tf(
                    lang,
                    "supervisor.lineage.node_dataset",
                    &[("title", text(version, "title"))],
                ),
            );
            let certified = graph.node(
                format!("version:{dataset_id}@{version_no}"),
                tf(
                    lang,
                    "supervisor.lineage.node_version",
                    &[
                        ("version", version_no.as_str()),
                        ("certificate", text(version, "certificate_no")),
                    ],
                ),
            );
            graph.edge(&dataset, &certified);
            graph.edge(&certified, &run);
        }
    }
    graph
}

/// Every ledger hop of a lineage: (what, seq, kind).
fn lineage_hops(lang: Lang, lineage: &Value) -> Vec<(String, u64, String)> {
    let mut hops = Vec::new();
    let mut hop = |what: String, value: &Value| {
        if let Some(seq) = value["seq"].as_u64() {
            hops.push((what, seq, text(value, "kind").to_string()));
        }
    };
    hop(
        t(lang, "supervisor.lineage.hop_listing").to_string(),
        &lineage["listing"],
    );
    hop(
        t(lang, "supervisor.lineage.hop_delisting").to_string(),
        &lineage["delisting"],
    );
    for release in items(lineage, "releases") {
        let id = text(release, "release_id");
        hop(
            tf(lang, "supervisor.lineage.node_release", &[("id", id)]),
            &release["release"],
        );
        hop(
            tf(
                lang,
                "supervisor.lineage.node_model",
                &[
                    ("kind", text(&release["model"], "kind")),
                    ("id", text(&release["model"], "model_id")),
                ],
            ),
            &release["model"]["registration"],
        );
        if let Some(grant_id) = release["job"]["grant_id"].as_str() {
            hop(
                tf(lang, "supervisor.lineage.node_grant", &[("id", grant_id)]),
                &release["job"]["grant_decision"],
            );
        }
        for spend in items(&release["job"], "privacy_spends") {
            hop(t(lang, "supervisor.lineage.hop_spend").to_string(), spend);
        }
        for version in items(release, "datasets") {
            hop(
                tf(
                    lang,
                    "supervisor.lineage.node_version",
                    &[
                        ("version", number(version, "version").as_str()),
                        ("certificate", text(version, "certificate_no")),
                    ],
                ),
                &version["certificate"],
            );
        }
    }
    hops
}

async fn lineage(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = ProductId::parse(&raw_id).map_err(|_| not_found(lang))?;
    let lineage: Value = portal
        .get(&viewer, &format!("/v1/audit/lineage/product/{id}"))
        .await?;
    let graph = lineage_graph(lang, &lineage);
    let hops = lineage_hops(lang, &lineage);
    let problems: Vec<&str> = items(&lineage, "problems")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let complete = lineage["complete"].as_bool().unwrap_or(false);
    let title = tf(
        lang,
        "supervisor.lineage.title",
        &[("title", text(&lineage, "title"))],
    );
    let body = html! {
        h1 { (title) }
        dl {
            dt { (t(lang, "supervisor.col.product")) }
            dd { code { (id.as_str()) } }
            dt { (t(lang, "supervisor.col.status")) }
            dd { span.badge { (status_text(lang, text(&lineage, "status"))) } }
            dt { (t(lang, "supervisor.lineage.registration")) }
            dd { (text(&lineage, "registration_no")) }
            dt { (t(lang, "supervisor.lineage.manifest_hash")) }
            dd { code { (text(&lineage, "manifest_hash")) } }
            dt { (t(lang, "supervisor.lineage.complete")) }
            dd { (yes_no(lang, complete)) }
        }
        figure {
            (svg::dag(&graph.nodes, &graph.edges))
            figcaption { (t(lang, "supervisor.lineage.caption")) }
        }
        @if !problems.is_empty() {
            h2 { (t(lang, "supervisor.lineage.problems")) }
            ul.error { @for problem in &problems { li { (problem) } } }
        }
        h2 { (t(lang, "supervisor.lineage.hops")) }
        table.table {
            thead {
                tr {
                    th scope="col" { (t(lang, "supervisor.lineage.hop")) }
                    th scope="col" { (t(lang, "supervisor.col.seq")) }
                    th scope="col" { (t(lang, "supervisor.col.kind")) }
                }
            }
            tbody {
                @for (what, seq, kind) in &hops {
                    tr {
                        td { (what) }
                        td { a href={ "/supervisor/ledger/" (seq) } { (seq) } }
                        td { (kind_cell(lang, kind)) }
                    }
                }
            }
        }
        h2 { (t(lang, "supervisor.lineage.providers")) }
        table.table {
            thead {
                tr {
                    th scope="col" { (t(lang, "supervisor.col.provider")) }
                    th scope="col" { (t(lang, "supervisor.lineage.region")) }
                    th scope="col" { (t(lang, "supervisor.lineage.departments")) }
                }
            }
            tbody {
                @for provider in items(&lineage, "providers") {
                    tr {
                        td { (text(provider, "name")) " " code { (text(provider, "org_id")) } }
                        td { (text(provider, "region")) }
                        td {
                            (items(provider, "source_departments")
                                .iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", "))
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, &title, body))
}

// ---------------------------------------------------------------------------------
// Budgets, compliance

async fn budgets(State(portal): State<Portal>, viewer: Viewer) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let report: Value = portal.get(&viewer, "/v1/audit/budgets").await?;
    let grants = items(&report, "grants");
    let float = |g: &Value, key: &str| g[key].as_f64().unwrap_or(0.0);
    let mut epsilon_bars = Vec::with_capacity(grants.len() * 2);
    let mut query_bars = Vec::with_capacity(grants.len() * 2);
    for grant in grants {
        let id = text(grant, "grant_id");
        let granted = tf(lang, "supervisor.budgets.bar_granted", &[("grant", id)]);
        let spent = tf(lang, "supervisor.budgets.bar_spent", &[("grant", id)]);
        epsilon_bars.push((granted.clone(), float(grant, "epsilon_granted")));
        epsilon_bars.push((spent.clone(), float(grant, "epsilon_spent")));
        query_bars.push((granted, float(grant, "queries_granted")));
        query_bars.push((spent, float(grant, "queries_used")));
    }
    let agrees = report["ledger_agrees"].as_bool().unwrap_or(false);
    let totals_columns = [
        (t(lang, "supervisor.col.key"), "/key"),
        (t(lang, "supervisor.col.grants"), "/grants"),
        (
            t(lang, "supervisor.budgets.epsilon_granted"),
            "/epsilon_granted",
        ),
        (
            t(lang, "supervisor.budgets.epsilon_spent"),
            "/epsilon_spent",
        ),
        (
            t(lang, "supervisor.budgets.queries_granted"),
            "/queries_granted",
        ),
        (t(lang, "supervisor.budgets.queries_used"), "/queries_used"),
    ];
    let body = html! {
        h1 { (t(lang, "supervisor.budgets.title")) }
        p { (t(lang, "supervisor.budgets.intro")) }
        @if agrees {
            p.notice { (t(lang, "supervisor.budgets.ledger_agrees")) }
        } @else {
            p.error {
                (tf(lang, "supervisor.budgets.ledger_disagrees", &[
                    ("n", number(&report, "unmatched_ledger_spends").as_str()),
                ]))
            }
        }
        figure {
            (svg::bar_chart(t(lang, "supervisor.budgets.chart_epsilon"), &epsilon_bars, "ε"))
        }
        figure {
            (svg::bar_chart(
                t(lang, "supervisor.budgets.chart_queries"),
                &query_bars,
                t(lang, "supervisor.budgets.queries_unit"),
            ))
        }
        h2 { (t(lang, "supervisor.budgets.per_grant")) }
        @if grants.is_empty() {
            p.muted { (t(lang, "supervisor.budgets.none")) }
        } @else {
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "supervisor.col.grant")) }
                        th scope="col" { (t(lang, "supervisor.col.dataset")) }
                        th scope="col" { (t(lang, "supervisor.col.developer")) }
                        th scope="col" { (t(lang, "supervisor.col.status")) }
                        th scope="col" { (t(lang, "supervisor.budgets.epsilon_granted")) }
                        th scope="col" { (t(lang, "supervisor.budgets.epsilon_spent")) }
                        th scope="col" { (t(lang, "supervisor.budgets.epsilon_remaining")) }
                        th scope="col" { (t(lang, "supervisor.budgets.delta")) }
                        th scope="col" { (t(lang, "supervisor.budgets.queries")) }
                        th scope="col" { (t(lang, "supervisor.budgets.ledger")) }
                    }
                }
                tbody {
                    @for grant in grants {
                        tr {
                            td { code { (text(grant, "grant_id")) } }
                            td { code { (text(grant, "dataset_id")) } }
                            td { (text(grant, "applicant_org")) }
                            td { (status_text(lang, text(grant, "status"))) }
                            td { (number(grant, "epsilon_granted")) }
                            td { (number(grant, "epsilon_spent")) }
                            td { (number(grant, "epsilon_remaining")) }
                            td { (number(grant, "delta_spent")) " / " (number(grant, "delta_granted")) }
                            td { (number(grant, "queries_used")) " / " (number(grant, "queries_granted")) }
                            td { (yes_no(lang, grant["ledger_agrees"].as_bool().unwrap_or(false))) }
                        }
                    }
                }
            }
        }
        h2 { (t(lang, "supervisor.budgets.per_dataset")) }
        (json_table(items(&report, "datasets"), &totals_columns))
        h2 { (t(lang, "supervisor.budgets.per_developer")) }
        (json_table(items(&report, "developers"), &totals_columns))
    };
    Ok(page(&viewer, t(lang, "supervisor.budgets.title"), body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ComplianceQuery {
    as_of: Option<String>,
}

async fn compliance(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<ComplianceQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let as_of = given(&query.as_of);
    if as_of.is_some_and(|d| parse_day(d).is_none()) {
        return Err(bad_request(lang, "supervisor.error.bad_date"));
    }
    let report: Value = portal
        .get(
            &viewer,
            &with_query(
                "/v1/audit/compliance",
                &[("as_of", as_of.unwrap_or_default())],
            ),
        )
        .await?;
    let clean = report["clean"].as_bool().unwrap_or(false);
    let body = html! {
        h1 { (t(lang, "supervisor.compliance.title")) }
        form.form method="get" action="/supervisor/compliance" {
            label for="compliance-as-of" { (t(lang, "supervisor.compliance.as_of")) }
            input #compliance-as-of type="date" name="as_of" value=[as_of];
            button type="submit" { (t(lang, "supervisor.compliance.show")) }
        }
        p {
            (tf(lang, "supervisor.compliance.report_as_of", &[("as_of", text(&report, "as_of"))])) " "
            span.badge {
                (t(lang, if clean { "supervisor.compliance.clean" } else { "supervisor.compliance.not_clean" }))
            }
        }
        @for section in COMPLIANCE_SECTIONS {
            @let rows = items(&report, section.field);
            @let columns = section
                .columns
                .iter()
                .map(|(key, pointer)| (t(lang, key), *pointer))
                .collect::<Vec<(&str, &str)>>();
            section data-section=(section.field) {
                h2 { (t(lang, section.heading)) " " span.badge { (rows.len()) } }
                @if rows.is_empty() {
                    p.muted { (t(lang, "supervisor.compliance.none")) }
                } @else {
                    (json_table(rows, &columns))
                }
            }
        }
    };
    Ok(page(&viewer, t(lang, "supervisor.compliance.title"), body))
}

// ---------------------------------------------------------------------------------
// Suspensions

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DoneQuery {
    done: Option<String>,
}

async fn suspensions(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<DoneQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let orgs = organisations(&portal, &viewer).await?;
    let names = org_names(&orgs);
    let list: Value = portal.get(&viewer, "/v1/audit/suspensions").await?;
    let suspended = items(&list, "suspended");
    let history = items(&list, "history");
    let can_act = viewer.role() == Some(Role::Supervisor);
    let body = html! {
        h1 { (t(lang, "supervisor.suspensions.title")) }
        @if given(&query.done).is_some() {
            p.notice role="status" { (t(lang, "supervisor.suspensions.done")) }
        }
        p { (t(lang, "supervisor.suspensions.intro")) }
        h2 { (t(lang, "supervisor.suspensions.now")) }
        @if suspended.is_empty() {
            p.muted { (t(lang, "supervisor.suspensions.none_now")) }
        } @else {
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "supervisor.col.org")) }
                        @if can_act { th scope="col" { (t(lang, "supervisor.suspensions.reinstate")) } }
                    }
                }
                tbody {
                    @for org in suspended {
                        @let org_id = text(org, "org_id");
                        tr {
                            td { (text(org, "name")) " " code { (org_id) } }
                            @if can_act {
                                td {
                                    form.form method="post" action="/supervisor/suspensions" {
                                        (csrf_field(&viewer))
                                        input type="hidden" name="org_id" value=(org_id);
                                        input type="hidden" name="action" value="reinstate";
                                        label for={ "reinstate-" (org_id) } { (t(lang, "supervisor.suspensions.reason")) }
                                        input id={ "reinstate-" (org_id) } name="reason" required maxlength="1000";
                                        button type="submit" { (t(lang, "supervisor.suspensions.reinstate")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if can_act {
            h2 { (t(lang, "supervisor.suspensions.suspend")) }
            form.form method="post" action="/supervisor/suspensions" {
                (csrf_field(&viewer))
                input type="hidden" name="action" value="suspend";
                label for="suspend-org" { (t(lang, "supervisor.col.org")) }
                select #suspend-org name="org_id" required {
                    @for o in orgs.iter().filter(|o| !o.suspended) {
                        option value=(o.id) { (o.name) " (" (o.id) ")" }
                    }
                }
                label for="suspend-reason" { (t(lang, "supervisor.suspensions.reason")) }
                input #suspend-reason name="reason" required maxlength="1000";
                button type="submit" { (t(lang, "supervisor.suspensions.suspend")) }
            }
        }
        h2 { (t(lang, "supervisor.suspensions.history")) }
        @if history.is_empty() {
            p.muted { (t(lang, "supervisor.suspensions.none")) }
        } @else {
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "supervisor.col.seq")) }
                        th scope="col" { (t(lang, "supervisor.col.time")) }
                        th scope="col" { (t(lang, "supervisor.col.org")) }
                        th scope="col" { (t(lang, "supervisor.suspensions.action")) }
                        th scope="col" { (t(lang, "supervisor.suspensions.reason")) }
                        th scope="col" { (t(lang, "supervisor.suspensions.by")) }
                        th scope="col" { (t(lang, "supervisor.suspensions.runs_cancelled")) }
                        th scope="col" { (t(lang, "supervisor.suspensions.listings_delisted")) }
                    }
                }
                tbody {
                    @for record in history {
                        tr {
                            td { a href={ "/supervisor/ledger/" (number(record, "seq")) } { (number(record, "seq")) } }
                            td { (when(record["created_ms"].as_i64().unwrap_or(0))) }
                            td { (text(record, "org_name")) " " code { (text(record, "org_id")) } }
                            td { span.badge { (status_text(lang, text(record, "action"))) } }
                            td { (text(record, "reason")) }
                            td { (org_label(&names, text(record, "actor_org"))) }
                            td { (number(record, "runs_cancelled")) }
                            td { (number(record, "listings_delisted")) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, t(lang, "supervisor.suspensions.title"), body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SuspensionForm {
    csrf: String,
    org_id: String,
    action: String,
    reason: String,
}

async fn set_suspension(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(form): Form<SuspensionForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let body = json!({
        "org_id": form.org_id.trim(),
        "action": form.action.trim(),
        "reason": form.reason.trim(),
    });
    let _: Value = portal
        .send(&viewer, Method::POST, "/v1/audit/suspensions", &body)
        .await?;
    Ok(Redirect::to("/supervisor/suspensions?done=1"))
}

// ---------------------------------------------------------------------------------
// Data authority

async fn authority(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<DoneQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    // The change requests first: the route the authority's desk is refused by.
    let changes: Vec<Value> = portal
        .get(&viewer, "/v1/open-attribute-changes?status=pending")
        .await?;
    let submitted: Value = portal
        .get(&viewer, "/v1/datasets?status=submitted&per_page=100")
        .await?;
    let relaxations: Value = portal
        .get(
            &viewer,
            "/v1/ledger/entries?kind=emergency_relaxation&limit=100",
        )
        .await?;
    let evaluations: Vec<Value> = portal.get(&viewer, "/v1/evaluations").await?;
    let orders: Vec<Value> = portal.get(&viewer, "/v1/rectifications").await?;
    let acts = viewer.role() == Some(Role::Authority);
    let notice = match given(&query.done) {
        Some("reviewed") => Some("authority.done.reviewed"),
        Some("decided") => Some("authority.done.decided"),
        Some("relaxed") => Some("authority.done.relaxed"),
        Some("evaluated") => Some("authority.done.evaluated"),
        Some("issued") => Some("authority.done.issued"),
        Some("closed") => Some("authority.done.closed"),
        _ => None,
    };
    let relaxation_rows: Vec<Value> = items(&relaxations, "entries")
        .iter()
        .map(|e| serde_json::from_str::<Value>(text(e, "payload")).unwrap_or(Value::Null))
        .collect();
    let body = html! {
        h1 { (t(lang, "authority.title")) }
        @if let Some(key) = notice {
            p.notice role="status" { (t(lang, key)) }
        }
        p { (t(lang, "authority.intro")) }

        h2 #reviews { (t(lang, "authority.reviews.title")) }
        @if items(&submitted, "items").is_empty() {
            p.muted { (t(lang, "authority.reviews.none")) }
        }
        @for dataset in items(&submitted, "items") {
            @let id = text(dataset, "id");
            div.card data-dataset=(id) {
                h3 { (text(dataset, "title")) }
                dl {
                    dt { (t(lang, "supervisor.col.dataset")) } dd { code { (id) } }
                    dt { (t(lang, "supervisor.col.provider")) } dd { (text(dataset, "provider_org")) " · " (text(dataset, "providing_department")) }
                    dt { (t(lang, "authority.reviews.open_attribute")) } dd { (open_attribute_text(lang, text(dataset, "open_attribute"))) }
                    dt { (t(lang, "supervisor.col.revision")) } dd { (number(dataset, "revision")) }
                    dt { (t(lang, "authority.reviews.submitted")) }
                    dd { @if let Some(ms) = dataset["submitted_ms"].as_i64() { (when(ms)) } }
                    dt { (t(lang, "supervisor.col.deadline")) } dd { (text(dataset, "review_due")) }
                }
                p { (text(dataset, "description")) }
                @if acts {
                    form.form method="post" action={ "/authority/datasets/" (id) "/review" } {
                        (csrf_field(&viewer))
                        label for={ "review-reason-" (id) } { (t(lang, "authority.reviews.reason")) }
                        textarea id={ "review-reason-" (id) } name="reason" maxlength="4000" {}
                        button type="submit" name="decision" value="approve" { (t(lang, "authority.reviews.approve")) }
                        " "
                        button type="submit" name="decision" value="return" { (t(lang, "authority.reviews.return")) }
                    }
                }
            }
        }

        h2 #changes { (t(lang, "authority.changes.title")) }
        @if changes.is_empty() {
            p.muted { (t(lang, "authority.changes.none")) }
        }
        @for change in &changes {
            @let id = text(change, "id");
            div.card data-change=(id) {
                h3 {
                    code { (text(change, "dataset_id")) } " · "
                    (open_attribute_text(lang, text(change, "from"))) " → "
                    (open_attribute_text(lang, text(change, "to")))
                }
                dl {
                    dt { (t(lang, "supervisor.col.provider")) } dd { (text(change, "provider_org")) }
                    dt { (t(lang, "authority.changes.reason")) } dd { (text(change, "reason")) }
                    dt { (t(lang, "authority.changes.legal_basis")) } dd { (text(change, "legal_basis")) }
                    dt { (t(lang, "authority.changes.requested")) }
                    dd { (when(change["requested_ms"].as_i64().unwrap_or(0))) }
                }
                @if acts {
                    form.form method="post" action={ "/authority/changes/" (id) "/decision" } {
                        (csrf_field(&viewer))
                        label for={ "change-reason-" (id) } { (t(lang, "authority.changes.decision_reason")) }
                        textarea id={ "change-reason-" (id) } name="reason" maxlength="4000" {}
                        button type="submit" name="decision" value="approve" { (t(lang, "authority.changes.approve")) }
                        " "
                        button type="submit" name="decision" value="refuse" { (t(lang, "authority.changes.refuse")) }
                    }
                }
            }
        }

        h2 #relaxations { (t(lang, "authority.relaxations.title")) }
        @if relaxation_rows.is_empty() {
            p.muted { (t(lang, "authority.relaxations.none")) }
        } @else {
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "supervisor.col.dataset")) }
                        th scope="col" { (t(lang, "authority.relaxations.phase")) }
                        th scope="col" { (t(lang, "authority.relaxations.to")) }
                        th scope="col" { (t(lang, "authority.relaxations.until")) }
                        th scope="col" { (t(lang, "authority.relaxations.emergency")) }
                    }
                }
                tbody {
                    @for r in &relaxation_rows {
                        tr {
                            td { code { (text(r, "dataset_id")) } }
                            td { (text(r, "phase")) }
                            td { (open_attribute_text(lang, text(r, "relaxed_to"))) }
                            td { (text(r, "until")) }
                            td { (text(r, "emergency")) }
                        }
                    }
                }
            }
        }
        @if acts {
            form.form method="post" action="/authority/relaxations" {
                (csrf_field(&viewer))
                label for="relax-dataset" { (t(lang, "supervisor.col.dataset")) }
                input #relax-dataset name="dataset_id" required;
                label for="relax-to" { (t(lang, "authority.relaxations.to")) }
                select #relax-to name="to" {
                    option value="conditional" { (open_attribute_text(lang, "conditional")) }
                    option value="unconditional" { (open_attribute_text(lang, "unconditional")) }
                }
                label for="relax-emergency" { (t(lang, "authority.relaxations.emergency")) }
                textarea #relax-emergency name="emergency" required maxlength="4000" {}
                label for="relax-until" { (t(lang, "authority.relaxations.until")) }
                input #relax-until type="date" name="until" required;
                button type="submit" { (t(lang, "authority.relaxations.submit")) }
            }
        }

        h2 #evaluations { (t(lang, "authority.evaluations.title")) }
        @if evaluations.is_empty() {
            p.muted { (t(lang, "authority.evaluations.none")) }
        } @else {
            table.table {
                thead {
                    tr {
                        th scope="col" { (t(lang, "supervisor.col.provider")) }
                        th scope="col" { (t(lang, "authority.evaluations.year")) }
                        th scope="col" { (t(lang, "authority.evaluations.score")) }
                        th scope="col" { (t(lang, "authority.evaluations.as_of")) }
                        th scope="col" { (t(lang, "supervisor.col.seq")) }
                    }
                }
                tbody {
                    @for e in &evaluations {
                        tr {
                            td { code { (text(e, "provider_org")) } }
                            td { (number(e, "year")) }
                            td { (number(e, "score")) }
                            td { (text(e, "as_of")) }
                            td { (number(e, "evaluation_seq")) }
                        }
                    }
                }
            }
        }
        @if acts {
            form.form method="post" action="/authority/evaluations" {
                (csrf_field(&viewer))
                label for="evaluate-org" { (t(lang, "authority.evaluations.provider")) }
                input #evaluate-org name="provider_org" required;
                label for="evaluate-year" { (t(lang, "authority.evaluations.year")) }
                input #evaluate-year type="number" name="year" min="2000" required;
                button type="submit" { (t(lang, "authority.evaluations.submit")) }
            }
        }

        h2 #rectifications { (t(lang, "authority.rectifications.title")) }
        @if orders.is_empty() {
            p.muted { (t(lang, "authority.rectifications.none")) }
        }
        @for order in &orders {
            @let id = text(order, "id");
            div.card data-order=(id) {
                h3 {
                    code { (id) } " · " (text(order, "org_id")) " "
                    span.badge { (status_text(lang, text(order, "status"))) }
                    @if order["overdue"].as_bool().unwrap_or(false) {
                        " " span.badge { (t(lang, "authority.rectifications.overdue")) }
                    }
                }
                dl {
                    dt { (t(lang, "supervisor.col.deadline")) } dd { (text(order, "deadline")) }
                    dt { (t(lang, "authority.rectifications.findings")) } dd { (text(order, "findings")) }
                    dt { (t(lang, "authority.rectifications.response")) } dd { (text(order, "response")) }
                }
                @if acts && text(order, "status") != "closed" {
                    form.form method="post" action={ "/authority/rectifications/" (id) "/close" } {
                        (csrf_field(&viewer))
                        label for={ "close-note-" (id) } { (t(lang, "authority.rectifications.note")) }
                        textarea id={ "close-note-" (id) } name="note" required maxlength="4000" {}
                        button type="submit" { (t(lang, "authority.rectifications.close")) }
                    }
                }
            }
        }
        @if acts {
            h3 { (t(lang, "authority.rectifications.issue")) }
            form.form method="post" action="/authority/rectifications" {
                (csrf_field(&viewer))
                label for="rectify-org" { (t(lang, "supervisor.col.org")) }
                input #rectify-org name="org" required;
                label for="rectify-deadline" { (t(lang, "supervisor.col.deadline")) }
                input #rectify-deadline type="date" name="deadline" required;
                label for="rectify-findings" { (t(lang, "authority.rectifications.findings")) }
                textarea #rectify-findings name="findings" required maxlength="4000" {}
                label for="rectify-evaluation" { (t(lang, "authority.rectifications.evaluation")) }
                input #rectify-evaluation name="evaluation_id";
                button type="submit" { (t(lang, "authority.rectifications.submit")) }
            }
        }
    };
    Ok(page(&viewer, t(lang, "authority.title"), body))
}

/// Sends `body` to `path` as the viewer and returns to the authority's desk with a
/// notice.
async fn authority_act(
    portal: &Portal,
    viewer: &Viewer,
    path: &str,
    body: &Value,
    done: &str,
) -> Result<Redirect, PageError> {
    let _: Value = portal.send(viewer, Method::POST, path, body).await?;
    Ok(Redirect::to(&format!("/authority?done={done}")))
}

/// A decision form: which button was pressed and why.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DecisionForm {
    csrf: String,
    decision: String,
    reason: String,
}

impl DecisionForm {
    /// The reason, if one was written.
    fn reason(&self) -> Option<&str> {
        Some(self.reason.trim()).filter(|r| !r.is_empty())
    }
}

async fn review_dataset(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let id = DatasetId::parse(&raw_id).map_err(|_| not_found(viewer.lang))?;
    let mut body = json!({ "decision": form.decision.trim() });
    if let Some(reason) = form.reason() {
        body["reason"] = json!(reason);
    }
    let path = format!("/v1/datasets/{id}/review");
    authority_act(&portal, &viewer, &path, &body, "reviewed").await
}

async fn decide_change(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let id = AttributeChangeId::parse(&raw_id).map_err(|_| not_found(viewer.lang))?;
    let mut body = json!({ "approve": form.decision.trim() == "approve" });
    if let Some(reason) = form.reason() {
        body["reason"] = json!(reason);
    }
    let path = format!("/v1/open-attribute-changes/{id}/decision");
    authority_act(&portal, &viewer, &path, &body, "decided").await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RelaxationForm {
    csrf: String,
    dataset_id: String,
    to: String,
    emergency: String,
    until: String,
}

async fn relax_attribute(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(form): Form<RelaxationForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let lang = viewer.lang;
    let id = DatasetId::parse(form.dataset_id.trim()).map_err(|_| {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            t(lang, "authority.error.dataset_id"),
            lang,
        )
    })?;
    let body = json!({
        "to": form.to.trim(),
        "emergency": form.emergency.trim(),
        "until": form.until.trim(),
    });
    let path = format!("/v1/datasets/{id}/emergency-relaxation");
    authority_act(&portal, &viewer, &path, &body, "relaxed").await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EvaluationForm {
    csrf: String,
    provider_org: String,
    year: String,
}

async fn publish_evaluation(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(form): Form<EvaluationForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let lang = viewer.lang;
    let year: i32 = form.year.trim().parse().map_err(|_| {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            t(lang, "authority.error.year"),
            lang,
        )
    })?;
    let body = json!({ "provider_org": form.provider_org.trim(), "year": year });
    authority_act(&portal, &viewer, "/v1/evaluations", &body, "evaluated").await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RectificationForm {
    csrf: String,
    org: String,
    deadline: String,
    findings: String,
    evaluation_id: String,
}

async fn issue_rectification(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(form): Form<RectificationForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let mut body = json!({
        "org": form.org.trim(),
        "deadline": form.deadline.trim(),
        "findings": form.findings.trim(),
    });
    let evaluation = form.evaluation_id.trim();
    if !evaluation.is_empty() {
        body["evaluation_id"] = json!(evaluation);
    }
    authority_act(&portal, &viewer, "/v1/rectifications", &body, "issued").await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ClosingForm {
    csrf: String,
    note: String,
}

async fn close_rectification(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Form(form): Form<ClosingForm>,
) -> Result<Redirect, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let id = RectificationId::parse(&raw_id).map_err(|_| not_found(viewer.lang))?;
    let body = json!({ "note": form.note.trim() });
    let path = format!("/v1/rectifications/{id}/close");
    authority_act(&portal, &viewer, &path, &body, "closed").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_kind_has_a_label() {
        for name in EntryKind::known_names() {
            assert!(kind_label(Lang::En, name).is_some(), "{name}");
        }
        assert!(kind_label(Lang::En, "made_up").is_none());
    }

    #[test]
    fn ledger_dates_are_china_midnights() {
        assert_eq!(
            china_midnight("2026-03-01", 0, Lang::En).ok().as_deref(),
            Some("2026-03-01T00:00:00+08:00")
        );
        assert_eq!(
            china_midnight("2026-02-28", 1, Lang::En).ok().as_deref(),
            Some("2026-03-01T00:00:00+08:00")
        );
        assert!(china_midnight("2026-13-01", 0, Lang::En).is_err());
        assert!(china_midnight("yesterday", 0, Lang::En).is_err());
    }

    #[test]
    fn the_ledger_range_runs_to_the_midnight_after_until_and_refuses_a_bad_from() {
        let range =
            ledger_range(Some("5"), Some("2026-03-01"), Some("2026-03-01"), Lang::En).unwrap();
        assert_eq!(
            range,
            (
                Some("2026-03-01T00:00:00+08:00".to_string()),
                Some("2026-03-02T00:00:00+08:00".to_string())
            )
        );
        assert_eq!(
            ledger_range(None, None, None, Lang::En).unwrap(),
            (None, None)
        );
        let bad = ledger_range(Some("-1"), None, None, Lang::En).unwrap_err();
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(ledger_range(None, None, Some("soon"), Lang::En).is_err());
    }

    #[test]
    fn lineage_graph_runs_from_datasets_to_the_product() {
        let lineage = json!({
            "product_id": "prd_1",
            "title": "Counts",
            "releases": [{
                "release_id": "rel_1",
                "output_id": "out_1",
                "job": {"job_id": "job_1", "grant_id": "grt_1"},
                "model": {"model_id": "mdl_1", "kind": "sql"},
                "datasets": [
                    {"dataset_id": "ds_1", "version": 1, "title": "Power", "certificate_no": "C-1"}
                ]
            }]
        });
        let graph = lineage_graph(Lang::En, &lineage);
        let ids: Vec<&str> = graph.nodes.iter().map(|(id, _)| id.as_str()).collect();
        for id in [
            "product:prd_1",
            "release:rel_1",
            "output:out_1",
            "job:job_1",
            "model:mdl_1",
            "grant:grt_1",
            "dataset:ds_1",
            "version:ds_1@1",
        ] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
        let has = |a: &str, b: &str| graph.edges.iter().any(|(x, y)| x == a && y == b);
        assert!(has("dataset:ds_1", "version:ds_1@1"));
        assert!(has("version:ds_1@1", "job:job_1"));
        assert!(has("grant:grt_1", "job:job_1"));
        assert!(has("release:rel_1", "product:prd_1"));
        let svg = svg::dag(&graph.nodes, &graph.edges).into_string();
        assert!(svg.contains("data-node=\"dataset:ds_1\""), "{svg}");
        assert!(svg.contains("data-node=\"product:prd_1\""), "{svg}");
    }
}
