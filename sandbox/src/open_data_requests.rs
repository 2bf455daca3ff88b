//! Requests to open data (SD22 Art.9, 12; GD21 Art.34): anyone, the public without a
//! key too, may ask for a catalogued dataset to be opened further (its open attribute
//! made less strict) or for a new dataset to be published. The data authority
//! (数据主管部门) routes each request to the provider that must answer, and that provider
//! accepts or refuses it, with a reason for a refusal, by a deadline in working days.
//! Everything is public but the requester's contact.
//!
//! - **Filing** ([`OpenDataRequests::file`]): a subject (1 to [`MAX_SUBJECT_CHARS`]
//!   characters), a description (1 to [`MAX_DESCRIPTION_CHARS`]), an optional contact
//!   (1 to [`MAX_CONTACT_CHARS`], no control characters) and, to open a catalogued
//!   dataset, its id. The dataset must be one the requester sees (the public: a
//!   published one), not unconditionally open already and not destroyed by its
//!   provider (409 for both: nothing is left to open). A request without a dataset asks
//!   for a new one.
//! - **Routing** ([`OpenDataRequests::route`], the data authority): to the dataset's
//!   provider for a request about a dataset (naming another is a 422), to a provider
//!   the authority names for a new dataset. The answer is due [`ANSWER_WORKING_DAYS`]
//!   working days after the routing ([`crate::workdays`]). A request is routed once
//!   (409 after).
//! - **Answer** ([`OpenDataRequests::answer`], the provider it is routed to; any other
//!   organisation gets "not found"): `accepted` or `refused`, a refusal with its
//!   `reason` (422 without). An answer after the deadline is accepted, marked late and
//!   shown on the compliance report ([`crate::compliance`]), as are routed requests
//!   still unanswered after it. A request is answered once (409 after).
//!
//! **The deadline.** SD22 Art.12 and GD21 Art.34 oblige the providing department to
//! answer a request to open data; pdx gives it 15 working days from the routing: the
//! catalog's own period for acting on a change (GD21 Art.11; XT Art.14) and the longest
//! period the seeds use (`REGULATIONS.md`, "Money and time"). The number should be
//! checked against the articles' text.
//!
//! **The ledger.** Each step is an `OpenDataRequest` entry (a public kind; event
//! `filed`, `routed` or `answered`), written in the same transaction as the row, so a
//! refused or concurrent step leaves nothing half-written. The `filed` entry commits to
//! the subject and description by hash and never carries the contact: the ledger is
//! public and append-only, and what the public types may hold personal data. A request
//! filed without a key is written by the platform's actor (`pdx`/`system`) with no
//! requester organisation.
//!
//! Every error message here is safe to show: none echoes a value the caller sent.

use pdx_ids::{DatasetId, OpenDataRequestId, OrgId};
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::{
    OpenDataRequestAnswered, OpenDataRequestFiled, OpenDataRequestRecord, OpenDataRequestRouted,
};
use pdx_ledger::{Actor, Hash32};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::catalog::{CatalogReader, OpenAttribute};
use crate::store::{self, opt_u64, to_i64, where_clause};
use crate::workdays::{iso_date, iso_day_of_ms};
use crate::{Result, SandboxError, actor_key, actor_org, checked_text};

crate::service! {
    /// Requests to open data: filing, routing by the data authority, answers.
    OpenDataRequests
}

/// Working days a provider has to answer a request routed to it (see the module
/// documentation for the choice).
pub const ANSWER_WORKING_DAYS: u32 = 15;

/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;

/// Longest description or reason, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;

/// Longest contact, in characters.
pub const MAX_CONTACT_CHARS: usize = 200;

/// Most requests one page lists.
pub const MAX_PER_PAGE: u32 = 100;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OpenDataRequestKind {
    /// Open a catalogued dataset further (its open attribute made less strict).
    OpenDataset,
    /// Publish a dataset that is not in the catalog.
    NewDataset,
}

impl OpenDataRequestKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenDataRequestKind::OpenDataset => "open_dataset",
            OpenDataRequestKind::NewDataset => "new_dataset",
        }
    }

    fn parse(s: &str) -> Result<OpenDataRequestKind> {
        match s {
            "open_dataset" => Ok(OpenDataRequestKind::OpenDataset),
            "new_dataset" => Ok(OpenDataRequestKind::NewDataset),
            _ => Err(SandboxError::Internal(
                "a stored open-data request kind is unknown".into(),
            )),
        }
    }
}

/// Where a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OpenDataRequestStatus {
    /// Filed; waiting for the data authority to route it.
    Filed,
    /// Routed to a provider, which must answer by `answer_due`.
    Routed,
    /// Accepted by the provider.
    Accepted,
    /// Refused by the provider, with a reason.
    Refused,
}

impl OpenDataRequestStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenDataRequestStatus::Filed => "filed",
            OpenDataRequestStatus::Routed => "routed",
            OpenDataRequestStatus::Accepted => "accepted",
            OpenDataRequestStatus::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<OpenDataRequestStatus> {
        match s {
            "filed" => Ok(OpenDataRequestStatus::Filed),
            "routed" => Ok(OpenDataRequestStatus::Routed),
            "accepted" => Ok(OpenDataRequestStatus::Accepted),
            "refused" => Ok(OpenDataRequestStatus::Refused),
            _ => Err(SandboxError::Internal(
                "a stored open-data request status is unknown".into(),
            )),
        }
    }
}

/// The provider's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OpenDataAnswerOutcome {
    /// The provider will open or publish the data.
    Accepted,
    /// The provider refuses, with a reason.
    Refused,
}

impl OpenDataAnswerOutcome {
    /// The status an answer leaves the request in.
    fn status(self) -> OpenDataRequestStatus {
        match self {
            OpenDataAnswerOutcome::Accepted => OpenDataRequestStatus::Accepted,
            OpenDataAnswerOutcome::Refused => OpenDataRequestStatus::Refused,
        }
    }
}

/// What anyone sends to file a request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewOpenDataRequest {
    /// The catalogued dataset to open further; absent to ask for a new dataset.
    #[serde(default)]
    pub dataset_id: Option<DatasetId>,
    /// The subject (1 to 200 characters, not blank; trimmed).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, pattern = r"\S")
    )]
    pub subject: String,
    /// What is asked for, and why (1 to 4,000 characters, not blank; trimmed).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 4000, pattern = r"\S")
    )]
    pub description: String,
    /// How to reach the requester (1 to 200 characters, not blank, no control
    /// characters; trimmed): shown only to the data authority, supervisors, the provider
    /// it is routed to and the requester's own organisation; never to the public, never
    /// on the ledger.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
        )
    )]
    pub contact: Option<String>,
}

/// The data authority's routing of a request.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenDataRouting {
    /// The provider that must answer: required for a new dataset; for a request about
    /// a dataset, its provider (the default; another is a 422).
    #[serde(default)]
    pub provider_org: Option<OrgId>,
}

/// The provider's answer to a request routed to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenDataAnswer {
    /// `accepted` or `refused`.
    pub outcome: OpenDataAnswerOutcome,
    /// Why (required for a refusal, 1 to 4,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Who reads a request, which decides whether its contact is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenDataReader<'a> {
    /// The data authority and supervisors: every contact.
    Overseer,
    /// An organisation: the contact of the requests it filed and of those routed to it.
    Org(&'a OrgId),
    /// The public, without a key: no contact.
    Public,
}

/// A request to open data, as kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenDataRequest {
    /// The request's id.
    pub id: OpenDataRequestId,
    /// What it asks for.
    pub request: OpenDataRequestKind,
    /// The dataset to open, for `open_dataset`.
    pub dataset_id: Option<DatasetId>,
    /// Its subject.
    pub subject: String,
    /// What is asked for, and why.
    pub description: String,
    /// How to reach the requester: null unless the reader may see it (see
    /// [`OpenDataReader`]).
    pub contact: Option<String>,
    /// The filing organisation; null for the public, without a key.
    pub requester_org: Option<OrgId>,
    /// Filed, ms since epoch.
    pub filed_ms: i64,
    /// Ledger seq of its `filed` entry.
    pub filed_seq: u64,
    /// Where it is.
    pub status: OpenDataRequestStatus,
    /// The provider it is routed to.
    pub provider_org: Option<OrgId>,
    /// The data authority's organisation that routed it.
    pub routed_by_org: Option<OrgId>,
    /// Routed, ms since epoch.
    pub routed_ms: Option<i64>,
    /// The answer deadline, `YYYY-MM-DD` (working days from the routing).
    pub answer_due: Option<String>,
    /// Ledger seq of its `routed` entry.
    pub routed_seq: Option<u64>,
    /// The provider's reason (always given for a refusal).
    pub reason: Option<String>,
    /// Answered, ms since epoch.
    pub answered_ms: Option<i64>,
    /// Answered after the deadline.
    pub answered_late: bool,
    /// Ledger seq of its `answered` entry.
    pub answered_seq: Option<u64>,
    /// Routed, unanswered and past its deadline now.
    pub overdue: bool,
}

/// Filters and page of the request list.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct OpenDataRequestQuery {
    /// Only requests in this status (`filed` is the data authority's queue, `routed` the
    /// providers').
    pub status: Option<OpenDataRequestStatus>,
    /// Only requests about this dataset.
    pub dataset_id: Option<DatasetId>,
    /// Only requests routed to this provider.
    pub provider_org: Option<OrgId>,
    /// Page, from 1 (default 1) to [`crate::catalog::MAX_PAGE`].
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 2147483647))]
    pub page: Option<u32>,
    /// Requests a page, 1 to 100 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub per_page: Option<u32>,
}

/// A routed request answered after its deadline, or still unanswered past it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LateOpenDataRequest {
    /// The request's id.
    pub request_id: OpenDataRequestId,
    /// What it asks for.
    pub request: OpenDataRequestKind,
    /// The dataset, for `open_dataset`.
    pub dataset_id: Option<DatasetId>,
    /// The provider that had to answer.
    pub provider_org: OrgId,
    /// The answer deadline, `YYYY-MM-DD`.
    pub answer_due: String,
    /// Pending or answered late.
    pub state: crate::compliance::Lateness,
    /// Day of the answer, if answered.
    pub answered_on: Option<String>,
    /// Ledger seq of its `routed` entry.
    pub routed_seq: u64,
}

/// The contact, trimmed, checked and free of control characters.
fn checked_contact(contact: &str) -> Result<&str> {
    let contact = checked_text("contact", contact, MAX_CONTACT_CHARS)?;
    if contact.chars().any(char::is_control) {
        return Err(SandboxError::Invalid(
            "`contact` must not hold control characters".into(),
        ));
    }
    Ok(contact)
}

/// BLAKE3 of a request's words, as its `filed` entry names them:
/// `BLAKE3("pdx open-data request v1" || 0x00 || subject || 0x00 || description)`.
pub fn text_hash(subject: &str, description: &str) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(b"pdx open-data request v1");
    h.update(&[0]);
    h.update(subject.as_bytes());
    h.update(&[0]);
    h.update(description.as_bytes());
    Hash32(*h.finalize().as_bytes())
}

const REQUEST_COLUMNS: &str = "id, request, dataset_id, subject, description, contact, \
    requester_org, filed_ms, filed_seq, status, provider_org, routed_by_org, routed_ms, \
    answer_due, routed_seq, reason, answered_ms, answered_late, answered_seq";

fn request_from_row(row: &AnyRow, today: &str) -> Result<OpenDataRequest> {
    let status = OpenDataRequestStatus::parse(&row.try_get::<String, _>("status")?)?;
    let answer_due: Option<String> = row.try_get("answer_due")?;
    let overdue = status == OpenDataRequestStatus::Routed
        && answer_due.as_deref().is_some_and(|due| today > due);
    Ok(OpenDataRequest {
        id: row.try_get("id")?,
        request: OpenDataRequestKind::parse(&row.try_get::<String, _>("request")?)?,
        dataset_id: row.try_get("dataset_id")?,
        subject: row.try_get("subject")?,
        description: row.try_get("description")?,
        contact: row.try_get("contact")?,
        requester_org: row.try_get("requester_org")?,
        filed_ms: row.try_get("filed_ms")?,
        filed_seq: opt_u64(row, "filed_seq")?.unwrap_or(0),
        status,
        provider_org: row.try_get("provider_org")?,
        routed_by_org: row.try_get("routed_by_org")?,
        routed_ms: row.try_get("routed_ms")?,
        answer_due,
        routed_seq: opt_u64(row, "routed_seq")?,
        reason: row.try_get("reason")?,
        answered_ms: row.try_get("answered_ms")?,
        answered_late: row.try_get::<i64, _>("answered_late")? != 0,
        answered_seq: opt_u64(row, "answered_seq")?,
        overdue,
    })
}

impl OpenDataRequest {
    /// The request as `reader` may see it: the contact withheld unless the reader is
    /// the data authority, a supervisor, the requester's organisation or the provider
    /// it is routed to.
    pub fn as_seen_by(mut self, reader: OpenDataReader<'_>) -> OpenDataRequest {
        let sees_contact = match reader {
            OpenDataReader::Overseer => true,
            OpenDataReader::Org(org) => {
                self.requester_org.as_ref() == Some(org) || self.provider_org.as_ref() == Some(org)
            }
            OpenDataReader::Public => false,
        };
        if !sees_contact {
            self.contact = None;
        }
        self
    }
}

impl OpenDataRequests {
    /// One request, whoever may see it (contact included).
    async fn load(&self, id: &OpenDataRequestId) -> Result<Option<OpenDataRequest>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM open_data_requests WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?;
        let today = iso_day_of_ms(now_ms());
        row.as_ref()
            .map(|row| request_from_row(row, &today))
            .transpose()
    }

    async fn reload(&self, id: &OpenDataRequestId) -> Result<OpenDataRequest> {
        self.load(id)
            .await?
            .ok_or_else(|| SandboxError::Internal("an open-data request vanished".into()))
    }

    /// Files a request. `requester` is the filing key's actor, or None for the public
    /// without a key; `catalog` decides which datasets the requester may name (the
    /// public: published ones). Returns the request with its contact (the filer's own).
    pub async fn file(
        &self,
        requester: Option<&Actor>,
        catalog: CatalogReader<'_>,
        new: NewOpenDataRequest,
    ) -> Result<OpenDataRequest> {
        let subject = checked_text("subject", &new.subject, MAX_SUBJECT_CHARS)?;
        let description = checked_text("description", &new.description, MAX_DESCRIPTION_CHARS)?;
        let contact = new.contact.as_deref().map(checked_contact).transpose()?;
        let (requester_org, requester_key) = match requester {
            Some(actor) => (Some(actor_org(actor)?), Some(actor_key(actor)?)),
            None => (None, None),
        };
        let dataset = match &new.dataset_id {
            Some(id) => {
                let dataset = self.catalog().visible_dataset(id, catalog).await?;
                // Its data is gone (GD21 Art.40): there is nothing left to open (409).
                dataset.not_destroyed()?;
                if dataset.meta.open_attribute == OpenAttribute::Unconditional {
                    return Err(SandboxError::Conflict(
                        "the dataset is unconditionally open already: its de-identified \
                         versions can be downloaded"
                            .into(),
                    ));
                }
                Some(dataset)
            }
            None => None,
        };
        let kind = if dataset.is_some() {
            OpenDataRequestKind::OpenDataset
        } else {
            OpenDataRequestKind::NewDataset
        };
        let id = OpenDataRequestId::random();
        let entry = OpenDataRequestRecord::Filed(OpenDataRequestFiled {
            request_id: id.to_string(),
            request: kind.as_str().to_string(),
            dataset_id: dataset.as_ref().map(|d| d.id.to_string()),
            requester_org: requester_org.as_ref().map(ToString::to_string),
            text_hash: text_hash(subject, description),
        });
        // The public files through the platform's own actor: it has no key to name.
        let actor = requester.cloned().unwrap_or_else(Actor::system);
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, &actor, &entry).await?;
        store::open_data_requests::insert_request(
            &mut *tx,
            &store::open_data_requests::NewRequestRow {
                id: &id,
                request: kind.as_str(),
                dataset_id: dataset.as_ref().map(|d| &d.id),
                subject,
                description,
                contact,
                requester_org: requester_org.as_ref(),
                requester_key: requester_key.as_ref(),
                filed_ms: now,
                filed_seq: to_i64(appended.seq, "a ledger seq")?,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(request = %id, kind = kind.as_str(), "open-data request filed");
        self.reload(&id).await
    }

    /// The data authority (`actor`) routes a filed request to the provider that must
    /// answer it (see [`OpenDataRouting`]), due [`ANSWER_WORKING_DAYS`] working days from
    /// now. An absent request is "not found"; a routed or answered one a conflict. The
    /// caller checks that a named provider is an organisation with a provider key.
    pub async fn route(
        &self,
        actor: &Actor,
        id: &OpenDataRequestId,
        routing: OpenDataRouting,
    ) -> Result<OpenDataRequest> {
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let request = self
            .load(id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such open-data request".into()))?;
        if request.status != OpenDataRequestStatus::Filed {
            return Err(SandboxError::Conflict(format!(
                "the request is {} already",
                request.status.as_str()
            )));
        }
        let provider = match (&request.dataset_id, routing.provider_org) {
            (Some(dataset_id), named) => {
                let dataset = self.catalog().dataset(dataset_id).await?.ok_or_else(|| {
                    SandboxError::Internal("an open-data request's dataset is gone".into())
                })?;
                if named.as_ref().is_some_and(|n| *n != dataset.provider_org) {
                    return Err(SandboxError::Invalid(
                        "a request about a catalogued dataset goes to that dataset's provider; \
                         leave `provider_org` out or name it"
                            .into(),
                    ));
                }
                dataset.provider_org
            }
            (None, Some(named)) => named,
            (None, None) => {
                return Err(SandboxError::Invalid(
                    "a request for a new dataset needs the `provider_org` that must answer it"
                        .into(),
                ));
            }
        };
        let now = now_ms();
        let due = iso_date(self.calendar().deadline_from_ms(now, ANSWER_WORKING_DAYS));
        let entry = OpenDataRequestRecord::Routed(OpenDataRequestRouted {
            request_id: id.to_string(),
            filed_seq: request.filed_seq,
            provider_org: provider.to_string(),
            answer_due: due.clone(),
        });
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let routed = store::open_data_requests::route_request(
            &mut *tx,
            &store::open_data_requests::RoutingRow {
                id,
                provider_org: &provider,
                routed_by_org: &org,
                routed_by_key: &key,
                routed_ms: now,
                answer_due: &due,
                routed_seq: to_i64(appended.seq, "a ledger seq")?,
            },
        )
        .await?;
        if routed != 1 {
            // Dropping the transaction rolls the entry back too.
            return Err(SandboxError::Conflict(
                "the request was routed concurrently".into(),
            ));
        }
        tx.commit().await?;
        tracing::info!(request = %id, provider = %provider, answer_due = %due, "open-data request routed");
        self.reload(id).await
    }

    /// The provider (`actor`) answers a request routed to its organisation. Any other
    /// organisation's request, and an unrouted one, is "not found"; an answered one a
    /// conflict; a refusal without a reason invalid. An answer after the deadline is
    /// accepted and marked late.
    pub async fn answer(
        &self,
        actor: &Actor,
        id: &OpenDataRequestId,
        answer: OpenDataAnswer,
    ) -> Result<OpenDataRequest> {
        let reason = answer
            .reason
            .as_deref()
            .map(|r| checked_text("reason", r, MAX_DESCRIPTION_CHARS))
            .transpose()?;
        if answer.outcome == OpenDataAnswerOutcome::Refused && reason.is_none() {
            return Err(SandboxError::Invalid(
                "refusing a request to open data needs a `reason` (SD22 Art.12)".into(),
            ));
        }
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let request = self
            .load(id)
            .await?
            .filter(|r| r.provider_org.as_ref() == Some(&org))
            .ok_or_else(|| SandboxError::NotFound("no such open-data request".into()))?;
        let (Some(due), Some(routed_seq), OpenDataRequestStatus::Routed) = (
            request.answer_due.clone(),
            request.routed_seq,
            request.status,
        ) else {
            return Err(SandboxError::Conflict(format!(
                "the request is {} already",
                request.status.as_str()
            )));
        };
        let now = now_ms();
        let late = iso_day_of_ms(now) > due;
        let status = answer.outcome.status();
        let entry = OpenDataRequestRecord::Answered(OpenDataRequestAnswered {
            request_id: id.to_string(),
            routed_seq,
            provider_org: org.to_string(),
            outcome: status.as_str().to_string(),
            reason: reason.map(str::to_string),
            answer_due: due,
            late,
        });
        let mut tx = self.db().begin_write().await?;
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let answered = store::open_data_requests::answer_request(
            &mut *tx,
            &store::open_data_requests::AnswerRow {
                id,
                provider_org: &org,
                status: status.as_str(),
                reason,
                answered_key: &key,
                answered_ms: now,
                answered_late: i64::from(late),
                answered_seq: to_i64(appended.seq, "a ledger seq")?,
            },
        )
        .await?;
        if answered != 1 {
            return Err(SandboxError::Conflict(
                "the request was answered concurrently".into(),
            ));
        }
        tx.commit().await?;
        tracing::info!(request = %id, outcome = status.as_str(), late, "open-data request answered");
        self.reload(id).await
    }

    /// One request as `reader` may see it (everyone sees every request; only the
    /// contact depends on the reader).
    pub async fn request(
        &self,
        id: &OpenDataRequestId,
        reader: OpenDataReader<'_>,
    ) -> Result<OpenDataRequest> {
        self.load(id)
            .await?
            .map(|r| r.as_seen_by(reader))
            .ok_or_else(|| SandboxError::NotFound("no such open-data request".into()))
    }

    /// A page of requests, newest first, filtered by `query`, as `reader` may see them.
    pub async fn requests(
        &self,
        query: &OpenDataRequestQuery,
        reader: OpenDataReader<'_>,
    ) -> Result<Vec<OpenDataRequest>> {
        let per_page = query.per_page.unwrap_or(50);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(SandboxError::Invalid(format!(
                "per_page must be between 1 and {MAX_PER_PAGE}"
            )));
        }
        let page = query.page.unwrap_or(1);
        if !(1..=crate::catalog::MAX_PAGE).contains(&page) {
            return Err(SandboxError::Invalid(format!(
                "page must be between 1 and {}",
                crate::catalog::MAX_PAGE
            )));
        }
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
        if let Some(provider) = &query.provider_org {
            binds.push(provider.to_string());
            filters.push(format!("provider_org = ${}", binds.len()));
        }
        let filter = where_clause(&filters);
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM open_data_requests {filter} \
             ORDER BY filed_ms DESC, id LIMIT ${} OFFSET ${}",
            binds.len() + 1,
            binds.len() + 2
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b.clone());
        }
        let rows = q
            .bind(i64::from(per_page))
            .bind(i64::from(page - 1) * i64::from(per_page))
            .fetch_all(self.db().pool())
            .await?;
        let today = iso_day_of_ms(now_ms());
        rows.iter()
            .map(|row| request_from_row(row, &today).map(|r| r.as_seen_by(reader)))
            .collect()
    }

    /// Routed requests answered after their deadline, or unanswered past it as of
    /// `today` (`YYYY-MM-DD`), oldest deadline first: for the compliance report.
    pub async fn late_requests(&self, today: &str) -> Result<Vec<LateOpenDataRequest>> {
        use crate::compliance::Lateness;
        // Dates are compared in Rust: text collation differs between the backends.
        let rows = sqlx::query(
            "SELECT id, request, dataset_id, provider_org, status, answer_due, answered_ms, \
             answered_late, routed_seq FROM open_data_requests \
             WHERE status = 'routed' OR answered_late = 1 ORDER BY answer_due, id",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let status = OpenDataRequestStatus::parse(&row.try_get::<String, _>("status")?)?;
            let Some(due) = row.try_get::<Option<String>, _>("answer_due")? else {
                continue;
            };
            let Some(provider_org) = row.try_get::<Option<OrgId>, _>("provider_org")? else {
                continue;
            };
            let answered_ms: Option<i64> = row.try_get("answered_ms")?;
            let state = match status {
                OpenDataRequestStatus::Routed if today > due.as_str() => Lateness::Pending,
                OpenDataRequestStatus::Routed | OpenDataRequestStatus::Filed => continue,
                OpenDataRequestStatus::Accepted | OpenDataRequestStatus::Refused => {
                    Lateness::AnsweredLate
                }
            };
            out.push(LateOpenDataRequest {
                request_id: row.try_get("id")?,
                request: OpenDataRequestKind::parse(&row.try_get::<String, _>("request")?)?,
                dataset_id: row.try_get("dataset_id")?,
                provider_org,
                answer_due: due,
                state,
                answered_on: answered_ms.map(iso_day_of_ms),
                routed_seq: opt_u64(&row, "routed_seq")?.unwrap_or(0),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_and_bounded_and_contacts_have_no_control_characters() {
        assert_eq!(
            checked_text("subject", "  bus stops  ", MAX_SUBJECT_CHARS).ok(),
            Some("bus stops")
        );
        assert!(checked_text("subject", "   ", MAX_SUBJECT_CHARS).is_err());
        assert!(
            checked_text(
                "subject",
                &"字".repeat(MAX_SUBJECT_CHARS + 1),
                MAX_SUBJECT_CHARS
            )
            .is_err()
        );
        assert!(
            checked_text(
                "subject",
                &"字".repeat(MAX_SUBJECT_CHARS),
                MAX_SUBJECT_CHARS
            )
            .is_ok()
        );
        assert!(checked_contact("a@example.org").is_ok());
        assert!(checked_contact("a@example.org\nBcc: b@example.org").is_err());
    }

    #[test]
    fn the_text_hash_separates_subject_from_description() {
        assert_ne!(text_hash("ab", "c"), text_hash("a", "bc"));
        assert_eq!(text_hash("a", "b"), text_hash("a", "b"));
    }

    #[test]
    fn bodies_name_their_fields_and_refuse_others() {
        let new: NewOpenDataRequest = serde_json::from_value(serde_json::json!({
            "subject": "s", "description": "d"
        }))
        .unwrap();
        assert!(new.dataset_id.is_none() && new.contact.is_none());
        assert!(
            serde_json::from_value::<NewOpenDataRequest>(serde_json::json!({
                "subject": "s", "description": "d", "requester_org": "org-x"
            }))
            .is_err()
        );
        let answer: OpenDataAnswer =
            serde_json::from_value(serde_json::json!({"outcome": "refused", "reason": "r"}))
                .unwrap();
        assert_eq!(answer.outcome, OpenDataAnswerOutcome::Refused);
        assert_eq!(answer.outcome.status(), OpenDataRequestStatus::Refused);
        assert!(
            serde_json::from_value::<OpenDataAnswer>(serde_json::json!({"outcome": "maybe"}))
                .is_err()
        );
    }
}
