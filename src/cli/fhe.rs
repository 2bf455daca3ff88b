//! `pdx fhe keygen` and `pdx fhe query`: the bank's side of a private lookup;
//! `pdx fhe consent-keygen` and `pdx fhe consent-sign`: the enterprise's side of its
//! authorisation (GD21 Art.41, see `pdx_algorithms::fhe::consent`).
//!
//! All run on the client's machine. `keygen` writes a TFHE client key (the secret,
//! mode 0600) and a compressed server key. `consent-keygen` writes an Ed25519 consent
//! key (mode 0600) and prints the public key the enterprise registers with
//! `PUT /v1/consent/keys`; `consent-sign` signs an authorisation for one bank, template
//! and period, and writes the file the bank passes to `query --consent`. `query`:
//!
//! 1. reads the approved template (key width, the dataset id that salts the key hash,
//!    the public-bucket sizes);
//! 2. hashes the enterprise's key locally (`pdx_algorithms::fhe::lookup_hash`) — the
//!    clear key never leaves this process;
//! 3. uploads the server key unless the organisation already has it (matched by hash);
//! 4. with `--reveal-bucket`, shows how many keys share the bucket (the platform learns
//!    the enterprise is one of them) before revealing it;
//! 5. with `--consent`, draws a fresh nonce, writes the opening (authorisation,
//!    signature, nonce) beside the consent file as `opening-<commitment>.json` before
//!    anything is sent, and sends only the commitment;
//! 6. encrypts the hashed key, submits the query, follows the job's progress, fetches
//!    the encrypted answer, checks it against the hashes the server recorded, and
//!    decrypts it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use ed25519_dalek::{Signer, SigningKey};
use pdx_algorithms::fhe::consent::{
    self, ConsentAuthorisation, ConsentOpening, SIGNATURE_LEN, SignedConsent,
};
use pdx_algorithms::fhe::{
    Answer, ClientSecret, KeyWidth, ciphertext_hash, client, lookup_hash, server_key_hash,
};
use pdx_ids::{DatasetId, FheKeyId, FheQueryId, FheTemplateId, GrantId, JobId, OrgId};
use serde_json::Value;

const CLIENT_FILE: &str = "client.key";
const SERVER_FILE: &str = "server.key";
const CONSENT_KEY_FILE: &str = "consent.key";

/// Private lookups with TFHE, client side.
#[derive(Debug, Subcommand)]
pub enum FheCommand {
    /// Generate a key pair: `client.key` (secret, 0600) and `server.key` (upload it).
    Keygen {
        /// Directory to write the keys to.
        #[arg(long, default_value = "pdx-fhe-keys")]
        out: PathBuf,
        /// Replace existing keys.
        #[arg(long)]
        force: bool,
    },
    /// Ask one encrypted question through an approved template.
    Query {
        /// Template id.
        #[arg(long)]
        template: FheTemplateId,
        /// The key to look up, e.g. the enterprise's unified social credit code.
        #[arg(long)]
        key: String,
        /// Grant covering the dataset (conditionally open data).
        #[arg(long)]
        grant: Option<GrantId>,
        /// Directory holding `client.key` and `server.key`.
        #[arg(long, default_value = "pdx-fhe-keys")]
        keys: PathBuf,
        /// Server base URL.
        #[arg(long, env = "PDX_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// PEM file of CA certificates to trust besides the public roots, for an HTTPS
        /// server whose certificate a private CA signed.
        #[arg(long, env = "PDX_CA_FILE", value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// API key (developer role).
        #[arg(long, env = "PDX_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Reveal the public bucket of the hashed key: only that bucket is scanned
        /// (faster), and the platform learns the enterprise is one of its keys.
        #[arg(long)]
        reveal_bucket: bool,
        /// The enterprise's signed authorisation (JSON with `authorisation` and
        /// `signature`, as `consent-sign` writes it); required on conditionally open
        /// data. Only a fresh commitment to it is sent; the opening a supervisor may
        /// ask for is kept beside it as `opening-<commitment>.json` (0600).
        #[arg(long)]
        consent: Option<PathBuf>,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// Generate an Ed25519 consent key (subject organisations): `consent.key` (secret,
    /// 0600); prints the public key to register with `PUT /v1/consent/keys`.
    ConsentKeygen {
        /// Directory to write the key to.
        #[arg(long, default_value = "pdx-consent-key")]
        out: PathBuf,
    },
    /// Sign an authorisation for one bank, template and period (subject
    /// organisations); writes the file the bank passes to `query --consent`.
    ConsentSign {
        /// The consent key written by `consent-keygen`.
        #[arg(long, default_value = "pdx-consent-key/consent.key")]
        key: PathBuf,
        /// Your organisation id (the subject).
        #[arg(long)]
        subject: OrgId,
        /// The bank's organisation id.
        #[arg(long)]
        bank: OrgId,
        /// The FHE template the bank may use.
        #[arg(long)]
        template: FheTemplateId,
        /// Days the authorisation covers, from now.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// What the lookup is for.
        #[arg(long)]
        purpose: String,
        /// File to write (it must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a subcommand.
pub async fn run(cmd: FheCommand) -> anyhow::Result<()> {
    match cmd {
        FheCommand::Keygen { out, force } => keygen(&out, force).await,
        FheCommand::Query {
            template,
            key,
            grant,
            keys,
            url,
            ca_file,
            api_key,
            reveal_bucket,
            consent,
            timeout_secs,
        } => {
            let client = Client {
                http: crate::tls::client_builder(ca_file.as_deref())?
                    .build()
                    .context("building the HTTP client")?,
                base: url.trim_end_matches('/').to_string(),
                api_key,
            };
            let ask = Ask {
                template: &template,
                key: &key,
                grant: grant.as_ref(),
                reveal_bucket,
                consent: consent.as_deref(),
                timeout: Duration::from_secs(timeout_secs),
            };
            query(&client, &keys, ask).await
        }
        FheCommand::ConsentKeygen { out } => consent_keygen(&out),
        FheCommand::ConsentSign {
            key,
            subject,
            bank,
            template,
            days,
            purpose,
            out,
        } => {
            let now = i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis(),
            )?;
            let authorisation = ConsentAuthorisation {
                subject_org: subject.into_string(),
                bank_org: bank.into_string(),
                template_id: template.into_string(),
                valid_from_ms: now,
                valid_until_ms: now + i64::from(days) * 86_400_000,
                purpose,
            };
            consent_sign(&key, authorisation, &out)
        }
    }
}

fn consent_keygen(out: &Path) -> anyhow::Result<()> {
    let path = out.join(CONSENT_KEY_FILE);
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    pdx_ledger::signing::write_secret_file(&path, hex::encode(key.to_bytes()).as_bytes())
        .with_context(|| format!("writing {} (it must not exist yet)", path.display()))?;
    eprintln!(
        "wrote {} (secret); register the public key with PUT /v1/consent/keys:",
        path.display()
    );
    println!("{}", hex::encode(key.verifying_key().to_bytes()));
    Ok(())
}

fn consent_sign(key: &Path, authorisation: ConsentAuthorisation, out: &Path) -> anyhow::Result<()> {
    authorisation.check_well_formed()?;
    let text =
        std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    let seed = consent::decode_hex::<32>("consent key", &text)?;
    let key = SigningKey::from_bytes(&seed);
    let signature = key.sign(&authorisation.signing_bytes()).to_bytes();
    let signed = SignedConsent {
        authorisation,
        signature: hex::encode(signature),
    };
    let json = serde_json::to_vec_pretty(&signed)?;
    pdx_ledger::signing::write_secret_file(out, &json)
        .with_context(|| format!("writing {} (it must not exist yet)", out.display()))?;
    eprintln!("wrote {}: give it to the bank", out.display());
    Ok(())
}

/// Draws a fresh nonce for a signed authorisation, keeps the opening beside the file
/// (before anything is sent, so a commitment is never left without its opening), and
/// returns the commitment to send, hex.
fn commit_consent(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let signed: SignedConsent = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a signed authorisation", path.display()))?;
    let signature = consent::decode_hex::<SIGNATURE_LEN>("signature", &signed.signature)?;
    let opening = ConsentOpening {
        authorisation: signed.authorisation,
        signature,
        nonce: rand::random(),
    };
    let commitment = hex::encode(opening.commitment());
    let kept = path.with_file_name(format!("opening-{commitment}.json"));
    pdx_ledger::signing::write_secret_file(&kept, &serde_json::to_vec_pretty(&opening.to_text())?)
        .with_context(|| format!("writing {}", kept.display()))?;
    eprintln!(
        "consent commitment {commitment}: keep {} to open it if a supervisor asks",
        kept.display()
    );
    Ok(commitment)
}

fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn keygen(out: &Path, force: bool) -> anyhow::Result<()> {
    let client_path = out.join(CLIENT_FILE);
    let server_path = out.join(SERVER_FILE);
    if !force && (client_path.exists() || server_path.exists()) {
        bail!(
            "{} already holds keys; pass --force to replace them",
            out.display()
        );
    }
    let bar = spinner("generating a TFHE key pair");
    let pair = tokio::task::spawn_blocking(client::generate_keys).await??;
    bar.finish_and_clear();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for p in [&client_path, &server_path] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    pdx_ledger::signing::write_secret_file(&client_path, &pair.client)
        .with_context(|| format!("writing {}", client_path.display()))?;
    std::fs::write(&server_path, &pair.server)
        .with_context(|| format!("writing {}", server_path.display()))?;
    eprintln!(
        "wrote {} (secret: never upload it) and {} ({} bytes, hash {})",
        client_path.display(),
        server_path.display(),
        pair.server.len(),
        hex::encode(server_key_hash(&pair.server))
    );
    Ok(())
}

struct Client {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

impl Client {
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let resp = req
            .bearer_auth(&self.api_key)
            .send()
            .await
            .context("calling the server")?;
        let status = resp.status().as_u16();
        let text = resp.text().await.context("reading the response")?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        ok(status, body, path)
    }
}

fn ok(status: u16, body: Value, what: &str) -> anyhow::Result<Value> {
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        let detail = body["detail"].as_str().unwrap_or("no detail").to_string();
        bail!("{what}: {status}: {detail}")
    }
}

struct Ask<'a> {
    template: &'a FheTemplateId,
    key: &'a str,
    grant: Option<&'a GrantId>,
    reveal_bucket: bool,
    consent: Option<&'a Path>,
    timeout: Duration,
}

/// The id at `field` of `value` (part of `what` in a server answer), of the kind expected.
fn id_of<T>(value: &Value, field: &str, what: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr<Err = pdx_ids::IdError>,
{
    value[field]
        .as_str()
        .with_context(|| format!("{what} has no {field}"))?
        .parse()
        .with_context(|| format!("the {field} of {what} is malformed"))
}

fn parse_width(s: &str) -> anyhow::Result<KeyWidth> {
    Ok(match s {
        "u16" => KeyWidth::U16,
        "u32" => KeyWidth::U32,
        "u64" => KeyWidth::U64,
        other => bail!("the template has an unknown key width {other}"),
    })
}

async fn query(client: &Client, keys: &Path, ask: Ask<'_>) -> anyhow::Result<()> {
    let secret_bytes = std::fs::read(keys.join(CLIENT_FILE))
        .with_context(|| format!("reading {}", keys.join(CLIENT_FILE).display()))?;
    let secret =
        tokio::task::spawn_blocking(move || ClientSecret::from_bytes(&secret_bytes)).await??;

    // 1. The template: width, salt, buckets.
    let t = client
        .get(&format!("/v1/fhe/templates/{}", ask.template))
        .await?;
    if t["status"] != "approved" {
        bail!("the template is {}, not approved", t["status"]);
    }
    let width = parse_width(t["spec"]["key_width"].as_str().unwrap_or("u32"))?;
    let bucket_bits = t["spec"]["bucket_bits"].as_u64().unwrap_or(0) as u8;
    let salt: DatasetId = id_of(&t, "dataset_id", "the template")?;
    let boolean = t["spec"]["output"]["kind"] == "bool";

    // 2. The hashed key, computed here.
    let hashed = width.truncate(lookup_hash(salt.as_str(), ask.key));

    // 3. The server key, uploaded once.
    let server_bytes = std::fs::read(keys.join(SERVER_FILE))
        .with_context(|| format!("reading {}", keys.join(SERVER_FILE).display()))?;
    let key_hash = hex::encode(server_key_hash(&server_bytes));
    let known = client.get("/v1/fhe/keys").await?;
    let existing = known
        .as_array()
        .and_then(|a| a.iter().find(|k| k["key_hash"] == key_hash.as_str()));
    let server_key_id: FheKeyId = match existing {
        Some(k) => id_of(k, "id", "a listed server key")?,
        None => {
            let bar = spinner(&format!(
                "uploading the server key ({} MB)",
                server_bytes.len() >> 20
            ));
            let (status, body) = client
                .send(
                    client
                        .http
                        .post(format!("{}/v1/fhe/keys", client.base))
                        .header("content-type", "application/octet-stream")
                        .body(server_bytes),
                )
                .await?;
            bar.finish_and_clear();
            let body = ok(status, body, "uploading the server key")?;
            id_of(&body, "id", "the uploaded server key")?
        }
    };

    // 4. The optional public bucket, with its size shown first.
    let bucket = if ask.reveal_bucket {
        if bucket_bits == 0 {
            bail!("this template allows no public bucket");
        }
        let b = width.bucket_of(hashed, bucket_bits);
        let sizes = &t["table"]["bucket_sizes"];
        let size = sizes[b as usize].as_u64().unwrap_or(0);
        let keys_total = t["table"]["keys"].as_u64().unwrap_or(0);
        eprintln!(
            "revealing bucket {b} of {}: only its {size} keys (of {keys_total}) are scanned, and the platform learns the enterprise is one of them or absent",
            1u64 << bucket_bits
        );
        Some(b)
    } else {
        None
    };

    // 5. The consent commitment, its opening kept first.
    let consent_commitment = ask.consent.map(commit_consent).transpose()?;

    // 6. Encrypt, submit, follow, decrypt.
    let ciphertext =
        tokio::task::spawn_blocking(move || secret.encrypt_key(width, hashed).map(|c| (c, secret)))
            .await??;
    let (ciphertext, secret) = ciphertext;
    let input_hash = hex::encode(ciphertext_hash(&ciphertext));
    let body = serde_json::json!({
        "template_id": ask.template,
        "grant_id": ask.grant,
        "server_key_id": server_key_id,
        "bucket": bucket,
        "ciphertext": STANDARD.encode(&ciphertext),
        "consent_commitment": consent_commitment,
    });
    let (status, accepted) = client
        .send(
            client
                .http
                .post(format!("{}/v1/fhe/queries", client.base))
                .json(&body),
        )
        .await?;
    let accepted = ok(status, accepted, "submitting the query")?;
    let query_id: FheQueryId = id_of(&accepted["query"], "id", "the submitted query")?;
    let job_id: JobId = id_of(&accepted["job"], "id", "the query's job")?;
    eprintln!(
        "query {query_id}: {} rows to scan",
        accepted["query"]["rows_scanned"]
    );
    follow(client, &job_id, ask.timeout).await?;

    let q = client.get(&format!("/v1/fhe/queries/{query_id}")).await?;
    let answer = Answer {
        value: STANDARD
            .decode(q["answer"]["value"].as_str().context("no answer value")?)
            .context("the answer value is not base64")?,
        found: STANDARD
            .decode(q["answer"]["found"].as_str().context("no answer flag")?)
            .context("the answer flag is not base64")?,
    };
    // The ledger names these ciphertexts by hash: check what we got is what it records.
    if q["input_hash"] != input_hash.as_str()
        || q["value_hash"] != hex::encode(answer.value_hash()).as_str()
        || q["found_hash"] != hex::encode(answer.found_hash()).as_str()
    {
        bail!("the answer does not match the hashes the server recorded");
    }
    let (value, found) = tokio::task::spawn_blocking(move || secret.decrypt(&answer)).await??;
    if !found {
        println!("absent: the key is not in the dataset (or has no value for this template)");
    } else if boolean {
        println!("{}", value == 1);
    } else {
        println!("{value}");
    }
    eprintln!(
        "ledger entry {} records the query (input {input_hash})",
        q["ledger_seq"]
    );
    Ok(())
}

/// Polls a job with a progress bar until it ends.
async fn follow(client: &Client, job_id: &JobId, timeout: Duration) -> anyhow::Result<()> {
    let bar = super::progress_bar(1000, "query");
    let started = std::time::Instant::now();
    loop {
        let job = client.get(&format!("/v1/jobs/{job_id}")).await?;
        let progress = job["progress"].as_f64().unwrap_or(0.0);
        bar.set_position((progress * 1000.0) as u64);
        bar.set_message(job["stage"].as_str().unwrap_or("").to_string());
        match job["status"].as_str() {
            Some("succeeded") => {
                bar.finish_and_clear();
                return Ok(());
            }
            Some("failed") => {
                bar.finish_and_clear();
                bail!(
                    "the query failed: {}",
                    job["error"]["detail"].as_str().unwrap_or("no detail")
                );
            }
            _ => {}
        }
        if started.elapsed() > timeout {
            bar.finish_and_clear();
            bail!(
                "gave up after {} s; job {job_id} is still running",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
