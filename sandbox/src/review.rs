//! Output review: quarantine → reviewers → released zone. Only vetted results of
//! algorithm models leave (SD22 Art.11), and each release is a traceable ledger record
//! of an export (XT Art.34(4); GD21 Art.38).
//!
//! Every model output waits in quarantine. Reviewers (output checkers) see the queue
//! with, for each output, the job, the model text, the disclosure check report and a
//! preview. A reviewer approves or rejects with a reason; a reviewer never reviews an
//! output of their own organisation, and one key counts once. When the approvals reach
//! the number the dataset's policy requires (two at L3 and above by default), the file
//! is moved to the released zone and a `Release` ledger entry records the output hash,
//! the job, the model hash, the dataset versions, the checks passed and the reviewers,
//! in the same transaction as the status change.
//!
//! Reviewers decide independently (two-person rule): while an output is undecided, a
//! reviewer sees how many reviews it has but only their own
//! ([`Output::for_reviewer`]). Each queue item names the release it can be compared
//! with, the latest of the same model or else of the same grant ([`PreviousRelease`]),
//! whose rows reviewers may read for that comparison.
//!
//! Downloads: a released output goes to its developer organisation; a quarantined one
//! only to reviewers. Everyone else gets "not found".
//!
//! An output that read a not-open dataset (不予开放, SD22 Art.8; GD21 Art.32) is never
//! released: runs on such data are refused at admission, and one admitted before that
//! rule held can only be rejected
//! ([`crate::catalog::Dataset::reachable_by_developers`] on every input).
//!
//! **What the developer sees before release** ([`Output::for_owner`]) is only what does
//! not depend on the data: the status, the rules applied and the plan-level checks the
//! query passed. The cell-level report (which cells were withheld, how many there were),
//! the row and byte counts and the output hash would each tell something about records
//! that may never be released (the hash confirms a guessed output), so they are withheld
//! until release; then the report keeps the hits of released rows only. A regression's
//! report shows its developer the checks applied, and after release only which rules
//! held the estimates back (no count, no level). A run on conditional data that failed
//! after admission looks the same to its developer and can only be rejected. Reviewers
//! and supervisors see everything.

use std::collections::HashMap;
use std::path::PathBuf;

use pdx_algorithms::DataFrame;
use pdx_algorithms::deid::storage::read_parquet;
use pdx_ids::{GrantId, JobId, KeyId, ModelId, OrgId, OutputId, ReleaseId, VersionRef};
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::Release;
use pdx_ledger::{Actor, Hash32};
use pdx_seal::AtRest;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::models::Model;
use crate::runs::cited_versions;
use crate::store;
use crate::{Result, SandboxError, actor_key, actor_org};

crate::service! {
    /// The vetting workflow: outputs in quarantine, reviews and releases.
    Reviews
}

/// Where an output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutputStatus {
    /// Waiting for review.
    Quarantined,
    /// Vetted and released.
    Released,
    /// Rejected by a reviewer.
    Rejected,
}

impl OutputStatus {
    fn parse(s: &str) -> Result<OutputStatus> {
        Ok(match s {
            "quarantined" => OutputStatus::Quarantined,
            "released" => OutputStatus::Released,
            "rejected" => OutputStatus::Rejected,
            other => {
                return Err(SandboxError::Internal(format!(
                    "unknown output status {other}"
                )));
            }
        })
    }
}

/// One review.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Review {
    /// Reviewer organisation.
    pub reviewer_org: OrgId,
    /// Reviewer key id.
    pub reviewer_key: KeyId,
    /// `approve` or `reject`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// When, ms since epoch.
    pub created_ms: i64,
}

/// A model output.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Output {
    /// Output id.
    pub id: OutputId,
    /// The job that produced it.
    pub job_id: JobId,
    /// Developer organisation.
    pub org_id: OrgId,
    /// The model.
    pub model_id: ModelId,
    /// BLAKE3 of the Parquet file, hex (empty for its developer until release).
    pub output_hash: String,
    /// Rows (0 for its developer until release).
    pub rows: u64,
    /// Bytes of the Parquet file (0 for its developer until release).
    pub bytes: u64,
    /// The disclosure check report (for its developer: rules and plan-level checks
    /// until release, then also the hits of released rows).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub check_report: serde_json::Value,
    /// Approvals needed.
    pub required_reviews: u8,
    /// Status.
    pub status: OutputStatus,
    /// Reason of a rejection.
    pub reason: Option<String>,
    /// Release id, once released.
    pub release_id: Option<ReleaseId>,
    /// Ledger seq of the release.
    pub release_seq: Option<u64>,
    /// Reviews so far (a reviewer sees only their own while the output is undecided:
    /// [`Output::for_reviewer`]).
    pub reviews: Vec<Review>,
    /// How many reviews were cast, whoever may see them (0 where reviews are not
    /// loaded: a developer's list of its outputs).
    #[serde(default)]
    pub votes: u32,
    /// Created, ms since epoch.
    pub created_ms: i64,
    #[serde(skip)]
    file_path: String,
    #[serde(skip)]
    preview: serde_json::Value,
}

/// What a reviewer sees for an output in the queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewItem {
    /// The output.
    pub output: Output,
    /// The model text.
    pub model_text: String,
    /// The model kind.
    pub model_kind: String,
    /// BLAKE3 model hash.
    pub model_hash: String,
    /// Dataset versions read.
    pub dataset_versions: Vec<VersionRef>,
    /// The first rows, as JSON objects.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub preview: serde_json::Value,
    /// The grant the run used, on conditional data.
    #[serde(default)]
    pub grant_id: Option<GrantId>,
    /// The release to compare this output with, if there is one
    /// ([`Reviews::previous_release`]).
    #[serde(default)]
    pub previous_release: Option<PreviousRelease>,
}

/// An earlier released output a reviewer compares an output with: the latest release
/// of the same model, else of another model run under the same grant (the page shows
/// cells added, removed and changed since).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviousRelease {
    /// The released output.
    pub output_id: OutputId,
    /// Its model.
    pub model_id: ModelId,
    /// `model` (the same model) or `grant` (another model under the same grant).
    pub matched_by: String,
    /// Its release.
    pub release_id: Option<ReleaseId>,
    /// Ledger seq of its `Release` entry.
    pub release_seq: Option<u64>,
    /// Its rows.
    pub rows: u64,
    /// Created, ms since epoch.
    pub created_ms: i64,
}

impl PreviousRelease {
    fn of(output: &Output, matched_by: &str) -> PreviousRelease {
        PreviousRelease {
            output_id: output.id.clone(),
            model_id: output.model_id.clone(),
            matched_by: matched_by.to_owned(),
            release_id: output.release_id.clone(),
            release_seq: output.release_seq,
            rows: output.rows,
            created_ms: output.created_ms,
        }
    }
}

/// A reviewer's decision.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    /// Approve (true) or reject (false).
    pub approve: bool,
    /// Why (required either way: output checkers record their reasoning).
    pub reason: String,
}

impl Output {
    /// Whether this is the empty output of a conditional run that failed after admission.
    pub fn is_failed_run(&self) -> bool {
        self.check_report.get("run_failed") == Some(&serde_json::Value::Bool(true))
    }

    /// The view of the reviewer holding `key`: while the output is undecided, only that
    /// reviewer's own review, so that each reviewer decides independently (the second
    /// does not see the first vote until the output has all its votes; `votes` still
    /// counts them). Decided outputs show every review.
    pub fn for_reviewer(mut self, key: &KeyId) -> Output {
        if self.status == OutputStatus::Quarantined {
            self.reviews.retain(|r| r.reviewer_key == *key);
        }
        self
    }

    /// The view of the developer organisation that owns the output (see the module
    /// documentation): nothing that depends on the data before release.
    pub fn for_owner(mut self) -> Output {
        let released = self.status == OutputStatus::Released;
        self.check_report = owner_report(&self.check_report, released);
        if !released {
            self.output_hash = String::new();
            self.rows = 0;
            self.bytes = 0;
        }
        self
    }
}

/// A disclosure-checked report as its developer may see it; other reports (DP,
/// unconditional data) hold nothing that depends on the records and pass unchanged.
fn owner_report(report: &serde_json::Value, released: bool) -> serde_json::Value {
    if is_regression(report) {
        return regression_owner_report(report, released);
    }
    let checked = report.get("hits").is_some() || report.get("run_failed").is_some();
    if !checked {
        return report.clone();
    }
    let plan_checks: Vec<&serde_json::Value> = report
        .get("passed")
        .and_then(serde_json::Value::as_array)
        .map(|passed| {
            passed
                .iter()
                .filter(|p| {
                    p.as_str()
                        .is_some_and(|p| pdx_algorithms::disclosure::PLAN_CHECKS.contains(&p))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut view = serde_json::json!({
        "rules": report.get("rules").cloned().unwrap_or_default(),
        "passed": plan_checks,
        "cell_checks": if released {
            "applied; the hits below concern released rows"
        } else {
            "applied; shown to reviewers, and to you once the output is released"
        },
    });
    if released {
        let hits: Vec<serde_json::Value> = report
            .get("hits")
            .and_then(serde_json::Value::as_array)
            .map(|hits| {
                // Only hits on released cells: a withheld aggregate that no column
                // shows (one used by HAVING) would otherwise tell what HAVING saw.
                hits.iter()
                    .filter(|h| h.get("released_row").is_some_and(|r| !r.is_null()))
                    .filter(|h| h.get("column").is_some_and(|c| !c.is_null()))
                    .map(|h| {
                        serde_json::json!({
                            "released_row": h.get("released_row"),
                            "column": h.get("column"),
                            "rule": h.get("rule"),
                            "detail": h.get("detail"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        view["hits"] = serde_json::Value::Array(hits);
    }
    view
}

/// Whether a report is a regression's (`crate::engines::regression`).
fn is_regression(report: &serde_json::Value) -> bool {
    report.get("kind").and_then(serde_json::Value::as_str) == Some("regression")
}

/// A regression's report as its developer may see it: on unconditionally open data
/// all of it; otherwise what the model text and the rules fix (family, rules, checks
/// applied), the same for a failed run, and after release the rules that held the
/// estimates back, each once: never a count, a level or a failure.
fn regression_owner_report(report: &serde_json::Value, released: bool) -> serde_json::Value {
    if report.get("unconditional") == Some(&serde_json::Value::Bool(true)) {
        return report.clone();
    }
    let field = |name: &str| report.get(name).cloned().unwrap_or_default();
    let mut view = serde_json::json!({
        "kind": "regression",
        "family": field("family"),
        "statistic": field("statistic"),
        "rules": field("rules"),
        "checks": field("checks"),
        "cell_checks": if released {
            "applied; `withheld_by` names the rules that held the estimates back"
        } else {
            "applied; shown to reviewers, and to you once the output is released"
        },
    });
    if released {
        let rules: std::collections::BTreeSet<&str> = report
            .get("hits")
            .and_then(serde_json::Value::as_array)
            .map(|hits| {
                hits.iter()
                    .filter_map(|h| h.get("rule").and_then(serde_json::Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        view["withheld_by"] = serde_json::json!(rules);
    }
    view
}

/// The checks a `Release` entry names: the plan checks and the cell rules *applied*,
/// never which of them held (the developer is a party to the entry, and whether a rule
/// held depends on records that did not leave); a DP or unconditional report's own list.
fn release_checks(report: &serde_json::Value) -> Vec<String> {
    // A regression's report lists the checks it applied, as DP and unconditional
    // reports do.
    if report.get("hits").is_none() || is_regression(report) {
        return report
            .get("checks")
            .and_then(|c| serde_json::from_value::<Vec<String>>(c.clone()).ok())
            .unwrap_or_default();
    }
    let mut checks: Vec<String> = pdx_algorithms::disclosure::PLAN_CHECKS
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let rules = report.get("rules");
    let number = |field: &str| rules.and_then(|r| r.get(field)).and_then(|v| v.as_u64());
    if let Some(t) = number("threshold") {
        checks.push(format!("threshold>={t}"));
    }
    if let (Some(n), Some(p)) = (number("dominance_n"), number("dominance_p_percent")) {
        checks.push(format!("dominance(n={n},p={p}%)"));
    }
    checks.push("differencing_within_output".to_owned());
    if let Some(base) = number("rounding_base") {
        checks.push(format!("rounded(base={base})"));
    }
    checks
}

fn output_from_row(row: &AnyRow) -> Result<Output> {
    let report: String = row.try_get("check_report_json")?;
    let preview: String = row.try_get("preview_json")?;
    Ok(Output {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        org_id: row.try_get("org_id")?,
        model_id: row.try_get("model_id")?,
        output_hash: row.try_get("output_hash")?,
        rows: u64::try_from(row.try_get::<i64, _>("rows_count")?).unwrap_or(0),
        bytes: u64::try_from(row.try_get::<i64, _>("bytes")?).unwrap_or(0),
        check_report: serde_json::from_str(&report).unwrap_or_default(),
        required_reviews: u8::try_from(row.try_get::<i64, _>("required_reviews")?).unwrap_or(1),
        status: OutputStatus::parse(&row.try_get::<String, _>("status")?)?,
        reason: row.try_get("reason")?,
        release_id: row.try_get("release_id")?,
        release_seq: row
            .try_get::<Option<i64>, _>("release_seq")?
            .and_then(|s| u64::try_from(s).ok()),
        reviews: Vec::new(),
        votes: 0,
        created_ms: row.try_get("created_ms")?,
        file_path: row.try_get("file_path")?,
        preview: serde_json::from_str(&preview).unwrap_or_default(),
    })
}

/// What a queue item shows of the run that made an output.
struct RunFacts {
    /// The grant it ran under, on conditional data.
    grant_id: Option<GrantId>,
    /// The dataset versions it read.
    versions: Vec<VersionRef>,
}

/// Who is asking for an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputView {
    /// The developer organisation that owns it.
    Owner,
    /// An output checker.
    Reviewer,
    /// A supervisor (metadata only).
    Supervisor,
}

impl Reviews {
    async fn load_output(&self, id: &OutputId) -> Result<Output> {
        let row = sqlx::query("SELECT * FROM outputs WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such output".into()))?;
        self.with_reviews(output_from_row(&row)?).await
    }

    /// `output` with its reviews and their count.
    async fn with_reviews(&self, mut output: Output) -> Result<Output> {
        output.reviews = self.reviews_of(&output.id).await?;
        output.votes = u32::try_from(output.reviews.len()).unwrap_or(u32::MAX);
        Ok(output)
    }

    async fn reviews_of(&self, id: &OutputId) -> Result<Vec<Review>> {
        Ok(self
            .reviews_by_output(std::slice::from_ref(id))
            .await?
            .remove(id)
            .unwrap_or_default())
    }

    /// The reviews of each of `ids`, oldest first (an output without reviews is absent),
    /// one query per [`store::IN_LIST_CHUNK`] outputs.
    async fn reviews_by_output(&self, ids: &[OutputId]) -> Result<HashMap<OutputId, Vec<Review>>> {
        let mut found: HashMap<OutputId, Vec<Review>> = HashMap::new();
        for chunk in ids.chunks(store::IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT * FROM output_reviews WHERE output_id IN ({}) \
                 ORDER BY output_id, created_ms, reviewer_key",
                store::placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.clone());
            }
            for row in query.fetch_all(self.db().pool()).await? {
                let review = Review {
                    reviewer_org: row.try_get("reviewer_org")?,
                    reviewer_key: row.try_get("reviewer_key")?,
                    decision: row.try_get("decision")?,
                    reason: row.try_get("reason")?,
                    created_ms: row.try_get("created_ms")?,
                };
                found
                    .entry(row.try_get::<OutputId, _>("output_id")?)
                    .or_default()
                    .push(review);
            }
        }
        Ok(found)
    }

    /// An output, if the caller may see it.
    pub async fn output(&self, id: &OutputId, org: &OrgId, view: OutputView) -> Result<Output> {
        let output = self.load_output(id).await?;
        match view {
            OutputView::Owner if output.org_id == *org => Ok(output.for_owner()),
            OutputView::Owner => Err(SandboxError::NotFound("no such output".into())),
            OutputView::Reviewer | OutputView::Supervisor => Ok(output),
        }
    }

    /// The outputs of a developer organisation, newest first.
    pub async fn outputs_of(&self, org: &OrgId) -> Result<Vec<Output>> {
        let rows =
            sqlx::query("SELECT * FROM outputs WHERE org_id = $1 ORDER BY created_ms DESC, id")
                .bind(org.clone())
                .fetch_all(self.db().pool())
                .await?;
        rows.iter()
            .map(|row| output_from_row(row).map(Output::for_owner))
            .collect()
    }

    /// The review queue: quarantined outputs of other organisations, oldest first.
    pub async fn review_queue(&self, reviewer_org: &OrgId) -> Result<Vec<ReviewItem>> {
        let rows = sqlx::query(
            "SELECT * FROM outputs WHERE status = 'quarantined' AND org_id <> $1 \
             ORDER BY created_ms, id",
        )
        .bind(reviewer_org.clone())
        .fetch_all(self.db().pool())
        .await?;
        self.review_items(&rows).await
    }

    /// Outputs of other organisations that reviewers decided (released or rejected
    /// after review; a DP output released without review is not one), most recently
    /// decided first, at most `limit`.
    pub async fn decided_reviews(
        &self,
        reviewer_org: &OrgId,
        limit: i64,
    ) -> Result<Vec<ReviewItem>> {
        let rows = sqlx::query(
            "SELECT * FROM outputs o WHERE o.status <> 'quarantined' AND o.org_id <> $1 \
             AND EXISTS (SELECT 1 FROM output_reviews r WHERE r.output_id = o.id) \
             ORDER BY o.decided_ms DESC, o.id LIMIT $2",
        )
        .bind(reviewer_org.clone())
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        self.review_items(&rows).await
    }

    /// One output as a reviewer of `reviewer_org` sees it, whatever its status; an
    /// output of the reviewer's own organisation is not found (as in the queue).
    pub async fn review_detail(&self, id: &OutputId, reviewer_org: &OrgId) -> Result<ReviewItem> {
        let output = self.load_output(id).await?;
        if output.org_id == *reviewer_org {
            return Err(SandboxError::NotFound("no such output".into()));
        }
        self.review_item(output).await
    }

    /// The release an output is compared with: the latest release (created no later
    /// than the output) of the same model, else of another model under the same grant.
    pub async fn previous_release(
        &self,
        output: &Output,
        grant: Option<&GrantId>,
    ) -> Result<Option<PreviousRelease>> {
        let same_model = sqlx::query(
            "SELECT * FROM outputs WHERE status = 'released' AND org_id = $1 AND model_id = $2 \
             AND id <> $3 AND created_ms <= $4 ORDER BY created_ms DESC, id DESC LIMIT 1",
        )
        .bind(output.org_id.clone())
        .bind(output.model_id.clone())
        .bind(output.id.clone())
        .bind(output.created_ms)
        .fetch_optional(self.db().pool())
        .await?;
        if let Some(row) = same_model {
            return Ok(Some(PreviousRelease::of(&output_from_row(&row)?, "model")));
        }
        let Some(grant) = grant else {
            return Ok(None);
        };
        let same_grant = sqlx::query(
            "SELECT o.* FROM outputs o JOIN model_runs r ON r.job_id = o.job_id \
             WHERE o.status = 'released' AND o.org_id = $1 AND r.grant_id = $2 \
             AND o.id <> $3 AND o.created_ms <= $4 \
             ORDER BY o.created_ms DESC, o.id DESC LIMIT 1",
        )
        .bind(output.org_id.clone())
        .bind(grant.clone())
        .bind(output.id.clone())
        .bind(output.created_ms)
        .fetch_optional(self.db().pool())
        .await?;
        same_grant
            .map(|row| output_from_row(&row).map(|o| PreviousRelease::of(&o, "grant")))
            .transpose()
    }

    /// The rows of the release an output is compared with, for a reviewer of another
    /// organisation than the output's (404 when there is none). The caller logs the
    /// access, as for every download.
    pub async fn previous_release_rows(
        &self,
        id: &OutputId,
        reviewer_org: &OrgId,
    ) -> Result<(PreviousRelease, Output, DataFrame)> {
        let output = self.load_output(id).await?;
        if output.org_id == *reviewer_org {
            return Err(SandboxError::NotFound("no such output".into()));
        }
        let grant = self.run_grant(&output.job_id).await?;
        let Some(previous) = self.previous_release(&output, grant.as_ref()).await? else {
            return Err(SandboxError::NotFound(
                "no earlier release of this model or grant".into(),
            ));
        };
        let released = self.load_output(&previous.output_id).await?;
        let frame = read_rows(
            self.zones().at_rest(),
            self.zones().root().join(&released.file_path),
        )
        .await?;
        Ok((previous, released, frame))
    }

    /// Queue items of output rows, with their reviews. The reviews, models and runs of
    /// all the rows are read together, a query each (per [`store::IN_LIST_CHUNK`] rows),
    /// rather than four queries per row; only the previous release is looked up per
    /// item (an indexed read, two when the model has none and the run used a grant).
    async fn review_items(&self, rows: &[AnyRow]) -> Result<Vec<ReviewItem>> {
        let outputs = rows
            .iter()
            .map(output_from_row)
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<OutputId> = outputs.iter().map(|o| o.id.clone()).collect();
        let jobs: Vec<JobId> = outputs.iter().map(|o| o.job_id.clone()).collect();
        let mut model_ids: Vec<ModelId> = outputs.iter().map(|o| o.model_id.clone()).collect();
        model_ids.sort();
        model_ids.dedup();
        let mut reviews = self.reviews_by_output(&ids).await?;
        let models = self.models().models_by_id(&model_ids).await?;
        // An output's job id is unique (a constraint), so each run is taken once.
        let mut runs = self.runs_by_job(&jobs).await?;
        let mut items = Vec::with_capacity(outputs.len());
        for mut output in outputs {
            output.reviews = reviews.remove(&output.id).unwrap_or_default();
            output.votes = u32::try_from(output.reviews.len()).unwrap_or(u32::MAX);
            let model = models
                .get(&output.model_id)
                .ok_or_else(|| SandboxError::NotFound("no such model".into()))?;
            let run = runs
                .remove(&output.job_id)
                .ok_or_else(|| SandboxError::Internal("an output without its run".into()))?;
            items.push(self.item_of(output, model, run).await?);
        }
        Ok(items)
    }

    /// The grant and the dataset versions of each of `jobs`' runs (a job without a run
    /// is absent), one query per [`store::IN_LIST_CHUNK`] jobs.
    async fn runs_by_job(&self, jobs: &[JobId]) -> Result<HashMap<JobId, RunFacts>> {
        let mut found = HashMap::with_capacity(jobs.len());
        for chunk in jobs.chunks(store::IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT job_id, grant_id, dataset_versions FROM model_runs WHERE job_id IN ({})",
                store::placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for job in chunk {
                query = query.bind(job.clone());
            }
            for row in query.fetch_all(self.db().pool()).await? {
                let facts = RunFacts {
                    grant_id: row.try_get("grant_id")?,
                    versions: cited_versions(&row.try_get::<String, _>("dataset_versions")?)?,
                };
                found.insert(row.try_get::<JobId, _>("job_id")?, facts);
            }
        }
        Ok(found)
    }

    /// The grant a run used, if any.
    async fn run_grant(&self, job_id: &JobId) -> Result<Option<GrantId>> {
        let row = sqlx::query("SELECT grant_id FROM model_runs WHERE job_id = $1")
            .bind(job_id.clone())
            .fetch_optional(self.db().pool())
            .await?;
        Ok(match row {
            Some(row) => row.try_get("grant_id")?,
            None => None,
        })
    }

    async fn review_item(&self, output: Output) -> Result<ReviewItem> {
        let model = self.models().model_any(&output.model_id).await?;
        let run = RunFacts {
            versions: self.run_versions(&output.job_id).await?,
            grant_id: self.run_grant(&output.job_id).await?,
        };
        self.item_of(output, &model, run).await
    }

    /// The queue item of `output`, given its model and its run.
    async fn item_of(&self, output: Output, model: &Model, run: RunFacts) -> Result<ReviewItem> {
        let previous_release = self
            .previous_release(&output, run.grant_id.as_ref())
            .await?;
        Ok(ReviewItem {
            model_text: model.body.clone(),
            model_kind: model.kind.as_str().into(),
            model_hash: model.model_hash.clone(),
            dataset_versions: run.versions,
            preview: output.preview.clone(),
            grant_id: run.grant_id,
            previous_release,
            output,
        })
    }

    /// One queue item (a reviewer's detailed view).
    pub async fn review_item_for(&self, id: &OutputId) -> Result<ReviewItem> {
        let output = self.load_output(id).await?;
        self.review_item(output).await
    }

    async fn run_versions(&self, job_id: &JobId) -> Result<Vec<VersionRef>> {
        let row = sqlx::query("SELECT dataset_versions FROM model_runs WHERE job_id = $1")
            .bind(job_id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::Internal("an output without its run".into()))?;
        cited_versions(&row.try_get::<String, _>("dataset_versions")?)
    }

    /// Refuses (403) when a run read a not-open dataset, and (409) a destroyed dataset
    /// or version: its output is never released.
    async fn inputs_reachable(&self, job_id: &JobId) -> Result<()> {
        for cited in self.run_versions(job_id).await? {
            self.catalog()
                .dataset(&cited.dataset)
                .await?
                .ok_or_else(|| SandboxError::Internal("a run's dataset is gone".into()))?
                .reachable_by_developers()?;
            // Destruction recalls nothing that left, and lets nothing more leave: an
            // output that read a destroyed version can only be rejected (GD21 Art.40).
            crate::destruction::refuse_destroyed(self.db().pool(), &cited.dataset, cited.version)
                .await?;
        }
        Ok(())
    }

    /// A reviewer's decision; the last approval needed releases the output (never one
    /// that read a not-open dataset: it can only be rejected).
    pub async fn review_output(
        &self,
        actor: &Actor,
        id: &OutputId,
        decision: ReviewDecision,
    ) -> Result<Output> {
        let reason = decision.reason.trim();
        if reason.is_empty() || reason.chars().count() > 4000 {
            return Err(SandboxError::Invalid(
                "`reason` must be 1 to 4000 characters".into(),
            ));
        }
        let output = self.load_output(id).await?;
        if output.org_id == actor.org {
            return Err(SandboxError::Forbidden(
                "a reviewer cannot review an output of their own organisation".into(),
            ));
        }
        if output.status != OutputStatus::Quarantined {
            return Err(SandboxError::Conflict(
                "the output has already been decided".into(),
            ));
        }
        if decision.approve && output.is_failed_run() {
            return Err(SandboxError::Conflict(
                "the run failed and its output holds nothing to release; reject it".into(),
            ));
        }
        if decision.approve {
            self.inputs_reachable(&output.job_id).await?;
        }
        if output
            .reviews
            .iter()
            .any(|r| r.reviewer_key == actor.key_id)
        {
            return Err(SandboxError::Conflict(
                "this key has already reviewed the output".into(),
            ));
        }
        let reviewer_org = actor_org(actor)?;
        let reviewer_key = actor_key(actor)?;
        let mut tx = self.db().begin_write().await?;
        let review = store::outputs::NewOutputReview {
            output_id: id,
            reviewer_org: &reviewer_org,
            reviewer_key: &reviewer_key,
            decision: if decision.approve {
                "approve"
            } else {
                "reject"
            },
            reason,
            created_ms: now_ms(),
        };
        let inserted = store::outputs::insert_review(&mut *tx, &review).await;
        if let Err(e) = inserted {
            if matches!(&e, SandboxError::Db(db) if store::is_unique_violation(db)) {
                return Err(SandboxError::Conflict(
                    "this key has already reviewed the output".into(),
                ));
            }
            return Err(e);
        }
        if !decision.approve {
            let updated = store::outputs::reject_output(&mut *tx, id, reason, now_ms()).await?;
            if updated != 1 {
                return Err(SandboxError::Conflict(
                    "the output has already been decided".into(),
                ));
            }
            tx.commit().await?;
            return self.load_output(id).await;
        }
        let approvals: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM output_reviews WHERE output_id = $1 AND decision = 'approve'",
        )
        .bind(id.clone())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if approvals < i64::from(output.required_reviews) {
            tx.commit().await?;
            return self.load_output(id).await;
        }
        let reviewers: Vec<KeyId> = sqlx::query(
            "SELECT reviewer_key FROM output_reviews WHERE output_id = $1 AND decision = 'approve' \
             ORDER BY created_ms, reviewer_key",
        )
        .bind(id.clone())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<KeyId, _>("reviewer_key"))
        .collect::<std::result::Result<_, _>>()?;
        self.release_in(&mut tx, &output, actor, reviewers).await?;
        tx.commit().await?;
        self.load_output(id).await
    }

    /// Releases an output without review (DP within budget, when policy allows).
    pub(crate) async fn release(
        &self,
        id: &OutputId,
        actor: &Actor,
        reviewers: Vec<KeyId>,
    ) -> Result<()> {
        let output = self.load_output(id).await?;
        self.inputs_reachable(&output.job_id).await?;
        let mut tx = self.db().begin_write().await?;
        self.release_in(&mut tx, &output, actor, reviewers).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims the output, copies its file durably to the released zone, flips the
    /// status and appends `Release`, all inside `tx`.
    ///
    /// The claim comes first, so a second approval racing this one waits for the commit
    /// and then finds the output decided: it never copies over a file already released.
    /// The copy comes before the row: a crash after it leaves a harmless orphan file,
    /// never a released row without its file, and the file is written under a temporary
    /// name, fsynced and renamed, so a crash mid-copy never leaves a torn released file.
    async fn release_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        output: &Output,
        actor: &Actor,
        reviewers: Vec<KeyId>,
    ) -> Result<()> {
        if store::outputs::claim_for_release(&mut *tx, &output.id).await? != 1 {
            return Err(SandboxError::Conflict(
                "the output has already been decided".into(),
            ));
        }
        let from = self.zones().root().join(&output.file_path);
        let name = from
            .file_name()
            .ok_or_else(|| SandboxError::Internal("output file without a name".into()))?;
        let to = self.zones().released().join(name);
        copy_durably(&from, &to).await?;
        let relative = to
            .strip_prefix(self.zones().root())
            .map_err(|_| SandboxError::Internal("released file outside the data directory".into()))?
            .to_string_lossy()
            .into_owned();
        let model = self.models().model_any(&output.model_id).await?;
        let release_id = ReleaseId::random();
        let checks = release_checks(&output.check_report);
        let entry = Release {
            release_id: release_id.to_string(),
            job_id: output.job_id.to_string(),
            developer_org: output.org_id.to_string(),
            output_hash: Hash32::from_hex(&output.output_hash)
                .map_err(|_| SandboxError::Internal("stored output hash".into()))?,
            model_hash: Hash32::from_hex(&model.model_hash)
                .map_err(|_| SandboxError::Internal("stored model hash".into()))?,
            dataset_versions: self
                .run_versions(&output.job_id)
                .await?
                .iter()
                .map(VersionRef::to_string)
                .collect(),
            checks,
            reviewers: reviewers.into_iter().map(KeyId::into_string).collect(),
        };
        let appended = self.ledger().append(&mut *tx, actor, &entry).await?;
        let release = store::outputs::OutputRelease {
            id: &output.id,
            release_id: &release_id,
            release_seq: appended.seq as i64,
            file_path: &relative,
            decided_ms: now_ms(),
        };
        let updated = store::outputs::release_output(&mut *tx, &release).await?;
        if updated != 1 {
            return Err(SandboxError::Conflict(
                "the output has already been decided".into(),
            ));
        }
        Ok(())
    }

    /// The file of an output: its owner once released; reviewers (of other
    /// organisations) while quarantined. Everyone else: not found.
    pub async fn output_path(
        &self,
        id: &OutputId,
        org: &OrgId,
        view: OutputView,
    ) -> Result<(Output, PathBuf)> {
        let output = self.load_output(id).await?;
        let allowed = match (view, output.status) {
            (OutputView::Owner, OutputStatus::Released) => output.org_id == *org,
            (OutputView::Reviewer, OutputStatus::Quarantined) => output.org_id != *org,
            _ => false,
        };
        if !allowed {
            return Err(SandboxError::NotFound("no such output".into()));
        }
        let path = self.zones().root().join(&output.file_path);
        Ok((output, path))
    }

    /// The rows of an output, under the rule of [`Reviews::output_path`].
    pub async fn output_rows(
        &self,
        id: &OutputId,
        org: &OrgId,
        view: OutputView,
    ) -> Result<(Output, DataFrame)> {
        let (output, path) = self.output_path(id, org, view).await?;
        Ok((output, read_rows(self.zones().at_rest(), path).await?))
    }

    /// The Parquet file of a released output, for its owner (and the products crate).
    pub async fn released_file(&self, id: &OutputId, org: &OrgId) -> Result<(Output, PathBuf)> {
        let output = self.load_output(id).await?;
        if output.status != OutputStatus::Released || output.org_id != *org {
            return Err(SandboxError::NotFound("no such output".into()));
        }
        let path = self.zones().root().join(&output.file_path);
        Ok((output, path))
    }
}

/// The rows of an output file (kept as `at_rest` says), read off the async runtime.
async fn read_rows(at_rest: &AtRest, path: PathBuf) -> Result<DataFrame> {
    let at_rest = at_rest.clone();
    tokio::task::spawn_blocking(move || read_parquet(&path, &at_rest))
        .await
        .map_err(|e| SandboxError::Internal(format!("output task: {e}")))?
        .map_err(|e| SandboxError::Internal(format!("reading an output: {e}")))
}

/// Copies `from` to `to` so that `to` is either absent or whole after a crash: a
/// temporary file beside `to`, fsynced, renamed into place, and the directory fsynced.
/// The bytes are copied as they are: a sealed file stays sealed (an identical copy
/// reuses no nonce on a different plaintext).
async fn copy_durably(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let mut part = to.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    tokio::fs::copy(from, &part).await?;
    tokio::fs::File::open(&part).await?.sync_all().await?;
    tokio::fs::rename(&part, to).await?;
    if let Some(dir) = to.parent() {
        tokio::fs::File::open(dir).await?.sync_all().await?;
    }
    Ok(())
}
