//! The `dataset_versions` table, written for the [`Versions`](crate::versions::Versions)
//! sub-service: one immutable row per certified version, inserted with its
//! `AssetCertificate` ledger entry.

use pdx_ids::{DatasetId, JobId};

use crate::Result;

/// A certified version of a dataset.
pub(crate) struct NewVersion<'a> {
    /// The dataset.
    pub(crate) dataset_id: &'a DatasetId,
    /// The version number.
    pub(crate) version: i64,
    /// Rows in the de-identified data.
    pub(crate) rows_count: i64,
    /// Bytes of the Parquet file.
    pub(crate) bytes: i64,
    /// The content hash, hex.
    pub(crate) content_hash: &'a str,
    /// The schema hash, hex.
    pub(crate) schema_hash: &'a str,
    /// The file, relative to the data directory.
    pub(crate) file_path: &'a str,
    /// The de-identification report, as JSON.
    pub(crate) report_json: &'a str,
    /// The certificate number.
    pub(crate) certificate_no: &'a str,
    /// Seq of its `AssetCertificate` ledger entry.
    pub(crate) certificate_seq: i64,
    /// Certificate valid from (RFC 3339).
    pub(crate) valid_from: &'a str,
    /// Certificate valid until (RFC 3339).
    pub(crate) valid_until: &'a str,
    /// Created, ms since epoch.
    pub(crate) created_ms: i64,
    /// The ingest job that made it.
    pub(crate) ingest_job_id: &'a JobId,
}

/// Inserts a version.
pub(crate) async fn insert_version<'e, E>(db: E, row: &NewVersion<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO dataset_versions (dataset_id, version, rows_count, bytes, content_hash, \
         schema_hash, file_path, report_json, certificate_no, certificate_seq, valid_from, \
         valid_until, created_ms, ingest_job_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(row.dataset_id.clone())
    .bind(row.version)
    .bind(row.rows_count)
    .bind(row.bytes)
    .bind(row.content_hash.to_string())
    .bind(row.schema_hash.to_string())
    .bind(row.file_path.to_string())
    .bind(row.report_json.to_string())
    .bind(row.certificate_no.to_string())
    .bind(row.certificate_seq)
    .bind(row.valid_from.to_string())
    .bind(row.valid_until.to_string())
    .bind(row.created_ms)
    .bind(row.ingest_job_id.clone())
    .execute(db)
    .await?;
    Ok(())
}
