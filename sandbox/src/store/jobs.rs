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
/// With `holder`, only while that instance holds the job (a runner's outcome; another
/// instance may have taken the job over).
pub(crate) async fn mark_succeeded<'e, E>(
    db: E,
    id: &JobId,
    result_json: String,
    updated_ms: i64,
    holder: Option<&str>,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE jobs SET status = 'succeeded', stage = 'done', progress = 1.0, result_json = $1, updated_ms = $2 \
         WHERE id = $3 AND status IN ('queued', 'running') \
         AND ($4 IS NULL OR instance_id IS NULL OR instance_id = $4)",
    )
    .bind(result_json)
    .bind(updated_ms)
    .bind(id.clone())
    .bind(holder.map(str::to_owned))
    .execute(db)
    .await?;
    Ok(())
}

/// Marks an unfinished job failed with its client-safe failure (JSON); a finished job
/// stays as it is. With `holder`, only while that instance holds the job (a runner's
/// outcome); without, whoever holds it (a cancellation).
pub(crate) async fn mark_failed<'e, E>(
    db: E,
    id: &JobId,
    error_json: String,
    updated_ms: i64,
    holder: Option<&str>,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE jobs SET status = 'failed', stage = 'failed', error_json = $1, updated_ms = $2 \
         WHERE id = $3 AND status IN ('queued', 'running') \
         AND ($4 IS NULL OR instance_id IS NULL OR instance_id = $4)",
    )
    .bind(error_json)
    .bind(updated_ms)
    .bind(id.clone())
    .bind(holder.map(str::to_owned))
    .execute(db)
    .await?;
    Ok(())
}

/// Who claims, and which unfinished jobs it may take (see `cluster.rs` for the rules).
pub(crate) struct Claim<'a> {
    /// The claiming instance.
    pub(crate) instance: &'a str,
    /// Now, ms since epoch (an instance is live while `heartbeat_ms + lease_ms` is not
    /// before it).
    pub(crate) now: i64,
    /// Queued jobs created at or before this may be taken by any instance (their
    /// instance died between the insert and its claim).
    pub(crate) queued_before: i64,
    /// Also take the jobs held under this instance's own name: at start (its last
    /// process left them running), and when the runner spawns the work.
    pub(crate) take_own: bool,
    /// Most jobs to take at once.
    pub(crate) limit: i64,
}

/// The condition on a job row under which `$1` (the instance), at `$2` (now), with
/// `$3` (queued before) and `$4` (take own: 1 or 0), may claim it:
///
/// * a queued job once it was created at or before `$3` (the runner claims its own
///   fresh jobs with `$3` = now; anyone else only after a lease, when the instance that
///   accepted it evidently died before claiming it);
/// * a running job held by nobody (from before instances), by this instance's name
///   with `$4` (at start: its last process left it), or by an instance that is no
///   longer live (its `heartbeat_ms + lease_ms` is past).
///
/// A job another live instance holds is never takeable, nor, without `$4`, one this
/// instance runs.
const CLAIMABLE: &str = "((status = 'queued' AND created_ms <= $3) OR (status = 'running' \
     AND (instance_id IS NULL OR ($4 = 1 AND instance_id = $1) \
     OR (instance_id <> $1 AND instance_id NOT IN \
         (SELECT name FROM instances WHERE heartbeat_ms + lease_ms >= $2)))))";

/// Claims the job `id` for `claim.instance` (marking it `running` at stage `started`)
/// if it may (see [`CLAIMABLE`]); false when another instance holds it or it has
/// finished.
pub(crate) async fn claim_one<'e, E>(db: E, id: &JobId, claim: &Claim<'_>) -> Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "UPDATE jobs SET status = 'running', stage = 'started', progress = 0.0, \
         instance_id = $1, updated_ms = $2 WHERE id = $5 AND {CLAIMABLE}"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(claim.instance.to_owned())
        .bind(claim.now)
        .bind(claim.queued_before)
        .bind(i64::from(claim.take_own))
        .bind(id.clone())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims up to `claim.limit` takeable jobs, oldest first, for `claim.instance`
/// (stage `resuming`), returning their rows (`columns` plus `inputs_json`). On
/// PostgreSQL the candidates are locked with `FOR UPDATE SKIP LOCKED`, so instances
/// polling at once take different jobs instead of waiting on each other; the claim
/// condition is checked again on the locked row. On SQLite the one writer serialises it.
pub(crate) async fn claim_unfinished(
    db: &pdx_ledger::db::Db,
    claim: &Claim<'_>,
    columns: &str,
) -> Result<Vec<sqlx::any::AnyRow>> {
    // Usually there is nothing to take: a read finds that without a write lock (SQLite)
    // or row locks (PostgreSQL).
    let probe = format!("SELECT id FROM jobs WHERE {CLAIMABLE} LIMIT 1");
    let any = sqlx::query(sqlx::AssertSqlSafe(probe))
        .bind(claim.instance.to_owned())
        .bind(claim.now)
        .bind(claim.queued_before)
        .bind(i64::from(claim.take_own))
        .fetch_optional(db.pool())
        .await?;
    if any.is_none() {
        return Ok(Vec::new());
    }
    let lock = match db.backend() {
        pdx_ledger::db::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        pdx_ledger::db::Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET status = 'running', stage = 'resuming', instance_id = $1, \
         updated_ms = $2 WHERE id IN (SELECT id FROM jobs WHERE {CLAIMABLE} \
         ORDER BY created_ms, id LIMIT $5{lock}) AND {CLAIMABLE} \
         RETURNING {columns}, inputs_json"
    );
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(claim.instance.to_owned())
        .bind(claim.now)
        .bind(claim.queued_before)
        .bind(i64::from(claim.take_own))
        .bind(claim.limit)
        .fetch_all(db.pool())
        .await?;
    // RETURNING gives no order: resume oldest first, as they were submitted.
    rows.sort_by_key(|row| {
        use sqlx::Row;
        (
            row.try_get::<i64, _>("created_ms").unwrap_or(i64::MAX),
            row.try_get::<String, _>("id").unwrap_or_default(),
        )
    });
    Ok(rows)
}

/// A job's status and the instance holding it; None when there is no such job.
pub(crate) async fn owner<'e, E>(db: E, id: &JobId) -> Result<Option<(String, Option<String>)>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    use sqlx::Row;
    let row = sqlx::query("SELECT status, instance_id FROM jobs WHERE id = $1")
        .bind(id.clone())
        .fetch_optional(db)
        .await?;
    row.map(|row| Ok((row.try_get("status")?, row.try_get("instance_id")?)))
        .transpose()
}

/// Inside a write transaction: whether the job `id` is still `running` under
/// `instance`, locking its row on PostgreSQL until the transaction ends, so that no
/// other instance can claim it or cancel it meanwhile. A run stores its output only
/// when this holds: a run cancelled elsewhere, or taken over, stores nothing.
pub(crate) async fn still_held(
    conn: &mut sqlx::AnyConnection,
    backend: pdx_ledger::db::Backend,
    id: &JobId,
    instance: &str,
) -> Result<bool> {
    use sqlx::Row;
    let lock = match backend {
        pdx_ledger::db::Backend::Postgres => " FOR UPDATE",
        pdx_ledger::db::Backend::Sqlite => "",
    };
    let sql = format!("SELECT status, instance_id FROM jobs WHERE id = $1{lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.clone())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let status: String = row.try_get("status")?;
    let holder: Option<String> = row.try_get("instance_id")?;
    Ok(status == "running" && holder.as_deref() == Some(instance))
}
