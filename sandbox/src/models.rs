//! Algorithm models: what a developer submits to run next to the data.
//!
//! A model is immutable once registered. Its hash is what the ledger, releases and
//! product manifests cite, so the hash rule is fixed here:
//!
//! ```text
//! model_hash = BLAKE3( "pdx model v1" || 0x00 || kind || 0x00 || body )
//! ```
//!
//! where `kind` is the wire name (`sql`, `dp`, `fhe`, `regression`) and `body` the model
//! text as submitted (UTF-8, byte for byte). The registration row and its
//! `ModelRegistration` ledger entry are written in one transaction.

use std::collections::HashMap;

use pdx_ids::{ModelId, OrgId};
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::ModelRegistration;
use pdx_ledger::{Actor, Hash32};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::grants::ModelKind;
use crate::store;
use crate::{Result, SandboxError, actor_org};

crate::service! {
    /// Registered algorithm models.
    Models
}

/// Largest model text accepted.
pub const MAX_MODEL_BYTES: usize = 64 * 1024;
const HASH_DOMAIN: &[u8] = b"pdx model v1";

/// A model as submitted.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    /// A name for people.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, pattern = r"\S")
    )]
    pub name: String,
    /// `sql`, `dp` or `regression` (FHE lookups use templates instead).
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, pattern = "^(sql|dp|regression)$")
    )]
    pub kind: ModelKind,
    /// The model text: SQL, or a regression's JSON spec.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub body: String,
}

/// A registered model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Model {
    /// Model id.
    pub id: ModelId,
    /// Owning developer organisation.
    pub org_id: OrgId,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: ModelKind,
    /// The model text.
    pub body: String,
    /// BLAKE3 model hash (see the module docs), hex.
    pub model_hash: String,
    /// Ledger seq of the registration.
    pub registration_seq: u64,
    /// Registered, ms since epoch.
    pub created_ms: i64,
}

/// The model hash rule of the module docs.
pub fn model_hash(kind: ModelKind, body: &str) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(HASH_DOMAIN);
    h.update(&[0]);
    h.update(kind.as_str().as_bytes());
    h.update(&[0]);
    h.update(body.as_bytes());
    Hash32(*h.finalize().as_bytes())
}

fn model_from_row(row: &AnyRow) -> Result<Model> {
    Ok(Model {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        kind: ModelKind::parse(&row.try_get::<String, _>("kind")?)?,
        body: row.try_get("body")?,
        model_hash: row.try_get("model_hash")?,
        registration_seq: u64::try_from(row.try_get::<i64, _>("registration_seq")?).unwrap_or(0),
        created_ms: row.try_get("created_ms")?,
    })
}

impl Models {
    /// Registers a model for `actor.org` and records it on the ledger.
    pub async fn register_model(&self, actor: &Actor, new: NewModel) -> Result<Model> {
        if new.name.trim().is_empty() || new.name.chars().count() > 200 {
            return Err(SandboxError::Invalid(
                "`name` must be 1 to 200 characters".into(),
            ));
        }
        if new.body.trim().is_empty() {
            return Err(SandboxError::Invalid(
                "`body` must hold the model text".into(),
            ));
        }
        if new.body.len() > MAX_MODEL_BYTES {
            return Err(SandboxError::Invalid(format!(
                "`body` is longer than {MAX_MODEL_BYTES} bytes"
            )));
        }
        if new.kind == ModelKind::Fhe {
            return Err(SandboxError::Invalid(
                "FHE lookups run through approved query templates, not models".into(),
            ));
        }
        let org = actor_org(actor)?;
        let id = ModelId::random();
        let hash = model_hash(new.kind, &new.body);
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        let entry = ModelRegistration {
            model_id: id.to_string(),
            model_kind: new.kind.as_str().into(),
            model_hash: hash,
        };
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let hash_hex = hash.to_hex();
        let row = store::models::NewModelRow {
            id: &id,
            org_id: &org,
            kind: new.kind.as_str(),
            name: new.name.trim(),
            body: &new.body,
            model_hash: &hash_hex,
            registration_seq: appended.seq as i64,
            created_ms: now,
        };
        store::models::insert_model(&mut *tx, &row).await?;
        tx.commit().await?;
        self.model(&id, &org).await
    }

    /// One model of `org` (others' models are not found).
    pub async fn model(&self, id: &ModelId, org: &OrgId) -> Result<Model> {
        let row = sqlx::query("SELECT * FROM models WHERE id = $1 AND org_id = $2")
            .bind(id.clone())
            .bind(org.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such model".into()))?;
        model_from_row(&row)
    }

    /// Any model by id, for reviewers and lineage.
    pub async fn model_any(&self, id: &ModelId) -> Result<Model> {
        let row = sqlx::query("SELECT * FROM models WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such model".into()))?;
        model_from_row(&row)
    }

    /// The models of `ids`, whichever organisation registered them, by id (an id with
    /// no model is absent): one query per [`store::IN_LIST_CHUNK`] ids, for lists that
    /// name many models (the review queue).
    pub(crate) async fn models_by_id(&self, ids: &[ModelId]) -> Result<HashMap<ModelId, Model>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(store::IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT * FROM models WHERE id IN ({})",
                store::placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.clone());
            }
            for row in query.fetch_all(self.db().pool()).await? {
                let model = model_from_row(&row)?;
                found.insert(model.id.clone(), model);
            }
        }
        Ok(found)
    }

    /// The models of `org`, newest first.
    pub async fn models(&self, org: &OrgId) -> Result<Vec<Model>> {
        sqlx::query("SELECT * FROM models WHERE org_id = $1 ORDER BY created_ms DESC, id")
            .bind(org.clone())
            .fetch_all(self.db().pool())
            .await?
            .iter()
            .map(model_from_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_separates_kind_and_body() {
        let a = model_hash(ModelKind::Sql, "SELECT 1");
        assert_ne!(a, model_hash(ModelKind::Dp, "SELECT 1"));
        assert_ne!(a, model_hash(ModelKind::Sql, "SELECT 1 "));
        let mut h = blake3::Hasher::new();
        h.update(b"pdx model v1\0sql\0SELECT 1");
        assert_eq!(a.0, *h.finalize().as_bytes());
    }
}
