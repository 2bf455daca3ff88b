//! The market pages (issue #21): the exchange's listing desk and the buyers' market.
//!
//! **Exchange desk** (`/exchange…`): the products awaiting listing, each with its
//! provenance manifest and its lineage drawn as a graph (datasets → certificates →
//! model → released outputs → product), with the list and reject-with-reason forms; one
//! product with its orders; the whole order book with filters; settlement of a finished
//! month with the settlements and remittances so far; the reconciliation table with a
//! chart.
//!
//! **Buyers** (`/buyer…`): the market (listed products, searched and filtered here),
//! a product page (manifest, licence, price in yuan) with an order form, and an order
//! page with the payment form and the download link.
//!
//! How the pages stay honest (the portal's one rule): every datum comes from, and every
//! action goes through, the JSON API in-process as the viewer (`Portal::get`,
//! `Portal::send`, `Portal::raw`), so a refusal is the API's, with its status and
//! detail. The desk's pages show every organisation's trading records: they are refused
//! exactly as the API refuses its reads of that book (the `EXCHANGE_READS` policy of
//! `GET /v1/reconciliation` in the one policy table), which also keeps a buyer out of
//! `/exchange/orders` although `GET /v1/orders` would answer a buyer with its own
//! orders. Forms are shown only to roles the policy table lets act; the API decides
//! anyway.
//!
//! Orders are idempotent as the API makes them: the product page puts a fresh random
//! `Idempotency-Key` in a hidden field each time it is rendered, and the order form
//! sends it as the API's header, so submitting the same rendered form twice (a double
//! click, a reload that re-posts) is one order. Downloads stream the API's response
//! body through untouched, with its `Content-Type` and `Content-Disposition`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use pdx_ids::{OrderId, ProductId};
use pdx_products::{
    GrantPurpose, LicenceKind, MAX_IDEMPOTENCY_KEY, Order, OrderStatus, PayeeKind, Product,
    ProductStatus, ReconRow, Reconciliation, Settlement,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Role;
use crate::http::policies::policy_for;
use crate::http::products_api::IDEMPOTENCY_KEY;
use crate::portal::Portal;
use crate::portal::api::{PageError, page_error, with_query};
use crate::portal::i18n::{Lang, t, tf};
use crate::portal::layout::{china_time_rfc3339, csrf_field, page, yuan};
use crate::portal::session::{Viewer, check_csrf};
use crate::portal::svg;

/// The API read whose policy decides who sees the exchange desk's pages.
const DESK_ROUTE: &str = "/v1/reconciliation";

/// Products shown in the listing queue at once (the API's default page).
const QUEUE_LIMIT: &str = "100";

/// Listed products the market page searches (the API's largest page).
const MARKET_SCAN: &str = "1000";

/// Products per market page.
const MARKET_PAGE: usize = 50;

/// Orders shown in the order book and on a product's desk page.
const ORDERS_LIMIT: &str = "200";

/// The longest API answer read into memory here (an order; downloads are streamed,
/// never read).
const ANSWER_LIMIT: usize = 256 * 1024;

/// The archive hash header the API sets on downloads, passed on to the browser.
const ARCHIVE_HASH: &str = "x-archive-blake3";

/// The order statuses, with their labels, for the order book's filter.
const ORDER_STATUSES: [(&str, &str); 4] = [
    ("pending", "market.order_status.pending"),
    ("paid", "market.order_status.paid"),
    ("delivered", "market.order_status.delivered"),
    ("refunded", "market.order_status.refunded"),
];

/// The licence kinds, with their labels, for the market's filter.
const LICENCE_KINDS: [(&str, &str); 4] = [
    ("research_only", "market.licence.research_only"),
    ("public_interest", "market.licence.public_interest"),
    ("commercial_internal", "market.licence.commercial_internal"),
    (
        "commercial_redistribution",
        "market.licence.commercial_redistribution",
    ),
];

/// The reconciliation's groupings, with their labels (the first is the page's default).
const RECON_GROUPS: [(&str, &str); 4] = [
    ("provider_region", "market.recon.group.provider_region"),
    ("developer", "market.recon.group.developer"),
    ("period", "market.recon.group.period"),
    ("total", "market.recon.group.total"),
];

/// The market pages.
pub fn routes() -> Router<Portal> {
    Router::new()
        .route("/exchange", get(exchange_queue))
        .route("/exchange/products/{id}", get(exchange_product))
        .route("/exchange/products/{id}/list", post(list_product))
        .route("/exchange/products/{id}/reject", post(reject_product))
        .route("/exchange/orders", get(exchange_orders))
        .route("/exchange/settlements", get(settlements).post(settle))
        .route("/exchange/reconciliation", get(reconciliation))
        .route("/buyer", get(market))
        .route("/buyer/products/{id}", get(buyer_product))
        .route("/buyer/products/{id}/order", post(place_order))
        .route("/buyer/orders/{id}", get(buyer_order))
        .route("/buyer/orders/{id}/pay", post(pay_order))
        .route("/buyer/orders/{id}/download", get(download))
}

// ---------------------------------------------------------------------------------
// Forms and queries. Every field defaults, so a missing field is the handler's to
// judge (a missing `csrf` is the 403 of `check_csrf`, not an extractor's 422).

/// A form that carries nothing but its CSRF token.
#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The reject form.
#[derive(Debug, Deserialize)]
struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// The settle form.
#[derive(Debug, Deserialize)]
struct SettleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    period: String,
}

/// The order form, with the idempotency key generated when it was rendered.
#[derive(Debug, Deserialize)]
struct OrderForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    idempotency_key: String,
}

/// The payment form.
#[derive(Debug, Deserialize)]
struct PayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    payment_ref: String,
}

/// A page reached after a form succeeded says what happened (known codes only).
#[derive(Debug, Default, Deserialize)]
struct NoticeQuery {
    #[serde(default)]
    notice: String,
}

/// The order book's filters (empty: not filtered).
#[derive(Debug, Default, Deserialize)]
struct OrdersQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    buyer_org: String,
    #[serde(default)]
    product_id: String,
}

/// The market's search.
#[derive(Debug, Default, Deserialize)]
struct MarketQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    licence: String,
    #[serde(default)]
    page: String,
}

/// The reconciliation's grouping.
#[derive(Debug, Default, Deserialize)]
struct ReconQuery {
    #[serde(default)]
    group_by: String,
}

// ---------------------------------------------------------------------------------
// Who may see and do what: read from the API's one policy table.

/// Whether the policy table lets the viewer's role call `method route` at all.
fn admitted(viewer: &Viewer, method: &Method, route: &str) -> bool {
    match (viewer.role(), policy_for(method, route)) {
        (Some(role), Some(policy)) => policy.roles.contains(&role),
        _ => false,
    }
}

/// The exchange desk's gate: 401 without a session, 403 for a role the API refuses
/// the trading book's reads to.
fn desk(viewer: &Viewer) -> Result<(), PageError> {
    let lang = viewer.lang;
    if viewer.signed_in.is_none() {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            t(lang, "market.error.signin"),
            lang,
        ));
    }
    if !admitted(viewer, &Method::GET, DESK_ROUTE) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            t(lang, "market.error.desk_role"),
            lang,
        ));
    }
    Ok(())
}

/// A product id from a URL; a malformed one is "not found", as in the API.
fn product_id(viewer: &Viewer, raw: &str) -> Result<ProductId, PageError> {
    ProductId::parse(raw).map_err(|_| {
        PageError::new(
            StatusCode::NOT_FOUND,
            t(viewer.lang, "market.error.no_product"),
            viewer.lang,
        )
    })
}

/// An order id from a URL; a malformed one is "not found", as in the API.
fn order_id(viewer: &Viewer, raw: &str) -> Result<OrderId, PageError> {
    OrderId::parse(raw).map_err(|_| {
        PageError::new(
            StatusCode::NOT_FOUND,
            t(viewer.lang, "market.error.no_order"),
            viewer.lang,
        )
    })
}

/// Whether `s` is a settlement period, `YYYY-MM` (checked before it goes into a path;
/// the API judges the month itself).
fn is_period(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
}

/// A fresh idempotency key for one rendered order form (128 random bits).
fn new_idempotency_key() -> String {
    format!("portal-{}", hex::encode(rand::random::<[u8; 16]>()))
}

// ---------------------------------------------------------------------------------
// Raw API answers (orders and downloads go through `Portal::raw`).

/// Reads a small API answer (an order) into memory.
async fn small_answer(body: Body, lang: Lang) -> Result<axum::body::Bytes, PageError> {
    axum::body::to_bytes(body, ANSWER_LIMIT).await.map_err(|_| {
        PageError::new(
            StatusCode::BAD_GATEWAY,
            t(lang, "market.error.answer"),
            lang,
        )
    })
}

/// A page answered with the status of the refusal it shows, or 200.
fn answer(refusal: Option<&PageError>, markup: Markup) -> Response {
    let status = refusal.map_or(StatusCode::OK, |e| e.status);
    (status, markup).into_response()
}

// ---------------------------------------------------------------------------------
// Labels.

/// A product status for people.
fn product_status_label(lang: Lang, status: ProductStatus) -> &'static str {
    t(
        lang,
        match status {
            ProductStatus::PendingReview => "market.product_status.pending_review",
            ProductStatus::Listed => "market.product_status.listed",
            ProductStatus::Rejected => "market.product_status.rejected",
            ProductStatus::Delisted => "market.product_status.delisted",
        },
    )
}

/// An order status for people.
fn order_status_label(lang: Lang, status: OrderStatus) -> &'static str {
    t(
        lang,
        match status {
            OrderStatus::Pending => "market.order_status.pending",
            OrderStatus::Paid => "market.order_status.paid",
            OrderStatus::Delivered => "market.order_status.delivered",
            OrderStatus::Refunded => "market.order_status.refunded",
        },
    )
}

/// A licence kind for people.
fn licence_label(lang: Lang, kind: LicenceKind) -> &'static str {
    t(
        lang,
        match kind {
            LicenceKind::ResearchOnly => "market.licence.research_only",
            LicenceKind::PublicInterest => "market.licence.public_interest",
            LicenceKind::CommercialInternal => "market.licence.commercial_internal",
            LicenceKind::CommercialRedistribution => "market.licence.commercial_redistribution",
        },
    )
}

/// The purpose of the grant a release ran under, for people (None: no grant).
fn grant_label(lang: Lang, purpose: Option<GrantPurpose>) -> &'static str {
    t(
        lang,
        match purpose {
            Some(GrantPurpose::Research) => "market.grant.research",
            Some(GrantPurpose::PublicInterest) => "market.grant.public_interest",
            Some(GrantPurpose::Commercial) => "market.grant.commercial",
            None => "market.manifest.no_grant",
        },
    )
}

/// A class of payee for people.
fn payee_label(lang: Lang, kind: PayeeKind) -> &'static str {
    t(
        lang,
        match kind {
            PayeeKind::PublicFinance => "market.payee.public_finance",
            PayeeKind::Developer => "market.payee.developer",
            PayeeKind::Platform => "market.payee.platform",
        },
    )
}

/// Basis points as a percentage ("30%", "12.5%").
fn percent(bp: u32) -> String {
    let (whole, part) = (bp / 100, bp % 100);
    if part == 0 {
        format!("{whole}%")
    } else {
        let hundredths = format!("{part:02}");
        format!("{whole}.{}%", hundredths.trim_end_matches('0'))
    }
}

/// Fen as yuan for a chart's axis.
fn yuan_value(fen: i64) -> f64 {
    fen as f64 / 100.0
}

/// The notice a successful form leaves on the page it leads to.
fn notice_box(lang: Lang, code: &str) -> Markup {
    let key = match code {
        "listed" => Some("market.notice.listed"),
        "rejected" => Some("market.notice.rejected"),
        "placed" => Some("market.notice.placed"),
        "replayed" => Some("market.notice.replayed"),
        "paid" => Some("market.notice.paid"),
        "settled" => Some("market.notice.settled"),
        "already_settled" => Some("market.notice.already_settled"),
        _ => None,
    };
    html! {
        @if let Some(key) = key {
            p.notice role="status" { (t(lang, key)) }
        }
    }
}

/// The API's refusal of a form, with its status and detail.
fn refusal_box(lang: Lang, refusal: Option<&PageError>) -> Markup {
    html! {
        @if let Some(e) = refusal {
            @let code = e.status.as_u16().to_string();
            div.error role="alert" {
                p { strong { (tf(lang, "market.refused", &[("status", code.as_str())])) } }
                p { (e.detail) }
            }
        }
    }
}

/// Links between the desk's pages, for a supervisor reading the desk (the exchange's
/// own navigation in the page header has them already).
fn desk_nav(viewer: &Viewer) -> Markup {
    let lang = viewer.lang;
    if viewer.role() == Some(Role::Exchange) {
        return html! {};
    }
    html! {
        nav aria-label=(t(lang, "market.exchange.nav")) {
            ul {
                li { a href="/exchange" { (t(lang, "market.exchange.queue.title")) } }
                li { a href="/exchange/orders" { (t(lang, "market.exchange.orders.title")) } }
                li { a href="/exchange/settlements" { (t(lang, "market.exchange.settlements.title")) } }
                li { a href="/exchange/reconciliation" { (t(lang, "market.exchange.recon.title")) } }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// A product: facts, manifest, lineage.

/// The facts of a product: status, registration, licence, price, split, dates.
fn product_facts(lang: Lang, product: &Product) -> Markup {
    let licence = &product.licence;
    let permitted = if licence.permitted_use.is_empty() {
        licence.kind.default_permitted_use()
    } else {
        licence.permitted_use.as_str()
    };
    let term = licence.term_days.to_string();
    let split = &product.split;
    let (public_finance, developer, platform) = (
        percent(split.public_finance_bp),
        percent(split.developer_bp),
        percent(split.platform_bp),
    );
    html! {
        dl.facts {
            dt { (t(lang, "market.product.status")) }
            dd { span.badge { (product_status_label(lang, product.status)) } }
            @if let Some(reason) = &product.status_reason {
                dt { (t(lang, "market.product.status_reason")) }
                dd { (reason) }
            }
            dt { (t(lang, "market.product.id")) }
            dd { code { (product.id.as_str()) } }
            dt { (t(lang, "market.product.developer")) }
            dd { (product.developer_org.as_str()) }
            @if let Some(no) = &product.registration_no {
                dt { (t(lang, "market.product.registration")) }
                dd { (no) }
            }
            dt { (t(lang, "market.product.licence")) }
            dd {
                (licence_label(lang, licence.kind)) " · "
                (tf(lang, "market.product.term_days", &[("days", term.as_str())]))
            }
            dt { (t(lang, "market.product.permitted_use")) }
            dd { (permitted) }
            dt { (t(lang, "market.product.price")) }
            dd { (yuan(product.price_minor)) }
            dt { (t(lang, "market.product.split")) }
            dd {
                (tf(lang, "market.product.split_parts", &[
                    ("public_finance", public_finance.as_str()),
                    ("developer", developer.as_str()),
                    ("platform", platform.as_str()),
                ]))
            }
            dt { (t(lang, "market.product.regions")) }
            dd {
                @for (i, region) in product.regions.iter().enumerate() {
                    @if i > 0 { ", " }
                    @let count = region.datasets.to_string();
                    (tf(lang, "market.product.region_datasets", &[
                        ("region", region.region.as_str()),
                        ("datasets", count.as_str()),
                    ]))
                }
            }
            @if product.research_only_sources {
                dt { (t(lang, "market.product.research_only_sources")) }
                dd { span.badge { (t(lang, "market.yes")) } }
            }
            dt { (t(lang, "market.product.created")) }
            dd { (china_time_rfc3339(&product.created_at)) }
            @if let Some(at) = &product.listed_at {
                dt { (t(lang, "market.product.listed_at")) }
                dd { (china_time_rfc3339(at)) }
            }
            @if let Some(at) = &product.closed_at {
                dt { (t(lang, "market.product.closed_at")) }
                dd { (china_time_rfc3339(at)) }
            }
            dt { (t(lang, "market.product.manifest_hash")) }
            dd { code.mono { (product.manifest_hash.to_hex()) } }
        }
        @if !product.description.is_empty() {
            p { (product.description) }
        }
    }
}

/// The provenance manifest: the released outputs and the datasets they read (the
/// caller puts the heading, at its level).
fn manifest_tables(lang: Lang, product: &Product) -> Markup {
    let manifest = &product.manifest;
    html! {
        p.muted {
            (tf(lang, "market.manifest.format", &[
                ("format", manifest.format.as_str()),
                ("generated", china_time_rfc3339(&manifest.generated_at).as_str()),
            ]))
        }
        div.table-scroll {
            table.table {
                caption { (t(lang, "market.manifest.outputs")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "market.manifest.release")) }
                        th scope="col" { (t(lang, "market.manifest.output_hash")) }
                        th scope="col" { (t(lang, "market.manifest.model_hash")) }
                        th scope="col" { (t(lang, "market.manifest.reviewers")) }
                        th scope="col" { (t(lang, "market.manifest.grant")) }
                    }
                }
                tbody {
                    @for source in &manifest.sources {
                        tr {
                            th scope="row" { code { (source.release_id.as_str()) } }
                            td { code.mono { (source.output_hash.to_hex()) } }
                            td { code.mono { (source.model_hash.to_hex()) } }
                            td {
                                @for (i, reviewer) in source.reviewers.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    code { (reviewer.as_str()) }
                                }
                            }
                            td {
                                (grant_label(lang, source.grant_purpose))
                                @if source.research_only_grant {
                                    " " span.badge { (t(lang, "market.manifest.research_only")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        div.table-scroll {
            table.table {
                caption { (t(lang, "market.manifest.datasets")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "market.manifest.dataset")) }
                        th scope="col" { (t(lang, "market.manifest.department")) }
                        th scope="col" { (t(lang, "market.manifest.provider")) }
                        th scope="col" { (t(lang, "market.manifest.certificate")) }
                        th scope="col" { (t(lang, "market.manifest.version_hash")) }
                        th scope="col" { (t(lang, "market.manifest.acquired")) }
                    }
                }
                tbody {
                    @for source in &manifest.sources {
                        @for dataset in &source.datasets {
                            tr {
                                th scope="row" {
                                    (dataset.title) br;
                                    code { (dataset.dataset_id.as_str()) }
                                    @if dataset.research_only {
                                        " " span.badge { (t(lang, "market.manifest.research_only")) }
                                    }
                                }
                                td { (dataset.source_department) }
                                td {
                                    (dataset.provider_org.as_str()) br;
                                    span.muted { (dataset.provider_region) }
                                }
                                td { (dataset.certificate_no) }
                                td { code.mono { (dataset.content_hash.to_hex()) } }
                                td { (dataset.acquired) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds a graph node unless one with the same id is there already.
fn push_node(nodes: &mut Vec<(String, String)>, id: String, label: String) {
    if !nodes.iter().any(|(existing, _)| *existing == id) {
        nodes.push((id, label));
    }
}

/// Adds a graph edge unless it is there already.
fn push_edge(edges: &mut Vec<(String, String)>, from: String, to: String) {
    if !edges.iter().any(|(a, b)| *a == from && *b == to) {
        edges.push((from, to));
    }
}

/// The product's lineage from its manifest, as a graph: each source dataset → the
/// certificate of the version read → the model that read it → the released output →
/// the product.
fn lineage(lang: Lang, product: &Product) -> Markup {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let product_node = format!("product:{}", product.id);
    push_node(&mut nodes, product_node.clone(), product.title.clone());
    for source in &product.manifest.sources {
        let model_hex = source.model_hash.to_hex();
        let model_node = format!("model:{model_hex}");
        let short = model_hex.get(..12).unwrap_or(&model_hex);
        push_node(
            &mut nodes,
            model_node.clone(),
            tf(lang, "market.lineage.model", &[("hash", short)]),
        );
        let output_node = format!("release:{}", source.release_id);
        push_node(
            &mut nodes,
            output_node.clone(),
            tf(
                lang,
                "market.lineage.output",
                &[("release", source.release_id.as_str())],
            ),
        );
        push_edge(&mut edges, model_node.clone(), output_node.clone());
        push_edge(&mut edges, output_node, product_node.clone());
        for dataset in &source.datasets {
            let dataset_node = format!("dataset:{}", dataset.dataset_id);
            push_node(&mut nodes, dataset_node.clone(), dataset.title.clone());
            let certificate_node = format!("certificate:{}", dataset.certificate_no);
            push_node(
                &mut nodes,
                certificate_node.clone(),
                dataset.certificate_no.clone(),
            );
            push_edge(&mut edges, dataset_node, certificate_node.clone());
            push_edge(&mut edges, certificate_node, model_node.clone());
        }
    }
    html! {
        figure.chart {
            (svg::dag(&nodes, &edges))
            figcaption { (t(lang, "market.lineage.caption")) }
        }
    }
}

/// The list and reject forms of a product awaiting listing.
fn decision_forms(viewer: &Viewer, product: &Product) -> Markup {
    let lang = viewer.lang;
    let reason_id = format!("reject-reason-{}", product.id);
    html! {
        div.grid {
            form.form method="post" action={ "/exchange/products/" (product.id.as_str()) "/list" } {
                (csrf_field(viewer))
                p.muted { (t(lang, "market.exchange.list_hint")) }
                button type="submit" { (t(lang, "market.exchange.list")) }
            }
            form.form method="post" action={ "/exchange/products/" (product.id.as_str()) "/reject" } {
                (csrf_field(viewer))
                label for=(reason_id) { (t(lang, "market.exchange.reject_reason")) }
                input type="text" id=(reason_id) name="reason" maxlength="1000" required;
                button type="submit" { (t(lang, "market.exchange.reject")) }
            }
        }
    }
}

/// A table of orders; each links to its order page and its product's page under `product_base`.
fn orders_table(lang: Lang, orders: &[Order], product_base: &str) -> Markup {
    html! {
        @if orders.is_empty() {
            p.muted { (t(lang, "market.orders.none")) }
        } @else {
            div.table-scroll {
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "market.order.id")) }
                            th scope="col" { (t(lang, "market.order.product")) }
                            th scope="col" { (t(lang, "market.order.buyer")) }
                            th scope="col" { (t(lang, "market.order.price")) }
                            th scope="col" { (t(lang, "market.order.licence")) }
                            th scope="col" { (t(lang, "market.order.status")) }
                            th scope="col" { (t(lang, "market.order.placed")) }
                            th scope="col" { (t(lang, "market.order.paid_at")) }
                        }
                    }
                    tbody {
                        @for order in orders {
                            tr {
                                th scope="row" {
                                    a href={ "/buyer/orders/" (order.id.as_str()) } { code { (order.id.as_str()) } }
                                }
                                td {
                                    a href={ (product_base) (order.product_id.as_str()) } { code { (order.product_id.as_str()) } }
                                }
                                td { (order.buyer_org.as_str()) }
                                td.num { (yuan(order.price_minor)) }
                                td { (licence_label(lang, order.licence_kind)) }
                                td { span.badge { (order_status_label(lang, order.status)) } }
                                td { (china_time_rfc3339(&order.created_at)) }
                                td {
                                    @if let Some(at) = &order.paid_at { (china_time_rfc3339(at)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Exchange desk.

/// `/exchange`: the products awaiting listing, each with manifest, lineage and forms.
async fn exchange_queue(
    State(portal): State<Portal>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    desk(&viewer)?;
    let lang = viewer.lang;
    let path = with_query(
        "/v1/products",
        &[("status", "pending_review"), ("limit", QUEUE_LIMIT)],
    );
    let pending: Vec<Product> = portal.get(&viewer, &path).await?;
    let may_decide = admitted(&viewer, &Method::POST, "/v1/products/{id}/list");
    let count = pending.len().to_string();
    let title = t(lang, "market.exchange.queue.title");
    let body = html! {
        h1 { (title) }
        (desk_nav(&viewer))
        p { (tf(lang, "market.exchange.queue.count", &[("count", count.as_str())])) }
        @if pending.is_empty() {
            p.muted { (t(lang, "market.exchange.queue.empty")) }
        }
        @for product in &pending {
            section.card {
                h2 {
                    a href={ "/exchange/products/" (product.id.as_str()) } { (product.title) }
                }
                (product_facts(lang, product))
                h3 { (t(lang, "market.manifest.title")) }
                (manifest_tables(lang, product))
                h3 { (t(lang, "market.lineage.title")) }
                (lineage(lang, product))
                @if may_decide {
                    (decision_forms(&viewer, product))
                }
            }
        }
    };
    Ok(page(&viewer, title, body).into_response())
}

/// `/exchange/products/{id}`: one product with its manifest, lineage, orders and,
/// while it awaits listing, the forms.
async fn exchange_product(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    desk(&viewer)?;
    let id = product_id(&viewer, &raw_id)?;
    exchange_product_page(&portal, &viewer, &id, &query.notice, None).await
}

/// The desk's product page, with the notice of a form that succeeded or the API's
/// refusal of one.
async fn exchange_product_page(
    portal: &Portal,
    viewer: &Viewer,
    id: &ProductId,
    notice: &str,
    refusal: Option<PageError>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let product: Product = portal.get(viewer, &format!("/v1/products/{id}")).await?;
    let orders_path = with_query(
        "/v1/orders",
        &[("product_id", id.as_str()), ("limit", ORDERS_LIMIT)],
    );
    let orders: Vec<Order> = portal.get(viewer, &orders_path).await?;
    let may_decide = product.status == ProductStatus::PendingReview
        && admitted(viewer, &Method::POST, "/v1/products/{id}/list");
    let body = html! {
        h1 { (product.title) }
        (desk_nav(viewer))
        (notice_box(lang, notice))
        (refusal_box(lang, refusal.as_ref()))
        (product_facts(lang, &product))
        @if may_decide {
            (decision_forms(viewer, &product))
        }
        h2 { (t(lang, "market.manifest.title")) }
        (manifest_tables(lang, &product))
        h2 { (t(lang, "market.lineage.title")) }
        (lineage(lang, &product))
        h2 { (t(lang, "market.exchange.product_orders")) }
        (orders_table(lang, &orders, "/exchange/products/"))
    };
    Ok(answer(refusal.as_ref(), page(viewer, &product.title, body)))
}

/// `POST /exchange/products/{id}/list`: lists the product through the API.
async fn list_product(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    desk(&viewer)?;
    let id = product_id(&viewer, &raw_id)?;
    let listed = portal
        .send::<Product>(
            &viewer,
            Method::POST,
            &format!("/v1/products/{id}/list"),
            &Value::Null,
        )
        .await;
    match listed {
        Ok(_) => {
            Ok(Redirect::to(&format!("/exchange/products/{id}?notice=listed")).into_response())
        }
        Err(refusal) => exchange_product_page(&portal, &viewer, &id, "", Some(refusal)).await,
    }
}

/// `POST /exchange/products/{id}/reject`: rejects the product with the reason given.
async fn reject_product(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    desk(&viewer)?;
    let id = product_id(&viewer, &raw_id)?;
    let rejected = portal
        .send::<Product>(
            &viewer,
            Method::POST,
            &format!("/v1/products/{id}/reject"),
            &json!({ "reason": form.reason }),
        )
        .await;
    match rejected {
        Ok(_) => {
            Ok(Redirect::to(&format!("/exchange/products/{id}?notice=rejected")).into_response())
        }
        Err(refusal) => exchange_product_page(&portal, &viewer, &id, "", Some(refusal)).await,
    }
}

/// `/exchange/orders`: the whole order book, newest first, filtered by status, buyer
/// or product (the API judges the filters: an unknown status is its 400).
async fn exchange_orders(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<OrdersQuery>,
) -> Result<Response, PageError> {
    desk(&viewer)?;
    let lang = viewer.lang;
    let path = with_query(
        "/v1/orders",
        &[
            ("status", query.status.as_str()),
            ("buyer_org", query.buyer_org.as_str()),
            ("product_id", query.product_id.as_str()),
            ("limit", ORDERS_LIMIT),
        ],
    );
    let orders: Vec<Order> = portal.get(&viewer, &path).await?;
    let title = t(lang, "market.exchange.orders.title");
    let body = html! {
        h1 { (title) }
        (desk_nav(&viewer))
        form.form method="get" action="/exchange/orders" {
            label for="orders-status" { (t(lang, "market.order.status")) }
            select id="orders-status" name="status" {
                option value="" selected[query.status.is_empty()] { (t(lang, "market.filter.any")) }
                @for (value, key) in ORDER_STATUSES {
                    option value=(value) selected[query.status == value] { (t(lang, key)) }
                }
            }
            label for="orders-buyer" { (t(lang, "market.order.buyer")) }
            input type="text" id="orders-buyer" name="buyer_org" value=(query.buyer_org);
            label for="orders-product" { (t(lang, "market.order.product")) }
            input type="text" id="orders-product" name="product_id" value=(query.product_id);
            button type="submit" { (t(lang, "market.filter.apply")) }
        }
        (orders_table(lang, &orders, "/exchange/products/"))
    };
    Ok(page(&viewer, title, body).into_response())
}

/// `/exchange/settlements`: the periods money moved in, settled or not, with the
/// remittances of each settled one, and the settle form.
async fn settlements(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    desk(&viewer)?;
    settlements_page(&portal, &viewer, &query.notice, None).await
}

/// One period on the settlements page: its reconciliation row and its settlement.
struct PeriodBook {
    row: ReconRow,
    settlement: Option<Settlement>,
}

/// The settlements page. The API has no list of settlements: the periods are those
/// the reconciliation groups money by, and each is looked up (404: not settled yet).
async fn settlements_page(
    portal: &Portal,
    viewer: &Viewer,
    notice: &str,
    refusal: Option<PageError>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let recon: Reconciliation = portal
        .get(viewer, &with_query(DESK_ROUTE, &[("group_by", "period")]))
        .await?;
    let mut books = Vec::new();
    for row in recon.rows.into_iter().rev() {
        if !is_period(&row.key) {
            continue;
        }
        let settlement = match portal
            .get::<Settlement>(viewer, &format!("/v1/settlements/{}", row.key))
            .await
        {
            Ok(settlement) => Some(settlement),
            Err(e) if e.status == StatusCode::NOT_FOUND => None,
            Err(e) => return Err(e),
        };
        books.push(PeriodBook { row, settlement });
    }
    // Remitted so far by class of payee, across the settlements shown.
    let mut by_payee: BTreeMap<PayeeKind, i64> = BTreeMap::new();
    for book in &books {
        for line in book.settlement.iter().flat_map(|s| s.remittances.iter()) {
            *by_payee.entry(line.payee_kind).or_default() += line.amount_minor;
        }
    }
    let bars: Vec<(String, f64)> = by_payee
        .iter()
        .map(|(kind, fen)| (payee_label(lang, *kind).to_string(), yuan_value(*fen)))
        .collect();
    let may_settle = admitted(viewer, &Method::POST, "/v1/settlements/{period}");
    let title = t(lang, "market.exchange.settlements.title");
    let body = html! {
        h1 { (title) }
        (desk_nav(viewer))
        (notice_box(lang, notice))
        (refusal_box(lang, refusal.as_ref()))
        @if may_settle {
            form.form method="post" action="/exchange/settlements" {
                (csrf_field(viewer))
                label for="settle-period" { (t(lang, "market.settle.period")) }
                input type="text" id="settle-period" name="period" required
                    pattern="[0-9]{4}-[0-9]{2}" placeholder="YYYY-MM" maxlength="7";
                p.muted { (t(lang, "market.settle.hint")) }
                button type="submit" { (t(lang, "market.settle.button")) }
            }
        }
        @if !bars.is_empty() {
            figure.chart {
                (svg::bar_chart(t(lang, "market.settle.chart"), &bars, t(lang, "market.unit.yuan")))
            }
        }
        @if books.is_empty() {
            p.muted { (t(lang, "market.settle.none")) }
        } @else {
            div.table-scroll {
                table.table {
                    caption { (t(lang, "market.settle.periods")) }
                    thead {
                        tr {
                            th scope="col" { (t(lang, "market.settle.period")) }
                            th scope="col" { (t(lang, "market.recon.paid")) }
                            th scope="col" { (t(lang, "market.recon.refunded")) }
                            th scope="col" { (t(lang, "market.recon.remitted")) }
                            th scope="col" { (t(lang, "market.recon.unsettled")) }
                            th scope="col" { (t(lang, "market.settle.state")) }
                        }
                    }
                    tbody {
                        @for book in &books {
                            tr {
                                th scope="row" { (book.row.key) }
                                td.num { (yuan(book.row.paid_minor)) }
                                td.num { (yuan(book.row.refunded_minor)) }
                                td.num { (yuan(book.row.remitted_minor)) }
                                td.num { (yuan(book.row.unsettled_minor)) }
                                td {
                                    @if let Some(s) = &book.settlement {
                                        (tf(lang, "market.settle.settled_at", &[("at", china_time_rfc3339(&s.settled_at).as_str())]))
                                    } @else {
                                        span.badge { (t(lang, "market.settle.open")) }
                                        @if may_settle {
                                            form.inline method="post" action="/exchange/settlements" {
                                                (csrf_field(viewer))
                                                input type="hidden" name="period" value=(book.row.key);
                                                button type="submit" {
                                                    (tf(lang, "market.settle.this", &[("period", book.row.key.as_str())]))
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
            @for book in &books {
                @if let Some(settlement) = &book.settlement {
                    (remittances_table(lang, settlement))
                }
            }
        }
    };
    Ok(answer(refusal.as_ref(), page(viewer, title, body)))
}

/// A settled period's remittances, one line per payee.
fn remittances_table(lang: Lang, settlement: &Settlement) -> Markup {
    html! {
        div.table-scroll {
            table.table {
                caption {
                    (tf(lang, "market.settle.remittances", &[
                        ("period", settlement.period.as_str()),
                        ("from", china_time_rfc3339(&settlement.from).as_str()),
                        ("to", china_time_rfc3339(&settlement.to).as_str()),
                    ]))
                }
                thead {
                    tr {
                        th scope="col" { (t(lang, "market.settle.payee")) }
                        th scope="col" { (t(lang, "market.settle.payee_kind")) }
                        th scope="col" { (t(lang, "market.settle.amount")) }
                        th scope="col" { (t(lang, "market.settle.orders")) }
                        th scope="col" { (t(lang, "market.settle.ledger_seq")) }
                    }
                }
                tbody {
                    @if settlement.remittances.is_empty() {
                        tr { td colspan="5" { (t(lang, "market.settle.nothing")) } }
                    }
                    @for line in &settlement.remittances {
                        tr {
                            th scope="row" { (line.payee) }
                            td { (payee_label(lang, line.payee_kind)) }
                            td.num { (yuan(line.amount_minor)) }
                            td.num { (line.order_count) }
                            td.num { (line.ledger_seq) }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /exchange/settlements`: settles a finished month through the API.
async fn settle(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(form): Form<SettleForm>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    desk(&viewer)?;
    let lang = viewer.lang;
    let period = form.period.trim();
    if !is_period(period) {
        let refusal = PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            t(lang, "market.settle.bad_period"),
            lang,
        );
        return settlements_page(&portal, &viewer, "", Some(refusal)).await;
    }
    let settled = portal
        .send::<Settlement>(
            &viewer,
            Method::POST,
            &format!("/v1/settlements/{period}"),
            &Value::Null,
        )
        .await;
    match settled {
        Ok(settlement) => {
            let notice = if settlement.newly_settled {
                "settled"
            } else {
                "already_settled"
            };
            Ok(Redirect::to(&format!("/exchange/settlements?notice={notice}")).into_response())
        }
        Err(refusal) => settlements_page(&portal, &viewer, "", Some(refusal)).await,
    }
}

/// `/exchange/reconciliation`: paid − refunded = remitted + unsettled per group, the
/// ledger's own sums, and a chart of net sales by group.
async fn reconciliation(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<ReconQuery>,
) -> Result<Response, PageError> {
    desk(&viewer)?;
    let lang = viewer.lang;
    let group = if query.group_by.is_empty() {
        RECON_GROUPS[0].0
    } else {
        query.group_by.as_str()
    };
    let recon: Reconciliation = portal
        .get(&viewer, &with_query(DESK_ROUTE, &[("group_by", group)]))
        .await?;
    let bars: Vec<(String, f64)> = recon
        .rows
        .iter()
        .map(|row| {
            (
                row.key.clone(),
                yuan_value(row.paid_minor.saturating_sub(row.refunded_minor)),
            )
        })
        .collect();
    let ledger = &recon.ledger;
    let counts = [
        ledger.transaction_entries.to_string(),
        ledger.refund_entries.to_string(),
        ledger.remittance_entries.to_string(),
    ];
    let title = t(lang, "market.exchange.recon.title");
    let body = html! {
        h1 { (title) }
        (desk_nav(&viewer))
        form.form method="get" action="/exchange/reconciliation" {
            label for="recon-group" { (t(lang, "market.recon.group_by")) }
            select id="recon-group" name="group_by" {
                @for (value, key) in RECON_GROUPS {
                    option value=(value) selected[group == value] { (t(lang, key)) }
                }
            }
            button type="submit" { (t(lang, "market.filter.apply")) }
        }
        p {
            @if recon.exact {
                span.badge.badge-ok { "✓ " (t(lang, "market.recon.exact")) }
            } @else {
                span.badge.badge-danger { "✗ " (t(lang, "market.recon.not_exact")) }
            }
        }
        figure.chart {
            (svg::bar_chart(t(lang, "market.recon.chart"), &bars, t(lang, "market.unit.yuan")))
        }
        div.table-scroll {
            table.table {
                caption { (tf(lang, "market.recon.caption", &[("currency", recon.currency.as_str())])) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "market.recon.group_column")) }
                        th scope="col" { (t(lang, "market.recon.paid")) }
                        th scope="col" { (t(lang, "market.recon.refunded")) }
                        th scope="col" { (t(lang, "market.recon.remitted")) }
                        th scope="col" { (t(lang, "market.recon.unsettled")) }
                        th scope="col" { (t(lang, "market.recon.balanced")) }
                    }
                }
                tbody {
                    @for row in &recon.rows {
                        (recon_row(lang, row, false))
                    }
                }
                tfoot {
                    (recon_row(lang, &recon.total, true))
                }
            }
        }
        div.table-scroll {
            table.table {
                caption { (t(lang, "market.recon.ledger")) }
                thead {
                    tr {
                        th scope="col" { (t(lang, "market.recon.entry_kind")) }
                        th scope="col" { (t(lang, "market.recon.entries")) }
                        th scope="col" { (t(lang, "market.settle.amount")) }
                    }
                }
                tbody {
                    tr {
                        th scope="row" { (t(lang, "market.recon.transactions")) }
                        td.num { (counts[0]) }
                        td.num { (yuan(ledger.transactions_minor)) }
                    }
                    tr {
                        th scope="row" { (t(lang, "market.recon.refunds")) }
                        td.num { (counts[1]) }
                        td.num { (yuan(ledger.refunds_minor)) }
                    }
                    tr {
                        th scope="row" { (t(lang, "market.recon.remittances")) }
                        td.num { (counts[2]) }
                        td.num { (yuan(ledger.remittances_minor)) }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, title, body).into_response())
}

/// One reconciliation row; `total` labels it as the totals.
fn recon_row(lang: Lang, row: &ReconRow, total: bool) -> Markup {
    html! {
        tr {
            th scope="row" {
                @if total { (t(lang, "market.recon.total")) } @else { (row.key) }
            }
            td.num { (yuan(row.paid_minor)) }
            td.num { (yuan(row.refunded_minor)) }
            td.num { (yuan(row.remitted_minor)) }
            td.num { (yuan(row.unsettled_minor)) }
            td {
                @if row.exact {
                    "✓ " (t(lang, "market.yes"))
                } @else {
                    span.error { "✗ " (t(lang, "market.no")) }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Buyers.

/// Whether a product matches a search (case-insensitive, over the texts people search
/// by: title, description, registration number, developer, source datasets).
fn matches_search(product: &Product, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let hit = |text: &str| text.to_lowercase().contains(needle);
    hit(product.title.as_str())
        || hit(product.description.as_str())
        || product.registration_no.as_deref().is_some_and(hit)
        || hit(product.developer_org.as_str())
        || product.manifest.sources.iter().any(|source| {
            source
                .datasets
                .iter()
                .any(|d| hit(d.title.as_str()) || hit(d.source_department.as_str()))
        })
}

/// `/buyer`: the market's listed products, searched and filtered by licence, and the
/// buyer's own orders.
async fn market(
    State(portal): State<Portal>,
    viewer: Viewer,
    Query(query): Query<MarketQuery>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let path = with_query(
        "/v1/products",
        &[("status", "listed"), ("limit", MARKET_SCAN)],
    );
    let products: Vec<Product> = portal.get(&viewer, &path).await?;
    let needle = query.q.trim().to_lowercase();
    // Newest listings first.
    let found: Vec<&Product> = products
        .iter()
        .rev()
        .filter(|p| matches_search(p, &needle))
        .filter(|p| query.licence.is_empty() || p.licence.kind.as_str() == query.licence)
        .collect();
    let page_no: usize = query.page.parse().unwrap_or(0);
    let pages = found.len().div_ceil(MARKET_PAGE).max(1);
    let page_no = page_no.min(pages - 1);
    let shown = found.iter().skip(page_no * MARKET_PAGE).take(MARKET_PAGE);
    let page_link = |n: usize| {
        with_query(
            "/buyer",
            &[
                ("q", query.q.as_str()),
                ("licence", query.licence.as_str()),
                ("page", n.to_string().as_str()),
            ],
        )
    };
    // A buyer's own orders (the API answers a buyer with its own only).
    let orders: Vec<Order> = if admitted(&viewer, &Method::POST, "/v1/orders") {
        portal
            .get(
                &viewer,
                &with_query("/v1/orders", &[("limit", ORDERS_LIMIT)]),
            )
            .await?
    } else {
        Vec::new()
    };
    let found_count = found.len().to_string();
    let (page_shown, page_total) = ((page_no + 1).to_string(), pages.to_string());
    let title = t(lang, "market.buyer.title");
    let body = html! {
        h1 { (title) }
        form.form method="get" action="/buyer" role="search" {
            label for="market-q" { (t(lang, "market.buyer.search")) }
            input type="search" id="market-q" name="q" value=(query.q);
            label for="market-licence" { (t(lang, "market.product.licence")) }
            select id="market-licence" name="licence" {
                option value="" selected[query.licence.is_empty()] { (t(lang, "market.filter.any")) }
                @for (value, key) in LICENCE_KINDS {
                    option value=(value) selected[query.licence == value] { (t(lang, key)) }
                }
            }
            button type="submit" { (t(lang, "market.buyer.search_button")) }
        }
        p { (tf(lang, "market.buyer.found", &[("count", found_count.as_str())])) }
        @if found.is_empty() {
            p.muted { (t(lang, "market.buyer.nothing")) }
        } @else {
            div.table-scroll {
                table.table {
                    thead {
                        tr {
                            th scope="col" { (t(lang, "market.product.title")) }
                            th scope="col" { (t(lang, "market.product.licence")) }
                            th scope="col" { (t(lang, "market.product.price")) }
                            th scope="col" { (t(lang, "market.product.developer")) }
                            th scope="col" { (t(lang, "market.product.registration")) }
                            th scope="col" { (t(lang, "market.product.listed_at")) }
                        }
                    }
                    tbody {
                        @for product in shown {
                            tr {
                                th scope="row" {
                                    a href={ "/buyer/products/" (product.id.as_str()) } { (product.title) }
                                }
                                td { (licence_label(lang, product.licence.kind)) }
                                td.num { (yuan(product.price_minor)) }
                                td { (product.developer_org.as_str()) }
                                td { (product.registration_no.as_deref().unwrap_or_default()) }
                                td {
                                    @if let Some(at) = &product.listed_at { (china_time_rfc3339(at)) }
                                }
                            }
                        }
                    }
                }
            }
            nav aria-label=(t(lang, "market.buyer.pages")) {
                p {
                    @if page_no > 0 {
                        a href=(page_link(page_no - 1)) { (t(lang, "market.buyer.previous")) } " "
                    }
                    (tf(lang, "market.buyer.page_of", &[("page", page_shown.as_str()), ("pages", page_total.as_str())]))
                    @if page_no + 1 < pages {
                        " " a href=(page_link(page_no + 1)) { (t(lang, "market.buyer.next")) }
                    }
                }
            }
        }
        @if admitted(&viewer, &Method::POST, "/v1/orders") {
            h2 { (t(lang, "market.buyer.my_orders")) }
            (orders_table(lang, &orders, "/buyer/products/"))
        }
    };
    Ok(page(&viewer, title, body).into_response())
}

/// `/buyer/products/{id}`: a product's manifest, licence and price, with the order
/// form (a fresh idempotency key each time it is rendered).
async fn buyer_product(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
) -> Result<Response, PageError> {
    let id = product_id(&viewer, &raw_id)?;
    buyer_product_page(&portal, &viewer, &id, None).await
}

/// The buyer's product page, with the API's refusal of an order when there was one.
async fn buyer_product_page(
    portal: &Portal,
    viewer: &Viewer,
    id: &ProductId,
    refusal: Option<PageError>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let product: Product = portal.get(viewer, &format!("/v1/products/{id}")).await?;
    let may_order =
        product.status == ProductStatus::Listed && admitted(viewer, &Method::POST, "/v1/orders");
    let idempotency_key = new_idempotency_key();
    let price = yuan(product.price_minor);
    let body = html! {
        h1 { (product.title) }
        (refusal_box(lang, refusal.as_ref()))
        (product_facts(lang, &product))
        @if may_order {
            form.form method="post" action={ "/buyer/products/" (product.id.as_str()) "/order" } {
                (csrf_field(viewer))
                input type="hidden" name="idempotency_key" value=(idempotency_key);
                p.muted { (t(lang, "market.buyer.order_once")) }
                button type="submit" { (tf(lang, "market.buyer.order_button", &[("price", price.as_str())])) }
            }
        } @else if product.status != ProductStatus::Listed {
            p.notice { (t(lang, "market.buyer.not_on_sale")) }
        }
        h2 { (t(lang, "market.manifest.title")) }
        (manifest_tables(lang, &product))
        h2 { (t(lang, "market.lineage.title")) }
        (lineage(lang, &product))
    };
    Ok(answer(refusal.as_ref(), page(viewer, &product.title, body)))
}

/// `POST /buyer/products/{id}/order`: places the order through the API with the
/// form's idempotency key as its `Idempotency-Key` header, so the same rendered form
/// submitted again is the same order.
async fn place_order(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Form(form): Form<OrderForm>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let lang = viewer.lang;
    let id = product_id(&viewer, &raw_id)?;
    let key = form.idempotency_key.as_str();
    let header_value = HeaderValue::from_str(key)
        .ok()
        .filter(|_| !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY);
    let Some(header_value) = header_value else {
        let refusal = PageError::new(
            StatusCode::BAD_REQUEST,
            t(lang, "market.error.idempotency_key"),
            lang,
        );
        return buyer_product_page(&portal, &viewer, &id, Some(refusal)).await;
    };
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .header(IDEMPOTENCY_KEY, header_value)
        .body(Body::from(json!({ "product_id": id }).to_string()))
        .map_err(|_| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                t(lang, "market.error.request"),
                lang,
            )
        })?;
    let response = portal.raw(&viewer, request).await?;
    if !response.status().is_success() {
        let refusal = page_error(&viewer, response).await;
        return buyer_product_page(&portal, &viewer, &id, Some(refusal)).await;
    }
    let replayed = response.headers().contains_key("idempotent-replayed");
    let bytes = small_answer(response.into_body(), lang).await?;
    let order: Order = serde_json::from_slice(&bytes).map_err(|_| {
        PageError::new(
            StatusCode::BAD_GATEWAY,
            t(lang, "market.error.answer"),
            lang,
        )
    })?;
    let notice = if replayed { "replayed" } else { "placed" };
    Ok(Redirect::to(&format!("/buyer/orders/{}?notice={notice}", order.id)).into_response())
}

/// `/buyer/orders/{id}`: an order with the payment form (pending) or the download
/// link (paid); another buyer's order is the API's 404.
async fn buyer_order(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let id = order_id(&viewer, &raw_id)?;
    buyer_order_page(&portal, &viewer, &id, &query.notice, None).await
}

/// The order page, with the notice of a form that succeeded or the API's refusal.
async fn buyer_order_page(
    portal: &Portal,
    viewer: &Viewer,
    id: &OrderId,
    notice: &str,
    refusal: Option<PageError>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let order: Order = portal.get(viewer, &format!("/v1/orders/{id}")).await?;
    // The product's title is a convenience: the order stands without it.
    let product_title = portal
        .get::<Product>(viewer, &format!("/v1/products/{}", order.product_id))
        .await
        .map(|p| p.title)
        .unwrap_or_else(|_| order.product_id.to_string());
    let may_pay = order.status == OrderStatus::Pending
        && admitted(viewer, &Method::POST, "/v1/orders/{id}/pay");
    let may_download = matches!(order.status, OrderStatus::Paid | OrderStatus::Delivered)
        && admitted(viewer, &Method::GET, "/v1/orders/{id}/download");
    let term = order.licence_term_days.to_string();
    let heading = tf(lang, "market.order.title", &[("id", order.id.as_str())]);
    let body = html! {
        h1 { (heading) }
        (notice_box(lang, notice))
        (refusal_box(lang, refusal.as_ref()))
        dl.facts {
            dt { (t(lang, "market.order.product")) }
            dd { a href={ "/buyer/products/" (order.product_id.as_str()) } { (product_title) } }
            dt { (t(lang, "market.order.status")) }
            dd { span.badge { (order_status_label(lang, order.status)) } }
            dt { (t(lang, "market.order.buyer")) }
            dd { (order.buyer_org.as_str()) }
            dt { (t(lang, "market.order.seller")) }
            dd { (order.developer_org.as_str()) }
            dt { (t(lang, "market.order.price")) }
            dd { (yuan(order.price_minor)) }
            dt { (t(lang, "market.order.licence")) }
            dd {
                (licence_label(lang, order.licence_kind)) " · "
                (tf(lang, "market.product.term_days", &[("days", term.as_str())]))
            }
            dt { (t(lang, "market.order.placed")) }
            dd { (china_time_rfc3339(&order.created_at)) }
            @if let Some(reference) = &order.payment_ref {
                dt { (t(lang, "market.order.payment_ref")) }
                dd { (reference) }
            }
            @if let Some(at) = &order.paid_at {
                dt { (t(lang, "market.order.paid_at")) }
                dd { (china_time_rfc3339(at)) }
            }
            @if let Some(at) = &order.licence_expires_at {
                dt { (t(lang, "market.order.expires")) }
                dd { (china_time_rfc3339(at)) }
            }
            @if let Some(seq) = order.transaction_seq {
                dt { (t(lang, "market.order.transaction")) }
                dd { (seq) }
            }
            @if let Some(at) = &order.delivered_at {
                dt { (t(lang, "market.order.delivered_at")) }
                dd { (china_time_rfc3339(at)) }
            }
            @if let Some(at) = &order.refunded_at {
                dt { (t(lang, "market.order.refunded_at")) }
                dd { (china_time_rfc3339(at)) }
            }
            @if let Some(reason) = &order.refund_reason {
                dt { (t(lang, "market.order.refund_reason")) }
                dd { (reason) }
            }
        }
        @if may_pay {
            form.form method="post" action={ "/buyer/orders/" (order.id.as_str()) "/pay" } {
                (csrf_field(viewer))
                label for="payment-ref" { (t(lang, "market.order.payment_ref")) }
                input type="text" id="payment-ref" name="payment_ref" required maxlength="128" autocomplete="off";
                p.muted { (t(lang, "market.buyer.pay_hint")) }
                button type="submit" { (t(lang, "market.buyer.pay")) }
            }
        }
        @if may_download {
            p {
                a href={ "/buyer/orders/" (order.id.as_str()) "/download" } download {
                    (t(lang, "market.buyer.download"))
                }
            }
            p.muted { (t(lang, "market.buyer.download_hint")) }
        }
    };
    Ok(answer(refusal.as_ref(), page(viewer, &heading, body)))
}

/// `POST /buyer/orders/{id}/pay`: records the payment through the API.
async fn pay_order(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Form(form): Form<PayForm>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let id = order_id(&viewer, &raw_id)?;
    let paid = portal
        .send::<Order>(
            &viewer,
            Method::POST,
            &format!("/v1/orders/{id}/pay"),
            &json!({ "payment_ref": form.payment_ref.trim() }),
        )
        .await;
    match paid {
        Ok(_) => Ok(Redirect::to(&format!("/buyer/orders/{id}?notice=paid")).into_response()),
        Err(refusal) => buyer_order_page(&portal, &viewer, &id, "", Some(refusal)).await,
    }
}

/// `/buyer/orders/{id}/download`: the API's download, its body streamed through as it
/// comes (never collected here) with its `Content-Type`, `Content-Disposition` and
/// archive hash; a refusal (unpaid 402, revoked or expired 403, not the buyer's 404)
/// is the API's.
async fn download(
    State(portal): State<Portal>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let id = order_id(&viewer, &raw_id)?;
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/orders/{id}/download"))
        .body(Body::empty())
        .map_err(|_| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                t(lang, "market.error.request"),
                lang,
            )
        })?;
    let response = portal.raw(&viewer, request).await?;
    if !response.status().is_success() {
        return Err(page_error(&viewer, response).await);
    }
    let (parts, body) = response.into_parts();
    let mut streamed = Response::new(body);
    for name in ["content-type", "content-disposition", ARCHIVE_HASH] {
        if let Some(value) = parts.headers.get(name) {
            streamed.headers_mut().insert(name, value.clone());
        }
    }
    // The portal's middleware adds `Cache-Control: no-store` and the security headers.
    Ok(streamed)
}

#[cfg(test)]
mod tests {
    use super::{is_period, matches_search, percent};

    #[test]
    fn periods_are_four_digits_a_dash_and_two_digits() {
        assert!(is_period("2030-03"));
        assert!(is_period("2030-13"), "the API judges the month");
        for bad in [
            "2030-3", "2030/03", "20300-03", "2030-0a", "../../x", "", "2030-03/",
        ] {
            assert!(!is_period(bad), "{bad}");
        }
    }

    #[test]
    fn percentages_drop_trailing_zeros() {
        assert_eq!(percent(3_000), "30%");
        assert_eq!(percent(1_250), "12.5%");
        assert_eq!(percent(1), "0.01%");
        assert_eq!(percent(10_000), "100%");
    }

    #[test]
    fn an_empty_search_matches_everything() {
        let product: pdx_products::Product = serde_json::from_value(serde_json::json!({
            "id": "prd_0123456789abcdef",
            "developer_org": "org-0123456789ab",
            "title": "District enterprise counts",
            "description": "Enterprises per district",
            "licence": {"kind": "commercial_internal", "term_days": 30, "permitted_use": ""},
            "price_minor": 12345,
            "currency": "CNY",
            "split": {"public_finance_bp": 3000, "platform_bp": 1000, "developer_bp": 6000},
            "regions": [],
            "research_only_sources": false,
            "status": "listed",
            "status_reason": null,
            "registration_no": "PDX-DP-2030-000001",
            "listing_seq": 7,
            "delisting_seq": null,
            "manifest": {
                "format": "pdx-provenance/v1",
                "product_id": "prd_0123456789abcdef",
                "title": "District enterprise counts",
                "developer_org": "org-0123456789ab",
                "licence": "commercial_internal",
                "generated_at": "2030-03-05T10:00:00Z",
                "sources": []
            },
            "manifest_hash": "00".repeat(32),
            "created_at": "2030-03-05T10:00:00Z",
            "listed_at": null,
            "closed_at": null
        }))
        .unwrap();
        assert!(matches_search(&product, ""));
        assert!(matches_search(&product, "district"));
        assert!(matches_search(&product, "pdx-dp-2030"));
        assert!(!matches_search(&product, "weather"));
    }
}
