//! Rectification orders (整改) of the data authority (GD21 Art.52; GD18 Art.31), public
//! as its evaluations are (SD22 Art.5; XT Art.41).
//!
//! The data authority issues an order to an organisation
//! ([`Rectifications::issue`]): its findings (what must be rectified), a deadline
//! (`YYYY-MM-DD`, today to [`MAX_DEADLINE_DAYS`] days ahead) and, optionally, the
//! evaluation it follows ([`crate::evaluation`]). The organisation answers once with
//! what it did ([`Rectifications::respond`]); an answer after the deadline is accepted
//! and marked late. The authority then closes the order with a note
//! ([`Rectifications::close`]), normally once answered; it may also close an order that
//! was never answered, with a note saying why (an organisation suspended meanwhile, for
//! one, cannot answer: XT Art.33). Each step is a public `rectification` ledger entry
//! ([`pdx_ledger::kinds::Rectification`]) written in the step's transaction, and each is
//! guarded by the order's status, so a second response or a second closing is a
//! conflict (409) that writes nothing, also under a race.
//!
//! Until it is closed an order is on the compliance report ([`OpenRectification`]);
//! one still unanswered after its deadline is marked overdue. Every authenticated caller
//! reads the orders; only the ordered organisation answers one (anyone else: "not
//! found"), and only the data authority issues and closes them (the HTTP policy).
//! Every error message here is safe to show: none echoes a value the caller sent.

use pdx_ids::{EvaluationId, OrgId, RectificationId};
use pdx_ledger::Actor;
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::Rectification as RectificationEntry;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::Duration;

use crate::quality::MAX_TEXT_CHARS;
use crate::store::{self, to_i64, u64_of, where_clause};
use crate::workdays::{day_of_ms, iso_date, parse_day, today_iso};
use crate::{Result, SandboxError, actor_key, actor_org, checked_text};

crate::service! {
    /// The data authority's rectification orders.
    Rectifications
}

/// The furthest deadline an order may set, in days from today.
pub const MAX_DEADLINE_DAYS: i64 = 366;

/// Where an order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RectificationStatus {
    /// Issued; the organisation has not answered.
    Issued,
    /// Answered; the data authority has not closed it.
    Responded,
    /// Closed by the data authority.
    Closed,
}

impl RectificationStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RectificationStatus::Issued => "issued",
            RectificationStatus::Responded => "responded",
            RectificationStatus::Closed => "closed",
        }
    }

    fn parse(s: &str) -> Result<RectificationStatus> {
        match s {
            "issued" => Ok(RectificationStatus::Issued),
            "responded" => Ok(RectificationStatus::Responded),
            "closed" => Ok(RectificationStatus::Closed),
            _ => Err(SandboxError::Internal(
                "a stored rectification status is unknown".into(),
            )),
        }
    }
}

/// What the data authority sends to issue an order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRectification {
    /// The organisation ordered to rectify.
    pub org: OrgId,
    /// The deadline, `YYYY-MM-DD` (UTC): today to 366 days ahead.
    pub deadline: String,
    /// What must be rectified (1 to 4,000 characters).
    pub findings: String,
    /// The evaluation of that organisation the order follows, if any.
    #[serde(default)]
    pub evaluation_id: Option<EvaluationId>,
}

/// What the ordered organisation answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RectificationResponse {
    /// What the organisation did (1 to 4,000 characters).
    pub response: String,
}

/// What the data authority sends to close an order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RectificationClosing {
    /// Why the order is closed, e.g. what the authority checked (1 to 4,000 characters).
    pub note: String,
}

/// A rectification order, as kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RectificationOrder {
    /// The order's id.
    pub id: RectificationId,
    /// The organisation ordered to rectify.
    pub org_id: OrgId,
    /// The data authority's organisation that issued it.
    pub authority_org: OrgId,
    /// The evaluation it follows, if any.
    pub evaluation_id: Option<EvaluationId>,
    /// What must be rectified.
    pub findings: String,
    /// The deadline, `YYYY-MM-DD`.
    pub deadline: String,
    /// Issued, responded or closed.
    pub status: RectificationStatus,
    /// Issued, ms since epoch.
    pub issued_ms: i64,
    /// Ledger seq of the `issued` entry.
    pub issued_seq: u64,
    /// What the organisation did, once answered.
    pub response: Option<String>,
    /// Answered, ms since epoch.
    pub responded_ms: Option<i64>,
    /// True when answered after the deadline.
    pub responded_late: bool,
    /// Ledger seq of the `responded` entry.
    pub response_seq: Option<u64>,
    /// The data authority's closing note.
    pub closing_note: Option<String>,
    /// The organisation that closed it.
    pub closed_by_org: Option<OrgId>,
    /// Closed, ms since epoch.
    pub closed_ms: Option<i64>,
    /// Ledger seq of the `closed` entry.
    pub close_seq: Option<u64>,
    /// Unanswered and past its deadline today (UTC).
    pub overdue: bool,
}

/// Filters of the order list.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct RectificationQuery {
    /// Only orders to this organisation.
    pub org: Option<OrgId>,
    /// Only orders in this status.
    pub status: Option<RectificationStatus>,
}

/// An order not yet closed (compliance report).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenRectification {
    /// The order's id.
    pub order_id: RectificationId,
    /// The organisation ordered to rectify.
    pub org_id: OrgId,
    /// The data authority's organisation that issued it.
    pub authority_org: OrgId,
    /// The deadline, `YYYY-MM-DD`.
    pub deadline: String,
    /// Issued or responded.
    pub status: RectificationStatus,
    /// Unanswered and past its deadline on the report's day.
    pub overdue: bool,
    /// Answered after the deadline.
    pub responded_late: bool,
    /// Ledger seq of the `issued` entry.
    pub issued_seq: u64,
}

fn order_from_row(row: &AnyRow, today: &str) -> Result<RectificationOrder> {
    let status = RectificationStatus::parse(&row.try_get::<String, _>("status")?)?;
    let deadline: String = row.try_get("deadline")?;
    let opt =
        |col: &str| -> Result<Option<u64>> { Ok(row.try_get::<Option<i64>, _>(col)?.map(u64_of)) };
    Ok(RectificationOrder {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        authority_org: row.try_get("authority_org")?,
        evaluation_id: row.try_get("evaluation_id")?,
        findings: row.try_get("findings")?,
        overdue: status == RectificationStatus::Issued && today > deadline.as_str(),
        deadline,
        status,
        issued_ms: row.try_get("issued_ms")?,
        issued_seq: u64_of(row.try_get("issued_seq")?),
        response: row.try_get("response")?,
        responded_ms: row.try_get("responded_ms")?,
        responded_late: row.try_get::<i64, _>("responded_late")? != 0,
        response_seq: opt("response_seq")?,
        closing_note: row.try_get("closing_note")?,
        closed_by_org: row.try_get("closer_org")?,
        closed_ms: row.try_get("closed_ms")?,
        close_seq: opt("close_seq")?,
    })
}

impl Rectifications {
    async fn load(&self, id: &RectificationId) -> Result<RectificationOrder> {
        let row = sqlx::query("SELECT * FROM rectification_orders WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such rectification order".into()))?;
        order_from_row(&row, &today_iso())
    }

    /// The data authority (`actor`) orders `new.org` to rectify its findings by the
    /// deadline. The caller has checked that the organisation exists. Refused (422) for
    /// the authority's own organisation, a deadline in the past or more than
    /// [`MAX_DEADLINE_DAYS`] ahead, and an evaluation of another organisation.
    pub async fn issue(&self, actor: &Actor, new: NewRectification) -> Result<RectificationOrder> {
        let findings = checked_text("findings", &new.findings, MAX_TEXT_CHARS)?;
        let deadline = parse_day(&new.deadline)
            .ok_or_else(|| SandboxError::Invalid("`deadline` is a date, YYYY-MM-DD".into()))?;
        let now = now_ms();
        let today = day_of_ms(now);
        if deadline < today {
            return Err(SandboxError::Invalid("`deadline` is in the past".into()));
        }
        if deadline > today.saturating_add(Duration::days(MAX_DEADLINE_DAYS)) {
            return Err(SandboxError::Invalid(format!(
                "`deadline` is at most {MAX_DEADLINE_DAYS} days ahead"
            )));
        }
        let authority_org = actor_org(actor)?;
        let authority_key = actor_key(actor)?;
        if new.org == authority_org {
            return Err(SandboxError::Invalid(
                "the data authority does not order its own organisation to rectify".into(),
            ));
        }
        if let Some(evaluation_id) = &new.evaluation_id {
            let evaluated: Option<OrgId> =
                sqlx::query("SELECT provider_org FROM evaluations WHERE id = $1")
                    .bind(evaluation_id.clone())
                    .fetch_optional(self.db().pool())
                    .await?
                    .map(|row| row.try_get("provider_org"))
                    .transpose()?;
            if evaluated.as_ref() != Some(&new.org) {
                return Err(SandboxError::Invalid(
                    "`evaluation_id` names no evaluation of the organisation ordered".into(),
                ));
            }
        }
        let id = RectificationId::random();
        let deadline = iso_date(deadline);
        let entry = RectificationEntry {
            step: RectificationStatus::Issued.as_str().into(),
            order_id: id.to_string(),
            org: new.org.to_string(),
            authority_org: authority_org.to_string(),
            deadline: deadline.clone(),
            evaluation_id: new.evaluation_id.as_ref().map(|e| e.to_string()),
            text: findings.to_string(),
            late: false,
            issued_seq: None,
        };
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::rectification::insert_order(
            &mut *tx,
            &store::rectification::NewOrderRow {
                id: &id,
                org_id: &new.org,
                authority_org: &authority_org,
                authority_key: &authority_key,
                evaluation_id: new.evaluation_id.as_ref().map(|e| e.to_string()),
                findings,
                deadline: &deadline,
                issued_ms: now,
                issued_seq: to_i64(appended.seq, "a ledger seq")?,
            },
        )
        .await?;
        tx.commit().await?;
        self.load(&id).await
    }

    /// One order (every authenticated caller may read it).
    pub async fn order(&self, id: &RectificationId) -> Result<RectificationOrder> {
        self.load(id).await
    }

    /// Orders, newest first, filtered by organisation and status.
    pub async fn orders(&self, query: &RectificationQuery) -> Result<Vec<RectificationOrder>> {
        let mut filters = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(org) = &query.org {
            binds.push(org.to_string());
            filters.push(format!("org_id = ${}", binds.len()));
        }
        if let Some(status) = query.status {
            binds.push(status.as_str().to_string());
            filters.push(format!("status = ${}", binds.len()));
        }
        let filter = where_clause(&filters);
        let sql =
            format!("SELECT * FROM rectification_orders {filter} ORDER BY issued_ms DESC, id");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.db().pool()).await?;
        let today = today_iso();
        rows.iter().map(|r| order_from_row(r, &today)).collect()
    }

    /// The ordered organisation (`actor`) answers an issued order, once; after the
    /// deadline the answer is accepted and marked late. Another organisation gets "not
    /// found"; an answered or closed order is a conflict.
    pub async fn respond(
        &self,
        actor: &Actor,
        id: &RectificationId,
        answer: RectificationResponse,
    ) -> Result<RectificationOrder> {
        let response = checked_text("response", &answer.response, MAX_TEXT_CHARS)?;
        let order = self.load(id).await?;
        if order.org_id.as_str() != actor.org {
            return Err(SandboxError::NotFound("no such rectification order".into()));
        }
        match order.status {
            RectificationStatus::Issued => {}
            RectificationStatus::Responded => {
                return Err(SandboxError::Conflict(
                    "the order has already been answered".into(),
                ));
            }
            RectificationStatus::Closed => {
                return Err(SandboxError::Conflict("the order is closed".into()));
            }
        }
        let key = actor_key(actor)?;
        let now = now_ms();
        let late = iso_date(day_of_ms(now)) > order.deadline;
        let mut tx = self.db().begin_write().await?;
        let updated = store::rectification::record_response(
            &mut *tx,
            &store::rectification::ResponseRow {
                id,
                response,
                responder_key: &key,
                responded_ms: now,
                responded_late: i64::from(late),
            },
        )
        .await?;
        if updated != 1 {
            return Err(SandboxError::Conflict(
                "the order was answered or closed concurrently".into(),
            ));
        }
        let entry = RectificationEntry {
            step: RectificationStatus::Responded.as_str().into(),
            order_id: order.id.to_string(),
            org: order.org_id.to_string(),
            authority_org: order.authority_org.to_string(),
            deadline: order.deadline.clone(),
            evaluation_id: order.evaluation_id.as_ref().map(|e| e.to_string()),
            text: response.to_string(),
            late,
            issued_seq: Some(order.issued_seq),
        };
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::rectification::set_response_seq(&mut *tx, id, to_i64(appended.seq, "a ledger seq")?)
            .await?;
        tx.commit().await?;
        self.load(id).await
    }

    /// The data authority (`actor`) closes an order with a note, answered or not. An
    /// order already closed is a conflict.
    pub async fn close(
        &self,
        actor: &Actor,
        id: &RectificationId,
        closing: RectificationClosing,
    ) -> Result<RectificationOrder> {
        let note = checked_text("note", &closing.note, MAX_TEXT_CHARS)?;
        let order = self.load(id).await?;
        match order.status {
            RectificationStatus::Issued | RectificationStatus::Responded => {}
            RectificationStatus::Closed => {
                return Err(SandboxError::Conflict("the order is already closed".into()));
            }
        }
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        let updated = store::rectification::record_close(
            &mut *tx,
            &store::rectification::CloseRow {
                id,
                closing_note: note,
                closer_org: &org,
                closer_key: &key,
                closed_ms: now,
            },
        )
        .await?;
        if updated != 1 {
            return Err(SandboxError::Conflict(
                "the order was closed concurrently".into(),
            ));
        }
        let entry = RectificationEntry {
            step: RectificationStatus::Closed.as_str().into(),
            order_id: order.id.to_string(),
            org: order.org_id.to_string(),
            authority_org: org.to_string(),
            deadline: order.deadline.clone(),
            evaluation_id: order.evaluation_id.as_ref().map(|e| e.to_string()),
            text: note.to_string(),
            late: order.responded_late,
            issued_seq: Some(order.issued_seq),
        };
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::rectification::set_close_seq(&mut *tx, id, to_i64(appended.seq, "a ledger seq")?)
            .await?;
        tx.commit().await?;
        self.load(id).await
    }

    /// Orders not yet closed, by deadline, each marked overdue when unanswered after its
    /// deadline on `today` (`YYYY-MM-DD`).
    pub async fn open_orders(&self, today: &str) -> Result<Vec<OpenRectification>> {
        let rows = sqlx::query(
            "SELECT * FROM rectification_orders WHERE status <> 'closed' \
             ORDER BY deadline, id",
        )
        .fetch_all(self.db().pool())
        .await?;
        rows.iter()
            .map(|row| {
                let order = order_from_row(row, today)?;
                Ok(OpenRectification {
                    order_id: order.id,
                    org_id: order.org_id,
                    authority_org: order.authority_org,
                    deadline: order.deadline,
                    status: order.status,
                    overdue: order.overdue,
                    responded_late: order.responded_late,
                    issued_seq: order.issued_seq,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_their_wire_names() {
        for s in [
            RectificationStatus::Issued,
            RectificationStatus::Responded,
            RectificationStatus::Closed,
        ] {
            assert_eq!(RectificationStatus::parse(s.as_str()).ok(), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::String(s.as_str().into()))
            );
        }
        assert!(RectificationStatus::parse("reopened").is_err());
    }

    #[test]
    fn bodies_refuse_unknown_fields() {
        let ok: std::result::Result<NewRectification, _> = serde_json::from_value(
            serde_json::json!({"org": "org-abc123", "deadline": "2026-12-31", "findings": "x"}),
        );
        assert!(ok.is_ok());
        let bad: std::result::Result<NewRectification, _> = serde_json::from_value(
            serde_json::json!({"org": "org-abc123", "deadline": "2026-12-31", "findings": "x", "fine": 5}),
        );
        assert!(bad.is_err());
    }
}
