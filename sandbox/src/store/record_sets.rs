//! The `record_sets`, `output_record_sets` and `record_set_nestings` tables, written
//! for the [`Runs`](crate::runs::Runs) sub-service through
//! [`record_sets::save`](crate::record_sets::save), in the transaction that inserts
//! the output holding the sets. Every insert ignores a row that already exists.

use pdx_ids::{OrgId, OutputId, VersionRef};

use crate::Result;

/// A nesting of two released record sets, as an output found it.
pub(crate) struct NewNesting<'a> {
    /// The organisation holding the sets.
    pub(crate) org_id: &'a OrgId,
    /// The dataset version they are sets of.
    pub(crate) dataset_version: &'a VersionRef,
    /// Hash of the larger set.
    pub(crate) outer_hash: &'a str,
    /// Selection fingerprint of the larger set.
    pub(crate) outer_selection: &'a str,
    /// Hash of the smaller set.
    pub(crate) inner_hash: &'a str,
    /// Selection fingerprint of the smaller set.
    pub(crate) inner_selection: &'a str,
    /// The output that holds the nesting.
    pub(crate) output_id: &'a OutputId,
}

/// Inserts a nesting unless it is already recorded.
pub(crate) async fn insert_nesting<'e, E>(db: E, row: &NewNesting<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO record_set_nestings (org_id, dataset_version, outer_hash, \
         outer_selection, inner_hash, inner_selection, output_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(row.org_id.clone())
    .bind(row.dataset_version.to_string())
    .bind(row.outer_hash.to_owned())
    .bind(row.outer_selection.to_owned())
    .bind(row.inner_hash.to_owned())
    .bind(row.inner_selection.to_owned())
    .bind(row.output_id.clone())
    .execute(db)
    .await?;
    Ok(())
}

/// A distinct record set of an organisation on a dataset version.
pub(crate) struct NewRecordSet<'a> {
    /// The organisation holding the set.
    pub(crate) org_id: &'a OrgId,
    /// The dataset version it is a set of.
    pub(crate) dataset_version: &'a VersionRef,
    /// Hash of the bitmap.
    pub(crate) set_hash: &'a str,
    /// Selection fingerprint.
    pub(crate) selection: &'a str,
    /// Records in the set.
    pub(crate) records: i64,
    /// The block summary, encoded.
    pub(crate) summary: &'a [u8],
    /// The bitmap, encoded.
    pub(crate) bitmap: &'a [u8],
}

/// Inserts a record set unless the organisation already holds it on the version.
pub(crate) async fn insert_record_set<'e, E>(db: E, row: &NewRecordSet<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO record_sets \
         (org_id, dataset_version, set_hash, selection, records, summary, bitmap) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(row.org_id.clone())
    .bind(row.dataset_version.to_string())
    .bind(row.set_hash.to_owned())
    .bind(row.selection.to_owned())
    .bind(row.records)
    .bind(row.summary.to_vec())
    .bind(row.bitmap.to_vec())
    .execute(db)
    .await?;
    Ok(())
}

/// That an output holds a record set.
pub(crate) struct NewOutputRecordSet<'a> {
    /// The output.
    pub(crate) output_id: &'a OutputId,
    /// The organisation holding the set.
    pub(crate) org_id: &'a OrgId,
    /// The dataset version it is a set of.
    pub(crate) dataset_version: &'a VersionRef,
    /// Hash of the set.
    pub(crate) set_hash: &'a str,
    /// Selection fingerprint.
    pub(crate) selection: &'a str,
}

/// Inserts that an output holds a set, unless already recorded.
pub(crate) async fn insert_output_record_set<'e, E>(
    db: E,
    row: &NewOutputRecordSet<'_>,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO output_record_sets (output_id, org_id, dataset_version, set_hash, selection) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(row.output_id.clone())
    .bind(row.org_id.clone())
    .bind(row.dataset_version.to_string())
    .bind(row.set_hash.to_owned())
    .bind(row.selection.to_owned())
    .execute(db)
    .await?;
    Ok(())
}
