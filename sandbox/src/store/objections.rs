//! The `objections` table: objections (异议) to dataset versions and the providers'
//! answers, written for the [`crate::objections::Objections`] sub-service.

use pdx_ids::{DatasetId, KeyId, ObjectionId, OrgId};

use crate::Result;

/// A newly filed objection (status `open`).
pub(crate) struct NewObjectionRow<'a> {
    /// Objection id.
    pub id: &'a ObjectionId,
    /// The dataset.
    pub dataset_id: &'a DatasetId,
    /// The version objected to.
    pub version: i64,
    /// The dataset's provider, who answers.
    pub provider_org: &'a OrgId,
    /// The objecting organisation.
    pub objector_org: &'a OrgId,
    /// The objector's API key id.
    pub objector_key: &'a KeyId,
    /// Ground (`error` or `omission`).
    pub ground: &'a str,
    /// What is wrong.
    pub detail: &'a str,
    /// Answer deadline (YYYY-MM-DD).
    pub answer_deadline: &'a str,
    /// Filed, ms since epoch.
    pub filed_ms: i64,
    /// Ledger seq of the objection.
    pub objection_seq: i64,
}

/// Inserts a newly filed objection with status `open`.
pub(crate) async fn insert_objection<'e, E>(db: E, row: &NewObjectionRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO objections (id, dataset_id, version, provider_org, objector_org, \
         objector_key, ground, detail, status, answer_deadline, filed_ms, objection_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10, $11)",
    )
    .bind(row.id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.version)
    .bind(row.provider_org.clone())
    .bind(row.objector_org.clone())
    .bind(row.objector_key.clone())
    .bind(row.ground)
    .bind(row.detail.to_string())
    .bind(row.answer_deadline.to_string())
    .bind(row.filed_ms)
    .bind(row.objection_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// Answers a still-open objection; returns the rows updated (0 if it was answered
/// concurrently).
pub(crate) async fn answer_open<'e, E>(
    db: E,
    id: &ObjectionId,
    outcome: &str,
    answer: &str,
    answered_ms: i64,
    answered_late: i64,
) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE objections SET status = 'answered', outcome = $1, answer = $2, \
         answered_ms = $3, answered_late = $4 WHERE id = $5 AND status = 'open'",
    )
    .bind(outcome)
    .bind(answer.to_string())
    .bind(answered_ms)
    .bind(answered_late)
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Records the ledger seq of an objection's answer.
pub(crate) async fn set_answer_seq<'e, E>(db: E, id: &ObjectionId, seq: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE objections SET answer_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(id.clone())
        .execute(db)
        .await?;
    Ok(())
}
