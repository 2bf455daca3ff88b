//! DP queries over the real PUMS sample (1,000 rows): utility within OpenDP's reported
//! bounds, accounting, refusals, user-level truncation and threshold release.
//!
//! The exact answers are computed here from the CSV with the `csv` crate, independently of
//! polars and of the crate under test.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pdx_algorithms::deid::schema::{ColumnRole, ColumnSpec, ColumnType, DeidRule, Domain};
use pdx_algorithms::dp::{self, DpError, DpTable};
use polars::prelude::*;

fn pums_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/pums")
}

/// One PUMS record (every field is an integer code in the CSV).
#[derive(Clone, Debug)]
struct Person {
    age: i64,
    sex: i64,
    educ: i64,
    race: i64,
    income: i64,
    married: i64,
}

fn people() -> Vec<Person> {
    let mut reader = csv::Reader::from_path(pums_dir().join("PUMS.csv")).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let f = |i: usize| r[i].trim().parse::<f64>().unwrap() as i64;
            Person {
                age: f(0),
                sex: f(1),
                educ: f(2),
                race: f(3),
                income: f(4),
                married: f(5),
            }
        })
        .collect()
}

/// The records as a polars frame with the CSV's own (integer) column types.
fn frame(people: &[Person]) -> DataFrame {
    let column = |name: &str, f: fn(&Person) -> i64| {
        Column::new(name.into(), people.iter().map(f).collect::<Vec<i64>>())
    };
    DataFrame::new(vec![
        column("age", |p| p.age),
        column("sex", |p| p.sex),
        column("educ", |p| p.educ),
        column("race", |p| p.race),
        column("income", |p| p.income),
        column("married", |p| p.married),
    ])
    .unwrap()
}

/// Numeric bounds and row count from PUMS.yaml (a minimal reader for its fixed layout).
fn yaml_bounds() -> (BTreeMap<String, (f64, f64)>, u32) {
    let text = std::fs::read_to_string(pums_dir().join("PUMS.yaml")).unwrap();
    let mut bounds = BTreeMap::new();
    let mut rows = 0;
    let mut current = String::new();
    let mut lower = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let line = line.trim();
        if let Some(v) = line.strip_prefix("rows:") {
            rows = v.trim().parse().unwrap();
        } else if indent == 6 && line.ends_with(':') {
            current = line.trim_end_matches(':').to_owned();
            lower = None;
        } else if let Some(v) = line.strip_prefix("lower:") {
            lower = Some(v.trim().parse::<f64>().unwrap());
        } else if let Some(v) = line.strip_prefix("upper:") {
            bounds.insert(
                current.clone(),
                (lower.unwrap(), v.trim().parse::<f64>().unwrap()),
            );
        }
    }
    (bounds, rows)
}

/// The catalog declaration of PUMS: ranges from PUMS.yaml, category codes from the PUMS
/// codebook (public knowledge, not read from the data).
fn pums_specs() -> Vec<ColumnSpec> {
    let (bounds, _) = yaml_bounds();
    let codes = |lo: i64, hi: i64| Domain::Categories {
        values: (lo..=hi).map(|v| v.to_string()).collect(),
    };
    let spec = |name: &str, column_type, domain| ColumnSpec {
        name: name.into(),
        column_type,
        role: ColumnRole::Other,
        rule: DeidRule::Keep,
        domain: Some(domain),
        nullable: false,
    };
    let range = |name: &str| {
        let (min, max) = bounds[name];
        Domain::Range { min, max }
    };
    vec![
        spec("age", ColumnType::Integer, range("age")),
        spec("sex", ColumnType::String, codes(0, 1)),
        spec("educ", ColumnType::String, codes(1, 16)),
        spec("race", ColumnType::String, codes(1, 6)),
        spec("income", ColumnType::Integer, range("income")),
        spec("married", ColumnType::String, codes(0, 1)),
    ]
}

fn pums_table() -> DpTable {
    let (_, rows) = yaml_bounds();
    DpTable::from_catalog("PUMS", &pums_specs(), rows)
}

fn by_sex<T: Copy + Default + std::ops::AddAssign>(
    people: &[Person],
    f: fn(&Person) -> T,
) -> BTreeMap<String, (T, usize)> {
    let mut out: BTreeMap<String, (T, usize)> = BTreeMap::new();
    for p in people {
        let e = out.entry(p.sex.to_string()).or_default();
        e.0 += f(p);
        e.1 += 1;
    }
    out
}

fn str_col<'a>(df: &'a DataFrame, name: &str) -> Vec<&'a str> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .into_iter()
        .map(|v| v.unwrap())
        .collect()
}

fn f64_col(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .into_iter()
        .collect()
}

fn bound(out: &dp::DpOutput, column: &str) -> f64 {
    out.accuracy
        .iter()
        .find(|a| a.column == column)
        .and_then(|a| a.bound)
        .unwrap()
}

#[test]
fn dp_table_from_catalog_reads_bounds_and_categories() {
    let table = pums_table();
    assert_eq!(table.max_rows, 1000);
    assert_eq!(
        table.column("income").unwrap().kind,
        dp::ColumnKind::Integer {
            bounds: Some((0, 500_000))
        }
    );
    assert_eq!(
        table.column("age").unwrap().kind,
        dp::ColumnKind::Integer {
            bounds: Some((0, 100))
        }
    );
    match &table.column("sex").unwrap().kind {
        dp::ColumnKind::Text {
            categories: Some(v),
        } => assert_eq!(v, &["0", "1"]),
        other => panic!("sex: {other:?}"),
    }
}

/// Acceptance: mean income by sex at epsilon = 1 is within OpenDP's reported 95% bound in
/// at least 95 of 100 runs.
#[test]
fn dp_mean_income_by_sex_within_reported_bound() {
    let people = people();
    let df = frame(&people);
    let exact: BTreeMap<String, f64> = by_sex(&people, |p| p.income.clamp(0, 500_000))
        .into_iter()
        .map(|(k, (sum, n))| (k, sum as f64 / n as f64))
        .collect();
    let plan = dp::plan(
        "SELECT sex, AVG(income) AS mean_income FROM PUMS GROUP BY sex",
        &pums_table(),
        1.0,
        0.0,
    )
    .unwrap();
    assert!(
        plan.epsilon_spent() <= 1.0 && plan.epsilon_spent() > 1.0 - 1e-6,
        "{}",
        plan.epsilon_spent()
    );
    assert_eq!(plan.delta_spent(), 0.0);
    let names: Vec<&str> = plan
        .output_columns()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["sex", "mean_income"]);

    let mut within = 0;
    let mut widest: f64 = 0.0;
    for _ in 0..100 {
        let out = dp::run(&plan, df.clone().lazy()).unwrap();
        assert_eq!(out.epsilon_spent, plan.epsilon_spent());
        let b = bound(&out, "mean_income");
        widest = widest.max(b);
        let sexes = str_col(&out.frame, "sex");
        let means = f64_col(&out.frame, "mean_income");
        assert_eq!(sexes, ["0", "1"]);
        let ok = sexes
            .iter()
            .zip(&means)
            .all(|(s, m)| m.is_some_and(|m| (m - exact[*s]).abs() <= b));
        within += usize::from(ok);
    }
    eprintln!(
        "mean income by sex, epsilon 1: {within}/100 runs within the reported bound (widest {widest:.0})"
    );
    assert!(within >= 95, "only {within}/100 runs within the bound");
    assert!(widest < 500_000.0);
}

#[test]
fn dp_count_by_sex_at_large_epsilon_is_close_and_spends_epsilon() {
    let people = people();
    let truth = by_sex(&people, |_| 0i64);
    let epsilon = 50.0;
    let plan = dp::plan(
        "SELECT sex, COUNT(*) AS n FROM PUMS GROUP BY sex",
        &pums_table(),
        epsilon,
        0.0,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pums.parquet");
    let mut df = frame(&people);
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut df)
        .unwrap();

    let out = dp::run_parquet(&plan, &path, &pdx_seal::AtRest::Plain).unwrap();
    assert!(
        out.epsilon_spent <= epsilon && out.epsilon_spent > epsilon * (1.0 - 1e-6),
        "{}",
        out.epsilon_spent
    );
    assert_eq!(out.delta_spent, 0.0);
    let b = bound(&out, "n");
    assert!(b < 1.0, "bound {b}");
    let sexes = str_col(&out.frame, "sex");
    let counts = f64_col(&out.frame, "n");
    assert_eq!(sexes, ["0", "1"]);
    for (s, n) in sexes.iter().zip(counts) {
        assert!(
            (n.unwrap() - truth[*s].1 as f64).abs() <= b.max(0.5),
            "{s}: {n:?}"
        );
    }
}

#[test]
fn dp_budget_is_split_evenly_across_aggregates() {
    let table = pums_table();
    let one = dp::plan("SELECT COUNT(*) FROM PUMS", &table, 1.0, 0.0).unwrap();
    let three = dp::plan(
        "SELECT married, COUNT(*), SUM(income), MEDIAN(age) FROM PUMS WHERE age >= 18 AND race IN ('1', '3') GROUP BY married",
        &table,
        1.0,
        0.0,
    )
    .unwrap();
    assert!(three.epsilon_spent() <= 1.0 && three.epsilon_spent() > 1.0 - 1e-6);
    // The count gets a third of the budget: three times the noise of a lone count.
    let scale = |p: &dp::DpPlan| p.noise_scales()[0].1;
    assert!(
        (scale(&three) / scale(&one) - 3.0).abs() < 1e-6,
        "{} vs {}",
        scale(&three),
        scale(&one)
    );

    let out = dp::run(&three, frame(&people()).lazy()).unwrap();
    let names: Vec<&str> = out
        .frame
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(
        names,
        ["married", "count", "sum_income", "quantile_age_0.5"]
    );
    assert_eq!(out.frame.height(), 2);
    let acc: Vec<(&str, bool)> = out
        .accuracy
        .iter()
        .map(|a| (a.column.as_str(), a.bound.is_some()))
        .collect();
    assert_eq!(
        acc,
        [
            ("count", true),
            ("sum_income", true),
            ("quantile_age_0.5", false)
        ]
    );
    let medians = f64_col(&out.frame, "quantile_age_0.5");
    assert!(
        medians
            .iter()
            .all(|m| m.is_some_and(|m| (0.0..=100.0).contains(&m)))
    );
}

#[test]
fn dp_refuses_outside_the_restricted_language() {
    let table = pums_table();
    let refused = |sql: &str| dp::plan(sql, &table, 1.0, 0.0).unwrap_err();
    type Expect = fn(&DpError) -> bool;
    let cases: Vec<(&str, Expect)> = vec![
        ("SELECT MIN(income) FROM PUMS", |e| {
            matches!(e, DpError::UnsupportedAggregate { .. })
        }),
        ("SELECT MAX(income) FROM PUMS", |e| {
            matches!(e, DpError::UnsupportedAggregate { .. })
        }),
        (
            "SELECT COUNT(*) FROM PUMS a JOIN PUMS b ON a.age = b.age",
            |e| matches!(e, DpError::Unsupported { .. }),
        ),
        ("SELECT COUNT(*) FROM PUMS, other", |e| {
            matches!(e, DpError::MultipleTables)
        }),
        ("SELECT COUNT(*) FROM (SELECT * FROM PUMS)", |e| {
            matches!(e, DpError::Unsupported { .. })
        }),
        (
            "SELECT COUNT(*) FROM PUMS WHERE age IN (SELECT age FROM PUMS)",
            |e| matches!(e, DpError::Unsupported { .. }),
        ),
        ("SELECT SUM(salary) FROM PUMS", |e| {
            matches!(e, DpError::UnknownColumn { .. })
        }),
        ("SELECT COUNT(*) FROM PUMS WHERE zip = '12345'", |e| {
            matches!(e, DpError::UnknownColumn { .. })
        }),
        ("SELECT age, COUNT(*) FROM PUMS GROUP BY sex", |e| {
            matches!(e, DpError::NonGroupedColumn { .. })
        }),
        ("SELECT income FROM PUMS", |e| {
            matches!(e, DpError::NonGroupedColumn { .. })
        }),
        ("SELECT sex FROM PUMS GROUP BY sex", |e| {
            matches!(e, DpError::NoAggregate)
        }),
        ("SELECT age, COUNT(*) FROM PUMS GROUP BY age", |e| {
            matches!(e, DpError::KeysNotPublic { .. })
        }),
        ("SELECT SUM(sex) FROM PUMS", |e| {
            matches!(e, DpError::NotNumeric { .. })
        }),
        ("SELECT COUNT(*) FROM PUMS ORDER BY 1", |e| {
            matches!(e, DpError::Unsupported { .. })
        }),
        ("SELECT COUNT(DISTINCT sex) FROM PUMS", |e| {
            matches!(e, DpError::Unsupported { .. })
        }),
        ("SELECT COUNT(*) FROM other", |e| {
            matches!(e, DpError::UnknownTable { .. })
        }),
        ("DELETE FROM PUMS", |e| {
            matches!(e, DpError::Unsupported { .. })
        }),
        (
            "SELECT COUNT(*) FROM PUMS; SELECT COUNT(*) FROM PUMS",
            |e| matches!(e, DpError::NotOneStatement { .. }),
        ),
        ("SELECT QUANTILE(income, 2) FROM PUMS", |e| {
            matches!(e, DpError::InvalidQuantile)
        }),
        ("SELECT COUNT(*) FROM PUMS WHERE sex = 1", |e| {
            matches!(e, DpError::LiteralType { .. })
        }),
    ];
    for (sql, expected) in cases {
        let e = refused(sql);
        assert!(expected(&e), "{sql}: {e:?}");
        assert!(e.is_client_error(), "{sql}: {e:?}");
    }
    for epsilon in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = dp::plan("SELECT COUNT(*) FROM PUMS", &table, epsilon, 0.0).unwrap_err();
        assert_eq!(e, DpError::InvalidEpsilon);
        assert!(e.is_client_error());
    }
    assert_eq!(
        dp::plan("SELECT COUNT(*) FROM PUMS", &table, 1.0, 1.0).unwrap_err(),
        DpError::InvalidDelta
    );
}

#[test]
fn dp_user_level_truncates_each_person() {
    // Every person appears twice; with one contribution per person the counts are the
    // single-copy counts, and the noise is that of one record per person.
    let people = people();
    let truth = by_sex(&people, |_| 0i64);
    let mut df = frame(&people);
    df.with_column(Column::new(
        "pid".into(),
        (0..people.len() as i64).collect::<Vec<_>>(),
    ))
    .unwrap();
    let doubled = concat([df.clone().lazy(), df.lazy()], UnionArgs::default()).unwrap();
    let mut specs = pums_specs();
    specs.push(ColumnSpec {
        name: "pid".into(),
        column_type: ColumnType::Integer,
        role: ColumnRole::DirectIdentifier,
        rule: DeidRule::Keep,
        domain: None,
        nullable: false,
    });
    let table = DpTable::from_catalog("PUMS", &specs, 2000).user_level("pid", 1);
    let plan = dp::plan(
        "SELECT sex, COUNT(*) AS n FROM PUMS GROUP BY sex",
        &table,
        50.0,
        0.0,
    )
    .unwrap();
    let out = dp::run(&plan, doubled.clone()).unwrap();
    let b = bound(&out, "n");
    for (s, n) in str_col(&out.frame, "sex")
        .iter()
        .zip(f64_col(&out.frame, "n"))
    {
        assert!(
            (n.unwrap() - truth[*s].1 as f64).abs() <= b.max(0.5),
            "{s}: {n:?}"
        );
    }

    // Two contributions per person double the count's sensitivity, hence its noise.
    let two = dp::plan(
        "SELECT sex, COUNT(*) AS n FROM PUMS GROUP BY sex",
        &table.clone().user_level("pid", 2),
        50.0,
        0.0,
    )
    .unwrap();
    let ratio = two.noise_scales()[0].1 / plan.noise_scales()[0].1;
    assert!((ratio - 2.0).abs() < 1e-6, "ratio {ratio}");
    let e = dp::plan(
        "SELECT pid, COUNT(*) FROM PUMS GROUP BY pid",
        &table,
        1.0,
        1e-6,
    )
    .unwrap_err();
    assert!(matches!(e, DpError::IdentifierUsed { .. }), "{e:?}");
}

#[test]
fn dp_threshold_release_for_undeclared_keys() {
    let people = people();
    let table = pums_table();
    let plan = dp::plan(
        "SELECT age, SUM(income) FROM PUMS GROUP BY age",
        &table,
        1.0,
        1e-6,
    )
    .unwrap();
    let t = plan.threshold().unwrap();
    assert!(t > 1);
    assert!(
        plan.delta_spent() > 0.0 && plan.delta_spent() <= 1e-6,
        "{}",
        plan.delta_spent()
    );
    assert!(plan.epsilon_spent() <= 1.0 && plan.epsilon_spent() > 1.0 - 1e-6);
    let out = dp::run(&plan, frame(&people).lazy()).unwrap();
    assert_eq!(out.threshold, Some(t));
    // Only ages present in the data can be released, and only with enough records.
    let mut ages: BTreeMap<i64, usize> = BTreeMap::new();
    for p in &people {
        *ages.entry(p.age).or_default() += 1;
    }
    let released = out
        .frame
        .column("age")
        .unwrap()
        .i64()
        .unwrap()
        .into_iter()
        .map(|a| a.unwrap())
        .collect::<Vec<_>>();
    assert!(!released.is_empty());
    assert!(released.iter().all(|a| ages.contains_key(a)));
    let names: Vec<&str> = out
        .frame
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(names, ["age", "sum_income"]);
}

#[test]
fn dp_baseline_gives_exact_answers() {
    let people = people();
    let truth = by_sex(&people, |p| p.income);
    let plan = dp::plan(
        "SELECT sex, COUNT(*) AS n, SUM(income) AS s FROM PUMS GROUP BY sex",
        &pums_table(),
        1.0,
        0.0,
    )
    .unwrap();
    let exact = dp::baseline(&plan, frame(&people).lazy()).unwrap();
    assert_eq!(str_col(&exact, "sex"), ["0", "1"]);
    let n = f64_col(&exact, "n");
    let s = f64_col(&exact, "s");
    for (i, sex) in ["0", "1"].iter().enumerate() {
        assert_eq!(n[i], Some(truth[*sex].1 as f64));
        assert_eq!(s[i], Some(truth[*sex].0 as f64));
    }
}

#[test]
fn dp_where_predicates_and_float_columns() {
    let people = people();
    let mut df = frame(&people);
    let incomes: Vec<f64> = people.iter().map(|p| p.income as f64).collect();
    df.with_column(Column::new("income_f".into(), incomes))
        .unwrap();
    let table = pums_table().float("income_f", 0.0, 500_000.0);
    let sql = "SELECT COUNT(*) AS n, COUNT(income) AS m, SUM(income_f) AS s FROM pums \
               WHERE (age BETWEEN 30 AND 39.5 AND NOT married = '1') OR educ IN ('16') OR income IS NULL";
    let plan = dp::plan(sql, &table, 60.0, 0.0).unwrap();
    let keep = |p: &Person| ((30..=39).contains(&p.age) && p.married != 1) || p.educ == 16;
    let n = people.iter().filter(|p| keep(p)).count() as f64;
    let s: f64 = people
        .iter()
        .filter(|p| keep(p))
        .map(|p| p.income as f64)
        .sum();

    let out = dp::run(&plan, df.lazy()).unwrap();
    assert_eq!(out.frame.height(), 1);
    // Counts carry almost no noise at this epsilon; the sum's noise exceeds its 95% bound
    // 5% of the time, but three times that bound only with probability 0.05^3.
    for (column, truth, slack) in [("n", n, 1.0), ("m", n, 1.0), ("s", s, 3.0)] {
        let value = f64_col(&out.frame, column)[0].unwrap();
        let b = bound(&out, column);
        assert!(
            (value - truth).abs() <= slack * b.max(0.5),
            "{column}: {value} vs {truth} (bound {b})"
        );
    }
    // The float sum gets continuous Laplace noise: its bound is not an integer count.
    assert!(bound(&out, "s") > 1.0);
}
