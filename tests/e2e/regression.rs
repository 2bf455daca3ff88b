//! Regression models over HTTP (issue #22), on both backends: OLS and logistic runs
//! from submission through review to release; the output checks (a categorical level
//! below the threshold withholds every estimate, and the developer learns only which
//! rule did it); differencing against earlier outputs by record sets; refusals at
//! submission that cost nothing; another organisation sees nothing.
//!
//! The dataset is the enterprise-electricity table with more columns: `employees`
//! (consumption grows by 900 kWh per employee), `defaulted` (0/1, more likely with
//! more employees), `tariff` (one level, `green`, on only five enterprises),
//! `floor_area` (missing for three enterprises) and `founded` (not granted).

use pdx::samples;
use pdx_algorithms::deid::schema::{ColumnRole, ColumnSpec, ColumnType, DeidRule, Domain};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{register, upload_certified, wait_job};
use crate::sandbox::{apply, approve};
use crate::support::{TestServer, reviewer_view};

const ROWS: usize = 2000;
/// Enterprises on the `green` tariff: fewer than the default threshold of 10.
const GREEN_EVERY: usize = 400;
/// Enterprises without a floor area.
const MISSING_AREA: [usize; 3] = [3, 703, 1403];
/// Industries as the generator numbers them, with their effect on consumption.
const INDUSTRIES: [(&str, u64); 5] = [
    ("manufacturing", 0),
    ("retail", 50_000),
    ("logistics", 100_000),
    ("software", 150_000),
    ("catering", 200_000),
];
const DISTRICTS: [&str; 6] = [
    "Futian", "Luohu", "Nanshan", "Bao'an", "Longgang", "Yantian",
];
/// Every granted column but `founded`.
const GRANTED: [&str; 8] = [
    "credit_code",
    "district",
    "industry",
    "kwh_12m",
    "employees",
    "defaulted",
    "tariff",
    "floor_area",
];

/// The electricity schema with the extra columns.
fn dataset() -> Value {
    let mut meta = samples::electricity_dataset();
    let column = |name: &str, column_type, domain, nullable| ColumnSpec {
        name: name.into(),
        column_type,
        role: ColumnRole::Other,
        rule: DeidRule::Keep,
        domain: Some(domain),
        nullable,
    };
    let range = |min: f64, max: f64| Domain::Range { min, max };
    meta.schema.columns.extend([
        column("employees", ColumnType::Integer, range(1.0, 1000.0), false),
        column("defaulted", ColumnType::Integer, range(0.0, 1.0), false),
        column(
            "tariff",
            ColumnType::String,
            Domain::Categories {
                values: ["standard", "peak", "green"].map(String::from).to_vec(),
            },
            false,
        ),
        column("floor_area", ColumnType::Integer, range(0.0, 1e6), true),
        column("founded", ColumnType::Integer, range(1900.0, 2100.0), false),
    ]);
    serde_json::to_value(meta).unwrap()
}

/// The next state of a 64-bit linear congruential generator.
fn step(x: u64) -> u64 {
    x.wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407)
}

/// `ROWS` generated enterprises as CSV; each quantity is drawn from its own step of the
/// generator, so none is correlated with another by construction.
fn csv() -> String {
    let mut out = String::from(
        "credit_code,district,industry,kwh_12m,employees,defaulted,tariff,floor_area,founded\n",
    );
    let mut x: u64 = 0x5EED;
    let mut draw = |below: u64| {
        x = step(x);
        (x >> 20) % below
    };
    for i in 0..ROWS {
        let district = DISTRICTS[draw(6) as usize];
        let (industry, effect) = INDUSTRIES[draw(5) as usize];
        let employees = 5 + draw(500);
        let noise = draw(10_000);
        let kwh = 20_000 + 900 * employees + effect + noise;
        let odds = (-1.5 + 0.004 * employees as f64).exp();
        let uniform = draw(1 << 40) as f64 / (1u64 << 40) as f64;
        let defaulted = u8::from(uniform < odds / (1.0 + odds));
        let tariff = if i % GREEN_EVERY == 7 {
            "green"
        } else if draw(2) == 1 {
            "peak"
        } else {
            "standard"
        };
        let floor_area = if MISSING_AREA.contains(&i) {
            String::new()
        } else {
            (50 + 3 * employees + noise % 97).to_string()
        };
        let founded = 1970 + draw(50);
        let code = samples::credit_code(10_000 + i as u64);
        out.push_str(&format!(
            "{code},{district},{industry},{kwh},{employees},{defaulted},{tariff},{floor_area},\
             {founded}\n"
        ));
    }
    out
}

/// One server with the dataset certified and a grant for SQL and regressions.
struct World {
    t: TestServer,
    provider: String,
    dev: String,
    other_dev: String,
    reviewer: String,
    dataset: String,
    grant: String,
}

async fn world(t: TestServer) -> World {
    let (_, provider) = t.key_for("power-bureau", "provider").await;
    let (_, dev) = t.key_for("energy-analytics", "developer").await;
    let (_, other_dev) = t.key_for("rival-analytics", "developer").await;
    let (_, reviewer) = t.key_for("output-checkers", "reviewer").await;
    let dataset = register(&t, &provider, &dataset()).await;
    upload_certified(&t, &provider, &dataset, "?format=csv", csv().into_bytes()).await;
    let grant = apply(
        &t,
        &dev,
        &dataset,
        json!(GRANTED),
        json!(["sql", "regression"]),
        0.0,
        100,
    )
    .await;
    approve(&t, &provider, &grant, json!({})).await;
    World {
        t,
        provider,
        dev,
        other_dev,
        reviewer,
        dataset,
        grant,
    }
}

/// A finished regression run, as reviewers and its developer see it.
struct Run {
    job: String,
    output: String,
    /// The reviewers' view of the output (the whole report).
    meta: Value,
    /// The rows, as reviewers download them.
    rows: Value,
    /// The developer's view of the output before release.
    mine: Value,
}

impl World {
    /// Registers `body` as a model of `kind` and starts it under `grant`: the status and
    /// the job (or the problem).
    async fn submit(&self, kind: &str, body: &str, grant: &str) -> (u16, Value) {
        let (s, model) = self
            .t
            .call(
                Some(&self.dev),
                Method::POST,
                "/v1/models",
                Some(json!({"name": "m", "kind": kind, "body": body})),
            )
            .await;
        assert_eq!(s, 201, "{model}");
        let inputs = json!([{"dataset_id": self.dataset, "grant_id": grant}]);
        self.t
            .call(
                Some(&self.dev),
                Method::POST,
                "/v1/runs",
                Some(json!({"model_id": model["id"], "inputs": inputs})),
            )
            .await
    }

    /// Runs `body` (a model of `kind`) to its quarantined output.
    async fn run(&self, kind: &str, body: &str) -> Run {
        let b = self.t.backend;
        let (s, job) = self.submit(kind, body, &self.grant).await;
        assert_eq!(s, 202, "{b}: {job}");
        let job_id = job["id"].as_str().unwrap().to_owned();
        let job = wait_job(&self.t, &self.dev, &job_id).await;
        assert_eq!(job["status"], "succeeded", "{b}: {job}");
        assert!(job["result"]["rows"].is_null(), "{b}: {job}");
        let output = job["result"]["output_id"].as_str().unwrap().to_owned();
        let (s, mine) = self
            .t
            .get(&self.dev, &format!("/v1/outputs/{output}"))
            .await;
        assert_eq!(
            (s, &mine["status"]),
            (200, &json!("quarantined")),
            "{b}: {mine}"
        );
        let (meta, rows) = reviewer_view(&self.t, &self.reviewer, &output).await;
        Run {
            job: job_id,
            output,
            meta,
            rows,
            mine,
        }
    }

    /// Releases `output` and returns the developer's view of it and its rows.
    async fn release(&self, output: &str) -> (Value, Value) {
        let b = self.t.backend;
        let (s, released) = self
            .t
            .call(
                Some(&self.reviewer),
                Method::POST,
                &format!("/v1/review/{output}"),
                Some(json!({"approve": true, "reason": "checked regression output"})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {released}");
        assert_eq!(released["status"], "released", "{b}: {released}");
        let (s, mine) = self
            .t
            .get(&self.dev, &format!("/v1/outputs/{output}"))
            .await;
        assert_eq!(s, 200, "{b}: {mine}");
        let (s, rows) = self
            .t
            .get(
                &self.dev,
                &format!("/v1/outputs/{output}/download?format=json"),
            )
            .await;
        assert_eq!(s, 200, "{b}: {rows}");
        (mine, rows)
    }
}

/// The row of `term` in an output.
fn row<'a>(rows: &'a Value, term: &str) -> &'a Value {
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["term"] == term))
        .unwrap_or_else(|| panic!("no row {term}: {rows}"))
}

/// The terms of an output, in order.
fn terms(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["term"].as_str().unwrap().to_owned())
        .collect()
}

/// The developer's view before release: the checks applied, nothing that depends on
/// the records.
fn assert_redacted(mine: &Value) {
    let report = &mine["check_report"];
    assert_eq!(report["kind"], "regression", "{mine}");
    assert!(
        report["checks"].as_array().is_some_and(|c| !c.is_empty()),
        "{mine}"
    );
    for field in [
        "hits",
        "records",
        "terms",
        "withheld",
        "withheld_by",
        "values_released",
        "run_failed",
        "failure",
    ] {
        assert!(
            report.get(field).is_none(),
            "{field} shown before release: {mine}"
        );
    }
    assert_eq!(
        (&mine["rows"], &mine["bytes"], &mine["output_hash"]),
        (&json!(0), &json!(0), &json!("")),
        "{mine}"
    );
}

const OLS: &str = r#"{"family": "ols", "target": "kwh_12m",
    "features": ["employees", "industry"], "categorical": ["industry"]}"#;
const LOGISTIC: &str = r#"{"family": "logistic", "target": "defaulted",
    "features": ["employees", "industry"], "categorical": ["industry"]}"#;
const BY_TARIFF: &str = r#"{"family": "ols", "target": "kwh_12m",
    "features": ["employees", "tariff"], "categorical": ["tariff"]}"#;
const BY_FLOOR_AREA: &str = r#"{"family": "ols", "target": "kwh_12m", "features": ["floor_area"]}"#;

#[tokio::test]
async fn regressions_are_fitted_checked_reviewed_and_released_on_both_backends() {
    for t in TestServer::both().await {
        let w = world(t).await;
        let b = w.t.backend;

        // A dry run on dummy data: the output's shape at once, nothing spent.
        let (s, dry) =
            w.t.call(
                Some(&w.dev),
                Method::POST,
                "/v1/dry-run",
                Some(
                    json!({"kind": "regression", "body": OLS, "dataset_id": w.dataset,
                    "rows": 300}),
                ),
            )
            .await;
        assert_eq!(s, 200, "{b}: {dry}");
        let names: Vec<&str> = dry["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["term", "estimate", "std_error", "statistic", "p_value"],
            "{b}"
        );
        assert_eq!(dry["report"]["kind"], "regression", "{b}: {dry}");

        // A plain count first: a regression over the same records is not a difference.
        w.run("sql", "SELECT COUNT(*) AS n FROM data").await;

        // OLS: every estimate out, close to the generator's coefficients.
        let ols = w.run("regression", OLS).await;
        assert_redacted(&ols.mine);
        let report = &ols.meta["check_report"];
        assert_eq!(report["hits"], json!([]), "{b}: {report}");
        assert_eq!(report["withheld"], false, "{b}: {report}");
        assert_eq!(report["records"], ROWS, "{b}: {report}");
        assert_eq!(report["statistic"], "t", "{b}: {report}");
        let expected_terms = [
            "(intercept)",
            "employees",
            "industry=logistics",
            "industry=manufacturing",
            "industry=retail",
            "industry=software",
            "__n",
            "__df_residual",
            "__sigma",
            "__r_squared",
            "__adj_r_squared",
        ];
        assert_eq!(terms(&ols.rows), expected_terms, "{b}: {}", ols.rows);
        let estimate = |term: &str| row(&ols.rows, term)["estimate"].as_f64().unwrap();
        assert!(
            (estimate("employees") - 900.0).abs() < 10.0,
            "{b}: {}",
            ols.rows
        );
        // Catering (200,000 over manufacturing) is the reference level.
        for (term, effect) in [
            ("industry=logistics", -100_000.0),
            ("industry=manufacturing", -200_000.0),
            ("industry=retail", -150_000.0),
            ("industry=software", -50_000.0),
        ] {
            assert!(
                (estimate(term) - effect).abs() < 2_000.0,
                "{b}: {term}: {}",
                ols.rows
            );
        }
        assert_eq!(estimate("__n"), ROWS as f64, "{b}");
        for field in ["std_error", "statistic", "p_value"] {
            assert!(row(&ols.rows, "employees")[field].is_f64(), "{b}: {field}");
        }
        let (mine, rows) = w.release(&ols.output).await;
        assert_eq!(rows, ols.rows, "{b}");
        assert_eq!(
            mine["check_report"]["withheld_by"],
            json!([]),
            "{b}: {mine}"
        );
        assert!(mine["check_report"].get("hits").is_none(), "{b}: {mine}");

        // Logistic: z statistics, the iterations, a positive effect of employees.
        let logistic = w.run("regression", LOGISTIC).await;
        let report = &logistic.meta["check_report"];
        assert_eq!(report["hits"], json!([]), "{b}: {report}");
        assert_eq!(report["statistic"], "z", "{b}: {report}");
        let slope = row(&logistic.rows, "employees")["estimate"]
            .as_f64()
            .unwrap();
        assert!((0.002..0.006).contains(&slope), "{b}: {}", logistic.rows);
        let iterations = row(&logistic.rows, "__iterations")["estimate"]
            .as_f64()
            .unwrap();
        assert!((1.0..50.0).contains(&iterations), "{b}: {}", logistic.rows);

        // A level of five enterprises: every estimate withheld, the level named for
        // reviewers, the column listed without its levels.
        let tariff = w.run("regression", BY_TARIFF).await;
        assert_redacted(&tariff.mine);
        let report = &tariff.meta["check_report"];
        assert_eq!(report["withheld"], true, "{b}: {report}");
        let hits = report["hits"].as_array().unwrap();
        assert!(
            hits.iter().any(|h| h["rule"] == "level_count"
                && h["term"] == "tariff=green"
                && h["count"] == 5),
            "{b}: {report}"
        );
        assert_eq!(
            terms(&tariff.rows)[..3],
            ["(intercept)", "employees", "tariff"],
            "{b}: {}",
            tariff.rows
        );
        for r in tariff.rows.as_array().unwrap() {
            for field in ["estimate", "std_error", "statistic", "p_value"] {
                assert!(r[field].is_null(), "{b}: {}", tariff.rows);
            }
        }
        // Released as it is, its developer learns the rule, not the level or a count.
        let (mine, rows) = w.release(&tariff.output).await;
        let view = &mine["check_report"];
        assert_eq!(view["withheld_by"], json!(["level_count"]), "{b}: {mine}");
        for text in [view.to_string(), rows.to_string()] {
            assert!(!text.contains("green"), "{b}: {text}");
            assert!(!text.contains("\"count\""), "{b}: {text}");
        }

        // Three enterprises lack a floor area: a regression over every other record
        // is the count minus three records, so it is withheld.
        let area = w.run("regression", BY_FLOOR_AREA).await;
        let report = &area.meta["check_report"];
        assert_eq!(
            report["records"],
            ROWS - MISSING_AREA.len(),
            "{b}: {report}"
        );
        let rules: Vec<&Value> = report["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| &h["rule"])
            .collect();
        assert_eq!(rules, [&json!("differencing")], "{b}: {report}");
        assert!(row(&area.rows, "floor_area")["estimate"].is_null(), "{b}");

        // Another organisation sees neither the job nor the output.
        let other = &w.other_dev;
        for path in [
            format!("/v1/jobs/{}", ols.job),
            format!("/v1/outputs/{}", ols.output),
            format!("/v1/outputs/{}/download", ols.output),
            format!("/v1/outputs/{}", tariff.output),
        ] {
            let (s, body) = w.t.get(other, &path).await;
            assert!(matches!(s, 403 | 404), "{b}: {path}: {s} {body}");
        }
        w.t.stop().await;
    }
}

#[tokio::test]
async fn regression_refusals_at_submission_name_the_rule_and_cost_nothing_on_both_backends() {
    for t in TestServer::both().await {
        let w = world(t).await;
        let b = w.t.backend;
        let sql_only = apply(
            &w.t,
            &w.dev,
            &w.dataset,
            json!(GRANTED),
            json!(["sql"]),
            0.0,
            5,
        )
        .await;
        approve(&w.t, &w.provider, &sql_only, json!({})).await;
        let too_many: Vec<String> = (0..31).map(|i| format!("x{i}")).collect();
        let ols = |features: Value, categorical: Value| {
            json!({"family": "ols", "target": "kwh_12m", "features": features,
                "categorical": categorical})
            .to_string()
        };
        let refusals = [
            (
                "ungranted column",
                ols(json!(["employees", "founded"]), json!([])),
                "granted_columns",
            ),
            (
                "unknown column",
                ols(json!(["employees", "nope"]), json!([])),
                "known_column",
            ),
            (
                "identifier column",
                ols(json!(["credit_code"]), json!(["credit_code"])),
                "no_identifiers",
            ),
            (
                "malformed JSON",
                r#"{"family": "ols", "target": "kwh_12m", "features": ["#.to_owned(),
                "spec_json",
            ),
            (
                "unknown field",
                r#"{"family": "ols", "target": "kwh_12m", "features": ["employees"],
                    "weights": "x"}"#
                    .to_owned(),
                "spec_json",
            ),
            (
                "too many features",
                ols(json!(too_many), json!([])),
                "feature_count",
            ),
            (
                "text as a continuous feature",
                ols(json!(["industry"]), json!([])),
                "numeric_feature",
            ),
            (
                "another table",
                json!({"family": "ols", "table": "other", "target": "kwh_12m",
                    "features": ["employees"]})
                .to_string(),
                "granted_table",
            ),
        ];
        for (what, body, rule) in &refusals {
            let (s, problem) = w.submit("regression", body, &w.grant).await;
            assert_eq!(s, 422, "{b}: {what}: {problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(&format!("rule `{rule}`")),
                "{b}: {what}: {problem}"
            );
        }
        // A grant that does not allow regressions.
        let (s, problem) = w.submit("regression", OLS, &sql_only).await;
        assert!((400..500).contains(&s), "{b}: {s} {problem}");

        // Nothing was spent and no job exists.
        for grant in [&w.grant, &sql_only] {
            let (s, g) = w.t.get(&w.dev, &format!("/v1/grants/{grant}")).await;
            assert_eq!((s, &g["queries_used"]), (200, &json!(0)), "{b}: {g}");
        }
        let (s, jobs) = w.t.get(&w.dev, "/v1/jobs").await;
        assert_eq!(s, 200, "{b}: {jobs}");
        assert_eq!(jobs.as_array().map_or(0, Vec::len), 0, "{b}: {jobs}");
        w.t.stop().await;
    }
}
