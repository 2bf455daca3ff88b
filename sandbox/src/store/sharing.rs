//! The `share_requests` and `share_accesses` tables, written for the
//! [`Sharing`](crate::sharing::Sharing) sub-service (data sharing between government
//! departments: GD18; GD21 Art.22–23).

use pdx_ids::{DatasetId, KeyId, OrgId, ShareRequestId};

use crate::Result;

/// A share request as it is filed, with its outcome when the share type decides it at
/// once (granted under an unconditional type, refused under a not-shared one).
pub(crate) struct NewShareRow<'a> {
    /// The request's id.
    pub(crate) id: &'a ShareRequestId,
    /// The dataset.
    pub(crate) dataset_id: &'a DatasetId,
    /// The department providing the dataset.
    pub(crate) owner_org: &'a OrgId,
    /// The department asking for it.
    pub(crate) requester_org: &'a OrgId,
    /// The asking API key.
    pub(crate) requester_key: &'a KeyId,
    /// The dataset's share type when asked (wire name).
    pub(crate) share_type: &'a str,
    /// The requester's duty and purpose.
    pub(crate) purpose: &'a str,
    /// The legal basis of that duty.
    pub(crate) duty_legal_basis: &'a str,
    /// The last day of the term, `YYYY-MM-DD`.
    pub(crate) until_day: &'a str,
    /// When the term ends, ms since epoch.
    pub(crate) ends_ms: i64,
    /// Asked, ms since epoch.
    pub(crate) requested_ms: i64,
    /// The seq of its `requested` entry.
    pub(crate) request_seq: i64,
    /// `pending`, `granted` or `refused`.
    pub(crate) status: &'a str,
    /// The owner's answer deadline (conditional shares).
    pub(crate) answer_deadline: Option<&'a str>,
    /// 1 when the share type decided it at once.
    pub(crate) automatic: i64,
    /// Decided, ms since epoch (decided at once).
    pub(crate) decided_ms: Option<i64>,
    /// Why it was refused (decided at once).
    pub(crate) decision_reason: Option<&'a str>,
    /// The dataset's legal basis for not sharing it (refused at once).
    pub(crate) dataset_legal_basis: Option<&'a str>,
    /// The seq of its decision entry (decided at once).
    pub(crate) decision_seq: Option<i64>,
}

/// Inserts a share request. A second pending request of the same department for the
/// same dataset fails with the database's unique violation (as
/// [`SandboxError::Db`](crate::SandboxError::Db)).
pub(crate) async fn insert_share<'e, E>(db: E, row: &NewShareRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO share_requests (id, dataset_id, owner_org, requester_org, requester_key, \
         share_type, purpose, duty_legal_basis, until_day, ends_ms, requested_ms, request_seq, \
         status, answer_deadline, automatic, decided_ms, decision_reason, dataset_legal_basis, \
         decision_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19)",
    )
    .bind(row.id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.owner_org.clone())
    .bind(row.requester_org.clone())
    .bind(row.requester_key.clone())
    .bind(row.share_type.to_string())
    .bind(row.purpose.to_string())
    .bind(row.duty_legal_basis.to_string())
    .bind(row.until_day.to_string())
    .bind(row.ends_ms)
    .bind(row.requested_ms)
    .bind(row.request_seq)
    .bind(row.status.to_string())
    .bind(row.answer_deadline.map(str::to_string))
    .bind(row.automatic)
    .bind(row.decided_ms)
    .bind(row.decision_reason.map(str::to_string))
    .bind(row.dataset_legal_basis.map(str::to_string))
    .bind(row.decision_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// The owning department's decision on a pending conditional share.
pub(crate) struct ShareDecisionRow<'a> {
    /// The request.
    pub(crate) id: &'a ShareRequestId,
    /// `granted` or `refused`.
    pub(crate) status: &'a str,
    /// The deciding organisation (the owner).
    pub(crate) decider_org: &'a OrgId,
    /// The deciding API key.
    pub(crate) decider_key: &'a KeyId,
    /// Decided, ms since epoch.
    pub(crate) decided_ms: i64,
    /// Why (required for a refusal).
    pub(crate) decision_reason: Option<&'a str>,
    /// 1 when decided after the answer deadline.
    pub(crate) decision_late: i64,
    /// The seq of the decision's entry.
    pub(crate) decision_seq: i64,
}

/// Records the decision on a still-pending request; returns the rows updated (0 when
/// it was decided concurrently).
pub(crate) async fn decide_share<'e, E>(db: E, row: &ShareDecisionRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE share_requests SET status = $1, decider_org = $2, decider_key = $3, \
         decided_ms = $4, decision_reason = $5, decision_late = $6, decision_seq = $7 \
         WHERE id = $8 AND status = 'pending'",
    )
    .bind(row.status.to_string())
    .bind(row.decider_org.clone())
    .bind(row.decider_key.clone())
    .bind(row.decided_ms)
    .bind(row.decision_reason.map(str::to_string))
    .bind(row.decision_late)
    .bind(row.decision_seq)
    .bind(row.id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// The owning department's revocation of a granted share.
pub(crate) struct RevocationRow<'a> {
    /// The share.
    pub(crate) id: &'a ShareRequestId,
    /// Revoked, ms since epoch.
    pub(crate) revoked_ms: i64,
    /// The revoking API key.
    pub(crate) revoker_key: &'a KeyId,
    /// Why.
    pub(crate) revoke_reason: &'a str,
    /// The seq of the `revoked` entry.
    pub(crate) revoke_seq: i64,
}

/// Revokes a share that is granted and still within its term; returns the rows
/// updated (0 when it was revoked concurrently or its term ended meanwhile).
pub(crate) async fn revoke_share<'e, E>(db: E, row: &RevocationRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE share_requests SET status = 'revoked', revoked_ms = $1, revoker_key = $2, \
         revoke_reason = $3, revoke_seq = $4 \
         WHERE id = $5 AND status = 'granted' AND ends_ms > $1",
    )
    .bind(row.revoked_ms)
    .bind(row.revoker_key.clone())
    .bind(row.revoke_reason.to_string())
    .bind(row.revoke_seq)
    .bind(row.id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// One download under a share, as its `access` entry records it.
pub(crate) struct AccessRow<'a> {
    /// The seq of the `access` entry.
    pub(crate) access_seq: i64,
    /// The share.
    pub(crate) share_id: &'a ShareRequestId,
    /// The dataset.
    pub(crate) dataset_id: &'a DatasetId,
    /// The version served.
    pub(crate) version: i64,
    /// The bytes served.
    pub(crate) bytes: i64,
    /// Hex BLAKE3 of the bytes served.
    pub(crate) content_hash: &'a str,
    /// The downloading API key.
    pub(crate) accessor_key: &'a KeyId,
    /// Served, ms since epoch.
    pub(crate) accessed_ms: i64,
}

/// Records a download under a share.
pub(crate) async fn insert_access<'e, E>(db: E, row: &AccessRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO share_accesses (access_seq, share_id, dataset_id, version, bytes, \
         content_hash, accessor_key, accessed_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(row.access_seq)
    .bind(row.share_id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.version)
    .bind(row.bytes)
    .bind(row.content_hash.to_string())
    .bind(row.accessor_key.clone())
    .bind(row.accessed_ms)
    .execute(db)
    .await?;
    Ok(())
}
