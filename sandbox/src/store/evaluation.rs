//! The `evaluations` table, written for the
//! [`Evaluations`](crate::evaluation::Evaluations) sub-service (GD21 Art.48–49; GD18
//! Art.30).

use pdx_ids::{EvaluationId, KeyId, OrgId};

use crate::Result;

/// A published evaluation.
pub(crate) struct NewEvaluationRow<'a> {
    /// The evaluation's id.
    pub(crate) id: &'a EvaluationId,
    /// The evaluated provider.
    pub(crate) provider_org: &'a OrgId,
    /// The year evaluated.
    pub(crate) year: i64,
    /// The day the counts were taken, `YYYY-MM-DD`.
    pub(crate) as_of_day: &'a str,
    /// The formula's name.
    pub(crate) formula: &'a str,
    /// The indicators, as JSON.
    pub(crate) indicators_json: &'a str,
    /// The score, if any indicator applied.
    pub(crate) score: Option<i64>,
    /// The data authority's organisation.
    pub(crate) authority_org: &'a OrgId,
    /// The data authority's API key.
    pub(crate) authority_key: &'a KeyId,
    /// Evaluated, ms since epoch.
    pub(crate) evaluated_ms: i64,
    /// Seq of its `evaluation` entry.
    pub(crate) evaluation_seq: i64,
}

/// Inserts an evaluation. A second one for the same provider and year fails with the
/// database's unique violation (as [`SandboxError::Db`](crate::SandboxError::Db)).
pub(crate) async fn insert_evaluation<'e, E>(db: E, row: &NewEvaluationRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO evaluations (id, provider_org, period_year, as_of_day, formula, \
         indicators_json, score, authority_org, authority_key, evaluated_ms, evaluation_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(row.id.clone())
    .bind(row.provider_org.clone())
    .bind(row.year)
    .bind(row.as_of_day.to_string())
    .bind(row.formula.to_string())
    .bind(row.indicators_json.to_string())
    .bind(row.score)
    .bind(row.authority_org.clone())
    .bind(row.authority_key.clone())
    .bind(row.evaluated_ms)
    .bind(row.evaluation_seq)
    .execute(db)
    .await?;
    Ok(())
}
