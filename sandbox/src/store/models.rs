//! The `models` table, written for the [`Models`](crate::models::Models) sub-service:
//! one immutable row per registered model, inserted with its `ModelRegistration`
//! ledger entry.

use pdx_ids::{ModelId, OrgId};

use crate::Result;

/// A model to register.
pub(crate) struct NewModelRow<'a> {
    /// Model id.
    pub(crate) id: &'a ModelId,
    /// The registering organisation.
    pub(crate) org_id: &'a OrgId,
    /// The model kind's wire name.
    pub(crate) kind: &'static str,
    /// Name (trimmed).
    pub(crate) name: &'a str,
    /// The model text.
    pub(crate) body: &'a str,
    /// The model hash, hex.
    pub(crate) model_hash: &'a str,
    /// Seq of its `ModelRegistration` ledger entry.
    pub(crate) registration_seq: i64,
    /// Created, ms since epoch.
    pub(crate) created_ms: i64,
}

/// Inserts a model (with empty parameters).
pub(crate) async fn insert_model<'e, E>(db: E, row: &NewModelRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO models (id, org_id, kind, name, body, params_json, model_hash, \
         registration_seq, created_ms) VALUES ($1, $2, $3, $4, $5, '{}', $6, $7, $8)",
    )
    .bind(row.id.clone())
    .bind(row.org_id.clone())
    .bind(row.kind)
    .bind(row.name.to_string())
    .bind(row.body.to_string())
    .bind(row.model_hash.to_string())
    .bind(row.registration_seq)
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
}
