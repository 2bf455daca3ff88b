//! Grants: open-use agreements (开放利用协议) for conditional datasets.
//!
//! A developer applies for one dataset, stating the purpose, the columns, the model
//! kinds, a term of at most three years, a privacy budget (ε, δ) and a query budget. The
//! provider answers before a deadline counted in working days ([`crate::workdays`]):
//! it approves, possibly narrowing any of those terms, or refuses with a reason. Each
//! decision (and a later revocation) is a `GrantDecision` ledger entry written in the
//! same transaction as the row.
//!
//! **Budgets are integers.** ε is kept in micro-units and δ in units of 1e-12, so spends
//! add up exactly. A spend is one conditional `UPDATE … WHERE spent + cost <= budget`:
//! the database settles concurrent jobs, and a grant is never overspent, not even by
//! one unit.
//!
//! A grant is checked when each job *starts* ([`Grants::usable_grant`]): approved, not
//! expired, not revoked or suspended, held by the caller, for this dataset, and covering
//! the model kind and every column the model reads.
//!
//! **No grant on not-open data** (不予开放, SD22 Art.8; GD21 Art.32). A grant on a
//! not-open dataset cannot be filed, cannot be approved (a pending one filed before the
//! rule can only be refused), and an approved one is unusable
//! ([`crate::catalog::Dataset::reachable_by_developers`] at each step). When a dataset
//! becomes not open after publication (an approved open-attribute change, or the end of
//! an emergency relaxation that had opened it; [`crate::open_attributes`]), its pending
//! and approved grants are *suspended* with a reason, each with a `GrantDecision` entry
//! (`suspended`), in the same transaction as the change.
//!
//! **Terms** ([`crate::grant_terms`]). Each application states its purpose and the
//! purpose's kind (research, public interest or commercial), and carries the agreement
//! text the developer accepts (or the platform's standard agreement). The text is stored
//! with the grant, and its BLAKE3, the purpose and the kind are on the grant's
//! `GrantDecision` entries (the suspensions' entries name the grant only).

use pdx_ids::{DatasetId, GrantId, OrgId};
use pdx_ledger::Actor;
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::GrantDecision;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::catalog::OpenAttribute;
use crate::grant_terms::{PurposeKind, filed_terms};
use crate::store;
use crate::workdays::iso_date;
use crate::{Result, SandboxError, actor_org, validate_text};

crate::service! {
    /// Grants (open-use agreements) and their budgets.
    Grants
}

/// Longest grant term: three years (GY ch.6, authorised operation), counted generously
/// as 1,096 days.
pub const MAX_TERM_DAYS: u32 = 1096;
/// Micro-units per ε.
pub const EPSILON_UNIT: f64 = 1e6;
/// Units per δ (1e-12).
pub const DELTA_UNIT: f64 = 1e12;
const DAY_MS: i64 = 86_400_000;

/// A kind of algorithm model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// DataFusion SQL with automatic disclosure control.
    Sql,
    /// Differentially private restricted SQL on OpenDP.
    Dp,
    /// Encrypted lookups with TFHE.
    Fhe,
    /// OLS or logistic regression with ACRO-style output checks.
    Regression,
}

impl ModelKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Sql => "sql",
            ModelKind::Dp => "dp",
            ModelKind::Fhe => "fhe",
            ModelKind::Regression => "regression",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Result<ModelKind> {
        match s {
            "sql" => Ok(ModelKind::Sql),
            "dp" => Ok(ModelKind::Dp),
            "fhe" => Ok(ModelKind::Fhe),
            "regression" => Ok(ModelKind::Regression),
            _ => Err(SandboxError::Invalid(format!("unknown model kind `{s}`"))),
        }
    }
}

/// Where a grant is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Waiting for the provider.
    Pending,
    /// In force (until it expires).
    Approved,
    /// Refused, with a reason.
    Refused,
    /// Withdrawn by the provider.
    Revoked,
    /// Suspended because its dataset is not open (不予开放) any more: an approved
    /// open-attribute change made it not open, or an emergency relaxation that had
    /// opened it ended (SD22 Art.8; XT Art.23(7)). The reason says which. A suspended
    /// grant is unusable and stays suspended, even if the data is opened again through
    /// a de-identified derivative (a dataset of its own, with grants of its own).
    Suspended,
}

impl GrantStatus {
    fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Approved => "approved",
            GrantStatus::Refused => "refused",
            GrantStatus::Revoked => "revoked",
            GrantStatus::Suspended => "suspended",
        }
    }

    fn parse(s: &str) -> Result<GrantStatus> {
        Ok(match s {
            "pending" => GrantStatus::Pending,
            "approved" => GrantStatus::Approved,
            "refused" => GrantStatus::Refused,
            "revoked" => GrantStatus::Revoked,
            "suspended" => GrantStatus::Suspended,
            other => {
                return Err(SandboxError::Internal(format!(
                    "unknown grant status {other}"
                )));
            }
        })
    }
}

/// A developer's application.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantApplication {
    /// The conditional dataset.
    pub dataset_id: DatasetId,
    /// What the data will be used for.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 4000, pattern = r"\S")
    )]
    pub purpose: String,
    /// Columns the models may read.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub columns: Vec<String>,
    /// Model kinds the developer will submit.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub model_kinds: Vec<ModelKind>,
    /// Term in days, at most three years.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1096))]
    pub term_days: u32,
    /// Total ε for DP models (0 when no DP model is planned).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub epsilon: f64,
    /// Total δ for DP models.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, exclusive_maximum = 0.001))]
    pub delta: f64,
    /// Most model runs (SQL, DP or FHE queries) under the grant.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub query_budget: u64,
    /// The results serve research only (no commercial product may be built on them).
    #[serde(default)]
    pub research_only: bool,
    /// The kind of the purpose (`research`, `public_interest` or `commercial`), which
    /// decides the product licences the results may carry. Default: `research` for a
    /// research-only grant, `commercial` otherwise.
    #[serde(default)]
    pub purpose_kind: Option<PurposeKind>,
    /// The open-use agreement text the developer accepts by filing, stored byte for
    /// byte (its BLAKE3 goes on the grant's ledger entries). Leave it out to accept the
    /// platform's standard agreement, composed from these terms.
    #[serde(default)]
    pub agreement: Option<String>,
}

/// The provider's answer. Approval may narrow any term; refusal needs a reason.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantAnswer {
    /// Approve (true) or refuse (false).
    pub approve: bool,
    /// Why; required for a refusal.
    pub reason: Option<String>,
    /// Narrowed columns (a subset of those requested).
    pub columns: Option<Vec<String>>,
    /// Narrowed model kinds.
    pub model_kinds: Option<Vec<ModelKind>>,
    /// Shorter term.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub term_days: Option<u32>,
    /// Smaller ε.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub epsilon: Option<f64>,
    /// Smaller δ.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub delta: Option<f64>,
    /// Smaller query budget.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub query_budget: Option<u64>,
}

/// A grant as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grant {
    /// Grant id.
    pub id: GrantId,
    /// The dataset.
    pub dataset_id: DatasetId,
    /// Applying developer organisation.
    pub applicant_org: OrgId,
    /// Providing organisation.
    pub provider_org: OrgId,
    /// Stated purpose.
    pub purpose: String,
    /// The purpose's kind, which decides the product licences the results may carry.
    pub purpose_kind: PurposeKind,
    /// The agreement text the developer accepted when filing (absent for grants filed
    /// before agreements were stored).
    pub agreement: Option<String>,
    /// BLAKE3 (hex) of `agreement`, as on the grant's `GrantDecision` entries.
    pub agreement_hash: Option<String>,
    /// Columns (as requested while pending, as approved afterwards).
    pub columns: Vec<String>,
    /// Model kinds.
    pub model_kinds: Vec<ModelKind>,
    /// Term in days.
    pub term_days: u32,
    /// ε budget.
    pub epsilon: f64,
    /// δ budget.
    pub delta: f64,
    /// Query budget.
    pub query_budget: u64,
    /// Results for research use only (asked for, or the dataset requires it).
    pub research_only: bool,
    /// Status.
    pub status: GrantStatus,
    /// Reason of a refusal, revocation or suspension.
    pub reason: Option<String>,
    /// Answer deadline (YYYY-MM-DD), working days from filing.
    pub answer_deadline: String,
    /// Filed, ms since epoch.
    pub applied_ms: i64,
    /// Decided, ms since epoch.
    pub decided_ms: Option<i64>,
    /// In force from, ms since epoch.
    pub starts_ms: Option<i64>,
    /// Expires, ms since epoch.
    pub expires_ms: Option<i64>,
    /// Ledger seq of the decision.
    pub decision_seq: Option<u64>,
    /// ε spent.
    pub epsilon_spent: f64,
    /// δ spent.
    pub delta_spent: f64,
    /// Model runs used.
    pub queries_used: u64,
    /// Pending past its deadline.
    pub overdue: bool,
    #[serde(skip)]
    epsilon_micro: i64,
    #[serde(skip)]
    delta_pico: i64,
    #[serde(skip)]
    epsilon_spent_micro: i64,
}

impl Grant {
    /// The agreement's BLAKE3 as the ledger carries it (None for a grant filed before
    /// agreements were stored).
    fn agreement_hash_value(&self) -> Result<Option<pdx_ledger::Hash32>> {
        self.agreement_hash
            .as_deref()
            .map(|hex| {
                pdx_ledger::Hash32::from_hex(hex).map_err(|_| {
                    SandboxError::Internal("a stored agreement hash is not hex".into())
                })
            })
            .transpose()
    }

    /// ε budget in micro-units.
    pub fn epsilon_micro(&self) -> i64 {
        self.epsilon_micro
    }

    /// δ budget in units of 1e-12.
    pub fn delta_pico(&self) -> i64 {
        self.delta_pico
    }
}

/// A privacy cost in the grant's integer units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrivacyCost {
    /// ε in micro-units.
    pub epsilon_micro: i64,
    /// δ in units of 1e-12.
    pub delta_pico: i64,
}

impl PrivacyCost {
    /// Converts ε and δ, rounding up so that a spend is never under-counted.
    pub fn from_f64(epsilon: f64, delta: f64) -> Result<PrivacyCost> {
        Ok(PrivacyCost {
            epsilon_micro: budget_units(epsilon, EPSILON_UNIT, "epsilon")?,
            delta_pico: budget_units(delta, DELTA_UNIT, "delta")?,
        })
    }

    /// ε as a float.
    pub fn epsilon(&self) -> f64 {
        self.epsilon_micro as f64 / EPSILON_UNIT
    }

    /// δ as a float.
    pub fn delta(&self) -> f64 {
        self.delta_pico as f64 / DELTA_UNIT
    }
}

fn budget_units(value: f64, unit: f64, name: &str) -> Result<i64> {
    if !value.is_finite() || value < 0.0 {
        return Err(SandboxError::Invalid(format!(
            "{name} must be a finite number >= 0"
        )));
    }
    let units = (value * unit).ceil();
    if units > 1e15 {
        return Err(SandboxError::Invalid(format!("{name} is too large")));
    }
    Ok(units as i64)
}

fn dedup_sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    v
}

fn grant_from_row(row: &AnyRow) -> Result<Grant> {
    let columns: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("columns_json")?)
        .map_err(|e| SandboxError::Internal(format!("grant columns: {e}")))?;
    let kinds: Vec<ModelKind> =
        serde_json::from_str(&row.try_get::<String, _>("model_kinds_json")?)
            .map_err(|e| SandboxError::Internal(format!("grant model kinds: {e}")))?;
    let status = GrantStatus::parse(&row.try_get::<String, _>("status")?)?;
    let epsilon_micro: i64 = row.try_get("epsilon_micro")?;
    let delta_pico: i64 = row.try_get("delta_pico")?;
    let eps_spent: i64 = row.try_get("epsilon_spent_micro")?;
    let delta_spent: i64 = row.try_get("delta_spent_pico")?;
    let answer_deadline: String = row.try_get("answer_deadline")?;
    let today = iso_date(time::OffsetDateTime::now_utc().date());
    Ok(Grant {
        id: row.try_get("id")?,
        dataset_id: row.try_get("dataset_id")?,
        applicant_org: row.try_get("applicant_org")?,
        provider_org: row.try_get("provider_org")?,
        purpose: row.try_get("purpose")?,
        purpose_kind: PurposeKind::parse(&row.try_get::<String, _>("purpose_kind")?)?,
        agreement: row.try_get("agreement_text")?,
        agreement_hash: row.try_get("agreement_hash")?,
        columns,
        model_kinds: kinds,
        term_days: u32::try_from(row.try_get::<i64, _>("term_days")?).unwrap_or(0),
        epsilon: epsilon_micro as f64 / EPSILON_UNIT,
        delta: delta_pico as f64 / DELTA_UNIT,
        query_budget: u64::try_from(row.try_get::<i64, _>("query_budget")?).unwrap_or(0),
        research_only: row.try_get::<i64, _>("research_only")? != 0,
        overdue: status == GrantStatus::Pending && today > answer_deadline,
        status,
        reason: row.try_get("reason")?,
        answer_deadline,
        applied_ms: row.try_get("applied_ms")?,
        decided_ms: row.try_get("decided_ms")?,
        starts_ms: row.try_get("starts_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        decision_seq: row
            .try_get::<Option<i64>, _>("decision_seq")?
            .and_then(|s| u64::try_from(s).ok()),
        epsilon_spent: eps_spent as f64 / EPSILON_UNIT,
        delta_spent: delta_spent as f64 / DELTA_UNIT,
        queries_used: u64::try_from(row.try_get::<i64, _>("queries_used")?).unwrap_or(0),
        epsilon_micro,
        delta_pico,
        epsilon_spent_micro: eps_spent,
    })
}

/// Who is asking for grants, for visibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantView {
    /// The applicant's own grants.
    Applicant,
    /// Grants on the provider's datasets.
    Provider,
    /// Every grant (supervisors).
    All,
}

impl Grants {
    /// Files an application for a conditional dataset.
    pub async fn apply_for_grant(&self, actor: &Actor, app: GrantApplication) -> Result<Grant> {
        validate_text("purpose", &app.purpose, 4000)?;
        let dataset = self
            .catalog()
            .dataset(&app.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        dataset.reachable_by_developers()?;
        if dataset.effective_open_attribute == OpenAttribute::Unconditional {
            return Err(SandboxError::Conflict(
                "the dataset is unconditionally open: sandbox jobs need no grant".into(),
            ));
        }
        if app.columns.is_empty() {
            return Err(SandboxError::Invalid(
                "`columns` must name at least one column".into(),
            ));
        }
        let readable = dataset.meta.schema.released_columns();
        for c in &app.columns {
            if !readable.iter().any(|r| r == c) {
                return Err(SandboxError::Invalid(format!(
                    "column `{c}` is not a released column of the dataset"
                )));
            }
        }
        if app.model_kinds.is_empty() {
            return Err(SandboxError::Invalid(
                "`model_kinds` must not be empty".into(),
            ));
        }
        if app.term_days == 0 || app.term_days > MAX_TERM_DAYS {
            return Err(SandboxError::Invalid(format!(
                "`term_days` must be between 1 and {MAX_TERM_DAYS} (three years)"
            )));
        }
        if app.query_budget == 0 || app.query_budget > 1_000_000 {
            return Err(SandboxError::Invalid(
                "`query_budget` must be between 1 and 1000000".into(),
            ));
        }
        let budget = PrivacyCost::from_f64(app.epsilon, app.delta)?;
        if app.model_kinds.contains(&ModelKind::Dp) && budget.epsilon_micro == 0 {
            return Err(SandboxError::Invalid(
                "a DP model needs `epsilon` > 0".into(),
            ));
        }
        if app.epsilon > 100.0 || app.delta >= 1e-3 {
            return Err(SandboxError::Invalid(
                "`epsilon` must be at most 100 and `delta` below 0.001".into(),
            ));
        }
        let terms = filed_terms(&app, dataset.meta.research_only)?;
        let agreement_hash = terms.agreement_hash.to_hex();
        let applicant_org = actor_org(actor)?;
        let id = GrantId::random();
        let now = now_ms();
        let deadline = iso_date(
            self.calendar()
                .deadline_from_ms(now, self.config().grant_answer_working_days),
        );
        let columns = serde_json::to_string(&dedup_sorted(&app.columns))
            .map_err(|e| SandboxError::Internal(e.to_string()))?;
        let kinds = serde_json::to_string(&dedup_sorted(&app.model_kinds))
            .map_err(|e| SandboxError::Internal(e.to_string()))?;
        store::grants::insert_grant(
            self.db().pool(),
            &store::grants::NewGrant {
                id: &id,
                dataset_id: &dataset.id,
                applicant_org: &applicant_org,
                provider_org: &dataset.provider_org,
                purpose: &app.purpose,
                columns_json: &columns,
                model_kinds_json: &kinds,
                term_days: i64::from(app.term_days),
                epsilon_micro: budget.epsilon_micro,
                delta_pico: budget.delta_pico,
                query_budget: app.query_budget as i64,
                answer_deadline: &deadline,
                applied_ms: now,
                research_only: i64::from(terms.research_only),
                purpose_kind: terms.purpose_kind.as_str(),
                agreement_text: &terms.agreement_text,
                agreement_hash: &agreement_hash,
            },
        )
        .await?;
        self.load_grant(&id).await
    }

    async fn load_grant(&self, id: &GrantId) -> Result<Grant> {
        let row = sqlx::query("SELECT * FROM grants WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such grant".into()))?;
        grant_from_row(&row)
    }

    /// One grant, if the caller may see it (applicant, provider, or `All`).
    pub async fn grant(&self, id: &GrantId, org: &OrgId, view: GrantView) -> Result<Grant> {
        let grant = self.load_grant(id).await?;
        let visible = match view {
            GrantView::All => true,
            GrantView::Applicant => grant.applicant_org == *org,
            GrantView::Provider => grant.provider_org == *org,
        };
        if visible {
            Ok(grant)
        } else {
            Err(SandboxError::NotFound("no such grant".into()))
        }
    }

    /// Grants the caller may see, newest first.
    pub async fn grants(&self, org: &OrgId, view: GrantView) -> Result<Vec<Grant>> {
        let (sql, bind) = match view {
            GrantView::All => ("SELECT * FROM grants ORDER BY applied_ms DESC, id", None),
            GrantView::Applicant => (
                "SELECT * FROM grants WHERE applicant_org = $1 ORDER BY applied_ms DESC, id",
                Some(org),
            ),
            GrantView::Provider => (
                "SELECT * FROM grants WHERE provider_org = $1 ORDER BY applied_ms DESC, id",
                Some(org),
            ),
        };
        let mut q = sqlx::query(sql);
        if let Some(org) = bind {
            q = q.bind(org.clone());
        }
        q.fetch_all(self.db().pool())
            .await?
            .iter()
            .map(grant_from_row)
            .collect()
    }

    /// The provider's answer: approve (possibly narrowed) or refuse with a reason. A
    /// grant on a not-open dataset (one filed before that rule held) can only be
    /// refused.
    pub async fn decide_grant(
        &self,
        actor: &Actor,
        id: &GrantId,
        answer: GrantAnswer,
    ) -> Result<Grant> {
        let grant = self
            .grant(id, &actor_org(actor)?, GrantView::Provider)
            .await?;
        if grant.status != GrantStatus::Pending {
            return Err(SandboxError::Conflict(format!(
                "the grant is already {}",
                grant.status.as_str()
            )));
        }
        if answer.approve {
            self.grant_dataset(&grant)
                .await?
                .reachable_by_developers()?;
        }
        let reason = answer
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        if let Some(r) = reason {
            validate_text("reason", r, 4000)?;
        }
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        let (decision, terms) = if answer.approve {
            let columns = narrow(&grant.columns, answer.columns.as_deref(), "columns")?;
            let kinds = narrow(
                &grant.model_kinds,
                answer.model_kinds.as_deref(),
                "model_kinds",
            )?;
            let term_days = at_most(grant.term_days, answer.term_days, "term_days")?;
            let query_budget = at_most(grant.query_budget, answer.query_budget, "query_budget")?;
            let eps = match answer.epsilon {
                Some(e) => PrivacyCost::from_f64(e, 0.0)?.epsilon_micro,
                None => grant.epsilon_micro,
            };
            let delta = match answer.delta {
                Some(d) => PrivacyCost::from_f64(0.0, d)?.delta_pico,
                None => grant.delta_pico,
            };
            if eps > grant.epsilon_micro || delta > grant.delta_pico {
                return Err(SandboxError::Invalid(
                    "an approval may narrow ε and δ, never raise them".into(),
                ));
            }
            if term_days == 0 || query_budget == 0 {
                return Err(SandboxError::Invalid(
                    "an approval needs a term and a query budget above zero".into(),
                ));
            }
            let expires = now.saturating_add(i64::from(term_days).saturating_mul(DAY_MS));
            let terms = serde_json::json!({
                "columns": columns,
                "model_kinds": kinds,
                "term_days": term_days,
                "epsilon_micro": eps,
                "delta_pico": delta,
                "query_budget": query_budget,
                "starts_ms": now,
                "expires_ms": expires,
            });
            let columns_json = json_text(&columns)?;
            let kinds_json = json_text(&kinds)?;
            let updated = store::grants::approve_pending(
                &mut *tx,
                &store::grants::GrantApproval {
                    id,
                    reason,
                    columns_json: &columns_json,
                    model_kinds_json: &kinds_json,
                    term_days: i64::from(term_days),
                    epsilon_micro: eps,
                    delta_pico: delta,
                    query_budget: query_budget as i64,
                    decided_ms: now,
                    expires_ms: expires,
                },
            )
            .await?;
            if updated != 1 {
                return Err(SandboxError::Conflict(
                    "the grant was decided concurrently".into(),
                ));
            }
            ("approved", Some(terms))
        } else {
            let Some(reason) = reason else {
                return Err(SandboxError::Invalid(
                    "a refusal must give a `reason`".into(),
                ));
            };
            let updated =
                store::grants::close(&mut *tx, id, "pending", "refused", reason, now).await?;
            if updated != 1 {
                return Err(SandboxError::Conflict(
                    "the grant was decided concurrently".into(),
                ));
            }
            ("refused", None)
        };
        let entry = GrantDecision {
            grant_id: grant.id.to_string(),
            applicant_org: grant.applicant_org.to_string(),
            dataset_ids: vec![grant.dataset_id.to_string()],
            decision: decision.into(),
            reason: reason.map(str::to_string),
            terms,
            purpose: Some(grant.purpose.clone()),
            purpose_kind: Some(grant.purpose_kind.as_str().to_string()),
            agreement_hash: grant.agreement_hash_value()?,
        };
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        store::grants::set_decision_seq(&mut *tx, id, appended.seq as i64).await?;
        tx.commit().await?;
        self.load_grant(id).await
    }

    /// The provider withdraws an approved grant; jobs refuse it from then on.
    pub async fn revoke_grant(&self, actor: &Actor, id: &GrantId, reason: &str) -> Result<Grant> {
        let grant = self
            .grant(id, &actor_org(actor)?, GrantView::Provider)
            .await?;
        validate_text("reason", reason, 4000)?;
        if grant.status != GrantStatus::Approved {
            return Err(SandboxError::Conflict(format!(
                "only an approved grant can be revoked; this one is {}",
                grant.status.as_str()
            )));
        }
        let mut tx = self.db().begin_write().await?;
        let updated =
            store::grants::close(&mut *tx, id, "approved", "revoked", reason.trim(), now_ms())
                .await?;
        if updated != 1 {
            return Err(SandboxError::Conflict(
                "the grant changed concurrently".into(),
            ));
        }
        let entry = GrantDecision {
            grant_id: grant.id.to_string(),
            applicant_org: grant.applicant_org.to_string(),
            dataset_ids: vec![grant.dataset_id.to_string()],
            decision: "revoked".into(),
            reason: Some(reason.trim().to_string()),
            terms: None,
            purpose: Some(grant.purpose.clone()),
            purpose_kind: Some(grant.purpose_kind.as_str().to_string()),
            agreement_hash: grant.agreement_hash_value()?,
        };
        self.ledger().append(&mut tx, actor, &entry).await?;
        tx.commit().await?;
        self.load_grant(id).await
    }

    /// Suspends every pending and approved grant on `dataset_id` inside `tx`, with
    /// `reason`, and writes one `GrantDecision` entry (`suspended`) for each as
    /// `actor`; returns their ids, sorted. Called in the transaction that makes the
    /// dataset not open (SD22 Art.8; XT Art.23(7)); the grants are updated before the
    /// entries are appended, so a concurrent approval waits on the grant's row rather
    /// than deadlocking on the ledger.
    pub(crate) async fn suspend_grants_on(
        &self,
        tx: &mut AnyConnection,
        actor: &Actor,
        dataset_id: &DatasetId,
        reason: &str,
    ) -> Result<Vec<GrantId>> {
        let mut suspended =
            store::grants::suspend_on_dataset(&mut *tx, dataset_id, reason, now_ms()).await?;
        suspended.sort();
        let mut ids = Vec::with_capacity(suspended.len());
        for (id, applicant) in suspended {
            let entry = GrantDecision {
                grant_id: id.to_string(),
                applicant_org: applicant.to_string(),
                dataset_ids: vec![dataset_id.to_string()],
                decision: "suspended".into(),
                reason: Some(reason.to_string()),
                terms: None,
                purpose: None,
                purpose_kind: None,
                agreement_hash: None,
            };
            self.ledger().append(&mut *tx, actor, &entry).await?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// The dataset a grant is for.
    async fn grant_dataset(&self, grant: &Grant) -> Result<crate::catalog::Dataset> {
        self.catalog()
            .dataset(&grant.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::Internal("a grant's dataset is gone".into()))
    }

    /// The grant a job may run under, checked at job start: approved, in its term,
    /// held by `org`, for `dataset_id` (which is not a not-open dataset), allowing
    /// `kind` and every column in `columns`.
    pub async fn usable_grant(
        &self,
        grant_id: &GrantId,
        org: &OrgId,
        dataset_id: &DatasetId,
        kind: ModelKind,
        columns: &[String],
    ) -> Result<Grant> {
        let grant = self.grant(grant_id, org, GrantView::Applicant).await?;
        if grant.dataset_id != *dataset_id {
            return Err(SandboxError::Forbidden(
                "the grant does not cover this dataset".into(),
            ));
        }
        // A grant approved before not-open data was refused at filing is unusable.
        self.grant_dataset(&grant)
            .await?
            .reachable_by_developers()?;
        match grant.status {
            GrantStatus::Approved => {}
            other => {
                return Err(SandboxError::Forbidden(format!(
                    "the grant is {}",
                    other.as_str()
                )));
            }
        }
        let now = now_ms();
        if grant.expires_ms.is_some_and(|e| now >= e) || grant.starts_ms.is_some_and(|s| now < s) {
            return Err(SandboxError::Forbidden("the grant has expired".into()));
        }
        if !grant.model_kinds.contains(&kind) {
            return Err(SandboxError::Forbidden(format!(
                "the grant does not allow {} models",
                kind.as_str()
            )));
        }
        for c in columns {
            if !grant.columns.contains(c) {
                return Err(SandboxError::Forbidden(format!(
                    "the grant does not cover column `{c}`"
                )));
            }
        }
        Ok(grant)
    }

    /// Spends one query and `cost` of privacy budget inside `tx`, or refuses without
    /// spending anything when the grant cannot afford it.
    pub(crate) async fn spend_budget(
        &self,
        tx: &mut sqlx::AnyConnection,
        grant_id: &GrantId,
        cost: PrivacyCost,
    ) -> Result<()> {
        // One conditional update: the database settles concurrent jobs, and a grant is
        // never overspent.
        let updated =
            store::grants::spend(&mut *tx, grant_id, cost.epsilon_micro, cost.delta_pico).await?;
        if updated == 1 {
            return Ok(());
        }
        let grant = self.load_grant(grant_id).await?;
        if grant.queries_used >= grant.query_budget {
            Err(SandboxError::Forbidden(format!(
                "the grant's query budget of {} is used up",
                grant.query_budget
            )))
        } else if grant.status != GrantStatus::Approved {
            Err(SandboxError::Forbidden(format!(
                "the grant is {}",
                grant.status.as_str()
            )))
        } else {
            Err(SandboxError::Forbidden(format!(
                "the grant's privacy budget cannot cover this job: ε {} of {} left, ε {} requested",
                (grant.epsilon_micro - grant.epsilon_spent_micro) as f64 / EPSILON_UNIT,
                grant.epsilon,
                cost.epsilon()
            )))
        }
    }
}

fn json_text<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| SandboxError::Internal(e.to_string()))
}

fn narrow<T: Ord + Clone + Serialize>(
    requested: &[T],
    narrowed: Option<&[T]>,
    field: &str,
) -> Result<Vec<T>> {
    match narrowed {
        None => Ok(requested.to_vec()),
        Some(n) => {
            if n.is_empty() || n.iter().any(|x| !requested.contains(x)) {
                return Err(SandboxError::Invalid(format!(
                    "`{field}` may only narrow the request to a non-empty subset"
                )));
            }
            Ok(dedup_sorted(n))
        }
    }
}

fn at_most<T: PartialOrd + Copy>(requested: T, narrowed: Option<T>, field: &str) -> Result<T> {
    match narrowed {
        None => Ok(requested),
        Some(n) if n <= requested => Ok(n),
        Some(_) => Err(SandboxError::Invalid(format!(
            "`{field}` may only be narrowed, never raised"
        ))),
    }
}
