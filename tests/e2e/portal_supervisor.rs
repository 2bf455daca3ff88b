//! The supervisor's and the data authority's pages of the web portal over HTTP, as a
//! browser's session sees them, on SQLite and PostgreSQL.
//!
//! - A supervisor browses the ledger and filters it by kind (only that kind is shown),
//!   by organisation and by date; opens an entry with its payload and inclusion receipt,
//!   downloads the receipt and it verifies offline against the log's public key; runs
//!   "verify now" to completion; reads the budget chart (an SVG image per grant), the
//!   compliance report, and suspends an organisation with the form.
//! - A supervisor opens a listed product's lineage: an SVG graph with the dataset and
//!   the product as nodes.
//! - The data authority approves a submitted catalog entry with the form on its desk and
//!   the API then shows it published; it returns another with a reason.
//! - Refusals are the API's: a developer's session gets 403 on every supervisor page
//!   (as on the supervisor API), a visitor without a session 401, a form without its
//!   CSRF token 403 (and changes nothing), a bad filter 400, an absent entry 404.

use std::time::Duration;

use pdx::samples;
use pdx_ledger::Receipt;
use pdx_ledger::note::NoteVerifier;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};

use crate::catalog::{draft, register, upload_certified};
use crate::products::{listed_product, market};
use crate::support::{TestServer, csrf_of, day, portal_sign_in, post};

/// GETs a page, following a redirect (whether or not the client follows redirects
/// itself); returns its status, the path (and query) it ended on and its body.
async fn get_page(client: &reqwest::Client, t: &TestServer, path: &str) -> (u16, String, String) {
    let mut resp = client.get(t.url(path)).send().await.unwrap();
    if resp.status() == reqwest::StatusCode::SEE_OTHER {
        let location = resp.headers()[LOCATION].to_str().unwrap().to_string();
        resp = client.get(t.url(&location)).send().await.unwrap();
    }
    let status = resp.status().as_u16();
    let end = match resp.url().query() {
        Some(q) => format!("{}?{q}", resp.url().path()),
        None => resp.url().path().to_string(),
    };
    (status, end, resp.text().await.unwrap())
}

/// Posts a form and follows the redirect a successful one answers with (whether or not
/// the client follows redirects itself); returns the status, the path it ended on and
/// the body.
async fn submit(
    client: &reqwest::Client,
    t: &TestServer,
    path: &str,
    form: &[(&str, &str)],
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

/// The ledger rows of a ledger-browser page.
fn rows(html: &str) -> usize {
    html.matches("<tr data-kind=\"").count()
}

/// The ledger rows of one kind.
fn rows_of(html: &str, kind: &str) -> usize {
    html.matches(&format!("<tr data-kind=\"{kind}\"")).count()
}

/// The electricity entry with its own title and no data elements (so that several can
/// be registered).
fn electricity(title: &str) -> Value {
    let mut meta = samples::electricity_dataset();
    meta.title = title.into();
    meta.elements = Vec::new();
    serde_json::to_value(&meta).unwrap()
}

/// A client with the pre-session cookie and no session.
async fn visitor(t: &TestServer) -> reqwest::Client {
    crate::support::portal_visitor(t).await
}

#[tokio::test]
async fn a_supervisor_filters_the_ledger_checks_a_receipt_verifies_and_reads_the_reports() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("portal-sup-power", "provider").await;
        let (_, dev) = t.key_for("portal-sup-analytics", "developer").await;
        let (quiet_org, _) = t.key_for("portal-sup-quiet", "buyer").await;
        let (_, supervisor) = t.key_for("portal-sup-regulator", "supervisor").await;

        // Ledger entries of several kinds: the catalog decisions of a publication, a
        // certificate, a grant decision (with ε to chart).
        let dataset = register(&t, &provider, &electricity("Enterprise electricity")).await;
        let csv = samples::electricity_csv(60, 7).into_bytes();
        upload_certified(&t, &provider, &dataset, "?format=csv", csv).await;
        let (s, grant) = post(
            &t,
            &dev,
            "/v1/grants",
            json!({
                "dataset_id": dataset,
                "purpose": "district energy benchmarks",
                "columns": ["district", "industry", "kwh_12m"],
                "model_kinds": ["sql", "dp"],
                "term_days": 365,
                "epsilon": 3.0,
                "delta": 0.0,
                "query_budget": 10
            }),
        )
        .await;
        assert_eq!(s, 201, "{b}: {grant}");
        let grant_id = grant["id"].as_str().unwrap().to_string();
        let (s, decided) = post(
            &t,
            &provider,
            &format!("/v1/grants/{grant_id}/decision"),
            json!({"approve": true, "term_days": 10}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {decided}");

        let web = portal_sign_in(&t, &supervisor).await;
        let (s, _, home) = get_page(&web, &t, "/supervisor").await;
        assert_eq!(s, 200, "{b}: {home}");
        for link in [
            "/supervisor/ledger",
            "/supervisor/verify",
            "/supervisor/budgets",
        ] {
            assert!(home.contains(&format!("href=\"{link}\"")), "{b}: {link}");
        }

        // The ledger, unfiltered, then by kind: only that kind is shown.
        let (s, _, all) = get_page(&web, &t, "/supervisor/ledger").await;
        assert_eq!(s, 200, "{b}: {all}");
        assert!(rows_of(&all, "asset_certificate") >= 1, "{b}: {all}");
        assert!(rows_of(&all, "catalog_decision") >= 1, "{b}: {all}");
        assert!(rows_of(&all, "grant_decision") >= 1, "{b}: {all}");
        let (s, _, certificates) =
            get_page(&web, &t, "/supervisor/ledger?kind=asset_certificate").await;
        assert_eq!(s, 200, "{b}: {certificates}");
        assert!(rows(&certificates) >= 1, "{b}: {certificates}");
        assert_eq!(
            rows(&certificates),
            rows_of(&certificates, "asset_certificate"),
            "{b}: another kind is shown: {certificates}"
        );
        assert!(rows(&certificates) < rows(&all), "{b}");

        // By organisation: the provider's entries include its certificate; an
        // organisation that did nothing has none.
        let (s, _, by_provider) =
            get_page(&web, &t, &format!("/supervisor/ledger?org={provider_org}")).await;
        assert_eq!(s, 200, "{b}: {by_provider}");
        assert!(rows_of(&by_provider, "asset_certificate") >= 1, "{b}");
        let (s, _, by_quiet) =
            get_page(&web, &t, &format!("/supervisor/ledger?org={quiet_org}")).await;
        assert_eq!(s, 200, "{b}: {by_quiet}");
        assert_eq!(rows(&by_quiet), 0, "{b}: {by_quiet}");

        // By date (China-time days): today's entries are in a range around today and
        // absent from one that starts the day after tomorrow.
        let range = format!("/supervisor/ledger?since={}&until={}", day(-1), day(1));
        let (s, _, around_today) = get_page(&web, &t, &range).await;
        assert_eq!(s, 200, "{b}: {around_today}");
        assert_eq!(rows(&around_today), rows(&all), "{b}");
        let later = format!("/supervisor/ledger?since={}", day(2));
        let (s, _, none) = get_page(&web, &t, &later).await;
        assert_eq!(s, 200, "{b}: {none}");
        assert_eq!(rows(&none), 0, "{b}: {none}");

        // The same filters on the API.
        let (s, page) = t
            .get(&supervisor, &format!("/v1/ledger/entries?org={quiet_org}"))
            .await;
        assert_eq!(s, 200, "{b}: {page}");
        assert_eq!(page["entries"], json!([]), "{b}");
        let (s, page) = t
            .get(
                &supervisor,
                "/v1/ledger/entries?kind=asset_certificate&since=2000-01-01T00:00:00Z",
            )
            .await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(!page["entries"].as_array().unwrap().is_empty(), "{b}");
        for bad in [
            "/v1/ledger/entries?since=yesterday",
            "/v1/ledger/entries?until=2026-13-01T00:00:00Z",
            "/v1/ledger/entries?org=not-an-org",
        ] {
            let (s, p) = t.get(&supervisor, bad).await;
            assert_eq!(s, 400, "{b}: {bad}: {p}");
        }

        // Bad filters are the API's 400 (or the page's own, for a date).
        for bad in [
            "/supervisor/ledger?kind=suspensions",
            "/supervisor/ledger?since=yesterday",
            "/supervisor/ledger?from=-1",
        ] {
            let (s, _, _) = get_page(&web, &t, bad).await;
            assert_eq!(s, 400, "{b}: {bad}");
        }

        // One entry with its receipt, which verifies offline.
        let (s, listed) = t
            .get(&supervisor, "/v1/ledger/entries?kind=asset_certificate")
            .await;
        assert_eq!(s, 200, "{b}: {listed}");
        let entry = &listed["entries"][0];
        let seq = entry["seq"].as_u64().unwrap();
        let (s, _, entry_page) = get_page(&web, &t, &format!("/supervisor/ledger/{seq}")).await;
        assert_eq!(s, 200, "{b}: {entry_page}");
        assert!(
            entry_page.contains(entry["entry_hash"].as_str().unwrap()),
            "{b}"
        );
        assert!(entry_page.contains("pdx ledger verify-receipt"), "{b}");
        let vkey = t.app.ledger.verifier().to_vkey();
        assert!(entry_page.contains(&vkey), "{b}: the public key is shown");
        let resp = web
            .get(t.url(&format!("/supervisor/ledger/{seq}/receipt.json")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{b}");
        assert!(
            resp.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let receipt: Receipt = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(receipt.entry.seq, seq);
        let key = NoteVerifier::parse(&vkey).unwrap();
        receipt.verify(&key).unwrap();
        for absent in [
            "/supervisor/ledger/not-a-seq",
            "/supervisor/ledger/99999999",
        ] {
            let (s, _, _) = get_page(&web, &t, absent).await;
            assert_eq!(s, 404, "{b}: {absent}");
        }

        // Verify now: a form without its token is refused; with it, the job runs to
        // completion and the page says the ledger verified.
        let (s, _, verify) = get_page(&web, &t, "/supervisor/verify").await;
        assert_eq!(s, 200, "{b}: {verify}");
        let csrf = csrf_of(&verify);
        let (s, _, _) = submit(&web, &t, "/supervisor/verify", &[]).await;
        assert_eq!(s, 403, "{b}");
        let (s, status_path, mut status) =
            submit(&web, &t, "/supervisor/verify", &[("csrf", csrf.as_str())]).await;
        assert_eq!(s, 200, "{b}: {status}");
        assert!(
            status_path.starts_with("/supervisor/verify/"),
            "{b}: {status_path}"
        );
        for _ in 0..600 {
            if status.contains("data-status=\"succeeded\"")
                || status.contains("data-status=\"failed\"")
            {
                break;
            }
            assert!(
                status.contains("<progress"),
                "{b}: a running job shows its progress"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (s, _, again) = get_page(&web, &t, &status_path).await;
            assert_eq!(s, 200, "{b}: {again}");
            status = again;
        }
        assert!(
            status.contains("data-status=\"succeeded\""),
            "{b}: {status}"
        );
        assert!(status.contains("data-ok=\"true\""), "{b}: {status}");
        let (_, _, verify) = get_page(&web, &t, "/supervisor/verify").await;
        assert!(verify.contains(&status_path), "{b}: the job is listed");

        // The budgets: a chart with the grant, as an accessible SVG image.
        let (s, _, budgets) = get_page(&web, &t, "/supervisor/budgets").await;
        assert_eq!(s, 200, "{b}: {budgets}");
        assert!(budgets.contains("<svg"), "{b}: {budgets}");
        assert!(budgets.contains("role=\"img\""), "{b}");
        assert!(budgets.contains(&grant_id), "{b}");

        // The compliance report, and a bad date.
        let (s, _, report) = get_page(&web, &t, "/supervisor/compliance").await;
        assert_eq!(s, 200, "{b}: {report}");
        assert!(
            report.contains("data-section=\"late_grant_applications\""),
            "{b}"
        );
        let (s, _, _) = get_page(&web, &t, "/supervisor/compliance?as_of=someday").await;
        assert_eq!(s, 400, "{b}");

        // Suspensions: without the token nothing happens; with it the organisation is
        // suspended, as the API says.
        let (s, _, page) = get_page(&web, &t, "/supervisor/suspensions").await;
        assert_eq!(s, 200, "{b}: {page}");
        let csrf = csrf_of(&page);
        let form = [
            ("org_id", quiet_org.as_str()),
            ("action", "suspend"),
            ("reason", "misuse found in the portal test"),
        ];
        let (s, _, _) = submit(&web, &t, "/supervisor/suspensions", &form).await;
        assert_eq!(s, 403, "{b}");
        let (_, list) = t.get(&supervisor, "/v1/audit/suspensions").await;
        assert_eq!(list["suspended"], json!([]), "{b}: {list}");
        let mut with_token = form.to_vec();
        with_token.push(("csrf", csrf.as_str()));
        let (s, end, page) = submit(&web, &t, "/supervisor/suspensions", &with_token).await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(end.starts_with("/supervisor/suspensions"), "{b}: {end}");
        assert!(page.contains("misuse found in the portal test"), "{b}");
        let (_, list) = t.get(&supervisor, "/v1/audit/suspensions").await;
        assert_eq!(
            list["suspended"][0]["org_id"],
            quiet_org.as_str(),
            "{b}: {list}"
        );

        // A developer's session is refused every supervisor page, as the API refuses
        // the supervisor routes; a form with the developer's own token too.
        let developer = portal_sign_in(&t, &dev).await;
        for path in [
            "/supervisor".to_string(),
            "/supervisor/ledger".to_string(),
            format!("/supervisor/ledger/{seq}"),
            format!("/supervisor/ledger/{seq}/receipt.json"),
            "/supervisor/verify".to_string(),
            "/supervisor/lineage".to_string(),
            "/supervisor/budgets".to_string(),
            "/supervisor/compliance".to_string(),
            "/supervisor/suspensions".to_string(),
            "/authority".to_string(),
        ] {
            let (s, _, _) = get_page(&developer, &t, &path).await;
            assert_eq!(s, 403, "{b}: {path}");
        }
        for api in ["/v1/audit/budgets", "/v1/audit/compliance", "/v1/orgs"] {
            let (s, _) = t.get(&dev, api).await;
            assert_eq!(s, 403, "{b}: {api}");
        }
        let (s, _, account) = get_page(&developer, &t, "/account").await;
        assert_eq!(s, 200, "{b}: {account}");
        let dev_csrf = csrf_of(&account);
        let (s, _, _) = submit(
            &developer,
            &t,
            "/supervisor/verify",
            &[("csrf", dev_csrf.as_str())],
        )
        .await;
        assert_eq!(s, 403, "{b}");

        // Without a session: 401.
        let anonymous = visitor(&t).await;
        for path in [
            "/supervisor",
            "/supervisor/ledger",
            "/supervisor/verify",
            "/supervisor/budgets",
        ] {
            let (s, _, _) = get_page(&anonymous, &t, path).await;
            assert_eq!(s, 401, "{b}: {path}");
        }
        t.stop().await;
    }
}

#[tokio::test]
async fn a_supervisor_opens_a_product_lineage_graph() {
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let release_id = m.release["release_id"].as_str().unwrap();
        let (pid, _) = listed_product(&m, release_id).await;
        let web = portal_sign_in(t, &m.supervisor).await;

        let (s, _, index) = get_page(&web, t, "/supervisor/lineage").await;
        assert_eq!(s, 200, "{b}: {index}");
        assert!(index.contains(&format!("/supervisor/lineage/{pid}")), "{b}");
        let (s, end, _) = get_page(&web, t, &format!("/supervisor/lineage?product_id={pid}")).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(end, format!("/supervisor/lineage/{pid}"), "{b}");

        let (s, _, graph) = get_page(&web, t, &format!("/supervisor/lineage/{pid}")).await;
        assert_eq!(s, 200, "{b}: {graph}");
        let svg_start = graph.find("<svg").expect("an SVG graph");
        let svg_end = svg_start + graph[svg_start..].find("</svg>").unwrap();
        let svg = &graph[svg_start..svg_end];
        assert!(svg.contains("role=\"img\""), "{b}");
        assert!(
            svg.contains(&format!("data-node=\"product:{pid}\"")),
            "{b}: {svg}"
        );
        assert!(
            svg.contains(&format!("data-node=\"dataset:{}\"", m.dataset)),
            "{b}: {svg}"
        );
        assert!(
            svg.contains(&format!("data-node=\"release:{release_id}\"")),
            "{b}"
        );
        assert!(svg.contains("marker-end="), "{b}: edges with arrowheads");
        // The hops link to their ledger entries.
        assert!(graph.contains("href=\"/supervisor/ledger/"), "{b}");

        let developer = portal_sign_in(t, &m.dev).await;
        let (s, _, _) = get_page(&developer, t, &format!("/supervisor/lineage/{pid}")).await;
        assert_eq!(s, 403, "{b}");
        let (s, _) = t
            .get(&m.dev, &format!("/v1/audit/lineage/product/{pid}"))
            .await;
        assert_eq!(s, 403, "{b}");
        let (s, _, _) = get_page(&web, t, "/supervisor/lineage/not-a-product").await;
        assert_eq!(s, 404, "{b}");
    }
}

#[tokio::test]
async fn the_data_authority_approves_and_returns_catalog_entries_in_the_portal() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("portal-auth-power", "provider").await;
        let (_, dev) = t.key_for("portal-auth-analytics", "developer").await;
        let mut submitted = Vec::new();
        for title in ["Entry to approve", "Entry to return"] {
            let id = draft(&t, &provider, &electricity(title)).await;
            let (s, body) = post(
                &t,
                &provider,
                &format!("/v1/datasets/{id}/submit"),
                json!({}),
            )
            .await;
            assert_eq!(s, 200, "{b}: {body}");
            assert_eq!(body["status"], "submitted", "{b}");
            submitted.push(id);
        }
        let (approve, give_back) = (&submitted[0], &submitted[1]);

        let authority_key = t.authority().await.to_string();
        let web = portal_sign_in(&t, &authority_key).await;
        let (s, _, desk) = get_page(&web, &t, "/authority").await;
        assert_eq!(s, 200, "{b}: {desk}");
        for id in &submitted {
            assert!(
                desk.contains(&format!("data-dataset=\"{id}\"")),
                "{b}: {id}"
            );
        }
        assert!(desk.contains("Entry to approve"), "{b}");
        let csrf = csrf_of(&desk);

        // Without the token: refused, and the entry stays submitted.
        let review = format!("/authority/datasets/{approve}/review");
        let (s, _, _) = submit(&web, &t, &review, &[("decision", "approve")]).await;
        assert_eq!(s, 403, "{b}");
        let (_, entry) = t.get(&provider, &format!("/v1/datasets/{approve}")).await;
        assert_eq!(entry["status"], "submitted", "{b}: {entry}");

        // With it: published, as the API shows.
        let (s, end, page) = submit(
            &web,
            &t,
            &review,
            &[("csrf", csrf.as_str()), ("decision", "approve")],
        )
        .await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(end.starts_with("/authority"), "{b}: {end}");
        assert!(
            !page.contains(&format!("data-dataset=\"{approve}\"")),
            "{b}"
        );
        let (_, entry) = t.get(&provider, &format!("/v1/datasets/{approve}")).await;
        assert_eq!(entry["status"], "published", "{b}: {entry}");

        // Returning needs a reason: without one the API's 422; with one, returned.
        let give_back_path = format!("/authority/datasets/{give_back}/review");
        let (s, _, refused) = submit(
            &web,
            &t,
            &give_back_path,
            &[("csrf", csrf.as_str()), ("decision", "return")],
        )
        .await;
        assert_eq!(s, 422, "{b}: {refused}");
        let (s, _, _) = submit(
            &web,
            &t,
            &give_back_path,
            &[
                ("csrf", csrf.as_str()),
                ("decision", "return"),
                ("reason", "the legal basis is missing"),
            ],
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let (_, entry) = t.get(&provider, &format!("/v1/datasets/{give_back}")).await;
        assert_eq!(entry["status"], "returned", "{b}: {entry}");

        // Deciding again is the API's conflict; a developer is refused the desk.
        let (s, _, _) = submit(
            &web,
            &t,
            &review,
            &[("csrf", csrf.as_str()), ("decision", "approve")],
        )
        .await;
        assert_eq!(s, 409, "{b}");
        let developer = portal_sign_in(&t, &dev).await;
        let (s, _, _) = get_page(&developer, &t, "/authority").await;
        assert_eq!(s, 403, "{b}");
        t.stop().await;
    }
}
