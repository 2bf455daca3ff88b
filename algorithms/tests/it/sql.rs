//! The sandboxed SQL engine: grants, read-only enforcement, limits and sanitised errors.
//!
//! The fixture is written here with the Arrow Parquet writer; expected numbers are
//! computed from the same in-memory rows, independently of DataFusion.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use pdx_algorithms::sql::{SqlError, SqlLimits, SqlOutput, SqlSandbox, TableGrant};

const FIRST: [&str; 10] = [
    "Alice", "Bruno", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hamid", "Ilse", "Joaquim",
];
const LAST: [&str; 10] = [
    "Okafor",
    "Lindqvist",
    "Nakamura",
    "Petrov",
    "Quispe",
    "Rahman",
    "Schmidt",
    "Tanaka",
    "Ueda",
    "Vargas",
];
const CITIES: [&str; 4] = ["north", "south", "east", "west"];

/// One fixture row.
struct Person {
    name: String,
    city: &'static str,
    age: i64,
    secret: String,
}

fn people() -> Vec<Person> {
    (0..100usize)
        .map(|i| Person {
            name: format!("{} {}", FIRST[i % 10], LAST[i / 10]),
            city: CITIES[i % 4],
            age: 18 + (i as i64 * 7) % 60,
            secret: format!("S-{i:04}-classified"),
        })
        .collect()
}

/// Every value of the fixture a leak check looks for.
fn fixture_values() -> Vec<String> {
    let mut out: Vec<String> = FIRST
        .iter()
        .chain(LAST.iter())
        .map(|s| (*s).to_owned())
        .collect();
    for p in people() {
        out.push(p.name);
        out.push(p.secret);
    }
    out
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("fixture batch");
    let file = std::fs::File::create(path).expect("create fixture");
    let mut writer = ArrowWriter::try_new(file, schema, None).expect("parquet writer");
    writer.write(&batch).expect("write fixture");
    writer.close().expect("close fixture");
}

/// A temp dir with `people.parquet` (name, city, age, secret) and `other.parquet`.
struct Fixture {
    _dir: tempfile::TempDir,
    people: PathBuf,
    other: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = people();
    let people_path = dir.path().join("people.parquet");
    write_parquet(
        &people_path,
        vec![
            (
                "name",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|p| p.name.clone()),
                )) as ArrayRef,
            ),
            (
                "city",
                Arc::new(StringArray::from_iter_values(rows.iter().map(|p| p.city))) as ArrayRef,
            ),
            (
                "age",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|p| p.age))) as ArrayRef,
            ),
            (
                "secret",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|p| p.secret.clone()),
                )) as ArrayRef,
            ),
        ],
    );
    let other_path = dir.path().join("other.parquet");
    write_parquet(
        &other_path,
        vec![("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef)],
    );
    Fixture {
        _dir: dir,
        people: people_path,
        other: other_path,
    }
}

fn grant(f: &Fixture) -> Vec<TableGrant> {
    vec![TableGrant {
        name: "people".to_owned(),
        path: f.people.clone(),
        columns: vec!["age".to_owned(), "name".to_owned(), "city".to_owned()],
        at_rest: pdx_seal::AtRest::Plain,
    }]
}

async fn sandbox(f: &Fixture, limits: SqlLimits) -> SqlSandbox {
    SqlSandbox::new(&grant(f), limits).await.expect("sandbox")
}

/// A column as strings, whatever the string encoding.
fn strings(out: &SqlOutput, col: usize) -> Vec<String> {
    out.batches
        .iter()
        .flat_map(|b| {
            let c = cast(b.column(col), &DataType::Utf8).expect("cast to utf8");
            c.as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ints(out: &SqlOutput, col: usize) -> Vec<i64> {
    out.batches
        .iter()
        .flat_map(|b| {
            let c = cast(b.column(col), &DataType::Int64).expect("cast to int64");
            c.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect()
}

fn assert_no_fixture_value(err: &SqlError) {
    let text = format!("{err} / {err:?}");
    for v in fixture_values() {
        assert!(!text.contains(&v), "error text leaks {v:?}: {text}");
    }
}

#[tokio::test]
async fn sql_granted_aggregate_returns_the_right_numbers() {
    let f = fixture();
    let sb = sandbox(&f, SqlLimits::default()).await;
    let out = sb
        .run(
            "SELECT city, count(*) AS n, sum(age) AS total, min(age) AS youngest \
             FROM people GROUP BY city ORDER BY city",
        )
        .await
        .expect("aggregate runs");

    let mut expected: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for p in people() {
        let e = expected.entry(p.city).or_insert((0, 0, i64::MAX));
        e.0 += 1;
        e.1 += p.age;
        e.2 = e.2.min(p.age);
    }
    assert_eq!(out.rows, expected.len());
    assert_eq!(
        strings(&out, 0),
        expected.keys().map(|k| (*k).to_owned()).collect::<Vec<_>>()
    );
    assert_eq!(
        ints(&out, 1),
        expected.values().map(|v| v.0).collect::<Vec<_>>()
    );
    assert_eq!(
        ints(&out, 2),
        expected.values().map(|v| v.1).collect::<Vec<_>>()
    );
    assert_eq!(
        ints(&out, 3),
        expected.values().map(|v| v.2).collect::<Vec<_>>()
    );
    assert!(out.bytes > 0);

    let csv = String::from_utf8(out.to_csv().expect("csv")).expect("utf8 csv");
    assert!(csv.starts_with("city,n,total,youngest\n"), "{csv}");
    assert_eq!(csv.lines().count(), expected.len() + 1);
    let json: serde_json::Value =
        serde_json::from_slice(&out.to_json().expect("json")).expect("json parses");
    assert_eq!(json.as_array().map(Vec::len), Some(expected.len()));
    assert_eq!(
        json[0]["n"],
        serde_json::json!(expected.values().next().map(|v| v.0))
    );
    let parquet = out.to_parquet().expect("parquet");
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
}

#[tokio::test]
async fn sql_ungranted_columns_and_tables_do_not_exist() {
    let f = fixture();
    let sb = sandbox(&f, SqlLimits::default()).await;

    let all = sb.run("SELECT * FROM people").await.expect("select *");
    let names: Vec<&str> = all
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        ["name", "city", "age"],
        "file order, granted columns only"
    );
    assert_eq!(all.rows, 100);

    for sql in [
        "SELECT secret FROM people",
        "SELECT count(*) FROM people WHERE secret LIKE 'S-%'",
        "SELECT people.secret FROM people",
        "SELECT \"secret\" FROM people",
    ] {
        let err = sb.run(sql).await.expect_err(sql);
        assert!(matches!(err, SqlError::Plan(_)), "{sql}: {err:?}");
        assert!(err.is_client_error());
    }
    for sql in [
        "SELECT * FROM other",
        "SELECT x FROM other",
        "SELECT * FROM datafusion.public.other",
    ] {
        let err = sb.run(sql).await.expect_err(sql);
        assert!(matches!(err, SqlError::Plan(_)), "{sql}: {err:?}");
    }
    // Unknown-column messages are passed on when they only quote the query and schema.
    let err = sb.run("SELECT nme FROM people").await.expect_err("typo");
    assert!(err.to_string().contains("nme"), "{err}");

    // A grant naming a column the file lacks is refused.
    let mut bad = grant(&f);
    bad[0].columns.push("salary".to_owned());
    let err = SqlSandbox::new(&bad, SqlLimits::default())
        .await
        .expect_err("bad grant");
    assert!(
        matches!(err, SqlError::Grant(_)) && !err.is_client_error(),
        "{err:?}"
    );
}

#[tokio::test]
async fn sql_only_single_read_only_queries_run() {
    let f = fixture();
    let sb = sandbox(&f, SqlLimits::default()).await;
    let copy_target = f.people.with_file_name("copied.csv");
    let copy = format!("COPY people TO '{}' STORED AS CSV", copy_target.display());
    let copy_query = format!(
        "COPY (SELECT * FROM people) TO '{}' STORED AS CSV",
        copy_target.display()
    );
    let refused = [
        "CREATE TABLE t2 AS SELECT * FROM people",
        "CREATE TABLE t3 (a INT)",
        "CREATE VIEW v AS SELECT name FROM people",
        "CREATE SCHEMA s",
        "CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '/etc/passwd'",
        "DROP TABLE people",
        "INSERT INTO people VALUES ('x', 'y', 1)",
        "DELETE FROM people",
        "UPDATE people SET age = 1",
        copy.as_str(),
        copy_query.as_str(),
        "SET datafusion.execution.enable_recursive_ctes = true",
        "SELECT 1; SELECT 2",
        "SELECT * FROM people; DROP TABLE people",
        "SELECT * INTO t4 FROM people",
        "EXPLAIN SELECT * FROM people",
        "EXPLAIN ANALYZE SELECT * FROM people",
        "DESCRIBE people",
        "SHOW TABLES",
        "PREPARE p AS SELECT 1",
        "BEGIN TRANSACTION",
    ];
    for sql in refused {
        let err = sb.run(sql).await.expect_err(sql);
        assert!(matches!(err, SqlError::Forbidden(_)), "{sql}: {err:?}");
        assert!(err.is_client_error());
        assert!(sb.plan(sql).await.is_err(), "{sql} plans");
    }
    assert!(!copy_target.exists(), "COPY wrote a file");
    for t in ["t2", "t3", "t4", "v", "e"] {
        assert!(
            sb.run(&format!("SELECT * FROM {t}")).await.is_err(),
            "{t} was created"
        );
    }
    // The table survived and the session is still read-only and usable.
    assert_eq!(
        sb.run("SELECT count(*) FROM people")
            .await
            .map(|o| ints(&o, 0))
            .ok(),
        Some(vec![100])
    );
    assert!(sb.run("VALUES (1), (2)").await.is_ok());
    assert!(matches!(sb.run("").await, Err(SqlError::Syntax(_))));
}

#[tokio::test]
async fn sql_file_paths_and_table_functions_are_unavailable() {
    let f = fixture();
    let sb = sandbox(&f, SqlLimits::default()).await;
    let granted_path = f.people.display().to_string();
    let other_path = f.other.display().to_string();
    let by_path = [
        "SELECT * FROM '/etc/passwd'".to_owned(),
        format!("SELECT * FROM '{granted_path}'"),
        format!("SELECT * FROM '{other_path}'"),
        format!("SELECT * FROM \"{other_path}\""),
        format!("SELECT * FROM 'file://{other_path}'"),
        // The granted table's own store, by URL: the whole file (every column) and its
        // neighbour in the same directory.
        "SELECT * FROM 'pdx-zone://people/people.parquet'".to_owned(),
        "SELECT * FROM 'pdx-zone://people/other.parquet'".to_owned(),
        "SELECT * FROM read_parquet('pdx-zone://people/other.parquet')".to_owned(),
        format!("SELECT * FROM read_parquet('{other_path}')"),
        format!("SELECT * FROM parquet_scan('{other_path}')"),
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        "SELECT * FROM information_schema.tables".to_owned(),
        "SELECT * FROM information_schema.columns".to_owned(),
    ];
    for sql in &by_path {
        let err = sb.run(sql).await.expect_err(sql);
        assert!(matches!(err, SqlError::Plan(_)), "{sql}: {err:?}");
        // Messages never reveal where the granted files live.
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(&granted_path) && !text.contains("people.parquet"),
            "{text}"
        );
    }
    let generators = [
        "SELECT * FROM generate_series(1, 10)",
        "SELECT * FROM range(10)",
        "SELECT * FROM range(1, 10, 1)",
        "SELECT generate_series(1, 5)",
        "SELECT unnest(range(1, 1000000000))",
        "SELECT repeat('x', 2000000000)",
        "SELECT lpad('x', 2000000000)",
        "SELECT array_repeat(1, 1000000000)",
    ];
    for sql in generators {
        let err = sb.run(sql).await.expect_err(sql);
        assert!(matches!(err, SqlError::Plan(_)), "{sql}: {err:?}");
    }
    let recursive =
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r";
    let err = sb.run(recursive).await.expect_err("recursive CTE");
    assert!(
        matches!(err, SqlError::Plan(_) | SqlError::Forbidden(_)),
        "{err:?}"
    );
    // Plain (non-recursive) CTEs still work.
    let out = sb
        .run("WITH a AS (SELECT age FROM people) SELECT max(age) FROM a")
        .await
        .expect("cte");
    assert_eq!(
        ints(&out, 0),
        vec![people().iter().map(|p| p.age).max().unwrap_or_default()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_cross_join_memory_bomb_fails_on_memory_or_time() {
    let f = fixture();
    let limits = SqlLimits {
        memory_bytes: 4 << 20,
        timeout: Duration::from_secs(20),
        ..SqlLimits::default()
    };
    let sb = sandbox(&f, limits).await;
    let started = Instant::now();
    let err = sb
        .run(
            "SELECT a.name, b.name, c.name, count(*) FROM people a CROSS JOIN people b \
             CROSS JOIN people c GROUP BY a.name, b.name, c.name",
        )
        .await
        .expect_err("a million groups in a 4 MiB pool");
    assert!(
        matches!(err, SqlError::Memory { limit } if limit == 4 << 20)
            || matches!(err, SqlError::Timeout { .. }),
        "{err:?}"
    );
    assert!(err.is_client_error());
    assert!(started.elapsed() < Duration::from_secs(40));
    // The pool is released: a normal query still runs in the same sandbox.
    assert!(sb.run("SELECT count(*) FROM people").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_timeout_cancels_a_long_query() {
    let f = fixture();
    let limits = SqlLimits {
        timeout: Duration::from_millis(300),
        ..SqlLimits::default()
    };
    let sb = sandbox(&f, limits).await;
    let started = Instant::now();
    let err = sb
        .run(
            "SELECT count(*) FROM people a, people b, people c, people d \
             WHERE a.age + b.age + c.age + d.age < 0",
        )
        .await
        .expect_err("1e8 combinations in 300 ms");
    assert!(
        matches!(err, SqlError::Timeout { limit } if limit == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sql_errors_never_quote_data_values() {
    let f = fixture();
    let sb = sandbox(&f, SqlLimits::default()).await;
    let cast = sb
        .run("SELECT CAST(name AS BIGINT) FROM people")
        .await
        .expect_err("cast of a name");
    assert!(matches!(cast, SqlError::Conversion), "{cast:?}");
    assert!(cast.is_client_error());
    assert_no_fixture_value(&cast);
    for sql in [
        "SELECT CAST(name AS INT) + age FROM people",
        "SELECT CAST(name AS DATE) FROM people",
        "SELECT CAST(name AS TIMESTAMP) FROM people",
        "SELECT CAST(name AS DECIMAL(10, 2)) FROM people",
        "SELECT arrow_cast(name, 'Int32') FROM people",
        "SELECT to_timestamp(name) FROM people",
        "SELECT sum(CAST(city AS INT)) FROM people GROUP BY name",
        "SELECT * FROM people WHERE CAST(name AS INT) > 3",
        "SELECT age / (age - age) FROM people",
        "SELECT make_date(2020, 13, age) FROM people",
    ] {
        let err = sb.run(sql).await.expect_err(sql);
        assert!(err.is_client_error(), "{sql}: {err:?}");
        assert_no_fixture_value(&err);
    }
}

#[tokio::test]
async fn sql_output_row_and_byte_caps_trip() {
    let f = fixture();
    let rows = SqlLimits {
        max_output_rows: 10,
        ..SqlLimits::default()
    };
    let sb = sandbox(&f, rows).await;
    let err = sb
        .run("SELECT name FROM people")
        .await
        .expect_err("100 rows over a cap of 10");
    assert!(
        matches!(err, SqlError::TooManyRows { limit: 10 }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "output exceeds 10 rows");
    let ok = sb
        .run("SELECT name FROM people ORDER BY name LIMIT 10")
        .await
        .expect("exactly 10");
    assert_eq!(ok.rows, 10);
    let mut names: Vec<String> = people().into_iter().map(|p| p.name).collect();
    names.sort();
    assert_eq!(strings(&ok, 0), names[..10].to_vec());

    let bytes = SqlLimits {
        max_output_bytes: 200,
        ..SqlLimits::default()
    };
    let sb = sandbox(&f, bytes).await;
    let err = sb
        .run("SELECT name, age FROM people")
        .await
        .expect_err("~2 kB over a cap of 200 B");
    assert!(
        matches!(err, SqlError::TooManyBytes { limit: 200 }),
        "{err:?}"
    );
    let small = sb
        .run("SELECT count(*) FROM people")
        .await
        .expect("8 bytes fit");
    assert!(small.bytes <= 200);
}

#[tokio::test]
async fn sql_plans_are_checked_before_they_run() {
    let f = fixture();
    let sb = sandbox(&f, SqlLimits::default()).await;
    let plan = sb
        .plan("SELECT city, avg(age) FROM people GROUP BY city")
        .await
        .expect("plan");
    let optimized = sb.optimize(&plan).expect("optimize");
    assert_eq!(
        sb.run_plan(optimized).await.expect("run optimized").rows,
        CITIES.len()
    );
    assert_eq!(
        sb.run_plan(plan).await.expect("run plan").rows,
        CITIES.len()
    );

    // A plan from another session reads a provider that was never granted, even under
    // a granted name and path: refused by identity.
    let foreign = SessionContext::new();
    foreign
        .register_parquet(
            "people",
            f.people.display().to_string(),
            ParquetReadOptions::default(),
        )
        .await
        .expect("foreign registration");
    let plan = foreign
        .state()
        .create_logical_plan("SELECT secret FROM people")
        .await
        .expect("foreign plan");
    let err = sb.run_plan(plan).await.expect_err("foreign provider");
    assert!(matches!(err, SqlError::Forbidden(_)), "{err:?}");
}
