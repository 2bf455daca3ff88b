//! Building the locked-down DataFusion session and registering granted tables.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SessionStateBuilder, SessionStateDefaults};
use datafusion::optimizer::Optimizer;
use datafusion::prelude::{SessionConfig, SessionContext};
use pdx_seal::AtRest;

use super::SqlError;
use super::ordinals::OrdinalTable;
use super::zone_store::{self, ZONE_SCHEME};

/// Hard limits of one sandbox session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlLimits {
    /// Size of the memory pool shared by all operators; exceeding it fails the query.
    pub memory_bytes: usize,
    /// Wall-clock limit for physical planning plus execution.
    pub timeout: Duration,
    /// Most rows a result may have.
    pub max_output_rows: usize,
    /// Most bytes a result may have (Arrow in-memory size, see [`super::batch_bytes`]).
    pub max_output_bytes: usize,
    /// Number of partitions (parallel streams) DataFusion plans for; at least 1.
    pub target_partitions: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(60),
            max_output_rows: 100_000,
            max_output_bytes: 64 * 1024 * 1024,
            target_partitions: 2,
        }
    }
}

/// One de-identified Parquet file a job may read, and the columns it may see.
#[derive(Debug, Clone)]
pub struct TableGrant {
    /// Table name in SQL: lower-case ASCII letters, digits and `_`, not starting with a digit.
    pub name: String,
    /// The Parquet file (a single regular file, not a directory or glob).
    pub path: PathBuf,
    /// Granted columns (exact, case-sensitive names); all others are invisible.
    pub columns: Vec<String>,
    /// How the file is kept: sealed in the server (read through the zones' keyring),
    /// plain for library callers over their own files.
    pub at_rest: AtRest,
}

/// Scalar functions left out: they build arbitrarily large values from a literal
/// (`repeat('x', 2000000000)`) or generate rows (`unnest(range(1e9))`), and such
/// allocations are not tracked by the memory pool.
pub const DENIED_SCALAR_FUNCTIONS: &[&str] = &[
    "range",
    "generate_series",
    "array_repeat",
    "array_resize",
    "repeat",
    "lpad",
    "rpad",
];

/// Longest accepted table name.
const MAX_TABLE_NAME: usize = 128;

/// A session with a bounded, non-spilling memory pool, no table functions, no table
/// factories or file formats (so no `CREATE EXTERNAL TABLE`/`COPY` targets), no
/// `information_schema`, no URL tables and recursive CTEs disabled.
pub(crate) fn build_context(limits: &SqlLimits) -> Result<SessionContext, SqlError> {
    if limits.target_partitions == 0 {
        return Err(SqlError::Limits("target_partitions must be at least 1"));
    }
    if limits.memory_bytes == 0 {
        return Err(SqlError::Limits("memory_bytes must be positive"));
    }
    let mut config = SessionConfig::new()
        .with_target_partitions(limits.target_partitions)
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(true);
    {
        let options = config.options_mut();
        options.execution.enable_recursive_ctes = false;
        options.catalog.location = None;
        options.catalog.format = None;
        options.sql_parser.dialect = "generic".to_owned();
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_bytes)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(|_| SqlError::Internal("the runtime could not be built"))?;
    let scalar_functions = SessionStateDefaults::default_scalar_functions()
        .into_iter()
        .filter(|f| !DENIED_SCALAR_FUNCTIONS.contains(&f.name()))
        .collect();
    // Common-subexpression elimination mis-plans aggregates whose FILTER clauses share
    // a subexpression (`COUNT(*)` next to `COUNT(*) FILTER (WHERE id <> 7)` once the
    // disclosure checks add their shadow counts: "No field named …"), so the sandbox
    // plans without it. It only saves recomputing an expression.
    let optimizer_rules = Optimizer::new()
        .rules
        .into_iter()
        .filter(|rule| rule.name() != "common_sub_expression_eliminate")
        .collect();
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_optimizer_rules(optimizer_rules)
        .with_expr_planners(SessionStateDefaults::default_expr_planners())
        .with_scalar_functions(scalar_functions)
        .with_aggregate_functions(SessionStateDefaults::default_aggregate_functions())
        .with_window_functions(SessionStateDefaults::default_window_functions())
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// What registering a grant made: the provider SQL sees, the same table with row
/// ordinals (not registered), and the canonical file path.
pub(crate) struct Registered {
    /// The granted table as registered.
    pub provider: Arc<dyn TableProvider>,
    /// The same columns plus [`super::ORDINAL_COLUMN`], for the disclosure rewrite.
    pub ordinals: Arc<dyn TableProvider>,
    /// The canonical path of the file.
    pub path: PathBuf,
}

/// Validates `grant`, registers its projected table in `ctx` and returns the providers.
///
/// The table's schema holds only the granted columns (in file order, without schema
/// or field metadata), so the planner never learns the other columns exist. The file is
/// read through a zone store registered for the table (`pdx-zone://<name>/`, rooted at
/// the file's directory), which decrypts a sealed file's segments as they are read;
/// the row-ordinal twin reads through the same store.
pub(crate) async fn register_grant(
    ctx: &SessionContext,
    grant: &TableGrant,
) -> Result<Registered, SqlError> {
    let name = grant.name.as_str();
    validate_table_name(name)?;
    let bad = |why: &str| SqlError::Grant(format!("table {name}: {why}"));

    let path = std::fs::canonicalize(&grant.path).map_err(|_| bad("the file cannot be opened"))?;
    if !path.is_file() {
        return Err(bad("the path is not a regular file"));
    }
    let path_str = path
        .to_str()
        .ok_or_else(|| bad("the path is not valid UTF-8"))?;
    if path_str.contains(['*', '?', '[', ']', '{', '}']) {
        return Err(bad("the path contains glob characters"));
    }
    let zone = zone_store::register_file(ctx, name, &path, grant.at_rest.clone()).map_err(bad)?;
    let url = zone.url;

    let state = ctx.state();
    let format = ParquetFormat::new().with_options(state.table_options().parquet.clone());
    let options = ListingOptions::new(Arc::new(format))
        .with_file_extension("")
        .with_session_config_options(state.config());
    let inferred = ListingTableConfig::new(url.clone())
        .with_listing_options(options.clone())
        .infer_schema(&state)
        .await
        .map_err(|_| bad("the file is not readable Parquet"))?;
    let file_schema = inferred
        .file_schema
        .ok_or_else(|| bad("the file has no schema"))?;

    if grant.columns.is_empty() {
        return Err(bad("no column is granted"));
    }
    let mut granted = HashSet::new();
    for column in &grant.columns {
        if !granted.insert(column.as_str()) {
            return Err(bad(&format!("column {column:?} is granted twice")));
        }
        if file_schema.field_with_name(column).is_err() {
            return Err(bad(&format!(
                "granted column {column:?} is not in the file"
            )));
        }
    }
    let fields: Vec<Field> = file_schema
        .fields()
        .iter()
        .filter(|f| granted.contains(f.name().as_str()))
        .map(|f| f.as_ref().clone().with_metadata(HashMap::new()))
        .collect();
    let schema = Arc::new(Schema::new(fields));

    let ordinals =
        OrdinalTable::try_new(zone.store, zone.location, Arc::clone(&file_schema), &schema)
            .await
            .map_err(bad)?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|_| bad("the table could not be built"))?;
    let provider: Arc<dyn TableProvider> = Arc::new(table);
    let previous = ctx
        .register_table(TableReference::bare(name), Arc::clone(&provider))
        .map_err(|_| bad("the table could not be registered"))?;
    if previous.is_some() {
        return Err(bad("the name is granted twice"));
    }
    Ok(Registered {
        provider,
        ordinals: Arc::new(ordinals),
        path,
    })
}

/// Table names are plain lower-case identifiers, so SQL can name them unquoted.
fn validate_table_name(name: &str) -> Result<(), SqlError> {
    let mut chars = name.chars();
    let ok_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok_start && ok_rest && name.len() <= MAX_TABLE_NAME {
        Ok(())
    } else {
        Err(SqlError::Grant(format!(
            "table name {name:?} must be lower-case letters, digits and _, not starting with a digit"
        )))
    }
}

/// Strings of `path` that error messages must not echo: the path, its file name,
/// (when longer than `/`) its directory, and the zone stores' URLs (`pdx-zone://…`,
/// which name the table's store and the file).
pub(crate) fn hidden_strings(path: &Path, original: &Path) -> Vec<String> {
    let mut out = vec![
        path.to_string_lossy().into_owned(),
        original.to_string_lossy().into_owned(),
        format!("{ZONE_SCHEME}://"),
    ];
    if let Some(file) = path.file_name() {
        out.push(file.to_string_lossy().into_owned());
    }
    if let Some(dir) = path.parent() {
        let dir = dir.to_string_lossy().into_owned();
        if dir.len() > 1 {
            out.push(dir);
        }
    }
    out
}
