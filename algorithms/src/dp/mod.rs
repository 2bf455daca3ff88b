//! Differentially private queries: a restricted SQL translated into OpenDP polars plans.
//!
//! # The language
//!
//! ```sql
//! SELECT <key>, ..., COUNT(*), COUNT(col), SUM(col), AVG(col), QUANTILE(col, p), MEDIAN(col)
//! FROM <the one table>
//! [WHERE <col op literal> combined with AND / OR / NOT, col IN (...), col BETWEEN a AND b,
//!        col IS [NOT] NULL]
//! [GROUP BY <key>, ...]
//! ```
//!
//! Aggregates may be aliased (`AS name`). Everything else is refused with a [`DpError`]
//! before any data is read: joins, subqueries, more than one table, `SELECT *`, DISTINCT,
//! HAVING, ORDER BY, LIMIT, window functions, other aggregates (MIN, MAX, ...), expressions
//! inside aggregates, columns the table does not declare, and SELECT columns that are
//! neither grouped nor aggregated. Error messages name query constructs and columns, never
//! data values.
//!
//! # The privacy unit
//!
//! [`PrivacyUnit::Record`]: neighbouring tables differ by adding or removing one record.
//! [`PrivacyUnit::User`]: they differ by all records of one person (the `identifier`
//! column). Before aggregating, each person's records are truncated to the declared
//! `max_contributions` (OpenDP's per-identifier truncation: `int_range(0, len).over(id) <
//! max_contributions`); OpenDP then derives how many groups and records one person can
//! change, and the noise grows accordingly. The identifier itself cannot be selected,
//! grouped or aggregated.
//!
//! # Bounds and keys
//!
//! Everything that shapes the plan is public and comes from the table declaration
//! ([`DpTable`], usually [`DpTable::from_catalog`]), never from the data:
//! - SUM, AVG and QUANTILE need the column's declared range (`Domain::Range`); values are
//!   clipped to it, and nulls are imputed with its midpoint (OpenDP's `dp.sum`).
//!   QUANTILE chooses among [`QUANTILE_CANDIDATES`] evenly spaced public candidates in the
//!   range (every integer of a narrower integer range), with OpenDP's exponential mechanism.
//! - GROUP BY keys with declared categories (`Domain::Categories`) form a public key set:
//!   the cross product of the categories is right-joined onto the noisy aggregates, so
//!   every declared group is released (empty ones as pure noise) and the presence of a
//!   group reveals nothing. Values outside the categories are dropped.
//! - A GROUP BY key without declared categories needs `delta > 0`: OpenDP then releases
//!   only groups whose noisy row count exceeds a threshold, chosen as the smallest one
//!   whose delta fits the budget (a hidden noisy count is added if the query has none).
//!   With `delta = 0` such a query is refused.
//! - The table's `max_rows` is a public bound on its size, which OpenDP needs to bound
//!   sums; a run over a larger table is refused.
//!
//! # Accounting
//!
//! The requested `epsilon` is split evenly across the query's aggregates (plus the hidden
//! threshold count, if any). AVG is one aggregate released as a noisy clipped sum and a
//! noisy row count with half of its share each; COUNT and SUM get integer (discrete)
//! Laplace noise for integer columns. [`plan`] calibrates the noise scales against OpenDP's
//! own privacy map (see [`engine`]), and the spent `(epsilon, delta)` reported is that
//! map's value for one privacy unit, never more than requested. Each [`run`] spends it.
//!
//! # Accuracy
//!
//! Every aggregate column carries a 95% error bound ([`ColumnAccuracy`], `alpha = 0.05`):
//! - COUNT and SUM: OpenDP's accuracy for the noise scale
//!   (`discrete_laplacian_scale_to_accuracy`, or `laplacian_scale_to_accuracy` for floats),
//!   the same number `summarize_polars_measurement` reports. It covers noise only; clipping
//!   bias (values outside the declared range) is not included.
//! - AVG is `S'/N'` from a noisy sum `S'` and count `N'`, clamped to the declared range.
//!   With `a_S`, `a_N` the OpenDP accuracies at `alpha / 2` each, both noise terms are
//!   within them together with probability at least 95%, and then
//!   `|S'/N' - S/N| <= (a_S + M * a_N) / N'` where `M = max(|min|, |max|)` bounds the
//!   clipped mean. The reported bound is the largest over released groups (smallest `N'`),
//!   capped at the range width; groups with `N' < 1` release a null mean.
//! - QUANTILE: OpenDP reports no value bound for the exponential mechanism, so `None`.
//!
//! # Use
//!
//! [`plan`] parses, validates and calibrates without touching data (the dry run: it
//! returns the output schema and the cost); [`run`] (or [`run_parquet`]) executes a plan
//! over the table. [`baseline()`] runs the same query exactly with plain polars (no clipping,
//! no noise), to compare cost and error.

pub mod baseline;
pub mod engine;
mod query;
pub mod table;

pub use baseline::baseline;
pub use engine::{
    ALPHA, ColumnAccuracy, DpOutput, DpPlan, MAX_PUBLIC_GROUPS, OutputColumn, OutputRole,
    QUANTILE_CANDIDATES, plan, run, run_parquet,
};
pub use query::Aggregate;
pub use table::{ColumnKind, DpColumn, DpTable, PrivacyUnit};

/// Why a DP query was refused or failed. Messages never contain data values.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DpError {
    /// The SQL does not parse.
    #[error("the query does not parse: {message}")]
    Parse {
        /// The parser's message (about the query text only).
        message: String,
    },
    /// Not exactly one statement.
    #[error("expected exactly one SELECT statement, found {found}")]
    NotOneStatement {
        /// Number of statements found.
        found: usize,
    },
    /// A construct outside the restricted language.
    #[error("not supported in DP queries: {construct}")]
    Unsupported {
        /// What was found.
        construct: &'static str,
    },
    /// No FROM clause.
    #[error("the query must read FROM one table")]
    NoTable,
    /// More than one table in FROM.
    #[error("DP queries read exactly one table")]
    MultipleTables,
    /// FROM names another table.
    #[error("unknown table `{table}`")]
    UnknownTable {
        /// The name in the query.
        table: String,
    },
    /// A column the table does not declare.
    #[error("unknown column `{column}` (not declared for DP queries)")]
    UnknownColumn {
        /// The name in the query.
        column: String,
    },
    /// Something other than a plain column where one is required.
    #[error("expected a plain column name in {context}")]
    ExpectedColumn {
        /// Where.
        context: &'static str,
    },
    /// The user-level identifier was selected, grouped or aggregated.
    #[error("the identifier column `{column}` cannot be selected, grouped or aggregated")]
    IdentifierUsed {
        /// The identifier column.
        column: String,
    },
    /// A SELECT column that is neither grouped nor aggregated.
    #[error("column `{column}` must appear in GROUP BY or inside an aggregate")]
    NonGroupedColumn {
        /// The column.
        column: String,
    },
    /// The query selects no aggregate.
    #[error("a DP query must select at least one aggregate")]
    NoAggregate,
    /// Two output columns share a name.
    #[error("output column `{name}` appears twice; use AS to rename one")]
    DuplicateOutput {
        /// The repeated name.
        name: String,
    },
    /// An aggregate outside COUNT, SUM, AVG, QUANTILE, MEDIAN.
    #[error("aggregate {function} is not supported (use COUNT, SUM, AVG, QUANTILE or MEDIAN)")]
    UnsupportedAggregate {
        /// The function name.
        function: String,
    },
    /// A supported aggregate with the wrong arguments.
    #[error("wrong arguments for {function}")]
    WrongArguments {
        /// The function name.
        function: String,
    },
    /// SUM/AVG/QUANTILE over a numeric column with no declared range.
    #[error("{function}({column}) needs declared bounds (min/max) for `{column}`")]
    NoBounds {
        /// The column.
        column: String,
        /// The aggregate.
        function: &'static str,
    },
    /// SUM/AVG/QUANTILE over a text column.
    #[error("{function}({column}) needs a numeric column")]
    NotNumeric {
        /// The column.
        column: String,
        /// The aggregate.
        function: &'static str,
    },
    /// A quantile level outside [0, 1].
    #[error("QUANTILE needs a numeric level between 0 and 1")]
    InvalidQuantile,
    /// A literal that is not a finite number or a string.
    #[error("unsupported literal in the query")]
    InvalidLiteral,
    /// A literal of the wrong type for its column.
    #[error("the literal compared with `{column}` has the wrong type")]
    LiteralType {
        /// The column.
        column: String,
    },
    /// Epsilon not finite and positive.
    #[error("epsilon must be a finite number greater than 0")]
    InvalidEpsilon,
    /// Delta not in [0, 1).
    #[error("delta must be a finite number in [0, 1)")]
    InvalidDelta,
    /// A group key without declared categories, and no delta to protect the key set.
    #[error(
        "GROUP BY `{column}`: the column has no declared categories, so its key set is private; \
         declare its categories or allow a delta > 0 for threshold release"
    )]
    KeysNotPublic {
        /// The first such key.
        column: String,
    },
    /// The public key set is too large.
    #[error("the declared categories of the GROUP BY keys form more than {limit} groups")]
    TooManyGroups {
        /// The limit.
        limit: usize,
    },
    /// No threshold makes delta fit the budget.
    #[error("delta is too small for a threshold release of the keys")]
    DeltaTooSmall,
    /// OpenDP refused to build the measurement (at plan time, no data involved).
    #[error("OpenDP cannot make this query private: {message}")]
    OpenDp {
        /// OpenDP's explanation.
        message: String,
    },
    /// The table declaration is invalid.
    #[error("invalid table declaration: {reason}")]
    InvalidTable {
        /// What is wrong.
        reason: String,
    },
    /// Internal calibration failure.
    #[error("budget calibration failed: {reason}")]
    Calibration {
        /// What went wrong.
        reason: &'static str,
    },
    /// The data lacks a declared column.
    #[error("the table data has no column `{column}`")]
    MissingColumn {
        /// The column.
        column: String,
    },
    /// The data holds more rows than the declared bound.
    #[error("the table holds more rows than its declared bound")]
    TooManyRows,
    /// Reading or executing failed.
    #[error("DP execution failed while {stage} {detail}")]
    Execution {
        /// Where.
        stage: &'static str,
        /// The error kind (never a message that could quote data).
        detail: String,
    },
}

impl DpError {
    /// Whether the caller's query or parameters are at fault (HTTP 4xx), not the platform.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            DpError::InvalidTable { .. }
                | DpError::Calibration { .. }
                | DpError::MissingColumn { .. }
                | DpError::TooManyRows
                | DpError::Execution { .. }
        )
    }
}
