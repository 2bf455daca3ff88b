//! The `outputs` and `output_reviews` tables, written for the
//! [`Runs`](crate::runs::Runs) sub-service (an output enters quarantine) and the
//! [`Reviews`](crate::review::Reviews) sub-service (reviews, rejections, releases).

use pdx_ids::{JobId, KeyId, ModelId, OrgId, OutputId, ReleaseId};

use crate::Result;

/// A run's output, inserted `quarantined`.
pub(crate) struct NewOutput<'a> {
    /// Output id.
    pub(crate) id: &'a OutputId,
    /// The run's job.
    pub(crate) job_id: &'a JobId,
    /// The developer organisation.
    pub(crate) org_id: &'a OrgId,
    /// The model.
    pub(crate) model_id: &'a ModelId,
    /// The providers of the inputs, comma-separated.
    pub(crate) provider_org: &'a str,
    /// The file, relative to the data directory.
    pub(crate) file_path: &'a str,
    /// The content hash, hex.
    pub(crate) output_hash: &'a str,
    /// Rows in the output.
    pub(crate) rows_count: i64,
    /// Bytes of the file.
    pub(crate) bytes: i64,
    /// The check report, as JSON.
    pub(crate) check_report_json: &'a str,
    /// The preview rows, as JSON.
    pub(crate) preview_json: &'a str,
    /// Reviewers needed to release it.
    pub(crate) required_reviews: i64,
    /// Created, ms since epoch.
    pub(crate) created_ms: i64,
}

/// Inserts an output, `quarantined`.
pub(crate) async fn insert_output<'e, E>(db: E, row: &NewOutput<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO outputs (id, job_id, org_id, model_id, provider_org, file_path, output_hash, \
         rows_count, bytes, check_report_json, preview_json, required_reviews, status, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'quarantined', $13)",
    )
    .bind(row.id.clone())
    .bind(row.job_id.clone())
    .bind(row.org_id.clone())
    .bind(row.model_id.clone())
    .bind(row.provider_org.to_string())
    .bind(row.file_path.to_string())
    .bind(row.output_hash.to_string())
    .bind(row.rows_count)
    .bind(row.bytes)
    .bind(row.check_report_json.to_string())
    .bind(row.preview_json.to_string())
    .bind(row.required_reviews)
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// A reviewer's decision on an output.
pub(crate) struct NewOutputReview<'a> {
    /// The output.
    pub(crate) output_id: &'a OutputId,
    /// The reviewer's organisation.
    pub(crate) reviewer_org: &'a OrgId,
    /// The reviewer's key.
    pub(crate) reviewer_key: &'a KeyId,
    /// `approve` or `reject`.
    pub(crate) decision: &'static str,
    /// Why.
    pub(crate) reason: &'a str,
    /// Created, ms since epoch.
    pub(crate) created_ms: i64,
}

/// Inserts a review; a second review by the same key fails with the database's
/// unique violation (as [`SandboxError::Db`](crate::SandboxError::Db)).
pub(crate) async fn insert_review<'e, E>(db: E, row: &NewOutputReview<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO output_reviews (output_id, reviewer_org, reviewer_key, decision, reason, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(row.output_id.clone())
    .bind(row.reviewer_org.clone())
    .bind(row.reviewer_key.clone())
    .bind(row.decision)
    .bind(row.reason.to_string())
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Rejects a quarantined output with a reason; returns the rows changed (0 when it
/// was already decided).
pub(crate) async fn reject_output<'e, E>(
    db: E,
    id: &OutputId,
    reason: &str,
    decided_ms: i64,
) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE outputs SET status = 'rejected', reason = $1, decided_ms = $2 \
         WHERE id = $3 AND status = 'quarantined'",
    )
    .bind(reason.to_string())
    .bind(decided_ms)
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Claims a quarantined output for release inside the caller's transaction: a no-op
/// update that holds the row's write lock (PostgreSQL; SQLite's write transaction is
/// already exclusive) until commit, so a second approver waits and then finds it
/// decided. Returns the rows claimed (0 when it was already decided).
pub(crate) async fn claim_for_release<'e, E>(db: E, id: &OutputId) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let claimed =
        sqlx::query("UPDATE outputs SET status = status WHERE id = $1 AND status = 'quarantined'")
            .bind(id.clone())
            .execute(db)
            .await?;
    Ok(claimed.rows_affected())
}

/// A quarantined output's release.
pub(crate) struct OutputRelease<'a> {
    /// The output.
    pub(crate) id: &'a OutputId,
    /// Release id.
    pub(crate) release_id: &'a ReleaseId,
    /// Seq of its `Release` ledger entry.
    pub(crate) release_seq: i64,
    /// The released file, relative to the data directory.
    pub(crate) file_path: &'a str,
    /// Decided, ms since epoch.
    pub(crate) decided_ms: i64,
}

/// Marks a quarantined output released; returns the rows changed (0 when it was
/// already decided).
pub(crate) async fn release_output<'e, E>(db: E, row: &OutputRelease<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE outputs SET status = 'released', release_id = $1, release_seq = $2, \
         file_path = $3, decided_ms = $4 WHERE id = $5 AND status = 'quarantined'",
    )
    .bind(row.release_id.clone())
    .bind(row.release_seq)
    .bind(row.file_path.to_string())
    .bind(row.decided_ms)
    .bind(row.id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}
