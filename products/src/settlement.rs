//! Settlement, remittance and reconciliation.

use std::collections::{BTreeMap, BTreeSet};

use pdx_ledger::kinds::{Refund, Remittance, Transaction};
use pdx_ledger::{Actor, EntryKind};
use sqlx::{AnyConnection, Row};

use crate::Products;
use crate::clock::{Period, rfc3339};
use crate::error::{ProductsError, Result};
use crate::model::{
    CURRENCY, LedgerTotals, ReconGroupBy, ReconRow, Reconciliation, RemittanceLine, Settlement,
};
use crate::rows::{get_u64, to_i64};
use crate::split::PayeeKind;

/// Sums one integer column per group key.
async fn sums_by(conn: &mut AnyConnection, sql: &'static str) -> Result<BTreeMap<String, i64>> {
    let rows = sqlx::query(sql).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            let key: Option<String> = r.try_get("k")?;
            Ok((key.unwrap_or_default(), r.try_get::<i64, _>("v")?))
        })
        .collect()
}

/// One number.
async fn scalar(conn: &mut AnyConnection, sql: &'static str) -> Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(&mut *conn).await?)
}

impl Products {
    /// Settles a period (exchange): one `Remittance` entry per payee for every revenue
    /// line not yet settled and dated before the period's end. Re-running a settled
    /// period returns the stored result (`newly_settled: false`) and changes nothing.
    ///
    /// Refused (`Conflict`) while the period has not ended, and for a period before the
    /// latest settled one.
    pub async fn settle(&self, exchange: &Actor, period: &str) -> Result<Settlement> {
        let period = Period::parse(period)?;
        let now = self.clock.now_ms();
        let mut tx = self.db.begin_write().await?;
        let done: Option<String> =
            sqlx::query_scalar("SELECT period FROM settlements WHERE period = $1")
                .bind(period.label.clone())
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            tx.rollback().await?;
            return self.settlement(&period.label).await;
        }
        if period.to_ms > now {
            return Err(ProductsError::Conflict(format!(
                "period {} has not ended (it ends at {})",
                period.label,
                rfc3339(period.to_ms)
            )));
        }
        let latest: Option<String> = sqlx::query_scalar("SELECT MAX(period) FROM settlements")
            .fetch_one(&mut *tx)
            .await?;
        if let Some(latest) = latest
            && latest > period.label
        {
            return Err(ProductsError::Conflict(format!(
                "period {} is before the latest settled period {latest}; periods settle in order",
                period.label
            )));
        }
        let claimed = sqlx::query(
            "INSERT INTO settlements (period, from_ms, to_ms, settled_ms, actor_org, actor_key) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (period) DO NOTHING",
        )
        .bind(period.label.clone())
        .bind(period.from_ms)
        .bind(period.to_ms)
        .bind(now)
        .bind(exchange.org.clone())
        .bind(exchange.key_id.clone())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            // Settled concurrently (PostgreSQL): return what the winner stored.
            tx.rollback().await?;
            return self.settlement(&period.label).await;
        }
        sqlx::query(
            "UPDATE revenue_lines SET settled_period = $1 \
             WHERE settled_period IS NULL AND effective_ms < $2",
        )
        .bind(period.label.clone())
        .bind(period.to_ms)
        .execute(&mut *tx)
        .await?;
        let totals = sqlx::query(
            "SELECT payee_kind, payee, currency, \
             CAST(SUM(amount_minor) AS BIGINT) AS amount, \
             COUNT(DISTINCT order_id) AS orders \
             FROM revenue_lines WHERE settled_period = $1 \
             GROUP BY payee_kind, payee, currency ORDER BY payee_kind, payee, currency",
        )
        .bind(period.label.clone())
        .fetch_all(&mut *tx)
        .await?;
        let id_rows = sqlx::query(
            "SELECT DISTINCT payee_kind, payee, currency, order_id FROM revenue_lines \
             WHERE settled_period = $1 ORDER BY payee_kind, payee, currency, order_id",
        )
        .bind(period.label.clone())
        .fetch_all(&mut *tx)
        .await?;
        let mut order_ids: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        for r in &id_rows {
            order_ids
                .entry((
                    r.try_get("payee_kind")?,
                    r.try_get("payee")?,
                    r.try_get("currency")?,
                ))
                .or_default()
                .push(r.try_get("order_id")?);
        }
        for t in &totals {
            let payee_kind: String = t.try_get("payee_kind")?;
            let payee: String = t.try_get("payee")?;
            let currency: String = t.try_get("currency")?;
            let amount: i64 = t.try_get("amount")?;
            let count = get_u64(t, "orders")?;
            let ids = order_ids
                .remove(&(payee_kind.clone(), payee.clone(), currency.clone()))
                .unwrap_or_default();
            let appended = self
                .ledger
                .append(
                    &mut tx,
                    exchange,
                    &Remittance {
                        period: period.label.clone(),
                        payee_kind: payee_kind.clone(),
                        payee: payee.clone(),
                        amount_minor: amount,
                        currency: currency.clone(),
                        order_ids: ids,
                    },
                )
                .await?;
            sqlx::query(
                "INSERT INTO remittances (period, payee_kind, payee, currency, amount_minor, \
                 order_count, ledger_seq) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(period.label.clone())
            .bind(payee_kind)
            .bind(payee)
            .bind(currency)
            .bind(amount)
            .bind(to_i64(count, "order count")?)
            .bind(to_i64(appended.seq, "seq")?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let mut out = self.settlement(&period.label).await?;
        out.newly_settled = true;
        Ok(out)
    }

    /// A settled period as stored (`newly_settled: false`).
    pub async fn settlement(&self, period: &str) -> Result<Settlement> {
        let row = sqlx::query(
            "SELECT period, from_ms, to_ms, settled_ms FROM settlements WHERE period = $1",
        )
        .bind(period.to_string())
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| ProductsError::NotFound(format!("settlement of period {period}")))?;
        let lines = sqlx::query(
            "SELECT payee_kind, payee, currency, amount_minor, order_count, ledger_seq \
             FROM remittances WHERE period = $1 ORDER BY payee_kind, payee, currency",
        )
        .bind(period.to_string())
        .fetch_all(self.db.pool())
        .await?;
        let remittances = lines
            .iter()
            .map(|r| {
                let kind: String = r.try_get("payee_kind")?;
                Ok(RemittanceLine {
                    payee_kind: PayeeKind::parse(&kind)
                        .ok_or_else(|| ProductsError::Internal(format!("payee kind {kind:?}")))?,
                    payee: r.try_get("payee")?,
                    amount_minor: r.try_get("amount_minor")?,
                    currency: r.try_get("currency")?,
                    order_count: get_u64(r, "order_count")?,
                    ledger_seq: get_u64(r, "ledger_seq")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Settlement {
            period: row.try_get("period")?,
            from: rfc3339(row.try_get("from_ms")?),
            to: rfc3339(row.try_get("to_ms")?),
            settled_at: rfc3339(row.try_get("settled_ms")?),
            newly_settled: false,
            remittances,
        })
    }

    /// Settled periods, oldest first.
    pub async fn settled_periods(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT period FROM settlements ORDER BY period")
                .fetch_all(self.db.pool())
                .await?,
        )
    }

    /// Sums the ledger's own `Transaction`, `Refund` and `Remittance` entries.
    ///
    /// Reads the ledger's `ledger_entries` table by kind (its `(kind, seq)` index), so
    /// the cost is the number of trading entries, not the size of the ledger.
    pub async fn ledger_totals(&self) -> Result<LedgerTotals> {
        let tx_kind = EntryKind::Transaction;
        let refund_kind = EntryKind::Refund;
        let remit_kind = EntryKind::Remittance;
        let rows = sqlx::query(
            "SELECT kind, payload FROM ledger_entries WHERE kind IN ($1, $2, $3) ORDER BY seq",
        )
        .bind(tx_kind.as_str().to_string())
        .bind(refund_kind.as_str().to_string())
        .bind(remit_kind.as_str().to_string())
        .fetch_all(self.db.pool())
        .await?;
        let mut t = LedgerTotals::default();
        let bad = |e: serde_json::Error| ProductsError::Internal(format!("ledger payload: {e}"));
        for r in &rows {
            let kind: String = r.try_get("kind")?;
            let payload: String = r.try_get("payload")?;
            if kind == tx_kind.as_str() {
                let p: Transaction = serde_json::from_str(&payload).map_err(bad)?;
                t.transaction_entries += 1;
                t.transactions_minor += p.amount_minor;
            } else if kind == refund_kind.as_str() {
                let p: Refund = serde_json::from_str(&payload).map_err(bad)?;
                t.refund_entries += 1;
                t.refunds_minor += p.amount_minor;
            } else {
                let p: Remittance = serde_json::from_str(&payload).map_err(bad)?;
                t.remittance_entries += 1;
                t.remittances_minor += p.amount_minor;
            }
        }
        Ok(t)
    }

    /// Checks paid − refunded = remitted + unsettled to the fen, overall and per group,
    /// against the ledger too (see the crate docs).
    pub async fn reconcile(&self, group_by: ReconGroupBy) -> Result<Reconciliation> {
        let mut conn = self.db.pool().acquire().await?;
        let paid = scalar(
            &mut conn,
            "SELECT COALESCE(CAST(SUM(price_minor) AS BIGINT), 0) FROM orders \
             WHERE paid_ms IS NOT NULL",
        )
        .await?;
        let paid_count = scalar(
            &mut conn,
            "SELECT COUNT(*) FROM orders WHERE paid_ms IS NOT NULL",
        )
        .await?;
        let refunded = scalar(
            &mut conn,
            "SELECT COALESCE(CAST(SUM(price_minor) AS BIGINT), 0) FROM orders \
             WHERE refunded_ms IS NOT NULL",
        )
        .await?;
        let refunded_count = scalar(
            &mut conn,
            "SELECT COUNT(*) FROM orders WHERE refunded_ms IS NOT NULL",
        )
        .await?;
        let remitted = scalar(
            &mut conn,
            "SELECT COALESCE(CAST(SUM(amount_minor) AS BIGINT), 0) FROM remittances",
        )
        .await?;
        let remittance_count = scalar(&mut conn, "SELECT COUNT(*) FROM remittances").await?;
        let settled_lines = scalar(
            &mut conn,
            "SELECT COALESCE(CAST(SUM(amount_minor) AS BIGINT), 0) FROM revenue_lines \
             WHERE settled_period IS NOT NULL",
        )
        .await?;
        let unsettled = scalar(
            &mut conn,
            "SELECT COALESCE(CAST(SUM(amount_minor) AS BIGINT), 0) FROM revenue_lines \
             WHERE settled_period IS NULL",
        )
        .await?;
        let total = ReconRow::new("total".into(), paid, refunded, remitted, unsettled);

        // Per group: paid and refunded from the orders where the orders know the group
        // (developer, month), else from the sale and refund lines (region); remitted
        // and unsettled from the lines.
        let (paid_by, refunded_by, lines_sql): (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        ) = match group_by {
            ReconGroupBy::Total => (None, None, None),
            ReconGroupBy::Developer => (
                Some(
                    "SELECT developer_org AS k, CAST(SUM(price_minor) AS BIGINT) AS v FROM orders \
                     WHERE paid_ms IS NOT NULL GROUP BY developer_org",
                ),
                Some(
                    "SELECT developer_org AS k, CAST(SUM(price_minor) AS BIGINT) AS v FROM orders \
                     WHERE refunded_ms IS NOT NULL GROUP BY developer_org",
                ),
                Some(
                    "SELECT developer_org AS k, \
                     CAST(SUM(CASE WHEN kind = 'sale' THEN amount_minor ELSE 0 END) AS BIGINT) AS sale, \
                     CAST(SUM(CASE WHEN kind = 'refund' THEN amount_minor ELSE 0 END) AS BIGINT) AS refund, \
                     CAST(SUM(CASE WHEN settled_period IS NOT NULL THEN amount_minor ELSE 0 END) AS BIGINT) AS settled, \
                     CAST(SUM(CASE WHEN settled_period IS NULL THEN amount_minor ELSE 0 END) AS BIGINT) AS unsettled \
                     FROM revenue_lines GROUP BY developer_org",
                ),
            ),
            ReconGroupBy::Period => (
                Some(
                    "SELECT paid_period AS k, CAST(SUM(price_minor) AS BIGINT) AS v FROM orders \
                     WHERE paid_ms IS NOT NULL GROUP BY paid_period",
                ),
                Some(
                    "SELECT refunded_period AS k, CAST(SUM(price_minor) AS BIGINT) AS v FROM orders \
                     WHERE refunded_ms IS NOT NULL GROUP BY refunded_period",
                ),
                Some(
                    "SELECT effective_period AS k, \
                     CAST(SUM(CASE WHEN kind = 'sale' THEN amount_minor ELSE 0 END) AS BIGINT) AS sale, \
                     CAST(SUM(CASE WHEN kind = 'refund' THEN amount_minor ELSE 0 END) AS BIGINT) AS refund, \
                     CAST(SUM(CASE WHEN settled_period IS NOT NULL THEN amount_minor ELSE 0 END) AS BIGINT) AS settled, \
                     CAST(SUM(CASE WHEN settled_period IS NULL THEN amount_minor ELSE 0 END) AS BIGINT) AS unsettled \
                     FROM revenue_lines GROUP BY effective_period",
                ),
            ),
            ReconGroupBy::ProviderRegion => (
                None,
                None,
                Some(
                    "SELECT region AS k, \
                     CAST(SUM(CASE WHEN kind = 'sale' THEN amount_minor ELSE 0 END) AS BIGINT) AS sale, \
                     CAST(SUM(CASE WHEN kind = 'refund' THEN amount_minor ELSE 0 END) AS BIGINT) AS refund, \
                     CAST(SUM(CASE WHEN settled_period IS NOT NULL THEN amount_minor ELSE 0 END) AS BIGINT) AS settled, \
                     CAST(SUM(CASE WHEN settled_period IS NULL THEN amount_minor ELSE 0 END) AS BIGINT) AS unsettled \
                     FROM revenue_lines GROUP BY region",
                ),
            ),
        };
        let rows = match lines_sql {
            None => vec![total.clone()],
            Some(sql) => {
                let line_rows = sqlx::query(sql).fetch_all(&mut *conn).await?;
                // key -> (sale, refund (negative), settled, unsettled)
                let mut lines: BTreeMap<String, (i64, i64, i64, i64)> = BTreeMap::new();
                for r in &line_rows {
                    let key: Option<String> = r.try_get("k")?;
                    lines.insert(
                        key.unwrap_or_default(),
                        (
                            r.try_get("sale")?,
                            r.try_get("refund")?,
                            r.try_get("settled")?,
                            r.try_get("unsettled")?,
                        ),
                    );
                }
                let paid_map = match paid_by {
                    Some(sql) => Some(sums_by(&mut conn, sql).await?),
                    None => None,
                };
                let refunded_map = match refunded_by {
                    Some(sql) => Some(sums_by(&mut conn, sql).await?),
                    None => None,
                };
                let mut keys: BTreeSet<String> = lines.keys().cloned().collect();
                for m in [&paid_map, &refunded_map].into_iter().flatten() {
                    keys.extend(m.keys().cloned());
                }
                keys.into_iter()
                    .map(|k| {
                        let (sale, refund, settled, open) =
                            lines.get(&k).copied().unwrap_or_default();
                        let p = match &paid_map {
                            Some(m) => m.get(&k).copied().unwrap_or(0),
                            None => sale,
                        };
                        let r = match &refunded_map {
                            Some(m) => m.get(&k).copied().unwrap_or(0),
                            None => -refund,
                        };
                        ReconRow::new(k, p, r, settled, open)
                    })
                    .collect()
            }
        };
        drop(conn);
        let ledger = self.ledger_totals().await?;
        let column_sums = rows.iter().fold((0i128, 0i128, 0i128, 0i128), |acc, r| {
            (
                acc.0 + i128::from(r.paid_minor),
                acc.1 + i128::from(r.refunded_minor),
                acc.2 + i128::from(r.remitted_minor),
                acc.3 + i128::from(r.unsettled_minor),
            )
        });
        let exact = total.exact
            && rows.iter().all(|r| r.exact)
            && column_sums
                == (
                    i128::from(paid),
                    i128::from(refunded),
                    i128::from(remitted),
                    i128::from(unsettled),
                )
            && settled_lines == remitted
            && ledger.transactions_minor == paid
            && ledger.refunds_minor == refunded
            && ledger.remittances_minor == remitted
            && i64::try_from(ledger.transaction_entries).ok() == Some(paid_count)
            && i64::try_from(ledger.refund_entries).ok() == Some(refunded_count)
            && i64::try_from(ledger.remittance_entries).ok() == Some(remittance_count);
        Ok(Reconciliation {
            group_by,
            currency: CURRENCY.to_string(),
            rows,
            total,
            ledger,
            exact,
        })
    }
}
