//! SQL admission and the disclosure rewrite on arbitrary SQL text.
//!
//! The fixture grants two generated tables of [`ROWS`] rows in a [`SqlSandbox`]:
//! `people` (the columns of the disclosure tests: `id`, `name`, `region`, `sex`, `age`,
//! `income`, `score`, `born`) and `data` (the enterprise columns of the end-to-end
//! tests: `credit_code`, `district`, `industry`, `kwh_12m`), so that both suites'
//! queries are meaningful seeds. Every `name` and `credit_code` is a distinctive
//! string, so a message that carries one can be told apart.
//!
//! For any text, with the rules of a dataset on conditional data (strict: a threshold
//! above the row count; lenient: threshold 3, rounding to 5, public row counts):
//!
//! 1. planning, running it as on unconditionally open data, admission
//!    ([`check_query`]) and the checked run ([`check_and_run`]) return or fail; nothing
//!    panics;
//! 2. no error message and no check report carries a `name` or `credit_code` the query
//!    text does not itself contain (errors are sanitised, reports hold no data values);
//! 3. a query admitted by [`check_query`] is not refused by [`check_and_run`] for its
//!    shape (the plan rules are all checked at admission, before budget is spent);
//! 4. under the strict rules, an admitted query that reads a table releases no row:
//!    every cell has fewer records than the threshold;
//! 5. a checked output has no more rows than the cells the checks kept.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::parquet::arrow::ArrowWriter;

use super::{FixtureError, credit_code};
use crate::disclosure::{
    CheckedOutput, DisclosureError, DisclosureRules, check_and_run, check_query,
};
use crate::sql::{RecordBatch, SqlLimits, SqlSandbox, TableGrant};

/// Rows of each fixture table.
const ROWS: u64 = 40;
/// Regions of `people`.
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
/// Districts of `data`.
const DISTRICTS: [&str; 4] = ["Futian", "Luohu", "Nanshan", "Yantian"];
/// Industries of `data`.
const INDUSTRIES: [&str; 3] = ["software", "smelter", "retail"];
/// The person whose income dominates every group they are in.
const DOMINANT_ID: i64 = 7;

/// The granted tables, the two rule sets and the values no message may carry.
pub struct SqlFixture {
    sandbox: SqlSandbox,
    /// Threshold above the row count: nothing read from a table may leave.
    strict: DisclosureRules,
    /// Low threshold, rounding and public row counts: most paths of the checks run.
    lenient: DisclosureRules,
    /// Every `name` and `credit_code`, lower-cased.
    values: Vec<String>,
}

impl SqlFixture {
    /// Writes the two tables as Parquet files into `dir` and grants them in a sandbox
    /// with small limits (a wall-clock timeout of 10 s, 1,000 output rows).
    pub async fn new(dir: &Path) -> Result<SqlFixture, FixtureError> {
        let people = dir.join("people.parquet");
        let data = dir.join("data.parquet");
        write_parquet(&people, &people_batch()?)?;
        write_parquet(&data, &data_batch()?)?;
        let grants = [
            TableGrant {
                name: "people".to_owned(),
                path: people,
                columns: owned(&[
                    "id", "name", "region", "sex", "age", "income", "score", "born",
                ]),
                at_rest: pdx_seal::AtRest::Plain,
            },
            TableGrant {
                name: "data".to_owned(),
                path: data,
                columns: owned(&["credit_code", "district", "industry", "kwh_12m"]),
                at_rest: pdx_seal::AtRest::Plain,
            },
        ];
        let limits = SqlLimits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(10),
            max_output_rows: 1000,
            max_output_bytes: 4 << 20,
            target_partitions: 1,
        };
        let sandbox = SqlSandbox::new(&grants, limits).await?;
        let strict = DisclosureRules {
            threshold: ROWS + 1,
            ..DisclosureRules::default()
        };
        let lenient = DisclosureRules {
            threshold: 3,
            rounding_base: Some(5),
            public_rows: BTreeMap::from([("people".to_owned(), ROWS), ("data".to_owned(), ROWS)]),
            ..DisclosureRules::default()
        };
        let values = (1..=ROWS as i64)
            .flat_map(|i| [person_name(i), credit_code(i)])
            .map(|v| v.to_lowercase())
            .collect();
        Ok(SqlFixture {
            sandbox,
            strict,
            lenient,
            values,
        })
    }

    /// Panics when `text` carries a fixture value that `sql` does not contain.
    fn assert_no_data_in(&self, sql: &str, text: &str) {
        let sql = sql.to_lowercase();
        let text = text.to_lowercase();
        for value in &self.values {
            assert!(
                !text.contains(value.as_str()) || sql.contains(value.as_str()),
                "a message carries the data value {value}, which the query does not contain: {text}"
            );
        }
    }

    /// Properties 2, 4 and 5 of a checked output.
    fn check_released(&self, sql: &str, checked: &CheckedOutput, nothing_may_leave: bool) {
        let report = serde_json::to_string(&checked.report).unwrap_or_default();
        self.assert_no_data_in(sql, &report);
        let rows: usize = checked
            .output
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        let kept = checked
            .report
            .cells_total
            .saturating_sub(checked.report.cells_suppressed);
        assert!(
            rows <= kept,
            "{rows} rows were released from {kept} kept cells"
        );
        if nothing_may_leave {
            assert_eq!(
                rows, 0,
                "rows were released from a table with fewer rows than the threshold"
            );
        }
    }
}

/// Plans, runs, admits and runs checked one SQL text (see the module docs).
pub async fn sql_admission(fixture: &SqlFixture, data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let plan = match fixture.sandbox.plan(sql).await {
        Ok(plan) => plan,
        Err(e) => {
            fixture.assert_no_data_in(sql, &e.to_string());
            return;
        }
    };
    let reads = reads_a_table(&plan);
    // What a model on unconditionally open data does: the query as it is.
    if let Err(e) = fixture.sandbox.run(sql).await {
        fixture.assert_no_data_in(sql, &e.to_string());
    }
    for (rules, strict) in [(&fixture.strict, true), (&fixture.lenient, false)] {
        if let Err(e) = check_query(&fixture.sandbox, sql, rules).await {
            fixture.assert_no_data_in(sql, &e.to_string());
            continue;
        }
        match check_and_run(&fixture.sandbox, sql, rules).await {
            Ok(checked) => fixture.check_released(sql, &checked, strict && reads),
            Err(e) => {
                fixture.assert_no_data_in(sql, &e.to_string());
                assert!(
                    !refuses_the_shape(&e),
                    "check_query admitted a query that check_and_run refuses for its shape: {e}"
                );
            }
        }
    }
}

/// True for the refusals that depend on the query alone (the plan rules).
fn refuses_the_shape(e: &DisclosureError) -> bool {
    matches!(
        e,
        DisclosureError::RowLevel(_)
            | DisclosureError::DisallowedAggregate(_)
            | DisclosureError::DistinctMagnitude(_)
            | DisclosureError::GroupingSets
            | DisclosureError::Subquery
            | DisclosureError::Operator(_)
            | DisclosureError::Measure(_)
            | DisclosureError::GroupKey(_)
            | DisclosureError::DistinctCount(_)
            | DisclosureError::TooManySelections(_)
            | DisclosureError::Pattern(_)
            | DisclosureError::ReservedName(_)
            | DisclosureError::ContributorColumn(_)
    )
}

/// True when the plan scans a table anywhere (subqueries included), as opposed to
/// computing from literals only (`VALUES`).
fn reads_a_table(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let walked = plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::TableScan(_)) {
            found = true;
            Ok(TreeNodeRecursion::Stop)
        } else {
            Ok(TreeNodeRecursion::Continue)
        }
    });
    // A walk that fails cannot clear the table: count it as reading one.
    found || walked.is_err()
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// The value of `values` for row `i`, round robin.
fn cycle(values: &[&'static str], i: i64) -> &'static str {
    let len = values.len().max(1);
    values
        .get(usize::try_from(i).unwrap_or(0) % len)
        .copied()
        .unwrap_or_default()
}

fn person_name(id: i64) -> String {
    format!("zq-person-{id:02}")
}

/// `people`: ids 1 to [`ROWS`], four regions, a dominant income, fractional scores and
/// birth dates.
fn people_batch() -> Result<RecordBatch, FixtureError> {
    let ids: Vec<i64> = (1..=ROWS as i64).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new("age", DataType::Int64, false),
        Field::new("income", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
        Field::new("born", DataType::Date32, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from(
            ids.iter().map(|&i| person_name(i)).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            ids.iter().map(|&i| cycle(&REGIONS, i)).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|&i| if i % 3 == 0 { "F" } else { "M" })
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            ids.iter().map(|&i| 18 + (i * 13) % 60).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            ids.iter()
                .map(|&i| {
                    if i == DOMINANT_ID {
                        50_000_000
                    } else {
                        20_000 + (i * 7_919) % 40_000
                    }
                })
                .collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            ids.iter()
                .map(|&i| (i % 9 != 0).then_some(i as f64 * 1.5))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Date32Array::from(
            ids.iter()
                .map(|&i| (i % 11 != 0).then_some(3_650 + (i as i32) * 97))
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| FixtureError::Build(e.to_string()))
}

/// `data`: enterprises with unified social credit codes, districts, industries and a
/// year's electricity use.
fn data_batch() -> Result<RecordBatch, FixtureError> {
    let ids: Vec<i64> = (1..=ROWS as i64).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("credit_code", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("industry", DataType::Utf8, false),
        Field::new("kwh_12m", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            ids.iter().map(|&i| credit_code(i)).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|&i| cycle(&DISTRICTS, i))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|&i| cycle(&INDUSTRIES, i))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            ids.iter()
                .map(|&i| {
                    if i == 3 {
                        4_987_654_321
                    } else {
                        1_000_000 + i * 12_345
                    }
                })
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| FixtureError::Build(e.to_string()))
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), FixtureError> {
    let failed = |e: datafusion::parquet::errors::ParquetError| FixtureError::Build(e.to_string());
    let mut writer =
        ArrowWriter::try_new(File::create(path)?, batch.schema(), None).map_err(failed)?;
    writer.write(batch).map_err(failed)?;
    writer.close().map_err(failed)?;
    Ok(())
}
