//! Supervision over HTTP: suspension (every write route refused from the next
//! request), objections and their working-day deadlines on the compliance report,
//! budgets, product lineage with receipts that verify offline, the ledger verification
//! job (including a tampered ledger), and the witness detecting a fork between two
//! servers started from copies of one database.

use std::collections::HashMap;
use std::path::Path;

use pdx::auth::Role;
use pdx::config::{Config, ConfigArgs};
use pdx::http::policies::POLICIES;
use pdx::samples;
use pdx_ids::{DatasetId, KeyId, OrgId, ProductId, ReleaseId};
use pdx_ledger::note::{NoteVerifier, SignedNote};
use pdx_ledger::{Actor, Hash32, Receipt};
use pdx_products::{Licence, LicenceKind, NewProduct, ReleasedSource, RevenueSplit, SourceDataset};
use pdx_sandbox::workdays::{Calendar, iso_date};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{register, upload_certified, wait_job};
use crate::governance::key_in;
use crate::support::{TestServer, iso_plus, key_per_role, post};

/// An entry's payload as JSON (entries carry it as canonical JSON text).
fn payload(entry: &Value) -> Value {
    match &entry["payload"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    }
}

/// A route template with every `{param}` filled in.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('1');
            }
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// Registers the electricity dataset as `provider` and certifies version 1.
async fn certified_dataset(t: &TestServer, provider: &str, rows: usize) -> String {
    let mut meta = samples::electricity_dataset();
    meta.elements = Vec::new();
    let id = register(t, provider, &serde_json::to_value(&meta).unwrap()).await;
    let csv = samples::electricity_csv(rows, 11);
    upload_certified(t, provider, &id, "?format=csv", csv.into_bytes()).await;
    id
}

/// Creates and lists a product of `org` directly through the products crate, over a
/// stand-in release (the products crate trusts the releases the binary gives it).
async fn listed_product(t: &TestServer, org: &str) -> ProductId {
    let id = pending_product(t, org).await;
    let exchange = Actor {
        org: "org-exchange".into(),
        key_id: "k-exchange".into(),
    };
    t.app.products.list(&exchange, &id).await.unwrap();
    id
}

/// Creates a product of `org` awaiting the exchange's review, over a stand-in release.
async fn pending_product(t: &TestServer, org: &str) -> ProductId {
    let bytes = b"PAR1 stand-in release PAR1".to_vec();
    let path = t.dir.path().join("stand-in-release.parquet");
    t.app.sandbox.at_rest().write_file(&path, &bytes).unwrap();
    let source = ReleasedSource {
        release_id: ReleaseId::parse("rel_stand-in").unwrap(),
        developer_org: OrgId::parse(org).unwrap(),
        output_hash: Hash32(*blake3::hash(&bytes).as_bytes()),
        output_path: path,
        model_hash: Hash32([1; 32]),
        reviewers: vec![KeyId::parse("k-review").unwrap()],
        research_only_grant: false,
        grant_purpose: None,
        datasets: vec![SourceDataset {
            dataset_id: DatasetId::parse("ds_stand-in").unwrap(),
            title: "Stand-in".into(),
            source_department: "Statistics Bureau".into(),
            provider_org: OrgId::parse("org-provider").unwrap(),
            provider_region: "national".into(),
            certificate_no: "PDX-CERT-2026-000001".into(),
            content_hash: Hash32([2; 32]),
            acquired: "2026-01-05".into(),
            research_only: false,
        }],
    };
    let dev = Actor {
        org: org.into(),
        key_id: "k-dev".into(),
    };
    let product = t
        .app
        .products
        .create_product(
            &dev,
            NewProduct {
                title: "Stand-in product".into(),
                description: String::new(),
                licence: Licence {
                    kind: LicenceKind::CommercialInternal,
                    term_days: 30,
                    permitted_use: String::new(),
                },
                price_minor: 1_000,
                currency: "CNY".into(),
                split: RevenueSplit {
                    public_finance_bp: 3_000,
                    platform_bp: 1_000,
                    developer_bp: 6_000,
                },
            },
            vec![source],
        )
        .await
        .unwrap();
    product.id
}

/// Records a model run of `org` reading `cited` (`dataset@version`s) as in progress, as
/// a running job leaves it; returns its job id.
pub(crate) async fn running_run(
    t: &TestServer,
    org: &str,
    model_id: &str,
    cited: &[&str],
) -> String {
    let job_id = format!("job_running_{}", hex::encode(rand::random::<[u8; 4]>()));
    let now = pdx_ledger::db::now_ms();
    sqlx::query(
        "INSERT INTO jobs (id, kind, org_id, subject, status, stage, progress, created_ms, updated_ms) \
         VALUES ($1, 'model_run', $2, $3, 'running', 'running the model', 0.5, $4, $4)",
    )
    .bind(job_id.clone())
    .bind(org.to_string())
    .bind(model_id.to_string())
    .bind(now)
    .execute(t.app.db.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO model_runs (job_id, model_id, org_id, dataset_versions, status, created_ms) \
         VALUES ($1, $2, $3, $4, 'running', $5)",
    )
    .bind(job_id.clone())
    .bind(model_id.to_string())
    .bind(org.to_string())
    .bind(json!(cited).to_string())
    .bind(now)
    .execute(t.app.db.pool())
    .await
    .unwrap();
    job_id
}

#[tokio::test]
async fn a_suspended_organisation_is_refused_on_every_write_route_from_its_next_request() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (_, outsider) = t.key_for("bystander-co", "buyer").await;
        let (org, dev) = t.key_for("suspect-analytics", "developer").await;
        let mut keys: HashMap<Role, String> = HashMap::new();
        for role in Role::ALL {
            keys.insert(role, key_in(&t, &org, role).await);
        }
        let (s, model) = post(
            &t,
            &dev,
            "/v1/models",
            json!({"name": "m", "kind": "sql", "body": "SELECT district FROM data"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {model}");
        let job = running_run(&t, &org, model["id"].as_str().unwrap(), &[]).await;
        let product = listed_product(&t, &org).await;
        let pending = pending_product(&t, &org).await;

        // Before: a write goes through.
        let (s, _) = t
            .call(
                Some(&keys[&Role::Supervisor]),
                Method::POST,
                "/v1/ledger/checkpoint",
                None,
            )
            .await;
        assert_eq!(s, 201, "{b}");
        // A supervisor cannot suspend their own organisation.
        let (s, me) = t.get(&supervisor, "/v1/whoami").await;
        assert_eq!(s, 200);
        let (s, p) = post(
            &t,
            &supervisor,
            "/v1/audit/suspensions",
            json!({"org_id": me["org_id"], "action": "suspend", "reason": "test"}),
        )
        .await;
        assert_eq!(s, 409, "{b}: {p}");
        let (s, p) = post(
            &t,
            &supervisor,
            "/v1/audit/suspensions",
            json!({"org_id": org, "action": "suspend", "reason": "  "}),
        )
        .await;
        assert_eq!(s, 422, "{b}: {p}");

        let (s, out) = post(
            &t,
            &supervisor,
            "/v1/audit/suspensions",
            json!({"org_id": org, "action": "suspend", "reason": "data used beyond the granted purpose"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {out}");
        assert_eq!(out["record"]["action"], "suspended");
        assert_eq!(out["record"]["listings_delisted"], 1, "{b}: {out}");
        assert_eq!(out["incomplete"], json!([]), "{b}: {out}");
        let seq = out["record"]["seq"].as_u64().unwrap();

        // From the next request on, every write route refuses every key of the org.
        let mut checked = 0;
        for (method, path, policy) in POLICIES {
            if *method == "GET" && !policy.writes {
                continue;
            }
            let role = policy.roles[0];
            let (s, p) = t
                .call(
                    Some(&keys[&role]),
                    method.parse().unwrap(),
                    &concrete(path),
                    Some(json!({})),
                )
                .await;
            assert_eq!(s, 403, "{b}: {method} {path} as {role}: {p}");
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("suspended"),
                "{b}: {method} {path}: {p}"
            );
            checked += 1;
        }
        assert!(checked >= 25, "{b}: only {checked} write routes");
        // Reads still work, for the suspended organisation too.
        assert_eq!(t.get(&dev, "/v1/whoami").await.0, 200, "{b}");
        let (s, list) = t.get(&keys[&Role::Buyer], "/v1/audit/suspensions").await;
        assert_eq!(s, 200, "{b}: {list}");
        assert_eq!(list["suspended"][0]["org_id"], org.as_str(), "{b}: {list}");
        assert_eq!(
            list["history"][0]["reason"],
            "data used beyond the granted purpose"
        );
        // The ledger entry is public.
        let (s, entry) = t.get(&outsider, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["kind"], "suspension");
        assert_eq!(payload(&entry)["org"], org.as_str());
        assert_eq!(payload(&entry)["action"], "suspended");
        // Its running job was cancelled and its listing delisted.
        let (s, j) = t.get(&supervisor, &format!("/v1/jobs/{job}")).await;
        assert_eq!(s, 200, "{b}: {j}");
        assert_eq!(j["status"], "failed", "{b}: {j}");
        assert!(j["error"]["detail"].as_str().unwrap().contains("suspended"));
        let status: String = sqlx::query_scalar("SELECT status FROM model_runs WHERE job_id = $1")
            .bind(job.clone())
            .fetch_one(t.app.db.pool())
            .await
            .unwrap();
        assert_eq!(status, "cancelled", "{b}");
        let p = t.app.products.product(&product).await.unwrap();
        assert_eq!(p.status, pdx_products::ProductStatus::Delisted, "{b}");
        let delisting = t
            .app
            .ledger
            .entry(p.delisting_seq.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delisting.kind, pdx_ledger::EntryKind::ProductDelisting);
        // Nor can the exchange list its pending product while it is suspended.
        let (_, exchange) = t.key_for("listing-exchange", "exchange").await;
        let (s, p) = t
            .call(
                Some(&exchange),
                Method::POST,
                &format!("/v1/products/{pending}/list"),
                None,
            )
            .await;
        assert_eq!(s, 409, "{b}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains("suspended"),
            "{b}: {p}"
        );
        // Suspending twice is a conflict; reinstating lets writes through again.
        let (s, _) = post(
            &t,
            &supervisor,
            "/v1/audit/suspensions",
            json!({"org_id": org, "action": "suspend", "reason": "again"}),
        )
        .await;
        assert_eq!(s, 409, "{b}");
        let (s, out) = post(
            &t,
            &supervisor,
            "/v1/audit/suspensions",
            json!({"org_id": org, "action": "reinstate", "reason": "remedied"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {out}");
        let (s, _) = t
            .call(
                Some(&keys[&Role::Supervisor]),
                Method::POST,
                "/v1/ledger/checkpoint",
                None,
            )
            .await;
        assert_eq!(s, 201, "{b}: a reinstated organisation writes again");
        let (_, list) = t.get(&outsider, "/v1/audit/suspensions").await;
        assert_eq!(list["suspended"], json!([]), "{b}: {list}");
        let actions: Vec<&str> = list["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["reinstated", "suspended"], "{b}");
        t.stop().await;
    }
}

#[tokio::test]
async fn audit_routes_refuse_every_other_role() {
    let t = TestServer::start(false).await.unwrap();
    let keys = key_per_role(&t, "org").await;
    let mut refused = 0;
    for (method, path, policy) in POLICIES {
        let audit = path.starts_with("/v1/audit")
            || path.starts_with("/v1/objections")
            || *path == "/v1/ledger/cosignatures";
        if !audit {
            continue;
        }
        for (role, key) in &keys {
            if policy.roles.contains(role) {
                continue;
            }
            let (s, p) = t
                .call(
                    Some(key),
                    method.parse().unwrap(),
                    &concrete(path),
                    Some(json!({})),
                )
                .await;
            assert_eq!(s, 403, "{method} {path} as {role}: {p}");
            refused += 1;
        }
    }
    // 5 supervisor-only routes and the provider's answer, 6 refusals each.
    assert!(refused >= 36, "only {refused} refusals");
    t.stop().await;
}

#[tokio::test]
async fn objections_get_working_day_deadlines_answers_and_show_on_the_compliance_report_when_late()
{
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("power-bureau", "provider").await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (dev_org, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, other_dev) = t.key_for("rival-analytics", "developer").await;
        let (_, buyer) = t.key_for("buyer-co", "buyer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let dataset = certified_dataset(&t, &provider, 600).await;

        let before = iso_date(Calendar::default().deadline_from_ms(pdx_ledger::db::now_ms(), 5));
        let body = json!({
            "dataset_id": dataset,
            "version": 1,
            "ground": "omission",
            "detail": "the Futian district enterprises of 2025 Q4 are missing"
        });
        let (s, o) = post(&t, &dev, "/v1/objections", body.clone()).await;
        let after = iso_date(Calendar::default().deadline_from_ms(pdx_ledger::db::now_ms(), 5));
        assert_eq!(s, 201, "{b}: {o}");
        let id = o["id"].as_str().unwrap().to_string();
        let deadline = o["answer_deadline"].as_str().unwrap().to_string();
        assert!(deadline == before || deadline == after, "{b}: {deadline}");
        assert_eq!(o["status"], "open");
        assert_eq!(o["overdue"], false);
        assert_eq!(o["provider_org"], provider_org.as_str());
        assert_eq!(o["objector_org"], dev_org.as_str());

        // Bad objections are 4xx problems.
        let mut bad = body.clone();
        bad["version"] = json!(9);
        assert_eq!(post(&t, &dev, "/v1/objections", bad).await.0, 404, "{b}");
        let mut bad = body.clone();
        bad["detail"] = json!("   ");
        assert_eq!(post(&t, &dev, "/v1/objections", bad).await.0, 422, "{b}");
        let mut bad = body.clone();
        bad["ground"] = json!("dislike");
        assert_eq!(post(&t, &dev, "/v1/objections", bad).await.0, 422, "{b}");

        // The objector, the provider and supervisors see it; nobody else.
        for (key, sees) in [
            (&dev, true),
            (&provider, true),
            (&supervisor, true),
            (&other_dev, false),
            (&other_provider, false),
            (&buyer, false),
        ] {
            let (s, _) = t.get(key, &format!("/v1/objections/{id}")).await;
            assert_eq!(s, if sees { 200 } else { 404 }, "{b}");
            let (s, list) = t.get(key, "/v1/objections").await;
            assert_eq!(s, 200);
            let listed = list
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == id.as_str());
            assert_eq!(listed, sees, "{b}: {list}");
        }
        // The ledger entry is the provider's to read too, not a stranger's.
        let seq = o["objection_seq"].as_u64().unwrap();
        let (s, entry) = t.get(&provider, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["kind"], "objection");
        assert_eq!(payload(&entry)["answer_deadline"], deadline.as_str());
        assert_eq!(payload(&entry)["ground"], "omission");
        assert_eq!(
            t.get(&buyer, &format!("/v1/ledger/entries/{seq}")).await.0,
            404
        );

        // It is overdue from the day after its deadline, and shows then.
        let late_ids = |report: &Value| -> Vec<(String, String)> {
            report["late_objections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        x["objection_id"].as_str().unwrap().to_string(),
                        x["state"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let (s, now) = t.get(&supervisor, "/v1/audit/compliance").await;
        assert_eq!(s, 200, "{b}: {now}");
        assert!(late_ids(&now).is_empty(), "{b}: {now}");
        let (_, on_deadline) = t
            .get(
                &supervisor,
                &format!("/v1/audit/compliance?as_of={deadline}"),
            )
            .await;
        assert!(late_ids(&on_deadline).is_empty(), "{b}: {on_deadline}");
        let day_after = iso_plus(&deadline, 1);
        let (_, past) = t
            .get(
                &supervisor,
                &format!("/v1/audit/compliance?as_of={day_after}"),
            )
            .await;
        assert_eq!(
            late_ids(&past),
            [(id.clone(), "pending".to_string())],
            "{b}: {past}"
        );
        assert_eq!(past["clean"], false);
        assert_eq!(
            t.get(&supervisor, "/v1/audit/compliance?as_of=tomorrow")
                .await
                .0,
            400
        );

        // Only the dataset's provider answers, once.
        let reply =
            json!({"outcome": "accepted", "answer": "the records will be added in version 2"});
        let path = format!("/v1/objections/{id}/answer");
        assert_eq!(post(&t, &dev, &path, reply.clone()).await.0, 403, "{b}");
        assert_eq!(
            post(&t, &other_provider, &path, reply.clone()).await.0,
            404,
            "{b}"
        );
        assert_eq!(
            post(
                &t,
                &provider,
                &path,
                json!({"outcome": "accepted", "answer": ""})
            )
            .await
            .0,
            422
        );
        let (s, answered) = post(&t, &provider, &path, reply.clone()).await;
        assert_eq!(s, 200, "{b}: {answered}");
        assert_eq!(answered["status"], "answered");
        assert_eq!(answered["outcome"], "accepted");
        assert_eq!(answered["answered_late"], false);
        assert_eq!(
            post(&t, &provider, &path, reply.clone()).await.0,
            409,
            "{b}"
        );
        let answer_seq = answered["answer_seq"].as_u64().unwrap();
        let (s, entry) = t
            .get(&dev, &format!("/v1/ledger/entries/{answer_seq}"))
            .await;
        assert_eq!(s, 200, "{b}: the objector reads the answer: {entry}");
        assert_eq!(entry["kind"], "objection_answer");
        assert_eq!(payload(&entry)["late"], false);
        assert_eq!(payload(&entry)["objection_seq"], seq);
        // Answered in time: no longer on the report, whatever the date.
        let (_, past) = t
            .get(
                &supervisor,
                &format!("/v1/audit/compliance?as_of={day_after}"),
            )
            .await;
        assert!(late_ids(&past).is_empty(), "{b}: {past}");

        // A second objection whose deadline has passed (moved back, as time would):
        // overdue now, then answered late.
        let (s, o2) = post(&t, &other_dev, "/v1/objections", body.clone()).await;
        assert_eq!(s, 201, "{b}: {o2}");
        let id2 = o2["id"].as_str().unwrap().to_string();
        sqlx::query("UPDATE objections SET answer_deadline = '2020-01-06' WHERE id = $1")
            .bind(id2.clone())
            .execute(t.app.db.pool())
            .await
            .unwrap();
        let (_, o2) = t.get(&other_dev, &format!("/v1/objections/{id2}")).await;
        assert_eq!(o2["overdue"], true, "{b}: {o2}");
        let (_, now) = t.get(&supervisor, "/v1/audit/compliance").await;
        assert_eq!(
            late_ids(&now),
            [(id2.clone(), "pending".to_string())],
            "{b}: {now}"
        );
        let (s, late) = post(
            &t,
            &provider,
            &format!("/v1/objections/{id2}/answer"),
            json!({"outcome": "rejected", "answer": "those enterprises closed in 2024"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {late}");
        assert_eq!(late["answered_late"], true);
        assert_eq!(late["overdue"], false);
        let (_, entry) = t
            .get(
                &other_dev,
                &format!("/v1/ledger/entries/{}", late["answer_seq"]),
            )
            .await;
        assert_eq!(payload(&entry)["late"], true, "{b}: {entry}");
        let (_, now) = t.get(&supervisor, "/v1/audit/compliance").await;
        assert_eq!(
            late_ids(&now),
            [(id2.clone(), "answered_late".to_string())],
            "{b}: {now}"
        );
        t.stop().await;
    }
}

/// Every receipt in a JSON tree.
fn receipts(v: &Value, out: &mut Vec<Receipt>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "receipt" {
                    out.push(serde_json::from_value(child.clone()).unwrap());
                } else {
                    receipts(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| receipts(i, out)),
        _ => {}
    }
}

/// Polls a job as `key` until it finishes.
async fn finished(t: &TestServer, key: &str, job: &str) -> Value {
    let job = wait_job(t, key, job).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job
}

#[tokio::test]
async fn lineage_budgets_compliance_and_verification_tell_one_story() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("power-bureau", "provider").await;
        let (dev_org, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, reviewer_a) = t.key_for("checkers-a", "reviewer").await;
        let (_, reviewer_b) = t.key_for("checkers-b", "reviewer").await;
        let (_, exchange) = t.key_for("data-exchange", "exchange").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let dataset = certified_dataset(&t, &provider, 600).await;
        let (s, p) = t
            .call(
                Some(&provider),
                Method::PUT,
                &format!("/v1/datasets/{dataset}/output-policy"),
                Some(json!({"reviewers_required": 2, "dp_auto_release": true})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {p}");
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
        let grant = grant["id"].as_str().unwrap().to_string();
        let (s, g) = post(
            &t,
            &provider,
            &format!("/v1/grants/{grant}/decision"),
            json!({"approve": true, "term_days": 10}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {g}");

        // A SQL output released by two reviewers of two organisations.
        let run = |kind: &'static str, body: &'static str, eps: Option<f64>| {
            let (t, dev, dataset, grant) = (&t, &dev, &dataset, &grant);
            async move {
                let (s, m) = post(
                    t,
                    dev,
                    "/v1/models",
                    json!({"name": kind, "kind": kind, "body": body}),
                )
                .await;
                assert_eq!(s, 201, "{m}");
                let mut req = json!({"model_id": m["id"], "inputs": [{"dataset_id": dataset, "grant_id": grant}]});
                if let Some(e) = eps {
                    req["epsilon"] = json!(e);
                }
                let (s, job) = post(t, dev, "/v1/runs", req).await;
                assert_eq!(s, 202, "{job}");
                let job = finished(t, dev, job["id"].as_str().unwrap()).await;
                job["result"]["output_id"].as_str().unwrap().to_string()
            }
        };
        let sql_output = run(
            "sql",
            "SELECT district, COUNT(*) AS enterprises FROM data GROUP BY district",
            None,
        )
        .await;
        for reviewer in [&reviewer_a, &reviewer_b] {
            let (s, o) = post(
                &t,
                reviewer,
                &format!("/v1/review/{sql_output}"),
                json!({"approve": true, "reason": "counts over many enterprises, rounded"}),
            )
            .await;
            assert_eq!(s, 200, "{b}: {o}");
        }
        // A DP output the provider's policy releases without review.
        let dp_output = run(
            "dp",
            "SELECT district, AVG(kwh_12m) AS mean_kwh FROM data GROUP BY district",
            Some(1.0),
        )
        .await;
        let mut releases = Vec::new();
        for output in [&sql_output, &dp_output] {
            let (s, o) = t.get(&dev, &format!("/v1/outputs/{output}")).await;
            assert_eq!(s, 200, "{b}: {o}");
            assert_eq!(o["status"], "released", "{b}: {o}");
            releases.push(o["release_id"].as_str().unwrap().to_string());
        }
        let (s, product) = post(
            &t,
            &dev,
            "/v1/products",
            json!({
                "title": "District energy benchmarks",
                "licence": {"kind": "commercial_internal", "term_days": 30},
                "price_minor": 50_000,
                "split": {"public_finance_bp": 3000, "platform_bp": 1000, "developer_bp": 6000},
                "releases": releases
            }),
        )
        .await;
        assert_eq!(s, 201, "{b}: {product}");
        let product = product["id"].as_str().unwrap().to_string();
        let (s, listed) = t
            .call(
                Some(&exchange),
                Method::POST,
                &format!("/v1/products/{product}/list"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}: {listed}");

        // Lineage: complete, and every receipt verifies offline with the public key.
        let path = format!("/v1/audit/lineage/product/{product}");
        assert_eq!(t.get(&dev, &path).await.0, 403, "{b}");
        let (s, lineage) = t.get(&supervisor, &path).await;
        assert_eq!(s, 200, "{b}: {lineage}");
        assert_eq!(lineage["problems"], json!([]), "{b}: {lineage}");
        assert_eq!(lineage["complete"], true, "{b}");
        assert_eq!(lineage["releases"].as_array().unwrap().len(), 2);
        let sql = &lineage["releases"][0];
        assert_eq!(sql["release_id"], releases[0].as_str());
        assert_eq!(sql["reviewers"].as_array().unwrap().len(), 2);
        assert_eq!(sql["job"]["grant_id"], grant.as_str());
        assert_eq!(sql["job"]["grant_decision"]["kind"], "grant_decision");
        assert_eq!(sql["model"]["registration"]["kind"], "model_registration");
        assert_eq!(sql["datasets"][0]["dataset_id"], dataset.as_str());
        assert_eq!(
            sql["datasets"][0]["certificate"]["kind"],
            "asset_certificate"
        );
        assert_eq!(
            sql["datasets"][0]["source_department"],
            "Power Supply Bureau"
        );
        let dp = &lineage["releases"][1];
        assert_eq!(dp["reviewers"], json!([]));
        assert_eq!(
            dp["job"]["privacy_spends"].as_array().unwrap().len(),
            1,
            "{b}"
        );
        assert_eq!(lineage["providers"][0]["org_id"], provider_org.as_str());
        assert_eq!(lineage["providers"][0]["name"], "power-bureau");
        assert_eq!(lineage["listing"]["kind"], "product_listing");
        let (_, key) = t.get(&supervisor, "/v1/ledger/public-key").await;
        let key = NoteVerifier::parse(key.as_str().unwrap().trim()).unwrap();
        let mut all = Vec::new();
        receipts(&lineage, &mut all);
        // listing, 2 releases, 2 grant decisions, 1 spend, 2 models, 2 certificates
        assert_eq!(all.len(), 10, "{b}");
        for r in &all {
            r.verify(&key).unwrap();
        }

        // Budgets: ε 1 of 3 spent, two queries of ten, and the ledger agrees.
        let (s, budgets) = t.get(&supervisor, "/v1/audit/budgets").await;
        assert_eq!(s, 200, "{b}: {budgets}");
        assert_eq!(t.get(&dev, "/v1/audit/budgets").await.0, 403);
        let g = &budgets["grants"][0];
        assert_eq!(g["grant_id"], grant.as_str());
        assert_eq!(g["epsilon_granted"], 3.0);
        assert_eq!(g["epsilon_spent"], 1.0);
        assert_eq!(g["epsilon_remaining"], 2.0);
        assert_eq!(g["queries_granted"], 10);
        assert_eq!(g["queries_used"], 2);
        assert_eq!(g["ledger_spends"], 1);
        assert_eq!(g["ledger_epsilon_spent"], 1.0);
        assert_eq!(budgets["ledger_agrees"], true, "{b}: {budgets}");
        assert_eq!(budgets["developers"][0]["key"], dev_org.as_str());
        assert_eq!(budgets["developers"][0]["epsilon_spent"], 1.0);
        assert_eq!(budgets["datasets"][0]["key"], dataset.as_str());

        // Compliance: the 10-day grant expires soon; the DP release had no reviewer
        // where two were required; the SQL release had two; certificates are valid
        // for a year.
        let (s, report) = t.get(&supervisor, "/v1/audit/compliance").await;
        assert_eq!(s, 200, "{b}: {report}");
        let expiring = &report["expiring_grants"];
        assert_eq!(expiring.as_array().unwrap().len(), 1, "{b}: {report}");
        assert_eq!(expiring[0]["grant_id"], grant.as_str());
        let days_left = expiring[0]["days_left"].as_i64().unwrap();
        assert!((9..=10).contains(&days_left), "{b}: {days_left}");
        let under = report["under_reviewed_releases"].as_array().unwrap();
        assert_eq!(under.len(), 1, "{b}: {report}");
        assert_eq!(under[0]["release_id"], releases[1].as_str());
        assert_eq!(under[0]["auto_released"], true);
        assert_eq!(under[0]["required_reviews"], 2);
        assert_eq!(report["expired_certificates"], json!([]));
        let next_year =
            iso_date(time::OffsetDateTime::now_utc().date() + time::Duration::days(400));
        let (_, later) = t
            .get(
                &supervisor,
                &format!("/v1/audit/compliance?as_of={next_year}"),
            )
            .await;
        let expired = later["expired_certificates"].as_array().unwrap();
        assert_eq!(expired.len(), 1, "{b}: {later}");
        assert_eq!(expired[0]["dataset_id"], dataset.as_str());
        assert_eq!(expired[0]["latest_version"], true);
        assert_eq!(later["expiring_grants"], json!([]), "expired by then");

        // The verification job checks the whole ledger.
        let (s, job) = t
            .call(Some(&supervisor), Method::POST, "/v1/audit/verify", None)
            .await;
        assert_eq!(s, 202, "{b}: {job}");
        let size = t.app.ledger.size().await.unwrap();
        let job = finished(&t, &supervisor, job["id"].as_str().unwrap()).await;
        let result = &job["result"];
        assert_eq!(result["ok"], true, "{b}: {job}");
        assert_eq!(result["entries_checked"].as_u64().unwrap(), size);
        assert!(result["checkpoints_checked"].as_u64().unwrap() >= 1);
        assert_eq!(result["first_bad_seq"], Value::Null);
        assert_eq!(result["public_key"], key.to_vkey());
        // Its job is the supervisor's: another organisation cannot poll it.
        assert_eq!(
            t.get(&dev, &format!("/v1/jobs/{}", job["id"].as_str().unwrap()))
                .await
                .0,
            404
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn the_verification_job_names_the_first_tampered_seq() {
    let t = TestServer::start(false).await.unwrap();
    let (_, supervisor) = t.key_for("regulator", "supervisor").await;
    let mut orgs = Vec::new();
    for i in 0..4 {
        orgs.push(t.key_for(&format!("org-{i}"), "buyer").await.0);
    }
    let mut seqs = Vec::new();
    for org in &orgs {
        let (s, out) = post(
            &t,
            &supervisor,
            "/v1/audit/suspensions",
            json!({"org_id": org, "action": "suspend", "reason": "misuse"}),
        )
        .await;
        assert_eq!(s, 201, "{out}");
        seqs.push(out["record"]["seq"].as_u64().unwrap());
    }
    let (s, _) = t
        .call(
            Some(&supervisor),
            Method::POST,
            "/v1/ledger/checkpoint",
            None,
        )
        .await;
    assert_eq!(s, 201);
    // Someone with the database file rewrites the second suspension's reason.
    sqlx::query("DROP TRIGGER ledger_entries_no_update")
        .execute(t.app.db.pool())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE ledger_entries SET payload = replace(payload, 'misuse', 'mistake') WHERE seq = $1",
    )
    .bind(seqs[1] as i64)
    .execute(t.app.db.pool())
    .await
    .unwrap();
    let (s, job) = t
        .call(Some(&supervisor), Method::POST, "/v1/audit/verify", None)
        .await;
    assert_eq!(s, 202, "{job}");
    let job = finished(&t, &supervisor, job["id"].as_str().unwrap()).await;
    let result = &job["result"];
    assert_eq!(result["ok"], false, "{job}");
    assert_eq!(result["first_bad_seq"], seqs[1], "{job}");
    assert_eq!(result["entries_checked"], seqs[1]);
    assert!(
        result["reason"].as_str().unwrap().contains("payload"),
        "{job}"
    );
    t.stop().await;
}

/// A second server on a copy of `from`'s SQLite database and ledger key.
async fn fork_of(from: &TestServer) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("pdx.db");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM INTO '{}'",
        db_path.display()
    )))
    .execute(from.app.db.pool())
    .await
    .unwrap();
    std::fs::copy(
        from.dir.path().join("ledger.key"),
        dir.path().join("ledger.key"),
    )
    .unwrap();
    let args = ConfigArgs {
        data_dir: Some(dir.path().to_path_buf()),
        ..ConfigArgs::default()
    };
    let config = Config::resolve(&args, Some("127.0.0.1:0")).unwrap();
    let app = pdx::app::App::open(config).await.unwrap();
    assert!(
        app.bootstrap().await.unwrap().is_none(),
        "a copy, not a new start"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = pdx::server::spawn(app.clone(), listener).unwrap();
    TestServer {
        app,
        server: Some(server),
        admin: from.admin.clone(),
        http: reqwest::Client::new(),
        dir,
        backend: "sqlite",
        database_url: None,
        authority: from.authority.clone(),
    }
}

/// Runs `pdx witness --once` against `t`; returns (exit code, stdout).
async fn witness(t: &TestServer, api_key: &str, key: &str, state: &Path) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"))
        .args(["witness", "--once", "--name", "audit-witness", "--server"])
        .arg(t.url(""))
        .arg("--key")
        .arg(key)
        .arg("--state")
        .arg(state)
        .env("PDX_API_KEY", api_key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

async fn suspend(t: &TestServer, supervisor: &str, org: &str) {
    let (s, out) = post(
        t,
        supervisor,
        "/v1/audit/suspensions",
        json!({"org_id": org, "action": "suspend", "reason": "fork test"}),
    )
    .await;
    assert_eq!(s, 201, "{out}");
    let (s, _) = t
        .call(
            Some(supervisor),
            Method::POST,
            "/v1/ledger/checkpoint",
            None,
        )
        .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn a_witness_cosigns_growth_and_exits_non_zero_on_a_fork() {
    let a = TestServer::start(false).await.unwrap();
    let (_, supervisor) = a.key_for("regulator", "supervisor").await;
    let mut orgs = Vec::new();
    for i in 0..4 {
        orgs.push(a.key_for(&format!("org-{i}"), "buyer").await.0);
    }
    suspend(&a, &supervisor, &orgs[0]).await;
    let (_, key) = a.get(&supervisor, "/v1/ledger/public-key").await;
    let key = key.as_str().unwrap().trim().to_string();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("witness.json");

    // First sight of A: trusted, stored, cosigned; the cosignature is served.
    let (code, out) = witness(&a, &supervisor, &key, &state).await;
    assert_eq!(code, 0, "{out}");
    let witness_key = pdx_ledger::signing::load_or_create(
        &state_dir.path().join("witness.json.key"),
        "audit-witness",
    )
    .unwrap()
    .cosigner_verifier();
    let served = a
        .http
        .get(a.url("/v1/ledger/checkpoint"))
        .bearer_auth(&supervisor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let note = SignedNote::parse(&served).unwrap();
    assert_eq!(note.signatures.len(), 2, "{served}");
    note.verify(&NoteVerifier::parse(&key).unwrap()).unwrap();
    note.verified_timestamp_cosig(&witness_key).unwrap();

    // B starts from a copy of A's database and key; then the two diverge.
    let b = fork_of(&a).await;
    suspend(&a, &supervisor, &orgs[1]).await;
    suspend(&b, &supervisor, &orgs[2]).await;
    suspend(&b, &supervisor, &orgs[3]).await;

    // A grew consistently: fine.
    let (code, out) = witness(&a, &supervisor, &key, &state).await;
    assert_eq!(code, 0, "{out}");
    let remembered = std::fs::read_to_string(&state).unwrap();
    // B's history is not an extension of A's: a split view, exit 2.
    let (code, out) = witness(&b, &supervisor, &key, &state).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("SPLIT VIEW"), "{out}");
    assert!(out.contains("not consistent"), "{out}");
    // The witness still remembers A's checkpoint, not B's.
    assert_eq!(std::fs::read_to_string(&state).unwrap(), remembered);
    // A's newest checkpoint, cosigned by the witness, is not one B signed: B has a
    // checkpoint of that size with another root, and refuses the cosignature.
    let served = a
        .http
        .get(a.url("/v1/ledger/checkpoint"))
        .bearer_auth(&supervisor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (s, p) = post(
        &b,
        &supervisor,
        "/v1/ledger/cosignatures",
        json!({"witness_key": witness_key.to_vkey(), "checkpoint": served}),
    )
    .await;
    assert_eq!(s, 409, "{p}");
    // A accepts it again (it signed it), and keeps one line per witness.
    let (s, p) = post(
        &a,
        &supervisor,
        "/v1/ledger/cosignatures",
        json!({"witness_key": witness_key.to_vkey(), "checkpoint": served}),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    // A key that did not cosign the note is refused, and so is a plain note key.
    let stranger = pdx_ledger::note::NoteSigner::new(
        "stranger",
        ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
    )
    .unwrap();
    for wrong in [
        stranger.cosigner_verifier().to_vkey(),
        stranger.verifier().to_vkey(),
        "not a key".to_string(),
    ] {
        let (s, p) = post(
            &a,
            &supervisor,
            "/v1/ledger/cosignatures",
            json!({"witness_key": wrong, "checkpoint": served}),
        )
        .await;
        assert_eq!(s, 422, "{wrong}: {p}");
    }
    // A fresh witness pointed at B alone sees a consistent log: only memory catches forks.
    let fresh = state_dir.path().join("fresh.json");
    let (code, out) = witness(&b, &supervisor, &key, &fresh).await;
    assert_eq!(code, 0, "{out}");
    b.stop().await;
    a.stop().await;
}
