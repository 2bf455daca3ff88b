//! The `consent_keys` and `fhe_consent_requests` tables: subjects' consent keys and the
//! supervisors' requests to open a query's consent commitment, written for the
//! [`crate::fhe_consent::FheConsent`] sub-service.

use pdx_ids::{ConsentKeyId, ConsentRequestId, FheQueryId, KeyId, OrgId};

use crate::Result;

/// A newly registered consent key (current until superseded).
pub(crate) struct NewConsentKey<'a> {
    /// Key id.
    pub id: &'a ConsentKeyId,
    /// The subject organisation.
    pub org_id: &'a OrgId,
    /// Ed25519 public key, hex.
    pub public_key: &'a str,
    /// Registered, ms since epoch.
    pub registered_ms: i64,
    /// Ledger seq of the registration.
    pub ledger_seq: i64,
}

/// A supervisor's request to open a query's commitment (status `open`).
pub(crate) struct NewConsentRequest<'a> {
    /// Request id.
    pub id: &'a ConsentRequestId,
    /// The query.
    pub query_id: &'a FheQueryId,
    /// The bank that made the query.
    pub bank_org: &'a OrgId,
    /// The requesting supervisor organisation.
    pub requester_org: &'a OrgId,
    /// The requester's API key id.
    pub requester_key: &'a KeyId,
    /// Why.
    pub reason: &'a str,
    /// Requested, ms since epoch.
    pub requested_ms: i64,
    /// Answer deadline (YYYY-MM-DD).
    pub answer_deadline: &'a str,
    /// Ledger seq of the request.
    pub request_seq: i64,
}

/// The bank's answer to an open request.
pub(crate) struct ConsentAnswerRow<'a> {
    /// Request id.
    pub id: &'a ConsentRequestId,
    /// Outcome status (`verified`, `invalid` or `refused`).
    pub status: &'a str,
    /// Answered, ms since epoch.
    pub answered_ms: i64,
    /// 1 if answered after the deadline, else 0.
    pub answered_late: i64,
    /// The check an invalid opening failed.
    pub failed_check: Option<&'a str>,
    /// The bank's reason for refusing.
    pub refusal: Option<&'a str>,
    /// The subject organisation the opening names, if real.
    pub subject_org: Option<&'a OrgId>,
    /// The subject's key at query time, hex.
    pub subject_key: Option<&'a str>,
    /// The opening, as JSON.
    pub opening_json: Option<&'a str>,
}

/// Marks a consent key superseded from `superseded_ms` on.
pub(crate) async fn supersede_key<'e, E>(db: E, id: &ConsentKeyId, superseded_ms: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE consent_keys SET superseded_ms = $1 WHERE id = $2")
        .bind(superseded_ms)
        .bind(id.clone())
        .execute(db)
        .await?;
    Ok(())
}

/// Inserts a newly registered consent key.
pub(crate) async fn insert_key<'e, E>(db: E, row: &NewConsentKey<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO consent_keys (id, org_id, public_key, registered_ms, ledger_seq) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(row.id.clone())
    .bind(row.org_id.clone())
    .bind(row.public_key.to_string())
    .bind(row.registered_ms)
    .bind(row.ledger_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts a request to open a commitment with status `open`.
pub(crate) async fn insert_request<'e, E>(db: E, row: &NewConsentRequest<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO fhe_consent_requests (id, query_id, bank_org, requester_org, requester_key, \
         reason, status, requested_ms, answer_deadline, request_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9)",
    )
    .bind(row.id.clone())
    .bind(row.query_id.clone())
    .bind(row.bank_org.clone())
    .bind(row.requester_org.clone())
    .bind(row.requester_key.clone())
    .bind(row.reason.to_string())
    .bind(row.requested_ms)
    .bind(row.answer_deadline.to_string())
    .bind(row.request_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// Records the bank's answer on a still-open request; returns the rows updated (0 if
/// it was answered concurrently).
pub(crate) async fn answer_open_request<'e, E>(db: E, row: &ConsentAnswerRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let claimed = sqlx::query(
        "UPDATE fhe_consent_requests SET status = $1, answered_ms = $2, answered_late = $3, \
         failed_check = $4, refusal = $5, subject_org = $6, subject_key = $7, opening_json = $8 \
         WHERE id = $9 AND status = 'open'",
    )
    .bind(row.status)
    .bind(row.answered_ms)
    .bind(row.answered_late)
    .bind(row.failed_check.map(str::to_string))
    .bind(row.refusal.map(str::to_string))
    .bind(row.subject_org.cloned())
    .bind(row.subject_key.map(str::to_string))
    .bind(row.opening_json.map(str::to_string))
    .bind(row.id.clone())
    .execute(db)
    .await?;
    Ok(claimed.rows_affected())
}

/// Records the ledger seq of a request's answer.
pub(crate) async fn set_answer_seq<'e, E>(db: E, id: &ConsentRequestId, seq: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE fhe_consent_requests SET answer_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(id.clone())
        .execute(db)
        .await?;
    Ok(())
}
