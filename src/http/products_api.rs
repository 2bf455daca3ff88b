//! Data products and trading: products built from released outputs, their review and
//! listing, orders with idempotency keys, payment, refunds, downloads, settlement and
//! reconciliation.
//!
//! Who may do what (the role half is in [`super::policies`], the organisation half
//! here and in `pdx_products`):
//! - developers package their *own* released outputs as products (another developer's
//!   release is refused with 403) and may delist their own listed products;
//! - every role reads listed and delisted products with their provenance manifest;
//!   pending and rejected products only their developer, the exchange and supervisors
//!   (everyone else gets 404);
//! - the exchange lists, rejects, delists, refunds and settles;
//! - buyers order (with an `Idempotency-Key` header), pay and download their own
//!   orders; another buyer's order is 404;
//! - the exchange and supervisors read any order, settlements and the reconciliation.
//!
//! The products crate resolves release ids and checks the developer's suspension
//! through [`pdx_products::ReleasedOutputs`], implemented once over the sandbox and the
//! accounts by [`crate::bridges::SandboxReleases`] (`app.released_outputs`): the
//! provenance of each release comes from the sandbox and the provider's region from its
//! organisation (the region's public finance receives the provider share).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pdx_ids::{OrderId, OrgId, ProductId};
use pdx_products::{
    CURRENCY, Licence, MAX_IDEMPOTENCY_KEY, NewOrder, NewProduct, Order, OrderFilter, OrderStatus,
    Product, ProductFilter, ProductStatus, ReconGroupBy, Reconciliation, ReleaseRef, RevenueSplit,
    Settlement,
};
use serde::Deserialize;
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
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product))
        .routes(routes!(list_product))
        .routes(routes!(reject_product))
        .routes(routes!(delist_product))
        .routes(routes!(list_orders, place_order))
        .routes(routes!(get_order))
        .routes(routes!(pay_order))
        .routes(routes!(refund_order))
        .routes(routes!(download_order))
        .routes(routes!(settle_period, get_settlement))
        .routes(routes!(reconciliation))
}

/// Most released outputs in one product (the products crate's own limit).
pub const MAX_RELEASES: usize = 64;

/// The header that binds an order request to one order.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn privileged(caller: &Caller) -> bool {
    matches!(caller.principal.role, Role::Exchange | Role::Supervisor)
}

/// Listed and delisted products are public (their registration is on the ledger);
/// the others only to their developer, the exchange and supervisors.
fn may_see(caller: &Caller, product: &Product) -> bool {
    privileged(caller)
        || product.developer_org == caller.principal.org_id
        || matches!(
            product.status,
            ProductStatus::Listed | ProductStatus::Delisted
        )
}

fn default_currency() -> String {
    CURRENCY.to_string()
}

/// What a developer sends to create a product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    /// Title (1 to 200 characters).
    pub title: String,
    /// Description (up to 10,000 characters).
    #[serde(default)]
    pub description: String,
    /// Licence offered to buyers: kind, term in days, permitted use.
    pub licence: Licence,
    /// Price in fen: > 0, or 0 for a free product under the `public_interest` licence.
    pub price_minor: i64,
    /// Currency; only `CNY`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Revenue split in basis points summing to 10,000; a paid product gives public
    /// finance at least the configured minimum (`public_finance_min_bp`, default 1,000).
    pub split: RevenueSplit,
    /// The developer's released outputs, each by its release id or its output id, in
    /// manifest order (at least one).
    #[schema(min_items = 1)]
    pub releases: Vec<ReleaseRef>,
}

/// Which products to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProductsQuery {
    /// `pending_review`, `listed` (the default), `rejected` or `delisted`. Other than
    /// the exchange and supervisors, callers see only `listed` and `delisted` products
    /// of other developers.
    #[param(value_type = Option<String>, pattern = "^(pending_review|listed|rejected|delisted)$")]
    pub status: Option<ProductStatus>,
    /// Only this developer organisation's products.
    pub developer: Option<OrgId>,
    /// Only the caller's own organisation's products, in every status (with another
    /// organisation's `developer`, none).
    #[serde(default)]
    pub mine: bool,
    /// At most this many (default 100; values above 1,000 list 1,000; at most
    /// 2,147,483,647).
    #[param(maximum = 2147483647)]
    pub limit: Option<u32>,
    /// Skip this many (oldest first), at most 2,147,483,647.
    #[param(maximum = 2147483647)]
    pub offset: Option<u32>,
}

/// Products the caller may see, oldest first: listed products by default; a
/// developer's own products in every status with `mine=true`; every product for the
/// exchange and supervisors.
#[utoipa::path(get, path = "/v1/products", tag = "products", security(("bearer" = [])),
    params(ProductsQuery),
    responses((status = 200, body = Vec<Product>), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
async fn list_products(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ProductsQuery>,
) -> ApiResult<Json<Vec<Product>>> {
    let own_org = &caller.principal.org_id;
    // The filters combine: `mine=true` with another organisation's `developer` matches
    // no product.
    if q.mine && q.developer.as_ref().is_some_and(|d| d != own_org) {
        within_int32(&[q.limit, q.offset])?;
        return Ok(Json(Vec::new()));
    }
    let developer = if q.mine {
        Some(own_org.clone())
    } else {
        q.developer
    };
    let own = developer.as_ref() == Some(own_org);
    let status = if privileged(&caller) || own {
        q.status
    } else {
        match q.status {
            None => Some(ProductStatus::Listed),
            Some(s @ (ProductStatus::Listed | ProductStatus::Delisted)) => Some(s),
            Some(_) => {
                return Err(ApiError::forbidden(
                    "only the exchange, supervisors and a product's own developer see \
                     products that are pending review or rejected",
                ));
            }
        }
    };
    within_int32(&[q.limit, q.offset])?;
    let filter = ProductFilter {
        status,
        developer_org: developer,
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(app.products.products(&filter).await?))
}

/// Create a product from the developer's own released outputs (pending the exchange's
/// review). The provenance manifest is generated from the sandbox's records. Refused:
/// another developer's release (403); a split not summing to 10,000, a negative price,
/// a price of 0 under any licence but `public_interest`, a paid product's split giving
/// public finance less than the configured minimum (the detail names it), and a licence
/// that does not fit a source grant's purpose, e.g. a research grant feeding a
/// commercial product (422, naming both; GY ch.6, GD21 Art.26); a commercial licence
/// over a research-only dataset (409).
#[utoipa::path(post, path = "/v1/products", tag = "products", security(("bearer" = [])),
    request_body = ProductRequest,
    responses((status = 201, body = Product), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_product(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<ProductRequest>,
) -> ApiResult<Response> {
    if body.releases.is_empty() {
        return Err(ApiError::invalid_field(
            "releases",
            "a product needs at least one released output",
        ));
    }
    if body.releases.len() > MAX_RELEASES {
        return Err(ApiError::invalid_field(
            "releases",
            format!("a product takes at most {MAX_RELEASES} released outputs"),
        ));
    }
    let actor = caller.principal.actor();
    let new = NewProduct {
        title: body.title,
        description: body.description,
        licence: body.licence,
        price_minor: body.price_minor,
        currency: body.currency,
        split: body.split,
    };
    let product = app
        .products
        .package_releases(&actor, new, &body.releases, &app.released_outputs)
        .await?;
    tracing::info!(product = %product.id, org = %product.developer_org, "created a product");
    let location = format!("/v1/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(product),
    )
        .into_response())
}

/// One product with its provenance manifest (the manifest is what every download
/// ships as `manifest.json`).
#[utoipa::path(get, path = "/v1/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = ProductId, Path, description = "product id")),
    responses((status = 200, body = Product), (status = 404, body = Problem)))]
async fn get_product(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ProductId>,
) -> ApiResult<Json<Product>> {
    let product = app.products.product(&id).await?;
    if !may_see(&caller, &product) {
        return Err(ApiError::not_found(format!("product {id} not found")));
    }
    Ok(Json(product))
}

/// List a product after review (exchange): assigns its registration number and writes
/// the `ProductListing` ledger entry. A commercial licence over research-only sources
/// is refused (409) here too, and so are the revenue rules and a licence that does not
/// fit a source grant's purpose (422).
#[utoipa::path(post, path = "/v1/products/{id}/list", tag = "products", security(("bearer" = [])),
    params(("id" = ProductId, Path, description = "product id")),
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn list_product(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ProductId>,
) -> ApiResult<Json<Product>> {
    // A suspended developer's products are delisted and may not be listed again until
    // the supervisor reinstates the organisation.
    let product = app
        .products
        .list_unless_suspended(&caller.principal.actor(), &id, &app.released_outputs)
        .await?;
    tracing::info!(product = %product.id, registration = ?product.registration_no, "listed a product");
    Ok(Json(product))
}

/// Why a product is rejected or delisted, or an order refunded.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// The reason (1 to 1,000 characters, one line).
    pub reason: String,
}

/// Reject a product at review (exchange), with a reason.
#[utoipa::path(post, path = "/v1/products/{id}/reject", tag = "products", security(("bearer" = [])),
    params(("id" = ProductId, Path, description = "product id")),
    request_body = ReasonBody,
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn reject_product(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ProductId>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> ApiResult<Json<Product>> {
    Ok(Json(
        app.products
            .reject(&caller.principal.actor(), &id, &body.reason)
            .await?,
    ))
}

/// Delist a listed product (the exchange, or the product's own developer), with a
/// reason; writes `ProductDelisting`. Paid licences continue.
#[utoipa::path(post, path = "/v1/products/{id}/delist", tag = "products", security(("bearer" = [])),
    params(("id" = ProductId, Path, description = "product id")),
    request_body = ReasonBody,
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn delist_product(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<ProductId>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> ApiResult<Json<Product>> {
    if caller.principal.role == Role::Developer {
        let product = app.products.product(&id).await?;
        caller.owns(&product.developer_org)?;
    }
    Ok(Json(
        app.products
            .delist(&caller.principal.actor(), &id, &body.reason)
            .await?,
    ))
}

/// Refuses a listing's `limit` or `offset` above 2,147,483,647: the document states the
/// 32-bit signed range for them (clients generated from it use `int32`).
fn within_int32(values: &[Option<u32>]) -> ApiResult<()> {
    if values
        .iter()
        .flatten()
        .any(|n| *n > pdx_sandbox::catalog::MAX_PAGE)
    {
        return Err(ApiError::unprocessable(
            "limit and offset must be at most 2147483647",
        ));
    }
    Ok(())
}

/// Which orders to list, and how many.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrdersQuery {
    /// At most this many, newest first (default 100; values above 1,000 list 1,000; at
    /// most 2,147,483,647).
    #[param(maximum = 2147483647)]
    pub limit: Option<u32>,
    /// Only this buyer organisation's orders (the exchange and supervisors; a buyer
    /// may only name its own).
    pub buyer_org: Option<OrgId>,
    /// Only orders of this product.
    pub product_id: Option<ProductId>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
}

/// Orders, newest first: a buyer sees its own; the exchange and supervisors see the
/// whole order book, narrowed by buyer, product or status.
#[utoipa::path(get, path = "/v1/orders", tag = "products", security(("bearer" = [])),
    params(OrdersQuery),
    responses((status = 200, body = Vec<Order>), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
async fn list_orders(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OrdersQuery>,
) -> ApiResult<Json<Vec<Order>>> {
    let own = &caller.principal.org_id;
    let buyer_org = if privileged(&caller) {
        q.buyer_org
    } else {
        if q.buyer_org.as_ref().is_some_and(|org| org != own) {
            return Err(ApiError::forbidden(
                "a buyer lists only its own organisation's orders",
            ));
        }
        Some(own.clone())
    };
    within_int32(&[q.limit])?;
    let filter = OrderFilter {
        buyer_org,
        product_id: q.product_id,
        status: q.status,
    };
    Ok(Json(
        app.products
            .all_orders(&filter, q.limit.unwrap_or(100))
            .await?,
    ))
}

/// The `Idempotency-Key` header: required, 1 to 255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<String> {
    let value = headers.get(IDEMPOTENCY_KEY).ok_or_else(|| {
        ApiError::bad_request(
            "send an Idempotency-Key header (1 to 255 printable ASCII characters) so that a \
             retried order is not placed twice",
        )
    })?;
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .filter(|k| k.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII \
                 characters"
            ))
        })?;
    Ok(key.to_string())
}

/// Place an order for a listed product (buyers). The `Idempotency-Key` header is
/// required: the first request creates the order (201) with the price and licence
/// snapshotted; a retry with the same key and body returns the same order (200); the
/// same key with another body is 422. The order of a free public-interest product is
/// paid at once (0 fen, a `Transaction` entry, no remittance) and downloads directly.
#[utoipa::path(post, path = "/v1/orders", tag = "products", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "one key per intended order, 1 to 255 printable ASCII characters",
        min_length = 1, max_length = 255, pattern = r"^[\x20-\x7E]+$")),
    request_body = NewOrder,
    responses((status = 201, body = Order), (status = 200, description = "a replayed key: the existing order", body = Order),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn place_order(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewOrder>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let placed = app
        .products
        .place_order(&caller.principal.actor(), &key, &body)
        .await?;
    let status = if placed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/orders/{}", placed.order.id);
    let mut resp = (status, [(header::LOCATION, location)], Json(placed.order)).into_response();
    if !placed.created {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// One order: a buyer's own (another buyer's is 404), or any for the exchange and
/// supervisors.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = OrderId, Path, description = "order id")),
    responses((status = 200, body = Order), (status = 404, body = Problem)))]
async fn get_order(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<Order>> {
    let order = if privileged(&caller) {
        app.products.order_any(&id).await?
    } else {
        app.products.order(&caller.principal.actor(), &id).await?
    };
    Ok(Json(order))
}

/// A payment record (there is no gateway: the reference is the evidence).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// Payment reference (1 to 128 characters); paying again with the same reference
    /// returns the paid order unchanged.
    pub payment_ref: String,
}

/// Pay an order (its buyer): pending → paid, the `Transaction` ledger entry and the
/// revenue split, in one transaction. Paying twice writes one entry.
#[utoipa::path(post, path = "/v1/orders/{id}/pay", tag = "products", security(("bearer" = [])),
    params(("id" = OrderId, Path, description = "order id")),
    request_body = PaymentBody,
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn pay_order(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(body): ApiJson<PaymentBody>,
) -> ApiResult<Json<Order>> {
    Ok(Json(
        app.products
            .pay(&caller.principal.actor(), &id, &body.payment_ref)
            .await?,
    ))
}

/// Refund a paid order in full (exchange): revokes the licence and writes `Refund`;
/// after settlement it becomes a negative adjustment in the next period.
#[utoipa::path(post, path = "/v1/orders/{id}/refund", tag = "products", security(("bearer" = [])),
    params(("id" = OrderId, Path, description = "order id")),
    request_body = ReasonBody,
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn refund_order(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> ApiResult<Json<Order>> {
    Ok(Json(
        app.products
            .refund(&caller.principal.actor(), &id, &body.reason)
            .await?,
    ))
}

/// Download a paid order within its licence term (its buyer): a tar archive holding
/// the data, `manifest.json`, the licence and the ledger receipt of the sale. Every
/// download is logged. Unpaid: 402; refunded or after the term: 403.
#[utoipa::path(get, path = "/v1/orders/{id}/download", tag = "products", security(("bearer" = [])),
    params(("id" = OrderId, Path, description = "order id")),
    responses((status = 200, description = "a tar archive: the data, `manifest.json`, the licence and the \
            sale's ledger receipt", body = RawBytes, content_type = "application/x-tar"),
        (status = 402, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn download_order(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Response> {
    let archive = app
        .products
        .download(&caller.principal.actor(), &id)
        .await?;
    tracing::info!(
        order = %archive.record.order_id,
        download = %archive.record.id,
        key_id = %caller.principal.key_id,
        bytes = archive.record.archive_bytes,
        "product download"
    );
    // Every download is a `DataAccess` ledger entry, written before the bytes leave
    // (GD18 Art.28; XT Art.34(4)): readable by the product's developer and the providers
    // of the data its manifest names.
    let order = app.products.order_any(&archive.record.order_id).await?;
    let product = app.products.product(&order.product_id).await?;
    let sources = product
        .manifest
        .sources
        .iter()
        .flat_map(|source| source.datasets.iter())
        .map(|d| {
            (
                d.dataset_id.clone(),
                d.certificate_no.clone(),
                d.provider_org.clone(),
            )
        })
        .collect();
    app.sandbox
        .usage()
        .record_product_download(
            &caller.principal.actor(),
            &pdx_sandbox::usage::ProductAccess {
                order_id: &order.id,
                product_id: &product.id,
                developer_org: &product.developer_org,
                sources,
                body: &archive.bytes,
            },
        )
        .await?;
    // The file name is `<registration no>-<order id>.tar`: ASCII letters, digits, `-`, `_`.
    let disposition = format!("attachment; filename=\"{}\"", archive.file_name);
    let disposition = HeaderValue::from_str(&disposition)
        .map_err(|_| ApiError::internal("an archive name is not a valid header value"))?;
    let hash = HeaderValue::from_str(&archive.record.archive_hash)
        .map_err(|_| ApiError::internal("an archive hash is not a valid header value"))?;
    let mut resp = archive.bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(archive.content_type),
    );
    h.insert(header::CONTENT_DISPOSITION, disposition);
    h.insert("x-archive-blake3", hash);
    Ok(resp)
}

/// Settle a period (exchange), `YYYY-MM` (UTC): one `Remittance` ledger entry per payee
/// for every unsettled sale and refund dated before the period's end. 201 when settled
/// now; 200 with the stored result (nothing changed) when already settled. A period
/// that has not ended, or one before the latest settled period, is 409.
#[utoipa::path(post, path = "/v1/settlements/{period}", tag = "products", security(("bearer" = [])),
    params(("period" = String, Path, description = "period, YYYY-MM (UTC)", pattern = r"^(2\d{3}|[3-8]\d{3}|9[0-8]\d{2}|99[0-8]\d|999[0-8])-(0[1-9]|1[0-2])$")),
    responses((status = 201, body = Settlement), (status = 200, description = "already settled: the stored result", body = Settlement),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn settle_period(
    State(app): State<App>,
    caller: Caller,
    ApiPath(period): ApiPath<String>,
) -> ApiResult<Response> {
    let settlement = app
        .products
        .settle(&caller.principal.actor(), &period)
        .await?;
    let status = if settlement.newly_settled {
        tracing::info!(period = %settlement.period, payees = settlement.remittances.len(), "settled a period");
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(settlement)).into_response())
}

/// A settled period and its remittances (exchange, supervisors).
#[utoipa::path(get, path = "/v1/settlements/{period}", tag = "products", security(("bearer" = [])),
    params(("period" = String, Path, description = "period, YYYY-MM (UTC)", pattern = r"^(2\d{3}|[3-8]\d{3}|9[0-8]\d{2}|99[0-8]\d|999[0-8])-(0[1-9]|1[0-2])$")),
    responses((status = 200, body = Settlement), (status = 404, body = Problem)))]
async fn get_settlement(
    State(app): State<App>,
    _caller: Caller,
    ApiPath(period): ApiPath<String>,
) -> ApiResult<Json<Settlement>> {
    Ok(Json(app.products.settlement(&period).await?))
}

/// How to group the reconciliation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReconQuery {
    /// `total` (default), `provider_region`, `developer` or `period`.
    #[param(value_type = Option<String>, pattern = "^(total|provider_region|developer|period)$")]
    pub group_by: Option<ReconGroupBy>,
}

/// Reconciliation (exchange, supervisors): paid − refunded = remitted + unsettled, to
/// the fen, overall and per group, checked against the ledger's own entries. `exact`
/// is false if anything disagrees.
#[utoipa::path(get, path = "/v1/reconciliation", tag = "products", security(("bearer" = [])),
    params(ReconQuery),
    responses((status = 200, body = Reconciliation), (status = 400, body = Problem)))]
async fn reconciliation(
    State(app): State<App>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<ReconQuery>,
) -> ApiResult<Json<Reconciliation>> {
    Ok(Json(
        app.products
            .reconcile(q.group_by.unwrap_or(ReconGroupBy::Total))
            .await?,
    ))
}
