//! Model runs: a registered model against dataset versions, inside the limits.
//!
//! Data flow of [`Runs::start_run`], top-down:
//! 1. **Admission** (synchronous, so a refusal is a 4xx and never a job): the model is
//!    the caller's; no input dataset is not open (不予开放, SD22 Art.8; GD21 Art.32:
//!    [`crate::catalog::Dataset::reachable_by_developers`], checked first, for every
//!    input, with a grant or without; a resumed run is checked again); each input
//!    dataset is either unconditionally open or covered by a grant that is usable *now*
//!    ([`crate::grants::Grants::usable_grant`]: approved, in term, not revoked, for this
//!    model kind and these columns); the organisation is under its concurrency cap.
//! 2. **Budget**, in one write transaction with the run row: every grant pays one query
//!    and, for a DP model, the job's ε and δ, through a conditional update that cannot
//!    overspend; each DP spend is a `PrivacySpend` ledger entry in the same
//!    transaction. A job the budget cannot cover is refused before it runs. Spent
//!    budget is not refunded when a job fails: the engine ran over the data.
//! 3. **Execution** as a polled, durable job by the model kind's engine
//!    ([`crate::engines`], which also checked the model at admission): only the
//!    granted columns of the granted versions are registered. SQL runs on DataFusion
//!    under a memory pool without spilling, a timeout and output caps; on conditional
//!    data its output goes through automatic disclosure control. DP runs on OpenDP over
//!    polars. A regression is fitted over polars and its estimates pass ACRO-style
//!    checks and the record-set checks across outputs.
//! 4. **Quarantine**: the output is written content-addressed into the quarantine zone
//!    with its check report and a preview, and waits for review ([`crate::review`]).
//!
//! **No outcome oracles on conditional data.** A SQL model's text is planned and
//! checked when the run is submitted (step 1), so every refusal that does not depend
//! on data is immediate and precise. What fails later can depend on the records (an
//! overflow, a limit), so on conditional data such a failure is not reported to the
//! developer at all: the job finishes as any other, with a quarantined output that
//! holds no rows and a report, seen by reviewers only, that names the failure. The
//! developer sees the same status and the same (redacted, see [`crate::review`]) view
//! as for a successful run; the budget is spent either way.
//!
//! Errors from the engines are already sanitised by `pdx-algorithms`; anything else
//! internal is logged with the job id and replaced by a generic detail.

use std::path::PathBuf;

use pdx_algorithms::DataFrame;
use pdx_algorithms::deid::schema::DeidRule;
use pdx_algorithms::deid::storage::{
    empty_boolean_frame, read_parquet_bytes, store_content_addressed, to_json_rows,
};
use pdx_algorithms::disclosure::{DisclosureError, DisclosureRules, PLAN_CHECKS, check_and_run};
use pdx_algorithms::dp::{ColumnKind, DpTable, plan as dp_plan, run_parquet as dp_run_parquet};
use pdx_algorithms::sql::{SqlLimits, SqlSandbox, TableGrant};
use pdx_ids::{DatasetId, GrantId, JobId, ModelId, OrgId, OutputId, VersionRef};
use pdx_ledger::Actor;
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::PrivacySpend;
use pdx_seal::AtRest;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::catalog::{Dataset, Level, OpenAttribute};
use crate::engines::{AdmittedModel, EngineOutput, RunContext, engine_for};
use crate::grants::{Grant, ModelKind, PrivacyCost};
use crate::jobs::{self, Job, JobFailure, JobInputs};
use crate::models::Model;
use crate::record_sets;
use crate::store;
use crate::{Result, SandboxError, actor_org, scratch_name};

crate::service! {
    /// Model runs: admission, budget, engine, quarantine; dry runs.
    Runs
}

/// Preview rows kept with a quarantined output for reviewers.
pub const PREVIEW_ROWS: usize = 20;

/// Per-dataset rules for what may leave, set by the provider.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct OutputPolicy {
    /// Fewest records behind an output cell (threshold rule), 1 to 1,000,000.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub threshold: u64,
    /// Contributors counted by the dominance rule, 1 to 5.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    pub dominance_n: u8,
    /// Largest share, in percent, the top contributors may hold of a SUM cell, 1 to 100.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub dominance_p_percent: u8,
    /// Round counts and sums to this base, if set (at least 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub rounding_base: Option<u32>,
    /// Reviewers needed to release an output, 1 to 3; default 2 at L3 and above, else 1.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3))]
    pub reviewers_required: Option<u8>,
    /// Release DP outputs within budget without a reviewer.
    pub dp_auto_release: bool,
    /// The column naming the person, for user-level DP (a person's records count as
    /// one unit); record level when absent.
    pub dp_identifier: Option<String>,
    /// Most records one person may contribute under user-level DP (more are truncated),
    /// 1 to 1,000.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub dp_max_contributions: u32,
}

impl Default for OutputPolicy {
    fn default() -> Self {
        OutputPolicy {
            threshold: 10,
            dominance_n: 2,
            dominance_p_percent: 85,
            rounding_base: None,
            reviewers_required: None,
            dp_auto_release: false,
            dp_identifier: None,
            dp_max_contributions: 1,
        }
    }
}

impl OutputPolicy {
    /// Checks the values a provider set.
    pub fn validate(&self) -> Result<()> {
        if self.threshold == 0 || self.threshold > 1_000_000 {
            return Err(SandboxError::Invalid(
                "`threshold` must be between 1 and 1000000".into(),
            ));
        }
        if !(1..=5).contains(&self.dominance_n) || !(1..=100).contains(&self.dominance_p_percent) {
            return Err(SandboxError::Invalid(
                "`dominance_n` must be 1 to 5 and `dominance_p_percent` 1 to 100".into(),
            ));
        }
        if self.rounding_base == Some(0) {
            return Err(SandboxError::Invalid(
                "`rounding_base` must be at least 1".into(),
            ));
        }
        if !(1..=1000).contains(&self.dp_max_contributions) {
            return Err(SandboxError::Invalid(
                "`dp_max_contributions` must be 1 to 1000".into(),
            ));
        }
        if self
            .reviewers_required
            .is_some_and(|r| !(1..=3).contains(&r))
        {
            return Err(SandboxError::Invalid(
                "`reviewers_required` must be 1 to 3".into(),
            ));
        }
        Ok(())
    }

    /// Reviewers needed for an output over data of this level.
    pub fn reviewers_for(&self, level: Level) -> u8 {
        self.reviewers_required.unwrap_or(match level {
            Level::L1 | Level::L2 => 1,
            Level::L3 | Level::L4 => 2,
        })
    }

    /// The disclosure rules for the engine.
    pub fn disclosure_rules(&self, contributor_column: Option<String>) -> DisclosureRules {
        DisclosureRules {
            threshold: self.threshold,
            dominance_n: self.dominance_n,
            dominance_p_percent: self.dominance_p_percent,
            rounding_base: self.rounding_base,
            contributor_column,
            public_rows: std::collections::BTreeMap::new(),
        }
    }
}

/// One input of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// Dataset id.
    pub dataset_id: DatasetId,
    /// Version; the latest when absent.
    pub version: Option<u64>,
    /// Grant covering a conditional dataset.
    pub grant_id: Option<GrantId>,
    /// Table name in the model's SQL (default `data` for a single input, else required).
    pub table: Option<String>,
}

/// A request to run a model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The caller's model.
    pub model_id: ModelId,
    /// The datasets it reads (1 to 8).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 8))]
    pub inputs: Vec<RunInput>,
    /// ε for a DP model.
    pub epsilon: Option<f64>,
    /// δ for a DP model.
    pub delta: Option<f64>,
}

/// A resolved input: dataset, version file, granted columns.
#[derive(Clone, Debug)]
pub(crate) struct ResolvedInput {
    pub dataset: Dataset,
    pub version: u64,
    pub path: PathBuf,
    /// How the file at `path` is kept (sealed: the zones' handle).
    pub at_rest: AtRest,
    pub rows: u64,
    pub table: String,
    pub columns: Vec<String>,
    pub grant: Option<Grant>,
}

impl ResolvedInput {
    /// `dataset_id@version`, as the ledger cites it.
    pub fn cited(&self) -> VersionRef {
        VersionRef::new(self.dataset.id.clone(), self.version)
    }
}

/// What a finished run left in quarantine.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunResult {
    /// The quarantined (or auto-released) output.
    pub output_id: OutputId,
    /// Rows in it; withheld (`null`) while an output over conditional data waits for
    /// review, since the number of cells that passed the checks depends on the data.
    pub rows: Option<u64>,
    /// Whether policy released it without review.
    pub auto_released: bool,
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

impl Runs {
    /// The output policy of a dataset.
    pub async fn output_policy(&self, dataset_id: &DatasetId) -> Result<OutputPolicy> {
        let row = sqlx::query("SELECT output_policy_json FROM datasets WHERE id = $1")
            .bind(dataset_id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        let text: String = row.try_get("output_policy_json")?;
        serde_json::from_str(&text)
            .map_err(|e| SandboxError::Internal(format!("stored output policy: {e}")))
    }

    /// Sets a dataset's output policy; the caller has checked that it owns the dataset.
    pub async fn set_output_policy(
        &self,
        dataset_id: &DatasetId,
        policy: &OutputPolicy,
    ) -> Result<()> {
        policy.validate()?;
        if let Some(identifier) = &policy.dp_identifier {
            let dataset = self
                .catalog()
                .dataset(dataset_id)
                .await?
                .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
            if !dataset.meta.schema.released_columns().contains(identifier) {
                return Err(SandboxError::Invalid(
                    "`dp_identifier` must name a released column of the dataset".into(),
                ));
            }
        }
        let text =
            serde_json::to_string(policy).map_err(|e| SandboxError::Internal(e.to_string()))?;
        store::catalog::set_output_policy(self.db().pool(), dataset_id, text, now_ms()).await
    }

    /// Resolves and checks the inputs of a run for `org` (admission, step 1).
    pub(crate) async fn resolve_inputs(
        &self,
        org: &OrgId,
        kind: ModelKind,
        inputs: &[RunInput],
    ) -> Result<Vec<ResolvedInput>> {
        if inputs.is_empty() || inputs.len() > 8 {
            return Err(SandboxError::Invalid("a run reads 1 to 8 datasets".into()));
        }
        if kind == ModelKind::Dp && inputs.len() != 1 {
            return Err(SandboxError::Invalid(
                "a DP model reads exactly one dataset".into(),
            ));
        }
        let mut resolved: Vec<ResolvedInput> = Vec::with_capacity(inputs.len());
        for input in inputs {
            let dataset = self
                .catalog()
                .dataset(&input.dataset_id)
                .await?
                .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
            // Before anything else, whatever the input's grant: not-open data is read by
            // no run.
            dataset.reachable_by_developers()?;
            let version = match input.version.or(dataset.latest_version) {
                Some(v) => v,
                None => {
                    return Err(SandboxError::Conflict(
                        "the dataset has no certified version yet".into(),
                    ));
                }
            };
            let (path, rows) = self
                .versions()
                .version_file_rows(&dataset.id, version)
                .await?;
            let table = match (&input.table, inputs.len()) {
                (Some(t), _) => t.clone(),
                (None, 1) => "data".to_string(),
                (None, _) => {
                    return Err(SandboxError::Invalid(
                        "with several inputs, each needs a `table` name".into(),
                    ));
                }
            };
            if !is_identifier(&table) {
                return Err(SandboxError::Invalid(
                    "`table` must be a plain identifier (letters, digits, _)".into(),
                ));
            }
            if resolved.iter().any(|r| r.table == table) {
                return Err(SandboxError::Invalid(format!(
                    "table name `{table}` is used twice"
                )));
            }
            let released = dataset.meta.schema.released_columns();
            let open = dataset.effective_open_attribute == OpenAttribute::Unconditional;
            let (columns, grant) = if open {
                (released, None)
            } else {
                let grant_id = input.grant_id.as_ref().ok_or_else(|| {
                    SandboxError::Forbidden(
                        "this dataset is conditionally open: the run needs a `grant_id`".into(),
                    )
                })?;
                let grant = self
                    .grants()
                    .usable_grant(grant_id, org, &dataset.id, kind, &[])
                    .await?;
                // Two versions differ by the records added or removed between them, and
                // rows have no identity across versions, so one sum over each would give
                // those records away: conditional data is read at its latest version.
                if dataset
                    .latest_version
                    .is_some_and(|latest| latest != version)
                {
                    return Err(SandboxError::Conflict(format!(
                        "runs on conditionally open data read the latest certified version \
                         ({}); totals over two versions would reveal the records between them",
                        dataset.latest_version.unwrap_or(version)
                    )));
                }
                let columns: Vec<String> = released
                    .into_iter()
                    .filter(|c| grant.columns.contains(c))
                    .collect();
                (columns, Some(grant))
            };
            resolved.push(ResolvedInput {
                at_rest: self.zones().at_rest().clone(),
                dataset,
                version,
                path,
                rows,
                table,
                columns,
                grant,
            });
        }
        Ok(resolved)
    }

    /// Admits a run and starts it as a job.
    pub async fn start_run(&self, actor: &Actor, request: RunRequest) -> Result<Job> {
        let org = actor_org(actor)?;
        let model = self.models().model(&request.model_id, &org).await?;
        let inputs = self
            .resolve_inputs(&org, model.kind, &request.inputs)
            .await?;
        let cost = run_cost(model.kind, &request)?;
        // Checked before anything is spent: a refused shape costs no budget.
        let admitted = engine_for(model.kind)
            .admit(self, &model, &inputs, cost)
            .await?;
        // A resumed run reads the versions this one was admitted on.
        let mut request = request;
        for (input, resolved) in request.inputs.iter_mut().zip(&inputs) {
            input.version = Some(resolved.version);
        }

        // The job row, the budget spends and their ledger entries commit together: a
        // refused run leaves no job behind and spends nothing.
        let job_id = JobId::random();
        let cited: Vec<VersionRef> = inputs.iter().map(ResolvedInput::cited).collect();
        let mut tx = self.db().begin_write().await?;
        self.take_run_slot(&mut tx, &org).await?;
        for input in &inputs {
            if let Some(grant) = &input.grant {
                self.grants().spend_budget(&mut tx, &grant.id, cost).await?;
                if cost.epsilon_micro > 0 || cost.delta_pico > 0 {
                    let spend = PrivacySpend {
                        grant_id: grant.id.to_string(),
                        job_id: job_id.to_string(),
                        org: actor.org.clone(),
                        epsilon: format!("{}", cost.epsilon()),
                        delta: format!("{}", cost.delta()),
                    };
                    self.ledger().append(&mut tx, actor, &spend).await?;
                }
            }
        }
        let resume = JobInputs::ModelRun {
            actor: actor.clone(),
            request,
        };
        jobs::insert(&mut tx, &job_id, RUN_JOB_KIND, &org, &model.id, &resume).await?;
        let dataset_versions = serde_json::to_string(&cited).map_err(internal)?;
        let run = store::runs::NewModelRun {
            job_id: &job_id,
            model_id: &model.id,
            org_id: &org,
            grant_id: inputs
                .iter()
                .find_map(|i| i.grant.as_ref().map(|g| g.id.clone())),
            dataset_versions_json: &dataset_versions,
            epsilon_micro: cost.epsilon_micro,
            delta_pico: cost.delta_pico,
            created_ms: now_ms(),
        };
        store::runs::insert_model_run(&mut *tx, &run).await?;
        tx.commit().await?;
        let job = self.jobs().created(&job_id).await?;
        self.spawn_run(&job_id, actor.clone(), model, inputs, admitted);
        Ok(job)
    }

    /// Runs an admitted model as the job `job_id` and closes its run row.
    fn spawn_run(
        &self,
        job_id: &JobId,
        actor: Actor,
        model: Model,
        inputs: Vec<ResolvedInput>,
        admitted: Box<dyn AdmittedModel>,
    ) {
        let sandbox = self.clone();
        let id = job_id.clone();
        self.runner().spawn(job_id, async move {
            let outcome = sandbox
                .execute_run(&id, &actor, &model, &inputs, admitted)
                .await;
            let status = if outcome.is_ok() {
                "finished"
            } else {
                "failed"
            };
            // A run another server took over (or a cancellation elsewhere closed) is
            // not this one's to close.
            if sandbox.runner().holds(&id).await.unwrap_or(false) {
                sandbox.close_run(&id, status).await;
            }
            serde_json::to_value(outcome?).map_err(internal)
        });
    }

    /// Resumes a run a restart cut off. Its budget and slot were taken at admission and
    /// stay taken (nothing is spent again). If its output was stored before the crash,
    /// the job just finishes with it; otherwise the model runs again from its inputs,
    /// so a DP run draws its noise again, but only the new draw is ever stored (an
    /// output is stored once per job: `outputs.job_id` is unique).
    pub(crate) async fn resume_run(
        &self,
        job_id: &JobId,
        actor: Actor,
        request: RunRequest,
    ) -> Result<()> {
        if let Some(result) = self.stored_run_result(job_id, &actor).await? {
            self.close_run(job_id, "finished").await;
            self.jobs()
                .succeed(job_id, &serde_json::to_value(result).map_err(internal)?)
                .await?;
            return Ok(());
        }
        let org = actor_org(&actor)?;
        let model = self.models().model(&request.model_id, &org).await?;
        let inputs = self
            .resolve_inputs(&org, model.kind, &request.inputs)
            .await?;
        let cost = self.admitted_cost(job_id).await?;
        let admitted = engine_for(model.kind)
            .admit(self, &model, &inputs, cost)
            .await?;
        self.spawn_run(job_id, actor, model, inputs, admitted);
        Ok(())
    }

    /// The privacy cost a run was admitted with (and charged).
    async fn admitted_cost(&self, job_id: &JobId) -> Result<PrivacyCost> {
        let row = sqlx::query("SELECT epsilon_micro, delta_pico FROM model_runs WHERE job_id = $1")
            .bind(job_id.clone())
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::Internal("a resumed run has no run row".into()))?;
        Ok(PrivacyCost {
            epsilon_micro: row.try_get("epsilon_micro")?,
            delta_pico: row.try_get("delta_pico")?,
        })
    }

    /// The result of a run whose output is already stored (releasing it first when a
    /// DP policy releases at once and the crash came between the two).
    async fn stored_run_result(&self, job_id: &JobId, actor: &Actor) -> Result<Option<RunResult>> {
        let Some(row) = sqlx::query(
            "SELECT o.id, o.rows_count, o.status, m.kind, r.dataset_versions \
             FROM outputs o JOIN models m ON m.id = o.model_id \
             JOIN model_runs r ON r.job_id = o.job_id WHERE o.job_id = $1",
        )
        .bind(job_id.clone())
        .fetch_optional(self.db().pool())
        .await?
        else {
            return Ok(None);
        };
        let output_id: OutputId = row.try_get("id")?;
        let rows = row.try_get::<i64, _>("rows_count")? as u64;
        let mut status: String = row.try_get("status")?;
        let kind: String = row.try_get("kind")?;
        let cited = cited_versions(&row.try_get::<String, _>("dataset_versions")?)?;
        let mut conditional = false;
        let mut auto_release = kind == "dp";
        for version in &cited {
            let dataset = self
                .catalog()
                .dataset(&version.dataset)
                .await?
                .ok_or_else(|| SandboxError::Internal("a run's dataset is gone".into()))?;
            conditional |= dataset.effective_open_attribute != OpenAttribute::Unconditional;
            auto_release &= self.output_policy(&version.dataset).await?.dp_auto_release;
        }
        if auto_release && status == "quarantined" {
            self.reviews()
                .release(&output_id, actor, Vec::new())
                .await?;
            status = "released".into();
        }
        let released = status == "released";
        Ok(Some(RunResult {
            output_id,
            rows: (released || !conditional).then_some(rows),
            auto_released: auto_release && released,
        }))
    }

    /// Under the organisation's cap, or a 429-style refusal. The count and the insert
    /// share the write transaction (SQLite serialises writers; PostgreSQL takes an
    /// advisory lock per organisation), so concurrent starts cannot both pass.
    async fn take_run_slot(&self, tx: &mut sqlx::AnyConnection, org: &OrgId) -> Result<()> {
        if self.db().backend() == pdx_ledger::db::Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("pdx-runs:{org}"))
                .execute(&mut *tx)
                .await?;
        }
        let running: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM model_runs WHERE org_id = $1 AND status = 'running'",
        )
        .bind(org.clone())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if running >= i64::from(self.config().org_run_concurrency) {
            return Err(SandboxError::Busy(format!(
                "the organisation already has {running} model runs in progress; wait for one to finish"
            )));
        }
        Ok(())
    }

    /// Closes a run row (`finished`, `failed`, `cancelled`), freeing its slot; a
    /// failure to write is logged (the row is closed at the next start).
    async fn close_run(&self, job_id: &JobId, status: &str) {
        if let Err(e) = store::runs::set_status(self.db().pool(), job_id, status).await {
            tracing::error!(%job_id, error = %e, "could not close the run");
        }
    }

    /// Cancels the running jobs of an organisation (suspension); returns how many.
    pub async fn cancel_runs_of(&self, org: &OrgId) -> Result<u64> {
        let rows =
            sqlx::query("SELECT job_id FROM model_runs WHERE org_id = $1 AND status = 'running'")
                .bind(org.clone())
                .fetch_all(self.db().pool())
                .await?;
        let failure = suspended_failure();
        let mut cancelled = 0;
        for row in rows {
            let job_id: JobId = row.try_get("job_id")?;
            if self.runner().cancel(&job_id, &failure).await? {
                cancelled += 1;
            }
            self.close_run(&job_id, "cancelled").await;
        }
        Ok(cancelled)
    }

    /// Cancels, at a start, a run a restart cut off whose organisation is suspended:
    /// its job fails as [`Runs::cancel_runs_of`] fails it, and its row is closed.
    pub(crate) async fn cancel_unresumed_run(&self, job_id: &JobId) -> Result<()> {
        self.jobs().fail(job_id, &suspended_failure()).await?;
        self.close_run(job_id, "cancelled").await;
        Ok(())
    }

    /// The run's job: the engine, then quarantine.
    async fn execute_run(
        &self,
        job_id: &JobId,
        actor: &Actor,
        model: &Model,
        inputs: &[ResolvedInput],
        admitted: Box<dyn AdmittedModel>,
    ) -> Result<RunResult> {
        self.jobs()
            .progress(job_id, "running the model", 0.1)
            .await?;
        let org = actor_org(actor)?;
        let run = RunContext {
            job_id,
            actor,
            org: &org,
            model,
            inputs,
        };
        // The output keeps the record-set locks until it is stored.
        let output = admitted.run(self, &run).await?;
        self.jobs()
            .progress(job_id, "quarantining the output", 0.8)
            .await?;
        self.quarantine(&run, output).await
    }

    /// The DP description of an input: its granted columns with their catalog domains,
    /// user-level when the dataset's policy names an identifier.
    pub(crate) async fn dp_table(&self, input: &ResolvedInput) -> Result<DpTable> {
        let specs: Vec<_> = input
            .dataset
            .meta
            .schema
            .columns
            .iter()
            .filter(|c| input.columns.contains(&c.name))
            .cloned()
            .collect();
        // The row bound is public: the certified row count of the version.
        let max_rows = u32::try_from(input.rows.max(1)).map_err(|_| {
            SandboxError::Invalid("the dataset is too large for a DP query (over 2^32 rows)".into())
        })?;
        let mut table = DpTable::from_catalog(&input.table, &specs, max_rows);
        // A generalised column's released values come from its declared hierarchy (any
        // level), which is public: that set makes it a public GROUP BY key.
        let schema = &input.dataset.meta.schema;
        for column in &mut table.columns {
            let hierarchy = specs.iter().find_map(|spec| match &spec.rule {
                DeidRule::Hierarchy { name } if spec.name == column.name => {
                    schema.hierarchies.get(name)
                }
                _ => None,
            });
            if let Some(hierarchy) = hierarchy {
                let values: std::collections::BTreeSet<&String> =
                    hierarchy.rows.iter().flatten().collect();
                column.kind = ColumnKind::Text {
                    categories: Some(values.into_iter().cloned().collect()),
                };
            }
        }
        let policy = self.output_policy(&input.dataset.id).await?;
        Ok(match policy.dp_identifier {
            Some(identifier) => table.user_level(identifier, policy.dp_max_contributions),
            None => table,
        })
    }

    /// The SQL engine over the granted columns of `inputs`.
    pub(crate) async fn sql_engine(&self, inputs: &[ResolvedInput]) -> Result<SqlSandbox> {
        let tables: Vec<TableGrant> = inputs
            .iter()
            .map(|i| TableGrant {
                name: i.table.clone(),
                path: i.path.clone(),
                columns: i.columns.clone(),
                at_rest: i.at_rest.clone(),
            })
            .collect();
        SqlSandbox::new(&tables, self.sql_limits())
            .await
            .map_err(SandboxError::from)
    }

    /// The disclosure rules of a run: the strictest policy of its conditional inputs
    /// (never looser than the defaults); `None` when every input is unconditionally open.
    pub(crate) async fn disclosure_rules_for(
        &self,
        inputs: &[ResolvedInput],
    ) -> Result<Option<DisclosureRules>> {
        let conditional: Vec<DatasetId> = inputs
            .iter()
            .filter(|i| i.grant.is_some())
            .map(|i| i.dataset.id.clone())
            .collect();
        if conditional.is_empty() {
            return Ok(None);
        }
        let mut policy = OutputPolicy::default();
        for dataset_id in &conditional {
            let p = self.output_policy(dataset_id).await?;
            policy.threshold = policy.threshold.max(p.threshold);
            policy.dominance_p_percent = policy.dominance_p_percent.min(p.dominance_p_percent);
            policy.dominance_n = policy.dominance_n.max(p.dominance_n);
            policy.rounding_base = policy.rounding_base.max(p.rounding_base);
        }
        let mut rules = policy.disclosure_rules(None);
        // Certified row counts are public on the catalog.
        rules.public_rows = inputs.iter().map(|i| (i.table.clone(), i.rows)).collect();
        Ok(Some(rules))
    }

    fn sql_limits(&self) -> SqlLimits {
        let c = self.config();
        SqlLimits {
            memory_bytes: c.run_memory_bytes,
            timeout: c.run_timeout,
            max_output_rows: c.max_output_rows,
            max_output_bytes: c.max_output_bytes,
            ..SqlLimits::default()
        }
    }

    /// Writes an output into quarantine and records it for review, with the record sets
    /// of its values; a DP output under a policy that allows it is released at once.
    async fn quarantine(&self, run: &RunContext<'_>, output: EngineOutput) -> Result<RunResult> {
        let RunContext {
            job_id,
            actor,
            org,
            model,
            inputs,
        } = *run;
        let EngineOutput {
            mut frame,
            report,
            released_sets,
            record_locks,
        } = output;
        let dir = self.zones().quarantine();
        let at_rest = self.zones().at_rest().clone();
        let (path, stored, preview, rows) = tokio::task::spawn_blocking(move || {
            let preview = to_json_rows(&frame, PREVIEW_ROWS);
            let rows = frame.height() as u64;
            store_content_addressed(&mut frame, &dir, &at_rest)
                .map(|(p, s)| (p, s, preview, rows))
                .map_err(|e| SandboxError::Internal(format!("storing an output: {e}")))
        })
        .await
        .map_err(|e| SandboxError::Internal(format!("quarantine task: {e}")))??;
        let relative = path
            .strip_prefix(self.zones().root())
            .map_err(|_| SandboxError::Internal("output outside the data directory".into()))?
            .to_string_lossy()
            .into_owned();
        let mut reviewers = 1u8;
        let mut auto_release = model.kind == ModelKind::Dp;
        for input in inputs {
            let policy = self.output_policy(&input.dataset.id).await?;
            reviewers = reviewers.max(policy.reviewers_for(input.dataset.meta.level));
            auto_release &= policy.dp_auto_release;
        }
        let providers: Vec<&str> = inputs
            .iter()
            .map(|i| i.dataset.provider_org.as_str())
            .collect();
        let id = OutputId::random();
        let provider_org = providers.join(",");
        let output_hash = hex::encode(stored.content_hash);
        let check_report = report.to_string();
        let preview = preview.to_string();
        let row = store::outputs::NewOutput {
            id: &id,
            job_id,
            org_id: org,
            model_id: &model.id,
            provider_org: &provider_org,
            file_path: &relative,
            output_hash: &output_hash,
            rows_count: rows as i64,
            bytes: stored.bytes as i64,
            check_report_json: &check_report,
            preview_json: &preview,
            required_reviews: i64::from(reviewers),
            created_ms: now_ms(),
        };
        let mut tx = self.db().begin_write().await?;
        // Cancelled (a suspension served by another server) or taken over by another
        // server meanwhile: this run stores nothing.
        if !store::jobs::still_held(&mut tx, self.db().backend(), job_id, self.cluster().name())
            .await?
        {
            tx.rollback().await?;
            return Err(SandboxError::Conflict(
                "the run was cancelled or is finished by another server".into(),
            ));
        }
        store::outputs::insert_output(&mut *tx, &row).await?;
        if let Some((version, released)) = &released_sets {
            record_sets::save(&mut tx, &id, org, version, released).await?;
        }
        tx.commit().await?;
        // Stored with its record sets: the next run of the organisation may check now.
        drop(record_locks);
        if auto_release {
            self.reviews().release(&id, actor, Vec::new()).await?;
        }
        let conditional = inputs.iter().any(|i| i.grant.is_some());
        Ok(RunResult {
            output_id: id,
            rows: (auto_release || !conditional).then_some(rows),
            auto_released: auto_release,
        })
    }
}

/// The job kind of a model run.
pub const RUN_JOB_KIND: &str = "model_run";

/// How a run cancelled by its organisation's suspension fails.
fn suspended_failure() -> JobFailure {
    JobFailure {
        status: 409,
        detail: "cancelled: the organisation was suspended".into(),
    }
}

/// A dry run: a model text against a dataset's dummy data.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// `sql`, `dp` or `regression`.
    pub kind: ModelKind,
    /// The model text.
    pub body: String,
    /// The dataset whose shape to use.
    pub dataset_id: DatasetId,
    /// Dummy rows to generate (default 500).
    pub rows: Option<usize>,
    /// ε for a DP model (nothing is spent: the data is synthetic).
    pub epsilon: Option<f64>,
}

/// What a dry run returns at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRunResult {
    /// Output columns and their types.
    pub columns: Vec<OutputColumn>,
    /// The first rows of the output on dummy data, as JSON objects.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub sample: serde_json::Value,
    /// The check report the real run would produce on this shape.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: serde_json::Value,
    /// What each column holds in the latest certified version (a generalised
    /// quasi-identifier holds bands or labels, so a filter on a raw value matches
    /// nothing); the declared domains when nothing is certified yet.
    pub released_domains: Vec<pdx_algorithms::deid::released::ReleasedDomain>,
}

/// One output column.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputColumn {
    /// Name.
    pub name: String,
    /// Type, as polars names it.
    #[serde(rename = "type")]
    pub dtype: String,
}

impl Runs {
    /// Runs a model text over synthetic rows drawn from the dataset's declared domains,
    /// in the same engines and under the same rules as a real run, without a grant or a
    /// budget: no real row is read. Dry runs are a developer's tool: a not-open
    /// dataset has none (its dummy rows are not a developer's to see).
    pub async fn dry_run(&self, request: DryRunRequest) -> Result<DryRunResult> {
        let dataset = self
            .catalog()
            .dataset(&request.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        dataset.reachable_by_developers()?;
        let rows = request.rows.unwrap_or(500);
        let max = crate::access::MAX_DUMMY_ROWS;
        if !(1..=max).contains(&rows) {
            return Err(SandboxError::Invalid(format!(
                "`rows` must be between 1 and {max}"
            )));
        }
        let mut frame = self
            .access()
            .dummy(&dataset, rows, 7, crate::access::Reader::Developer)
            .await?;
        let scratch = self
            .zones()
            .root()
            .join("scratch")
            .join(scratch_name("dry"));
        std::fs::create_dir_all(&scratch)?;
        let path = scratch.join("dummy.parquet");
        let written = {
            let path = path.clone();
            let at_rest = self.zones().at_rest().clone();
            tokio::task::spawn_blocking(move || {
                pdx_algorithms::deid::storage::write_parquet(&mut frame, &path, &at_rest)
            })
            .await
        };
        let result = match written {
            Ok(Ok(_)) => self.dry_run_on(&request, &dataset, path, rows).await,
            Ok(Err(e)) => Err(SandboxError::Internal(format!("writing dummy data: {e}"))),
            Err(e) => Err(SandboxError::Internal(format!("dummy data task: {e}"))),
        };
        if let Err(e) = std::fs::remove_dir_all(&scratch) {
            tracing::warn!(error = %e, "could not remove a dry-run scratch directory");
        }
        result
    }

    async fn dry_run_on(
        &self,
        request: &DryRunRequest,
        dataset: &Dataset,
        path: PathBuf,
        rows: usize,
    ) -> Result<DryRunResult> {
        let input = ResolvedInput {
            at_rest: self.zones().at_rest().clone(),
            dataset: dataset.clone(),
            version: 0,
            path,
            rows: rows as u64,
            table: "data".into(),
            columns: dataset.meta.schema.released_columns(),
            grant: None,
        };
        let conditional = dataset.effective_open_attribute != OpenAttribute::Unconditional;
        let (frame, report) = match request.kind {
            ModelKind::Sql => {
                let tables = [TableGrant {
                    name: input.table.clone(),
                    path: input.path.clone(),
                    columns: input.columns.clone(),
                    at_rest: input.at_rest.clone(),
                }];
                let engine = SqlSandbox::new(&tables, self.sql_limits())
                    .await
                    .map_err(SandboxError::from)?;
                if conditional {
                    let policy = self.output_policy(&dataset.id).await?;
                    let mut rules = policy.disclosure_rules(None);
                    rules.public_rows.insert(input.table.clone(), input.rows);
                    let checked = check_and_run(&engine, &request.body, &rules)
                        .await
                        .map_err(SandboxError::from)?;
                    (
                        output_to_frame(&checked.output)?,
                        serde_json::to_value(&checked.report).map_err(internal)?,
                    )
                } else {
                    let out = engine
                        .run(&request.body)
                        .await
                        .map_err(SandboxError::from)?;
                    (
                        output_to_frame(&out)?,
                        serde_json::json!({"checks": ["unconditional_open_source"]}),
                    )
                }
            }
            ModelKind::Dp => {
                let eps = request.epsilon.unwrap_or(1.0);
                let table = self.dp_table(&input).await?;
                let plan = dp_plan(&request.body, &table, eps, 0.0).map_err(SandboxError::from)?;
                let (path, at_rest) = (input.path.clone(), input.at_rest.clone());
                let out = tokio::task::spawn_blocking(move || {
                    dp_run_parquet(&plan, &path, &at_rest).map_err(SandboxError::from)
                })
                .await
                .map_err(|e| SandboxError::Internal(format!("dp task: {e}")))??;
                let report =
                    serde_json::json!({"epsilon": out.epsilon_spent, "accuracy": out.accuracy});
                (out.frame, report)
            }
            ModelKind::Fhe => {
                return Err(SandboxError::Invalid("FHE lookups have no dry run".into()));
            }
            ModelKind::Regression => {
                let policy = self.output_policy(&dataset.id).await?;
                let rules = conditional.then(|| policy.disclosure_rules(None));
                crate::engines::regression::dry_run(
                    &request.body,
                    &input,
                    rules.as_ref(),
                    policy.dp_identifier.as_deref(),
                )
                .await?
            }
        };
        let columns = frame
            .get_columns()
            .iter()
            .map(|c| OutputColumn {
                name: c.name().to_string(),
                dtype: c.dtype().to_string(),
            })
            .collect();
        let levels = match dataset.latest_version {
            Some(latest) => self
                .versions()
                .version(&dataset.id, latest)
                .await?
                .map(|v| crate::versions::report_levels(&v.report))
                .unwrap_or_default(),
            None => std::collections::BTreeMap::new(),
        };
        Ok(DryRunResult {
            columns,
            sample: to_json_rows(&frame, PREVIEW_ROWS),
            report,
            released_domains: pdx_algorithms::deid::released::released_domains(
                &dataset.meta.schema,
                &levels,
            ),
        })
    }
}

/// An engine output as a frame (through Parquet, which DataFusion and polars both speak).
pub(crate) fn output_to_frame(out: &pdx_algorithms::sql::SqlOutput) -> Result<DataFrame> {
    let bytes = out
        .to_parquet()
        .map_err(|e| SandboxError::Internal(format!("encoding an output: {e}")))?;
    read_parquet_bytes(bytes)
        .map_err(|e| SandboxError::Internal(format!("decoding an output: {e}")))
}

/// The stored output of a conditional run that failed after admission: no rows.
pub(crate) fn failed_run_frame() -> Result<DataFrame> {
    empty_boolean_frame("run_failed")
        .map_err(|e| SandboxError::Internal(format!("building an empty output: {e}")))
}

/// The report of such an output: the same plan-level shape as a checked output (so the
/// developer's redacted view is identical), plus the failure for reviewers. The
/// engines' messages are sanitised and carry no data value.
pub(crate) fn failed_run_report(
    rules: &DisclosureRules,
    error: &DisclosureError,
) -> serde_json::Value {
    serde_json::json!({
        "rules": rules,
        "passed": PLAN_CHECKS,
        "run_failed": true,
        "failure": error.to_string(),
    })
}

/// The dataset versions a run cites, as stored in its row (a JSON list of
/// `dataset_id@version`); a malformed list is an internal error.
pub(crate) fn cited_versions(stored: &str) -> Result<Vec<VersionRef>> {
    serde_json::from_str(stored)
        .map_err(|_| SandboxError::Internal("a run's stored dataset versions are malformed".into()))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Internal(e.to_string())
}

/// Closes, at a start, the run rows of jobs that ended (without being resumed, or
/// before their row could be closed), which would otherwise hold their organisations'
/// concurrency slots.
pub(crate) async fn close_unresumed(db: &pdx_ledger::db::Db) -> Result<()> {
    store::runs::close_unresumed(db.pool()).await
}

/// The privacy cost a request asks for: ε (and δ) for a DP model, nothing otherwise.
fn run_cost(kind: ModelKind, request: &RunRequest) -> Result<PrivacyCost> {
    match kind {
        ModelKind::Dp => {
            let eps = request
                .epsilon
                .ok_or_else(|| SandboxError::Invalid("a DP run needs `epsilon`".into()))?;
            if !(eps.is_finite() && eps > 0.0) {
                return Err(SandboxError::Invalid(
                    "`epsilon` must be a number above 0".into(),
                ));
            }
            PrivacyCost::from_f64(eps, request.delta.unwrap_or(0.0))
        }
        _ => {
            if request.epsilon.is_some() || request.delta.is_some() {
                return Err(SandboxError::Invalid(
                    "`epsilon` and `delta` apply to DP models only".into(),
                ));
            }
            Ok(PrivacyCost::default())
        }
    }
}
