//! Destruction, downloads on the ledger and the provider's usage view, over HTTP on
//! SQLite and PostgreSQL.
//!
//! - Destruction (GD21 Art.40; XT Art.34(4)): a provider destroys a version of its
//!   dataset, or the whole dataset. The files go from every zone (checked on disk), the
//!   catalog keeps a tombstone (the dataset and versions answer with `destroyed`, their
//!   hashes and certificates), a public `Destruction` entry names the files' hashes, the
//!   reason and the legal basis, and every use of the data is a 409 from then on: runs,
//!   grants, dry runs, downloads, dummy rows, FHE templates, uploads, edits, the release
//!   of a quarantined output. Products built on earlier outputs keep their manifests and
//!   are still bought and downloaded. Wrong roles are 403s, another provider's dataset a
//!   404, a missing reason a 422, destroying twice or under a running job a 409, each
//!   leaving nothing written.
//! - Downloads (GD18 Art.28; XT Art.34(4)): every download of a version, an output or a
//!   product, and the ledger export, is a `DataAccess` entry, which the provider of the
//!   data reads and another developer does not.
//! - Usage (SD22 Art.14): `GET /v1/datasets/{id}/usage` shows the provider which grants,
//!   runs, outputs, releases and downloads touched its dataset, per version, checked
//!   against a hand count of what the test did.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use pdx::auth::Role;
use pdx::http::policies::POLICIES;
use pdx::samples;
use pdx_ids::DatasetId;
use pdx_products::archive::read_tar;
use reqwest::Method;
use serde_json::{Value, json};

use crate::audit::running_run;
use crate::catalog::{draft, register, upload, upload_certified, wait_job};
use crate::governance::entries;
use crate::products::{MODEL_SQL, listed_product, market, paid_order};
use crate::sandbox::{apply, approve};
use crate::support::{TestServer, blake3_hex, key_per_role, payload, post, refused_outside_policy};

const PDX: &str = env!("CARGO_BIN_EXE_pdx");
const REASON: &str = "the retention period under the Archives Law has ended";
const LEGAL_BASIS: &str = "GD21 Art.40; Archives Law Art.19";

fn destroy_body() -> Value {
    json!({"reason": REASON, "legal_basis": LEGAL_BASIS})
}

/// Uploads the electricity table drawn with `seed` as a new version and waits for its
/// certificate; returns the version number.
async fn certify(t: &TestServer, provider: &str, dataset: &str, seed: u64) -> u64 {
    let csv = samples::electricity_csv(600, seed);
    let job = upload_certified(t, provider, dataset, "?format=csv", csv.into_bytes()).await;
    job["result"]["version"].as_u64().unwrap()
}

/// The files a version keeps on disk: its certified de-identified file and the FHE key
/// index built at its ingest (the electricity table pseudonymises its credit codes).
async fn version_files(t: &TestServer, dataset: &str, version: u64) -> Vec<PathBuf> {
    let relative: String = sqlx::query_scalar(
        "SELECT file_path FROM dataset_versions WHERE dataset_id = $1 AND version = $2",
    )
    .bind(dataset.to_string())
    .bind(version as i64)
    .fetch_one(t.app.db.pool())
    .await
    .unwrap();
    let v = t
        .app
        .sandbox
        .versions()
        .version(&DatasetId::parse(dataset).unwrap(), version)
        .await
        .unwrap()
        .unwrap();
    let zones = t.dir.path().join("zones");
    vec![
        zones.join(relative),
        zones
            .join("fhe/index")
            .join(dataset)
            .join(format!("{}.parquet", v.content_hash)),
    ]
}

/// Ends a job recorded by [`running_run`] (or an ingest recorded as running).
async fn finish_job(t: &TestServer, job_id: &str) {
    sqlx::query("UPDATE model_runs SET status = 'failed' WHERE job_id = $1")
        .bind(job_id.to_string())
        .execute(t.app.db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET status = 'failed' WHERE id = $1")
        .bind(job_id.to_string())
        .execute(t.app.db.pool())
        .await
        .unwrap();
}

/// Registers a SQL model of `dev`; returns its id.
async fn sql_model(t: &TestServer, dev: &str) -> String {
    let (s, m) = post(
        t,
        dev,
        "/v1/models",
        json!({"name": "districts", "kind": "sql", "body": MODEL_SQL}),
    )
    .await;
    assert_eq!(s, 201, "{}: {m}", t.backend);
    m["id"].as_str().unwrap().to_string()
}

/// GET with the raw bytes (downloads are not JSON); `None` sends no key.
async fn get_bytes(t: &TestServer, key: Option<&str>, path: &str) -> (u16, Vec<u8>) {
    let mut req = t.http.get(t.url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// The caller's organisation and key id.
async fn whoami(t: &TestServer, key: &str) -> (String, String) {
    let (s, me) = t.get(key, "/v1/whoami").await;
    assert_eq!(s, 200, "{me}");
    (
        me["org_id"].as_str().unwrap().to_string(),
        me["key_id"].as_str().unwrap().to_string(),
    )
}

/// The payloads of the `destruction` entries of `dataset` that `key` may read.
async fn destructions(t: &TestServer, key: &str, dataset: &str) -> Vec<(u64, Value)> {
    entries(t, key, "destruction")
        .await
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), payload(e)))
        .filter(|(_, p)| p["dataset_id"] == dataset)
        .collect()
}

/// The payloads of the `data_access` entries that `key` may read.
async fn accesses(t: &TestServer, key: &str) -> Vec<(u64, Value)> {
    entries(t, key, "data_access")
        .await
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), payload(e)))
        .collect()
}

fn assert_conflict(what: &str, status: u16, problem: &Value, part: &str) {
    assert_eq!(status, 409, "{what}: {problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(part), "{what}: {part:?} missing: {problem}");
}

/// A version is destroyed: its files are gone from disk, it stays readable as a
/// tombstone with its hashes and certificate, a public `Destruction` entry names its
/// files' hashes, reason and legal basis, it is neither run nor downloaded any more (the
/// other version is), and the product built on an output of it keeps its manifest and
/// is still downloaded (its data is the released output, which destruction leaves).
/// Refusals (wrong roles, another provider, no reason, a running job) write nothing.
#[tokio::test]
async fn a_destroyed_version_leaves_a_tombstone_its_files_gone_and_products_intact_on_both_backends()
 {
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let ds = m.dataset.clone();
        let authority = t.authority().await.to_string();
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (buyer_org, _) = whoami(t, &m.buyer).await;
        // A second version, which stays.
        assert_eq!(certify(t, &m.provider, &ds, 11).await, 2, "{b}");

        // A product on the release (an output of version 1), bought and paid.
        let release_id = m.release["release_id"].as_str().unwrap().to_string();
        let (pid, listed) = listed_product(&m, &release_id).await;
        let (s, shown) = t.get(&m.buyer, &format!("/v1/products/{pid}")).await;
        assert_eq!(s, 200, "{b}: {shown}");
        let manifest_before = shown["manifest"].clone();
        assert_eq!(
            manifest_before["sources"][0]["datasets"][0]["dataset_id"],
            ds.as_str(),
            "{b}: the product is built on the dataset"
        );
        let oid = paid_order(t, &m.buyer, &pid, "destruction-1", "bank-0001").await;

        let mut v1_files = version_files(t, &ds, 1).await;
        let v2_files = version_files(t, &ds, 2).await;
        // The raw upload as retention keeps it (`retain_raw`, off in the harness; the
        // name is the one `sandbox/src/versions.rs` gives it).
        let raw = t.dir.path().join("zones/raw").join(format!("{ds}-v1.raw"));
        let raw_bytes = samples::electricity_csv(600, 7).into_bytes();
        t.app
            .sandbox
            .at_rest()
            .write_file(&raw, &raw_bytes)
            .unwrap();
        v1_files.push(raw.clone());
        for f in v1_files.iter().chain(&v2_files) {
            assert!(f.exists(), "{b}: {} is there before", f.display());
        }
        let (s, v1_before) = t
            .get(&m.dev, &format!("/v1/datasets/{ds}/versions/1"))
            .await;
        assert_eq!(s, 200, "{b}: {v1_before}");
        assert_eq!(v1_before["destroyed"], Value::Null, "{b}: {v1_before}");
        let path = format!("/v1/datasets/{ds}/versions/1/destruction");

        // Bad input, wrong roles, another provider, an unknown version: nothing written.
        for (what, key, body, want) in [
            (
                "no reason",
                m.provider.as_str(),
                json!({"legal_basis": LEGAL_BASIS}),
                422,
            ),
            (
                "a blank reason",
                m.provider.as_str(),
                json!({"reason": "  "}),
                422,
            ),
            (
                "a blank legal basis",
                m.provider.as_str(),
                json!({"reason": REASON, "legal_basis": ""}),
                422,
            ),
            (
                "an unknown field",
                m.provider.as_str(),
                json!({"reason": REASON, "by": "me"}),
                422,
            ),
            ("a developer", m.dev.as_str(), destroy_body(), 403),
            ("a supervisor", m.supervisor.as_str(), destroy_body(), 403),
            ("the exchange", m.exchange.as_str(), destroy_body(), 403),
            (
                "the data authority",
                authority.as_str(),
                destroy_body(),
                403,
            ),
            (
                "another provider",
                other_provider.as_str(),
                destroy_body(),
                404,
            ),
        ] {
            let (s, p) = post(t, key, &path, body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        for missing in [
            format!("/v1/datasets/{ds}/versions/9/destruction"),
            "/v1/datasets/not-a-dataset/versions/1/destruction".to_string(),
        ] {
            let (s, p) = post(t, &m.provider, &missing, destroy_body()).await;
            assert_eq!(s, 404, "{b}: {missing}: {p}");
        }
        // A model run reading version 1 is in progress: 409, until it ends.
        let model = sql_model(t, &m.dev).await;
        let cited = format!("{ds}@1");
        let job = running_run(t, &m.dev_org, &model, &[cited.as_str()]).await;
        let (s, p) = post(t, &m.provider, &path, destroy_body()).await;
        assert_conflict(&format!("{b}: a running job"), s, &p, "in progress");
        finish_job(t, &job).await;
        assert!(
            destructions(t, &m.supervisor, &ds).await.is_empty(),
            "{b}: a refusal wrote a destruction"
        );
        for f in &v1_files {
            assert!(f.exists(), "{b}: a refusal deleted {}", f.display());
        }

        // The destruction.
        let (s, record) = post(t, &m.provider, &path, destroy_body()).await;
        assert_eq!(s, 201, "{b}: {record}");
        assert_eq!(record["scope"], "version", "{b}: {record}");
        assert_eq!(record["versions"], json!([1]), "{b}: {record}");
        assert_eq!(record["reason"], REASON);
        assert_eq!(record["legal_basis"], LEGAL_BASIS);
        assert_eq!(record["grants_suspended"], json!([]));
        let files = record["files"].as_array().unwrap().clone();
        let zones: BTreeSet<&str> = files.iter().map(|f| f["zone"].as_str().unwrap()).collect();
        assert_eq!(
            zones,
            BTreeSet::from(["deid", "fhe_index", "raw"]),
            "{b}: {record}"
        );
        let deid = files.iter().find(|f| f["zone"] == "deid").unwrap();
        assert_eq!(deid["content_hash"], v1_before["content_hash"], "{b}");
        assert_eq!(deid["bytes"], v1_before["bytes"], "{b}");
        assert!(
            files
                .iter()
                .all(|f| f["deleted"] == true && f["version"] == 1),
            "{b}: {record}"
        );
        let raw_file = files.iter().find(|f| f["zone"] == "raw").unwrap();
        assert_eq!(raw_file["content_hash"], blake3_hex(&raw_bytes), "{b}");
        assert_eq!(raw_file["bytes"], raw_bytes.len() as u64, "{b}");
        let index = files.iter().find(|f| f["zone"] == "fhe_index").unwrap();
        assert_eq!(
            index["content_hash"].as_str().unwrap().len(),
            64,
            "{b}: {index}"
        );
        // Gone from disk; version 2's stay.
        for f in &v1_files {
            assert!(!f.exists(), "{b}: {} is still there", f.display());
        }
        for f in &v2_files {
            assert!(f.exists(), "{b}: {} went too", f.display());
        }

        // The tombstone: readable, with its hashes and certificate.
        let (s, v1) = t
            .get(&m.dev, &format!("/v1/datasets/{ds}/versions/1"))
            .await;
        assert_eq!(s, 200, "{b}: {v1}");
        let tomb = &v1["destroyed"];
        assert_eq!(tomb["scope"], "version", "{b}: {v1}");
        assert_eq!(tomb["reason"], REASON);
        assert_eq!(tomb["legal_basis"], LEGAL_BASIS);
        assert_eq!(tomb["destroyed_by"], m.provider_org.as_str());
        assert_eq!(tomb["ledger_seq"], record["ledger_seq"]);
        assert_eq!(v1["content_hash"], v1_before["content_hash"]);
        assert_eq!(v1["certificate_no"], v1_before["certificate_no"]);
        let (s, cert) = t
            .get(&m.dev, &format!("/v1/datasets/{ds}/versions/1/certificate"))
            .await;
        assert_eq!(s, 200, "{b}: the certificate stays: {cert}");
        let (s, v2) = t
            .get(&m.dev, &format!("/v1/datasets/{ds}/versions/2"))
            .await;
        assert_eq!(
            (s, v2["destroyed"].clone()),
            (200, Value::Null),
            "{b}: {v2}"
        );
        let (s, listing) = t.get(&m.dev, &format!("/v1/datasets/{ds}/versions")).await;
        assert_eq!(s, 200, "{b}: {listing}");
        assert_eq!(
            listing[0]["destroyed"]["scope"], "version",
            "{b}: {listing}"
        );
        assert_eq!(listing[1]["destroyed"], Value::Null, "{b}: {listing}");
        let (s, entry) = t.get(&m.dev, &format!("/v1/datasets/{ds}")).await;
        assert_eq!(s, 200);
        assert_eq!(entry["destroyed"], Value::Null, "{b}: the dataset lives");

        // Nothing reads version 1 any more; version 2 serves.
        let (s, p) = t
            .get(
                &m.dev,
                &format!("/v1/datasets/{ds}/versions/1/download?format=json"),
            )
            .await;
        assert_conflict(&format!("{b}: download"), s, &p, "destroyed");
        let (s, p) = post(
            t,
            &m.dev,
            "/v1/runs",
            json!({"model_id": model, "inputs": [{"dataset_id": ds, "version": 1}]}),
        )
        .await;
        assert_conflict(&format!("{b}: run"), s, &p, "destroyed");
        let (s, p) = post(t, &m.provider, &path, destroy_body()).await;
        assert_conflict(&format!("{b}: again"), s, &p, "destroyed already");
        let (s, rows) = t
            .get(
                &m.dev,
                &format!("/v1/datasets/{ds}/versions/2/download?format=json"),
            )
            .await;
        assert_eq!(s, 200, "{b}: {rows}");
        assert!(!rows.as_array().unwrap().is_empty(), "{b}");

        // One public `Destruction` entry, with the hashes.
        let found = destructions(t, &m.buyer, &ds).await;
        assert_eq!(found.len(), 1, "{b}: {found:?}");
        let (seq, entry) = &found[0];
        assert_eq!(Some(*seq), record["ledger_seq"].as_u64(), "{b}");
        assert_eq!(entry["scope"], "version");
        assert_eq!(entry["versions"], json!([1]));
        assert_eq!(entry["certificates"], json!([v1_before["certificate_no"]]));
        assert_eq!(entry["provider_org"], m.provider_org.as_str());
        assert_eq!(entry["reason"], REASON);
        assert_eq!(entry["legal_basis"], LEGAL_BASIS);
        let entry_files = entry["files"].as_array().unwrap();
        assert_eq!(entry_files.len(), files.len(), "{b}: {entry}");
        assert!(
            entry_files
                .iter()
                .any(|f| f["zone"] == "deid" && f["content_hash"] == v1_before["content_hash"]),
            "{b}: {entry}"
        );
        assert!(
            entry_files
                .iter()
                .any(|f| f["zone"] == "fhe_index" && f["content_hash"] == index["content_hash"]),
            "{b}: {entry}"
        );

        // The product keeps its manifest, and its download still ships the release.
        let (s, shown) = t.get(&m.buyer, &format!("/v1/products/{pid}")).await;
        assert_eq!(s, 200, "{b}: {shown}");
        assert_eq!(
            shown["manifest"], manifest_before,
            "{b}: the manifest changed"
        );
        assert_eq!(shown["status"], "listed", "{b}: {shown}");
        let (s, tar) = get_bytes(t, Some(&m.buyer), &format!("/v1/orders/{oid}/download")).await;
        assert_eq!(s, 200, "{b}");
        let members = read_tar(&tar).unwrap();
        let data = members
            .iter()
            .find(|(name, _)| name.ends_with(&format!("data/00-{release_id}.parquet")))
            .map(|(_, d)| d.clone())
            .expect("the released output is in the archive");
        assert_eq!(
            blake3_hex(&data),
            m.release["output_hash"].as_str().unwrap(),
            "{b}: the data is the released output"
        );
        let manifest = members
            .iter()
            .find(|(name, _)| name.ends_with("manifest.json"))
            .map(|(_, d)| d.clone())
            .unwrap();
        assert_eq!(
            blake3_hex(&manifest),
            listed["manifest_hash"].as_str().unwrap(),
            "{b}: the shipped manifest is the listed one"
        );

        // The download is a `DataAccess` entry: the provider of the data reads it, as do
        // the buyer and supervisors; another developer does not.
        let is_this = |p: &Value| p["what"] == "product" && p["subject"] == oid.as_str();
        let theirs = accesses(t, &m.provider).await;
        let (_, access) = theirs
            .iter()
            .find(|(_, p)| is_this(p))
            .unwrap_or_else(|| panic!("{b}: the provider does not see the download"));
        assert_eq!(access["org"], buyer_org.as_str());
        assert_eq!(access["product_id"], pid.as_str());
        assert_eq!(access["dataset_versions"], json!([format!("{ds}@1")]));
        assert_eq!(access["owner_org"], m.dev_org.as_str());
        assert_eq!(access["provider_orgs"], json!([m.provider_org]));
        assert_eq!(access["bytes"], tar.len() as u64);
        assert_eq!(access["content_hash"], blake3_hex(&tar));
        assert_eq!(access["format"], "tar");
        assert!(
            accesses(t, &m.buyer).await.iter().any(|(_, p)| is_this(p)),
            "{b}"
        );
        assert!(
            accesses(t, &m.supervisor)
                .await
                .iter()
                .any(|(_, p)| is_this(p)),
            "{b}"
        );
        assert!(
            !accesses(t, &m.other_dev)
                .await
                .iter()
                .any(|(_, p)| is_this(p)),
            "{b}: another developer reads the download"
        );
        m.t.stop().await;
    }
}

/// A whole dataset is destroyed: every version's files go, its grants are suspended
/// (each a `GrantDecision` entry), the entry and its versions stay as tombstones, and
/// every path is a 409: grants, runs, dry runs, dummy rows (its provider's too),
/// downloads, FHE templates, the release of a quarantined output, uploads, edits and
/// destroying again. Refused while the entry is under review and while a version is
/// being ingested. The usage view shows what the dataset was used for until then.
#[tokio::test]
async fn a_whole_dataset_is_destroyed_with_every_path_refused_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("power-bureau", "provider").await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (dev_org, dev) = t.key_for("energy-analytics", "developer").await;
        let (other_dev_org, other_dev) = t.key_for("rival-analytics", "developer").await;
        let (_, reviewer) = t.key_for("output-checkers", "reviewer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let authority = t.authority().await.to_string();
        let mut meta = samples::electricity_dataset();
        meta.elements = Vec::new();
        let meta_json = serde_json::to_value(&meta).unwrap();
        let ds = register(&t, &provider, &meta_json).await;
        assert_eq!(certify(&t, &provider, &ds, 7).await, 1, "{b}");
        assert_eq!(certify(&t, &provider, &ds, 8).await, 2, "{b}");

        // What it is used for: an approved grant with a run (its output quarantined),
        // and a pending grant of another developer.
        let grant = apply(
            &t,
            &dev,
            &ds,
            json!(["district", "kwh_12m"]),
            json!(["sql"]),
            0.0,
            10,
        )
        .await;
        approve(&t, &provider, &grant, json!({})).await;
        let pending = apply(
            &t,
            &other_dev,
            &ds,
            json!(["district"]),
            json!(["sql"]),
            0.0,
            5,
        )
        .await;
        let model = sql_model(&t, &dev).await;
        let (s, job) = post(
            &t,
            &dev,
            "/v1/runs",
            json!({"model_id": model, "inputs": [{"dataset_id": ds, "grant_id": grant}]}),
        )
        .await;
        assert_eq!(s, 202, "{b}: {job}");
        let job = wait_job(&t, &dev, job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{b}: {job}");
        let output = job["result"]["output_id"].as_str().unwrap().to_string();
        let files: Vec<PathBuf> = [
            version_files(&t, &ds, 1).await,
            version_files(&t, &ds, 2).await,
        ]
        .concat();
        for f in &files {
            assert!(f.exists(), "{b}: {} is there before", f.display());
        }

        // Usage before: two grants, one run on the latest version, its output waiting.
        let (s, usage) = t.get(&provider, &format!("/v1/datasets/{ds}/usage")).await;
        assert_eq!(s, 200, "{b}: {usage}");
        let (_, approved_grant) = t.get(&dev, &format!("/v1/grants/{grant}")).await;
        let (_, pending_grant) = t.get(&other_dev, &format!("/v1/grants/{pending}")).await;
        let grants: BTreeSet<(String, String, String, String)> = usage["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["grant_id"].as_str().unwrap().to_string(),
                    g["applicant_org"].as_str().unwrap().to_string(),
                    g["purpose"].as_str().unwrap().to_string(),
                    g["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let purpose = |g: &Value| g["purpose"].as_str().unwrap().to_string();
        assert_eq!(
            grants,
            BTreeSet::from([
                (
                    grant.clone(),
                    dev_org.clone(),
                    purpose(&approved_grant),
                    "approved".to_string()
                ),
                (
                    pending.clone(),
                    other_dev_org.clone(),
                    purpose(&pending_grant),
                    "pending".to_string()
                ),
            ]),
            "{b}: {usage}"
        );
        assert_eq!(usage["versions"][0]["runs"], json!([]), "{b}: {usage}");
        assert_eq!(
            usage["versions"][1]["runs"],
            json!([{"org": dev_org, "status": "finished", "count": 1}]),
            "{b}: {usage}"
        );
        assert_eq!(
            usage["versions"][1]["outputs"],
            json!([{"org": dev_org, "status": "quarantined", "count": 1}]),
            "{b}: {usage}"
        );
        assert_eq!(usage["versions"][1]["releases"], json!([]), "{b}: {usage}");

        // Refused while the entry is under the authority's review, and while a version
        // is being ingested; bad input, wrong roles and another provider: nothing
        // written.
        let mut other_meta = meta.clone();
        other_meta.title = "Enterprise electricity (second table)".into();
        let submitted = draft(&t, &provider, &serde_json::to_value(&other_meta).unwrap()).await;
        let (s, p) = post(
            &t,
            &provider,
            &format!("/v1/datasets/{submitted}/submit"),
            json!({}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {p}");
        let (s, p) = post(
            &t,
            &provider,
            &format!("/v1/datasets/{submitted}/destruction"),
            destroy_body(),
        )
        .await;
        assert_conflict(&format!("{b}: under review"), s, &p, "review");
        let path = format!("/v1/datasets/{ds}/destruction");
        let ingest = format!("job_ingest_{}", hex::encode(rand::random::<[u8; 4]>()));
        let now = pdx_ledger::db::now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, kind, org_id, subject, status, stage, progress, created_ms, updated_ms) \
             VALUES ($1, 'ingest', $2, $3, 'running', 'de-identifying', 0.1, $4, $4)",
        )
        .bind(ingest.clone())
        .bind(provider_org.clone())
        .bind(ds.clone())
        .bind(now)
        .execute(t.app.db.pool())
        .await
        .unwrap();
        let (s, p) = post(&t, &provider, &path, destroy_body()).await;
        assert_conflict(&format!("{b}: an ingest"), s, &p, "ingested");
        finish_job(&t, &ingest).await;
        for (what, key, body, want) in [
            ("no reason", provider.as_str(), json!({}), 422),
            ("a developer", dev.as_str(), destroy_body(), 403),
            ("a reviewer", reviewer.as_str(), destroy_body(), 403),
            (
                "the data authority",
                authority.as_str(),
                destroy_body(),
                403,
            ),
            ("a supervisor", supervisor.as_str(), destroy_body(), 403),
            (
                "another provider",
                other_provider.as_str(),
                destroy_body(),
                404,
            ),
        ] {
            let (s, p) = post(&t, key, &path, body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        assert!(
            destructions(&t, &supervisor, &ds).await.is_empty(),
            "{b}: a refusal wrote a destruction"
        );
        let (_, entry) = t.get(&dev, &format!("/v1/datasets/{ds}")).await;
        assert_eq!(entry["destroyed"], Value::Null, "{b}: {entry}");

        // The destruction.
        let (s, record) = post(&t, &provider, &path, json!({"reason": REASON})).await;
        assert_eq!(s, 201, "{b}: {record}");
        assert_eq!(record["scope"], "dataset", "{b}: {record}");
        assert_eq!(record["versions"], json!([1, 2]), "{b}: {record}");
        assert_eq!(record["legal_basis"], Value::Null, "{b}: {record}");
        let suspended: BTreeSet<&str> = record["grants_suspended"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        assert_eq!(
            suspended,
            BTreeSet::from([grant.as_str(), pending.as_str()]),
            "{b}: {record}"
        );
        assert_eq!(
            record["files"].as_array().unwrap().len(),
            4,
            "{b}: {record}"
        );
        for f in &files {
            assert!(!f.exists(), "{b}: {} is still there", f.display());
        }

        // Tombstones.
        let (s, entry) = t.get(&dev, &format!("/v1/datasets/{ds}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["destroyed"]["scope"], "dataset", "{b}: {entry}");
        assert_eq!(entry["destroyed"]["reason"], REASON);
        assert_eq!(entry["destroyed"]["ledger_seq"], record["ledger_seq"]);
        let (s, versions) = t.get(&dev, &format!("/v1/datasets/{ds}/versions")).await;
        assert_eq!(s, 200, "{b}: {versions}");
        for v in versions.as_array().unwrap() {
            assert_eq!(v["destroyed"]["scope"], "dataset", "{b}: {v}");
            assert_eq!(v["content_hash"].as_str().unwrap().len(), 64, "{b}: {v}");
        }

        // Every path is a 409.
        let (s, g) = t.get(&dev, &format!("/v1/grants/{grant}")).await;
        assert_eq!(
            (s, g["status"].clone()),
            (200, json!("suspended")),
            "{b}: {g}"
        );
        let (s, p) = post(
            &t,
            &other_dev,
            "/v1/grants",
            json!({
                "dataset_id": ds,
                "purpose": "regional energy-efficiency product",
                "columns": ["district"],
                "model_kinds": ["sql"],
                "term_days": 365,
                "epsilon": 0.0,
                "delta": 0.0,
                "query_budget": 5
            }),
        )
        .await;
        assert_conflict(&format!("{b}: grant"), s, &p, "destroyed");
        let (s, p) = post(
            &t,
            &dev,
            "/v1/runs",
            json!({"model_id": model, "inputs": [{"dataset_id": ds, "grant_id": grant}]}),
        )
        .await;
        assert_conflict(&format!("{b}: run"), s, &p, "destroyed");
        let (s, p) = post(
            &t,
            &dev,
            "/v1/dry-run",
            json!({"kind": "sql", "body": MODEL_SQL, "dataset_id": ds, "rows": 50}),
        )
        .await;
        assert_conflict(&format!("{b}: dry run"), s, &p, "destroyed");
        for (who, key) in [("developer", &dev), ("provider", &provider)] {
            let (s, p) = t.get(key, &format!("/v1/datasets/{ds}/dummy")).await;
            assert_conflict(&format!("{b}: dummy rows ({who})"), s, &p, "destroyed");
        }
        let (s, p) = t
            .get(&dev, &format!("/v1/datasets/{ds}/versions/2/download"))
            .await;
        assert_conflict(&format!("{b}: download"), s, &p, "destroyed");
        let (s, p) = post(
            &t,
            &dev,
            "/v1/fhe/templates",
            json!({
                "dataset_id": ds,
                "name": "top quartile of electricity use",
                "purpose": "working-capital loans",
                "spec": {
                    "key_column": "credit_code",
                    "value": {"rule": "quantile", "column": "kwh_12m", "buckets": 4, "at_least": 3},
                    "output": {"kind": "bool"},
                    "key_width": "u16",
                    "bucket_bits": 0
                }
            }),
        )
        .await;
        assert_conflict(&format!("{b}: FHE template"), s, &p, "destroyed");
        let (s, p) = post(
            &t,
            &reviewer,
            &format!("/v1/review/{output}"),
            json!({"approve": true, "reason": "district counts over hundreds of enterprises"}),
        )
        .await;
        assert_conflict(&format!("{b}: release"), s, &p, "destroyed");
        let csv = samples::electricity_csv(600, 9);
        let (s, p) = upload(&t, &provider, &ds, "?format=csv", csv.into_bytes()).await;
        assert_conflict(&format!("{b}: upload"), s, &p, "destroyed");
        let mut edit = meta_json.clone();
        edit["description"] = json!("edited after its destruction");
        edit["reason"] = json!("a late edit");
        let (s, p) = t
            .call(
                Some(&provider),
                Method::PUT,
                &format!("/v1/datasets/{ds}"),
                Some(edit),
            )
            .await;
        assert_conflict(&format!("{b}: edit"), s, &p, "destroyed");
        let (s, p) = post(&t, &provider, &path, destroy_body()).await;
        assert_conflict(&format!("{b}: again"), s, &p, "destroyed already");
        let (s, p) = post(
            &t,
            &provider,
            &format!("/v1/datasets/{ds}/versions/1/destruction"),
            destroy_body(),
        )
        .await;
        assert_conflict(&format!("{b}: a version of it"), s, &p, "destroyed already");

        // The ledger: one `Destruction` entry naming every file, and a `GrantDecision`
        // (suspended) per grant.
        let found = destructions(&t, &dev, &ds).await;
        assert_eq!(found.len(), 1, "{b}: {found:?}");
        let (_, entry) = &found[0];
        assert_eq!(entry["scope"], "dataset");
        assert_eq!(entry["versions"], json!([1, 2]));
        assert_eq!(entry["legal_basis"], Value::Null);
        assert_eq!(entry["files"].as_array().unwrap().len(), 4, "{b}: {entry}");
        let hashes: BTreeSet<&str> = versions
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["content_hash"].as_str().unwrap())
            .collect();
        let deid: BTreeSet<&str> = entry["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["zone"] == "deid")
            .map(|f| f["content_hash"].as_str().unwrap())
            .collect();
        assert_eq!(deid, hashes, "{b}: {entry}");
        let suspensions: BTreeSet<String> = entries(&t, &supervisor, "grant_decision")
            .await
            .iter()
            .map(payload)
            .filter(|p| p["decision"] == "suspended")
            .map(|p| p["grant_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            suspensions,
            BTreeSet::from([grant.clone(), pending.clone()]),
            "{b}"
        );

        // Usage after: the grants suspended, the versions destroyed, the run counted.
        let (s, usage) = t
            .get(&supervisor, &format!("/v1/datasets/{ds}/usage"))
            .await;
        assert_eq!(s, 200, "{b}: {usage}");
        assert_eq!(usage["destroyed"]["scope"], "dataset", "{b}: {usage}");
        assert!(
            usage["grants"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["status"] == "suspended"),
            "{b}: {usage}"
        );
        assert!(
            usage["versions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["destroyed"]["scope"] == "dataset"),
            "{b}: {usage}"
        );
        assert_eq!(
            usage["versions"][1]["runs"],
            json!([{"org": dev_org, "status": "finished", "count": 1}]),
            "{b}: {usage}"
        );
        t.stop().await;
    }
}

/// Every download is a `DataAccess` entry before its bytes leave: a version's rows (with
/// a key and without one), a released output, a product's archive, and the operator's
/// ledger export. The provider of the data reads the entries that concern it, each
/// accessor its own, another developer none of the others. The usage view counts what
/// the test did, by hand: one run, its released output and its release, and the
/// downloads by organisation and kind with their bytes. Other roles 403, another
/// provider 404.
#[tokio::test]
async fn downloads_are_ledger_entries_and_the_usage_view_counts_them_on_both_backends() {
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let ds = m.dataset.clone();
        let v1 = format!("{ds}@1");
        let (other_dev_org, _) = whoami(t, &m.other_dev).await;
        let (buyer_org, _) = whoami(t, &m.buyer).await;
        let (_, dev_key_id) = whoami(t, &m.dev).await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let authority = t.authority().await.to_string();
        let (s, version) = t
            .get(&m.dev, &format!("/v1/datasets/{ds}/versions/1"))
            .await;
        assert_eq!(s, 200, "{b}: {version}");

        // Version 1: the developer twice (Parquet, CSV), another developer once (JSON),
        // the public once without a key.
        let download = format!("/v1/datasets/{ds}/versions/1/download");
        let (s, parquet) = get_bytes(t, Some(&m.dev), &download).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            blake3_hex(&parquet),
            version["content_hash"].as_str().unwrap(),
            "{b}: the certified file"
        );
        let (s, csv) = get_bytes(t, Some(&m.dev), &format!("{download}?format=csv")).await;
        assert_eq!(s, 200, "{b}");
        let (s, json_rows) =
            get_bytes(t, Some(&m.other_dev), &format!("{download}?format=json")).await;
        assert_eq!(s, 200, "{b}");
        let (s, public_rows) = get_bytes(t, None, &download).await;
        assert_eq!(s, 200, "{b}: the public downloads open data");
        // The released output, once.
        let output_id = m.release["id"].as_str().unwrap().to_string();
        let release_id = m.release["release_id"].as_str().unwrap().to_string();
        let (s, out) = get_bytes(
            t,
            Some(&m.dev),
            &format!("/v1/outputs/{output_id}/download"),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(blake3_hex(&out), m.release["output_hash"].as_str().unwrap());
        // A product on it, bought and downloaded once.
        let (pid, _) = listed_product(&m, &release_id).await;
        let oid = paid_order(t, &m.buyer, &pid, "usage-1", "bank-0002").await;
        let (s, tar) = get_bytes(t, Some(&m.buyer), &format!("/v1/orders/{oid}/download")).await;
        assert_eq!(s, 200, "{b}");
        // A refused download writes nothing: another buyer's order is not found.
        let (s, _) = get_bytes(t, Some(&m.buyer2), &format!("/v1/orders/{oid}/download")).await;
        assert_eq!(s, 404, "{b}");

        // Six downloads derive from version 1; the provider reads all six.
        let concerning = |list: Vec<(u64, Value)>| -> Vec<Value> {
            list.into_iter()
                .map(|(_, p)| p)
                .filter(|p| {
                    p["dataset_versions"]
                        .as_array()
                        .is_some_and(|v| v.contains(&json!(v1)))
                })
                .collect()
        };
        let provider_sees = concerning(accesses(t, &m.provider).await);
        let mut got: Vec<(String, String)> = provider_sees
            .iter()
            .map(|p| {
                (
                    p["org"].as_str().unwrap().to_string(),
                    p["what"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut expected = vec![
            (m.dev_org.clone(), "dataset_version".to_string()),
            (m.dev_org.clone(), "dataset_version".to_string()),
            (other_dev_org.clone(), "dataset_version".to_string()),
            ("public".to_string(), "dataset_version".to_string()),
            (m.dev_org.clone(), "output".to_string()),
            (buyer_org.clone(), "product".to_string()),
        ];
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{b}: {provider_sees:?}");
        assert_eq!(concerning(accesses(t, &m.supervisor).await).len(), 6, "{b}");
        // Each accessor its own (and the developer the product built on its output);
        // another developer none of the others.
        assert_eq!(concerning(accesses(t, &m.dev).await).len(), 4, "{b}");
        let other = concerning(accesses(t, &m.other_dev).await);
        assert_eq!(other.len(), 1, "{b}: {other:?}");
        assert_eq!(other[0]["format"], "json");
        assert_eq!(other[0]["bytes"], json_rows.len() as u64);
        assert_eq!(concerning(accesses(t, &m.buyer).await).len(), 1, "{b}");
        // What an entry says.
        let parquet_entry = provider_sees
            .iter()
            .find(|p| {
                p["what"] == "dataset_version"
                    && p["format"] == "parquet"
                    && p["org"] == m.dev_org.as_str()
            })
            .unwrap();
        assert_eq!(parquet_entry["what"], "dataset_version");
        assert_eq!(parquet_entry["subject"], v1.as_str());
        assert_eq!(parquet_entry["key_id"], dev_key_id.as_str());
        assert_eq!(parquet_entry["bytes"], parquet.len() as u64);
        assert_eq!(parquet_entry["content_hash"], blake3_hex(&parquet));
        assert_eq!(parquet_entry["source_hash"], version["content_hash"]);
        assert_eq!(parquet_entry["provider_orgs"], json!([m.provider_org]));
        assert!(
            parquet_entry["access_id"]
                .as_str()
                .unwrap()
                .starts_with("acc_")
        );
        let csv_entry = provider_sees.iter().find(|p| p["format"] == "csv").unwrap();
        assert_eq!(csv_entry["content_hash"], blake3_hex(&csv), "{b}");
        let public_entry = provider_sees.iter().find(|p| p["org"] == "public").unwrap();
        assert_eq!(public_entry["bytes"], public_rows.len() as u64, "{b}");
        let output_entry = provider_sees
            .iter()
            .find(|p| p["what"] == "output")
            .unwrap();
        assert_eq!(output_entry["subject"], output_id.as_str());
        assert_eq!(output_entry["release_id"], release_id.as_str());
        assert_eq!(output_entry["owner_org"], m.dev_org.as_str());
        assert_eq!(output_entry["content_hash"], blake3_hex(&out));
        assert_eq!(output_entry["source_hash"], m.release["output_hash"]);
        let product_entry = provider_sees
            .iter()
            .find(|p| p["what"] == "product")
            .unwrap();
        assert_eq!(product_entry["subject"], oid.as_str());
        assert_eq!(product_entry["bytes"], tar.len() as u64);

        // The usage view, by hand: the market's one run (finished), its released output
        // and release; the downloads above by organisation and kind.
        let usage_path = format!("/v1/datasets/{ds}/usage");
        let (s, usage) = t.get(&m.provider, &usage_path).await;
        assert_eq!(s, 200, "{b}: {usage}");
        assert_eq!(usage["dataset_id"], ds.as_str());
        assert_eq!(usage["grants"], json!([]), "{b}: open data needs no grant");
        assert_eq!(
            usage["versions"].as_array().unwrap().len(),
            1,
            "{b}: {usage}"
        );
        let v = &usage["versions"][0];
        assert_eq!(v["version"], 1);
        assert_eq!(v["certificate_no"], version["certificate_no"]);
        assert_eq!(
            v["runs"],
            json!([{"org": m.dev_org, "status": "finished", "count": 1}]),
            "{b}: {usage}"
        );
        assert_eq!(
            v["outputs"],
            json!([{"org": m.dev_org, "status": "released", "count": 1}]),
            "{b}: {usage}"
        );
        assert_eq!(v["releases"].as_array().unwrap().len(), 1, "{b}: {usage}");
        assert_eq!(v["releases"][0]["release_id"], release_id.as_str());
        assert_eq!(v["releases"][0]["output_id"], output_id.as_str());
        assert_eq!(v["fhe_queries"], json!([]));
        let downloads: BTreeSet<(String, String, u64, u64)> = v["downloads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["org"].as_str().unwrap().to_string(),
                    d["what"].as_str().unwrap().to_string(),
                    d["count"].as_u64().unwrap(),
                    d["bytes"].as_u64().unwrap(),
                )
            })
            .collect();
        let hand: BTreeSet<(String, String, u64, u64)> = BTreeSet::from([
            (
                m.dev_org.clone(),
                "dataset_version".to_string(),
                2,
                (parquet.len() + csv.len()) as u64,
            ),
            (
                other_dev_org.clone(),
                "dataset_version".to_string(),
                1,
                json_rows.len() as u64,
            ),
            (
                "public".to_string(),
                "dataset_version".to_string(),
                1,
                public_rows.len() as u64,
            ),
            (m.dev_org.clone(), "output".to_string(), 1, out.len() as u64),
            (
                buyer_org.clone(),
                "product".to_string(),
                1,
                tar.len() as u64,
            ),
        ]);
        assert_eq!(downloads, hand, "{b}: {usage}");
        for key in [&m.supervisor, &authority] {
            let (s, theirs) = t.get(key, &usage_path).await;
            assert_eq!(s, 200, "{b}: {theirs}");
            assert_eq!(theirs["versions"], usage["versions"], "{b}");
        }
        for (who, key, want) in [
            ("a developer", &m.dev, 403),
            ("a buyer", &m.buyer, 403),
            ("a reviewer", &m.reviewer, 403),
            ("the exchange", &m.exchange, 403),
            ("the admin", &t.admin, 403),
            ("another provider", &other_provider, 404),
        ] {
            let (s, p) = t.get(key, &usage_path).await;
            assert_eq!(s, want, "{b}: {who}: {p}");
        }
        for missing in [
            "/v1/datasets/ds_0000000000000000/usage",
            "/v1/datasets/x!/usage",
        ] {
            let (s, p) = t.get(&m.provider, missing).await;
            assert_eq!(s, 404, "{b}: {missing}: {p}");
        }
        let (s, _) = get_bytes(t, None, &usage_path).await;
        assert_eq!(s, 401, "{b}: the usage view needs a key");

        // The operator's ledger export is an entry too, read by supervisors only.
        let export = t.dir.path().join("ledger-export.jsonl");
        let cli = Command::new(PDX)
            .args([
                "--data-dir",
                t.dir.path().to_str().unwrap(),
                "--database-url",
                &t.app.config.database_url,
                "ledger",
                "export",
                "--out",
                export.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            cli.status.success(),
            "{b}: {}",
            String::from_utf8_lossy(&cli.stderr)
        );
        let exported = std::fs::read(&export).unwrap();
        let (seq, entry) = accesses(t, &m.supervisor)
            .await
            .into_iter()
            .find(|(_, p)| p["what"] == "ledger_export")
            .unwrap_or_else(|| panic!("{b}: no ledger_export entry"));
        assert_eq!(entry["bytes"], exported.len() as u64, "{b}");
        assert_eq!(entry["content_hash"], blake3_hex(&exported), "{b}");
        assert_eq!(entry["org"], "pdx");
        assert_eq!(entry["key_id"], "cli");
        // Appended right after the entries it exported.
        assert_eq!(entry["ledger_entries"], seq, "{b}: {entry}");
        assert!(
            !accesses(t, &m.provider)
                .await
                .iter()
                .any(|(_, p)| p["what"] == "ledger_export"),
            "{b}: the export concerns no provider"
        );
        m.t.stop().await;
    }
}

/// The destruction and usage routes refuse every role their policy does not name, with
/// real ids, and leave the dataset as it was.
#[tokio::test]
async fn destruction_and_usage_routes_refuse_every_other_role_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let mut meta = samples::electricity_dataset();
        meta.elements = Vec::new();
        let ds = register(&t, &provider, &serde_json::to_value(&meta).unwrap()).await;
        assert_eq!(certify(&t, &provider, &ds, 3).await, 1, "{b}");
        let keys = key_per_role(&t, "org").await;
        let mut refused = 0;
        for (method, route, policy) in POLICIES {
            let mine = matches!(
                (*method, *route),
                ("POST", "/v1/datasets/{id}/versions/{version}/destruction")
                    | ("POST", "/v1/datasets/{id}/destruction")
                    | ("GET", "/v1/datasets/{id}/usage")
            );
            if !mine {
                continue;
            }
            let path = route.replace("{id}", &ds).replace("{version}", "1");
            let body = (*method == "POST").then(destroy_body);
            refused += refused_outside_policy(&t, &keys, policy, method, &path, body).await;
        }
        // Two destruction routes refused to every role but the provider, the usage view
        // to every role but the provider, supervisors and the data authority.
        let n = Role::ALL.len();
        assert_eq!(refused, 2 * (n - 1) + (n - 3), "{b}");
        let (s, entry) = t.get(&provider, &format!("/v1/datasets/{ds}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["destroyed"], Value::Null, "{b}: {entry}");
        let (s, v) = t
            .get(&provider, &format!("/v1/datasets/{ds}/versions/1"))
            .await;
        assert_eq!((s, v["destroyed"].clone()), (200, Value::Null), "{b}: {v}");
        t.stop().await;
    }
}
