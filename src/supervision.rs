//! Supervision that spans the crates: suspending organisations and product lineage.
//! The HTTP side is [`crate::http::audit_api`]; the reports, objections and release
//! lineage live in `pdx_sandbox` (its `compliance`, `objections` and `lineage`
//! modules), and witness cosignatures in `pdx_ledger` ([`pdx_ledger::witness`]).
//!
//! # Suspension
//!
//! A supervisor suspends (or reinstates) an organisation with a reason
//! ([`set_suspension`]). In one write transaction: `orgs.suspended` flips (a
//! conditional update, so suspending twice is a conflict), a `Suspension` ledger entry
//! is appended and a row goes into the public history. From the next request on, the
//! organisation's keys are refused for every write: the auth middleware reads the flag
//! with the key on every request (nothing is cached) and refuses any non-GET route.
//! After the commit, its running model runs are cancelled and its listed products
//! delisted (each with a `ProductDelisting` entry); the counts are recorded with the
//! history row. If one of those steps fails, the suspension stands (writes are already
//! refused), the failure is logged and reported, and suspending again is a conflict, so
//! [`finish_suspension`] re-runs the idempotent clean-up for an organisation that is
//! already suspended. Reinstating re-enables writes; delisted products stay delisted
//! until the exchange lists them again.
//!
//! The history is public: every authenticated caller may read it, like the `Suspension`
//! ledger entries themselves (a public kind), which is how XT Art.33 and SD22 Art.19's
//! "publicised on the platform" is met. It stays behind authentication because the
//! whole `/v1` API does; the ledger export carries the same entries for anyone else.

use pdx_ids::{OrgId, ProductId};
use pdx_ledger::db::{DbError, now_ms};
use pdx_ledger::kinds::{ProductDelisting, ProductListing, Suspension};
use pdx_ledger::{Hash32, LedgerError};
use pdx_products::{ProductStatus, ProductsError};
use pdx_sandbox::SandboxError;
use pdx_sandbox::lineage::{LedgerHop, ReleaseLineage, ledger_hop};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::app::App;
use crate::auth::Principal;

/// Failures of supervision actions; client mistakes carry a message safe to show.
#[derive(Debug, thiserror::Error)]
pub enum SupervisionError {
    /// The request is well-formed but invalid.
    #[error("{0}")]
    Invalid(String),
    /// No such organisation or product.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// Ledger failure.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// Sandbox failure.
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// Products failure.
    #[error("products: {0}")]
    Products(#[from] ProductsError),
    /// Accounts failure.
    #[error("accounts: {0}")]
    Accounts(#[from] crate::accounts::AccountError),
}

impl From<sqlx::Error> for SupervisionError {
    fn from(e: sqlx::Error) -> Self {
        SupervisionError::Db(DbError::Sqlx(e))
    }
}

/// Result alias.
pub type Result<T, E = SupervisionError> = std::result::Result<T, E>;

/// Suspend or reinstate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuspensionAction {
    /// Refuse the organisation's writes, cancel its runs, delist its products.
    Suspend,
    /// Accept its writes again.
    Reinstate,
}

impl SuspensionAction {
    /// The `action` written on the ledger.
    fn ledger_name(self) -> &'static str {
        match self {
            SuspensionAction::Suspend => "suspended",
            SuspensionAction::Reinstate => "reinstated",
        }
    }
}

/// A supervisor's request.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspensionRequest {
    /// Organisation id.
    pub org_id: OrgId,
    /// `suspend` or `reinstate`.
    pub action: SuspensionAction,
    /// Why (1 to 1,000 characters, one line, not blank; trimmed): published with the
    /// suspension.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
}

/// One suspension or reinstatement, as published.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuspensionRecord {
    /// Ledger seq of the `Suspension` entry.
    pub seq: u64,
    /// Organisation id.
    pub org_id: OrgId,
    /// Organisation name.
    pub org_name: String,
    /// `suspended` or `reinstated`.
    pub action: String,
    /// Why.
    pub reason: String,
    /// The supervisor's organisation.
    pub actor_org: OrgId,
    /// When, ms since epoch.
    pub created_ms: i64,
    /// Model runs cancelled by the suspension.
    pub runs_cancelled: u64,
    /// Listed products delisted by the suspension.
    pub listings_delisted: u64,
}

/// What a suspension did.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuspensionOutcome {
    /// The published record.
    pub record: SuspensionRecord,
    /// Clean-up steps that failed and should be retried (details are logged).
    pub incomplete: Vec<String>,
}

/// An organisation currently suspended.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuspendedOrg {
    /// Organisation id.
    pub org_id: OrgId,
    /// Organisation name.
    pub name: String,
}

/// The public list: who is suspended now, and the whole history, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuspensionList {
    /// Organisations suspended now.
    pub suspended: Vec<SuspendedOrg>,
    /// Every suspension and reinstatement, newest first.
    pub history: Vec<SuspensionRecord>,
}

fn checked_reason(reason: &str) -> Result<String> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 1000 || r.chars().any(char::is_control) {
        return Err(SupervisionError::Invalid(
            "`reason` must be 1 to 1000 characters on one line".into(),
        ));
    }
    Ok(r.to_string())
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const RECORD_SQL: &str = "SELECT s.seq, s.org_id, o.name, s.action, s.reason, s.actor_org, \
    s.created_ms, s.runs_cancelled, s.listings_delisted FROM suspensions s \
    JOIN orgs o ON o.id = s.org_id";

fn record_from_row(row: &sqlx::any::AnyRow) -> Result<SuspensionRecord> {
    Ok(SuspensionRecord {
        seq: u64_of(row.try_get("seq")?),
        org_id: row.try_get("org_id")?,
        org_name: row.try_get("name")?,
        action: row.try_get("action")?,
        reason: row.try_get("reason")?,
        actor_org: row.try_get("actor_org")?,
        created_ms: row.try_get("created_ms")?,
        runs_cancelled: u64_of(row.try_get("runs_cancelled")?),
        listings_delisted: u64_of(row.try_get("listings_delisted")?),
    })
}

async fn record(app: &App, seq: u64) -> Result<SuspensionRecord> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{RECORD_SQL} WHERE s.seq = $1"
    )))
    .bind(seq as i64)
    .fetch_one(app.db.pool())
    .await?;
    record_from_row(&row)
}

/// Suspends or reinstates an organisation on a supervisor's authority.
pub async fn set_suspension(
    app: &App,
    supervisor: &Principal,
    request: SuspensionRequest,
) -> Result<SuspensionOutcome> {
    let reason = checked_reason(&request.reason)?;
    let org = app
        .accounts
        .org(&request.org_id)
        .await?
        .ok_or_else(|| SupervisionError::NotFound("no such organisation".into()))?;
    if org.id == supervisor.org_id {
        return Err(SupervisionError::Conflict(
            "a supervisor cannot suspend or reinstate their own organisation".into(),
        ));
    }
    let suspend = request.action == SuspensionAction::Suspend;
    let actor = supervisor.actor();
    let now = now_ms();
    let mut tx = app.db.begin_write().await?;
    let flipped = sqlx::query("UPDATE orgs SET suspended = $1 WHERE id = $2 AND suspended = $3")
        .bind(i64::from(suspend))
        .bind(org.id.clone())
        .bind(i64::from(!suspend))
        .execute(&mut *tx)
        .await?;
    if flipped.rows_affected() != 1 {
        return Err(SupervisionError::Conflict(if suspend {
            "the organisation is already suspended".into()
        } else {
            "the organisation is not suspended".into()
        }));
    }
    let entry = Suspension {
        org: org.id.to_string(),
        action: request.action.ledger_name().into(),
        reason: reason.clone(),
    };
    let appended = app.ledger.append(&mut tx, &actor, &entry).await?;
    sqlx::query(
        "INSERT INTO suspensions (seq, org_id, action, reason, actor_org, actor_key, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(appended.seq as i64)
    .bind(org.id.clone())
    .bind(request.action.ledger_name())
    .bind(reason)
    .bind(supervisor.org_id.clone())
    .bind(supervisor.key_id.clone())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(org = %org.id, seq = appended.seq, action = request.action.ledger_name(), "suspension");
    let incomplete = if suspend {
        finish_suspension(app, supervisor, &org.id, appended.seq).await
    } else {
        Vec::new()
    };
    Ok(SuspensionOutcome {
        record: record(app, appended.seq).await?,
        incomplete,
    })
}

/// Cancels the running model runs and delists the listed products of a suspended
/// organisation, recording the counts on the history row `seq`. Both steps are
/// idempotent. Returns the steps that failed (their causes are logged).
pub async fn finish_suspension(
    app: &App,
    supervisor: &Principal,
    org_id: &OrgId,
    seq: u64,
) -> Vec<String> {
    let mut incomplete = Vec::new();
    let runs = match app.sandbox.runs().cancel_runs_of(org_id).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(org = %org_id, error = %e, "cancelling the runs of a suspended organisation");
            incomplete.push("cancelling running model runs failed".to_string());
            0
        }
    };
    let reason = format!("the developer organisation was suspended (ledger seq {seq})");
    let delisted = match app
        .products
        .delist_all_of(&supervisor.actor(), org_id, &reason)
        .await
    {
        Ok(ids) => ids.len() as u64,
        Err(e) => {
            tracing::error!(org = %org_id, error = %e, "delisting the products of a suspended organisation");
            incomplete.push("delisting listed products failed".to_string());
            0
        }
    };
    let counted = sqlx::query(
        "UPDATE suspensions SET runs_cancelled = runs_cancelled + $1, \
         listings_delisted = listings_delisted + $2 WHERE seq = $3",
    )
    .bind(runs as i64)
    .bind(delisted as i64)
    .bind(seq as i64)
    .execute(app.db.pool())
    .await;
    if let Err(e) = counted {
        tracing::error!(error = %e, "recording the suspension's clean-up counts");
        incomplete.push("recording the clean-up counts failed".to_string());
    }
    incomplete
}

/// The public list of suspensions.
pub async fn suspensions(app: &App) -> Result<SuspensionList> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{RECORD_SQL} ORDER BY s.seq DESC"
    )))
    .fetch_all(app.db.pool())
    .await?;
    let history = rows
        .iter()
        .map(record_from_row)
        .collect::<Result<Vec<_>>>()?;
    let suspended = app
        .accounts
        .orgs()
        .await?
        .into_iter()
        .filter(|o| o.suspended)
        .map(|o| SuspendedOrg {
            org_id: o.id,
            name: o.name,
        })
        .collect();
    Ok(SuspensionList { suspended, history })
}

/// A provider organisation on a lineage path.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProviderLineage {
    /// Organisation id (the certificate holder).
    pub org_id: OrgId,
    /// Organisation name.
    pub name: String,
    /// Administrative region.
    pub region: String,
    /// Source departments of the datasets read from it.
    pub source_departments: Vec<String>,
}

/// The lineage of a product: product → releases → jobs → models → dataset versions →
/// certificates → providers, with a ledger receipt on every hop.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductLineage {
    /// Product id.
    pub product_id: ProductId,
    /// Title.
    pub title: String,
    /// Developer organisation.
    pub developer_org: OrgId,
    /// Review / sale status.
    pub status: ProductStatus,
    /// Registration number, once listed.
    pub registration_no: Option<String>,
    /// BLAKE3 of the provenance manifest, hex.
    pub manifest_hash: String,
    /// The `ProductListing` entry.
    pub listing: Option<LedgerHop>,
    /// The `ProductDelisting` entry, if delisted.
    pub delisting: Option<LedgerHop>,
    /// Each released output the product ships, traced to its sources.
    pub releases: Vec<ReleaseLineage>,
    /// The providing organisations.
    pub providers: Vec<ProviderLineage>,
    /// Every missing hop or disagreement between a row, the manifest and the ledger.
    pub problems: Vec<String>,
    /// True when every hop is on the ledger and nothing disagrees.
    pub complete: bool,
}

/// Traces a product back to its sources.
pub async fn product_lineage(app: &App, product_id: &ProductId) -> Result<ProductLineage> {
    let product = app.products.product(product_id).await?;
    let mut problems = Vec::new();
    let listing = match product.listing_seq {
        Some(seq) => {
            match ledger_hop::<ProductListing>(&app.ledger, seq, "listing", &mut problems).await? {
                Some((hop, entry)) => {
                    if product.id != entry.product_id
                        || entry.manifest_hash != product.manifest_hash
                        || product.developer_org != entry.developer_org
                    {
                        problems.push(
                            "listing: the ledger's product, developer or manifest hash differs"
                                .into(),
                        );
                    }
                    Some(hop)
                }
                None => None,
            }
        }
        None => {
            if matches!(
                product.status,
                ProductStatus::Listed | ProductStatus::Delisted
            ) {
                problems.push("listing: no ledger seq recorded".into());
            }
            None
        }
    };
    let delisting = match product.delisting_seq {
        Some(seq) => ledger_hop::<ProductDelisting>(&app.ledger, seq, "delisting", &mut problems)
            .await?
            .map(|(hop, entry)| {
                if product.id != entry.product_id {
                    problems.push("delisting: the ledger names another product".into());
                }
                hop
            }),
        None => None,
    };
    let mut releases = Vec::with_capacity(product.manifest.sources.len());
    for source in &product.manifest.sources {
        let lineage = match app
            .sandbox
            .lineage()
            .release_lineage(&source.release_id)
            .await
        {
            Ok(l) => l,
            Err(SandboxError::NotFound(_)) => {
                problems.push(format!(
                    "release {} is not a released output of the sandbox",
                    source.release_id
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let same_hash = |h: &Hash32, hex: &str| h.to_hex() == hex;
        if !same_hash(&source.output_hash, &lineage.output_hash)
            || !same_hash(&source.model_hash, &lineage.model.model_hash)
            || product.developer_org != lineage.developer_org
        {
            problems.push(format!(
                "release {}: the manifest's output or model hash or developer differs from the sandbox",
                source.release_id
            ));
        }
        for p in &lineage.problems {
            problems.push(format!("release {}: {p}", source.release_id));
        }
        releases.push(lineage);
    }
    let mut providers: Vec<ProviderLineage> = Vec::new();
    for version in releases.iter().flat_map(|r| &r.datasets) {
        if let Some(p) = providers
            .iter_mut()
            .find(|p| p.org_id == version.provider_org)
        {
            if !p.source_departments.contains(&version.source_department) {
                p.source_departments.push(version.source_department.clone());
            }
            continue;
        }
        let Some(org) = app.accounts.org(&version.provider_org).await? else {
            problems.push(format!(
                "provider {} is not a known organisation",
                version.provider_org
            ));
            continue;
        };
        providers.push(ProviderLineage {
            org_id: org.id,
            name: org.name,
            region: org.region,
            source_departments: vec![version.source_department.clone()],
        });
    }
    let every_hop = releases.iter().all(|r| {
        r.release.is_some()
            && r.model.registration.is_some()
            && !r.datasets.is_empty()
            && r.datasets.iter().all(|d| d.certificate.is_some())
    });
    let complete = problems.is_empty()
        && every_hop
        && !releases.is_empty()
        && (listing.is_some() || product.status == ProductStatus::PendingReview);
    Ok(ProductLineage {
        product_id: product.id,
        title: product.title,
        developer_org: product.developer_org,
        status: product.status,
        registration_no: product.registration_no,
        manifest_hash: product.manifest_hash.to_hex(),
        listing,
        delisting,
        releases,
        providers,
        problems,
        complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_bounded_line() {
        assert_eq!(
            checked_reason("  misuse of data  ").ok().as_deref(),
            Some("misuse of data")
        );
        assert!(checked_reason("").is_err());
        assert!(checked_reason("a\nb").is_err());
        assert!(checked_reason(&"x".repeat(1001)).is_err());
    }
}
