//! `pdx demo`: start an in-process server over a fresh data directory and drive the
//! lifecycle through the HTTP API as each role, then print a summary.
//!
//! Each later area adds its steps here; the summary's JSON shape is what scripts and the
//! notebooks rely on.
//!
//! At the end it prints the one command that opens the web portal on the demo's data
//! (`pdx --data-dir <dir> serve`): the data directory is kept (a fresh one under the
//! system's temporary directory unless `--data-dir` names one), and one key per role is
//! written to `<dir>/portal-keys.txt` (0600) for the portal's sign-in form.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pdx_ids::{
    DatasetId, FheKeyId, FheQueryId, FheTemplateId, GrantId, IdError, JobId, KeyId, ModelId,
    OrderId, OrgId, OutputId, ProductId, ReleaseId,
};
use pdx_products::{Clock, Period};
use pdx_sandbox::catalog::{Level, NewDataset, OpenAttribute, ShareType};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Role;
use crate::config::{Config, ConfigArgs};
use crate::samples;

/// One role's demo identity.
#[derive(Debug, Serialize)]
pub struct RoleSummary {
    /// Role.
    pub role: Role,
    /// Organisation name.
    pub org: String,
    /// Organisation id.
    pub org_id: OrgId,
    /// Public key id.
    pub key_id: KeyId,
    /// `GET /v1/whoami` answered with this role.
    pub whoami_ok: bool,
}

/// Steps on the progress bar.
const STEPS: u64 = 12;
/// Rows of the generated electricity table.
const ELECTRICITY_ROWS: usize = 1_500;
/// Rows of the generated Adult stand-in, when `../shared/data/adult` is absent.
const ADULT_STAND_IN_ROWS: usize = 1_000;
/// The region every demo organisation sits in (the credit codes are Shenzhen's).
const REGION: &str = "shenzhen";
/// The product's price, in fen.
const PRICE_MINOR: i64 = 98_000;

/// A certified dataset.
#[derive(Debug, Serialize)]
pub struct DatasetSummary {
    /// Title.
    pub name: String,
    /// Dataset id.
    pub id: DatasetId,
    /// Classification level.
    pub level: String,
    /// Where the rows came from.
    pub source: String,
    /// Rows uploaded.
    pub rows_in: u64,
    /// Rows in the certified version.
    pub rows: u64,
    /// Smallest equivalence class in the certified version.
    pub k_achieved: u64,
    /// Rows suppressed by de-identification.
    pub suppressed: u64,
    /// Certificate number.
    pub certificate: String,
    /// The certificate's content hash (BLAKE3 of the certified Parquet file).
    pub content_hash: String,
}

/// A model run and what became of its output.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// `sql` or `dp`.
    pub kind: String,
    /// Dataset title.
    pub dataset: String,
    /// The model text.
    pub body: String,
    /// Output id.
    pub output: OutputId,
    /// Rows in the output.
    pub rows: u64,
    /// Reviewer approvals it took.
    pub approvals: u64,
    /// Release id.
    pub release_id: ReleaseId,
}

/// The period's settlement.
#[derive(Debug, Serialize)]
pub struct SettlementSummary {
    /// `YYYY-MM`.
    pub period: String,
    /// (payee, amount in fen).
    pub remittances: Vec<(String, i64)>,
}

/// The books at the end of the demo.
#[derive(Debug, Serialize)]
pub struct ReconciliationSummary {
    /// Paid − refunded = remitted + unsettled, to the fen.
    pub exact: bool,
    /// Paid, in fen.
    pub paid_minor: i64,
    /// Remitted, in fen.
    pub remitted_minor: i64,
}

/// The catalog's governance: the data authority's decisions on the entries submitted
/// for publication (GD21 Art.10–11), the catalog revisions made, and the authority's
/// yearly evaluations of providers (GD21 Art.48–49).
#[derive(Debug, Default, Serialize)]
pub struct GovernanceSummary {
    /// Catalog entries the data authority approved (published).
    pub catalog_approvals: u64,
    /// Catalog entries it returned to their provider with a reason.
    pub catalog_returns: u64,
    /// Metadata edits (catalog revisions after registration).
    pub catalog_revisions: u64,
    /// Yearly evaluations the data authority published.
    pub evaluations: u64,
    /// Those evaluations, one row each.
    pub evaluation_scores: Vec<EvaluationRow>,
}

/// One published evaluation, as the demo shows it.
#[derive(Debug, Serialize)]
pub struct EvaluationRow {
    /// The evaluated provider.
    pub provider_org: OrgId,
    /// The year evaluated.
    pub year: i32,
    /// The score, 0–100 (none when no indicator applied).
    pub score: Option<u64>,
    /// Each indicator as `name numerator/denominator`, in the formula's order.
    pub indicators: Vec<String>,
}

/// Has the data authority publish the provider's evaluation for the current year (GD21
/// Art.48–49) and reads it back as another role would (it is public, SD22 Art.5).
async fn evaluate_provider(
    client: &Client,
    keys: &Keys,
    provider_org: &OrgId,
    governance: &mut GovernanceSummary,
) -> anyhow::Result<()> {
    let year = time::OffsetDateTime::now_utc().year();
    let evaluation = client
        .post(
            &keys.authority,
            "/v1/evaluations",
            json!({"provider_org": provider_org, "year": year}),
            201,
        )
        .await?;
    let listed = client
        .get(
            &keys.buyer,
            &format!("/v1/evaluations?provider={provider_org}&year={year}"),
        )
        .await?;
    if listed.as_array().map(Vec::len) != Some(1) {
        bail!("the published evaluation is not readable: {listed}");
    }
    let indicators = evaluation["indicators"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|i| {
                    format!(
                        "{} {}/{}",
                        i["name"].as_str().unwrap_or("?"),
                        i["numerator"],
                        i["denominator"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    governance.evaluations += 1;
    governance.evaluation_scores.push(EvaluationRow {
        provider_org: provider_org.clone(),
        year,
        score: evaluation["score"].as_u64(),
        indicators,
    });
    Ok(())
}

/// Private lookups.
#[derive(Debug, Serialize)]
pub struct FheSummary {
    /// Lookups answered.
    pub lookups: u64,
    /// Why there were none, if none.
    pub note: String,
}

/// The sold product's lineage, as a supervisor sees it, with every receipt checked
/// offline against the published key.
#[derive(Debug, Serialize)]
pub struct LineageSummary {
    /// The product traced.
    pub product: ProductId,
    /// Every hop is on the ledger and agrees with its row.
    pub complete: bool,
    /// What did not agree (empty when complete).
    pub problems: Vec<String>,
    /// Receipts on the path (listing, releases, grants, spends, models, certificates).
    pub receipts: u64,
    /// Receipts whose inclusion proof and signed checkpoint verified offline.
    pub receipts_verified: u64,
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
    /// The certified datasets.
    pub datasets: Vec<DatasetSummary>,
    /// Grants approved.
    pub grants: u64,
    /// The model runs.
    pub runs: Vec<RunSummary>,
    /// Outputs released.
    pub releases: u64,
    /// Products listed.
    pub products: u64,
    /// Orders paid and downloaded.
    pub orders: u64,
    /// The settled period.
    pub settlement: SettlementSummary,
    /// The reconciliation.
    pub reconciliation: ReconciliationSummary,
    /// Private lookups.
    pub fhe: FheSummary,
    /// The data authority's catalog decisions and the catalog revisions.
    pub governance: GovernanceSummary,
    /// The product's lineage and its receipts.
    pub lineage: LineageSummary,
    /// The ledger.
    pub ledger: LedgerSummary,
    /// How to open the web portal on the demo's data.
    pub portal: PortalSummary,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// How to open the web portal on the demo's data afterwards.
#[derive(Debug, Serialize)]
pub struct PortalSummary {
    /// The one command that serves the demo's data directory.
    pub command: String,
    /// Where to sign in once it runs.
    pub url: String,
    /// The file holding one API key per role (0600), to paste into the sign-in form.
    pub keys_file: String,
}

/// The file in the data directory that keeps the demo's keys for the portal.
const PORTAL_KEYS_FILE: &str = "portal-keys.txt";

struct Client {
    http: reqwest::Client,
    base: String,
}

/// Reads a response as JSON, or as a string when it is not JSON.
async fn read(resp: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value))
}

impl Client {
    async fn call(
        &self,
        key: &str,
        method: Method,
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
        read(resp).await
    }

    async fn expect(
        &self,
        key: &str,
        method: Method,
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

    async fn get(&self, key: &str, path: &str) -> anyhow::Result<Value> {
        self.expect(key, Method::GET, path, None, 200).await
    }

    async fn post(&self, key: &str, path: &str, body: Value, want: u16) -> anyhow::Result<Value> {
        self.expect(key, Method::POST, path, Some(body), want).await
    }

    /// Uploads a CSV as a new version and waits for de-identification and certification.
    async fn upload(
        &self,
        key: &str,
        dataset: &DatasetId,
        query: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let path = format!("/v1/datasets/{dataset}/versions{query}");
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let (status, job) = read(resp).await?;
        if status != 202 {
            bail!("POST {path}: expected 202, got {status}: {job}");
        }
        self.wait_job(key, &id_of(&job, "id")?).await
    }

    /// Polls a job until it succeeds (or fails, which is an error).
    async fn wait_job(&self, key: &str, job: &JobId) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let value = self.get(key, &format!("/v1/jobs/{job}")).await?;
            match value["status"].as_str() {
                Some("succeeded") => return Ok(value),
                Some("failed") => bail!("job {job} failed: {}", value["error"]),
                _ if Instant::now() > deadline => bail!("job {job} did not finish in 10 min"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Places an order with an idempotency key.
    async fn order(&self, key: &str, idempotency_key: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(format!("{}/v1/orders", self.base))
            .bearer_auth(key)
            .header("Idempotency-Key", idempotency_key)
            .json(&body)
            .send()
            .await
            .context("calling /v1/orders")?;
        let (status, order) = read(resp).await?;
        if status != 201 && status != 200 {
            bail!("POST /v1/orders: expected 201, got {status}: {order}");
        }
        Ok(order)
    }

    /// Downloads raw bytes.
    async fn bytes(&self, key: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = resp.status().as_u16();
        if status != 200 {
            bail!(
                "GET {path}: expected 200, got {status}: {}",
                resp.text().await?
            );
        }
        Ok(resp.bytes().await?.to_vec())
    }
}

/// A string field of a response, or an error naming it.
fn str_of<'a>(value: &'a Value, field: &str) -> anyhow::Result<&'a str> {
    value[field]
        .as_str()
        .with_context(|| format!("no {field:?} in {value}"))
}

/// An id field of a response, of the kind expected, or an error naming the field.
pub(crate) fn id_of<T: FromStr<Err = IdError>>(value: &Value, field: &str) -> anyhow::Result<T> {
    str_of(value, field)?
        .parse()
        .with_context(|| format!("{field:?} is not the expected kind of id"))
}

fn step(bar: &indicatif::ProgressBar, what: &str) {
    bar.set_message(what.to_string());
    bar.inc(1);
}

/// The keys the journey acts with.
struct Keys {
    /// Every key the demo issued, by role (the second reviewer's last), written to the
    /// data directory for signing in to the portal.
    all: Vec<(String, String)>,
    provider: String,
    developer: String,
    reviewer: String,
    reviewer2: String,
    exchange: String,
    buyer: String,
    subject: String,
    authority: String,
    supervisor: String,
}

/// What the journey produced, for the summary.
struct Journey {
    keys: Keys,
    roles: Vec<RoleSummary>,
    refusals: Vec<String>,
    datasets: Vec<DatasetSummary>,
    grants: u64,
    runs: Vec<RunSummary>,
    releases: u64,
    products: u64,
    product_id: ProductId,
    orders: u64,
    settlement: SettlementSummary,
    reconciliation: ReconciliationSummary,
    fhe: FheSummary,
    governance: GovernanceSummary,
}

/// Creates an organisation and a key for it; returns (org id, key id, key).
async fn org_key(
    client: &Client,
    admin: &str,
    name: &str,
    role: Role,
) -> anyhow::Result<(OrgId, KeyId, String)> {
    let org = client
        .post(
            admin,
            "/v1/orgs",
            json!({"name": name, "region": REGION}),
            201,
        )
        .await?;
    let org_id: OrgId = id_of(&org, "id")?;
    let key = client
        .post(admin, "/v1/keys", json!({"org": org_id, "role": role}), 201)
        .await?;
    Ok((
        org_id,
        id_of(&key, "key_id")?,
        str_of(&key, "key")?.to_string(),
    ))
}

/// The PUMS sample (1,000 Californians) as an unconditionally open L1 dataset: age is
/// binned, sex and race are quasi-identifiers, income is the sensitive attribute.
fn pums_dataset() -> NewDataset {
    use pdx_algorithms::deid::schema::{
        ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule, Domain, Hierarchy,
        PrivacyModel,
    };
    let codes = |lo: i64, hi: i64| -> Vec<String> { (lo..=hi).map(|v| v.to_string()).collect() };
    let flat = |values: &[String]| Hierarchy {
        rows: values.iter().map(|v| vec![v.clone(), "*".into()]).collect(),
    };
    let spec = |name: &str, column_type, role, rule, domain| ColumnSpec {
        name: name.into(),
        column_type,
        role,
        rule,
        domain: Some(domain),
        nullable: false,
    };
    let hierarchy = |name: &str| DeidRule::Hierarchy { name: name.into() };
    let mut hierarchies = std::collections::BTreeMap::new();
    hierarchies.insert("sex".to_string(), flat(&codes(0, 1)));
    hierarchies.insert("race".to_string(), flat(&codes(1, 6)));
    NewDataset {
        title: "PUMS California sample".into(),
        description: "US Census PUMS: age, sex, education, race, income, marital status".into(),
        theme: "census".into(),
        source_department: "Census Bureau".into(),
        collecting_department: "Census Bureau".into(),
        approving_department: "Data Management Bureau".into(),
        providing_department: "Census Bureau".into(),
        data_form: "table".into(),
        update_frequency: "yearly".into(),
        level: Level::L1,
        share_type: ShareType::Unconditional,
        share_conditions: String::new(),
        legal_basis: "Statistics Law Art.9".into(),
        open_attribute: OpenAttribute::Unconditional,
        research_only: false,
        schema: DatasetSchema {
            columns: vec![
                spec(
                    "age",
                    ColumnType::Integer,
                    ColumnRole::QuasiIdentifier,
                    DeidRule::Bin {
                        width: 10.0,
                        levels: 3,
                    },
                    Domain::Range {
                        min: 0.0,
                        max: 100.0,
                    },
                ),
                spec(
                    "sex",
                    ColumnType::String,
                    ColumnRole::QuasiIdentifier,
                    hierarchy("sex"),
                    Domain::Categories {
                        values: codes(0, 1),
                    },
                ),
                spec(
                    "educ",
                    ColumnType::String,
                    ColumnRole::Other,
                    DeidRule::Keep,
                    Domain::Categories {
                        values: codes(1, 16),
                    },
                ),
                spec(
                    "race",
                    ColumnType::String,
                    ColumnRole::QuasiIdentifier,
                    hierarchy("race"),
                    Domain::Categories {
                        values: codes(1, 6),
                    },
                ),
                spec(
                    "income",
                    ColumnType::Integer,
                    ColumnRole::Sensitive,
                    DeidRule::Keep,
                    Domain::Range {
                        min: 0.0,
                        max: 500_000.0,
                    },
                ),
                spec(
                    "married",
                    ColumnType::String,
                    ColumnRole::Other,
                    DeidRule::Keep,
                    Domain::Categories {
                        values: codes(0, 1),
                    },
                ),
            ],
            hierarchies,
            privacy: PrivacyModel {
                k: 5,
                l: None,
                max_suppression: 0.02,
                metric: Default::default(),
            },
        },
        elements: Vec::new(),
    }
}

/// Where the Adult files come from: the shared folder, or a generated stand-in written
/// to `scratch` (hierarchies and rows) when that folder is absent.
pub(crate) fn adult_source(shared: &Path, scratch: &Path) -> anyhow::Result<(PathBuf, String)> {
    if shared.join("adult.csv").is_file() {
        return Ok((shared.to_path_buf(), shared.display().to_string()));
    }
    let dir = scratch.join("adult-stand-in");
    std::fs::create_dir_all(&dir)?;
    let columns: [(&str, Vec<String>); 9] = [
        ("sex", vec!["Male".into(), "Female".into()]),
        ("age", (17..=90).map(|a: u32| a.to_string()).collect()),
        (
            "race",
            ["White", "Black", "Asian-Pac-Islander", "Other"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "marital-status",
            ["Married-civ-spouse", "Never-married", "Divorced", "Widowed"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "education",
            [
                "HS-grad",
                "Some-college",
                "Bachelors",
                "Masters",
                "Doctorate",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "native-country",
            ["United-States", "Mexico", "Philippines", "Germany"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "workclass",
            ["Private", "Self-emp-not-inc", "Local-gov", "State-gov"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "occupation",
            ["Adm-clerical", "Exec-managerial", "Sales", "Craft-repair"]
                .map(String::from)
                .to_vec(),
        ),
        ("salary-class", vec!["<=50K".into(), ">50K".into()]),
    ];
    for (name, values) in &columns {
        let lines: Vec<String> = values
            .iter()
            .map(|v| match (*name, v.parse::<u32>()) {
                ("age", Ok(a)) => {
                    let lo = a / 10 * 10;
                    format!("{v};{lo}-{};*", lo + 9)
                }
                _ => format!("{v};*"),
            })
            .collect();
        std::fs::write(
            dir.join(format!("adult_hierarchy_{name}.csv")),
            lines.join("\n") + "\n",
        )?;
    }
    let mut csv = columns
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(";")
        + "\n";
    let mut x: u64 = 0x5DEE_CE66_D1CE_4E5B;
    for _ in 0..ADULT_STAND_IN_ROWS {
        let row: Vec<&str> = columns
            .iter()
            .map(|(_, values)| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                values[((x >> 33) % values.len() as u64) as usize].as_str()
            })
            .collect();
        csv.push_str(&row.join(";"));
        csv.push('\n');
    }
    std::fs::write(dir.join("adult.csv"), csv)?;
    Ok((dir, "generated stand-in".into()))
}

/// The PUMS file writes a few incomes in scientific notation (`1e+05`): rewrite every
/// numeric cell as the integer it is, leaving anything else untouched.
fn integer_codes(csv: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(csv);
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            let cells: Vec<String> = line
                .split(',')
                .map(|cell| match cell.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() && v.fract() == 0.0 => format!("{}", v as i64),
                    _ => cell.to_string(),
                })
                .collect();
            out.push_str(&cells.join(","));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// How a drafted entry gets published, and the tally it adds to.
struct Publication<'a> {
    /// The data authority first returns the entry; the provider revises and resubmits.
    return_first: bool,
    /// The governance counts of the summary.
    tally: &'a mut GovernanceSummary,
}

/// Has the provider submit a drafted catalog entry and the data authority approve it
/// (GD21 Art.10–11). With `return_first`, the authority first returns it with a reason,
/// and the provider edits its description (a catalog revision) and submits it again.
async fn publish(
    client: &Client,
    keys: &Keys,
    id: &DatasetId,
    meta: &NewDataset,
    publication: Publication<'_>,
) -> anyhow::Result<()> {
    let governance = publication.tally;
    let submit = format!("/v1/datasets/{id}/submit");
    let review = format!("/v1/datasets/{id}/review");
    client
        .expect(&keys.provider, Method::POST, &submit, None, 200)
        .await?;
    if publication.return_first {
        let returned = client
            .post(
                &keys.authority,
                &review,
                json!({"decision": "return", "reason": "say how often the table is refreshed and from which survey wave"}),
                200,
            )
            .await?;
        if returned["status"] != json!("returned") {
            bail!("the data authority's return did not take: {returned}");
        }
        governance.catalog_returns += 1;
        let mut edit = serde_json::to_value(meta)?;
        edit["description"] = json!(format!(
            "{} Refreshed yearly from the survey's latest wave.",
            meta.description
        ));
        edit["reason"] = json!("the data authority asked for the refresh cycle and source wave");
        client
            .expect(
                &keys.provider,
                Method::PUT,
                &format!("/v1/datasets/{id}"),
                Some(edit),
                200,
            )
            .await?;
        governance.catalog_revisions += 1;
        client
            .expect(&keys.provider, Method::POST, &submit, None, 200)
            .await?;
    }
    let approved = client
        .post(
            &keys.authority,
            &review,
            json!({"decision": "approve"}),
            200,
        )
        .await?;
    if approved["status"] != json!("published") {
        bail!("the data authority's approval did not publish the entry: {approved}");
    }
    governance.catalog_approvals += 1;
    Ok(())
}

/// Registers a dataset, has the data authority publish it, uploads its rows and returns
/// the certified version's summary.
async fn certify(
    client: &Client,
    keys: &Keys,
    meta: &NewDataset,
    source: &str,
    query: &str,
    csv: Vec<u8>,
    publication: Publication<'_>,
) -> anyhow::Result<DatasetSummary> {
    let rows_in = csv
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(1) as u64;
    let registered = client
        .post(
            &keys.provider,
            "/v1/datasets",
            serde_json::to_value(meta)?,
            201,
        )
        .await?;
    let id: DatasetId = id_of(&registered, "id")?;
    publish(client, keys, &id, meta, publication).await?;
    client.upload(&keys.provider, &id, query, csv).await?;
    let version = client
        .get(&keys.developer, &format!("/v1/datasets/{id}/versions/1"))
        .await?;
    let cert = client
        .get(
            &keys.developer,
            &format!("/v1/datasets/{id}/versions/1/certificate"),
        )
        .await?;
    Ok(DatasetSummary {
        name: meta.title.clone(),
        id,
        level: format!("{:?}", meta.level),
        source: source.to_string(),
        rows_in,
        rows: version["rows"].as_u64().unwrap_or(0),
        k_achieved: version["report"]["k_achieved"].as_u64().unwrap_or(0),
        suppressed: version["report"]["suppressed"].as_u64().unwrap_or(0),
        certificate: str_of(&version, "certificate_no")?.to_string(),
        content_hash: cert["certificate"]["content_hash"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// Applies for a grant as the developer and has the provider approve it; returns its id.
async fn grant(
    client: &Client,
    keys: &Keys,
    dataset: &DatasetId,
    columns: Value,
    kinds: Value,
    epsilon: f64,
) -> anyhow::Result<GrantId> {
    let g = client
        .post(
            &keys.developer,
            "/v1/grants",
            json!({
                "dataset_id": dataset,
                "purpose": "demo: regional statistics product",
                "columns": columns,
                "model_kinds": kinds,
                "term_days": 365,
                "epsilon": epsilon,
                "delta": 0.0,
                "query_budget": 20
            }),
            201,
        )
        .await?;
    let id: GrantId = id_of(&g, "id")?;
    client
        .post(
            &keys.provider,
            &format!("/v1/grants/{id}/decision"),
            json!({"approve": true}),
            200,
        )
        .await?;
    Ok(id)
}

/// Registers a model, runs it under a grant and waits; returns the quarantined output id.
async fn run_model(
    client: &Client,
    keys: &Keys,
    kind: &str,
    body: &str,
    dataset: &DatasetId,
    grant: &GrantId,
    epsilon: Option<f64>,
) -> anyhow::Result<OutputId> {
    let model = client
        .post(
            &keys.developer,
            "/v1/models",
            json!({"name": format!("demo {kind} model"), "kind": kind, "body": body}),
            201,
        )
        .await?;
    let model: ModelId = id_of(&model, "id")?;
    let mut req = json!({
        "model_id": model,
        "inputs": [{"dataset_id": dataset, "grant_id": grant}]
    });
    if let Some(e) = epsilon {
        req["epsilon"] = json!(e);
    }
    let job = client.post(&keys.developer, "/v1/runs", req, 202).await?;
    let job = client
        .wait_job(&keys.developer, &id_of(&job, "id")?)
        .await?;
    id_of(&job["result"], "output_id").context("the run produced no output")
}

/// Reviews an output with as many reviewers as it needs; returns (approvals, release).
async fn release(client: &Client, keys: &Keys, output: &OutputId) -> anyhow::Result<(u64, Value)> {
    let mut approvals = 0;
    for reviewer in [&keys.reviewer, &keys.reviewer2] {
        let reviewed = client
            .post(
                reviewer,
                &format!("/v1/review/{output}"),
                json!({"approve": true, "reason": "aggregates only; every cell passed the checks"}),
                200,
            )
            .await?;
        approvals += 1;
        if reviewed["status"] == "released" {
            return Ok((approvals, reviewed));
        }
    }
    bail!("output {output} was not released after {approvals} approvals")
}

/// Public-bucket bits the demo's FHE template reveals (1,500 keys → ~12 per bucket).
const FHE_BUCKET_BITS: u8 = 7;

/// The organisation id of the journey's organisation with `role`.
fn org_id_of(roles: &[RoleSummary], role: Role) -> anyhow::Result<OrgId> {
    roles
        .iter()
        .find(|r| r.role == role)
        .map(|r| r.org_id.clone())
        .with_context(|| format!("no {role} organisation"))
}

/// Step 9: a bank (a developer) asks whether one enterprise is in the top quartile of
/// electricity use, naming it only under encryption and carrying a commitment to the
/// enterprise's signed authorisation; a supervisor then has the bank open it, and pdx
/// verifies it (GD21 Art.41). Returns a line for the summary.
async fn fhe_lookup(
    client: &Client,
    keys: &Keys,
    roles: &[RoleSummary],
    dataset: &DatasetId,
    csv: &str,
) -> anyhow::Result<String> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::{Signer, SigningKey};
    use pdx_algorithms::fhe::consent::{ConsentAuthorisation, ConsentOpening};
    use pdx_algorithms::fhe::{Answer, ClientSecret, KeyWidth, client as fhe_client, lookup_hash};

    let all: Vec<(String, u64)> = csv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.to_string(), f.get(3)?.parse().ok()?))
        })
        .collect();
    let Some((code, kwh)) = all.first().cloned() else {
        bail!("no enterprise to look up");
    };
    let below = all.iter().filter(|(_, k)| *k < kwh).count();
    let clear = (4 * below) / all.len() >= 3;

    let g = client
        .post(
            &keys.developer,
            "/v1/grants",
            json!({
                "dataset_id": dataset,
                "purpose": "credit decisions with the enterprise's authorisation",
                "columns": ["credit_code", "kwh_12m"],
                "model_kinds": ["fhe"],
                "term_days": 365,
                "query_budget": 2
            }),
            201,
        )
        .await?;
    let grant: GrantId = id_of(&g, "id")?;
    client
        .post(
            &keys.provider,
            &format!("/v1/grants/{grant}/decision"),
            json!({"approve": true}),
            200,
        )
        .await?;
    let tpl = client
        .post(
            &keys.developer,
            "/v1/fhe/templates",
            json!({
                "dataset_id": dataset,
                "name": "top quartile of electricity use",
                "purpose": "working-capital loans",
                "spec": {
                    "key_column": "credit_code",
                    "value": {"rule": "quantile", "column": "kwh_12m", "buckets": 4, "at_least": 3},
                    "output": {"kind": "bool"},
                    "key_width": "u32",
                    "bucket_bits": FHE_BUCKET_BITS
                }
            }),
            201,
        )
        .await?;
    let template: FheTemplateId = id_of(&tpl, "id")?;
    client
        .post(
            &keys.provider,
            &format!("/v1/fhe/templates/{template}/decision"),
            json!({"approve": true, "reason": "one coarse bit per enterprise"}),
            200,
        )
        .await?;

    let pair = tokio::task::spawn_blocking(fhe_client::generate_keys)
        .await
        .context("generating FHE keys")??;
    let secret = ClientSecret::from_bytes(&pair.client)?;
    let resp = client
        .http
        .post(format!("{}/v1/fhe/keys", client.base))
        .bearer_auth(&keys.developer)
        .header("content-type", "application/octet-stream")
        .body(pair.server.clone())
        .send()
        .await
        .context("calling /v1/fhe/keys")?;
    let (status, key) = read(resp).await?;
    if status != 201 && status != 200 {
        bail!("POST /v1/fhe/keys: expected 201, got {status}: {key}");
    }
    let server_key: FheKeyId = id_of(&key, "id")?;

    // The enterprise registers its consent key and signs an authorisation for this
    // bank, template and period; the bank keeps it and commits to it with a fresh nonce.
    let consent_key = SigningKey::generate(&mut rand::rngs::OsRng);
    client
        .expect(
            &keys.subject,
            Method::PUT,
            "/v1/consent/keys",
            Some(json!({"public_key": hex::encode(consent_key.verifying_key().to_bytes())})),
            201,
        )
        .await?;
    let now = pdx_ledger::db::now_ms();
    let authorisation = ConsentAuthorisation {
        subject_org: org_id_of(roles, Role::Subject)?.into_string(),
        bank_org: org_id_of(roles, Role::Developer)?.into_string(),
        template_id: template.to_string(),
        valid_from_ms: now - 60_000,
        valid_until_ms: now + 30 * 86_400_000,
        purpose: "working-capital loan application".into(),
    };
    let signature = consent_key.sign(&authorisation.signing_bytes()).to_bytes();
    let opening = ConsentOpening {
        authorisation,
        signature,
        nonce: rand::random(),
    };

    let hash = KeyWidth::U32.truncate(lookup_hash(dataset.as_str(), &code));
    let bucket = KeyWidth::U32.bucket_of(hash, FHE_BUCKET_BITS);
    let ciphertext = secret.encrypt_key(KeyWidth::U32, hash)?;
    let accepted = client
        .post(
            &keys.developer,
            "/v1/fhe/queries",
            json!({
                "template_id": template,
                "grant_id": grant,
                "server_key_id": server_key,
                "bucket": bucket,
                "ciphertext": STANDARD.encode(&ciphertext),
                "consent_commitment": hex::encode(opening.commitment()),
            }),
            202,
        )
        .await?;
    let job: JobId = id_of(&accepted["job"], "id").context("no job in the accepted query")?;
    client.wait_job(&keys.developer, &job).await?;
    let query_id: FheQueryId =
        id_of(&accepted["query"], "id").context("no query in the accepted query")?;
    let q = client
        .get(&keys.developer, &format!("/v1/fhe/queries/{query_id}"))
        .await?;
    let decode = |field: &str| -> anyhow::Result<Vec<u8>> {
        let text = q["answer"][field]
            .as_str()
            .with_context(|| format!("no answer.{field} in the query"))?;
        Ok(STANDARD.decode(text)?)
    };
    let answer = Answer {
        value: decode("value")?,
        found: decode("found")?,
    };
    let (value, found) = secret.decrypt(&answer)?;
    if !found || (value == 1) != clear {
        bail!(
            "the decrypted answer (found {found}, top quartile {}) differs from the clear one ({clear})",
            value == 1
        );
    }

    // A supervisor has the bank open the commitment; pdx checks it against the query.
    let consent = format!("/v1/fhe/queries/{query_id}/consent");
    client
        .post(
            &keys.supervisor,
            &format!("{consent}/request"),
            json!({"reason": "routine audit of private lookups"}),
            201,
        )
        .await?;
    let opened = client
        .post(
            &keys.developer,
            &format!("{consent}/open"),
            serde_json::to_value(opening.to_text())?,
            200,
        )
        .await?;
    if opened["status"] != "verified" {
        bail!("the bank's consent opening did not verify: {opened}");
    }
    Ok(format!(
        "1 lookup over {} keys of bucket {bucket}: top quartile = {clear}, matches the clear answer; consent opened and verified",
        q["rows_scanned"]
    ))
}

/// The whole journey, step by step, as each role.
async fn journey(
    client: &Client,
    admin: &str,
    bar: &indicatif::ProgressBar,
    clock: &Clock,
) -> anyhow::Result<Journey> {
    step(bar, "1/10 organisations and keys for every role");
    let suffix = hex::encode(rand::random::<[u8; 3]>());
    let mut roles = Vec::new();
    let mut keys = Vec::new();
    for role in Role::ALL {
        let name = format!("demo-{role}-{suffix}");
        let (org_id, key_id, key) = org_key(client, admin, &name, role).await?;
        keys.push((role, key));
        roles.push(RoleSummary {
            role,
            org: name,
            org_id,
            key_id,
            whoami_ok: false,
        });
    }
    for (summary, (_, key)) in roles.iter_mut().zip(&keys) {
        let me = client.get(key, "/v1/whoami").await?;
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
                Method::POST,
                "/v1/keys",
                Some(json!({"org": "x", "role": "admin"})),
            )
            .await?;
        if status != 403 {
            bail!("a {role} key could issue keys (status {status})");
        }
        refusals.push(format!("POST /v1/keys as {role} -> {status}"));
    }
    let key_of = |want: Role| {
        keys.iter()
            .find(|(r, _)| *r == want)
            .map(|(_, k)| k.clone())
            .with_context(|| format!("no {want} key"))
    };
    // L3 outputs need two reviewers from different organisations.
    let (_, _, reviewer2) = org_key(
        client,
        admin,
        &format!("demo-reviewer-b-{suffix}"),
        Role::Reviewer,
    )
    .await?;
    let mut all: Vec<(String, String)> = keys
        .iter()
        .map(|(role, key)| (role.as_str().to_string(), key.clone()))
        .collect();
    all.push((
        "reviewer (second organisation)".to_string(),
        reviewer2.clone(),
    ));
    let keys = Keys {
        all,
        provider: key_of(Role::Provider)?,
        developer: key_of(Role::Developer)?,
        reviewer: key_of(Role::Reviewer)?,
        reviewer2,
        exchange: key_of(Role::Exchange)?,
        buyer: key_of(Role::Buyer)?,
        subject: key_of(Role::Subject)?,
        authority: key_of(Role::Authority)?,
        supervisor: key_of(Role::Supervisor)?,
    };
    let mut governance = GovernanceSummary::default();

    step(
        bar,
        "2-3/10 registering, publishing, de-identifying and certifying Adult",
    );
    let scratch = tempfile::tempdir()?;
    let (adult_dir, adult_from) =
        adult_source(&samples::shared_data_dir().join("adult"), scratch.path())?;
    let adult_meta = samples::adult_dataset(&adult_dir, OpenAttribute::Conditional)?;
    let adult_csv = std::fs::read(adult_dir.join("adult.csv"))
        .with_context(|| format!("reading {}", adult_dir.join("adult.csv").display()))?;
    let adult = certify(
        client,
        &keys,
        &adult_meta,
        &adult_from,
        "?format=csv&delimiter=;",
        adult_csv,
        Publication {
            return_first: false,
            tally: &mut governance,
        },
    )
    .await?;

    step(
        bar,
        "2-3/10 registering, returning, revising, publishing and certifying PUMS",
    );
    let pums_path = samples::shared_data_dir().join("pums/PUMS.csv");
    let pums_csv = std::fs::read(&pums_path).with_context(|| {
        format!(
            "reading {} (the PUMS sample ships in ../shared/data)",
            pums_path.display()
        )
    })?;
    let pums = certify(
        client,
        &keys,
        &pums_dataset(),
        &pums_path.display().to_string(),
        "?format=csv",
        integer_codes(&pums_csv),
        Publication {
            return_first: true,
            tally: &mut governance,
        },
    )
    .await?;

    step(
        bar,
        "2-3/10 registering, publishing, de-identifying and certifying electricity",
    );
    let electricity_csv = samples::electricity_csv(ELECTRICITY_ROWS, 2026);
    let electricity = certify(
        client,
        &keys,
        &samples::electricity_dataset(),
        &format!("generated, {ELECTRICITY_ROWS} enterprises"),
        "?format=csv",
        electricity_csv.clone().into_bytes(),
        Publication {
            return_first: false,
            tally: &mut governance,
        },
    )
    .await?;

    step(bar, "4/10 grants");
    let electricity_grant = grant(
        client,
        &keys,
        &electricity.id,
        json!(["credit_code", "district", "industry", "kwh_12m"]),
        json!(["sql", "dp"]),
        1.0,
    )
    .await?;
    let adult_grant = grant(
        client,
        &keys,
        &adult.id,
        json!(["sex", "age", "education", "salary-class"]),
        json!(["sql"]),
        0.0,
    )
    .await?;

    step(bar, "5/10 one SQL model and one DP model");
    let plans = [
        (
            "sql",
            "SELECT district, COUNT(*) AS enterprises, AVG(kwh_12m) AS mean_kwh FROM data GROUP BY district",
            &electricity,
            &electricity_grant,
            None,
        ),
        (
            "dp",
            "SELECT industry, COUNT(*) AS enterprises FROM data GROUP BY industry",
            &electricity,
            &electricity_grant,
            Some(0.5),
        ),
        (
            "sql",
            "SELECT sex, COUNT(*) AS people FROM data GROUP BY sex",
            &adult,
            &adult_grant,
            None,
        ),
    ];
    let mut outputs = Vec::new();
    for (kind, body, dataset, grant, epsilon) in plans {
        let output = run_model(client, &keys, kind, body, &dataset.id, grant, epsilon).await?;
        outputs.push((kind, body, dataset.name.clone(), output));
    }

    step(bar, "6/10 output review and release");
    let mut runs = Vec::new();
    for (kind, body, dataset, output) in outputs {
        let (approvals, released) = release(client, &keys, &output).await?;
        let rows = client
            .get(
                &keys.developer,
                &format!("/v1/outputs/{output}/download?format=json"),
            )
            .await?;
        runs.push(RunSummary {
            kind: kind.to_string(),
            dataset,
            body: body.to_string(),
            output,
            rows: rows.as_array().map(|r| r.len() as u64).unwrap_or(0),
            approvals,
            release_id: id_of(&released, "release_id")?,
        });
    }

    step(bar, "7/10 product: create, list, order, pay, download");
    let electricity_releases: Vec<&ReleaseId> = runs
        .iter()
        .filter(|r| r.dataset == electricity.name)
        .map(|r| &r.release_id)
        .collect();
    let product = client
        .post(
            &keys.developer,
            "/v1/products",
            json!({
                "title": "Enterprise electricity by district and industry",
                "description": "Mean consumption per district and a DP count per industry",
                "licence": {"kind": "commercial_internal", "term_days": 365},
                "price_minor": PRICE_MINOR,
                "split": {"public_finance_bp": 3_000, "platform_bp": 1_000, "developer_bp": 6_000},
                "releases": electricity_releases
            }),
            201,
        )
        .await?;
    let pid: ProductId = id_of(&product, "id")?;
    client
        .expect(
            &keys.exchange,
            Method::POST,
            &format!("/v1/products/{pid}/list"),
            None,
            200,
        )
        .await?;
    let on_sale = client.get(&keys.buyer, "/v1/products").await?;
    let products = on_sale.as_array().map(|p| p.len() as u64).unwrap_or(0);
    let order = client
        .order(
            &keys.buyer,
            &format!("demo-order-{suffix}"),
            json!({"product_id": pid}),
        )
        .await?;
    let oid: OrderId = id_of(&order, "id")?;
    client
        .post(
            &keys.buyer,
            &format!("/v1/orders/{oid}/pay"),
            json!({"payment_ref": format!("demo-bank-{suffix}")}),
            200,
        )
        .await?;
    let tar = client
        .bytes(&keys.buyer, &format!("/v1/orders/{oid}/download"))
        .await?;
    if tar.is_empty() {
        bail!("the order's download was empty");
    }
    let mine = client.get(&keys.buyer, "/v1/orders").await?;
    let orders = mine.as_array().map(|o| o.len() as u64).unwrap_or(0);

    step(bar, "8/10 settlement and reconciliation");
    let period = Period::containing(clock.now_ms())?;
    clock.set_ms(period.to_ms + 60_000);
    let settled = client
        .expect(
            &keys.exchange,
            Method::POST,
            &format!("/v1/settlements/{}", period.label),
            None,
            201,
        )
        .await?;
    let remittances = settled["remittances"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    (
                        l["payee"].as_str().unwrap_or_default().to_string(),
                        l["amount_minor"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let recon = client
        .get(&keys.supervisor, "/v1/reconciliation?group_by=total")
        .await?;

    step(bar, "9/10 a private (FHE) lookup");
    let fhe = match fhe_lookup(client, &keys, &roles, &electricity.id, &electricity_csv).await {
        Ok(note) => FheSummary { lookups: 1, note },
        Err(e) => {
            eprintln!("warning: the FHE lookup did not run: {e:#}");
            FheSummary {
                lookups: 0,
                note: format!("not run: {e:#}"),
            }
        }
    };

    // The data authority's yearly evaluation of the provider (GD21 Art.48-49).
    let provider_org = roles
        .iter()
        .find(|r| r.role == Role::Provider)
        .map(|r| r.org_id.clone())
        .context("no provider organisation")?;
    evaluate_provider(client, &keys, &provider_org, &mut governance).await?;

    step(bar, "10/10 checkpoint and ledger verification");
    client
        .expect(
            &keys.supervisor,
            Method::POST,
            "/v1/ledger/checkpoint",
            None,
            201,
        )
        .await?;
    step(bar, "done");
    let releases = runs.len() as u64;
    Ok(Journey {
        keys,
        roles,
        refusals,
        datasets: vec![adult, pums, electricity],
        grants: 2 + fhe.lookups.min(1),
        runs,
        releases,
        products,
        product_id: pid,
        orders,
        settlement: SettlementSummary {
            period: period.label,
            remittances,
        },
        reconciliation: ReconciliationSummary {
            exact: recon["exact"] == json!(true),
            paid_minor: recon["total"]["paid_minor"].as_i64().unwrap_or(0),
            remitted_minor: recon["total"]["remitted_minor"].as_i64().unwrap_or(0),
        },
        fhe,
        governance,
    })
}

/// Runs the demo.
pub async fn run(args: &ConfigArgs, summary_json: Option<&Path>) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        // Kept after the demo (and named at its end), so that the portal can be opened
        // on its data.
        None => tempfile::Builder::new()
            .prefix("pdx-demo-")
            .tempdir()?
            .keep(),
    };
    // The command printed at the end names the directory absolutely, to work from
    // anywhere.
    let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
    let mut args = args.clone();
    args.data_dir = Some(data_dir.clone());
    let config = Config::resolve(&args, Some("127.0.0.1:0"))?;
    let mut app = App::open(config).await?;
    // The market reads a manual clock that starts now, so that the demo can close the
    // month and settle it without waiting for the calendar.
    let clock = Clock::manual(pdx_ledger::db::now_ms());
    app.products = app.products.clone().with_clock(clock.clone());
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

    let bar = crate::cli::progress_bar(STEPS, "demo");
    let outcome = journey(&client, &admin, &bar, &clock).await;
    bar.finish_and_clear();
    let journey = match outcome {
        Ok(j) => j,
        Err(e) => {
            let _ = server.shutdown().await;
            return Err(e.context("the demo stopped"));
        }
    };

    let (_, public_key) = client
        .call(
            &journey.keys.supervisor,
            Method::GET,
            "/v1/ledger/public-key",
            None,
        )
        .await?;
    let public_key = public_key.as_str().unwrap_or_default().trim().to_string();
    let key = pdx_ledger::note::NoteVerifier::parse(&public_key).context("server public key")?;
    let verified = app.ledger.verify_with(&key, |_, _| {}).await?;
    let (verified_ok, entries, checkpoints, root) = match &verified {
        Ok(r) => (true, r.entries, r.checkpoints, r.root.to_hex()),
        Err(f) => {
            eprintln!("ledger verification failed: {f}");
            (false, app.ledger.size().await?, 0, String::new())
        }
    };
    let lineage = check_lineage(&client, &journey.keys.supervisor, &journey.product_id, &key)
        .await
        .context("tracing the product's lineage")?;
    let portal = portal_summary(&args, &data_dir, &journey.keys)?;
    let summary = Summary {
        data_dir: data_dir.display().to_string(),
        server: server.url(),
        roles: journey.roles,
        refusals: journey.refusals,
        datasets: journey.datasets,
        grants: journey.grants,
        runs: journey.runs,
        releases: journey.releases,
        products: journey.products,
        orders: journey.orders,
        settlement: journey.settlement,
        reconciliation: journey.reconciliation,
        fhe: journey.fhe,
        governance: journey.governance,
        lineage,
        ledger: LedgerSummary {
            entries,
            checkpoints,
            verified: verified_ok,
            root,
            public_key,
        },
        portal,
        seconds: started.elapsed().as_secs_f64(),
    };
    server.shutdown().await?;
    print_summary(&summary);
    if let Some(path) = summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let k_ok = summary.datasets.iter().all(|d| d.k_achieved > 0);
    if !summary.ledger.verified
        || summary.roles.iter().any(|r| !r.whoami_ok)
        || !summary.reconciliation.exact
        || !summary.lineage.complete
        || summary.lineage.receipts == 0
        || summary.lineage.receipts_verified != summary.lineage.receipts
        || !k_ok
    {
        bail!("the demo's checks failed; see the summary above");
    }
    Ok(())
}

/// Every `receipt` object in a lineage document, wherever it sits.
fn collect_receipts<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (field, child) in map {
                if field == "receipt" {
                    out.push(child);
                } else {
                    collect_receipts(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_receipts(i, out)),
        _ => {}
    }
}

/// Fetches the product's lineage as the supervisor and checks each receipt the way an
/// outside auditor would: with nothing but the published key, not the server's word.
async fn check_lineage(
    client: &Client,
    supervisor: &str,
    product_id: &ProductId,
    key: &pdx_ledger::note::NoteVerifier,
) -> anyhow::Result<LineageSummary> {
    let lineage = client
        .get(
            supervisor,
            &format!("/v1/audit/lineage/product/{product_id}"),
        )
        .await?;
    let mut receipts = Vec::new();
    collect_receipts(&lineage, &mut receipts);
    let mut verified = 0u64;
    let mut problems: Vec<String> = lineage["problems"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for receipt in &receipts {
        let checked = pdx_ledger::Receipt::deserialize(*receipt)
            .map_err(anyhow::Error::from)
            .and_then(|r| r.verify(key).map_err(anyhow::Error::from));
        match checked {
            Ok(_) => verified += 1,
            Err(e) => problems.push(format!("receipt {}: {e}", receipt["entry"]["seq"])),
        }
    }
    Ok(LineageSummary {
        product: product_id.clone(),
        complete: lineage["complete"] == json!(true),
        problems,
        receipts: receipts.len() as u64,
        receipts_verified: verified,
    })
}

/// Writes the demo's keys to `<data-dir>/portal-keys.txt` (0600, like `admin.key`) and
/// says how to open the portal on the data: `pdx --data-dir <dir> serve`, then sign in
/// with one of those keys. The keys go to that private file only, never to the output.
fn portal_summary(
    args: &ConfigArgs,
    data_dir: &Path,
    keys: &Keys,
) -> anyhow::Result<PortalSummary> {
    let keys_file = data_dir.join(PORTAL_KEYS_FILE);
    let mut text = String::from(
        "# pdx demo: one API key per role, to paste into the portal's sign-in form.\n\
         # Keep this file private; the platform admin's key is in admin.key.\n",
    );
    for (role, key) in &keys.all {
        let _ = writeln!(text, "{role:<31} {key}");
    }
    // A file left by an earlier demo in the same directory holds keys of that run.
    let _ = std::fs::remove_file(&keys_file);
    pdx_ledger::signing::write_secret_file(&keys_file, text.trim_end().as_bytes())
        .with_context(|| format!("writing {}", keys_file.display()))?;
    let mut command = String::from("pdx");
    if let Some(config) = &args.config {
        let _ = write!(
            command,
            " --config {}",
            shell_word(&config.display().to_string())
        );
    }
    let _ = write!(
        command,
        " --data-dir {}",
        shell_word(&data_dir.display().to_string())
    );
    if args.database_url.is_some() {
        // Not printed: the URL may hold a password.
        command.push_str(" --database-url <the demo's database URL>");
    }
    command.push_str(" serve");
    // Where `pdx serve` listens with the same flags and file (`--addr` aside).
    let addr = Config::resolve(args, None)
        .map(|c| c.addr.to_string())
        .unwrap_or_else(|_| crate::config::DEFAULT_ADDR.to_string());
    Ok(PortalSummary {
        command,
        url: format!("http://{addr}/signin"),
        keys_file: keys_file.display().to_string(),
    })
}

/// A word for a POSIX shell: as it is when it is plainly safe, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,=".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
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
            r.key_id.as_str(),
            if r.whoami_ok { "ok" } else { "FAILED" }
        );
    }
    println!();
    println!("refused as expected: {}", s.refusals.len());
    println!();
    println!(
        "{:<36} {:<4} {:>7} {:>7} {:>4} {:<37} source",
        "dataset", "lvl", "rows in", "rows", "k", "certificate"
    );
    for d in &s.datasets {
        println!(
            "{:<36} {:<4} {:>7} {:>7} {:>4} {:<37} {}",
            d.name, d.level, d.rows_in, d.rows, d.k_achieved, d.certificate, d.source
        );
    }
    println!();
    println!(
        "{:<4} {:<36} {:>5} {:>9}  model",
        "kind", "dataset", "rows", "approvals"
    );
    for r in &s.runs {
        println!(
            "{:<4} {:<36} {:>5} {:>9}  {}",
            r.kind, r.dataset, r.rows, r.approvals, r.body
        );
    }
    println!();
    println!(
        "grants: {}, releases: {}, products listed: {}, orders paid and downloaded: {}",
        s.grants, s.releases, s.products, s.orders
    );
    println!("settlement {}:", s.settlement.period);
    for (payee, amount) in &s.settlement.remittances {
        println!(
            "  {:<40} {:>10}.{:02} CNY",
            payee,
            amount / 100,
            amount % 100
        );
    }
    println!(
        "reconciliation: paid {} fen, remitted {} fen, exact: {}",
        s.reconciliation.paid_minor,
        s.reconciliation.remitted_minor,
        if s.reconciliation.exact { "yes" } else { "NO" }
    );
    println!("fhe lookups: {} ({})", s.fhe.lookups, s.fhe.note);
    println!(
        "catalog: {} entries approved by the data authority, {} returned and revised ({} revisions)",
        s.governance.catalog_approvals,
        s.governance.catalog_returns,
        s.governance.catalog_revisions
    );
    for e in &s.governance.evaluation_scores {
        println!(
            "evaluation of {} for {}: score {} ({})",
            e.provider_org,
            e.year,
            e.score
                .map_or_else(|| "none".to_string(), |v| v.to_string()),
            e.indicators.join(", ")
        );
    }
    println!(
        "lineage of {}: complete: {}, receipts verified offline: {} of {}",
        s.lineage.product,
        if s.lineage.complete { "yes" } else { "NO" },
        s.lineage.receipts_verified,
        s.lineage.receipts
    );
    for p in &s.lineage.problems {
        println!("  lineage problem: {p}");
    }
    println!(
        "ledger: {} entries, {} checkpoints, verified: {}",
        s.ledger.entries,
        s.ledger.checkpoints,
        if s.ledger.verified { "yes" } else { "NO" }
    );
    println!("public key: {}", s.ledger.public_key);
    println!();
    println!("open the web portal on this demo's data with:");
    println!("  {}", s.portal.command);
    println!(
        "then sign in at {} with a key from {} (one per role; e.g. the provider's, the \
         reviewer's or the supervisor's)",
        s.portal.url, s.portal.keys_file
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adult_stand_in_is_a_valid_registration_when_the_shared_folder_is_absent() {
        let scratch = tempfile::tempdir().unwrap();
        let absent = scratch.path().join("no-such-folder");
        let (dir, source) = adult_source(&absent, scratch.path()).unwrap();
        assert_eq!(source, "generated stand-in");
        let meta = samples::adult_dataset(&dir, OpenAttribute::Conditional).unwrap();
        assert_eq!(meta.level, Level::L3);
        assert_eq!(meta.schema.columns.len(), 9);
        let csv = std::fs::read_to_string(dir.join("adult.csv")).unwrap();
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        let names: Vec<&str> = meta
            .schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(header.split(';').collect::<Vec<_>>(), names);
        assert_eq!(lines.clone().count(), ADULT_STAND_IN_ROWS);
        // Every generated value is in its column's hierarchy.
        for line in lines {
            for (cell, name) in line.split(';').zip(&names) {
                if let Some(h) = meta.schema.hierarchies.get(*name) {
                    assert!(h.rows.iter().any(|r| r[0] == cell), "{name}: {cell}");
                }
            }
        }
    }

    #[test]
    fn pums_incomes_in_scientific_notation_become_integers() {
        let out = integer_codes(b"age,income\n38,1e+05\n31,17000\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "age,income\n38,100000\n31,17000\n"
        );
    }
}
