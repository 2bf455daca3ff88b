//! `pdx demo`: start an in-process server over a fresh data directory and drive the
//! lifecycle through the HTTP API as each role, then print a summary.
//!
//! Each later area adds its steps here; the summary's JSON shape is what scripts and the
//! notebooks rely on.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Role;
use crate::config::{Config, ConfigArgs};

/// One role's demo identity.
#[derive(Debug, Serialize)]
pub struct RoleSummary {
    /// Role.
    pub role: Role,
    /// Organisation name.
    pub org: String,
    /// Organisation id.
    pub org_id: String,
    /// Public key id.
    pub key_id: String,
    /// `GET /v1/whoami` answered with this role.
    pub whoami_ok: bool,
}

/// Ledger state at the end of the demo.
#[derive(Debug, Serialize)]
pub struct LedgerSummary {
    /// Entries.
    pub entries: u64,
    /// Checkpoints verified.
    pub checkpoints: u64,
    /// The independent verifier passed.
    pub verified: bool,
    /// Merkle root.
    pub root: String,
    /// The public key.
    pub public_key: String,
}

/// The demo's summary.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Data directory used.
    pub data_dir: String,
    /// Server URL used.
    pub server: String,
    /// One identity per role.
    pub roles: Vec<RoleSummary>,
    /// Requests that had to be refused, and were (method path as role → status).
    pub refusals: Vec<String>,
    /// The ledger.
    pub ledger: LedgerSummary,
    /// Wall time, seconds.
    pub seconds: f64,
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    async fn expect(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(key, method.clone(), path, body).await?;
        if status != want {
            bail!("{method} {path}: expected {want}, got {status}: {value}");
        }
        Ok(value)
    }
}

fn step(bar: &indicatif::ProgressBar, what: &str) {
    bar.set_message(what.to_string());
    bar.inc(1);
}

/// Runs the demo.
pub async fn run(args: &ConfigArgs, summary_json: Option<&Path>) -> anyhow::Result<()> {
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let mut args = args.clone();
    args.data_dir = Some(data_dir.clone());
    let config = Config::resolve(&args, Some("127.0.0.1:0"))?;
    let app = App::open(config).await?;
    let admin = match app.bootstrap().await? {
        Some(k) => k.key,
        None => std::fs::read_to_string(app.config.admin_key_path())
            .context("this data directory is bootstrapped but has no admin.key")?
            .trim()
            .to_string(),
    };
    let listener = tokio::net::TcpListener::bind(app.config.addr).await?;
    let server = crate::server::spawn(app.clone(), listener)?;
    let client = Client {
        http: reqwest::Client::new(),
        base: server.url(),
    };

    let bar = crate::cli::progress_bar(4, "demo");
    step(&bar, "organisations");
    let suffix = hex::encode(rand::random::<[u8; 3]>());
    let mut roles = Vec::new();
    let mut keys = Vec::new();
    for role in Role::ALL {
        let name = format!("demo-{role}-{suffix}");
        let org = client
            .expect(
                &admin,
                reqwest::Method::POST,
                "/v1/orgs",
                Some(json!({"name": name})),
                201,
            )
            .await?;
        let org_id = org["id"].as_str().unwrap_or_default().to_string();
        let key = client
            .expect(
                &admin,
                reqwest::Method::POST,
                "/v1/keys",
                Some(json!({"org": org_id, "role": role})),
                201,
            )
            .await?;
        keys.push((role, key["key"].as_str().unwrap_or_default().to_string()));
        roles.push(RoleSummary {
            role,
            org: name,
            org_id,
            key_id: key["key_id"].as_str().unwrap_or_default().to_string(),
            whoami_ok: false,
        });
    }

    step(&bar, "each role");
    for (summary, (_, key)) in roles.iter_mut().zip(&keys) {
        let me = client
            .expect(key, reqwest::Method::GET, "/v1/whoami", None, 200)
            .await?;
        summary.whoami_ok =
            me["role"] == json!(summary.role) && me["org_id"] == json!(summary.org_id);
    }
    let mut refusals = Vec::new();
    for (role, key) in &keys {
        if *role == Role::Admin {
            continue;
        }
        let (status, _) = client
            .call(
                key,
                reqwest::Method::POST,
                "/v1/keys",
                Some(json!({"org": "x", "role": "admin"})),
            )
            .await?;
        if status != 403 {
            bail!("a {role} key could issue keys (status {status})");
        }
        refusals.push(format!("POST /v1/keys as {role} -> {status}"));
    }

    step(&bar, "ledger");
    let supervisor = keys
        .iter()
        .find(|(r, _)| *r == Role::Supervisor)
        .map(|(_, k)| k.clone())
        .unwrap_or_default();
    client
        .expect(
            &supervisor,
            reqwest::Method::POST,
            "/v1/ledger/checkpoint",
            None,
            201,
        )
        .await?;
    let (_, public_key) = client
        .call(
            &supervisor,
            reqwest::Method::GET,
            "/v1/ledger/public-key",
            None,
        )
        .await?;
    let public_key = public_key.as_str().unwrap_or_default().trim().to_string();
    let key = pdx_ledger::note::NoteVerifier::parse(&public_key).context("server public key")?;
    let verified = app.ledger.verify_with(&key, |_, _| {}).await?;

    step(&bar, "done");
    bar.finish_and_clear();
    let (verified_ok, entries, checkpoints, root) = match &verified {
        Ok(r) => (true, r.entries, r.checkpoints, r.root.to_hex()),
        Err(f) => {
            eprintln!("ledger verification failed: {f}");
            (false, app.ledger.size().await?, 0, String::new())
        }
    };
    let summary = Summary {
        data_dir: data_dir.display().to_string(),
        server: server.url(),
        roles,
        refusals,
        ledger: LedgerSummary {
            entries,
            checkpoints,
            verified: verified_ok,
            root,
            public_key,
        },
        seconds: started.elapsed().as_secs_f64(),
    };
    server.shutdown().await?;
    print_summary(&summary);
    if let Some(path) = summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !summary.ledger.verified || summary.roles.iter().any(|r| !r.whoami_ok) {
        bail!("the demo's checks failed; see the summary above");
    }
    Ok(())
}

fn print_summary(s: &Summary) {
    println!("pdx demo — {} ({:.1} s)", s.server, s.seconds);
    println!();
    println!(
        "{:<11} {:<28} {:<18} {:<6}",
        "role", "organisation", "key id", "whoami"
    );
    for r in &s.roles {
        println!(
            "{:<11} {:<28} {:<18} {:<6}",
            r.role.as_str(),
            r.org,
            r.key_id,
            if r.whoami_ok { "ok" } else { "FAILED" }
        );
    }
    println!();
    println!("refused as expected: {}", s.refusals.len());
    println!(
        "ledger: {} entries, {} checkpoints, verified: {}",
        s.ledger.entries,
        s.ledger.checkpoints,
        if s.ledger.verified { "yes" } else { "NO" }
    );
    println!("public key: {}", s.ledger.public_key);
}
