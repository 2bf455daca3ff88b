//! # pdx-sandbox: where models run and what may leave
//!
//! Catalog, storage zones (raw, de-identified, quarantine, released), grants
//! (open-use agreements), jobs and their limits, the vetting workflow and privacy
//! budgets. It uses `pdx-algorithms` for the compute, persists with sqlx through
//! [`pdx_ledger::db::Db`], and writes certificates, grants, releases and privacy spends
//! to the ledger inside the same transaction as its own rows, so a row and its ledger
//! entry exist together or not at all.
//!
//! Read top-down:
//! - [`Sandbox::open`] migrates, prepares the [`zones`] and recovers interrupted jobs.
//! - [`catalog`]: dataset metadata, the data-element registry (one data, one source)
//!   and catalog search.
//! - [`versions`]: an upload streams into the raw zone, is validated synchronously
//!   (bad input never becomes a job), then a [`jobs`] job de-identifies it, stores the
//!   Parquet content-addressed in the de-identified zone and certifies it on the ledger.
//! - [`access`]: who may see which rows (dummy data for everyone, de-identified
//!   downloads only for unconditionally open datasets).
//! - Supervision: [`objections`] (异议 with working-day deadlines), the [`compliance`]
//!   and budget reports, release [`lineage`] with a receipt per hop, what left each
//!   dataset version ([`disclosure_audit`]), and the ledger [`verification`] job.
//! - [`fhe`]: private lookups — FHE query templates vetted by providers, uploaded
//!   server keys, encrypted queries as jobs under a grant's query budget.
//!
//! This crate knows nothing about HTTP: the binary maps [`SandboxError`] to problem
//! responses, and every error message here is written to be safe to show a client
//! (no cell values, no paths, no SQL).

pub mod access;
pub mod catalog;
pub mod compliance;
pub mod disclosure_audit;
pub mod fhe;
pub mod fhe_consent;
pub mod grants;
pub mod jobs;
pub mod lineage;
pub mod models;
pub mod objections;
pub mod provenance;
pub mod record_sets;
pub mod review;
pub mod runs;
pub mod verification;
pub mod versions;
pub mod workdays;
pub mod zones;

use std::path::PathBuf;
use std::sync::Arc;

use pdx_ledger::Ledger;
use pdx_ledger::db::{Db, MigrationSet};

pub use catalog::{Dataset, DatasetPage, DatasetQuery, NewDataset};
pub use jobs::{Job, JobStatus, Jobs};
pub use versions::{RawUpload, Version};

/// Settings of the sandbox.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Root of the zones (usually the pdx data directory).
    pub data_dir: PathBuf,
    /// Largest accepted upload, in bytes.
    pub upload_limit: u64,
    /// Keep raw uploads after de-identification (default: delete them).
    pub retain_raw: bool,
    /// Validity of a data asset certificate, in days.
    pub certificate_validity_days: u32,
    /// Working days a provider has to answer a grant application.
    pub grant_answer_working_days: u32,
    /// Working days a provider has to answer an objection (异议) to a dataset version.
    pub objection_answer_working_days: u32,
    /// Public holidays skipped when counting working days.
    pub holidays: Vec<time::Date>,
    /// Model runs one organisation may have in progress.
    pub org_run_concurrency: u32,
    /// Memory pool of one SQL run, in bytes (no spilling).
    pub run_memory_bytes: usize,
    /// Wall-clock limit of one run.
    pub run_timeout: std::time::Duration,
    /// Most rows in one output.
    pub max_output_rows: usize,
    /// Most bytes in one output.
    pub max_output_bytes: usize,
    /// Largest accepted FHE server key, in bytes.
    pub fhe_server_key_limit: u64,
    /// Most table rows one FHE lookup may scan (beyond, the client must reveal a bucket).
    pub fhe_max_rows: usize,
    /// Threads of the FHE evaluator (0: every core).
    pub fhe_threads: usize,
}

impl SandboxConfig {
    /// Defaults for a data directory: 1 GiB uploads, raw files deleted, one-year
    /// certificates.
    pub fn new(data_dir: impl Into<PathBuf>) -> SandboxConfig {
        SandboxConfig {
            data_dir: data_dir.into(),
            upload_limit: 1 << 30,
            retain_raw: false,
            certificate_validity_days: 365,
            grant_answer_working_days: 5,
            objection_answer_working_days: 5,
            holidays: Vec::new(),
            org_run_concurrency: 2,
            run_memory_bytes: 512 << 20,
            run_timeout: std::time::Duration::from_secs(120),
            max_output_rows: 100_000,
            max_output_bytes: 64 << 20,
            fhe_server_key_limit: pdx_algorithms::fhe::DEFAULT_SERVER_KEY_LIMIT,
            fhe_max_rows: 4096,
            fhe_threads: 0,
        }
    }
}

/// Everything that can go wrong, each variant safe to show to the client that caused
/// it except the internal ones, whose detail is logged instead.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The request is well-formed but invalid.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// No such resource (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this to this resource.
    #[error("{0}")]
    Forbidden(String),
    /// Too much at once (the organisation's concurrency cap); retry later.
    #[error("{0}")]
    Busy(String),
    /// An upload went over the configured limit.
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The upload does not match the declared schema.
    #[error("{0}")]
    Upload(#[from] pdx_algorithms::deid::ingest::IngestError),
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Database layer failure.
    #[error("database: {0}")]
    DbLayer(#[from] pdx_ledger::db::DbError),
    /// Ledger failure.
    #[error("ledger: {0}")]
    Ledger(#[from] pdx_ledger::LedgerError),
    /// File-system failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Anything else internal.
    #[error("internal: {0}")]
    Internal(String),
}

impl SandboxError {
    /// True when the caller is at fault (a 4xx); false for server faults.
    pub fn is_client_error(&self) -> bool {
        match self {
            SandboxError::Invalid(_)
            | SandboxError::Conflict(_)
            | SandboxError::NotFound(_)
            | SandboxError::Forbidden(_)
            | SandboxError::Busy(_)
            | SandboxError::TooLarge { .. } => true,
            SandboxError::Upload(e) => e.is_client_error(),
            _ => false,
        }
    }
}

/// Result alias.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// The sandbox's migrations, tracked in their own table.
pub fn migrations() -> MigrationSet {
    MigrationSet {
        table: "_pdx_sandbox_migrations",
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// The sandbox service: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    ledger: Ledger,
    config: SandboxConfig,
    zones: zones::Zones,
    jobs: Jobs,
    running: runs::Running,
    fhe: fhe::FheState,
    record_locks: record_sets::Locks,
}

impl Sandbox {
    /// Migrates the database, creates the zones, loads (or creates) the pseudonym
    /// master key and marks jobs interrupted by a restart as failed.
    pub async fn open(db: Db, ledger: Ledger, config: SandboxConfig) -> Result<Sandbox> {
        db.migrate(migrations()).await?;
        let zones = zones::Zones::open(&config.data_dir)?;
        let jobs = Jobs::new(db.clone());
        let interrupted = jobs.fail_interrupted().await?;
        fhe::fail_interrupted(&db).await?;
        // Their run rows would otherwise hold the organisations' concurrency slots.
        sqlx::query("UPDATE model_runs SET status = 'failed' WHERE status = 'running'")
            .execute(db.pool())
            .await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "jobs interrupted by a restart were marked failed"
            );
        }
        zones.discard_partial_uploads()?;
        Ok(Sandbox {
            inner: Arc::new(Inner {
                db,
                ledger,
                config,
                zones,
                jobs,
                running: runs::Running::default(),
                fhe: fhe::FheState::default(),
                record_locks: record_sets::Locks::default(),
            }),
        })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// The job table.
    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    /// The working-day calendar for deadlines.
    pub fn calendar(&self) -> workdays::Calendar {
        workdays::Calendar::with_holidays(self.inner.config.holidays.iter().copied())
    }

    fn zones(&self) -> &zones::Zones {
        &self.inner.zones
    }

    fn running(&self) -> &runs::Running {
        &self.inner.running
    }

    fn record_locks(&self) -> &record_sets::Locks {
        &self.inner.record_locks
    }
}

/// A new random id with a readable prefix, e.g. `ds_3f9a…`.
pub(crate) fn new_id(prefix: &str) -> String {
    let bytes: [u8; 8] = rand::random();
    format!("{prefix}_{}", hex::encode(bytes))
}
