//! The portal's public pages (issue #21), on SQLite and PostgreSQL: what anyone sees in
//! a browser without a key, refused exactly where the API refuses it.
//!
//! - The open catalog: the search and each filter (theme, department, open attribute,
//!   level, update frequency) narrow the list as the API's search does, pages included;
//!   the API's search takes the level and the update frequency too (422 for any other
//!   value), and still shows each caller only what it may see. An unpublished entry is
//!   the API's 404 (its provider, signed in, sees it).
//! - A dataset's page shows its metadata, released domains and versions; a version's
//!   page shows the certificate and receipt with the commands to verify them offline,
//!   and those commands, run as printed, verify (`pdx ledger verify-receipt`, and the
//!   BLAKE3 of the downloaded file is the certified one).
//! - Dummy data: an open dataset's is shown; a conditional or not-open dataset's page
//!   is the API's refusal (401 for the public; for a signed-in developer the API's 200
//!   and 403).
//! - A title holding `<script>` and `"><img onerror>` is shown escaped on every page.
//! - `/catalog.jsonld` is JSON-LD with the DCAT-AP 3 context and, for each published
//!   entry and nothing else, the mandatory properties and a distribution with an access
//!   URL; the mappings of access rights and frequencies; the open entry's download URL
//!   gives the certified bytes.
//! - The requests to open data: the form without its CSRF token (or with another) is a
//!   403 that files nothing; with it the request is filed and shown (its contact never
//!   to the public); an API refusal shows the form again under the API's status.
//! - The suspension list, the checkpoint with a witness's cosignature, and the market:
//!   the API's 401 without a key; for a signed-in buyer, the listed products, the search,
//!   and a product's provenance manifest.

use std::collections::BTreeSet;

use pdx::samples;
use pdx_ledger::note::{Checkpoint, SignedNote};
use pdx_sandbox::catalog::OpenAttribute;
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{draft, register, upload_certified};
use crate::products::{SPLIT, dataset as certified_dataset, org_key, product_body, release};
use crate::support::{TestServer, blake3_hex, csrf_of, portal_sign_in, post};

/// A dataset title that would run script if a page did not escape it.
const HOSTILE: &str = r#"Hostile <script>alert(1)</script> "><img src=x onerror=alert(1)>"#;

/// A browser without a session: it holds the pre-session CSRF cookie and follows
/// redirects.
async fn browser(t: &TestServer) -> reqwest::Client {
    crate::support::portal_visitor(t).await
}

/// GETs a page; returns (status, HTML).
async fn page(client: &reqwest::Client, t: &TestServer, path: &str) -> (u16, String) {
    let resp = client.get(t.url(path)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// GETs a page in English (the default is Chinese); returns (status, HTML).
async fn page_en(client: &reqwest::Client, t: &TestServer, path: &str) -> (u16, String) {
    let resp = client
        .get(t.url(path))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A GET of the API without any key.
async fn anon(t: &TestServer, path: &str) -> (u16, Value) {
    t.call(None, Method::GET, path, None).await
}

/// The body of a keyless API GET as text.
async fn anon_text(t: &TestServer, path: &str) -> String {
    let resp = t.http.get(t.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

/// The ids of the datasets a page links to.
fn linked_datasets(html: &str) -> BTreeSet<String> {
    html.match_indices("/catalog/ds_")
        .map(|(at, _)| {
            html[at + "/catalog/".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The ids of an API catalog page.
fn api_ids(found: &Value) -> BTreeSet<String> {
    found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// A set of ids.
fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

/// The electricity entry with its own title and open attribute and without data
/// elements (so that several can be registered).
fn electricity(title: &str, open: &str) -> Value {
    let mut v = serde_json::to_value(samples::electricity_dataset()).unwrap();
    v["title"] = json!(title);
    v["open_attribute"] = json!(open);
    v["elements"] = json!([]);
    v
}

/// Asserts that a page shows the hostile title as text, never as markup.
fn assert_inert(html: &str, what: &str) {
    assert!(!html.contains("<script>alert(1)"), "{what}: raw script tag");
    assert!(!html.contains("<img src=x"), "{what}: raw img tag");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{what}: the title is not shown escaped"
    );
    assert!(
        html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{what}: the attribute breakout is not shown escaped"
    );
}

/// The catalog of the first test: one entry of each open attribute, a hostile one and
/// a draft.
struct World {
    provider: String,
    developer: String,
    /// Unconditionally open, L3, yearly, Statistics Bureau, census: the real Adult rows,
    /// certified as version 1.
    open: String,
    /// Conditional, L2, monthly, Power Supply Bureau, utilities: generated enterprises,
    /// certified as version 1.
    conditional: String,
    /// Not open, L3, quarterly, Market Regulation Bureau, enterprise.
    closed: String,
    /// Conditional, L2, monthly, utilities, with the hostile title.
    hostile: String,
    /// Registered, never published.
    drafted: String,
}

async fn world(t: &TestServer) -> World {
    let (_, provider) = t.key_for("portal-public-statistics", "provider").await;
    let (_, developer) = t.key_for("portal-public-app-maker", "developer").await;
    let adult_dir = samples::shared_data_dir().join("adult");
    let mut census = serde_json::to_value(
        samples::adult_dataset(&adult_dir, OpenAttribute::Unconditional).unwrap(),
    )
    .unwrap();
    census["title"] = json!("Portal census extract");
    census["elements"] = json!([]);
    let open = register(t, &provider, &census).await;
    let adult = std::fs::read(adult_dir.join("adult.csv")).unwrap();
    upload_certified(t, &provider, &open, "?format=csv&delimiter=;", adult).await;
    let conditional = register(
        t,
        &provider,
        &electricity("Portal electricity use", "conditional"),
    )
    .await;
    let meters = samples::electricity_csv(40, 7).into_bytes();
    upload_certified(t, &provider, &conditional, "?format=csv", meters).await;
    let mut register_meta = electricity("Portal enterprise register", "not_open");
    register_meta["theme"] = json!("enterprise");
    register_meta["level"] = json!("L3");
    register_meta["update_frequency"] = json!("quarterly");
    register_meta["providing_department"] = json!("Market Regulation Bureau");
    let closed = register(t, &provider, &register_meta).await;
    let hostile = register(t, &provider, &electricity(HOSTILE, "conditional")).await;
    let drafted = draft(
        t,
        &provider,
        &electricity("Portal draft water plan", "unconditional"),
    )
    .await;
    World {
        provider,
        developer,
        open,
        conditional,
        closed,
        hostile,
        drafted,
    }
}

#[tokio::test]
async fn the_open_catalog_searches_filters_shows_and_verifies_for_anyone_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let w = world(&t).await;
        let anyone = browser(&t).await;
        let published = set(&[&w.open, &w.conditional, &w.closed, &w.hostile]);

        // The home page leads everywhere a visitor may go.
        let (s, home) = page(&anyone, &t, "/").await;
        assert_eq!(s, 200, "{b}: {home}");
        for link in [
            "href=\"/catalog\"",
            "href=\"/market\"",
            "href=\"/suspensions\"",
            "href=\"/checkpoint\"",
            "href=\"/open-data-requests\"",
            "href=\"/signin\"",
        ] {
            assert!(home.contains(link), "{b}: the home page lacks {link}");
        }

        // The search and each filter narrow the list exactly as the API's search does.
        let (s, all) = page(&anyone, &t, "/catalog").await;
        assert_eq!(s, 200, "{b}: {all}");
        assert_eq!(linked_datasets(&all), published, "{b}");
        assert!(!all.contains("Portal draft water plan"), "{b}");
        for (query, api_query, expected) in [
            ("q=census", "q=census", set(&[&w.open])),
            (
                "theme=utilities",
                "theme=utilities",
                set(&[&w.conditional, &w.hostile]),
            ),
            (
                "department=Statistics%20Bureau",
                "provider=Statistics%20Bureau",
                set(&[&w.open]),
            ),
            (
                "open_attribute=not_open",
                "open_attribute=not_open",
                set(&[&w.closed]),
            ),
            (
                "open_attribute=unconditional",
                "open_attribute=unconditional",
                set(&[&w.open]),
            ),
            ("level=L3", "level=L3", set(&[&w.open, &w.closed])),
            (
                "update_frequency=quarterly",
                "update_frequency=quarterly",
                set(&[&w.closed]),
            ),
            (
                "level=L2&update_frequency=monthly&department=Power%20Supply%20Bureau",
                "level=L2&update_frequency=monthly&provider=Power%20Supply%20Bureau",
                set(&[&w.conditional, &w.hostile]),
            ),
        ] {
            let (s, html) = page(&anyone, &t, &format!("/catalog?{query}")).await;
            assert_eq!(s, 200, "{b}: {query}: {html}");
            assert_eq!(linked_datasets(&html), expected, "{b}: {query}");
            let (s, found) = anon(&t, &format!("/v1/datasets?{api_query}")).await;
            assert_eq!(s, 200, "{b}: {api_query}: {found}");
            assert_eq!(api_ids(&found), expected, "{b}: {api_query}");
            assert_eq!(found["total"], expected.len(), "{b}: {api_query}");
        }
        // Pages: two of four each, together all, with a link onwards.
        let (_, first) = page(&anyone, &t, "/catalog?per_page=2").await;
        let (_, second) = page(&anyone, &t, "/catalog?per_page=2&page=2").await;
        let (first_ids, second_ids) = (linked_datasets(&first), linked_datasets(&second));
        assert_eq!((first_ids.len(), second_ids.len()), (2, 2), "{b}");
        assert_eq!(
            first_ids
                .union(&second_ids)
                .cloned()
                .collect::<BTreeSet<_>>(),
            published,
            "{b}"
        );
        assert!(first.contains("rel=\"next\""), "{b}: no link to page 2");
        assert!(first.contains("page=2"), "{b}: no link to page 2");
        assert!(second.contains("rel=\"prev\""), "{b}: no link back");
        // A filter the API refuses is the API's status on the page.
        let (s, _) = page(&anyone, &t, "/catalog?open_attribute=sometimes").await;
        assert_eq!(
            s,
            anon(&t, "/v1/datasets?open_attribute=sometimes").await.0,
            "{b}"
        );

        // The API's level and frequency filters: exact totals and pages, 422 for any
        // other value, and each caller still sees only its own view.
        let (_, one) = anon(&t, "/v1/datasets?level=L3&per_page=1&page=1").await;
        let (_, two) = anon(&t, "/v1/datasets?level=L3&per_page=1&page=2").await;
        assert_eq!(
            (one["total"].as_u64(), two["total"].as_u64()),
            (Some(2), Some(2)),
            "{b}"
        );
        assert_eq!(
            api_ids(&one)
                .union(&api_ids(&two))
                .cloned()
                .collect::<BTreeSet<_>>(),
            set(&[&w.open, &w.closed]),
            "{b}"
        );
        for bad in ["level=L5", "level=l3", "update_frequency=hourly"] {
            let (s, problem) = anon(&t, &format!("/v1/datasets?{bad}")).await;
            assert_eq!(s, 422, "{b}: {bad}: {problem}");
            assert!(!problem.to_string().contains("hourly"), "{b}: echoed");
        }
        let (_, own) = t
            .get(&w.provider, "/v1/datasets?update_frequency=monthly")
            .await;
        assert_eq!(
            api_ids(&own),
            set(&[&w.conditional, &w.hostile, &w.drafted]),
            "{b}: the provider sees its own draft"
        );
        let (_, public) = anon(&t, "/v1/datasets?update_frequency=monthly").await;
        assert_eq!(api_ids(&public), set(&[&w.conditional, &w.hostile]), "{b}");

        // A dataset's page: its metadata, released domains and versions.
        let (_, version) = anon(&t, &format!("/v1/datasets/{}/versions/1", w.open)).await;
        let certificate_no = version["certificate_no"].as_str().unwrap().to_string();
        let content_hash = version["content_hash"].as_str().unwrap().to_string();
        let seq = version["certificate_seq"].as_u64().unwrap();
        let (s, html) = page(&anyone, &t, &format!("/catalog/{}", w.open)).await;
        assert_eq!(s, 200, "{b}: {html}");
        for shown in [
            "Portal census extract",
            "Statistics Bureau",
            "Data Management Bureau",
            "salary-class",
            "native-country",
            certificate_no.as_str(),
            content_hash.as_str(),
            &format!("/catalog/{}/versions/1", w.open),
            &format!("/catalog/{}/dummy", w.open),
        ] {
            assert!(html.contains(shown), "{b}: the dataset page lacks {shown}");
        }
        // An unpublished entry is the API's 404 for the public, its own to its provider.
        for path in [
            format!("/catalog/{}", w.drafted),
            format!("/catalog/{}/dummy", w.drafted),
            format!("/catalog/{}/versions/1", w.drafted),
            "/catalog/not-a-dataset".to_string(),
            format!("/catalog/{}/versions/2", w.open),
            format!("/catalog/{}/versions/one", w.open),
        ] {
            assert_eq!(page(&anyone, &t, &path).await.0, 404, "{b}: {path}");
        }
        assert_eq!(
            anon(&t, &format!("/v1/datasets/{}", w.drafted)).await.0,
            404
        );
        let provider = portal_sign_in(&t, &w.provider).await;
        let (s, html) = page(&provider, &t, &format!("/catalog/{}", w.drafted)).await;
        assert_eq!(s, 200, "{b}: {html}");
        assert!(html.contains("Portal draft water plan"), "{b}");

        // A version's page: the certificate, the receipt, and the commands that verify
        // them offline, which verify when run as printed.
        let (s, html) = page_en(&anyone, &t, &format!("/catalog/{}/versions/1", w.open)).await;
        assert_eq!(s, 200, "{b}: {html}");
        let base = t.url("");
        let key = anon_text(&t, "/v1/ledger/public-key").await;
        let receipt_file = format!("receipt-{seq}.json");
        let data_file = format!("{}-v1.parquet", w.open);
        for shown in [
            certificate_no.clone(),
            content_hash.clone(),
            key.trim().to_string(),
            format!("curl -fsS {base}/v1/ledger/receipt/{seq} -o {receipt_file}"),
            format!("curl -fsS {base}/v1/ledger/public-key -o ledger.vkey"),
            format!("pdx ledger verify-receipt {receipt_file} --key ledger.vkey"),
            format!(
                "curl -fsS {base}/v1/datasets/{}/versions/1/download -o {data_file}",
                w.open
            ),
            format!("b3sum {data_file}"),
            format!("ok: entry {seq} (asset_certificate) is in the log"),
            // maud escapes `&<>"`, not the apostrophe.
            "This page checked the receipt against the ledger's public key".to_string(),
        ] {
            assert!(html.contains(&shown), "{b}: the version page lacks {shown}");
        }
        // A conditional dataset's certificate verifies the same way; its data is not
        // downloaded, so no step says to.
        let (s, html) = page(
            &anyone,
            &t,
            &format!("/catalog/{}/versions/1", w.conditional),
        )
        .await;
        assert_eq!(s, 200, "{b}: {html}");
        assert!(html.contains("pdx ledger verify-receipt"), "{b}");
        assert!(
            !html.contains("b3sum") && !html.contains("/download"),
            "{b}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(&receipt_file),
            anon_text(&t, &format!("/v1/ledger/receipt/{seq}")).await,
        )
        .unwrap();
        std::fs::write(dir.path().join("ledger.vkey"), key.as_bytes()).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"))
            .args([
                "ledger",
                "verify-receipt",
                &receipt_file,
                "--key",
                "ledger.vkey",
            ])
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{b}: {stdout}");
        assert!(
            stdout.starts_with(&format!(
                "ok: entry {seq} (asset_certificate) is in the log"
            )),
            "{b}: {stdout}"
        );
        let parquet = t
            .http
            .get(format!("{base}/v1/datasets/{}/versions/1/download", w.open))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            blake3_hex(parquet),
            content_hash,
            "{b}: b3sum of the download"
        );

        // Dummy data: the open dataset's rows; any other's page is the API's refusal.
        let (s, html) = page(&anyone, &t, &format!("/catalog/{}/dummy", w.open)).await;
        assert_eq!(s, 200, "{b}: {html}");
        assert!(
            html.contains("<table") && html.contains("salary-class"),
            "{b}"
        );
        for id in [&w.conditional, &w.closed] {
            let (page_status, _) = page(&anyone, &t, &format!("/catalog/{id}/dummy")).await;
            let (api_status, _) = anon(&t, &format!("/v1/datasets/{id}/dummy?rows=20")).await;
            assert_eq!(api_status, 401, "{b}");
            assert_eq!(page_status, api_status, "{b}: {id}");
        }
        let developer = portal_sign_in(&t, &w.developer).await;
        for (id, expected) in [(&w.conditional, 200), (&w.closed, 403)] {
            let (page_status, _) = page(&developer, &t, &format!("/catalog/{id}/dummy")).await;
            let (api_status, _) = t
                .get(&w.developer, &format!("/v1/datasets/{id}/dummy?rows=20"))
                .await;
            assert_eq!((page_status, api_status), (expected, expected), "{b}: {id}");
        }

        // The hostile title is text on every page that shows it.
        for (client, path) in [
            (&anyone, "/catalog".to_string()),
            (&anyone, "/catalog?theme=utilities".to_string()),
            (&anyone, format!("/catalog/{}", w.hostile)),
            (&developer, format!("/catalog/{}/dummy", w.hostile)),
        ] {
            let (s, html) = page(client, &t, &path).await;
            assert_eq!(s, 200, "{b}: {path}");
            assert_inert(&html, &format!("{b}: {path}"));
        }

        dcat_catalog(&t, &w, &anyone, &provider).await;
        t.stop().await;
    }
}

/// `/catalog.jsonld` is DCAT-AP 3 JSON-LD of the published entries only.
async fn dcat_catalog(
    t: &TestServer,
    w: &World,
    anyone: &reqwest::Client,
    provider: &reqwest::Client,
) {
    let b = t.backend;
    let base = t.url("");
    for client in [anyone, provider] {
        let resp = client.get(t.url("/catalog.jsonld")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{b}");
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with("application/ld+json"),
            "{b}: {content_type}"
        );
        let doc: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        for prefix in ["dcat", "dct", "foaf", "vcard", "adms", "xsd"] {
            assert!(
                doc["@context"][prefix]
                    .as_str()
                    .is_some_and(|iri| iri.starts_with("http")),
                "{b}: @context lacks {prefix}"
            );
        }
        assert_eq!(doc["@type"], "dcat:Catalog", "{b}");
        for property in ["dct:title", "dct:description"] {
            assert!(
                doc[property].as_array().is_some_and(|v| !v.is_empty()),
                "{b}: the catalog lacks {property}"
            );
        }
        assert_eq!(doc["dct:publisher"]["@type"], "foaf:Agent", "{b}");
        let datasets = doc["dcat:dataset"].as_array().unwrap();
        let listed: BTreeSet<String> = datasets
            .iter()
            .map(|d| d["dct:identifier"].as_str().unwrap().to_string())
            .collect();
        // The public's catalog whoever asks: the draft is not in it, even for its
        // signed-in provider.
        assert_eq!(
            listed,
            set(&[&w.open, &w.conditional, &w.closed, &w.hostile]),
            "{b}"
        );
        assert!(
            !doc.to_string().contains(&w.drafted),
            "{b}: the draft leaked"
        );
        for d in datasets {
            let id = d["dct:identifier"].as_str().unwrap();
            assert_eq!(d["@type"], "dcat:Dataset", "{b}: {id}");
            for mandatory in ["dct:title", "dct:description"] {
                assert!(
                    d[mandatory]
                        .as_str()
                        .is_some_and(|text| !text.trim().is_empty()),
                    "{b}: {id} lacks {mandatory}"
                );
            }
            assert_eq!(d["dct:publisher"]["@type"], "foaf:Agent", "{b}: {id}");
            assert!(d["dct:publisher"]["foaf:name"].is_string(), "{b}: {id}");
            assert!(
                d["dcat:keyword"].as_array().is_some_and(|k| !k.is_empty()),
                "{b}: {id}"
            );
            assert_eq!(
                d["dcat:contactPoint"]["@type"], "vcard:Organization",
                "{b}: {id}"
            );
            for date in ["dct:issued", "dct:modified"] {
                assert_eq!(d[date]["@type"], "xsd:dateTime", "{b}: {id}: {date}");
                let text = d[date]["@value"].as_str().unwrap();
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| panic!("{b}: {id}: {date} {text}: {e}"));
            }
            let distributions = d["dcat:distribution"].as_array().unwrap();
            assert!(!distributions.is_empty(), "{b}: {id} has no distribution");
            for dist in distributions {
                assert_eq!(dist["@type"], "dcat:Distribution", "{b}: {id}");
                assert!(
                    dist["dcat:accessURL"]["@id"]
                        .as_str()
                        .is_some_and(|url| url.starts_with(&base)),
                    "{b}: {id}: {dist}"
                );
                assert!(dist["dct:format"]["@id"].is_string(), "{b}: {id}: {dist}");
            }
        }
        let by_id = |id: &str| {
            datasets
                .iter()
                .find(|d| d["dct:identifier"] == id)
                .unwrap()
                .clone()
        };
        let eu = "http://publications.europa.eu/resource/authority";
        for (id, rights, frequency) in [
            (&w.open, "PUBLIC", "ANNUAL"),
            (&w.conditional, "RESTRICTED", "MONTHLY"),
            (&w.closed, "NON_PUBLIC", "QUARTERLY"),
        ] {
            let d = by_id(id.as_str());
            assert_eq!(
                d["dct:accessRights"]["@id"],
                format!("{eu}/access-right/{rights}"),
                "{b}"
            );
            assert_eq!(
                d["dct:accrualPeriodicity"]["@id"],
                format!("{eu}/frequency/{frequency}"),
                "{b}"
            );
        }
        // The hostile title is data in JSON: kept as it is, not markup.
        assert_eq!(by_id(w.hostile.as_str())["dct:title"], HOSTILE, "{b}");
        // Only the open entry has downloads, and its Parquet is the certified file.
        let open = by_id(w.open.as_str());
        assert_eq!(open["dcat:version"], "1", "{b}");
        assert!(
            open["dcat:theme"]["@id"]
                .as_str()
                .unwrap()
                .ends_with("/data-theme/SOCI")
        );
        let downloads: Vec<&str> = open["dcat:distribution"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|dist| dist["dcat:downloadURL"]["@id"].as_str())
            .collect();
        assert_eq!(downloads.len(), 2, "{b}: {open}");
        let parquet = t.http.get(downloads[0]).send().await.unwrap();
        assert_eq!(parquet.status(), 200, "{b}");
        let (_, version) = anon(t, &format!("/v1/datasets/{}/versions/1", w.open)).await;
        assert_eq!(
            blake3_hex(parquet.bytes().await.unwrap()),
            version["content_hash"].as_str().unwrap(),
            "{b}"
        );
        for id in [&w.conditional, &w.closed, &w.hostile] {
            let d = by_id(id.as_str());
            assert!(
                d["dcat:distribution"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|dist| dist["dcat:downloadURL"].is_null()),
                "{b}: {id} offers a download"
            );
        }
    }
    // Pages: past the last is an empty page that points back; a bad page is a 400.
    let resp = anyone
        .get(t.url("/catalog.jsonld?page=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{b}");
    let doc: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(doc["dcat:dataset"], json!([]), "{b}");
    assert_eq!(doc["hydra:view"]["hydra:totalItems"], 4, "{b}");
    assert!(doc["hydra:view"]["hydra:previousPage"].is_string(), "{b}");
    for bad in ["0", "x", "-1"] {
        let resp = anyone
            .get(t.url(&format!("/catalog.jsonld?page={bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{b}: page={bad}");
    }
}

#[tokio::test]
async fn requests_suspensions_checkpoint_and_market_pages_follow_the_api_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("portal-public-bureau", "provider").await;
        let (_, supervisor) = t.key_for("portal-public-regulator", "supervisor").await;
        let (_, buyer) = t.key_for("portal-public-buyer", "buyer").await;
        let (late_org, _) = t.key_for("portal-public-late-payer", "buyer").await;
        let closed = register(
            &t,
            &provider,
            &electricity("Portal closed register", "not_open"),
        )
        .await;
        let open = register(
            &t,
            &provider,
            &electricity("Portal open meters", "unconditional"),
        )
        .await;
        let anyone = browser(&t).await;

        // Requests to open data: the form, prefilled with a dataset.
        let (s, html) = page(
            &anyone,
            &t,
            &format!("/open-data-requests?dataset_id={closed}"),
        )
        .await;
        assert_eq!(s, 200, "{b}: {html}");
        assert!(
            html.contains(&format!("value=\"{closed}\"")),
            "{b}: not prefilled"
        );
        let csrf = csrf_of(&html);
        let subject = "Open the closed register";
        let form = |token: Option<&str>, dataset: &str| {
            let mut fields = vec![
                ("subject", subject.to_string()),
                (
                    "description",
                    "Researchers need firm counts by district.".to_string(),
                ),
                ("dataset_id", dataset.to_string()),
                ("contact", "reader@example.org".to_string()),
            ];
            if let Some(token) = token {
                fields.push(("csrf", token.to_string()));
            }
            fields
        };
        // Without the token, or with another, nothing is filed.
        for token in [None, Some("not-the-token")] {
            let resp = anyone
                .post(t.url("/open-data-requests"))
                .form(&form(token, closed.as_str()))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 403, "{b}: csrf {token:?}");
        }
        let (_, filed) = anon(&t, "/v1/open-data-requests").await;
        assert_eq!(filed, json!([]), "{b}: a refused form filed a request");
        // With it, the request is filed and shown, without its contact.
        let resp = anyone
            .post(t.url("/open-data-requests"))
            .form(&form(Some(csrf.as_str()), closed.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{b}");
        assert_eq!(resp.url().path(), "/open-data-requests", "{b}");
        assert!(
            resp.url()
                .query()
                .is_some_and(|q| q.starts_with("filed=odr")),
            "{b}: {:?}",
            resp.url().query()
        );
        let html = resp.text().await.unwrap();
        assert!(
            html.contains(subject),
            "{b}: the filed request is not listed"
        );
        assert!(
            !html.contains("reader@example.org"),
            "{b}: the contact is public"
        );
        let (_, filed) = anon(&t, "/v1/open-data-requests").await;
        let filed = filed.as_array().unwrap();
        assert_eq!(filed.len(), 1, "{b}: {filed:?}");
        assert_eq!(filed[0]["subject"], subject, "{b}");
        assert_eq!(filed[0]["dataset_id"], closed.as_str(), "{b}");
        assert_eq!(filed[0]["status"], "filed", "{b}");
        assert_eq!(
            filed[0]["contact"],
            Value::Null,
            "{b}: the public sees the contact"
        );
        let (_, seen) = t
            .get(
                t.authority().await,
                &format!(
                    "/v1/open-data-requests/{}",
                    filed[0]["id"].as_str().unwrap()
                ),
            )
            .await;
        assert_eq!(seen["contact"], "reader@example.org", "{b}");
        // An API refusal shows the form again, under the API's status and detail.
        let resp = anyone
            .post(t.url("/open-data-requests"))
            .form(&form(Some(csrf.as_str()), open.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 409, "{b}: asking to open what is open");
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("name=\"subject\""),
            "{b}: the form is not shown again"
        );
        assert!(
            html.contains(&format!("value=\"{open}\"")),
            "{b}: what was typed is lost"
        );
        let (_, filed) = anon(&t, "/v1/open-data-requests").await;
        assert_eq!(filed.as_array().map(Vec::len), Some(1), "{b}");

        // The suspension list, as the API publishes it.
        let (s, out) = post(
            &t,
            &supervisor,
            "/v1/audit/suspensions",
            json!({"org_id": late_org, "action": "suspend", "reason": "Portal test: unpaid fees"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {out}");
        let (s, html) = page(&anyone, &t, "/suspensions").await;
        assert_eq!(s, 200, "{b}: {html}");
        for shown in [
            "portal-public-late-payer",
            late_org.as_str(),
            "Portal test: unpaid fees",
            &format!("/v1/ledger/receipt/{}", out["record"]["seq"]),
        ] {
            assert!(
                html.contains(shown),
                "{b}: the suspension page lacks {shown}"
            );
        }

        // The market needs a key: the API's 401 on the page. A real product: a
        // certified open dataset, a released output, listed by the exchange.
        let (_, power) = org_key(&t, "portal-public-power", "provider", "guangzhou").await;
        let (_, dev) = org_key(&t, "portal-public-analytics", "developer", "national").await;
        let (_, checker) = org_key(&t, "portal-public-checkers", "reviewer", "national").await;
        let (_, exchange) = org_key(&t, "portal-public-exchange", "exchange", "national").await;
        let source = certified_dataset(
            &t,
            &power,
            "Portal metered electricity",
            OpenAttribute::Unconditional,
            false,
        )
        .await;
        let released = release(&t, &dev, &checker, &source, None).await;
        let (s, created) = post(
            &t,
            &dev,
            "/v1/products",
            product_body(
                json!([released["release_id"]]),
                "commercial_internal",
                SPLIT,
            ),
        )
        .await;
        assert_eq!(s, 201, "{b}: {created}");
        let product = created["id"].as_str().unwrap().to_string();
        let (s, listed) = t
            .call(
                Some(&exchange),
                Method::POST,
                &format!("/v1/products/{product}/list"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}: {listed}");
        assert_eq!(anon(&t, "/v1/products").await.0, 401, "{b}");
        for path in ["/market".to_string(), format!("/market/{product}")] {
            assert_eq!(page(&anyone, &t, &path).await.0, 401, "{b}: {path}");
        }
        let shopper = portal_sign_in(&t, &buyer).await;
        let (s, html) = page(&shopper, &t, "/market").await;
        assert_eq!(s, 200, "{b}: {html}");
        assert!(html.contains("District enterprise counts"), "{b}");
        assert!(html.contains(&format!("/market/{product}")), "{b}");
        let (_, html) = page(&shopper, &t, "/market?q=DISTRICT").await;
        assert!(html.contains(&format!("/market/{product}")), "{b}: search");
        let (_, html) = page(&shopper, &t, "/market?q=no-such-product").await;
        assert!(!html.contains(&format!("/market/{product}")), "{b}: search");
        assert_eq!(page(&shopper, &t, "/market?page=0").await.0, 400, "{b}");
        // The product page shows its provenance manifest as the API serves it.
        let (_, api_product) = t.get(&buyer, &format!("/v1/products/{product}")).await;
        let manifest_source = &api_product["manifest"]["sources"][0];
        let (_, version) = anon(&t, &format!("/v1/datasets/{source}/versions/1")).await;
        let (s, html) = page(&shopper, &t, &format!("/market/{product}")).await;
        assert_eq!(s, 200, "{b}: {html}");
        for shown in [
            "District enterprise counts",
            "Portal metered electricity",
            released["release_id"].as_str().unwrap(),
            released["output_hash"].as_str().unwrap(),
            manifest_source["model_hash"].as_str().unwrap(),
            manifest_source["reviewers"][0].as_str().unwrap(),
            version["certificate_no"].as_str().unwrap(),
            version["content_hash"].as_str().unwrap(),
            api_product["manifest_hash"].as_str().unwrap(),
            &format!("/catalog/{source}"),
            &format!("/buyer/products/{product}"),
        ] {
            assert!(html.contains(shown), "{b}: the product page lacks {shown}");
        }
        assert_eq!(
            page(&shopper, &t, "/market/prd_0000000000000000").await.0,
            t.get(&buyer, "/v1/products/prd_0000000000000000").await.0,
            "{b}"
        );

        // The checkpoint with a witness's cosignature (nothing is appended after the
        // witness runs, so the newest checkpoint is the one it cosigned).
        let (s, _) = t
            .call(
                Some(&supervisor),
                Method::POST,
                "/v1/ledger/checkpoint",
                None,
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let key = anon_text(&t, "/v1/ledger/public-key").await;
        let state = tempfile::tempdir().unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"))
            .args(["witness", "--once", "--name", "portal-witness", "--server"])
            .arg(t.url(""))
            .arg("--key")
            .arg(key.trim())
            .arg("--state")
            .arg(state.path().join("witness.json"))
            .env("PDX_API_KEY", supervisor.as_str())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{b}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let note = anon_text(&t, "/v1/ledger/checkpoint").await;
        let parsed = SignedNote::parse(&note).unwrap();
        let checkpoint = Checkpoint::parse_body(&parsed.body).unwrap();
        let (s, html) = page_en(&anyone, &t, "/checkpoint").await;
        assert_eq!(s, 200, "{b}: {html}");
        for shown in [
            "portal-witness",
            "Witness cosignature",
            "Ledger's signature",
            "This page checked the checkpoint's signature",
            checkpoint.origin.as_str(),
            &checkpoint.size.to_string(),
            &hex::encode(checkpoint.root),
            key.trim(),
        ] {
            assert!(
                html.contains(shown),
                "{b}: the checkpoint page lacks {shown}"
            );
        }
        t.stop().await;
    }
}
