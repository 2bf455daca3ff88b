//! Baselines and inputs for `pdx bench sandbox`: a generated table, the same queries on
//! raw DataFusion, and plain polars aggregations. They live here so that the binary
//! needs no heavy dependency of its own.

use std::path::Path;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use polars::prelude::*;

use crate::deid::schema::{ColumnRole, ColumnSpec, ColumnType, DeidRule, Domain};
use crate::disclosure::{RecordSet, TrackedSet};

/// Regions in the generated table (`R00`…).
pub const REGIONS: usize = 30;
/// Sectors in the generated table (`S00`…).
pub const SECTORS: usize = 20;

/// The five aggregate queries of the sandbox-overhead benchmark, over table `data`.
pub const GENERATED_QUERIES: [&str; 5] = [
    "SELECT region, COUNT(*) AS n, SUM(amount) AS total FROM data GROUP BY region",
    "SELECT region, sector, AVG(amount) AS mean_amount FROM data GROUP BY region, sector",
    "SELECT year, SUM(units) AS units FROM data WHERE amount > 100 GROUP BY year",
    "SELECT sector, COUNT(*) AS n, AVG(units) AS mean_units FROM data GROUP BY sector HAVING COUNT(*) > 100",
    "SELECT COUNT(*) AS n, SUM(amount) AS total, AVG(units) AS mean_units FROM data",
];

/// Benchmark failures (the bench binary reports them as they are).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// polars failed.
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
    /// DataFusion failed.
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// File-system failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The generator behind the table: one xorshift draw per row.
fn generator() -> impl FnMut() -> u64 {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Years in the generated table (2015…).
const YEARS: u64 = 10;

/// Writes `rows` deterministic rows (region, sector, year, amount, units) as Parquet.
pub fn write_generated(rows: usize, path: &Path) -> Result<(), BenchError> {
    let mut next = generator();
    let mut region = Vec::with_capacity(rows);
    let mut sector = Vec::with_capacity(rows);
    let mut year = Vec::with_capacity(rows);
    let mut amount = Vec::with_capacity(rows);
    let mut units = Vec::with_capacity(rows);
    let region_names: Vec<String> = (0..REGIONS).map(|i| format!("R{i:02}")).collect();
    let sector_names: Vec<String> = (0..SECTORS).map(|i| format!("S{i:02}")).collect();
    for _ in 0..rows {
        let r = next();
        region.push(region_names[(r % REGIONS as u64) as usize].as_str());
        sector.push(sector_names[((r >> 8) % SECTORS as u64) as usize].as_str());
        year.push(2015 + ((r >> 16) % YEARS) as i64);
        amount.push(((r >> 24) % 100_000) as f64 / 100.0);
        units.push(((r >> 44) % 1000) as i64);
    }
    let mut frame = DataFrame::new(vec![
        Column::new("region".into(), region),
        Column::new("sector".into(), sector),
        Column::new("year".into(), year),
        Column::new("amount".into(), amount),
        Column::new("units".into(), units),
    ])?;
    let file = std::fs::File::create(path)?;
    ParquetWriter::new(file).finish(&mut frame)?;
    Ok(())
}

/// Record sets of `outputs` earlier outputs on the generated table of `rows` rows, as
/// narrow selections a developer might have run: each output is one set, the rows of
/// one year, one to three sectors and one to ten regions (chosen by a fixed generator),
/// so sizes vary from about 1/6,000 to 1/200 of the table and rows are scattered.
pub fn generated_record_sets(rows: usize, outputs: usize) -> Vec<TrackedSet> {
    let cells = REGIONS * SECTORS * YEARS as usize;
    let mut ordinals: Vec<Vec<u32>> = vec![Vec::new(); cells];
    let mut next = generator();
    for ordinal in 0..rows {
        let r = next();
        let region = (r % REGIONS as u64) as usize;
        let sector = ((r >> 8) % SECTORS as u64) as usize;
        let year = ((r >> 16) % YEARS) as usize;
        let cell = (year * SECTORS + sector) * REGIONS + region;
        ordinals[cell].push(u32::try_from(ordinal).unwrap_or(u32::MAX));
    }
    let mut choose = generator();
    (0..outputs)
        .map(|_| {
            let pick = choose();
            let year = (pick % YEARS) as usize;
            let sectors = 1 + ((pick >> 8) % 3) as usize;
            let regions = 1 + ((pick >> 16) % 10) as usize;
            let first_sector = ((pick >> 24) % SECTORS as u64) as usize;
            let first_region = ((pick >> 32) % REGIONS as u64) as usize;
            let mut set = RecordSet::default();
            for s in 0..sectors {
                for g in 0..regions {
                    let sector = (first_sector + s) % SECTORS;
                    let region = (first_region + g) % REGIONS;
                    let cell = (year * SECTORS + sector) * REGIONS + region;
                    set.union_with(&RecordSet::from_ordinals(ordinals[cell].iter().copied()));
                }
            }
            set.optimize();
            TrackedSet {
                set,
                selection: format!("earlier output {pick:x}"),
            }
        })
        .collect()
}

/// The catalog description of the generated table (domains drive DP clipping).
pub fn generated_columns() -> Vec<ColumnSpec> {
    let categories = |prefix: &str, n: usize| Domain::Categories {
        values: (0..n).map(|i| format!("{prefix}{i:02}")).collect(),
    };
    let col = |name: &str, column_type, domain| ColumnSpec {
        name: name.into(),
        column_type,
        role: ColumnRole::Other,
        rule: DeidRule::Keep,
        domain: Some(domain),
        nullable: false,
    };
    vec![
        col("region", ColumnType::String, categories("R", REGIONS)),
        col("sector", ColumnType::String, categories("S", SECTORS)),
        col(
            "year",
            ColumnType::Integer,
            Domain::Range {
                min: 2015.0,
                max: 2024.0,
            },
        ),
        col(
            "amount",
            ColumnType::Float,
            Domain::Range {
                min: 0.0,
                max: 1000.0,
            },
        ),
        col(
            "units",
            ColumnType::Integer,
            Domain::Range {
                min: 0.0,
                max: 999.0,
            },
        ),
    ]
}

/// A lazy scan of a Parquet file.
pub fn scan_parquet(path: &Path) -> Result<LazyFrame, BenchError> {
    Ok(LazyFrame::scan_parquet(
        PlPath::new(&path.to_string_lossy()),
        ScanArgsParquet::default(),
    )?)
}

/// The baseline: `sql` on a default DataFusion context with the file registered as
/// `table`; returns the number of output rows.
pub async fn raw_datafusion(path: &Path, table: &str, sql: &str) -> Result<usize, BenchError> {
    let ctx = SessionContext::new();
    ctx.register_parquet(
        table,
        path.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await?;
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

/// The baseline of a DP mean: `value`'s mean by `key` in plain polars; returns groups.
pub fn plain_group_mean(path: &Path, key: &str, value: &str) -> Result<usize, BenchError> {
    let frame = scan_parquet(path)?
        .group_by([col(key)])
        .agg([col(value).mean()])
        .collect()?;
    Ok(frame.height())
}
