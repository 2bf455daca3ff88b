//! Running a shadowed plan in two stages, so that checks needing the whole result or
//! earlier outputs happen before `HAVING`, `ORDER BY` and `LIMIT` see any value.
//!
//! 1. **Up to the guard.** The augmented aggregate and the guard run as one plan; the
//!    result has a row per group: keys, guarded values, flags and the record sets of
//!    the values (`record_sets.rs`).
//! 2. **Across outputs.** Each value still released is checked against the earlier
//!    record sets of the organisation on the version; a value too close to one is set
//!    to NULL and its `__pdx_across_j` flag cleared, in the intermediate result.
//! 3. **Above the guard.** The operators of the query above its aggregate run over the
//!    intermediate result (an in-memory table only this sandbox can scan), carrying
//!    the flags and each row's cell number.
//! 4. **Suppression and column totals.** The flags are applied (`suppress.rs`); then,
//!    for each record set, the union over the released cells (what a column total of
//!    the output gives away) is checked the same way, and a column too close to an
//!    earlier value is withheld whole.
//!
//! The sets of what is finally released (per value and per column union) are returned
//! for the caller to keep.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt64Array};
use datafusion::arrow::compute::{concat_batches, nullif};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::Column;
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Projection};

use super::across::{DynPriors, Nesting, SetId, check_against_priors, column_gives_away};
use super::analyse::Analysis;
use super::cube;
use super::record_sets::{RecordSet, TrackedSet, hash_bytes, set_and_bytes_at, set_at};
use super::rewrite::{self, SetSource, Shadowed};
use super::suppress::{self, Suppressed, across_detail, withhold_columns};
use super::{DisclosureError, DisclosureRules, Rule, safe};
use crate::sql::{SqlLimits, SqlSandbox};

/// Name of the intermediate table in the second stage's plan.
const STAGE_TABLE: &str = "__pdx_stage";

/// Most groups the first stage may produce (the final output keeps its own cap).
const STAGE_ROWS: usize = 1_000_000;

/// Most released cells of one column of a table with totals whose nestings (a total
/// around its cells) are recorded; beyond, only the column total's are.
const MAX_CUBE_CELLS: usize = 2_000;

/// Most groups of one output whose record sets are checked against earlier outputs;
/// beyond, the run fails instead (the default output row cap is the same).
const MAX_TRACKED_CELLS: usize = 100_000;

/// Most bytes the first stage may produce, record sets included.
const STAGE_BYTES: usize = 256 * 1024 * 1024;

/// The record sets of the values an output released, for the caller to keep.
#[derive(Debug, Clone, Default)]
pub struct ReleasedSets {
    /// The SQL table (of the run's grants) the sets are ordinals of.
    pub table: String,
    /// Distinct sets with their selections: per released value, and per column with
    /// several cells.
    pub sets: Vec<TrackedSet>,
    /// Nestings between these sets and earlier ones (for the checks of later outputs).
    pub nestings: Vec<Nesting>,
}

/// The checked output and the record sets of what it released.
pub(crate) struct Staged {
    /// Output, report and cells.
    pub suppressed: Suppressed,
    /// `None` when no record sets were computed (no row ordinals, or no table).
    pub released: Option<ReleasedSets>,
}

/// Arrow errors here concern our own arrays, never data values.
fn arrow_error(_: datafusion::arrow::error::ArrowError) -> DisclosureError {
    DisclosureError::Internal("the intermediate result could not be assembled")
}

/// Runs `plan` (made safe and analysed, shadowed into `shadowed`) in two stages.
pub(crate) async fn run(
    sandbox: &SqlSandbox,
    plan: &LogicalPlan,
    analysis: &Analysis<'_>,
    shadowed: &Shadowed,
    rules: &DisclosureRules,
    priors: &dyn DynPriors,
) -> Result<Staged, DisclosureError> {
    let stage = &shadowed.stage;
    let first = safe::try_casts(sandbox.optimize(&stage.guard)?)?;
    let out = sandbox
        .run_plan_with(first, &[], stage_limits(sandbox.limits()))
        .await?;
    let batch = concat_batches(&out.schema, &out.batches).map_err(arrow_error)?;
    let rows = batch.num_rows();
    let keep = batch
        .column(stage.flags_at)
        .as_boolean_opt()
        .ok_or(DisclosureError::Internal("the keep flag is not boolean"))?;

    // Record sets of the kept rows, per distinct set, each held once (equal sets
    // selected the same way, e.g. `COUNT(*)` next to `SUM(x)` of a non-NULL column,
    // are one).
    let tracked_table = stage.table.as_ref().filter(|_| !stage.sources.is_empty());
    let selection_of = |s: usize| stage.selections.get(s).cloned().unwrap_or_default();
    let mut pool = Pool::default();
    let mut at: Vec<Vec<Option<usize>>> = vec![Vec::new(); rows];
    if let Some((_, table_rows)) = tracked_table {
        let kept_rows = (0..rows)
            .filter(|r| keep.is_valid(*r) && keep.value(*r))
            .count();
        if kept_rows > MAX_TRACKED_CELLS {
            // Checking more against every earlier output would hold the organisation's
            // runs for too long; the run fails (reviewers see it) rather than skip them.
            return Err(DisclosureError::Internal(
                "too many groups to check against earlier outputs",
            ));
        }
        let whole = u32::try_from(table_rows.unwrap_or(0)).unwrap_or(u32::MAX);
        for (r, row_sets) in at.iter_mut().enumerate() {
            if !(keep.is_valid(r) && keep.value(r)) {
                continue;
            }
            // Sources of this row already read, by what they read (the base column and
            // a non-empty minus column) and selection: the same set, so the same entry
            // of the pool (`COUNT(*)` next to `SUM(x)` of a column without NULLs reads
            // one set twice), without reading and hashing it again.
            let mut read: Vec<(SetSource, String, usize)> = Vec::new();
            for (s, source) in stage.sources.iter().enumerate() {
                let selection = selection_of(s);
                let minus = read_minus(&batch, stage.sets_at, *source, r)?;
                let effective = SetSource {
                    base: source.base,
                    minus: source.minus.filter(|_| minus.is_some()),
                };
                if let Some((_, _, index)) = read
                    .iter()
                    .find(|(key, chosen, _)| *key == effective && *chosen == selection)
                {
                    row_sets.push(Some(*index));
                    continue;
                }
                let (set, hash) = read_set(&batch, stage.sets_at, *source, r, whole, minus)?;
                let index = match hash {
                    Some(hash) => pool.add_hashed(set, hash, selection.clone()),
                    None => pool.add(set, selection.clone()),
                };
                read.push((effective, selection, index));
                row_sets.push(Some(index));
            }
        }
    }

    // Values still released in the guard's result: (row, aggregate).
    let value_released =
        |batch: &RecordBatch, r: usize, j: usize| batch.column(stage.keys + j).is_valid(r);
    let reads = |batch: &RecordBatch, r: usize, s: usize| {
        (0..stage.set_of.len()).any(|j| stage.set_of[j] == s && value_released(batch, r, j))
    };
    let mut withheld = vec![vec![false; stage.set_of.len()]; rows];
    let mut any_across = false;
    let mut nestings: Vec<Nesting> = Vec::new();
    let mut around_of: HashMap<usize, Vec<usize>> = HashMap::new();
    if let Some((table, table_rows)) = tracked_table {
        let mut wanted = BTreeSet::new();
        for (r, row_sets) in at.iter().enumerate() {
            for (s, index) in row_sets.iter().enumerate() {
                if let (true, Some(index)) = (reads(&batch, r, s), index) {
                    wanted.insert(*index);
                }
            }
        }
        let wanted: Vec<usize> = wanted.into_iter().collect();
        let checked = pool
            .check(&wanted, priors, table, *table_rows, rules.threshold)
            .await?;
        nestings.extend(checked.nestings);
        around_of.extend(checked.around);
        let close = checked.close;
        for (r, row_sets) in at.iter().enumerate() {
            for (s, index) in row_sets.iter().enumerate() {
                if index.is_some_and(|i| close.contains(&i)) {
                    any_across = true;
                    for (j, set) in stage.set_of.iter().enumerate() {
                        if *set == s {
                            withheld[r][j] = true;
                        }
                    }
                }
            }
        }
    }
    // Tables with totals: complementary cells, so no withheld cell can be recomputed.
    let secondary = cube::secondary_withheld(&batch, stage, keep, &withheld, rules.threshold)?;
    let unit = if rules.contributor_column.is_some() {
        "contributors"
    } else {
        "records"
    };
    // Stage 2 and the column checks; a column that gives something away is withheld
    // and stage 2 runs once more, so HAVING, ORDER BY and LIMIT never see its values.
    let mut second_pass = false;
    let mut column_withheld: BTreeSet<usize> = BTreeSet::new();
    let sources = stage.sources.len();
    let (mut suppressed, mut per_set, mut union_of, leaky) = loop {
        let intermediate = intermediate_batch(&batch, shadowed, &withheld, &secondary)?;

        // Above the guard, over the intermediate result.
        let provider: Arc<dyn TableProvider> = Arc::new(
            MemTable::try_new(intermediate.schema(), vec![vec![intermediate.clone()]]).map_err(
                |_| DisclosureError::Internal("the intermediate table could not be built"),
            )?,
        );
        let bridge = bridge_plan(Arc::clone(&provider), &stage.guard, stage.sets_at)?;
        let upper = rewrite::above(plan, analysis, rules, shadowed, bridge)?;
        let second = safe::try_casts(sandbox.optimize_with(&upper, &[Arc::clone(&provider)])?)?;
        let out = sandbox
            .run_plan_with(second, &[provider], sandbox.limits().clone())
            .await?;
        let suppressed = suppress::suppress(out, analysis, shadowed, rules)?;

        let Some((table, table_rows)) = tracked_table else {
            return Ok(Staged {
                suppressed,
                released: None,
            });
        };
        // Per record set, the released cells holding a value over it.
        let released_cells: Vec<usize> = suppressed.cells.iter().flatten().copied().collect();
        let mut per_set: Vec<Vec<usize>> = vec![Vec::new(); sources];
        for &cell in &released_cells {
            for (s, cells) in per_set.iter_mut().enumerate() {
                let held = at
                    .get(cell)
                    .and_then(|row| row.get(s))
                    .is_some_and(Option::is_some);
                if held && reads(&intermediate, cell, s) {
                    cells.push(cell);
                }
            }
        }
        // Column totals: the union of a set's released cells (each distinct union once).
        // Sources whose released cells hold the same sets share the union (computed
        // once, in the same order, so the same set in the same form).
        let mut union_of: Vec<Option<usize>> = vec![None; sources];
        let mut unions_made: Vec<(Vec<usize>, usize)> = Vec::new();
        for (s, cells) in per_set.iter().enumerate() {
            if cells.len() < 2 {
                continue;
            }
            let members: Vec<usize> = cells
                .iter()
                .filter_map(|&cell| at.get(cell).and_then(|row| row.get(s)).copied().flatten())
                .collect();
            let made = unions_made
                .iter()
                .find(|(made, _)| *made == members)
                .map(|(_, union)| *union);
            let union = match made {
                Some(union) => pool.set(union).clone(),
                None => RecordSet::union_of(members.iter().map(|&index| pool.set(index))),
            };
            let index = pool.add(union, selection_of(s));
            if made.is_none() {
                unions_made.push((members, index));
            }
            union_of[s] = Some(index);
        }
        let unions: Vec<usize> = union_of
            .iter()
            .flatten()
            .copied()
            .collect::<BTreeSet<usize>>()
            .into_iter()
            .collect();
        let checked = pool
            .check(&unions, priors, table, *table_rows, rules.threshold)
            .await?;
        nestings.extend(checked.nestings);
        let close_unions = checked.close;
        // Columns whose total is too close to an earlier value, or whose released cells and
        // an earlier value give away withheld cells or a few uncovered records.
        let mut leaky: BTreeSet<usize> = BTreeSet::new();
        // Answers for columns already checked, by everything the check reads (released
        // and withheld sets, the earlier sets around, the selection): a second column
        // over the same sets gets the same answer.
        type ColumnKey = (Vec<usize>, Vec<usize>, BTreeSet<usize>, String);
        let mut answered: Vec<(ColumnKey, bool)> = Vec::new();
        for s in 0..sources {
            if union_of[s].is_some_and(|union| close_unions.contains(&union)) {
                leaky.insert(s);
                continue;
            }
            let held = |r: usize| at.get(r).and_then(|row| row.get(s)).copied().flatten();
            let released_at: Vec<usize> = per_set[s].iter().filter_map(|c| held(*c)).collect();
            let withheld_at: Vec<usize> = (0..rows)
                .filter(|r| !reads(&intermediate, *r, s))
                .filter_map(held)
                .collect();
            let around: BTreeSet<usize> = released_at
                .iter()
                .filter_map(|i| around_of.get(i))
                .flatten()
                .copied()
                .collect();
            let key: ColumnKey = (released_at, withheld_at, around, selection_of(s));
            let known = answered
                .iter()
                .find(|(done, _)| *done == key)
                .map(|(_, answer)| *answer);
            let gives_away = match known {
                Some(answer) => answer,
                None => {
                    let (released_at, withheld_at, around, selection) = &key;
                    let released: Vec<&RecordSet> =
                        released_at.iter().map(|i| pool.set(*i)).collect();
                    let withheld_cells: Vec<&RecordSet> =
                        withheld_at.iter().map(|i| pool.set(*i)).collect();
                    // The column total computed above, or the one released set.
                    let union = match released.as_slice() {
                        [one] => Some(*one),
                        _ => union_of[s].map(|union| pool.set(union)),
                    };
                    let answer = column_gives_away(
                        priors,
                        table,
                        rules.threshold,
                        &released,
                        &withheld_cells,
                        around,
                        selection,
                        union,
                    )
                    .await?;
                    answered.push((key, answer));
                    answer
                }
            };
            if gives_away {
                leaky.insert(s);
            }
        }
        if leaky.is_empty() || second_pass {
            break (suppressed, per_set, union_of, leaky);
        }
        for row in withheld.iter_mut() {
            for (j, set) in stage.set_of.iter().enumerate() {
                if leaky.contains(set) {
                    row[j] = true;
                }
            }
        }
        column_withheld.extend(leaky.iter().copied());
        any_across = true;
        second_pass = true;
    };
    // Say which values went with their column.
    if !column_withheld.is_empty() {
        let names: BTreeSet<String> = analysis
            .lineage
            .iter()
            .enumerate()
            .filter(|(_, from)| {
                from.iter().any(|j| {
                    stage
                        .set_of
                        .get(*j)
                        .is_some_and(|s| column_withheld.contains(s))
                })
            })
            .filter_map(|(c, _)| {
                suppressed
                    .output
                    .schema
                    .fields()
                    .get(c)
                    .map(|f| f.name().clone())
            })
            .collect();
        for hit in &mut suppressed.report.hits {
            if hit.rule == Rule::Differencing
                && hit.detail.contains("already received")
                && hit.column.as_ref().is_some_and(|c| names.contains(c))
            {
                hit.detail = hit.detail.replacen(
                    "); withheld",
                    "); withheld with the rest of its column (its column total)",
                    1,
                );
            }
        }
    }
    let table = tracked_table
        .map(|(table, _)| table.clone())
        .unwrap_or_default();
    for s in 0..sources {
        if !leaky.contains(&s) {
            continue;
        }
        any_across = true;
        per_set[s].clear();
        union_of[s] = None;
        let aggregates: Vec<usize> = (0..stage.set_of.len())
            .filter(|j| stage.set_of[*j] == s)
            .collect();
        let columns: Vec<usize> = analysis
            .lineage
            .iter()
            .enumerate()
            .filter(|(_, from)| from.iter().any(|j| aggregates.contains(j)))
            .map(|(c, _)| c)
            .collect();
        let name = aggregates
            .first()
            .and_then(|j| shadowed.cells.get(*j))
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let detail = format!(
            "{} (its column total)",
            across_detail(&name, rules.threshold, unit)
        );
        let Suppressed {
            output,
            report,
            engine_rows,
            ..
        } = &mut suppressed;
        withhold_columns(output, report, engine_rows, &columns, &detail)?;
    }
    // What is released: the sets of released values and their column totals, with the
    // nestings among them (a total around its cells, two sets of one cell).
    let mut kept: BTreeSet<usize> = BTreeSet::new();
    for (s, cells) in per_set.iter().enumerate() {
        for &cell in cells {
            if let Some(index) = at.get(cell).and_then(|row| row.get(s)).copied().flatten() {
                kept.insert(index);
                if let Some(union) = union_of[s]
                    && union != index
                {
                    nestings.push(Nesting {
                        outer: pool.id(union).clone(),
                        inner: pool.id(index).clone(),
                    });
                }
            }
        }
        if let Some(union) = union_of[s] {
            kept.insert(union);
        }
    }
    let released_cells: Vec<usize> = suppressed.cells.iter().flatten().copied().collect();
    for &cell in &released_cells {
        let mut in_cell: Vec<usize> = at
            .get(cell)
            .map(|row| {
                (0..sources)
                    .filter(|s| per_set[*s].contains(&cell))
                    .filter_map(|s| row.get(s).copied().flatten())
                    .collect()
            })
            .unwrap_or_default();
        in_cell.sort_unstable();
        in_cell.dedup();
        for &outer in &in_cell {
            for &inner in &in_cell {
                let (o, i) = (pool.set(outer), pool.set(inner));
                if outer != inner && i.len() < o.len() && i.is_subset(o) {
                    nestings.push(Nesting {
                        outer: pool.id(outer).clone(),
                        inner: pool.id(inner).clone(),
                    });
                }
            }
        }
    }
    // In a table with totals, each total lies around the cells it adds up.
    if stage.cube.is_some() {
        for (s, cells) in per_set.iter().enumerate() {
            let members: Vec<usize> = cells
                .iter()
                .filter_map(|c| at.get(*c).and_then(|row| row.get(s)).copied().flatten())
                .collect::<BTreeSet<usize>>()
                .into_iter()
                .collect();
            if members.len() > MAX_CUBE_CELLS {
                continue;
            }
            for &outer in &members {
                for &inner in &members {
                    let (o, i) = (pool.set(outer), pool.set(inner));
                    if outer != inner && i.len() < o.len() && i.is_subset(o) {
                        nestings.push(Nesting {
                            outer: pool.id(outer).clone(),
                            inner: pool.id(inner).clone(),
                        });
                    }
                }
            }
        }
    }
    if !any_across {
        suppressed
            .report
            .passed
            .push("differencing_across_outputs".to_owned());
    }
    let kept_ids: BTreeSet<&SetId> = kept.iter().map(|i| pool.id(*i)).collect();
    nestings.retain(|n| kept_ids.contains(&n.outer) || kept_ids.contains(&n.inner));
    nestings.sort();
    nestings.dedup();
    let sets = kept.iter().map(|i| pool.tracked(*i)).collect();
    Ok(Staged {
        suppressed,
        released: Some(ReleasedSets {
            table,
            sets,
            nestings,
        }),
    })
}

/// Record sets of one run, each distinct `(set, selection)` held once with its identity.
#[derive(Default)]
struct Pool {
    /// The sets.
    sets: Vec<TrackedSet>,
    /// Their identities (hash and selection), computed once.
    ids: Vec<SetId>,
    /// Position of each identity.
    index: HashMap<SetId, usize>,
}

impl Pool {
    /// Adds `set` selected as `selection` (kept canonical); returns its position.
    fn add(&mut self, set: RecordSet, selection: String) -> usize {
        let hash = set.hash();
        self.add_hashed(set, hash, selection)
    }

    /// [`Self::add`] for a set whose hash (`RecordSet::hash`) is known.
    fn add_hashed(&mut self, set: RecordSet, hash: String, selection: String) -> usize {
        let tracked = TrackedSet { set, selection };
        let id = SetId {
            hash,
            selection: tracked.selection.clone(),
        };
        if let Some(at) = self.index.get(&id) {
            return *at;
        }
        self.index.insert(id.clone(), self.sets.len());
        self.ids.push(id);
        self.sets.push(tracked);
        self.sets.len() - 1
    }

    /// The set at `index`.
    fn set(&self, index: usize) -> &RecordSet {
        &self.sets[index].set
    }

    /// The identity at `index`.
    fn id(&self, index: usize) -> &SetId {
        &self.ids[index]
    }

    /// The tracked set at `index`.
    fn tracked(&self, index: usize) -> TrackedSet {
        self.sets[index].clone()
    }

    /// Checks the sets at `indices` against the earlier sets on `table`.
    async fn check(
        &self,
        indices: &[usize],
        priors: &dyn DynPriors,
        table: &str,
        table_rows: Option<u64>,
        threshold: u64,
    ) -> Result<Checked, DisclosureError> {
        let (candidates, ids): (Vec<&TrackedSet>, Vec<SetId>) = indices
            .iter()
            .map(|i| (&self.sets[*i], self.ids[*i].clone()))
            .unzip();
        let verdicts =
            check_against_priors(&candidates, &ids, priors, table, table_rows, threshold).await?;
        let close = indices
            .iter()
            .zip(&verdicts.close)
            .filter(|(_, close)| **close)
            .map(|(index, _)| *index)
            .collect();
        let around = indices.iter().copied().zip(verdicts.around).collect();
        Ok(Checked {
            close,
            around,
            nestings: verdicts.nestings,
        })
    }
}

/// What [`Pool::check`] found, by position in the pool.
struct Checked {
    /// Sets too close to an earlier one.
    close: BTreeSet<usize>,
    /// Per set, the earlier sets (positions in the priors' summaries) around it.
    around: HashMap<usize, Vec<usize>>,
    /// Nestings to record.
    nestings: Vec<Nesting>,
}

/// The first stage's limits: more rows than an output may have (groups the threshold
/// removes, or `LIMIT` drops, are still rows here), and room for the record sets.
fn stage_limits(limits: &SqlLimits) -> SqlLimits {
    SqlLimits {
        max_output_rows: limits.max_output_rows.max(STAGE_ROWS),
        max_output_bytes: limits.max_output_bytes.max(STAGE_BYTES),
        ..limits.clone()
    }
}

/// Record-set column `c` of the first stage's result.
fn set_column(batch: &RecordBatch, sets_at: usize, c: usize) -> Result<&ArrayRef, DisclosureError> {
    if sets_at + c < batch.num_columns() {
        Ok(batch.column(sets_at + c))
    } else {
        Err(DisclosureError::Internal("a record-set column is missing"))
    }
}

/// The rows `source` takes out of its base in row `r`, when there are any.
fn read_minus(
    batch: &RecordBatch,
    sets_at: usize,
    source: SetSource,
    r: usize,
) -> Result<Option<RecordSet>, DisclosureError> {
    let Some(c) = source.minus else {
        return Ok(None);
    };
    Ok(set_at(set_column(batch, sets_at, c)?.as_ref(), r)?.filter(|minus| !minus.is_empty()))
}

/// The record set `source` of row `r`, given its rows to take out (`read_minus`), and
/// its hash when it is a stored cell as it is (the hash of those bytes is the set's:
/// `set_and_bytes_at`), so that it need not be written again to be hashed.
fn read_set(
    batch: &RecordBatch,
    sets_at: usize,
    source: SetSource,
    r: usize,
    whole: u32,
    minus: Option<RecordSet>,
) -> Result<(RecordSet, Option<String>), DisclosureError> {
    let (mut set, mut hash) = match source.base {
        Some(c) => match set_and_bytes_at(set_column(batch, sets_at, c)?.as_ref(), r)? {
            Some((set, bytes)) => (set, Some(hash_bytes(bytes))),
            None => (RecordSet::default(), None),
        },
        None => (RecordSet::all(whole), None),
    };
    if let Some(minus) = minus {
        set.difference_with(&minus);
        set.optimize();
        hash = None;
    }
    Ok((set, hash))
}

/// The guard's result without record sets, with withheld values set to NULL, their
/// across flags cleared and the cell column numbered; columns renamed `c0, c1, …`.
fn intermediate_batch(
    batch: &RecordBatch,
    shadowed: &Shadowed,
    withheld: &[Vec<bool>],
    secondary: &[Vec<bool>],
) -> Result<RecordBatch, DisclosureError> {
    let stage = &shadowed.stage;
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(stage.sets_at);
    for c in 0..stage.sets_at {
        let column = Arc::clone(batch.column(c));
        let value_of = c
            .checked_sub(stage.keys)
            .filter(|j| *j < stage.set_of.len());
        let across_of = shadowed
            .cells
            .iter()
            .position(|cell| stage.flags_at + cell.across_flag == c);
        let secondary_of = shadowed
            .cells
            .iter()
            .position(|cell| stage.flags_at + cell.secondary_flag == c);
        let flag = |matrix: &[Vec<bool>], j: usize| -> ArrayRef {
            Arc::new(
                matrix
                    .iter()
                    .map(|row| Some(!row.get(j).copied().unwrap_or(false)))
                    .collect::<BooleanArray>(),
            )
        };
        let array: ArrayRef = if c == stage.cell_at {
            Arc::new(UInt64Array::from_iter_values(0..rows as u64))
        } else if let Some(j) = value_of {
            let mask: BooleanArray = withheld
                .iter()
                .zip(secondary)
                .map(|(a, b)| Some(a[j] || b[j]))
                .collect();
            if mask.true_count() > 0 {
                nullif(column.as_ref(), &mask).map_err(arrow_error)?
            } else {
                column
            }
        } else if let Some(j) = across_of {
            flag(withheld, j)
        } else if let Some(j) = secondary_of {
            flag(secondary, j)
        } else {
            column
        };
        columns.push(array);
    }
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow_error)
}

/// A scan of the intermediate table that puts back the guard's column names and
/// qualifiers, so the operators above the aggregate resolve their columns unchanged.
fn bridge_plan(
    provider: Arc<dyn TableProvider>,
    guard: &LogicalPlan,
    width: usize,
) -> Result<LogicalPlan, DisclosureError> {
    let plan_error = |_| DisclosureError::Internal("the second stage could not be planned");
    let scan = LogicalPlanBuilder::scan(STAGE_TABLE, provider_as_source(provider), None)
        .and_then(LogicalPlanBuilder::build)
        .map_err(plan_error)?;
    let schema = guard.schema();
    let exprs: Vec<Expr> = (0..width)
        .map(|i| {
            let (qualifier, field) = schema.qualified_field(i);
            Expr::Column(Column::new(Some(STAGE_TABLE), format!("c{i}")))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Projection::try_new(exprs, Arc::new(scan))
        .map(LogicalPlan::Projection)
        .map_err(plan_error)
}
