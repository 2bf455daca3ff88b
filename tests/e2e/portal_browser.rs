//! The web portal in a real browser (issue #21): Debian's chromium, driven by Playwright
//! (`tests/browser/journeys.mjs`, playwright-core and axe-core from npm), clicks through
//! every role's main journey on a server prepared here through the API.
//!
//! This test prepares the market that `tests/e2e/products.rs` builds (provider,
//! developer, reviewer, exchange, buyer, supervisor, an open certified dataset and a
//! release over it) and adds what the journeys need: a second reviewer of another
//! organisation; a registered dataset with no version for the provider to upload a CSV
//! to; a conditional dataset with the developer's approved SQL grant (the SQL editor's);
//! a conditional dataset that needs two reviewers, with an output of the developer's
//! awaiting them; a product awaiting the exchange's desk and a listed one for the buyer;
//! an open dataset whose title holds `<script>` and `"><img onerror>`; and a second
//! server whose portal sessions end after [`IDLE_SECONDS`] idle seconds. It writes the
//! JSON that `journeys.mjs` documents at its top, runs `node tests/browser/journeys.mjs`
//! and requires it to exit 0; then it checks through the API that the pages really
//! acted (a version certified, the output released by two votes, the product listed, the
//! order delivered, the model registered).
//!
//! The screenshots (a full-page PNG of each role's main page and of the public
//! catalog), the results file and any failure screenshots are written under the test's
//! temporary directory and copied to `target/portal-screenshots/` (or `PDX_SCREENSHOTS`).
//!
//! Tools: `node` (or `PDX_NODE`), chromium at `/usr/bin/chromium` (or `PDX_CHROMIUM`), and
//! `tests/browser/node_modules` (installed here with `npm ci` from the lock file when
//! missing). Under `CI=true` a missing tool fails the test, since CI must run it;
//! elsewhere the test says why and returns, which counts as no coverage. The journeys run
//! on SQLite only: they test the pages in a browser, and the portal's HTTP tests already
//! run every page on both backends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pdx::samples;
use pdx_sandbox::catalog::OpenAttribute;
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{draft, wait_job};
use crate::products::{MODEL_SQL, Market, SPLIT, dataset, market, org_key, product_body};
use crate::sandbox::{apply, approve};
use crate::support::{TestServer, post, put, redact};

/// The browser tests' directory (package.json, the lock file, node_modules).
const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
/// The journeys' script.
const JOURNEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/journeys.mjs");

/// Markup that runs a script if a page splices it unescaped.
const SCRIPT_PAYLOAD: &str = "<script>window.__xss=1</script>";
/// Markup that breaks out of an attribute and runs a handler if spliced unescaped.
const IMG_PAYLOAD: &str = "\"><img src=x onerror=\"window.__xss=1\">";
/// The query the reviewers' output and the XSS run use (the SQL editor's journey runs
/// [`MODEL_SQL`]; different queries, so that no disclosure check compares the two).
const INDUSTRY_SQL: &str = "SELECT industry, COUNT(*) AS enterprises FROM data GROUP BY industry";
/// The first reviewer's comment, which the second must not see before voting.
const FIRST_REASON: &str = "first look in the browser: industry totals over many firms";
/// Idle seconds after which the second server's portal sessions end.
const IDLE_SECONDS: u64 = 3;
/// The longest the journeys may take.
const JOURNEYS_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// The journeys `journeys.mjs` reports, each of which must pass.
const JOURNEY_NAMES: [&str; 11] = [
    "public",
    "provider",
    "developer",
    "reviewers",
    "exchange",
    "buyer",
    "supervisor",
    "refusals",
    "xss",
    "csrf",
    "session-expiry",
];
/// The main pages that must have been screenshotted (file `<name>.png`).
const SCREENSHOTS: [&str; 7] = [
    "public",
    "provider",
    "developer",
    "reviewer",
    "exchange",
    "buyer",
    "supervisor",
];

/// Why the journeys cannot run on this machine, if they cannot.
async fn missing_tool(node: &str, chromium: &Path) -> Option<String> {
    if !chromium.is_file() {
        return Some(format!("no chromium at {}", chromium.display()));
    }
    match tokio::process::Command::new(node)
        .arg("--version")
        .output()
        .await
    {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`{node} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Some(format!("cannot start `{node}`: {e}")),
    }
}

/// Installs the browser tests' npm packages from the lock file if they are missing.
async fn npm_packages() -> Result<(), String> {
    let dir = Path::new(BROWSER_DIR);
    let installed = ["playwright-core", "axe-core"].iter().all(|name| {
        dir.join("node_modules")
            .join(name)
            .join("package.json")
            .is_file()
    });
    if installed {
        return Ok(());
    }
    let out = tokio::process::Command::new("npm")
        .arg("ci")
        .arg("--prefix")
        .arg(dir)
        .args(["--no-audit", "--no-fund"])
        .output()
        .await
        .map_err(|e| format!("cannot start npm: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`npm ci --prefix tests/browser` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The journeys cannot run: a failure under CI, which must run them; elsewhere a note.
fn cannot_run(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the browser journeys cannot run: {why}"
    );
    eprintln!("skipping the browser journeys (this is no coverage): {why}");
}

/// Runs `sql` as `dev` on `dataset` under `grant` and waits for it; the output's id.
async fn output_of_run(
    t: &TestServer,
    dev: &str,
    sql: &str,
    dataset_id: &str,
    grant: &str,
) -> String {
    let (s, model) = post(
        t,
        dev,
        "/v1/models",
        json!({"name": "industries", "kind": "sql", "body": sql}),
    )
    .await;
    assert_eq!(s, 201, "{model}");
    let (s, job) = post(
        t,
        dev,
        "/v1/runs",
        json!({"model_id": model["id"], "inputs": [{"dataset_id": dataset_id, "grant_id": grant}]}),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    let job = wait_job(t, dev, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["result"]["output_id"].as_str().unwrap().to_string()
}

/// The developer's product `title` on the release `release_id`, awaiting the desk.
async fn product(m: &Market, release_id: &str, title: &str) -> String {
    let mut body = product_body(json!([release_id]), "commercial_internal", SPLIT);
    body["title"] = json!(title);
    let (s, created) = post(&m.t, &m.dev, "/v1/products", body).await;
    assert_eq!(s, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// A conditional electricity dataset (certified) with `dev`'s approved SQL grant on it;
/// (dataset, grant).
async fn granted_dataset(m: &Market, title: &str, reviewers: Option<u32>) -> (String, String) {
    let t = &m.t;
    let id = dataset(t, &m.provider, title, OpenAttribute::Conditional, false).await;
    if let Some(n) = reviewers {
        let (s, policy) = put(
            t,
            &m.provider,
            &format!("/v1/datasets/{id}/output-policy"),
            json!({"reviewers_required": n}),
        )
        .await;
        assert_eq!(s, 200, "{policy}");
    }
    let columns = json!(["district", "industry", "kwh_12m"]);
    let grant = apply(t, &m.dev, &id, columns, json!(["sql"]), 0.0, 50).await;
    approve(t, &m.provider, &grant, json!({})).await;
    (id, grant)
}

/// Copies the PNGs and the results file of `from` into `to`.
fn keep_artifacts(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let wanted = path.extension().is_some_and(|e| e == "png")
            || path.file_name().is_some_and(|n| n == "results.json");
        if wanted {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_role_clicks_through_its_journey_in_chromium() {
    let node = std::env::var("PDX_NODE").unwrap_or_else(|_| "node".to_string());
    let chromium = PathBuf::from(
        std::env::var("PDX_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string()),
    );
    if let Some(why) = missing_tool(&node, &chromium).await {
        cannot_run(&why);
        return;
    }
    if let Err(why) = npm_packages().await {
        cannot_run(&why);
        return;
    }

    // The market (products.rs) and what the journeys add to it.
    let m = market(false).await.unwrap();
    let t = &m.t;
    let (_, reviewer2) = org_key(t, "second-output-checkers", "reviewer", "national").await;
    let out = t.dir.path().join("browser");
    std::fs::create_dir_all(&out).unwrap();

    let mut upload_meta = samples::electricity_dataset();
    upload_meta.title = "Enterprise electricity, uploaded in the browser".into();
    upload_meta.elements = Vec::new();
    let upload_dataset = draft(t, &m.provider, &serde_json::to_value(&upload_meta).unwrap()).await;
    let csv_path = out.join("electricity.csv");
    std::fs::write(&csv_path, samples::electricity_csv(600, 21)).unwrap();

    let (editor_dataset, editor_grant) = granted_dataset(
        &m,
        "Enterprise electricity (conditional, for the SQL editor)",
        None,
    )
    .await;
    let (review_dataset, review_grant) =
        granted_dataset(&m, "Enterprise electricity (two reviewers)", Some(2)).await;
    let review_output =
        output_of_run(t, &m.dev, INDUSTRY_SQL, &review_dataset, &review_grant).await;
    let (_, queued) = t
        .get(&m.reviewer, &format!("/v1/review/{review_output}"))
        .await;
    assert_eq!(queued["output"]["required_reviews"], 2, "{queued}");

    let xss_title = format!("Open electricity {SCRIPT_PAYLOAD} {IMG_PAYLOAD}");
    let xss_dataset = dataset(
        t,
        &m.provider,
        &xss_title,
        OpenAttribute::Unconditional,
        false,
    )
    .await;
    let xss_sql = format!("-- {SCRIPT_PAYLOAD} {IMG_PAYLOAD}\n{INDUSTRY_SQL}");

    let release_id = m.release["release_id"].as_str().unwrap();
    let pending = product(
        &m,
        release_id,
        "District enterprise counts, awaiting the desk",
    )
    .await;
    let on_sale_title = "District enterprise counts, on sale";
    let on_sale = product(&m, release_id, on_sale_title).await;
    let (s, listed) = t
        .call(
            Some(&m.exchange),
            Method::POST,
            &format!("/v1/products/{on_sale}/list"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{listed}");

    // The second server: its sessions end after a few idle seconds.
    let expiry = TestServer::start_with(false, |app| {
        Arc::make_mut(&mut app.config).portal_session_idle = Duration::from_secs(IDLE_SECONDS);
    })
    .await
    .unwrap();
    let (_, expiry_key) = expiry.key_for("session-expiry-bureau", "provider").await;

    let results_path = out.join("results.json");
    let input = json!({
        "base_url": t.url(""),
        "output_dir": out,
        "results_path": results_path,
        "locale": std::env::var("PDX_BROWSER_LOCALE").unwrap_or_else(|_| "zh-CN".to_string()),
        "keys": {
            "provider": m.provider,
            "developer": m.dev,
            "reviewer": m.reviewer,
            "reviewer2": reviewer2,
            "exchange": m.exchange,
            "buyer": m.buyer,
            "supervisor": m.supervisor,
        },
        "provider": {"dataset_id": upload_dataset, "csv_path": csv_path},
        "developer": {
            "grant_id": editor_grant,
            "dataset_id": editor_dataset,
            "sql": MODEL_SQL,
        },
        "review": {"output_id": review_output, "first_reason": FIRST_REASON},
        "exchange": {"product_id": pending},
        "buyer": {"product_id": on_sale, "product_title": on_sale_title},
        "supervisor": {"ledger_kind": "asset_certificate", "lineage_product_id": on_sale},
        "public": {
            "open_dataset_id": m.dataset,
            "conditional_dataset_id": editor_dataset,
        },
        "xss": {
            "dataset_id": xss_dataset,
            "dataset_title": xss_title,
            "sql": xss_sql,
            "payloads": [SCRIPT_PAYLOAD, IMG_PAYLOAD],
        },
        "session_expiry": {
            "base_url": expiry.url(""),
            "role": "provider",
            "key": expiry_key,
            "idle_seconds": IDLE_SECONDS,
        },
    });
    let input_path = out.join("journeys.json");
    std::fs::write(&input_path, serde_json::to_vec_pretty(&input).unwrap()).unwrap();

    let run = tokio::time::timeout(
        JOURNEYS_TIMEOUT,
        tokio::process::Command::new(&node)
            .arg(JOURNEYS)
            .arg(&input_path)
            .env("PDX_CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser journeys took over 20 minutes")
    .expect("node starts");
    // The input holds the keys: it goes away with the temporary directory, and no key
    // is printed.
    let keys = [
        m.provider.as_str(),
        m.dev.as_str(),
        m.reviewer.as_str(),
        reviewer2.as_str(),
        m.exchange.as_str(),
        m.buyer.as_str(),
        m.supervisor.as_str(),
        expiry_key.as_str(),
    ];
    let log = redact(
        &format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        ),
        &keys,
    );
    println!("{log}");
    let kept = std::env::var_os("PDX_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/portal-screenshots"));
    keep_artifacts(&out, &kept);
    println!("screenshots and results: {}", kept.display());
    assert!(
        run.status.success(),
        "the browser journeys failed ({}):\n{log}",
        run.status
    );

    // What journeys.mjs reports: every journey and every accessibility check passed,
    // and every main page was photographed.
    let results: Value = serde_json::from_slice(&std::fs::read(&results_path).unwrap()).unwrap();
    assert_eq!(results["ok"], true, "{results}");
    for name in JOURNEY_NAMES {
        let journey = results["journeys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .unwrap_or_else(|| panic!("journey {name} did not run: {results}"));
        assert_eq!(journey["ok"], true, "{name}: {journey}");
    }
    let axe = results["axe"].as_array().unwrap();
    assert!(axe.len() >= 9, "{results}");
    assert!(axe.iter().all(|page| page["ok"] == true), "{results}");
    for name in SCREENSHOTS {
        let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{name}.png is not a PNG"
        );
    }

    // What the pages did, as the API sees it.
    let (s, certificate) = t
        .get(
            &m.provider,
            &format!("/v1/datasets/{upload_dataset}/versions/1/certificate"),
        )
        .await;
    assert_eq!(
        s, 200,
        "the uploaded version is not certified: {certificate}"
    );
    let (_, reviewed) = t
        .get(&m.reviewer, &format!("/v1/outputs/{review_output}"))
        .await;
    assert_eq!(reviewed["status"], "released", "{reviewed}");
    assert_eq!(
        reviewed["reviews"].as_array().unwrap().len(),
        2,
        "{reviewed}"
    );
    let (_, desk) = t.get(&m.exchange, &format!("/v1/products/{pending}")).await;
    assert_eq!(desk["status"], "listed", "{desk}");
    let (_, orders) = t.get(&m.buyer, "/v1/orders").await;
    assert!(
        orders
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["product_id"] == on_sale.as_str() && o["status"] == "delivered"),
        "{orders}"
    );
    let (_, models) = t.get(&m.dev, "/v1/models").await;
    assert!(
        models
            .as_array()
            .unwrap()
            .iter()
            .any(|model| model["name"] == "districts, from the browser"
                && model["body"] == MODEL_SQL),
        "{models}"
    );

    expiry.stop().await;
    m.t.stop().await;
}
