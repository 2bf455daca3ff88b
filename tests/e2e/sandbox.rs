//! The sandbox over HTTP: grants, models, runs, disclosure control, quarantine, review
//! and release; the exfiltration suite; DP budget accounting on the ledger.
//!
//! The conditional dataset is the generated enterprise-electricity table with one
//! planted dominant enterprise. Every attack must be refused (at admission or as a
//! failed job) or suppressed, and nothing a developer sees may contain an individual
//! value: no enterprise's consumption figure and no pseudonym.

use std::collections::BTreeSet;

use pdx::samples;
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{register, upload, wait_job};
use crate::support::{TestServer, payload, reviewer_view};

const ROWS: usize = 2000;
/// The planted enterprise (a smelter): far larger than the rest of its cell together.
const DOMINANT_KWH: u64 = 4_987_654_321;

/// Electricity CSV with one dominant enterprise in Yantian/software.
fn electricity_csv() -> String {
    let mut csv = samples::electricity_csv(ROWS, 42);
    csv.push_str(&format!(
        "{},Yantian,software,{DOMINANT_KWH}\n",
        samples::credit_code(999_999)
    ));
    csv
}

/// Every individual consumption figure in the data: none may appear in any output.
fn individual_values(csv: &str) -> BTreeSet<String> {
    csv.lines()
        .skip(1)
        .filter_map(|l| l.rsplit(',').next())
        .map(str::to_string)
        .collect()
}

/// True if `text` quotes any individual value or anything shaped like a pseudonym.
fn leaks(text: &str, values: &BTreeSet<String>) -> Option<String> {
    let tokens = text.split(|c: char| !c.is_ascii_alphanumeric());
    for token in tokens {
        if values.contains(token) {
            return Some(format!("value {token}"));
        }
        if token.len() >= 24 && token.chars().all(|c| c.is_ascii_hexdigit()) {
            return Some(format!("pseudonym-like token {token}"));
        }
    }
    None
}

/// A quarantined output as its developer sees it: no report detail, no counts, no hash.
fn assert_redacted(mine: &Value) {
    let report = &mine["check_report"];
    for field in [
        "cells_total",
        "cells_suppressed",
        "values_suppressed",
        "hits",
        "run_failed",
        "failure",
    ] {
        assert!(
            report.get(field).is_none(),
            "{field} shown before release: {mine}"
        );
    }
    assert_eq!(mine["rows"], 0, "{mine}");
    assert_eq!(mine["bytes"], 0, "{mine}");
    assert_eq!(mine["output_hash"], "", "{mine}");
}

struct World {
    t: TestServer,
    provider: String,
    dev: String,
    dev_org: String,
    other_dev: String,
    reviewer: String,
    reviewer2: String,
    dataset: String,
    /// Grant on every released column, generous query budget, ε = 3.
    grant: String,
    /// Grant without `credit_code`.
    narrow_grant: String,
    values: BTreeSet<String>,
}

pub(crate) async fn apply(
    t: &TestServer,
    dev: &str,
    dataset: &str,
    columns: Value,
    kinds: Value,
    eps: f64,
    queries: u64,
) -> String {
    let (s, g) = t
        .call(
            Some(dev),
            Method::POST,
            "/v1/grants",
            Some(json!({
                "dataset_id": dataset,
                "purpose": "regional energy-efficiency product",
                "columns": columns,
                "model_kinds": kinds,
                "term_days": 365,
                "epsilon": eps,
                "delta": 0.0,
                "query_budget": queries
            })),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    g["id"].as_str().unwrap().to_string()
}

pub(crate) async fn approve(
    t: &TestServer,
    provider: &str,
    grant: &str,
    narrowing: Value,
) -> Value {
    let mut body = json!({"approve": true});
    if let (Some(b), Some(n)) = (body.as_object_mut(), narrowing.as_object()) {
        b.extend(n.clone());
    }
    let (s, g) = t
        .call(
            Some(provider),
            Method::POST,
            &format!("/v1/grants/{grant}/decision"),
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{g}");
    g
}

async fn world(postgres: bool) -> Option<World> {
    let t = TestServer::start(postgres).await?;
    let (_, provider) = t.key_for("power-bureau", "provider").await;
    let (dev_org, dev) = t.key_for("energy-analytics", "developer").await;
    let (_, other_dev) = t.key_for("rival-analytics", "developer").await;
    let (_, reviewer) = t.key_for("output-checkers-a", "reviewer").await;
    let (_, reviewer2) = t.key_for("output-checkers-b", "reviewer").await;
    let meta = serde_json::to_value(samples::electricity_dataset()).unwrap();
    let dataset = register(&t, &provider, &meta).await;
    let csv = electricity_csv();
    let (s, job) = upload(
        &t,
        &provider,
        &dataset,
        "?format=csv",
        csv.clone().into_bytes(),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    let job = wait_job(&t, &provider, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let all = json!(["credit_code", "district", "industry", "kwh_12m"]);
    let grant = apply(&t, &dev, &dataset, all, json!(["sql", "dp"]), 3.0, 100).await;
    approve(&t, &provider, &grant, json!({})).await;
    let narrow_grant = apply(
        &t,
        &dev,
        &dataset,
        json!(["credit_code", "district", "industry", "kwh_12m"]),
        json!(["sql"]),
        0.0,
        100,
    )
    .await;
    let g = approve(
        &t,
        &provider,
        &narrow_grant,
        json!({"columns": ["district", "industry", "kwh_12m"]}),
    )
    .await;
    assert_eq!(g["columns"], json!(["district", "industry", "kwh_12m"]));
    Some(World {
        values: individual_values(&csv),
        t,
        provider,
        dev,
        dev_org,
        other_dev,
        reviewer,
        reviewer2,
        dataset,
        grant,
        narrow_grant,
    })
}

/// What happened to a model run, from the developer's side.
#[derive(Debug)]
enum Outcome {
    /// Refused before a job existed.
    Refused(u16, String),
    /// The job failed (status as it would have been synchronously).
    Failed(u16, String),
    /// The job produced a quarantined output: its id and its rows (as a reviewer sees them).
    Output(String, Value, Value),
}

impl World {
    async fn model(&self, kind: &str, body: &str) -> String {
        let (s, m) = self
            .t
            .call(
                Some(&self.dev),
                Method::POST,
                "/v1/models",
                Some(json!({"name": "m", "kind": kind, "body": body})),
            )
            .await;
        assert_eq!(s, 201, "{m}");
        m["id"].as_str().unwrap().to_string()
    }

    async fn run_with(&self, kind: &str, body: &str, grant: &str, eps: Option<f64>) -> Outcome {
        let model = self.model(kind, body).await;
        let mut req =
            json!({"model_id": model, "inputs": [{"dataset_id": self.dataset, "grant_id": grant}]});
        if let Some(e) = eps {
            req["epsilon"] = json!(e);
        }
        let (s, job) = self
            .t
            .call(Some(&self.dev), Method::POST, "/v1/runs", Some(req))
            .await;
        if s != 202 {
            return Outcome::Refused(s, job.to_string());
        }
        let job = wait_job(&self.t, &self.dev, job["id"].as_str().unwrap()).await;
        if job["status"] == "failed" {
            let status = job["error"]["status"].as_u64().unwrap_or(0) as u16;
            return Outcome::Failed(status, job.to_string());
        }
        let output = job["result"]["output_id"].as_str().unwrap().to_string();
        // The developer's own view holds nothing that depends on the data until release.
        let (s, mine) = self
            .t
            .get(&self.dev, &format!("/v1/outputs/{output}"))
            .await;
        assert_eq!(s, 200, "{mine}");
        if mine["status"] == "quarantined" {
            assert_redacted(&mine);
            assert!(job["result"]["rows"].is_null(), "{job}");
        }
        // Reviewers see the whole report.
        let (meta, rows) = reviewer_view(&self.t, &self.reviewer, &output).await;
        Outcome::Output(output, meta, rows)
    }

    async fn run(&self, body: &str) -> Outcome {
        self.run_with("sql", body, &self.grant, None).await
    }

    /// Asserts the attack was refused (4xx) and that nothing leaked.
    fn assert_refused(&self, what: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Refused(s, text) | Outcome::Failed(s, text) => {
                assert!(
                    (400..500).contains(s),
                    "{what}: expected a 4xx, got {s}: {text}"
                );
                assert_eq!(leaks(text, &self.values), None, "{what}: {text}");
            }
            Outcome::Output(_, meta, rows) => panic!("{what}: produced an output {meta} {rows}"),
        }
    }

    /// Asserts every cell was suppressed (no rows out) and nothing leaked.
    fn assert_suppressed(&self, what: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Output(_, meta, rows) => {
                let released = rows.as_array().map(|r| r.len()).unwrap_or(usize::MAX);
                assert_eq!(released, 0, "{what}: {rows}");
                assert!(
                    meta["check_report"]["cells_suppressed"]
                        .as_u64()
                        .unwrap_or(0)
                        > 0,
                    "{what}: {meta}"
                );
                // The report (not the output's own hash) must not quote a value.
                let report = meta["check_report"].to_string();
                assert_eq!(leaks(&report, &self.values), None, "{what}: {report}");
            }
            other => self.assert_refused(what, other),
        }
    }
}

#[tokio::test]
async fn exfiltration_attempts_are_refused_or_suppressed() {
    let w = world(false).await.unwrap();
    let refused = [
        ("row-level select", "SELECT * FROM data"),
        (
            "row-level projection",
            "SELECT credit_code, kwh_12m FROM data",
        ),
        (
            "row-level with order and limit",
            "SELECT kwh_12m FROM data ORDER BY kwh_12m DESC LIMIT 1",
        ),
        (
            "min of a sensitive column",
            "SELECT district, MIN(kwh_12m) FROM data GROUP BY district",
        ),
        ("max of a sensitive column", "SELECT MAX(kwh_12m) FROM data"),
        (
            "max hidden in a subquery",
            "SELECT COUNT(*) FROM (SELECT MAX(kwh_12m) AS m FROM data) s",
        ),
        (
            "string_agg",
            "SELECT district, string_agg(credit_code, ',') FROM data GROUP BY district",
        ),
        (
            "array_agg",
            "SELECT district, array_agg(kwh_12m) FROM data GROUP BY district",
        ),
        (
            "first_value",
            "SELECT district, first_value(kwh_12m) FROM data GROUP BY district",
        ),
        (
            "median",
            "SELECT district, median(kwh_12m) FROM data GROUP BY district",
        ),
        (
            "window function",
            "SELECT kwh_12m, row_number() OVER () FROM data",
        ),
        (
            "union with row-level rows",
            "SELECT COUNT(*) FROM data UNION ALL SELECT kwh_12m FROM data",
        ),
        ("reading a file path", "SELECT COUNT(*) FROM '/etc/passwd'"),
        (
            "create external table",
            "CREATE EXTERNAL TABLE x (a VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
        ),
        (
            "copy out",
            "COPY (SELECT * FROM data) TO '/tmp/pdx-leak.csv'",
        ),
        ("insert", "INSERT INTO data VALUES ('a', 'b', 'c', 1)"),
        (
            "two statements",
            "SELECT COUNT(*) FROM data; SELECT * FROM data",
        ),
        (
            "recursive CTE",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r",
        ),
        (
            "generate_series CPU bomb",
            "SELECT COUNT(*) FROM generate_series(1, 100000000000)",
        ),
        (
            "cross-join memory bomb",
            "SELECT a.district, COUNT(*) FROM data a, data b, data c, data d GROUP BY a.district",
        ),
        (
            "information schema",
            "SELECT COUNT(*) FROM information_schema.columns",
        ),
        ("ungranted table", "SELECT COUNT(*) FROM grants"),
    ];
    for (what, sql) in refused {
        let outcome = w.run(sql).await;
        w.assert_refused(what, &outcome);
    }

    // Casts that fail on some values would have made the job's status the answer; they
    // now give NULL (TRY_CAST semantics) and the run reveals nothing.
    for (what, sql) in [
        (
            "cast error leak",
            "SELECT CAST(credit_code AS BIGINT) AS c, COUNT(*) AS n FROM data GROUP BY 1",
        ),
        (
            "cast error leak in a filter",
            "SELECT COUNT(*) AS n FROM data WHERE CAST(district AS INT) > 0",
        ),
    ] {
        match w.run(sql).await {
            Outcome::Output(_, meta, rows) => {
                assert_eq!(leaks(&rows.to_string(), &w.values), None, "{what}: {rows}");
                let report = meta["check_report"].to_string();
                assert_eq!(leaks(&report, &w.values), None, "{what}: {report}");
            }
            other => w.assert_refused(what, &other),
        }
    }

    // An ungranted column: the narrowed grant does not register credit_code.
    let outcome = w
        .run_with(
            "sql",
            "SELECT credit_code, COUNT(*) FROM data GROUP BY credit_code",
            &w.narrow_grant,
            None,
        )
        .await;
    w.assert_refused("ungranted column", &outcome);

    let suppressed = [
        (
            "group by a unique id",
            "SELECT credit_code, COUNT(*) AS n, SUM(kwh_12m) AS s FROM data GROUP BY credit_code",
        ),
        (
            "targeted where on one enterprise",
            "SELECT COUNT(*) AS n, SUM(kwh_12m) AS s FROM data WHERE kwh_12m > 40000000",
        ),
        (
            "having below threshold",
            "SELECT district, industry, COUNT(*) AS n FROM data WHERE kwh_12m > 2009000 GROUP BY district, industry",
        ),
    ];
    for (what, sql) in suppressed {
        let outcome = w.run(sql).await;
        w.assert_suppressed(what, &outcome);
    }

    // Dominance: Yantian/software holds the planted enterprise; its SUM is suppressed,
    // the other cells are released.
    let outcome = w
        .run("SELECT district, industry, SUM(kwh_12m) AS total FROM data GROUP BY district, industry")
        .await;
    let Outcome::Output(_, meta, rows) = outcome else {
        panic!("dominance query failed: {outcome:?}");
    };
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 20, "{rows:?}");
    for row in rows {
        let dominated = row["district"] == "Yantian" && row["industry"] == "software";
        assert!(
            !dominated || row["total"].is_null(),
            "dominated cell released: {row}"
        );
    }
    let hits = meta["check_report"]["hits"].to_string();
    assert!(hits.contains("ominance"), "{meta}");
    assert_eq!(leaks(&meta["check_report"].to_string(), &w.values), None);

    // Differencing: the second half of a pair is refused once the query budget is spent.
    let pair_grant = apply(
        &w.t,
        &w.dev,
        &w.dataset,
        json!(["district", "kwh_12m"]),
        json!(["sql"]),
        0.0,
        1,
    )
    .await;
    approve(&w.t, &w.provider, &pair_grant, json!({})).await;
    let first = w
        .run_with(
            "sql",
            "SELECT COUNT(*) AS n, SUM(kwh_12m) AS s FROM data",
            &pair_grant,
            None,
        )
        .await;
    assert!(matches!(first, Outcome::Output(..)), "{first:?}");
    let second = w
        .run_with(
            "sql",
            "SELECT COUNT(*) AS n, SUM(kwh_12m) AS s FROM data WHERE district <> 'Yantian'",
            &pair_grant,
            None,
        )
        .await;
    w.assert_refused("second query of a differencing pair", &second);

    // A revoked grant and an expired grant are refused when the job starts.
    let revoked = apply(
        &w.t,
        &w.dev,
        &w.dataset,
        json!(["district"]),
        json!(["sql"]),
        0.0,
        5,
    )
    .await;
    approve(&w.t, &w.provider, &revoked, json!({})).await;
    let (s, g) =
        w.t.call(
            Some(&w.provider),
            Method::POST,
            &format!("/v1/grants/{revoked}/revoke"),
            Some(json!({"reason": "purpose changed"})),
        )
        .await;
    assert_eq!(s, 200, "{g}");
    let outcome = w
        .run_with(
            "sql",
            "SELECT district, COUNT(*) FROM data GROUP BY district",
            &revoked,
            None,
        )
        .await;
    w.assert_refused("revoked grant", &outcome);
    let expired = apply(
        &w.t,
        &w.dev,
        &w.dataset,
        json!(["district"]),
        json!(["sql"]),
        0.0,
        5,
    )
    .await;
    approve(&w.t, &w.provider, &expired, json!({})).await;
    sqlx::query("UPDATE grants SET expires_ms = 1 WHERE id = $1")
        .bind(expired.clone())
        .execute(w.t.app.db.pool())
        .await
        .unwrap();
    let outcome = w
        .run_with(
            "sql",
            "SELECT district, COUNT(*) FROM data GROUP BY district",
            &expired,
            None,
        )
        .await;
    w.assert_refused("expired grant", &outcome);

    // No grant at all, and someone else's grant.
    let model = w
        .model(
            "sql",
            "SELECT district, COUNT(*) FROM data GROUP BY district",
        )
        .await;
    let (s, p) =
        w.t.call(
            Some(&w.dev),
            Method::POST,
            "/v1/runs",
            Some(json!({"model_id": model, "inputs": [{"dataset_id": w.dataset}]})),
        )
        .await;
    assert_eq!(s, 403, "{p}");
    let (s, m) = w
        .t
        .call(
            Some(&w.other_dev),
            Method::POST,
            "/v1/models",
            Some(json!({"name": "x", "kind": "sql", "body": "SELECT district, COUNT(*) FROM data GROUP BY district"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, p) = w
        .t
        .call(
            Some(&w.other_dev),
            Method::POST,
            "/v1/runs",
            Some(json!({"model_id": m["id"], "inputs": [{"dataset_id": w.dataset, "grant_id": w.grant}]})),
        )
        .await;
    assert_eq!(s, 404, "another organisation's grant: {p}");

    // Another organisation's job and output; quarantine downloads by the developer.
    let outcome = w
        .run("SELECT district, COUNT(*) AS n FROM data GROUP BY district")
        .await;
    let Outcome::Output(output, meta, _) = outcome else {
        panic!("{outcome:?}");
    };
    let job_id = meta["job_id"].as_str().unwrap();
    assert_eq!(
        w.t.get(&w.other_dev, &format!("/v1/jobs/{job_id}")).await.0,
        404
    );
    assert_eq!(
        w.t.get(&w.other_dev, &format!("/v1/outputs/{output}"))
            .await
            .0,
        404
    );
    for format in ["parquet", "csv", "json"] {
        let path = format!("/v1/outputs/{output}/download?format={format}");
        assert_eq!(w.t.get(&w.dev, &path).await.0, 404, "quarantined {format}");
        assert_eq!(w.t.get(&w.other_dev, &path).await.0, 404);
        assert_eq!(w.t.get(&w.provider, &path).await.0, 403);
    }
    assert_eq!(w.t.get(&w.dev, "/v1/review").await.0, 403);
    let (s, _) =
        w.t.call(
            Some(&w.dev),
            Method::POST,
            &format!("/v1/review/{output}"),
            Some(json!({"approve": true, "reason": "self-approval"})),
        )
        .await;
    assert_eq!(s, 403, "developers cannot review");
    let _ = (&w.dev_org, &w.reviewer2);
    w.t.stop().await;
}

#[tokio::test]
async fn a_conditional_dataset_goes_through_grant_model_job_checks_review_and_release() {
    for postgres in [false, true] {
        let Some(w) = world(postgres).await else {
            continue;
        };
        let b = w.t.backend;
        // Dry run on dummy data: schema and sample at once, no budget.
        let sql = "SELECT district, COUNT(*) AS enterprises, AVG(kwh_12m) AS mean_kwh FROM data GROUP BY district";
        let (s, dry) =
            w.t.call(
                Some(&w.dev),
                Method::POST,
                "/v1/dry-run",
                Some(json!({"kind": "sql", "body": sql, "dataset_id": w.dataset, "rows": 300})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {dry}");
        let names: Vec<&str> = dry["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["district", "enterprises", "mean_kwh"], "{b}");

        let outcome = w.run(sql).await;
        let Outcome::Output(output, meta, rows) = outcome else {
            panic!("{b}: {outcome:?}");
        };
        assert_eq!(meta["status"], "quarantined");
        assert_eq!(rows.as_array().unwrap().len(), 6, "{b}: {rows}");
        let total: u64 = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["enterprises"].as_u64().unwrap())
            .sum();
        assert_eq!(
            total,
            ROWS as u64 + 1,
            "{b}: counts must add up to the rows"
        );
        assert_eq!(leaks(&rows.to_string(), &w.values), None);

        // The queue shows the model text, the report and a preview.
        let (s, queue) = w.t.get(&w.reviewer, "/v1/review").await;
        assert_eq!(s, 200);
        let item = queue
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["output"]["id"] == output.as_str())
            .unwrap_or_else(|| panic!("{b}: not queued: {queue}"));
        assert_eq!(item["model_text"], sql);
        assert!(item["preview"].as_array().is_some_and(|p| !p.is_empty()));

        // L2 data needs one approval; a rejection needs a reason.
        let (s, _) =
            w.t.call(
                Some(&w.reviewer),
                Method::POST,
                &format!("/v1/review/{output}"),
                Some(json!({"approve": true, "reason": " "})),
            )
            .await;
        assert_eq!(s, 422, "{b}");
        let (s, released) =
            w.t.call(
                Some(&w.reviewer),
                Method::POST,
                &format!("/v1/review/{output}"),
                Some(json!({"approve": true, "reason": "aggregates over >= 10 enterprises"})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {released}");
        assert_eq!(released["status"], "released");
        let seq = released["release_seq"].as_u64().unwrap();
        let (s, entry) = w.t.get(&w.dev, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["kind"], "release");
        assert_eq!(payload(&entry)["output_hash"], released["output_hash"]);
        assert_eq!(
            payload(&entry)["dataset_versions"],
            json!([format!("{}@1", w.dataset)])
        );

        // The developer now downloads it; the Parquet bytes hash to the release entry.
        let resp =
            w.t.http
                .get(w.t.url(&format!("/v1/outputs/{output}/download")))
                .bearer_auth(&w.dev)
                .send()
                .await
                .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().to_string(),
            released["output_hash"].as_str().unwrap()
        );
        let (s, csv) =
            w.t.get(&w.dev, &format!("/v1/outputs/{output}/download?format=csv"))
                .await;
        assert_eq!(s, 200, "{csv}");
        // Reviewers no longer reach it, nor does another developer.
        assert_eq!(
            w.t.get(&w.reviewer, &format!("/v1/outputs/{output}/download"))
                .await
                .0,
            404
        );
        assert_eq!(
            w.t.get(&w.other_dev, &format!("/v1/outputs/{output}/download"))
                .await
                .0,
            404
        );
        w.t.stop().await;
    }
}

/// Released values `a` and `b` of each row, where both came out.
fn released_pairs(rows: &Value) -> Vec<(Value, Value)> {
    rows.as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| !r["a"].is_null() && !r["b"].is_null())
                .map(|r| (r["a"].clone(), r["b"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The privacy boundary over HTTP, on both backends: combinations inside one run,
/// selections hidden in a measure, outcome oracles and report metadata. For each, the
/// inference the attacker needs (a difference, a status, a count) is not available.
#[tokio::test]
async fn privacy_boundary_attacks_reveal_nothing_on_both_backends() {
    for postgres in [false, true] {
        let Some(w) = world(postgres).await else {
            continue;
        };
        let b = w.t.backend;
        let smelter = "district = 'Yantian' AND industry = 'software' AND kwh_12m > 4000000000";

        // What each column holds, on the version and with a dry run: the district
        // labels a filter can match, at the level the search chose.
        let (s, version) =
            w.t.get(&w.dev, &format!("/v1/datasets/{}/versions/1", w.dataset))
                .await;
        assert_eq!(s, 200, "{b}: {version}");
        let domains = version["released_domains"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names: Vec<&str> = domains
            .iter()
            .filter_map(|d| d["column"].as_str())
            .collect();
        assert_eq!(
            names,
            ["credit_code", "district", "industry", "kwh_12m"],
            "{b}"
        );
        assert!(
            domains[1]["values"]
                .as_array()
                .is_some_and(|v| !v.is_empty()),
            "{b}: {version}"
        );
        let (s, dry) =
            w.t.call(
                Some(&w.dev),
                Method::POST,
                "/v1/dry-run",
                Some(json!({"kind": "sql", "body": "SELECT district, COUNT(*) AS n FROM data GROUP BY district", "dataset_id": w.dataset})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {dry}");
        assert_eq!(dry["released_domains"], version["released_domains"], "{b}");

        // (1) Two values of one run whose record sets differ by the smelter alone.
        for sql in [
            format!("SELECT COUNT(*) AS a, COUNT(*) FILTER (WHERE NOT ({smelter})) AS b FROM data"),
            format!(
                "SELECT district, SUM(kwh_12m) AS a, SUM(kwh_12m) FILTER (WHERE NOT ({smelter})) AS b \
                 FROM data GROUP BY district"
            ),
            format!(
                "SELECT district, COUNT(*) AS a, COUNT(CASE WHEN NOT ({smelter}) THEN 1 END) AS b \
                 FROM data GROUP BY district"
            ),
        ] {
            let Outcome::Output(_, meta, rows) = w.run(&sql).await else {
                panic!("{b}: {sql} did not run");
            };
            for (a, bb) in released_pairs(&rows) {
                assert_eq!(a, bb, "{b}: {sql}: a difference came out: {rows}");
            }
            assert!(
                meta["check_report"]["hits"]
                    .to_string()
                    .contains("differencing"),
                "{b}: {sql}: {meta}"
            );
            let report = meta["check_report"].to_string();
            assert_eq!(leaks(&report, &w.values), None, "{b}: {report}");
        }

        // (2) A selection hidden in a measure is refused at submission: no job, and
        // no budget spent (a grant with one query left still runs afterwards).
        let one_query = apply(
            &w.t,
            &w.dev,
            &w.dataset,
            json!(["district", "industry", "kwh_12m"]),
            json!(["sql"]),
            0.0,
            1,
        )
        .await;
        approve(&w.t, &w.provider, &one_query, json!({})).await;
        for sql in [
            format!("SELECT SUM(CASE WHEN {smelter} THEN kwh_12m ELSE 1 END) AS s FROM data"),
            format!("SELECT SUM(kwh_12m * CAST({smelter} AS BIGINT)) AS s FROM data"),
            "SELECT COUNT(*) AS n FROM data WHERE regexp_like(district, industry)".to_string(),
        ] {
            let outcome = w.run_with("sql", &sql, &one_query, None).await;
            let Outcome::Refused(status, text) = &outcome else {
                panic!("{b}: {sql}: not refused at submission: {outcome:?}");
            };
            assert!((400..500).contains(status), "{b}: {text}");
            assert_eq!(leaks(text, &w.values), None, "{b}: {text}");
        }
        let (_, grant) = w.t.get(&w.dev, &format!("/v1/grants/{one_query}")).await;
        assert_eq!(grant["queries_used"], 0, "{b}: {grant}");
        let fine = w
            .run_with(
                "sql",
                "SELECT district, COUNT(*) AS n FROM data GROUP BY district",
                &one_query,
                None,
            )
            .await;
        assert!(matches!(fine, Outcome::Output(..)), "{b}: {fine:?}");

        // (3) Oracles. A zero divisor that only the smelter's row would hit: the run
        // cannot fail on it.
        let quiet = w
            .run("SELECT COUNT(*) AS n FROM data WHERE kwh_12m / (kwh_12m - 4987654321) > 0")
            .await;
        let Outcome::Output(quiet_id, _, _) = &quiet else {
            panic!("{b}: {quiet:?}");
        };
        // A run that does fail on the data (a function whose arguments it checks row by
        // row) looks to its developer exactly like one that did not; reviewers see the
        // failure and can only reject it.
        let failing = w
            .run("SELECT COUNT(*) AS n FROM data WHERE substr(district, 1, -1) = 'x'")
            .await;
        let Outcome::Output(failed_id, meta, rows) = &failing else {
            panic!("{b}: a failure after admission must reach review: {failing:?}");
        };
        assert_eq!(meta["check_report"]["run_failed"], true, "{b}: {meta}");
        assert_eq!(rows.as_array().map(Vec::len), Some(0), "{b}: {rows}");
        let (_, quiet_view) = w.t.get(&w.dev, &format!("/v1/outputs/{quiet_id}")).await;
        let (_, failed_view) = w.t.get(&w.dev, &format!("/v1/outputs/{failed_id}")).await;
        let strip = |v: &Value| {
            let mut v = v.clone();
            for field in ["id", "job_id", "model_id", "created_ms"] {
                v[field] = Value::Null;
            }
            v
        };
        assert_eq!(strip(&quiet_view), strip(&failed_view), "{b}");
        let (s, p) =
            w.t.call(
                Some(&w.reviewer),
                Method::POST,
                &format!("/v1/review/{failed_id}"),
                Some(json!({"approve": true, "reason": "looks fine"})),
            )
            .await;
        assert_eq!(s, 409, "{b}: {p}");
        let (s, p) =
            w.t.call(
                Some(&w.reviewer),
                Method::POST,
                &format!("/v1/review/{failed_id}"),
                Some(json!({"approve": false, "reason": "the run failed"})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {p}");

        // (4) Report metadata: before release the developer sees no counts (checked in
        // `run_with` for every output above); after release, only hits of released rows.
        let Outcome::Output(output, report_meta, _) = w
            .run(&format!(
                "SELECT district, COUNT(*) AS a, COUNT(*) FILTER (WHERE NOT ({smelter})) AS b \
                 FROM data GROUP BY district"
            ))
            .await
        else {
            panic!("{b}: report run");
        };
        let (s, released) =
            w.t.call(
                Some(&w.reviewer),
                Method::POST,
                &format!("/v1/review/{output}"),
                Some(json!({"approve": true, "reason": "checked"})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {released}");
        // The Release entries (the developer is a party to them) name the rules
        // applied, not which held: an output whose only cell was removed for having too
        // few records names the same checks as one where every count came out.
        let (s, emptied) =
            w.t.call(
                Some(&w.reviewer),
                Method::POST,
                &format!("/v1/review/{quiet_id}"),
                Some(json!({"approve": true, "reason": "nothing left; harmless"})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {emptied}");
        let mut checks = Vec::new();
        for release in [&released, &emptied] {
            let seq = release["release_seq"].as_u64().unwrap();
            let (_, entry) = w.t.get(&w.dev, &format!("/v1/ledger/entries/{seq}")).await;
            checks.push(payload(&entry)["checks"].clone());
        }
        assert_eq!(checks[0], checks[1], "{b}");
        assert!(
            checks[0].to_string().contains("threshold>=10"),
            "{b}: {checks:?}"
        );
        let (_, mine) = w.t.get(&w.dev, &format!("/v1/outputs/{output}")).await;
        assert_eq!(mine["status"], "released", "{b}: {mine}");
        assert!(
            mine["check_report"].get("cells_total").is_none(),
            "{b}: {mine}"
        );
        let hits = mine["check_report"]["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!hits.is_empty(), "{b}: {mine}");
        assert!(
            hits.iter().all(|h| !h["released_row"].is_null()),
            "{b}: {mine}"
        );
        assert_eq!(mine["output_hash"], released["output_hash"], "{b}");

        // One view of what left: supervisors, and the provider for its own dataset.
        let (s, rows) =
            w.t.get(
                &w.dev,
                &format!("/v1/outputs/{output}/download?format=json"),
            )
            .await;
        assert_eq!(s, 200, "{b}: {rows}");
        let by_hand = rows
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| [&r["a"], &r["b"]])
            .filter(|v| !v.is_null())
            .count() as u64;
        let (_, supervisor) = w.t.key_for("regulator", "supervisor").await;
        let path = format!("/v1/audit/disclosure?dataset={}", w.dataset);
        let (s, seen) = w.t.get(&supervisor, &path).await;
        assert_eq!(s, 200, "{b}: {seen}");
        let versions = seen["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1, "{b}: {seen}");
        let mine = versions[0]["organisations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["org_id"] == w.dev_org.as_str())
            .unwrap_or_else(|| panic!("{b}: {seen}"));
        assert_eq!(mine["outputs_released"], 2, "{b}: {mine}");
        // The district counts come out (what earlier runs released decides whether
        // one of them is withheld as a difference; at least five are not).
        assert!(
            by_hand >= 5,
            "{b}: the district counts come out: {rows} {report_meta}"
        );
        assert_eq!(mine["values_released"], by_hand, "{b}: {mine}");
        assert_eq!(mine["runs_failed_after_admission"], 1, "{b}: {mine}");
        assert!(
            mine["outputs_rejected"].as_u64().unwrap() >= 1,
            "{b}: {mine}"
        );
        // Three one-run pairs above and the released one each withheld a value.
        assert!(
            mine["values_withheld"]["differencing"].as_u64().unwrap() >= 4,
            "{b}: {mine}"
        );
        assert_eq!(leaks(&seen.to_string(), &w.values), None, "{b}: {seen}");
        let (s, own) = w.t.get(&w.provider, &path).await;
        assert_eq!(s, 200, "{b}: {own}");
        assert_eq!(own, seen, "{b}");
        let (_, stranger) = w.t.key_for("water-bureau", "provider").await;
        assert_eq!(w.t.get(&stranger, &path).await.0, 404, "{b}");
        for key in [&w.dev, &w.reviewer] {
            assert_eq!(w.t.get(key, &path).await.0, 403, "{b}");
        }
        assert_eq!(
            w.t.get(&supervisor, "/v1/audit/disclosure").await.0,
            400,
            "{b}"
        );
        w.t.stop().await;
    }
}

/// The first value of column `name` in rows as a reviewer downloads them.
fn first_value(rows: &Value, name: &str) -> Value {
    rows.as_array()
        .and_then(|r| r.first())
        .map(|r| r[name].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn differencing_across_runs_grants_and_models_is_withheld_on_both_backends() {
    for postgres in [false, true] {
        let Some(w) = world(postgres).await else {
            continue;
        };
        let b = w.t.backend;
        let smelter = "district = 'Yantian' AND industry = 'software' AND kwh_12m > 4000000000";
        // (1) A total, then the same total without the smelter through another grant
        // and another model: the second value is withheld, while the first is still in
        // review (outputs in review count: they may be released later).
        let Outcome::Output(first, _, rows) = w
            .run("SELECT COUNT(*) AS n, SUM(kwh_12m) AS v FROM data WHERE industry = 'software'")
            .await
        else {
            panic!("{b}: first run");
        };
        assert!(!first_value(&rows, "n").is_null(), "{b}: {rows}");
        let second = format!(
            "SELECT COUNT(*) AS n, SUM(kwh_12m) AS v FROM data \
             WHERE industry = 'software' AND NOT ({smelter})"
        );
        let Outcome::Output(_, meta, rows) =
            w.run_with("sql", &second, &w.narrow_grant, None).await
        else {
            panic!("{b}: second run");
        };
        assert!(first_value(&rows, "n").is_null(), "{b}: {rows}");
        assert!(first_value(&rows, "v").is_null(), "{b}: {rows}");
        let report = meta["check_report"].to_string();
        assert!(report.contains("already received"), "{b}: {report}");
        assert_eq!(leaks(&report, &w.values), None, "{b}: {report}");

        // (2) Counts over complements and a yes/no question: whether the smelter uses
        // more than x, for x on both sides of its figure, looks the same.
        let mut seen = Vec::new();
        for x in [DOMINANT_KWH - 1, DOMINANT_KWH] {
            let probe = format!(
                "SELECT COUNT(*) AS n FROM data WHERE industry = 'software' \
                 AND NOT (district = 'Yantian' AND kwh_12m > {x})"
            );
            let Outcome::Output(_, _, rows) = w.run(&probe).await else {
                panic!("{b}: probe");
            };
            seen.push(first_value(&rows, "n"));
        }
        assert_eq!(seen[0], seen[1], "{b}: the answer came out");
        assert!(seen[0].is_null(), "{b}: {seen:?}");

        // (3) A breakdown whose cells add up to the first total minus the smelter: the
        // column is withheld as a whole.
        let Outcome::Output(_, meta, rows) = w
            .run(&format!(
                "SELECT district, COUNT(*) AS n FROM data \
                 WHERE industry = 'software' AND NOT ({smelter}) GROUP BY district"
            ))
            .await
        else {
            panic!("{b}: breakdown");
        };
        let counts: Vec<&Value> = rows
            .as_array()
            .map(|r| r.iter().map(|row| &row["n"]).collect())
            .unwrap_or_default();
        assert!(!counts.is_empty(), "{b}: {rows}");
        assert!(counts.iter().all(|n| n.is_null()), "{b}: {rows}");
        assert!(
            meta["check_report"].to_string().contains("column total"),
            "{b}: {meta}"
        );

        // (4) The same query run again is released again.
        let Outcome::Output(again, _, rows) = w
            .run("SELECT COUNT(*) AS n, SUM(kwh_12m) AS v FROM data WHERE industry = 'software'")
            .await
        else {
            panic!("{b}: again");
        };
        assert!(!first_value(&rows, "n").is_null(), "{b}: {rows}");

        // (5) Once the reviewers reject both, they no longer count: the second query
        // is released (nothing of the first left the sandbox).
        for id in [&first, &again] {
            let (s, p) =
                w.t.call(
                    Some(&w.reviewer),
                    Method::POST,
                    &format!("/v1/review/{id}"),
                    Some(json!({"approve": false, "reason": "not needed"})),
                )
                .await;
            assert_eq!(s, 200, "{b}: {p}");
        }
        let Outcome::Output(_, _, rows) = w.run_with("sql", &second, &w.narrow_grant, None).await
        else {
            panic!("{b}: second again");
        };
        assert!(!first_value(&rows, "n").is_null(), "{b}: {rows}");

        // (6) A second version differs from the first by records that one total over
        // each would give away: runs read the latest version only.
        let mut csv = samples::electricity_csv(ROWS, 43);
        csv.push_str(&format!(
            "{},Yantian,software,{DOMINANT_KWH}\n",
            samples::credit_code(999_999)
        ));
        let (s, job) = upload(
            &w.t,
            &w.provider,
            &w.dataset,
            "?format=csv",
            csv.into_bytes(),
        )
        .await;
        assert_eq!(s, 202, "{b}: {job}");
        let job = wait_job(&w.t, &w.provider, job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{b}: {job}");
        let model = w.model("sql", "SELECT COUNT(*) AS n FROM data").await;
        for (version, expected) in [(1, 409), (2, 202)] {
            let req = json!({"model_id": model, "inputs": [
                {"dataset_id": w.dataset, "grant_id": w.grant, "version": version}]});
            let (s, body) =
                w.t.call(Some(&w.dev), Method::POST, "/v1/runs", Some(req))
                    .await;
            assert_eq!(s, expected, "{b}: version {version}: {body}");
            if expected == 409 {
                assert_eq!(leaks(&body.to_string(), &w.values), None, "{b}: {body}");
            }
        }
        w.t.stop().await;
    }
}

#[tokio::test]
async fn dp_budget_is_spent_exactly_then_refused_and_each_spend_is_on_the_ledger() {
    let w = world(false).await.unwrap();
    let sql = "SELECT district, AVG(kwh_12m) AS mean_kwh FROM data GROUP BY district";
    // ε = 3: three runs at 1.0 fit exactly; the fourth is refused before it runs.
    for i in 0..3 {
        let outcome = w.run_with("dp", sql, &w.grant, Some(1.0)).await;
        assert!(
            matches!(outcome, Outcome::Output(..)),
            "run {i}: {outcome:?}"
        );
    }
    let (_, grant) = w.t.get(&w.dev, &format!("/v1/grants/{}", w.grant)).await;
    assert_eq!(grant["epsilon_spent"], json!(3.0), "{grant}");
    let (jobs_before, _) = (
        w.t.get(&w.dev, "/v1/jobs")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        (),
    );
    let outcome = w.run_with("dp", sql, &w.grant, Some(0.000001)).await;
    w.assert_refused("overspend", &outcome);
    let jobs_after =
        w.t.get(&w.dev, "/v1/jobs")
            .await
            .1
            .as_array()
            .unwrap()
            .len();
    assert_eq!(
        jobs_before, jobs_after,
        "a refused run must not leave a job"
    );
    let (_, grant) = w.t.get(&w.dev, &format!("/v1/grants/{}", w.grant)).await;
    assert_eq!(grant["epsilon_spent"], json!(3.0), "{grant}");

    // The three spends are on the ledger, visible to the developer.
    let (s, entries) =
        w.t.get(&w.dev, "/v1/ledger/entries?kind=privacy_spend")
            .await;
    assert_eq!(s, 200, "{entries}");
    let spends: Vec<&Value> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "privacy_spend" && payload(e)["grant_id"] == w.grant.as_str())
        .collect();
    assert_eq!(spends.len(), 3, "{entries}");
    let total: f64 = spends
        .iter()
        .map(|e| {
            payload(e)["epsilon"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 3.0);
    w.t.stop().await;
}

#[tokio::test]
async fn grants_follow_their_rules() {
    let w = world(false).await.unwrap();
    let t = &w.t;
    // Refusal needs a reason; a decided grant cannot be decided again.
    let g = apply(
        t,
        &w.dev,
        &w.dataset,
        json!(["district"]),
        json!(["sql"]),
        0.0,
        5,
    )
    .await;
    let (s, _) = t
        .call(
            Some(&w.provider),
            Method::POST,
            &format!("/v1/grants/{g}/decision"),
            Some(json!({"approve": false})),
        )
        .await;
    assert_eq!(s, 422);
    let (s, refused) = t
        .call(
            Some(&w.provider),
            Method::POST,
            &format!("/v1/grants/{g}/decision"),
            Some(
                json!({"approve": false, "reason": "purpose not covered by the share conditions"}),
            ),
        )
        .await;
    assert_eq!((s, refused["status"].as_str()), (200, Some("refused")));
    let (s, _) = t
        .call(
            Some(&w.provider),
            Method::POST,
            &format!("/v1/grants/{g}/decision"),
            Some(json!({"approve": true})),
        )
        .await;
    assert_eq!(s, 409);
    // The decision is on the ledger with its reason.
    let seq = refused["decision_seq"].as_u64().unwrap();
    let (_, entry) = t.get(&w.dev, &format!("/v1/ledger/entries/{seq}")).await;
    assert_eq!(payload(&entry)["decision"], "refused");
    // Terms: at most three years; narrowing may not widen.
    let (s, _) = t
        .call(
            Some(&w.dev),
            Method::POST,
            "/v1/grants",
            Some(json!({"dataset_id": w.dataset, "purpose": "p", "columns": ["district"], "model_kinds": ["sql"], "term_days": 1200, "query_budget": 1})),
        )
        .await;
    assert_eq!(s, 422);
    let g = apply(
        t,
        &w.dev,
        &w.dataset,
        json!(["district"]),
        json!(["sql"]),
        1.0,
        5,
    )
    .await;
    let (_, pending) = t.get(&w.dev, &format!("/v1/grants/{g}")).await;
    assert!(
        pending["answer_deadline"]
            .as_str()
            .is_some_and(|d| d.len() == 10),
        "{pending}"
    );
    for widening in [
        json!({"epsilon": 2.0}),
        json!({"columns": ["district", "kwh_12m"]}),
        json!({"query_budget": 6}),
    ] {
        let mut body = json!({"approve": true});
        body.as_object_mut()
            .unwrap()
            .extend(widening.as_object().unwrap().clone());
        let (s, p) = t
            .call(
                Some(&w.provider),
                Method::POST,
                &format!("/v1/grants/{g}/decision"),
                Some(body),
            )
            .await;
        assert_eq!(s, 422, "{widening}: {p}");
    }
    // Other roles and organisations cannot decide.
    let (_, other_provider) = t.key_for("another-bureau", "provider").await;
    let (s, _) = t
        .call(
            Some(&other_provider),
            Method::POST,
            &format!("/v1/grants/{g}/decision"),
            Some(json!({"approve": true})),
        )
        .await;
    assert_eq!(s, 404);
    for key in [&w.dev, &w.reviewer] {
        let (s, _) = t
            .call(
                Some(key),
                Method::POST,
                &format!("/v1/grants/{g}/decision"),
                Some(json!({"approve": true})),
            )
            .await;
        assert_eq!(s, 403);
    }
    assert_eq!(t.get(&w.other_dev, &format!("/v1/grants/{g}")).await.0, 404);
    w.t.stop().await;
}

/// A 403 problem that names the not-open rule (the one message of
/// `Dataset::reachable_by_developers`).
#[track_caller]
fn assert_not_open(what: &str, status: u16, problem: &Value) {
    assert_eq!(status, 403, "{what}: {problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    for part in [
        "not open (不予开放)",
        "developers cannot apply for grants on it, run models or dry runs on it",
        "de-identified derivative with its own certificate",
        "SD22 Art.8; GD21 Art.32",
    ] {
        assert!(detail.contains(part), "{what}: {part:?} missing: {problem}");
    }
}

/// Registers the electricity dataset with `open_attribute` and certifies one small
/// version (the FHE tests' table, which templates can be built on); returns its id.
async fn certified_electricity(t: &TestServer, provider: &str, open_attribute: &str) -> String {
    let b = t.backend;
    let mut meta = serde_json::to_value(samples::electricity_dataset()).unwrap();
    meta["open_attribute"] = json!(open_attribute);
    let dataset = register(t, provider, &meta).await;
    let csv = samples::electricity_csv(crate::fhe::ROWS, crate::fhe::SEED);
    let (s, job) = upload(t, provider, &dataset, "?format=csv", csv.into_bytes()).await;
    assert_eq!(s, 202, "{b}: {job}");
    let job = wait_job(t, provider, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{b}: {job}");
    dataset
}

const COUNT_BY_DISTRICT: &str = "SELECT district, COUNT(*) AS n FROM data GROUP BY district";
const MEAN_BY_DISTRICT: &str =
    "SELECT district, AVG(kwh_12m) AS mean_kwh FROM data GROUP BY district";

/// Registers a model of the developer `dev`; returns its id.
async fn register_model(t: &TestServer, dev: &str, kind: &str, body: &str) -> String {
    let (s, m) = t
        .call(
            Some(dev),
            Method::POST,
            "/v1/models",
            Some(json!({"name": "m", "kind": kind, "body": body})),
        )
        .await;
    assert_eq!(s, 201, "{}: {m}", t.backend);
    m["id"].as_str().unwrap().to_string()
}

/// How many jobs the organisation of `key` has.
async fn job_count(t: &TestServer, key: &str) -> usize {
    let (s, jobs) = t.get(key, "/v1/jobs").await;
    assert_eq!(s, 200, "{}: {jobs}", t.backend);
    jobs.as_array().map_or(0, Vec::len)
}

/// An FHE template proposal on `dataset` (the FHE tests' spec; `bucket_bits` varies it).
fn fhe_template(dataset: &str, bucket_bits: u8) -> Value {
    json!({
        "dataset_id": dataset,
        "name": "top quartile of electricity use",
        "purpose": "working-capital loans",
        "spec": {
            "key_column": "credit_code",
            "value": {"rule": "quantile", "column": "kwh_12m", "buckets": 4, "at_least": 3},
            "output": {"kind": "bool"},
            "key_width": "u16",
            "bucket_bits": bucket_bits
        }
    })
}

/// Not-open data (不予开放) is unreachable by developers on every path, SD22 Art.8 and
/// GD21 Art.32: grants (filing), runs with and without a grant, SQL and DP, dry runs,
/// dummy rows, downloads and FHE templates, each a 403 naming the rule, while the
/// catalog entry, schema and version metadata stay visible and the provider and
/// supervisors keep the dummy rows. A dataset that was conditional when its grants,
/// templates and outputs were made, and is not open now (how data filed before the rule
/// looks), keeps none of them: a pending grant or template cannot be approved (only
/// refused), an approved grant or template is unusable, and a quarantined output can
/// only be rejected.
#[tokio::test]
async fn not_open_data_is_unreachable_by_developers_on_every_path_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("statistics-bureau", "provider").await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, reviewer) = t.key_for("output-checkers", "reviewer").await;
        let (_, buyer) = t.key_for("buyer-co", "buyer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let closed = certified_electricity(&t, &provider, "not_open").await;
        let earlier = certified_electricity(&t, &provider, "conditional").await;

        // What a developer held on `earlier` while it was conditional: an approved
        // grant, a pending one, an approved and a pending template, a quarantined output.
        let grant = apply(
            &t,
            &dev,
            &earlier,
            json!(["credit_code", "district", "kwh_12m"]),
            json!(["sql", "fhe"]),
            0.0,
            10,
        )
        .await;
        approve(&t, &provider, &grant, json!({})).await;
        let pending = apply(
            &t,
            &dev,
            &earlier,
            json!(["district"]),
            json!(["sql"]),
            0.0,
            5,
        )
        .await;
        let mut templates = Vec::new();
        for bits in [2, 1] {
            let (s, tpl) = t
                .call(
                    Some(&dev),
                    Method::POST,
                    "/v1/fhe/templates",
                    Some(fhe_template(&earlier, bits)),
                )
                .await;
            assert_eq!(s, 201, "{b}: {tpl}");
            templates.push(tpl["id"].as_str().unwrap().to_string());
        }
        let (approved_tpl, pending_tpl) = (&templates[0], &templates[1]);
        let (s, tpl) = t
            .call(
                Some(&provider),
                Method::POST,
                &format!("/v1/fhe/templates/{approved_tpl}/decision"),
                Some(json!({"approve": true})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {tpl}");
        let sql = register_model(&t, &dev, "sql", COUNT_BY_DISTRICT).await;
        let dp = register_model(&t, &dev, "dp", MEAN_BY_DISTRICT).await;
        let (s, job) = t
            .call(
                Some(&dev),
                Method::POST,
                "/v1/runs",
                Some(json!({"model_id": sql, "inputs": [{"dataset_id": earlier, "grant_id": grant}]})),
            )
            .await;
        assert_eq!(s, 202, "{b}: {job}");
        let job = wait_job(&t, &dev, job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{b}: {job}");
        let output = job["result"]["output_id"].as_str().unwrap().to_string();
        let jobs_before = job_count(&t, &dev).await;

        // (1) Not open from the start. The catalog entry, its schema and its version's
        // metadata stay visible to developers; the provider sees all of its own.
        let (s, entry) = t.get(&dev, &format!("/v1/datasets/{closed}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["open_attribute"], "not_open", "{b}: {entry}");
        assert_eq!(entry["latest_version"], 1, "{b}: {entry}");
        assert!(
            entry["schema"]["columns"]
                .as_array()
                .is_some_and(|c| !c.is_empty()),
            "{b}: {entry}"
        );
        let (s, page) = t.get(&dev, "/v1/datasets?open_attribute=not_open").await;
        assert_eq!(s, 200, "{b}: {page}");
        assert_eq!(page["items"][0]["id"], closed.as_str(), "{b}: {page}");
        assert_eq!(
            t.get(&dev, &format!("/v1/datasets/{closed}/versions/1"))
                .await
                .0,
            200,
            "{b}"
        );
        for path in [
            format!("/v1/datasets/{closed}"),
            format!("/v1/datasets/{closed}/versions"),
            format!("/v1/datasets/{closed}/versions/1"),
            format!("/v1/datasets/{closed}/versions/1/certificate"),
        ] {
            let (s, body) = t.get(&provider, &path).await;
            assert_eq!(s, 200, "{b}: {path}: {body}");
        }
        // Dummy rows: its provider and supervisors only.
        let dummy = format!("/v1/datasets/{closed}/dummy?rows=5");
        for key in [&provider, &supervisor] {
            let (s, rows) = t.get(key, &dummy).await;
            assert_eq!(s, 200, "{b}: {rows}");
            assert_eq!(rows.as_array().map(Vec::len), Some(5), "{b}: {rows}");
        }
        for (who, key) in [
            ("developer", &dev),
            ("another provider", &other_provider),
            ("reviewer", &reviewer),
            ("buyer", &buyer),
        ] {
            let (s, p) = t.get(key, &dummy).await;
            assert_not_open(&format!("{b}: dummy rows for a {who}"), s, &p);
        }
        // Downloads: nobody (the provider holds its data already).
        for format in ["parquet", "csv", "json"] {
            let path = format!("/v1/datasets/{closed}/versions/1/download?format={format}");
            let (s, p) = t.get(&dev, &path).await;
            assert_not_open(&format!("{b}: {format} download"), s, &p);
            assert_eq!(t.get(&provider, &path).await.0, 403, "{b}");
        }
        // Grants, runs (SQL and DP, with a grant and without) and dry runs.
        let (s, p) = t
            .call(
                Some(&dev),
                Method::POST,
                "/v1/grants",
                Some(json!({
                    "dataset_id": closed,
                    "purpose": "regional energy-efficiency product",
                    "columns": ["district", "kwh_12m"],
                    "model_kinds": ["sql", "dp"],
                    "term_days": 365,
                    "epsilon": 1.0,
                    "delta": 0.0,
                    "query_budget": 10
                })),
            )
            .await;
        assert_not_open(&format!("{b}: grant application"), s, &p);
        for (what, run) in [
            (
                "sql run without a grant",
                json!({"model_id": sql, "inputs": [{"dataset_id": closed}]}),
            ),
            (
                "sql run with an approved grant",
                json!({"model_id": sql, "inputs": [{"dataset_id": closed, "grant_id": grant}]}),
            ),
            (
                "dp run",
                json!({"model_id": dp, "inputs": [{"dataset_id": closed, "grant_id": grant}], "epsilon": 0.5}),
            ),
            (
                "second input of a join",
                json!({"model_id": sql, "inputs": [
                    {"dataset_id": earlier, "grant_id": grant, "table": "data"},
                    {"dataset_id": closed, "table": "other"}]}),
            ),
        ] {
            let (s, p) = t
                .call(Some(&dev), Method::POST, "/v1/runs", Some(run))
                .await;
            assert_not_open(&format!("{b}: {what}"), s, &p);
        }
        for (kind, body) in [("sql", COUNT_BY_DISTRICT), ("dp", MEAN_BY_DISTRICT)] {
            let (s, p) = t
                .call(
                    Some(&dev),
                    Method::POST,
                    "/v1/dry-run",
                    Some(json!({"kind": kind, "body": body, "dataset_id": closed, "rows": 50})),
                )
                .await;
            assert_not_open(&format!("{b}: {kind} dry run"), s, &p);
        }
        // FHE: no template on it (the same message as every other path).
        let (s, p) = t
            .call(
                Some(&dev),
                Method::POST,
                "/v1/fhe/templates",
                Some(fhe_template(&closed, 2)),
            )
            .await;
        assert_not_open(&format!("{b}: FHE template proposal"), s, &p);
        // Nothing was filed or started.
        let (_, grants) = t.get(&dev, "/v1/grants").await;
        assert!(
            grants
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["dataset_id"] != closed.as_str()),
            "{b}: {grants}"
        );
        assert_eq!(
            jobs_before,
            job_count(&t, &dev).await,
            "{b}: a refused run left a job"
        );

        // (2) `earlier` is not open now: what was held before the rule gives nothing.
        sqlx::query("UPDATE datasets SET open_attribute = 'not_open' WHERE id = $1")
            .bind(earlier.clone())
            .execute(t.app.db.pool())
            .await
            .unwrap();
        let decision = format!("/v1/grants/{pending}/decision");
        let (s, p) = t
            .call(
                Some(&provider),
                Method::POST,
                &decision,
                Some(json!({"approve": true})),
            )
            .await;
        assert_not_open(&format!("{b}: approving a grant filed earlier"), s, &p);
        let (s, refused) = t
            .call(
                Some(&provider),
                Method::POST,
                &decision,
                Some(json!({"approve": false, "reason": "the dataset is not open"})),
            )
            .await;
        assert_eq!(
            (s, refused["status"].as_str()),
            (200, Some("refused")),
            "{b}: {refused}"
        );
        let (s, p) = t
            .call(
                Some(&dev),
                Method::POST,
                "/v1/runs",
                Some(json!({"model_id": sql, "inputs": [{"dataset_id": earlier, "grant_id": grant}]})),
            )
            .await;
        assert_not_open(&format!("{b}: a run under a grant approved earlier"), s, &p);
        let review = format!("/v1/review/{output}");
        let (s, p) = t
            .call(
                Some(&reviewer),
                Method::POST,
                &review,
                Some(json!({"approve": true, "reason": "aggregates only"})),
            )
            .await;
        assert_not_open(&format!("{b}: releasing an output made earlier"), s, &p);
        let (s, rejected) = t
            .call(
                Some(&reviewer),
                Method::POST,
                &review,
                Some(json!({"approve": false, "reason": "the dataset is not open"})),
            )
            .await;
        assert_eq!(
            (s, rejected["status"].as_str()),
            (200, Some("rejected")),
            "{b}: {rejected}"
        );
        let (s, p) = t
            .call(
                Some(&provider),
                Method::POST,
                &format!("/v1/fhe/templates/{pending_tpl}/decision"),
                Some(json!({"approve": true})),
            )
            .await;
        assert_not_open(
            &format!("{b}: approving a template proposed earlier"),
            s,
            &p,
        );
        let (s, p) = t
            .call(
                Some(&dev),
                Method::POST,
                "/v1/fhe/queries",
                Some(json!({
                    "template_id": approved_tpl,
                    "grant_id": grant,
                    "server_key_id": "fk_none",
                    "ciphertext": "AAAA",
                })),
            )
            .await;
        assert_not_open(
            &format!("{b}: a lookup on a template approved earlier"),
            s,
            &p,
        );
        // No refusal spent anything: the grant paid for its one run before the change.
        let (_, still) = t.get(&dev, &format!("/v1/grants/{grant}")).await;
        assert_eq!(still["queries_used"], 1, "{b}: {still}");
        // The template's bucket sizes are counted over the rows: not for developers now.
        let tpath = format!("/v1/fhe/templates/{approved_tpl}");
        let (s, tpl) = t.get(&dev, &tpath).await;
        assert_eq!(s, 200, "{b}: {tpl}");
        assert!(tpl.get("table").is_none(), "{b}: {tpl}");
        let (s, tpl) = t.get(&provider, &tpath).await;
        assert_eq!(s, 200, "{b}: {tpl}");
        assert!(tpl["table"]["bucket_sizes"].is_array(), "{b}: {tpl}");
        let (s, p) = t
            .get(&dev, &format!("/v1/datasets/{earlier}/dummy?rows=5"))
            .await;
        assert_not_open(&format!("{b}: dummy rows of data no longer open"), s, &p);
        t.stop().await;
    }
}
