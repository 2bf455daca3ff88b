//! The developer pages of the web portal over HTTP, as a browser's session sees them
//! (issue #21): a developer with an approved grant on a published, conditionally open
//! dataset opens the dataset page (schema, released domains, dummy data), applies for
//! another grant with its form, dry-runs a query through the editor's JSON endpoint (the
//! one `static/runs.js` calls) and through the plain form, submits the run, polls the
//! status endpoint until the job is done, reads the output page with its check report
//! (redacted by the API until release), and once a reviewer released the output, reads
//! its table, downloads it and packages it as a product with the product form.
//!
//! Refusals are the API's: another developer's run and output are 404, a provider's
//! session gets 403 on every developer page, a visitor 401, a form or a dry run without
//! its CSRF token 403, and a refused form shows the API's status and detail. SQL text
//! and a dataset title holding `<script>` and `"><img onerror>` are shown escaped.

use std::time::Duration;

use pdx_sandbox::catalog::OpenAttribute;
use serde_json::{Value, json};

use crate::products::dataset as certified_dataset;
use crate::sandbox::{apply, approve};
use crate::support::{TestServer, csrf_of, get_page, portal_sign_in, post};

/// A title that would run a script if it were not escaped.
const TITLE: &str = "Enterprise electricity <script>alert(\"title\")</script>";
/// The model every run here uses: enterprises per district.
const SQL: &str = "SELECT district, COUNT(*) AS enterprises FROM data GROUP BY district";
/// The same model with markup in a comment, which the pages must show inert.
const XSS_SQL: &str = "-- <script>alert(1)</script> \"><img src=x onerror=alert(1)>\n\
    SELECT district, COUNT(*) AS enterprises FROM data GROUP BY district";

/// Everyone the developer pages meet, and a grant to work under.
struct World {
    t: TestServer,
    provider: String,
    dev: String,
    other_dev: String,
    reviewer: String,
    /// A published, certified, conditionally open electricity dataset.
    dataset: String,
    /// `dev`'s approved SQL grant on it.
    grant: String,
}

async fn world(t: TestServer) -> World {
    let (_, provider) = t.key_for("power-bureau", "provider").await;
    let (_, dev) = t.key_for("energy-analytics", "developer").await;
    let (_, other_dev) = t.key_for("rival-analytics", "developer").await;
    let (_, reviewer) = t.key_for("output-checkers", "reviewer").await;
    let dataset = certified_dataset(&t, &provider, TITLE, OpenAttribute::Conditional, false).await;
    let grant = apply(
        &t,
        &dev,
        &dataset,
        json!(["district", "industry", "kwh_12m"]),
        json!(["sql"]),
        0.0,
        50,
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

/// The developer signed in to the portal, and the CSRF token its editor's form carries.
async fn editor_session(w: &World) -> (reqwest::Client, String) {
    let dev = portal_sign_in(&w.t, &w.dev).await;
    let (s, _, editor) = get_page(&dev, &w.t, "/developer/sql").await;
    assert_eq!(s, 200, "{}: {editor}", w.t.backend);
    let csrf = csrf_of(&editor);
    (dev, csrf)
}

/// Submits a form (following the redirect a successful one answers with); returns the
/// status, the path and query it ended on, and the body.
async fn submit(
    client: &reqwest::Client,
    t: &TestServer,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let resp = client.post(t.url(path)).form(form).send().await.unwrap();
    let status = resp.status().as_u16();
    let url = resp.url();
    let end = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    (status, end, resp.text().await.unwrap())
}

/// Posts the editor's fields to the JSON dry-run endpoint, with `csrf` in the header
/// when given; returns the status and the JSON answer.
async fn dry_run_json(
    client: &reqwest::Client,
    t: &TestServer,
    csrf: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = client.post(t.url("/developer/sql/dry-run")).json(body);
    if let Some(token) = csrf {
        req = req.header("X-CSRF-Token", token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls the run's status endpoint (as `runs.js` does) until the job is done.
async fn wait_run(client: &reqwest::Client, t: &TestServer, job: &str) -> Value {
    let b = t.backend;
    for _ in 0..600 {
        let resp = client
            .get(t.url(&format!("/developer/runs/{job}/status")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{b}");
        let status: Value = resp.json().await.unwrap();
        assert!(status["progress"].is_number(), "{b}: {status}");
        assert!(status["status_label"].is_string(), "{b}: {status}");
        if status["done"].as_bool() == Some(true) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{b}: run {job} did not finish in 60 s");
}

/// The rows of a sample as sorted text (a grouped query's row order is not fixed).
fn sorted_rows(sample: &Value) -> Vec<String> {
    let mut rows: Vec<String> = sample
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    rows.sort();
    rows
}

/// The markup of the XSS strings must never appear as markup.
fn assert_inert(b: &str, html: &str) {
    assert!(
        !html.contains("<script>alert("),
        "{b}: a script tag from data"
    );
    assert!(!html.contains("<img src=x"), "{b}: an img tag from data");
    assert!(!html.contains("\"><img"), "{b}: an attribute broken out of");
}

#[tokio::test]
async fn a_developer_applies_dry_runs_runs_and_packages_a_release_in_the_portal() {
    for t in TestServer::both().await {
        let w = world(t).await;
        let t = &w.t;
        let b = t.backend;
        let dev = portal_sign_in(t, &w.dev).await;

        // The home page: the grant with its budget, the dataset by its (escaped) title.
        let (s, _, home) = get_page(&dev, t, "/developer").await;
        assert_eq!(s, 200, "{b}: {home}");
        assert!(
            home.contains(&w.grant),
            "{b}: grant missing from the home page"
        );
        assert!(
            home.contains(&format!("/developer/datasets/{}", w.dataset)),
            "{b}"
        );
        assert!(
            home.contains("共 50") || home.contains("of 50"),
            "{b}: no query budget"
        );
        assert!(
            home.contains("&lt;script&gt;"),
            "{b}: title not shown escaped"
        );
        assert_inert(b, &home);

        // The dataset page: schema, released domains, dummy data, the grant, a form.
        let (s, _, page) = get_page(&dev, t, &format!("/developer/datasets/{}", w.dataset)).await;
        assert_eq!(s, 200, "{b}: {page}");
        for column in ["credit_code", "district", "industry", "kwh_12m"] {
            assert!(page.contains(column), "{b}: column {column} missing");
        }
        assert!(
            page.contains("hierarchy"),
            "{b}: the district's rule is not shown"
        );
        assert!(
            page.contains(&w.grant),
            "{b}: the grant on this dataset is not listed"
        );
        assert!(
            page.contains("name=\"purpose\""),
            "{b}: no application form"
        );
        assert!(
            page.contains("&lt;script&gt;"),
            "{b}: title not shown escaped"
        );
        assert_inert(b, &page);
        // The dummy preview is the API's dummy data, district values among them.
        let (s, dummy) = t
            .get(&w.dev, &format!("/v1/datasets/{}/dummy?rows=10", w.dataset))
            .await;
        assert_eq!(s, 200, "{b}: {dummy}");
        let first_district = dummy[0]["district"].as_str().unwrap();
        assert!(page.contains(first_district), "{b}: dummy rows not shown");

        // A grant application through the form reaches the API as a pending grant.
        let csrf = csrf_of(&page);
        let form = [
            ("csrf", csrf.as_str()),
            ("purpose", "portal-filed energy study"),
            ("purpose_kind", "research"),
            ("columns", "district"),
            ("columns", "kwh_12m"),
            ("model_kinds", "sql"),
            ("term_days", "30"),
            ("query_budget", "5"),
            ("epsilon", "0"),
            ("delta", "0"),
        ];
        let path = format!("/developer/datasets/{}", w.dataset);
        let (s, end, after) = submit(&dev, t, &path, &form).await;
        assert_eq!(s, 200, "{b}: {after}");
        assert_eq!(end, path, "{b}");
        let (s, grants) = t.get(&w.dev, "/v1/grants").await;
        assert_eq!(s, 200, "{b}: {grants}");
        let filed = grants
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["purpose"] == "portal-filed energy study")
            .unwrap_or_else(|| panic!("{b}: the application did not reach the API"));
        assert_eq!(filed["status"], "pending", "{b}: {filed}");
        assert_eq!(
            filed["columns"],
            json!(["district", "kwh_12m"]),
            "{b}: {filed}"
        );
        assert_eq!(filed["purpose_kind"], "research", "{b}: {filed}");
        assert!(
            after.contains(filed["id"].as_str().unwrap()),
            "{b}: not listed after filing"
        );
        // A refused application shows the API's status and detail, and keeps the text.
        let refused = [
            ("csrf", csrf.as_str()),
            ("purpose", "kept purpose text"),
            ("columns", "district"),
            ("model_kinds", "sql"),
            ("term_days", "5000"),
            ("query_budget", "5"),
        ];
        let (s, _, again) = submit(&dev, t, &path, &refused).await;
        assert_eq!(s, 422, "{b}: a term over three years must be the API's 422");
        assert!(again.contains("422"), "{b}: the status is not shown");
        assert!(
            again.contains("kept purpose text"),
            "{b}: the form lost its text"
        );

        // The editor offers the approved grant.
        let (s, _, editor) = get_page(&dev, t, &format!("/developer/sql?grant={}", w.grant)).await;
        assert_eq!(s, 200, "{b}: {editor}");
        assert!(editor.contains(&w.grant), "{b}: the grant is not offered");
        assert!(
            editor.contains("data-dry-run-url"),
            "{b}: no hook for runs.js"
        );
        let csrf = csrf_of(&editor);

        // The instant dry run (runs.js's endpoint): the API's answer and its fragment.
        let body = json!({"grant_id": w.grant, "kind": "sql", "body": SQL, "name": "districts"});
        let (s, dry) = dry_run_json(&dev, t, Some(&csrf), &body).await;
        assert_eq!(s, 200, "{b}: {dry}");
        let sample = dry["result"]["sample"].as_array().unwrap();
        assert!(!sample.is_empty(), "{b}: {dry}");
        assert!(sample[0].get("enterprises").is_some(), "{b}: {dry}");
        assert!(dry["result"]["report"].is_object(), "{b}: {dry}");
        let fragment = dry["html"].as_str().unwrap();
        assert!(fragment.contains("enterprises"), "{b}: {fragment}");
        assert!(fragment.contains("<table"), "{b}: {fragment}");
        // The same dry run straight from the API gives the same rows (in some order).
        let (s, direct) = post(
            t,
            &w.dev,
            "/v1/dry-run",
            json!({"kind": "sql", "body": SQL, "dataset_id": w.dataset}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {direct}");
        assert_eq!(
            sorted_rows(&direct["sample"]),
            sorted_rows(&dry["result"]["sample"]),
            "{b}"
        );
        // A refused dry run comes back with the API's status and detail.
        let bad = json!({"grant_id": w.grant, "kind": "sql", "body": "SELECT * FROM data"});
        let (s, no) = dry_run_json(&dev, t, Some(&csrf), &bad).await;
        assert!((400..500).contains(&s), "{b}: {s} {no}");
        assert_eq!(no["status"], s, "{b}: {no}");
        assert!(!no["detail"].as_str().unwrap().is_empty(), "{b}: {no}");
        assert!(
            no["html"].as_str().unwrap().contains(&s.to_string()),
            "{b}: {no}"
        );

        // The same dry run without JavaScript: the editor comes back with the result.
        let form = [
            ("csrf", csrf.as_str()),
            ("action", "dry_run"),
            ("grant_id", w.grant.as_str()),
            ("kind", "sql"),
            ("name", "districts"),
            ("body", SQL),
        ];
        let (s, _, shown) = submit(&dev, t, "/developer/sql", &form).await;
        assert_eq!(s, 200, "{b}: {shown}");
        assert!(shown.contains("id=\"dry-run-result\""), "{b}");
        assert!(
            shown.contains("<th scope=\"row\"><code>enterprises</code></th>"),
            "{b}: no preview in the page"
        );

        // Submitting registers the model, starts the run and lands on its page.
        let form = [
            ("csrf", csrf.as_str()),
            ("action", "run"),
            ("grant_id", w.grant.as_str()),
            ("kind", "sql"),
            ("name", "districts"),
            ("body", SQL),
        ];
        let (s, end, run_page) = submit(&dev, t, "/developer/sql", &form).await;
        assert_eq!(s, 200, "{b}: {run_page}");
        let job = end
            .strip_prefix("/developer/runs/")
            .unwrap_or_else(|| panic!("{b}: the run did not land on its page: {end}"))
            .to_string();
        assert!(
            run_page.contains("data-run-status-url"),
            "{b}: no hook for runs.js"
        );
        assert!(run_page.contains("<progress"), "{b}: no progress bar");
        assert!(
            run_page.contains("COUNT(*) AS enterprises"),
            "{b}: model text missing"
        );
        let (s, api_job) = t.get(&w.dev, &format!("/v1/jobs/{job}")).await;
        assert_eq!(s, 200, "{b}: {api_job}");
        assert_eq!(api_job["kind"], "model_run", "{b}: {api_job}");

        // Live progress: the status endpoint until the job is done.
        let status = wait_run(&dev, t, &job).await;
        assert_eq!(status["status"], "succeeded", "{b}: {status}");
        let output_url = status["output_url"].as_str().unwrap().to_string();
        let output = output_url
            .strip_prefix("/developer/outputs/")
            .unwrap()
            .to_string();
        let (s, _, run_page) = get_page(&dev, t, &format!("/developer/runs/{job}")).await;
        assert_eq!(s, 200, "{b}: {run_page}");
        assert!(
            run_page.contains(&output_url),
            "{b}: no output link once done"
        );
        assert!(run_page.contains("data-run-done=\"true\""), "{b}");

        // The output page: the check report as the API shows its developer, nothing more.
        let (s, mine) = t.get(&w.dev, &format!("/v1/outputs/{output}")).await;
        assert_eq!(s, 200, "{b}: {mine}");
        assert_eq!(mine["status"], "quarantined", "{b}: {mine}");
        let (s, _, out_page) = get_page(&dev, t, &output_url).await;
        assert_eq!(s, 200, "{b}: {out_page}");
        assert!(out_page.contains(&output), "{b}");
        assert!(
            out_page.contains("threshold"),
            "{b}: the report's rules are missing"
        );
        for check in mine["check_report"]["passed"].as_array().unwrap() {
            let check = check.as_str().unwrap();
            assert!(
                out_page.contains(check),
                "{b}: passed check {check} missing"
            );
        }
        for withheld in ["cells_total", "cells_suppressed", "values_suppressed"] {
            assert!(
                !out_page.contains(withheld),
                "{b}: {withheld} shown before release"
            );
        }
        assert!(
            !out_page.contains("?show=table"),
            "{b}: a table offered before release"
        );

        // A reviewer releases it; the developer then sees the table and downloads it.
        let (s, released) = post(
            t,
            &w.reviewer,
            &format!("/v1/review/{output}"),
            json!({"approve": true, "reason": "district counts over many enterprises"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {released}");
        assert_eq!(released["status"], "released", "{b}: {released}");
        let release_id = released["release_id"].as_str().unwrap().to_string();
        let (s, _, out_page) = get_page(&dev, t, &format!("{output_url}?show=table")).await;
        assert_eq!(s, 200, "{b}: {out_page}");
        assert!(out_page.contains(&release_id), "{b}: release id missing");
        assert!(out_page.contains("id=\"table\""), "{b}: no table section");
        assert!(
            out_page.contains("<th scope=\"col\">enterprises</th>"),
            "{b}: no header"
        );
        let resp = dev
            .get(t.url(&format!("{output_url}/download?format=csv")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{b}");
        let disposition = resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(disposition.starts_with("attachment"), "{b}: {disposition}");
        let csv = resp.text().await.unwrap();
        assert!(csv.starts_with("district,enterprises"), "{b}: {csv}");

        // Packaging: the form offers the release; a bad price is the page's 422, a good
        // one creates the product through the API (yuan become fen).
        let (s, _, new) = get_page(
            &dev,
            t,
            &format!("/developer/products/new?release={release_id}"),
        )
        .await;
        assert_eq!(s, 200, "{b}: {new}");
        assert!(new.contains(&release_id), "{b}: the release is not offered");
        let csrf = csrf_of(&new);
        let mut form = [
            ("csrf", csrf.as_str()),
            ("title", "District enterprise counts"),
            ("description", "Enterprises per district"),
            ("licence_kind", "commercial_internal"),
            ("term_days", "30"),
            ("price_yuan", "123.456"),
            ("public_finance_bp", "3000"),
            ("platform_bp", "1000"),
            ("developer_bp", "6000"),
            ("releases", release_id.as_str()),
        ];
        let (s, _, refused) = submit(&dev, t, "/developer/products/new", &form).await;
        assert_eq!(s, 422, "{b}: {refused}");
        assert!(
            refused.contains("District enterprise counts"),
            "{b}: the form lost its text"
        );
        form[5] = ("price_yuan", "123.45");
        let (s, end, home) = submit(&dev, t, "/developer/products/new", &form).await;
        assert_eq!(s, 200, "{b}: {home}");
        assert!(end.starts_with("/developer?product=prd_"), "{b}: {end}");
        let (s, products) = t.get(&w.dev, "/v1/products?mine=true").await;
        assert_eq!(s, 200, "{b}: {products}");
        let product = &products.as_array().unwrap()[0];
        assert_eq!(product["price_minor"], 12_345, "{b}: {product}");
        assert_eq!(product["status"], "pending_review", "{b}: {product}");
        assert_eq!(
            product["split"]["public_finance_bp"], 3000,
            "{b}: {product}"
        );
        assert!(
            home.contains(product["id"].as_str().unwrap()),
            "{b}: product not listed"
        );

        w.t.stop().await;
    }
}

#[tokio::test]
async fn other_roles_and_other_developers_are_refused_as_the_api_refuses_them() {
    for t in TestServer::both().await {
        let w = world(t).await;
        let t = &w.t;
        let b = t.backend;
        let (dev, csrf) = editor_session(&w).await;
        let form = [
            ("csrf", csrf.as_str()),
            ("action", "run"),
            ("grant_id", w.grant.as_str()),
            ("kind", "sql"),
            ("body", SQL),
        ];
        let (s, end, _) = submit(&dev, t, "/developer/sql", &form).await;
        assert_eq!(s, 200, "{b}");
        let job = end.strip_prefix("/developer/runs/").unwrap().to_string();
        let status = wait_run(&dev, t, &job).await;
        let output_url = status["output_url"].as_str().unwrap().to_string();
        let output = output_url
            .strip_prefix("/developer/outputs/")
            .unwrap()
            .to_string();

        // Another developer: the API's 404 for the run, its status and the output.
        let other = portal_sign_in(t, &w.other_dev).await;
        let (s, api) = t.get(&w.other_dev, &format!("/v1/jobs/{job}")).await;
        assert_eq!(s, 404, "{b}: {api}");
        let (s, api) = t.get(&w.other_dev, &format!("/v1/outputs/{output}")).await;
        assert_eq!(s, 404, "{b}: {api}");
        for path in [
            format!("/developer/runs/{job}"),
            format!("/developer/runs/{job}/status"),
            output_url.clone(),
            format!("{output_url}/download?format=csv"),
        ] {
            let (s, _, body) = get_page(&other, t, &path).await;
            assert_eq!(s, 404, "{b}: {path} for another developer: {body}");
        }
        let (s, _, body) = get_page(&other, t, "/developer/runs/not-a-job").await;
        assert_eq!(s, 404, "{b}: a malformed id: {body}");
        let (s, _, body) = get_page(&other, t, "/developer").await;
        assert_eq!(s, 200, "{b}: {body}");
        assert!(
            !body.contains(&job),
            "{b}: another organisation's run is listed"
        );

        // A provider: the API's 403 on the developer routes, and on every page here.
        let (s, api) = t.get(&w.provider, "/v1/models").await;
        assert_eq!(s, 403, "{b}: {api}");
        let provider = portal_sign_in(t, &w.provider).await;
        for path in [
            "/developer".to_string(),
            format!("/developer/datasets/{}", w.dataset),
            "/developer/sql".to_string(),
            "/developer/runs".to_string(),
            format!("/developer/runs/{job}"),
            output_url.clone(),
            "/developer/products/new".to_string(),
        ] {
            let (s, _, body) = get_page(&provider, t, &path).await;
            assert_eq!(s, 403, "{b}: {path} as a provider: {body}");
        }
        let (_, _, provider_home) = get_page(&provider, t, "/").await;
        let provider_csrf = csrf_of(&provider_home);
        let body = json!({"grant_id": w.grant, "kind": "sql", "body": SQL});
        let (s, no) = dry_run_json(&provider, t, Some(&provider_csrf), &body).await;
        assert_eq!(s, 403, "{b}: a provider's dry run: {no}");

        // A visitor without a session: 401, as the API answers without a key.
        let visitor = reqwest::Client::new();
        for path in ["/developer", "/developer/sql", "/developer/runs"] {
            let (s, _, body) = get_page(&visitor, t, path).await;
            assert_eq!(s, 401, "{b}: {path} without a session: {body}");
        }

        // CSRF: the dry run without its header, the forms without their field.
        let body = json!({"grant_id": w.grant, "kind": "sql", "body": SQL});
        let (s, no) = dry_run_json(&dev, t, None, &body).await;
        assert_eq!(s, 403, "{b}: a dry run without the CSRF header: {no}");
        let (s, no) = dry_run_json(&dev, t, Some("forged"), &body).await;
        assert_eq!(s, 403, "{b}: a dry run with a forged token: {no}");
        let (s, models_before) = t.get(&w.dev, "/v1/models").await;
        assert_eq!(s, 200, "{b}");
        let no_token = [
            ("action", "run"),
            ("grant_id", w.grant.as_str()),
            ("kind", "sql"),
            ("body", SQL),
        ];
        let (s, _, _) = submit(&dev, t, "/developer/sql", &no_token).await;
        assert_eq!(s, 403, "{b}: a run form without its token");
        let (_, models_after) = t.get(&w.dev, "/v1/models").await;
        assert_eq!(
            models_before, models_after,
            "{b}: a forged form registered a model"
        );
        let path = format!("/developer/datasets/{}", w.dataset);
        let (s, _, _) = submit(
            &dev,
            t,
            &path,
            &[
                ("purpose", "forged"),
                ("columns", "district"),
                ("model_kinds", "sql"),
            ],
        )
        .await;
        assert_eq!(s, 403, "{b}: a grant form without its token");
        let (s, _, _) = submit(&dev, t, "/developer/products/new", &[("title", "forged")]).await;
        assert_eq!(s, 403, "{b}: a product form without its token");
        // Malformed JSON with a good token is a 400, not a 500.
        let resp = dev
            .post(t.url("/developer/sql/dry-run"))
            .header("X-CSRF-Token", &csrf)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{b}");

        w.t.stop().await;
    }
}

#[tokio::test]
async fn sql_text_and_titles_holding_markup_are_shown_inert() {
    for t in TestServer::both().await {
        let w = world(t).await;
        let t = &w.t;
        let b = t.backend;
        let (dev, csrf) = editor_session(&w).await;

        // The editor comes back with the text (dry run without JavaScript), escaped.
        let form = [
            ("csrf", csrf.as_str()),
            ("action", "dry_run"),
            ("grant_id", w.grant.as_str()),
            ("kind", "sql"),
            ("name", "<script>alert(1)</script>"),
            ("body", XSS_SQL),
        ];
        let (s, _, page) = submit(&dev, t, "/developer/sql", &form).await;
        assert!(s < 500, "{b}: {s}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{b}: {page}"
        );
        assert!(
            page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
            "{b}"
        );
        assert_inert(b, &page);

        // Run it: the run page (or the refusal page) shows the model text escaped, and
        // so do the home page's model list and the editor opened on the model.
        let form = [
            ("csrf", csrf.as_str()),
            ("action", "run"),
            ("grant_id", w.grant.as_str()),
            ("kind", "sql"),
            ("name", "\"><img src=x onerror=alert(1)>"),
            ("body", XSS_SQL),
        ];
        let (s, end, page) = submit(&dev, t, "/developer/sql", &form).await;
        assert!(s < 500, "{b}: {s}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{b}: {end}"
        );
        assert_inert(b, &page);
        if let Some(job) = end.strip_prefix("/developer/runs/") {
            wait_run(&dev, t, job).await;
            for path in [format!("/developer/runs/{job}"), "/developer".to_string()] {
                let (s, _, page) = get_page(&dev, t, &path).await;
                assert_eq!(s, 200, "{b}: {path}");
                assert_inert(b, &page);
            }
            let (_, models) = t.get(&w.dev, "/v1/models").await;
            let model = models[0]["id"].as_str().unwrap();
            let (s, _, page) = get_page(&dev, t, &format!("/developer/sql?model={model}")).await;
            assert_eq!(s, 200, "{b}");
            assert!(
                page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{b}: not loaded"
            );
            assert_inert(b, &page);
        }

        // The instant dry run's fragment is escaped too (its sample and report).
        let body = json!({"grant_id": w.grant, "kind": "sql", "body": XSS_SQL});
        let (s, dry) = dry_run_json(&dev, t, Some(&csrf), &body).await;
        assert!(s < 500, "{b}: {dry}");
        assert_inert(b, dry["html"].as_str().unwrap());

        // The dataset's title on the dataset page, the home page and the editor.
        for path in [
            format!("/developer/datasets/{}", w.dataset),
            "/developer".to_string(),
            format!("/developer/sql?grant={}", w.grant),
        ] {
            let (s, _, page) = get_page(&dev, t, &path).await;
            assert_eq!(s, 200, "{b}: {path}");
            assert!(
                page.contains("&lt;script&gt;alert(&quot;title&quot;)"),
                "{b}: {path}"
            );
            assert_inert(b, &page);
        }

        w.t.stop().await;
    }
}
