//! The provider's pages of the web portal over HTTP, as a browser's session sees them,
//! on SQLite and PostgreSQL.
//!
//! A provider signs in, registers the Adult census extract through the registration
//! form (its schema as JSON), uploads a slice of the real Adult file through the
//! portal's streaming upload endpoint (the raw file as the body, the CSRF token in
//! `X-CSRF-Token`, more bytes than the JSON body limit), follows the ingest job through
//! the portal to its certificate, and reads the de-identification report with its SVG
//! charts; it submits the entry through the form, and once the data authority has
//! published it, approves one grant application and refuses another through the forms,
//! each decision visible in the API afterwards. Refusals are the API's: a form the API
//! refuses shows the API's status and detail, another provider's dataset is 404 as in
//! the API, a developer's session gets the API's 403 on every provider page, a visitor
//! 401, and the upload without its CSRF header (or with a wrong one) is refused 403 with
//! nothing ingested. A title holding markup is shown inert.

use pdx::samples;
use pdx_sandbox::catalog::OpenAttribute;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::support::{TestServer, csrf_of, get_page, portal_sign_in, post};

/// The title the form registers: markup in it must come back inert.
const TITLE: &str = "Adult census via the portal <script>alert(1)</script>";

/// Records of the Adult file uploaded (about 120 KB: more than the 64 KiB JSON limit of
/// the test servers, so the upload must stream).
const ADULT_ROWS: usize = 1500;

/// The first `rows` records of the Adult extract with its header (`;`-separated).
fn adult_slice(rows: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(samples::shared_data_dir().join("adult/adult.csv")).unwrap();
    let mut out = String::new();
    for line in text.lines().take(rows + 1) {
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// The Adult registration as the portal's form fields (the schema as JSON text).
fn adult_form(csrf: &str, title: &str) -> Vec<(String, String)> {
    let dataset = samples::adult_dataset(
        &samples::shared_data_dir().join("adult"),
        OpenAttribute::Conditional,
    )
    .unwrap();
    let v = serde_json::to_value(&dataset).unwrap();
    let text = |k: &str| v[k].as_str().unwrap().to_string();
    let mut form: Vec<(String, String)> = [
        "description",
        "theme",
        "source_department",
        "collecting_department",
        "approving_department",
        "providing_department",
        "data_form",
        "update_frequency",
        "level",
        "share_type",
        "share_conditions",
        "legal_basis",
        "open_attribute",
    ]
    .into_iter()
    .map(|k| (k.to_string(), text(k)))
    .collect();
    form.push(("csrf".into(), csrf.into()));
    form.push(("title".into(), title.into()));
    form.push(("elements".into(), dataset.elements.join(", ")));
    form.push((
        "schema".into(),
        serde_json::to_string(&dataset.schema).unwrap(),
    ));
    form
}

/// The form with one field replaced.
fn with_field(form: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    form.iter()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// Posts a form and follows the redirect a successful one answers with (whether or not
/// the client follows redirects itself); returns the status, the path and query it
/// ended on, and the body.
async fn submit<F: serde::Serialize + ?Sized>(
    client: &reqwest::Client,
    t: &TestServer,
    path: &str,
    form: &F,
) -> (u16, String, String) {
    let resp = client.post(t.url(path)).form(form).send().await.unwrap();
    if resp.status() == reqwest::StatusCode::SEE_OTHER {
        let location = resp.headers()[LOCATION].to_str().unwrap().to_string();
        return get_page(client, t, &location).await;
    }
    let status = resp.status().as_u16();
    let end = match resp.url().query() {
        Some(q) => format!("{}?{q}", resp.url().path()),
        None => resp.url().path().to_string(),
    };
    (status, end, resp.text().await.unwrap())
}

/// Uploads `body` through the portal's upload endpoint with `csrf` in `X-CSRF-Token`
/// (None: no header); returns the status and the answer as JSON (or text).
async fn upload(
    client: &reqwest::Client,
    t: &TestServer,
    dataset: &str,
    query: &str,
    csrf: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = client
        .post(t.url(&format!("/provider/datasets/{dataset}/upload{query}")))
        .header("content-type", "text/csv")
        .body(body);
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

/// Polls the portal's job endpoint until the ingest job finishes.
async fn wait_portal_job(client: &reqwest::Client, t: &TestServer, job: &str) -> Value {
    for _ in 0..600 {
        let resp = client
            .get(t.url(&format!("/provider/jobs/{job}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{}", t.backend);
        let state: Value = resp.json().await.unwrap();
        if state["status"] == "succeeded" || state["status"] == "failed" {
            return state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("job {job} did not finish in 60 s");
}

/// The dataset id at the end of a `/provider/datasets/{id}` path.
fn dataset_of(path: &str) -> String {
    let id = path
        .strip_prefix("/provider/datasets/")
        .unwrap_or_else(|| panic!("not a dataset page: {path}"));
    id.split(['?', '/']).next().unwrap().to_string()
}

#[tokio::test]
async fn a_provider_registers_uploads_reads_the_report_and_answers_grants_in_the_portal() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("statistics-bureau", "provider").await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("census-lab", "developer").await;
        let (_, dev2) = t.key_for("income-lab", "developer").await;
        let browser = portal_sign_in(&t, &provider).await;

        // The provider's home: the registration form with a real example schema.
        let (s, _, home) = get_page(&browser, &t, "/provider").await;
        assert_eq!(s, 200, "{b}: {home}");
        assert!(
            home.contains("action=\"/provider/datasets\""),
            "{b}: {home}"
        );
        assert!(home.contains("name=\"schema\""), "{b}");
        assert!(
            home.contains("credit_code"),
            "{b}: the example schema is shown"
        );
        let csrf = csrf_of(&home);
        let form = adult_form(&csrf, TITLE);

        // A schema that is not JSON is a 422 with the form kept as filled.
        let (s, _, page) = submit(
            &browser,
            &t,
            "/provider/datasets",
            &with_field(&form, "schema", "{\"columns\": ["),
        )
        .await;
        assert_eq!(s, 422, "{b}: {page}");
        assert!(
            page.contains("Adult census via the portal &lt;script&gt;"),
            "{b}: the form is refilled"
        );
        // The API's own refusal: its status and its detail (no legal basis for a
        // conditionally shared dataset); nothing registered.
        let (s, _, page) = submit(
            &browser,
            &t,
            "/provider/datasets",
            &with_field(&form, "legal_basis", " "),
        )
        .await;
        assert_eq!(s, 422, "{b}: {page}");
        assert!(page.contains("must state its legal_basis"), "{b}: {page}");
        let (_, mine) = t.get(&provider, "/v1/datasets").await;
        assert_eq!(mine["total"], 0, "{b}: {mine}");
        // Without the CSRF token: 403, nothing registered.
        let (s, _, _) = submit(
            &browser,
            &t,
            "/provider/datasets",
            &with_field(&form, "csrf", ""),
        )
        .await;
        assert_eq!(s, 403, "{b}");
        let (_, mine) = t.get(&provider, "/v1/datasets").await;
        assert_eq!(mine["total"], 0, "{b}: {mine}");

        // The registration: a draft, on the API as the form filled it.
        let (s, end, page) = submit(&browser, &t, "/provider/datasets", &form).await;
        assert_eq!(s, 200, "{b}: {page}");
        let id = dataset_of(&end);
        assert!(
            end.contains("notice=registered") || page.contains("class=\"notice\""),
            "{b}: {end}"
        );
        let (s, entry) = t.get(&provider, &format!("/v1/datasets/{id}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["status"], "draft", "{b}: {entry}");
        assert_eq!(entry["title"], TITLE, "{b}: {entry}");
        assert_eq!(entry["level"], "L3", "{b}: {entry}");
        assert_eq!(entry["schema"]["privacy"]["k"], 5, "{b}: {entry}");
        assert_eq!(
            entry["elements"],
            json!(["census.person_income"]),
            "{b}: {entry}"
        );
        // The title is shown inert.
        assert!(!page.contains("<script>alert(1)"), "{b}: {page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{b}"
        );

        // The upload page: a file input, a <progress>, the form the script finds.
        let (s, _, upload_page) =
            get_page(&browser, &t, &format!("/provider/datasets/{id}/upload")).await;
        assert_eq!(s, 200, "{b}: {upload_page}");
        assert!(upload_page.contains("type=\"file\""), "{b}");
        assert!(upload_page.contains("<progress"), "{b}");
        assert!(upload_page.contains("data-upload"), "{b}");
        assert!(upload_page.contains("upload.js"), "{b}");
        let csrf = csrf_of(&upload_page);
        let csv = adult_slice(ADULT_ROWS);
        assert!(
            csv.len() > 64 * 1024,
            "{b}: the slice must exceed the JSON body limit"
        );

        // Without the CSRF header, or with a wrong one: 403, nothing ingested.
        let (s, _) = upload(&browser, &t, &id, "?delimiter=%3B", None, csv.clone()).await;
        assert_eq!(s, 403, "{b}");
        let (s, _) = upload(
            &browser,
            &t,
            &id,
            "?delimiter=%3B",
            Some("not-the-token"),
            csv.clone(),
        )
        .await;
        assert_eq!(s, 403, "{b}");
        let (_, jobs) = t.get(&provider, "/v1/jobs").await;
        assert_eq!(jobs, json!([]), "{b}: {jobs}");
        let (_, versions) = t
            .get(&provider, &format!("/v1/datasets/{id}/versions"))
            .await;
        assert_eq!(versions, json!([]), "{b}: {versions}");
        // An upload parameter the API refuses comes back with the API's status.
        let (s, problem) = upload(
            &browser,
            &t,
            &id,
            "?format=xlsx",
            Some(&csrf),
            b"a,b\n".to_vec(),
        )
        .await;
        assert_eq!(s, 422, "{b}: {problem}");
        assert_eq!(problem["status"], 422, "{b}: {problem}");

        // The upload: the API's 202 with the ingest job, followed through the portal to
        // the certificate.
        let (s, job) = upload(&browser, &t, &id, "?delimiter=%3B", Some(&csrf), csv).await;
        assert_eq!(s, 202, "{b}: {job}");
        let job_id = job["id"].as_str().unwrap().to_string();
        let state = wait_portal_job(&browser, &t, &job_id).await;
        assert_eq!(state["status"], "succeeded", "{b}: {state}");
        assert_eq!(state["version"], 1, "{b}: {state}");
        let report_url = format!("/provider/datasets/{id}/versions/1/report");
        assert_eq!(state["report_url"], report_url.as_str(), "{b}: {state}");
        let (s, version) = t
            .get(&provider, &format!("/v1/datasets/{id}/versions/1"))
            .await;
        assert_eq!(s, 200, "{b}: {version}");
        let certificate_no = version["certificate_no"].as_str().unwrap().to_string();
        assert_eq!(
            state["certificate_no"],
            certificate_no.as_str(),
            "{b}: {state}"
        );
        assert_eq!(
            version["rows"].as_u64().unwrap() + version["report"]["suppressed"].as_u64().unwrap(),
            ADULT_ROWS as u64,
            "{b}: {version}"
        );

        // The report: certificate, hashes, levels per quasi-identifier, charts.
        let (s, _, report) = get_page(&browser, &t, &report_url).await;
        assert_eq!(s, 200, "{b}: {report}");
        assert!(report.contains(&certificate_no), "{b}: {report}");
        assert!(
            report.contains(version["content_hash"].as_str().unwrap()),
            "{b}"
        );
        assert!(report.contains("<svg"), "{b}: the report has a chart");
        for qi in ["age", "education", "native-country"] {
            assert!(report.contains(qi), "{b}: {qi} is not in the report");
        }
        // The dataset page lists the version with its certificate.
        let (s, _, page) = get_page(&browser, &t, &format!("/provider/datasets/{id}")).await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(page.contains(&certificate_no), "{b}");
        assert!(page.contains(&report_url), "{b}");

        // Submitted through the form; the data authority publishes it.
        let csrf = csrf_of(&page);
        let (s, end, _) = submit(
            &browser,
            &t,
            &format!("/provider/datasets/{id}/submit"),
            &[("csrf", csrf.as_str())],
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(dataset_of(&end), id, "{b}: {end}");
        let (_, entry) = t.get(&provider, &format!("/v1/datasets/{id}")).await;
        assert_eq!(entry["status"], "submitted", "{b}: {entry}");
        let (s, entry) = post(
            &t,
            t.authority().await,
            &format!("/v1/datasets/{id}/review"),
            json!({"decision": "approve"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["status"], "published", "{b}: {entry}");

        // Two applications; the grants page shows each with its working-day deadline.
        let mut grants = Vec::new();
        for developer in [&dev, &dev2] {
            let (s, grant) = post(
                &t,
                developer,
                "/v1/grants",
                json!({
                    "dataset_id": id,
                    "purpose": "income inequality by region",
                    "columns": ["age", "sex", "salary-class"],
                    "model_kinds": ["sql"],
                    "term_days": 30,
                    "query_budget": 5,
                }),
            )
            .await;
            assert_eq!(s, 201, "{b}: {grant}");
            grants.push(grant);
        }
        let approve_id = grants[0]["id"].as_str().unwrap().to_string();
        let refuse_id = grants[1]["id"].as_str().unwrap().to_string();
        let (s, _, page) = get_page(&browser, &t, "/provider/grants").await;
        assert_eq!(s, 200, "{b}: {page}");
        for grant in &grants {
            assert!(page.contains(grant["id"].as_str().unwrap()), "{b}");
            assert!(
                page.contains(grant["answer_deadline"].as_str().unwrap()),
                "{b}"
            );
        }
        // The home lists both as due, with their deadlines.
        let (_, _, home) = get_page(&browser, &t, "/provider").await;
        assert!(
            home.contains(grants[0]["answer_deadline"].as_str().unwrap()),
            "{b}"
        );
        assert!(
            home.contains(&certificate_no) || home.contains(&report_url),
            "{b}: the latest version is listed"
        );
        let csrf = csrf_of(&page);

        // Approved through the form, narrowing the term: the API shows it.
        let decision = format!("/provider/grants/{approve_id}/decision");
        let (s, end, page) = submit(
            &browser,
            &t,
            &decision,
            &[
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
                ("term_days", "20"),
            ],
        )
        .await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(end.starts_with("/provider/grants"), "{b}: {end}");
        let (_, grant) = t.get(&provider, &format!("/v1/grants/{approve_id}")).await;
        assert_eq!(grant["status"], "approved", "{b}: {grant}");
        assert_eq!(grant["term_days"], 20, "{b}: {grant}");

        // A refusal without a reason: the API's 422 and detail; still pending. Without
        // the CSRF token: 403, still pending. With a reason: refused.
        let decision = format!("/provider/grants/{refuse_id}/decision");
        let (s, _, page) = submit(
            &browser,
            &t,
            &decision,
            &[
                ("csrf", csrf.as_str()),
                ("decision", "refuse"),
                ("reason", ""),
            ],
        )
        .await;
        assert_eq!(s, 422, "{b}: {page}");
        assert!(page.contains("a refusal must give a"), "{b}: {page}");
        let (s, _, _) = submit(
            &browser,
            &t,
            &decision,
            &[("csrf", ""), ("decision", "refuse"), ("reason", "no")],
        )
        .await;
        assert_eq!(s, 403, "{b}");
        let (_, grant) = t.get(&provider, &format!("/v1/grants/{refuse_id}")).await;
        assert_eq!(grant["status"], "pending", "{b}: {grant}");
        let reason = "the purpose needs columns the extract does not release";
        let (s, _, _) = submit(
            &browser,
            &t,
            &decision,
            &[
                ("csrf", csrf.as_str()),
                ("decision", "refuse"),
                ("reason", reason),
            ],
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let (_, grant) = t.get(&provider, &format!("/v1/grants/{refuse_id}")).await;
        assert_eq!(grant["status"], "refused", "{b}: {grant}");
        assert_eq!(grant["reason"], reason, "{b}: {grant}");

        // How the dataset was used: its grants, per version, with a chart.
        let (s, _, page) = get_page(&browser, &t, &format!("/provider/datasets/{id}/usage")).await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(
            page.contains(&approve_id) && page.contains(&refuse_id),
            "{b}"
        );
        assert!(page.contains(&certificate_no), "{b}");
        assert!(page.contains("<svg"), "{b}");

        // Another provider: the first provider's dataset pages are 404, as the API's
        // provider routes answer it; its own home does not list them.
        let (_, other_entry) = post(&t, &other_provider, "/v1/datasets", {
            let mut e = serde_json::to_value(samples::electricity_dataset()).unwrap();
            e["title"] = json!("Water use of enterprises");
            e["elements"] = json!([]);
            e
        })
        .await;
        let other_id = other_entry["id"].as_str().unwrap().to_string();
        let other = portal_sign_in(&t, &other_provider).await;
        let (api_status, _) = t
            .get(&other_provider, &format!("/v1/datasets/{id}/usage"))
            .await;
        assert_eq!(api_status, 404, "{b}");
        for path in [
            format!("/provider/datasets/{id}"),
            format!("/provider/datasets/{id}/upload"),
            format!("/provider/datasets/{id}/usage"),
            report_url.clone(),
        ] {
            let (s, _, _) = get_page(&other, &t, &path).await;
            assert_eq!(s, api_status, "{b}: {path}");
        }
        let (s, _, home) = get_page(&other, &t, "/provider").await;
        assert_eq!(s, 200, "{b}");
        assert!(home.contains("Water use of enterprises"), "{b}");
        assert!(
            !home.contains(&id),
            "{b}: another provider's dataset is listed"
        );
        // Its upload to the first provider's dataset is the API's 404; nothing changes.
        let (_, _, own_page) =
            get_page(&other, &t, &format!("/provider/datasets/{other_id}/upload")).await;
        let other_csrf = csrf_of(&own_page);
        let (s, _) = upload(
            &other,
            &t,
            &id,
            "?delimiter=%3B",
            Some(&other_csrf),
            adult_slice(20),
        )
        .await;
        assert_eq!(s, 404, "{b}");
        let (_, versions) = t
            .get(&provider, &format!("/v1/datasets/{id}/versions"))
            .await;
        assert_eq!(versions.as_array().map(Vec::len), Some(1), "{b}");

        // A developer's session: every provider page is the API's 403.
        let developer = portal_sign_in(&t, &dev).await;
        let (s_write, _) = post(&t, &dev, "/v1/datasets", json!({})).await;
        let (s_policy, _) = t
            .get(&dev, &format!("/v1/datasets/{id}/output-policy"))
            .await;
        let (s_usage, _) = t.get(&dev, &format!("/v1/datasets/{id}/usage")).await;
        let (s_decide, _) = post(
            &t,
            &dev,
            &format!("/v1/grants/{approve_id}/decision"),
            json!({"approve": true}),
        )
        .await;
        assert_eq!([s_write, s_policy, s_usage, s_decide], [403; 4], "{b}");
        for (path, api) in [
            ("/provider".to_string(), s_write),
            (format!("/provider/datasets/{id}"), s_policy),
            (format!("/provider/datasets/{id}/upload"), s_policy),
            (report_url.clone(), s_policy),
            (format!("/provider/datasets/{id}/usage"), s_usage),
            ("/provider/grants".to_string(), s_decide),
            ("/provider/objections".to_string(), s_decide),
        ] {
            let (s, _, page) = get_page(&developer, &t, &path).await;
            assert_eq!(s, api, "{b}: {path}: {page}");
        }
        // The session's CSRF token, from any page the developer may see.
        let mut dev_csrf = None;
        for path in ["/developer", "/catalog", "/"] {
            let (s, _, page) = get_page(&developer, &t, path).await;
            if s == 200 && page.contains("name=\"csrf\"") {
                dev_csrf = Some(csrf_of(&page));
                break;
            }
        }
        let dev_csrf = dev_csrf.expect("a page with the developer's CSRF token");
        let (s, _) = upload(
            &developer,
            &t,
            &id,
            "?delimiter=%3B",
            Some(&dev_csrf),
            adult_slice(20),
        )
        .await;
        assert_eq!(s, 403, "{b}");
        let (s, _, _) = submit(
            &developer,
            &t,
            &format!("/provider/grants/{refuse_id}/decision"),
            &[("csrf", dev_csrf.as_str()), ("decision", "approve")],
        )
        .await;
        assert_eq!(s, 403, "{b}");

        // A visitor without a session: 401.
        let visitor = reqwest::Client::new();
        for path in [
            "/provider".to_string(),
            format!("/provider/datasets/{id}"),
            "/provider/grants".to_string(),
        ] {
            let (s, _, _) = get_page(&visitor, &t, &path).await;
            assert_eq!(s, 401, "{b}: {path}");
        }
        t.stop().await;
    }
}
