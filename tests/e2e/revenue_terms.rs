//! Revenue rules, grant terms and classification rules over HTTP, on SQLite and
//! PostgreSQL (GY ch.6; SD22 Art.14; XT Art.30; GD21 Art.9, 13, 26; SD22 Art.5, 8).
//!
//! - A public-interest product may be free: price 0 under the `public_interest`
//!   licence; its order is paid at once with a `Transaction` of 0 fen, downloads, and is
//!   in no remittance. Price 0 under any other licence, and a paid product whose split
//!   gives public finance less than 10 %, are 422s naming the rule. A region's
//!   public-finance bureau (`finance` role) reads the remittances to its own account,
//!   exact to the fen; another region's bureau finds none, other roles are refused.
//! - The agreement text a developer accepts when filing a grant is stored with it, and
//!   the `GrantDecision` entry carries its BLAKE3 (checked against the text the test
//!   sent) with the purpose; a research or public-interest purpose feeds no commercial
//!   product (422 naming the licence and the purpose).
//! - A not-shared classification is filed with its legal basis (a
//!   `ClassificationFiling` entry; the authority lists filings); without a legal basis
//!   it is refused and nothing is written. Level L4 data is never unconditionally open:
//!   not at registration, not by an edit, not by an open-attribute change, not by an
//!   emergency relaxation.

use pdx_products::Period;
use pdx_sandbox::NewDataset;
use pdx_sandbox::catalog::{Level, OpenAttribute, ShareType};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{draft, register};
use crate::governance::{edit_body, electricity, entries, json_of};
use crate::products::{SPLIT, dataset, market, org_key, place, product_body, release};
use crate::support::{TestServer, blake3_hex, day, payload, post, put};

const DAY_MS: i64 = 86_400_000;
/// The region of the market's provider (`crate::products::market`).
const REGION: &str = "guangzhou";

/// The electricity entry classified as not shared, with `legal_basis`.
fn not_shared(legal_basis: &str) -> NewDataset {
    let mut meta = electricity();
    meta.share_type = ShareType::NotShared;
    meta.share_conditions = String::new();
    meta.legal_basis = legal_basis.into();
    meta
}

/// The electricity entry at `level` with `open`.
fn graded(level: Level, open: OpenAttribute) -> NewDataset {
    let mut meta = electricity();
    meta.level = level;
    meta.open_attribute = open;
    meta
}

/// A grant application on `dataset` with an optional purpose kind and agreement.
fn application(dataset: &str, kind: Option<&str>, agreement: Option<&str>) -> Value {
    let mut body = json!({
        "dataset_id": dataset,
        "purpose": "district energy benchmarks",
        "columns": ["district", "industry", "kwh_12m"],
        "model_kinds": ["sql"],
        "term_days": 365,
        "query_budget": 10
    });
    if let Some(kind) = kind {
        body["purpose_kind"] = json!(kind);
    }
    if let Some(text) = agreement {
        body["agreement"] = json!(text);
    }
    body
}

/// Files `body` as `dev` and has `provider` approve it; returns the approved grant.
async fn approved_grant(t: &TestServer, dev: &str, provider: &str, body: Value) -> Value {
    let b = t.backend;
    let (s, grant) = post(t, dev, "/v1/grants", body).await;
    assert_eq!(s, 201, "{b}: {grant}");
    let gid = grant["id"].as_str().unwrap();
    let (s, approved) = post(
        t,
        provider,
        &format!("/v1/grants/{gid}/decision"),
        json!({"approve": true}),
    )
    .await;
    assert_eq!(s, 200, "{b}: {approved}");
    assert_eq!(approved["status"], "approved", "{b}: {approved}");
    approved
}

/// The payload of the ledger entry `seq`, as `key` reads it.
async fn entry_payload(t: &TestServer, key: &str, seq: u64, kind: &str) -> Value {
    let (s, entry) = t.get(key, &format!("/v1/ledger/entries/{seq}")).await;
    assert_eq!(s, 200, "{}: {entry}", t.backend);
    assert_eq!(entry["kind"], kind, "{entry}");
    payload(&entry)
}

#[tokio::test]
async fn a_free_public_interest_product_remits_nothing_and_a_paid_one_remits_its_minimum_to_a_payee_that_reads_it_on_both_backends()
 {
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let releases = json!([m.release["release_id"]]);

        // Price 0 under any licence but public_interest: 422 naming both.
        for licence in [
            "research_only",
            "commercial_internal",
            "commercial_redistribution",
        ] {
            let mut body = product_body(releases.clone(), licence, SPLIT);
            body["price_minor"] = json!(0);
            let (s, p) = post(t, &m.dev, "/v1/products", body).await;
            assert_eq!(s, 422, "{b} {licence}: {p}");
            let detail = p["detail"].as_str().unwrap();
            assert!(
                detail.contains("public_interest") && detail.contains(licence),
                "{b}: {detail}"
            );
        }
        // A paid product whose split gives public finance 9.99 %: 422 naming the
        // minimum, at either licence.
        for licence in ["commercial_internal", "public_interest"] {
            let (s, p) = post(
                t,
                &m.dev,
                "/v1/products",
                product_body(releases.clone(), licence, [999, 1_000, 8_001]),
            )
            .await;
            assert_eq!(s, 422, "{b} {licence}: {p}");
            let detail = p["detail"].as_str().unwrap();
            assert!(
                detail.contains("1000 basis points (10%)") && detail.contains("999"),
                "{b}: {detail}"
            );
        }
        let (s, mine) = t.get(&m.dev, "/v1/products?mine=true").await;
        assert_eq!(s, 200, "{b}: {mine}");
        assert_eq!(mine, json!([]), "{b}: the refusals created nothing");

        // A free public-interest product: listed, ordered, paid at once with a 0-fen
        // Transaction entry, downloaded.
        let mut free = product_body(releases.clone(), "public_interest", [0, 1_000, 9_000]);
        free["price_minor"] = json!(0);
        let (s, product) = post(t, &m.dev, "/v1/products", free).await;
        assert_eq!(s, 201, "{b}: {product}");
        assert_eq!(product["price_minor"], 0);
        assert_eq!(product["licence"]["kind"], "public_interest");
        let free_id = product["id"].as_str().unwrap().to_string();
        let (s, listed) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                &format!("/v1/products/{free_id}/list"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}: {listed}");
        let listing = entry_payload(
            t,
            &m.buyer,
            listed["listing_seq"].as_u64().unwrap(),
            "product_listing",
        )
        .await;
        assert_eq!(listing["price_minor"], 0, "{b}: {listing}");
        assert_eq!(listing["licence"], "public_interest");
        let resp = place(t, &m.buyer, Some("free-1"), json!({"product_id": free_id})).await;
        assert_eq!(resp.status().as_u16(), 201, "{b}");
        let order: Value = resp.json().await.unwrap();
        assert_eq!(order["status"], "paid", "{b}: {order}");
        assert_eq!(order["price_minor"], 0);
        assert_eq!(order["payment_ref"], "free:public_interest");
        assert!(order["licence_expires_at"].is_string(), "{b}: {order}");
        let free_order = order["id"].as_str().unwrap().to_string();
        let sale = entry_payload(
            t,
            &m.buyer,
            order["transaction_seq"].as_u64().unwrap(),
            "transaction",
        )
        .await;
        assert_eq!(sale["order_id"], free_order.as_str());
        assert_eq!(sale["amount_minor"], 0);
        let resp = t
            .http
            .get(t.url(&format!("/v1/orders/{free_order}/download")))
            .bearer_auth(&m.buyer)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{b}: a free order downloads");
        assert_eq!(resp.headers()["content-type"], "application/x-tar");

        // A paid product at exactly the minimum: 10 % to public finance.
        let (s, paid) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(
                releases.clone(),
                "commercial_internal",
                [1_000, 1_000, 8_000],
            ),
        )
        .await;
        assert_eq!(s, 201, "{b}: {paid}");
        let paid_id = paid["id"].as_str().unwrap().to_string();
        let price = paid["price_minor"].as_i64().unwrap();
        assert_eq!(
            price, 12_345,
            "the market's price, which the hand count below uses"
        );
        let (s, _) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                &format!("/v1/products/{paid_id}/list"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let resp = place(t, &m.buyer, Some("paid-1"), json!({"product_id": paid_id})).await;
        assert_eq!(resp.status().as_u16(), 201, "{b}");
        let order: Value = resp.json().await.unwrap();
        assert_eq!(
            order["status"], "pending",
            "{b}: a paid product waits for payment"
        );
        let paid_order = order["id"].as_str().unwrap().to_string();
        let (s, order) = post(
            t,
            &m.buyer,
            &format!("/v1/orders/{paid_order}/pay"),
            json!({"payment_ref": "bank-2030-0001"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {order}");

        // Settle March. By hand: 12,345 fen at 1,000 / 8,000 / 1,000 bp is 1,234.5 /
        // 9,876 / 1,234.5; the one fen left over goes to the earlier of the tied parts,
        // public finance: 1,235 / 9,876 / 1,234, summing to 12,345.
        m.clock
            .set_ms(Period::parse("2030-04").unwrap().from_ms + DAY_MS);
        let (s, settled) = t
            .call(
                Some(&m.exchange),
                Method::POST,
                "/v1/settlements/2030-03",
                None,
            )
            .await;
        assert_eq!(s, 201, "{b}: {settled}");
        let lines = settled["remittances"].as_array().unwrap();
        let amount_of = |payee: &str| {
            lines
                .iter()
                .find(|l| l["payee"] == payee)
                .and_then(|l| l["amount_minor"].as_i64())
        };
        let account = format!("public-finance:{REGION}");
        assert_eq!(amount_of(account.as_str()), Some(1_235), "{b}: {settled}");
        assert_eq!(amount_of(m.dev_org.as_str()), Some(9_876), "{b}: {settled}");
        assert_eq!(amount_of("pdx"), Some(1_234), "{b}: {settled}");
        assert_eq!(lines.len(), 3, "{b}: {settled}");
        for line in lines {
            assert_eq!(line["order_count"], 1, "{b}: only the paid order: {line}");
        }
        for remittance in entries(t, &m.supervisor, "remittance").await {
            let p = payload(&remittance);
            assert_eq!(
                p["order_ids"],
                json!([paid_order]),
                "{b}: no remittance for {free_order}"
            );
        }
        let (s, recon) = t.get(&m.exchange, "/v1/reconciliation").await;
        assert_eq!(s, 200, "{b}: {recon}");
        assert_eq!(recon["exact"], true, "{b}: {recon}");
        assert_eq!(recon["total"]["paid_minor"], price, "{b}: {recon}");

        // The region's public-finance bureau reads its own remittances.
        let (_, finance) = org_key(t, "guangzhou-finance-bureau", "finance", REGION).await;
        let (s, own) = t.get(&finance, "/v1/public-finance/remittances").await;
        assert_eq!(s, 200, "{b}: {own}");
        assert_eq!(own.as_array().unwrap().len(), 1, "{b}: {own}");
        assert_eq!(own[0]["payee"], account.as_str());
        assert_eq!(own[0]["payee_kind"], "public_finance");
        assert_eq!(own[0]["period"], "2030-03");
        assert_eq!(own[0]["amount_minor"], 1_235);
        assert_eq!(own[0]["currency"], "CNY");
        let seq = own[0]["ledger_seq"].as_u64().unwrap();
        let remitted = entry_payload(t, &m.supervisor, seq, "remittance").await;
        assert_eq!(
            remitted["payee"],
            account.as_str(),
            "{b}: the line is its entry"
        );
        assert_eq!(remitted["amount_minor"], 1_235);
        let (s, march) = t
            .get(&finance, "/v1/public-finance/remittances/2030-03")
            .await;
        assert_eq!(s, 200, "{b}: {march}");
        assert_eq!(march, own);
        let (s, _) = t
            .get(&finance, "/v1/public-finance/remittances/2030-04")
            .await;
        assert_eq!(s, 404, "{b}: nothing remitted in April");
        let (s, _) = t
            .get(&finance, "/v1/public-finance/remittances/2030-13")
            .await;
        assert_eq!(s, 422, "{b}: not a period");
        let (s, _) = t
            .get(&finance, "/v1/public-finance/remittances?region=shenzhen")
            .await;
        assert_eq!(s, 400, "{b}: a bureau reads its own region only");

        // Another region's bureau: nothing of this account, and the period is not found.
        let (_, other) = org_key(t, "shenzhen-finance-bureau", "finance", "shenzhen").await;
        let (s, theirs) = t.get(&other, "/v1/public-finance/remittances").await;
        assert_eq!(s, 200, "{b}: {theirs}");
        assert_eq!(theirs, json!([]), "{b}");
        let (s, p) = t
            .get(&other, "/v1/public-finance/remittances/2030-03")
            .await;
        assert_eq!(s, 404, "{b}: {p}");

        // Supervisors read every account's; every other role is refused.
        let (s, all) = t.get(&m.supervisor, "/v1/public-finance/remittances").await;
        assert_eq!(s, 200, "{b}: {all}");
        assert_eq!(all, own, "{b}: one public-finance account was paid");
        let (s, narrowed) = t
            .get(
                &m.supervisor,
                "/v1/public-finance/remittances?region=shenzhen",
            )
            .await;
        assert_eq!((s, narrowed), (200, json!([])), "{b}");
        let authority = t.authority().await.to_string();
        for key in [
            &m.buyer,
            &m.dev,
            &m.exchange,
            &m.provider,
            &m.reviewer,
            &authority,
            &t.admin,
        ] {
            for path in [
                "/v1/public-finance/remittances",
                "/v1/public-finance/remittances/2030-03",
            ] {
                let (s, p) = t.get(key, path).await;
                assert_eq!(s, 403, "{b} {path}: {p}");
            }
        }
        m.t.stop().await;
    }
}

#[tokio::test]
async fn the_accepted_agreement_is_hashed_onto_the_grant_decision_and_the_purpose_limits_the_licence_on_both_backends()
 {
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let research_ds = dataset(
            t,
            &m.provider,
            "Enterprise electricity (research grant)",
            OpenAttribute::Conditional,
            false,
        )
        .await;

        // Refused filings write nothing.
        let mut contradictory = application(&research_ds, Some("commercial"), None);
        contradictory["research_only"] = json!(true);
        for (body, why) in [
            (
                contradictory,
                "a research-only grant with a commercial purpose",
            ),
            (
                application(&research_ds, None, Some(" \n\t ")),
                "a blank agreement",
            ),
            (
                application(&research_ds, Some("charity"), None),
                "an unknown purpose kind",
            ),
        ] {
            let (s, p) = post(t, &m.dev, "/v1/grants", body).await;
            assert_eq!(s, 422, "{b}: {why}: {p}");
        }
        let (s, grants) = t.get(&m.dev, "/v1/grants").await;
        assert_eq!((s, grants), (200, json!([])), "{b}");

        // The agreement is stored as sent, and its BLAKE3 is on the decision entry with
        // the purpose.
        let agreement = "开放利用协议 / open-use agreement\n\n  energy-analytics uses district, \
                         industry and kwh_12m for an academic study only.\t\nSigned 2030-03-05.  ";
        let (s, filed) = post(
            t,
            &m.dev,
            "/v1/grants",
            application(&research_ds, Some("research"), Some(agreement)),
        )
        .await;
        assert_eq!(s, 201, "{b}: {filed}");
        assert_eq!(filed["agreement"], agreement, "{b}: byte for byte");
        assert_eq!(filed["agreement_hash"], blake3_hex(agreement).as_str());
        assert_eq!(filed["purpose_kind"], "research");
        assert_eq!(
            filed["research_only"], true,
            "{b}: research is research-only"
        );
        let gid = filed["id"].as_str().unwrap().to_string();
        let (s, research_grant) = post(
            t,
            &m.provider,
            &format!("/v1/grants/{gid}/decision"),
            json!({"approve": true}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {research_grant}");
        let seq = research_grant["decision_seq"].as_u64().unwrap();
        for reader in [&m.supervisor, &m.dev] {
            let decision = entry_payload(t, reader, seq, "grant_decision").await;
            assert_eq!(decision["grant_id"], gid.as_str());
            assert_eq!(decision["decision"], "approved");
            assert_eq!(
                decision["agreement_hash"],
                blake3::hash(agreement.as_bytes()).to_hex().as_str(),
                "{b}: the entry carries the BLAKE3 of the text sent"
            );
            assert_eq!(decision["purpose"], "district energy benchmarks");
            assert_eq!(decision["purpose_kind"], "research");
        }

        // A research purpose feeds no commercial product (422 naming both), but a
        // research-only or public-interest one.
        let research = release(t, &m.dev, &m.reviewer, &research_ds, Some(gid.as_str())).await;
        let research_releases = json!([research["release_id"]]);
        for licence in ["commercial_internal", "commercial_redistribution"] {
            let (s, p) = post(
                t,
                &m.dev,
                "/v1/products",
                product_body(research_releases.clone(), licence, SPLIT),
            )
            .await;
            assert_eq!(s, 422, "{b} {licence}: {p}");
            let detail = p["detail"].as_str().unwrap();
            assert!(
                detail.contains(licence) && detail.contains("research purpose"),
                "{b}: {detail}"
            );
        }
        let (_, mine) = t.get(&m.dev, "/v1/products?mine=true").await;
        assert_eq!(mine, json!([]), "{b}: the refusals created nothing");
        let (s, p) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(research_releases.clone(), "research_only", SPLIT),
        )
        .await;
        assert_eq!(s, 201, "{b}: {p}");
        assert_eq!(p["manifest"]["sources"][0]["grant_purpose"], "research");
        let mut free = product_body(research_releases.clone(), "public_interest", SPLIT);
        free["price_minor"] = json!(0);
        let (s, p) = post(t, &m.dev, "/v1/products", free).await;
        assert_eq!(s, 201, "{b}: {p}");

        // Without an agreement of its own, the developer accepts the platform's standard
        // one, composed from the application; a commercial purpose fits any licence.
        let commercial_ds = dataset(
            t,
            &m.provider,
            "Enterprise electricity (commercial grant)",
            OpenAttribute::Conditional,
            false,
        )
        .await;
        let commercial_grant = approved_grant(
            t,
            &m.dev,
            &m.provider,
            application(&commercial_ds, None, None),
        )
        .await;
        let standard = commercial_grant["agreement"].as_str().unwrap();
        assert!(
            standard.contains("OPEN-USE AGREEMENT")
                && standard.contains("Purpose (commercial): district energy benchmarks"),
            "{b}: {standard}"
        );
        assert_eq!(commercial_grant["purpose_kind"], "commercial");
        let decision = entry_payload(
            t,
            &m.supervisor,
            commercial_grant["decision_seq"].as_u64().unwrap(),
            "grant_decision",
        )
        .await;
        assert_eq!(decision["agreement_hash"], blake3_hex(standard).as_str());
        let commercial = release(
            t,
            &m.dev,
            &m.reviewer,
            &commercial_ds,
            commercial_grant["id"].as_str(),
        )
        .await;
        let (s, p) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(
                json!([commercial["release_id"]]),
                "commercial_redistribution",
                SPLIT,
            ),
        )
        .await;
        assert_eq!(s, 201, "{b}: {p}");

        // A public-interest purpose feeds no commercial product either.
        let public_ds = dataset(
            t,
            &m.provider,
            "Enterprise electricity (public-interest grant)",
            OpenAttribute::Conditional,
            false,
        )
        .await;
        let public_grant = approved_grant(
            t,
            &m.dev,
            &m.provider,
            application(&public_ds, Some("public_interest"), None),
        )
        .await;
        assert_eq!(public_grant["research_only"], false);
        let public = release(
            t,
            &m.dev,
            &m.reviewer,
            &public_ds,
            public_grant["id"].as_str(),
        )
        .await;
        let public_releases = json!([public["release_id"]]);
        let (s, p) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(public_releases.clone(), "commercial_internal", SPLIT),
        )
        .await;
        assert_eq!(s, 422, "{b}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("commercial_internal") && detail.contains("public_interest purpose"),
            "{b}: {detail}"
        );
        let (s, p) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(public_releases, "public_interest", SPLIT),
        )
        .await;
        assert_eq!(s, 201, "{b}: {p}");
        m.t.stop().await;
    }
}

#[tokio::test]
async fn a_not_shared_classification_is_filed_with_its_legal_basis_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("tax-bureau", "provider").await;
        let (_, other_provider) = t.key_for("power-bureau", "provider").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let authority = t.authority().await.to_string();
        let basis = "Tax Collection Administration Law Art.8: taxpayer information is confidential";

        // Without a legal basis: 422, and nothing is registered or filed.
        let (s, p) = t
            .call(
                Some(&provider),
                Method::POST,
                "/v1/datasets",
                Some(json_of(&not_shared("   "))),
            )
            .await;
        assert_eq!(s, 422, "{b}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains("GD21 Art.13"),
            "{b}: {p}"
        );
        let (s, own) = t
            .get(&provider, &format!("/v1/datasets?provider={provider_org}"))
            .await;
        assert_eq!(s, 200, "{b}: {own}");
        assert_eq!(own["total"], 0, "{b}: nothing registered");
        let (s, filings) = t.get(&authority, "/v1/classification-filings").await;
        assert_eq!((s, filings), (200, json!([])), "{b}: nothing filed");

        // Registered as not shared: filed, with its legal basis, on the ledger.
        let id = draft(&t, &provider, &json_of(&not_shared(basis))).await;
        let (s, filings) = t.get(&authority, "/v1/classification-filings").await;
        assert_eq!(s, 200, "{b}: {filings}");
        assert_eq!(filings.as_array().unwrap().len(), 1, "{b}: {filings}");
        let filing = filings[0].clone();
        assert_eq!(filing["dataset_id"], id.as_str());
        assert_eq!(filing["provider_org"], provider_org.as_str());
        assert_eq!(filing["share_type"], "not_shared");
        assert_eq!(filing["legal_basis"], basis);
        assert_eq!(filing["level"], "L2");
        assert_eq!(filing["revision"], 1);
        let (_, revisions) = t
            .get(&provider, &format!("/v1/datasets/{id}/revisions"))
            .await;
        assert_eq!(
            filing["metadata_hash"], revisions[0]["metadata_hash"],
            "{b}: filed with the registration's metadata"
        );
        let entry = entry_payload(
            &t,
            &supervisor,
            filing["ledger_seq"].as_u64().unwrap(),
            "classification_filing",
        )
        .await;
        assert_eq!(entry["filing_id"], filing["id"]);
        assert_eq!(entry["dataset_id"], id.as_str());
        assert_eq!(entry["share_type"], "not_shared");
        assert_eq!(entry["legal_basis"], basis);
        assert_eq!(entry["revision"], 1);

        // An edit that keeps the classification files nothing; one that names another
        // legal basis files again; one that drops the legal basis is refused.
        let mut meta = not_shared(basis);
        meta.title = "Taxpayer electricity register".into();
        let (s, edited) = put(
            &t,
            &provider,
            &format!("/v1/datasets/{id}"),
            edit_body(&meta, "clearer title", None),
        )
        .await;
        assert_eq!(s, 200, "{b}: {edited}");
        let (_, filings) = t.get(&authority, "/v1/classification-filings").await;
        assert_eq!(filings.as_array().unwrap().len(), 1, "{b}: {filings}");
        let wider =
            "Tax Collection Administration Law Art.8; Personal Information Protection Law Art.28";
        meta.legal_basis = wider.into();
        let (s, edited) = put(
            &t,
            &provider,
            &format!("/v1/datasets/{id}"),
            edit_body(&meta, "the legal basis now names the PIPL too", None),
        )
        .await;
        assert_eq!(s, 200, "{b}: {edited}");
        assert_eq!(edited["revision"], 3);
        let (_, filings) = t.get(&authority, "/v1/classification-filings").await;
        assert_eq!(filings.as_array().unwrap().len(), 2, "{b}: {filings}");
        assert_eq!(filings[0]["legal_basis"], wider, "{b}: newest first");
        assert_eq!(filings[0]["revision"], 3);
        meta.legal_basis = String::new();
        let (s, p) = put(
            &t,
            &provider,
            &format!("/v1/datasets/{id}"),
            edit_body(&meta, "drop the basis", None),
        )
        .await;
        assert_eq!(s, 422, "{b}: {p}");
        let (_, now) = t.get(&provider, &format!("/v1/datasets/{id}")).await;
        assert_eq!(now["revision"], 3, "{b}: the refused edit changed nothing");
        assert_eq!(now["legal_basis"], wider);

        // A conditional entry is not filed until an edit makes it not shared.
        let id2 = draft(&t, &provider, &json_of(&electricity())).await;
        let (_, filings) = t.get(&authority, "/v1/classification-filings").await;
        assert_eq!(filings.as_array().unwrap().len(), 2, "{b}: {filings}");
        let (s, edited) = put(
            &t,
            &provider,
            &format!("/v1/datasets/{id2}"),
            edit_body(&not_shared(basis), "no longer shared", None),
        )
        .await;
        assert_eq!(s, 200, "{b}: {edited}");
        let (_, narrowed) = t
            .get(
                &authority,
                &format!("/v1/classification-filings?dataset_id={id2}"),
            )
            .await;
        assert_eq!(narrowed.as_array().unwrap().len(), 1, "{b}: {narrowed}");
        assert_eq!(narrowed[0]["revision"], 2);

        // Who reads them: the authority and supervisors every one, the provider its
        // own; another provider none (404 for one by id); every other role 403.
        let fid = narrowed[0]["id"].as_str().unwrap().to_string();
        for reader in [&authority, &supervisor, &provider] {
            let (s, one) = t
                .get(reader, &format!("/v1/classification-filings/{fid}"))
                .await;
            assert_eq!(s, 200, "{b}: {one}");
            assert_eq!(one["legal_basis"], basis);
        }
        let (s, theirs) = t.get(&other_provider, "/v1/classification-filings").await;
        assert_eq!((s, theirs), (200, json!([])), "{b}");
        let (s, p) = t
            .get(
                &other_provider,
                &format!("/v1/classification-filings/{fid}"),
            )
            .await;
        assert_eq!(s, 404, "{b}: {p}");
        for unknown in ["fil_0000000000000000", "not-a-filing"] {
            let (s, _) = t
                .get(&authority, &format!("/v1/classification-filings/{unknown}"))
                .await;
            assert_eq!(s, 404, "{b}: {unknown}");
        }
        for role in [
            "developer",
            "reviewer",
            "exchange",
            "buyer",
            "subject",
            "finance",
            "admin",
        ] {
            let (_, key) = t.key_for(&format!("org-{role}"), role).await;
            for path in [
                "/v1/classification-filings".to_string(),
                format!("/v1/classification-filings/{fid}"),
            ] {
                let (s, p) = t.get(&key, &path).await;
                assert_eq!(s, 403, "{b} {role} {path}: {p}");
            }
        }
        t.stop().await;
    }
}

#[tokio::test]
async fn level_l4_data_is_never_unconditionally_open_on_any_path_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("security-bureau", "provider").await;
        let authority = t.authority().await.to_string();
        let assert_l4 = |what: &str, s: u16, p: &Value| {
            assert_eq!(s, 422, "{b}: {what}: {p}");
            assert!(
                p["detail"].as_str().unwrap_or_default().contains("L4"),
                "{b}: {what}: {p}"
            );
        };

        // 1. Registration.
        let (s, p) = t
            .call(
                Some(&provider),
                Method::POST,
                "/v1/datasets",
                Some(json_of(&graded(Level::L4, OpenAttribute::Unconditional))),
            )
            .await;
        assert_l4("registration", s, &p);
        let (_, own) = t
            .get(&provider, &format!("/v1/datasets?provider={provider_org}"))
            .await;
        assert_eq!(own["total"], 0, "{b}: nothing registered");

        // 2. Catalog revisions: an L4 entry edited to unconditional, an unconditional
        //    one edited to L4.
        let l4 = draft(
            &t,
            &provider,
            &json_of(&graded(Level::L4, OpenAttribute::Conditional)),
        )
        .await;
        let (s, p) = put(
            &t,
            &provider,
            &format!("/v1/datasets/{l4}"),
            edit_body(
                &graded(Level::L4, OpenAttribute::Unconditional),
                "open it to all",
                None,
            ),
        )
        .await;
        assert_l4("an edit of the attribute", s, &p);
        let open = draft(
            &t,
            &provider,
            &json_of(&graded(Level::L2, OpenAttribute::Unconditional)),
        )
        .await;
        let (s, p) = put(
            &t,
            &provider,
            &format!("/v1/datasets/{open}"),
            edit_body(
                &graded(Level::L4, OpenAttribute::Unconditional),
                "regraded",
                None,
            ),
        )
        .await;
        assert_l4("an edit of the level", s, &p);
        for id in [&l4, &open] {
            let (_, now) = t.get(&provider, &format!("/v1/datasets/{id}")).await;
            assert_eq!(now["revision"], 1, "{b}: the refused edits changed nothing");
        }

        // 3. An open-attribute change of a published L4 entry.
        let published = register(
            &t,
            &provider,
            &json_of(&graded(Level::L4, OpenAttribute::Conditional)),
        )
        .await;
        let (s, p) = t
            .call(
                Some(&provider),
                Method::POST,
                &format!("/v1/datasets/{published}/open-attribute"),
                Some(json!({
                    "to": "unconditional",
                    "reason": "demand from researchers",
                    "legal_basis": "SD22 Art.8"
                })),
            )
            .await;
        assert_l4("an open-attribute change", s, &p);
        let (s, changes) = t
            .get(
                &authority,
                &format!("/v1/open-attribute-changes?dataset_id={published}"),
            )
            .await;
        assert_eq!((s, changes), (200, json!([])), "{b}: nothing requested");

        // 4. An emergency relaxation, of a conditional and of a not-open L4 entry.
        let not_open = register(
            &t,
            &provider,
            &json_of(&graded(Level::L4, OpenAttribute::NotOpen)),
        )
        .await;
        for id in [&published, &not_open] {
            let (s, p) = t
                .call(
                    Some(&authority),
                    Method::POST,
                    &format!("/v1/datasets/{id}/emergency-relaxation"),
                    Some(json!({
                        "to": "unconditional",
                        "emergency": "flood relief routing",
                        "until": day(0)
                    })),
                )
                .await;
            assert_l4("an emergency relaxation", s, &p);
            let (s, relaxations) = t
                .get(
                    &authority,
                    &format!("/v1/datasets/{id}/emergency-relaxations"),
                )
                .await;
            assert_eq!((s, relaxations), (200, json!([])), "{b}: nothing relaxed");
        }
        // Relaxed to conditional, L4 data may be reached under grants meanwhile.
        let (s, relaxed) = t
            .call(
                Some(&authority),
                Method::POST,
                &format!("/v1/datasets/{not_open}/emergency-relaxation"),
                Some(json!({
                    "to": "conditional",
                    "emergency": "flood relief routing",
                    "until": day(0)
                })),
            )
            .await;
        assert_eq!(s, 201, "{b}: {relaxed}");

        // The rule is L4's: an L3 entry may ask to become unconditional and be relaxed
        // to it, but not be regraded L4 while the relaxation holds.
        let l3 = register(
            &t,
            &provider,
            &json_of(&graded(Level::L3, OpenAttribute::Conditional)),
        )
        .await;
        let (s, relaxed) = t
            .call(
                Some(&authority),
                Method::POST,
                &format!("/v1/datasets/{l3}/emergency-relaxation"),
                Some(json!({
                    "to": "unconditional",
                    "emergency": "flood relief routing",
                    "until": day(0)
                })),
            )
            .await;
        assert_eq!(s, 201, "{b}: {relaxed}");
        let (s, p) = put(
            &t,
            &provider,
            &format!("/v1/datasets/{l3}"),
            edit_body(
                &graded(Level::L4, OpenAttribute::Conditional),
                "regraded during the emergency",
                None,
            ),
        )
        .await;
        assert_l4("regrading under an unconditional relaxation", s, &p);
        let l3_again = register(
            &t,
            &provider,
            &json_of(&graded(Level::L3, OpenAttribute::Conditional)),
        )
        .await;
        let (s, change) = t
            .call(
                Some(&provider),
                Method::POST,
                &format!("/v1/datasets/{l3_again}/open-attribute"),
                Some(json!({
                    "to": "unconditional",
                    "reason": "demand from researchers",
                    "legal_basis": "SD22 Art.8"
                })),
            )
            .await;
        assert_eq!(s, 201, "{b}: {change}");
        t.stop().await;
    }
}
