//! Classification rules that hold (分类分级; GD21 Art.9, 12–13; SD22 Art.5, 8).
//!
//! **Not shared is filed with its legal basis (GD21 Art.13).** A provider that
//! classifies a catalog entry as not shared (不予共享) files (备案) that classification
//! with the data authority, with its legal basis. In pdx the filing is made by the act
//! itself: registering an entry with the share type `not_shared`
//! ([`crate::catalog::Catalog::register_dataset`]), or editing one into `not_shared` or
//! to another legal basis ([`crate::lifecycle::Lifecycle::revise`]), writes a
//! [`Filing`] and a `ClassificationFiling` ledger entry naming the legal basis, the
//! level and the catalog revision, in the same transaction as the registration or edit.
//! Without a legal basis the registration or edit is refused (422,
//! [`crate::catalog::NewDataset::validate`]), so nothing is written. The data authority
//! and supervisors list every filing (`GET /v1/classification-filings`); a provider
//! lists its own.
//!
//! **Which open attributes each level allows.** pdx's rule, per level (the level is
//! the catalog's `level`, L1 lowest to L4 highest):
//!
//! | level | unconditional | conditional | not open |
//! |---|---|---|---|
//! | L1 | yes | yes | yes |
//! | L2 | yes | yes | yes |
//! | L3 | yes | yes | yes |
//! | L4 | **no** | yes | yes |
//!
//! Level 4 data is the most sensitive class; an unconditional attribute lets anyone
//! download its de-identified rows, which cannot be taken back, so L4 data is reached
//! only under a grant, through vetted outputs, or not at all. The rule is checked on
//! every path that sets an attribute or a level ([`check_open_attribute`], 422):
//! registration and every catalog revision ([`crate::catalog::NewDataset::validate`],
//! and `check_revision` against an emergency relaxation in force), an
//! open-attribute change request and its approval, and an emergency relaxation
//! ([`crate::open_attributes`]): not even an emergency opens L4 data unconditionally.

use pdx_ids::{DatasetId, FilingId, KeyId, OrgId};
use pdx_ledger::Actor;
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::ClassificationFiling as FilingEntry;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::catalog::{CatalogReader, Dataset, Level, NewDataset, OpenAttribute, ShareType};
use crate::store::{self, to_i64, where_clause};
use crate::{Result, SandboxError, actor_key, actor_org};

crate::service! {
    /// Classification filings (GD21 Art.13) and the open attributes each level allows.
    Classification
}

/// The open attributes a level allows (see the module docs).
pub fn open_attributes_allowed(level: Level) -> &'static [OpenAttribute] {
    match level {
        Level::L1 | Level::L2 | Level::L3 => &[
            OpenAttribute::Unconditional,
            OpenAttribute::Conditional,
            OpenAttribute::NotOpen,
        ],
        Level::L4 => &[OpenAttribute::Conditional, OpenAttribute::NotOpen],
    }
}

/// The refusal of level 4 data made unconditionally open.
pub const L4_UNCONDITIONAL_REFUSAL: &str = "level L4 data cannot be unconditionally open: \
    an L4 dataset is conditional (reached only under a grant, through vetted outputs) or \
    not open, also in an emergency (GD21 Art.9; SD22 Art.5, 8)";

/// Checks that `level` allows `attribute` (422 otherwise).
pub fn check_open_attribute(level: Level, attribute: OpenAttribute) -> Result<()> {
    if open_attributes_allowed(level).contains(&attribute) {
        Ok(())
    } else {
        Err(SandboxError::Invalid(L4_UNCONDITIONAL_REFUSAL.into()))
    }
}

/// Checks an edit `new` of `dataset` against the attribute in force too: an edit may not
/// raise a dataset to a level that its emergency relaxation in force does not allow.
pub(crate) fn check_revision(dataset: &Dataset, new: &NewDataset) -> Result<()> {
    check_open_attribute(new.level, new.open_attribute)?;
    check_open_attribute(new.level, dataset.effective_open_attribute)
}

/// A filing (备案) of a not-shared classification with the data authority.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Filing {
    /// The filing's id.
    pub id: FilingId,
    /// The dataset.
    pub dataset_id: DatasetId,
    /// The providing organisation that filed it.
    pub provider_org: OrgId,
    /// The API key that filed it.
    pub actor_key: KeyId,
    /// The share type filed: `not_shared`.
    pub share_type: ShareType,
    /// The legal basis for not sharing.
    pub legal_basis: String,
    /// The dataset's level when filed.
    pub level: Level,
    /// The catalog revision it was filed with (1 is the registration).
    pub revision: u64,
    /// BLAKE3 (hex) of that revision's metadata.
    pub metadata_hash: String,
    /// Filed, ms since epoch.
    pub filed_ms: i64,
    /// Seq of its `ClassificationFiling` ledger entry.
    pub ledger_seq: u64,
}

/// Filters of the filing list.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct FilingQuery {
    /// Only filings of this dataset.
    pub dataset_id: Option<DatasetId>,
}

const FILING_COLUMNS: &str = "id, dataset_id, provider_org, actor_key, share_type, \
    legal_basis, level, revision, metadata_hash, filed_ms, filing_seq";

fn filing_from_row(row: &AnyRow) -> Result<Filing> {
    let unsigned = |col: &str| -> Result<u64> {
        u64::try_from(row.try_get::<i64, _>(col)?)
            .map_err(|_| SandboxError::Internal("a stored filing number is negative".into()))
    };
    Ok(Filing {
        id: row.try_get("id")?,
        dataset_id: row.try_get("dataset_id")?,
        provider_org: row.try_get("provider_org")?,
        actor_key: row.try_get("actor_key")?,
        share_type: ShareType::parse(&row.try_get::<String, _>("share_type")?)?,
        legal_basis: row.try_get("legal_basis")?,
        level: Level::parse(&row.try_get::<String, _>("level")?)?,
        revision: unsigned("revision")?,
        metadata_hash: row.try_get("metadata_hash")?,
        filed_ms: row.try_get("filed_ms")?,
        ledger_seq: unsigned("filing_seq")?,
    })
}

impl Classification {
    /// Files `meta`'s not-shared classification of `dataset_id` as `actor` (its
    /// provider), at catalog `revision`, inside the caller's transaction: a filing row
    /// and a `ClassificationFiling` entry. Nothing is filed unless the share type is
    /// `not_shared`, nor when `previous` (the metadata before an edit) was not shared
    /// already under the same legal basis. Returns the filing's id, if one was made.
    pub(crate) async fn file_if_not_shared(
        &self,
        conn: &mut AnyConnection,
        actor: &Actor,
        dataset_id: &DatasetId,
        meta: &NewDataset,
        previous: Option<&NewDataset>,
        revision: u64,
    ) -> Result<Option<FilingId>> {
        if meta.share_type != ShareType::NotShared {
            return Ok(None);
        }
        let legal_basis = meta.legal_basis.trim();
        if previous.is_some_and(|p| {
            p.share_type == ShareType::NotShared && p.legal_basis.trim() == legal_basis
        }) {
            return Ok(None);
        }
        // `NewDataset::validate` refuses this before any write; checked again here
        // because a filing without its legal basis is no filing (GD21 Art.13).
        if legal_basis.is_empty() {
            return Err(SandboxError::Invalid(
                "a not-shared dataset must state its legal_basis: it is filed with the data \
                 authority (GD21 Art.13)"
                    .into(),
            ));
        }
        let provider_org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let id = FilingId::random();
        let hash = crate::catalog::metadata_hash(meta)?;
        let share_type = meta.share_type.as_str();
        let level = meta.level.as_str();
        let entry = FilingEntry {
            filing_id: id.to_string(),
            dataset_id: dataset_id.to_string(),
            provider_org: provider_org.to_string(),
            share_type: share_type.clone(),
            legal_basis: legal_basis.to_string(),
            level: level.clone(),
            revision,
            metadata_hash: hash,
        };
        let appended = self.ledger().append(&mut *conn, actor, &entry).await?;
        let hash_hex = hash.to_hex();
        store::classification::insert_filing(
            &mut *conn,
            &store::classification::NewFilingRow {
                id: &id,
                dataset_id,
                provider_org: &provider_org,
                actor_key: &key,
                share_type: &share_type,
                legal_basis,
                level: &level,
                revision: to_i64(revision, "a number")?,
                metadata_hash: &hash_hex,
                filed_ms: now_ms(),
                filing_seq: to_i64(appended.seq, "a number")?,
            },
        )
        .await?;
        Ok(Some(id))
    }

    /// Filings as `reader` may see them, newest first: every one for the data authority
    /// and supervisors ([`CatalogReader::Overseer`]), a provider's own otherwise, none
    /// for the public.
    pub async fn filings(
        &self,
        query: &FilingQuery,
        reader: CatalogReader<'_>,
    ) -> Result<Vec<Filing>> {
        let mut filters = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(dataset) = &query.dataset_id {
            binds.push(dataset.to_string());
            filters.push(format!("dataset_id = ${}", binds.len()));
        }
        match reader {
            CatalogReader::Overseer => {}
            CatalogReader::Org(org) => {
                binds.push(org.to_string());
                filters.push(format!("provider_org = ${}", binds.len()));
            }
            // Filings are the authority's and their providers' to read, not the public's.
            CatalogReader::Public => return Ok(Vec::new()),
        }
        let filter = where_clause(&filters);
        let sql = format!(
            "SELECT {FILING_COLUMNS} FROM classification_filings {filter} \
             ORDER BY filed_ms DESC, id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b.clone());
        }
        q.fetch_all(self.db().pool())
            .await?
            .iter()
            .map(filing_from_row)
            .collect()
    }

    /// One filing, if `reader` may see it ("not found" otherwise, as for an absent one).
    pub async fn filing(&self, id: &FilingId, reader: CatalogReader<'_>) -> Result<Filing> {
        let sql = format!("SELECT {FILING_COLUMNS} FROM classification_filings WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?;
        let filing = row.as_ref().map(filing_from_row).transpose()?;
        filing
            .filter(|f| match reader {
                CatalogReader::Overseer => true,
                CatalogReader::Org(org) => f.provider_org == *org,
                CatalogReader::Public => false,
            })
            .ok_or_else(|| SandboxError::NotFound("no such classification filing".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_l4_refuses_unconditional() {
        for level in [Level::L1, Level::L2, Level::L3] {
            for attribute in [
                OpenAttribute::Unconditional,
                OpenAttribute::Conditional,
                OpenAttribute::NotOpen,
            ] {
                assert!(check_open_attribute(level, attribute).is_ok());
            }
        }
        assert!(check_open_attribute(Level::L4, OpenAttribute::Conditional).is_ok());
        assert!(check_open_attribute(Level::L4, OpenAttribute::NotOpen).is_ok());
        let e = check_open_attribute(Level::L4, OpenAttribute::Unconditional).unwrap_err();
        assert_eq!(e.class().status(), 422);
        assert!(e.to_string().contains("L4"));
    }
}
