//! The supervisor's reports: compliance (deadlines, expiries, reviews) and privacy
//! budgets.
//!
//! Both are computed from the sandbox's own tables at the moment they are asked for;
//! nothing is cached, so a report is never staler than the rows behind it.
//!
//! **Compliance** ([`Compliance::compliance_report`]) lists, as of an instant:
//! - grant applications and objections past their working-day answer deadline: still
//!   unanswered (`pending`) or answered after it (`answered_late`);
//! - catalog entries submitted for publication that the data authority has not
//!   reviewed by their working-day deadline (`pending`), or reviewed after it
//!   (`answered_late`) (GD21 Art.10–11; XT Art.12, [`crate::lifecycle`]);
//! - catalog revisions made more than the allowed working days after the legal change
//!   that required them (GD21 Art.11; XT Art.14);
//! - conditional share requests between government departments that the owning
//!   department has not decided within 10 working days, or decided after them (GD18
//!   Art.19; [`crate::sharing`]);
//! - requests to open data that the provider they were routed to has not answered by
//!   their working-day deadline, or answered after it (SD22 Art.12; GD21 Art.34;
//!   [`crate::open_data_requests`]);
//! - accepted objections whose corrected version is missing after its 10-working-day
//!   deadline (`pending`) or came after it (`corrected_late`), and published datasets
//!   whose next version is overdue under their update frequency (SD22 Art.13; XT
//!   Art.20–22; GD21 Art.16; [`crate::quality`]);
//! - the data authority's rectification orders until they are closed, those still
//!   unanswered after their deadline marked `overdue` (GD21 Art.52; GD18 Art.31;
//!   [`crate::rectification`]);
//! - approved grants expiring within 30 days;
//! - data asset certificates past their validity;
//! - releases with fewer approving reviewers, or fewer approving reviewer
//!   organisations, than the output required (two independent reviewers at L3 and
//!   above). A DP output auto-released under its provider's policy has none and is
//!   listed too, marked `auto_released`, so the supervisor sees every release that
//!   left with less review than the data's level calls for.
//!
//! Deadlines are dates (`YYYY-MM-DD`, UTC): an item is past its deadline from the day
//! after it. The instant defaults to now; a supervisor may ask "as of" a date (its
//! 00:00 UTC) to see what will be overdue by then.
//!
//! **Budgets** ([`Compliance::budget_report`]) gives, for every grant ever approved, ε and
//! δ granted against spent and the query budget used, with totals per dataset and per
//! developer organisation. Budgets are integers (µε and 1e-12 δ, see
//! [`crate::grants`]); the report also sums the `PrivacySpend` ledger entries per grant
//! and says whether the ledger agrees with the table, to the unit.

use std::collections::BTreeMap;

use pdx_ids::{DatasetId, GrantId, ObjectionId, OrgId, OutputId, ReleaseId};
use pdx_ledger::EntryKind;
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::{PrivacySpend, decode};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::grants::{DELTA_UNIT, EPSILON_UNIT};
use crate::store::u64_of;
use crate::workdays::{iso_day_of_ms, midnight_ms};
use crate::{Result, SandboxError};

crate::service! {
    /// The compliance and budget reports.
    Compliance
}

/// Grants expiring within this many days are listed.
pub const EXPIRY_WINDOW_DAYS: i64 = 30;
const DAY_MS: i64 = 86_400_000;

/// Where a late item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Lateness {
    /// Still unanswered after its deadline.
    Pending,
    /// Answered, but after its deadline.
    AnsweredLate,
}

/// A grant application past its answer deadline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LateGrant {
    /// Grant id.
    pub grant_id: GrantId,
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Applicant (developer organisation).
    pub applicant_org: OrgId,
    /// Provider that had to answer.
    pub provider_org: OrgId,
    /// Answer deadline, `YYYY-MM-DD`.
    pub answer_deadline: String,
    /// Pending or answered late.
    pub state: Lateness,
    /// Day of the answer, if answered.
    pub answered_on: Option<String>,
}

/// An objection past its answer deadline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LateObjection {
    /// Objection id.
    pub objection_id: ObjectionId,
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Version objected to.
    pub version: u64,
    /// Provider that had to answer.
    pub provider_org: OrgId,
    /// Organisation that objected.
    pub objector_org: OrgId,
    /// Answer deadline, `YYYY-MM-DD`.
    pub answer_deadline: String,
    /// Pending or answered late.
    pub state: Lateness,
    /// Day of the answer, if answered.
    pub answered_on: Option<String>,
    /// Ledger seq of the `Objection` entry.
    pub objection_seq: u64,
}

/// A catalog entry submitted for publication that the data authority reviewed after its
/// deadline, or has not reviewed by it (GD21 Art.10–11; XT Art.12).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LateCatalogReview {
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Its provider, which submitted it.
    pub provider_org: OrgId,
    /// The submission's round (1 for the first).
    pub round: u64,
    /// The catalog revision submitted.
    pub revision: u64,
    /// Review deadline, `YYYY-MM-DD`.
    pub review_due: String,
    /// Pending or answered late.
    pub state: Lateness,
    /// Day of the decision, if decided.
    pub answered_on: Option<String>,
    /// The decision (`approved` or `returned`), if decided.
    pub decision: Option<String>,
    /// The data authority's organisation, if decided.
    pub reviewer_org: Option<OrgId>,
    /// Ledger seq of the `submitted` `CatalogDecision` entry.
    pub submission_seq: u64,
}

/// A catalog revision made after the deadline its legal change set (GD21 Art.11; XT
/// Art.14).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LateCatalogRevision {
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Its provider, which made the revision.
    pub provider_org: OrgId,
    /// The revision.
    pub revision: u64,
    /// The legal change's date, `YYYY-MM-DD`.
    pub legal_change_date: String,
    /// The update deadline, `YYYY-MM-DD`.
    pub update_due: String,
    /// Day of the revision.
    pub revised_on: String,
    /// Ledger seq of the `CatalogRevision` entry.
    pub revision_seq: Option<u64>,
}

/// An approved grant that ends soon.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExpiringGrant {
    /// Grant id.
    pub grant_id: GrantId,
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Holder (developer organisation).
    pub applicant_org: OrgId,
    /// Provider.
    pub provider_org: OrgId,
    /// Expiry, ms since epoch.
    pub expires_ms: i64,
    /// Whole days left (0 on the last day).
    pub days_left: i64,
}

/// A certificate past its validity.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExpiredCertificate {
    /// Certificate number.
    pub certificate_no: String,
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Version.
    pub version: u64,
    /// Provider (holder).
    pub provider_org: OrgId,
    /// End of validity (RFC 3339).
    pub valid_until: String,
    /// True if this is the dataset's newest version (an older one being past its
    /// validity matters less once a newer version is certified).
    pub latest_version: bool,
    /// Ledger seq of the `AssetCertificate` entry.
    pub certificate_seq: u64,
}

/// A release that left with less review than its output required.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnderReviewedRelease {
    /// Release id.
    pub release_id: ReleaseId,
    /// Output id.
    pub output_id: OutputId,
    /// Developer organisation.
    pub developer_org: OrgId,
    /// Approvals the output required.
    pub required_reviews: u64,
    /// Approving reviewer keys.
    pub approvals: u64,
    /// Distinct organisations of the approving reviewers.
    pub approving_orgs: u64,
    /// Released without any review (DP auto-release under the provider's policy).
    pub auto_released: bool,
    /// Ledger seq of the `Release` entry.
    pub release_seq: Option<u64>,
}

/// The compliance report.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComplianceReport {
    /// The instant the report is for (RFC 3339).
    pub as_of: String,
    /// Grant applications past their answer deadline.
    pub late_grant_applications: Vec<LateGrant>,
    /// Objections past their answer deadline.
    pub late_objections: Vec<LateObjection>,
    /// Catalog entries the data authority reviewed late, or has not reviewed in time.
    pub late_catalog_reviews: Vec<LateCatalogReview>,
    /// Catalog revisions made late after a legal change.
    pub late_catalog_revisions: Vec<LateCatalogRevision>,
    /// Conditional share requests between departments decided late, or not decided in
    /// time (GD18 Art.19).
    pub late_share_decisions: Vec<crate::sharing::LateShareDecision>,
    /// Requests to open data answered late, or not answered in time (SD22 Art.12;
    /// GD21 Art.34).
    pub late_open_data_requests: Vec<crate::open_data_requests::LateOpenDataRequest>,
    /// Accepted objections whose corrected version is overdue, or came late (SD22
    /// Art.13; XT Art.22).
    pub late_corrections: Vec<crate::quality::LateCorrection>,
    /// Published datasets whose next version is overdue under their update frequency
    /// (GD21 Art.16; XT Art.20).
    pub overdue_updates: Vec<crate::quality::OverdueUpdate>,
    /// The data authority's rectification orders not yet closed, overdue ones marked
    /// (GD21 Art.52; GD18 Art.31).
    pub open_rectifications: Vec<crate::rectification::OpenRectification>,
    /// Approved grants expiring within 30 days.
    pub expiring_grants: Vec<ExpiringGrant>,
    /// Certificates past their validity.
    pub expired_certificates: Vec<ExpiredCertificate>,
    /// Releases approved by fewer reviewers than required.
    pub under_reviewed_releases: Vec<UnderReviewedRelease>,
    /// True when every list is empty.
    pub clean: bool,
}

/// One grant's budget.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantBudget {
    /// Grant id.
    pub grant_id: GrantId,
    /// Dataset.
    pub dataset_id: DatasetId,
    /// Holder (developer organisation).
    pub applicant_org: OrgId,
    /// Provider.
    pub provider_org: OrgId,
    /// `approved` or `revoked`.
    pub status: String,
    /// ε granted.
    pub epsilon_granted: f64,
    /// ε spent.
    pub epsilon_spent: f64,
    /// ε left.
    pub epsilon_remaining: f64,
    /// δ granted.
    pub delta_granted: f64,
    /// δ spent.
    pub delta_spent: f64,
    /// Model runs allowed.
    pub queries_granted: u64,
    /// Model runs used.
    pub queries_used: u64,
    /// `PrivacySpend` entries on the ledger for this grant.
    pub ledger_spends: u64,
    /// ε spent according to the ledger.
    pub ledger_epsilon_spent: f64,
    /// δ spent according to the ledger.
    pub ledger_delta_spent: f64,
    /// True if the ledger's sums equal the table's, to the unit.
    pub ledger_agrees: bool,
}

/// Budget totals for a dataset or a developer organisation, by its typed id `K`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetTotals<K> {
    /// The dataset id or organisation id.
    pub key: K,
    /// Grants counted.
    pub grants: u64,
    /// ε granted.
    pub epsilon_granted: f64,
    /// ε spent.
    pub epsilon_spent: f64,
    /// δ granted.
    pub delta_granted: f64,
    /// δ spent.
    pub delta_spent: f64,
    /// Model runs allowed.
    pub queries_granted: u64,
    /// Model runs used.
    pub queries_used: u64,
}

/// The privacy-budget report.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetReport {
    /// Every grant ever approved, by dataset then grant id.
    pub grants: Vec<GrantBudget>,
    /// Totals per dataset.
    pub datasets: Vec<BudgetTotals<DatasetId>>,
    /// Totals per developer organisation.
    pub developers: Vec<BudgetTotals<OrgId>>,
    /// Privacy spends on the ledger that name no grant in the table.
    pub unmatched_ledger_spends: u64,
    /// True if every grant's ledger sums agree and no spend is unmatched.
    pub ledger_agrees: bool,
}

/// Integer sums, converted to floats only for display.
#[derive(Clone, Copy, Default)]
struct Units {
    grants: u64,
    eps: i64,
    eps_spent: i64,
    delta: i64,
    delta_spent: i64,
    queries: u64,
    queries_used: u64,
}

impl Units {
    fn add(&mut self, other: &Units) {
        self.grants += other.grants;
        self.eps = self.eps.saturating_add(other.eps);
        self.eps_spent = self.eps_spent.saturating_add(other.eps_spent);
        self.delta = self.delta.saturating_add(other.delta);
        self.delta_spent = self.delta_spent.saturating_add(other.delta_spent);
        self.queries = self.queries.saturating_add(other.queries);
        self.queries_used = self.queries_used.saturating_add(other.queries_used);
    }

    fn totals<K: Clone>(&self, key: &K) -> BudgetTotals<K> {
        BudgetTotals {
            key: key.clone(),
            grants: self.grants,
            epsilon_granted: self.eps as f64 / EPSILON_UNIT,
            epsilon_spent: self.eps_spent as f64 / EPSILON_UNIT,
            delta_granted: self.delta as f64 / DELTA_UNIT,
            delta_spent: self.delta_spent as f64 / DELTA_UNIT,
            queries_granted: self.queries,
            queries_used: self.queries_used,
        }
    }
}

/// A decimal ε or δ string from a `PrivacySpend` entry, in integer units.
fn spend_units(text: &str, unit: f64) -> Option<i64> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let units = (value * unit).round();
    (units <= 1e15).then_some(units as i64)
}

/// The instant a report is for: 00:00 UTC of `as_of`, or now.
pub fn report_instant(as_of: Option<Date>) -> i64 {
    match as_of {
        Some(day) => midnight_ms(day),
        None => now_ms(),
    }
}

fn rfc3339_of_ms(ms: i64) -> Result<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| SandboxError::Invalid("the report date is out of range".into()))
}

impl Compliance {
    /// The compliance report as of `at_ms` (ms since epoch; see [`report_instant`]).
    pub async fn compliance_report(&self, at_ms: i64) -> Result<ComplianceReport> {
        let as_of = rfc3339_of_ms(at_ms)?;
        let today = iso_day_of_ms(at_ms);
        let late_grant_applications = self.late_grants(&today).await?;
        let late_objections = self.late_objections(&today).await?;
        let late_catalog_reviews = self.late_catalog_reviews(&today).await?;
        let late_catalog_revisions = self.late_catalog_revisions().await?;
        let late_share_decisions = self.sharing().late_decisions(&today).await?;
        let late_open_data_requests = self.open_data_requests().late_requests(&today).await?;
        let late_corrections = self.quality().late_corrections(&today).await?;
        let overdue_updates = self.quality().overdue_updates(&today).await?;
        let open_rectifications = self.rectifications().open_orders(&today).await?;
        let expiring_grants = self.expiring_grants(at_ms).await?;
        let expired_certificates = self.expired_certificates(at_ms).await?;
        let under_reviewed_releases = self.under_reviewed_releases().await?;
        let clean = late_grant_applications.is_empty()
            && late_objections.is_empty()
            && late_catalog_reviews.is_empty()
            && late_catalog_revisions.is_empty()
            && late_share_decisions.is_empty()
            && late_open_data_requests.is_empty()
            && late_corrections.is_empty()
            && overdue_updates.is_empty()
            && open_rectifications.is_empty()
            && expiring_grants.is_empty()
            && expired_certificates.is_empty()
            && under_reviewed_releases.is_empty();
        Ok(ComplianceReport {
            as_of,
            late_grant_applications,
            late_objections,
            late_catalog_reviews,
            late_catalog_revisions,
            late_share_decisions,
            late_open_data_requests,
            late_corrections,
            overdue_updates,
            open_rectifications,
            expiring_grants,
            expired_certificates,
            under_reviewed_releases,
            clean,
        })
    }

    async fn late_grants(&self, today: &str) -> Result<Vec<LateGrant>> {
        // Dates are compared in Rust: text collation differs between the backends.
        let rows = sqlx::query(
            "SELECT id, dataset_id, applicant_org, provider_org, status, answer_deadline, \
             decided_ms, starts_ms FROM grants ORDER BY answer_deadline, id",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let deadline: String = row.try_get("answer_deadline")?;
            let status: String = row.try_get("status")?;
            // An approval's decision time is its start (a later revocation overwrites
            // `decided_ms`); a refusal's is `decided_ms`.
            let answered_ms = row
                .try_get::<Option<i64>, _>("starts_ms")?
                .or(row.try_get::<Option<i64>, _>("decided_ms")?);
            let (state, answered_on) = match (status.as_str(), answered_ms) {
                ("pending", _) if today > deadline.as_str() => (Lateness::Pending, None),
                ("pending", _) => continue,
                (_, Some(ms)) if iso_day_of_ms(ms) > deadline => {
                    (Lateness::AnsweredLate, Some(iso_day_of_ms(ms)))
                }
                _ => continue,
            };
            out.push(LateGrant {
                grant_id: row.try_get("id")?,
                dataset_id: row.try_get("dataset_id")?,
                applicant_org: row.try_get("applicant_org")?,
                provider_org: row.try_get("provider_org")?,
                answer_deadline: deadline,
                state,
                answered_on,
            });
        }
        Ok(out)
    }

    async fn late_objections(&self, today: &str) -> Result<Vec<LateObjection>> {
        let rows = sqlx::query(
            "SELECT id, dataset_id, version, provider_org, objector_org, status, \
             answer_deadline, answered_ms, answered_late, objection_seq FROM objections \
             WHERE status = 'open' OR answered_late = 1 ORDER BY answer_deadline, id",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let deadline: String = row.try_get("answer_deadline")?;
            let status: String = row.try_get("status")?;
            let answered_ms: Option<i64> = row.try_get("answered_ms")?;
            let state = if status == "open" {
                if today <= deadline.as_str() {
                    continue;
                }
                Lateness::Pending
            } else {
                Lateness::AnsweredLate
            };
            out.push(LateObjection {
                objection_id: row.try_get("id")?,
                dataset_id: row.try_get("dataset_id")?,
                version: u64_of(row.try_get("version")?),
                provider_org: row.try_get("provider_org")?,
                objector_org: row.try_get("objector_org")?,
                answer_deadline: deadline,
                state,
                answered_on: answered_ms.map(iso_day_of_ms),
                objection_seq: u64_of(row.try_get("objection_seq")?),
            });
        }
        Ok(out)
    }

    async fn late_catalog_reviews(&self, today: &str) -> Result<Vec<LateCatalogReview>> {
        let rows = sqlx::query(
            "SELECT dataset_id, round, revision, provider_org, review_due, decision, \
             reviewer_org, reviewed_ms, reviewed_late, submission_seq FROM catalog_reviews \
             WHERE decision IS NULL OR reviewed_late = 1 ORDER BY review_due, dataset_id, round",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let due: String = row.try_get("review_due")?;
            let decision: Option<String> = row.try_get("decision")?;
            let state = match decision {
                None if today > due.as_str() => Lateness::Pending,
                None => continue,
                Some(_) => Lateness::AnsweredLate,
            };
            let reviewed_ms: Option<i64> = row.try_get("reviewed_ms")?;
            out.push(LateCatalogReview {
                dataset_id: row.try_get("dataset_id")?,
                provider_org: row.try_get("provider_org")?,
                round: u64_of(row.try_get("round")?),
                revision: u64_of(row.try_get("revision")?),
                review_due: due,
                state,
                answered_on: reviewed_ms.map(iso_day_of_ms),
                decision,
                reviewer_org: row.try_get("reviewer_org")?,
                submission_seq: u64_of(row.try_get("submission_seq")?),
            });
        }
        Ok(out)
    }

    async fn late_catalog_revisions(&self) -> Result<Vec<LateCatalogRevision>> {
        let rows = sqlx::query(
            "SELECT dataset_id, revision, provider_org, legal_change_date, update_due, \
             created_ms, revision_seq FROM catalog_revisions WHERE late = 1 \
             ORDER BY created_ms, dataset_id, revision",
        )
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(late_revision_from_row).collect()
    }

    async fn expiring_grants(&self, at_ms: i64) -> Result<Vec<ExpiringGrant>> {
        let until = at_ms.saturating_add(EXPIRY_WINDOW_DAYS * DAY_MS);
        let rows = sqlx::query(
            "SELECT id, dataset_id, applicant_org, provider_org, expires_ms FROM grants \
             WHERE status = 'approved' AND expires_ms >= $1 AND expires_ms < $2 \
             ORDER BY expires_ms, id",
        )
        .bind(at_ms)
        .bind(until)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter()
            .map(|row| {
                let expires_ms: i64 = row.try_get("expires_ms")?;
                Ok(ExpiringGrant {
                    grant_id: row.try_get("id")?,
                    dataset_id: row.try_get("dataset_id")?,
                    applicant_org: row.try_get("applicant_org")?,
                    provider_org: row.try_get("provider_org")?,
                    expires_ms,
                    days_left: (expires_ms - at_ms) / DAY_MS,
                })
            })
            .collect()
    }

    // A destroyed version's certificate no longer needs renewing (GD21 Art.40): its
    // data is gone, and its tombstone says so.
    async fn expired_certificates(&self, at_ms: i64) -> Result<Vec<ExpiredCertificate>> {
        let rows = sqlx::query(
            "SELECT v.dataset_id, v.version, v.certificate_no, v.certificate_seq, v.valid_until, \
             d.provider_org, (SELECT MAX(l.version) FROM dataset_versions l \
             WHERE l.dataset_id = v.dataset_id) AS latest \
             FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id \
             WHERE NOT EXISTS (SELECT 1 FROM dataset_destructions x \
             WHERE x.dataset_id = v.dataset_id AND x.version = v.version) \
             ORDER BY v.dataset_id, v.version",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let valid_until: String = row.try_get("valid_until")?;
            let until = OffsetDateTime::parse(&valid_until, &Rfc3339).map_err(|_| {
                SandboxError::Internal("a stored certificate validity is not RFC 3339".into())
            })?;
            let until_ms = i64::try_from(until.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            if until_ms >= at_ms {
                continue;
            }
            let version: i64 = row.try_get("version")?;
            let latest: Option<i64> = row.try_get("latest")?;
            out.push(ExpiredCertificate {
                certificate_no: row.try_get("certificate_no")?,
                dataset_id: row.try_get("dataset_id")?,
                version: u64_of(version),
                provider_org: row.try_get("provider_org")?,
                valid_until,
                latest_version: latest == Some(version),
                certificate_seq: u64_of(row.try_get("certificate_seq")?),
            });
        }
        Ok(out)
    }

    async fn under_reviewed_releases(&self) -> Result<Vec<UnderReviewedRelease>> {
        let rows = sqlx::query(
            "SELECT o.id, o.release_id, o.release_seq, o.org_id, o.required_reviews, \
             (SELECT COUNT(*) FROM output_reviews r \
              WHERE r.output_id = o.id AND r.decision = 'approve') AS approvals, \
             (SELECT COUNT(DISTINCT r.reviewer_org) FROM output_reviews r \
              WHERE r.output_id = o.id AND r.decision = 'approve') AS approving_orgs \
             FROM outputs o WHERE o.status = 'released' AND o.required_reviews >= 2 \
             ORDER BY o.decided_ms, o.id",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let required = u64_of(row.try_get("required_reviews")?);
            let approvals = u64_of(row.try_get("approvals")?);
            let approving_orgs = u64_of(row.try_get("approving_orgs")?);
            if approvals >= required && approving_orgs >= required {
                continue;
            }
            out.push(UnderReviewedRelease {
                release_id: row
                    .try_get::<Option<ReleaseId>, _>("release_id")?
                    .ok_or_else(|| {
                        SandboxError::Internal("a released output has no release id".into())
                    })?,
                output_id: row.try_get("id")?,
                developer_org: row.try_get("org_id")?,
                required_reviews: required,
                approvals,
                approving_orgs,
                auto_released: approvals == 0,
                release_seq: row
                    .try_get::<Option<i64>, _>("release_seq")?
                    .and_then(|s| u64::try_from(s).ok()),
            });
        }
        Ok(out)
    }

    /// The privacy-budget report over every grant ever approved.
    pub async fn budget_report(&self) -> Result<BudgetReport> {
        let ledger = self.ledger_spends().await?;
        let rows = sqlx::query(
            "SELECT id, dataset_id, applicant_org, provider_org, status, epsilon_micro, \
             delta_pico, query_budget, epsilon_spent_micro, delta_spent_pico, queries_used \
             FROM grants WHERE starts_ms IS NOT NULL ORDER BY dataset_id, id",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut grants = Vec::with_capacity(rows.len());
        let mut datasets: BTreeMap<DatasetId, Units> = BTreeMap::new();
        let mut developers: BTreeMap<OrgId, Units> = BTreeMap::new();
        let mut matched = 0u64;
        for row in rows {
            let id: GrantId = row.try_get("id")?;
            let units = Units {
                grants: 1,
                eps: row.try_get("epsilon_micro")?,
                eps_spent: row.try_get("epsilon_spent_micro")?,
                delta: row.try_get("delta_pico")?,
                delta_spent: row.try_get("delta_spent_pico")?,
                queries: u64_of(row.try_get("query_budget")?),
                queries_used: u64_of(row.try_get("queries_used")?),
            };
            let on_ledger = ledger.get(id.as_str()).copied().unwrap_or_default();
            matched += on_ledger.spends;
            let dataset_id: DatasetId = row.try_get("dataset_id")?;
            let applicant_org: OrgId = row.try_get("applicant_org")?;
            datasets.entry(dataset_id.clone()).or_default().add(&units);
            developers
                .entry(applicant_org.clone())
                .or_default()
                .add(&units);
            grants.push(GrantBudget {
                grant_id: id,
                dataset_id,
                applicant_org,
                provider_org: row.try_get("provider_org")?,
                status: row.try_get("status")?,
                epsilon_granted: units.eps as f64 / EPSILON_UNIT,
                epsilon_spent: units.eps_spent as f64 / EPSILON_UNIT,
                epsilon_remaining: (units.eps - units.eps_spent).max(0) as f64 / EPSILON_UNIT,
                delta_granted: units.delta as f64 / DELTA_UNIT,
                delta_spent: units.delta_spent as f64 / DELTA_UNIT,
                queries_granted: units.queries,
                queries_used: units.queries_used,
                ledger_spends: on_ledger.spends,
                ledger_epsilon_spent: on_ledger.eps as f64 / EPSILON_UNIT,
                ledger_delta_spent: on_ledger.delta as f64 / DELTA_UNIT,
                ledger_agrees: on_ledger.eps == units.eps_spent
                    && on_ledger.delta == units.delta_spent,
            });
        }
        let total_spends: u64 = ledger.values().map(|s| s.spends).sum();
        let unmatched_ledger_spends = total_spends - matched.min(total_spends);
        let ledger_agrees = unmatched_ledger_spends == 0 && grants.iter().all(|g| g.ledger_agrees);
        Ok(BudgetReport {
            grants,
            datasets: datasets.iter().map(|(k, u)| u.totals(k)).collect(),
            developers: developers.iter().map(|(k, u)| u.totals(k)).collect(),
            unmatched_ledger_spends,
            ledger_agrees,
        })
    }

    /// Sums of the `PrivacySpend` ledger entries per grant, in integer units.
    async fn ledger_spends(&self) -> Result<BTreeMap<String, LedgerSpend>> {
        const PAGE: u32 = 1000;
        let mut out: BTreeMap<String, LedgerSpend> = BTreeMap::new();
        let mut from = 0u64;
        loop {
            let page = self
                .ledger()
                .entries_of_kind(&EntryKind::PrivacySpend, from, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for entry in &page {
                let spend: PrivacySpend = decode(entry).ok_or_else(|| {
                    SandboxError::Internal(format!(
                        "ledger entry {} is not a privacy spend",
                        entry.seq
                    ))
                })?;
                let (Some(eps), Some(delta)) = (
                    spend_units(&spend.epsilon, EPSILON_UNIT),
                    spend_units(&spend.delta, DELTA_UNIT),
                ) else {
                    return Err(SandboxError::Internal(format!(
                        "ledger entry {} has a malformed privacy cost",
                        entry.seq
                    )));
                };
                let sum = out.entry(spend.grant_id).or_default();
                sum.spends += 1;
                sum.eps = sum.eps.saturating_add(eps);
                sum.delta = sum.delta.saturating_add(delta);
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        Ok(out)
    }
}

fn late_revision_from_row(row: &AnyRow) -> Result<LateCatalogRevision> {
    let missing = || SandboxError::Internal("a late catalog revision has no legal change".into());
    Ok(LateCatalogRevision {
        dataset_id: row.try_get("dataset_id")?,
        provider_org: row.try_get("provider_org")?,
        revision: u64_of(row.try_get("revision")?),
        legal_change_date: row
            .try_get::<Option<String>, _>("legal_change_date")?
            .ok_or_else(missing)?,
        update_due: row
            .try_get::<Option<String>, _>("update_due")?
            .ok_or_else(missing)?,
        revised_on: iso_day_of_ms(row.try_get("created_ms")?),
        revision_seq: row
            .try_get::<Option<i64>, _>("revision_seq")?
            .and_then(|s| u64::try_from(s).ok()),
    })
}

/// One grant's spends as the ledger records them.
#[derive(Clone, Copy, Default)]
struct LedgerSpend {
    spends: u64,
    eps: i64,
    delta: i64,
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn ledger_cost_strings_round_trip_to_units() {
        // The run writes `format!("{}", micro as f64 / 1e6)`; reading it back must give
        // the same integer for every value a grant can hold.
        for micro in [0i64, 1, 7, 250_000, 1_000_000, 3_333_333, 100_000_000] {
            let text = format!("{}", micro as f64 / EPSILON_UNIT);
            assert_eq!(spend_units(&text, EPSILON_UNIT), Some(micro), "{text}");
        }
        for pico in [0i64, 1, 1_000, 999_999_999] {
            let text = format!("{}", pico as f64 / DELTA_UNIT);
            assert_eq!(spend_units(&text, DELTA_UNIT), Some(pico), "{text}");
        }
        assert_eq!(spend_units("-1", EPSILON_UNIT), None);
        assert_eq!(spend_units("NaN", EPSILON_UNIT), None);
        assert_eq!(spend_units("1e300", EPSILON_UNIT), None);
    }

    #[test]
    fn as_of_dates_start_at_midnight_utc() {
        // 2026-11-23T00:00:00Z.
        assert_eq!(
            report_instant(Some(date!(2026 - 11 - 23))),
            1_795_392_000_000
        );
        assert_eq!(
            iso_day_of_ms(report_instant(Some(date!(2026 - 11 - 23)))),
            "2026-11-23"
        );
    }
}
