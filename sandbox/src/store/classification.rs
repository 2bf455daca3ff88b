//! The `classification_filings` table, written for the
//! [`Classification`](crate::classification::Classification) sub-service (GD21 Art.13):
//! one row per filing (备案) of a not-shared classification, each with its
//! `classification_filing` ledger entry, written in the transaction of the registration
//! or edit that made it.

use pdx_ids::{DatasetId, FilingId, KeyId, OrgId};

use crate::Result;

/// A filing, as written.
pub(crate) struct NewFilingRow<'a> {
    /// The filing's id.
    pub(crate) id: &'a FilingId,
    /// The dataset.
    pub(crate) dataset_id: &'a DatasetId,
    /// The providing organisation that filed it.
    pub(crate) provider_org: &'a OrgId,
    /// The API key that filed it.
    pub(crate) actor_key: &'a KeyId,
    /// The share type filed (wire name, `not_shared`).
    pub(crate) share_type: &'a str,
    /// The legal basis for not sharing.
    pub(crate) legal_basis: &'a str,
    /// The classification level (wire name).
    pub(crate) level: &'a str,
    /// The catalog revision it was filed with.
    pub(crate) revision: i64,
    /// BLAKE3 (hex) of that revision's metadata.
    pub(crate) metadata_hash: &'a str,
    /// Filed, ms since epoch.
    pub(crate) filed_ms: i64,
    /// Seq of its `classification_filing` ledger entry.
    pub(crate) filing_seq: i64,
}

/// Inserts a filing.
pub(crate) async fn insert_filing<'e, E>(db: E, row: &NewFilingRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO classification_filings (id, dataset_id, provider_org, actor_key, \
         share_type, legal_basis, level, revision, metadata_hash, filed_ms, filing_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(row.id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.provider_org.clone())
    .bind(row.actor_key.clone())
    .bind(row.share_type.to_string())
    .bind(row.legal_basis.to_string())
    .bind(row.level.to_string())
    .bind(row.revision)
    .bind(row.metadata_hash.to_string())
    .bind(row.filed_ms)
    .bind(row.filing_seq)
    .execute(db)
    .await?;
    Ok(())
}
