//! A published dataset's open attribute after publication: changes asked for by its
//! provider and approved by the data authority (SD22 Art.8, 10, 20), and the
//! authority's time-bounded relaxations in an emergency (XT Art.23(7)).
//!
//! **Changes.** The provider asks for a new attribute with a reason and a legal basis
//! ([`OpenAttributes::request_change`]); the request is pending until the data authority
//! (数据主管部门) approves or refuses it ([`OpenAttributes::decide_change`]). The
//! authority does not decide its own organisation's requests, and a dataset has at most
//! one pending request (a unique index settles a race). An approval changes the
//! catalog's attribute as a new catalog revision and writes an `OpenAttributeChange`
//! ledger entry naming the requester (organisation and key), the approver, both
//! attributes, the reason and the legal basis, all in one transaction; a refusal (with a
//! reason) changes nothing and writes no entry. Which changes need the authority:
//!
//! - *stricter* (unconditional → conditional → not open): SD22 Art.8 requires the data
//!   authority's approval.
//! - *less strict, conditional → unconditional*: our reading. SD22 Art.8 and XT leave
//!   opening data further to the provider under the catalog, and the catalog entry is
//!   the authority's to publish (GD21 Art.10–11; SD22 Art.10); an unconditional
//!   attribute lets developers download de-identified rows, which cannot be taken
//!   back. So this change is a catalog change like any other and goes through the
//!   authority too: every effected change has an approver.
//! - *from not open*: refused (409). Not-open data is opened only as a de-identified
//!   derivative registered as a dataset of its own, with its own certificate (SD22
//!   Art.8; GD21 Art.32; [`NOT_OPEN_CHANGE_REFUSAL`]).
//!
//! A dataset that becomes not open has its pending and approved grants suspended with
//! a reason ([`crate::grants::GrantStatus::Suspended`], a `GrantDecision` entry each), in
//! the approval's transaction. A suspended grant stays suspended: if the data is opened
//! again through a derivative, that derivative has grants of its own.
//!
//! **Emergency relaxations.** The data authority relaxes a published dataset's
//! attribute (any less strict one: conditional → unconditional, not open → conditional
//! or unconditional) for a stated emergency until an end date, at most
//! [`MAX_RELAXATION_DAYS`] ahead ([`OpenAttributes::relax`]; XT Art.23(7) says
//! "temporarily" and sets no bound, so the bound is pdx's). It is in force through the
//! `until` day (UTC) and ends at 00:00 UTC of the next. While it lasts,
//! [`crate::catalog::Dataset::effective_open_attribute`] is the relaxed attribute and
//! every access rule reads it; that field is computed on every read from the end, so
//! the catalog's attribute applies again at the end whatever the timer does. The end is
//! then recorded by [`OpenAttributes::end_due_relaxations`], which the server runs on
//! start and periodically: an `EmergencyRelaxation` entry (`ended`; the start is one
//! too, `started`), and, when the dataset is not open again, the suspension of the
//! grants filed or approved during the relaxation. One relaxation at a time per
//! dataset; a change request waits until it ends (409).
//!
//! **Level L4** data is never made unconditionally open here either: a change request
//! to `unconditional`, its approval and an emergency relaxation to `unconditional` of an
//! L4 dataset are refused (422; [`crate::classification`]).
//!
//! Every error message here is safe to show: none echoes a value the caller sent.

use pdx_ids::{AttributeChangeId, DatasetId, GrantId, KeyId, OrgId, RelaxationId};
use pdx_ledger::Actor;
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::{
    EmergencyRelaxation as RelaxationEntry, OpenAttributeChange as ChangeEntry,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::catalog::{
    CatalogReader, CatalogStatus, Dataset, EncodedMeta, OpenAttribute, metadata_hash,
};
use crate::lifecycle::MAX_REASON_CHARS;
use crate::store::{self, is_unique_violation, opt_u64, to_i64, where_clause};
use crate::workdays::{day_of_ms, end_ms_of, iso_date, parse_day};
use crate::{Result, SandboxError, actor_key, actor_org, checked_text};

crate::service! {
    /// Open-attribute changes and emergency relaxations.
    OpenAttributes
}

/// The longest emergency relaxation, in days from today (pdx's bound).
pub const MAX_RELAXATION_DAYS: i64 = 90;

/// The refusal of a change away from not open.
pub const NOT_OPEN_CHANGE_REFUSAL: &str = "a not-open dataset (不予开放) is not opened by \
    changing its open attribute: it is opened only as a de-identified derivative, \
    registered as a dataset of its own (POST /v1/datasets) whose versions are \
    de-identified and certified, and published by the data authority (SD22 Art.8; GD21 \
    Art.32)";

/// Where a change request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Waiting for the data authority.
    Pending,
    /// Approved and in effect.
    Approved,
    /// Refused, with a reason; nothing changed.
    Refused,
}

impl ChangeStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Pending => "pending",
            ChangeStatus::Approved => "approved",
            ChangeStatus::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<ChangeStatus> {
        match s {
            "pending" => Ok(ChangeStatus::Pending),
            "approved" => Ok(ChangeStatus::Approved),
            "refused" => Ok(ChangeStatus::Refused),
            _ => Err(SandboxError::Internal(
                "a stored change status is unknown".into(),
            )),
        }
    }
}

/// What a provider sends to ask for a change of its dataset's open attribute.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    /// The attribute asked for.
    pub to: OpenAttribute,
    /// Why (1 to 4,000 characters).
    pub reason: String,
    /// The legal basis of the change (1 to 4,000 characters).
    pub legal_basis: String,
}

/// The data authority's decision on a change request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeDecision {
    /// Approve (true) or refuse (false).
    pub approve: bool,
    /// Why (required for a refusal, 1 to 4,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A change request, as kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttributeChange {
    /// The request's id.
    pub id: AttributeChangeId,
    /// The dataset.
    pub dataset_id: DatasetId,
    /// The providing organisation.
    pub provider_org: OrgId,
    /// The catalog's attribute when asked.
    pub from: OpenAttribute,
    /// The attribute asked for.
    pub to: OpenAttribute,
    /// True when the change makes the attribute stricter.
    pub stricter: bool,
    /// Why the provider asked.
    pub reason: String,
    /// The legal basis the provider named.
    pub legal_basis: String,
    /// Pending, approved or refused.
    pub status: ChangeStatus,
    /// The organisation that asked.
    pub requester_org: OrgId,
    /// The API key that asked.
    pub requester_key: KeyId,
    /// Asked, ms since epoch.
    pub requested_ms: i64,
    /// The data authority's organisation that decided, once decided.
    pub decided_by_org: Option<OrgId>,
    /// The data authority's API key that decided.
    pub decided_by_key: Option<KeyId>,
    /// Decided, ms since epoch.
    pub decided_ms: Option<i64>,
    /// The authority's reason (required for a refusal).
    pub decision_reason: Option<String>,
    /// The catalog revision an approval made.
    pub revision: Option<u64>,
    /// Ledger seq of an approval's `OpenAttributeChange` entry.
    pub ledger_seq: Option<u64>,
    /// Grants suspended because the approval made the dataset not open.
    pub suspended_grants: Vec<GrantId>,
}

/// Filters of the change-request list.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ChangeQuery {
    /// Only requests in this status (`pending` is the data authority's queue).
    pub status: Option<ChangeStatus>,
    /// Only requests on this dataset.
    pub dataset_id: Option<DatasetId>,
}

/// What the data authority sends to relax a dataset's open attribute in an emergency.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RelaxationRequest {
    /// The attribute in force while the relaxation lasts (less strict than the
    /// catalog's).
    pub to: OpenAttribute,
    /// The emergency (1 to 4,000 characters).
    pub emergency: String,
    /// The last day in force, `YYYY-MM-DD` (UTC): today at the earliest, at most 90 days
    /// ahead.
    pub until: String,
}

/// An emergency relaxation, as kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Relaxation {
    /// The relaxation's id.
    pub id: RelaxationId,
    /// The dataset.
    pub dataset_id: DatasetId,
    /// The providing organisation.
    pub provider_org: OrgId,
    /// The catalog's attribute when it started.
    pub open_attribute: OpenAttribute,
    /// The attribute in force while it lasts.
    pub relaxed_to: OpenAttribute,
    /// The emergency stated.
    pub emergency: String,
    /// The last day in force, `YYYY-MM-DD` (UTC).
    pub until: String,
    /// When it ends, ms since epoch (00:00 UTC of the day after `until`).
    pub ends_ms: i64,
    /// True while it is in force (before `ends_ms`).
    pub in_force: bool,
    /// The data authority's organisation.
    pub authority_org: OrgId,
    /// The data authority's API key.
    pub authority_key: KeyId,
    /// Started, ms since epoch.
    pub started_ms: i64,
    /// Ledger seq of its `started` entry.
    pub started_seq: u64,
    /// When its end was recorded, ms since epoch.
    pub ended_ms: Option<i64>,
    /// Ledger seq of its `ended` entry.
    pub ended_seq: Option<u64>,
    /// Grants suspended at its end because the dataset was not open again.
    pub suspended_grants: Vec<GrantId>,
}

fn grant_list(row: &AnyRow) -> Result<Vec<GrantId>> {
    let json: String = row.try_get("suspended_grants_json")?;
    serde_json::from_str(&json).map_err(|_| {
        SandboxError::Internal("a stored list of suspended grants does not parse".into())
    })
}

fn grant_json(ids: &[GrantId]) -> Result<String> {
    serde_json::to_string(ids)
        .map_err(|e| SandboxError::Internal(format!("encoding suspended grants: {e}")))
}

const CHANGE_COLUMNS: &str = "id, dataset_id, provider_org, from_attribute, to_attribute, \
    reason, legal_basis, requester_org, requester_key, requested_ms, status, decider_org, \
    decider_key, decided_ms, decision_reason, revision, change_seq, suspended_grants_json";

fn change_from_row(row: &AnyRow) -> Result<AttributeChange> {
    let from = OpenAttribute::parse(&row.try_get::<String, _>("from_attribute")?)?;
    let to = OpenAttribute::parse(&row.try_get::<String, _>("to_attribute")?)?;
    Ok(AttributeChange {
        id: row.try_get("id")?,
        dataset_id: row.try_get("dataset_id")?,
        provider_org: row.try_get("provider_org")?,
        from,
        to,
        stricter: to.strictness() > from.strictness(),
        reason: row.try_get("reason")?,
        legal_basis: row.try_get("legal_basis")?,
        status: ChangeStatus::parse(&row.try_get::<String, _>("status")?)?,
        requester_org: row.try_get("requester_org")?,
        requester_key: row.try_get("requester_key")?,
        requested_ms: row.try_get("requested_ms")?,
        decided_by_org: row.try_get("decider_org")?,
        decided_by_key: row.try_get("decider_key")?,
        decided_ms: row.try_get("decided_ms")?,
        decision_reason: row.try_get("decision_reason")?,
        revision: opt_u64(row, "revision")?,
        ledger_seq: opt_u64(row, "change_seq")?,
        suspended_grants: grant_list(row)?,
    })
}

const RELAXATION_COLUMNS: &str = "id, dataset_id, provider_org, open_attribute, relaxed_to, \
    emergency, until_day, ends_ms, authority_org, authority_key, started_ms, started_seq, \
    ended_ms, ended_seq, suspended_grants_json";

fn relaxation_from_row(row: &AnyRow) -> Result<Relaxation> {
    let ends_ms: i64 = row.try_get("ends_ms")?;
    let ended_ms: Option<i64> = row.try_get("ended_ms")?;
    Ok(Relaxation {
        id: row.try_get("id")?,
        dataset_id: row.try_get("dataset_id")?,
        provider_org: row.try_get("provider_org")?,
        open_attribute: OpenAttribute::parse(&row.try_get::<String, _>("open_attribute")?)?,
        relaxed_to: OpenAttribute::parse(&row.try_get::<String, _>("relaxed_to")?)?,
        emergency: row.try_get("emergency")?,
        until: row.try_get("until_day")?,
        ends_ms,
        in_force: ended_ms.is_none() && now_ms() < ends_ms,
        authority_org: row.try_get("authority_org")?,
        authority_key: row.try_get("authority_key")?,
        started_ms: row.try_get("started_ms")?,
        started_seq: opt_u64(row, "started_seq")?.unwrap_or(0),
        ended_ms,
        ended_seq: opt_u64(row, "ended_seq")?,
        suspended_grants: grant_list(row)?,
    })
}

impl OpenAttributes {
    /// One change request, whoever may see it.
    async fn load_change(&self, id: &AttributeChangeId) -> Result<Option<AttributeChange>> {
        let sql = format!("SELECT {CHANGE_COLUMNS} FROM open_attribute_changes WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?;
        row.as_ref().map(change_from_row).transpose()
    }

    async fn reload_change(&self, id: &AttributeChangeId) -> Result<AttributeChange> {
        self.load_change(id)
            .await?
            .ok_or_else(|| SandboxError::Internal("a change request vanished".into()))
    }

    /// The provider (`actor`) asks to change the open attribute of its published
    /// dataset `id` to `request.to`, with a reason and a legal basis; the request waits
    /// for the data authority ([`OpenAttributes::decide_change`]). Another
    /// organisation's dataset is "not found"; an unpublished one, a not-open one (see
    /// [`NOT_OPEN_CHANGE_REFUSAL`]), one under an emergency relaxation and one with a
    /// pending request are conflicts; a change to the same attribute is invalid.
    pub async fn request_change(
        &self,
        actor: &Actor,
        id: &DatasetId,
        request: ChangeRequest,
    ) -> Result<AttributeChange> {
        let reason = checked_text("reason", &request.reason, MAX_REASON_CHARS)?;
        let legal_basis = checked_text("legal_basis", &request.legal_basis, MAX_REASON_CHARS)?;
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let dataset = self
            .catalog()
            .dataset(id)
            .await?
            .filter(|d| d.provider_org == org)
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        if dataset.status != CatalogStatus::Published {
            return Err(SandboxError::Conflict(
                "the entry is not published: set a draft's open attribute by editing it".into(),
            ));
        }
        let from = dataset.meta.open_attribute;
        if from == OpenAttribute::NotOpen {
            return Err(SandboxError::Conflict(NOT_OPEN_CHANGE_REFUSAL.into()));
        }
        if request.to == from {
            return Err(SandboxError::Invalid(
                "`to` is the dataset's open attribute already".into(),
            ));
        }
        // Level L4 data is never unconditionally open (`crate::classification`).
        crate::classification::check_open_attribute(dataset.meta.level, request.to)?;
        if dataset.emergency_relaxation.is_some() {
            return Err(SandboxError::Conflict(
                "an emergency relaxation of this dataset's open attribute is in force; ask \
                 for a change once it ends"
                    .into(),
            ));
        }
        let pending = sqlx::query(
            "SELECT COUNT(*) AS n FROM open_attribute_changes \
             WHERE dataset_id = $1 AND status = 'pending'",
        )
        .bind(id.clone())
        .fetch_one(self.db().pool())
        .await?
        .try_get::<i64, _>("n")?;
        let busy = || {
            SandboxError::Conflict(
                "a change of this dataset's open attribute is pending already; wait for the \
                 data authority's decision"
                    .into(),
            )
        };
        if pending > 0 {
            return Err(busy());
        }
        let change_id = AttributeChangeId::random();
        let from_wire = from.as_str();
        let to_wire = request.to.as_str();
        let inserted = store::open_attributes::insert_change(
            self.db().pool(),
            &store::open_attributes::NewChangeRow {
                id: &change_id,
                dataset_id: &dataset.id,
                provider_org: &dataset.provider_org,
                from_attribute: &from_wire,
                to_attribute: &to_wire,
                reason,
                legal_basis,
                requester_org: &org,
                requester_key: &key,
                requested_ms: now_ms(),
            },
        )
        .await;
        match inserted {
            Ok(()) => {}
            Err(SandboxError::Db(e)) if is_unique_violation(&e) => return Err(busy()),
            Err(e) => return Err(e),
        }
        self.reload_change(&change_id).await
    }

    /// The data authority (`actor`) approves or refuses a pending change request. An
    /// approval changes the catalog's attribute as a new catalog revision, suspends the
    /// dataset's grants when it becomes not open, and writes an `OpenAttributeChange`
    /// entry, in one transaction; a refusal needs a reason and changes nothing else. A
    /// decided request is a conflict; the authority's own organisation's is forbidden.
    pub async fn decide_change(
        &self,
        actor: &Actor,
        id: &AttributeChangeId,
        decision: ChangeDecision,
    ) -> Result<AttributeChange> {
        let reason = decision
            .reason
            .as_deref()
            .map(|r| checked_text("reason", r, MAX_REASON_CHARS))
            .transpose()?;
        if !decision.approve && reason.is_none() {
            return Err(SandboxError::Invalid(
                "refusing a change needs a `reason` for the provider".into(),
            ));
        }
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let change = self
            .load_change(id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such open-attribute change".into()))?;
        if change.status != ChangeStatus::Pending {
            return Err(SandboxError::Conflict(format!(
                "the change is {} already",
                change.status.as_str()
            )));
        }
        if change.provider_org == org {
            return Err(SandboxError::Forbidden(
                "the data authority does not decide its own organisation's open-attribute \
                 changes"
                    .into(),
            ));
        }
        let now = now_ms();
        if !decision.approve {
            let mut tx = self.db().begin_write().await?;
            let decided = store::open_attributes::decide_change(
                &mut *tx,
                &store::open_attributes::ChangeDecisionRow {
                    id,
                    status: ChangeStatus::Refused.as_str(),
                    decider_org: &org,
                    decider_key: &key,
                    decided_ms: now,
                    decision_reason: reason,
                    revision: None,
                    change_seq: None,
                    suspended_grants_json: "[]",
                },
            )
            .await?;
            if decided != 1 {
                return Err(SandboxError::Conflict(
                    "the change was decided concurrently".into(),
                ));
            }
            tx.commit().await?;
            return self.reload_change(id).await;
        }
        let dataset = self
            .catalog()
            .dataset(&change.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::Internal("a change request's dataset is gone".into()))?;
        if dataset.status != CatalogStatus::Published || dataset.meta.open_attribute != change.from
        {
            return Err(SandboxError::Conflict(
                "the dataset's entry changed since the request; refuse it, and its provider \
                 asks again"
                    .into(),
            ));
        }
        // The level may have been edited since the request: checked again.
        crate::classification::check_open_attribute(dataset.meta.level, change.to)?;
        self.approve(actor, &change, &dataset, reason, now).await?;
        self.reload_change(id).await
    }

    /// Effects an approved change: the catalog revision, the suspended grants, the
    /// ledger entry and the decision, in one transaction.
    async fn approve(
        &self,
        actor: &Actor,
        change: &AttributeChange,
        dataset: &Dataset,
        reason: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let mut meta = dataset.meta.clone();
        meta.open_attribute = change.to;
        let hash = metadata_hash(&meta)?;
        let hash_hex = hash.to_hex();
        let revision = dataset.revision + 1;
        let encoded = EncodedMeta::of(&meta)?;
        let metadata_json = serde_json::to_string(&meta)
            .map_err(|e| SandboxError::Internal(format!("encoding metadata: {e}")))?;
        let revision_reason = format!(
            "open attribute changed from {} to {} by change {}, approved by the data \
             authority (SD22 Art.8): {}",
            change.from.as_str(),
            change.to.as_str(),
            change.id,
            change.reason
        );
        let suspension = format!(
            "suspended: the dataset became not open (不予开放) by open-attribute change {}, \
             approved by the data authority (SD22 Art.8); the grant stays suspended, also \
             if the data is opened again as a de-identified derivative",
            change.id
        );
        let mut tx = self.db().begin_write().await?;
        let updated = store::catalog::update_metadata(
            &mut *tx,
            &dataset.id,
            &encoded.row(&meta),
            to_i64(revision, "a revision number")?,
            to_i64(dataset.revision, "a revision number")?,
            &CatalogStatus::Published.as_str(),
            now,
        )
        .await?;
        if updated != 1 {
            return Err(SandboxError::Conflict(
                "the entry changed while the change was decided; try again".into(),
            ));
        }
        // Grants first, ledger entries after (see `Grants::suspend_grants_on`).
        let suspended = if change.to == OpenAttribute::NotOpen {
            self.grants()
                .suspend_grants_on(&mut tx, actor, &dataset.id, &suspension)
                .await?
        } else {
            Vec::new()
        };
        let entry = ChangeEntry {
            change_id: change.id.to_string(),
            dataset_id: dataset.id.to_string(),
            provider_org: dataset.provider_org.to_string(),
            from: change.from.as_str(),
            to: change.to.as_str(),
            stricter: change.stricter,
            reason: change.reason.clone(),
            legal_basis: change.legal_basis.clone(),
            requester_org: change.requester_org.to_string(),
            requester_key: change.requester_key.to_string(),
            approver_org: Some(org.to_string()),
            approver_key: Some(key.to_string()),
            requested_ms: change.requested_ms,
            revision,
            metadata_hash: hash,
            grants_suspended: suspended.iter().map(ToString::to_string).collect(),
        };
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let seq = to_i64(appended.seq, "a revision number")?;
        store::catalog::insert_revision(
            &mut *tx,
            &store::catalog::NewRevisionRow {
                dataset_id: &dataset.id,
                revision: to_i64(revision, "a revision number")?,
                metadata_hash: &hash_hex,
                metadata_json: &metadata_json,
                provider_org: &dataset.provider_org,
                actor_key: &change.requester_key,
                created_ms: now,
                reason: &revision_reason,
                legal_change_date: None,
                update_due: None,
                late: 0,
                revision_seq: Some(seq),
            },
        )
        .await?;
        let grants_json = grant_json(&suspended)?;
        let decided = store::open_attributes::decide_change(
            &mut *tx,
            &store::open_attributes::ChangeDecisionRow {
                id: &change.id,
                status: ChangeStatus::Approved.as_str(),
                decider_org: &org,
                decider_key: &key,
                decided_ms: now,
                decision_reason: reason,
                revision: Some(to_i64(revision, "a revision number")?),
                change_seq: Some(seq),
                suspended_grants_json: &grants_json,
            },
        )
        .await?;
        if decided != 1 {
            return Err(SandboxError::Conflict(
                "the change was decided concurrently".into(),
            ));
        }
        tx.commit().await?;
        tracing::info!(
            change = %change.id,
            dataset = %dataset.id,
            from = %change.from.as_str(),
            to = %change.to.as_str(),
            grants_suspended = suspended.len(),
            "open attribute changed"
        );
        Ok(())
    }

    /// Change requests as `reader` may see them, newest first: every one for the data
    /// authority and supervisors ([`CatalogReader::Overseer`]), a provider's own
    /// datasets' otherwise ([`CatalogReader::Org`]).
    pub async fn changes(
        &self,
        query: &ChangeQuery,
        reader: CatalogReader<'_>,
    ) -> Result<Vec<AttributeChange>> {
        let mut filters = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(status) = query.status {
            binds.push(status.as_str().to_string());
            filters.push(format!("status = ${}", binds.len()));
        }
        if let Some(dataset) = &query.dataset_id {
            binds.push(dataset.to_string());
            filters.push(format!("dataset_id = ${}", binds.len()));
        }
        match reader {
            CatalogReader::Overseer => {}
            CatalogReader::Org(org) => {
                binds.push(org.to_string());
                filters.push(format!("provider_org = ${}", binds.len()));
            }
            // The routes that list changes are not public; should one become so, the
            // public sees none rather than all.
            CatalogReader::Public => return Ok(Vec::new()),
        }
        let filter = where_clause(&filters);
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM open_attribute_changes {filter} \
             ORDER BY requested_ms DESC, id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b.clone());
        }
        q.fetch_all(self.db().pool())
            .await?
            .iter()
            .map(change_from_row)
            .collect()
    }

    async fn load_relaxation(&self, id: &RelaxationId) -> Result<Relaxation> {
        let sql = format!("SELECT {RELAXATION_COLUMNS} FROM emergency_relaxations WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::Internal("a relaxation vanished".into()))?;
        relaxation_from_row(&row)
    }

    /// The data authority (`actor`) relaxes the open attribute of the published dataset
    /// `id` to a less strict one for a stated emergency, through the `until` day (XT
    /// Art.23(7)); a `started` `EmergencyRelaxation` entry records it. An absent dataset
    /// is "not found"; an unpublished one, one already relaxed and an attribute no less
    /// strict than the catalog's are conflicts; a bad or out-of-range day is invalid.
    pub async fn relax(
        &self,
        actor: &Actor,
        id: &DatasetId,
        request: RelaxationRequest,
    ) -> Result<Relaxation> {
        let emergency = checked_text("emergency", &request.emergency, MAX_REASON_CHARS)?;
        let until = parse_day(&request.until)
            .ok_or_else(|| SandboxError::Invalid("`until` is a date, YYYY-MM-DD".into()))?;
        let now = now_ms();
        let today = day_of_ms(now);
        if until < today {
            return Err(SandboxError::Invalid(
                "`until` is in the past: a relaxation lasts through today at least".into(),
            ));
        }
        if until > today.saturating_add(time::Duration::days(MAX_RELAXATION_DAYS)) {
            return Err(SandboxError::Invalid(format!(
                "`until` is more than {MAX_RELAXATION_DAYS} days ahead: an emergency \
                 relaxation is temporary"
            )));
        }
        let ends_ms = end_ms_of(until)?;
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let dataset = self
            .catalog()
            .dataset(id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        // Not even an emergency opens level L4 data unconditionally
        // (`crate::classification`).
        crate::classification::check_open_attribute(dataset.meta.level, request.to)?;
        if dataset.status != CatalogStatus::Published {
            return Err(SandboxError::Conflict(
                "the entry is not published; only a published entry's attribute is relaxed".into(),
            ));
        }
        if dataset.emergency_relaxation.is_some() {
            return Err(SandboxError::Conflict(
                "an emergency relaxation of this dataset is in force already".into(),
            ));
        }
        let from = dataset.meta.open_attribute;
        if request.to.strictness() >= from.strictness() {
            return Err(SandboxError::Conflict(
                "a relaxation makes the open attribute less strict than the catalog's, and \
                 this one does not"
                    .into(),
            ));
        }
        // A relaxation past its end but not yet recorded as ended would hold the slot.
        self.end_due(Some(id)).await?;
        let relaxation_id = RelaxationId::random();
        let until_day = iso_date(until);
        let entry = RelaxationEntry {
            relaxation_id: relaxation_id.to_string(),
            phase: "started".into(),
            dataset_id: dataset.id.to_string(),
            provider_org: dataset.provider_org.to_string(),
            open_attribute: from.as_str(),
            relaxed_to: request.to.as_str(),
            emergency: emergency.to_string(),
            until: until_day.clone(),
            ends_ms,
            started_seq: None,
            grants_suspended: Vec::new(),
        };
        let from_wire = from.as_str();
        let to_wire = request.to.as_str();
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let inserted = store::open_attributes::insert_relaxation(
            &mut *tx,
            &store::open_attributes::NewRelaxationRow {
                id: &relaxation_id,
                dataset_id: &dataset.id,
                provider_org: &dataset.provider_org,
                open_attribute: &from_wire,
                relaxed_to: &to_wire,
                emergency,
                until_day: &until_day,
                ends_ms,
                authority_org: &org,
                authority_key: &key,
                started_ms: now,
                started_seq: to_i64(appended.seq, "a revision number")?,
            },
        )
        .await;
        match inserted {
            Ok(()) => {}
            Err(SandboxError::Db(e)) if is_unique_violation(&e) => {
                return Err(SandboxError::Conflict(
                    "an emergency relaxation of this dataset is in force already".into(),
                ));
            }
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        tracing::info!(
            relaxation = %relaxation_id,
            dataset = %dataset.id,
            to = %request.to.as_str(),
            until = %until_day,
            "emergency relaxation started"
        );
        self.load_relaxation(&relaxation_id).await
    }

    /// A dataset's emergency relaxations, oldest first, as `reader` may see the dataset
    /// (otherwise "not found").
    pub async fn relaxations(
        &self,
        id: &DatasetId,
        reader: CatalogReader<'_>,
    ) -> Result<Vec<Relaxation>> {
        let dataset = self.catalog().visible_dataset(id, reader).await?;
        let sql = format!(
            "SELECT {RELAXATION_COLUMNS} FROM emergency_relaxations WHERE dataset_id = $1 \
             ORDER BY started_ms, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(dataset.id.clone())
            .fetch_all(self.db().pool())
            .await?
            .iter()
            .map(relaxation_from_row)
            .collect()
    }

    /// Records the end of every emergency relaxation past its end date: an `ended`
    /// `EmergencyRelaxation` entry each and, when its dataset is not open again, the
    /// suspension of its grants. The server runs this on start and periodically; reads
    /// do not depend on it ([`crate::catalog::Dataset::effective_open_attribute`] is
    /// computed from the end). Returns how many it ended; one that fails is logged and
    /// left for the next run.
    pub async fn end_due_relaxations(&self) -> Result<usize> {
        self.end_due(None).await
    }

    /// [`OpenAttributes::end_due_relaxations`], for one dataset or all.
    async fn end_due(&self, only: Option<&DatasetId>) -> Result<usize> {
        let now = now_ms();
        let mut sql = String::from(
            "SELECT id FROM emergency_relaxations WHERE ended_ms IS NULL AND ends_ms <= $1",
        );
        if only.is_some() {
            sql.push_str(" AND dataset_id = $2");
        }
        sql.push_str(" ORDER BY ends_ms, id");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        if let Some(id) = only {
            q = q.bind(id.clone());
        }
        let ids: Vec<RelaxationId> = q
            .fetch_all(self.db().pool())
            .await?
            .iter()
            .map(|row| row.try_get::<RelaxationId, _>("id"))
            .collect::<std::result::Result<_, _>>()?;
        let mut ended = 0;
        for id in ids {
            match self.end_one(&id, now).await {
                Ok(true) => ended += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(relaxation = %id, error = %e, "recording the end of an emergency relaxation failed");
                }
            }
        }
        Ok(ended)
    }

    /// Records the end of one relaxation (false when another check did first).
    async fn end_one(&self, id: &RelaxationId, now: i64) -> Result<bool> {
        let actor = Actor::system();
        let mut tx = self.db().begin_write().await?;
        if store::open_attributes::claim_end(&mut *tx, id, now).await? != 1 {
            return Ok(false);
        }
        let sql = format!(
            "SELECT {RELAXATION_COLUMNS}, \
             (SELECT d.open_attribute FROM datasets d WHERE d.id = r.dataset_id) AS catalog_attribute \
             FROM emergency_relaxations r WHERE r.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_one(&mut *tx)
            .await?;
        let relaxation = relaxation_from_row(&row)?;
        let catalog_attribute =
            OpenAttribute::parse(&row.try_get::<String, _>("catalog_attribute")?)?;
        let suspension = format!(
            "suspended: the emergency relaxation {} of the dataset ended and the dataset is \
             not open (不予开放) again (XT Art.23(7); SD22 Art.8); the grant stays \
             suspended, also if the data is opened again",
            relaxation.id
        );
        // Grants first, ledger entries after (see `Grants::suspend_grants_on`).
        let suspended = if catalog_attribute == OpenAttribute::NotOpen {
            self.grants()
                .suspend_grants_on(&mut tx, &actor, &relaxation.dataset_id, &suspension)
                .await?
        } else {
            Vec::new()
        };
        let entry = RelaxationEntry {
            relaxation_id: relaxation.id.to_string(),
            phase: "ended".into(),
            dataset_id: relaxation.dataset_id.to_string(),
            provider_org: relaxation.provider_org.to_string(),
            open_attribute: catalog_attribute.as_str(),
            relaxed_to: relaxation.relaxed_to.as_str(),
            emergency: relaxation.emergency.clone(),
            until: relaxation.until.clone(),
            ends_ms: relaxation.ends_ms,
            started_seq: Some(relaxation.started_seq),
            grants_suspended: suspended.iter().map(ToString::to_string).collect(),
        };
        let appended = self.ledger().append(&mut tx, &actor, &entry).await?;
        store::open_attributes::record_end(
            &mut *tx,
            id,
            to_i64(appended.seq, "a revision number")?,
            &grant_json(&suspended)?,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            relaxation = %relaxation.id,
            dataset = %relaxation.dataset_id,
            grants_suspended = suspended.len(),
            "emergency relaxation ended"
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relaxation_ends_at_midnight_utc_after_its_last_day() {
        let until = parse_day("2026-07-31").unwrap();
        let ends = end_ms_of(until).unwrap();
        assert_eq!(iso_date(day_of_ms(ends)), "2026-08-01");
        assert_eq!(iso_date(day_of_ms(ends - 1)), "2026-07-31");
        assert!(parse_day("2026-7-31").is_none());
        assert!(parse_day("31/07/2026").is_none());
    }

    #[test]
    fn strictness_orders_the_attributes() {
        assert!(
            OpenAttribute::Unconditional.strictness() < OpenAttribute::Conditional.strictness()
        );
        assert!(OpenAttribute::Conditional.strictness() < OpenAttribute::NotOpen.strictness());
    }

    #[test]
    fn change_bodies_need_every_field() {
        let ok: ChangeRequest = serde_json::from_value(serde_json::json!(
            {"to": "conditional", "reason": "r", "legal_basis": "b"}
        ))
        .unwrap();
        assert_eq!(ok.to, OpenAttribute::Conditional);
        assert!(
            serde_json::from_value::<ChangeRequest>(
                serde_json::json!({"to": "conditional", "reason": "r"})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<ChangeRequest>(
                serde_json::json!({"to": "closed", "reason": "r", "legal_basis": "b"})
            )
            .is_err()
        );
    }
}
