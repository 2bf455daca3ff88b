//! Long work runs as a job that clients poll: ingests, model runs, FHE lookups and
//! ledger verifications. A job row is written before the work starts and updated as it
//! moves through `queued → running → succeeded | failed`.
//!
//! * **One runner.** [`JobRunner::spawn`] is the only code that starts a job's work,
//!   keeps its abort handle (a suspension cancels runs) and records the work's outcome
//!   (a resume that finds the result already stored records it without running).
//! * **Durable.** Each job row keeps its [`JobInputs`]: what the work needs to run
//!   again. When the server starts, every job its last process left `queued` or
//!   `running` (and any a dead server left) is resumed from them (`Sandbox::resume_jobs`,
//!   and `Sandbox::take_over_jobs` while it serves); each kind's resume first
//!   checks whether its result was already stored, so nothing runs twice into two
//!   results and nothing spent at admission is spent again. The first outcome recorded
//!   stands: a finished job is never marked again.
//! * **Claimed.** A job runs on the one server instance whose claim succeeded (a
//!   conditional `UPDATE` naming the instance in `jobs.instance_id`): the one that
//!   accepted it, or, once that one is no longer live, whichever takes it over
//!   ([`crate::cluster`] gives the rules). A job claimed by another instance, or
//!   cancelled elsewhere, is aborted here at the next heartbeat ([`JobRunner::abort_lost`]).
//! * **Safe failures.** A failure stores a client-safe problem (status and detail).
//!   Internal causes are logged with the job id and replaced by a generic detail,
//!   because an engine error can carry a row's value.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pdx_algorithms::deid::ingest::UploadFormat;
use pdx_ids::{DatasetId, FheQueryId, JobId, OrgId};
use pdx_ledger::Actor;
use pdx_ledger::db::{Db, now_ms};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::cluster::Cluster;
use crate::runs::RunRequest;
use crate::store;
use crate::{ErrorClass, Result, SandboxError};

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, not started.
    Queued,
    /// Working.
    Running,
    /// Finished; `result` holds the outcome.
    Succeeded,
    /// Finished; `error` says why.
    Failed,
}

impl JobStatus {
    fn parse(s: &str) -> Result<JobStatus> {
        Ok(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            other => {
                return Err(SandboxError::Internal(format!(
                    "unknown job status {other}"
                )));
            }
        })
    }
}

/// Why a job failed, safe to show its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobFailure {
    /// The HTTP status the failure would have had as a synchronous request.
    pub status: u16,
    /// What went wrong.
    pub detail: String,
}

impl JobFailure {
    /// The client-safe failure for an error (internal causes are logged, not kept).
    pub fn from_error(job_id: &JobId, err: &SandboxError) -> JobFailure {
        let class = err.class();
        if class != ErrorClass::Internal {
            JobFailure {
                status: class.status(),
                detail: err.to_string(),
            }
        } else {
            tracing::error!(%job_id, cause = %err, "job failed internally");
            JobFailure {
                status: 500,
                detail: "the job failed inside the server; quote the job id when reporting it"
                    .into(),
            }
        }
    }
}

/// A job as its owner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Job id.
    pub id: JobId,
    /// What kind of work (`ingest`, ...).
    pub kind: String,
    /// Owning organisation.
    pub org_id: OrgId,
    /// What it works on (a dataset id, ...).
    pub subject: String,
    /// Status.
    pub status: JobStatus,
    /// Current stage, e.g. `de-identifying`.
    pub stage: String,
    /// 0.0 to 1.0.
    pub progress: f64,
    /// Outcome, once succeeded.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<serde_json::Value>,
    /// Failure, once failed.
    pub error: Option<JobFailure>,
    /// Created, ms since epoch.
    pub created_ms: i64,
    /// Last change, ms since epoch.
    pub updated_ms: i64,
}

/// What a job needs to run again after a restart, kept as JSON in its row.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum JobInputs {
    /// De-identify and certify a validated upload, kept in the raw zone as `raw_file`.
    Ingest {
        /// Who uploaded it.
        actor: Actor,
        /// The dataset.
        dataset_id: DatasetId,
        /// How the upload is encoded.
        format: UploadFormat,
        /// The upload's file name in the raw zone.
        raw_file: String,
    },
    /// A model run as requested (budget and slot were taken at admission).
    ModelRun {
        /// Who started it.
        actor: Actor,
        /// The request.
        request: RunRequest,
    },
    /// An admitted FHE lookup (its ciphertext is kept beside the query).
    FheQuery {
        /// Who sent it.
        actor: Actor,
        /// The query.
        query_id: FheQueryId,
    },
    /// A verification of the whole ledger.
    LedgerVerification,
}

const COLUMNS: &str = "id, kind, org_id, subject, status, stage, progress, result_json, error_json, created_ms, updated_ms";

fn job_from_row(row: &AnyRow) -> Result<Job> {
    let result: Option<String> = row.try_get("result_json")?;
    let error: Option<String> = row.try_get("error_json")?;
    let parse = |s: Option<String>| -> Result<Option<serde_json::Value>> {
        s.map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| SandboxError::Internal(format!("stored job json: {e}")))
    };
    let error = match parse(error)? {
        Some(v) => Some(
            serde_json::from_value(v)
                .map_err(|e| SandboxError::Internal(format!("stored job error: {e}")))?,
        ),
        None => None,
    };
    Ok(Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        org_id: row.try_get("org_id")?,
        subject: row.try_get("subject")?,
        status: JobStatus::parse(&row.try_get::<String, _>("status")?)?,
        stage: row.try_get("stage")?,
        progress: row.try_get("progress")?,
        result: parse(result)?,
        error,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// The job table.
#[derive(Clone)]
pub struct Jobs {
    db: Db,
}

impl Jobs {
    /// Over a database.
    pub fn new(db: Db) -> Jobs {
        Jobs { db }
    }

    /// Records a new queued job with what it needs to resume.
    pub(crate) async fn create(
        &self,
        id: &JobId,
        kind: &str,
        org_id: &OrgId,
        subject: &(impl AsRef<str> + ?Sized),
        inputs: &JobInputs,
    ) -> Result<Job> {
        let mut conn = self.db.pool().acquire().await?;
        insert(&mut conn, id, kind, org_id, subject, inputs).await?;
        drop(conn);
        self.created(id).await
    }

    /// A job just inserted (by [`insert`] inside a caller's transaction).
    pub(crate) async fn created(&self, id: &JobId) -> Result<Job> {
        self.get(id)
            .await?
            .ok_or_else(|| SandboxError::Internal("job vanished after insert".into()))
    }

    /// Moves a job to `running` at a stage and progress.
    pub async fn progress(&self, id: &JobId, stage: &str, progress: f64) -> Result<()> {
        store::jobs::mark_running(
            self.db.pool(),
            id,
            stage,
            progress.clamp(0.0, 1.0),
            now_ms(),
        )
        .await
    }

    /// Marks an unfinished job succeeded with its result (a finished one stays as it is:
    /// the first outcome recorded stands).
    pub async fn succeed(&self, id: &JobId, result: &serde_json::Value) -> Result<()> {
        self.succeed_as(id, result, None).await
    }

    /// Marks an unfinished job failed (a finished one stays as it is).
    pub async fn fail(&self, id: &JobId, failure: &JobFailure) -> Result<()> {
        self.fail_as(id, failure, None).await
    }

    /// [`Self::succeed`], with `holder` only while that instance holds the job.
    async fn succeed_as(
        &self,
        id: &JobId,
        result: &serde_json::Value,
        holder: Option<&str>,
    ) -> Result<()> {
        let db = self.db.pool();
        store::jobs::mark_succeeded(db, id, result.to_string(), now_ms(), holder).await
    }

    /// [`Self::fail`], with `holder` only while that instance holds the job.
    async fn fail_as(&self, id: &JobId, failure: &JobFailure, holder: Option<&str>) -> Result<()> {
        let json = serde_json::to_string(failure)
            .map_err(|e| SandboxError::Internal(format!("encoding a job failure: {e}")))?;
        store::jobs::mark_failed(self.db.pool(), id, json, now_ms(), holder).await
    }

    /// One job.
    pub async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// The jobs of one organisation, newest first.
    pub async fn for_org(&self, org_id: &OrgId, limit: i64) -> Result<Vec<Job>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE org_id = $1 ORDER BY created_ms DESC, id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.clone())
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Records a job's outcome (logging, not failing, when that cannot be written).
    pub async fn finish(&self, id: &JobId, outcome: Result<serde_json::Value>) {
        self.finish_as(id, outcome, None).await;
    }

    /// [`Self::finish`], with `holder` only while that instance holds the job: the
    /// outcome of a runner that lost the job to another instance is not recorded.
    pub(crate) async fn finish_as(
        &self,
        id: &JobId,
        outcome: Result<serde_json::Value>,
        holder: Option<&str>,
    ) {
        let recorded = match outcome {
            Ok(value) => self.succeed_as(id, &value, holder).await,
            Err(err) => {
                self.fail_as(id, &JobFailure::from_error(id, &err), holder)
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(job_id = %id, error = %e, "could not record a job's outcome");
        }
    }

    /// Claims for this instance, oldest first, at most [`CLAIM_BATCH`] unfinished jobs
    /// that no live instance runs: jobs `running` under an instance that is no longer
    /// live (or under none), jobs left `queued` longer than a lease (their instance died
    /// before claiming them) and, with `take_own` (at start), every job this instance's
    /// name left running (all of them). Returns them with their inputs (`None` for jobs
    /// from before inputs were kept).
    pub(crate) async fn claim_unfinished(
        &self,
        cluster: &Cluster,
        take_own: bool,
    ) -> Result<Vec<(Job, Option<JobInputs>)>> {
        let now = now_ms();
        let claim = store::jobs::Claim {
            instance: cluster.name(),
            now,
            queued_before: cluster.lease_ago(now),
            take_own,
            // At start every job of this name at once: once claimed they are this
            // process's, and a later claim would not take them again.
            limit: if take_own { i64::MAX } else { CLAIM_BATCH },
        };
        let rows = store::jobs::claim_unfinished(&self.db, &claim, COLUMNS).await?;
        rows.iter()
            .map(|row| {
                let inputs: Option<String> = row.try_get("inputs_json")?;
                let inputs =
                    match inputs {
                        Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                            SandboxError::Internal(format!("stored job inputs: {e}"))
                        })?),
                        None => None,
                    };
                Ok((job_from_row(row)?, inputs))
            })
            .collect()
    }
}

/// Unfinished jobs by the instance holding them (`None`: queued, not claimed yet) and
/// status (`queued` or `running`), for the metrics.
pub type JobCounts = Vec<(Option<String>, String, i64)>;

impl Jobs {
    /// How many jobs each instance holds, queued or running ([`JobCounts`]).
    pub async fn unfinished_counts(&self) -> Result<JobCounts> {
        let rows = sqlx::query(
            "SELECT instance_id, status, COUNT(*) AS n FROM jobs \
             WHERE status IN ('queued', 'running') GROUP BY instance_id, status \
             ORDER BY instance_id, status",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("instance_id")?,
                    row.try_get("status")?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }
}

/// Most jobs one claim takes (the rest wait for the next poll).
pub(crate) const CLAIM_BATCH: i64 = 16;

/// Inserts a queued job, on a caller's connection so that it can share a transaction
/// with what admitted it (budget spends, run rows).
pub(crate) async fn insert(
    conn: &mut sqlx::AnyConnection,
    id: &JobId,
    kind: &str,
    org_id: &OrgId,
    subject: &(impl AsRef<str> + ?Sized),
    inputs: &JobInputs,
) -> Result<()> {
    let inputs = serde_json::to_string(inputs)
        .map_err(|e| SandboxError::Internal(format!("encoding job inputs: {e}")))?;
    let row = store::jobs::NewJob {
        id,
        kind,
        org_id,
        subject: subject.as_ref(),
        inputs_json: &inputs,
        created_ms: now_ms(),
    };
    store::jobs::insert_job(&mut *conn, &row).await
}

/// Starts jobs' work in the background and records how it ended; keeps the abort
/// handles of running jobs so they can be cancelled. Cheap to clone.
#[derive(Clone)]
pub struct JobRunner {
    /// The job table.
    jobs: Jobs,
    /// This instance, which claims the jobs it runs.
    cluster: Cluster,
    /// Abort handles of jobs in progress, by job id.
    running: Arc<Mutex<BTreeMap<JobId, tokio::task::AbortHandle>>>,
    /// Held after a job is marked started and before its work (see
    /// `SandboxConfig::job_start_pause`).
    start_pause: Duration,
}

impl JobRunner {
    /// A runner over the job table.
    pub(crate) fn new(jobs: Jobs, cluster: Cluster, start_pause: Duration) -> JobRunner {
        JobRunner {
            jobs,
            cluster,
            running: Arc::default(),
            start_pause,
        }
    }

    /// Runs `work` for the job `job_id` in the background: claims the job for this
    /// instance (marking it started), runs the work and records its result or failure.
    /// When another instance holds the job, nothing runs here.
    pub(crate) fn spawn<F>(&self, job_id: &JobId, work: F)
    where
        F: Future<Output = Result<serde_json::Value>> + Send + 'static,
    {
        let runner = self.clone();
        let id = job_id.clone();
        // The map stays locked until the handle is in it, so a job that finishes at
        // once cannot remove its handle before it was inserted.
        let Ok(mut running) = self.running.lock() else {
            tracing::error!(%job_id, "the job registry is poisoned");
            return;
        };
        let task = tokio::spawn(async move {
            let claim = &store::jobs::Claim {
                instance: runner.cluster.name(),
                now: now_ms(),
                queued_before: now_ms(),
                take_own: true,
                limit: 1,
            };
            let claimed = store::jobs::claim_one(runner.jobs.db.pool(), &id, claim).await;
            if !matches!(claimed, Ok(true)) {
                if let Ok(mut running) = runner.running.lock() {
                    running.remove(&id);
                }
                match claimed {
                    Ok(_) => tracing::info!(job_id = %id, "another instance runs this job"),
                    Err(e) => runner.jobs.finish(&id, Err(e)).await,
                }
                return;
            }
            let outcome = async {
                if !runner.start_pause.is_zero() {
                    tokio::time::sleep(runner.start_pause).await;
                }
                work.await
            }
            .await;
            if let Ok(mut running) = runner.running.lock() {
                running.remove(&id);
            }
            runner
                .jobs
                .finish_as(&id, outcome, Some(runner.cluster.name()))
                .await;
        });
        running.insert(job_id.clone(), task.abort_handle());
    }

    /// Stops a job in progress and records it failed with `failure` (unless it already
    /// ended); false when it was not running in this process.
    pub(crate) async fn cancel(&self, job_id: &JobId, failure: &JobFailure) -> Result<bool> {
        let handle = match self.running.lock() {
            Ok(mut running) => running.remove(job_id),
            Err(_) => None,
        };
        let aborted = handle.map(|h| h.abort()).is_some();
        self.jobs.fail(job_id, failure).await?;
        Ok(aborted)
    }

    /// Aborts every job running here without recording anything: this instance can no
    /// longer tell that they are still its own (see `Sandbox::heartbeat`).
    pub(crate) fn abort_all(&self) {
        let handles: Vec<(JobId, tokio::task::AbortHandle)> = match self.running.lock() {
            Ok(mut running) => std::mem::take(&mut *running).into_iter().collect(),
            Err(_) => Vec::new(),
        };
        for (id, handle) in handles {
            handle.abort();
            tracing::warn!(job_id = %id, "stopped a job: this instance's heartbeat lapsed");
        }
    }

    /// Whether this instance holds the job `id` (it is running here, under its name).
    pub(crate) async fn holds(&self, id: &JobId) -> Result<bool> {
        let owner = store::jobs::owner(self.jobs.db.pool(), id).await?;
        Ok(matches!(owner, Some((status, Some(instance)))
            if status == "running" && instance == self.cluster.name()))
    }

    /// Aborts the jobs running here that are no longer this instance's: claimed by
    /// another instance (after this one's heartbeat lapsed) or finished elsewhere (a
    /// cancellation served by another instance). Jobs still queued are being claimed.
    pub(crate) async fn abort_lost(&self) -> Result<()> {
        let ids: Vec<JobId> = match self.running.lock() {
            Ok(running) => running.keys().cloned().collect(),
            Err(_) => return Ok(()),
        };
        for id in ids {
            let owner = store::jobs::owner(self.jobs.db.pool(), &id).await?;
            let lost = match owner {
                None => true,
                Some((status, _)) if status == "queued" => false,
                Some((status, instance)) => {
                    status != "running" || instance.as_deref() != Some(self.cluster.name())
                }
            };
            if lost {
                let handle = match self.running.lock() {
                    Ok(mut running) => running.remove(&id),
                    Err(_) => None,
                };
                if let Some(handle) = handle {
                    handle.abort();
                    tracing::warn!(job_id = %id, "stopped a job that is no longer this instance's");
                }
            }
        }
        Ok(())
    }
}
