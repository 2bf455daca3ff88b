//! A full ledger verification, run as a job that a supervisor polls.
//!
//! The job runs the same independent verifier as `pdx ledger verify`
//! ([`pdx_ledger::Ledger::verify_with`]): every payload hash, the chain, the Merkle
//! root at every checkpoint, every checkpoint signature under the log's public key and
//! the consistency between checkpoints. The hashing is CPU work, so it runs on a
//! blocking thread; the job's progress is updated twice a second from the verifier's
//! page callback.
//!
//! A ledger that fails verification is a *successful* job whose result says so and
//! names the first bad seq: the job did its work. The job fails only when the
//! verification could not run (the database did not answer), with a generic detail.
//! On a failure the counts are those vouched for before the first bad seq: entries
//! `0..first_bad_seq`, and the checkpoints at sizes up to it.
//!
//! A supervisor who does not trust the server runs the same verifier on their own
//! machine over `pdx ledger export`; this job is the convenient, server-side check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pdx_ids::JobId;
use pdx_ledger::Actor;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::jobs::{Job, JobInputs};
use crate::{Result, SandboxError, actor_org};

crate::service! {
    /// The ledger verification job.
    Verification
}

/// The job kind of a ledger verification.
pub const VERIFY_JOB_KIND: &str = "ledger_verification";
const STAGE: &str = "verifying the ledger";

/// The outcome of a verification job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerificationResult {
    /// True if the whole ledger verified.
    pub ok: bool,
    /// Entries verified (on a failure: those before the first bad seq).
    pub entries_checked: u64,
    /// Checkpoints whose signature, root and consistency were verified.
    pub checkpoints_checked: u64,
    /// The first seq that cannot be vouched for, if any.
    pub first_bad_seq: Option<u64>,
    /// What is wrong at that seq.
    pub reason: Option<String>,
    /// Merkle root over all entries (hex), when the ledger verified.
    pub root: Option<String>,
    /// The public key the checkpoints were verified under.
    pub public_key: String,
}

impl Verification {
    /// Starts a ledger verification job for `actor`'s organisation. One at a time per
    /// organisation: a second while one is in progress is refused as busy.
    pub async fn start_ledger_verification(&self, actor: &Actor) -> Result<Job> {
        let org = actor_org(actor)?;
        let running: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE kind = $1 AND org_id = $2 \
             AND status IN ('queued', 'running')",
        )
        .bind(VERIFY_JOB_KIND)
        .bind(org.clone())
        .fetch_one(self.db().pool())
        .await?
        .try_get("n")?;
        if running > 0 {
            return Err(SandboxError::Busy(
                "a ledger verification of this organisation is already running; poll it".into(),
            ));
        }
        let job = self
            .jobs()
            .create(
                &JobId::random(),
                VERIFY_JOB_KIND,
                &org,
                self.ledger().origin(),
                &JobInputs::LedgerVerification,
            )
            .await?;
        self.resume_ledger_verification(&job.id);
        Ok(job)
    }

    /// Runs (or, after a restart, runs again) the verification job `job_id`: it only
    /// reads, so running it twice is harmless.
    pub(crate) fn resume_ledger_verification(&self, job_id: &JobId) {
        let sandbox = self.clone();
        let id = job_id.clone();
        self.runner().spawn(job_id, async move {
            let result = sandbox.run_verification(&id).await?;
            serde_json::to_value(&result)
                .map_err(|e| SandboxError::Internal(format!("encoding a result: {e}")))
        });
    }

    async fn run_verification(&self, job_id: &JobId) -> Result<VerificationResult> {
        self.jobs().progress(job_id, STAGE, 0.0).await?;
        let ledger = self.ledger().clone();
        let key = ledger.verifier();
        let public_key = key.to_vkey();
        let checkpoint_sizes: Vec<u64> =
            ledger.checkpoints().await?.iter().map(|c| c.size).collect();
        let done = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let (done_w, total_w) = (done.clone(), total.clone());
        let handle = tokio::runtime::Handle::current();
        // Hashing is CPU work: keep it off the runtime's worker threads.
        let mut work = tokio::task::spawn_blocking(move || {
            handle.block_on(async move {
                ledger
                    .verify_with(&key, |d, t| {
                        done_w.store(d, Ordering::Relaxed);
                        total_w.store(t, Ordering::Relaxed);
                    })
                    .await
            })
        });
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let joined = loop {
            tokio::select! {
                joined = &mut work => break joined,
                _ = tick.tick() => {
                    let t = total.load(Ordering::Relaxed);
                    if t > 0 {
                        let fraction = done.load(Ordering::Relaxed) as f64 / t as f64;
                        // Progress is advisory: a missed update is not a failure.
                        let _ = self.jobs().progress(job_id, STAGE, fraction.min(0.99)).await;
                    }
                }
            }
        };
        let outcome =
            joined.map_err(|e| SandboxError::Internal(format!("verification task: {e}")))??;
        Ok(match outcome {
            Ok(report) => VerificationResult {
                ok: true,
                entries_checked: report.entries,
                checkpoints_checked: report.checkpoints,
                first_bad_seq: None,
                reason: None,
                root: Some(report.root.to_hex()),
                public_key,
            },
            Err(failure) => VerificationResult {
                ok: false,
                entries_checked: failure.seq,
                checkpoints_checked: checkpoint_sizes
                    .iter()
                    .filter(|&&size| size <= failure.seq)
                    .count() as u64,
                first_bad_seq: Some(failure.seq),
                reason: Some(failure.reason),
                root: None,
                public_key,
            },
        })
    }
}
