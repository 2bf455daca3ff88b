//! Reading the flag columns of a shadowed result: remove and null cells, build the report.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::{filter_record_batch, nullif};
use datafusion::arrow::datatypes::{Field, Schema, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;

use super::analyse::Analysis;
use super::rewrite::Shadowed;
use super::{CheckReport, DisclosureError, DisclosureRules, Rule, RuleHit};
use crate::sql::{SqlOutput, batch_bytes};

/// Arrow errors here concern our own arrays (shapes, types), never data values.
fn arrow_error(_: datafusion::arrow::error::ArrowError) -> DisclosureError {
    DisclosureError::Internal("the checked result could not be assembled")
}

/// The checked output, its report, and per released row the first stage's row it
/// came from (`None` in a one-pass run).
pub(crate) struct Suppressed {
    /// The output with flags stripped, rows removed and values nulled.
    pub output: SqlOutput,
    /// What the checks did.
    pub report: CheckReport,
    /// Per released row, its cell (row of the first stage's result).
    pub cells: Vec<Option<usize>>,
    /// Per released row, its row in the engine's result (as [`RuleHit::row`]).
    pub engine_rows: Vec<usize>,
}

/// Applies the flags of `shadowed`'s result `out` and strips them.
pub(crate) fn suppress(
    out: SqlOutput,
    analysis: &Analysis<'_>,
    shadowed: &Shadowed,
    rules: &DisclosureRules,
) -> Result<Suppressed, DisclosureError> {
    let width = analysis.shape.output_columns.len();
    if out.schema.fields().len() != width + shadowed.flags.len() + 1 {
        return Err(DisclosureError::Internal(
            "the shadowed result has an unexpected width",
        ));
    }
    let cell_column = width + shadowed.flags.len();
    let mut cells = Vec::new();
    let mut engine_rows = Vec::new();
    // Output columns computed from each aggregate.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); shadowed.cells.len()];
    for (column, from) in analysis.lineage.iter().enumerate() {
        for j in from {
            if let Some(d) = dependents.get_mut(*j) {
                d.push(column);
            }
        }
    }
    let rounded_columns: Vec<bool> = analysis
        .lineage
        .iter()
        .map(|from| {
            from.iter()
                .any(|j| shadowed.cells.get(*j).is_some_and(|c| c.rounded))
        })
        .collect();
    let column_names: Vec<String> = out
        .schema
        .fields()
        .iter()
        .take(width)
        .map(|f| f.name().clone())
        .collect();
    // Columns that can be nulled become nullable.
    let fields: Vec<Field> = out
        .schema
        .fields()
        .iter()
        .take(width)
        .enumerate()
        .map(|(c, f)| {
            let nullable =
                f.is_nullable() || analysis.lineage.get(c).is_some_and(|from| !from.is_empty());
            f.as_ref().clone().with_nullable(nullable)
        })
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        out.schema.metadata().clone(),
    ));

    let unit = if rules.contributor_column.is_some() {
        "contributors"
    } else {
        "records"
    };
    let threshold = rules.threshold;
    let mut report = CheckReport::new(rules.clone());
    let mut batches = Vec::with_capacity(out.batches.len());
    let mut row_base = 0usize;
    let mut released = 0usize;

    for batch in &out.batches {
        let rows = batch.num_rows();
        let flags: Vec<&BooleanArray> = (0..shadowed.flags.len())
            .map(|i| flag_array(batch, width + i))
            .collect::<Result<_, _>>()?;
        let flag = |index: usize| {
            flags
                .get(index)
                .copied()
                .ok_or(DisclosureError::Internal("a flag column is missing"))
        };
        let keep = flag(0)?;
        let cell_of = batch
            .column(cell_column)
            .as_primitive_opt::<UInt64Type>()
            .ok_or(DisclosureError::Internal("the cell column is not UInt64"))?;
        let mut keep_mask = Vec::with_capacity(rows);
        let mut null_masks = vec![vec![false; rows]; width];
        for r in 0..rows {
            let row = row_base + r;
            let kept = is_true(keep, r);
            keep_mask.push(kept);
            if !kept {
                report.cells_suppressed += 1;
                report.hits.push(RuleHit {
                    row,
                    released_row: None,
                    column: None,
                    rule: Rule::Threshold,
                    detail: format!(
                        "the group is backed by fewer than {threshold} {unit}; row removed"
                    ),
                });
                continue;
            }
            for (j, cell) in shadowed.cells.iter().enumerate() {
                let threshold_ok = is_true(flag(cell.threshold_flag)?, r);
                let dominance_ok = match cell.dominance_flag {
                    Some(index) => is_true(flag(index)?, r),
                    None => true,
                };
                let differencing_ok = match cell.differencing_flag {
                    Some(index) => is_true(flag(index)?, r),
                    None => true,
                };
                let across_ok = is_true(flag(cell.across_flag)?, r);
                let secondary_ok = is_true(flag(cell.secondary_flag)?, r);
                let mut failed = Vec::new();
                if !threshold_ok {
                    failed.push((
                        Rule::Threshold,
                        format!("{} is backed by fewer than {threshold} {unit}", cell.name),
                    ));
                }
                if !dominance_ok {
                    failed.push((
                        Rule::Dominance,
                        format!(
                            "in {} the {} largest {unit} exceed {}% of the cell total",
                            cell.name, rules.dominance_n, rules.dominance_p_percent
                        ),
                    ));
                }
                if !differencing_ok {
                    failed.push((
                        Rule::Differencing,
                        format!(
                            "{} reads records too close to another value's in this cell, or to \
                             the table's public row count (fewer than {threshold} {unit} apart, or \
                             the same records selected differently); withheld",
                            cell.name
                        ),
                    ));
                }
                if !across_ok {
                    failed.push((
                        Rule::Differencing,
                        across_detail(&cell.name, threshold, unit),
                    ));
                }
                if !secondary_ok {
                    failed.push((
                        Rule::Secondary,
                        format!(
                            "{} withheld so that a withheld cell of the table cannot be \
                             recomputed from its totals (complementary suppression)",
                            cell.name
                        ),
                    ));
                }
                for (rule, detail) in failed {
                    let targets = dependents.get(j).map(Vec::as_slice).unwrap_or_default();
                    if targets.is_empty() {
                        report.hits.push(RuleHit {
                            row,
                            released_row: Some(released),
                            column: None,
                            rule,
                            detail: format!(
                                "{detail} (not an output column; seen as NULL by HAVING/ORDER BY)"
                            ),
                        });
                    }
                    for &c in targets {
                        report.hits.push(RuleHit {
                            row,
                            released_row: Some(released),
                            column: column_names.get(c).cloned(),
                            rule,
                            detail: format!("{detail}; value set to NULL"),
                        });
                        if let Some(mask) = null_masks.get_mut(c) {
                            mask[r] = true;
                        }
                    }
                }
            }
            for c in 0..width {
                let computed = analysis.lineage.get(c).is_some_and(|from| !from.is_empty());
                let nulled = null_masks.get(c).is_some_and(|m| m[r]);
                if computed && !nulled && batch.column(c).is_valid(r) {
                    report.values_released += 1;
                }
            }
            if let Some(base) = rules.rounding_base.filter(|b| *b > 1) {
                for c in 0..width {
                    let nulled = null_masks.get(c).is_some_and(|m| m[r]);
                    if rounded_columns.get(c).copied().unwrap_or(false)
                        && !nulled
                        && batch.column(c).is_valid(r)
                    {
                        report.hits.push(RuleHit {
                            row,
                            released_row: Some(released),
                            column: column_names.get(c).cloned(),
                            rule: Rule::Rounded,
                            detail: format!("computed from counts and sums rounded to base {base}"),
                        });
                    }
                }
            }
            cells.push(
                cell_of
                    .is_valid(r)
                    .then(|| usize::try_from(cell_of.value(r)).unwrap_or(usize::MAX)),
            );
            engine_rows.push(row);
            released += 1;
        }
        row_base += rows;

        let mut columns: Vec<ArrayRef> = Vec::with_capacity(width);
        for (c, mask) in null_masks.into_iter().enumerate() {
            let column = batch.column(c);
            if mask.iter().any(|m| *m) {
                report.values_suppressed += mask
                    .iter()
                    .zip(keep_mask.iter())
                    .filter(|(m, k)| **m && **k)
                    .count();
                columns
                    .push(nullif(column.as_ref(), &BooleanArray::from(mask)).map_err(arrow_error)?);
            } else {
                columns.push(Arc::clone(column));
            }
        }
        let stripped = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(arrow_error)?;
        let filtered =
            filter_record_batch(&stripped, &BooleanArray::from(keep_mask)).map_err(arrow_error)?;
        if filtered.num_rows() > 0 {
            batches.push(filtered);
        }
    }
    report.cells_total = row_base;
    report.finish(&analysis.shape);

    let bytes = batches.iter().map(batch_bytes).sum();
    Ok(Suppressed {
        output: SqlOutput {
            schema,
            batches,
            rows: released,
            bytes,
        },
        report,
        cells,
        engine_rows,
    })
}

/// The report's words for a value too close to one released earlier.
pub(crate) fn across_detail(name: &str, threshold: u64, unit: &str) -> String {
    format!(
        "{name} reads records too close to values this organisation already received or has \
         in review on this dataset version (inside or around one of them with fewer than \
         {threshold} {unit} between, or the same records as one, as a difference of two or as \
         the rest of the table, selected differently); withheld"
    )
}

/// Sets the output `columns` to NULL in every row (a column total too close to an
/// earlier value), with one hit per released value withheld.
pub(crate) fn withhold_columns(
    output: &mut SqlOutput,
    report: &mut CheckReport,
    engine_rows: &[usize],
    columns: &[usize],
    detail: &str,
) -> Result<(), DisclosureError> {
    let mut row_base = 0usize;
    let mut batches = Vec::with_capacity(output.batches.len());
    for batch in &output.batches {
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        for &c in columns {
            let Some(column) = arrays.get(c) else {
                return Err(DisclosureError::Internal("a withheld column is missing"));
            };
            for r in 0..batch.num_rows() {
                if column.is_valid(r) {
                    report.values_released = report.values_released.saturating_sub(1);
                    report.values_suppressed += 1;
                    report.hits.push(RuleHit {
                        row: engine_rows
                            .get(row_base + r)
                            .copied()
                            .unwrap_or(row_base + r),
                        released_row: Some(row_base + r),
                        column: output.schema.fields().get(c).map(|f| f.name().clone()),
                        rule: Rule::Differencing,
                        detail: format!("{detail}; value set to NULL"),
                    });
                }
            }
            arrays[c] = datafusion::arrow::array::new_null_array(column.data_type(), column.len());
        }
        row_base += batch.num_rows();
        batches
            .push(RecordBatch::try_new(Arc::clone(&output.schema), arrays).map_err(arrow_error)?);
    }
    output.batches = batches;
    output.bytes = output.batches.iter().map(batch_bytes).sum();
    report.passed.retain(|p| p != "differencing_across_outputs");
    Ok(())
}

/// Column `index` of `batch` as a boolean flag column.
fn flag_array(batch: &RecordBatch, index: usize) -> Result<&BooleanArray, DisclosureError> {
    batch
        .column(index)
        .as_boolean_opt()
        .ok_or(DisclosureError::Internal("a flag column is not boolean"))
}

/// Whether the flag at `row` is true (NULL counts as false).
fn is_true(flags: &BooleanArray, row: usize) -> bool {
    flags.is_valid(row) && flags.value(row)
}
