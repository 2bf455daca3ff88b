//! Data sharing between government departments (政务数据共享; GD18 throughout; GD21
//! Art.22–23).
//!
//! A providing department (an organisation with the provider role) asks for another
//! provider's published dataset for its own duties ([`Sharing::request`]): it names the
//! dataset, its duty and the purpose the data serves, the legal basis of that duty and
//! the last day of the share's term. The dataset's **share type** (GD21 Art.12; GD18
//! Art.18), as its catalog entry records it, decides what happens:
//!
//! - *unconditional* (无条件共享): granted at once by the platform;
//! - *conditional* (有条件共享): the owning department approves or refuses it
//!   ([`Sharing::decide`]) within [`SHARE_ANSWER_WORKING_DAYS`] working days (GD18
//!   Art.19; GD21 Art.23 names 5 for applications in general, and pdx applies the
//!   period of the measures written for government data sharing), a refusal with a
//!   reason. A decision after the deadline is accepted, marked late, and shows on the
//!   compliance report, as does a request still unanswered past it
//!   ([`crate::compliance`]);
//! - *not shared* (不予共享): refused at once, the refusal carrying the legal basis the
//!   catalog records for not sharing (GD21 Art.12–13: a not-shared type must state one;
//!   should an entry have none, the refusal names the rule instead,
//!   [`NOT_SHARED_REFUSAL`]).
//!
//! Every request and every decision is a `DepartmentShare` ledger entry (`event`
//! `requested`, `granted`, `refused`, `revoked`, `access`) that both departments may read,
//! written in the same transaction as the row: a refused step leaves nothing behind.
//!
//! **Shared access.** While a share is granted and within its term, the requesting
//! department downloads the certified, de-identified version files of the dataset
//! ([`Sharing::download`]) — never the raw upload: the file is the one the version's
//! asset certificate names, and its hash is checked against it before it is served.
//! Each download is an `access` entry with the version, the bytes and their hash (GD18
//! Art.28: traceable logs), and it carries the share's purpose, so every use on record
//! is tied to the purpose the share was granted for (GD18 Art.16). What a department
//! does with the rows afterwards is beyond what a platform can check; the entries are
//! what a supervisor audits. A share ends by itself at 00:00 UTC after its last day,
//! and its owner may revoke it earlier with a reason ([`Sharing::revoke`]); either way
//! downloads stop at once. The providing department downloads nothing here (it holds
//! its data already).
//!
//! **Share type, not open attribute.** The open attribute (SD22 Art.8) governs what is
//! opened to society — developers, through grants and the sandbox — and not-open data
//! (不予开放) stays out of developers' reach on every path
//! ([`crate::catalog::Dataset::reachable_by_developers`]). Sharing between government
//! departments for their duties is a different channel with its own classification:
//! GD18 Art.18 and GD21 Art.12 make the share type decide it. So a not-open dataset can
//! be shared unconditionally with another department, and an unconditionally open one
//! may be not shared; this module reads the share type only, and only provider
//! organisations (departments) reach it. What every share keeps from the open-data
//! rules: only de-identified, certified files leave.
//!
//! **What cannot be requested.** One's own dataset (422: a department holds it); an
//! entry the data authority has not published (it is in nobody's catalog but its
//! provider's, so another department gets "not found", as on every catalog read); one
//! its provider destroyed (409, [`crate::catalog::Dataset::not_destroyed`]: its data is
//! gone, GD21 Art.40). A department has at most one pending request and one active
//! share per dataset (409; a unique index settles a race). A share granted earlier
//! serves nothing once its dataset or the version asked for is destroyed (409), or once
//! the dataset is made not shared (403).
//!
//! **Who reads a share.** Both departments, the data authority and supervisors; any
//! other organisation gets "not found". Only the owner decides and revokes (the
//! requester is refused with 403: it sees the share, so hiding it would be pointless),
//! and only the requester downloads.
//!
//! Every error message here is safe to show: none echoes a value the caller sent.

use pdx_ids::{DatasetId, KeyId, OrgId, ShareRequestId};
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::DepartmentShare as ShareEntry;
use pdx_ledger::{Actor, Hash32};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::catalog::{CatalogReader, CatalogStatus, Dataset, ShareType};
use crate::compliance::Lateness;
use crate::lifecycle::MAX_REASON_CHARS;
use crate::store::{self, is_unique_violation, opt_u64, to_i64, where_clause};
use crate::workdays::{day_of_ms, end_ms_of, iso_date, iso_day_of_ms, parse_day};
use crate::{Result, SandboxError, actor_key, actor_org, checked_text};

crate::service! {
    /// Data sharing between government departments.
    Sharing
}

/// The owning department's answer period for a conditional share, in working days
/// (GD18 Art.19).
pub const SHARE_ANSWER_WORKING_DAYS: u32 = 10;

/// The longest term of a share, in days from today (pdx's bound, the same three years
/// as a grant's: GD18 sets none).
pub const MAX_SHARE_TERM_DAYS: i64 = 1096;

/// The refusal of a request for a not-shared dataset whose catalog entry records no
/// legal basis (the catalog requires one, GD21 Art.12, so this is for entries made
/// before it did).
pub const NOT_SHARED_REFUSAL: &str = "the dataset's share type is not shared (不予共享): it \
    is not shared with other departments, and a not-shared type must state its legal basis \
    in the catalog (GD21 Art.12-13; GD18 Art.18)";

/// Where a share request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ShareStatus {
    /// Waiting for the owning department (conditional share type).
    Pending,
    /// Granted and within its term: the requester may download.
    Granted,
    /// Refused, with a reason (by the owner, or at once under a not-shared type).
    Refused,
    /// Revoked by the owner before its term ended.
    Revoked,
    /// Granted, but its term has ended.
    Expired,
}

impl ShareStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareStatus::Pending => "pending",
            ShareStatus::Granted => "granted",
            ShareStatus::Refused => "refused",
            ShareStatus::Revoked => "revoked",
            ShareStatus::Expired => "expired",
        }
    }

    /// The status of a stored row at `now_ms`: a granted share past its end has
    /// expired (computed on every read, so no timer is needed for it to stop).
    fn of_row(stored: &str, ends_ms: i64, now_ms: i64) -> Result<ShareStatus> {
        match stored {
            "pending" => Ok(ShareStatus::Pending),
            "granted" if now_ms < ends_ms => Ok(ShareStatus::Granted),
            "granted" => Ok(ShareStatus::Expired),
            "refused" => Ok(ShareStatus::Refused),
            "revoked" => Ok(ShareStatus::Revoked),
            _ => Err(SandboxError::Internal(
                "a stored share status is unknown".into(),
            )),
        }
    }
}

/// What a providing department sends to ask for another provider's dataset.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewShareRequest {
    /// The dataset asked for.
    pub dataset_id: DatasetId,
    /// The requesting department's duty and the purpose the data serves (1 to 4,000
    /// characters).
    pub purpose: String,
    /// The legal basis of that duty (1 to 4,000 characters).
    pub duty_legal_basis: String,
    /// The last day of the share's term, `YYYY-MM-DD` (UTC): today at the earliest, at
    /// most 1,096 days ahead.
    pub until: String,
}

/// The owning department's decision on a conditional share request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareDecision {
    /// Approve (true) or refuse (false).
    pub approve: bool,
    /// Why (required for a refusal, 1 to 4,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The owning department's revocation of a share.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareRevocation {
    /// Why the share ends early (1 to 4,000 characters).
    pub reason: String,
}

/// A share request, as kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareRequest {
    /// The request's id.
    pub id: ShareRequestId,
    /// The dataset.
    pub dataset_id: DatasetId,
    /// The department that provides the dataset.
    pub owner_org: OrgId,
    /// The department that asked.
    pub requester_org: OrgId,
    /// The API key that asked.
    pub requester_key: KeyId,
    /// The dataset's share type when asked, which decided the procedure.
    pub share_type: ShareType,
    /// The requesting department's duty and purpose.
    pub purpose: String,
    /// The legal basis of that duty.
    pub duty_legal_basis: String,
    /// The last day of the term, `YYYY-MM-DD` (UTC).
    pub until: String,
    /// When the term ends, ms since epoch (00:00 UTC of the day after `until`).
    pub ends_ms: i64,
    /// Pending, granted, refused, revoked or expired.
    pub status: ShareStatus,
    /// True while the requester may download (granted and within its term).
    pub active: bool,
    /// Asked, ms since epoch.
    pub requested_ms: i64,
    /// Ledger seq of its `requested` entry.
    pub request_seq: u64,
    /// The owner's answer deadline, `YYYY-MM-DD` (conditional shares only).
    pub answer_deadline: Option<String>,
    /// True while it is pending past its deadline.
    pub overdue: bool,
    /// True when the platform decided it at once under its share type.
    pub automatic: bool,
    /// Decided, ms since epoch.
    pub decided_ms: Option<i64>,
    /// The owner's organisation that decided (absent for an automatic decision).
    pub decided_by_org: Option<OrgId>,
    /// The owner's API key that decided.
    pub decided_by_key: Option<KeyId>,
    /// Why it was refused.
    pub decision_reason: Option<String>,
    /// For a refusal under a not-shared type: the catalog's legal basis for not sharing.
    pub dataset_legal_basis: Option<String>,
    /// True when the owner decided after the deadline.
    pub decision_late: bool,
    /// Ledger seq of the decision's entry.
    pub decision_seq: Option<u64>,
    /// Revoked, ms since epoch.
    pub revoked_ms: Option<i64>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
    /// Ledger seq of its `revoked` entry.
    pub revoke_seq: Option<u64>,
    /// Downloads made under it (each an `access` ledger entry).
    pub downloads: u64,
}

/// Filters of the share-request list.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ShareQuery {
    /// Only requests in this status (`pending` is an owner's queue).
    pub status: Option<ShareStatus>,
    /// Only requests for this dataset.
    pub dataset_id: Option<DatasetId>,
}

/// A de-identified version file served under a share, with its `access` entry.
#[derive(Clone, Debug)]
pub struct SharedDownload {
    /// The version served.
    pub version: u64,
    /// The certified Parquet bytes.
    pub bytes: Vec<u8>,
    /// Hex BLAKE3 of the bytes (the version's certified content hash).
    pub content_hash: String,
    /// Ledger seq of the `access` entry.
    pub access_seq: u64,
}

/// A conditional share request its owner decided after the deadline, or has not
/// decided by it (GD18 Art.19).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LateShareDecision {
    /// The share request.
    pub share_id: ShareRequestId,
    /// The dataset.
    pub dataset_id: DatasetId,
    /// The department that had to answer.
    pub owner_org: OrgId,
    /// The department that asked.
    pub requester_org: OrgId,
    /// Answer deadline, `YYYY-MM-DD`.
    pub answer_deadline: String,
    /// Pending or answered late.
    pub state: Lateness,
    /// Day of the decision, if decided.
    pub answered_on: Option<String>,
    /// `granted` or `refused`, if decided.
    pub decision: Option<String>,
    /// Ledger seq of the `requested` entry.
    pub request_seq: u64,
}

/// The refusal recorded for a request of a not-shared dataset: the catalog's legal
/// basis for not sharing it, or the rule when the entry records none.
fn not_shared_reason(dataset: &Dataset) -> (String, Option<String>) {
    let basis = dataset.meta.legal_basis.trim();
    if basis.is_empty() {
        return (NOT_SHARED_REFUSAL.to_string(), None);
    }
    (
        format!(
            "the dataset's share type is not shared (不予共享): it is not shared with other \
             departments, on the legal basis its catalog entry records: {basis} (GD21 \
             Art.12-13; GD18 Art.18)"
        ),
        Some(basis.to_string()),
    )
}

const SHARE_COLUMNS: &str = "s.id, s.dataset_id, s.owner_org, s.requester_org, \
    s.requester_key, s.share_type, s.purpose, s.duty_legal_basis, s.until_day, s.ends_ms, \
    s.requested_ms, s.request_seq, s.status, s.answer_deadline, s.automatic, s.decided_ms, \
    s.decider_org, s.decider_key, s.decision_reason, s.dataset_legal_basis, \
    s.decision_late, s.decision_seq, s.revoked_ms, s.revoke_reason, s.revoke_seq, \
    (SELECT COUNT(*) FROM share_accesses a WHERE a.share_id = s.id) AS downloads";

fn share_from_row(row: &AnyRow, now: i64, today: &str) -> Result<ShareRequest> {
    let ends_ms: i64 = row.try_get("ends_ms")?;
    let status = ShareStatus::of_row(&row.try_get::<String, _>("status")?, ends_ms, now)?;
    let answer_deadline: Option<String> = row.try_get("answer_deadline")?;
    let overdue = status == ShareStatus::Pending
        && answer_deadline
            .as_deref()
            .is_some_and(|deadline| today > deadline);
    Ok(ShareRequest {
        id: row.try_get("id")?,
        dataset_id: row.try_get("dataset_id")?,
        owner_org: row.try_get("owner_org")?,
        requester_org: row.try_get("requester_org")?,
        requester_key: row.try_get("requester_key")?,
        share_type: ShareType::parse(&row.try_get::<String, _>("share_type")?)?,
        purpose: row.try_get("purpose")?,
        duty_legal_basis: row.try_get("duty_legal_basis")?,
        until: row.try_get("until_day")?,
        ends_ms,
        status,
        active: status == ShareStatus::Granted,
        requested_ms: row.try_get("requested_ms")?,
        request_seq: opt_u64(row, "request_seq")?.unwrap_or(0),
        answer_deadline,
        overdue,
        automatic: row.try_get::<i64, _>("automatic")? != 0,
        decided_ms: row.try_get("decided_ms")?,
        decided_by_org: row.try_get("decider_org")?,
        decided_by_key: row.try_get("decider_key")?,
        decision_reason: row.try_get("decision_reason")?,
        dataset_legal_basis: row.try_get("dataset_legal_basis")?,
        decision_late: row.try_get::<i64, _>("decision_late")? != 0,
        decision_seq: opt_u64(row, "decision_seq")?,
        revoked_ms: row.try_get("revoked_ms")?,
        revoke_reason: row.try_get("revoke_reason")?,
        revoke_seq: opt_u64(row, "revoke_seq")?,
        downloads: opt_u64(row, "downloads")?.unwrap_or(0),
    })
}

/// Whether `reader` may see `share`: both departments, the data authority and
/// supervisors.
fn sees(reader: CatalogReader<'_>, share: &ShareRequest) -> bool {
    match reader {
        CatalogReader::Overseer => true,
        CatalogReader::Org(org) => share.requester_org == *org || share.owner_org == *org,
        // The public (no key) sees no department's share requests.
        CatalogReader::Public => false,
    }
}

/// The `DepartmentShare` entry of `event` for `share` (the request's own fields; the
/// caller fills in what the event adds).
fn entry_of(share: &ShareRequest, event: &str) -> ShareEntry {
    ShareEntry {
        event: event.into(),
        share_id: share.id.to_string(),
        dataset_id: share.dataset_id.to_string(),
        requester_org: share.requester_org.to_string(),
        owner_org: share.owner_org.to_string(),
        share_type: share.share_type.as_str(),
        purpose: share.purpose.clone(),
        duty_legal_basis: share.duty_legal_basis.clone(),
        until: share.until.clone(),
        answer_deadline: share.answer_deadline.clone(),
        reason: None,
        dataset_legal_basis: None,
        late: false,
        automatic: false,
        request_seq: Some(share.request_seq),
        version: None,
        bytes: None,
        content_hash: None,
    }
}

impl Sharing {
    /// One share request, whoever may see it.
    async fn load(&self, id: &ShareRequestId) -> Result<Option<ShareRequest>> {
        let sql = format!("SELECT {SHARE_COLUMNS} FROM share_requests s WHERE s.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?;
        let now = now_ms();
        let today = iso_day_of_ms(now);
        row.as_ref()
            .map(|row| share_from_row(row, now, &today))
            .transpose()
    }

    async fn reload(&self, id: &ShareRequestId) -> Result<ShareRequest> {
        self.load(id)
            .await?
            .ok_or_else(|| SandboxError::Internal("a share request vanished".into()))
    }

    /// The share `id` as its owning department (`org`) acts on it: the requesting
    /// department is refused (it sees the share, but only the owner acts on it), any
    /// other is told it does not exist.
    async fn owned_share(&self, id: &ShareRequestId, org: &OrgId) -> Result<ShareRequest> {
        let share = self
            .load(id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such share request".into()))?;
        if share.owner_org == *org {
            Ok(share)
        } else if share.requester_org == *org {
            Err(SandboxError::Forbidden(
                "only the department that provides the dataset decides on or revokes a share"
                    .into(),
            ))
        } else {
            Err(SandboxError::NotFound("no such share request".into()))
        }
    }

    /// A providing department (`actor`) asks for another provider's published dataset
    /// for its own duty. The dataset's share type decides: unconditional is granted at
    /// once, not shared is refused at once with the catalog's legal basis, conditional
    /// waits for the owner ([`Sharing::decide`]) with a deadline of
    /// [`SHARE_ANSWER_WORKING_DAYS`] working days. The request and any decision are
    /// `DepartmentShare` entries, written with the row in one transaction.
    ///
    /// One's own dataset and bad input are invalid; a dataset the department cannot see
    /// (absent, or unpublished) is "not found"; one not published, and a second pending
    /// request or active share of the same department for the dataset, are conflicts.
    pub async fn request(&self, actor: &Actor, request: NewShareRequest) -> Result<ShareRequest> {
        let purpose = checked_text("purpose", &request.purpose, MAX_REASON_CHARS)?;
        let duty_legal_basis = checked_text(
            "duty_legal_basis",
            &request.duty_legal_basis,
            MAX_REASON_CHARS,
        )?;
        let until = parse_day(&request.until)
            .ok_or_else(|| SandboxError::Invalid("`until` is a date, YYYY-MM-DD".into()))?;
        let now = now_ms();
        let today = day_of_ms(now);
        if until < today {
            return Err(SandboxError::Invalid(
                "`until` is in the past: a share lasts through today at least".into(),
            ));
        }
        if until > today.saturating_add(time::Duration::days(MAX_SHARE_TERM_DAYS)) {
            return Err(SandboxError::Invalid(format!(
                "`until` is more than {MAX_SHARE_TERM_DAYS} days ahead"
            )));
        }
        let ends_ms = end_ms_of(until)?;
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let dataset = self
            .catalog()
            .dataset(&request.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        if dataset.provider_org == org {
            return Err(SandboxError::Invalid(
                "a department does not request its own dataset: it holds it already".into(),
            ));
        }
        if !CatalogReader::Org(&org).sees(&dataset) {
            return Err(SandboxError::NotFound("no such dataset".into()));
        }
        // A destroyed dataset's data is gone (GD21 Art.40): 409, as on every path.
        dataset.not_destroyed()?;
        if dataset.status != CatalogStatus::Published {
            return Err(SandboxError::Conflict(
                "the dataset's catalog entry is not published; only published entries are \
                 shared"
                    .into(),
            ));
        }
        let busy = || {
            SandboxError::Conflict(
                "this department has a pending request or an active share for this dataset \
                 already"
                    .into(),
            )
        };
        let share_type = dataset.meta.share_type;
        let answer_deadline = match share_type {
            ShareType::Conditional => Some(iso_date(
                self.calendar()
                    .deadline_from_ms(now, SHARE_ANSWER_WORKING_DAYS),
            )),
            ShareType::Unconditional | ShareType::NotShared => None,
        };
        // What the share type decides at once: (status, refusal reason, legal basis).
        let (status, refusal, dataset_legal_basis) = match share_type {
            ShareType::Unconditional => ("granted", None, None),
            ShareType::Conditional => ("pending", None, None),
            ShareType::NotShared => {
                let (reason, basis) = not_shared_reason(&dataset);
                ("refused", Some(reason), basis)
            }
        };
        let decided_at_once = status != "pending";
        let id = ShareRequestId::random();
        let share_type_wire = share_type.as_str();
        let requested = ShareEntry {
            event: "requested".into(),
            share_id: id.to_string(),
            dataset_id: dataset.id.to_string(),
            requester_org: org.to_string(),
            owner_org: dataset.provider_org.to_string(),
            share_type: share_type_wire.clone(),
            purpose: purpose.to_string(),
            duty_legal_basis: duty_legal_basis.to_string(),
            until: iso_date(until),
            answer_deadline: answer_deadline.clone(),
            reason: None,
            dataset_legal_basis: None,
            late: false,
            automatic: false,
            request_seq: None,
            version: None,
            bytes: None,
            content_hash: None,
        };
        let mut tx = self.db().begin_write().await?;
        // Checked inside the write transaction, which serialises writers on SQLite; on
        // PostgreSQL the partial unique index settles a race between pending requests.
        let open = sqlx::query(
            "SELECT COUNT(*) AS n FROM share_requests WHERE dataset_id = $1 \
             AND requester_org = $2 AND (status = 'pending' OR (status = 'granted' AND ends_ms > $3))",
        )
        .bind(dataset.id.clone())
        .bind(org.clone())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("n")?;
        if open > 0 {
            return Err(busy());
        }
        let request_seq = self.ledger().append(&mut tx, actor, &requested).await?.seq;
        let decision_seq = if decided_at_once {
            // The platform decides under the catalog's share type, not a person.
            let decision = ShareEntry {
                event: status.into(),
                reason: refusal.clone(),
                dataset_legal_basis: dataset_legal_basis.clone(),
                automatic: true,
                request_seq: Some(request_seq),
                ..requested.clone()
            };
            let seq = self
                .ledger()
                .append(&mut tx, &Actor::system(), &decision)
                .await?
                .seq;
            Some(to_i64(seq, "a number")?)
        } else {
            None
        };
        let until_day = iso_date(until);
        let inserted = store::sharing::insert_share(
            &mut *tx,
            &store::sharing::NewShareRow {
                id: &id,
                dataset_id: &dataset.id,
                owner_org: &dataset.provider_org,
                requester_org: &org,
                requester_key: &key,
                share_type: &share_type_wire,
                purpose,
                duty_legal_basis,
                until_day: &until_day,
                ends_ms,
                requested_ms: now,
                request_seq: to_i64(request_seq, "a number")?,
                status,
                answer_deadline: answer_deadline.as_deref(),
                automatic: i64::from(decided_at_once),
                decided_ms: decided_at_once.then_some(now),
                decision_reason: refusal.as_deref(),
                dataset_legal_basis: dataset_legal_basis.as_deref(),
                decision_seq,
            },
        )
        .await;
        match inserted {
            Ok(()) => {}
            Err(SandboxError::Db(e)) if is_unique_violation(&e) => return Err(busy()),
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        tracing::info!(
            share = %id,
            dataset = %dataset.id,
            share_type = %share_type_wire,
            status,
            "department share requested"
        );
        self.reload(&id).await
    }

    /// The owning department (`actor`) approves or refuses a pending conditional share
    /// request; a refusal needs a reason. A decision after the deadline is accepted and
    /// marked late. A request already decided (also one the share type decided at once)
    /// is a conflict, as is approving one whose dataset is no longer published or no
    /// longer shared, or whose term has ended; the requester is forbidden; anyone else
    /// gets "not found".
    pub async fn decide(
        &self,
        actor: &Actor,
        id: &ShareRequestId,
        decision: ShareDecision,
    ) -> Result<ShareRequest> {
        let reason = decision
            .reason
            .as_deref()
            .map(|r| checked_text("reason", r, MAX_REASON_CHARS))
            .transpose()?;
        if !decision.approve && reason.is_none() {
            return Err(SandboxError::Invalid(
                "refusing a share needs a `reason` for the requesting department".into(),
            ));
        }
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let share = self.owned_share(id, &org).await?;
        if share.status != ShareStatus::Pending {
            return Err(SandboxError::Conflict(if share.automatic {
                format!(
                    "the request was {} at once under the dataset's share type ({}); there \
                     is nothing to decide",
                    if share.status == ShareStatus::Refused {
                        "refused"
                    } else {
                        "granted"
                    },
                    share.share_type.as_str()
                )
            } else {
                format!("the request is {} already", share.status.as_str())
            }));
        }
        let now = now_ms();
        if decision.approve {
            let dataset = self
                .catalog()
                .dataset(&share.dataset_id)
                .await?
                .ok_or_else(|| {
                    SandboxError::Internal("a share request's dataset is gone".into())
                })?;
            dataset.not_destroyed()?;
            if dataset.status != CatalogStatus::Published {
                return Err(SandboxError::Conflict(
                    "the dataset's catalog entry is no longer published; refuse the request".into(),
                ));
            }
            if dataset.meta.share_type == ShareType::NotShared {
                return Err(SandboxError::Conflict(
                    "the dataset is not shared (不予共享) now; refuse the request".into(),
                ));
            }
            if now >= share.ends_ms {
                return Err(SandboxError::Conflict(
                    "the requested term has ended; refuse the request, and the department asks \
                     again"
                        .into(),
                ));
            }
        }
        let late = share
            .answer_deadline
            .as_deref()
            .is_some_and(|deadline| iso_day_of_ms(now).as_str() > deadline);
        let status = if decision.approve {
            "granted"
        } else {
            "refused"
        };
        let entry = ShareEntry {
            reason: reason.map(str::to_string),
            late,
            ..entry_of(&share, status)
        };
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let decided = store::sharing::decide_share(
            &mut *tx,
            &store::sharing::ShareDecisionRow {
                id,
                status,
                decider_org: &org,
                decider_key: &key,
                decided_ms: now,
                decision_reason: reason,
                decision_late: i64::from(late),
                decision_seq: to_i64(appended.seq, "a number")?,
            },
        )
        .await?;
        if decided != 1 {
            return Err(SandboxError::Conflict(
                "the request was decided concurrently".into(),
            ));
        }
        tx.commit().await?;
        tracing::info!(share = %id, status, late, "department share decided");
        self.reload(id).await
    }

    /// The owning department (`actor`) ends a granted share before its term, with a
    /// reason; downloads stop at once. A share that is not active (pending, refused,
    /// revoked, expired) is a conflict; the requester is forbidden; anyone else gets
    /// "not found".
    pub async fn revoke(
        &self,
        actor: &Actor,
        id: &ShareRequestId,
        revocation: ShareRevocation,
    ) -> Result<ShareRequest> {
        let reason = checked_text("reason", &revocation.reason, MAX_REASON_CHARS)?;
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let share = self.owned_share(id, &org).await?;
        if share.status != ShareStatus::Granted {
            return Err(SandboxError::Conflict(format!(
                "only an active share is revoked, and this one is {}",
                share.status.as_str()
            )));
        }
        let now = now_ms();
        let entry = ShareEntry {
            reason: Some(reason.to_string()),
            ..entry_of(&share, "revoked")
        };
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let revoked = store::sharing::revoke_share(
            &mut *tx,
            &store::sharing::RevocationRow {
                id,
                revoked_ms: now,
                revoker_key: &key,
                revoke_reason: reason,
                revoke_seq: to_i64(appended.seq, "a number")?,
            },
        )
        .await?;
        if revoked != 1 {
            return Err(SandboxError::Conflict(
                "the share ended or was revoked concurrently".into(),
            ));
        }
        tx.commit().await?;
        tracing::info!(share = %id, "department share revoked");
        self.reload(id).await
    }

    /// One share request as `reader` may see it: both departments
    /// ([`CatalogReader::Org`]), the data authority and supervisors
    /// ([`CatalogReader::Overseer`]); otherwise "not found".
    pub async fn share(
        &self,
        id: &ShareRequestId,
        reader: CatalogReader<'_>,
    ) -> Result<ShareRequest> {
        self.load(id)
            .await?
            .filter(|share| sees(reader, share))
            .ok_or_else(|| SandboxError::NotFound("no such share request".into()))
    }

    /// Share requests as `reader` may see them, newest first: a department's own (as
    /// requester or as owner), every one for the data authority and supervisors;
    /// filtered by status (as of now) and dataset.
    pub async fn shares(
        &self,
        query: &ShareQuery,
        reader: CatalogReader<'_>,
    ) -> Result<Vec<ShareRequest>> {
        let mut filters = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(dataset) = &query.dataset_id {
            binds.push(dataset.to_string());
            filters.push(format!("s.dataset_id = ${}", binds.len()));
        }
        match reader {
            CatalogReader::Overseer => {}
            CatalogReader::Org(org) => {
                binds.push(org.to_string());
                let n = binds.len();
                filters.push(format!("(s.requester_org = ${n} OR s.owner_org = ${n})"));
            }
            // The public (no key) sees no department's share requests.
            CatalogReader::Public => return Ok(Vec::new()),
        }
        let filter = where_clause(&filters);
        let sql = format!(
            "SELECT {SHARE_COLUMNS} FROM share_requests s {filter} \
             ORDER BY s.requested_ms DESC, s.id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b.clone());
        }
        let now = now_ms();
        let today = iso_day_of_ms(now);
        let mut out = Vec::new();
        for row in q.fetch_all(self.db().pool()).await? {
            let share = share_from_row(&row, now, &today)?;
            // Expiry is computed, so the status filter applies after it.
            if query.status.is_none_or(|status| status == share.status) {
                out.push(share);
            }
        }
        Ok(out)
    }

    /// The requesting department (`actor`) downloads a certified, de-identified version
    /// of the shared dataset (`version`, else the latest) while the share is granted
    /// and within its term. The bytes are checked against the version's certified hash,
    /// and an `access` entry records the version, the bytes, their hash and the share's
    /// purpose before anything is served (GD18 Art.16, 28). A share that is not active,
    /// a dataset no longer published or no longer shared, and the owner's own download
    /// are forbidden; any other organisation, and an absent version, get "not found".
    pub async fn download(
        &self,
        actor: &Actor,
        id: &ShareRequestId,
        version: Option<u64>,
    ) -> Result<SharedDownload> {
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let share = self
            .load(id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such share request".into()))?;
        if share.requester_org != org {
            return Err(if share.owner_org == org {
                SandboxError::Forbidden(
                    "only the requesting department downloads under a share; the providing \
                     department holds its data already"
                        .into(),
                )
            } else {
                SandboxError::NotFound("no such share request".into())
            });
        }
        match share.status {
            ShareStatus::Granted => {}
            ShareStatus::Pending => {
                return Err(SandboxError::Forbidden(
                    "the share is not granted yet: the providing department has not decided".into(),
                ));
            }
            ShareStatus::Refused => {
                return Err(SandboxError::Forbidden("the share was refused".into()));
            }
            ShareStatus::Revoked => {
                return Err(SandboxError::Forbidden(
                    "the share was revoked by the providing department".into(),
                ));
            }
            ShareStatus::Expired => {
                return Err(SandboxError::Forbidden(
                    "the share's term has ended; ask for a new share".into(),
                ));
            }
        }
        let dataset = self
            .catalog()
            .dataset(&share.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        dataset.not_destroyed()?;
        if dataset.status != CatalogStatus::Published {
            return Err(SandboxError::Forbidden(
                "the dataset's catalog entry is no longer published".into(),
            ));
        }
        if dataset.meta.share_type == ShareType::NotShared {
            return Err(SandboxError::Forbidden(
                "the dataset is not shared (不予共享) any more".into(),
            ));
        }
        let number = version
            .or(dataset.latest_version)
            .ok_or_else(|| SandboxError::NotFound("the dataset has no certified version".into()))?;
        let certified = self
            .versions()
            .version(&dataset.id, number)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such version".into()))?;
        // A destroyed version is read by nothing (GD21 Art.40; 409).
        crate::destruction::refuse_destroyed(self.db().pool(), &dataset.id, number).await?;
        // The de-identified zone only: the file the version's certificate names.
        let path = self.versions().version_file(&dataset.id, number).await?;
        let bytes = match self.read_zone_file(path).await {
            Ok(bytes) => bytes,
            Err(SandboxError::Seal(pdx_seal::SealError::Io(e)))
                if e.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(SandboxError::NotFound(
                    "the version's file is no longer kept".into(),
                ));
            }
            Err(e) => return Err(e),
        };
        let hash = *blake3::hash(&bytes).as_bytes();
        let content_hash = hex::encode(hash);
        if content_hash != certified.content_hash {
            return Err(SandboxError::Internal(
                "a version file does not match its certified content hash".into(),
            ));
        }
        let size = u64::try_from(bytes.len())
            .map_err(|_| SandboxError::Internal("a file size is out of range".into()))?;
        let entry = ShareEntry {
            version: Some(number),
            bytes: Some(size),
            content_hash: Some(Hash32(hash)),
            ..entry_of(&share, "access")
        };
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::sharing::insert_access(
            &mut *tx,
            &store::sharing::AccessRow {
                access_seq: to_i64(appended.seq, "a number")?,
                share_id: id,
                dataset_id: &dataset.id,
                version: to_i64(number, "a number")?,
                bytes: to_i64(size, "a number")?,
                content_hash: &content_hash,
                accessor_key: &key,
                accessed_ms: now,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(share = %id, dataset = %dataset.id, version = number, bytes = size, "department share download");
        Ok(SharedDownload {
            version: number,
            bytes,
            content_hash,
            access_seq: appended.seq,
        })
    }

    /// Conditional share requests past their answer deadline as of `today`
    /// (`YYYY-MM-DD`): still pending after it, or decided after it (GD18 Art.19). For
    /// the compliance report.
    pub(crate) async fn late_decisions(&self, today: &str) -> Result<Vec<LateShareDecision>> {
        // Dates are compared in Rust: text collation differs between the backends.
        let rows = sqlx::query(
            "SELECT id, dataset_id, owner_org, requester_org, status, answer_deadline, \
             decided_ms, request_seq FROM share_requests \
             WHERE answer_deadline IS NOT NULL AND (status = 'pending' OR decision_late = 1) \
             ORDER BY answer_deadline, id",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let deadline: Option<String> = row.try_get("answer_deadline")?;
            let Some(deadline) = deadline else { continue };
            let status: String = row.try_get("status")?;
            let decided_ms: Option<i64> = row.try_get("decided_ms")?;
            let (state, decision) = match status.as_str() {
                "pending" if today > deadline.as_str() => (Lateness::Pending, None),
                "pending" => continue,
                // A revoked share was granted first.
                "refused" => (Lateness::AnsweredLate, Some("refused".to_string())),
                _ => (Lateness::AnsweredLate, Some("granted".to_string())),
            };
            out.push(LateShareDecision {
                share_id: row.try_get("id")?,
                dataset_id: row.try_get("dataset_id")?,
                owner_org: row.try_get("owner_org")?,
                requester_org: row.try_get("requester_org")?,
                answer_deadline: deadline,
                state,
                answered_on: decided_ms.map(iso_day_of_ms),
                decision,
                request_seq: opt_u64(&row, "request_seq")?.unwrap_or(0),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_ends_at_midnight_utc_after_its_last_day() {
        let until = parse_day("2026-12-31").unwrap();
        let ends = end_ms_of(until).unwrap();
        assert_eq!(iso_date(day_of_ms(ends)), "2027-01-01");
        assert_eq!(iso_date(day_of_ms(ends - 1)), "2026-12-31");
        assert!(parse_day("2026-12-1").is_none());
    }

    #[test]
    fn a_granted_share_expires_at_its_end_and_other_states_stay() {
        let ends = 1_000;
        assert_eq!(
            ShareStatus::of_row("granted", ends, 999).unwrap(),
            ShareStatus::Granted
        );
        assert_eq!(
            ShareStatus::of_row("granted", ends, 1_000).unwrap(),
            ShareStatus::Expired
        );
        assert_eq!(
            ShareStatus::of_row("revoked", ends, 10).unwrap(),
            ShareStatus::Revoked
        );
        assert_eq!(
            ShareStatus::of_row("pending", ends, 5_000).unwrap(),
            ShareStatus::Pending
        );
        assert!(ShareStatus::of_row("expired", ends, 10).is_err());
    }

    #[test]
    fn request_bodies_need_every_field() {
        let ok: NewShareRequest = serde_json::from_value(serde_json::json!({
            "dataset_id": "ds_0123456789abcdef", "purpose": "p",
            "duty_legal_basis": "b", "until": "2026-12-31"
        }))
        .unwrap();
        assert_eq!(ok.until, "2026-12-31");
        assert!(
            serde_json::from_value::<NewShareRequest>(serde_json::json!({
                "dataset_id": "ds_0123456789abcdef", "purpose": "p", "until": "2026-12-31"
            }))
            .is_err()
        );
        assert!(
            serde_json::from_value::<NewShareRequest>(serde_json::json!({
                "dataset_id": "ds_0123456789abcdef", "purpose": "p",
                "duty_legal_basis": "b", "until": "2026-12-31", "status": "granted"
            }))
            .is_err()
        );
    }
}
