//! The `dataset_destructions` table, written for the
//! [`Destructions`](crate::destruction::Destructions) sub-service (GD21 Art.40; XT
//! Art.34(4)): one tombstone row per destroyed version, and a row with version 0 when the
//! whole dataset was destroyed. The grants a whole-dataset destruction suspends are
//! written through [`super::grants`].

use pdx_ids::{DatasetId, KeyId, OrgId};

use crate::Result;

/// One tombstone: a destroyed version, or (version 0) the retired catalog entry.
pub(crate) struct NewTombstoneRow<'a> {
    /// The dataset.
    pub(crate) dataset_id: &'a DatasetId,
    /// The version destroyed; 0 for the catalog entry itself.
    pub(crate) version: i64,
    /// `version` or `dataset`: what the provider destroyed.
    pub(crate) scope: &'a str,
    /// The providing organisation.
    pub(crate) provider_org: &'a OrgId,
    /// Why.
    pub(crate) reason: &'a str,
    /// The legal basis named, if any.
    pub(crate) legal_basis: Option<&'a str>,
    /// The acting organisation.
    pub(crate) actor_org: &'a OrgId,
    /// The acting API key.
    pub(crate) actor_key: &'a KeyId,
    /// When, ms since epoch.
    pub(crate) destroyed_ms: i64,
    /// The version's files (zone, relative path, hash, bytes, deleted), as JSON.
    pub(crate) files_json: &'a str,
    /// The seq of the `Destruction` entry.
    pub(crate) ledger_seq: i64,
}

/// Inserts a tombstone. A second one for the same version (or catalog entry) fails with
/// the database's unique violation (as [`SandboxError::Db`](crate::SandboxError::Db)).
pub(crate) async fn insert_tombstone<'e, E>(db: E, row: &NewTombstoneRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO dataset_destructions (dataset_id, version, scope, provider_org, reason, \
         legal_basis, actor_org, actor_key, destroyed_ms, files_json, ledger_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(row.dataset_id.clone())
    .bind(row.version)
    .bind(row.scope.to_string())
    .bind(row.provider_org.clone())
    .bind(row.reason.to_string())
    .bind(row.legal_basis.map(str::to_string))
    .bind(row.actor_org.clone())
    .bind(row.actor_key.clone())
    .bind(row.destroyed_ms)
    .bind(row.files_json.to_string())
    .bind(row.ledger_seq)
    .execute(db)
    .await?;
    Ok(())
}
