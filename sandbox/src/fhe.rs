//! Private lookups: FHE query templates, server keys, encrypted queries as jobs, and
//! their per-grant budget.
//!
//! The cryptography and its privacy argument are in `pdx_algorithms::fhe`; this module
//! is the workflow around it. Read top-down:
//!
//! 1. **Templates.** A developer proposes a [`TemplateSpec`] for a dataset
//!    ([`Fhe::propose_fhe_template`]); the dataset's provider approves or refuses it
//!    ([`Fhe::decide_fhe_template`]) and may later retire it. The answers are
//!    encrypted, so nobody can vet them one by one: the *template* is what is vetted,
//!    and each decision is an `fhe_query` ledger entry (event `template_decision`)
//!    holding the template and its hash, written with the row. Approval builds the
//!    table of the latest version once, so a template that cannot run (a key hash
//!    collision, a repeated key without an aggregate) is refused at approval.
//!
//!    Not-open data (不予开放, SD22 Art.8; GD21 Art.32) has no private lookups: a
//!    template on it can be neither proposed nor approved, and a query (or a resumed
//!    one) on it is refused, all through
//!    [`crate::catalog::Dataset::reachable_by_developers`], with the same message as
//!    every other path.
//! 2. **Server keys.** A developer uploads a `CompressedServerKey` once per key pair
//!    ([`Fhe::register_server_key`]). It streams to a file under a size cap, is
//!    checked with `safe_deserialize_conformant` against the platform's parameters, and
//!    is stored per organisation under its hash (a second upload of the same key returns
//!    the stored one). Nothing here can read a client key: it is refused by type name.
//! 3. **Queries** ([`Fhe::start_fhe_query`]). Admission is synchronous, so every
//!    refusal is a 4xx and never a job: the template is approved, the dataset is not
//!    a not-open one and is either unconditionally open or the caller holds a usable
//!    grant allowing `fhe` models on the template's two columns, a conditionally open
//!    dataset's query carries a `consent_commitment` to the enterprise's signed
//!    authorisation (GD21 Art.41; a lookup without one is refused with 403, see
//!    [`crate::fhe_consent`]), the server key is the caller's, the ciphertext conforms
//!    (right type, width and parameters), the scan is within `fhe_max_rows` (otherwise
//!    the client must reveal a public bucket), and the organisation is under its
//!    concurrency cap. Then, in one write transaction, the commitment is checked
//!    unused, the grant pays one query (`spend_budget`, a conditional update that
//!    cannot overspend — the grant's query budget is what caps FHE queries), and the
//!    job and query rows are inserted.
//! 4. **Evaluation** runs as a job that clients poll: it waits for the evaluator (one
//!    lookup at a time: a lookup uses every core), loads the decompressed server key
//!    (cached for the two most recent keys), scans the table in chunks and reports the
//!    rows done as job progress. The answer ciphertexts are stored for the caller, and an
//!    `fhe_query` ledger entry (event `query`) records the hashes of the input and output
//!    ciphertexts, the template hash, the dataset version, the rows scanned, any
//!    revealed bucket and the consent commitment — never the key, the ciphertexts, the
//!    answer or the authorisation.
//!
//! Spent queries are not refunded when a job fails after admission: the evaluation
//! touched the data. A query cut off by a restart is resumed like every job (see
//! [`crate::jobs`]): its ciphertext is kept beside the query until it ends, and the
//! answer's ledger entry commits with the `done` row, so a resumed query either
//! finishes with its recorded answer or is evaluated again, never charged twice.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pdx_algorithms::DataFrame;
use pdx_algorithms::deid::schema::DeidRule;
use pdx_algorithms::deid::storage::{read_parquet, write_parquet};
use pdx_algorithms::fhe::server::{CheckedServerKey, check_server_key, chunk_rows};
use pdx_algorithms::fhe::template::read_key_index;
use pdx_algorithms::fhe::{
    Answer, EvaluationKey, Evaluator, FheError, KeySource, LookupTable, PARAMETER_SET, QueryKey,
    Strategy, TemplateSpec, ciphertext_hash, template_hash,
};
use pdx_ids::{DatasetId, FheKeyId, FheQueryId, FheTemplateId, GrantId, JobId, OrgId, VersionRef};
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::{FheLookup, FheRecord, FheTemplateDecision};
use pdx_ledger::{Actor, Hash32};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::io::AsyncWriteExt;

use crate::catalog::{Dataset, OpenAttribute};
use crate::grants::{Grant, ModelKind, PrivacyCost};
use crate::jobs::{self, Job, JobInputs};
use crate::store::{self, opt_u64};
use crate::{Result, SandboxError, actor_org, scratch_name, validate_text};

crate::service! {
    /// Private lookups: FHE templates, server keys and encrypted queries.
    Fhe
}

/// Decompressed server keys kept in memory (about 120 MB each).
const KEY_CACHE: usize = 2;

/// Where a template is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TemplateStatus {
    /// Waiting for the provider.
    Pending,
    /// Usable.
    Approved,
    /// Refused, with a reason.
    Refused,
    /// Withdrawn by the provider; no new queries.
    Retired,
}

impl TemplateStatus {
    fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::Pending => "pending",
            TemplateStatus::Approved => "approved",
            TemplateStatus::Refused => "refused",
            TemplateStatus::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Result<TemplateStatus> {
        Ok(match s {
            "pending" => TemplateStatus::Pending,
            "approved" => TemplateStatus::Approved,
            "refused" => TemplateStatus::Refused,
            "retired" => TemplateStatus::Retired,
            other => {
                return Err(SandboxError::Internal(format!(
                    "unknown template status {other}"
                )));
            }
        })
    }
}

/// A proposed template.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    /// The dataset it reads.
    pub dataset_id: DatasetId,
    /// A name for people.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, pattern = r"\S")
    )]
    pub name: String,
    /// What the answers are for.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 4000, pattern = r"\S")
    )]
    pub purpose: String,
    /// Key column, value rule, output domain, key width (`u16`, `u32`, `u64`) and
    /// public-bucket bits; see `pdx_algorithms::fhe::TemplateSpec`.
    pub spec: TemplateSpec,
}

/// The latest version's table as a template sees it (detail view of an approved
/// template): what a client needs to choose a bucket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableSummary {
    /// Dataset version.
    pub version: u64,
    /// Keys in the table.
    pub keys: u64,
    /// Rows left out (missing key or value).
    pub excluded_rows: u64,
    /// Keys per public bucket (empty when the template allows none).
    pub bucket_sizes: Vec<u64>,
    /// The salt of the key hash (the dataset id).
    pub salt: String,
}

/// A template as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FheTemplate {
    /// Template id.
    pub id: FheTemplateId,
    /// The dataset.
    pub dataset_id: DatasetId,
    /// The dataset's provider, who decides.
    pub provider_org: OrgId,
    /// The proposing developer organisation.
    pub proposer_org: OrgId,
    /// Name.
    pub name: String,
    /// Stated purpose.
    pub purpose: String,
    /// The template.
    pub spec: TemplateSpec,
    /// `BLAKE3("pdx fhe template v1" || 0x00 || canonical JSON of spec)`, hex.
    pub template_hash: String,
    /// Status.
    pub status: TemplateStatus,
    /// Reason of a refusal or retirement (or a note with an approval).
    pub reason: Option<String>,
    /// Proposed, ms since epoch.
    pub created_ms: i64,
    /// Decided, ms since epoch.
    pub decided_ms: Option<i64>,
    /// Ledger seq of the last decision.
    pub decision_seq: Option<u64>,
    /// The latest version's table (detail view of an approved template only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableSummary>,
}

/// The provider's answer to a proposed template.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateDecision {
    /// Approve (true) or refuse (false).
    pub approve: bool,
    /// Why; required for a refusal.
    pub reason: Option<String>,
}

/// Who is looking at templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateView {
    /// Developers: approved templates, and their own proposals.
    Developer,
    /// Providers: templates on their datasets.
    Provider,
    /// Supervisors: everything.
    All,
}

/// An uploaded server key (public evaluation material; never a client key).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerKeyInfo {
    /// Key id.
    pub id: FheKeyId,
    /// Owning organisation.
    pub org_id: OrgId,
    /// `BLAKE3("pdx fhe server key v1" || 0x00 || bytes)`, hex.
    pub key_hash: String,
    /// Size of the upload.
    pub bytes: u64,
    /// The parameter set it conforms to.
    pub parameters: String,
    /// Uploaded, ms since epoch.
    pub created_ms: i64,
}

/// A query, as the client submits it (the ciphertext travels beside it).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// An approved template.
    pub template_id: FheTemplateId,
    /// The grant covering the dataset (not needed for unconditionally open data).
    pub grant_id: Option<GrantId>,
    /// One of the caller's server keys.
    pub server_key_id: FheKeyId,
    /// A public bucket to scan instead of the whole table (the top `bucket_bits` of the
    /// hashed key): faster, but the platform learns the enterprise is in that bucket.
    pub bucket: Option<u64>,
    /// Commitment to the enterprise's signed authorisation, 64 hex digits (required on
    /// conditionally open data; see `pdx_algorithms::fhe::consent`).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{64}$"))]
    pub consent_commitment: Option<String>,
}

/// Where a query is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QueryStatus {
    /// Waiting for the evaluator.
    Queued,
    /// Being evaluated.
    Running,
    /// Answered.
    Done,
    /// Failed (see the job).
    Failed,
}

impl QueryStatus {
    fn parse(s: &str) -> Result<QueryStatus> {
        Ok(match s {
            "queued" => QueryStatus::Queued,
            "running" => QueryStatus::Running,
            "done" => QueryStatus::Done,
            "failed" => QueryStatus::Failed,
            other => {
                return Err(SandboxError::Internal(format!(
                    "unknown query status {other}"
                )));
            }
        })
    }
}

/// A query as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FheQuery {
    /// Query id.
    pub id: FheQueryId,
    /// The job evaluating it.
    pub job_id: JobId,
    /// Asking organisation.
    pub org_id: OrgId,
    /// Template.
    pub template_id: FheTemplateId,
    /// Grant charged.
    pub grant_id: Option<GrantId>,
    /// Server key used.
    pub server_key_id: FheKeyId,
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Version scanned.
    pub version: u64,
    /// Hash of the encrypted key, hex.
    pub input_hash: String,
    /// Public-bucket bits revealed, if any.
    pub bucket_bits: Option<u8>,
    /// The revealed bucket, if any.
    pub bucket: Option<u64>,
    /// Rows compared.
    pub rows_scanned: u64,
    /// Status.
    pub status: QueryStatus,
    /// Hash of the encrypted value, hex (once done).
    pub value_hash: Option<String>,
    /// Hash of the encrypted `found` flag, hex (once done).
    pub found_hash: Option<String>,
    /// Ledger seq of the query entry (once done).
    pub ledger_seq: Option<u64>,
    /// Submitted, ms since epoch.
    pub created_ms: i64,
    /// Finished, ms since epoch.
    pub finished_ms: Option<i64>,
    /// The commitment to the enterprise's signed authorisation, hex (GD21 Art.41).
    pub consent_commitment: Option<String>,
}

/// In-memory state: decompressed keys and the evaluator slot.
pub(crate) struct FheState {
    cache: Mutex<Vec<(String, Arc<EvaluationKey>)>>,
    evaluator: tokio::sync::Semaphore,
}

impl Default for FheState {
    fn default() -> Self {
        FheState {
            cache: Mutex::new(Vec::new()),
            evaluator: tokio::sync::Semaphore::new(1),
        }
    }
}

/// A server key streaming into the incoming area. Dropped before
/// [`Fhe::register_server_key`], its file is removed.
pub struct KeyUpload {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    bytes: u64,
    limit: u64,
}

impl KeyUpload {
    /// Appends a chunk; fails once the total passes the cap.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(SandboxError::TooLarge { limit: self.limit });
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| SandboxError::Internal("key upload already finished".into()))?;
        file.write_all(chunk).await?;
        Ok(())
    }
}

impl Drop for KeyUpload {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "could not remove an incoming server key");
        }
    }
}

fn fhe_error(e: FheError) -> SandboxError {
    match e {
        FheError::TooLarge { limit, .. } => SandboxError::TooLarge { limit },
        e if e.is_client_error() => SandboxError::Invalid(e.to_string()),
        e => SandboxError::Internal(e.to_string()),
    }
}

fn internal(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Internal(e.to_string())
}

fn task_error(e: tokio::task::JoinError) -> SandboxError {
    SandboxError::Internal(format!("fhe task: {e}"))
}

fn template_from_row(row: &AnyRow) -> Result<FheTemplate> {
    let spec: TemplateSpec = serde_json::from_str(&row.try_get::<String, _>("spec_json")?)
        .map_err(|e| SandboxError::Internal(format!("stored template: {e}")))?;
    Ok(FheTemplate {
        id: row.try_get("id")?,
        dataset_id: row.try_get("dataset_id")?,
        provider_org: row.try_get("provider_org")?,
        proposer_org: row.try_get("proposer_org")?,
        name: row.try_get("name")?,
        purpose: row.try_get("purpose")?,
        spec,
        template_hash: row.try_get("template_hash")?,
        status: TemplateStatus::parse(&row.try_get::<String, _>("status")?)?,
        reason: row.try_get("reason")?,
        created_ms: row.try_get("created_ms")?,
        decided_ms: row.try_get("decided_ms")?,
        decision_seq: opt_u64(row, "decision_seq")?,
        table: None,
    })
}

fn key_from_row(row: &AnyRow) -> Result<(ServerKeyInfo, String)> {
    Ok((
        ServerKeyInfo {
            id: row.try_get("id")?,
            org_id: row.try_get("org_id")?,
            key_hash: row.try_get("key_hash")?,
            bytes: u64::try_from(row.try_get::<i64, _>("bytes")?).unwrap_or(0),
            parameters: row.try_get("parameters")?,
            created_ms: row.try_get("created_ms")?,
        },
        row.try_get("file_path")?,
    ))
}

fn query_from_row(row: &AnyRow) -> Result<FheQuery> {
    Ok(FheQuery {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        org_id: row.try_get("org_id")?,
        template_id: row.try_get("template_id")?,
        grant_id: row.try_get("grant_id")?,
        server_key_id: row.try_get("server_key_id")?,
        dataset_id: row.try_get("dataset_id")?,
        version: u64::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
        input_hash: row.try_get("input_hash")?,
        bucket_bits: row
            .try_get::<Option<i64>, _>("bucket_bits")?
            .and_then(|v| u8::try_from(v).ok()),
        bucket: opt_u64(row, "bucket")?,
        rows_scanned: u64::try_from(row.try_get::<i64, _>("rows_scanned")?).unwrap_or(0),
        status: QueryStatus::parse(&row.try_get::<String, _>("status")?)?,
        value_hash: row.try_get("value_hash")?,
        found_hash: row.try_get("found_hash")?,
        ledger_seq: opt_u64(row, "ledger_seq")?,
        created_ms: row.try_get("created_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        consent_commitment: row.try_get("consent_commitment")?,
    })
}

fn hash32(bytes: [u8; 32]) -> Hash32 {
    Hash32(bytes)
}

/// Everything a query job needs, fixed at admission.
struct Admitted {
    query_id: FheQueryId,
    job_id: JobId,
    org: OrgId,
    template: FheTemplate,
    dataset_version: VersionRef,
    grant_id: Option<GrantId>,
    key: ServerKeyInfo,
    key_path: PathBuf,
    query_key: QueryKey,
    input_hash: [u8; 32],
    rows: Vec<(u64, u8)>,
    bucket_bits: Option<u8>,
    bucket: Option<u64>,
    consent_commitment: Option<[u8; 32]>,
}

impl Fhe {
    fn fhe_dir(&self) -> PathBuf {
        self.zones().root().join("fhe")
    }

    fn key_index_path(&self, dataset_id: &DatasetId, content_hash: &str) -> PathBuf {
        self.fhe_dir()
            .join("index")
            .join(dataset_id.as_str())
            .join(format!("{content_hash}.parquet"))
    }

    /// Stores the FHE key index built during ingest beside the version (see
    /// `pdx_algorithms::fhe::template::key_index`). Called before certification, so a
    /// failure here leaves no version without its index.
    pub(crate) async fn store_fhe_key_index(
        &self,
        dataset_id: &DatasetId,
        content_hash: &[u8; 32],
        index: std::result::Result<Option<DataFrame>, FheError>,
    ) -> Result<()> {
        let Some(mut frame) = index.map_err(fhe_error)? else {
            return Ok(());
        };
        let path = self.key_index_path(dataset_id, &hex::encode(content_hash));
        // It holds the clear identifiers: sealed like every zone file.
        let at_rest = self.zones().at_rest().clone();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_parquet(&mut frame, &path, &at_rest)
                .map(|_| ())
                .map_err(|e| SandboxError::Internal(format!("storing the FHE key index: {e}")))
        })
        .await
        .map_err(task_error)?
    }

    /// Proposes a template (developers). It waits for the dataset's provider.
    pub async fn propose_fhe_template(
        &self,
        actor: &Actor,
        new: NewTemplate,
    ) -> Result<FheTemplate> {
        validate_text("name", &new.name, 200)?;
        validate_text("purpose", &new.purpose, 4000)?;
        let org = actor_org(actor)?;
        let dataset = self
            .catalog()
            .dataset(&new.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        dataset.reachable_by_developers()?;
        new.spec.validate(&dataset.meta.schema).map_err(fhe_error)?;
        let (spec_json, hash) = spec_hash(&new.spec)?;
        let id = FheTemplateId::random();
        store::fhe::insert_template(
            self.db().pool(),
            &store::fhe::NewFheTemplate {
                id: &id,
                dataset_id: &dataset.id,
                provider_org: &dataset.provider_org,
                proposer_org: &org,
                name: new.name.trim(),
                purpose: new.purpose.trim(),
                spec_json: &spec_json,
                template_hash: &hex::encode(hash),
                created_ms: now_ms(),
            },
        )
        .await?;
        self.load_template(&id).await
    }

    async fn load_template(&self, id: &FheTemplateId) -> Result<FheTemplate> {
        let row = sqlx::query("SELECT * FROM fhe_templates WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such template".into()))?;
        template_from_row(&row)
    }

    fn template_visible(t: &FheTemplate, org: &OrgId, view: TemplateView) -> bool {
        match view {
            TemplateView::All => true,
            TemplateView::Provider => t.provider_org == *org,
            TemplateView::Developer => {
                t.status == TemplateStatus::Approved || t.proposer_org == *org
            }
        }
    }

    /// Templates the caller may see, newest first, optionally of one dataset.
    pub async fn fhe_templates(
        &self,
        org: &OrgId,
        view: TemplateView,
        dataset_id: Option<&DatasetId>,
    ) -> Result<Vec<FheTemplate>> {
        let rows = sqlx::query("SELECT * FROM fhe_templates ORDER BY created_ms DESC, id")
            .fetch_all(self.db().pool())
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let t = template_from_row(row)?;
            if Self::template_visible(&t, org, view)
                && dataset_id.is_none_or(|d| *d == t.dataset_id)
            {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// One template, if the caller may see it; an approved one comes with the latest
    /// version's table summary (bucket sizes), so a client can choose a bucket.
    pub async fn fhe_template(
        &self,
        id: &FheTemplateId,
        org: &OrgId,
        view: TemplateView,
    ) -> Result<FheTemplate> {
        let mut t = self.visible_template(id, org, view).await?;
        if t.status == TemplateStatus::Approved {
            let dataset = self
                .catalog()
                .dataset(&t.dataset_id)
                .await?
                .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
            // Bucket sizes are counted over the rows: none for a developer on not-open
            // data (a template approved before that rule held).
            let counted =
                view != TemplateView::Developer || dataset.reachable_by_developers().is_ok();
            if let Some(version) = dataset.latest_version.filter(|_| counted) {
                match self.fhe_table(&t.spec, &dataset, version).await {
                    Ok(table) => {
                        t.table = Some(TableSummary {
                            version,
                            keys: table.len() as u64,
                            excluded_rows: table.excluded_rows,
                            bucket_sizes: if t.spec.bucket_bits > 0 {
                                table.bucket_sizes(t.spec.bucket_bits)
                            } else {
                                Vec::new()
                            },
                            salt: dataset.id.to_string(),
                        })
                    }
                    Err(e) => {
                        tracing::warn!(template = %t.id, error = %e, "template table unavailable")
                    }
                }
            }
        }
        Ok(t)
    }

    async fn visible_template(
        &self,
        id: &FheTemplateId,
        org: &OrgId,
        view: TemplateView,
    ) -> Result<FheTemplate> {
        let t = self.load_template(id).await?;
        if Self::template_visible(&t, org, view) {
            Ok(t)
        } else {
            Err(SandboxError::NotFound("no such template".into()))
        }
    }

    /// The provider approves or refuses a pending template on one of its datasets.
    pub async fn decide_fhe_template(
        &self,
        actor: &Actor,
        id: &FheTemplateId,
        decision: TemplateDecision,
    ) -> Result<FheTemplate> {
        let t = self
            .visible_template(id, &actor_org(actor)?, TemplateView::Provider)
            .await?;
        if t.status != TemplateStatus::Pending {
            return Err(SandboxError::Conflict(format!(
                "the template is already {}",
                t.status.as_str()
            )));
        }
        let reason = decision
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        if let Some(r) = reason {
            validate_text("reason", r, 4000)?;
        }
        let status = if decision.approve {
            let dataset = self
                .catalog()
                .dataset(&t.dataset_id)
                .await?
                .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
            // A template proposed on data that is now not open can only be refused.
            dataset.reachable_by_developers()?;
            // The schema may have moved on since the proposal.
            t.spec.validate(&dataset.meta.schema).map_err(fhe_error)?;
            if let Some(version) = dataset.latest_version {
                self.fhe_table(&t.spec, &dataset, version).await?;
            }
            TemplateStatus::Approved
        } else {
            if reason.is_none() {
                return Err(SandboxError::Invalid(
                    "a refusal must give a `reason`".into(),
                ));
            }
            TemplateStatus::Refused
        };
        self.record_template_decision(actor, &t, status, reason)
            .await
    }

    /// The provider withdraws an approved template; queries refuse it from then on.
    pub async fn retire_fhe_template(
        &self,
        actor: &Actor,
        id: &FheTemplateId,
        reason: &str,
    ) -> Result<FheTemplate> {
        let t = self
            .visible_template(id, &actor_org(actor)?, TemplateView::Provider)
            .await?;
        validate_text("reason", reason, 4000)?;
        if t.status != TemplateStatus::Approved {
            return Err(SandboxError::Conflict(format!(
                "only an approved template can be retired; this one is {}",
                t.status.as_str()
            )));
        }
        self.record_template_decision(actor, &t, TemplateStatus::Retired, Some(reason.trim()))
            .await
    }

    async fn record_template_decision(
        &self,
        actor: &Actor,
        t: &FheTemplate,
        status: TemplateStatus,
        reason: Option<&str>,
    ) -> Result<FheTemplate> {
        let expected = match status {
            TemplateStatus::Retired => "approved",
            _ => "pending",
        };
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        let updated =
            store::fhe::decide_template(&mut *tx, &t.id, expected, status.as_str(), reason, now)
                .await?;
        if updated != 1 {
            return Err(SandboxError::Conflict(
                "the template changed concurrently".into(),
            ));
        }
        let hash = Hash32::from_hex(&t.template_hash)
            .map_err(|_| SandboxError::Internal("stored template hash".into()))?;
        let entry = FheRecord::TemplateDecision(FheTemplateDecision {
            template_id: t.id.to_string(),
            dataset_id: t.dataset_id.to_string(),
            proposer_org: t.proposer_org.to_string(),
            decision: status.as_str().into(),
            reason: reason.map(str::to_string),
            template_hash: hash,
            template: serde_json::to_value(&t.spec).map_err(internal)?,
        });
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::fhe::set_template_decision_seq(&mut *tx, &t.id, appended.seq as i64).await?;
        tx.commit().await?;
        self.load_template(&t.id).await
    }

    /// Builds a template's clear table over one certified version, inside the sandbox.
    async fn fhe_table(
        &self,
        spec: &TemplateSpec,
        dataset: &Dataset,
        version: u64,
    ) -> Result<LookupTable> {
        // A destroyed version is looked up by nobody (GD21 Art.40).
        crate::destruction::refuse_destroyed(self.db().pool(), &dataset.id, version).await?;
        let row = sqlx::query(
            "SELECT file_path, content_hash FROM dataset_versions WHERE dataset_id = $1 AND version = $2",
        )
        .bind(dataset.id.clone())
        .bind(version as i64)
        .fetch_optional(self.db().pool())
        .await?
        .ok_or_else(|| SandboxError::NotFound("no such version".into()))?;
        let file = self
            .zones()
            .root()
            .join(row.try_get::<String, _>("file_path")?);
        let content_hash: String = row.try_get("content_hash")?;
        let pseudonymised = dataset
            .meta
            .schema
            .column(&spec.key_column)
            .is_some_and(|c| c.rule == DeidRule::Pseudonymise);
        let index_path = if pseudonymised {
            let p = self.key_index_path(&dataset.id, &content_hash);
            if !p.exists() {
                return Err(SandboxError::Conflict(
                    "this version was certified without an FHE key index; upload it again to query it"
                        .into(),
                ));
            }
            Some(p)
        } else {
            None
        };
        let spec = spec.clone();
        let salt = dataset.id.to_string();
        let key_column = spec.key_column.clone();
        let at_rest = self.zones().at_rest().clone();
        tokio::task::spawn_blocking(move || {
            let frame = read_parquet(&file, &at_rest)
                .map_err(|e| SandboxError::Internal(format!("reading a version: {e}")))?;
            let index = match &index_path {
                Some(p) => {
                    let raw = read_parquet(p, &at_rest)
                        .map_err(|e| SandboxError::Internal(format!("reading a key index: {e}")))?;
                    Some(read_key_index(&raw, &key_column).map_err(fhe_error)?)
                }
                None => None,
            };
            let source = match &index {
                Some(map) => KeySource::Index(map),
                None => KeySource::Clear { salt: &salt },
            };
            LookupTable::build(&frame, &spec, &source).map_err(fhe_error)
        })
        .await
        .map_err(task_error)?
    }

    /// Opens a server-key upload (the caller streams the body into it).
    pub async fn start_key_upload(&self) -> Result<KeyUpload> {
        let dir = self.fhe_dir().join("incoming");
        tokio::fs::create_dir_all(&dir).await?;
        let path = dir.join(format!("{}.part", scratch_name("key")));
        let file = tokio::fs::File::create(&path).await?;
        Ok(KeyUpload {
            file: Some(file),
            path,
            bytes: 0,
            limit: self.config().fhe_server_key_limit,
        })
    }

    /// Checks an uploaded server key and stores it for the caller's organisation.
    /// Returns the key and whether it is new (an identical key uploaded before by the
    /// same organisation is returned as it is).
    pub async fn register_server_key(
        &self,
        actor: &Actor,
        mut upload: KeyUpload,
    ) -> Result<(ServerKeyInfo, bool)> {
        if let Some(mut file) = upload.file.take() {
            file.flush().await?;
            file.sync_all().await?;
        }
        if upload.bytes == 0 {
            return Err(SandboxError::Invalid("the upload is empty".into()));
        }
        let path = upload.path.clone();
        let limit = self.config().fhe_server_key_limit;
        let checked: CheckedServerKey = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path)?;
            check_server_key(&bytes, limit).map_err(fhe_error)
        })
        .await
        .map_err(task_error)??;
        let key_hash = hex::encode(checked.hash);
        let org = actor_org(actor)?;
        if let Some(existing) = self.server_key_by_hash(&org, &key_hash).await? {
            return Ok((existing, false));
        }
        let relative = PathBuf::from("fhe")
            .join("keys")
            .join(org.as_str())
            .join(format!("{key_hash}.key"));
        let target = self.zones().root().join(&relative);
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::rename(&upload.path, &target).await?;
        let id = FheKeyId::random();
        let file_path = relative.to_string_lossy().into_owned();
        let inserted = store::fhe::insert_server_key(
            self.db().pool(),
            &store::fhe::NewServerKey {
                id: &id,
                org_id: &org,
                key_hash: &key_hash,
                bytes: checked.bytes as i64,
                parameters: PARAMETER_SET,
                file_path: &file_path,
                created_ms: now_ms(),
            },
        )
        .await;
        if let Err(e) = inserted {
            // A concurrent upload of the same key won the race: keep its row and file.
            if let Some(existing) = self.server_key_by_hash(&org, &key_hash).await? {
                return Ok((existing, false));
            }
            let _ = tokio::fs::remove_file(&target).await;
            return Err(e);
        }
        tracing::info!(key = %id, org = %org, bytes = checked.bytes, "accepted an FHE server key");
        Ok((self.server_key(&id, &org).await?, true))
    }

    async fn server_key_by_hash(
        &self,
        org: &OrgId,
        key_hash: &str,
    ) -> Result<Option<ServerKeyInfo>> {
        let row = sqlx::query("SELECT * FROM fhe_server_keys WHERE org_id = $1 AND key_hash = $2")
            .bind(org.clone())
            .bind(key_hash.to_string())
            .fetch_optional(self.db().pool())
            .await?;
        row.as_ref()
            .map(|r| key_from_row(r).map(|k| k.0))
            .transpose()
    }

    async fn server_key_row(&self, id: &FheKeyId, org: &OrgId) -> Result<(ServerKeyInfo, String)> {
        let row = sqlx::query("SELECT * FROM fhe_server_keys WHERE id = $1 AND org_id = $2")
            .bind(id.clone())
            .bind(org.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such server key".into()))?;
        key_from_row(&row)
    }

    /// One of the organisation's server keys.
    pub async fn server_key(&self, id: &FheKeyId, org: &OrgId) -> Result<ServerKeyInfo> {
        Ok(self.server_key_row(id, org).await?.0)
    }

    /// The organisation's server keys, newest first.
    pub async fn server_keys(&self, org: &OrgId) -> Result<Vec<ServerKeyInfo>> {
        sqlx::query("SELECT * FROM fhe_server_keys WHERE org_id = $1 ORDER BY created_ms DESC, id")
            .bind(org.clone())
            .fetch_all(self.db().pool())
            .await?
            .iter()
            .map(|r| key_from_row(r).map(|k| k.0))
            .collect()
    }

    /// Deletes one of the organisation's server keys (queries already evaluated keep
    /// its hash on the ledger).
    pub async fn delete_server_key(&self, actor: &Actor, id: &FheKeyId) -> Result<()> {
        let org = actor_org(actor)?;
        let (info, relative) = self.server_key_row(id, &org).await?;
        store::fhe::delete_server_key(self.db().pool(), id, &org).await?;
        if let Err(e) = tokio::fs::remove_file(self.zones().root().join(relative)).await {
            tracing::warn!(key = %id, error = %e, "could not remove a server key file");
        }
        if let Ok(mut cache) = self.fhe_state().cache.lock() {
            cache.retain(|(hash, _)| *hash != info.key_hash);
        }
        tracing::info!(key = %id, org = %org, "deleted an FHE server key");
        Ok(())
    }

    /// The decompressed key, from the cache or from its file (a few seconds).
    async fn evaluation_key(
        &self,
        info: &ServerKeyInfo,
        path: &Path,
    ) -> Result<Arc<EvaluationKey>> {
        if let Ok(cache) = self.fhe_state().cache.lock()
            && let Some((_, k)) = cache.iter().find(|(h, _)| *h == info.key_hash)
        {
            return Ok(k.clone());
        }
        let path = path.to_path_buf();
        let limit = self.config().fhe_server_key_limit;
        let key = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path)?;
            EvaluationKey::from_bytes(&bytes, limit).map_err(fhe_error)
        })
        .await
        .map_err(task_error)??;
        if hex::encode(key.checked().hash) != info.key_hash {
            return Err(SandboxError::Internal(
                "a stored server key does not match its hash".into(),
            ));
        }
        let key = Arc::new(key);
        if let Ok(mut cache) = self.fhe_state().cache.lock() {
            cache.retain(|(h, _)| *h != info.key_hash);
            cache.insert(0, (info.key_hash.clone(), key.clone()));
            cache.truncate(KEY_CACHE);
        }
        Ok(key)
    }

    /// Admits an encrypted lookup and starts it as a job (see the module docs for the
    /// checks, all made before anything is spent).
    pub async fn start_fhe_query(
        &self,
        actor: &Actor,
        request: QueryRequest,
        ciphertext: Vec<u8>,
    ) -> Result<(FheQuery, Job)> {
        let consent_commitment = request
            .consent_commitment
            .as_deref()
            .map(crate::fhe_consent::parse_commitment)
            .transpose()?;
        let org = actor_org(actor)?;
        let template = self
            .visible_template(&request.template_id, &org, TemplateView::Developer)
            .await?;
        if template.status != TemplateStatus::Approved {
            return Err(SandboxError::Conflict(format!(
                "the template is {}, not approved",
                template.status.as_str()
            )));
        }
        let dataset = self
            .catalog()
            .dataset(&template.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        dataset.reachable_by_developers()?;
        let version = dataset.latest_version.ok_or_else(|| {
            SandboxError::Conflict("the dataset has no certified version yet".into())
        })?;
        let open = dataset.effective_open_attribute == OpenAttribute::Unconditional;
        let grant: Option<Grant> = if open {
            None
        } else {
            let grant_id = request.grant_id.as_ref().ok_or_else(|| {
                SandboxError::Forbidden(
                    "this dataset is conditionally open: the query needs a `grant_id`".into(),
                )
            })?;
            let grant = self
                .grants()
                .usable_grant(
                    grant_id,
                    &org,
                    &dataset.id,
                    ModelKind::Fhe,
                    &template.spec.columns(),
                )
                .await?;
            // GD21 Art.41: no lookup of an enterprise on conditional data without a
            // commitment to its authorisation (checked before anything is spent).
            if consent_commitment.is_none() {
                return Err(SandboxError::Forbidden(
                    "this dataset is conditionally open: the lookup needs a `consent_commitment` to the enterprise's signed authorisation (GD21 Art.41)"
                        .into(),
                ));
            }
            Some(grant)
        };
        let (key, key_file) = self.server_key_row(&request.server_key_id, &org).await?;
        let width = template.spec.key_width;
        let input_hash = ciphertext_hash(&ciphertext);
        let (query_key, ciphertext) = tokio::task::spawn_blocking(move || {
            QueryKey::parse(&ciphertext, width).map(|key| (key, ciphertext))
        })
        .await
        .map_err(task_error)?
        .map_err(fhe_error)?;

        let (bucket_bits, rows) = self
            .lookup_rows(&template, &dataset, version, request.bucket)
            .await?;

        let query_id = FheQueryId::random();
        let job_id = JobId::random();
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        if self.db().backend() == pdx_ledger::db::Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("pdx-fhe:{org}"))
                .execute(&mut *tx)
                .await?;
        }
        let in_flight: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM fhe_queries WHERE org_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(org.clone())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if in_flight >= i64::from(self.config().org_run_concurrency) {
            return Err(SandboxError::Busy(format!(
                "the organisation already has {in_flight} FHE queries in progress; wait for one to finish"
            )));
        }
        if let Some(c) = &consent_commitment {
            let used = sqlx::query("SELECT id FROM fhe_queries WHERE consent_commitment = $1")
                .bind(hex::encode(c))
                .fetch_optional(&mut *tx)
                .await?;
            if used.is_some() {
                return Err(SandboxError::Conflict(
                    "this consent commitment was already used: draw a fresh nonce for every query"
                        .into(),
                ));
            }
        }
        if let Some(g) = &grant {
            self.grants()
                .spend_budget(&mut tx, &g.id, PrivacyCost::default())
                .await?;
        }
        let resume = JobInputs::FheQuery {
            actor: actor.clone(),
            query_id: query_id.clone(),
        };
        jobs::insert(&mut tx, &job_id, FHE_JOB_KIND, &org, &query_id, &resume).await?;
        let commitment_hex = consent_commitment.map(hex::encode);
        store::fhe::insert_query(
            &mut *tx,
            &store::fhe::NewFheQuery {
                id: &query_id,
                job_id: &job_id,
                org_id: &org,
                template_id: &template.id,
                grant_id: grant.as_ref().map(|g| &g.id),
                server_key_id: &key.id,
                dataset_id: &dataset.id,
                version: version as i64,
                input_hash: &hex::encode(input_hash),
                bucket_bits: bucket_bits.map(i64::from),
                bucket: request.bucket.map(|b| b as i64),
                rows_scanned: rows.len() as i64,
                created_ms: now,
                consent_commitment: commitment_hex.as_deref(),
            },
        )
        .await?;
        // The ciphertext is kept until the query ends, so a restart can run it again.
        let kept = self.query_input_path(&query_id);
        if let Some(dir) = kept.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::write(&kept, ciphertext).await?;
        if let Err(e) = tx.commit().await {
            let _ = tokio::fs::remove_file(&kept).await;
            return Err(e.into());
        }

        let job = self
            .jobs()
            .get(&job_id)
            .await?
            .ok_or_else(|| SandboxError::Internal("job vanished after insert".into()))?;
        let query = self.fhe_query(&query_id, &org, false).await?;
        tracing::info!(query = %query_id, job = %job_id, org = %org, rows = rows.len(), "admitted an FHE query");
        let admitted = Admitted {
            query_id,
            job_id,
            org,
            dataset_version: VersionRef::new(dataset.id, version),
            grant_id: grant.map(|g| g.id),
            key_path: self.zones().root().join(key_file),
            key,
            query_key,
            input_hash,
            rows,
            bucket_bits,
            bucket: request.bucket,
            template,
            consent_commitment,
        };
        self.spawn_fhe_query(actor.clone(), admitted);
        Ok((query, job))
    }

    /// The rows a lookup scans: the whole table, or the public bucket the client
    /// revealed, within the configured limit.
    async fn lookup_rows(
        &self,
        template: &FheTemplate,
        dataset: &Dataset,
        version: u64,
        bucket: Option<u64>,
    ) -> Result<(Option<u8>, Vec<(u64, u8)>)> {
        let table = self.fhe_table(&template.spec, dataset, version).await?;
        let max_rows = self.config().fhe_max_rows;
        Ok(match bucket {
            None => {
                if table.len() > max_rows {
                    return Err(SandboxError::Invalid(format!(
                        "the table has {} keys and a full scan is limited to {max_rows}: reveal a `bucket` (the template allows {} bits)",
                        table.len(),
                        template.spec.bucket_bits
                    )));
                }
                (None, table.entries().to_vec())
            }
            Some(b) => {
                let bits = template.spec.bucket_bits;
                if bits == 0 {
                    return Err(SandboxError::Invalid(
                        "the template allows no public bucket".into(),
                    ));
                }
                if b >= 1u64 << bits {
                    return Err(SandboxError::Invalid(format!(
                        "`bucket` must be below {} (the template reveals {bits} bits)",
                        1u64 << bits
                    )));
                }
                let rows = table.bucket(bits, b).to_vec();
                if rows.len() > max_rows {
                    return Err(SandboxError::Invalid(format!(
                        "the bucket has {} keys and a scan is limited to {max_rows}",
                        rows.len()
                    )));
                }
                (Some(bits), rows)
            }
        })
    }

    /// Evaluates an admitted lookup as its job; the kept ciphertext goes when it ends.
    fn spawn_fhe_query(&self, actor: Actor, admitted: Admitted) {
        let sandbox = self.clone();
        let job_id = admitted.job_id.clone();
        self.runner().spawn(&job_id, async move {
            let outcome = sandbox.evaluate_fhe_query(&actor, &admitted).await;
            if outcome.is_err() {
                sandbox.close_failed_query(&admitted.query_id).await;
            }
            sandbox.discard_query_input(&admitted.query_id).await;
            outcome
        });
    }

    /// Where an admitted query's ciphertext is kept until it ends.
    fn query_input_path(&self, query_id: &FheQueryId) -> PathBuf {
        self.fhe_dir()
            .join("queries")
            .join(format!("{query_id}.query"))
    }

    /// Removes a finished query's kept ciphertext.
    async fn discard_query_input(&self, query_id: &FheQueryId) {
        match tokio::fs::remove_file(self.query_input_path(query_id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(query = %query_id, error = %e, "could not remove a query's ciphertext")
            }
        }
    }

    /// Resumes a lookup a restart cut off: finishes with its answer if the answer was
    /// already recorded (the `fhe_query` ledger entry and the `done` row commit
    /// together), fails if its evaluation had failed, or evaluates the kept ciphertext
    /// again. Nothing is spent again: the query was charged at admission.
    pub(crate) async fn resume_fhe_query(
        &self,
        job_id: &JobId,
        actor: Actor,
        query_id: &FheQueryId,
    ) -> Result<()> {
        let org = actor_org(&actor)?;
        let q = self.fhe_query(query_id, &org, false).await?;
        match q.status {
            QueryStatus::Done => {
                self.discard_query_input(query_id).await;
                self.jobs().succeed(job_id, &query_result(&q)).await?;
                return Ok(());
            }
            // The evaluation failed before the crash (the job was not marked yet).
            QueryStatus::Failed => {
                self.discard_query_input(query_id).await;
                return Err(SandboxError::Conflict(
                    "the lookup failed before the server restarted; send it again".into(),
                ));
            }
            QueryStatus::Queued | QueryStatus::Running => {}
        }
        let ciphertext = tokio::fs::read(self.query_input_path(query_id))
            .await
            .map_err(|_| {
                SandboxError::Conflict(
                    "the server restarted before the query was kept; send it again".into(),
                )
            })?;
        let template = self.load_template(&q.template_id).await?;
        let dataset = self
            .catalog()
            .dataset(&q.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        dataset.reachable_by_developers()?;
        let (key, key_file) = self.server_key_row(&q.server_key_id, &org).await?;
        let width = template.spec.key_width;
        let query_key = tokio::task::spawn_blocking(move || QueryKey::parse(&ciphertext, width))
            .await
            .map_err(task_error)?
            .map_err(fhe_error)?;
        let (bucket_bits, rows) = self
            .lookup_rows(&template, &dataset, q.version, q.bucket)
            .await?;
        let parse_hash = |hex_text: &str| -> Result<[u8; 32]> {
            Hash32::from_hex(hex_text)
                .map(|h| h.0)
                .map_err(|_| SandboxError::Internal("a stored query hash is invalid".into()))
        };
        let admitted = Admitted {
            query_id: q.id.clone(),
            job_id: job_id.clone(),
            org,
            dataset_version: VersionRef::new(q.dataset_id.clone(), q.version),
            grant_id: q.grant_id.clone(),
            key_path: self.zones().root().join(key_file),
            key,
            query_key,
            input_hash: parse_hash(&q.input_hash)?,
            rows,
            bucket_bits,
            bucket: q.bucket,
            template,
            consent_commitment: q
                .consent_commitment
                .as_deref()
                .map(parse_hash)
                .transpose()?,
        };
        self.spawn_fhe_query(actor, admitted);
        Ok(())
    }

    async fn evaluate_fhe_query(&self, actor: &Actor, q: &Admitted) -> Result<serde_json::Value> {
        let jobs = self.jobs();
        jobs.progress(&q.job_id, "waiting for the evaluator", 0.02)
            .await?;
        let _slot = self
            .fhe_state()
            .evaluator
            .acquire()
            .await
            .map_err(|_| SandboxError::Internal("the evaluator is closed".into()))?;
        store::fhe::mark_query_running(self.db().pool(), &q.query_id).await?;
        jobs.progress(&q.job_id, "loading the server key", 0.05)
            .await?;
        let key = self.evaluation_key(&q.key, &q.key_path).await?;
        let total = q.rows.len();
        jobs.progress(&q.job_id, &format!("evaluating: 0/{total} rows"), 0.1)
            .await?;
        let done = Arc::new(AtomicUsize::new(0));
        let threads = match self.config().fhe_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut task = {
            let (done, rows, query_key) = (done.clone(), q.rows.clone(), q.query_key.clone());
            tokio::task::spawn_blocking(move || {
                let evaluator = Evaluator::new(&key, threads)?;
                evaluator.lookup(
                    &query_key,
                    &rows,
                    Strategy::MatchValue,
                    chunk_rows(rows.len()),
                    &done,
                )
            })
        };
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        let answer: Answer = loop {
            tokio::select! {
                joined = &mut task => break joined.map_err(task_error)?.map_err(fhe_error)?,
                _ = ticker.tick() => {
                    let n = done.load(Ordering::Relaxed);
                    let share = if total == 0 { 1.0 } else { n as f64 / total as f64 };
                    jobs.progress(&q.job_id, &format!("evaluating: {n}/{total} rows"), 0.1 + 0.85 * share)
                        .await?;
                }
            }
        };

        let dir = self.fhe_dir().join("answers");
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(dir.join(format!("{}.value", q.query_id)), &answer.value).await?;
        tokio::fs::write(dir.join(format!("{}.found", q.query_id)), &answer.found).await?;
        let (value_hash, found_hash) = (answer.value_hash(), answer.found_hash());
        let template_hash = Hash32::from_hex(&q.template.template_hash)
            .map_err(|_| SandboxError::Internal("stored template hash".into()))?;
        let server_key_hash = Hash32::from_hex(&q.key.key_hash)
            .map_err(|_| SandboxError::Internal("stored key hash".into()))?;
        let entry = FheRecord::Query(FheLookup {
            query_id: q.query_id.to_string(),
            job_id: q.job_id.to_string(),
            template_id: q.template.id.to_string(),
            template_hash,
            org: actor.org.clone(),
            grant_id: q.grant_id.as_ref().map(GrantId::to_string),
            dataset_version: q.dataset_version.to_string(),
            server_key_hash,
            input_hash: hash32(q.input_hash),
            value_hash: hash32(value_hash),
            found_hash: hash32(found_hash),
            rows_scanned: q.rows.len() as u64,
            bucket_bits: q.bucket_bits,
            bucket: q.bucket,
            consent_commitment: q.consent_commitment.map(Hash32),
        });
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let finished = store::fhe::finish_query(
            &mut *tx,
            &q.query_id,
            &hex::encode(value_hash),
            &hex::encode(found_hash),
            appended.seq as i64,
            now_ms(),
        )
        .await?;
        if finished != 1 {
            // Dropping the transaction drops the entry too: one entry per query.
            return Err(SandboxError::Conflict("the query had already ended".into()));
        }
        tx.commit().await?;
        Ok(query_result(
            &self.fhe_query(&q.query_id, &q.org, false).await?,
        ))
    }

    /// Marks a query whose evaluation failed.
    async fn close_failed_query(&self, query_id: &FheQueryId) {
        if let Err(e) = store::fhe::fail_query(self.db().pool(), query_id, now_ms()).await {
            tracing::error!(query = %query_id, error = %e, "could not close a failed query");
        }
    }

    /// One query: its owner, or anyone when `all` (supervisors).
    pub async fn fhe_query(&self, id: &FheQueryId, org: &OrgId, all: bool) -> Result<FheQuery> {
        let row = sqlx::query("SELECT * FROM fhe_queries WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such query".into()))?;
        let q = query_from_row(&row)?;
        if all || q.org_id == *org {
            Ok(q)
        } else {
            Err(SandboxError::NotFound("no such query".into()))
        }
    }

    /// Queries of one organisation (or all, for supervisors), newest first.
    pub async fn fhe_queries(&self, org: &OrgId, all: bool) -> Result<Vec<FheQuery>> {
        let mut q = if all {
            sqlx::query("SELECT * FROM fhe_queries ORDER BY created_ms DESC, id LIMIT 500")
        } else {
            sqlx::query(
                "SELECT * FROM fhe_queries WHERE org_id = $1 ORDER BY created_ms DESC, id LIMIT 500",
            )
        };
        if !all {
            q = q.bind(org.clone());
        }
        q.fetch_all(self.db().pool())
            .await?
            .iter()
            .map(query_from_row)
            .collect()
    }

    /// The encrypted answer of one of the organisation's finished queries.
    pub async fn fhe_answer(&self, id: &FheQueryId, org: &OrgId) -> Result<Option<Answer>> {
        let q = self.fhe_query(id, org, false).await?;
        if q.status != QueryStatus::Done {
            return Ok(None);
        }
        let dir = self.fhe_dir().join("answers");
        let value = tokio::fs::read(dir.join(format!("{}.value", q.id))).await?;
        let found = tokio::fs::read(dir.join(format!("{}.found", q.id))).await?;
        Ok(Some(Answer { value, found }))
    }

    fn fhe_state(&self) -> &FheState {
        &self.inner.fhe
    }
}

/// Canonical JSON of a spec and its template hash.
fn spec_hash(spec: &TemplateSpec) -> Result<(String, [u8; 32])> {
    let value = serde_json::to_value(spec).map_err(internal)?;
    let canonical = pdx_ledger::canonical::to_canonical_string(&value).map_err(internal)?;
    let hash = template_hash(canonical.as_bytes());
    Ok((canonical, hash))
}

/// What a finished lookup job reports.
fn query_result(q: &FheQuery) -> serde_json::Value {
    serde_json::json!({
        "query_id": q.id,
        "rows_scanned": q.rows_scanned,
        "value_hash": q.value_hash,
        "found_hash": q.found_hash,
        "ledger_seq": q.ledger_seq,
    })
}

/// The job kind of an FHE lookup.
pub const FHE_JOB_KIND: &str = "fhe_query";

/// Marks queries whose jobs ended at a start without being resumed as failed.
pub(crate) async fn fail_unresumed(db: &pdx_ledger::db::Db) -> Result<u64> {
    store::fhe::fail_unresumed(db.pool(), now_ms()).await
}
