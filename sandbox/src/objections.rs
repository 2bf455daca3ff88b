//! Objections (异议): anyone may object to a dataset version for an error or an
//! omission, and the provider must answer (SD22 Art.13; XT Art.21).
//!
//! An objection names one certified version, a ground (`error` or `omission`) and what
//! is wrong. Filing computes the answer deadline in working days
//! ([`crate::workdays`], `objection_answer_working_days`, default 5) and appends an
//! `Objection` ledger entry in the same transaction as the row; the provider is a
//! party to the entry, so it can read it. The dataset's provider answers once,
//! `accepted` (the data will be corrected) or `rejected` (with reasons), which appends
//! an `ObjectionAnswer` entry that the objector can read. An answer after the deadline
//! is still accepted but marked late, on the row and on the ledger; open objections
//! past their deadline are overdue and show on the supervisor's compliance report
//! ([`crate::compliance`]).
//!
//! An accepted objection obliges the provider to publish a corrected version within 10
//! working days (XT Art.22): the acceptance records that duty in the answer's
//! transaction, and [`crate::quality`] links the corrected version to the objection; the
//! objection shows where its correction is ([`Objection::correction`]).
//!
//! Visibility: the organisation that filed an objection and the dataset's provider see
//! it; supervisors see all ([`ObjectionView`]). Anyone else gets "not found".

use pdx_ids::{DatasetId, ObjectionId, OrgId};
use pdx_ledger::Actor;
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::{Objection as ObjectionEntry, ObjectionAnswer};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::catalog::CatalogReader;
use crate::quality::Correction;
use crate::store::{self, opt_u64};
use crate::workdays::{iso_date, iso_day_of_ms, today_iso};
use crate::{Result, SandboxError, actor_key, actor_org, checked_text};

crate::service! {
    /// Objections to dataset versions and their working-day deadlines.
    Objections
}

/// Longest objection detail or answer, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Why a version is objected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Ground {
    /// Something in the data is wrong.
    Error,
    /// Something that should be there is missing.
    Omission,
}

impl Ground {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Ground::Error => "error",
            Ground::Omission => "omission",
        }
    }

    fn parse(s: &str) -> Result<Ground> {
        match s {
            "error" => Ok(Ground::Error),
            "omission" => Ok(Ground::Omission),
            other => Err(SandboxError::Internal(format!(
                "stored objection ground {other:?}"
            ))),
        }
    }
}

/// Where an objection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ObjectionStatus {
    /// Waiting for the provider.
    Open,
    /// Answered.
    Answered,
}

/// The provider's finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The objection is right; the data will be corrected.
    Accepted,
    /// The objection is not upheld; the answer gives the reasons.
    Rejected,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Result<Outcome> {
        match s {
            "accepted" => Ok(Outcome::Accepted),
            "rejected" => Ok(Outcome::Rejected),
            other => Err(SandboxError::Internal(format!(
                "stored objection outcome {other:?}"
            ))),
        }
    }
}

/// What a user files.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewObjection {
    /// Dataset id.
    pub dataset_id: DatasetId,
    /// The certified version objected to.
    pub version: u64,
    /// `error` or `omission`.
    pub ground: Ground,
    /// What is wrong or missing (1 to 4,000 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4000))]
    pub detail: String,
}

/// The provider's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ObjectionReply {
    /// `accepted` or `rejected`.
    pub outcome: Outcome,
    /// The reply (1 to 4,000 characters).
    pub answer: String,
}

/// An objection as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Objection {
    /// Objection id.
    pub id: ObjectionId,
    /// Dataset id.
    pub dataset_id: DatasetId,
    /// Version objected to.
    pub version: u64,
    /// The providing organisation, which must answer.
    pub provider_org: OrgId,
    /// The organisation that filed it.
    pub objector_org: OrgId,
    /// `error` or `omission`.
    pub ground: Ground,
    /// What is wrong or missing.
    pub detail: String,
    /// Open or answered.
    pub status: ObjectionStatus,
    /// Answer deadline (`YYYY-MM-DD`, UTC), working days from filing.
    pub answer_deadline: String,
    /// Filed, ms since epoch.
    pub filed_ms: i64,
    /// Ledger seq of the `Objection` entry.
    pub objection_seq: u64,
    /// The provider's finding, once answered.
    pub outcome: Option<Outcome>,
    /// The provider's reply, once answered.
    pub answer: Option<String>,
    /// Answered, ms since epoch.
    pub answered_ms: Option<i64>,
    /// True if the answer came after the deadline.
    pub answered_late: bool,
    /// Ledger seq of the `ObjectionAnswer` entry.
    pub answer_seq: Option<u64>,
    /// Open and past its deadline today (UTC).
    pub overdue: bool,
    /// For an accepted objection, the corrected version it obliges: its deadline and,
    /// once certified, the version that corrects it ([`crate::quality`]).
    #[serde(default)]
    pub correction: Option<Correction>,
}

/// Who is asking, for visibility.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectionView {
    /// Objections an organisation filed or must answer.
    Org(OrgId),
    /// Every objection (supervisors).
    All,
}

impl ObjectionView {
    fn sees(&self, o: &Objection) -> bool {
        match self {
            ObjectionView::All => true,
            ObjectionView::Org(org) => o.objector_org == *org || o.provider_org == *org,
        }
    }
}

fn objection_from_row(row: &AnyRow, today: &str) -> Result<Objection> {
    let status = match row.try_get::<String, _>("status")?.as_str() {
        "open" => ObjectionStatus::Open,
        "answered" => ObjectionStatus::Answered,
        other => {
            return Err(SandboxError::Internal(format!(
                "stored objection status {other:?}"
            )));
        }
    };
    let answer_deadline: String = row.try_get("answer_deadline")?;
    let outcome: Option<String> = row.try_get("outcome")?;
    Ok(Objection {
        id: row.try_get("id")?,
        dataset_id: row.try_get("dataset_id")?,
        version: u64::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
        provider_org: row.try_get("provider_org")?,
        objector_org: row.try_get("objector_org")?,
        ground: Ground::parse(&row.try_get::<String, _>("ground")?)?,
        detail: row.try_get("detail")?,
        overdue: status == ObjectionStatus::Open && today > answer_deadline.as_str(),
        status,
        answer_deadline,
        filed_ms: row.try_get("filed_ms")?,
        objection_seq: u64::try_from(row.try_get::<i64, _>("objection_seq")?).unwrap_or(0),
        outcome: outcome.as_deref().map(Outcome::parse).transpose()?,
        answer: row.try_get("answer")?,
        answered_ms: row.try_get("answered_ms")?,
        answered_late: row.try_get::<i64, _>("answered_late")? != 0,
        answer_seq: opt_u64(row, "answer_seq")?,
        correction: None,
    })
}

impl Objections {
    /// Files an objection to a certified dataset version on `actor`'s behalf.
    pub async fn file_objection(&self, actor: &Actor, new: NewObjection) -> Result<Objection> {
        let detail = checked_text("detail", &new.detail, MAX_TEXT_CHARS)?;
        let objector_org = actor_org(actor)?;
        // An unpublished entry is not in the objector's catalog (GD21 Art.10-11) unless
        // it is its own.
        let dataset = self
            .catalog()
            .visible_dataset(&new.dataset_id, CatalogReader::Org(&objector_org))
            .await?;
        if self
            .versions()
            .version(&dataset.id, new.version)
            .await?
            .is_none()
        {
            return Err(SandboxError::NotFound("no such version".into()));
        }
        let objector_key = actor_key(actor)?;
        let id = ObjectionId::random();
        let now = now_ms();
        let deadline = iso_date(
            self.calendar()
                .deadline_from_ms(now, self.config().objection_answer_working_days),
        );
        let entry = ObjectionEntry {
            objection_id: id.to_string(),
            dataset_id: dataset.id.to_string(),
            version: new.version,
            provider_org: dataset.provider_org.to_string(),
            objector_org: objector_org.to_string(),
            ground: new.ground.as_str().into(),
            detail: detail.to_string(),
            answer_deadline: deadline.clone(),
        };
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::objections::insert_objection(
            &mut *tx,
            &store::objections::NewObjectionRow {
                id: &id,
                dataset_id: &dataset.id,
                version: new.version as i64,
                provider_org: &dataset.provider_org,
                objector_org: &objector_org,
                objector_key: &objector_key,
                ground: new.ground.as_str(),
                detail,
                answer_deadline: &deadline,
                filed_ms: now,
                objection_seq: appended.seq as i64,
            },
        )
        .await?;
        tx.commit().await?;
        self.load_objection(&id).await
    }

    async fn load_objection(&self, id: &ObjectionId) -> Result<Objection> {
        let row = sqlx::query("SELECT * FROM objections WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such objection".into()))?;
        let objection = objection_from_row(&row, &today_iso())?;
        self.quality().with_correction(objection).await
    }

    /// One objection, if the caller may see it.
    pub async fn objection(&self, id: &ObjectionId, view: &ObjectionView) -> Result<Objection> {
        let objection = self.load_objection(id).await?;
        if view.sees(&objection) {
            Ok(objection)
        } else {
            Err(SandboxError::NotFound("no such objection".into()))
        }
    }

    /// Objections the caller may see, newest first.
    pub async fn objections(&self, view: &ObjectionView) -> Result<Vec<Objection>> {
        let rows = match view {
            ObjectionView::All => {
                sqlx::query("SELECT * FROM objections ORDER BY filed_ms DESC, id")
                    .fetch_all(self.db().pool())
                    .await?
            }
            ObjectionView::Org(org) => {
                sqlx::query(
                    "SELECT * FROM objections WHERE objector_org = $1 OR provider_org = $1 \
                     ORDER BY filed_ms DESC, id",
                )
                .bind(org.clone())
                .fetch_all(self.db().pool())
                .await?
            }
        };
        let today = today_iso();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let objection = objection_from_row(row, &today)?;
            out.push(self.quality().with_correction(objection).await?);
        }
        Ok(out)
    }

    /// The dataset's provider answers an open objection (once). Other organisations get
    /// "not found", whether or not they can see the objection.
    pub async fn answer_objection(
        &self,
        actor: &Actor,
        id: &ObjectionId,
        reply: ObjectionReply,
    ) -> Result<Objection> {
        let answer = checked_text("answer", &reply.answer, MAX_TEXT_CHARS)?;
        let objection = self.load_objection(id).await?;
        if objection.provider_org != actor.org {
            return Err(SandboxError::NotFound("no such objection".into()));
        }
        if objection.status != ObjectionStatus::Open {
            return Err(SandboxError::Conflict(
                "the objection has already been answered".into(),
            ));
        }
        let now = now_ms();
        let late = iso_day_of_ms(now) > objection.answer_deadline;
        let mut tx = self.db().begin_write().await?;
        let updated = store::objections::answer_open(
            &mut *tx,
            id,
            reply.outcome.as_str(),
            answer,
            now,
            i64::from(late),
        )
        .await?;
        if updated != 1 {
            return Err(SandboxError::Conflict(
                "the objection was answered concurrently".into(),
            ));
        }
        let entry = ObjectionAnswer {
            objection_id: objection.id.to_string(),
            objection_seq: objection.objection_seq,
            objector_org: objection.objector_org.to_string(),
            outcome: reply.outcome.as_str().into(),
            answer: answer.to_string(),
            late,
        };
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::objections::set_answer_seq(&mut *tx, id, appended.seq as i64).await?;
        if reply.outcome == Outcome::Accepted {
            // The acceptance obliges a corrected version within 10 working days (SD22
            // Art.13; XT Art.22): the duty and its deadline are recorded with the answer.
            crate::quality::record_duty(&mut tx, &self.calendar(), &objection, now).await?;
        }
        tx.commit().await?;
        self.load_objection(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(
            checked_text("detail", "  wrong total  ", MAX_TEXT_CHARS).ok(),
            Some("wrong total")
        );
        assert!(checked_text("detail", "   ", MAX_TEXT_CHARS).is_err());
        let long = "字".repeat(MAX_TEXT_CHARS + 1);
        assert!(checked_text("detail", &long, MAX_TEXT_CHARS).is_err());
        assert!(
            checked_text("detail", &long[3..], MAX_TEXT_CHARS).is_ok(),
            "4,000 characters fit"
        );
    }

    #[test]
    fn days_of_timestamps_are_utc() {
        // 2026-11-23T23:59:59Z and one second later.
        assert_eq!(iso_day_of_ms(1_795_478_399_000), "2026-11-23");
        assert_eq!(iso_day_of_ms(1_795_478_400_000), "2026-11-24");
    }

    #[test]
    fn views_show_the_objector_and_the_provider_only() {
        let org = |s: &str| OrgId::parse(s).unwrap();
        let o = Objection {
            id: ObjectionId::parse("obj_1").unwrap(),
            dataset_id: DatasetId::parse("ds_x").unwrap(),
            version: 1,
            provider_org: org("org-prov"),
            objector_org: org("org-dev"),
            ground: Ground::Error,
            detail: "x".into(),
            status: ObjectionStatus::Open,
            answer_deadline: "2026-11-30".into(),
            filed_ms: 0,
            objection_seq: 0,
            outcome: None,
            answer: None,
            answered_ms: None,
            answered_late: false,
            answer_seq: None,
            overdue: false,
            correction: None,
        };
        assert!(ObjectionView::All.sees(&o));
        assert!(ObjectionView::Org(org("org-prov")).sees(&o));
        assert!(ObjectionView::Org(org("org-dev")).sees(&o));
        assert!(!ObjectionView::Org(org("org-other")).sees(&o));
    }
}
