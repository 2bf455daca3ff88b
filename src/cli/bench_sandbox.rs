//! `pdx bench sandbox`: sandboxed SQL jobs against raw DataFusion, and DP queries
//! against plain polars, on the same generated Parquet file in one run.
//!
//! | row | pdx | baseline |
//! |---|---|---|
//! | each of five aggregate queries | `SqlSandbox` (granted columns only, memory pool without spilling, timeout, output caps) plus automatic disclosure control (shadow aggregates, threshold and dominance rules, two stages), with record sets checked against 1,000 earlier outputs | the same without record sets (`check_and_run_untracked`), and a default DataFusion `SessionContext` with the file registered, `sql(q).collect()` |
//! | DP mean by group | restricted SQL → OpenDP `make_private_lazyframe` over polars, ε = 1 | the same group-by mean in plain polars |
//!
//! The earlier outputs are narrow selections of the same table
//! (`generated_record_sets`), held in memory: the bench measures the checks, not the
//! database. Runs alternate pdx and baselines so that machine noise hits all alike;
//! the table shows medians and their ratios, and the bytes of record sets an output
//! of each query stores (bitmaps and summaries).

use std::time::Instant;

use pdx_algorithms::bench::{
    GENERATED_QUERIES, REGIONS, generated_columns, generated_record_sets, plain_group_mean,
    raw_datafusion, scan_parquet, write_generated,
};
use pdx_algorithms::disclosure::{
    DisclosureRules, PriorsInMemory, check_and_run_after, check_and_run_untracked,
};
use pdx_algorithms::dp::{DpTable, plan as dp_plan, run as dp_run};
use pdx_algorithms::sql::{SqlLimits, SqlSandbox, TableGrant};

use super::bench::median;

/// Earlier outputs on the version whose record sets each query is checked against.
const EARLIER_OUTPUTS: usize = 1_000;

/// Runs the benchmark and prints a markdown table: every query (or only `query`, 1 to
/// 5), with the baselines unless `without_baselines` (then pdx alone, for a profiler).
pub async fn run(
    rows: usize,
    runs: usize,
    query: Option<u8>,
    without_baselines: bool,
) -> anyhow::Result<()> {
    let queries: Vec<&str> = GENERATED_QUERIES
        .iter()
        .enumerate()
        .filter(|(i, _)| query.is_none_or(|q| usize::from(q) == i + 1))
        .map(|(_, sql)| *sql)
        .collect();
    let per_query = if without_baselines { 1 } else { 3 };
    let dp_steps = if without_baselines { 0 } else { runs * 2 };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("generated.parquet");
    let bar = super::progress_bar(
        2 + (queries.len() * runs * per_query + dp_steps) as u64,
        "sandbox",
    );
    {
        let path = path.clone();
        tokio::task::spawn_blocking(move || write_generated(rows, &path)).await??;
    }
    bar.inc(1);
    let priors = tokio::task::spawn_blocking(move || {
        PriorsInMemory::with_nestings(generated_record_sets(rows, EARLIER_OUTPUTS))
    })
    .await?;
    bar.inc(1);

    // pdx reads the file as the server keeps it, sealed; the baselines read it plain.
    let kek = pdx_seal::Kek::from_bytes([9; 32]);
    let at_rest = pdx_seal::AtRest::sealed(pdx_seal::Keyring::create(
        &dir.path().join(pdx_seal::KEYRING_FILE_NAME),
        &kek,
    )?);
    let sealed = dir.path().join("generated.sealed.parquet");
    at_rest.store_file(&path, &sealed)?;
    let grant = TableGrant {
        name: "data".into(),
        path: sealed,
        columns: ["region", "sector", "year", "amount", "units"]
            .map(String::from)
            .to_vec(),
        at_rest,
    };
    let limits = SqlLimits {
        memory_bytes: 2 << 30,
        ..SqlLimits::default()
    };
    // As a run on conditional data: the certified row count is public.
    let rules = DisclosureRules {
        threshold: 10,
        dominance_n: 2,
        dominance_p_percent: 85,
        rounding_base: None,
        contributor_column: None,
        public_rows: [("data".to_owned(), rows as u64)].into(),
    };

    let mut table = Vec::new();
    for sql in queries {
        let (mut ours, mut untracked, mut base) = (Vec::new(), Vec::new(), Vec::new());
        let mut set_bytes = 0usize;
        for _ in 0..runs {
            let t = Instant::now();
            let sandbox = SqlSandbox::new(std::slice::from_ref(&grant), limits.clone()).await?;
            let checked = check_and_run_after(&sandbox, sql, &rules, &priors).await?;
            ours.push(t.elapsed());
            anyhow::ensure!(
                checked.output.rows > 0,
                "sandboxed query returned nothing: {sql}"
            );
            set_bytes = checked
                .record_sets
                .iter()
                .flat_map(|r| &r.sets)
                .map(|t| t.set.to_bytes().len() + t.set.summary().to_bytes().len())
                .sum();
            bar.inc(1);
            if without_baselines {
                continue;
            }

            let t = Instant::now();
            let sandbox = SqlSandbox::new(std::slice::from_ref(&grant), limits.clone()).await?;
            let checked = check_and_run_untracked(&sandbox, sql, &rules).await?;
            untracked.push(t.elapsed());
            anyhow::ensure!(
                checked.output.rows > 0,
                "sandboxed query returned nothing: {sql}"
            );
            bar.inc(1);

            let t = Instant::now();
            let raw_rows = raw_datafusion(&path, "data", sql).await?;
            base.push(t.elapsed());
            anyhow::ensure!(raw_rows > 0, "raw query returned nothing: {sql}");
            bar.inc(1);
        }
        table.push((
            sql,
            median(ours),
            median(untracked),
            median(base),
            set_bytes,
        ));
    }

    // DP: mean amount by region at ε = 1 against polars' own group-by mean.
    let dp_sql = "SELECT region, AVG(amount) AS mean_amount FROM data GROUP BY region";
    let dp_table_desc = DpTable::from_catalog("data", &generated_columns(), u32::try_from(rows)?);
    let (mut dp_ours, mut dp_base) = (Vec::new(), Vec::new());
    for _ in 0..dp_steps / 2 {
        let plan = dp_plan(dp_sql, &dp_table_desc, 1.0, 0.0)?;
        let scan = scan_parquet(&path)?;
        let t = Instant::now();
        let out = tokio::task::block_in_place(|| dp_run(&plan, scan))?;
        dp_ours.push(t.elapsed());
        anyhow::ensure!(out.frame.height() > 0, "DP query returned nothing");
        bar.inc(1);

        let t = Instant::now();
        let groups = tokio::task::block_in_place(|| plain_group_mean(&path, "region", "amount"))?;
        dp_base.push(t.elapsed());
        anyhow::ensure!(groups == REGIONS, "plain polars returned {groups} groups");
        bar.inc(1);
    }
    bar.finish_and_clear();
    if without_baselines {
        println!("{rows} rows, {runs} runs each, medians; pdx alone (no baselines).");
        println!();
        println!("| query | pdx (checks, record sets vs earlier outputs) | record sets stored |");
        println!("|---|---|---|");
        for (sql, ours, _, _, bytes) in &table {
            println!(
                "| `{sql}` | {:.1} ms | {:.1} KiB |",
                ours.as_secs_f64() * 1e3,
                *bytes as f64 / 1024.0
            );
        }
        return Ok(());
    }

    println!(
        "{rows} rows, {runs} runs each, medians; pdx and baselines alternate in one process; \
         {} earlier record sets.",
        priors.len()
    );
    println!();
    println!(
        "| query | pdx (checks, record sets vs earlier outputs) | pdx without record sets | \
         record-set ratio | record sets stored | raw DataFusion | ratio to raw |"
    );
    println!("|---|---|---|---|---|---|---|");
    let ratio = |a: f64, b: f64| a / b.max(1e-9);
    let (mut sum_ours, mut sum_untracked, mut sum_base) = (0.0, 0.0, 0.0);
    for (sql, o, u, b, bytes) in &table {
        let (o, u, b) = (o.as_secs_f64(), u.as_secs_f64(), b.as_secs_f64());
        sum_ours += o;
        sum_untracked += u;
        sum_base += b;
        println!(
            "| `{sql}` | {:.1} ms | {:.1} ms | {:.2}× | {:.1} KiB | {:.1} ms | {:.2}× |",
            o * 1e3,
            u * 1e3,
            ratio(o, u),
            *bytes as f64 / 1024.0,
            b * 1e3,
            ratio(o, b)
        );
    }
    println!(
        "| **all five** | {:.1} ms | {:.1} ms | **{:.2}×** | | {:.1} ms | **{:.2}×** |",
        sum_ours * 1e3,
        sum_untracked * 1e3,
        ratio(sum_ours, sum_untracked),
        sum_base * 1e3,
        ratio(sum_ours, sum_base)
    );
    println!();
    let (o, b) = (median(dp_ours), median(dp_base));
    println!("| DP query | pdx (OpenDP + polars, ε = 1) | plain polars | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| `{dp_sql}` | {:.1} ms | {:.1} ms | {:.2}× |",
        o.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        o.as_secs_f64() / b.as_secs_f64().max(1e-9)
    );
    Ok(())
}
