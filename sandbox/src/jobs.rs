//! Long work runs as a job that clients poll: ingest now, model runs and FHE lookups
//! later. A job row is written before the work starts and updated as it moves through
//! `queued → running → succeeded | failed`, so a restart can tell what was cut off.
//!
//! A failure stores a client-safe problem (status and detail). Internal causes are
//! logged with the job id and replaced by a generic detail, because an engine error
//! can carry a row's value.

use pdx_ledger::db::{Db, now_ms};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, SandboxError, new_id};

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFailure {
    /// The HTTP status the failure would have had as a synchronous request.
    pub status: u16,
    /// What went wrong.
    pub detail: String,
}

impl JobFailure {
    /// The client-safe failure for an error (internal causes are logged, not kept).
    pub fn from_error(job_id: &str, err: &SandboxError) -> JobFailure {
        if err.is_client_error() {
            let status = match err {
                SandboxError::NotFound(_) => 404,
                SandboxError::Conflict(_) => 409,
                SandboxError::Forbidden(_) => 403,
                SandboxError::TooLarge { .. } => 413,
                SandboxError::Busy(_) => 429,
                _ => 422,
            };
            JobFailure {
                status,
                detail: err.to_string(),
            }
        } else {
            tracing::error!(job_id, cause = %err, "job failed internally");
            JobFailure {
                status: 500,
                detail: "the job failed inside the server; quote the job id when reporting it"
                    .into(),
            }
        }
    }
}

/// A job as its owner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// What kind of work (`ingest`, ...).
    pub kind: String,
    /// Owning organisation.
    pub org_id: String,
    /// What it works on (a dataset id, ...).
    pub subject: String,
    /// Status.
    pub status: JobStatus,
    /// Current stage, e.g. `de-identifying`.
    pub stage: String,
    /// 0.0 to 1.0.
    pub progress: f64,
    /// Outcome, once succeeded.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Failure, once failed.
    pub error: Option<JobFailure>,
    /// Created, ms since epoch.
    pub created_ms: i64,
    /// Last change, ms since epoch.
    pub updated_ms: i64,
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

    /// Records a new queued job.
    pub async fn create(&self, kind: &str, org_id: &str, subject: &str) -> Result<Job> {
        let id = new_id("job");
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, kind, org_id, subject, status, stage, progress, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, 'queued', 'queued', 0.0, $5, $5)",
        )
        .bind(id.clone())
        .bind(kind.to_string())
        .bind(org_id.to_string())
        .bind(subject.to_string())
        .bind(now)
        .execute(self.db.pool())
        .await?;
        self.get(&id)
            .await?
            .ok_or_else(|| SandboxError::Internal("job vanished after insert".into()))
    }

    /// Moves a job to `running` at a stage and progress.
    pub async fn progress(&self, id: &str, stage: &str, progress: f64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'running', stage = $1, progress = $2, updated_ms = $3 \
             WHERE id = $4 AND status IN ('queued', 'running')",
        )
        .bind(stage.to_string())
        .bind(progress.clamp(0.0, 1.0))
        .bind(now_ms())
        .bind(id.to_string())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Marks a job succeeded with its result.
    pub async fn succeed(&self, id: &str, result: &serde_json::Value) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'succeeded', stage = 'done', progress = 1.0, result_json = $1, updated_ms = $2 \
             WHERE id = $3",
        )
        .bind(result.to_string())
        .bind(now_ms())
        .bind(id.to_string())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Marks a job failed.
    pub async fn fail(&self, id: &str, failure: &JobFailure) -> Result<()> {
        let json = serde_json::to_string(failure)
            .map_err(|e| SandboxError::Internal(format!("encoding a job failure: {e}")))?;
        sqlx::query(
            "UPDATE jobs SET status = 'failed', stage = 'failed', error_json = $1, updated_ms = $2 WHERE id = $3",
        )
        .bind(json)
        .bind(now_ms())
        .bind(id.to_string())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// One job.
    pub async fn get(&self, id: &str) -> Result<Option<Job>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// The jobs of one organisation, newest first.
    pub async fn for_org(&self, org_id: &str, limit: i64) -> Result<Vec<Job>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE org_id = $1 ORDER BY created_ms DESC, id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.to_string())
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Marks every queued or running job failed; called on start, since no worker
    /// survives a restart. Returns how many were marked.
    pub async fn fail_interrupted(&self) -> Result<u64> {
        let failure = JobFailure {
            status: 503,
            detail: "the server restarted while this job ran; submit it again".into(),
        };
        let json = serde_json::to_string(&failure)
            .map_err(|e| SandboxError::Internal(format!("encoding a job failure: {e}")))?;
        let done = sqlx::query(
            "UPDATE jobs SET status = 'failed', stage = 'failed', error_json = $1, updated_ms = $2 \
             WHERE status IN ('queued', 'running')",
        )
        .bind(json)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
