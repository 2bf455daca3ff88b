//! # pdx-sandbox: where models run and what may leave
//!
//! Catalog, storage zones (raw, de-identified, quarantine, released), grants
//! (open-use agreements), jobs and their limits, the vetting workflow and privacy
//! budgets. It uses `pdx-algorithms` for the compute, persists with sqlx through
//! [`pdx_ledger::db::Db`], and writes certificates, grants, releases and privacy spends
//! to the ledger inside the same transaction as its own rows, so a row and its ledger
//! entry exist together or not at all.
//!
//! [`Sandbox`] is a thin handle (an `Arc`, cheap to clone) over what every concern
//! shares: the database, the ledger, the configuration, the zones and the [`jobs`]
//! runner. Each concern is a *sub-service* declared in its own file and reached through
//! a getter (`sandbox.runs()`, `sandbox.catalog()`, …); it dereferences to the handle
//! for the shared parts and for the other sub-services.
//!
//! Read top-down:
//! - [`Sandbox::open`] migrates and prepares the [`zones`]; [`Sandbox::resume_jobs`]
//!   then resumes the [`jobs`] a restart cut off (durable: each keeps the inputs it
//!   needs to run again; one runner starts every job and records its outcome). Several
//!   servers may share one database ([`cluster`]): each job runs on the instance that
//!   claimed it, and [`Sandbox::take_over_jobs`] resumes those of a server that died.
//! - [`catalog`]: dataset metadata, the data-element registry (one data, one source)
//!   and catalog search; [`lifecycle`]: an entry is a draft until its provider submits
//!   it and the data authority publishes it, and each edit of its metadata is a catalog
//!   revision (GD21 Art.10–11; XT Art.12, 14). Unpublished entries are visible only to
//!   their provider, the authority and supervisors, and unreachable by developers.
//!   [`open_attributes`]: a published entry's open attribute changes only with the data
//!   authority's approval (SD22 Art.8, 10, 20), and the authority may relax it for an
//!   emergency until an end date (XT Art.23(7)). [`classification`]: a not-shared
//!   classification is filed with the authority with its legal basis (GD21 Art.13), and
//!   level L4 data is never unconditionally open, on any path.
//! - [`versions`]: an upload streams into the raw zone, is validated synchronously
//!   (bad input never becomes a job), then a [`jobs`] job de-identifies it, stores the
//!   Parquet content-addressed in the de-identified zone and certifies it on the ledger.
//! - [`access`]: who may see which rows (dummy data for everyone but, on a not-open
//!   dataset, for its provider and supervisors only; de-identified downloads only for
//!   unconditionally open datasets). Not-open data (不予开放) is unreachable by
//!   developers on every path through one check,
//!   [`catalog::Dataset::reachable_by_developers`] (SD22 Art.8; GD21 Art.32).
//! - [`grants`] (open-use agreements and their budgets; their purpose kinds and
//!   agreement texts in [`grant_terms`]), [`models`] (registered
//!   algorithm models), [`runs`] (admission → budget → engine → quarantine, with the
//!   disclosure checks and [`record_sets`] for conditional data) and [`review`] (the
//!   vetting workflow and releases, with their [`provenance`]).
//! - [`open_data_requests`]: anyone, the public without a key too, asks for a dataset to
//!   be opened or published; the data authority routes it to a provider, which answers
//!   within a working-day deadline, all on the ledger (SD22 Art.9, 12; GD21 Art.34).
//! - Supervision: [`objections`] (异议 with working-day deadlines), the [`compliance`]
//!   and budget reports, release [`lineage`] with a receipt per hop, what left each
//!   dataset version ([`disclosure_audit`]), and the ledger [`verification`] job.
//!   [`quality`]: an accepted objection obliges a corrected version within 10 working
//!   days, linked to it, and each entry's update frequency sets when its next version
//!   is due (SD22 Art.13; XT Art.20–22; GD21 Art.16); the data authority's yearly
//!   [`evaluation`] of each provider and its [`rectification`] orders (GD21 Art.48–49,
//!   52; GD18 Art.30–31).
//! - [`destruction`]: a provider destroys a version or a whole dataset; its files go from
//!   every zone, the catalog keeps a tombstone, and a `Destruction` entry records the
//!   hashes and the reason (GD21 Art.40; XT Art.34(4)). [`usage`]: every download and
//!   export is a `DataAccess` entry (GD18 Art.28; XT Art.34(4)), and a provider sees
//!   which grants, runs, releases and downloads touched its dataset (SD22 Art.14).
//! - [`sharing`]: a providing department asks for another's dataset for its duties; the
//!   dataset's share type grants it at once, leaves it to the owner within 10 working
//!   days, or refuses it with its legal basis (GD18; GD21 Art.22-23), and every request,
//!   decision and download is on the ledger.
//! - [`fhe`]: private lookups — FHE query templates vetted by providers, uploaded
//!   server keys, encrypted queries as jobs under a grant's query budget, each with a
//!   commitment to the subject's consent ([`fhe_consent`]).
//!
//! Errors carry a class ([`ErrorClass`]) that decides their HTTP status in one place.
//! This crate knows nothing about HTTP: the binary maps [`SandboxError`] to problem
//! responses, and every error message here is written to be safe to show a client
//! (no cell values, no paths, no SQL).
//!
//! The schemas for the binary's OpenAPI document (`utoipa::ToSchema` on the public
//! types, `utoipa::IntoParams` on [`DatasetQuery`]) are derived only under the
//! `openapi` feature, which the binary enables, so the crate itself stays free of HTTP.
//! Nor does it depend on polars: frames are named through [`pdx_algorithms::DataFrame`],
//! and Parquet is read and written by `pdx-algorithms`.

pub mod access;
pub mod catalog;
pub mod classification;
pub mod cluster;
pub mod compliance;
pub mod config;
pub mod destruction;
pub mod disclosure_audit;
pub(crate) mod engines;
pub mod error;
pub mod evaluation;
pub mod fhe;
pub mod fhe_consent;
pub mod grant_terms;
pub mod grants;
pub mod jobs;
pub mod lifecycle;
pub mod lineage;
pub mod models;
pub mod objections;
pub mod open_attributes;
pub mod open_data_requests;
pub mod provenance;
pub mod quality;
pub mod record_sets;
pub mod rectification;
pub mod review;
pub mod runs;
pub mod sharing;
pub(crate) mod store;
pub mod usage;
pub mod verification;
pub mod versions;
pub mod workdays;
pub mod zones;

use std::collections::BTreeSet;
use std::sync::Arc;

use pdx_ids::{KeyId, OrgId};
use pdx_ledger::db::{Db, MigrationSet};
use pdx_ledger::{Actor, Ledger};

pub use catalog::{CatalogReader, CatalogStatus, Dataset, DatasetPage, DatasetQuery, NewDataset};
pub use config::SandboxConfig;
pub use error::{ErrorClass, Result, SandboxError};
pub use jobs::{Job, JobStatus, Jobs};
pub use versions::{RawUpload, Version};

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
    runner: jobs::JobRunner,
    cluster: cluster::Cluster,
    fhe: fhe::FheState,
    record_locks: record_sets::Locks,
    record_unions: Arc<record_sets::Unions>,
}

impl Sandbox {
    /// Migrates the database, creates the zones and loads (or creates) the pseudonym
    /// master key. The jobs a restart cut off, and partial uploads, stay as they are
    /// until the server calls [`Sandbox::resume_jobs`] (other commands that open the
    /// data directory leave a running server's work alone).
    pub async fn open(db: Db, ledger: Ledger, config: SandboxConfig) -> Result<Sandbox> {
        db.migrate(migrations()).await?;
        let zones = zones::Zones::open(&config.data_dir, &config.zones_kek_file)?;
        if !cluster::valid_instance_name(&config.instance) {
            return Err(SandboxError::Invalid(
                "the instance name must be 1 to 64 ASCII letters, digits, '.', '_', '-' or ':'"
                    .into(),
            ));
        }
        let cluster =
            cluster::Cluster::new(db.clone(), config.instance.clone(), config.instance_lease);
        let jobs = Jobs::new(db.clone());
        let runner = jobs::JobRunner::new(jobs.clone(), cluster.clone(), config.job_start_pause);
        Ok(Sandbox {
            inner: Arc::new(Inner {
                db,
                ledger,
                config,
                zones,
                jobs,
                runner,
                cluster,
                fhe: fhe::FheState::default(),
                record_locks: record_sets::Locks::default(),
                record_unions: Arc::default(),
            }),
        })
    }

    /// At start: registers this instance ([`cluster::Cluster::register`]: refused on
    /// SQLite while another server is live), then claims and resumes every job this
    /// instance's name left running, every job of a server that is no longer live and
    /// every queued one, each from its stored inputs (see [`jobs`]); a job that cannot be
    /// resumed is recorded failed with the reason. The model runs of `suspended_orgs`
    /// are cancelled instead, as their suspension cancels them
    /// ([`runs::Runs::cancel_runs_of`]): a crash between a suspension and that clean-up
    /// must not let them finish. Call it once, at start, before any request; `addr` is
    /// the address this server listens on.
    pub async fn resume_jobs(&self, addr: &str, suspended_orgs: &BTreeSet<OrgId>) -> Result<()> {
        self.cluster().register(addr).await?;
        // Uploads cut off mid-stream were never acknowledged (validated ones are kept
        // under another name for their ingest jobs). A live peer may be writing its own
        // right now, so with one only what no process has touched for a while goes.
        let peers = self.cluster().live_peers().await?;
        let older_than = if peers.is_empty() {
            None
        } else {
            Some(zones::ABANDONED_AFTER)
        };
        self.zones().discard_partial_uploads(older_than)?;
        let claimed = self.jobs().claim_unfinished(self.cluster(), true).await?;
        if !claimed.is_empty() {
            tracing::warn!(
                jobs = claimed.len(),
                "resuming jobs interrupted by a restart"
            );
        }
        self.resume_claimed(claimed, suspended_orgs).await
    }

    /// Claims the jobs a server that is no longer live left running, and jobs left
    /// queued longer than a lease, and resumes them here; the jobs claimed. Servers call
    /// it every [`SandboxConfig::job_poll_interval`]; `suspended_orgs` reads the
    /// suspended organisations (before anything is claimed, so that a failure to read
    /// them leaves no job claimed and not resumed).
    pub async fn take_over_jobs<F, Fut>(&self, suspended_orgs: F) -> Result<usize>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<BTreeSet<OrgId>>>,
    {
        if self.cluster().lapsed() {
            // Its own jobs may be being taken over: it takes none until it beats again.
            return Ok(0);
        }
        let suspended = suspended_orgs().await?;
        let claimed = self.jobs().claim_unfinished(self.cluster(), false).await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let count = claimed.len();
        tracing::warn!(
            jobs = count,
            instance = self.cluster().name(),
            "taking over jobs of a server that stopped"
        );
        self.resume_claimed(claimed, &suspended).await?;
        Ok(count)
    }

    /// One heartbeat of this instance (every third of the lease): refreshes its row,
    /// takes or renews the ledger leadership, and aborts the jobs it runs that another
    /// instance claimed or that were cancelled elsewhere. When its heartbeats have
    /// failed for longer than its lease (the database unreachable), or another process
    /// took its name, it stops every job it runs: other instances may be running them
    /// now. True while this instance leads.
    pub async fn heartbeat(&self) -> Result<bool> {
        let beat = self.cluster().heartbeat().await;
        if matches!(beat, Ok(false)) || (beat.is_err() && self.cluster().lapsed()) {
            self.runner().abort_all();
        }
        beat?;
        let leading = self.cluster().lead(cluster::LEDGER_ROLE).await?;
        self.runner().abort_lost().await?;
        Ok(leading)
    }

    /// At a clean stop: stops the jobs running here and marks this instance stopped,
    /// giving up its leader leases, so that other servers take both over at once (a
    /// restart under the same name takes its jobs back).
    pub async fn leave(&self) -> Result<()> {
        self.runner().abort_all();
        self.cluster().leave().await
    }

    /// Resumes jobs this instance claimed (see [`Self::resume_jobs`]).
    async fn resume_claimed(
        &self,
        claimed: Vec<(jobs::Job, Option<jobs::JobInputs>)>,
        suspended_orgs: &BTreeSet<OrgId>,
    ) -> Result<()> {
        for (job, inputs) in claimed {
            use jobs::JobInputs;
            let resumed = match inputs {
                Some(JobInputs::Ingest {
                    actor,
                    dataset_id,
                    format,
                    raw_file,
                }) => {
                    self.versions()
                        .resume_ingest(&job.id, actor, &dataset_id, format, &raw_file)
                        .await
                }
                Some(JobInputs::ModelRun { actor, .. })
                    if suspended_orgs.contains(actor.org.as_str()) =>
                {
                    self.runs().cancel_unresumed_run(&job.id).await
                }
                Some(JobInputs::ModelRun { actor, request }) => {
                    self.runs().resume_run(&job.id, actor, request).await
                }
                Some(JobInputs::FheQuery { actor, query_id }) => {
                    self.fhe().resume_fhe_query(&job.id, actor, &query_id).await
                }
                Some(JobInputs::LedgerVerification) => {
                    self.verification().resume_ledger_verification(&job.id);
                    Ok(())
                }
                None => Err(SandboxError::Conflict(
                    "the server restarted while this job ran; submit it again".into(),
                )),
            };
            if let Err(e) = resumed {
                tracing::warn!(job_id = %job.id, error = %e, "an interrupted job could not be resumed");
                self.jobs().finish(&job.id, Err(e)).await;
            }
        }
        runs::close_unresumed(self.db()).await?;
        fhe::fail_unresumed(self.db()).await?;
        Ok(())
    }

    /// This server among the servers sharing the database.
    pub fn cluster(&self) -> &cluster::Cluster {
        &self.inner.cluster
    }

    /// Who may see which rows: dummy data and de-identified downloads.
    pub fn access(&self) -> access::Access {
        access::Access::new(self.clone())
    }

    /// Datasets, the data-element registry and catalog search.
    pub fn catalog(&self) -> catalog::Catalog {
        catalog::Catalog::new(self.clone())
    }

    /// Classification filings (GD21 Art.13) and the open attributes each level allows.
    pub fn classification(&self) -> classification::Classification {
        classification::Classification::new(self.clone())
    }

    /// Destruction of dataset versions and whole datasets, and their tombstones.
    pub fn destructions(&self) -> destruction::Destructions {
        destruction::Destructions::new(self.clone())
    }

    /// How a provider's datasets are used, and the record of every download.
    pub fn usage(&self) -> usage::Usage {
        usage::Usage::new(self.clone())
    }

    /// The compliance and budget reports.
    pub fn compliance(&self) -> compliance::Compliance {
        compliance::Compliance::new(self.clone())
    }

    /// What left each dataset version, by rule and organisation.
    pub fn disclosure_audit(&self) -> disclosure_audit::DisclosureAudit {
        disclosure_audit::DisclosureAudit::new(self.clone())
    }

    /// The data authority's yearly evaluations of providers.
    pub fn evaluations(&self) -> evaluation::Evaluations {
        evaluation::Evaluations::new(self.clone())
    }

    /// Private lookups: FHE templates, server keys and encrypted queries.
    pub fn fhe(&self) -> fhe::Fhe {
        fhe::Fhe::new(self.clone())
    }

    /// Consent to private lookups: subjects' keys, authorisations and their opening.
    pub fn fhe_consent(&self) -> fhe_consent::FheConsent {
        fhe_consent::FheConsent::new(self.clone())
    }

    /// Grants (open-use agreements) and their budgets.
    pub fn grants(&self) -> grants::Grants {
        grants::Grants::new(self.clone())
    }

    /// The catalog life cycle: submission, the data authority's review, and revisions.
    pub fn lifecycle(&self) -> lifecycle::Lifecycle {
        lifecycle::Lifecycle::new(self.clone())
    }

    /// Open-attribute changes and emergency relaxations.
    pub fn open_attributes(&self) -> open_attributes::OpenAttributes {
        open_attributes::OpenAttributes::new(self.clone())
    }

    /// Requests to open data: filing, routing by the data authority, answers.
    pub fn open_data_requests(&self) -> open_data_requests::OpenDataRequests {
        open_data_requests::OpenDataRequests::new(self.clone())
    }

    /// Release lineage with a receipt per hop.
    pub fn lineage(&self) -> lineage::Lineage {
        lineage::Lineage::new(self.clone())
    }

    /// Registered algorithm models.
    pub fn models(&self) -> models::Models {
        models::Models::new(self.clone())
    }

    /// Objections to dataset versions and their working-day deadlines.
    pub fn objections(&self) -> objections::Objections {
        objections::Objections::new(self.clone())
    }

    /// Where a released output came from.
    pub fn provenance(&self) -> provenance::Provenance {
        provenance::Provenance::new(self.clone())
    }

    /// The data quality loop: corrections of accepted objections and update frequencies.
    pub fn quality(&self) -> quality::Quality {
        quality::Quality::new(self.clone())
    }

    /// The data authority's rectification orders.
    pub fn rectifications(&self) -> rectification::Rectifications {
        rectification::Rectifications::new(self.clone())
    }

    /// The vetting workflow: outputs in quarantine, reviews and releases.
    pub fn reviews(&self) -> review::Reviews {
        review::Reviews::new(self.clone())
    }

    /// Model runs: admission, budget, engine, quarantine; dry runs.
    pub fn runs(&self) -> runs::Runs {
        runs::Runs::new(self.clone())
    }

    /// Data sharing between government departments (GD18; GD21 Art.22-23).
    pub fn sharing(&self) -> sharing::Sharing {
        sharing::Sharing::new(self.clone())
    }

    /// The ledger verification job.
    pub fn verification(&self) -> verification::Verification {
        verification::Verification::new(self.clone())
    }

    /// Uploads, de-identification and certified versions.
    pub fn versions(&self) -> versions::Versions {
        versions::Versions::new(self.clone())
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

    /// How zone files are kept: sealed under the zones' keyring. Every read of a zone
    /// file outside this crate (downloads, product bundles) goes through it.
    pub fn at_rest(&self) -> &pdx_seal::AtRest {
        self.zones().at_rest()
    }

    /// The plaintext of the zone file at `path` (a path this crate handed out), read
    /// off the async threads; a tampered file fails here.
    pub async fn read_zone_file(&self, path: std::path::PathBuf) -> Result<Vec<u8>> {
        let at_rest = self.at_rest().clone();
        tokio::task::spawn_blocking(move || at_rest.read_all(&path))
            .await
            .map_err(|e| SandboxError::Internal(format!("zone read task: {e}")))?
            .map_err(SandboxError::from)
    }

    fn zones(&self) -> &zones::Zones {
        &self.inner.zones
    }

    fn runner(&self) -> &jobs::JobRunner {
        &self.inner.runner
    }

    fn record_locks(&self) -> &record_sets::Locks {
        &self.inner.record_locks
    }

    fn record_unions(&self) -> Arc<record_sets::Unions> {
        Arc::clone(&self.inner.record_unions)
    }
}

/// Declares a sub-service: a view of the [`Sandbox`] handle that owns one concern's
/// methods, declared in that concern's file. Making one costs an `Arc` clone; it
/// dereferences to the handle for what every concern shares (database, ledger,
/// configuration, jobs) and for reaching the other sub-services.
macro_rules! service {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            sandbox: $crate::Sandbox,
        }

        impl $name {
            /// The sub-service of a sandbox.
            pub(crate) fn new(sandbox: $crate::Sandbox) -> Self {
                Self { sandbox }
            }
        }

        impl std::ops::Deref for $name {
            type Target = $crate::Sandbox;

            fn deref(&self) -> &$crate::Sandbox {
                &self.sandbox
            }
        }
    };
}
pub(crate) use service;

/// A random name with a readable prefix for a scratch or temporary file, e.g.
/// `raw_3f9a…` (not an id: ids are minted by their types, e.g. `JobId::random()`).
pub(crate) fn scratch_name(prefix: &str) -> String {
    let bytes: [u8; 8] = rand::random();
    format!("{prefix}_{}", hex::encode(bytes))
}

/// The organisation of an acting caller, typed. The actor comes from our own key table
/// (or a stored job), so a malformed organisation id is an internal fault.
pub(crate) fn actor_org(actor: &Actor) -> Result<OrgId> {
    OrgId::parse(&actor.org)
        .map_err(|_| SandboxError::Internal("the acting organisation's id is malformed".into()))
}

/// The API key id of an acting caller, typed (an internal fault when malformed, as for
/// [`actor_org`]).
pub(crate) fn actor_key(actor: &Actor) -> Result<KeyId> {
    KeyId::parse(&actor.key_id)
        .map_err(|_| SandboxError::Internal("the acting key's id is malformed".into()))
}

/// Trims a free text (a reason, a legal basis, a detail) and checks it is 1 to `max`
/// characters; returns it trimmed.
pub(crate) fn checked_text<'a>(field: &str, text: &'a str, max: usize) -> Result<&'a str> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(SandboxError::Invalid(format!(
            "`{field}` must be 1 to {max} characters"
        )));
    }
    Ok(text)
}

/// Checks a free text is not blank and at most `max` characters (kept as sent, untrimmed).
pub(crate) fn validate_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(SandboxError::Invalid(format!(
            "`{field}` must not be empty"
        )));
    }
    if value.chars().count() > max {
        return Err(SandboxError::Invalid(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_bounded_and_never_echoed() {
        assert_eq!(checked_text("reason", "  law  ", 10).ok(), Some("law"));
        let err = checked_text("legal_basis", "   ", 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("legal_basis"), "{err}");
        let long = "x".repeat(11);
        let err = checked_text("reason", &long, 10).unwrap_err().to_string();
        assert!(!err.contains("xxxx"), "{err}");
    }
}
