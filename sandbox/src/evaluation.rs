//! The data authority's yearly evaluation of a provider (GD21 Art.48–49; GD18 Art.30;
//! XT Art.41; GY ch.8), published to everyone (SD22 Art.5).
//!
//! [`Evaluations::evaluate`] counts, from the tables that the answers, corrections and
//! versions were written to (each row written with its ledger entry, whose `late` flags
//! are the ones counted here), five indicators for provider `P` and year `Y`, writes an
//! `Evaluation` ledger entry with every numerator and denominator and the score, and
//! keeps it (one per provider and year; a second is a 409).
//!
//! **Terms.** "In `Y`": a time in `[Y-01-01T00:00Z, (Y+1)-01-01T00:00Z)`. "Today": the
//! UTC day of the evaluation, which the evaluation names (`as_of`). An item with a
//! deadline is *decided* once it is done, or once today is after its deadline; items not
//! yet decided (not done, deadline not passed) are not counted. A deadline is met when
//! the item was done on or before that day (UTC).
//!
//! **Formula `pdx-evaluation-v1`** (each indicator a ratio `n / d`; weights sum to 100):
//!
//! | indicator | weight | d (items counted) | n (items that met it) |
//! |---|---|---|---|
//! | `answers_on_time` | 30 | decided answer duties of `P` started in `Y`: grant applications to `P` filed in `Y` (a grant suspended before any answer, because its dataset became not open, is not counted), objections to `P`'s datasets filed in `Y`, other departments' conditional share requests to `P` made in `Y` (GD18 Art.19), and requests to open data the data authority routed to `P` in `Y` (SD22 Art.12) | answered on or before the answer deadline |
//! | `objections_handled` | 15 | objections to `P`'s datasets filed in `Y` that are answered, or unanswered after their deadline | answered (accepted, or rejected with reasons), at any time |
//! | `corrections_on_time` | 20 | objections `P` accepted in `Y` whose correction is certified, or missing after its deadline (10 working days, [`crate::quality`]) | corrected by a version certified on or before the deadline |
//! | `updates_on_time` | 20 | for each of `P`'s published datasets (not destroyed) with a periodic update frequency, each version certified in `Y` whose successor is certified, or missing after its due day ([`crate::quality::UpdateFrequency::next_version_due`]: one period plus 5 working days) | successor certified on or before the due day |
//! | `catalog_completeness` | 15 | `P`'s published catalog entries not destroyed, today (not bound to `Y`) | complete: the metadata passes today's registration rules (`NewDataset::validate`), has a description (the data's content, GD21 Art.10), names at least one data element (GD21 Art.14) and, unless unconditionally open, states its legal basis (SD22 Art.8) |
//!
//! `score = round(100 × Σ wᵢ·nᵢ/dᵢ / Σ wᵢ)`, both sums over the indicators with
//! `dᵢ > 0` (an indicator with nothing to count does not apply, and its weight is shared
//! out among the others in proportion), computed exactly in integers and rounded half
//! up; no score (`null`) when no indicator applies. Open-attribute changes are not an
//! answer duty of the provider (the data authority decides them), so they are not
//! counted; the provider's own catalog revisions after a legal change are on the
//! compliance report, not here.
//!
//! Every error message here is safe to show: none echoes a value the caller sent.

use pdx_ids::{DatasetId, EvaluationId, OrgId};
use pdx_ledger::Actor;
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::{Evaluation as EvaluationEntry, EvaluationIndicator};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::{Date, Month, OffsetDateTime};

use crate::catalog::{NewDataset, OpenAttribute};
use crate::store::{self, is_unique_violation, u64_of};
use crate::workdays::{day_of_ms, iso_date, midnight_ms};
use crate::{Result, SandboxError, actor_key, actor_org};

crate::service! {
    /// The data authority's yearly evaluations of providers.
    Evaluations
}

/// The name of the formula (see the module documentation), on every evaluation.
pub const FORMULA: &str = "pdx-evaluation-v1";

/// The earliest year that may be evaluated.
pub const FIRST_YEAR: i32 = 2000;

/// Answers on time: grant applications, objections, conditional share requests and
/// requests to open data.
pub const ANSWERS_ON_TIME: &str = "answers_on_time";
/// Objections answered.
pub const OBJECTIONS_HANDLED: &str = "objections_handled";
/// Accepted objections corrected by their deadline.
pub const CORRECTIONS_ON_TIME: &str = "corrections_on_time";
/// Versions that came by their due day.
pub const UPDATES_ON_TIME: &str = "updates_on_time";
/// Published catalog entries with all required metadata.
pub const CATALOG_COMPLETENESS: &str = "catalog_completeness";

/// The indicators and their weights, in the formula's order (the weights sum to 100).
pub const WEIGHTS: [(&str, u64); 5] = [
    (ANSWERS_ON_TIME, 30),
    (OBJECTIONS_HANDLED, 15),
    (CORRECTIONS_ON_TIME, 20),
    (UPDATES_ON_TIME, 20),
    (CATALOG_COMPLETENESS, 15),
];

/// What the data authority sends to evaluate a provider.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEvaluation {
    /// The provider organisation to evaluate.
    pub provider_org: OrgId,
    /// The year, from 2000 to the current one.
    pub year: i32,
}

/// One indicator: `numerator / denominator`, with its weight in the score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Indicator {
    /// The indicator's name (see the formula).
    pub name: String,
    /// Its weight, out of 100.
    pub weight: u64,
    /// Items that met it.
    pub numerator: u64,
    /// Items counted; 0 when it does not apply.
    pub denominator: u64,
}

/// A published evaluation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Evaluation {
    /// The evaluation's id.
    pub id: EvaluationId,
    /// The evaluated provider.
    pub provider_org: OrgId,
    /// The year evaluated.
    pub year: i32,
    /// The day (UTC) the counts were taken, `YYYY-MM-DD`.
    pub as_of: String,
    /// The formula (`pdx-evaluation-v1`).
    pub formula: String,
    /// The indicators, in the formula's order.
    pub indicators: Vec<Indicator>,
    /// The score, 0–100; none when no indicator applies.
    pub score: Option<u64>,
    /// The data authority's organisation that published it.
    pub authority_org: OrgId,
    /// Published, ms since epoch.
    pub evaluated_ms: i64,
    /// Ledger seq of its `Evaluation` entry.
    pub evaluation_seq: u64,
}

/// Filters of the evaluation list.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct EvaluationQuery {
    /// Only this provider organisation's evaluations.
    pub provider: Option<OrgId>,
    /// Only this year's.
    pub year: Option<i32>,
}

/// Items met and items counted of one indicator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    met: u64,
    counted: u64,
}

impl Tally {
    fn met(&mut self) {
        self.met += 1;
        self.counted += 1;
    }

    fn missed(&mut self) {
        self.counted += 1;
    }

    /// Counts an item done on `done_on` (if done) against its `deadline` as of `today`
    /// (all `YYYY-MM-DD`): met, missed, or not decided yet (not counted).
    fn deadline(&mut self, done_on: Option<&str>, deadline: &str, today: &str) {
        match done_on {
            Some(day) if day <= deadline => self.met(),
            Some(_) => self.missed(),
            None if today > deadline => self.missed(),
            None => {}
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The score of `indicators` under the formula: `round(100 × Σ wᵢ·nᵢ/dᵢ / Σ wᵢ)` over
/// the indicators with `dᵢ > 0`, exact and rounded half up; none when none applies.
pub fn score(indicators: &[Indicator]) -> Option<u64> {
    let applicable: Vec<&Indicator> = indicators.iter().filter(|i| i.denominator > 0).collect();
    let total_weight: u128 = applicable.iter().map(|i| u128::from(i.weight)).sum();
    if total_weight == 0 {
        return None;
    }
    // Σ wᵢ·nᵢ/dᵢ as one reduced fraction num/den.
    let exact = || -> Option<u64> {
        let (mut num, mut den) = (0u128, 1u128);
        for i in &applicable {
            let d = u128::from(i.denominator);
            let wn =
                u128::from(i.weight).checked_mul(u128::from(i.numerator.min(i.denominator)))?;
            num = num.checked_mul(d)?.checked_add(wn.checked_mul(den)?)?;
            den = den.checked_mul(d)?;
            let g = gcd(num, den).max(1);
            num /= g;
            den /= g;
        }
        let top = num.checked_mul(200)?;
        let bottom = den.checked_mul(total_weight)?;
        u64::try_from(top.checked_add(bottom)? / bottom.checked_mul(2)?).ok()
    };
    exact().or_else(|| {
        // Only for counts far beyond any real year's (the exact sum overflowed).
        let sum: f64 = applicable
            .iter()
            .map(|i| i.weight as f64 * i.numerator as f64 / i.denominator as f64)
            .sum();
        Some((100.0 * sum / total_weight as f64 + 0.5).floor() as u64)
    })
}

/// Whether a published entry has all the metadata the evaluation requires (see the
/// formula).
pub fn catalog_entry_complete(meta: &NewDataset) -> bool {
    meta.validate().is_ok()
        && !meta.description.trim().is_empty()
        && !meta.elements.is_empty()
        && (meta.open_attribute == OpenAttribute::Unconditional
            || !meta.legal_basis.trim().is_empty())
}

/// The instants that bound `year`: `[start, end)`, ms since epoch.
fn year_bounds(year: i32) -> Result<(i64, i64)> {
    let bad = || SandboxError::Invalid("`year` is out of range".into());
    let start = Date::from_calendar_date(year, Month::January, 1).map_err(|_| bad())?;
    let next = year.checked_add(1).ok_or_else(bad)?;
    let end = Date::from_calendar_date(next, Month::January, 1).map_err(|_| bad())?;
    Ok((midnight_ms(start), midnight_ms(end)))
}

fn evaluation_from_row(row: &AnyRow) -> Result<Evaluation> {
    let indicators: String = row.try_get("indicators_json")?;
    Ok(Evaluation {
        id: row.try_get("id")?,
        provider_org: row.try_get("provider_org")?,
        year: i32::try_from(row.try_get::<i64, _>("period_year")?).unwrap_or(0),
        as_of: row.try_get("as_of_day")?,
        formula: row.try_get("formula")?,
        indicators: serde_json::from_str(&indicators).map_err(|e| {
            SandboxError::Internal(format!("stored evaluation indicators do not parse: {e}"))
        })?,
        score: row.try_get::<Option<i64>, _>("score")?.map(u64_of),
        authority_org: row.try_get("authority_org")?,
        evaluated_ms: row.try_get("evaluated_ms")?,
        evaluation_seq: u64_of(row.try_get("evaluation_seq")?),
    })
}

const DUPLICATE: &str = "this provider already has an evaluation for that year";

impl Evaluations {
    /// The data authority (`actor`) evaluates `new.provider_org` for `new.year` as of
    /// today, and publishes it: an `Evaluation` ledger entry and its row, in one
    /// transaction. The caller has checked that the organisation exists. A year before
    /// [`FIRST_YEAR`] or after the current one is a 422; a second evaluation of the same
    /// provider and year a 409.
    pub async fn evaluate(&self, actor: &Actor, new: NewEvaluation) -> Result<Evaluation> {
        let now = now_ms();
        let today_date = day_of_ms(now);
        if new.year < FIRST_YEAR || new.year > today_date.year() {
            return Err(SandboxError::Invalid(format!(
                "`year` is from {FIRST_YEAR} to the current year"
            )));
        }
        let authority_org = actor_org(actor)?;
        let authority_key = actor_key(actor)?;
        if self.existing(&new.provider_org, new.year).await? {
            return Err(SandboxError::Conflict(DUPLICATE.into()));
        }
        let today = iso_date(today_date);
        let indicators = self.indicators(&new.provider_org, new.year, &today).await?;
        let score = score(&indicators);
        let id = EvaluationId::random();
        let entry = EvaluationEntry {
            evaluation_id: id.to_string(),
            provider_org: new.provider_org.to_string(),
            year: new.year,
            as_of: today.clone(),
            formula: FORMULA.into(),
            indicators: indicators
                .iter()
                .map(|i| EvaluationIndicator {
                    name: i.name.clone(),
                    weight: i.weight,
                    numerator: i.numerator,
                    denominator: i.denominator,
                })
                .collect(),
            score,
        };
        let indicators_json = serde_json::to_string(&indicators)
            .map_err(|e| SandboxError::Internal(format!("encoding indicators: {e}")))?;
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let inserted = store::evaluation::insert_evaluation(
            &mut *tx,
            &store::evaluation::NewEvaluationRow {
                id: &id,
                provider_org: &new.provider_org,
                year: i64::from(new.year),
                as_of_day: &today,
                formula: FORMULA,
                indicators_json: &indicators_json,
                score: score.map(|s| i64::try_from(s).unwrap_or(100)),
                authority_org: &authority_org,
                authority_key: &authority_key,
                evaluated_ms: now,
                evaluation_seq: i64::try_from(appended.seq)
                    .map_err(|_| SandboxError::Internal("a ledger seq is out of range".into()))?,
            },
        )
        .await;
        match inserted {
            Ok(()) => {}
            Err(SandboxError::Db(e)) if is_unique_violation(&e) => {
                return Err(SandboxError::Conflict(DUPLICATE.into()));
            }
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        self.evaluation(&id).await
    }

    async fn existing(&self, provider: &OrgId, year: i32) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM evaluations WHERE provider_org = $1 AND period_year = $2",
        )
        .bind(provider.clone())
        .bind(i64::from(year))
        .fetch_one(self.db().pool())
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// One evaluation (public: every authenticated caller may read it).
    pub async fn evaluation(&self, id: &EvaluationId) -> Result<Evaluation> {
        let row = sqlx::query("SELECT * FROM evaluations WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such evaluation".into()))?;
        evaluation_from_row(&row)
    }

    /// Evaluations, newest year first, filtered by provider and year.
    pub async fn evaluations(&self, query: &EvaluationQuery) -> Result<Vec<Evaluation>> {
        let rows = match (&query.provider, query.year) {
            (Some(org), Some(year)) => {
                sqlx::query(
                    "SELECT * FROM evaluations WHERE provider_org = $1 AND period_year = $2 \
                     ORDER BY period_year DESC, provider_org",
                )
                .bind(org.clone())
                .bind(i64::from(year))
                .fetch_all(self.db().pool())
                .await?
            }
            (Some(org), None) => {
                sqlx::query(
                    "SELECT * FROM evaluations WHERE provider_org = $1 \
                     ORDER BY period_year DESC, provider_org",
                )
                .bind(org.clone())
                .fetch_all(self.db().pool())
                .await?
            }
            (None, Some(year)) => {
                sqlx::query(
                    "SELECT * FROM evaluations WHERE period_year = $1 \
                     ORDER BY period_year DESC, provider_org",
                )
                .bind(i64::from(year))
                .fetch_all(self.db().pool())
                .await?
            }
            (None, None) => {
                sqlx::query("SELECT * FROM evaluations ORDER BY period_year DESC, provider_org")
                    .fetch_all(self.db().pool())
                    .await?
            }
        };
        rows.iter().map(evaluation_from_row).collect()
    }

    /// The five indicators of `provider` for `year`, as of `today` (`YYYY-MM-DD`).
    async fn indicators(&self, provider: &OrgId, year: i32, today: &str) -> Result<Vec<Indicator>> {
        let (start, end) = year_bounds(year)?;
        let in_year = |ms: i64| start <= ms && ms < end;
        let mut answers = Tally::default();
        let mut handled = Tally::default();
        let mut corrections = Tally::default();
        let mut updates = Tally::default();
        let mut completeness = Tally::default();

        // Grant applications: an approval's answer time is its start (a later
        // revocation or suspension overwrites `decided_ms`), a refusal's `decided_ms`.
        let grants = sqlx::query(
            "SELECT status, answer_deadline, decided_ms, starts_ms FROM grants \
             WHERE provider_org = $1 AND applied_ms >= $2 AND applied_ms < $3",
        )
        .bind(provider.clone())
        .bind(start)
        .bind(end)
        .fetch_all(self.db().pool())
        .await?;
        for row in &grants {
            let status: String = row.try_get("status")?;
            let deadline: String = row.try_get("answer_deadline")?;
            let starts_ms: Option<i64> = row.try_get("starts_ms")?;
            let decided_ms: Option<i64> = row.try_get("decided_ms")?;
            let answered_ms = match status.as_str() {
                "pending" => None,
                "refused" => starts_ms.or(decided_ms),
                // Approved (then perhaps revoked or suspended): answered when it started.
                // Suspended before any answer: nothing for the provider to answer.
                _ if starts_ms.is_none() => continue,
                _ => starts_ms,
            };
            let answered_on = answered_ms.map(|ms| iso_date(day_of_ms(ms)));
            answers.deadline(answered_on.as_deref(), &deadline, today);
        }

        // Objections: answered on time by the objections module's own verdict (the
        // `late` of its `ObjectionAnswer` entry).
        let objections = sqlx::query(
            "SELECT status, answer_deadline, answered_late FROM objections \
             WHERE provider_org = $1 AND filed_ms >= $2 AND filed_ms < $3",
        )
        .bind(provider.clone())
        .bind(start)
        .bind(end)
        .fetch_all(self.db().pool())
        .await?;
        for row in &objections {
            let status: String = row.try_get("status")?;
            let deadline: String = row.try_get("answer_deadline")?;
            if status == "open" {
                if today > deadline.as_str() {
                    answers.missed();
                    handled.missed();
                }
                continue;
            }
            handled.met();
            if row.try_get::<i64, _>("answered_late")? == 0 {
                answers.met();
            } else {
                answers.missed();
            }
        }

        // Other departments' conditional share requests, which the provider answers
        // within its working days (GD18 Art.19); the others are decided by the platform.
        let shares = sqlx::query(
            "SELECT status, answer_deadline, decided_ms, decision_late FROM share_requests \
             WHERE owner_org = $1 AND automatic = 0 AND answer_deadline IS NOT NULL \
             AND requested_ms >= $2 AND requested_ms < $3",
        )
        .bind(provider.clone())
        .bind(start)
        .bind(end)
        .fetch_all(self.db().pool())
        .await?;
        for row in &shares {
            let status: String = row.try_get("status")?;
            let deadline: Option<String> = row.try_get("answer_deadline")?;
            let decided_ms: Option<i64> = row.try_get("decided_ms")?;
            match (status.as_str(), decided_ms) {
                ("pending", _) | (_, None) => {
                    if let Some(deadline) = deadline
                        && today > deadline.as_str()
                    {
                        answers.missed();
                    }
                }
                (_, Some(_)) => {
                    if row.try_get::<i64, _>("decision_late")? == 0 {
                        answers.met();
                    } else {
                        answers.missed();
                    }
                }
            }
        }

        // Requests to open data that the data authority routed to the provider in the
        // year, which it answers by a working-day deadline (SD22 Art.12; GD21 Art.34).
        let requests = sqlx::query(
            "SELECT status, answer_due, answered_late FROM open_data_requests \
             WHERE provider_org = $1 AND routed_ms >= $2 AND routed_ms < $3",
        )
        .bind(provider.clone())
        .bind(start)
        .bind(end)
        .fetch_all(self.db().pool())
        .await?;
        for row in &requests {
            let status: String = row.try_get("status")?;
            let due: Option<String> = row.try_get("answer_due")?;
            match status.as_str() {
                "accepted" | "refused" => {
                    if row.try_get::<i64, _>("answered_late")? == 0 {
                        answers.met();
                    } else {
                        answers.missed();
                    }
                }
                _ => {
                    if let Some(due) = due
                        && today > due.as_str()
                    {
                        answers.missed();
                    }
                }
            }
        }

        // Corrections of the objections accepted in the year.
        for duty in self.quality().duties(Some(provider)).await? {
            if !in_year(duty.accepted_ms) {
                continue;
            }
            match duty.version {
                Some(_) if duty.corrected_late => corrections.missed(),
                Some(_) => corrections.met(),
                None if today > duty.correction_due.as_str() => corrections.missed(),
                None => {}
            }
        }

        // Updates: each version certified in the year, against its successor.
        let calendar = self.calendar();
        for (_, frequency, times) in self.quality().version_history(provider).await? {
            for (i, &certified_ms) in times.iter().enumerate() {
                if !in_year(certified_ms) {
                    continue;
                }
                let Some(due) = frequency.next_version_due(&calendar, certified_ms) else {
                    break;
                };
                let next_on = times.get(i + 1).map(|&ms| iso_date(day_of_ms(ms)));
                updates.deadline(next_on.as_deref(), &iso_date(due), today);
            }
        }

        // Catalog completeness of the published entries, today.
        let published = sqlx::query(
            "SELECT id FROM datasets WHERE provider_org = $1 AND status = 'published' ORDER BY id",
        )
        .bind(provider.clone())
        .fetch_all(self.db().pool())
        .await?;
        for row in &published {
            let id: DatasetId = row.try_get("id")?;
            // A destroyed entry (GD21 Art.40) describes no data any more.
            let Some(dataset) = self.catalog().dataset(&id).await? else {
                continue;
            };
            if dataset.destroyed.is_some() {
                continue;
            }
            if catalog_entry_complete(&dataset.meta) {
                completeness.met();
            } else {
                completeness.missed();
            }
        }

        let tallies = [answers, handled, corrections, updates, completeness];
        Ok(WEIGHTS
            .iter()
            .zip(tallies)
            .map(|((name, weight), tally)| Indicator {
                name: (*name).to_string(),
                weight: *weight,
                numerator: tally.met,
                denominator: tally.counted,
            })
            .collect())
    }
}

/// The current year (UTC), the latest that may be evaluated.
pub fn current_year() -> i32 {
    OffsetDateTime::now_utc().year()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ind(weight: u64, numerator: u64, denominator: u64) -> Indicator {
        Indicator {
            name: "x".into(),
            weight,
            numerator,
            denominator,
        }
    }

    #[test]
    fn the_weights_sum_to_100() {
        assert_eq!(WEIGHTS.iter().map(|(_, w)| w).sum::<u64>(), 100);
    }

    #[test]
    fn scores_share_out_the_weight_of_what_does_not_apply_and_round_half_up() {
        // Everything applies: 30·1/2 + 15·1 + 20·0 + 20·1 + 15·2/3 = 60 → 60.
        let all = [
            ind(30, 1, 2),
            ind(15, 4, 4),
            ind(20, 0, 3),
            ind(20, 5, 5),
            ind(15, 2, 3),
        ];
        assert_eq!(score(&all), Some(60));
        // Only answers (3/4) and completeness (1/2): (22.5 + 7.5) / 45 = 66.67 → 67.
        let some = [
            ind(30, 3, 4),
            ind(15, 0, 0),
            ind(20, 0, 0),
            ind(20, 0, 0),
            ind(15, 1, 2),
        ];
        assert_eq!(score(&some), Some(67));
        // An exact half rounds up: 15·1/2 / 15 = 50 %, and 30·1/8 / 30 = 12.5 → 13.
        assert_eq!(score(&[ind(30, 1, 8)]), Some(13));
        assert_eq!(score(&[ind(15, 1, 2)]), Some(50));
        // 1/3 of 100 is 33.33 → 33; 2/3 is 66.67 → 67.
        assert_eq!(score(&[ind(20, 1, 3)]), Some(33));
        assert_eq!(score(&[ind(20, 2, 3)]), Some(67));
        assert_eq!(score(&[ind(30, 0, 0), ind(15, 0, 0)]), None);
        assert_eq!(score(&[ind(30, 7, 7)]), Some(100));
        assert_eq!(score(&[ind(30, 0, 7)]), Some(0));
    }

    #[test]
    fn deadlines_count_met_missed_or_not_yet() {
        let mut t = Tally::default();
        t.deadline(Some("2026-11-30"), "2026-11-30", "2026-12-05");
        t.deadline(Some("2026-12-01"), "2026-11-30", "2026-12-05");
        t.deadline(None, "2026-11-30", "2026-11-30");
        t.deadline(None, "2026-11-30", "2026-12-01");
        assert_eq!(t, Tally { met: 1, counted: 3 });
    }

    #[test]
    fn years_are_utc_calendar_years() {
        let (start, end) = year_bounds(2026).unwrap_or((0, 0));
        assert_eq!(iso_date(day_of_ms(start)), "2026-01-01");
        assert_eq!(iso_date(day_of_ms(end - 1)), "2026-12-31");
        assert_eq!(iso_date(day_of_ms(end)), "2027-01-01");
    }
}
