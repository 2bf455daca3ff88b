//! Private lookups over HTTP, on SQLite and PostgreSQL: a bank proposes a "top
//! quartile of electricity use" template, the provider approves it (ledger), the bank
//! uploads its server key and asks about enterprises it names only under encryption.
//! Decrypted answers equal the clear answers for present and absent keys, in full
//! scans, in a public bucket and through `pdx fhe query`; the grant's query budget caps
//! the queries; every
//! query's ledger entry holds ciphertext hashes and never the key. Wrong parameters,
//! oversized keys, malformed ciphertexts and client keys are refused with a 4xx, and
//! other roles and organisations get 403 / 404.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pdx::samples;
use pdx_algorithms::fhe::{
    Answer, ClientSecret, KeyPair, KeyWidth, ciphertext_hash, client, lookup_hash, testing,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{register, upload};
use crate::support::TestServer;

const ROWS: usize = 8;
const SEED: u64 = 88;

struct Material {
    pair: KeyPair,
    secret: ClientSecret,
    foreign_server_key: Vec<u8>,
}

/// One key pair for the whole test (generating one takes seconds on two cores).
fn material() -> &'static Material {
    static M: OnceLock<Material> = OnceLock::new();
    M.get_or_init(|| {
        let pair = client::generate_keys().unwrap();
        let secret = ClientSecret::from_bytes(&pair.client).unwrap();
        Material {
            pair,
            secret,
            foreign_server_key: testing::server_key_with_other_parameters().unwrap(),
        }
    })
}

/// (credit code, kWh) of the uploaded CSV.
fn enterprises(csv: &str) -> Vec<(String, u64)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[3].parse().unwrap())
        })
        .collect()
}

/// The clear answer of the template, computed here from the CSV: in the top quartile
/// when at least 3/4 of the enterprises use strictly less.
fn top_quartile(all: &[(String, u64)], kwh: u64) -> bool {
    let below = all.iter().filter(|(_, k)| *k < kwh).count();
    (4 * below) / all.len() >= 3
}

async fn raw(t: &TestServer, key: &str, method: Method, path: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = t
        .http
        .request(method, t.url(path))
        .bearer_auth(key)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn wait(t: &TestServer, key: &str, job: &str) -> Value {
    for _ in 0..3000 {
        let (s, j) = t.get(key, &format!("/v1/jobs/{job}")).await;
        assert_eq!(s, 200, "{j}");
        if j["status"] == "succeeded" || j["status"] == "failed" {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job} did not finish in 300 s");
}

/// An entry's payload (canonical JSON text) as a value.
fn payload(entry: &Value) -> Value {
    match &entry["payload"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    }
}

fn encrypt(key_hash: u64) -> Vec<u8> {
    material()
        .secret
        .encrypt_key(KeyWidth::U16, key_hash)
        .unwrap()
}

struct Ask<'a> {
    template: &'a str,
    grant: &'a str,
    server_key: &'a str,
    bucket: Option<u64>,
}

async fn submit(t: &TestServer, key: &str, ask: &Ask<'_>, ciphertext: &[u8]) -> (u16, Value) {
    t.call(
        Some(key),
        Method::POST,
        "/v1/fhe/queries",
        Some(json!({
            "template_id": ask.template,
            "grant_id": ask.grant,
            "server_key_id": ask.server_key,
            "bucket": ask.bucket,
            "ciphertext": STANDARD.encode(ciphertext),
        })),
    )
    .await
}

/// Submits, waits, fetches and decrypts; checks the stored hashes and the ledger entry.
async fn lookup(t: &TestServer, bank: &str, ask: &Ask<'_>, key_hash: u64) -> (bool, bool, Value) {
    let ct = encrypt(key_hash);
    let (s, accepted) = submit(t, bank, ask, &ct).await;
    assert_eq!(s, 202, "{accepted}");
    let job = wait(t, bank, accepted["job"]["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["stage"] == "done" && job["progress"] == 1.0);
    let id = accepted["query"]["id"].as_str().unwrap();
    let (s, q) = t.get(bank, &format!("/v1/fhe/queries/{id}")).await;
    assert_eq!(s, 200, "{q}");
    assert_eq!(q["status"], "done");
    let answer = Answer {
        value: STANDARD
            .decode(q["answer"]["value"].as_str().unwrap())
            .unwrap(),
        found: STANDARD
            .decode(q["answer"]["found"].as_str().unwrap())
            .unwrap(),
    };
    assert_eq!(q["input_hash"], hex::encode(ciphertext_hash(&ct)));
    assert_eq!(q["value_hash"], hex::encode(answer.value_hash()));
    assert_eq!(q["found_hash"], hex::encode(answer.found_hash()));

    // The ledger names the ciphertexts by hash and holds nothing else of the query.
    let seq = q["ledger_seq"].as_u64().unwrap();
    let (s, entry) = t.get(bank, &format!("/v1/ledger/entries/{seq}")).await;
    assert_eq!(s, 200, "{entry}");
    assert_eq!(entry["kind"], "fhe_query");
    let p = &payload(&entry);
    assert_eq!(p["event"], "query");
    assert_eq!(p["input_hash"], q["input_hash"]);
    assert_eq!(p["value_hash"], q["value_hash"]);
    assert_eq!(p["found_hash"], q["found_hash"]);
    assert_eq!(p["rows_scanned"], q["rows_scanned"]);
    let text = p.to_string();
    assert!(!text.contains(&key_hash.to_string()) && !text.contains(&format!("{key_hash:x}")));

    let (value, found) = material().secret.decrypt(&answer).unwrap();
    (value == 1, found, q)
}

#[tokio::test]
async fn fhe_private_lookups_over_http() {
    let m = material();
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (_, bank) = t.key_for("bank-of-shenzhen", "developer").await;
        let (_, rival) = t.key_for("rival-bank", "developer").await;
        let (_, buyer) = t.key_for("buyer-co", "buyer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;

        // The conditional electricity dataset, credit codes pseudonymised.
        let meta = serde_json::to_value(samples::electricity_dataset()).unwrap();
        let dataset = register(&t, &provider, &meta).await;
        let csv = samples::electricity_csv(ROWS, SEED);
        let (s, job) = upload(
            &t,
            &provider,
            &dataset,
            "?format=csv",
            csv.clone().into_bytes(),
        )
        .await;
        assert_eq!(s, 202, "{b}: {job}");
        let job = wait(&t, &provider, job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{b}: {job}");
        assert_eq!(job["result"]["report"]["suppressed"], 0, "{b}: {job}");
        let all = enterprises(&csv);

        // A grant for FHE on the two columns, three queries.
        let (s, g) = t
            .call(
                Some(&bank),
                Method::POST,
                "/v1/grants",
                Some(json!({
                    "dataset_id": dataset,
                    "purpose": "credit decisions with the enterprise's authorisation",
                    "columns": ["credit_code", "kwh_12m"],
                    "model_kinds": ["fhe"],
                    "term_days": 365,
                    "query_budget": 4
                })),
            )
            .await;
        assert_eq!(s, 201, "{b}: {g}");
        let grant = g["id"].as_str().unwrap().to_string();
        let (s, g) = t
            .call(
                Some(&provider),
                Method::POST,
                &format!("/v1/grants/{grant}/decision"),
                Some(json!({"approve": true})),
            )
            .await;
        assert_eq!(s, 200, "{b}: {g}");

        // Templates: developers propose, only the dataset's provider decides.
        let proposal = json!({
            "dataset_id": dataset,
            "name": "top quartile of electricity use",
            "purpose": "working-capital loans",
            "spec": {
                "key_column": "credit_code",
                "value": {"rule": "quantile", "column": "kwh_12m", "buckets": 4, "at_least": 3},
                "output": {"kind": "bool"},
                "key_width": "u16",
                "bucket_bits": 2
            }
        });
        for who in [&buyer, &provider] {
            let (s, _) = t
                .call(
                    Some(who),
                    Method::POST,
                    "/v1/fhe/templates",
                    Some(proposal.clone()),
                )
                .await;
            assert_eq!(s, 403, "{b}");
        }
        let mut bad = proposal.clone();
        bad["spec"]["output"] = json!({"kind": "uint", "bits": 1});
        bad["spec"]["value"] = json!({"rule": "quantile", "column": "kwh_12m", "buckets": 4});
        let (s, e) = t
            .call(Some(&bank), Method::POST, "/v1/fhe/templates", Some(bad))
            .await;
        assert_eq!(s, 422, "{b}: {e}");
        let (s, tpl) = t
            .call(
                Some(&bank),
                Method::POST,
                "/v1/fhe/templates",
                Some(proposal),
            )
            .await;
        assert_eq!(s, 201, "{b}: {tpl}");
        assert_eq!(tpl["status"], "pending");
        let template = tpl["id"].as_str().unwrap().to_string();
        let tpath = format!("/v1/fhe/templates/{template}");
        assert_eq!(
            t.get(&rival, &tpath).await.0,
            404,
            "{b}: pending is private"
        );
        assert_eq!(t.get(&other_provider, &tpath).await.0, 404, "{b}");
        assert_eq!(t.get(&buyer, &tpath).await.0, 403, "{b}");
        let decision = format!("{tpath}/decision");
        let approve = Some(json!({"approve": true, "reason": "coarse, one bit"}));
        for (who, status) in [(&bank, 403), (&other_provider, 404)] {
            let (s, _) = t
                .call(Some(who), Method::POST, &decision, approve.clone())
                .await;
            assert_eq!(s, status, "{b}");
        }
        let (s, tpl) = t
            .call(Some(&provider), Method::POST, &decision, approve.clone())
            .await;
        assert_eq!(s, 200, "{b}: {tpl}");
        assert_eq!(tpl["status"], "approved");
        let (s, again) = t
            .call(Some(&provider), Method::POST, &decision, approve)
            .await;
        assert_eq!(s, 409, "{b}: {again}");
        let seq = tpl["decision_seq"].as_u64().unwrap();
        let (s, entry) = t.get(&bank, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["kind"], "fhe_query");
        let p = payload(&entry);
        assert_eq!(p["event"], "template_decision");
        assert_eq!(p["decision"], "approved");
        assert_eq!(p["template_hash"], tpl["template_hash"]);
        assert_eq!(p["template"]["key_width"], "u16");

        // The approved template shows every bucket's size; the rival now sees it too.
        let (s, tpl) = t.get(&rival, &tpath).await;
        assert_eq!(s, 200, "{b}: {tpl}");
        let sizes: Vec<u64> = tpl["table"]["bucket_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(sizes.len(), 4);
        assert_eq!(sizes.iter().sum::<u64>(), ROWS as u64);
        assert_eq!(tpl["table"]["keys"], ROWS);
        assert_eq!(tpl["table"]["salt"], dataset.as_str());

        // Server keys: developers only; refused when malformed, foreign, oversized or
        // secret; the good one is stored once.
        let (s, _) = raw(
            &t,
            &provider,
            Method::POST,
            "/v1/fhe/keys",
            m.pair.server.clone(),
        )
        .await;
        assert_eq!(s, 403, "{b}");
        let (s, e) = raw(
            &t,
            &bank,
            Method::POST,
            "/v1/fhe/keys",
            m.pair.client.clone(),
        )
        .await;
        assert_eq!(s, 422, "{b}: {e}");
        assert!(e["detail"].as_str().unwrap().contains("client key"), "{e}");
        let (s, e) = raw(
            &t,
            &bank,
            Method::POST,
            "/v1/fhe/keys",
            m.foreign_server_key.clone(),
        )
        .await;
        assert_eq!(s, 422, "{b}: {e}");
        assert!(e["detail"].as_str().unwrap().contains("parameter"), "{e}");
        let half = m.pair.server[..m.pair.server.len() / 2].to_vec();
        let (s, e) = raw(&t, &bank, Method::POST, "/v1/fhe/keys", half).await;
        assert_eq!(s, 422, "{b}: {e}");
        let (s, e) = raw(
            &t,
            &bank,
            Method::POST,
            "/v1/fhe/keys",
            vec![0u8; (96 << 20) + 1],
        )
        .await;
        assert_eq!(s, 413, "{b}: {e}");
        let (s, e) = raw(&t, &bank, Method::POST, "/v1/fhe/keys", Vec::new()).await;
        assert_eq!(s, 422, "{b}: {e}");
        let (s, key) = raw(
            &t,
            &bank,
            Method::POST,
            "/v1/fhe/keys",
            m.pair.server.clone(),
        )
        .await;
        assert_eq!(s, 201, "{b}: {key}");
        let server_key = key["id"].as_str().unwrap().to_string();
        let (s, same) = raw(
            &t,
            &bank,
            Method::POST,
            "/v1/fhe/keys",
            m.pair.server.clone(),
        )
        .await;
        assert_eq!((s, &same["id"]), (200, &key["id"]), "{b}");
        let (s, keys) = t.get(&bank, "/v1/fhe/keys").await;
        assert_eq!((s, keys.as_array().unwrap().len()), (200, 1), "{b}: {keys}");
        let kpath = format!("/v1/fhe/keys/{server_key}");
        assert_eq!(t.get(&rival, &kpath).await.0, 404, "{b}");
        assert_eq!(
            t.call(Some(&rival), Method::DELETE, &kpath, None).await.0,
            404,
            "{b}"
        );
        assert_eq!(t.get(&buyer, "/v1/fhe/keys").await.0, 403, "{b}");
        let incoming = t.dir.path().join("zones/fhe/incoming");
        assert_eq!(
            std::fs::read_dir(&incoming).map(|d| d.count()).unwrap_or(0),
            0,
            "{b}: refused uploads leave nothing behind"
        );

        // Keys: one present enterprise in the top quartile, one not, one absent.
        let h = |code: &str| KeyWidth::U16.truncate(lookup_hash(&dataset, code));
        let present_hashes: BTreeSet<u64> = all.iter().map(|(c, _)| h(c)).collect();
        assert_eq!(present_hashes.len(), ROWS, "{b}: test keys collide");
        let top = all.iter().find(|(_, k)| top_quartile(&all, *k)).unwrap();
        let low = all.iter().find(|(_, k)| !top_quartile(&all, *k)).unwrap();
        let absent = samples::credit_code(999_999);
        assert!(
            !present_hashes.contains(&h(&absent)),
            "{b}: absent key collides"
        );
        let ask = Ask {
            template: &template,
            grant: &grant,
            server_key: &server_key,
            bucket: None,
        };

        // Refused at admission, spending nothing.
        let (s, e) = t
            .call(
                Some(&bank),
                Method::POST,
                "/v1/fhe/queries",
                Some(json!({"template_id": template, "grant_id": grant, "server_key_id": server_key, "ciphertext": "%%% not base64"})),
            )
            .await;
        assert_eq!(s, 422, "{b}: {e}");
        let ct = encrypt(h(&top.0));
        for (bytes, what) in [
            (ct[..ct.len() - 5].to_vec(), "truncated"),
            (vec![7u8; 300], "garbage"),
            (m.pair.client.clone(), "client key"),
            (
                m.secret.encrypt_key(KeyWidth::U32, 12345).unwrap(),
                "another width",
            ),
        ] {
            let (s, e) = submit(&t, &bank, &ask, &bytes).await;
            assert!(s == 422 || s == 413, "{b}: {what}: {s} {e}");
        }
        let (s, _) = submit(&t, &rival, &ask, &ct).await;
        assert_eq!(s, 404, "{b}: another organisation's grant or key");
        let rival_own_key = Ask {
            grant: "gr_none",
            ..ask
        };
        let (s, _) = submit(&t, &rival, &rival_own_key, &ct).await;
        assert!(s == 404 || s == 403, "{b}: {s}");
        let (s, _) = submit(&t, &buyer, &ask, &ct).await;
        assert_eq!(s, 403, "{b}");
        let big_bucket = Ask {
            bucket: Some(4),
            ..ask
        };
        let (s, e) = submit(&t, &bank, &big_bucket, &ct).await;
        assert_eq!(s, 422, "{b}: {e}");
        let (s, g) = t.get(&bank, &format!("/v1/grants/{grant}")).await;
        assert_eq!((s, &g["queries_used"]), (200, &json!(0)), "{b}: {g}");

        // Three queries: the decrypted answers equal the clear ones.
        let (yes, found, q) = lookup(&t, &bank, &ask, h(&top.0)).await;
        assert!(found && yes, "{b}: {} is in the top quartile", top.0);
        assert_eq!(q["rows_scanned"], ROWS);
        let (_, found, _) = lookup(&t, &bank, &ask, h(&absent)).await;
        assert!(!found, "{b}: an absent key reads as absent");
        let bucket = KeyWidth::U16.bucket_of(h(&low.0), 2);
        let in_bucket = Ask {
            bucket: Some(bucket),
            ..ask
        };
        let (yes, found, q) = lookup(&t, &bank, &in_bucket, h(&low.0)).await;
        assert!(found && !yes, "{b}: {} is not in the top quartile", low.0);
        assert_eq!(q["rows_scanned"], sizes[bucket as usize], "{b}");
        assert_eq!(q["bucket"], bucket);

        // The fourth, through the CLI as a bank runs it (the key is found by its hash,
        // not uploaded again).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client.key"), &m.pair.client).unwrap();
        std::fs::write(dir.path().join("server.key"), &m.pair.server).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"))
            .args(["fhe", "query", "--template", &template, "--grant", &grant])
            .args(["--key", &top.0, "--keys"])
            .arg(dir.path())
            .env("PDX_URL", t.url(""))
            .env("PDX_API_KEY", &bank)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{b}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "true",
            "{b}: {stderr}"
        );
        assert!(!stderr.contains("uploading"), "{b}: {stderr}");

        // Budget used up: refused before any job exists.
        let (s, e) = submit(&t, &bank, &ask, &ct).await;
        assert_eq!(s, 403, "{b}: {e}");
        assert!(e["detail"].as_str().unwrap().contains("budget"), "{e}");
        let (_, g) = t.get(&bank, &format!("/v1/grants/{grant}")).await;
        assert_eq!(g["queries_used"], 4, "{b}");

        // Who sees queries.
        let qpath = format!("/v1/fhe/queries/{}", q["id"].as_str().unwrap());
        assert_eq!(t.get(&rival, &qpath).await.0, 404, "{b}");
        assert_eq!(t.get(&provider, &qpath).await.0, 403, "{b}");
        let (s, sup) = t.get(&supervisor, &qpath).await;
        assert_eq!(s, 200, "{b}: {sup}");
        assert!(
            sup.get("answer").is_none(),
            "{b}: supervisors see no ciphertexts"
        );
        let (s, list) = t.get(&bank, "/v1/fhe/queries").await;
        assert_eq!((s, list.as_array().unwrap().len()), (200, 4), "{b}");

        // No route of this area deserialises a client key, whatever the body.
        let secret = m.pair.client.clone();
        let secret_hash = hex::encode(pdx_algorithms::fhe::server_key_hash(&secret));
        for (method, path) in fhe_write_routes() {
            let path = path.replace(
                "{id}",
                if path.contains("keys") {
                    &server_key
                } else {
                    &template
                },
            );
            let (s, _) = raw(&t, &bank, method.clone(), &path, secret.clone()).await;
            assert!(
                (400..500).contains(&s),
                "{b}: {method} {path} took a client key: {s}"
            );
        }
        let (_, keys) = t.get(&bank, "/v1/fhe/keys").await;
        assert!(
            keys.as_array()
                .unwrap()
                .iter()
                .all(|k| k["key_hash"] != secret_hash.as_str())
        );

        // Retiring the template stops queries on it.
        let (s, tpl) = t
            .call(
                Some(&provider),
                Method::POST,
                &format!("{tpath}/retire"),
                Some(json!({"reason": "replaced by a finer template"})),
            )
            .await;
        assert_eq!((s, &tpl["status"]), (200, &json!("retired")), "{b}: {tpl}");
        let (s, e) = submit(&t, &bank, &ask, &ct).await;
        assert_eq!(s, 409, "{b}: a retired template takes no queries: {e}");
        assert_eq!(
            t.get(&rival, &tpath).await.0,
            404,
            "{b}: nor is it listed to others"
        );

        // Deleting the key.
        assert_eq!(
            t.call(Some(&bank), Method::DELETE, &kpath, None).await.0,
            204,
            "{b}"
        );
        assert_eq!(t.get(&bank, &kpath).await.0, 404, "{b}");
        t.stop().await;
    }
}

/// Every write route of the FHE area, from the OpenAPI document.
fn fhe_write_routes() -> Vec<(Method, String)> {
    let (_, doc) = pdx::http::api_routes().split_for_parts();
    let doc = serde_json::to_value(&doc).unwrap();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/fhe") {
            continue;
        }
        for method in ops.as_object().unwrap().keys() {
            if matches!(method.as_str(), "post" | "put" | "patch") {
                out.push((method.to_uppercase().parse().unwrap(), path.clone()));
            }
        }
    }
    assert!(out.len() >= 5, "{out:?}");
    out
}

/// No server-side source names the client-key types: the only code that can build one
/// is `pdx_algorithms::fhe::client`, and TFHE-rs is not a dependency of the server
/// crates, so a server endpoint has no way to deserialise a client key.
#[test]
fn fhe_no_server_code_can_read_a_client_key() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut scanned = 0;
    for dir in ["src/http", "sandbox/src", "products/src"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for forbidden in ["ClientSecret", "ClientKey", "fhe::client", "generate_keys"] {
                    assert!(
                        !text.contains(forbidden),
                        "{} mentions {forbidden}",
                        path.display()
                    );
                }
                scanned += 1;
            }
        }
    }
    for file in [
        "src/app.rs",
        "src/server.rs",
        "algorithms/src/fhe/server.rs",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            !text.contains("ClientKey") && !text.contains("ClientSecret"),
            "{file}"
        );
        scanned += 1;
    }
    assert!(scanned > 10);
    for manifest in ["Cargo.toml", "sandbox/Cargo.toml"] {
        let text = std::fs::read_to_string(root.join(manifest)).unwrap();
        let deps = text.split("[dependencies]").nth(1).unwrap_or("");
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with("tfhe")),
            "{manifest} depends on tfhe directly"
        );
    }
}

/// `pdx fhe keygen` writes a client key only its owner can read and a server key the
/// platform accepts, and does not overwrite a key pair without `--force`.
#[tokio::test]
async fn fhe_cli_keygen_writes_a_private_client_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let keygen = || {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"));
        c.args(["fhe", "keygen", "--out"]).arg(&out);
        c
    };
    let first = keygen().output().await.unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let client_key = std::fs::read(out.join("client.key")).unwrap();
    let server_key = std::fs::read(out.join("server.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    ClientSecret::from_bytes(&client_key).unwrap();
    pdx_algorithms::fhe::server::check_server_key(
        &server_key,
        pdx_algorithms::fhe::DEFAULT_SERVER_KEY_LIMIT,
    )
    .unwrap();
    let again = keygen().output().await.unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read(out.join("client.key")).unwrap(), client_key);
}
