//! The shadow rewrite: shadow aggregates on the top aggregate, an in-plan guard that
//! nulls unsafe cells, and flag columns carried up to the output.

use std::ops::Not;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, DFSchema, DataFusionError, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::functions::math::round;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Expr, ExprFunctionExt, Filter, Limit, LogicalPlan, Projection, Sort,
    SubqueryAlias, TableScan, Window, cast, lit, when,
};

use super::analyse::{
    AggregateKind, Analysis, allowed_aggregate, is_grouping_set, is_plain_measure, unalias,
};
use super::dominance::DominanceOk;
use super::record_sets::{RecordSetAgg, selection_fingerprint};
use super::{DisclosureError, DisclosureRules, SHADOW_PREFIX};
use crate::sql::ORDINAL_COLUMN;

/// Most differently selected record sets one query may compare (2^n Venn regions each).
pub(crate) const MAX_SELECTIONS: usize = 5;

/// Flag column: the group is backed by at least `threshold` records (or contributors).
pub(crate) const KEEP: &str = "__pdx_keep";

/// Carried column: the cell's row in the first stage's result (NULL in one-pass plans).
pub(crate) const CELL: &str = "__pdx_cell";

/// Where to find each table's twin with row ordinals (none: no record sets). `Sync`, so
/// a future holding one stays `Send`.
pub(crate) type OrdinalLookup<'a> = &'a (dyn Fn(&str) -> Option<Arc<dyn TableProvider>> + Sync);

/// How one record set is read from the first stage's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetSource {
    /// The record-set column holding the base set; `None`: every row of the table.
    pub base: Option<usize>,
    /// A record-set column of rows to take out of the base (NULLs of a plain column).
    pub minus: Option<usize>,
}

/// The first stage (everything up to the guard) and how to read its result.
#[derive(Debug)]
pub(crate) struct Stage {
    /// The plan up to and including the guard (and its sort).
    pub guard: LogicalPlan,
    /// Group keys, then one value column per aggregate, at the start of the result.
    pub keys: usize,
    /// Index of the first flag column ([`KEEP`]) in the guard's result.
    pub flags_at: usize,
    /// Index of the [`CELL`] column in the guard's result.
    pub cell_at: usize,
    /// Index of the first record-set column (the rest of the result).
    pub sets_at: usize,
    /// Per aggregate, the record set it reads (an index into `sources`).
    pub set_of: Vec<usize>,
    /// Per distinct record set, where it is; empty without ordinals.
    pub sources: Vec<SetSource>,
    /// Per distinct record set, the fingerprint of its selection.
    pub selections: Vec<String>,
    /// The table the aggregate reads, and its public row count if known.
    pub table: Option<(String, Option<u64>)>,
    /// For a grouping set, where the first stage's result holds what complementary
    /// suppression needs.
    pub cube: Option<CubeLayout>,
}

/// Columns of the first stage's result for complementary suppression of a grouping set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CubeLayout {
    /// Dimensions (distinct group columns).
    pub dims: usize,
    /// Index of the first raw group column.
    pub keys_at: usize,
    /// Index of the raw grouping id (bit `dims − 1 − d` set: dimension `d` is a total).
    pub gid_at: usize,
    /// Index of the group's record (or contributor) count.
    pub size_at: usize,
    /// Index of the first of the per-aggregate counts of the records each value reads.
    pub counts_at: usize,
    /// The public row count, when the query reads the whole table (the grand total of
    /// a count is then known even if not in the output).
    pub public_total: Option<u64>,
}

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
    /// Index (into the flags) of its differencing flag, when another value of the
    /// query reads a different record set.
    pub differencing_flag: Option<usize>,
    /// Index (into the flags) of its flag for differencing against earlier outputs
    /// (true in the plan; the first stage clears it).
    pub across_flag: usize,
    /// Index (into the flags) of its flag for complementary suppression in a table with
    /// totals (true in the plan; the first stage clears it).
    pub secondary_flag: usize,
}

/// The rewritten plan and how to read its extra columns.
#[derive(Debug)]
pub(crate) struct Shadowed {
    /// The one-pass plan: the original output columns, the flag columns, [`CELL`].
    pub plan: LogicalPlan,
    /// Names of the flag columns, in output order; the first is [`KEEP`].
    pub flags: Vec<String>,
    /// One entry per aggregate of the top aggregate.
    pub cells: Vec<CellPlan>,
    /// The first stage of a two-stage run.
    pub stage: Stage,
}

/// Rewrites an analysed plan (see the module documentation for the shape). With
/// `ordinals`, the guard also outputs the record set of every value.
pub(crate) fn shadow(
    plan: &LogicalPlan,
    analysis: &Analysis<'_>,
    rules: &DisclosureRules,
    ordinals: Option<OrdinalLookup<'_>>,
) -> Result<Shadowed, DisclosureError> {
    let mut rewriter = Rewriter {
        rules,
        top: analysis.top,
        ordinals,
        flags: Vec::new(),
        cells: Vec::new(),
        bottom: None,
        stage: None,
    };
    let plan = rewriter.rebuild(plan)?;
    let Some(stage) = rewriter.stage.take() else {
        return Err(DisclosureError::Internal(
            "the top aggregate was not rewritten",
        ));
    };
    Ok(Shadowed {
        plan,
        flags: rewriter.flags,
        cells: rewriter.cells,
        stage,
    })
}

/// The second stage: `plan`'s operators above the top aggregate over `bottom`, a plan
/// with the guard's columns (without record sets), carrying the same flags.
pub(crate) fn above(
    plan: &LogicalPlan,
    analysis: &Analysis<'_>,
    rules: &DisclosureRules,
    shadowed: &Shadowed,
    bottom: LogicalPlan,
) -> Result<LogicalPlan, DisclosureError> {
    let mut rewriter = Rewriter {
        rules,
        top: analysis.top,
        ordinals: None,
        flags: shadowed.flags.clone(),
        cells: Vec::new(),
        bottom: Some(bottom),
        stage: None,
    };
    rewriter.rebuild(plan)
}

/// State of one rewrite.
struct Rewriter<'r> {
    /// The rules to implement.
    rules: &'r DisclosureRules,
    /// The analysed top aggregate.
    top: &'r Aggregate,
    /// Tables with row ordinals, for record sets.
    ordinals: Option<OrdinalLookup<'r>>,
    /// Flag columns produced by the guard.
    flags: Vec<String>,
    /// Per-aggregate plans.
    cells: Vec<CellPlan>,
    /// What replaces the guard (second stage); `None`: build the guard.
    bottom: Option<LogicalPlan>,
    /// The first stage, once the guard is built.
    stage: Option<Stage>,
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
                if let Some(bottom) = &self.bottom {
                    return Ok(bottom.clone());
                }
                let guard = self.guard()?;
                if let Some(stage) = &mut self.stage {
                    stage.guard = guard.clone();
                }
                return Ok(guard);
            }
            LogicalPlan::Projection(p) => {
                let input = self.rebuild(&p.input)?;
                let mut exprs = p.expr.clone();
                for flag in self.flags.iter().map(String::as_str).chain([CELL]) {
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
            count: String,
            threshold: Expr,
            distinct_count: bool,
            dominance: Option<Expr>,
            differencing: Option<Expr>,
            avg_parts: Option<(String, String)>,
        }
        let mut pending = Vec::with_capacity(top.aggr_expr.len());
        // The record set of each aggregate within its group, as the condition a record
        // must meet to be read (`None`: every record of the group).
        let mut record_sets: Vec<Option<Expr>> = Vec::with_capacity(top.aggr_expr.len());
        // The part of it the query chose (FILTER, a computed COUNT argument), as opposed
        // to the nullness of a plain column.
        let mut crafted: Vec<Option<Expr>> = Vec::with_capacity(top.aggr_expr.len());
        for expr in &top.aggr_expr {
            let (function, kind) = allowed_aggregate(expr)?;
            if kind == AggregateKind::Count && function.params.distinct {
                // Rule 11: distinct values are not records; only distinct contributors are.
                let on_contributor =
                    match (&rules.contributor_column, function.params.args.as_slice()) {
                        (Some(name), [arg]) => {
                            matches!(unalias(arg), Expr::Column(c) if &c.name == name)
                                && is_plain_measure(arg, &top.input).unwrap_or(false)
                        }
                        _ => false,
                    };
                if !on_contributor {
                    let args: Vec<String> = function
                        .params
                        .args
                        .iter()
                        .map(|a| a.schema_name().to_string())
                        .collect();
                    return Err(DisclosureError::DistinctCount(args.join(", ")));
                }
            }
            let filter = function.params.filter.as_deref().cloned();
            let mut conditions: Vec<Expr> = function
                .params
                .args
                .iter()
                .filter(|a| !matches!(a, Expr::Literal(..)))
                .map(|a| a.clone().is_not_null())
                .collect();
            let chosen: Vec<Expr> = function
                .params
                .args
                .iter()
                .filter(|a| kind == AggregateKind::Count && !matches!(a, Expr::Literal(..)))
                .filter(|a| !is_plain_measure(a, &top.input).unwrap_or(false))
                .map(|a| a.clone().is_not_null())
                .chain(filter.clone())
                .collect();
            crafted.push(chosen.into_iter().reduce(Expr::and));
            conditions.extend(filter.clone());
            let condition = conditions.into_iter().reduce(Expr::and);
            let backing_count = shadows.add(backing(condition.clone()));
            let threshold_check = shadow_column(&backing_count).gt_eq(threshold.clone());
            record_sets.push(condition);
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
                differencing_flag: None,
                across_flag: 0,
                secondary_flag: 0,
            });
            pending.push(Pending {
                count: backing_count,
                threshold: threshold_check,
                distinct_count: kind == AggregateKind::Count && function.params.distinct,
                dominance,
                differencing: None,
                avg_parts,
            });
        }

        // Differencing within the output (see the module documentation): the Venn
        // regions of the values' record sets, pairs selected differently, and the
        // public total, per group and over all groups.
        let mut distinct_sets: Vec<Option<Expr>> = Vec::new();
        let mut crafted_of_set: Vec<Option<Expr>> = Vec::new();
        let set_of: Vec<usize> = record_sets
            .iter()
            .zip(&crafted)
            .map(|(set, chosen)| {
                match distinct_sets
                    .iter()
                    .zip(&crafted_of_set)
                    .position(|(s, c)| s == set && c == chosen)
                {
                    Some(index) => index,
                    None => {
                        distinct_sets.push(set.clone());
                        crafted_of_set.push(chosen.clone());
                        distinct_sets.len() - 1
                    }
                }
            })
            .collect();
        let count = distinct_sets.len();
        if count > MAX_SELECTIONS {
            return Err(DisclosureError::TooManySelections(MAX_SELECTIONS));
        }
        let sizes: Vec<Expr> = distinct_sets
            .iter()
            .map(|set| shadow_column(&shadows.add(backing(set.clone()))))
            .collect();
        let member = |set: &Option<Expr>| match set {
            None => lit(true),
            Some(condition) => condition.clone().is_true(),
        };
        // `a` wins against `b`: the larger set, the earlier one on a tie.
        let wins = |a: usize, b: usize| {
            if a < b {
                sizes[a].clone().gt_eq(sizes[b].clone())
            } else {
                sizes[a].clone().gt(sizes[b].clone())
            }
        };
        let mut loses: Vec<Vec<Expr>> = vec![Vec::new(); count];
        if count > 1 {
            // Every non-empty region of the Venn diagram must hold 0 or at least
            // `threshold` records, or some combination of the values isolates it; when
            // one does not, only the value over the largest set is released.
            let regions = if by_entity {
                // Distinct contributors do not add up over regions: count each region.
                direct_regions(&distinct_sets, &mut shadows, &backing)
            } else {
                derived_regions(&distinct_sets, &mut shadows, &backing)
            };
            let regions_ok: Vec<Expr> = regions
                .into_iter()
                .map(|size| size.clone().eq(lit(0i64)).or(size.gt_eq(threshold.clone())))
                .collect();
            if let Some(all_ok) = regions_ok.into_iter().reduce(Expr::and) {
                for (a, terms) in loses.iter_mut().enumerate() {
                    let largest = (0..count)
                        .filter(|b| *b != a)
                        .map(|b| wins(a, b))
                        .reduce(Expr::and)
                        .unwrap_or(lit(true));
                    terms.push(all_ok.clone().not().and(largest.not()));
                }
            }
        }
        // Sets selected differently must differ by at least `threshold`: if they may
        // coincide, whether they do is the answer to the selection.
        let pairs = (0..count).flat_map(|a| (a + 1..count).map(move |b| (a, b)));
        for (a, b) in pairs {
            if crafted_of_set[a] == crafted_of_set[b] {
                continue;
            }
            let apart = member(&distinct_sets[a]).not_eq(member(&distinct_sets[b]));
            let difference = shadow_column(&shadows.add(backing(Some(apart))));
            let too_close = difference.lt(threshold.clone());
            loses[a].push(too_close.clone().and(wins(a, b).not()));
            loses[b].push(too_close.and(wins(b, a).not()));
        }
        // Against the public total: a restricted set within `threshold` of all rows,
        // in one group, or summed over all groups (window below).
        let table = scanned_table(&top.input);
        let table_rows = table
            .as_ref()
            .and_then(|t| rules.public_rows.get(t).copied());
        let grouped = !top.group_expr.is_empty();
        let narrowed = narrows_records(&top.input);
        let grouping = is_grouping_set(top);
        // Sums over "all groups" are per grouping set: each set partitions the records.
        let per_set = grouping.then(|| shadow_column(Aggregate::INTERNAL_GROUPING_ID));
        let total = match &rules.contributor_column {
            None => table_rows,
            Some(_) => None,
        };
        let mut window_exprs = Vec::new();
        if let Some(total) = total {
            let all_rows = lit(i64::try_from(total).unwrap_or(i64::MAX));
            let ceiling = lit(i64::try_from(total)
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(rules.threshold).unwrap_or(i64::MAX)));
            // With grouping sets, complementary suppression over the whole table (its
            // totals and the public row count) protects removed groups instead.
            if grouped && !narrowed && !grouping {
                // Records of the groups the threshold removes (secondary suppression
                // against the public total; see the module documentation).
                let group_size = shadow_column(&shadows.add(backing(None)));
                let removed_records = when(group_size.clone().gt_eq(threshold.clone()), lit(0i64))
                    .otherwise(group_size)
                    .map_err(rewrite_error)?;
                let name = format!("{SHADOW_PREFIX}removed");
                window_exprs.push(window_sum(removed_records, per_set.as_ref())?.alias(&name));
                let removed = shadow_column(&name);
                let exposed = removed
                    .clone()
                    .gt(lit(0i64))
                    .and(removed.lt(threshold.clone()));
                for terms in &mut loses {
                    terms.push(exposed.clone());
                }
            }
            for (set, terms) in loses.iter_mut().enumerate() {
                let selected = narrowed || crafted_of_set[set].is_some();
                if selected {
                    terms.push(sizes[set].clone().gt(ceiling.clone()));
                } else if grouped {
                    // A group of all but a few records; a group of all of them (a
                    // grand total) is the public total itself.
                    terms.push(
                        sizes[set]
                            .clone()
                            .gt(ceiling.clone())
                            .and(sizes[set].clone().lt(all_rows.clone())),
                    );
                }
                if selected && grouped {
                    let name = format!("{SHADOW_PREFIX}w{set}");
                    window_exprs
                        .push(window_sum(sizes[set].clone(), per_set.as_ref())?.alias(&name));
                    terms.push(shadow_column(&name).gt(ceiling.clone()));
                }
            }
        }
        for (cell, set) in pending.iter_mut().zip(&set_of) {
            cell.differencing = loses
                .get(*set)
                .and_then(|terms| terms.iter().cloned().reduce(Expr::or))
                .map(|lost| !lost);
        }

        // Record sets (differencing across outputs; see `record_sets.rs`): the input
        // with row ordinals, and per distinct set the shadows that make it up. A set
        // that only requires plain columns not to be NULL is the group's set minus the
        // (usually no) rows where one is NULL, which costs almost nothing to collect.
        let ordinal_input = match self.ordinals {
            Some(lookup) => with_ordinals(&top.input, lookup)?,
            None => None,
        };
        let mut set_columns: Vec<String> = Vec::new();
        let mut sources: Vec<SetSource> = Vec::new();
        // How each set was selected: the plan below the aggregate and the value's own
        // crafted condition. Not the group keys (a total and its breakdown select the
        // same records the same way) and not which plain column must not be NULL.
        // `Debug` quotes literals unambiguously (the display form does not escape them,
        // so two different conditions could print alike).
        let below = format!("{:?}", top.input);
        let selections: Vec<String> = crafted_of_set
            .iter()
            .map(|chosen| {
                selection_fingerprint(&[
                    below.clone(),
                    chosen
                        .as_ref()
                        .map(|c| format!("{c:?}"))
                        .unwrap_or_default(),
                ])
            })
            .collect();
        if let Some(input) = &ordinal_input {
            let ordinal = ordinal_column(input.schema())?;
            let mut record_set = |condition: Option<Expr>| {
                let name = shadows.add(aggregate(
                    RecordSetAgg::udaf(),
                    vec![ordinal.clone()],
                    false,
                    condition,
                ));
                match set_columns.iter().position(|c| *c == name) {
                    Some(index) => index,
                    None => {
                        set_columns.push(name);
                        set_columns.len() - 1
                    }
                }
            };
            let whole_table = !grouped && !narrowed && table_rows.is_some();
            for (set, chosen) in distinct_sets.iter().zip(&crafted_of_set) {
                let source = match (set, chosen) {
                    (Some(condition), Some(_)) => SetSource {
                        base: Some(record_set(Some(condition.clone()))),
                        minus: None,
                    },
                    (set, None) => SetSource {
                        base: (!whole_table).then(|| record_set(None)),
                        minus: set
                            .as_ref()
                            .map(|condition| record_set(Some(condition.clone().is_not_true()))),
                    },
                    (None, Some(_)) => {
                        return Err(DisclosureError::Internal(
                            "a crafted selection without a condition",
                        ));
                    }
                };
                sources.push(source);
            }
        }

        // The records of each group, for complementary suppression (first stage only).
        let group_size = shadows.add(backing(None));
        let mut aggr_expr = top.aggr_expr.clone();
        aggr_expr.extend(shadows.exprs.iter().map(|(name, e)| e.clone().alias(name)));
        // Without a set to collect (a global aggregate over the whole table reads every
        // record, a set known without reading), the plain scan: the ordinals cost a scan
        // of their own.
        let aggregate_input = match ordinal_input {
            Some(input) if !set_columns.is_empty() => input,
            _ => top.input.as_ref().clone(),
        };
        let augmented =
            Aggregate::try_new(Arc::new(aggregate_input), top.group_expr.clone(), aggr_expr)
                .map_err(rewrite_error)?;
        let schema = Arc::clone(&augmented.schema);
        let mut below_guard = LogicalPlan::Aggregate(augmented);
        if !window_exprs.is_empty() {
            below_guard = LogicalPlan::Window(
                Window::try_new(window_exprs, Arc::new(below_guard)).map_err(rewrite_error)?,
            );
        }
        // Group columns, and the grouping id of a grouping set.
        let keys = top.group_expr_len().map_err(rewrite_error)?;

        let mut exprs = Vec::with_capacity(keys + 3 * pending.len() + 1);
        for i in 0..keys {
            let (qualifier, field) = schema.qualified_field(i);
            let value = Expr::Column(Column::from((qualifier, field)));
            let guarded = when(keep.clone(), value).end().map_err(rewrite_error)?;
            exprs.push(guarded.alias_qualified(qualifier.cloned(), field.name()));
        }
        for (j, cell) in pending.iter_mut().enumerate() {
            let (qualifier, field) = schema.qualified_field(keys + j);
            let column = Expr::Column(Column::from((qualifier, field)));
            if cell.distinct_count {
                // Its units are the distinct values: fewer than `threshold` of them is
                // a small count whatever the records behind them.
                cell.threshold = cell
                    .threshold
                    .clone()
                    .and(column.clone().gt_eq(threshold.clone()));
            }
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
            if let Some(differencing) = &cell.differencing {
                ok = ok.and(differencing.clone());
            }
            let guarded = when(ok, value).end().map_err(rewrite_error)?;
            exprs.push(guarded.alias_qualified(qualifier.cloned(), field.name()));
        }

        self.flags.push(KEEP.to_owned());
        exprs.push(keep.alias(KEEP));
        let pending_len = pending.len();
        let counts: Vec<String> = pending.iter().map(|p| p.count.clone()).collect();
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
            let mut differencing_flag = None;
            if let Some(differencing) = cell.differencing {
                let name = format!("{SHADOW_PREFIX}differencing_{j}");
                exprs.push(differencing.alias(&name));
                differencing_flag = Some(self.flags.len());
                self.flags.push(name);
            }
            let name = format!("{SHADOW_PREFIX}across_{j}");
            exprs.push(lit(true).alias(&name));
            let across_flag = self.flags.len();
            self.flags.push(name);
            let name = format!("{SHADOW_PREFIX}secondary_{j}");
            exprs.push(lit(true).alias(&name));
            let secondary_flag = self.flags.len();
            self.flags.push(name);
            if let Some(plan) = self.cells.get_mut(j) {
                plan.threshold_flag = threshold_flag;
                plan.dominance_flag = dominance_flag;
                plan.differencing_flag = differencing_flag;
                plan.across_flag = across_flag;
                plan.secondary_flag = secondary_flag;
            }
        }
        let cell_at = exprs.len();
        exprs.push(lit(ScalarValue::UInt64(None)).alias(CELL));
        let sets_at = exprs.len();
        for (i, name) in set_columns.iter().enumerate() {
            exprs.push(shadow_column(name).alias(format!("{SHADOW_PREFIX}rows_{i}")));
        }
        // First-stage columns for complementary suppression: the raw keys (the guard
        // nulls them in removed groups), the grouping id and the group's records.
        let cube = if grouping {
            let dims = keys - 1;
            let keys_at = exprs.len();
            for i in 0..keys {
                let (qualifier, field) = schema.qualified_field(i);
                exprs.push(
                    Expr::Column(Column::from((qualifier, field)))
                        .alias(format!("{SHADOW_PREFIX}key_{i}")),
                );
            }
            let size_at = exprs.len();
            exprs.push(shadow_column(&group_size).alias(format!("{SHADOW_PREFIX}size")));
            let counts_at = exprs.len();
            for (j, count) in counts.iter().enumerate() {
                exprs.push(shadow_column(count).alias(format!("{SHADOW_PREFIX}n_{j}")));
            }
            Some(CubeLayout {
                dims,
                keys_at,
                gid_at: keys_at + dims,
                size_at,
                counts_at,
                public_total: total.filter(|_| !narrowed),
            })
        } else {
            None
        };
        self.stage = Some(Stage {
            guard: LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::empty()),
            }),
            keys,
            flags_at: keys + pending_len,
            cell_at,
            sets_at,
            set_of,
            sources,
            selections,
            table: table.map(|t| (t, table_rows)),
            cube,
        });

        let guard = Projection::try_new(exprs, Arc::new(below_guard)).map_err(rewrite_error)?;
        Ok(LogicalPlan::Sort(Sort {
            expr: vec![shadow_column(KEEP).sort(false, false)],
            input: Arc::new(LogicalPlan::Projection(guard)),
            fetch: None,
        }))
    }
}

/// `SUM(value) OVER ()`, or over each grouping set (`PARTITION BY` the grouping id).
fn window_sum(value: Expr, partition: Option<&Expr>) -> Result<Expr, DisclosureError> {
    let window = Expr::from(WindowFunction::new(sum_udaf(), vec![value]));
    match partition {
        None => Ok(window),
        Some(by) => window
            .partition_by(vec![by.clone()])
            .build()
            .map_err(rewrite_error),
    }
}

/// The size of every Venn region of `sets` that a value can read, each counted by its
/// own shadow aggregate (what contributor counts need).
fn direct_regions(
    sets: &[Option<Expr>],
    shadows: &mut Shadows,
    backing: &dyn Fn(Option<Expr>) -> Expr,
) -> Vec<Expr> {
    let count = sets.len();
    let mut regions = Vec::new();
    for mask in 1u32..(1u32 << count) {
        // A set of every record of the group cannot be left out of a region.
        if (0..count).any(|i| mask & (1 << i) == 0 && sets[i].is_none()) {
            continue;
        }
        // Inside a set: its condition (a FILTER drops NULL); outside: the condition is
        // not true. A set of the whole group adds nothing.
        let region = (0..count)
            .filter_map(|i| match (&sets[i], mask & (1 << i) != 0) {
                (None, _) => None,
                (Some(condition), true) => Some(condition.clone()),
                (Some(condition), false) => Some(condition.clone().is_not_true()),
            })
            .reduce(Expr::and);
        regions.push(shadow_column(&shadows.add(backing(region))));
    }
    regions
}

/// The same sizes, for record counts, from the sizes of the sets' intersections by
/// inclusion–exclusion: `|A ∖ B| = |A| − |A ∩ B|`, and so on. Only intersections of two
/// or more selective sets cost a shadow count per record (none for `COUNT(*)` next to
/// one FILTER or one nullable column); the regions are arithmetic on one row per group.
fn derived_regions(
    sets: &[Option<Expr>],
    shadows: &mut Shadows,
    backing: &dyn Fn(Option<Expr>) -> Expr,
) -> Vec<Expr> {
    // The selective sets; a set of the whole group is the universe of every region.
    let selective: Vec<&Expr> = sets.iter().flatten().collect();
    let whole_group = sets.iter().any(Option::is_none);
    let k = selective.len();
    // The size of the intersection of the sets in `subset` (the group for none of them).
    let mut intersection = vec![shadow_column(&shadows.add(backing(None)))];
    for subset in 1u32..(1u32 << k) {
        let condition = (0..k)
            .filter(|i| subset & (1 << i) != 0)
            .map(|i| selective[i].clone())
            .reduce(Expr::and);
        intersection.push(shadow_column(&shadows.add(backing(condition))));
    }
    // Region `inside` (records in exactly those selective sets): the alternating sum of
    // the intersections of its supersets. Outside every selective set is a region only
    // when a value reads the whole group.
    let first = if whole_group { 0 } else { 1 };
    (first..(1u32 << k))
        .map(|inside| {
            let mut size: Option<Expr> = None;
            for superset in inside..(1u32 << k) {
                if superset & inside != inside {
                    continue;
                }
                let term = intersection[superset as usize].clone();
                let negative = (superset ^ inside).count_ones() % 2 == 1;
                size = Some(match (size, negative) {
                    (None, false) => term,
                    (None, true) => lit(0i64) - term,
                    (Some(acc), false) => acc + term,
                    (Some(acc), true) => acc - term,
                });
            }
            size.unwrap_or_else(|| lit(0i64))
        })
        .collect()
}

/// `input` reading the ordinal twin of every table, with [`ORDINAL_COLUMN`] carried up
/// to its output. `None` when a table has no twin or an operator cannot carry the
/// column (nested aggregates and `DISTINCT` never get here: rule 11 refuses them).
fn with_ordinals(
    node: &LogicalPlan,
    lookup: OrdinalLookup<'_>,
) -> Result<Option<LogicalPlan>, DisclosureError> {
    let carried = |input: &LogicalPlan| with_ordinals(input, lookup);
    let plan = match node {
        LogicalPlan::TableScan(scan) => {
            let Some(provider) = lookup(scan.table_name.table()) else {
                return Ok(None);
            };
            let ordinal = provider.schema().fields().len().saturating_sub(1);
            let projection = scan.projection.as_ref().map(|p| {
                let mut p = p.clone();
                p.push(ordinal);
                p
            });
            LogicalPlan::TableScan(
                TableScan::try_new(
                    scan.table_name.clone(),
                    provider_as_source(provider),
                    projection,
                    scan.filters.clone(),
                    scan.fetch,
                )
                .map_err(rewrite_error)?,
            )
        }
        LogicalPlan::Projection(p) => {
            let Some(input) = carried(&p.input)? else {
                return Ok(None);
            };
            let mut exprs = p.expr.clone();
            exprs.push(ordinal_column(input.schema())?);
            LogicalPlan::Projection(
                Projection::try_new(exprs, Arc::new(input)).map_err(rewrite_error)?,
            )
        }
        LogicalPlan::Filter(f) => {
            let Some(input) = carried(&f.input)? else {
                return Ok(None);
            };
            LogicalPlan::Filter(
                Filter::try_new(f.predicate.clone(), Arc::new(input)).map_err(rewrite_error)?,
            )
        }
        LogicalPlan::Sort(sort) => {
            let Some(input) = carried(&sort.input)? else {
                return Ok(None);
            };
            LogicalPlan::Sort(Sort {
                expr: sort.expr.clone(),
                input: Arc::new(input),
                fetch: sort.fetch,
            })
        }
        LogicalPlan::Limit(l) => {
            let Some(input) = carried(&l.input)? else {
                return Ok(None);
            };
            LogicalPlan::Limit(Limit {
                skip: l.skip.clone(),
                fetch: l.fetch.clone(),
                input: Arc::new(input),
            })
        }
        LogicalPlan::SubqueryAlias(a) => {
            let Some(input) = carried(&a.input)? else {
                return Ok(None);
            };
            LogicalPlan::SubqueryAlias(
                SubqueryAlias::try_new(Arc::new(input), a.alias.clone()).map_err(rewrite_error)?,
            )
        }
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
            // Literal rows are no records of the table.
            let mut exprs: Vec<Expr> = node
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            exprs.push(lit(ScalarValue::UInt32(None)).alias(ORDINAL_COLUMN));
            LogicalPlan::Projection(
                Projection::try_new(exprs, Arc::new(node.clone())).map_err(rewrite_error)?,
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(plan))
}

/// The ordinal column as `schema` qualifies it.
fn ordinal_column(schema: &DFSchema) -> Result<Expr, DisclosureError> {
    let (qualifier, field) = schema
        .qualified_field_with_unqualified_name(ORDINAL_COLUMN)
        .map_err(|_| DisclosureError::Internal("the row ordinals were lost below the aggregate"))?;
    Ok(Expr::Column(Column::from((qualifier, field))))
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

/// The one table the aggregate's input reads, if it reads exactly one.
fn scanned_table(input: &LogicalPlan) -> Option<String> {
    let mut tables = std::collections::BTreeSet::new();
    let walked = input.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            tables.insert(scan.table_name.table().to_owned());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    match (walked, tables.len()) {
        (Ok(_), 1) => tables.pop_first(),
        _ => None,
    }
}

/// Whether the aggregate's input can hold fewer records than its table: a filter, a
/// limit, a de-duplication or a nested aggregate (anything but projections, aliases
/// and sorts over the scan).
fn narrows_records(input: &LogicalPlan) -> bool {
    input
        .exists(|node| {
            Ok(!matches!(
                node,
                LogicalPlan::Projection(_)
                    | LogicalPlan::SubqueryAlias(_)
                    | LogicalPlan::Sort(_)
                    | LogicalPlan::TableScan(_)
            ))
        })
        .unwrap_or(true)
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
