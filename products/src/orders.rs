//! Orders: placement with idempotency keys, payment, refund, delivery.

use pdx_ids::{DownloadId, KeyId, OrderId, OrgId, ProductId, ReleaseId};
use pdx_ledger::Actor;
use pdx_ledger::db::DbError;
use pdx_ledger::group::Grouped;
use pdx_ledger::kinds::{Refund, Transaction};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::Products;
use crate::archive::TarWriter;
use crate::catalog::split_from_row;
use crate::clock::{DAY_MS, Period, rfc3339};
use crate::error::{ProductsError, Result};
use crate::model::{
    DownloadArchive, DownloadRecord, LicenceKind, NewOrder, Order, OrderPlacement, OrderStatus,
    ProductStatus, payee_for,
};
use crate::rows::{actor_key, actor_org, get_opt_u64, get_u64, line_field, narrowed, to_i64};
use crate::split::{Allocation, allocate};

const ORDER_COLUMNS: &str = "id, buyer_org, idempotency_key, request_hash, product_id, \
    developer_org, price_minor, currency, licence_kind, licence_term_days, status, created_ms, \
    payment_ref, paid_ms, licence_expires_ms, transaction_seq, delivered_ms, refunded_ms, \
    refund_reason, refund_seq";

/// What a listing of orders is narrowed to; `None` fields do not narrow.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    /// Only this buyer organisation's orders.
    pub buyer_org: Option<OrgId>,
    /// Only orders of this product.
    pub product_id: Option<ProductId>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
}

/// The longest idempotency key accepted (bytes).
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// An order row: the view plus what only this crate needs.
struct OrderRow {
    order: Order,
    request_hash: String,
    licence_expires_ms: Option<i64>,
}

fn order_from_row(row: &AnyRow) -> Result<OrderRow> {
    let kind: String = row.try_get("licence_kind")?;
    let term = get_u64(row, "licence_term_days")?;
    let paid_ms: Option<i64> = row.try_get("paid_ms")?;
    let expires: Option<i64> = row.try_get("licence_expires_ms")?;
    let delivered_ms: Option<i64> = row.try_get("delivered_ms")?;
    let refunded_ms: Option<i64> = row.try_get("refunded_ms")?;
    Ok(OrderRow {
        order: Order {
            id: row.try_get::<OrderId, _>("id")?,
            product_id: row.try_get::<ProductId, _>("product_id")?,
            buyer_org: row.try_get::<OrgId, _>("buyer_org")?,
            developer_org: row.try_get::<OrgId, _>("developer_org")?,
            price_minor: row.try_get("price_minor")?,
            currency: row.try_get("currency")?,
            licence_kind: LicenceKind::parse(&kind)
                .ok_or_else(|| ProductsError::Internal(format!("licence kind {kind:?}")))?,
            licence_term_days: u32::try_from(term)
                .map_err(|_| ProductsError::Internal("licence term out of range".into()))?,
            status: OrderStatus::parse(&row.try_get::<String, _>("status")?)?,
            created_at: rfc3339(row.try_get("created_ms")?),
            payment_ref: row.try_get("payment_ref")?,
            paid_at: paid_ms.map(rfc3339),
            licence_expires_at: expires.map(rfc3339),
            transaction_seq: get_opt_u64(row, "transaction_seq")?,
            delivered_at: delivered_ms.map(rfc3339),
            refunded_at: refunded_ms.map(rfc3339),
            refund_reason: row.try_get("refund_reason")?,
            refund_seq: get_opt_u64(row, "refund_seq")?,
        },
        request_hash: row.try_get("request_hash")?,
        licence_expires_ms: expires,
    })
}

/// Checks an idempotency key: 1 to 255 bytes of printable ASCII, used as given.
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ProductsError::Invalid(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"
        )));
    }
    if !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ProductsError::Invalid(
            "Idempotency-Key must be printable ASCII".into(),
        ));
    }
    Ok(())
}

/// BLAKE3 (hex) of the order request's JSON: what a key is bound to.
fn request_hash(req: &NewOrder) -> Result<String> {
    let body =
        serde_json::to_vec(req).map_err(|e| ProductsError::Internal(format!("order body: {e}")))?;
    Ok(blake3::hash(&body).to_hex().to_string())
}

async fn order_on(
    conn: &mut AnyConnection,
    id: &OrderId,
    buyer: Option<&OrgId>,
) -> Result<OrderRow> {
    let row = match buyer {
        Some(org) => {
            let sql =
                format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND buyer_org = $2");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id.clone())
                .bind(org.clone())
                .fetch_optional(&mut *conn)
                .await?
        }
        None => {
            let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id.clone())
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    let row = row.ok_or_else(|| ProductsError::NotFound(format!("order {id}")))?;
    order_from_row(&row)
}

async fn order_by_key(
    conn: &mut AnyConnection,
    buyer: &OrgId,
    key: &str,
) -> Result<Option<OrderRow>> {
    let sql =
        format!("SELECT {ORDER_COLUMNS} FROM orders WHERE buyer_org = $1 AND idempotency_key = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(buyer.clone())
        .bind(key.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// The answer to a replayed idempotency key.
fn replay(existing: OrderRow, hash: &str, key: &str) -> Result<OrderPlacement> {
    if existing.request_hash == hash {
        Ok(OrderPlacement {
            order: existing.order,
            created: false,
        })
    } else {
        Err(ProductsError::IdempotencyMismatch {
            key: key.to_string(),
        })
    }
}

/// What paying an order that is no longer pending means.
/// The provider regions and weights in the `sale_region` / `sale_weight` columns of a
/// payment's joined read ([`Products::pay`]), one row per region.
fn sale_regions_of(rows: &[AnyRow], product_id: &ProductId) -> Result<Vec<(String, u64)>> {
    let mut regions = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(region) = row.try_get::<Option<String>, _>("sale_region")? else {
            continue;
        };
        regions.push((region, get_u64(row, "sale_weight")?));
    }
    if regions.is_empty() {
        return Err(ProductsError::Internal(format!(
            "product {product_id} has no provider region"
        )));
    }
    Ok(regions)
}

fn pay_outcome(row: OrderRow, payment_ref: &str) -> Result<Order> {
    match row.order.status {
        OrderStatus::Paid | OrderStatus::Delivered
            if row.order.payment_ref.as_deref() == Some(payment_ref) =>
        {
            Ok(row.order)
        }
        OrderStatus::Paid | OrderStatus::Delivered => Err(ProductsError::Conflict(format!(
            "order {} is already paid under another payment reference",
            row.order.id
        ))),
        OrderStatus::Refunded => Err(ProductsError::Conflict(format!(
            "order {} was refunded",
            row.order.id
        ))),
        OrderStatus::Pending => Err(ProductsError::Conflict(format!(
            "order {} changed while being paid; retry",
            row.order.id
        ))),
    }
}

/// Refuses a download that the order's state or term does not allow.
fn check_downloadable(row: &OrderRow, now: i64) -> Result<()> {
    let id = &row.order.id;
    match row.order.status {
        OrderStatus::Pending => return Err(ProductsError::NotPaid(id.clone())),
        OrderStatus::Refunded => return Err(ProductsError::LicenceRevoked(id.clone())),
        OrderStatus::Paid | OrderStatus::Delivered => {}
    }
    let expires = row
        .licence_expires_ms
        .ok_or_else(|| ProductsError::Internal(format!("paid order {id} has no term")))?;
    if now >= expires {
        return Err(ProductsError::LicenceExpired {
            order: id.clone(),
            expired_at: rfc3339(expires),
        });
    }
    Ok(())
}

/// `licence.json` in a download.
#[derive(Serialize)]
struct LicenceDoc<'a> {
    format: &'static str,
    registration_no: &'a str,
    product_id: &'a ProductId,
    product_title: &'a str,
    order_id: &'a OrderId,
    licensee: &'a OrgId,
    licensor: &'a OrgId,
    kind: LicenceKind,
    permitted_use: &'a str,
    term_days: u32,
    valid_from: &'a str,
    valid_until: &'a str,
    price_minor: i64,
    currency: &'a str,
    payment_ref: &'a str,
    manifest_hash: String,
    transaction_seq: u64,
}

/// A release id as part of a file name: at most 36 characters (an id is only
/// `[0-9a-z_-]`, safe in a name as it is).
fn file_stem(release_id: &ReleaseId) -> String {
    release_id.as_str().chars().take(36).collect()
}

/// What [`Products::place_order`] hands to its grouped transaction.
struct Placing {
    buyer: Actor,
    key: String,
    hash: String,
    /// The order to insert, pending, as read from its product.
    order: Order,
}

/// What [`Products::pay`] hands to its grouped transaction.
struct Paying {
    buyer: Actor,
    payment_ref: String,
    /// The order as read, pending.
    order: Order,
    /// The sale's allocation to payees and regions.
    cells: Vec<Allocation>,
}

/// What a payment's read found.
enum PayRead {
    /// The order is pending and its product listed: pay it.
    Pending(Paying),
    /// The order is no longer pending: [`pay_outcome`] answers.
    Settled(OrderRow),
}

/// Attempts at paying an order whose claim finds it changed since it was read.
const PAY_ATTEMPTS: usize = 3;

/// Why a payment's grouped job failed.
enum PayFailure {
    /// The order or its product changed since it was read: read again.
    Changed,
    /// Anything else, for the caller.
    Failed(ProductsError),
}

impl From<DbError> for PayFailure {
    fn from(e: DbError) -> Self {
        PayFailure::Failed(e.into())
    }
}

impl Products {
    /// Places an order for a listed product, bound to the buyer's idempotency key.
    ///
    /// The same key with the same body returns the existing order (`created: false`);
    /// with another body it is `IdempotencyMismatch`. The price and licence are
    /// snapshotted from the product. An order of a free (public-interest) product is
    /// placed paid, with a `Transaction` entry of 0 fen and no revenue lines
    /// ([`crate::revenue`]).
    ///
    /// Concurrent orders share a group commit ([`pdx_ledger::group`]); the answer
    /// comes once the order is durable. The key and the product are read before the
    /// group, from committed rows; in the group, one `INSERT` adds the order only if
    /// the product is still listed and the key still unused (else the group reads why).
    pub async fn place_order(
        &self,
        buyer: &Actor,
        idempotency_key: &str,
        req: &NewOrder,
    ) -> Result<OrderPlacement> {
        check_key(idempotency_key)?;
        let buyer_org = actor_org(buyer)?;
        let hash = request_hash(req)?;
        let order = {
            let mut conn = self.db.pool().acquire().await?;
            if let Some(existing) = order_by_key(&mut conn, &buyer_org, idempotency_key).await? {
                return replay(existing, &hash, idempotency_key);
            }
            self.new_order(&mut conn, &buyer_org, &req.product_id)
                .await?
        };
        let placing = Placing {
            buyer: buyer.clone(),
            key: idempotency_key.to_string(),
            hash,
            order,
        };
        let me = self.clone();
        self.db
            .write_grouped(move |g| Box::pin(async move { me.place_order_on(g, &placing).await }))
            .await
    }

    /// A pending order of `product_id` for `buyer_org`, priced and licensed as the
    /// product is now; `NotFound` or `Conflict` unless the product is listed.
    async fn new_order(
        &self,
        conn: &mut AnyConnection,
        buyer_org: &OrgId,
        product_id: &ProductId,
    ) -> Result<Order> {
        let product = sqlx::query(
            "SELECT status, developer_org, price_minor, currency, licence_kind, \
             licence_term_days FROM products WHERE id = $1",
        )
        .bind(product_id.clone())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ProductsError::NotFound(format!("product {product_id}")))?;
        let status: String = product.try_get("status")?;
        if status != ProductStatus::Listed.as_str() {
            return Err(ProductsError::Conflict(format!(
                "product {product_id} is {status}, not listed"
            )));
        }
        let kind: String = product.try_get("licence_kind")?;
        Ok(Order {
            id: OrderId::random(),
            product_id: product_id.clone(),
            buyer_org: buyer_org.clone(),
            developer_org: product.try_get::<OrgId, _>("developer_org")?,
            price_minor: product.try_get("price_minor")?,
            currency: product.try_get("currency")?,
            licence_kind: LicenceKind::parse(&kind)
                .ok_or_else(|| ProductsError::Internal(format!("licence kind {kind:?}")))?,
            licence_term_days: u32::try_from(get_u64(&product, "licence_term_days")?)
                .map_err(|_| ProductsError::Internal("licence term out of range".into()))?,
            status: OrderStatus::Pending,
            // Set by `place_order_on`, from the clock read when the row is inserted.
            created_at: String::new(),
            payment_ref: None,
            paid_at: None,
            licence_expires_at: None,
            transaction_seq: None,
            delivered_at: None,
            refunded_at: None,
            refund_reason: None,
            refund_seq: None,
        })
    }

    /// [`Products::place_order`]'s work in the group.
    async fn place_order_on(
        &self,
        mut g: Grouped<'_>,
        placing: &Placing,
    ) -> Result<OrderPlacement> {
        let Placing {
            buyer,
            key,
            hash,
            order,
        } = placing;
        let created_ms = self.clock.now_ms();
        // The product must still be listed and the key still unused (a concurrent
        // request with the same key, in this group or from another server on the same
        // PostgreSQL, may have taken it since the read).
        let inserted = sqlx::query(
            "INSERT INTO orders (id, buyer_org, idempotency_key, request_hash, product_id, \
             developer_org, price_minor, currency, licence_kind, licence_term_days, status, \
             created_ms) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
             WHERE EXISTS (SELECT 1 FROM products WHERE id = $5 AND status = $13) \
             ON CONFLICT (buyer_org, idempotency_key) DO NOTHING",
        )
        .bind(order.id.clone())
        .bind(order.buyer_org.clone())
        .bind(key.clone())
        .bind(hash.clone())
        .bind(order.product_id.clone())
        .bind(order.developer_org.clone())
        .bind(order.price_minor)
        .bind(order.currency.clone())
        .bind(order.licence_kind.as_str())
        .bind(i64::from(order.licence_term_days))
        .bind(OrderStatus::Pending.as_str())
        .bind(created_ms)
        .bind(ProductStatus::Listed.as_str())
        .execute(&mut *g.conn)
        .await?;
        if inserted.rows_affected() == 0 {
            if let Some(existing) = order_by_key(g.conn, &order.buyer_org, key).await? {
                return replay(existing, hash, key);
            }
            return Err(ProductsError::Conflict(format!(
                "product {} is no longer listed",
                order.product_id
            )));
        }
        if order.price_minor == 0 {
            // A free public-interest product: the order is complete at once, with its
            // `Transaction` entry of 0 fen (GY ch.6; `crate::revenue`).
            self.complete_free_order(&mut g, buyer, &order.id).await?;
            let row = order_on(g.conn, &order.id, None).await?;
            return Ok(OrderPlacement {
                order: row.order,
                created: true,
            });
        }
        // A paid product's order is as inserted: no need to read it back.
        let mut order = order.clone();
        order.created_at = rfc3339(created_ms);
        Ok(OrderPlacement {
            order,
            created: true,
        })
    }

    /// Records the buyer's payment (a reference; no gateway) and appends the
    /// `Transaction` entry in the same transaction. Paying again with the same
    /// reference returns the order unchanged; no second entry is ever written.
    ///
    /// Concurrent payments share a group commit ([`pdx_ledger::group`]), and the
    /// group runs only what must be serial: the order, its product and the sale's
    /// allocation are read before, from committed rows, and the group then claims the
    /// order with one guarded `UPDATE` (still pending, product still listed) and writes
    /// the sale lines with one `INSERT`. A claim that finds the order or product changed
    /// since the read rolls back its job (and its staged entry) and the payment is read
    /// and decided again.
    pub async fn pay(&self, buyer: &Actor, order_id: &OrderId, payment_ref: &str) -> Result<Order> {
        let payment_ref = line_field(payment_ref, "payment reference", 128)?;
        let buyer_org = actor_org(buyer)?;
        for _ in 0..PAY_ATTEMPTS {
            let paying = match self
                .pay_read(buyer, &buyer_org, order_id, &payment_ref)
                .await?
            {
                PayRead::Pending(paying) => paying,
                // Not pending: the outcome is decided by the stored order alone.
                PayRead::Settled(row) => return pay_outcome(row, &payment_ref),
            };
            let me = self.clone();
            let claimed = self
                .db
                .write_grouped(move |g| {
                    Box::pin(async move {
                        match me.pay_on(g, &paying).await {
                            Ok(Some(order)) => Ok(order),
                            Ok(None) => Err(PayFailure::Changed),
                            Err(e) => Err(PayFailure::Failed(e)),
                        }
                    })
                })
                .await;
            match claimed {
                Ok(order) => return Ok(order),
                // Read again: paid meanwhile (by a peer in the same group, or another
                // server), or the product closed.
                Err(PayFailure::Changed) => continue,
                Err(PayFailure::Failed(e)) => return Err(e),
            }
        }
        Err(ProductsError::Conflict(format!(
            "order {order_id} changed while being paid; retry"
        )))
    }

    /// A payment's read, before its group; a `Conflict` when the order is pending but
    /// its product is not listed.
    async fn pay_read(
        &self,
        buyer: &Actor,
        buyer_org: &OrgId,
        order_id: &OrderId,
        payment_ref: &str,
    ) -> Result<PayRead> {
        // The order with its product's status, split and provider regions, in one read:
        // a row per region (a product has at least one; they never change after the
        // product is created, nor does its split), the order and product columns
        // repeated on each.
        let sql = format!(
            "SELECT o.*, p.status AS product_status, p.public_finance_bp, p.developer_bp, \
             p.platform_bp, r.region AS sale_region, r.weight AS sale_weight FROM \
             (SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND buyer_org = $2) o \
             JOIN products p ON p.id = o.product_id \
             LEFT JOIN product_regions r ON r.product_id = o.product_id ORDER BY r.region"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id.clone())
            .bind(buyer_org.clone())
            .fetch_all(self.db.pool())
            .await?;
        let joined = rows
            .first()
            .ok_or_else(|| ProductsError::NotFound(format!("order {order_id}")))?;
        let row = order_from_row(joined)?;
        if row.order.status != OrderStatus::Pending {
            return Ok(PayRead::Settled(row));
        }
        let status: String = joined.try_get("product_status")?;
        if status != ProductStatus::Listed.as_str() {
            return Err(ProductsError::Conflict(format!(
                "product {} is {status}; order {order_id} can no longer be paid",
                row.order.product_id
            )));
        }
        let split = split_from_row(joined)?;
        let regions = sale_regions_of(&rows, &row.order.product_id)?;
        let cells = allocate(row.order.price_minor, &split, &regions)?;
        Ok(PayRead::Pending(Paying {
            buyer: buyer.clone(),
            payment_ref: payment_ref.to_string(),
            order: row.order,
            cells,
        }))
    }

    /// [`Products::pay`]'s work in the group: `None` when the order or its product
    /// changed since [`Products::pay_read`] (the caller then fails the job, so that its
    /// staged entry goes with it, and reads again).
    async fn pay_on(&self, mut g: Grouped<'_>, paying: &Paying) -> Result<Option<Order>> {
        let Paying {
            buyer,
            payment_ref,
            order,
            cells,
        } = paying;
        let now = self.clock.now_ms();
        let period = Period::containing(now)?;
        let expires = now.saturating_add(i64::from(order.licence_term_days) * DAY_MS);
        // Staged: its seq is known now, its row is written with the group's.
        let appended = g
            .append(
                &self.ledger,
                buyer,
                &Transaction {
                    order_id: order.id.to_string(),
                    product_id: order.product_id.to_string(),
                    buyer_org: order.buyer_org.to_string(),
                    seller_org: order.developer_org.to_string(),
                    amount_minor: order.price_minor,
                    currency: order.currency.clone(),
                    payment_ref: payment_ref.clone(),
                },
            )
            .await?;
        let claimed = sqlx::query(
            "UPDATE orders SET status = $2, payment_ref = $3, paid_ms = $4, paid_period = $5, \
             licence_expires_ms = $6, transaction_seq = $7 WHERE id = $1 AND status = $8 \
             AND EXISTS (SELECT 1 FROM products WHERE id = $9 AND status = $10)",
        )
        .bind(order.id.clone())
        .bind(OrderStatus::Paid.as_str())
        .bind(payment_ref.clone())
        .bind(now)
        .bind(period.label.clone())
        .bind(expires)
        .bind(to_i64(appended.seq, "seq")?)
        .bind(OrderStatus::Pending.as_str())
        .bind(order.product_id.clone())
        .bind(ProductStatus::Listed.as_str())
        .execute(&mut *g.conn)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        // One statement for all the sale's lines.
        let values: Vec<String> = (0..cells.len())
            .map(|i| {
                let n = i * 9;
                format!(
                    "(${}, 'sale', ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6,
                    n + 7,
                    n + 8,
                    n + 9
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO revenue_lines (order_id, kind, region, payee_kind, payee, \
             developer_org, amount_minor, currency, effective_ms, effective_period) VALUES {}",
            values.join(", ")
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for cell in cells {
            insert = insert
                .bind(order.id.clone())
                .bind(cell.region.clone())
                .bind(cell.payee_kind.as_str())
                .bind(payee_for(
                    cell.payee_kind,
                    &cell.region,
                    &order.developer_org,
                ))
                .bind(order.developer_org.clone())
                .bind(cell.amount_minor)
                .bind(order.currency.clone())
                .bind(now)
                .bind(period.label.clone());
        }
        insert.execute(&mut *g.conn).await?;
        // What the statements above made of the order, without reading it back.
        let mut paid = order.clone();
        paid.status = OrderStatus::Paid;
        paid.payment_ref = Some(payment_ref.clone());
        paid.paid_at = Some(rfc3339(now));
        paid.licence_expires_at = Some(rfc3339(expires));
        paid.transaction_seq = Some(appended.seq);
        Ok(Some(paid))
    }

    /// Refunds a paid order in full (exchange): revokes the licence, appends `Refund`
    /// and adds the negated revenue lines, dated now (so a refund of an already
    /// settled order is a negative adjustment in the next settlement). Refunding a
    /// refunded order returns it unchanged.
    pub async fn refund(
        &self,
        exchange: &Actor,
        order_id: &OrderId,
        reason: &str,
    ) -> Result<Order> {
        let reason = line_field(reason, "reason", 1000)?;
        let mut tx = self.db.begin_write().await?;
        let row = order_on(&mut tx, order_id, None).await?;
        match row.order.status {
            OrderStatus::Refunded => {
                tx.rollback().await?;
                return Ok(row.order);
            }
            OrderStatus::Pending => {
                return Err(ProductsError::Conflict(format!(
                    "order {order_id} is not paid; there is nothing to refund"
                )));
            }
            OrderStatus::Paid | OrderStatus::Delivered => {}
        }
        let now = self.clock.now_ms();
        let period = Period::containing(now)?;
        let claimed = sqlx::query(
            "UPDATE orders SET status = $2, refunded_ms = $3, refunded_period = $4, \
             refund_reason = $5 WHERE id = $1 AND status IN ($6, $7)",
        )
        .bind(order_id.clone())
        .bind(OrderStatus::Refunded.as_str())
        .bind(now)
        .bind(period.label.clone())
        .bind(reason)
        .bind(OrderStatus::Paid.as_str())
        .bind(OrderStatus::Delivered.as_str())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            tx.rollback().await?;
            let mut conn = self.db.pool().acquire().await?;
            let row = order_on(&mut conn, order_id, None).await?;
            return match row.order.status {
                OrderStatus::Refunded => Ok(row.order),
                _ => Err(ProductsError::Conflict(format!(
                    "order {order_id} changed while being refunded; retry"
                ))),
            };
        }
        let order = &row.order;
        let appended = self
            .ledger
            .append(
                &mut tx,
                exchange,
                &Refund {
                    order_id: order.id.to_string(),
                    buyer_org: order.buyer_org.to_string(),
                    seller_org: order.developer_org.to_string(),
                    amount_minor: order.price_minor,
                    currency: order.currency.clone(),
                },
            )
            .await?;
        sqlx::query("UPDATE orders SET refund_seq = $2 WHERE id = $1")
            .bind(order_id.clone())
            .bind(to_i64(appended.seq, "seq")?)
            .execute(&mut *tx)
            .await?;
        let sales = sqlx::query(
            "SELECT region, payee_kind, payee, developer_org, amount_minor, currency \
             FROM revenue_lines WHERE order_id = $1 AND kind = 'sale'",
        )
        .bind(order_id.clone())
        .fetch_all(&mut *tx)
        .await?;
        for line in &sales {
            let amount: i64 = line.try_get("amount_minor")?;
            sqlx::query(
                "INSERT INTO revenue_lines (order_id, kind, region, payee_kind, payee, \
                 developer_org, amount_minor, currency, effective_ms, effective_period) \
                 VALUES ($1, 'refund', $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(order_id.clone())
            .bind(line.try_get::<String, _>("region")?)
            .bind(line.try_get::<String, _>("payee_kind")?)
            .bind(line.try_get::<String, _>("payee")?)
            .bind(line.try_get::<String, _>("developer_org")?)
            .bind(-amount)
            .bind(line.try_get::<String, _>("currency")?)
            .bind(now)
            .bind(period.label.clone())
            .execute(&mut *tx)
            .await?;
        }
        let row = order_on(&mut tx, order_id, None).await?;
        tx.commit().await?;
        Ok(row.order)
    }

    /// One of the buyer's orders (another buyer's order is not found).
    pub async fn order(&self, buyer: &Actor, order_id: &OrderId) -> Result<Order> {
        let buyer_org = actor_org(buyer)?;
        let mut conn = self.db.pool().acquire().await?;
        Ok(order_on(&mut conn, order_id, Some(&buyer_org)).await?.order)
    }

    /// Any order, for the exchange and supervisors.
    pub async fn order_any(&self, order_id: &OrderId) -> Result<Order> {
        let mut conn = self.db.pool().acquire().await?;
        Ok(order_on(&mut conn, order_id, None).await?.order)
    }

    /// Orders, narrowed by `filter`, newest first (at most `limit`, capped at 1,000): a
    /// buyer's own orders (`buyer_org` set), or the exchange's and supervisors' view of
    /// the whole book.
    pub async fn all_orders(&self, filter: &OrderFilter, limit: u32) -> Result<Vec<Order>> {
        let narrowing = [
            ("buyer_org", filter.buyer_org.as_ref().map(OrgId::to_string)),
            (
                "product_id",
                filter.product_id.as_ref().map(ProductId::to_string),
            ),
            ("status", filter.status.map(|s| s.as_str().to_string())),
        ];
        let (condition, values) = narrowed(narrowing);
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders {condition} \
             ORDER BY created_ms DESC, id LIMIT ${}",
            values.len() + 1
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in values {
            query = query.bind(value);
        }
        let rows = query
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(|r| Ok(order_from_row(r)?.order)).collect()
    }

    /// The download log of an order, oldest first.
    pub async fn downloads(&self, order_id: &OrderId) -> Result<Vec<DownloadRecord>> {
        let rows = sqlx::query(
            "SELECT id, order_id, buyer_org, actor_key, downloaded_ms, archive_bytes, \
             archive_hash FROM downloads WHERE order_id = $1 ORDER BY downloaded_ms, id",
        )
        .bind(order_id.clone())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DownloadRecord {
                    id: r.try_get::<DownloadId, _>("id")?,
                    order_id: r.try_get::<OrderId, _>("order_id")?,
                    buyer_org: r.try_get::<OrgId, _>("buyer_org")?,
                    actor_key: r.try_get::<KeyId, _>("actor_key")?,
                    downloaded_at: rfc3339(r.try_get("downloaded_ms")?),
                    archive_bytes: get_u64(r, "archive_bytes")?,
                    archive_hash: r.try_get("archive_hash")?,
                })
            })
            .collect()
    }

    /// Builds the download archive of a paid order within its licence term, logs the
    /// download and marks the order delivered. See the crate docs for the members.
    pub async fn download(&self, buyer: &Actor, order_id: &OrderId) -> Result<DownloadArchive> {
        let buyer_org = actor_org(buyer)?;
        let key_id = actor_key(buyer)?;
        let row = {
            let mut conn = self.db.pool().acquire().await?;
            order_on(&mut conn, order_id, Some(&buyer_org)).await?
        };
        check_downloadable(&row, self.clock.now_ms())?;
        let order = &row.order;
        let product = self.product(&order.product_id).await?;
        let tx_seq = order.transaction_seq.ok_or_else(|| {
            ProductsError::Internal(format!("paid order {order_id} has no entry"))
        })?;
        let receipt = self.ledger.receipt(tx_seq).await?;
        let registration_no = product.registration_no.clone().unwrap_or_default();
        let top = format!("{registration_no}-{}", order.id);
        let now = self.clock.now_ms();
        let mtime = u64::try_from(now / 1000).unwrap_or(0);

        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        let manifest_text: String =
            sqlx::query_scalar("SELECT manifest FROM products WHERE id = $1")
                .bind(order.product_id.clone())
                .fetch_one(self.db.pool())
                .await?;
        members.push(("manifest.json".into(), manifest_text.into_bytes()));
        let valid_from = order.paid_at.clone().unwrap_or_default();
        let valid_until = order.licence_expires_at.clone().unwrap_or_default();
        let payment_ref = order.payment_ref.clone().unwrap_or_default();
        let doc = LicenceDoc {
            format: "pdx-licence/v1",
            registration_no: &registration_no,
            product_id: &product.id,
            product_title: &product.title,
            order_id: &order.id,
            licensee: &order.buyer_org,
            licensor: &order.developer_org,
            kind: order.licence_kind,
            permitted_use: &product.licence.permitted_use,
            term_days: order.licence_term_days,
            valid_from: &valid_from,
            valid_until: &valid_until,
            price_minor: order.price_minor,
            currency: &order.currency,
            payment_ref: &payment_ref,
            manifest_hash: product.manifest_hash.to_hex(),
            transaction_seq: tx_seq,
        };
        let licence_json = serde_json::to_vec_pretty(&doc)
            .map_err(|e| ProductsError::Internal(format!("licence: {e}")))?;
        members.push(("licence.json".into(), licence_json));
        let licence_txt = format!(
            "DATA PRODUCT LICENCE\n\n\
             Product:          {} ({})\n\
             Registration no.: {}\n\
             Licensor:         {}\n\
             Licensee:         {}\n\
             Order:            {}\n\
             Licence:          {}\n\
             Valid:            {} to {} ({} days)\n\
             Price:            {} fen {}\n\n\
             Permitted use:\n{}\n\n\
             The provenance manifest (manifest.json, BLAKE3 {}) and the ledger receipt of the\n\
             sale (receipt.json, ledger entry {}) are part of this licence.\n",
            product.title,
            product.id,
            registration_no,
            order.developer_org,
            order.buyer_org,
            order.id,
            order.licence_kind.as_str(),
            valid_from,
            valid_until,
            order.licence_term_days,
            order.price_minor,
            order.currency,
            product.licence.permitted_use,
            product.manifest_hash.to_hex(),
            tx_seq,
        );
        members.push(("LICENCE.txt".into(), licence_txt.into_bytes()));
        let receipt_json = serde_json::to_vec_pretty(&receipt)
            .map_err(|e| ProductsError::Internal(format!("receipt: {e}")))?;
        members.push(("receipt.json".into(), receipt_json));

        let sources = sqlx::query(
            "SELECT position, release_id, output_path FROM product_sources \
             WHERE product_id = $1 ORDER BY position",
        )
        .bind(order.product_id.clone())
        .fetch_all(self.db.pool())
        .await?;
        for s in &sources {
            let pos = get_u64(s, "position")?;
            let release_id: ReleaseId = s.try_get("release_id")?;
            let path: String = s.try_get("output_path")?;
            let at_rest = self.at_rest.clone();
            let file = std::path::PathBuf::from(&path);
            let data = tokio::task::spawn_blocking(move || at_rest.read_all(&file))
                .await
                .map_err(|e| ProductsError::Internal(format!("bundle read task: {e}")))?
                .map_err(|e| ProductsError::Io {
                    path: path.clone(),
                    source: e.into(),
                })?;
            members.push((
                format!("data/{pos:02}-{}.parquet", file_stem(&release_id)),
                data,
            ));
        }
        let mut sums = String::new();
        for (name, data) in &members {
            sums.push_str(&format!("{}  {name}\n", blake3::hash(data).to_hex()));
        }
        members.push(("BLAKE3SUMS".into(), sums.into_bytes()));
        let mut tar = TarWriter::new();
        for (name, data) in &members {
            tar.append(&format!("{top}/{name}"), mtime, data)?;
        }
        let bytes = tar.finish();

        let record = DownloadRecord {
            id: DownloadId::random(),
            order_id: order.id.clone(),
            buyer_org: buyer_org.clone(),
            actor_key: key_id,
            downloaded_at: rfc3339(now),
            archive_bytes: bytes.len() as u64,
            archive_hash: blake3::hash(&bytes).to_hex().to_string(),
        };
        let mut tx = self.db.begin_write().await?;
        // The order may have been refunded while the archive was being built.
        let current = order_on(&mut tx, order_id, Some(&buyer_org)).await?;
        check_downloadable(&current, now)?;
        sqlx::query(
            "INSERT INTO downloads (id, order_id, buyer_org, actor_key, downloaded_ms, \
             archive_bytes, archive_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(record.id.clone())
        .bind(record.order_id.clone())
        .bind(record.buyer_org.clone())
        .bind(record.actor_key.clone())
        .bind(now)
        .bind(to_i64(record.archive_bytes, "archive size")?)
        .bind(record.archive_hash.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE orders SET status = $2, delivered_ms = $3 WHERE id = $1 AND status = $4",
        )
        .bind(order_id.clone())
        .bind(OrderStatus::Delivered.as_str())
        .bind(now)
        .bind(OrderStatus::Paid.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DownloadArchive {
            file_name: format!("{top}.tar"),
            content_type: "application/x-tar",
            bytes,
            record,
        })
    }
}
