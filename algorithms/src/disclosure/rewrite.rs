//! The shadow rewrite: shadow aggregates on the top aggregate, an in-plan guard that
//! nulls unsafe cells, and flag columns carried up to the output.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, DataFusionError};
use datafusion::functions::math::round;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Expr, Filter, Limit, LogicalPlan, Projection, Sort, SubqueryAlias,
    cast, lit, when,
};

use super::analyse::{AggregateKind, Analysis, allowed_aggregate};
use super::dominance::DominanceOk;
use super::{DisclosureError, DisclosureRules, SHADOW_PREFIX};

/// Flag column: the group is backed by at least `threshold` records (or contributors).
pub(crate) const KEEP: &str = "__pdx_keep";

/// How one aggregate of the top aggregate is checked.
#[derive(Debug, Clone)]
pub(crate) struct CellPlan {
    /// The aggregate's name in the plan.
    pub name: String,
    /// Its function.
    pub kind: AggregateKind,
    /// Whether its value is rounded in the plan.
    pub rounded: bool,
    /// Index (into the flags) of its threshold flag.
    pub threshold_flag: usize,
    /// Index (into the flags) of its dominance flag (SUM and AVG only).
    pub dominance_flag: Option<usize>,
}

/// The rewritten plan and how to read its extra columns.
#[derive(Debug)]
pub(crate) struct Shadowed {
    /// The plan to run: the original output columns, then the flag columns.
    pub plan: LogicalPlan,
    /// Names of the flag columns, in output order; the first is [`KEEP`].
    pub flags: Vec<String>,
    /// One entry per aggregate of the top aggregate.
    pub cells: Vec<CellPlan>,
}

/// Rewrites an analysed plan (see the module documentation for the shape).
pub(crate) fn shadow(
    plan: &LogicalPlan,
    analysis: &Analysis<'_>,
    rules: &DisclosureRules,
) -> Result<Shadowed, DisclosureError> {
    let mut rewriter = Rewriter {
        rules,
        top: analysis.top,
        flags: Vec::new(),
        cells: Vec::new(),
    };
    let plan = rewriter.rebuild(plan)?;
    if rewriter.flags.is_empty() {
        return Err(DisclosureError::Internal(
            "the top aggregate was not rewritten",
        ));
    }
    Ok(Shadowed {
        plan,
        flags: rewriter.flags,
        cells: rewriter.cells,
    })
}

/// State of one rewrite.
struct Rewriter<'r> {
    /// The rules to implement.
    rules: &'r DisclosureRules,
    /// The analysed top aggregate.
    top: &'r Aggregate,
    /// Flag columns produced by the guard.
    flags: Vec<String>,
    /// Per-aggregate plans.
    cells: Vec<CellPlan>,
}

/// Plan-building errors name expressions of the query, never data.
fn rewrite_error(e: DataFusionError) -> DisclosureError {
    DisclosureError::Rewrite(e.message().lines().next().unwrap_or_default().to_owned())
}

impl Rewriter<'_> {
    /// Rebuilds the chain above the top aggregate, carrying the flag columns up.
    fn rebuild(&mut self, node: &LogicalPlan) -> Result<LogicalPlan, DisclosureError> {
        let plan = match node {
            LogicalPlan::Aggregate(aggregate) if std::ptr::eq(aggregate, self.top) => {
                return self.guard();
            }
            LogicalPlan::Projection(p) => {
                let input = self.rebuild(&p.input)?;
                let mut exprs = p.expr.clone();
                for flag in &self.flags {
                    exprs.push(flag_column(input.schema(), flag)?);
                }
                LogicalPlan::Projection(
                    Projection::try_new(exprs, Arc::new(input)).map_err(rewrite_error)?,
                )
            }
            LogicalPlan::Filter(f) => {
                let input = self.rebuild(&f.input)?;
                LogicalPlan::Filter(
                    Filter::try_new(f.predicate.clone(), Arc::new(input)).map_err(rewrite_error)?,
                )
            }
            LogicalPlan::Sort(s) => {
                let input = self.rebuild(&s.input)?;
                let mut expr = vec![flag_column(input.schema(), KEEP)?.sort(false, false)];
                expr.extend(s.expr.iter().cloned());
                LogicalPlan::Sort(Sort {
                    expr,
                    input: Arc::new(input),
                    fetch: s.fetch,
                })
            }
            LogicalPlan::Limit(l) => {
                let input = self.rebuild(&l.input)?;
                LogicalPlan::Limit(Limit {
                    skip: l.skip.clone(),
                    fetch: l.fetch.clone(),
                    input: Arc::new(input),
                })
            }
            LogicalPlan::SubqueryAlias(a) => {
                let input = self.rebuild(&a.input)?;
                LogicalPlan::SubqueryAlias(
                    SubqueryAlias::try_new(Arc::new(input), a.alias.clone())
                        .map_err(rewrite_error)?,
                )
            }
            _ => {
                return Err(DisclosureError::Internal(
                    "unexpected operator above the aggregate",
                ));
            }
        };
        Ok(plan)
    }

    /// The augmented aggregate, the guard projection over it and a sort putting kept
    /// groups first.
    fn guard(&mut self) -> Result<LogicalPlan, DisclosureError> {
        let top = self.top;
        let rules = self.rules;
        let contributor = match &rules.contributor_column {
            None => None,
            Some(name) => {
                let (qualifier, field) = top
                    .input
                    .schema()
                    .qualified_field_with_unqualified_name(name)
                    .map_err(|_| DisclosureError::ContributorColumn(name.clone()))?;
                Some(Expr::Column(Column::from((qualifier, field))))
            }
        };
        let by_entity = contributor.is_some();
        let backing = |filter: Option<Expr>| match &contributor {
            None => aggregate(count_udaf(), vec![lit(1i64)], false, filter),
            Some(entity) => aggregate(count_udaf(), vec![entity.clone()], true, filter),
        };

        let mut shadows = Shadows::default();
        let threshold = lit(i64::try_from(rules.threshold).unwrap_or(i64::MAX));
        let keep = shadow_column(&shadows.add(backing(None))).gt_eq(threshold.clone());
        let base = rules.rounding_base.filter(|b| *b > 1).map(f64::from);

        /// What the guard needs per aggregate before the augmented schema exists.
        struct Pending {
            threshold: Expr,
            dominance: Option<Expr>,
            avg_parts: Option<(String, String)>,
        }
        let mut pending = Vec::with_capacity(top.aggr_expr.len());
        for expr in &top.aggr_expr {
            let (function, kind) = allowed_aggregate(expr)?;
            let filter = function.params.filter.as_deref().cloned();
            let mut conditions: Vec<Expr> = function
                .params
                .args
                .iter()
                .filter(|a| !matches!(a, Expr::Literal(..)))
                .map(|a| a.clone().is_not_null())
                .collect();
            conditions.extend(filter.clone());
            let threshold_check =
                shadow_column(&shadows.add(backing(conditions.into_iter().reduce(Expr::and))))
                    .gt_eq(threshold.clone());
            let mut dominance = None;
            let mut avg_parts = None;
            if kind.is_magnitude() {
                let Some(arg) = function.params.args.first() else {
                    return Err(DisclosureError::Internal(
                        "a magnitude aggregate has no argument",
                    ));
                };
                let mut args = vec![arg.clone()];
                args.extend(contributor.clone());
                let udaf =
                    DominanceOk::udaf(rules.dominance_n, rules.dominance_p_percent, by_entity);
                dominance = Some(shadow_column(&shadows.add(aggregate(
                    udaf,
                    args,
                    false,
                    filter.clone(),
                ))));
                if kind == AggregateKind::Avg && base.is_some() {
                    let sum = shadows.add(aggregate(
                        sum_udaf(),
                        vec![arg.clone()],
                        false,
                        filter.clone(),
                    ));
                    let count =
                        shadows.add(aggregate(count_udaf(), vec![arg.clone()], false, filter));
                    avg_parts = Some((sum, count));
                }
            }
            self.cells.push(CellPlan {
                name: expr.schema_name().to_string(),
                kind,
                rounded: base.is_some(),
                threshold_flag: 0,
                dominance_flag: None,
            });
            pending.push(Pending {
                threshold: threshold_check,
                dominance,
                avg_parts,
            });
        }

        let mut aggr_expr = top.aggr_expr.clone();
        aggr_expr.extend(shadows.exprs.iter().map(|(name, e)| e.clone().alias(name)));
        let augmented =
            Aggregate::try_new(Arc::clone(&top.input), top.group_expr.clone(), aggr_expr)
                .map_err(rewrite_error)?;
        let schema = Arc::clone(&augmented.schema);
        let keys = top.group_expr.len();

        let mut exprs = Vec::with_capacity(keys + 3 * pending.len() + 1);
        for i in 0..keys {
            let (qualifier, field) = schema.qualified_field(i);
            let value = Expr::Column(Column::from((qualifier, field)));
            let guarded = when(keep.clone(), value).end().map_err(rewrite_error)?;
            exprs.push(guarded.alias_qualified(qualifier.cloned(), field.name()));
        }
        for (j, cell) in pending.iter().enumerate() {
            let (qualifier, field) = schema.qualified_field(keys + j);
            let column = Expr::Column(Column::from((qualifier, field)));
            let kind = self
                .cells
                .get(j)
                .map(|c| c.kind)
                .unwrap_or(AggregateKind::Count);
            let value = match (base, kind, &cell.avg_parts) {
                (Some(b), AggregateKind::Count | AggregateKind::Sum, _) => {
                    round_to(column, b, field.data_type())
                }
                (Some(b), AggregateKind::Avg, Some((sum, count))) => {
                    let sum = round_to(shadow_column(sum), b, &DataType::Float64);
                    let count = round_to(shadow_column(count), b, &DataType::Float64);
                    let ratio = when(count.clone().gt(lit(0.0f64)), sum / count)
                        .end()
                        .map_err(rewrite_error)?;
                    cast(ratio, field.data_type().clone())
                }
                _ => column,
            };
            let mut ok = keep.clone().and(cell.threshold.clone());
            if let Some(dominance) = &cell.dominance {
                ok = ok.and(dominance.clone());
            }
            let guarded = when(ok, value).end().map_err(rewrite_error)?;
            exprs.push(guarded.alias_qualified(qualifier.cloned(), field.name()));
        }

        self.flags.push(KEEP.to_owned());
        exprs.push(keep.alias(KEEP));
        for (j, cell) in pending.into_iter().enumerate() {
            let name = format!("{SHADOW_PREFIX}threshold_{j}");
            exprs.push(cell.threshold.alias(&name));
            let threshold_flag = self.flags.len();
            self.flags.push(name);
            let mut dominance_flag = None;
            if let Some(dominance) = cell.dominance {
                let name = format!("{SHADOW_PREFIX}dominance_{j}");
                exprs.push(dominance.alias(&name));
                dominance_flag = Some(self.flags.len());
                self.flags.push(name);
            }
            if let Some(plan) = self.cells.get_mut(j) {
                plan.threshold_flag = threshold_flag;
                plan.dominance_flag = dominance_flag;
            }
        }

        let guard = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(augmented)))
            .map_err(rewrite_error)?;
        Ok(LogicalPlan::Sort(Sort {
            expr: vec![shadow_column(KEEP).sort(false, false)],
            input: Arc::new(LogicalPlan::Projection(guard)),
            fetch: None,
        }))
    }
}

/// Shadow aggregates of the augmented aggregate, de-duplicated, named `__pdx_s{i}`.
#[derive(Default)]
struct Shadows {
    /// `(name, aggregate)` in order.
    exprs: Vec<(String, Expr)>,
}

impl Shadows {
    /// The name of the shadow computing `expr`, adding it if new.
    fn add(&mut self, expr: Expr) -> String {
        if let Some((name, _)) = self.exprs.iter().find(|(_, e)| *e == expr) {
            return name.clone();
        }
        let name = format!("{SHADOW_PREFIX}s{}", self.exprs.len());
        self.exprs.push((name.clone(), expr));
        name
    }
}

/// An aggregate function call.
fn aggregate(
    func: Arc<AggregateUDF>,
    args: Vec<Expr>,
    distinct: bool,
    filter: Option<Expr>,
) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        func,
        args,
        distinct,
        filter.map(Box::new),
        vec![],
        None,
    ))
}

/// An unqualified reference to a shadow or flag column.
fn shadow_column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// A reference to the flag column `name` as it is qualified in `schema`.
fn flag_column(schema: &DFSchema, name: &str) -> Result<Expr, DisclosureError> {
    let (qualifier, field) = schema
        .qualified_field_with_unqualified_name(name)
        .map_err(|_| DisclosureError::Internal("a flag column was lost above the aggregate"))?;
    Ok(Expr::Column(Column::from((qualifier, field))))
}

/// `value` rounded to the nearest multiple of `base`, cast back to `data_type`.
fn round_to(value: Expr, base: f64, data_type: &DataType) -> Expr {
    let scaled = cast(value, DataType::Float64) / lit(base);
    cast(round().call(vec![scaled]) * lit(base), data_type.clone())
}
