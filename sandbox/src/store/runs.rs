//! The `model_runs` table, written for the [`Runs`](crate::runs::Runs) sub-service:
//! one row per admitted run, `running` while it holds one of its organisation's
//! concurrency slots, then closed.

use pdx_ids::{GrantId, JobId, ModelId, OrgId};

use crate::Result;

/// An admitted run, inserted `running` with its job.
pub(crate) struct NewModelRun<'a> {
    /// The run's job.
    pub(crate) job_id: &'a JobId,
    /// The model.
    pub(crate) model_id: &'a ModelId,
    /// The running organisation.
    pub(crate) org_id: &'a OrgId,
    /// The first grant the run reads under, if any.
    pub(crate) grant_id: Option<GrantId>,
    /// The cited `dataset@version`s, as a JSON array.
    pub(crate) dataset_versions_json: &'a str,
    /// ε spent, in micro-units.
    pub(crate) epsilon_micro: i64,
    /// δ spent, in units of 1e-12.
    pub(crate) delta_pico: i64,
    /// Created, ms since epoch.
    pub(crate) created_ms: i64,
}

/// Inserts a run row, `running`.
pub(crate) async fn insert_model_run<'e, E>(db: E, row: &NewModelRun<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO model_runs (job_id, model_id, org_id, grant_id, dataset_versions, \
         epsilon_micro, delta_pico, status, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8)",
    )
    .bind(row.job_id.clone())
    .bind(row.model_id.clone())
    .bind(row.org_id.clone())
    .bind(row.grant_id.clone())
    .bind(row.dataset_versions_json.to_string())
    .bind(row.epsilon_micro)
    .bind(row.delta_pico)
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Sets the status of the run of a job (`finished`, `failed`, `cancelled`).
pub(crate) async fn set_status<'e, E>(db: E, job_id: &JobId, status: &str) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE model_runs SET status = $1 WHERE job_id = $2")
        .bind(status.to_string())
        .bind(job_id.clone())
        .execute(db)
        .await?;
    Ok(())
}

/// Closes the still-running rows of runs whose jobs have ended: `finished` when the job
/// succeeded (its row could not be closed then), `failed` when it failed.
pub(crate) async fn close_unresumed<'e, E>(db: E) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE model_runs SET status = CASE WHEN job_id IN \
         (SELECT id FROM jobs WHERE status = 'succeeded') THEN 'finished' ELSE 'failed' END \
         WHERE status = 'running' \
         AND job_id IN (SELECT id FROM jobs WHERE status IN ('succeeded', 'failed'))",
    )
    .execute(db)
    .await?;
    Ok(())
}
