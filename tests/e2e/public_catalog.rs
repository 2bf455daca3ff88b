//! The open catalog is public (SD22 Art.10), requests to open data (SD22 Art.9, 12; GD21
//! Art.34), and suspended organisations refused reads of data (XT Art.33), on SQLite
//! and PostgreSQL.
//!
//! - Without a key, the catalog's read routes answer and show published entries only:
//!   the search, dataset pages, versions, certificates with receipts that verify
//!   against the public key, proofs, the public ledger kinds, the suspension list, and
//!   the dummy data and downloads of unconditionally open datasets; rows of any other
//!   dataset are a 401, an unpublished entry a 404. Every other route is a 401 without a
//!   key, and a bad key is a 401 on the public routes too (and still counts towards the
//!   address's lock-out). The OpenAPI document marks the public routes' key optional.
//! - The public files a request to open data without a key; the data authority routes
//!   it to a provider; the provider answers on time. Another request is answered late
//!   and shows on the compliance report. The contact never reaches the public or the
//!   ledger. Wrong roles are 403s, another provider 404, answering twice 409, a refusal
//!   without a reason 422, each leaving nothing half-written; writes without a key are
//!   limited per address.
//! - A suspended organisation is refused downloads, dummy data and every other read of
//!   data and outputs, and keeps the reads that show where it stands.

use std::collections::BTreeSet;

use pdx::auth::{Owner, Role};
use pdx::http::policies::{OPEN_WHILE_SUSPENDED, POLICIES};
use pdx::samples;
use pdx_ledger::note::NoteVerifier;
use pdx_ledger::{EntryKind, Receipt};
use pdx_sandbox::workdays::{Calendar, iso_date};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{draft, register, upload_certified};
use crate::governance::{key_in, late_items};
use crate::support::{TestServer, limits, payload};

/// A well-formed key that no server issued.
const BAD_KEY: &str = "pdx_0123456789abcdef_nope";

/// A GET without any `Authorization` header.
async fn anon(t: &TestServer, path: &str) -> (u16, Value) {
    t.call(None, Method::GET, path, None).await
}

async fn post(t: &TestServer, key: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    t.call(key, Method::POST, path, Some(body)).await
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

/// Uploads a version of `id` and waits for its certificate.
async fn certified(t: &TestServer, provider: &str, id: &str) {
    let csv = samples::electricity_csv(40, 7).into_bytes();
    upload_certified(t, provider, id, "", csv).await;
}

/// A route template with every `{parameter}` replaced by `1`.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('1');
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The GET routes anyone may read without a key, by the policy table.
fn public_gets() -> BTreeSet<String> {
    POLICIES
        .iter()
        .filter(|(m, _, p)| *m == "GET" && p.owner == Owner::Public)
        .map(|(_, r, _)| r.to_string())
        .collect()
}

/// The ids of a catalog page.
fn ids(page: &Value) -> BTreeSet<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// The body of a keyless GET, as bytes, with its status.
async fn anon_bytes(t: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let resp = t.http.get(t.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn the_open_catalog_answers_without_a_key_and_shows_only_published_entries_on_both_backends()
{
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("app-maker", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let open = register(
            &t,
            &provider,
            &electricity("Open water use", "unconditional"),
        )
        .await;
        let conditional = register(
            &t,
            &provider,
            &electricity("Conditional water use", "conditional"),
        )
        .await;
        let closed = register(&t, &provider, &electricity("Closed water use", "not_open")).await;
        let drafted = draft(
            &t,
            &provider,
            &electricity("Draft water use", "unconditional"),
        )
        .await;
        for id in [&open, &conditional, &drafted] {
            certified(&t, &provider, id).await;
        }
        // Every public GET route this test reads without a key.
        let mut read = BTreeSet::new();

        // The search: published entries only, whatever the filter asks for.
        let (s, page) = anon(&t, "/v1/datasets").await;
        assert_eq!(s, 200, "{b}: {page}");
        let published: BTreeSet<String> = [&open, &conditional, &closed]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(ids(&page), published, "{b}: {page}");
        assert_eq!(page["total"], 3, "{b}: {page}");
        let (s, page) = anon(&t, "/v1/datasets?status=draft").await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(ids(&page).is_empty(), "{b}: {page}");
        // Its provider sees the draft in the same search (the filter is the public's).
        let (_, own) = t.get(&provider, "/v1/datasets").await;
        assert!(ids(&own).contains(&drafted), "{b}: {own}");
        read.insert("/v1/datasets");

        // Pages, versions and certificates of published entries; 404 for the draft.
        let (s, entry) = anon(&t, &format!("/v1/datasets/{open}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["status"], "published");
        let (s, versions) = anon(&t, &format!("/v1/datasets/{open}/versions")).await;
        assert_eq!(s, 200, "{b}: {versions}");
        assert_eq!(
            versions.as_array().map(Vec::len),
            Some(1),
            "{b}: {versions}"
        );
        let (s, version) = anon(&t, &format!("/v1/datasets/{open}/versions/1")).await;
        assert_eq!(s, 200, "{b}: {version}");
        let (s, cert) = anon(&t, &format!("/v1/datasets/{open}/versions/1/certificate")).await;
        assert_eq!(s, 200, "{b}: {cert}");
        for path in [
            format!("/v1/datasets/{drafted}"),
            format!("/v1/datasets/{drafted}/versions"),
            format!("/v1/datasets/{drafted}/versions/1"),
            format!("/v1/datasets/{drafted}/versions/1/certificate"),
            format!("/v1/datasets/{drafted}/versions/1/download"),
            format!("/v1/datasets/{drafted}/dummy?rows=5"),
        ] {
            let (s, p) = anon(&t, &path).await;
            assert_eq!(s, 404, "{b}: {path}: {p}");
        }
        assert_eq!(
            t.get(&provider, &format!("/v1/datasets/{drafted}")).await.0,
            200
        );
        read.extend([
            "/v1/datasets/{id}",
            "/v1/datasets/{id}/versions",
            "/v1/datasets/{id}/versions/{version}",
            "/v1/datasets/{id}/versions/{version}/certificate",
        ]);

        // The certificate's receipt verifies against the public key, both read without
        // a key; so do the receipt, entry and inclusion proof served for its seq.
        let (s, vkey) = anon(&t, "/v1/ledger/public-key").await;
        assert_eq!(s, 200, "{b}: {vkey}");
        let key = NoteVerifier::parse(vkey.as_str().unwrap().trim()).unwrap();
        let receipt: Receipt = serde_json::from_value(cert["receipt"].clone()).unwrap();
        receipt.verify(&key).unwrap();
        assert_eq!(receipt.entry.kind, EntryKind::AssetCertificate);
        let cert_seq = receipt.entry.seq;
        let (s, served) = anon(&t, &format!("/v1/ledger/receipt/{cert_seq}")).await;
        assert_eq!(s, 200, "{b}: {served}");
        let served: Receipt = serde_json::from_value(served).unwrap();
        served.verify(&key).unwrap();
        let (s, entry) = anon(&t, &format!("/v1/ledger/entries/{cert_seq}")).await;
        assert_eq!(
            (s, entry["kind"].as_str()),
            (200, Some("asset_certificate")),
            "{b}"
        );
        let (s, proof) = anon(&t, &format!("/v1/ledger/proof/inclusion?seq={cert_seq}")).await;
        assert_eq!(s, 200, "{b}: {proof}");
        assert_eq!(proof["seq"], cert_seq);
        let (s, proof) = anon(&t, "/v1/ledger/proof/consistency?from=1&to=2").await;
        assert_eq!(s, 200, "{b}: {proof}");
        let (s, note) = anon(&t, "/v1/ledger/checkpoint").await;
        assert_eq!(s, 200, "{b}: {note}");
        assert!(note.as_str().is_some_and(|n| !n.is_empty()), "{b}: {note}");
        read.extend([
            "/v1/ledger/public-key",
            "/v1/ledger/receipt/{seq}",
            "/v1/ledger/entries/{seq}",
            "/v1/ledger/proof/inclusion",
            "/v1/ledger/proof/consistency",
            "/v1/ledger/checkpoint",
        ]);

        // The public reads the public kinds only: a catalog decision (a private kind,
        // which the supervisor sees) is absent from its pages and "not found" by seq.
        let (s, page) = anon(&t, "/v1/ledger/entries?limit=1000").await;
        assert_eq!(s, 200, "{b}: {page}");
        let kinds: Vec<EntryKind> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(kinds.contains(&EntryKind::AssetCertificate), "{b}: {page}");
        assert!(kinds.iter().all(EntryKind::is_public), "{b}: {kinds:?}");
        let (s, page) = anon(&t, "/v1/ledger/entries?kind=catalog_decision").await;
        assert_eq!(s, 200, "{b}: {page}");
        assert_eq!(page["entries"], json!([]), "{b}: {page}");
        let decisions = crate::governance::entries(&t, &supervisor, "catalog_decision").await;
        let private_seq = decisions[0]["seq"].as_u64().unwrap();
        for path in [
            format!("/v1/ledger/entries/{private_seq}"),
            format!("/v1/ledger/receipt/{private_seq}"),
            format!("/v1/ledger/proof/inclusion?seq={private_seq}"),
        ] {
            assert_eq!(anon(&t, &path).await.0, 404, "{b}: {path}");
        }
        read.insert("/v1/ledger/entries");

        // Rows: the unconditionally open dataset's, downloaded as certified, and its
        // dummy data; any other dataset's rows are a 401 for the public.
        let (s, parquet) =
            anon_bytes(&t, &format!("/v1/datasets/{open}/versions/1/download")).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            cert["certificate"]["content_hash"],
            blake3::hash(&parquet).to_hex().as_str(),
            "{b}"
        );
        let (s, csv) = anon_bytes(
            &t,
            &format!("/v1/datasets/{open}/versions/1/download?format=csv"),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert!(String::from_utf8(csv).unwrap().contains("district"), "{b}");
        let (s, dummy) = anon(&t, &format!("/v1/datasets/{open}/dummy?rows=5")).await;
        assert_eq!(s, 200, "{b}: {dummy}");
        assert_eq!(dummy.as_array().map(Vec::len), Some(5), "{b}: {dummy}");
        for path in [
            format!("/v1/datasets/{conditional}/versions/1/download"),
            format!("/v1/datasets/{conditional}/dummy?rows=5"),
            format!("/v1/datasets/{closed}/versions/1/download"),
            format!("/v1/datasets/{closed}/dummy?rows=5"),
        ] {
            let (s, p) = anon(&t, &path).await;
            assert_eq!(s, 401, "{b}: {path}: {p}");
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap()
                    .contains("unconditionally open"),
                "{b}: {p}"
            );
        }
        // With a key the rules are as before: a developer's download of conditional
        // data is a 403, its dummy data a 200.
        let (s, _) = t
            .get(
                &dev,
                &format!("/v1/datasets/{conditional}/versions/1/download"),
            )
            .await;
        assert_eq!(s, 403, "{b}");
        let (s, _) = t
            .get(&dev, &format!("/v1/datasets/{conditional}/dummy?rows=5"))
            .await;
        assert_eq!(s, 200, "{b}");
        read.extend([
            "/v1/datasets/{id}/versions/{version}/download",
            "/v1/datasets/{id}/dummy",
        ]);

        // The suspension list and the requests to open data.
        let (s, list) = anon(&t, "/v1/audit/suspensions").await;
        assert_eq!(s, 200, "{b}: {list}");
        assert_eq!(list["suspended"], json!([]), "{b}: {list}");
        let (s, list) = anon(&t, "/v1/open-data-requests").await;
        assert_eq!((s, list), (200, json!([])), "{b}");
        let (s, _) = anon(&t, "/v1/open-data-requests/odr_0123456789abcdef").await;
        assert_eq!(s, 404, "{b}");
        read.extend([
            "/v1/audit/suspensions",
            "/v1/open-data-requests",
            "/v1/open-data-requests/{id}",
        ]);

        // Every public GET route was read here, and every other route needs a key.
        let read: BTreeSet<String> = read.into_iter().map(str::to_string).collect();
        assert_eq!(read, public_gets(), "{b}: a public route is not tested");
        let mut refused = 0;
        for (method, template, policy) in POLICIES {
            if policy.owner == Owner::Public {
                continue;
            }
            let (s, p) = t
                .call(None, method.parse().unwrap(), &concrete(template), None)
                .await;
            assert_eq!(s, 401, "{b}: {method} {template} without a key: {p}");
            refused += 1;
        }
        assert!(refused > 50, "{b}: only {refused} routes checked");
        t.stop().await;
    }
}

#[test]
fn the_openapi_document_marks_the_key_optional_on_the_public_routes_only() {
    let (_, doc) = pdx::http::api_routes().split_for_parts();
    let doc = serde_json::to_value(&doc).unwrap();
    for (method, template, policy) in POLICIES {
        let op = &doc["paths"][*template][method.to_lowercase()];
        let security = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {template}: no security in {op}"));
        let anonymous = security.iter().any(|s| s == &json!({}));
        let bearer = security.iter().any(|s| s.get("bearer").is_some());
        assert!(bearer, "{method} {template}: no bearer scheme");
        assert_eq!(
            anonymous,
            policy.owner == Owner::Public,
            "{method} {template}: the key is optional exactly on public routes"
        );
    }
}

#[tokio::test]
async fn a_bad_key_on_a_public_route_is_a_401_and_counts_towards_the_lock_out() {
    let public = public_gets();
    let limit = u32::try_from(public.len()).unwrap() + 2;
    let t = TestServer::start_with(false, |app| {
        limits(app).auth_failure_limit = limit;
    })
    .await
    .unwrap();
    let (_, dev) = t.key_for("app-maker", "developer").await;
    // A bad key never falls back to the public: 401 on every public route.
    for template in &public {
        let (s, p) = t.get(BAD_KEY, &concrete(template)).await;
        assert_eq!(s, 401, "{template} with a bad key: {p}");
    }
    // Nor does a header that is not a bearer key.
    let resp = t
        .http
        .get(t.url("/v1/datasets"))
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // Not yet locked out: a valid key still works, on public routes too.
    assert_eq!(t.get(&dev, "/v1/datasets").await.0, 200);
    // The limit-th failure locks the address out, for every request with a key.
    assert_eq!(t.get(BAD_KEY, "/v1/datasets").await.0, 401);
    assert_eq!(t.get(&dev, "/v1/datasets").await.0, 429);
    assert_eq!(t.get(&dev, "/v1/whoami").await.0, 429);
    // The public still reads the open catalog; other routes still want a key.
    let (s, page) = anon(&t, "/v1/datasets").await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(anon(&t, "/v1/whoami").await.0, 401);
    t.stop().await;
}

/// The compliance report's late requests to open data, as (request id, state).
async fn late_requests(t: &TestServer, supervisor: &str) -> Vec<(String, String)> {
    let (s, report) = t.get(supervisor, "/v1/audit/compliance").await;
    assert_eq!(s, 200, "{report}");
    late_items(&report, "late_open_data_requests", "request_id")
}

/// The payloads of the `open_data_request` entries the public reads.
async fn request_events(t: &TestServer) -> Vec<Value> {
    let (s, page) = anon(t, "/v1/ledger/entries?kind=open_data_request&limit=1000").await;
    assert_eq!(s, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(payload)
        .collect()
}

async fn request_rows(t: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM open_data_requests")
        .fetch_one(t.app.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_public_asks_for_data_to_be_opened_and_the_provider_answers_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("water-bureau", "provider").await;
        let (other_org, other_provider) = t.key_for("forest-bureau", "provider").await;
        let (dev_org, dev) = t.key_for("app-maker", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let authority = t.authority().await.to_string();
        let conditional = register(
            &t,
            &provider,
            &electricity("Conditional water use", "conditional"),
        )
        .await;
        let open = register(
            &t,
            &provider,
            &electricity("Open water use", "unconditional"),
        )
        .await;
        let drafted = draft(
            &t,
            &provider,
            &electricity("Draft water use", "conditional"),
        )
        .await;
        let contact = "citizen@example.org";

        // Bad filings, without a key: each refused, nothing written.
        let good = json!({
            "dataset_id": conditional,
            "subject": "Open the water use data",
            "description": "Researchers need the district totals without applying for a grant.",
            "contact": contact,
        });
        let mut cases: Vec<(Value, u16)> = Vec::new();
        let mut with = |field: &str, value: Value, status: u16| {
            let mut body = good.clone();
            body[field] = value;
            cases.push((body, status));
        };
        with("dataset_id", json!(drafted), 404);
        with("dataset_id", json!(open), 409);
        with("subject", json!("x".repeat(201)), 422);
        with("description", json!("   "), 422);
        with("contact", json!("a@example.org\r\nBcc: b@example.org"), 422);
        with("requester_org", json!(dev_org), 422);
        for (body, status) in cases {
            let (s, p) = post(&t, None, "/v1/open-data-requests", body.clone()).await;
            assert_eq!(s, status, "{b}: {body}: {p}");
        }
        assert_eq!(request_rows(&t).await, 0, "{b}");
        assert!(request_events(&t).await.is_empty(), "{b}");

        // Filed by the public, without a key.
        let (s, filed) = post(&t, None, "/v1/open-data-requests", good.clone()).await;
        assert_eq!(s, 201, "{b}: {filed}");
        let id = filed["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("odr_"), "{b}: {filed}");
        assert_eq!(filed["request"], "open_dataset");
        assert_eq!(filed["status"], "filed");
        assert!(filed["requester_org"].is_null(), "{b}: {filed}");
        let path = format!("/v1/open-data-requests/{id}");

        // Public, but for the contact: the public and another provider do not see it;
        // the data authority and supervisors do.
        let (s, seen) = anon(&t, &path).await;
        assert_eq!(s, 200, "{b}: {seen}");
        assert_eq!(seen["subject"], "Open the water use data");
        assert!(seen["contact"].is_null(), "{b}: {seen}");
        let (s, list) = anon(&t, "/v1/open-data-requests").await;
        assert_eq!(s, 200, "{b}: {list}");
        assert_eq!(list[0]["id"], id.as_str(), "{b}: {list}");
        assert!(!list.to_string().contains(contact), "{b}: {list}");
        assert!(
            t.get(&other_provider, &path).await.1["contact"].is_null(),
            "{b}"
        );
        assert_eq!(t.get(&authority, &path).await.1["contact"], contact, "{b}");
        assert_eq!(t.get(&supervisor, &path).await.1["contact"], contact, "{b}");
        // On the ledger: a public `filed` entry by the platform's actor, naming no
        // requester and holding neither the contact nor the words, only their hash.
        let (s, page) = anon(&t, "/v1/ledger/entries?kind=open_data_request").await;
        assert_eq!(s, 200, "{b}: {page}");
        let entry = &page["entries"][0];
        assert_eq!(entry["actor"]["org"], "pdx", "{b}: {entry}");
        assert!(!entry.to_string().contains(contact), "{b}: {entry}");
        assert!(!entry.to_string().contains("Researchers"), "{b}: {entry}");
        let p = payload(entry);
        assert_eq!(p["event"], "filed", "{b}: {p}");
        assert_eq!(p["request_id"], id.as_str());
        assert_eq!(p["dataset_id"], conditional.as_str());
        assert!(p["requester_org"].is_null(), "{b}: {p}");
        assert_eq!(filed["filed_seq"], entry["seq"], "{b}");

        // Routing is the data authority's: other roles 403, the public 401.
        for key in [&dev, &provider, &supervisor] {
            let (s, p) = post(&t, Some(key), &format!("{path}/route"), json!({})).await;
            assert_eq!(s, 403, "{b}: {p}");
        }
        let (s, _) = post(&t, None, &format!("{path}/route"), json!({})).await;
        assert_eq!(s, 401, "{b}");
        // A request about a dataset goes to its provider, not another.
        let (s, p) = post(
            &t,
            Some(&authority),
            &format!("{path}/route"),
            json!({"provider_org": other_org}),
        )
        .await;
        assert_eq!(s, 422, "{b}: {p}");
        let (s, p) = post(
            &t,
            Some(&authority),
            "/v1/open-data-requests/odr_0123456789abcdef/route",
            json!({}),
        )
        .await;
        assert_eq!(s, 404, "{b}: {p}");
        let before = pdx_ledger::db::now_ms();
        let (s, routed) = post(&t, Some(&authority), &format!("{path}/route"), json!({})).await;
        let after = pdx_ledger::db::now_ms();
        assert_eq!(s, 200, "{b}: {routed}");
        assert_eq!(routed["status"], "routed");
        assert_eq!(routed["provider_org"], provider_org.as_str());
        let calendar = Calendar::default();
        let due = routed["answer_due"].as_str().unwrap();
        assert!(
            [
                iso_date(calendar.deadline_from_ms(before, 15)),
                iso_date(calendar.deadline_from_ms(after, 15)),
            ]
            .iter()
            .any(|d| d == due),
            "{b}: 15 working days: {routed}"
        );
        let (s, p) = post(&t, Some(&authority), &format!("{path}/route"), json!({})).await;
        assert_eq!(s, 409, "{b}: routed twice: {p}");
        // Routed to it, the provider sees the contact.
        assert_eq!(t.get(&provider, &path).await.1["contact"], contact, "{b}");

        // The answer is the provider's: other roles 403, another provider 404, a
        // refusal without a reason 422.
        for key in [&dev, &authority, &supervisor] {
            let (s, p) = post(
                &t,
                Some(key),
                &format!("{path}/answer"),
                json!({"outcome": "accepted"}),
            )
            .await;
            assert_eq!(s, 403, "{b}: {p}");
        }
        let (s, p) = post(
            &t,
            Some(&other_provider),
            &format!("{path}/answer"),
            json!({"outcome": "accepted"}),
        )
        .await;
        assert_eq!(s, 404, "{b}: another provider: {p}");
        let (s, p) = post(
            &t,
            Some(&provider),
            &format!("{path}/answer"),
            json!({"outcome": "refused"}),
        )
        .await;
        assert_eq!(s, 422, "{b}: a refusal without a reason: {p}");
        let (s, p) = post(
            &t,
            Some(&provider),
            &format!("{path}/answer"),
            json!({"outcome": "refused", "reason": "   "}),
        )
        .await;
        assert_eq!(s, 422, "{b}: a blank reason: {p}");
        assert_eq!(anon(&t, &path).await.1["status"], "routed", "{b}");
        // Accepted on time.
        let (s, answered) = post(
            &t,
            Some(&provider),
            &format!("{path}/answer"),
            json!({"outcome": "accepted", "reason": "published as a district summary"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {answered}");
        assert_eq!(answered["status"], "accepted");
        assert_eq!(answered["answered_late"], false);
        let (s, p) = post(
            &t,
            Some(&provider),
            &format!("{path}/answer"),
            json!({"outcome": "refused", "reason": "changed our mind"}),
        )
        .await;
        assert_eq!(s, 409, "{b}: answered twice: {p}");
        assert!(late_requests(&t, &supervisor).await.is_empty(), "{b}");

        // A second request, for a new dataset, by a developer with a key.
        let (s, second) = post(
            &t,
            Some(&dev),
            "/v1/open-data-requests",
            json!({"subject": "Publish forest fire records", "description": "Yearly counts per district."}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {second}");
        assert_eq!(second["request"], "new_dataset");
        assert_eq!(second["requester_org"], dev_org.as_str());
        let second_id = second["id"].as_str().unwrap().to_string();
        let second_path = format!("/v1/open-data-requests/{second_id}");
        // A new dataset needs the provider named, and one that holds a provider key.
        let (s, p) = post(
            &t,
            Some(&authority),
            &format!("{second_path}/route"),
            json!({}),
        )
        .await;
        assert_eq!(s, 422, "{b}: {p}");
        let (s, p) = post(
            &t,
            Some(&authority),
            &format!("{second_path}/route"),
            json!({"provider_org": dev_org}),
        )
        .await;
        assert_eq!(s, 422, "{b}: not a provider: {p}");
        let (s, routed) = post(
            &t,
            Some(&authority),
            &format!("{second_path}/route"),
            json!({"provider_org": other_org}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {routed}");
        // The first request's provider cannot answer the second.
        let (s, _) = post(
            &t,
            Some(&provider),
            &format!("{second_path}/answer"),
            json!({"outcome": "accepted"}),
        )
        .await;
        assert_eq!(s, 404, "{b}");
        // Its deadline moved back, as time would: overdue, then answered late.
        sqlx::query("UPDATE open_data_requests SET answer_due = '2020-01-06' WHERE id = $1")
            .bind(second_id.clone())
            .execute(t.app.db.pool())
            .await
            .unwrap();
        assert_eq!(anon(&t, &second_path).await.1["overdue"], true, "{b}");
        assert_eq!(
            late_requests(&t, &supervisor).await,
            [(second_id.clone(), "pending".to_string())],
            "{b}"
        );
        let (s, answered) = post(
            &t,
            Some(&other_provider),
            &format!("{second_path}/answer"),
            json!({"outcome": "refused", "reason": "the records hold personal data"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {answered}");
        assert_eq!(answered["status"], "refused");
        assert_eq!(answered["answered_late"], true, "{b}: {answered}");
        assert_eq!(answered["reason"], "the records hold personal data");
        assert_eq!(
            late_requests(&t, &supervisor).await,
            [(second_id.clone(), "answered_late".to_string())],
            "{b}"
        );
        // The requester's own organisation sees its contact-less request answered.
        let (s, mine) = t.get(&dev, &second_path).await;
        assert_eq!((s, mine["status"].as_str()), (200, Some("refused")), "{b}");

        // Every step on the ledger, public; nothing else written by the refusals.
        let events: Vec<(String, String)> = request_events(&t)
            .await
            .iter()
            .map(|p| {
                (
                    p["request_id"].as_str().unwrap().to_string(),
                    p["event"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            (&id, "filed"),
            (&id, "routed"),
            (&id, "answered"),
            (&second_id, "filed"),
            (&second_id, "routed"),
            (&second_id, "answered"),
        ]
        .iter()
        .map(|(r, e)| (r.to_string(), e.to_string()))
        .collect();
        assert_eq!(events, want, "{b}");
        let answers: Vec<Value> = request_events(&t)
            .await
            .into_iter()
            .filter(|p| p["event"] == "answered")
            .collect();
        assert_eq!(answers[0]["outcome"], "accepted", "{b}");
        assert_eq!(answers[0]["late"], false, "{b}");
        assert_eq!(answers[1]["outcome"], "refused", "{b}");
        assert_eq!(answers[1]["late"], true, "{b}");
        assert_eq!(answers[1]["answer_due"], "2020-01-06", "{b}");
        assert_eq!(request_rows(&t).await, 2, "{b}");
        // The list filters by status.
        let (s, routed) = anon(&t, "/v1/open-data-requests?status=routed").await;
        assert_eq!((s, routed), (200, json!([])), "{b}");
        let (s, refused) = anon(&t, "/v1/open-data-requests?status=refused").await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(refused.as_array().map(Vec::len), Some(1), "{b}: {refused}");
        t.stop().await;
    }
}

#[tokio::test]
async fn writes_without_a_key_are_limited_per_address() {
    let t = TestServer::start_with(false, |app| {
        limits(app).anonymous_writes_per_hour = 2;
    })
    .await
    .unwrap();
    let (_, dev) = t.key_for("app-maker", "developer").await;
    let body = json!({"subject": "Bus stops", "description": "Every stop with its lines."});
    for _ in 0..2 {
        let (s, p) = post(&t, None, "/v1/open-data-requests", body.clone()).await;
        assert_eq!(s, 201, "{p}");
    }
    let resp = t
        .http
        .post(t.url("/v1/open-data-requests"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 60, "{retry_after}");
    let problem: Value = resp.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("without a key"),
        "{problem}"
    );
    assert_eq!(request_rows(&t).await, 2);
    // Reads without a key go on, and a caller with a key is counted by its key.
    assert_eq!(anon(&t, "/v1/open-data-requests").await.0, 200);
    let (s, p) = post(&t, Some(&dev), "/v1/open-data-requests", body).await;
    assert_eq!(s, 201, "{p}");
    t.stop().await;
}

#[tokio::test]
async fn a_suspended_organisation_is_refused_downloads_and_reads_of_data_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("water-bureau", "provider").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (org, dev) = t.key_for("suspect-labs", "developer").await;
        let open = register(
            &t,
            &provider,
            &electricity("Open water use", "unconditional"),
        )
        .await;
        certified(&t, &provider, &open).await;
        let download = format!("/v1/datasets/{open}/versions/1/download");
        let dummy = format!("/v1/datasets/{open}/dummy?rows=5");
        assert_eq!(t.get(&dev, &download).await.0, 200, "{b}");
        assert_eq!(t.get(&dev, &dummy).await.0, 200, "{b}");
        let mut keys = Vec::new();
        for role in Role::ALL {
            keys.push((role, key_in(&t, &org, role).await));
        }
        let key_of = |role: Role| {
            keys.iter()
                .find(|(r, _)| *r == role)
                .map(|(_, k)| k.clone())
        };

        let (s, out) = post(
            &t,
            Some(&supervisor),
            "/v1/audit/suspensions",
            json!({"org_id": org, "action": "suspend", "reason": "data passed to a third party"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {out}");

        // Downloads and dummy data: refused, naming the suspension.
        for path in [&download, &dummy] {
            let (s, p) = t.get(&dev, path).await;
            assert_eq!(s, 403, "{b}: {path}: {p}");
            assert!(
                p["detail"].as_str().unwrap().contains("suspended"),
                "{b}: {p}"
            );
        }
        // Every read that is not open to it, whatever the role of its key.
        let mut refused = 0;
        for (method, template, policy) in POLICIES {
            if *method != "GET" || OPEN_WHILE_SUSPENDED.contains(template) {
                continue;
            }
            let key = key_of(policy.roles[0]).unwrap();
            let (s, p) = t.get(&key, &concrete(template)).await;
            assert_eq!(s, 403, "{b}: GET {template}: {p}");
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("suspended"),
                "{b}: GET {template}: {p}"
            );
            refused += 1;
        }
        assert!(refused >= 20, "{b}: only {refused} reads refused");
        // What stays open: who it is, the catalog's metadata, the suspension list and
        // its own suspension on the ledger.
        let (s, me) = t.get(&dev, "/v1/whoami").await;
        assert_eq!(
            (s, me["suspended"].as_bool()),
            (200, Some(true)),
            "{b}: {me}"
        );
        assert_eq!(t.get(&dev, "/v1/datasets").await.0, 200, "{b}");
        assert_eq!(
            t.get(&dev, &format!("/v1/datasets/{open}")).await.0,
            200,
            "{b}"
        );
        assert_eq!(
            t.get(&dev, &format!("/v1/datasets/{open}/versions/1/certificate"))
                .await
                .0,
            200,
            "{b}"
        );
        let (s, list) = t.get(&dev, "/v1/audit/suspensions").await;
        assert_eq!(s, 200, "{b}: {list}");
        assert_eq!(list["suspended"][0]["org_id"], org.as_str(), "{b}: {list}");
        let suspensions = crate::governance::entries(&t, &dev, "suspension").await;
        assert!(
            suspensions
                .iter()
                .any(|e| payload(e)["org"] == org.as_str()),
            "{b}: {suspensions:?}"
        );
        for template in OPEN_WHILE_SUSPENDED {
            let (_, _, policy) = POLICIES
                .iter()
                .find(|(m, r, _)| *m == "GET" && r == template)
                .unwrap();
            let key = key_of(policy.roles[0]).unwrap();
            let (s, p) = t.get(&key, &concrete(template)).await;
            assert_ne!(s, 403, "{b}: GET {template} stays open: {p}");
        }

        // Reinstated: the download works again.
        let (s, out) = post(
            &t,
            Some(&supervisor),
            "/v1/audit/suspensions",
            json!({"org_id": org, "action": "reinstate", "reason": "remedied"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {out}");
        assert_eq!(t.get(&dev, &download).await.0, 200, "{b}");
        t.stop().await;
    }
}
