//! Revenue rules (GY ch.6) and the licences that fit a grant's purpose (GD21 Art.26).
//!
//! ## Free and paid products (GY ch.6)
//!
//! Public-interest use may be free; industrial use is paid, and the related revenue is
//! remitted to public finance (上缴相关收益). So:
//!
//! - a product may be priced 0 fen only under the `public_interest` licence; any other
//!   licence at price 0 is refused (422, [`check_price`]);
//! - a paid product (price > 0, any licence) must give public finance at least the
//!   configured minimum share of every sale: `public_finance_min_bp` (the binary's
//!   config key, default [`DEFAULT_PUBLIC_FINANCE_MIN_BP`] = 1,000 bp, 10 %). A split
//!   below it is refused with a 422 naming the minimum ([`check_public_finance_share`]),
//!   when the product is created and again when the exchange lists it (the minimum may
//!   have been raised in between). The minimum applies to the basis points; the money
//!   itself is split by largest remainder, exact to the fen ([`crate::split`]).
//!
//! **Ordering a free product** creates an order of 0 fen that is complete at once: it is
//! placed paid (payment reference [`FREE_PAYMENT_REF`]), with its `Transaction` ledger
//! entry of 0 fen and its licence term running from that moment, in one transaction.
//! The buyer downloads it like any paid order (the archive carries the receipt of that
//! entry). A sale of 0 fen has no revenue lines, so settlement remits nothing for it:
//! there is no `Remittance` for a free product, and reconciliation holds as before
//! (0 paid = 0 remitted). We chose an order over an anonymous download so that every
//! copy of a product is still licensed to a named buyer, logged and on the ledger.
//!
//! ## Licences that fit a grant's purpose (GD21 Art.26)
//!
//! Each release carries the kind of the purpose of the grant it ran under (the sandbox's
//! grant terms: `research`, `public_interest` or `commercial`; none for unconditionally
//! open data, which needs no grant). A product's licence must fit every source's purpose:
//!
//! | grant purpose | `research_only` | `public_interest` | `commercial_internal` | `commercial_redistribution` |
//! |---|---|---|---|---|
//! | `research` | yes | yes | no | no |
//! | `public_interest` | yes | yes | no | no |
//! | `commercial` | yes | yes | yes | yes |
//! | no grant | yes | yes | yes | yes |
//!
//! A misfit is refused with a 422 naming the grant's purpose and the licence
//! ([`check_purposes`]), at creation and again at listing (from the manifest, which
//! records each release's purpose). Independently, a research-only dataset or grant
//! still allows only a non-commercial licence (409, [`crate::Products::create_product`]);
//! a research-purpose grant is always research-only, so both rules agree.
//!
//! ## Remittances to public finance
//!
//! Each provider region's public finance is the payee `public-finance:<region>`
//! ([`crate::public_finance_account`]). [`crate::Products::remittances`] reads the
//! settled remittance lines by payee kind, payee and period; the binary lets the
//! public-finance bureau of a region (the `finance` role) read its own account's lines.

use pdx_ids::OrderId;
use pdx_ledger::Actor;
use pdx_ledger::group::Grouped;
use pdx_ledger::kinds::Transaction;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::Products;
use crate::clock::{DAY_MS, Period};
use crate::error::{ProductsError, Result};
use crate::model::{GrantPurpose, LicenceKind, OrderStatus};
use crate::rows::{get_u64, narrowed, to_i64};
use crate::split::{BP_TOTAL, PayeeKind, RevenueSplit};

/// The default minimum public-finance share of a paid product: 1,000 bp (10 %).
pub const DEFAULT_PUBLIC_FINANCE_MIN_BP: u32 = 1_000;

/// The payment reference of a free order (no payment was made).
pub const FREE_PAYMENT_REF: &str = "free:public_interest";

/// Refuses a price the licence does not allow: negative, or 0 under any licence but
/// `public_interest` (422).
pub fn check_price(price_minor: i64, licence: LicenceKind) -> Result<()> {
    if price_minor < 0 {
        return Err(ProductsError::Invalid(format!(
            "price must be a non-negative number of fen, not {price_minor}"
        )));
    }
    if price_minor == 0 && licence != LicenceKind::PublicInterest {
        return Err(ProductsError::Invalid(format!(
            "only a public-interest product may be free: price 0 needs the public_interest \
             licence, not {} (GY ch.6: industrial use is paid)",
            licence.as_str()
        )));
    }
    Ok(())
}

/// Refuses a paid product whose split gives public finance less than `min_bp` basis
/// points (422, naming the minimum). A free product remits nothing, so any valid split
/// passes.
pub fn check_public_finance_share(
    price_minor: i64,
    split: &RevenueSplit,
    min_bp: u32,
) -> Result<()> {
    if price_minor > 0 && split.public_finance_bp < min_bp {
        return Err(ProductsError::Invalid(format!(
            "a paid product must remit at least {min_bp} basis points ({}) of each sale to \
             public finance (GY ch.6); this split gives it {} basis points",
            percent(min_bp),
            split.public_finance_bp
        )));
    }
    Ok(())
}

/// Basis points as a percentage, exactly (`1000` → `10%`, `1050` → `10.5%`).
fn percent(bp: u32) -> String {
    let whole = bp / 100;
    let rest = bp % 100;
    if rest == 0 {
        format!("{whole}%")
    } else if rest.is_multiple_of(10) {
        format!("{whole}.{}%", rest / 10)
    } else {
        format!("{whole}.{rest:02}%")
    }
}

/// Whether a product licence fits the purpose of a source's grant (the table in the
/// module docs): only a commercial purpose feeds a commercial licence.
pub fn licence_fits_purpose(purpose: GrantPurpose, licence: LicenceKind) -> bool {
    match purpose {
        GrantPurpose::Commercial => true,
        GrantPurpose::Research | GrantPurpose::PublicInterest => !licence.is_commercial(),
    }
}

/// Refuses `licence` when it does not fit the purpose of any source's grant (422,
/// naming the release, the grant's purpose and the licence). `sources` are (release
/// id, the purpose of its grant).
pub fn check_purposes<I>(sources: I, licence: LicenceKind) -> Result<()>
where
    I: IntoIterator<Item = (String, Option<GrantPurpose>)>,
{
    let misfits: Vec<String> = sources
        .into_iter()
        .filter_map(|(release, purpose)| {
            purpose
                .filter(|p| !licence_fits_purpose(*p, licence))
                .map(|p| {
                    format!(
                        "release {release} ran under a grant for a {} purpose",
                        p.as_str()
                    )
                })
        })
        .collect();
    if misfits.is_empty() {
        return Ok(());
    }
    Err(ProductsError::Invalid(format!(
        "the {} licence does not fit the purpose of the grant: a research or public-interest \
         purpose cannot feed a commercial product (GD21 Art.26); use the research_only or \
         public_interest licence: {}",
        licence.as_str(),
        misfits.join("; ")
    )))
}

/// Checks a basis-point minimum from configuration: at most 10,000.
pub fn check_min_bp(min_bp: u32) -> Result<u32> {
    if min_bp > BP_TOTAL {
        return Err(ProductsError::Invalid(format!(
            "the minimum public-finance share is {min_bp} basis points, more than {BP_TOTAL}"
        )));
    }
    Ok(min_bp)
}

/// Which remittance lines to read; `None` fields do not narrow.
#[derive(Clone, Debug, Default)]
pub struct RemittanceFilter {
    /// Only this payee kind.
    pub payee_kind: Option<PayeeKind>,
    /// Only this payee account (e.g. `public-finance:guangzhou`).
    pub payee: Option<String>,
    /// Only this settlement period (`YYYY-MM`).
    pub period: Option<String>,
}

/// One settled remittance to one payee, with its period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PayeeRemittance {
    /// Settlement period, `YYYY-MM`.
    pub period: String,
    /// Payee kind.
    pub payee_kind: PayeeKind,
    /// Payee account: `public-finance:<region>`, the developer org, or the platform.
    pub payee: String,
    /// Amount in fen (negative when refunds exceed sales: an adjustment).
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// Orders contributing.
    pub order_count: u64,
    /// Ledger seq of the `Remittance` entry.
    pub ledger_seq: u64,
}

impl Products {
    /// Uses `min_bp` as the minimum public-finance share of a paid product (basis points,
    /// at most 10,000; see [`crate::revenue`]).
    pub fn with_public_finance_min_bp(mut self, min_bp: u32) -> Result<Products> {
        self.public_finance_min_bp = check_min_bp(min_bp)?;
        Ok(self)
    }

    /// The minimum public-finance share of a paid product, in basis points.
    pub fn public_finance_min_bp(&self) -> u32 {
        self.public_finance_min_bp
    }

    /// Completes a just-placed order of a free product inside the caller's transaction:
    /// pending → paid with [`FREE_PAYMENT_REF`], the licence term from now, and the
    /// `Transaction` entry of 0 fen (written by `buyer`, as for a paid order). No revenue
    /// lines: nothing is remitted for a free product.
    pub(crate) async fn complete_free_order(
        &self,
        g: &mut Grouped<'_>,
        buyer: &Actor,
        order_id: &OrderId,
    ) -> Result<()> {
        let row = sqlx::query(
            "SELECT product_id, buyer_org, developer_org, price_minor, currency, \
             licence_term_days FROM orders WHERE id = $1 AND status = $2",
        )
        .bind(order_id.clone())
        .bind(OrderStatus::Pending.as_str())
        .fetch_optional(&mut *g.conn)
        .await?
        .ok_or_else(|| ProductsError::Internal(format!("free order {order_id} is not pending")))?;
        if row.try_get::<i64, _>("price_minor")? != 0 {
            return Err(ProductsError::Internal(format!(
                "order {order_id} is not free"
            )));
        }
        let now = self.clock.now_ms();
        let period = Period::containing(now)?;
        let term_days = to_i64(get_u64(&row, "licence_term_days")?, "licence term")?;
        let expires = now.saturating_add(term_days.saturating_mul(DAY_MS));
        let claimed = sqlx::query(
            "UPDATE orders SET status = $2, payment_ref = $3, paid_ms = $4, paid_period = $5, \
             licence_expires_ms = $6 WHERE id = $1 AND status = $7",
        )
        .bind(order_id.clone())
        .bind(OrderStatus::Paid.as_str())
        .bind(FREE_PAYMENT_REF)
        .bind(now)
        .bind(period.label.clone())
        .bind(expires)
        .bind(OrderStatus::Pending.as_str())
        .execute(&mut *g.conn)
        .await?;
        if claimed.rows_affected() != 1 {
            return Err(ProductsError::Internal(format!(
                "free order {order_id} changed while being completed"
            )));
        }
        let appended = g
            .append(
                &self.ledger,
                buyer,
                &Transaction {
                    order_id: order_id.to_string(),
                    product_id: row.try_get("product_id")?,
                    buyer_org: row.try_get("buyer_org")?,
                    seller_org: row.try_get("developer_org")?,
                    amount_minor: 0,
                    currency: row.try_get("currency")?,
                    payment_ref: FREE_PAYMENT_REF.to_string(),
                },
            )
            .await?;
        sqlx::query("UPDATE orders SET transaction_seq = $2 WHERE id = $1")
            .bind(order_id.clone())
            .bind(to_i64(appended.seq, "seq")?)
            .execute(&mut *g.conn)
            .await?;
        Ok(())
    }

    /// Settled remittance lines matching `filter`, oldest period first (the caller
    /// decides who may read which payee's; this crate trusts it, as for its other
    /// reads). A malformed period is `Invalid`.
    pub async fn remittances(&self, filter: &RemittanceFilter) -> Result<Vec<PayeeRemittance>> {
        if let Some(period) = &filter.period {
            crate::clock::Period::parse(period)?;
        }
        let narrowing = [
            (
                "payee_kind",
                filter.payee_kind.map(|k| k.as_str().to_string()),
            ),
            ("payee", filter.payee.clone()),
            ("period", filter.period.clone()),
        ];
        let (condition, values) = narrowed(narrowing);
        let sql = format!(
            "SELECT period, payee_kind, payee, currency, amount_minor, order_count, ledger_seq \
             FROM remittances {condition} ORDER BY period, payee_kind, payee, currency"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in values {
            query = query.bind(value);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("payee_kind")?;
                Ok(PayeeRemittance {
                    period: r.try_get("period")?,
                    payee_kind: PayeeKind::parse(&kind)
                        .ok_or_else(|| ProductsError::Internal(format!("payee kind {kind:?}")))?,
                    payee: r.try_get("payee")?,
                    amount_minor: r.try_get("amount_minor")?,
                    currency: r.try_get("currency")?,
                    order_count: get_u64(r, "order_count")?,
                    ledger_seq: get_u64(r, "ledger_seq")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(public_finance_bp: u32) -> RevenueSplit {
        RevenueSplit {
            public_finance_bp,
            platform_bp: 1_000,
            developer_bp: 9_000 - public_finance_bp,
        }
    }

    #[test]
    fn only_public_interest_products_are_free() {
        assert!(check_price(0, LicenceKind::PublicInterest).is_ok());
        assert!(check_price(1, LicenceKind::PublicInterest).is_ok());
        for kind in [
            LicenceKind::ResearchOnly,
            LicenceKind::CommercialInternal,
            LicenceKind::CommercialRedistribution,
        ] {
            let e = check_price(0, kind).unwrap_err();
            assert_eq!(e.status_hint(), 422);
            assert!(e.to_string().contains(kind.as_str()), "{e}");
            assert!(check_price(1, kind).is_ok());
        }
        assert!(check_price(-1, LicenceKind::PublicInterest).is_err());
    }

    #[test]
    fn paid_products_remit_at_least_the_minimum() {
        assert!(check_public_finance_share(100, &split(1_000), 1_000).is_ok());
        let e = check_public_finance_share(100, &split(999), 1_000).unwrap_err();
        assert_eq!(e.status_hint(), 422);
        let msg = e.to_string();
        assert!(
            msg.contains("1000 basis points (10%)") && msg.contains("999"),
            "{msg}"
        );
        // A free product remits nothing: no minimum.
        assert!(check_public_finance_share(0, &split(0), 1_000).is_ok());
        assert_eq!(percent(1_050), "10.5%");
        assert_eq!(percent(1_234), "12.34%");
        assert!(check_min_bp(10_001).is_err());
    }

    #[test]
    fn only_a_commercial_purpose_feeds_a_commercial_licence() {
        for purpose in [GrantPurpose::Research, GrantPurpose::PublicInterest] {
            assert!(licence_fits_purpose(purpose, LicenceKind::ResearchOnly));
            assert!(licence_fits_purpose(purpose, LicenceKind::PublicInterest));
            assert!(!licence_fits_purpose(
                purpose,
                LicenceKind::CommercialInternal
            ));
            assert!(!licence_fits_purpose(
                purpose,
                LicenceKind::CommercialRedistribution
            ));
        }
        for licence in [
            LicenceKind::ResearchOnly,
            LicenceKind::PublicInterest,
            LicenceKind::CommercialInternal,
            LicenceKind::CommercialRedistribution,
        ] {
            assert!(licence_fits_purpose(GrantPurpose::Commercial, licence));
        }
        let e = check_purposes(
            vec![
                ("rel_1".to_string(), Some(GrantPurpose::Research)),
                ("rel_2".to_string(), None),
            ],
            LicenceKind::CommercialInternal,
        )
        .unwrap_err();
        assert_eq!(e.status_hint(), 422);
        let msg = e.to_string();
        assert!(
            msg.contains("commercial_internal") && msg.contains("research purpose"),
            "{msg}"
        );
        assert!(
            check_purposes(
                vec![("rel_2".to_string(), None)],
                LicenceKind::CommercialInternal
            )
            .is_ok()
        );
    }
}
