//! The `open_data_requests` table, written for the
//! [`OpenDataRequests`](crate::open_data_requests::OpenDataRequests) sub-service (SD22
//! Art.9, 12; GD21 Art.34). Each step is guarded by the status it moves from, so a
//! concurrent step updates no row and its caller rolls back.

use pdx_ids::{DatasetId, KeyId, OpenDataRequestId, OrgId};

use crate::Result;

/// A request as filed (status `filed`).
pub(crate) struct NewRequestRow<'a> {
    /// The request's id.
    pub(crate) id: &'a OpenDataRequestId,
    /// `open_dataset` or `new_dataset`.
    pub(crate) request: &'a str,
    /// The dataset to open, for `open_dataset`.
    pub(crate) dataset_id: Option<&'a DatasetId>,
    /// Its subject.
    pub(crate) subject: &'a str,
    /// What is asked for, and why.
    pub(crate) description: &'a str,
    /// How to reach the requester (never public).
    pub(crate) contact: Option<&'a str>,
    /// The filing organisation; none for the public.
    pub(crate) requester_org: Option<&'a OrgId>,
    /// The filing API key; none for the public.
    pub(crate) requester_key: Option<&'a KeyId>,
    /// Filed, ms since epoch.
    pub(crate) filed_ms: i64,
    /// Seq of its `filed` ledger entry.
    pub(crate) filed_seq: i64,
}

/// Inserts a filed request.
pub(crate) async fn insert_request<'e, E>(db: E, row: &NewRequestRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO open_data_requests (id, request, dataset_id, subject, description, \
         contact, requester_org, requester_key, filed_ms, filed_seq, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'filed')",
    )
    .bind(row.id.clone())
    .bind(row.request.to_string())
    .bind(row.dataset_id.map(ToString::to_string))
    .bind(row.subject.to_string())
    .bind(row.description.to_string())
    .bind(row.contact.map(str::to_string))
    .bind(row.requester_org.map(ToString::to_string))
    .bind(row.requester_key.map(ToString::to_string))
    .bind(row.filed_ms)
    .bind(row.filed_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// The data authority's routing of a filed request to a provider.
pub(crate) struct RoutingRow<'a> {
    /// The request.
    pub(crate) id: &'a OpenDataRequestId,
    /// The provider that must answer.
    pub(crate) provider_org: &'a OrgId,
    /// The data authority's organisation.
    pub(crate) routed_by_org: &'a OrgId,
    /// The data authority's API key.
    pub(crate) routed_by_key: &'a KeyId,
    /// Routed, ms since epoch.
    pub(crate) routed_ms: i64,
    /// The answer deadline, `YYYY-MM-DD`.
    pub(crate) answer_due: &'a str,
    /// Seq of its `routed` ledger entry.
    pub(crate) routed_seq: i64,
}

/// Routes a request still `filed`; returns the rows updated (0 when it was routed
/// concurrently).
pub(crate) async fn route_request<'e, E>(db: E, row: &RoutingRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE open_data_requests SET status = 'routed', provider_org = $1, \
         routed_by_org = $2, routed_by_key = $3, routed_ms = $4, answer_due = $5, \
         routed_seq = $6 WHERE id = $7 AND status = 'filed'",
    )
    .bind(row.provider_org.clone())
    .bind(row.routed_by_org.clone())
    .bind(row.routed_by_key.clone())
    .bind(row.routed_ms)
    .bind(row.answer_due.to_string())
    .bind(row.routed_seq)
    .bind(row.id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// The provider's answer to a routed request.
pub(crate) struct AnswerRow<'a> {
    /// The request.
    pub(crate) id: &'a OpenDataRequestId,
    /// The provider it is routed to (the guard: no other may answer).
    pub(crate) provider_org: &'a OrgId,
    /// `accepted` or `refused`.
    pub(crate) status: &'a str,
    /// Why (required for a refusal).
    pub(crate) reason: Option<&'a str>,
    /// The answering API key.
    pub(crate) answered_key: &'a KeyId,
    /// Answered, ms since epoch.
    pub(crate) answered_ms: i64,
    /// 1 when after the deadline.
    pub(crate) answered_late: i64,
    /// Seq of its `answered` ledger entry.
    pub(crate) answered_seq: i64,
}

/// Answers a request still `routed` to `provider_org`; returns the rows updated (0 when
/// it was answered concurrently).
pub(crate) async fn answer_request<'e, E>(db: E, row: &AnswerRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE open_data_requests SET status = $1, reason = $2, answered_key = $3, \
         answered_ms = $4, answered_late = $5, answered_seq = $6 \
         WHERE id = $7 AND status = 'routed' AND provider_org = $8",
    )
    .bind(row.status.to_string())
    .bind(row.reason.map(str::to_string))
    .bind(row.answered_key.clone())
    .bind(row.answered_ms)
    .bind(row.answered_late)
    .bind(row.answered_seq)
    .bind(row.id.clone())
    .bind(row.provider_org.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}
