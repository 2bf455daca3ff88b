//! The `grants` table: open-use agreements and their budgets, written for the
//! [`crate::grants::Grants`] sub-service.
//!
//! Budgets are integers (ε in micro-units, δ in units of 1e-12); a spend is one
//! conditional `UPDATE … WHERE spent + cost <= budget`, so the database settles
//! concurrent jobs and a grant is never overspent.

use pdx_ids::{DatasetId, GrantId, OrgId};
use sqlx::Row;

use crate::Result;

/// A new application, as filed (status `pending`).
pub(crate) struct NewGrant<'a> {
    /// Grant id.
    pub id: &'a GrantId,
    /// The dataset.
    pub dataset_id: &'a DatasetId,
    /// Applying developer organisation.
    pub applicant_org: &'a OrgId,
    /// Providing organisation.
    pub provider_org: &'a OrgId,
    /// Stated purpose.
    pub purpose: &'a str,
    /// Requested columns, as JSON.
    pub columns_json: &'a str,
    /// Requested model kinds, as JSON.
    pub model_kinds_json: &'a str,
    /// Term in days.
    pub term_days: i64,
    /// ε budget in micro-units.
    pub epsilon_micro: i64,
    /// δ budget in units of 1e-12.
    pub delta_pico: i64,
    /// Query budget.
    pub query_budget: i64,
    /// Answer deadline (YYYY-MM-DD).
    pub answer_deadline: &'a str,
    /// Filed, ms since epoch.
    pub applied_ms: i64,
    /// 1 if the results serve research only, else 0.
    pub research_only: i64,
    /// The purpose's kind (`research`, `public_interest`, `commercial`).
    pub purpose_kind: &'a str,
    /// The agreement text accepted, byte for byte.
    pub agreement_text: &'a str,
    /// Its BLAKE3, hex.
    pub agreement_hash: &'a str,
}

/// The terms of an approval (possibly narrowed from the application).
pub(crate) struct GrantApproval<'a> {
    /// Grant id.
    pub id: &'a GrantId,
    /// The provider's reason, if any.
    pub reason: Option<&'a str>,
    /// Approved columns, as JSON.
    pub columns_json: &'a str,
    /// Approved model kinds, as JSON.
    pub model_kinds_json: &'a str,
    /// Term in days.
    pub term_days: i64,
    /// ε budget in micro-units.
    pub epsilon_micro: i64,
    /// δ budget in units of 1e-12.
    pub delta_pico: i64,
    /// Query budget.
    pub query_budget: i64,
    /// Decided (and in force from), ms since epoch.
    pub decided_ms: i64,
    /// Expires, ms since epoch.
    pub expires_ms: i64,
}

/// Inserts a new application with status `pending`.
pub(crate) async fn insert_grant<'e, E>(db: E, row: &NewGrant<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO grants (id, dataset_id, applicant_org, provider_org, purpose, columns_json, \
         model_kinds_json, term_days, epsilon_micro, delta_pico, query_budget, status, \
         answer_deadline, applied_ms, research_only, purpose_kind, agreement_text, \
         agreement_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, $14, $15, \
         $16, $17)",
    )
    .bind(row.id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.applicant_org.clone())
    .bind(row.provider_org.clone())
    .bind(row.purpose.to_string())
    .bind(row.columns_json.to_string())
    .bind(row.model_kinds_json.to_string())
    .bind(row.term_days)
    .bind(row.epsilon_micro)
    .bind(row.delta_pico)
    .bind(row.query_budget)
    .bind(row.answer_deadline.to_string())
    .bind(row.applied_ms)
    .bind(row.research_only)
    .bind(row.purpose_kind.to_string())
    .bind(row.agreement_text.to_string())
    .bind(row.agreement_hash.to_string())
    .execute(db)
    .await?;
    Ok(())
}

/// Approves a still-pending grant with its terms; returns the rows updated (0 if it
/// was decided concurrently).
pub(crate) async fn approve_pending<'e, E>(db: E, row: &GrantApproval<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE grants SET status = 'approved', reason = $1, columns_json = $2, \
         model_kinds_json = $3, term_days = $4, epsilon_micro = $5, delta_pico = $6, \
         query_budget = $7, decided_ms = $8, starts_ms = $8, expires_ms = $9 \
         WHERE id = $10 AND status = 'pending'",
    )
    .bind(row.reason.map(str::to_string))
    .bind(row.columns_json.to_string())
    .bind(row.model_kinds_json.to_string())
    .bind(row.term_days)
    .bind(row.epsilon_micro)
    .bind(row.delta_pico)
    .bind(row.query_budget)
    .bind(row.decided_ms)
    .bind(row.expires_ms)
    .bind(row.id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Moves a grant from status `from` to `to` with a reason (a refusal of a pending
/// grant, a revocation of an approved one); returns the rows updated (0 when it was not
/// in `from`).
pub(crate) async fn close<'e, E>(
    db: E,
    id: &GrantId,
    from: &str,
    to: &str,
    reason: &str,
    decided_ms: i64,
) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE grants SET status = $1, reason = $2, decided_ms = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(to.to_string())
    .bind(reason.to_string())
    .bind(decided_ms)
    .bind(id.clone())
    .bind(from.to_string())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Suspends every pending or approved grant on a dataset, with a reason (the dataset
/// became not open: SD22 Art.8; XT Art.23(7)); returns each suspended grant's id and
/// applicant organisation. One statement, so a grant approved concurrently is either
/// suspended here or was not yet approved.
pub(crate) async fn suspend_on_dataset<'e, E>(
    db: E,
    dataset_id: &DatasetId,
    reason: &str,
    decided_ms: i64,
) -> Result<Vec<(GrantId, OrgId)>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "UPDATE grants SET status = 'suspended', reason = $1, decided_ms = $2 \
         WHERE dataset_id = $3 AND status IN ('pending', 'approved') \
         RETURNING id, applicant_org",
    )
    .bind(reason.to_string())
    .bind(decided_ms)
    .bind(dataset_id.clone())
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| -> Result<(GrantId, OrgId)> {
            Ok((row.try_get("id")?, row.try_get("applicant_org")?))
        })
        .collect()
}

/// Records the ledger seq of a grant's decision.
pub(crate) async fn set_decision_seq<'e, E>(db: E, id: &GrantId, seq: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE grants SET decision_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(id.clone())
        .execute(db)
        .await?;
    Ok(())
}

/// Spends one query and a privacy cost if the approved grant can afford all of it;
/// returns the rows updated (0: nothing was spent).
pub(crate) async fn spend<'e, E>(
    db: E,
    id: &GrantId,
    epsilon_micro: i64,
    delta_pico: i64,
) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE grants SET queries_used = queries_used + 1, \
         epsilon_spent_micro = epsilon_spent_micro + $1, \
         delta_spent_pico = delta_spent_pico + $2 \
         WHERE id = $3 AND status = 'approved' AND queries_used + 1 <= query_budget \
         AND epsilon_spent_micro + $1 <= epsilon_micro AND delta_spent_pico + $2 <= delta_pico",
    )
    .bind(epsilon_micro)
    .bind(delta_pico)
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}
