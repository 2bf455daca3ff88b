//! `pdx reconcile`: paid − refunded = remitted + unsettled, to the fen, from the local
//! database, printed as a table. Exits 1 when anything does not balance.
//!
//! It opens the database, the ledger and the products tables only (not the sandbox,
//! whose start-up recovery would touch a running server's jobs), and only reads.

use std::fmt::Write as _;

use anyhow::Context;

use pdx_ledger::Ledger;
use pdx_ledger::db::Db;
use pdx_products::{Products, ReconGroupBy, Reconciliation};

use crate::config::Config;

/// How to group the reconciliation table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// One row: the totals.
    Total,
    /// By provider region (the public-finance accounts).
    ProviderRegion,
    /// By developer organisation.
    Developer,
    /// By the month money moved in.
    Period,
}

impl From<GroupBy> for ReconGroupBy {
    fn from(g: GroupBy) -> ReconGroupBy {
        match g {
            GroupBy::Total => ReconGroupBy::Total,
            GroupBy::ProviderRegion => ReconGroupBy::ProviderRegion,
            GroupBy::Developer => ReconGroupBy::Developer,
            GroupBy::Period => ReconGroupBy::Period,
        }
    }
}

/// Fen as yuan with two decimals (`-12.05`), exact (integer arithmetic).
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn group_name(g: ReconGroupBy) -> &'static str {
    match g {
        ReconGroupBy::Total => "total",
        ReconGroupBy::ProviderRegion => "provider region",
        ReconGroupBy::Developer => "developer",
        ReconGroupBy::Period => "period",
    }
}

fn mark(exact: bool) -> &'static str {
    if exact { "yes" } else { "NO" }
}

/// The report as a markdown table, followed by the ledger's own totals and a verdict.
pub fn render(r: &Reconciliation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {} | paid ({c}) | refunded ({c}) | remitted ({c}) | unsettled ({c}) | exact |",
        group_name(r.group_by),
        c = r.currency
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    let mut row = |key: &str, paid, refunded, remitted, unsettled, exact| {
        let _ = writeln!(
            out,
            "| {key} | {} | {} | {} | {} | {} |",
            yuan(paid),
            yuan(refunded),
            yuan(remitted),
            yuan(unsettled),
            mark(exact)
        );
    };
    for g in &r.rows {
        if r.group_by != ReconGroupBy::Total {
            row(
                &g.key,
                g.paid_minor,
                g.refunded_minor,
                g.remitted_minor,
                g.unsettled_minor,
                g.exact,
            );
        }
    }
    let t = &r.total;
    row(
        "**total**",
        t.paid_minor,
        t.refunded_minor,
        t.remitted_minor,
        t.unsettled_minor,
        t.exact,
    );
    let l = &r.ledger;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "ledger: {} Transaction entries ({} {}), {} Refund entries ({} {}), {} Remittance entries ({} {})",
        l.transaction_entries,
        yuan(l.transactions_minor),
        r.currency,
        l.refund_entries,
        yuan(l.refunds_minor),
        r.currency,
        l.remittance_entries,
        yuan(l.remittances_minor),
        r.currency,
    );
    let _ = writeln!(
        out,
        "{}",
        if r.exact {
            "balanced: paid − refunded = remitted + unsettled, to the fen, and the ledger agrees"
        } else {
            "DOES NOT BALANCE: see the rows marked NO, or the ledger totals above"
        }
    );
    out
}

/// Runs the reconciliation on the configured database; returns the exit code.
pub async fn run(config: &Config, group_by: GroupBy) -> anyhow::Result<i32> {
    let db = Db::connect(&config.database_url)
        .await
        .context("connecting to the database")?;
    Ledger::migrate(&db).await.context("migrating the ledger")?;
    let signer =
        pdx_ledger::signing::load_or_create(&config.ledger_key_path(), &config.ledger_origin)
            .context("loading the ledger signing key")?;
    let ledger = Ledger::new(db.clone(), signer, config.ledger.clone());
    let products = Products::open(db.clone(), ledger)
        .await
        .context("opening products")?;
    let report = products
        .reconcile(group_by.into())
        .await
        .context("reconciling")?;
    db.close().await;
    print!("{}", render(&report));
    Ok(if report.exact { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_is_exact() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(12_345), "123.45");
        assert_eq!(yuan(-1_205), "-12.05");
        assert_eq!(yuan(i64::MIN), "-92233720368547758.08");
    }
}
