//! Disclosure control of SQL outputs: plan refusals, threshold, dominance, rounding and
//! the report, on a generated 200-person Parquet fixture.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use pdx_algorithms::disclosure::{
    CheckedOutput, DisclosureError, DisclosureRules, Rule, analyse_plan, check_and_run, shadow_plan,
};
use pdx_algorithms::sql::{SqlLimits, SqlSandbox, TableGrant};
use tempfile::TempDir;

/// The region with only three people.
const SMALL_REGION: &str = "isle";
/// The person whose income dominates the (west, M) group.
const DOMINANT_ID: i64 = 7;
/// Their income.
const DOMINANT_INCOME: i64 = 50_000_000;
/// The incomes in the small region (their sum, 666 666, must never be released).
const SMALL_INCOMES: [i64; 3] = [111_111, 222_222, 333_333];

/// One generated person.
#[derive(Debug, Clone)]
struct Person {
    id: i64,
    region: &'static str,
    sex: &'static str,
    income: i64,
}

/// 197 people in four large regions and 3 in [`SMALL_REGION`]; person [`DOMINANT_ID`]
/// (west, M) earns far more than everyone else.
fn people() -> Vec<Person> {
    const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
    let mut out = Vec::new();
    for id in 1..=197i64 {
        let region = REGIONS[(id % 4) as usize];
        let sex = if id % 3 == 0 { "F" } else { "M" };
        let income = if id == DOMINANT_ID {
            DOMINANT_INCOME
        } else {
            20_000 + (id * 7_919) % 40_000
        };
        out.push(Person {
            id,
            region,
            sex,
            income,
        });
    }
    for (k, income) in SMALL_INCOMES.iter().enumerate() {
        let id = 198 + k as i64;
        out.push(Person {
            id,
            region: SMALL_REGION,
            sex: if k == 0 { "F" } else { "M" },
            income: *income,
        });
    }
    out
}

/// A fixture: the Parquet file in a temporary directory and a sandbox granting it.
pub(crate) struct Fixture {
    _dir: TempDir,
    pub(crate) sandbox: SqlSandbox,
    people: Vec<Person>,
}

pub(crate) async fn fixture() -> Fixture {
    let people = people();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("people.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new("income", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            people.iter().map(|p| p.id).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            people.iter().map(|p| p.region).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            people.iter().map(|p| p.sex).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            people.iter().map(|p| p.income).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch");
    let file = File::create(&path).expect("create parquet");
    let mut writer = ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");

    let grant = TableGrant {
        name: "people".to_owned(),
        path,
        columns: ["id", "region", "sex", "income"]
            .map(str::to_owned)
            .to_vec(),
        at_rest: pdx_seal::AtRest::Plain,
    };
    let sandbox = SqlSandbox::new(&[grant], SqlLimits::default())
        .await
        .expect("sandbox");
    Fixture {
        _dir: dir,
        sandbox,
        people,
    }
}

impl Fixture {
    /// The fixture's Parquet file (table `people`).
    pub(crate) fn path(&self) -> std::path::PathBuf {
        self._dir.path().join("people.parquet")
    }

    pub(crate) async fn run(&self, sql: &str, rules: &DisclosureRules) -> CheckedOutput {
        match check_and_run(&self.sandbox, sql, rules).await {
            Ok(out) => out,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    pub(crate) async fn refuse(&self, sql: &str) -> DisclosureError {
        match check_and_run(&self.sandbox, sql, &DisclosureRules::default()).await {
            Ok(out) => panic!("{sql} was not refused: {:?}", out.report),
            Err(e) => e,
        }
    }

    /// `(region, sex) → (count, sum of income)`, computed from the generated people.
    pub(crate) fn by_region_sex(&self) -> BTreeMap<(String, String), (i64, i64)> {
        let mut groups: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
        for p in &self.people {
            let entry = groups
                .entry((p.region.to_owned(), p.sex.to_owned()))
                .or_default();
            entry.0 += 1;
            entry.1 += p.income;
        }
        groups
    }

    /// Records per key, the key computed from each person's region, sex and income.
    pub(crate) fn counts_by(
        &self,
        key: impl Fn(&str, &str, i64) -> Vec<String>,
    ) -> BTreeMap<Vec<String>, i64> {
        let mut counts: BTreeMap<Vec<String>, i64> = BTreeMap::new();
        for p in &self.people {
            *counts.entry(key(p.region, p.sex, p.income)).or_default() += 1;
        }
        counts
    }

    /// `region → (count, sum of income)`.
    pub(crate) fn by_region(&self) -> BTreeMap<String, (i64, i64)> {
        let mut groups: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for p in &self.people {
            let entry = groups.entry(p.region.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += p.income;
        }
        groups
    }
}

/// Column `name` of the output as strings (NULL as `None`).
pub(crate) fn strings(out: &CheckedOutput, name: &str) -> Vec<Option<String>> {
    let mut values = Vec::new();
    for batch in &out.output.batches {
        let column = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        let column = cast(column, &DataType::Utf8).expect("cast to Utf8");
        values.extend(
            column
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_owned)),
        );
    }
    values
}

/// Column `name` of the output as integers (NULL as `None`).
pub(crate) fn ints(out: &CheckedOutput, name: &str) -> Vec<Option<i64>> {
    let mut values = Vec::new();
    for batch in &out.output.batches {
        let column = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        let column = cast(column, &DataType::Int64).expect("cast to Int64");
        values.extend(column.as_primitive::<Int64Type>().iter());
    }
    values
}

pub(crate) fn floats(out: &CheckedOutput, name: &str) -> Vec<Option<f64>> {
    let mut values = Vec::new();
    for batch in &out.output.batches {
        let column = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        let column = cast(column, &DataType::Float64).expect("cast to Float64");
        values.extend(
            column
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .iter(),
        );
    }
    values
}

#[tokio::test]
async fn row_level_queries_are_refused() {
    let f = fixture().await;
    for sql in [
        "SELECT id, income FROM people",
        "SELECT * FROM people WHERE income > 0",
        "SELECT DISTINCT region FROM people",
        "SELECT region, sum(income) OVER (PARTITION BY region) FROM people",
        "SELECT region, n FROM (SELECT region, count(*) AS n FROM people GROUP BY region) t \
         UNION ALL SELECT region, income FROM people",
    ] {
        let e = f.refuse(sql).await;
        assert!(e.is_client_error(), "{sql}: {e}");
        assert!(
            matches!(
                e,
                DisclosureError::RowLevel(_) | DisclosureError::Operator(_)
            ),
            "{sql}: unexpected {e:?}"
        );
    }
    let plan = f
        .sandbox
        .plan("SELECT income FROM people")
        .await
        .expect("plan");
    assert!(matches!(
        analyse_plan(&plan),
        Err(DisclosureError::RowLevel(_))
    ));
}

#[tokio::test]
async fn disallowed_aggregates_are_refused_also_in_subqueries() {
    let f = fixture().await;
    let functions = [
        "min(income)",
        "max(income)",
        "string_agg(region, ',')",
        "array_agg(income)",
        "first_value(income ORDER BY id)",
        "last_value(income ORDER BY id)",
        "median(income)",
        "stddev(income)",
        "bool_and(income > 0)",
    ];
    for function in functions {
        let top = format!("SELECT region, {function} FROM people GROUP BY region");
        let nested = format!(
            "SELECT count(*) FROM (SELECT region, {function} AS v FROM people GROUP BY region) t WHERE v IS NOT NULL"
        );
        let scalar = format!(
            "SELECT count(*) FROM people WHERE (SELECT {function} FROM people) IS NOT NULL"
        );
        for sql in [top, nested, scalar] {
            let e = f.refuse(&sql).await;
            assert!(
                matches!(e, DisclosureError::DisallowedAggregate(_)),
                "{sql}: unexpected {e:?}"
            );
            assert!(e.is_client_error());
        }
    }
    let e = f.refuse("SELECT sum(DISTINCT income) FROM people").await;
    assert!(matches!(e, DisclosureError::DistinctMagnitude(_)), "{e:?}");
    let e = f
        .refuse(
            "SELECT count(*) FROM (SELECT region, sex, count(*) AS n FROM people \
             GROUP BY ROLLUP(region, sex)) t",
        )
        .await;
    assert!(matches!(e, DisclosureError::GroupingSets), "{e:?}");
}

#[tokio::test]
async fn value_copying_and_record_repeating_plans_are_refused() {
    let f = fixture().await;
    let e = f.refuse("SELECT sum(x) FROM (SELECT (SELECT income FROM people WHERE id = 7) AS x FROM people) t").await;
    assert!(matches!(e, DisclosureError::Subquery), "{e:?}");
    let e = f
        .refuse(
            "SELECT count(*) FROM people WHERE id IN (SELECT id FROM people WHERE income > 100)",
        )
        .await;
    assert!(matches!(e, DisclosureError::Subquery), "{e:?}");
    let e = f.refuse("SELECT sum(p.income) FROM people p JOIN people q ON p.region = q.region WHERE p.id = 7").await;
    assert!(matches!(e, DisclosureError::Operator(_)), "{e:?}");
    let e = f
        .refuse(
            "SELECT sum(income) FROM (SELECT income FROM people WHERE id = 7 UNION ALL \
             SELECT income FROM people WHERE id = 7) t",
        )
        .await;
    assert!(matches!(e, DisclosureError::Operator(_)), "{e:?}");
    let e = f.refuse("SELECT count(*) AS __pdx_keep FROM people").await;
    assert!(matches!(e, DisclosureError::ReservedName(_)), "{e:?}");
}

#[tokio::test]
async fn group_by_unique_id_suppresses_every_cell() {
    let f = fixture().await;
    let out = f
        .run(
            "SELECT id, count(*) AS n, sum(income) AS s FROM people GROUP BY id",
            &DisclosureRules::default(),
        )
        .await;
    assert_eq!(out.output.rows, 0);
    assert!(out.output.batches.iter().all(|b| b.num_rows() == 0));
    assert_eq!(out.report.cells_total, 200);
    assert_eq!(out.report.cells_suppressed, 200);
    let removed = out
        .report
        .hits
        .iter()
        .filter(|h| h.rule == Rule::Threshold && h.released_row.is_none())
        .count();
    assert_eq!(removed, 200);
    assert!(!out.report.passed.iter().any(|p| p.starts_with("threshold")));
    // The output schema is the query's, without shadow columns.
    let names: Vec<&str> = out
        .output
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", "n", "s"]);
}

#[tokio::test]
async fn targeted_queries_are_suppressed() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    for sql in [
        "SELECT count(*) FROM people WHERE id = 42",
        "SELECT sum(income) AS s FROM people WHERE id = 42",
        "SELECT avg(income) FROM people WHERE id BETWEEN 40 AND 45",
    ] {
        let out = f.run(sql, &rules).await;
        assert_eq!(out.output.rows, 0, "{sql}");
        assert_eq!(out.report.cells_total, 1, "{sql}");
        assert_eq!(out.report.cells_suppressed, 1, "{sql}");
    }
    // One person hidden in a whole-table count: the group passes, the value does not.
    let out = f
        .run("SELECT count(*) AS everyone, count(CASE WHEN id = 42 THEN 1 END) AS target FROM people", &rules)
        .await;
    assert_eq!(ints(&out, "everyone"), [Some(200)]);
    assert_eq!(ints(&out, "target"), [None]);
    assert_eq!(out.report.values_suppressed, 1);
    let hit = out
        .report
        .hits
        .iter()
        .find(|h| h.column.as_deref() == Some("target"))
        .expect("hit on target");
    assert_eq!(hit.rule, Rule::Threshold);
    assert_eq!(hit.released_row, Some(0));
    // Zero-padding a single income, and a sum over per-person sums: neither argument is
    // a plain measure (plan rule 7), so both are refused before anything runs.
    for sql in [
        "SELECT sum(CASE WHEN id = 42 THEN income ELSE 0 END) AS s FROM people",
        "SELECT sum(s) FROM (SELECT id, sum(income) AS s FROM people WHERE id < 5 GROUP BY id) t",
    ] {
        let e = f.refuse(sql).await;
        assert!(matches!(e, DisclosureError::Measure(_)), "{sql}: {e:?}");
    }
}

#[tokio::test]
async fn threshold_removes_exactly_the_small_groups() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    let out = f
        .run("SELECT region, sex, count(*) AS n FROM people GROUP BY region, sex ORDER BY region, sex", &rules)
        .await;
    let expected: BTreeMap<(String, String), i64> = f
        .by_region_sex()
        .into_iter()
        .filter(|(_, (n, _))| *n >= 10)
        .map(|(k, (n, _))| (k, n))
        .collect();
    let small = f.by_region_sex().values().filter(|(n, _)| *n < 10).count();
    assert!(small >= 2, "the fixture must have small groups");
    let regions = strings(&out, "region");
    let sexes = strings(&out, "sex");
    let counts = ints(&out, "n");
    let mut got = BTreeMap::new();
    for ((r, s), n) in regions.into_iter().zip(sexes).zip(counts) {
        got.insert((r.expect("region"), s.expect("sex")), n.expect("count"));
    }
    assert_eq!(got, expected);
    assert_eq!(out.output.rows, expected.len());
    assert_eq!(out.report.cells_total, expected.len() + small);
    assert_eq!(out.report.cells_suppressed, small);
    // ORDER BY is kept among released rows.
    let keys: Vec<(String, String)> = got.keys().cloned().collect();
    let ordered: Vec<(String, String)> = strings(&out, "region")
        .into_iter()
        .zip(strings(&out, "sex"))
        .map(|(r, s)| (r.unwrap_or_default(), s.unwrap_or_default()))
        .collect();
    assert_eq!(ordered, keys);
    // Removed groups come after every released one.
    for hit in &out.report.hits {
        assert!(hit.row >= expected.len());
    }

    // A LIMIT after ORDER BY is filled with released groups first.
    let out = f
        .run(
            "SELECT region, count(*) AS n FROM people GROUP BY region ORDER BY n ASC LIMIT 2",
            &rules,
        )
        .await;
    let mut sizes: Vec<(i64, String)> = f
        .by_region()
        .into_iter()
        .filter(|(_, (n, _))| *n >= 10)
        .map(|(r, (n, _))| (n, r))
        .collect();
    sizes.sort();
    assert_eq!(
        ints(&out, "n"),
        sizes
            .iter()
            .take(2)
            .map(|(n, _)| Some(*n))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn dominance_nulls_only_the_dominated_sum() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    let out = f
        .run(
            "SELECT region, sex, count(*) AS n, sum(income) AS total, avg(income) AS mean \
             FROM people GROUP BY region, sex ORDER BY region, sex",
            &rules,
        )
        .await;
    let expected = f.by_region_sex();
    let regions = strings(&out, "region");
    let sexes = strings(&out, "sex");
    let counts = ints(&out, "n");
    let totals = ints(&out, "total");
    let means = floats(&out, "mean");
    let mut dominated_rows = Vec::new();
    for (i, (r, s)) in regions.iter().zip(&sexes).enumerate() {
        let key = (r.clone().expect("region"), s.clone().expect("sex"));
        let (n, sum) = expected[&key];
        assert_eq!(counts[i], Some(n), "{key:?}");
        if key == ("west".to_owned(), "M".to_owned()) {
            assert_eq!(totals[i], None, "the dominated sum is released");
            assert_eq!(means[i], None, "the dominated mean is released");
            dominated_rows.push(i);
        } else {
            assert_eq!(totals[i], Some(sum), "{key:?}");
            let mean = means[i].expect("mean");
            assert!((mean - sum as f64 / n as f64).abs() < 1e-6, "{key:?}");
        }
    }
    assert_eq!(dominated_rows.len(), 1);
    let dominance: Vec<_> = out
        .report
        .hits
        .iter()
        .filter(|h| h.rule == Rule::Dominance)
        .collect();
    assert_eq!(dominance.len(), 2, "{dominance:?}");
    let mut columns: Vec<_> = dominance.iter().filter_map(|h| h.column.clone()).collect();
    columns.sort();
    assert_eq!(columns, ["mean", "total"]);
    assert!(
        dominance
            .iter()
            .all(|h| h.released_row == Some(dominated_rows[0]))
    );
    assert_eq!(out.report.values_suppressed, 2);

    // HAVING sees the dominated sum as NULL, so it cannot probe it: west (whose true sum
    // is above 50 000 000) is dropped by both predicates.
    let out = f
        .run("SELECT region, count(*) AS n FROM people GROUP BY region HAVING sum(income) > 50000000", &rules)
        .await;
    assert_eq!(out.output.rows, 0);
    let out = f
        .run(
            "SELECT region, count(*) AS n FROM people GROUP BY region HAVING sum(income) <= 50000000 ORDER BY region",
            &rules,
        )
        .await;
    assert_eq!(
        strings(&out, "region"),
        [
            Some("east".to_owned()),
            Some("north".to_owned()),
            Some("south".to_owned())
        ]
    );

    // With n = 1 and p = 95 the dominant person alone still dominates …
    let west_m: Vec<i64> = f
        .people
        .iter()
        .filter(|p| p.region == "west" && p.sex == "M")
        .map(|p| p.income)
        .collect();
    assert!(DOMINANT_INCOME as f64 > 0.95 * west_m.iter().sum::<i64>() as f64);
    let strict = DisclosureRules {
        dominance_n: 1,
        dominance_p_percent: 95,
        ..DisclosureRules::default()
    };
    let out = f
        .run(
            "SELECT sum(income) AS total FROM people WHERE region = 'west' AND sex = 'M'",
            &strict,
        )
        .await;
    assert_eq!(ints(&out, "total"), [None]);
    // … and without them the group passes.
    let out = f
        .run(
            &format!("SELECT sum(income) AS total FROM people WHERE region = 'west' AND sex = 'M' AND id <> {DOMINANT_ID}"),
            &rules,
        )
        .await;
    let sum: i64 = f
        .people
        .iter()
        .filter(|p| p.region == "west" && p.sex == "M" && p.id != DOMINANT_ID)
        .map(|p| p.income)
        .sum();
    assert_eq!(ints(&out, "total"), [Some(sum)]);
    assert!(
        out.report
            .passed
            .iter()
            .any(|p| p == "dominance(n=2,p=85%)"),
        "{:?}",
        out.report.passed
    );
}

#[tokio::test]
async fn rounding_to_base_five_gives_multiples_of_five() {
    let f = fixture().await;
    let rules = DisclosureRules {
        rounding_base: Some(5),
        ..DisclosureRules::default()
    };
    let out = f
        .run(
            "SELECT region, count(*) AS n, sum(income) AS total, count(*) * 1 + 0 AS n_again, avg(income) AS mean \
             FROM people GROUP BY region",
            &rules,
        )
        .await;
    let expected = f.by_region();
    let regions = strings(&out, "region");
    let counts = ints(&out, "n");
    let again = ints(&out, "n_again");
    let totals = ints(&out, "total");
    let means = floats(&out, "mean");
    assert_eq!(regions.len(), 4, "every large region is released");
    let mut any_changed = false;
    for (i, region) in regions.iter().enumerate() {
        let (n, sum) = expected[region.as_deref().expect("region")];
        let rn = counts[i].expect("count");
        assert_eq!(rn % 5, 0);
        assert!((rn - n).abs() <= 2);
        assert_eq!(
            again[i],
            Some(rn),
            "a derived column must not undo the rounding"
        );
        any_changed |= rn != n;
        if region.as_deref() == Some("west") {
            assert_eq!(totals[i], None, "west is dominated");
            continue;
        }
        let rt = totals[i].expect("total");
        assert_eq!(rt % 5, 0);
        assert!((rt - sum).abs() <= 2);
        let mean = means[i].expect("mean");
        assert!(
            (mean - rt as f64 / rn as f64).abs() < 1e-6,
            "mean from rounded parts"
        );
    }
    assert!(
        any_changed,
        "the fixture should have a count that is not a multiple of 5"
    );
    assert!(
        out.report
            .hits
            .iter()
            .any(|h| h.rule == Rule::Rounded && h.column.as_deref() == Some("n"))
    );
}

#[tokio::test]
async fn report_lists_each_hit_and_no_suppressed_value() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    let out = f
        .run(
            "SELECT region, count(*) AS n, sum(income) AS total FROM people GROUP BY region ORDER BY region",
            &rules,
        )
        .await;
    let report = &out.report;
    // isle is removed (3 people), west's total is dominated.
    assert_eq!(report.cells_total, 5);
    assert_eq!(report.cells_suppressed, 1);
    assert_eq!(report.values_suppressed, 1);
    assert_eq!(report.hits.len(), 2, "{:?}", report.hits);
    let removed = report
        .hits
        .iter()
        .find(|h| h.released_row.is_none())
        .expect("removed row");
    assert_eq!(
        (removed.rule, removed.column.as_deref(), removed.row),
        (Rule::Threshold, None, 4)
    );
    let dominated = report
        .hits
        .iter()
        .find(|h| h.rule == Rule::Dominance)
        .expect("dominance hit");
    assert_eq!(dominated.column.as_deref(), Some("total"));
    let released_regions = strings(&out, "region");
    let row = dominated.released_row.expect("released");
    assert_eq!(released_regions[row].as_deref(), Some("west"));
    assert!(report.passed.iter().any(|p| p == "aggregate_only"));
    assert!(report.passed.iter().any(|p| p == "allowed_aggregates"));
    assert!(
        !report
            .passed
            .iter()
            .any(|p| p.starts_with("threshold") || p.starts_with("dominance"))
    );

    let json = serde_json::to_string(report).expect("json");
    let by_region = f.by_region();
    let (isle_n, isle_sum) = by_region[SMALL_REGION];
    let (_, west_sum) = by_region["west"];
    for secret in [
        isle_sum.to_string(),
        west_sum.to_string(),
        DOMINANT_INCOME.to_string(),
        SMALL_REGION.to_owned(),
    ] {
        assert!(!json.contains(&secret), "{secret} leaked into {json}");
    }
    for hit in &report.hits {
        assert!(
            !hit.detail
                .split(|c: char| !c.is_ascii_digit())
                .any(|w| w == isle_n.to_string()),
            "the small count leaked: {}",
            hit.detail
        );
    }
    // The released output does not hold them either.
    assert!(
        !released_regions
            .iter()
            .any(|r| r.as_deref() == Some(SMALL_REGION))
    );
    assert!(!ints(&out, "total").contains(&Some(west_sum)));
    // And the report round-trips.
    let back: pdx_algorithms::disclosure::CheckReport = serde_json::from_str(&json).expect("parse");
    assert_eq!(&back, report);
}

#[tokio::test]
async fn contributor_column_counts_entities() {
    let f = fixture().await;
    // Regions as the contributing entity: each sex spans only five of them.
    let rules = DisclosureRules {
        contributor_column: Some("region".to_owned()),
        ..DisclosureRules::default()
    };
    let out = f
        .run("SELECT sex, count(*) AS n FROM people GROUP BY sex", &rules)
        .await;
    assert_eq!(out.output.rows, 0);
    assert_eq!(out.report.cells_suppressed, 2);
    // Per-person contributors behave like records for unique ids.
    let rules = DisclosureRules {
        contributor_column: Some("id".to_owned()),
        ..DisclosureRules::default()
    };
    let out = f
        .run(
            "SELECT region, sum(income) AS total FROM people GROUP BY region ORDER BY region",
            &rules,
        )
        .await;
    let regions = strings(&out, "region");
    let totals = ints(&out, "total");
    for (r, t) in regions.iter().zip(&totals) {
        assert_eq!(t.is_none(), r.as_deref() == Some("west"), "{r:?}");
    }
    // The contributor column must reach the aggregate.
    let e = check_and_run(
        &f.sandbox,
        "SELECT count(*) FROM (SELECT region FROM people) t",
        &rules,
    )
    .await
    .expect_err("id was projected away");
    assert!(matches!(e, DisclosureError::ContributorColumn(_)), "{e:?}");
}

#[tokio::test]
async fn only_boolean_flags_leave_the_guard() {
    let f = fixture().await;
    let rules = DisclosureRules {
        rounding_base: Some(5),
        ..DisclosureRules::default()
    };
    let plan = f
        .sandbox
        .plan(
            "SELECT * FROM (SELECT region, count(*) AS n, avg(income) AS mean FROM people \
             GROUP BY region HAVING sum(income) > 0) t ORDER BY n DESC LIMIT 3",
        )
        .await
        .expect("plan");
    let shape = analyse_plan(&plan).expect("accepted");
    assert_eq!(shape.group_keys.len(), 1);
    assert_eq!(shape.aggregates.len(), 3, "{shape:?}");
    let shadowed = shadow_plan(&plan, &rules).expect("shadow plan");
    println!("{}", shadowed.display_indent());
    let raw = f.sandbox.run_plan(shadowed).await.expect("run");
    let fields = raw.schema.fields();
    assert_eq!(
        &fields[..3]
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        &["region", "n", "mean"]
    );
    for (i, field) in fields.iter().enumerate().skip(3) {
        assert!(field.name().starts_with("__pdx_"), "{field:?}");
        if field.name() == "__pdx_cell" {
            // The cell number the second stage fills in; nothing in a one-pass plan.
            assert_eq!(field.data_type(), &DataType::UInt64);
            assert!(
                raw.batches
                    .iter()
                    .all(|b| b.column(i).null_count() == b.num_rows())
            );
            continue;
        }
        assert_eq!(
            field.data_type(),
            &DataType::Boolean,
            "a shadow value leaves the guard: {field:?}"
        );
    }
    // LIMIT 3 after ORDER BY n DESC: the three largest released regions.
    let out = check_and_run(
        &f.sandbox,
        "SELECT region, count(*) AS n FROM people GROUP BY region ORDER BY n DESC LIMIT 3",
        &DisclosureRules::default(),
    )
    .await
    .expect("run");
    assert_eq!(out.output.rows, 3);
    assert!(out.report.hits.is_empty(), "{:?}", out.report.hits);
}
