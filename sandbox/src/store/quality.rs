//! The `correction_duties` and `correction_uploads` tables, written for the
//! [`Quality`](crate::quality::Quality) sub-service (SD22 Art.13; XT Art.21–22). The
//! update frequency itself is a column of `datasets`, written through
//! [`super::catalog`].

use pdx_ids::{DatasetId, JobId, ObjectionId, OrgId};

use crate::Result;

/// The correction an accepted objection obliges.
pub(crate) struct NewDutyRow<'a> {
    /// The accepted objection.
    pub(crate) objection_id: &'a ObjectionId,
    /// Its dataset.
    pub(crate) dataset_id: &'a DatasetId,
    /// The dataset's provider, which must correct it.
    pub(crate) provider_org: &'a OrgId,
    /// Accepted, ms since epoch.
    pub(crate) accepted_ms: i64,
    /// The correction deadline, `YYYY-MM-DD`.
    pub(crate) correction_due: &'a str,
}

/// Records a correction duty unless the objection already has one (the first record
/// stands, also under a race).
pub(crate) async fn insert_duty<'e, E>(db: E, row: &NewDutyRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO correction_duties (objection_id, dataset_id, provider_org, accepted_ms, \
         correction_due) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (objection_id) DO NOTHING",
    )
    .bind(row.objection_id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.provider_org.clone())
    .bind(row.accepted_ms)
    .bind(row.correction_due.to_string())
    .execute(db)
    .await?;
    Ok(())
}

/// Records that the upload of ingest job `job_id` corrects `objection_id`.
pub(crate) async fn insert_upload<'e, E>(
    db: E,
    job_id: &JobId,
    objection_id: &ObjectionId,
    linked_ms: i64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO correction_uploads (ingest_job_id, objection_id, linked_ms) \
         VALUES ($1, $2, $3)",
    )
    .bind(job_id.clone())
    .bind(objection_id.clone())
    .bind(linked_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// A certified version that corrects an objection.
pub(crate) struct CorrectedRow<'a> {
    /// The objection.
    pub(crate) objection_id: &'a ObjectionId,
    /// The corrected version.
    pub(crate) version: i64,
    /// Its certificate number.
    pub(crate) certificate_no: &'a str,
    /// Seq of its `AssetCertificate` entry.
    pub(crate) certificate_seq: i64,
    /// Certified, ms since epoch.
    pub(crate) corrected_ms: i64,
    /// 1 when certified after the deadline.
    pub(crate) corrected_late: i64,
}

/// Marks a still-uncorrected duty corrected; returns the rows updated (0 when another
/// version corrected it first).
pub(crate) async fn mark_corrected<'e, E>(db: E, row: &CorrectedRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE correction_duties SET version = $1, certificate_no = $2, certificate_seq = $3, \
         corrected_ms = $4, corrected_late = $5 WHERE objection_id = $6 AND version IS NULL",
    )
    .bind(row.version)
    .bind(row.certificate_no.to_string())
    .bind(row.certificate_seq)
    .bind(row.corrected_ms)
    .bind(row.corrected_late)
    .bind(row.objection_id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Records the seq of the `corrected` entry that links a duty to its version.
pub(crate) async fn set_correction_seq<'e, E>(
    db: E,
    objection_id: &ObjectionId,
    seq: i64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE correction_duties SET correction_seq = $1 WHERE objection_id = $2")
        .bind(seq)
        .bind(objection_id.clone())
        .execute(db)
        .await?;
    Ok(())
}
