//! What may run: one read-only query, whose plan touches only granted tables.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as AstStatement;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::SqlError;

/// What the developer may submit.
const ONLY_QUERIES: &str = "only a single read-only query (SELECT, WITH or VALUES) is allowed";

/// Parses `sql` and returns its single statement if it is a plain query.
///
/// Parse errors are returned as DataFusion errors so the caller can sanitise them.
pub(crate) fn single_query(
    state: &SessionState,
    sql: &str,
) -> Result<Result<DfStatement, SqlError>, DataFusionError> {
    let recursion_limit = state.config().options().sql_parser.recursion_limit;
    let dialect = GenericDialect {};
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(recursion_limit)
        .build()?
        .parse_statements()?;
    if statements.len() > 1 {
        return Ok(Err(SqlError::Forbidden(format!(
            "multiple statements; {ONLY_QUERIES}"
        ))));
    }
    let Some(statement) = statements.pop_front() else {
        return Ok(Err(SqlError::Syntax(
            "no SQL statement was given".to_owned(),
        )));
    };
    let refused = match &statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            AstStatement::Query(_) => None,
            other => Some(leading_keyword(other)),
        },
        DfStatement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE".to_owned()),
        DfStatement::CopyTo(_) => Some("COPY".to_owned()),
        DfStatement::Explain(_) => Some("EXPLAIN".to_owned()),
    };
    Ok(match refused {
        None => Ok(statement),
        Some(what) => Err(SqlError::Forbidden(format!(
            "{what} is not allowed; {ONLY_QUERIES}"
        ))),
    })
}

/// The statement's first keyword (e.g. `INSERT`), for messages.
fn leading_keyword(statement: &AstStatement) -> String {
    let text = statement.to_string();
    match text.split_whitespace().next() {
        Some(word) if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphabetic()) => {
            format!("{} statement", word.to_ascii_uppercase())
        }
        _ => "this statement".to_owned(),
    }
}

/// Checks that `plan` only reads: no DDL, DML, COPY, statements, EXPLAIN/ANALYZE,
/// DESCRIBE, extension nodes or recursion, and that every table scan (subqueries
/// included) reads one of `granted` (compared by identity, not by name).
pub(crate) fn verify_plan(
    plan: &LogicalPlan,
    granted: &[Arc<dyn TableProvider>],
) -> Result<(), SqlError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    if options.verify_plan(plan).is_err() {
        return Err(SqlError::Forbidden(format!(
            "the plan defines, writes or sets something; {ONLY_QUERIES}"
        )));
    }
    let mut refusal: Option<SqlError> = None;
    let walked = plan.apply_with_subqueries(|node| {
        let problem = match node {
            LogicalPlan::Ddl(ddl) => Some(format!("{} is not allowed", ddl.name())),
            LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => {
                Some("writing data is not allowed".to_owned())
            }
            LogicalPlan::Statement(_) => Some("statements are not allowed".to_owned()),
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => {
                Some("EXPLAIN is not allowed".to_owned())
            }
            LogicalPlan::DescribeTable(_) => Some("DESCRIBE is not allowed".to_owned()),
            LogicalPlan::Extension(_) => Some("extension plan nodes are not allowed".to_owned()),
            LogicalPlan::RecursiveQuery(_) => Some("recursive queries are not allowed".to_owned()),
            LogicalPlan::TableScan(scan) => {
                let is_granted = source_as_provider(&scan.source).is_ok_and(|provider| {
                    granted
                        .iter()
                        .any(|g| std::ptr::addr_eq(Arc::as_ptr(g), Arc::as_ptr(&provider)))
                });
                (!is_granted).then(|| format!("table {} is not granted", scan.table_name.table()))
            }
            _ => None,
        };
        match problem {
            Some(problem) => {
                refusal = Some(SqlError::Forbidden(problem));
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    if walked.is_err() {
        return Err(SqlError::Internal("the plan could not be inspected"));
    }
    refusal.map_or(Ok(()), Err)
}
