//! The catalog life cycle (GD21 Art.10–11; XT Art.12, 14): an entry is drafted by its
//! provider, submitted, and published only when the data authority (数据主管部门)
//! approves it; after publication its provider keeps it up to date through catalog
//! revisions.
//!
//! - **Draft.** [`crate::catalog::Catalog::register_dataset`] stores a `draft` at
//!   catalog revision 1. Its provider may upload versions to it (data is prepared before
//!   publication; each version is certified as usual), but no developer reaches it on
//!   any path ([`Dataset::reachable_by_developers`]) and no other organisation sees it
//!   ([`CatalogReader`]).
//! - **Submission.** [`Lifecycle::submit`] moves a draft (or a returned entry) to
//!   `submitted` and sets the authority's answer deadline in working days
//!   ([`crate::workdays`], `catalog_review_working_days`, default 5). A `CatalogDecision`
//!   entry (`submitted`) names the revision and the hash of its metadata
//!   ([`crate::catalog::metadata_hash`]).
//! - **Review.** [`Lifecycle::review`]: the data authority approves the entry, which
//!   publishes it, or returns it with a reason; either is a `CatalogDecision` entry
//!   (`approved` or `returned`) for the same revision and hash, marked late after the
//!   deadline. Pending reviews past their deadline and late decisions show on the
//!   compliance report ([`crate::compliance`]). The authority does not review its own
//!   organisation's entries, and an entry under review cannot be edited, so what is
//!   approved is exactly what was submitted.
//! - **Revisions.** [`Lifecycle::revise`]: the provider replaces the metadata (not while
//!   it is under review) with a reason and, when a legal change required the edit, the
//!   change's date. Each edit is a new catalog revision, kept as history
//!   ([`Lifecycle::revisions`]) and recorded as a `CatalogRevision` entry; an edit made
//!   more than `catalog_update_working_days` (default 15) working days after its legal
//!   change is late and shows on the compliance report (GD21 Art.11; XT Art.14). Edits
//!   leave versions and their certificates as they are; for that reason the column
//!   schema of a dataset with versions cannot change. A published entry's open
//!   attribute changes only through the open-attribute change procedure (SD22 Art.8;
//!   [`crate::open_attributes`], which makes the change a catalog revision too), not
//!   through an edit, and its `research_only` restriction is not lifted by one. An edit
//!   that makes the entry not shared, or changes a not-shared entry's legal basis, is
//!   filed with the data authority (GD21 Art.13), and no edit makes level L4 data
//!   unconditionally open ([`crate::classification`]).
//!
//! Each step writes its rows and its ledger entry in one transaction, guarded by the
//! entry's status and revision, so a refused or concurrent step leaves nothing
//! half-written.

use pdx_ids::{DatasetId, KeyId, OrgId};
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::{CatalogDecision as DecisionEntry, CatalogRevision as RevisionEntry};
use pdx_ledger::{Actor, Hash32};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::Date;

use crate::catalog::{
    CatalogReader, CatalogStatus, Dataset, EncodedMeta, NewDataset, claim_element, metadata_hash,
};
use crate::store::{self, opt_u64, to_i64};
use crate::versions::INGEST_JOB_KIND;
use crate::workdays::{iso_date, iso_day_of_ms};
use crate::{Result, SandboxError, actor_key, actor_org, checked_text};

crate::service! {
    /// The catalog life cycle: submission, the data authority's review, and revisions.
    Lifecycle
}

/// Longest reason (for a return or an edit), in characters.
pub const MAX_REASON_CHARS: usize = 4000;

/// The refusal of an edit that changes a published entry's open attribute.
pub const OPEN_ATTRIBUTE_REFUSAL: &str = "a published entry's open attribute changes only \
    through the open-attribute change procedure (POST /v1/datasets/{id}/open-attribute), \
    with the data authority's approval (SD22 Art.8); an edit of its metadata must keep it";

/// The data authority's decision on a submitted entry. Its schema is named
/// `CatalogDecision`: the output checkers' `ReviewDecision` ([`crate::review`]) has the
/// name, and two schemas of one name would overwrite each other in the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CatalogDecision))]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// Publish the entry.
    Approve,
    /// Return it to its provider, with a reason.
    Return,
}

/// What the data authority sends to decide on a submitted entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CatalogReview {
    /// `approve` or `return`.
    pub decision: ReviewDecision,
    /// Why the entry is returned (required for a return, 1 to 4,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Why a provider edits an entry's metadata.
#[derive(Clone, Debug)]
pub struct RevisionNote {
    /// Why (1 to 4,000 characters).
    pub reason: String,
    /// The date of the legal change that required the edit, if one did.
    pub legal_change_date: Option<Date>,
}

/// One catalog revision, as the history keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogRevision {
    /// Dataset id.
    pub dataset_id: DatasetId,
    /// Revision number (1 is the registration).
    pub revision: u64,
    /// Hex BLAKE3 of its canonical metadata ([`crate::catalog::metadata_hash`]).
    pub metadata_hash: String,
    /// The providing organisation, which made it.
    pub provider_org: OrgId,
    /// The API key that made it.
    pub actor_key: KeyId,
    /// Made, ms since epoch.
    pub created_ms: i64,
    /// Why (`registered` for revision 1).
    pub reason: String,
    /// The legal change that required it (`YYYY-MM-DD`), if any.
    pub legal_change_date: Option<String>,
    /// The update deadline that change set (`YYYY-MM-DD`), in working days.
    pub update_due: Option<String>,
    /// Made after `update_due`.
    pub late: bool,
    /// Ledger seq of its `CatalogRevision` entry (none for the registration).
    pub ledger_seq: Option<u64>,
    /// The metadata as of this revision.
    pub metadata: NewDataset,
}

/// The open review of a submitted entry.
struct PendingReview {
    round: i64,
    revision: i64,
    metadata_hash: String,
    review_due: String,
}

fn revision_from_row(row: &AnyRow) -> Result<CatalogRevision> {
    let metadata: String = row.try_get("metadata_json")?;
    Ok(CatalogRevision {
        dataset_id: row.try_get("dataset_id")?,
        revision: u64::try_from(row.try_get::<i64, _>("revision")?).unwrap_or(0),
        metadata_hash: row.try_get("metadata_hash")?,
        provider_org: row.try_get("provider_org")?,
        actor_key: row.try_get("actor_key")?,
        created_ms: row.try_get("created_ms")?,
        reason: row.try_get("reason")?,
        legal_change_date: row.try_get("legal_change_date")?,
        update_due: row.try_get("update_due")?,
        late: row.try_get::<i64, _>("late")? != 0,
        ledger_seq: opt_u64(row, "revision_seq")?,
        metadata: serde_json::from_str(&metadata).map_err(|e| {
            SandboxError::Internal(format!("stored revision metadata does not parse: {e}"))
        })?,
    })
}

/// The next review round of a dataset, read inside the caller's transaction.
async fn next_round(conn: &mut AnyConnection, id: &DatasetId) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX(round), 0) AS n FROM catalog_reviews WHERE dataset_id = $1",
    )
    .bind(id.clone())
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get::<i64, _>("n")? + 1)
}

impl Lifecycle {
    /// The dataset `id` if `org` provides it; "not found" otherwise, as for an absent one.
    async fn own_dataset(&self, id: &DatasetId, org: &OrgId) -> Result<Dataset> {
        let dataset = self
            .catalog()
            .dataset(id)
            .await?
            .filter(|d| d.provider_org == *org)
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        // A destroyed entry is a tombstone: it is neither edited nor submitted again
        // (GD21 Art.40; `crate::destruction`).
        dataset.not_destroyed()?;
        Ok(dataset)
    }

    async fn reload(&self, id: &DatasetId) -> Result<Dataset> {
        self.catalog()
            .dataset(id)
            .await?
            .ok_or_else(|| SandboxError::Internal("a dataset vanished after an update".into()))
    }

    /// Submits a draft (or a returned entry) of `actor`'s organisation for the data
    /// authority's review, which is due within `catalog_review_working_days` working
    /// days. Another organisation's entry is "not found"; one already submitted or
    /// published is a conflict.
    pub async fn submit(&self, actor: &Actor, id: &DatasetId) -> Result<Dataset> {
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let dataset = self.own_dataset(id, &org).await?;
        match dataset.status {
            CatalogStatus::Draft | CatalogStatus::Returned => {}
            CatalogStatus::Submitted => {
                return Err(SandboxError::Conflict(
                    "the entry is already submitted; the data authority has not decided yet".into(),
                ));
            }
            CatalogStatus::Published => {
                return Err(SandboxError::Conflict(
                    "the entry is already published; change its metadata with an edit (a \
                     catalog revision)"
                        .into(),
                ));
            }
        }
        let hash = metadata_hash(&dataset.meta)?;
        let revision = to_i64(dataset.revision, "a revision number")?;
        let now = now_ms();
        let due = iso_date(
            self.calendar()
                .deadline_from_ms(now, self.config().catalog_review_working_days),
        );
        let entry = DecisionEntry {
            dataset_id: dataset.id.to_string(),
            provider_org: org.to_string(),
            decision: "submitted".into(),
            reason: None,
            revision: dataset.revision,
            metadata_hash: hash,
            review_due: due.clone(),
            late: false,
        };
        let mut tx = self.db().begin_write().await?;
        let moved = store::catalog::set_status(
            &mut *tx,
            id,
            &dataset.status.as_str(),
            &CatalogStatus::Submitted.as_str(),
            revision,
            now,
        )
        .await?;
        if moved != 1 {
            return Err(SandboxError::Conflict(
                "the entry changed while it was being submitted; read it and try again".into(),
            ));
        }
        let round = next_round(&mut tx, id).await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let hash_hex = hash.to_hex();
        store::catalog::insert_review(
            &mut *tx,
            &store::catalog::NewReviewRow {
                dataset_id: id,
                round,
                revision,
                metadata_hash: &hash_hex,
                provider_org: &org,
                submitted_key: &key,
                submitted_ms: now,
                review_due: &due,
                submission_seq: to_i64(appended.seq, "a revision number")?,
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(id).await
    }

    /// The open review of a submitted dataset.
    async fn pending_review(&self, id: &DatasetId) -> Result<PendingReview> {
        let row = sqlx::query(
            "SELECT round, revision, metadata_hash, review_due FROM catalog_reviews \
             WHERE dataset_id = $1 AND decision IS NULL ORDER BY round DESC LIMIT 1",
        )
        .bind(id.clone())
        .fetch_optional(self.db().pool())
        .await?
        .ok_or_else(|| {
            SandboxError::Internal("a submitted dataset has no pending review".into())
        })?;
        Ok(PendingReview {
            round: row.try_get("round")?,
            revision: row.try_get("revision")?,
            metadata_hash: row.try_get("metadata_hash")?,
            review_due: row.try_get("review_due")?,
        })
    }

    /// The data authority (`actor`) approves a submitted entry, which publishes it, or
    /// returns it to its provider with a reason. A decision after the review deadline is
    /// accepted and marked late. An entry that is not submitted is a conflict; the
    /// authority's own organisation's entry is forbidden.
    pub async fn review(
        &self,
        actor: &Actor,
        id: &DatasetId,
        review: CatalogReview,
    ) -> Result<Dataset> {
        let reason = review
            .reason
            .as_deref()
            .map(|r| checked_text("reason", r, MAX_REASON_CHARS))
            .transpose()?;
        if review.decision == ReviewDecision::Return && reason.is_none() {
            return Err(SandboxError::Invalid(
                "returning an entry needs a `reason` for its provider".into(),
            ));
        }
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let dataset = self
            .catalog()
            .dataset(id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        match dataset.status {
            CatalogStatus::Submitted => {}
            CatalogStatus::Draft => {
                return Err(SandboxError::Conflict(
                    "the entry has not been submitted for review".into(),
                ));
            }
            CatalogStatus::Returned => {
                return Err(SandboxError::Conflict(
                    "the entry was returned to its provider; it is reviewed again once \
                     resubmitted"
                        .into(),
                ));
            }
            CatalogStatus::Published => {
                return Err(SandboxError::Conflict(
                    "the entry is already published".into(),
                ));
            }
        }
        if dataset.provider_org == org {
            return Err(SandboxError::Forbidden(
                "the data authority does not review its own organisation's catalog entries".into(),
            ));
        }
        let pending = self.pending_review(id).await?;
        let now = now_ms();
        let late = iso_day_of_ms(now) > pending.review_due;
        let (decision, status) = match review.decision {
            ReviewDecision::Approve => ("approved", CatalogStatus::Published),
            ReviewDecision::Return => ("returned", CatalogStatus::Returned),
        };
        let hash = Hash32::from_hex(&pending.metadata_hash)
            .map_err(|_| SandboxError::Internal("a stored metadata hash is not hex".into()))?;
        let entry = DecisionEntry {
            dataset_id: dataset.id.to_string(),
            provider_org: dataset.provider_org.to_string(),
            decision: decision.into(),
            reason: reason.map(str::to_string),
            revision: u64::try_from(pending.revision).unwrap_or(0),
            metadata_hash: hash,
            review_due: pending.review_due.clone(),
            late,
        };
        let mut tx = self.db().begin_write().await?;
        let moved = store::catalog::set_status(
            &mut *tx,
            id,
            &CatalogStatus::Submitted.as_str(),
            &status.as_str(),
            pending.revision,
            now,
        )
        .await?;
        if moved != 1 {
            return Err(SandboxError::Conflict(
                "the entry was decided concurrently".into(),
            ));
        }
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let decided = store::catalog::decide_review(
            &mut *tx,
            &store::catalog::ReviewDecisionRow {
                dataset_id: id,
                round: pending.round,
                decision,
                reason,
                reviewer_org: &org,
                reviewer_key: &key,
                reviewed_ms: now,
                reviewed_late: i64::from(late),
                decision_seq: to_i64(appended.seq, "a revision number")?,
            },
        )
        .await?;
        if decided != 1 {
            return Err(SandboxError::Conflict(
                "the entry was decided concurrently".into(),
            ));
        }
        tx.commit().await?;
        self.reload(id).await
    }

    /// True while an upload of the dataset waits for or is in its ingest job.
    async fn ingest_in_progress(&self, id: &DatasetId) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE kind = $1 AND subject = $2 \
             AND status IN ('queued', 'running')",
        )
        .bind(INGEST_JOB_KIND.to_string())
        .bind(id.to_string())
        .fetch_one(self.db().pool())
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// The provider (`actor`) replaces the metadata of its entry: a new catalog revision
    /// with `note`'s reason and legal change date, recorded as a `CatalogRevision`
    /// entry. Refused while the entry is under review, for a published entry's open
    /// attribute or lifted `research_only`, for the column schema once a version exists
    /// (or is being ingested), and when nothing changes. Versions and their
    /// certificates stay as they are.
    pub async fn revise(
        &self,
        actor: &Actor,
        id: &DatasetId,
        new: NewDataset,
        note: RevisionNote,
    ) -> Result<Dataset> {
        new.validate()?;
        let reason = checked_text("reason", &note.reason, MAX_REASON_CHARS)?;
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let dataset = self.own_dataset(id, &org).await?;
        // L4 data is never unconditionally open, also not through a relaxation in force.
        crate::classification::check_revision(&dataset, &new)?;
        if dataset.status == CatalogStatus::Submitted {
            return Err(SandboxError::Conflict(
                "the entry is under the data authority's review; edit it once it is decided".into(),
            ));
        }
        if dataset.status == CatalogStatus::Published {
            if new.open_attribute != dataset.meta.open_attribute {
                return Err(SandboxError::Conflict(OPEN_ATTRIBUTE_REFUSAL.into()));
            }
            if dataset.meta.research_only && !new.research_only {
                return Err(SandboxError::Conflict(
                    "a published entry's research_only restriction is not lifted by an edit: \
                     its grants and products rely on it"
                        .into(),
                ));
            }
        }
        let encode = |v: &NewDataset| {
            serde_json::to_value(&v.schema)
                .map_err(|e| SandboxError::Internal(format!("encoding schema: {e}")))
        };
        if encode(&new)? != encode(&dataset.meta)?
            && (dataset.latest_version.is_some() || self.ingest_in_progress(id).await?)
        {
            return Err(SandboxError::Conflict(
                "the schema (columns, hierarchies and privacy targets) of a dataset with \
                 versions cannot change: their certificates and released domains describe \
                 it; register a new dataset for a new schema"
                    .into(),
            ));
        }
        let hash = metadata_hash(&new)?;
        if hash == metadata_hash(&dataset.meta)? {
            return Err(SandboxError::Invalid(
                "the edit changes nothing in the entry's metadata".into(),
            ));
        }
        let now = now_ms();
        let (legal_change_date, update_due, late) = match note.legal_change_date {
            Some(date) => {
                let due = iso_date(
                    self.calendar()
                        .add_working_days(date, self.config().catalog_update_working_days),
                );
                let late = iso_day_of_ms(now) > due;
                (Some(iso_date(date)), Some(due), late)
            }
            None => (None, None, false),
        };
        let revision = dataset.revision + 1;
        let encoded = EncodedMeta::of(&new)?;
        let metadata_json = serde_json::to_string(&new)
            .map_err(|e| SandboxError::Internal(format!("encoding metadata: {e}")))?;
        let hash_hex = hash.to_hex();
        let entry = RevisionEntry {
            dataset_id: dataset.id.to_string(),
            provider_org: org.to_string(),
            revision,
            metadata_hash: hash,
            reason: reason.to_string(),
            legal_change_date: legal_change_date.clone(),
            late,
        };
        let mut tx = self.db().begin_write().await?;
        let updated = store::catalog::update_metadata(
            &mut *tx,
            id,
            &encoded.row(&new),
            to_i64(revision, "a revision number")?,
            to_i64(dataset.revision, "a revision number")?,
            &dataset.status.as_str(),
            now,
        )
        .await?;
        if updated != 1 {
            return Err(SandboxError::Conflict(
                "the entry changed while it was being edited; read it and try again".into(),
            ));
        }
        for code in &new.elements {
            claim_element(&mut tx, &org, code, &new.source_department, "", Some(id)).await?;
        }
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::catalog::insert_revision(
            &mut *tx,
            &store::catalog::NewRevisionRow {
                dataset_id: id,
                revision: to_i64(revision, "a revision number")?,
                metadata_hash: &hash_hex,
                metadata_json: &metadata_json,
                provider_org: &org,
                actor_key: &key,
                created_ms: now,
                reason,
                legal_change_date: legal_change_date.as_deref(),
                update_due: update_due.as_deref(),
                late: i64::from(late),
                revision_seq: Some(to_i64(appended.seq, "a revision number")?),
            },
        )
        .await?;
        // An edit into `not_shared`, or to another legal basis, is filed with the data
        // authority (GD21 Art.13).
        self.classification()
            .file_if_not_shared(&mut tx, actor, id, &new, Some(&dataset.meta), revision)
            .await?;
        tx.commit().await?;
        self.reload(id).await
    }

    /// An entry's catalog revisions, oldest first, as `reader` may see the entry
    /// (otherwise "not found"). Entries registered before revisions were kept start
    /// their history at their first edit.
    pub async fn revisions(
        &self,
        id: &DatasetId,
        reader: CatalogReader<'_>,
    ) -> Result<Vec<CatalogRevision>> {
        let dataset = self.catalog().visible_dataset(id, reader).await?;
        let rows = sqlx::query(
            "SELECT dataset_id, revision, metadata_hash, metadata_json, provider_org, \
             actor_key, created_ms, reason, legal_change_date, update_due, late, revision_seq \
             FROM catalog_revisions WHERE dataset_id = $1 ORDER BY revision",
        )
        .bind(dataset.id.clone())
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(revision_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(
            checked_text("reason", "  wrong theme  ", MAX_REASON_CHARS).ok(),
            Some("wrong theme")
        );
        assert!(checked_text("reason", " ", MAX_REASON_CHARS).is_err());
        assert!(
            checked_text(
                "reason",
                &"字".repeat(MAX_REASON_CHARS + 1),
                MAX_REASON_CHARS
            )
            .is_err()
        );
    }

    #[test]
    fn review_bodies_name_their_decision() {
        let r: CatalogReview =
            serde_json::from_value(serde_json::json!({"decision": "return", "reason": "x"}))
                .unwrap();
        assert_eq!(r.decision, ReviewDecision::Return);
        let r: CatalogReview =
            serde_json::from_value(serde_json::json!({"decision": "approve"})).unwrap();
        assert_eq!(r.decision, ReviewDecision::Approve);
        assert!(
            serde_json::from_value::<CatalogReview>(serde_json::json!({"decision": "maybe"}))
                .is_err()
        );
    }
}
