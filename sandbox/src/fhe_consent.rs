//! Auditable consent for private lookups (GD21 Art.41): consent keys, commitments on
//! queries, and the supervisor's opening workflow.
//!
//! The cryptography (the signed bytes, the commitment, the checks) is in
//! `pdx_algorithms::fhe::consent`; this module is the workflow around it. Read
//! top-down:
//!
//! 1. **Consent keys** ([`FheConsent::register_consent_key`]). A `subject` organisation
//!    (the enterprise a bank looks up) registers an Ed25519 public key. A new key
//!    supersedes the current one from its registration on; old keys are kept, because
//!    each query is checked under the key that was current when it was made. Every
//!    registration is an `fhe_query` ledger entry (event `consent_key`), so the order of
//!    keys and queries is on the hash chain, not only in a table.
//! 2. **Commitments** ([`crate::fhe::Fhe::start_fhe_query`]). A query on
//!    conditionally open data must carry a `consent_commitment`; without one it is
//!    refused with 403 before anything is spent. The commitment is stored with the
//!    query and written on its `query` ledger entry; a commitment already used by a
//!    query is refused (409). pdx does not, and cannot, check it at query time: it is
//!    hiding.
//! 3. **Requests** ([`FheConsent::request_fhe_consent`]). A supervisor asks the bank to
//!    open one query's commitment, with a reason; the bank has
//!    [`CONSENT_ANSWER_WORKING_DAYS`] working days. One request per query is open at a
//!    time; after an invalid or refused answer the supervisor may ask again; after a
//!    verified one there is nothing left to ask.
//! 4. **Answers.** The bank opens the commitment ([`FheConsent::open_fhe_consent`])
//!    with the authorisation, the signature and the nonce, or refuses
//!    ([`FheConsent::refuse_fhe_consent`]) with a reason. pdx checks an opening against
//!    the query as recorded: the commitment, the authorisation's shape, the subject's
//!    key at the query's time, the signature, the bank, the template and the period, in
//!    that order.
//!
//! **Why an invalid opening is a 200, not a 4xx.** An opening that fails a check is
//! evidence: it is stored, written to the ledger (event `consent_answer`, outcome
//! `invalid` with the failed check) and closes the request, and the response says so.
//! A 4xx would tell the client that nothing happened and invite a retry, which is
//! false. Only a request that cannot be read at all (malformed JSON, hex of the wrong
//! length) is a 4xx, and it records nothing: the request stays open, and shows as
//! overdue after its deadline.
//!
//! Who sees what: the query's organisation (the bank) and supervisors read a query's
//! consent status, including every opening as sent; the subject named by an opening
//! that matched the commitment is a party to the ledger entry, so it can read it too.
//! Banks cannot look up one subject's consent key: asking for it just before a lookup
//! would tell the platform whom the lookup is about. The subject hands its public key
//! to the bank with the authorisation, and the bank checks the signature locally.

use pdx_algorithms::fhe::consent::{
    COMMITMENT_LEN, CommittedQuery, ConsentCheck, OpeningText, PUBLIC_KEY_LEN, decode_hex,
    parse_public_key, verify_opening,
};
use pdx_ids::{ConsentKeyId, ConsentRequestId, FheQueryId, FheTemplateId, OrgId};
use pdx_ledger::db::{Backend, now_ms};
use pdx_ledger::kinds::{FheConsentAnswer, FheConsentKey, FheConsentRequest, FheRecord};
use pdx_ledger::{Actor, Hash32};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::store::{self, opt_u64};
use crate::workdays::{iso_date, today_iso};
use crate::{Result, SandboxError, actor_key, actor_org, checked_text};

crate::service! {
    /// Consent to private lookups: subjects' keys, authorisations and their opening.
    FheConsent
}

/// Working days a bank has to answer a supervisor's request to open a commitment.
pub const CONSENT_ANSWER_WORKING_DAYS: u32 = 5;

/// Longest reason of a request or a refusal, in characters.
const MAX_REASON_CHARS: usize = 4000;

/// A subject organisation's consent key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentKey {
    /// Registration id.
    pub id: ConsentKeyId,
    /// The subject organisation.
    pub org_id: OrgId,
    /// Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// Current from, ms since epoch (inclusive).
    pub registered_ms: i64,
    /// Superseded by the next key at, ms since epoch (exclusive); absent while current.
    pub superseded_ms: Option<i64>,
    /// Ledger seq of the `consent_key` entry.
    pub ledger_seq: u64,
}

/// Where a consent request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// Waiting for the bank.
    Open,
    /// Opened, and every check passed.
    Verified,
    /// Opened, and a check failed (`failed_check` names the first).
    Invalid,
    /// The bank refused to open it.
    Refused,
}

impl ConsentStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Open => "open",
            ConsentStatus::Verified => "verified",
            ConsentStatus::Invalid => "invalid",
            ConsentStatus::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<ConsentStatus> {
        Ok(match s {
            "open" => ConsentStatus::Open,
            "verified" => ConsentStatus::Verified,
            "invalid" => ConsentStatus::Invalid,
            "refused" => ConsentStatus::Refused,
            other => {
                return Err(SandboxError::Internal(format!(
                    "unknown consent status {other}"
                )));
            }
        })
    }
}

/// A supervisor's request to open one query's commitment, and the bank's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentRequest {
    /// Request id.
    pub id: ConsentRequestId,
    /// The query.
    pub query_id: FheQueryId,
    /// The bank that must answer.
    pub bank_org: OrgId,
    /// The supervisor organisation that asked.
    pub requester_org: OrgId,
    /// Why it asked.
    pub reason: String,
    /// Status.
    pub status: ConsentStatus,
    /// Asked, ms since epoch.
    pub requested_ms: i64,
    /// Answer deadline, `YYYY-MM-DD` (UTC), working days from the request.
    pub answer_deadline: String,
    /// Open and past its deadline today (UTC).
    pub overdue: bool,
    /// Ledger seq of the `consent_request` entry.
    pub request_seq: u64,
    /// Answered, ms since epoch.
    pub answered_ms: Option<i64>,
    /// True if the answer came after the deadline.
    pub answered_late: bool,
    /// For an invalid opening: the first check that failed (`commitment`,
    /// `well_formed`, `subject_key`, `signature`, `bank`, `template`, `period`).
    pub failed_check: Option<String>,
    /// What that check means.
    pub failure: Option<String>,
    /// The bank's reason, for a refusal.
    pub refusal: Option<String>,
    /// The subject the opening names (when it matched the commitment and that
    /// organisation has registered a consent key).
    pub subject_org: Option<OrgId>,
    /// The subject's key the signature was checked under, hex.
    pub subject_key: Option<String>,
    /// The opening as sent: `authorisation`, `signature`, `nonce`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub opening: Option<serde_json::Value>,
    /// Ledger seq of the `consent_answer` entry.
    pub answer_seq: Option<u64>,
}

/// A query's consent: its commitment and every request to open it, newest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentView {
    /// The query.
    pub query_id: FheQueryId,
    /// The bank that made it.
    pub bank_org: OrgId,
    /// Its template.
    pub template_id: FheTemplateId,
    /// When it was admitted, ms since epoch (the time the authorisation must cover).
    pub queried_ms: i64,
    /// The commitment it carried, hex (absent on unconditionally open data without one).
    pub consent_commitment: Option<String>,
    /// The status of the latest request, if any.
    pub status: Option<ConsentStatus>,
    /// Every request, newest first.
    pub requests: Vec<ConsentRequest>,
}

/// Parses a `consent_commitment` (64 hex digits), as a 422 when malformed.
pub fn parse_commitment(text: &str) -> Result<[u8; COMMITMENT_LEN]> {
    decode_hex::<COMMITMENT_LEN>("consent_commitment", text)
        .map_err(|e| SandboxError::Invalid(e.to_string()))
}

fn key_from_row(row: &AnyRow) -> Result<ConsentKey> {
    Ok(ConsentKey {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        public_key: row.try_get("public_key")?,
        registered_ms: row.try_get("registered_ms")?,
        superseded_ms: row.try_get("superseded_ms")?,
        ledger_seq: u64::try_from(row.try_get::<i64, _>("ledger_seq")?).unwrap_or(0),
    })
}

fn request_from_row(row: &AnyRow, today: &str) -> Result<ConsentRequest> {
    let status = ConsentStatus::parse(&row.try_get::<String, _>("status")?)?;
    let answer_deadline: String = row.try_get("answer_deadline")?;
    let failed_check: Option<String> = row.try_get("failed_check")?;
    let opening: Option<String> = row.try_get("opening_json")?;
    let opening = opening
        .map(|text| serde_json::from_str::<serde_json::Value>(&text))
        .transpose()
        .map_err(|e| SandboxError::Internal(format!("stored consent opening: {e}")))?;
    Ok(ConsentRequest {
        id: row.try_get("id")?,
        query_id: row.try_get("query_id")?,
        bank_org: row.try_get("bank_org")?,
        requester_org: row.try_get("requester_org")?,
        reason: row.try_get("reason")?,
        overdue: status == ConsentStatus::Open && today > answer_deadline.as_str(),
        status,
        requested_ms: row.try_get("requested_ms")?,
        answer_deadline,
        request_seq: u64::try_from(row.try_get::<i64, _>("request_seq")?).unwrap_or(0),
        answered_ms: row.try_get("answered_ms")?,
        answered_late: row.try_get::<i64, _>("answered_late")? != 0,
        failure: failed_check
            .as_deref()
            .and_then(ConsentCheck::parse)
            .map(|c| c.describe().to_string()),
        failed_check,
        refusal: row.try_get("refusal")?,
        subject_org: row.try_get("subject_org")?,
        subject_key: row.try_get("subject_key")?,
        opening,
        answer_seq: opt_u64(row, "answer_seq")?,
    })
}

/// The bank's answer to an open request, as it is stored and written.
struct BankAnswer {
    status: ConsentStatus,
    failed_check: Option<String>,
    subject_org: Option<OrgId>,
    subject_key: Option<String>,
    opening: Option<serde_json::Value>,
    refusal: Option<String>,
}

impl FheConsent {
    /// Registers `public_key` (Ed25519, 64 hex digits) as the caller's current consent
    /// key (subject organisations). Returns the key and whether it is new: the current
    /// key sent again is returned as it is.
    pub async fn register_consent_key(
        &self,
        actor: &Actor,
        public_key: &str,
    ) -> Result<(ConsentKey, bool)> {
        let bytes =
            parse_public_key(public_key).map_err(|e| SandboxError::Invalid(e.to_string()))?;
        let public_key = hex::encode(bytes);
        let org = actor_org(actor)?;
        let mut tx = self.db().begin_write().await?;
        if self.db().backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("pdx-consent-key:{org}"))
                .execute(&mut *tx)
                .await?;
        }
        let foreign =
            sqlx::query("SELECT id FROM consent_keys WHERE public_key = $1 AND org_id <> $2")
                .bind(public_key.clone())
                .bind(org.clone())
                .fetch_optional(&mut *tx)
                .await?;
        if foreign.is_some() {
            return Err(SandboxError::Conflict(
                "this key is registered to another organisation; generate a key of your own".into(),
            ));
        }
        let current =
            sqlx::query("SELECT * FROM consent_keys WHERE org_id = $1 AND superseded_ms IS NULL")
                .bind(org.clone())
                .fetch_optional(&mut *tx)
                .await?;
        let current = current.as_ref().map(key_from_row).transpose()?;
        if let Some(c) = &current
            && c.public_key == public_key
        {
            return Ok((c.clone(), false));
        }
        let id = ConsentKeyId::random();
        let now = now_ms();
        if let Some(c) = &current {
            store::consent::supersede_key(&mut *tx, &c.id, now).await?;
        }
        let entry = FheRecord::ConsentKey(FheConsentKey {
            subject_org: actor.org.clone(),
            key_id: id.to_string(),
            public_key: public_key.clone(),
            replaces: current.as_ref().map(|c| c.id.to_string()),
        });
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::consent::insert_key(
            &mut *tx,
            &store::consent::NewConsentKey {
                id: &id,
                org_id: &org,
                public_key: &public_key,
                registered_ms: now,
                ledger_seq: appended.seq as i64,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(key = %id, org = %org, "registered a consent key");
        Ok((
            ConsentKey {
                id,
                org_id: org,
                public_key,
                registered_ms: now,
                superseded_ms: None,
                ledger_seq: appended.seq,
            },
            true,
        ))
    }

    /// Consent keys, newest first: one organisation's, or every one (`None`, for
    /// supervisors).
    pub async fn consent_keys(&self, org: Option<&OrgId>) -> Result<Vec<ConsentKey>> {
        let rows = match org {
            Some(org) => {
                sqlx::query("SELECT * FROM consent_keys WHERE org_id = $1 ORDER BY ledger_seq DESC")
                    .bind(org.clone())
                    .fetch_all(self.db().pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM consent_keys ORDER BY ledger_seq DESC LIMIT 1000")
                    .fetch_all(self.db().pool())
                    .await?
            }
        };
        rows.iter().map(key_from_row).collect()
    }

    /// The key `org` had registered at `at_ms`, if any.
    async fn consent_key_at(
        &self,
        org: &OrgId,
        at_ms: i64,
    ) -> Result<Option<[u8; PUBLIC_KEY_LEN]>> {
        let row = sqlx::query(
            "SELECT public_key FROM consent_keys WHERE org_id = $1 AND registered_ms <= $2 \
             AND (superseded_ms IS NULL OR superseded_ms > $2) ORDER BY registered_ms DESC LIMIT 1",
        )
        .bind(org.clone())
        .bind(at_ms)
        .fetch_optional(self.db().pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let text: String = row.try_get("public_key")?;
        decode_hex::<PUBLIC_KEY_LEN>("public_key", &text)
            .map(Some)
            .map_err(|_| SandboxError::Internal("a stored consent key is not hex".into()))
    }

    /// True if `org` has ever registered a consent key.
    async fn is_consent_subject(&self, org: &OrgId) -> Result<bool> {
        Ok(
            sqlx::query("SELECT id FROM consent_keys WHERE org_id = $1 LIMIT 1")
                .bind(org.clone())
                .fetch_optional(self.db().pool())
                .await?
                .is_some(),
        )
    }

    /// A query's consent: the query's organisation, or anyone when `all` (supervisors).
    pub async fn fhe_consent(
        &self,
        query_id: &FheQueryId,
        org: &OrgId,
        all: bool,
    ) -> Result<ConsentView> {
        let q = self.fhe().fhe_query(query_id, org, all).await?;
        let rows = sqlx::query(
            "SELECT * FROM fhe_consent_requests WHERE query_id = $1 ORDER BY request_seq DESC",
        )
        .bind(q.id.clone())
        .fetch_all(self.db().pool())
        .await?;
        let today = today_iso();
        let requests = rows
            .iter()
            .map(|r| request_from_row(r, &today))
            .collect::<Result<Vec<_>>>()?;
        let status = requests.first().map(|r| r.status);
        Ok(ConsentView {
            query_id: q.id,
            bank_org: q.org_id,
            template_id: q.template_id,
            queried_ms: q.created_ms,
            consent_commitment: q.consent_commitment,
            status,
            requests,
        })
    }

    /// A supervisor asks the bank that made a query to open its consent commitment.
    pub async fn request_fhe_consent(
        &self,
        actor: &Actor,
        query_id: &FheQueryId,
        reason: &str,
    ) -> Result<ConsentView> {
        let reason = checked_text("reason", reason, MAX_REASON_CHARS)?;
        let org = actor_org(actor)?;
        let requester_key = actor_key(actor)?;
        let view = self.fhe_consent(query_id, &org, true).await?;
        let Some(commitment) = view.consent_commitment.as_deref() else {
            return Err(SandboxError::Conflict(
                "the query carries no consent commitment (it read unconditionally open data without one)"
                    .into(),
            ));
        };
        match view.status {
            Some(ConsentStatus::Open) => {
                return Err(SandboxError::Conflict(
                    "a request to open this commitment is already waiting for the bank".into(),
                ));
            }
            Some(ConsentStatus::Verified) => {
                return Err(SandboxError::Conflict(
                    "this commitment was already opened and verified".into(),
                ));
            }
            _ => {}
        }
        let consent_commitment = Hash32::from_hex(commitment)
            .map_err(|_| SandboxError::Internal("stored consent commitment".into()))?;
        let id = ConsentRequestId::random();
        let now = now_ms();
        let deadline = iso_date(
            self.calendar()
                .deadline_from_ms(now, CONSENT_ANSWER_WORKING_DAYS),
        );
        let entry = FheRecord::ConsentRequest(FheConsentRequest {
            request_id: id.to_string(),
            query_id: view.query_id.to_string(),
            bank_org: view.bank_org.to_string(),
            consent_commitment,
            reason: reason.to_string(),
            answer_deadline: deadline.clone(),
        });
        let mut tx = self.db().begin_write().await?;
        let waiting = sqlx::query(
            "SELECT id FROM fhe_consent_requests WHERE query_id = $1 AND status = 'open'",
        )
        .bind(view.query_id.clone())
        .fetch_optional(&mut *tx)
        .await?;
        if waiting.is_some() {
            return Err(SandboxError::Conflict(
                "a request to open this commitment is already waiting for the bank".into(),
            ));
        }
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::consent::insert_request(
            &mut *tx,
            &store::consent::NewConsentRequest {
                id: &id,
                query_id: &view.query_id,
                bank_org: &view.bank_org,
                requester_org: &org,
                requester_key: &requester_key,
                reason,
                requested_ms: now,
                answer_deadline: &deadline,
                request_seq: appended.seq as i64,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(request = %id, query = %view.query_id, "asked a bank to open a consent commitment");
        self.fhe_consent(query_id, &org, true).await
    }

    /// The bank opens a query's commitment. The opening is checked against the query as
    /// recorded and the outcome is stored and written to the ledger whether it verifies
    /// or not (see the module docs); only an unreadable opening is refused unrecorded.
    pub async fn open_fhe_consent(
        &self,
        actor: &Actor,
        query_id: &FheQueryId,
        text: OpeningText,
    ) -> Result<ConsentView> {
        let org = actor_org(actor)?;
        let q = self.fhe().fhe_query(query_id, &org, false).await?;
        let stored = q.consent_commitment.as_deref().ok_or_else(|| {
            SandboxError::Conflict("the query carries no consent commitment".into())
        })?;
        let commitment = decode_hex::<COMMITMENT_LEN>("consent_commitment", stored)
            .map_err(|_| SandboxError::Internal("stored consent commitment".into()))?;
        let opening = text
            .parse()
            .map_err(|e| SandboxError::Invalid(e.to_string()))?;
        // A subject that is not an organisation id names nobody: it has no key.
        let subject = OrgId::parse(&opening.authorisation.subject_org).ok();
        let key = match &subject {
            Some(subject) => self.consent_key_at(subject, q.created_ms).await?,
            None => None,
        };
        let facts = CommittedQuery {
            commitment: &commitment,
            bank_org: q.org_id.as_str(),
            template_id: q.template_id.as_str(),
            queried_ms: q.created_ms,
        };
        let verdict = verify_opening(&opening, &facts, key.as_ref());
        // What the bank committed to at query time names this subject: record it (and
        // make it a party to the entry) if it is a real subject organisation.
        let matched = verdict != Err(ConsentCheck::Commitment);
        let subject_org = if let Some(subject) = subject
            && matched
            && self.is_consent_subject(&subject).await?
        {
            Some(subject)
        } else {
            None
        };
        let subject_key = if matched { key.map(hex::encode) } else { None };
        let (status, failed_check) = match verdict {
            Ok(()) => (ConsentStatus::Verified, None),
            Err(check) => (ConsentStatus::Invalid, Some(check.as_str().to_string())),
        };
        let answer = BankAnswer {
            status,
            failed_check,
            subject_org,
            subject_key,
            opening: Some(
                serde_json::to_value(opening.to_text())
                    .map_err(|e| SandboxError::Internal(format!("consent opening: {e}")))?,
            ),
            refusal: None,
        };
        self.answer_fhe_consent(actor, &org, query_id, answer).await
    }

    /// The bank refuses to open a query's commitment, with a reason (recorded).
    pub async fn refuse_fhe_consent(
        &self,
        actor: &Actor,
        query_id: &FheQueryId,
        reason: &str,
    ) -> Result<ConsentView> {
        let reason = checked_text("reason", reason, MAX_REASON_CHARS)?;
        let org = actor_org(actor)?;
        self.fhe().fhe_query(query_id, &org, false).await?;
        let answer = BankAnswer {
            status: ConsentStatus::Refused,
            failed_check: None,
            subject_org: None,
            subject_key: None,
            opening: None,
            refusal: Some(reason.to_string()),
        };
        self.answer_fhe_consent(actor, &org, query_id, answer).await
    }

    async fn answer_fhe_consent(
        &self,
        actor: &Actor,
        org: &OrgId,
        query_id: &FheQueryId,
        answer: BankAnswer,
    ) -> Result<ConsentView> {
        let view = self.fhe_consent(query_id, org, false).await?;
        let Some(commitment) = view.consent_commitment.as_deref() else {
            return Err(SandboxError::Conflict(
                "the query carries no consent commitment".into(),
            ));
        };
        let consent_commitment = Hash32::from_hex(commitment)
            .map_err(|_| SandboxError::Internal("stored consent commitment".into()))?;
        let Some(request) = view
            .requests
            .iter()
            .find(|r| r.status == ConsentStatus::Open)
        else {
            return Err(SandboxError::Conflict(
                "no supervisor has asked to open this commitment, so there is nothing to answer"
                    .into(),
            ));
        };
        let now = now_ms();
        let late = today_iso() > request.answer_deadline;
        let BankAnswer {
            status,
            failed_check,
            subject_org,
            subject_key,
            opening,
            refusal,
        } = answer;
        let opening_json = opening.as_ref().map(|v| v.to_string());
        let entry = FheRecord::ConsentAnswer(FheConsentAnswer {
            request_id: request.id.to_string(),
            query_id: view.query_id.to_string(),
            bank_org: view.bank_org.to_string(),
            requester_org: request.requester_org.to_string(),
            consent_commitment,
            outcome: status.as_str().to_string(),
            failed_check: failed_check.clone(),
            subject_org: subject_org.as_ref().map(OrgId::to_string),
            subject_key: subject_key.clone(),
            opening,
            refusal: refusal.clone(),
            late,
        });
        let mut tx = self.db().begin_write().await?;
        let claimed = store::consent::answer_open_request(
            &mut *tx,
            &store::consent::ConsentAnswerRow {
                id: &request.id,
                status: status.as_str(),
                answered_ms: now,
                answered_late: i64::from(late),
                failed_check: failed_check.as_deref(),
                refusal: refusal.as_deref(),
                subject_org: subject_org.as_ref(),
                subject_key: subject_key.as_deref(),
                opening_json: opening_json.as_deref(),
            },
        )
        .await?;
        if claimed != 1 {
            return Err(SandboxError::Conflict(
                "the request was answered concurrently".into(),
            ));
        }
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::consent::set_answer_seq(&mut *tx, &request.id, appended.seq as i64).await?;
        tx.commit().await?;
        tracing::info!(
            request = %request.id,
            query = %view.query_id,
            outcome = status.as_str(),
            failed_check = failed_check.as_deref().unwrap_or("-"),
            "a bank answered a consent request"
        );
        self.fhe_consent(query_id, org, false).await
    }
}
