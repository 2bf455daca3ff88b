//! Plan checks: aggregate-only output, allowed aggregates, allowed operators.

use std::collections::BTreeSet;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Column;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::functions_aggregate::average::Avg;
use datafusion::functions_aggregate::count::Count;
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Distinct, Expr, LogicalPlan, Volatility};
use serde::{Deserialize, Serialize};

use super::{DisclosureError, SHADOW_PREFIX};

/// What an allowed aggregate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    /// `COUNT(*)`, `COUNT(x)` or `COUNT(DISTINCT x)`.
    Count,
    /// `SUM(x)`.
    Sum,
    /// `AVG(x)` (alias `MEAN`).
    Avg,
}

impl AggregateKind {
    /// Whether the cell is a magnitude that the dominance rule protects.
    pub fn is_magnitude(self) -> bool {
        matches!(self, AggregateKind::Sum | AggregateKind::Avg)
    }
}

/// One aggregate of the top aggregate, as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateCell {
    /// The aggregate's name in the plan, e.g. `sum(people.income)`.
    pub name: String,
    /// The function.
    pub kind: AggregateKind,
    /// Whether it is `DISTINCT` (only allowed for `COUNT`).
    pub distinct: bool,
    /// Whether it has a `FILTER (WHERE …)` clause.
    pub filtered: bool,
}

/// The shape of an accepted plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanShape {
    /// The operators above the top aggregate, outermost first (e.g. `Projection`, `Sort`).
    pub above: Vec<String>,
    /// The `GROUP BY` expressions of the top aggregate; empty for a global aggregate.
    pub group_keys: Vec<String>,
    /// Whether they form a `ROLLUP`, `CUBE` or `GROUPING SETS` (cells and totals).
    #[serde(default)]
    pub grouping_sets: bool,
    /// The aggregates of the top aggregate, in plan order.
    pub aggregates: Vec<AggregateCell>,
    /// How many other aggregate nodes (below the top one) the plan has.
    pub inner_aggregates: usize,
    /// The names of the output columns.
    pub output_columns: Vec<String>,
}

/// An accepted plan with what the rewrite and the suppression need.
#[derive(Debug)]
pub(crate) struct Analysis<'p> {
    /// The public summary.
    pub shape: PlanShape,
    /// The top aggregate.
    pub top: &'p Aggregate,
    /// For each output column, the indices of the top aggregate's aggregates it is computed from.
    pub lineage: Vec<BTreeSet<usize>>,
}

/// Checks `plan` without running it: it must end in an aggregate whose output only
/// passes through `Projection`, `Sort`, `Limit`, `Filter` (HAVING) or `SubqueryAlias`;
/// every aggregate anywhere (subqueries included) must be `COUNT`, `SUM` or `AVG`
/// (`DISTINCT` only for `COUNT`); grouping sets only at the top, no subquery
/// expressions, and below
/// the top aggregate only scans, filters, projections, aliases, sorts, limits, plain
/// `DISTINCT`, `VALUES` and inner aggregates.
pub fn analyse_plan(plan: &LogicalPlan) -> Result<PlanShape, DisclosureError> {
    analyse(plan).map(|analysis| analysis.shape)
}

/// [`analyse_plan`] keeping the references the rewrite needs.
pub(crate) fn analyse(plan: &LogicalPlan) -> Result<Analysis<'_>, DisclosureError> {
    let aggregate_nodes = check_all_aggregates(plan, find_top(plan))?;
    check_expressions(plan)?;

    // Walk down from the root to the top aggregate.
    let mut above = Vec::new();
    let mut node = plan;
    let top = loop {
        check_reserved_names(node)?;
        node = match node {
            LogicalPlan::Aggregate(aggregate) => break aggregate,
            LogicalPlan::Projection(p) => {
                above.push("Projection".to_owned());
                &p.input
            }
            LogicalPlan::Sort(s) => {
                above.push("Sort".to_owned());
                &s.input
            }
            LogicalPlan::Limit(l) => {
                above.push("Limit".to_owned());
                &l.input
            }
            LogicalPlan::Filter(f) => {
                above.push("Filter".to_owned());
                &f.input
            }
            LogicalPlan::SubqueryAlias(a) => {
                above.push("SubqueryAlias".to_owned());
                &a.input
            }
            other => {
                let why = if contains_aggregate(other) {
                    format!(
                        "{} is not allowed above the aggregate",
                        operator_name(other)
                    )
                } else {
                    "the query has no aggregate (GROUP BY, COUNT, SUM or AVG)".to_owned()
                };
                return Err(DisclosureError::RowLevel(why));
            }
        };
    };

    if top.aggr_expr.is_empty() && top.group_expr.is_empty() {
        return Err(DisclosureError::RowLevel(
            "the aggregate computes nothing".to_owned(),
        ));
    }
    check_below(&top.input)?;
    check_all_measures(plan)?;
    check_not_nested(&top.input)?;

    let mut aggregates = Vec::with_capacity(top.aggr_expr.len());
    for expr in &top.aggr_expr {
        let (function, kind) = allowed_aggregate(expr)?;
        aggregates.push(AggregateCell {
            name: expr.schema_name().to_string(),
            kind,
            distinct: function.params.distinct,
            filtered: function.params.filter.is_some(),
        });
    }
    let lineage = lineage(plan)?;
    let shape = PlanShape {
        above,
        group_keys: group_columns(top)
            .iter()
            .map(|g| g.schema_name().to_string())
            .collect(),
        grouping_sets: is_grouping_set(top),
        aggregates,
        inner_aggregates: aggregate_nodes.saturating_sub(1),
        output_columns: plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
    };
    Ok(Analysis {
        shape,
        top,
        lineage,
    })
}

/// Most columns of a `ROLLUP`, `CUBE` or `GROUPING SETS` clause (dimensions of the
/// table with totals that secondary suppression protects).
pub(crate) const MAX_DIMENSIONS: usize = 6;

/// The aggregate the plan ends in, if it does (through the operators allowed above it).
fn find_top(plan: &LogicalPlan) -> Option<&Aggregate> {
    match plan {
        LogicalPlan::Aggregate(aggregate) => Some(aggregate),
        LogicalPlan::Projection(p) => find_top(&p.input),
        LogicalPlan::Sort(s) => find_top(&s.input),
        LogicalPlan::Limit(l) => find_top(&l.input),
        LogicalPlan::Filter(f) => find_top(&f.input),
        LogicalPlan::SubqueryAlias(a) => find_top(&a.input),
        _ => None,
    }
}

/// Whether the aggregate groups by one `ROLLUP`, `CUBE` or `GROUPING SETS` clause.
pub(crate) fn is_grouping_set(aggregate: &Aggregate) -> bool {
    matches!(aggregate.group_expr.as_slice(), [Expr::GroupingSet(_)])
}

/// The aggregate's group columns: its keys, or the distinct columns of its grouping set.
pub(crate) fn group_columns(aggregate: &Aggregate) -> Vec<&Expr> {
    match aggregate.group_expr.as_slice() {
        [Expr::GroupingSet(set)] => set.distinct_expr(),
        keys => keys.iter().collect(),
    }
}

/// Checks every aggregate node of the plan, subqueries included; returns how many there
/// are. Only `top`, the aggregate the output comes from, may have grouping sets.
fn check_all_aggregates(
    plan: &LogicalPlan,
    top: Option<&Aggregate>,
) -> Result<usize, DisclosureError> {
    let mut count = 0usize;
    let mut refusal = None;
    let walked = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Aggregate(aggregate) = node {
            count += 1;
            let is_top = top.is_some_and(|t| std::ptr::eq(t, aggregate));
            if let Err(e) = check_aggregate_node(aggregate, is_top) {
                refusal = Some(e);
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if walked.is_err() {
        return Err(DisclosureError::Internal("the plan could not be inspected"));
    }
    refusal.map_or(Ok(count), Err)
}

/// One aggregate node: grouping sets only in the outermost aggregate, as its one
/// grouping clause of at most [`MAX_DIMENSIONS`] columns; only allowed aggregates.
fn check_aggregate_node(aggregate: &Aggregate, is_top: bool) -> Result<(), DisclosureError> {
    let has_sets = aggregate
        .group_expr
        .iter()
        .any(|g| matches!(g, Expr::GroupingSet(_)));
    if has_sets
        && !(is_top
            && is_grouping_set(aggregate)
            && group_columns(aggregate).len() <= MAX_DIMENSIONS)
    {
        return Err(DisclosureError::GroupingSets);
    }
    for expr in &aggregate.aggr_expr {
        allowed_aggregate(expr)?;
    }
    Ok(())
}

/// Plan rule 10: a group key may read one column of the data at most (traced down
/// through derived tables). A key that combines columns selects records the way a
/// `WHERE` does, but invisibly: `GROUP BY sex, (id = 7 AND income > 50000)` puts person
/// 7 alone in a group that the threshold then removes, and the released counts add up
/// to the public total minus one exactly when the condition holds. With one column per
/// key such a group is the same whatever the other columns hold.
fn check_group_keys(aggregate: &Aggregate) -> Result<(), DisclosureError> {
    for key in group_columns(aggregate) {
        let mut sources = BTreeSet::new();
        source_columns(key, &aggregate.input, &mut sources)?;
        if sources.len() > 1 {
            return Err(DisclosureError::GroupKey(key.schema_name().to_string()));
        }
    }
    Ok(())
}

/// Adds to `sources` the table columns (or inner aggregate values) `expr` reads.
fn source_columns(
    expr: &Expr,
    input: &LogicalPlan,
    sources: &mut BTreeSet<String>,
) -> Result<(), DisclosureError> {
    for column in expr.column_refs() {
        source_of_column(column, input, sources)?;
    }
    Ok(())
}

/// The sources of `column` of `plan`'s output.
fn source_of_column(
    column: &Column,
    plan: &LogicalPlan,
    sources: &mut BTreeSet<String>,
) -> Result<(), DisclosureError> {
    let index = plan
        .schema()
        .index_of_column(column)
        .map_err(|_| DisclosureError::Internal("a group key column could not be resolved"))?;
    match plan {
        LogicalPlan::TableScan(scan) => {
            sources.insert(format!("{}.{}", scan.table_name, column.name));
            Ok(())
        }
        LogicalPlan::Projection(projection) => match projection.expr.get(index) {
            Some(expr) => source_columns(expr, &projection.input, sources),
            None => Err(DisclosureError::Internal(
                "a projected group key could not be resolved",
            )),
        },
        LogicalPlan::Filter(filter) => source_of_column(column, &filter.input, sources),
        LogicalPlan::Sort(sort) => source_of_column(column, &sort.input, sources),
        LogicalPlan::Limit(limit) => source_of_column(column, &limit.input, sources),
        LogicalPlan::Distinct(Distinct::All(input)) => source_of_column(column, input, sources),
        LogicalPlan::SubqueryAlias(alias) => {
            let (qualifier, field) = alias.input.schema().qualified_field(index);
            source_of_column(&Column::from((qualifier, field)), &alias.input, sources)
        }
        LogicalPlan::Aggregate(inner) => match inner.group_expr.get(index) {
            Some(key) => source_columns(key, &inner.input, sources),
            None => {
                // An inner aggregate's value is a source of its own.
                sources.insert(format!("aggregate:{}", column.name));
                Ok(())
            }
        },
        // `VALUES` and empty relations read no data.
        _ => Ok(()),
    }
}

/// Rule 7 on every aggregate node, after the structural rules (so a join or a subquery
/// is refused as such, not as the measure it feeds).
fn check_all_measures(plan: &LogicalPlan) -> Result<(), DisclosureError> {
    let mut refusal = None;
    let walked = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Aggregate(aggregate) = node
            && let Err(e) = check_measures(aggregate).and_then(|()| check_group_keys(aggregate))
        {
            refusal = Some(e);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if walked.is_err() {
        return Err(DisclosureError::Internal("the plan could not be inspected"));
    }
    refusal.map_or(Ok(()), Err)
}

/// Plan rule 7 (see the module documentation): `SUM`, `AVG` and `COUNT(DISTINCT …)`
/// read their argument's *values*, so the argument must be a plain measure. A
/// conditional inside it (`SUM(CASE WHEN id = 7 THEN income ELSE 1000 END)`) would hide
/// a record selection in the value, where no record-set check sees it; the same
/// selection written as `FILTER (WHERE …)` or `WHERE` is seen and checked. Plain
/// `COUNT(x)` only reads whether `x` is NULL, which is exactly its record set, so its
/// argument is free.
fn check_measures(aggregate: &Aggregate) -> Result<(), DisclosureError> {
    for expr in &aggregate.aggr_expr {
        let (function, kind) = allowed_aggregate(expr)?;
        if kind == AggregateKind::Count && !function.params.distinct {
            continue;
        }
        for arg in &function.params.args {
            if !is_plain_measure(arg, &aggregate.input)? {
                let name = function.func.name().to_ascii_uppercase();
                return Err(DisclosureError::Measure(if function.params.distinct {
                    format!("{name}(DISTINCT …)")
                } else {
                    format!("{name}(…)")
                }));
            }
        }
    }
    Ok(())
}

/// A plain measure: a column that is, all the way down to the table, a column (or a
/// `VALUES` literal), optionally negated or cast to a floating-point type. Nothing
/// else: a `CASE`, `COALESCE`, `NULLIF`, comparison, function call or second column can
/// turn a condition on other columns into a value; integer division or a cast that
/// truncates is a step function that does the same (`SUM((id + 158) / 200)` counts the
/// records from id 42 on); an added constant hides the values from the dominance rule
/// (`SUM(income + 1e9)`); a constant factor undoes rounding (`SUM(income * 5)` rounded
/// to base 5). Scale or shift the aggregate instead: `SUM(x) * 5`, `AVG(x) / 100`.
pub(crate) fn is_plain_measure(expr: &Expr, input: &LogicalPlan) -> Result<bool, DisclosureError> {
    Ok(match expr {
        Expr::Alias(alias) => is_plain_measure(&alias.expr, input)?,
        Expr::Column(column) => is_plain_column(column, input)?,
        Expr::Cast(cast) => widens(&cast.data_type) && is_plain_measure(&cast.expr, input)?,
        Expr::TryCast(cast) => widens(&cast.data_type) && is_plain_measure(&cast.expr, input)?,
        Expr::Negative(inner) => is_plain_measure(inner, input)?,
        _ => false,
    })
}

/// Casts a measure may take: to floating point, which keeps every integer of a column
/// up to 2^53 distinct (and every float as it is).
fn widens(to: &DataType) -> bool {
    matches!(to, DataType::Float64 | DataType::Float32)
}

/// Whether `column` of `plan`'s output is a plain measure (see [`is_plain_measure`]).
fn is_plain_column(column: &Column, plan: &LogicalPlan) -> Result<bool, DisclosureError> {
    let index = plan
        .schema()
        .index_of_column(column)
        .map_err(|_| DisclosureError::Internal("a measure column could not be resolved"))?;
    match plan {
        LogicalPlan::TableScan(_) | LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
            Ok(true)
        }
        LogicalPlan::Projection(projection) => match projection.expr.get(index) {
            Some(expr) => is_plain_measure(expr, &projection.input),
            None => Err(DisclosureError::Internal(
                "a projected measure could not be resolved",
            )),
        },
        // These keep their input's schema, qualifiers included.
        LogicalPlan::Filter(filter) => is_plain_column(column, &filter.input),
        LogicalPlan::Sort(sort) => is_plain_column(column, &sort.input),
        LogicalPlan::Limit(limit) => is_plain_column(column, &limit.input),
        LogicalPlan::Distinct(Distinct::All(input)) => is_plain_column(column, input),
        // An alias renames the qualifier of the field at the same position.
        LogicalPlan::SubqueryAlias(alias) => {
            let (qualifier, field) = alias.input.schema().qualified_field(index);
            is_plain_column(&Column::from((qualifier, field)), &alias.input)
        }
        // A `VALUES` literal or an empty relation holds no records' values.
        // A group key of an inner aggregate is as plain as its expression; an inner
        // aggregate's value is not a measure of records (`SUM(n)` over per-group
        // `COUNT(CASE …)` values would carry the condition out).
        LogicalPlan::Aggregate(inner) => match inner.group_expr.get(index) {
            Some(key) => is_plain_measure(key, &inner.input),
            None => Ok(false),
        },
        _ => Ok(false),
    }
}

/// The aggregate function of an `aggr_expr` entry, if it is allowed.
pub(crate) fn allowed_aggregate(
    expr: &Expr,
) -> Result<(&AggregateFunction, AggregateKind), DisclosureError> {
    let Expr::AggregateFunction(function) = unalias(expr) else {
        return Err(DisclosureError::DisallowedAggregate(
            "a non-aggregate expression".to_owned(),
        ));
    };
    let inner = function.func.inner().as_any();
    let kind = if inner.is::<Count>() {
        AggregateKind::Count
    } else if inner.is::<Sum>() {
        AggregateKind::Sum
    } else if inner.is::<Avg>() {
        AggregateKind::Avg
    } else {
        return Err(DisclosureError::DisallowedAggregate(
            function.func.name().to_owned(),
        ));
    };
    if function.params.distinct && kind != AggregateKind::Count {
        return Err(DisclosureError::DistinctMagnitude(
            function.func.name().to_owned(),
        ));
    }
    if kind.is_magnitude() && function.params.args.len() != 1 {
        return Err(DisclosureError::DisallowedAggregate(
            function.func.name().to_owned(),
        ));
    }
    Ok((function, kind))
}

/// `expr` without its aliases.
pub(crate) fn unalias(mut expr: &Expr) -> &Expr {
    while let Expr::Alias(alias) = expr {
        expr = &alias.expr;
    }
    expr
}

/// No subquery expressions, outer references, window functions or `UNNEST` anywhere.
fn check_expressions(plan: &LogicalPlan) -> Result<(), DisclosureError> {
    refuse_first(plan, |e| match e {
        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => {
            Some(DisclosureError::Subquery)
        }
        Expr::OuterReferenceColumn(..) => Some(DisclosureError::Subquery),
        Expr::WindowFunction(_) => Some(DisclosureError::Operator("a window function")),
        Expr::Unnest(_) => Some(DisclosureError::Operator("UNNEST")),
        // `now()`, `random()`, `uuid()`: the same text would select differently from run
        // to run, so a repeat would no longer be a repeat (a yes/no question over time).
        Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable => {
            Some(DisclosureError::Operator(
                "a function whose result changes between runs (now, random, uuid)",
            ))
        }
        _ => None,
    })
}

/// Visits every expression of `plan` (subqueries included, sub-expressions too) and
/// returns the first refusal `check` gives.
pub(crate) fn refuse_first(
    plan: &LogicalPlan,
    mut check: impl FnMut(&Expr) -> Option<DisclosureError>,
) -> Result<(), DisclosureError> {
    let mut refusal = None;
    let walked = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| match check(e) {
                Some(problem) => {
                    refusal = Some(problem);
                    Ok(TreeNodeRecursion::Stop)
                }
                None => Ok(TreeNodeRecursion::Continue),
            })
        })
    });
    if walked.is_err() {
        return Err(DisclosureError::Internal("the plan could not be inspected"));
    }
    refusal.map_or(Ok(()), Err)
}

/// The input of the top aggregate may only filter, project, sort, limit, alias,
/// de-duplicate and aggregate rows: no operator that can repeat a record (join, union,
/// unnest) or spread one record's value over others (window).
fn check_below(input: &LogicalPlan) -> Result<(), DisclosureError> {
    let mut refusal = None;
    let walked = input.apply(|node| {
        let allowed = matches!(
            node,
            LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::TableScan(_)
                | LogicalPlan::EmptyRelation(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Values(_)
                | LogicalPlan::Distinct(Distinct::All(_))
        );
        if allowed {
            Ok(TreeNodeRecursion::Continue)
        } else {
            refusal = Some(DisclosureError::Operator(operator_name(node)));
            Ok(TreeNodeRecursion::Stop)
        }
    });
    if walked.is_err() {
        return Err(DisclosureError::Internal("the plan could not be inspected"));
    }
    refusal.map_or(Ok(()), Err)
}

/// Plan rule 11: no aggregate over grouped or de-duplicated rows. Its values count or
/// add up groups or distinct values, not records, so record sets cannot bound what
/// they reveal: `COUNT(*)` over `SELECT DISTINCT diagnosis … WHERE … OR id = 42` is one
/// higher exactly when person 42's diagnosis is new, however many records differ.
fn check_not_nested(input: &LogicalPlan) -> Result<(), DisclosureError> {
    let nested = input
        .exists(|node| {
            Ok(matches!(
                node,
                LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_)
            ))
        })
        .unwrap_or(true);
    if nested {
        return Err(DisclosureError::Operator(
            "an aggregate over the result of GROUP BY or DISTINCT",
        ));
    }
    Ok(())
}

/// Column names starting with the shadow prefix are reserved for the rewrite.
fn check_reserved_names(node: &LogicalPlan) -> Result<(), DisclosureError> {
    match node
        .schema()
        .fields()
        .iter()
        .find(|f| f.name().starts_with(SHADOW_PREFIX))
    {
        Some(field) => Err(DisclosureError::ReservedName(field.name().clone())),
        None => Ok(()),
    }
}

/// Whether an aggregate node appears in `plan` (not counting subqueries).
fn contains_aggregate(plan: &LogicalPlan) -> bool {
    plan.exists(|node| Ok(matches!(node, LogicalPlan::Aggregate(_))))
        .unwrap_or(true)
}

/// A readable name of a plan operator, for messages.
fn operator_name(plan: &LogicalPlan) -> &'static str {
    match plan {
        LogicalPlan::Projection(_) => "a projection",
        LogicalPlan::Filter(_) => "a filter",
        LogicalPlan::Window(_) => "a window function",
        LogicalPlan::Aggregate(_) => "an aggregate",
        LogicalPlan::Sort(_) => "ORDER BY",
        LogicalPlan::Join(_) => "a join",
        LogicalPlan::Repartition(_) => "a repartition",
        LogicalPlan::Union(_) => "UNION",
        LogicalPlan::TableScan(_) => "a table scan",
        LogicalPlan::EmptyRelation(_) => "an empty relation",
        LogicalPlan::Subquery(_) => "a subquery",
        LogicalPlan::SubqueryAlias(_) => "a subquery alias",
        LogicalPlan::Limit(_) => "LIMIT",
        LogicalPlan::Statement(_) => "a statement",
        LogicalPlan::Values(_) => "VALUES",
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => "EXPLAIN",
        LogicalPlan::Extension(_) => "an extension node",
        LogicalPlan::Distinct(Distinct::All(_)) => "DISTINCT",
        LogicalPlan::Distinct(Distinct::On(_)) => "DISTINCT ON",
        LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Copy(_) => "a write",
        LogicalPlan::DescribeTable(_) => "DESCRIBE",
        LogicalPlan::Unnest(_) => "UNNEST",
        LogicalPlan::RecursiveQuery(_) => "a recursive query",
    }
}

/// For each output column of `node`, which aggregates of the top aggregate (the first
/// one reached going down) it is computed from.
fn lineage(node: &LogicalPlan) -> Result<Vec<BTreeSet<usize>>, DisclosureError> {
    match node {
        LogicalPlan::Aggregate(aggregate) => {
            // Group columns (and the grouping id of a grouping set) come first.
            let keys = aggregate
                .group_expr_len()
                .map_err(|_| DisclosureError::Internal("the group keys could not be counted"))?;
            Ok((0..aggregate.schema.fields().len())
                .map(|i| {
                    if i < keys {
                        BTreeSet::new()
                    } else {
                        BTreeSet::from([i - keys])
                    }
                })
                .collect())
        }
        LogicalPlan::Projection(p) => {
            let inner = lineage(&p.input)?;
            let schema = p.input.schema();
            let mut out = Vec::with_capacity(p.expr.len());
            for expr in &p.expr {
                let mut from = BTreeSet::new();
                for column in expr.column_refs() {
                    let index = schema.index_of_column(column).map_err(|_| {
                        DisclosureError::Internal("a projected column could not be resolved")
                    })?;
                    if let Some(set) = inner.get(index) {
                        from.extend(set.iter().copied());
                    }
                }
                out.push(from);
            }
            Ok(out)
        }
        LogicalPlan::Sort(s) => lineage(&s.input),
        LogicalPlan::Limit(l) => lineage(&l.input),
        LogicalPlan::Filter(f) => lineage(&f.input),
        LogicalPlan::SubqueryAlias(a) => lineage(&a.input),
        _ => Err(DisclosureError::Internal(
            "unexpected operator above the aggregate",
        )),
    }
}
