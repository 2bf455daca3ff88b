//! The `jobs` table, written for the [`Jobs`](crate::jobs::Jobs) job table and its
//! runner: a queued row per job (with the inputs it needs to resume) and its moves
//! through `queued → running → succeeded | failed`.

use pdx_ids::{JobId, OrgId};

use crate::Result;

/// A queued job to insert, its inputs already encoded as JSON.
pub(crate) struct NewJob<'a> {
    /// Job id.
    pub(crate) id: &'a JobId,
    /// What kind of work.
    pub(crate) kind: &'a str,
    /// Owning organisation.
    pub(crate) org_id: &'a OrgId,
    /// What it works on.
    pub(crate) subject: &'a str,
    /// The encoded [`JobInputs`](crate::jobs::JobInputs).
    pub(crate) inputs_json: &'a str,
    /// Created (and last changed), ms since epoch.
    pub(crate) created_ms: i64,
}

/// Inserts a queued job.
pub(crate) async fn insert_job<'e, E>(db: E, row: &NewJob<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO jobs (id, kind, org_id, subject, status, stage, progress, inputs_json, \
         created_ms, updated_ms) VALUES ($1, $2, $3, $4, 'queued', 'queued', 0.0, $5, $6, $6)",
    )
    .bind(row.id.clone())
    .bind(row.kind.to_string())
    .bind(row.org_id.clone())
    .bind(row.subject.to_string())
    .bind(row.inputs_json.to_string())
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Moves an unfinished job to `running` at a stage and progress (a finished job stays
/// as it is).
pub(crate) async fn mark_running<'e, E>(
    db: E,
    id: &JobId,
    stage: &str,
    progress: f64,
    updated_ms: i64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE jobs SET status = 'running', stage = $1, progress = $2, updated_ms = $3 \
         WHERE id = $4 AND status IN ('queued', 'running')",
    )
    .bind(stage.to_string())
    .bind(progress)
    .bind(updated_ms)
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(())
}

/// Marks an unfinished job succeeded with its result (JSON); a finished job stays as it
/// is, so the first outcome recorded (a result, a failure or a cancellation) stands.
pub(crate) async fn mark_succeeded<'e, E>(
    db: E,
    id: &JobId,
    result_json: String,
    updated_ms: i64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE jobs SET status = 'succeeded', stage = 'done', progress = 1.0, result_json = $1, updated_ms = $2 \
         WHERE id = $3 AND status IN ('queued', 'running')",
    )
    .bind(result_json)
    .bind(updated_ms)
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(())
}

/// Marks an unfinished job failed with its client-safe failure (JSON); a finished job
/// stays as it is.
pub(crate) async fn mark_failed<'e, E>(
    db: E,
    id: &JobId,
    error_json: String,
    updated_ms: i64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE jobs SET status = 'failed', stage = 'failed', error_json = $1, updated_ms = $2 \
         WHERE id = $3 AND status IN ('queued', 'running')",
    )
    .bind(error_json)
    .bind(updated_ms)
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(())
}
