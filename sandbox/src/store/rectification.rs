//! The `rectification_orders` table, written for the
//! [`Rectifications`](crate::rectification::Rectifications) sub-service (GD21 Art.52;
//! GD18 Art.31).

use pdx_ids::{KeyId, OrgId, RectificationId};

use crate::Result;

/// A rectification order as the data authority issues it (status `issued`).
pub(crate) struct NewOrderRow<'a> {
    /// The order's id.
    pub(crate) id: &'a RectificationId,
    /// The organisation ordered to rectify.
    pub(crate) org_id: &'a OrgId,
    /// The data authority's organisation.
    pub(crate) authority_org: &'a OrgId,
    /// The data authority's API key.
    pub(crate) authority_key: &'a KeyId,
    /// The evaluation the order follows, if any.
    pub(crate) evaluation_id: Option<String>,
    /// What must be rectified.
    pub(crate) findings: &'a str,
    /// The deadline, `YYYY-MM-DD`.
    pub(crate) deadline: &'a str,
    /// Issued, ms since epoch.
    pub(crate) issued_ms: i64,
    /// Seq of its `issued` entry.
    pub(crate) issued_seq: i64,
}

/// Inserts an issued order.
pub(crate) async fn insert_order<'e, E>(db: E, row: &NewOrderRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO rectification_orders (id, org_id, authority_org, authority_key, \
         evaluation_id, findings, deadline, status, issued_ms, issued_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'issued', $8, $9)",
    )
    .bind(row.id.clone())
    .bind(row.org_id.clone())
    .bind(row.authority_org.clone())
    .bind(row.authority_key.clone())
    .bind(row.evaluation_id.clone())
    .bind(row.findings.to_string())
    .bind(row.deadline.to_string())
    .bind(row.issued_ms)
    .bind(row.issued_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// The ordered organisation's response.
pub(crate) struct ResponseRow<'a> {
    /// The order.
    pub(crate) id: &'a RectificationId,
    /// What the organisation did.
    pub(crate) response: &'a str,
    /// The responding API key.
    pub(crate) responder_key: &'a KeyId,
    /// Responded, ms since epoch.
    pub(crate) responded_ms: i64,
    /// 1 when after the deadline.
    pub(crate) responded_late: i64,
}

/// Records the response to a still-issued order; returns the rows updated (0 when it
/// was answered or closed concurrently).
pub(crate) async fn record_response<'e, E>(db: E, row: &ResponseRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE rectification_orders SET status = 'responded', response = $1, \
         responder_key = $2, responded_ms = $3, responded_late = $4 \
         WHERE id = $5 AND status = 'issued'",
    )
    .bind(row.response.to_string())
    .bind(row.responder_key.clone())
    .bind(row.responded_ms)
    .bind(row.responded_late)
    .bind(row.id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Records the seq of a response's entry.
pub(crate) async fn set_response_seq<'e, E>(db: E, id: &RectificationId, seq: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE rectification_orders SET response_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(id.clone())
        .execute(db)
        .await?;
    Ok(())
}

/// The data authority's closing of an order.
pub(crate) struct CloseRow<'a> {
    /// The order.
    pub(crate) id: &'a RectificationId,
    /// Why it is closed.
    pub(crate) closing_note: &'a str,
    /// The closing organisation (the data authority).
    pub(crate) closer_org: &'a OrgId,
    /// The closing API key.
    pub(crate) closer_key: &'a KeyId,
    /// Closed, ms since epoch.
    pub(crate) closed_ms: i64,
}

/// Closes an order not yet closed; returns the rows updated (0 when it was closed
/// concurrently).
pub(crate) async fn record_close<'e, E>(db: E, row: &CloseRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE rectification_orders SET status = 'closed', closing_note = $1, \
         closer_org = $2, closer_key = $3, closed_ms = $4 \
         WHERE id = $5 AND status <> 'closed'",
    )
    .bind(row.closing_note.to_string())
    .bind(row.closer_org.clone())
    .bind(row.closer_key.clone())
    .bind(row.closed_ms)
    .bind(row.id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Records the seq of a closing's entry.
pub(crate) async fn set_close_seq<'e, E>(db: E, id: &RectificationId, seq: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE rectification_orders SET close_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(id.clone())
        .execute(db)
        .await?;
    Ok(())
}
