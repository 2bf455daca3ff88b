//! The public pages of the web portal (issue #21): what anyone sees without a key.
//!
//! - `/`: what pdx is, with links to everything below and to sign-in.
//! - `/catalog`: the open catalog, searched by text (`q`) and filtered by theme,
//!   department (the providing department or the provider's organisation id), open
//!   attribute, classification level and update frequency, a page at a time (`page`,
//!   `per_page`). The search and every filter are the API's (`GET /v1/datasets`).
//! - `/catalog/{id}`: every metadata field of an entry, its column schema, the released
//!   domains of its latest version and its versions, each linked to its certificate.
//! - `/catalog/{id}/versions/{v}`: the data asset certificate and its ledger receipt,
//!   with the steps and exact commands to verify both offline (`pdx ledger
//!   verify-receipt`, and `b3sum` of the downloaded file for an open dataset).
//! - `/catalog/{id}/dummy`: synthetic rows in the shape of the de-identified data.
//! - `/market`, `/market/{id}`: listed products and their provenance manifest.
//! - `/suspensions`: the public list of suspended organisations.
//! - `/checkpoint`: the newest signed checkpoint with its witness cosignatures.
//! - `/open-data-requests`: the public's requests to open data, and a form to file one.
//!
//! `/catalog.jsonld` (DCAT-AP) is in [`super::dcat`].
//!
//! **The API decides.** Every page reads the JSON API in-process as its viewer
//! ([`Portal::get`]), so a page is refused exactly when its API route is, with the same
//! status: a conditional dataset's dummy data is the API's 401 for the public, the market
//! the API's 401 without a key, an unpublished entry the API's 404. A signed-in viewer
//! sees what the API shows that viewer (a provider its own drafts in the catalog).
//! Nothing here reads the database. What the pages compute themselves are checks anyone
//! can repeat from public text: the receipt and the checkpoint are checked against the
//! public key the API serves, and the market's text search filters the whole list of
//! listed products the API returns to the viewer.
//!
//! **Escaping.** Every data value is spliced through maud, which escapes it; nothing here
//! uses `PreEscaped`. Ids taken from a page's path are parsed as ids before they are put
//! into an API path, so a viewer's text never reaches the API as a path or a query.

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use pdx_ids::{DatasetId, OpenDataRequestId, ProductId};
use pdx_ledger::Receipt;
use pdx_ledger::note::{Checkpoint, NoteVerifier, SignedNote};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Role;
use crate::portal::Portal;
use crate::portal::api::{PageError, with_query};
use crate::portal::i18n::{Lang, t, tf};
use crate::portal::layout::{self, china_time, china_time_rfc3339, csrf_field, yuan};
use crate::portal::session::{Viewer, check_csrf};

/// The open attributes, as the API names them (SD22 Art.8).
pub(crate) const OPEN_ATTRIBUTES: [&str; 3] = ["unconditional", "conditional", "not_open"];

/// The classification levels, as the API names them.
const LEVELS: [&str; 4] = ["L1", "L2", "L3", "L4"];

/// The update frequencies, as the API names them (GD21 Art.16).
pub(crate) const FREQUENCIES: [&str; 6] = [
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "yearly",
    "irregular",
];

/// Dummy rows shown on a dummy-data page.
const DUMMY_ROWS: u32 = 20;

/// Listed products asked of the API at a time (its most).
const PRODUCT_BATCH: usize = 1000;

/// Most batches of listed products read for one market page: the market's search reads
/// the whole list, up to this many products times [`PRODUCT_BATCH`].
const MAX_PRODUCT_BATCHES: usize = 50;

/// Products on one market page.
const MARKET_PER_PAGE: usize = 50;

/// Requests to open data on one page (the API's default page).
const REQUESTS_PER_PAGE: usize = 50;

/// Largest text answer read from the API (the checkpoint note, the public key).
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// The public pages.
pub fn routes() -> Router<Portal> {
    Router::new()
        .route("/", get(home))
        .route("/catalog", get(catalog))
        .route("/catalog/{dataset_id}", get(dataset))
        .route("/catalog/{dataset_id}/versions/{version}", get(version))
        .route("/catalog/{dataset_id}/dummy", get(dummy))
        .route("/market", get(market))
        .route("/market/{product_id}", get(product))
        .route("/suspensions", get(suspensions))
        .route("/checkpoint", get(checkpoint))
        .route(
            "/open-data-requests",
            get(open_data_requests).post(file_open_data_request),
        )
}

// ---------------------------------------------------------------------------------
// What the API answers (only the fields the pages show).

/// One page of the catalog search, as `GET /v1/datasets` answers it.
#[derive(Debug, Deserialize)]
pub(crate) struct DatasetPageView {
    /// The entries on this page.
    pub(crate) items: Vec<DatasetView>,
    /// Matches on all pages.
    pub(crate) total: u64,
    /// This page, from 1.
    pub(crate) page: u32,
    /// Entries per page.
    pub(crate) per_page: u32,
}

/// A catalog entry, as `GET /v1/datasets/{id}` answers it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DatasetView {
    /// Dataset id.
    pub(crate) id: String,
    /// The providing organisation's id.
    pub(crate) provider_org: String,
    /// Title.
    pub(crate) title: String,
    /// Description (may be empty).
    #[serde(default)]
    pub(crate) description: String,
    /// Theme.
    pub(crate) theme: String,
    /// The legally designated source department.
    pub(crate) source_department: String,
    /// Collecting department.
    pub(crate) collecting_department: String,
    /// Approving department.
    pub(crate) approving_department: String,
    /// Providing department.
    pub(crate) providing_department: String,
    /// Data form, e.g. `table`.
    pub(crate) data_form: String,
    /// Update frequency (one of [`FREQUENCIES`]).
    pub(crate) update_frequency: String,
    /// Classification level, `L1` to `L4`.
    pub(crate) level: String,
    /// Share type.
    pub(crate) share_type: String,
    /// Conditions of sharing.
    #[serde(default)]
    pub(crate) share_conditions: String,
    /// Legal basis.
    #[serde(default)]
    pub(crate) legal_basis: String,
    /// The open attribute the catalog records.
    pub(crate) open_attribute: String,
    /// The open attribute in force now (an emergency relaxation's while it lasts).
    pub(crate) effective_open_attribute: String,
    /// Results may serve research only.
    #[serde(default)]
    pub(crate) research_only: bool,
    /// Data elements carried.
    #[serde(default)]
    pub(crate) elements: Vec<String>,
    /// The column schema.
    #[serde(default)]
    pub(crate) schema: SchemaView,
    /// Latest certified version not destroyed, if any.
    pub(crate) latest_version: Option<u64>,
    /// Registered, ms since epoch.
    pub(crate) created_ms: i64,
    /// Last change, ms since epoch.
    pub(crate) updated_ms: i64,
    /// Life-cycle status.
    pub(crate) status: String,
    /// Catalog revision.
    #[serde(default)]
    pub(crate) revision: u64,
    /// The emergency relaxation in force, if any.
    #[serde(default)]
    pub(crate) emergency_relaxation: Option<RelaxationView>,
    /// Its tombstone once destroyed.
    #[serde(default)]
    pub(crate) destroyed: Option<TombstoneView>,
}

impl DatasetView {
    /// Whether the public may download its rows: unconditionally open now and not
    /// destroyed (the API decides each download; this only chooses which links to show).
    pub(crate) fn downloadable(&self) -> bool {
        self.effective_open_attribute == "unconditional" && self.destroyed.is_none()
    }
}

/// A column schema (the columns only).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SchemaView {
    /// The declared columns, in order.
    #[serde(default)]
    pub(crate) columns: Vec<ColumnView>,
}

/// One declared column.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ColumnView {
    /// Column name.
    pub(crate) name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub(crate) column_type: String,
    /// Disclosure role.
    pub(crate) role: String,
    /// De-identification rule (an object tagged by `kind`).
    pub(crate) rule: Value,
}

/// An emergency relaxation in force.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RelaxationView {
    /// The attribute in force while it lasts.
    pub(crate) relaxed_to: String,
    /// The emergency, as the data authority stated it.
    pub(crate) emergency: String,
    /// The last day it is in force.
    pub(crate) until: String,
}

/// A destroyed dataset's or version's tombstone.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TombstoneView {
    /// When, ms since epoch.
    pub(crate) destroyed_ms: i64,
    /// Why, as the provider stated it.
    pub(crate) reason: String,
}

/// A certified version, as `GET /v1/datasets/{id}/versions/{v}` answers it.
#[derive(Debug, Deserialize)]
struct VersionView {
    version: u64,
    rows: u64,
    bytes: u64,
    content_hash: String,
    schema_hash: String,
    #[serde(default)]
    report: Value,
    certificate_no: String,
    certificate_seq: u64,
    valid_from: String,
    valid_until: String,
    created_ms: i64,
    #[serde(default)]
    released_domains: Vec<DomainView>,
    #[serde(default)]
    destroyed: Option<TombstoneView>,
}

/// What one released column holds.
#[derive(Debug, Deserialize)]
struct DomainView {
    column: String,
    rule: String,
    level: Option<u8>,
    description: String,
    values: Option<Vec<String>>,
}

/// A certificate with its receipt, as `GET …/certificate` answers it.
#[derive(Debug, Deserialize)]
struct CertificateView {
    certificate: AssetCertificateView,
    receipt: Value,
}

/// The `AssetCertificate` ledger payload.
#[derive(Debug, Deserialize)]
struct AssetCertificateView {
    certificate_no: String,
    dataset_id: String,
    version: u64,
    holder_org: String,
    source_department: String,
    rows: u64,
    bytes: u64,
    content_hash: String,
    schema_hash: String,
    level: String,
    open_attribute: String,
    #[serde(default)]
    deid_summary: Value,
    valid_from: String,
    valid_until: String,
}

/// A product, as `GET /v1/products/{id}` answers it.
#[derive(Debug, Deserialize)]
struct ProductView {
    id: String,
    developer_org: String,
    title: String,
    #[serde(default)]
    description: String,
    licence: LicenceView,
    price_minor: i64,
    currency: String,
    status: String,
    status_reason: Option<String>,
    registration_no: Option<String>,
    listing_seq: Option<u64>,
    manifest: ManifestView,
    manifest_hash: String,
    created_at: String,
    listed_at: Option<String>,
}

impl ProductView {
    /// Whether the lower-cased `needle` is in its title, description, developer or
    /// registration number.
    fn matches(&self, needle: &str) -> bool {
        [
            self.title.as_str(),
            self.description.as_str(),
            self.developer_org.as_str(),
            self.registration_no.as_deref().unwrap_or_default(),
        ]
        .iter()
        .any(|field| field.to_lowercase().contains(needle))
    }
}

/// A product's licence.
#[derive(Debug, Deserialize)]
struct LicenceView {
    kind: String,
    term_days: u32,
    #[serde(default)]
    permitted_use: String,
}

/// A provenance manifest.
#[derive(Debug, Deserialize)]
struct ManifestView {
    format: String,
    generated_at: String,
    #[serde(default)]
    sources: Vec<ManifestSourceView>,
}

/// One released output of a manifest.
#[derive(Debug, Deserialize)]
struct ManifestSourceView {
    release_id: String,
    output_hash: String,
    model_hash: String,
    #[serde(default)]
    reviewers: Vec<String>,
    #[serde(default)]
    research_only_grant: bool,
    grant_purpose: Option<String>,
    #[serde(default)]
    datasets: Vec<SourceDatasetView>,
}

/// One source dataset of a released output.
#[derive(Debug, Deserialize)]
struct SourceDatasetView {
    dataset_id: String,
    title: String,
    source_department: String,
    provider_org: String,
    certificate_no: String,
    content_hash: String,
    acquired: String,
    #[serde(default)]
    research_only: bool,
}

/// The public list of suspensions.
#[derive(Debug, Deserialize)]
struct SuspensionListView {
    suspended: Vec<SuspendedView>,
    history: Vec<SuspensionRecordView>,
}

/// An organisation suspended now.
#[derive(Debug, Deserialize)]
struct SuspendedView {
    org_id: String,
    name: String,
}

/// One suspension or reinstatement.
#[derive(Debug, Deserialize)]
struct SuspensionRecordView {
    seq: u64,
    org_id: String,
    org_name: String,
    action: String,
    reason: String,
    created_ms: i64,
    #[serde(default)]
    runs_cancelled: u64,
    #[serde(default)]
    listings_delisted: u64,
}

/// A request to open data.
#[derive(Debug, Deserialize)]
struct OpenDataRequestView {
    id: String,
    request: String,
    dataset_id: Option<String>,
    subject: String,
    description: String,
    filed_ms: i64,
    filed_seq: u64,
    status: String,
    answer_due: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    answered_late: bool,
    #[serde(default)]
    overdue: bool,
}

// ---------------------------------------------------------------------------------
// Shared helpers.

/// The scheme and host this server was reached at, for the commands the pages print:
/// the request's `Host` header when it is a plain host name or address with a port,
/// else the address the server listens on. The scheme is https when the server runs
/// TLS (it then sets secure cookies).
pub(crate) fn base_url(portal: &Portal, headers: &HeaderMap) -> String {
    let scheme = if portal.secure_cookies {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .map_or_else(|| portal.app.config.addr.to_string(), str::to_string);
    format!("{scheme}://{host}")
}

/// GETs a text route of the API (the checkpoint note, the public key) as the viewer:
/// the text of a 2xx answer, else the API's status with its problem's detail.
pub(crate) async fn api_text(
    portal: &Portal,
    viewer: &Viewer,
    path: &str,
) -> Result<String, PageError> {
    let lang = viewer.lang;
    let failed = || {
        PageError::new(
            StatusCode::BAD_GATEWAY,
            t(lang, "public.error.api_answer"),
            lang,
        )
    };
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Body::empty())
        .map_err(|_| failed())?;
    let response = portal.raw(viewer, request).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_TEXT_BYTES)
        .await
        .map_err(|_| failed())?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|problem| {
                problem
                    .get("detail")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| t(lang, "public.error.api_answer").to_string());
        return Err(PageError::new(status, detail, lang));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| failed())
}

/// The query of a page, or a 400 page when it does not parse.
fn query_or_400<T>(query: Result<Query<T>, QueryRejection>, lang: Lang) -> Result<T, PageError> {
    match query {
        Ok(Query(params)) => Ok(params),
        Err(_) => Err(PageError::new(
            StatusCode::BAD_REQUEST,
            t(lang, "public.error.bad_query"),
            lang,
        )),
    }
}

/// The 404 page of an id that is not one (as the API answers an unknown id).
fn not_found(lang: Lang) -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        t(lang, "public.error.not_found"),
        lang,
    )
}

/// A dataset id from a page's path, or the 404 page.
fn dataset_id(raw: &str, lang: Lang) -> Result<DatasetId, PageError> {
    DatasetId::parse(raw).map_err(|_| not_found(lang))
}

/// A query parameter's text, trimmed ("" when absent).
fn text(field: &Option<String>) -> &str {
    field.as_deref().map(str::trim).unwrap_or_default()
}

/// A page number from the query: 1 when absent, a 400 page when not a number from 1.
fn page_number(raw: &str, lang: Lang) -> Result<usize, PageError> {
    if raw.is_empty() {
        return Ok(1);
    }
    raw.parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                t(lang, "public.error.bad_page"),
                lang,
            )
        })
}

/// A JSON value as cell text: strings as they are, null as nothing.
fn cell_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One `dt`/`dd` pair.
fn item(label: &str, value: &str) -> Markup {
    html! {
        dt { (label) }
        dd { (value) }
    }
}

/// One `dt`/`dd` pair whose value is code (hashes, ids).
fn code_item(label: &str, value: &str) -> Markup {
    html! {
        dt { (label) }
        dd { code { (value) } }
    }
}

/// The name of an open attribute.
pub(crate) fn open_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "unconditional" => t(lang, "public.open.unconditional"),
        "conditional" => t(lang, "public.open.conditional"),
        "not_open" => t(lang, "public.open.not_open"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// The name of a classification level.
fn level_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "L1" => t(lang, "public.level.l1"),
        "L2" => t(lang, "public.level.l2"),
        "L3" => t(lang, "public.level.l3"),
        "L4" => t(lang, "public.level.l4"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// The name of an update frequency.
fn frequency_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "daily" => t(lang, "public.frequency.daily"),
        "weekly" => t(lang, "public.frequency.weekly"),
        "monthly" => t(lang, "public.frequency.monthly"),
        "quarterly" => t(lang, "public.frequency.quarterly"),
        "yearly" => t(lang, "public.frequency.yearly"),
        "irregular" => t(lang, "public.frequency.irregular"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// The name of a share type.
fn share_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "unconditional" => t(lang, "public.share.unconditional"),
        "conditional" => t(lang, "public.share.conditional"),
        "not_shared" => t(lang, "public.share.not_shared"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// The name of a catalog status.
fn status_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "draft" => t(lang, "public.status.draft"),
        "submitted" => t(lang, "public.status.submitted"),
        "published" => t(lang, "public.status.published"),
        "returned" => t(lang, "public.status.returned"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// What using an entry's data takes, by the open attribute in force.
fn terms_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "unconditional" => t(lang, "public.terms.unconditional"),
        "conditional" => t(lang, "public.terms.conditional"),
        "not_open" => t(lang, "public.terms.not_open"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// The name of a licence kind.
fn licence_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "research_only" => t(lang, "public.licence.research_only"),
        "public_interest" => t(lang, "public.licence.public_interest"),
        "commercial_internal" => t(lang, "public.licence.commercial_internal"),
        "commercial_redistribution" => t(lang, "public.licence.commercial_redistribution"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// The name of a product status.
fn product_status_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "pending_review" => t(lang, "public.product_status.pending_review"),
        "listed" => t(lang, "public.product_status.listed"),
        "rejected" => t(lang, "public.product_status.rejected"),
        "delisted" => t(lang, "public.product_status.delisted"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// The name of a request's status.
fn request_status_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "filed" => t(lang, "public.requests.status.filed"),
        "routed" => t(lang, "public.requests.status.routed"),
        "accepted" => t(lang, "public.requests.status.accepted"),
        "refused" => t(lang, "public.requests.status.refused"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// The name of what a request asks for.
fn request_kind_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "open_dataset" => t(lang, "public.requests.kind.open_dataset"),
        "new_dataset" => t(lang, "public.requests.kind.new_dataset"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// The name of a suspension's action.
fn suspension_action_label(lang: Lang, wire: &str) -> &'static str {
    match wire {
        "suspended" => t(lang, "public.suspensions.suspended"),
        "reinstated" => t(lang, "public.suspensions.reinstated"),
        _ => t(lang, "public.value.unknown"),
    }
}

/// "Yes" or "no".
fn yes_no(lang: Lang, value: bool) -> &'static str {
    if value {
        t(lang, "public.value.yes")
    } else {
        t(lang, "public.value.no")
    }
}

/// The link to an entry's offline receipt (a public API route).
fn receipt_link(seq: u64) -> String {
    format!("/v1/ledger/receipt/{seq}")
}

// ---------------------------------------------------------------------------------
// `/`

async fn home(State(portal): State<Portal>, viewer: Viewer) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    // The count is a nicety: the home page shows even when the search fails.
    let total = portal
        .get::<DatasetPageView>(&viewer, "/v1/datasets?per_page=1")
        .await
        .ok()
        .map(|found| found.total.to_string());
    let title = t(lang, "public.home.title");
    let body = html! {
        h1 { (title) }
        p { (t(lang, "public.home.intro")) }
        p { (t(lang, "public.home.promise")) }
        div.grid {
            div.card {
                h2 { a href="/catalog" { (t(lang, "public.home.catalog")) } }
                p { (t(lang, "public.home.catalog_text")) }
                @if let Some(total) = &total {
                    p.muted { (tf(lang, "public.home.catalog_count", &[("total", total)])) }
                }
            }
            div.card {
                h2 { a href="/market" { (t(lang, "public.home.market")) } }
                p { (t(lang, "public.home.market_text")) }
            }
            div.card {
                h2 { a href="/suspensions" { (t(lang, "public.home.suspensions")) } }
                p { (t(lang, "public.home.suspensions_text")) }
            }
            div.card {
                h2 { a href="/checkpoint" { (t(lang, "public.home.checkpoint")) } }
                p { (t(lang, "public.home.checkpoint_text")) }
            }
            div.card {
                h2 { a href="/open-data-requests" { (t(lang, "public.home.requests")) } }
                p { (t(lang, "public.home.requests_text")) }
            }
            div.card {
                h2 { a href="/catalog.jsonld" type="application/ld+json" { (t(lang, "public.home.dcat")) } }
                p { (t(lang, "public.home.dcat_text")) }
            }
        }
        @if viewer.signed_in.is_none() {
            p {
                a href="/signin" { (t(lang, "public.home.signin")) }
                " "
                (t(lang, "public.home.signin_text"))
            }
        }
    };
    Ok(layout::page(&viewer, title, body))
}

// ---------------------------------------------------------------------------------
// `/catalog`

/// The query of `/catalog`: the search text, the filters and the page.
#[derive(Debug, Default, Deserialize)]
struct CatalogParams {
    q: Option<String>,
    theme: Option<String>,
    department: Option<String>,
    open_attribute: Option<String>,
    level: Option<String>,
    update_frequency: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

impl CatalogParams {
    /// The search and filters as `(name, value)` pairs of the page's own query.
    fn filters(&self) -> [(&'static str, &str); 6] {
        [
            ("q", text(&self.q)),
            ("theme", text(&self.theme)),
            ("department", text(&self.department)),
            ("open_attribute", text(&self.open_attribute)),
            ("level", text(&self.level)),
            ("update_frequency", text(&self.update_frequency)),
        ]
    }

    /// The API search these filters ask for: the department is the API's `provider`
    /// (a providing department or a provider organisation id).
    fn api_path(&self) -> String {
        with_query(
            "/v1/datasets",
            &[
                ("q", text(&self.q)),
                ("theme", text(&self.theme)),
                ("provider", text(&self.department)),
                ("open_attribute", text(&self.open_attribute)),
                ("level", text(&self.level)),
                ("update_frequency", text(&self.update_frequency)),
                ("page", text(&self.page)),
                ("per_page", text(&self.per_page)),
            ],
        )
    }

    /// This page of the catalog with the same filters at page `page`.
    fn link(&self, page: u32) -> String {
        let page = page.to_string();
        let mut params: Vec<(&str, &str)> = self.filters().to_vec();
        params.push(("per_page", text(&self.per_page)));
        params.push(("page", &page));
        with_query("/catalog", &params)
    }
}

async fn catalog(
    State(portal): State<Portal>,
    viewer: Viewer,
    query: Result<Query<CatalogParams>, QueryRejection>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let params = query_or_400(query, lang)?;
    let found: DatasetPageView = portal.get(&viewer, &params.api_path()).await?;
    let pages = found
        .total
        .div_ceil(u64::from(found.per_page.max(1)))
        .max(1);
    let current = found.page;
    let title = t(lang, "public.catalog.title");
    let body = html! {
        h1 { (title) }
        p {
            (t(lang, "public.catalog.intro"))
            " "
            a href="/catalog.jsonld" type="application/ld+json" { (t(lang, "public.catalog.dcat")) }
        }
        (catalog_form(lang, &params))
        p role="status" {
            (tf(lang, "public.catalog.count", &[
                ("total", &found.total.to_string()),
                ("page", &current.to_string()),
                ("pages", &pages.to_string()),
            ]))
        }
        @if found.items.is_empty() {
            p.notice { (t(lang, "public.catalog.empty")) }
        } @else {
            table.table {
                caption { (t(lang, "public.catalog.results")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "public.field.title")) }
                        th scope="col" { (t(lang, "public.field.theme")) }
                        th scope="col" { (t(lang, "public.field.department")) }
                        th scope="col" { (t(lang, "public.field.open_attribute")) }
                        th scope="col" { (t(lang, "public.field.level")) }
                        th scope="col" { (t(lang, "public.field.update_frequency")) }
                        th scope="col" { (t(lang, "public.field.latest_version")) }
                    }
                }
                tbody {
                    @for entry in &found.items {
                        tr {
                            td {
                                a href=(format!("/catalog/{}", entry.id)) { (entry.title) }
                                @if entry.status != "published" {
                                    " " span.badge { (status_label(lang, &entry.status)) }
                                }
                            }
                            td { (entry.theme) }
                            td { (entry.providing_department) }
                            td { span.badge { (open_label(lang, &entry.effective_open_attribute)) } }
                            td { (level_label(lang, &entry.level)) }
                            td { (frequency_label(lang, &entry.update_frequency)) }
                            td {
                                @if let Some(latest) = entry.latest_version {
                                    (latest)
                                } @else {
                                    span.muted { (t(lang, "public.value.none")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav aria-label=(t(lang, "public.pager.label")) {
            @if current > 1 {
                a rel="prev" href=(params.link(current - 1)) { (t(lang, "public.pager.previous")) }
                " "
            }
            @if u64::from(current) < pages {
                a rel="next" href=(params.link(current + 1)) { (t(lang, "public.pager.next")) }
            }
        }
    };
    Ok(layout::page(&viewer, title, body))
}

/// The search form of `/catalog`, filled with the current filters.
fn catalog_form(lang: Lang, params: &CatalogParams) -> Markup {
    let open = text(&params.open_attribute);
    let level = text(&params.level);
    let frequency = text(&params.update_frequency);
    let per_page = text(&params.per_page);
    html! {
        form.form method="get" action="/catalog" role="search" {
            p {
                label for="catalog-q" { (t(lang, "public.catalog.search")) }
                " "
                input id="catalog-q" type="search" name="q" value=(text(&params.q));
            }
            p {
                label for="catalog-theme" { (t(lang, "public.field.theme")) }
                " "
                input id="catalog-theme" type="text" name="theme" value=(text(&params.theme));
            }
            p {
                label for="catalog-department" { (t(lang, "public.field.department")) }
                " "
                input id="catalog-department" type="text" name="department" value=(text(&params.department));
            }
            p {
                label for="catalog-open" { (t(lang, "public.field.open_attribute")) }
                " "
                select id="catalog-open" name="open_attribute" {
                    option value="" { (t(lang, "public.filter.any")) }
                    @for wire in OPEN_ATTRIBUTES {
                        option value=(wire) selected[open == wire] { (open_label(lang, wire)) }
                    }
                }
            }
            p {
                label for="catalog-level" { (t(lang, "public.field.level")) }
                " "
                select id="catalog-level" name="level" {
                    option value="" { (t(lang, "public.filter.any")) }
                    @for wire in LEVELS {
                        option value=(wire) selected[level == wire] { (level_label(lang, wire)) }
                    }
                }
            }
            p {
                label for="catalog-frequency" { (t(lang, "public.field.update_frequency")) }
                " "
                select id="catalog-frequency" name="update_frequency" {
                    option value="" { (t(lang, "public.filter.any")) }
                    @for wire in FREQUENCIES {
                        option value=(wire) selected[frequency == wire] { (frequency_label(lang, wire)) }
                    }
                }
            }
            @if !per_page.is_empty() {
                input type="hidden" name="per_page" value=(per_page);
            }
            p {
                button type="submit" { (t(lang, "public.catalog.apply")) }
                " "
                a href="/catalog" { (t(lang, "public.catalog.clear")) }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// `/catalog/{id}`

async fn dataset(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = dataset_id(&raw_id, lang)?;
    let entry: DatasetView = portal.get(&viewer, &format!("/v1/datasets/{id}")).await?;
    let versions: Vec<VersionView> = portal
        .get(&viewer, &format!("/v1/datasets/{id}/versions"))
        .await?;
    let latest = entry
        .latest_version
        .and_then(|n| versions.iter().find(|v| v.version == n));
    let downloadable = entry.downloadable();
    let body = html! {
        h1 { (entry.title) }
        @if !entry.description.is_empty() {
            p { (entry.description) }
        }
        @if let Some(tomb) = &entry.destroyed {
            p.error {
                (tf(lang, "public.dataset.destroyed", &[
                    ("when", &china_time(tomb.destroyed_ms)),
                    ("reason", &tomb.reason),
                ]))
            }
        }
        @if let Some(relaxation) = &entry.emergency_relaxation {
            p.notice {
                (tf(lang, "public.dataset.relaxed", &[
                    ("attribute", open_label(lang, &relaxation.relaxed_to)),
                    ("until", &relaxation.until),
                    ("emergency", &relaxation.emergency),
                ]))
            }
        }
        h2 { (t(lang, "public.dataset.metadata")) }
        dl.facts {
            (code_item(t(lang, "public.field.id"), &entry.id))
            (item(t(lang, "public.field.status"), status_label(lang, &entry.status)))
            (item(t(lang, "public.field.revision"), &entry.revision.to_string()))
            (item(t(lang, "public.field.theme"), &entry.theme))
            (item(t(lang, "public.field.department"), &entry.providing_department))
            (code_item(t(lang, "public.field.provider_org"), &entry.provider_org))
            (item(t(lang, "public.field.source_department"), &entry.source_department))
            (item(t(lang, "public.field.collecting_department"), &entry.collecting_department))
            (item(t(lang, "public.field.approving_department"), &entry.approving_department))
            (item(t(lang, "public.field.data_form"), &entry.data_form))
            (item(t(lang, "public.field.update_frequency"), frequency_label(lang, &entry.update_frequency)))
            (item(t(lang, "public.field.level"), level_label(lang, &entry.level)))
            (item(t(lang, "public.field.share_type"), share_label(lang, &entry.share_type)))
            @if !entry.share_conditions.is_empty() {
                (item(t(lang, "public.field.share_conditions"), &entry.share_conditions))
            }
            @if !entry.legal_basis.is_empty() {
                (item(t(lang, "public.field.legal_basis"), &entry.legal_basis))
            }
            (item(t(lang, "public.field.open_attribute"), open_label(lang, &entry.open_attribute)))
            @if entry.effective_open_attribute != entry.open_attribute {
                (item(t(lang, "public.field.open_attribute_in_force"), open_label(lang, &entry.effective_open_attribute)))
            }
            (item(t(lang, "public.field.terms"), terms_label(lang, &entry.effective_open_attribute)))
            (item(t(lang, "public.field.research_only"), yes_no(lang, entry.research_only)))
            @if entry.elements.is_empty() {
                (item(t(lang, "public.field.elements"), t(lang, "public.value.none")))
            } @else {
                (item(t(lang, "public.field.elements"), &entry.elements.join(", ")))
            }
            (item(t(lang, "public.field.registered"), &china_time(entry.created_ms)))
            (item(t(lang, "public.field.updated"), &china_time(entry.updated_ms)))
        }
        h2 { (t(lang, "public.dataset.schema")) }
        table.table {
            caption { (t(lang, "public.dataset.schema_caption")) }
            thead {
                tr {
                    th scope="col" { (t(lang, "public.field.column")) }
                    th scope="col" { (t(lang, "public.field.column_type")) }
                    th scope="col" { (t(lang, "public.field.column_role")) }
                    th scope="col" { (t(lang, "public.field.column_rule")) }
                }
            }
            tbody {
                @for column in &entry.schema.columns {
                    tr {
                        th scope="row" { code { (column.name) } }
                        td { (column.column_type) }
                        td { (column.role) }
                        td { (column.rule.get("kind").map(cell_text).unwrap_or_default()) }
                    }
                }
            }
        }
        @if let Some(latest) = latest {
            h2 { (tf(lang, "public.dataset.released_domains", &[("version", &latest.version.to_string())])) }
            p.muted { (t(lang, "public.dataset.released_domains_text")) }
            (domains_table(lang, &latest.released_domains))
        }
        h2 { (t(lang, "public.dataset.versions")) }
        @if versions.is_empty() {
            p.notice { (t(lang, "public.dataset.no_versions")) }
        } @else {
            table.table {
                caption { (t(lang, "public.dataset.versions_caption")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "public.field.version")) }
                        th scope="col" { (t(lang, "public.field.certificate_no")) }
                        th scope="col" { (t(lang, "public.field.rows")) }
                        th scope="col" { (t(lang, "public.field.bytes")) }
                        th scope="col" { (t(lang, "public.field.content_hash")) }
                        th scope="col" { (t(lang, "public.field.valid")) }
                        th scope="col" { (t(lang, "public.field.certified")) }
                        @if downloadable {
                            th scope="col" { (t(lang, "public.field.download")) }
                        }
                    }
                }
                tbody {
                    @for v in &versions {
                        @let page_link = format!("/catalog/{id}/versions/{}", v.version);
                        tr {
                            th scope="row" { a href=(page_link) { (v.version) } }
                            td {
                                a href=(page_link) { (v.certificate_no) }
                                @if v.destroyed.is_some() {
                                    " " span.badge { (t(lang, "public.dataset.version_destroyed")) }
                                }
                            }
                            td { (v.rows) }
                            td { (v.bytes) }
                            td { code { (v.content_hash) } }
                            td { (china_time_rfc3339(&v.valid_from)) " – " (china_time_rfc3339(&v.valid_until)) }
                            td { (china_time(v.created_ms)) }
                            @if downloadable {
                                td {
                                    @if v.destroyed.is_none() {
                                        a href=(format!("/v1/datasets/{id}/versions/{}/download?format=csv", v.version)) { "CSV" }
                                        " "
                                        a href=(format!("/v1/datasets/{id}/versions/{}/download", v.version)) { "Parquet" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (t(lang, "public.dataset.more")) }
        ul {
            li {
                a href=(format!("/catalog/{id}/dummy")) { (t(lang, "public.dataset.dummy_link")) }
                @if entry.effective_open_attribute != "unconditional" {
                    " " span.muted { (t(lang, "public.dataset.dummy_open_only")) }
                }
            }
            @if entry.effective_open_attribute != "unconditional" {
                li {
                    a href=(with_query("/open-data-requests", &[("dataset_id", id.as_str())])) {
                        (t(lang, "public.dataset.ask_open"))
                    }
                }
            }
            li { a href="/catalog" { (t(lang, "public.dataset.back")) } }
        }
    };
    Ok(layout::page(&viewer, &entry.title, body))
}

/// The released domains of a version as a table.
fn domains_table(lang: Lang, domains: &[DomainView]) -> Markup {
    html! {
        table.table {
            caption { (t(lang, "public.dataset.released_domains_caption")) }
            thead {
                tr {
                    th scope="col" { (t(lang, "public.field.column")) }
                    th scope="col" { (t(lang, "public.field.column_rule")) }
                    th scope="col" { (t(lang, "public.field.generalisation_level")) }
                    th scope="col" { (t(lang, "public.field.domain")) }
                    th scope="col" { (t(lang, "public.field.values")) }
                }
            }
            tbody {
                @for domain in domains {
                    tr {
                        th scope="row" { code { (domain.column) } }
                        td { (domain.rule) }
                        td {
                            @if let Some(level) = domain.level { (level) } @else { span.muted { (t(lang, "public.value.none")) } }
                        }
                        td { (domain.description) }
                        td {
                            @if let Some(values) = &domain.values {
                                (values.join(", "))
                            } @else {
                                span.muted { (t(lang, "public.value.open_set")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// `/catalog/{id}/versions/{v}`

/// What checking a receipt against the public key gave: the line `pdx ledger
/// verify-receipt` prints for it, or why it failed.
fn check_receipt(receipt: &Value, key: &str) -> Result<String, String> {
    let verifier = NoteVerifier::parse(key).map_err(|e| e.to_string())?;
    let receipt: Receipt = serde_json::from_value(receipt.clone()).map_err(|e| e.to_string())?;
    let checkpoint = receipt.verify(&verifier).map_err(|e| e.to_string())?;
    Ok(format!(
        "ok: entry {} ({}) is in the log {} at size {}",
        receipt.entry.seq, receipt.entry.kind, checkpoint.origin, checkpoint.size
    ))
}

async fn version(
    State(portal): State<Portal>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((raw_id, raw_version)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = dataset_id(&raw_id, lang)?;
    let number: u64 = raw_version.parse().map_err(|_| not_found(lang))?;
    let entry: DatasetView = portal.get(&viewer, &format!("/v1/datasets/{id}")).await?;
    let v: VersionView = portal
        .get(&viewer, &format!("/v1/datasets/{id}/versions/{number}"))
        .await?;
    let cert: CertificateView = portal
        .get(
            &viewer,
            &format!("/v1/datasets/{id}/versions/{number}/certificate"),
        )
        .await?;
    let key = api_text(&portal, &viewer, "/v1/ledger/public-key").await?;
    let key = key.trim();
    let check = check_receipt(&cert.receipt, key);
    let base = base_url(&portal, &headers);
    let seq = v.certificate_seq;
    let receipt_file = format!("receipt-{seq}.json");
    let data_file = format!("{id}-v{number}.parquet");
    let downloadable = entry.downloadable() && v.destroyed.is_none();
    let receipt_entry = cert.receipt.get("entry").cloned().unwrap_or(Value::Null);
    let checkpoint_note = cert
        .receipt
        .get("checkpoint")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let receipt_json = serde_json::to_string_pretty(&cert.receipt).unwrap_or_default();
    let certificate = &cert.certificate;
    // The generalisation level the search chose per quasi-identifier, as one line.
    let levels = match v.report.get("levels") {
        Some(Value::Object(levels)) if !levels.is_empty() => Some(
            levels
                .iter()
                .map(|(column, level)| format!("{column}: {}", cell_text(level)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    };
    let title = tf(
        lang,
        "public.version.title",
        &[("title", &entry.title), ("version", &number.to_string())],
    );
    let body = html! {
        h1 { (title) }
        p { a href=(format!("/catalog/{id}")) { (t(lang, "public.version.back")) } }
        @if let Some(tomb) = &v.destroyed {
            p.error {
                (tf(lang, "public.version.destroyed", &[
                    ("when", &china_time(tomb.destroyed_ms)),
                    ("reason", &tomb.reason),
                ]))
            }
        }
        h2 { (t(lang, "public.version.certificate")) }
        dl.facts {
            (item(t(lang, "public.field.certificate_no"), &certificate.certificate_no))
            (code_item(t(lang, "public.field.id"), &certificate.dataset_id))
            (item(t(lang, "public.field.version"), &certificate.version.to_string()))
            (code_item(t(lang, "public.field.holder_org"), &certificate.holder_org))
            (item(t(lang, "public.field.source_department"), &certificate.source_department))
            (item(t(lang, "public.field.rows"), &certificate.rows.to_string()))
            (item(t(lang, "public.field.bytes"), &certificate.bytes.to_string()))
            (code_item(t(lang, "public.field.content_hash"), &certificate.content_hash))
            (code_item(t(lang, "public.field.schema_hash"), &certificate.schema_hash))
            (item(t(lang, "public.field.level"), level_label(lang, &certificate.level)))
            (item(t(lang, "public.field.open_attribute"), open_label(lang, &certificate.open_attribute)))
            (item(t(lang, "public.field.valid_from"), &china_time_rfc3339(&certificate.valid_from)))
            (item(t(lang, "public.field.valid_until"), &china_time_rfc3339(&certificate.valid_until)))
            (item(t(lang, "public.field.certified"), &china_time(v.created_ms)))
        }
        @if let Value::Object(summary) = &certificate.deid_summary {
            h3 { (t(lang, "public.version.deid_summary")) }
            (summary_table(lang, summary))
        }
        h3 { (t(lang, "public.version.report")) }
        dl.facts {
            @for (label, pointer) in [
                (t(lang, "public.report.k_target"), "/k_target"),
                (t(lang, "public.report.k_achieved"), "/k_achieved"),
                (t(lang, "public.report.l_achieved"), "/l_achieved"),
                (t(lang, "public.report.records_in"), "/records_in"),
                (t(lang, "public.report.records_out"), "/records_out"),
                (t(lang, "public.report.suppressed"), "/suppressed"),
            ] {
                @if let Some(value) = v.report.pointer(pointer).filter(|x| !x.is_null()) {
                    (item(label, &cell_text(value)))
                }
            }
            @if let Some(levels) = &levels {
                (item(t(lang, "public.report.levels"), levels))
            }
            (code_item(t(lang, "public.field.schema_hash"), &v.schema_hash))
        }
        @if !v.released_domains.is_empty() {
            h3 { (t(lang, "public.version.released_domains")) }
            (domains_table(lang, &v.released_domains))
        }
        h2 { (t(lang, "public.version.receipt")) }
        p { (t(lang, "public.version.receipt_text")) }
        dl.facts {
            (item(t(lang, "public.field.ledger_seq"), &seq.to_string()))
            (item(t(lang, "public.field.entry_kind"), &receipt_entry.get("kind").map(cell_text).unwrap_or_default()))
            (code_item(t(lang, "public.field.entry_hash"), &receipt_entry.get("entry_hash").map(cell_text).unwrap_or_default()))
            (code_item(t(lang, "public.field.payload_hash"), &receipt_entry.get("payload_hash").map(cell_text).unwrap_or_default()))
            (item(t(lang, "public.field.tree_size"), &cert.receipt.get("tree_size").map(cell_text).unwrap_or_default()))
        }
        h3 { (t(lang, "public.version.checkpoint")) }
        pre { code { (checkpoint_note) } }
        @match &check {
            Ok(line) => {
                p.notice { (t(lang, "public.version.checked")) " " samp { (line) } }
            },
            Err(why) => {
                p.error { (t(lang, "public.version.check_failed")) " " (why) }
            },
        }
        p { a href=(receipt_link(seq)) type="application/json" { (t(lang, "public.version.receipt_download")) } }
        details {
            summary { (t(lang, "public.version.receipt_json")) }
            pre { code { (receipt_json) } }
        }
        h2 { (t(lang, "public.verify.title")) }
        p { (t(lang, "public.verify.intro")) }
        ol {
            li {
                p { (t(lang, "public.verify.step_receipt")) }
                pre { code { (format!("curl -fsS {base}/v1/ledger/receipt/{seq} -o {receipt_file}")) } }
            }
            li {
                p { (t(lang, "public.verify.step_key")) }
                pre { code { (format!("curl -fsS {base}/v1/ledger/public-key -o ledger.vkey")) } }
                p { (t(lang, "public.verify.key_compare")) }
                pre { code { (key) } }
            }
            li {
                p { (t(lang, "public.verify.step_run")) }
                pre { code { (format!("pdx ledger verify-receipt {receipt_file} --key ledger.vkey")) } }
                p { (t(lang, "public.verify.expect")) }
                @if let Ok(line) = &check {
                    pre { samp { (line) } }
                }
                p.muted { (t(lang, "public.verify.size_note")) }
            }
            li {
                p { (t(lang, "public.verify.step_payload")) }
                pre { code { (format!("jq -r .entry.payload {receipt_file}")) } }
                p {
                    (tf(lang, "public.verify.payload_expect", &[
                        ("certificate", &certificate.certificate_no),
                        ("hash", &certificate.content_hash),
                    ]))
                }
            }
            @if downloadable {
                li {
                    p { (t(lang, "public.verify.step_file")) }
                    pre { code { (format!("curl -fsS {base}/v1/datasets/{id}/versions/{number}/download -o {data_file}\nb3sum {data_file}")) } }
                    p { (tf(lang, "public.verify.file_expect", &[("hash", &certificate.content_hash)])) }
                }
            }
            li {
                p {
                    (t(lang, "public.verify.step_witness"))
                    " "
                    a href="/checkpoint" { (t(lang, "public.home.checkpoint")) }
                }
            }
        }
    };
    Ok(layout::page(&viewer, &title, body))
}

/// The scalar entries of a JSON object as a two-column table (nested values as JSON).
fn summary_table(lang: Lang, summary: &Map<String, Value>) -> Markup {
    html! {
        table.table {
            caption { (t(lang, "public.version.deid_summary")) }
            thead {
                tr {
                    th scope="col" { (t(lang, "public.field.measure")) }
                    th scope="col" { (t(lang, "public.field.value")) }
                }
            }
            tbody {
                @for (name, value) in summary {
                    tr {
                        th scope="row" { code { (name) } }
                        td { (cell_text(value)) }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// `/catalog/{id}/dummy`

/// The columns of dummy rows: the schema's, in its order, then any other the rows have.
fn dummy_columns(entry: &DatasetView, rows: &[Map<String, Value>]) -> Vec<String> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let mut columns: Vec<String> = entry
        .schema
        .columns
        .iter()
        .map(|c| c.name.clone())
        .filter(|name| first.contains_key(name))
        .collect();
    for name in first.keys() {
        if !columns.contains(name) {
            columns.push(name.clone());
        }
    }
    columns
}

async fn dummy(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = dataset_id(&raw_id, lang)?;
    let entry: DatasetView = portal.get(&viewer, &format!("/v1/datasets/{id}")).await?;
    // The API decides who gets dummy rows: its refusal (a 401 for the public on a
    // dataset that is not unconditionally open) is this page's.
    let rows: Vec<Map<String, Value>> = portal
        .get(
            &viewer,
            &format!("/v1/datasets/{id}/dummy?rows={DUMMY_ROWS}"),
        )
        .await?;
    let columns = dummy_columns(&entry, &rows);
    let title = tf(lang, "public.dummy.title", &[("title", &entry.title)]);
    let body = html! {
        h1 { (title) }
        p { a href=(format!("/catalog/{id}")) { (t(lang, "public.version.back")) } }
        p.notice { (t(lang, "public.dummy.synthetic")) }
        @if rows.is_empty() {
            p.muted { (t(lang, "public.dummy.empty")) }
        } @else {
            div.table-scroll { table.table {
                caption { (tf(lang, "public.dummy.caption", &[("rows", &rows.len().to_string())])) }
                thead {
                    tr {
                        @for column in &columns {
                            th scope="col" { code { (column) } }
                        }
                    }
                }
                tbody {
                    @for row in &rows {
                        tr {
                            @for column in &columns {
                                td { (row.get(column).map(cell_text).unwrap_or_default()) }
                            }
                        }
                    }
                }
            } }
        }
        p {
            a href=(format!("/v1/datasets/{id}/dummy?format=csv&rows=100")) { (t(lang, "public.dummy.csv")) }
        }
    };
    Ok(layout::page(&viewer, &title, body))
}

// ---------------------------------------------------------------------------------
// `/market`

/// The query of `/market`.
#[derive(Debug, Default, Deserialize)]
struct MarketParams {
    q: Option<String>,
    page: Option<String>,
}

/// Every listed product the API shows the viewer, a batch at a time (oldest first).
async fn listed_products(portal: &Portal, viewer: &Viewer) -> Result<Vec<ProductView>, PageError> {
    let mut products = Vec::new();
    let limit = PRODUCT_BATCH.to_string();
    for batch in 0..MAX_PRODUCT_BATCHES {
        let offset = (batch * PRODUCT_BATCH).to_string();
        let path = with_query(
            "/v1/products",
            &[("status", "listed"), ("limit", &limit), ("offset", &offset)],
        );
        let found: Vec<ProductView> = portal.get(viewer, &path).await?;
        let complete = found.len() < PRODUCT_BATCH;
        products.extend(found);
        if complete {
            break;
        }
    }
    Ok(products)
}

async fn market(
    State(portal): State<Portal>,
    viewer: Viewer,
    query: Result<Query<MarketParams>, QueryRejection>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let params = query_or_400(query, lang)?;
    let current = page_number(text(&params.page), lang)?;
    // Listing products needs a key: without one this is the API's 401.
    let products = listed_products(&portal, &viewer).await?;
    let needle = text(&params.q).to_lowercase();
    let matching: Vec<&ProductView> = products
        .iter()
        .filter(|listed| needle.is_empty() || listed.matches(&needle))
        .collect();
    let pages = matching.len().div_ceil(MARKET_PER_PAGE).max(1);
    let shown = matching
        .iter()
        .skip(current.saturating_sub(1).saturating_mul(MARKET_PER_PAGE))
        .take(MARKET_PER_PAGE);
    let link = |page: usize| {
        let page = page.to_string();
        with_query("/market", &[("q", text(&params.q)), ("page", &page)])
    };
    let title = t(lang, "public.market.title");
    let body = html! {
        h1 { (title) }
        p { (t(lang, "public.market.intro")) }
        form.form method="get" action="/market" role="search" {
            p {
                label for="market-q" { (t(lang, "public.market.search")) }
                " "
                input id="market-q" type="search" name="q" value=(text(&params.q));
                " "
                button type="submit" { (t(lang, "public.catalog.apply")) }
            }
        }
        p role="status" {
            (tf(lang, "public.market.count", &[
                ("total", &matching.len().to_string()),
                ("page", &current.to_string()),
                ("pages", &pages.to_string()),
            ]))
        }
        @if matching.is_empty() {
            p.notice { (t(lang, "public.market.empty")) }
        } @else {
            table.table {
                caption { (t(lang, "public.market.caption")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "public.field.title")) }
                        th scope="col" { (t(lang, "public.field.licence")) }
                        th scope="col" { (t(lang, "public.field.price")) }
                        th scope="col" { (t(lang, "public.field.registration_no")) }
                        th scope="col" { (t(lang, "public.field.listed")) }
                    }
                }
                tbody {
                    @for listed in shown {
                        tr {
                            td { a href=(format!("/market/{}", listed.id)) { (listed.title) } }
                            td { (licence_label(lang, &listed.licence.kind)) }
                            td { (yuan(listed.price_minor)) }
                            td { (listed.registration_no.as_deref().unwrap_or_default()) }
                            td { (listed.listed_at.as_deref().map(china_time_rfc3339).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        nav aria-label=(t(lang, "public.pager.label")) {
            @if current > 1 {
                a rel="prev" href=(link(current - 1)) { (t(lang, "public.pager.previous")) }
                " "
            }
            @if current < pages {
                a rel="next" href=(link(current + 1)) { (t(lang, "public.pager.next")) }
            }
        }
    };
    Ok(layout::page(&viewer, title, body))
}

// ---------------------------------------------------------------------------------
// `/market/{id}`

async fn product(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let id = ProductId::parse(&raw_id).map_err(|_| not_found(lang))?;
    let listing: ProductView = portal.get(&viewer, &format!("/v1/products/{id}")).await?;
    let body = html! {
        h1 { (listing.title) }
        @if !listing.description.is_empty() {
            p { (listing.description) }
        }
        @if viewer.role() == Some(Role::Buyer) && listing.status == "listed" {
            p { a href=(format!("/buyer/products/{id}")) { (t(lang, "public.product.order")) } }
        }
        dl.facts {
            (code_item(t(lang, "public.field.id"), &listing.id))
            (item(t(lang, "public.field.status"), product_status_label(lang, &listing.status)))
            @if let Some(reason) = &listing.status_reason {
                (item(t(lang, "public.field.status_reason"), reason))
            }
            (code_item(t(lang, "public.field.developer_org"), &listing.developer_org))
            (item(t(lang, "public.field.licence"), licence_label(lang, &listing.licence.kind)))
            (item(t(lang, "public.field.licence_term"), &tf(lang, "public.product.term_days", &[("days", &listing.licence.term_days.to_string())])))
            @if !listing.licence.permitted_use.is_empty() {
                (item(t(lang, "public.field.permitted_use"), &listing.licence.permitted_use))
            }
            (item(t(lang, "public.field.price"), &format!("{} {}", yuan(listing.price_minor), listing.currency)))
            @if let Some(no) = &listing.registration_no {
                (item(t(lang, "public.field.registration_no"), no))
            }
            (item(t(lang, "public.field.created"), &china_time_rfc3339(&listing.created_at)))
            @if let Some(listed) = &listing.listed_at {
                (item(t(lang, "public.field.listed"), &china_time_rfc3339(listed)))
            }
            @if let Some(seq) = listing.listing_seq {
                dt { (t(lang, "public.field.listing_receipt")) }
                dd { a href=(receipt_link(seq)) { (tf(lang, "public.product.receipt_of", &[("seq", &seq.to_string())])) } }
            }
        }
        h2 { (t(lang, "public.product.manifest")) }
        p { (t(lang, "public.product.manifest_text")) }
        dl.facts {
            (code_item(t(lang, "public.field.manifest_format"), &listing.manifest.format))
            (code_item(t(lang, "public.field.manifest_hash"), &listing.manifest_hash))
            (item(t(lang, "public.field.generated"), &china_time_rfc3339(&listing.manifest.generated_at)))
        }
        @for (n, source) in listing.manifest.sources.iter().enumerate() {
            section.card {
                h3 { (tf(lang, "public.product.source", &[("n", &(n + 1).to_string()), ("release", &source.release_id)])) }
                dl.facts {
                    (code_item(t(lang, "public.field.release_id"), &source.release_id))
                    (code_item(t(lang, "public.field.output_hash"), &source.output_hash))
                    (code_item(t(lang, "public.field.model_hash"), &source.model_hash))
                    (item(t(lang, "public.field.reviewers"), &source.reviewers.join(", ")))
                    (item(t(lang, "public.field.research_only_grant"), yes_no(lang, source.research_only_grant)))
                    @if let Some(purpose) = &source.grant_purpose {
                        (item(t(lang, "public.field.grant_purpose"), purpose))
                    }
                }
                table.table {
                    caption { (t(lang, "public.product.datasets")) }
                    thead {
                        tr {
                            th scope="col" { (t(lang, "public.field.title")) }
                            th scope="col" { (t(lang, "public.field.source_department")) }
                            th scope="col" { (t(lang, "public.field.provider_org")) }
                            th scope="col" { (t(lang, "public.field.certificate_no")) }
                            th scope="col" { (t(lang, "public.field.content_hash")) }
                            th scope="col" { (t(lang, "public.field.acquired")) }
                            th scope="col" { (t(lang, "public.field.research_only")) }
                        }
                    }
                    tbody {
                        @for d in &source.datasets {
                            tr {
                                th scope="row" {
                                    @if DatasetId::parse(&d.dataset_id).is_ok() {
                                        a href=(format!("/catalog/{}", d.dataset_id)) { (d.title) }
                                    } @else {
                                        (d.title)
                                    }
                                }
                                td { (d.source_department) }
                                td { code { (d.provider_org) } }
                                td { (d.certificate_no) }
                                td { code { (d.content_hash) } }
                                td { (d.acquired) }
                                td { (yes_no(lang, d.research_only)) }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/market" { (t(lang, "public.product.back")) } }
    };
    Ok(layout::page(&viewer, &listing.title, body))
}

// ---------------------------------------------------------------------------------
// `/suspensions`

async fn suspensions(State(portal): State<Portal>, viewer: Viewer) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let list: SuspensionListView = portal.get(&viewer, "/v1/audit/suspensions").await?;
    let title = t(lang, "public.suspensions.title");
    let body = html! {
        h1 { (title) }
        p { (t(lang, "public.suspensions.intro")) }
        h2 { (t(lang, "public.suspensions.now")) }
        @if list.suspended.is_empty() {
            p.notice { (t(lang, "public.suspensions.none_now")) }
        } @else {
            table.table {
                caption { (t(lang, "public.suspensions.now")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "public.field.organisation")) }
                        th scope="col" { (t(lang, "public.field.org_id")) }
                    }
                }
                tbody {
                    @for org in &list.suspended {
                        tr {
                            th scope="row" { (org.name) }
                            td { code { (org.org_id) } }
                        }
                    }
                }
            }
        }
        h2 { (t(lang, "public.suspensions.history")) }
        @if list.history.is_empty() {
            p.muted { (t(lang, "public.suspensions.none_ever")) }
        } @else {
            table.table {
                caption { (t(lang, "public.suspensions.history")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "public.field.when")) }
                        th scope="col" { (t(lang, "public.field.organisation")) }
                        th scope="col" { (t(lang, "public.field.action")) }
                        th scope="col" { (t(lang, "public.field.reason")) }
                        th scope="col" { (t(lang, "public.field.runs_cancelled")) }
                        th scope="col" { (t(lang, "public.field.listings_delisted")) }
                        th scope="col" { (t(lang, "public.field.receipt")) }
                    }
                }
                tbody {
                    @for record in &list.history {
                        tr {
                            td { (china_time(record.created_ms)) }
                            th scope="row" { (record.org_name) " " code { (record.org_id) } }
                            td { span.badge { (suspension_action_label(lang, &record.action)) } }
                            td { (record.reason) }
                            td { (record.runs_cancelled) }
                            td { (record.listings_delisted) }
                            td { a href=(receipt_link(record.seq)) { (tf(lang, "public.product.receipt_of", &[("seq", &record.seq.to_string())])) } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&viewer, title, body))
}

// ---------------------------------------------------------------------------------
// `/checkpoint`

/// Who made one signature line of a checkpoint note.
enum Signer {
    /// The log itself (its key verified the note).
    Log,
    /// A witness's cosignature, with the time it carries (seconds since the epoch).
    Witness(Option<u64>),
    /// Any other line.
    Other,
}

/// Bytes of a cosignature/v1 signature after the key id: timestamp (8) and Ed25519 (64).
const COSIGNATURE_LEN: usize = 8 + 64;

async fn checkpoint(
    State(portal): State<Portal>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let note_text = api_text(&portal, &viewer, "/v1/ledger/checkpoint").await?;
    let key = api_text(&portal, &viewer, "/v1/ledger/public-key").await?;
    let key = key.trim();
    let verifier = NoteVerifier::parse(key).ok();
    let note = SignedNote::parse(&note_text).ok();
    let body_of_note = note
        .as_ref()
        .and_then(|n| Checkpoint::parse_body(&n.body).ok());
    let log_verified = match (&note, &verifier) {
        (Some(note), Some(verifier)) => note.verify(verifier).is_ok(),
        _ => false,
    };
    let signers: Vec<(String, String, Signer)> = note
        .as_ref()
        .map(|note| {
            note.signatures
                .iter()
                .map(|sig| {
                    let by_log = verifier
                        .as_ref()
                        .is_some_and(|v| v.name() == sig.name && v.key_id() == sig.key_id);
                    let signer = if by_log {
                        Signer::Log
                    } else if sig.signature.len() == COSIGNATURE_LEN {
                        Signer::Witness(sig.cosignature_timestamp())
                    } else {
                        Signer::Other
                    };
                    (sig.name.clone(), hex::encode(sig.key_id), signer)
                })
                .collect()
        })
        .unwrap_or_default();
    let witnesses = signers
        .iter()
        .filter(|(_, _, s)| matches!(s, Signer::Witness(_)))
        .count();
    let base = base_url(&portal, &headers);
    let title = t(lang, "public.checkpoint.title");
    let body = html! {
        h1 { (title) }
        p { (t(lang, "public.checkpoint.intro")) }
        @if let Some(cp) = &body_of_note {
            dl.facts {
                (item(t(lang, "public.field.origin"), &cp.origin))
                (item(t(lang, "public.field.tree_size"), &cp.size.to_string()))
                (code_item(t(lang, "public.field.root"), &hex::encode(cp.root)))
                (item(t(lang, "public.field.witnesses"), &witnesses.to_string()))
            }
        } @else {
            p.error { (t(lang, "public.checkpoint.unreadable")) }
        }
        @if log_verified {
            p.notice { (t(lang, "public.checkpoint.verified")) }
        } @else {
            p.error { (t(lang, "public.checkpoint.not_verified")) }
        }
        h2 { (t(lang, "public.checkpoint.signatures")) }
        table.table {
            caption { (t(lang, "public.checkpoint.signatures")) }
            thead {
                tr {
                    th scope="col" { (t(lang, "public.field.signer")) }
                    th scope="col" { (t(lang, "public.field.key_id")) }
                    th scope="col" { (t(lang, "public.field.signature_kind")) }
                    th scope="col" { (t(lang, "public.field.cosigned_at")) }
                }
            }
            tbody {
                @for (name, key_id, signer) in &signers {
                    tr {
                        th scope="row" { (name) }
                        td { code { (key_id) } }
                        @match signer {
                            Signer::Log => {
                                td { span.badge { (t(lang, "public.checkpoint.log_signature")) } }
                                td {}
                            },
                            Signer::Witness(at) => {
                                td { span.badge { (t(lang, "public.checkpoint.witness_cosignature")) } }
                                td {
                                    @if let Some(seconds) = at {
                                        (china_time(i64::try_from(*seconds).unwrap_or(i64::MAX / 1000).saturating_mul(1000)))
                                    }
                                }
                            },
                            Signer::Other => {
                                td { span.badge { (t(lang, "public.checkpoint.other_signature")) } }
                                td {}
                            },
                        }
                    }
                }
            }
        }
        @if witnesses == 0 {
            p.muted { (t(lang, "public.checkpoint.no_witness")) }
        } @else {
            p.muted { (t(lang, "public.checkpoint.witness_text")) }
        }
        h2 { (t(lang, "public.checkpoint.note")) }
        pre { code { (note_text) } }
        h2 { (t(lang, "public.checkpoint.key")) }
        pre { code { (key) } }
        h2 { (t(lang, "public.checkpoint.how")) }
        p { (t(lang, "public.checkpoint.how_text")) }
        pre { code { (format!("curl -fsS {base}/v1/ledger/checkpoint -o checkpoint.txt\ncurl -fsS {base}/v1/ledger/public-key -o ledger.vkey")) } }
    };
    Ok(layout::page(&viewer, title, body))
}

// ---------------------------------------------------------------------------------
// `/open-data-requests`

/// The query of `/open-data-requests`: a dataset to prefill, the request just filed,
/// and the page of the list.
#[derive(Debug, Default, Deserialize)]
struct RequestsParams {
    dataset_id: Option<String>,
    filed: Option<String>,
    page: Option<String>,
}

/// The form that files a request. Every field defaults to empty, so that a form
/// without its CSRF token is refused as such (403) rather than as malformed.
#[derive(Debug, Default, Deserialize)]
struct RequestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    dataset_id: String,
    #[serde(default)]
    contact: String,
}

async fn open_data_requests(
    State(portal): State<Portal>,
    viewer: Viewer,
    query: Result<Query<RequestsParams>, QueryRejection>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let params = query_or_400(query, lang)?;
    let form = RequestForm {
        dataset_id: text(&params.dataset_id).to_string(),
        ..RequestForm::default()
    };
    // Only a well-formed id is named back: the notice never repeats arbitrary text.
    let notice = OpenDataRequestId::parse(text(&params.filed))
        .ok()
        .map(|id| {
            html! {
                p.notice role="status" {
                    (tf(lang, "public.requests.filed", &[("id", id.as_str())]))
                }
            }
        });
    let page = page_number(text(&params.page), lang)?;
    requests_page(&portal, &viewer, &form, notice, page).await
}

async fn file_open_data_request(
    State(portal): State<Portal>,
    viewer: Viewer,
    form: Result<Form<RequestForm>, FormRejection>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let Ok(Form(form)) = form else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            t(lang, "public.error.bad_form"),
            lang,
        ));
    };
    check_csrf(&viewer, &form.csrf)?;
    let mut request = json!({
        "subject": form.subject.trim(),
        "description": form.description.trim(),
    });
    if !form.dataset_id.trim().is_empty() {
        request["dataset_id"] = json!(form.dataset_id.trim());
    }
    if !form.contact.trim().is_empty() {
        request["contact"] = json!(form.contact.trim());
    }
    match portal
        .send::<Value>(&viewer, Method::POST, "/v1/open-data-requests", &request)
        .await
    {
        Ok(filed) => {
            let id = filed.get("id").and_then(Value::as_str).unwrap_or_default();
            Ok(Redirect::to(&with_query("/open-data-requests", &[("filed", id)])).into_response())
        }
        Err(refused) => {
            // The form again, with what was typed and the API's reason, under the API's
            // status.
            let notice = html! {
                p.error role="alert" {
                    (t(lang, "public.requests.refused"))
                    " "
                    (refused.detail)
                }
            };
            let markup = requests_page(&portal, &viewer, &form, Some(notice), 1).await?;
            Ok((refused.status, markup).into_response())
        }
    }
}

/// The requests page: the form (filled with `form`), a notice, and a page of requests.
async fn requests_page(
    portal: &Portal,
    viewer: &Viewer,
    form: &RequestForm,
    notice: Option<Markup>,
    page: usize,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let page_text = page.to_string();
    let requests: Vec<OpenDataRequestView> = portal
        .get(
            viewer,
            &with_query("/v1/open-data-requests", &[("page", &page_text)]),
        )
        .await?;
    let title = t(lang, "public.requests.title");
    let body = html! {
        h1 { (title) }
        p { (t(lang, "public.requests.intro")) }
        @if let Some(notice) = notice {
            (notice)
        }
        h2 { (t(lang, "public.requests.new")) }
        form.form method="post" action="/open-data-requests" {
            (csrf_field(viewer))
            p {
                label for="request-subject" { (t(lang, "public.requests.subject")) }
                " "
                input id="request-subject" type="text" name="subject" required maxlength="200" value=(form.subject);
            }
            p {
                label for="request-description" { (t(lang, "public.requests.description")) }
                " "
                textarea id="request-description" name="description" required maxlength="4000" rows="5" { (form.description) }
            }
            p {
                label for="request-dataset" { (t(lang, "public.requests.dataset")) }
                " "
                input id="request-dataset" type="text" name="dataset_id" value=(form.dataset_id) aria-describedby="request-dataset-hint";
                " "
                span.muted id="request-dataset-hint" { (t(lang, "public.requests.dataset_hint")) }
            }
            p {
                label for="request-contact" { (t(lang, "public.requests.contact")) }
                " "
                input id="request-contact" type="text" name="contact" maxlength="200" value=(form.contact) aria-describedby="request-contact-hint";
                " "
                span.muted id="request-contact-hint" { (t(lang, "public.requests.contact_hint")) }
            }
            p { button type="submit" { (t(lang, "public.requests.submit")) } }
        }
        h2 { (t(lang, "public.requests.list")) }
        @if requests.is_empty() {
            p.muted { (t(lang, "public.requests.none")) }
        } @else {
            table.table {
                caption { (t(lang, "public.requests.list")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "public.requests.subject")) }
                        th scope="col" { (t(lang, "public.requests.kind")) }
                        th scope="col" { (t(lang, "public.field.status")) }
                        th scope="col" { (t(lang, "public.field.filed")) }
                        th scope="col" { (t(lang, "public.field.answer_due")) }
                        th scope="col" { (t(lang, "public.field.reason")) }
                        th scope="col" { (t(lang, "public.field.receipt")) }
                    }
                }
                tbody {
                    @for r in &requests {
                        tr id=(r.id) {
                            th scope="row" {
                                (r.subject)
                                p.muted { (r.description) }
                            }
                            td {
                                (request_kind_label(lang, &r.request))
                                @if let Some(dataset) = r.dataset_id.as_deref().filter(|d| DatasetId::parse(d).is_ok()) {
                                    " " a href=(format!("/catalog/{dataset}")) { code { (dataset) } }
                                }
                            }
                            td {
                                span.badge { (request_status_label(lang, &r.status)) }
                                @if r.overdue {
                                    " " span.badge { (t(lang, "public.requests.overdue")) }
                                }
                                @if r.answered_late {
                                    " " span.badge { (t(lang, "public.requests.late")) }
                                }
                            }
                            td { (china_time(r.filed_ms)) }
                            td { (r.answer_due.as_deref().unwrap_or_default()) }
                            td { (r.reason.as_deref().unwrap_or_default()) }
                            td { a href=(receipt_link(r.filed_seq)) { (tf(lang, "public.product.receipt_of", &[("seq", &r.filed_seq.to_string())])) } }
                        }
                    }
                }
            }
        }
        nav aria-label=(t(lang, "public.pager.label")) {
            @if page > 1 {
                a rel="prev" href=(with_query("/open-data-requests", &[("page", &(page - 1).to_string())])) { (t(lang, "public.pager.previous")) }
                " "
            }
            @if requests.len() == REQUESTS_PER_PAGE {
                a rel="next" href=(with_query("/open-data-requests", &[("page", &(page + 1).to_string())])) { (t(lang, "public.pager.next")) }
            }
        }
    };
    Ok(layout::page(viewer, title, body))
}
