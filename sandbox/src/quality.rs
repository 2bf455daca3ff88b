//! The data quality loop: corrections of accepted objections (SD22 Art.13; XT Art.21–22)
//! and structured update frequencies with overdue versions (GD21 Art.16; XT Art.20).
//!
//! **Corrections.** When a provider accepts an objection ([`crate::objections`]), it
//! must publish a corrected version within [`CORRECTION_WORKING_DAYS`] working days (XT
//! Art.22, counted with [`crate::workdays`] from the day of the acceptance). The
//! acceptance records that duty, with its deadline, in the answer's transaction. The
//! provider names the objections a new version corrects when it uploads it
//! (`POST /v1/datasets/{id}/versions?corrects=obj_…,obj_…`): each must be an accepted
//! objection to that dataset that no certified version has corrected yet, or the upload
//! is refused before anything is written (404 for an objection the provider cannot see,
//! 422 for another dataset's, 409 for one not accepted or already corrected). The link
//! waits for the ingest job; when the version is certified, in the certificate's own
//! transaction, each objection it names that is still uncorrected is linked to the
//! version and its certificate, and an `objection_answer` ledger entry with step
//! `corrected` ([`ObjectionCorrection`]) records the link, the deadline and whether the
//! version came late; the objector may read it. If two uploads name one objection, the
//! first certified is its correction. The link shows on the objection
//! ([`Correction`], for its objector and provider) and on the version and its
//! certificate ([`CorrectedObjection`]: the objection's id and timeliness, nothing of
//! its text). A correction still missing after its deadline, or made after it, is on the
//! compliance report ([`LateCorrection`]). An objection accepted before duties were
//! recorded has its deadline computed from the acceptance the same way.
//!
//! **Update frequencies.** A catalog entry's `update_frequency` is one of
//! [`UpdateFrequency`]: `daily`, `weekly`, `monthly`, `quarterly`, `yearly` or
//! `irregular`; anything else is refused (422) at registration and on edits (migration
//! 2014 turned every earlier free text that is not one of these words into
//! `irregular`). A published dataset with a periodic frequency is due a new version
//! [`UpdateFrequency::period_days`] calendar days after its latest version was certified
//! (the longest month, quarter or year: 31, 92, 366 days, so that a provider keeping the
//! calendar's rhythm is never early-flagged), plus a grace of
//! [`UPDATE_GRACE_WORKING_DAYS`] working days ([`UpdateFrequency::next_version_due`]).
//! From the day after that date the dataset is on the compliance report
//! ([`OverdueUpdate`]) until a new version is certified. An `irregular` dataset is never
//! overdue, nor is one its provider destroyed (GD21 Art.40; [`crate::destruction`]).
//!
//! Dates are UTC days, `YYYY-MM-DD`; an item is late from the day after its deadline,
//! as everywhere on the compliance report. Every error message here is safe to show: none
//! echoes a value the caller sent.

use pdx_ids::{DatasetId, JobId, ObjectionId, OrgId};
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::ObjectionCorrection;
use pdx_ledger::{Actor, Ledger};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::{Date, Duration};

use crate::catalog::Dataset;
use crate::objections::{Objection, ObjectionStatus, ObjectionView, Outcome};
use crate::store::{self, u64_of};
use crate::workdays::{Calendar, day_of_ms, iso_date};
use crate::{Result, SandboxError};

crate::service! {
    /// The data quality loop: corrections of accepted objections and update frequencies.
    Quality
}

/// Working days a provider has to publish a corrected version after accepting an
/// objection (XT Art.22), counted from the day of the acceptance.
pub const CORRECTION_WORKING_DAYS: u32 = 10;

/// Working days of grace after an update period before the next version is overdue.
pub const UPDATE_GRACE_WORKING_DAYS: u32 = 5;

/// Most objections one upload may name as corrected.
pub const MAX_CORRECTED_PER_UPLOAD: usize = 20;

/// Longest free text of the governance features (findings, responses, notes), in
/// characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// How often a dataset is updated, as its catalog entry states it (GD21 Art.10, 16; XT
/// Art.11, 20).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UpdateFrequency {
    /// Every day.
    Daily,
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
    /// Every quarter.
    Quarterly,
    /// Every year.
    Yearly,
    /// No fixed period: never overdue.
    Irregular,
}

impl UpdateFrequency {
    /// Every frequency, from the most frequent.
    pub const ALL: [UpdateFrequency; 6] = [
        UpdateFrequency::Daily,
        UpdateFrequency::Weekly,
        UpdateFrequency::Monthly,
        UpdateFrequency::Quarterly,
        UpdateFrequency::Yearly,
        UpdateFrequency::Irregular,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateFrequency::Daily => "daily",
            UpdateFrequency::Weekly => "weekly",
            UpdateFrequency::Monthly => "monthly",
            UpdateFrequency::Quarterly => "quarterly",
            UpdateFrequency::Yearly => "yearly",
            UpdateFrequency::Irregular => "irregular",
        }
    }

    /// Parses a wire name; anything else is a 422 that lists the accepted names (and
    /// does not echo the input).
    pub fn parse(text: &str) -> Result<UpdateFrequency> {
        UpdateFrequency::ALL
            .into_iter()
            .find(|f| f.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = UpdateFrequency::ALL.iter().map(|f| f.as_str()).collect();
                SandboxError::Invalid(format!(
                    "`update_frequency` is one of {} (GD21 Art.16; XT Art.20)",
                    names.join(", ")
                ))
            })
    }

    /// A stored frequency: one this build does not know reads as irregular, so that a
    /// report never fails on it.
    pub(crate) fn stored(text: &str) -> UpdateFrequency {
        UpdateFrequency::parse(text).unwrap_or(UpdateFrequency::Irregular)
    }

    /// The update period in calendar days: the longest month, quarter and year (31, 92
    /// and 366 days); none for `irregular`.
    pub fn period_days(self) -> Option<i64> {
        match self {
            UpdateFrequency::Daily => Some(1),
            UpdateFrequency::Weekly => Some(7),
            UpdateFrequency::Monthly => Some(31),
            UpdateFrequency::Quarterly => Some(92),
            UpdateFrequency::Yearly => Some(366),
            UpdateFrequency::Irregular => None,
        }
    }

    /// The last day the version after one certified at `last_version_ms` is on time: the
    /// period after that version's day, plus [`UPDATE_GRACE_WORKING_DAYS`] working days.
    /// None for `irregular`.
    pub fn next_version_due(self, calendar: &Calendar, last_version_ms: i64) -> Option<Date> {
        let days = self.period_days()?;
        let period_end = day_of_ms(last_version_ms).saturating_add(Duration::days(days));
        Some(calendar.add_working_days(period_end, UPDATE_GRACE_WORKING_DAYS))
    }
}

// Unlike `store::opt_u64`, a negative stored value (never written) reads as `Some(0)`.
fn opt_u64(row: &AnyRow, col: &str) -> Result<Option<u64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(u64_of))
}

/// Where an accepted objection's correction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CorrectionStatus {
    /// No corrected version is certified yet.
    Pending,
    /// A certified version corrects it.
    Corrected,
}

/// The correction an accepted objection obliges, as its objector and provider see it on
/// the objection.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Correction {
    /// The last day a corrected version is on time (`YYYY-MM-DD`), 10 working days
    /// after the acceptance.
    pub correction_due: String,
    /// Pending or corrected.
    pub status: CorrectionStatus,
    /// The version that corrects it, once certified.
    pub version: Option<u64>,
    /// That version's certificate number.
    pub certificate_no: Option<String>,
    /// Certified, ms since epoch.
    pub corrected_ms: Option<i64>,
    /// True when the version was certified after the deadline.
    pub corrected_late: bool,
    /// Ledger seq of the `objection_answer` entry (step `corrected`) linking them.
    pub correction_seq: Option<u64>,
    /// Still pending, and past its deadline today (UTC).
    pub overdue: bool,
}

/// An objection a version corrects, as the version and its certificate show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CorrectedObjection {
    /// The objection's id.
    pub objection_id: ObjectionId,
    /// Its correction deadline, `YYYY-MM-DD`.
    pub correction_due: String,
    /// True when this version came after the deadline.
    pub corrected_late: bool,
    /// Ledger seq of the `objection_answer` entry (step `corrected`) linking them.
    pub correction_seq: Option<u64>,
}

/// Where a late correction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CorrectionLateness {
    /// No corrected version yet, and the deadline has passed.
    Pending,
    /// Corrected, but after the deadline.
    CorrectedLate,
}

/// An accepted objection whose correction is overdue or came late (compliance report).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LateCorrection {
    /// Objection id.
    pub objection_id: ObjectionId,
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Provider that had to correct it.
    pub provider_org: OrgId,
    /// Organisation that objected.
    pub objector_org: OrgId,
    /// Day of the acceptance.
    pub accepted_on: String,
    /// Correction deadline, `YYYY-MM-DD`.
    pub correction_due: String,
    /// Pending or corrected late.
    pub state: CorrectionLateness,
    /// Day the corrected version was certified, if it was.
    pub corrected_on: Option<String>,
    /// The corrected version, if any.
    pub version: Option<u64>,
    /// Ledger seq of the `corrected` entry, if any.
    pub correction_seq: Option<u64>,
}

/// A published dataset whose next version is overdue (compliance report).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverdueUpdate {
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Its provider.
    pub provider_org: OrgId,
    /// Its stated update frequency.
    pub update_frequency: UpdateFrequency,
    /// Its latest certified version.
    pub latest_version: u64,
    /// Day that version was certified.
    pub last_version_on: String,
    /// The last day the next version was on time.
    pub next_version_due: String,
}

/// A correction duty as read from the tables (for the views and the evaluation).
#[derive(Clone, Debug)]
pub(crate) struct Duty {
    /// The accepted objection.
    pub(crate) objection_id: ObjectionId,
    /// Its dataset.
    pub(crate) dataset_id: DatasetId,
    /// The dataset's provider.
    pub(crate) provider_org: OrgId,
    /// The objector.
    pub(crate) objector_org: OrgId,
    /// Accepted, ms since epoch.
    pub(crate) accepted_ms: i64,
    /// The correction deadline.
    pub(crate) correction_due: String,
    /// The corrected version, once certified.
    pub(crate) version: Option<u64>,
    /// Its certificate.
    pub(crate) certificate_no: Option<String>,
    /// Certified, ms since epoch.
    pub(crate) corrected_ms: Option<i64>,
    /// Certified after the deadline.
    pub(crate) corrected_late: bool,
    /// Seq of the `corrected` entry.
    pub(crate) correction_seq: Option<u64>,
}

impl Duty {
    /// The duty as the objection shows it, as of `today`.
    fn view(&self, today: &str) -> Correction {
        let status = if self.version.is_some() {
            CorrectionStatus::Corrected
        } else {
            CorrectionStatus::Pending
        };
        Correction {
            correction_due: self.correction_due.clone(),
            status,
            version: self.version,
            certificate_no: self.certificate_no.clone(),
            corrected_ms: self.corrected_ms,
            corrected_late: self.corrected_late,
            correction_seq: self.correction_seq,
            overdue: status == CorrectionStatus::Pending && today > self.correction_due.as_str(),
        }
    }
}

/// Every accepted objection with its duty, if recorded (an objection accepted before
/// duties were recorded has none; its deadline is computed from the acceptance).
const DUTY_SELECT: &str = "SELECT o.id AS objection_id, o.dataset_id AS dataset_id, \
    o.provider_org AS provider_org, o.objector_org AS objector_org, \
    o.answered_ms AS answered_ms, c.accepted_ms AS accepted_ms, \
    c.correction_due AS correction_due, c.version AS corrected_version, \
    c.certificate_no AS certificate_no, c.corrected_ms AS corrected_ms, \
    c.corrected_late AS corrected_late, c.correction_seq AS correction_seq \
    FROM objections o LEFT JOIN correction_duties c ON c.objection_id = o.id \
    WHERE o.outcome = 'accepted'";

fn duty_from_row(row: &AnyRow, calendar: &Calendar) -> Result<Duty> {
    let recorded: Option<i64> = row.try_get("accepted_ms")?;
    let answered: Option<i64> = row.try_get("answered_ms")?;
    let accepted_ms = recorded.or(answered).unwrap_or(0);
    let correction_due = match row.try_get::<Option<String>, _>("correction_due")? {
        Some(due) => due,
        None => iso_date(calendar.deadline_from_ms(accepted_ms, CORRECTION_WORKING_DAYS)),
    };
    Ok(Duty {
        objection_id: row.try_get("objection_id")?,
        dataset_id: row.try_get("dataset_id")?,
        provider_org: row.try_get("provider_org")?,
        objector_org: row.try_get("objector_org")?,
        accepted_ms,
        correction_due,
        version: opt_u64(row, "corrected_version")?,
        certificate_no: row.try_get("certificate_no")?,
        corrected_ms: row.try_get("corrected_ms")?,
        corrected_late: row
            .try_get::<Option<i64>, _>("corrected_late")?
            .unwrap_or(0)
            != 0,
        correction_seq: opt_u64(row, "correction_seq")?,
    })
}

/// Records the correction duty of an objection accepted at `accepted_ms`, inside the
/// caller's transaction (the answer's, or an upload's for an objection accepted before
/// duties were recorded). A duty already recorded stays as it is.
pub(crate) async fn record_duty(
    conn: &mut AnyConnection,
    calendar: &Calendar,
    objection: &Objection,
    accepted_ms: i64,
) -> Result<()> {
    let due = iso_date(calendar.deadline_from_ms(accepted_ms, CORRECTION_WORKING_DAYS));
    store::quality::insert_duty(
        &mut *conn,
        &store::quality::NewDutyRow {
            objection_id: &objection.id,
            dataset_id: &objection.dataset_id,
            provider_org: &objection.provider_org,
            accepted_ms,
            correction_due: &due,
        },
    )
    .await
}

/// Links the objections that the upload of ingest job `job_id` names to the version it
/// became, inside the certificate's transaction: each one still uncorrected gets the
/// version, its certificate and an `objection_answer` entry with step `corrected`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_corrections(
    conn: &mut AnyConnection,
    ledger: &Ledger,
    actor: &Actor,
    job_id: &JobId,
    dataset_id: &DatasetId,
    version: u64,
    certificate_no: &str,
    certificate_seq: u64,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT c.objection_id AS objection_id, c.correction_due AS correction_due, \
         o.objection_seq AS objection_seq, o.objector_org AS objector_org, \
         o.provider_org AS provider_org \
         FROM correction_uploads u JOIN correction_duties c ON c.objection_id = u.objection_id \
         JOIN objections o ON o.id = c.objection_id \
         WHERE u.ingest_job_id = $1 AND c.dataset_id = $2 AND c.version IS NULL \
         ORDER BY c.objection_id",
    )
    .bind(job_id.clone())
    .bind(dataset_id.clone())
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let out_of_range = || SandboxError::Internal("a version or seq is out of range".into());
    let version_i64 = i64::try_from(version).map_err(|_| out_of_range())?;
    let certificate_seq_i64 = i64::try_from(certificate_seq).map_err(|_| out_of_range())?;
    let now = now_ms();
    let today = iso_date(day_of_ms(now));
    for row in rows {
        let objection_id: ObjectionId = row.try_get("objection_id")?;
        let correction_due: String = row.try_get("correction_due")?;
        let late = today > correction_due;
        let claimed = store::quality::mark_corrected(
            &mut *conn,
            &store::quality::CorrectedRow {
                objection_id: &objection_id,
                version: version_i64,
                certificate_no,
                certificate_seq: certificate_seq_i64,
                corrected_ms: now,
                corrected_late: i64::from(late),
            },
        )
        .await?;
        if claimed != 1 {
            continue;
        }
        let entry = ObjectionCorrection {
            step: "corrected".into(),
            objection_id: objection_id.to_string(),
            objection_seq: u64_of(row.try_get("objection_seq")?),
            objector_org: row.try_get("objector_org")?,
            provider_org: row.try_get("provider_org")?,
            dataset_id: dataset_id.to_string(),
            version,
            certificate_no: certificate_no.to_string(),
            certificate_seq,
            correction_due,
            late,
        };
        let appended = ledger.append(&mut *conn, actor, &entry).await?;
        let seq = i64::try_from(appended.seq).map_err(|_| out_of_range())?;
        store::quality::set_correction_seq(&mut *conn, &objection_id, seq).await?;
    }
    Ok(())
}

impl Quality {
    /// The duty of one accepted objection.
    async fn duty_of(&self, id: &ObjectionId) -> Result<Option<Duty>> {
        let sql = format!("{DUTY_SELECT} AND o.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?;
        let calendar = self.calendar();
        row.as_ref()
            .map(|r| duty_from_row(r, &calendar))
            .transpose()
    }

    /// The duties of every accepted objection, or of one provider's, in the order of
    /// their acceptance.
    pub(crate) async fn duties(&self, provider: Option<&OrgId>) -> Result<Vec<Duty>> {
        let rows = match provider {
            Some(org) => {
                let sql =
                    format!("{DUTY_SELECT} AND o.provider_org = $1 ORDER BY o.answered_ms, o.id");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(org.clone())
                    .fetch_all(self.db().pool())
                    .await?
            }
            None => {
                let sql = format!("{DUTY_SELECT} ORDER BY o.answered_ms, o.id");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(self.db().pool())
                    .await?
            }
        };
        let calendar = self.calendar();
        rows.iter().map(|r| duty_from_row(r, &calendar)).collect()
    }

    /// `objection` with its correction, when it was accepted (as of today, UTC).
    pub(crate) async fn with_correction(&self, mut objection: Objection) -> Result<Objection> {
        if objection.outcome == Some(Outcome::Accepted) {
            let today = iso_date(day_of_ms(now_ms()));
            objection.correction = self.duty_of(&objection.id).await?.map(|d| d.view(&today));
        }
        Ok(objection)
    }

    /// The objections a certified version corrects.
    pub(crate) async fn corrected_by(
        &self,
        dataset_id: &DatasetId,
        version: u64,
    ) -> Result<Vec<CorrectedObjection>> {
        let rows = sqlx::query(
            "SELECT objection_id, correction_due, corrected_late, correction_seq \
             FROM correction_duties WHERE dataset_id = $1 AND version = $2 ORDER BY objection_id",
        )
        .bind(dataset_id.clone())
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .fetch_all(self.db().pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CorrectedObjection {
                    objection_id: row.try_get("objection_id")?,
                    correction_due: row.try_get("correction_due")?,
                    corrected_late: row.try_get::<i64, _>("corrected_late")? != 0,
                    correction_seq: opt_u64(row, "correction_seq")?,
                })
            })
            .collect()
    }

    /// Checks the objections an upload to `dataset` names as corrected, before anything
    /// is written: each must be an accepted objection to this dataset, visible to its
    /// provider, and not yet corrected by a certified version. Returns them, once each.
    pub(crate) async fn check_corrections(
        &self,
        dataset: &Dataset,
        ids: &[ObjectionId],
    ) -> Result<Vec<Objection>> {
        let mut unique: Vec<&ObjectionId> = Vec::new();
        for id in ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        if unique.len() > MAX_CORRECTED_PER_UPLOAD {
            return Err(SandboxError::Invalid(format!(
                "`corrects` names at most {MAX_CORRECTED_PER_UPLOAD} objections"
            )));
        }
        let view = ObjectionView::Org(dataset.provider_org.clone());
        let mut out = Vec::with_capacity(unique.len());
        for id in unique {
            let objection = self.objections().objection(id, &view).await?;
            if objection.dataset_id != dataset.id {
                return Err(SandboxError::Invalid(
                    "an objection named in `corrects` is to another dataset: a correction is \
                     a version of the dataset objected to"
                        .into(),
                ));
            }
            match (objection.status, objection.outcome) {
                (ObjectionStatus::Answered, Some(Outcome::Accepted)) => {}
                (ObjectionStatus::Open, _) => {
                    return Err(SandboxError::Conflict(
                        "an objection named in `corrects` is not answered yet: accept it \
                         before publishing its correction"
                            .into(),
                    ));
                }
                (ObjectionStatus::Answered, _) => {
                    return Err(SandboxError::Conflict(
                        "an objection named in `corrects` was rejected: there is nothing to \
                         correct"
                            .into(),
                    ));
                }
            }
            if objection
                .correction
                .as_ref()
                .is_some_and(|c| c.status == CorrectionStatus::Corrected)
            {
                return Err(SandboxError::Conflict(
                    "an objection named in `corrects` is already corrected by a certified \
                     version"
                        .into(),
                ));
            }
            out.push(objection);
        }
        Ok(out)
    }

    /// Records that the upload of ingest job `job_id` corrects `objections` (checked by
    /// [`Quality::check_corrections`]); the links take effect when the version is
    /// certified ([`record_corrections`]).
    pub(crate) async fn link_upload(&self, job_id: &JobId, objections: &[Objection]) -> Result<()> {
        let now = now_ms();
        let calendar = self.calendar();
        let mut tx = self.db().begin_write().await?;
        for objection in objections {
            // An objection accepted before duties were recorded gets its duty now, with
            // the deadline its acceptance set.
            let accepted_ms = objection.answered_ms.unwrap_or(now);
            record_duty(&mut tx, &calendar, objection, accepted_ms).await?;
            store::quality::insert_upload(&mut *tx, job_id, &objection.id, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Accepted objections whose correction is past its deadline on `today`
    /// (`YYYY-MM-DD`) or was made after it, by deadline.
    pub async fn late_corrections(&self, today: &str) -> Result<Vec<LateCorrection>> {
        let mut out = Vec::new();
        for duty in self.duties(None).await? {
            let state = match duty.version {
                Some(_) if duty.corrected_late => CorrectionLateness::CorrectedLate,
                Some(_) => continue,
                None if today > duty.correction_due.as_str() => CorrectionLateness::Pending,
                None => continue,
            };
            out.push(LateCorrection {
                objection_id: duty.objection_id,
                dataset_id: duty.dataset_id,
                provider_org: duty.provider_org,
                objector_org: duty.objector_org,
                accepted_on: iso_date(day_of_ms(duty.accepted_ms)),
                correction_due: duty.correction_due,
                state,
                corrected_on: duty.corrected_ms.map(|ms| iso_date(day_of_ms(ms))),
                version: duty.version,
                correction_seq: duty.correction_seq,
            });
        }
        out.sort_by(|a, b| {
            (a.correction_due.as_str(), a.objection_id.as_str())
                .cmp(&(b.correction_due.as_str(), b.objection_id.as_str()))
        });
        Ok(out)
    }

    /// Published datasets with a periodic update frequency whose next version is past
    /// its due date on `today` (`YYYY-MM-DD`).
    pub async fn overdue_updates(&self, today: &str) -> Result<Vec<OverdueUpdate>> {
        let rows = sqlx::query(
            "SELECT d.id AS dataset_id, d.provider_org AS provider_org, \
             d.update_frequency AS update_frequency, v.version AS version, \
             v.created_ms AS created_ms \
             FROM datasets d JOIN dataset_versions v ON v.dataset_id = d.id \
             WHERE d.status = 'published' AND v.version = \
             (SELECT MAX(x.version) FROM dataset_versions x WHERE x.dataset_id = d.id) \
             AND NOT EXISTS (SELECT 1 FROM dataset_destructions t \
             WHERE t.dataset_id = d.id AND t.version = 0) \
             ORDER BY d.id",
        )
        .fetch_all(self.db().pool())
        .await?;
        let calendar = self.calendar();
        let mut out = Vec::new();
        for row in rows {
            let frequency = UpdateFrequency::stored(&row.try_get::<String, _>("update_frequency")?);
            let created_ms: i64 = row.try_get("created_ms")?;
            let Some(due) = frequency.next_version_due(&calendar, created_ms) else {
                continue;
            };
            let due = iso_date(due);
            if today <= due.as_str() {
                continue;
            }
            out.push(OverdueUpdate {
                dataset_id: row.try_get("dataset_id")?,
                provider_org: row.try_get("provider_org")?,
                update_frequency: frequency,
                latest_version: u64_of(row.try_get("version")?),
                last_version_on: iso_date(day_of_ms(created_ms)),
                next_version_due: due,
            });
        }
        Ok(out)
    }

    /// A provider's published datasets with their stated frequency and the certification
    /// times of their versions, oldest first (for the evaluation).
    pub(crate) async fn version_history(
        &self,
        provider: &OrgId,
    ) -> Result<Vec<(DatasetId, UpdateFrequency, Vec<i64>)>> {
        let rows = sqlx::query(
            "SELECT d.id AS dataset_id, d.update_frequency AS update_frequency, \
             v.created_ms AS created_ms \
             FROM datasets d JOIN dataset_versions v ON v.dataset_id = d.id \
             WHERE d.provider_org = $1 AND d.status = 'published' \
             AND NOT EXISTS (SELECT 1 FROM dataset_destructions t \
             WHERE t.dataset_id = d.id AND t.version = 0) \
             ORDER BY d.id, v.version",
        )
        .bind(provider.clone())
        .fetch_all(self.db().pool())
        .await?;
        let mut out: Vec<(DatasetId, UpdateFrequency, Vec<i64>)> = Vec::new();
        for row in rows {
            let id: DatasetId = row.try_get("dataset_id")?;
            let created_ms: i64 = row.try_get("created_ms")?;
            let n = out.len();
            if n > 0 && out[n - 1].0 == id {
                out[n - 1].2.push(created_ms);
            } else {
                let frequency =
                    UpdateFrequency::stored(&row.try_get::<String, _>("update_frequency")?);
                out.push((id, frequency, vec![created_ms]));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::checked_text;
    use crate::workdays::{midnight_ms as ms, parse_day};

    #[test]
    fn frequencies_are_six_words_and_nothing_else() {
        for f in UpdateFrequency::ALL {
            assert_eq!(UpdateFrequency::parse(f.as_str()).ok(), Some(f));
            let wire = serde_json::to_value(f).unwrap_or_default();
            assert_eq!(wire, serde_json::Value::String(f.as_str().into()));
        }
        for bad in ["Monthly", "monthly, on the 5th", "", "hourly", "Daily "] {
            let err = UpdateFrequency::parse(bad).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains("one of daily, weekly"), "{bad}: {err}");
            assert!(
                bad.is_empty() || !err.contains(bad),
                "the input is not echoed"
            );
        }
        assert_eq!(
            UpdateFrequency::stored("every full moon"),
            UpdateFrequency::Irregular
        );
    }

    #[test]
    fn the_next_version_is_due_a_period_and_five_working_days_after_the_last() {
        let plain = Calendar::default();
        // Monday 2026-11-02, monthly: 31 days on is Thursday 2026-12-03, plus 5 working
        // days is Thursday 2026-12-10.
        let last = ms(date!(2026 - 11 - 02));
        assert_eq!(
            UpdateFrequency::Monthly.next_version_due(&plain, last),
            Some(date!(2026 - 12 - 10))
        );
        // Daily: Tuesday 2026-11-03 plus 5 working days is Tuesday 2026-11-10.
        assert_eq!(
            UpdateFrequency::Daily.next_version_due(&plain, last + 3_600_000),
            Some(date!(2026 - 11 - 10))
        );
        // Weekly from a Friday: the next Friday, then 5 working days: the Friday after.
        assert_eq!(
            UpdateFrequency::Weekly.next_version_due(&plain, ms(date!(2026 - 11 - 06))),
            Some(date!(2026 - 11 - 20))
        );
        // Yearly: 366 days on from 2026-01-05 is Wednesday 2027-01-06, +5 is 2027-01-13.
        assert_eq!(
            UpdateFrequency::Yearly.next_version_due(&plain, ms(date!(2026 - 01 - 05))),
            Some(date!(2027 - 01 - 13))
        );
        assert_eq!(
            UpdateFrequency::Irregular.next_version_due(&plain, last),
            None
        );
    }

    #[test]
    fn duties_show_overdue_only_while_pending_past_their_deadline() {
        let duty = Duty {
            objection_id: ObjectionId::random(),
            dataset_id: DatasetId::random(),
            provider_org: OrgId::random(),
            objector_org: OrgId::random(),
            accepted_ms: 0,
            correction_due: "2026-11-30".into(),
            version: None,
            certificate_no: None,
            corrected_ms: None,
            corrected_late: false,
            correction_seq: None,
        };
        assert!(!duty.view("2026-11-30").overdue, "on its deadline");
        assert!(duty.view("2026-12-01").overdue);
        assert_eq!(duty.view("2026-12-01").status, CorrectionStatus::Pending);
        let corrected = Duty {
            version: Some(2),
            corrected_late: true,
            ..duty
        };
        let view = corrected.view("2027-01-01");
        assert_eq!(view.status, CorrectionStatus::Corrected);
        assert!(!view.overdue);
        assert!(view.corrected_late);
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(
            checked_text("findings", "  late answers ", MAX_TEXT_CHARS).ok(),
            Some("late answers")
        );
        assert!(checked_text("findings", " ", MAX_TEXT_CHARS).is_err());
        assert!(
            checked_text("findings", &"字".repeat(MAX_TEXT_CHARS + 1), MAX_TEXT_CHARS).is_err()
        );
        assert_eq!(parse_day("2026-02-29"), None);
        assert_eq!(parse_day("2028-02-29"), Some(date!(2028 - 02 - 29)));
        assert_eq!(
            day_of_ms(ms(date!(2026 - 11 - 23)) + 86_399_999),
            date!(2026 - 11 - 23)
        );
    }
}
