//! The `open_attribute_changes` and `emergency_relaxations` tables, written for the
//! [`OpenAttributes`](crate::open_attributes::OpenAttributes) sub-service (SD22 Art.8,
//! 10, 20; XT Art.23(7)). The dataset's own attribute is changed through
//! [`super::catalog::update_metadata`] (a catalog revision), and the grants a change
//! suspends through [`super::grants::suspend_on_dataset`].

use pdx_ids::{AttributeChangeId, DatasetId, KeyId, OrgId, RelaxationId};

use crate::Result;

/// A provider's request to change its dataset's open attribute (status `pending`).
pub(crate) struct NewChangeRow<'a> {
    /// The request's id.
    pub(crate) id: &'a AttributeChangeId,
    /// The dataset.
    pub(crate) dataset_id: &'a DatasetId,
    /// The providing organisation.
    pub(crate) provider_org: &'a OrgId,
    /// The catalog's attribute when asked (wire name).
    pub(crate) from_attribute: &'a str,
    /// The attribute asked for (wire name).
    pub(crate) to_attribute: &'a str,
    /// Why.
    pub(crate) reason: &'a str,
    /// The legal basis named.
    pub(crate) legal_basis: &'a str,
    /// The requesting organisation.
    pub(crate) requester_org: &'a OrgId,
    /// The requesting API key.
    pub(crate) requester_key: &'a KeyId,
    /// Asked, ms since epoch.
    pub(crate) requested_ms: i64,
}

/// Inserts a pending change request. A second pending request for the same dataset
/// fails with the database's unique violation (as
/// [`SandboxError::Db`](crate::SandboxError::Db)).
pub(crate) async fn insert_change<'e, E>(db: E, row: &NewChangeRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO open_attribute_changes (id, dataset_id, provider_org, from_attribute, \
         to_attribute, reason, legal_basis, requester_org, requester_key, requested_ms, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')",
    )
    .bind(row.id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.provider_org.clone())
    .bind(row.from_attribute.to_string())
    .bind(row.to_attribute.to_string())
    .bind(row.reason.to_string())
    .bind(row.legal_basis.to_string())
    .bind(row.requester_org.clone())
    .bind(row.requester_key.clone())
    .bind(row.requested_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// The data authority's decision on a pending change request.
pub(crate) struct ChangeDecisionRow<'a> {
    /// The request.
    pub(crate) id: &'a AttributeChangeId,
    /// `approved` or `refused`.
    pub(crate) status: &'a str,
    /// The deciding organisation.
    pub(crate) decider_org: &'a OrgId,
    /// The deciding API key.
    pub(crate) decider_key: &'a KeyId,
    /// Decided, ms since epoch.
    pub(crate) decided_ms: i64,
    /// Why (required for a refusal).
    pub(crate) decision_reason: Option<&'a str>,
    /// The catalog revision an approval made.
    pub(crate) revision: Option<i64>,
    /// The seq of an approval's `OpenAttributeChange` entry.
    pub(crate) change_seq: Option<i64>,
    /// The grants an approval suspended, as JSON.
    pub(crate) suspended_grants_json: &'a str,
}

/// Records the decision on a still-pending request; returns the rows updated (0 when
/// it was decided concurrently).
pub(crate) async fn decide_change<'e, E>(db: E, row: &ChangeDecisionRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE open_attribute_changes SET status = $1, decider_org = $2, decider_key = $3, \
         decided_ms = $4, decision_reason = $5, revision = $6, change_seq = $7, \
         suspended_grants_json = $8 WHERE id = $9 AND status = 'pending'",
    )
    .bind(row.status.to_string())
    .bind(row.decider_org.clone())
    .bind(row.decider_key.clone())
    .bind(row.decided_ms)
    .bind(row.decision_reason.map(str::to_string))
    .bind(row.revision)
    .bind(row.change_seq)
    .bind(row.suspended_grants_json.to_string())
    .bind(row.id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// The data authority's emergency relaxation, as it starts.
pub(crate) struct NewRelaxationRow<'a> {
    /// The relaxation's id.
    pub(crate) id: &'a RelaxationId,
    /// The dataset.
    pub(crate) dataset_id: &'a DatasetId,
    /// The providing organisation.
    pub(crate) provider_org: &'a OrgId,
    /// The catalog's attribute when it starts (wire name).
    pub(crate) open_attribute: &'a str,
    /// The attribute in force while it lasts (wire name).
    pub(crate) relaxed_to: &'a str,
    /// The emergency stated.
    pub(crate) emergency: &'a str,
    /// The last day in force, `YYYY-MM-DD` (UTC).
    pub(crate) until_day: &'a str,
    /// When it ends, ms since epoch.
    pub(crate) ends_ms: i64,
    /// The data authority's organisation.
    pub(crate) authority_org: &'a OrgId,
    /// The data authority's API key.
    pub(crate) authority_key: &'a KeyId,
    /// Started, ms since epoch.
    pub(crate) started_ms: i64,
    /// The seq of its `started` entry.
    pub(crate) started_seq: i64,
}

/// Inserts a relaxation in force. A second one not yet ended for the same dataset fails
/// with the database's unique violation (as [`SandboxError::Db`](crate::SandboxError::Db)).
pub(crate) async fn insert_relaxation<'e, E>(db: E, row: &NewRelaxationRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO emergency_relaxations (id, dataset_id, provider_org, open_attribute, \
         relaxed_to, emergency, until_day, ends_ms, authority_org, authority_key, started_ms, \
         started_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(row.id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.provider_org.clone())
    .bind(row.open_attribute.to_string())
    .bind(row.relaxed_to.to_string())
    .bind(row.emergency.to_string())
    .bind(row.until_day.to_string())
    .bind(row.ends_ms)
    .bind(row.authority_org.clone())
    .bind(row.authority_key.clone())
    .bind(row.started_ms)
    .bind(row.started_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a relaxation ended if it is past its end and not yet marked; returns the rows
/// updated (0 when another check ended it first). Inside a transaction this also holds
/// its row until the end is recorded.
pub(crate) async fn claim_end<'e, E>(db: E, id: &RelaxationId, ended_ms: i64) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE emergency_relaxations SET ended_ms = $1 \
         WHERE id = $2 AND ended_ms IS NULL AND ends_ms <= $1",
    )
    .bind(ended_ms)
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Records the seq of a relaxation's `ended` entry and the grants its end suspended.
pub(crate) async fn record_end<'e, E>(
    db: E,
    id: &RelaxationId,
    ended_seq: i64,
    suspended_grants_json: &str,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE emergency_relaxations SET ended_seq = $1, suspended_grants_json = $2 \
         WHERE id = $3",
    )
    .bind(ended_seq)
    .bind(suspended_grants_json.to_string())
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(())
}
