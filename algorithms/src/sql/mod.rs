//! SQL models on DataFusion, inside hard limits.
//!
//! A sandbox job runs a developer's SQL over granted, de-identified Parquet files.
//! [`SqlSandbox`] is the only way in; it builds a DataFusion session that can do
//! nothing but read the grants:
//!
//! * **Visibility.** Each [`TableGrant`] becomes a Parquet listing table whose schema
//!   holds only the granted columns (file and field metadata dropped). Ungranted columns
//!   and tables do not exist for the planner: `SELECT secret` is "no field named",
//!   `SELECT *` lists only granted columns. No URL tables (`FROM '/etc/passwd'`), no
//!   `information_schema`, no table functions (`generate_series`, `range`), no table
//!   factories or file formats, and the row-generating or huge-value scalar functions
//!   of [`DENIED_SCALAR_FUNCTIONS`] are not registered.
//! * **Read-only.** The text must parse to exactly one plain query (`SELECT`, `WITH`,
//!   `VALUES`); `COPY`, `CREATE EXTERNAL TABLE`, `EXPLAIN`, `SET` and every other
//!   statement are refused before planning. Every plan, including one handed to
//!   [`SqlSandbox::run_plan`], is checked again: DataFusion's `SQLOptions` with DDL,
//!   DML and statements off, plus a walk (subqueries included) that refuses
//!   recursion, extension nodes and any table scan whose provider is not one of the
//!   granted providers (compared by identity).
//! * **Limits** ([`SqlLimits`]). A `FairSpillPool` of `memory_bytes` with the disk
//!   manager disabled, so an operator that outgrows memory fails instead of spilling;
//!   recursive CTEs are disabled. Physical planning and execution run in a spawned
//!   task under a wall-clock timeout; on timeout the task, and with it the record
//!   batch stream and DataFusion's own tasks, is dropped. Row and byte caps are
//!   checked batch by batch, so an oversized result stops early; a `LIMIT` of
//!   `max_output_rows + 1` is also put on top of the plan so sorts become top-k.
//! * **Sanitised errors.** Engine errors can quote row values; [`SqlError`] never
//!   does. The rules (in `error.rs`): execution errors keep only a category, planning
//!   messages are passed on only when every quoted word in them comes from the query
//!   text or the granted schema, and anything unrecognised is withheld.
//!
//! Granted files may be sealed at rest ([`TableGrant::at_rest`]): each table reads its
//! file through a read-only object store (`zone_store.rs`) that decrypts only the
//! segments a range read touches, so DataFusion sees the plaintext Parquet file.
//!
//! Limits the memory pool cannot see (untracked allocations inside a single scalar
//! function call, the Parquet footer cache) are bounded by the denied-function list and
//! the timeout; an OS-level memory limit on the sandbox process remains the backstop.
//!
//! All async methods must run inside a Tokio runtime (DataFusion needs one anyway).

mod error;
mod guard;
mod ordinals;
mod output;
mod session;
mod zone_store;

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionContext;
use futures_util::StreamExt;

pub use error::SqlError;
pub use ordinals::{ORDINAL_COLUMN, OrdinalTable};
pub use output::{SqlOutput, batch_bytes};
pub use session::{DENIED_SCALAR_FUNCTIONS, SqlLimits, TableGrant};

use error::{Sanitiser, Stage};

/// Re-exports so callers can name the types in this API without depending on DataFusion.
pub use datafusion::arrow::datatypes::SchemaRef;
/// A record batch of a result.
pub use datafusion::arrow::record_batch::RecordBatch;

/// A locked-down DataFusion session over granted tables, with limits.
#[derive(Clone)]
pub struct SqlSandbox {
    /// The session; only granted tables are registered.
    ctx: SessionContext,
    /// The limits every run obeys.
    limits: SqlLimits,
    /// The granted providers, for plan verification by identity (with their ordinal
    /// twins, which only the disclosure rewrite puts in a plan).
    providers: Vec<Arc<dyn TableProvider>>,
    /// Per granted table name, the same table with row ordinals.
    ordinals: Vec<(String, Arc<dyn TableProvider>)>,
    /// Error sanitiser knowing the granted identifiers and hiding the file paths.
    sanitiser: Arc<Sanitiser>,
}

impl std::fmt::Debug for SqlSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSandbox")
            .field("limits", &self.limits)
            .field("tables", &self.ordinals.len())
            .finish_non_exhaustive()
    }
}

impl SqlSandbox {
    /// Builds the session and registers each grant (projected to its granted columns).
    pub async fn new(tables: &[TableGrant], limits: SqlLimits) -> Result<Self, SqlError> {
        let ctx = session::build_context(&limits)?;
        let mut providers = Vec::with_capacity(tables.len());
        let mut known: Vec<String> = vec!["datafusion".to_owned(), "public".to_owned()];
        let mut hidden = Vec::new();
        let mut ordinals = Vec::with_capacity(tables.len());
        for grant in tables {
            if tables.iter().filter(|g| g.name == grant.name).count() > 1 {
                return Err(SqlError::Grant(format!(
                    "table {}: the name is granted twice",
                    grant.name
                )));
            }
            let registered = session::register_grant(&ctx, grant).await?;
            known.push(grant.name.clone());
            known.extend(
                registered
                    .provider
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone()),
            );
            hidden.extend(session::hidden_strings(&registered.path, &grant.path));
            providers.push(registered.provider);
            providers.push(Arc::clone(&registered.ordinals));
            ordinals.push((grant.name.clone(), registered.ordinals));
        }
        let state = ctx.state();
        known.extend(state.scalar_functions().keys().cloned());
        known.extend(state.aggregate_functions().keys().cloned());
        known.extend(state.window_functions().keys().cloned());
        let sanitiser = Arc::new(Sanitiser::new(known, hidden, limits.memory_bytes));
        Ok(Self {
            ctx,
            limits,
            providers,
            ordinals,
            sanitiser,
        })
    }

    /// The granted table `name` with its row ordinals ([`ORDINAL_COLUMN`]), for the
    /// disclosure rewrite; it is not registered, so SQL cannot name it.
    pub fn ordinal_table(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.ordinals
            .iter()
            .find(|(table, _)| table == name)
            .map(|(_, provider)| Arc::clone(provider))
    }

    /// The underlying session, for inspection. Queries must go through [`Self::plan`]
    /// and [`Self::run_plan`] (or [`Self::run`]); `SessionContext::sql` bypasses the checks.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The limits every run obeys.
    pub fn limits(&self) -> &SqlLimits {
        &self.limits
    }

    /// Parses and plans one read-only query; the returned logical plan (not yet
    /// optimised) has passed the read-only and grant checks.
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan, SqlError> {
        let state = self.ctx.state();
        let statement =
            guard::single_query(&state, sql).map_err(|e| self.plan_error(&e, sql))??;
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| self.plan_error(&e, sql))?;
        guard::verify_plan(&plan, &self.providers)?;
        Ok(plan)
    }

    /// Runs DataFusion's analyser and optimiser over a (verified) plan, e.g. for
    /// disclosure checks that want the canonical form.
    pub fn optimize(&self, plan: &LogicalPlan) -> Result<LogicalPlan, SqlError> {
        guard::verify_plan(plan, &self.providers)?;
        let optimized = self
            .ctx
            .state()
            .optimize(plan)
            .map_err(|e| self.sanitiser.classify(&e, Stage::Plan, None))?;
        guard::verify_plan(&optimized, &self.providers)?;
        Ok(optimized)
    }

    /// Executes a plan under the limits. The plan is verified again, so a plan built
    /// or rewritten elsewhere still can only read the grants.
    pub async fn run_plan(&self, plan: LogicalPlan) -> Result<SqlOutput, SqlError> {
        self.execute(plan, None, &[], self.limits.clone()).await
    }

    /// [`Self::optimize`] for a plan that may also read `extra` (an intermediate
    /// result the caller computed in this sandbox, e.g. the disclosure checks' stages).
    pub(crate) fn optimize_with(
        &self,
        plan: &LogicalPlan,
        extra: &[Arc<dyn TableProvider>],
    ) -> Result<LogicalPlan, SqlError> {
        let allowed = self.allowed(extra);
        guard::verify_plan(plan, &allowed)?;
        let optimized = self
            .ctx
            .state()
            .optimize(plan)
            .map_err(|e| self.sanitiser.classify(&e, Stage::Plan, None))?;
        guard::verify_plan(&optimized, &allowed)?;
        Ok(optimized)
    }

    /// [`Self::run_plan`] for a plan that may also read `extra`, under `limits` (the
    /// memory pool and timeout stay the session's).
    pub(crate) async fn run_plan_with(
        &self,
        plan: LogicalPlan,
        extra: &[Arc<dyn TableProvider>],
        limits: SqlLimits,
    ) -> Result<SqlOutput, SqlError> {
        self.execute(plan, None, extra, limits).await
    }

    /// The granted providers and `extra`.
    fn allowed(&self, extra: &[Arc<dyn TableProvider>]) -> Vec<Arc<dyn TableProvider>> {
        self.providers.iter().chain(extra).cloned().collect()
    }

    /// Plans and executes one read-only query under the limits.
    pub async fn run(&self, sql: &str) -> Result<SqlOutput, SqlError> {
        let plan = self.plan(sql).await?;
        self.execute(plan, Some(Arc::from(sql)), &[], self.limits.clone())
            .await
    }

    /// Sanitises a planning error of the query `sql`.
    fn plan_error(&self, err: &datafusion::error::DataFusionError, sql: &str) -> SqlError {
        self.sanitiser.classify(err, Stage::Plan, Some(sql))
    }

    /// Verifies, caps and runs `plan` in a spawned task under the timeout.
    async fn execute(
        &self,
        plan: LogicalPlan,
        sql: Option<Arc<str>>,
        extra: &[Arc<dyn TableProvider>],
        limits: SqlLimits,
    ) -> Result<SqlOutput, SqlError> {
        guard::verify_plan(&plan, &self.allowed(extra))?;
        let fetch = limits
            .max_output_rows
            .saturating_add(1)
            .min(i64::MAX as usize);
        let plan = LogicalPlanBuilder::from(plan)
            .limit(0, Some(fetch))
            .and_then(LogicalPlanBuilder::build)
            .map_err(|e| self.sanitiser.classify(&e, Stage::Plan, sql.as_deref()))?;

        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| SqlError::Internal("no Tokio runtime is running"))?;
        let job = Job {
            state: self.ctx.state(),
            limits,
            sanitiser: Arc::clone(&self.sanitiser),
            sql,
        };
        let mut task = runtime.spawn(job.run(plan));
        match tokio::time::timeout(self.limits.timeout, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SqlError::Internal("the query task stopped unexpectedly")),
            Err(_) => {
                task.abort();
                Err(SqlError::Timeout {
                    limit: self.limits.timeout,
                })
            }
        }
    }
}

/// Everything the spawned execution task owns.
struct Job {
    /// A snapshot of the session state.
    state: SessionState,
    /// Caps to enforce while streaming.
    limits: SqlLimits,
    /// Error sanitiser.
    sanitiser: Arc<Sanitiser>,
    /// The query text, if the plan came from one (lets planning errors quote it).
    sql: Option<Arc<str>>,
}

impl Job {
    /// Physical planning, then streaming with the row and byte caps.
    async fn run(self, plan: LogicalPlan) -> Result<SqlOutput, SqlError> {
        let sql = self.sql.as_deref();
        let physical = self
            .state
            .create_physical_plan(&plan)
            .await
            .map_err(|e| self.sanitiser.classify(&e, Stage::Plan, sql))?;
        let schema = physical.schema();
        let mut stream = execute_stream(physical, self.state.task_ctx())
            .map_err(|e| self.sanitiser.classify(&e, Stage::Execute, sql))?;
        let mut output = SqlOutput {
            schema,
            batches: Vec::new(),
            rows: 0,
            bytes: 0,
        };
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| self.sanitiser.classify(&e, Stage::Execute, sql))?;
            if batch.num_rows() == 0 {
                continue;
            }
            output.rows = output.rows.saturating_add(batch.num_rows());
            if output.rows > self.limits.max_output_rows {
                return Err(SqlError::TooManyRows {
                    limit: self.limits.max_output_rows,
                });
            }
            output.bytes = output.bytes.saturating_add(batch_bytes(&batch));
            if output.bytes > self.limits.max_output_bytes {
                return Err(SqlError::TooManyBytes {
                    limit: self.limits.max_output_bytes,
                });
            }
            output.batches.push(batch);
        }
        Ok(output)
    }
}
