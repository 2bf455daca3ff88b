//! Private lookups over HTTP, on SQLite and PostgreSQL: a bank proposes a "top
//! quartile of electricity use" template, the provider approves it (ledger), the bank
//! uploads its server key and asks about enterprises it names only under encryption.
//! Decrypted answers equal the clear answers for present and absent keys, in full
//! scans, in a public bucket and through `pdx fhe query`; the grant's query budget caps
//! the queries; every
//! query's ledger entry holds ciphertext hashes and never the key. Wrong parameters,
//! oversized keys, malformed ciphertexts and client keys are refused with a 4xx, and
//! other roles and organisations get 403 / 404. On this conditionally open data every
//! query carries a commitment to the enterprise's signed authorisation (GD21 Art.41):
//! one without it is refused before any budget is spent, and a supervisor can have the
//! bank open any commitment, which pdx verifies (a forgery and a refusal are recorded).

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use pdx::samples;
use pdx_algorithms::fhe::consent::{ConsentAuthorisation, ConsentOpening, SignedConsent};
use pdx_algorithms::fhe::{
    Answer, ClientSecret, KeyPair, KeyWidth, ciphertext_hash, client, lookup_hash, testing,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{register, upload};
use crate::support::TestServer;

pub(crate) const ROWS: usize = 8;
pub(crate) const SEED: u64 = 88;

pub(crate) struct Material {
    pub(crate) pair: KeyPair,
    pub(crate) secret: ClientSecret,
    foreign_server_key: Vec<u8>,
}

/// One key pair for the whole test (generating one takes seconds on two cores).
pub(crate) fn material() -> &'static Material {
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
pub(crate) fn enterprises(csv: &str) -> Vec<(String, u64)> {
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
pub(crate) fn top_quartile(all: &[(String, u64)], kwh: u64) -> bool {
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

pub(crate) fn encrypt(key_hash: u64) -> Vec<u8> {
    material()
        .secret
        .encrypt_key(KeyWidth::U16, key_hash)
        .unwrap()
}

/// An enterprise's signed authorisation, as the bank keeps it.
#[derive(Clone)]
pub(crate) struct Consent {
    authorisation: ConsentAuthorisation,
    signature: [u8; 64],
}

impl Consent {
    fn sign(key: &SigningKey, authorisation: ConsentAuthorisation) -> Consent {
        let signature = key.sign(&authorisation.signing_bytes()).to_bytes();
        Consent {
            authorisation,
            signature,
        }
    }

    /// The authorisation for `bank_org` and `template`, valid from a minute ago for a day.
    pub(crate) fn for_query(
        key: &SigningKey,
        subject_org: &str,
        bank_org: &str,
        template: &str,
    ) -> Consent {
        let now = pdx_ledger::db::now_ms();
        Consent::sign(
            key,
            ConsentAuthorisation {
                subject_org: subject_org.into(),
                bank_org: bank_org.into(),
                template_id: template.into(),
                valid_from_ms: now - 60_000,
                valid_until_ms: now + 86_400_000,
                purpose: "working-capital loan application".into(),
            },
        )
    }

    /// A fresh opening (a new random nonce) for one query.
    pub(crate) fn fresh(&self) -> ConsentOpening {
        ConsentOpening {
            authorisation: self.authorisation.clone(),
            signature: self.signature,
            nonce: rand::random(),
        }
    }
}

async fn put_consent_key(t: &TestServer, key: &str, public_key: &str) -> (u16, Value) {
    t.call(
        Some(key),
        Method::PUT,
        "/v1/consent/keys",
        Some(json!({"public_key": public_key})),
    )
    .await
}

/// A subject organisation with a registered consent key: (org id, API key, signing key).
pub(crate) async fn subject(t: &TestServer, name: &str, seed: u8) -> (String, String, SigningKey) {
    let (org, key) = t.key_for(name, "subject").await;
    let signing = SigningKey::from_bytes(&[seed; 32]);
    let public = hex::encode(signing.verifying_key().to_bytes());
    let (s, k) = put_consent_key(t, &key, &public).await;
    assert_eq!(s, 201, "{k}");
    (org, key, signing)
}

struct Ask<'a> {
    template: &'a str,
    grant: &'a str,
    server_key: &'a str,
    bucket: Option<u64>,
    /// The authorisation each submission commits to afresh.
    consent: Option<&'a Consent>,
}

/// Submits with a fresh commitment to `ask.consent`, if any.
async fn submit(t: &TestServer, key: &str, ask: &Ask<'_>, ciphertext: &[u8]) -> (u16, Value) {
    let commitment = ask.consent.map(|c| hex::encode(c.fresh().commitment()));
    submit_with(t, key, ask, ciphertext, commitment.as_deref()).await
}

async fn submit_with(
    t: &TestServer,
    key: &str,
    ask: &Ask<'_>,
    ciphertext: &[u8],
    commitment: Option<&str>,
) -> (u16, Value) {
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
            "consent_commitment": commitment,
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
    assert_eq!(p["consent_commitment"], q["consent_commitment"]);
    // The commitment is random hex checked above; a short key could appear in it by chance.
    let mut rest = p.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove("consent_commitment");
    }
    let text = rest.to_string();
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
        let (bank_org, bank) = t.key_for("bank-of-shenzhen", "developer").await;
        let (_, rival) = t.key_for("rival-bank", "developer").await;
        let (_, buyer) = t.key_for("buyer-co", "buyer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (subject_org, _, subject_key) = subject(&t, "shenzhen-widgets", 21).await;

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
        let consent = Consent::for_query(&subject_key, &subject_org, &bank_org, &template);
        let ask = Ask {
            template: &template,
            grant: &grant,
            server_key: &server_key,
            bucket: None,
            consent: Some(&consent),
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
        let signed = SignedConsent {
            authorisation: consent.authorisation.clone(),
            signature: hex::encode(consent.signature),
        };
        let consent_file = dir.path().join("consent.json");
        std::fs::write(&consent_file, serde_json::to_vec(&signed).unwrap()).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"))
            .args(["fhe", "query", "--template", &template, "--grant", &grant])
            .args(["--key", &top.0, "--keys"])
            .arg(dir.path())
            .arg("--consent")
            .arg(&consent_file)
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
        // The CLI kept the opening of the commitment it sent, named by the commitment.
        let kept: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("opening-"))
            .collect();
        assert_eq!(kept.len(), 1, "{b}: {kept:?}");
        let (_, list) = t.get(&bank, "/v1/fhe/queries").await;
        let newest = list[0]["consent_commitment"].as_str().unwrap();
        assert_eq!(kept[0], format!("opening-{newest}.json"), "{b}");

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

/// The conditional electricity dataset, an FHE grant of `budget` queries for the bank,
/// an approved template and the bank's server key.
pub(crate) struct Fixture {
    pub(crate) grant: String,
    pub(crate) template: String,
    pub(crate) server_key: String,
}

pub(crate) async fn fhe_fixture(
    t: &TestServer,
    provider: &str,
    bank: &str,
    budget: u32,
) -> Fixture {
    let b = t.backend;
    let meta = serde_json::to_value(samples::electricity_dataset()).unwrap();
    let dataset = register(t, provider, &meta).await;
    let csv = samples::electricity_csv(ROWS, SEED);
    let (s, job) = upload(t, provider, &dataset, "?format=csv", csv.into_bytes()).await;
    assert_eq!(s, 202, "{b}: {job}");
    let job = wait(t, provider, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{b}: {job}");
    let (s, g) = t
        .call(
            Some(bank),
            Method::POST,
            "/v1/grants",
            Some(json!({
                "dataset_id": dataset,
                "purpose": "credit decisions with the enterprise's authorisation",
                "columns": ["credit_code", "kwh_12m"],
                "model_kinds": ["fhe"],
                "term_days": 365,
                "query_budget": budget
            })),
        )
        .await;
    assert_eq!(s, 201, "{b}: {g}");
    let grant = g["id"].as_str().unwrap().to_string();
    let (s, g) = t
        .call(
            Some(provider),
            Method::POST,
            &format!("/v1/grants/{grant}/decision"),
            Some(json!({"approve": true})),
        )
        .await;
    assert_eq!(s, 200, "{b}: {g}");
    let (s, tpl) = t
        .call(
            Some(bank),
            Method::POST,
            "/v1/fhe/templates",
            Some(json!({
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
            })),
        )
        .await;
    assert_eq!(s, 201, "{b}: {tpl}");
    let template = tpl["id"].as_str().unwrap().to_string();
    let (s, tpl) = t
        .call(
            Some(provider),
            Method::POST,
            &format!("/v1/fhe/templates/{template}/decision"),
            Some(json!({"approve": true})),
        )
        .await;
    assert_eq!(s, 200, "{b}: {tpl}");
    let (s, key) = raw(
        t,
        bank,
        Method::POST,
        "/v1/fhe/keys",
        material().pair.server.clone(),
    )
    .await;
    assert_eq!(s, 201, "{b}: {key}");
    Fixture {
        grant,
        template,
        server_key: key["id"].as_str().unwrap().to_string(),
    }
}

/// Submits a query committed to `opening`, waits for it, and returns the query.
async fn committed_lookup(
    t: &TestServer,
    bank: &str,
    ask: &Ask<'_>,
    opening: &ConsentOpening,
) -> Value {
    let commitment = hex::encode(opening.commitment());
    let (s, accepted) = submit_with(t, bank, ask, &encrypt(12345), Some(&commitment)).await;
    assert_eq!(s, 202, "{}: {accepted}", t.backend);
    let job = wait(t, bank, accepted["job"]["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{}: {job}", t.backend);
    let id = accepted["query"]["id"].as_str().unwrap();
    let (s, q) = t.get(bank, &format!("/v1/fhe/queries/{id}")).await;
    assert_eq!(s, 200, "{q}");
    assert_eq!(q["consent_commitment"], commitment.as_str());
    q
}

/// The body of `POST /v1/fhe/queries/{id}/consent/open`.
fn open_body(opening: &ConsentOpening) -> Value {
    serde_json::to_value(opening.to_text()).unwrap()
}

/// GD21 Art.41. A subject organisation registers a consent key; a bank's lookup on
/// conditional data without a commitment is refused before any budget is spent; with
/// one, the ledger entry carries the commitment and nothing of the authorisation. A
/// supervisor then asks the bank to open commitments: a genuine authorisation verifies,
/// a wrong opening and a forged authorisation (signed by another key) are recorded as
/// invalid with the check they failed, and a refusal is recorded as refused. Other
/// roles get 403 and other organisations 404 on every consent route.
#[tokio::test]
async fn fhe_consent_is_committed_on_conditional_lookups_and_opened_on_a_supervisors_request() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let (bank_org, bank) = t.key_for("bank-of-shenzhen", "developer").await;
        let (_, rival) = t.key_for("rival-bank", "developer").await;
        let (_, buyer) = t.key_for("buyer-co", "buyer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (subject_org, subject_api, subject_key) = subject(&t, "shenzhen-widgets", 31).await;
        let (_, other_subject) = t.key_for("other-widgets", "subject").await;
        let f = fhe_fixture(&t, &provider, &bank, 4).await;

        // Consent keys: the subject's own; the same key again is no change; another
        // organisation cannot claim it; malformed and weak keys are refused; only
        // subjects register, only subjects and supervisors read.
        let public = hex::encode(subject_key.verifying_key().to_bytes());
        let (s, keys) = t.get(&subject_api, "/v1/consent/keys").await;
        assert_eq!(s, 200, "{b}: {keys}");
        assert_eq!(keys.as_array().unwrap().len(), 1, "{b}: {keys}");
        assert_eq!(keys[0]["public_key"], public.as_str());
        assert!(keys[0]["superseded_ms"].is_null());
        let (s, same) = put_consent_key(&t, &subject_api, &public).await;
        assert_eq!((s, &same["id"]), (200, &keys[0]["id"]), "{b}: {same}");
        let (s, e) = put_consent_key(&t, &other_subject, &public).await;
        assert_eq!(s, 409, "{b}: {e}");
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for bad in ["abc".to_string(), hex::encode(identity), "zz".repeat(32)] {
            let (s, e) = put_consent_key(&t, &other_subject, &bad).await;
            assert_eq!(s, 422, "{b}: {bad}: {e}");
        }
        assert_eq!(put_consent_key(&t, &bank, &public).await.0, 403, "{b}");
        assert_eq!(t.get(&buyer, "/v1/consent/keys").await.0, 403, "{b}");
        let (s, all) = t
            .get(
                &supervisor,
                &format!("/v1/consent/keys?org_id={subject_org}"),
            )
            .await;
        assert_eq!(s, 200, "{b}: {all}");
        assert_eq!(all.as_array().unwrap().len(), 1, "{b}: {all}");
        let seq = keys[0]["ledger_seq"].as_u64().unwrap();
        let (s, entry) = t
            .get(&supervisor, &format!("/v1/ledger/entries/{seq}"))
            .await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(payload(&entry)["event"], "consent_key");
        assert_eq!(payload(&entry)["public_key"], public.as_str());

        // A lookup without consent ("lookup without consent"): refused at admission,
        // nothing spent, nothing queued; a malformed commitment is a 422.
        let ask = Ask {
            template: &f.template,
            grant: &f.grant,
            server_key: &f.server_key,
            bucket: None,
            consent: None,
        };
        let ct = encrypt(12345);
        let (s, e) = submit(&t, &bank, &ask, &ct).await;
        assert_eq!(s, 403, "{b}: {e}");
        assert!(
            e["detail"].as_str().unwrap().contains("consent_commitment"),
            "{b}: {e}"
        );
        let (s, e) = submit_with(&t, &bank, &ask, &ct, Some("abc")).await;
        assert_eq!(s, 422, "{b}: {e}");
        let (_, g) = t.get(&bank, &format!("/v1/grants/{}", f.grant)).await;
        assert_eq!(g["queries_used"], 0, "{b}: {g}");
        let (_, list) = t.get(&bank, "/v1/fhe/queries").await;
        assert_eq!(list, json!([]), "{b}");

        // Three committed lookups: a genuine authorisation, a forged one (signed by
        // another key, which pdx cannot tell at query time) and a genuine one the bank
        // will refuse to open.
        let consent = Consent::for_query(&subject_key, &subject_org, &bank_org, &f.template);
        let forger = SigningKey::from_bytes(&[99u8; 32]);
        let forged = Consent::for_query(&forger, &subject_org, &bank_org, &f.template);
        let genuine = consent.fresh();
        let q1 = committed_lookup(&t, &bank, &ask, &genuine).await;
        let forgery = forged.fresh();
        let q2 = committed_lookup(&t, &bank, &ask, &forgery).await;
        let refused = consent.fresh();
        let q3 = committed_lookup(&t, &bank, &ask, &refused).await;
        // A commitment is used once.
        let (s, e) = submit_with(
            &t,
            &bank,
            &ask,
            &ct,
            Some(&hex::encode(genuine.commitment())),
        )
        .await;
        assert_eq!(s, 409, "{b}: {e}");
        let (_, g) = t.get(&bank, &format!("/v1/grants/{}", f.grant)).await;
        assert_eq!(g["queries_used"], 3, "{b}: {g}");

        // The query's ledger entry carries the commitment and nothing of the
        // authorisation, its signature or its nonce.
        let seq = q1["ledger_seq"].as_u64().unwrap();
        let (s, entry) = t.get(&bank, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        let p = payload(&entry);
        assert_eq!(p["event"], "query");
        assert_eq!(
            p["consent_commitment"],
            hex::encode(genuine.commitment()).as_str()
        );
        let text = p.to_string();
        for secret in [
            subject_org.clone(),
            genuine.authorisation.purpose.clone(),
            hex::encode(genuine.signature),
            hex::encode(genuine.nonce),
        ] {
            assert!(!text.contains(&secret), "{b}: the entry holds {secret}");
        }

        // Who may touch the consent routes: the bank and supervisors read; only
        // supervisors ask; only the bank answers; everyone else 403, other banks 404.
        let path = |q: &Value, tail: &str| {
            format!(
                "/v1/fhe/queries/{}/consent{tail}",
                q["id"].as_str().unwrap()
            )
        };
        let reason = json!({"reason": "routine audit of private lookups"});
        let (s, view) = t.get(&bank, &path(&q1, "")).await;
        assert_eq!(s, 200, "{b}: {view}");
        assert!(
            view["status"].is_null() && view["requests"] == json!([]),
            "{b}: {view}"
        );
        for key in [&buyer, &provider, &subject_api] {
            assert_eq!(t.get(key, &path(&q1, "")).await.0, 403, "{b}");
            for tail in ["/request", "/open", "/refuse"] {
                let (s, _) = t
                    .call(
                        Some(key),
                        Method::POST,
                        &path(&q1, tail),
                        Some(reason.clone()),
                    )
                    .await;
                assert_eq!(s, 403, "{b}: {tail}");
            }
        }
        assert_eq!(t.get(&rival, &path(&q1, "")).await.0, 404, "{b}");
        let (s, _) = t
            .call(
                Some(&bank),
                Method::POST,
                &path(&q1, "/request"),
                Some(reason.clone()),
            )
            .await;
        assert_eq!(s, 403, "{b}: the bank cannot ask itself");
        let (s, e) = t
            .call(
                Some(&bank),
                Method::POST,
                &path(&q1, "/open"),
                Some(open_body(&genuine)),
            )
            .await;
        assert_eq!(
            s, 409,
            "{b}: nothing to answer before a supervisor asks: {e}"
        );
        let (s, e) = t
            .call(
                Some(&supervisor),
                Method::POST,
                &path(&q1, "/request"),
                Some(json!({"reason": "  "})),
            )
            .await;
        assert_eq!(s, 422, "{b}: {e}");

        // 1. The supervisor asks; the bank opens a genuine authorisation: verified.
        let (s, view) = t
            .call(
                Some(&supervisor),
                Method::POST,
                &path(&q1, "/request"),
                Some(reason.clone()),
            )
            .await;
        assert_eq!(s, 201, "{b}: {view}");
        assert_eq!(view["status"], "open", "{b}: {view}");
        assert!(view["requests"][0]["answer_deadline"].is_string());
        let (s, e) = t
            .call(
                Some(&supervisor),
                Method::POST,
                &path(&q1, "/request"),
                Some(reason.clone()),
            )
            .await;
        assert_eq!(s, 409, "{b}: one open request at a time: {e}");
        let seq = view["requests"][0]["request_seq"].as_u64().unwrap();
        let (s, entry) = t.get(&bank, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: the bank is a party: {entry}");
        assert_eq!(payload(&entry)["event"], "consent_request");
        for who in [&rival, &buyer] {
            let (s, _) = t
                .call(
                    Some(who),
                    Method::POST,
                    &path(&q1, "/open"),
                    Some(open_body(&genuine)),
                )
                .await;
            assert!(s == 404 || s == 403, "{b}: {s}");
        }
        let mut unreadable = open_body(&genuine);
        unreadable["nonce"] = json!("00");
        let (s, e) = t
            .call(
                Some(&bank),
                Method::POST,
                &path(&q1, "/open"),
                Some(unreadable),
            )
            .await;
        assert_eq!(s, 422, "{b}: {e}");
        let (s, view) = t
            .call(
                Some(&bank),
                Method::POST,
                &path(&q1, "/open"),
                Some(open_body(&genuine)),
            )
            .await;
        assert_eq!(s, 200, "{b}: {view}");
        assert_eq!(view["status"], "verified", "{b}: {view}");
        let answer = &view["requests"][0];
        assert!(answer["failed_check"].is_null(), "{b}: {view}");
        assert_eq!(answer["subject_org"], subject_org.as_str());
        assert_eq!(answer["subject_key"], public.as_str());
        assert_eq!(
            answer["opening"]["nonce"],
            hex::encode(genuine.nonce).as_str()
        );
        let seq = answer["answer_seq"].as_u64().unwrap();
        let (s, entry) = t
            .get(&supervisor, &format!("/v1/ledger/entries/{seq}"))
            .await;
        assert_eq!(s, 200, "{b}: {entry}");
        let p = payload(&entry);
        assert_eq!(p["event"], "consent_answer");
        assert_eq!(p["outcome"], "verified");
        assert_eq!(p["consent_commitment"], q1["consent_commitment"]);
        assert_eq!(
            p["opening"]["authorisation"]["subject_org"],
            subject_org.as_str()
        );
        // The subject named by a matching opening may read it; a bystander may not.
        assert_eq!(
            t.get(&subject_api, &format!("/v1/ledger/entries/{seq}"))
                .await
                .0,
            200,
            "{b}"
        );
        assert_eq!(
            t.get(&buyer, &format!("/v1/ledger/entries/{seq}")).await.0,
            404,
            "{b}"
        );
        let (s, e) = t
            .call(
                Some(&supervisor),
                Method::POST,
                &path(&q1, "/request"),
                Some(reason.clone()),
            )
            .await;
        assert_eq!(s, 409, "{b}: already verified: {e}");
        let (s, view) = t.get(&supervisor, &path(&q1, "")).await;
        assert_eq!(
            (s, &view["status"]),
            (200, &json!("verified")),
            "{b}: {view}"
        );

        // 2. The forged authorisation: an opening of another commitment is invalid
        // (`commitment`); asked again, the forgery itself is invalid (`signature`).
        // Both are recorded.
        let (s, _) = t
            .call(
                Some(&supervisor),
                Method::POST,
                &path(&q2, "/request"),
                Some(reason.clone()),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, view) = t
            .call(
                Some(&bank),
                Method::POST,
                &path(&q2, "/open"),
                Some(open_body(&genuine)),
            )
            .await;
        assert_eq!(s, 200, "{b}: {view}");
        assert_eq!(view["status"], "invalid", "{b}: {view}");
        assert_eq!(
            view["requests"][0]["failed_check"], "commitment",
            "{b}: {view}"
        );
        assert!(view["requests"][0]["subject_org"].is_null(), "{b}: {view}");
        let (s, _) = t
            .call(
                Some(&supervisor),
                Method::POST,
                &path(&q2, "/request"),
                Some(reason.clone()),
            )
            .await;
        assert_eq!(s, 201, "{b}: asked again after an invalid answer");
        let (s, view) = t
            .call(
                Some(&bank),
                Method::POST,
                &path(&q2, "/open"),
                Some(open_body(&forgery)),
            )
            .await;
        assert_eq!(s, 200, "{b}: {view}");
        assert_eq!(view["status"], "invalid", "{b}: {view}");
        let requests = view["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 2, "{b}: {view}");
        assert_eq!(requests[0]["failed_check"], "signature", "{b}: {view}");
        assert_eq!(requests[1]["failed_check"], "commitment", "{b}: {view}");
        let seq = requests[0]["answer_seq"].as_u64().unwrap();
        let (_, entry) = t
            .get(&supervisor, &format!("/v1/ledger/entries/{seq}"))
            .await;
        let p = payload(&entry);
        assert_eq!(
            (&p["outcome"], &p["failed_check"]),
            (&json!("invalid"), &json!("signature")),
            "{b}: {p}"
        );
        // The subject it claims to come from sees the forgery attempt.
        assert_eq!(
            t.get(&subject_api, &format!("/v1/ledger/entries/{seq}"))
                .await
                .0,
            200,
            "{b}"
        );

        // 3. A refusal, with a reason, is recorded; there is nothing left to answer.
        let (s, _) = t
            .call(
                Some(&supervisor),
                Method::POST,
                &path(&q3, "/request"),
                Some(reason.clone()),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, e) = t
            .call(
                Some(&bank),
                Method::POST,
                &path(&q3, "/refuse"),
                Some(json!({"reason": ""})),
            )
            .await;
        assert_eq!(s, 422, "{b}: {e}");
        let refusal = json!({"reason": "the customer file is under litigation hold"});
        let (s, view) = t
            .call(
                Some(&bank),
                Method::POST,
                &path(&q3, "/refuse"),
                Some(refusal.clone()),
            )
            .await;
        assert_eq!(s, 200, "{b}: {view}");
        assert_eq!(view["status"], "refused", "{b}: {view}");
        assert_eq!(view["requests"][0]["refusal"], refusal["reason"]);
        assert!(view["requests"][0]["opening"].is_null(), "{b}: {view}");
        let seq = view["requests"][0]["answer_seq"].as_u64().unwrap();
        let (_, entry) = t
            .get(&supervisor, &format!("/v1/ledger/entries/{seq}"))
            .await;
        assert_eq!(payload(&entry)["outcome"], "refused", "{b}: {entry}");
        let (s, _) = t
            .call(
                Some(&bank),
                Method::POST,
                &path(&q3, "/refuse"),
                Some(refusal),
            )
            .await;
        assert_eq!(s, 409, "{b}: already answered");
        let (s, view) = t.get(&bank, &path(&q3, "")).await;
        assert_eq!(
            (s, &view["status"]),
            (200, &json!("refused")),
            "{b}: {view}"
        );
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
