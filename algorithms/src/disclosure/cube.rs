//! Complementary suppression of a grouping set's result (`ROLLUP`, `CUBE`, `GROUPING
//! SETS`): the first stage's rows become the cells of a table with totals, one table per
//! aggregate, and `secondary.rs` chooses the cells to withhold so that no withheld or
//! removed cell can be recomputed from the released cells and totals.
//!
//! * **Cells.** A row's key per dimension is its level, or the total when the grouping
//!   id says the dimension is aggregated. Levels are the distinct values seen in the
//!   result (NULL is a level of its own, told apart from a total by the grouping id).
//! * **Primary cells** of an aggregate: removed groups (below the threshold) and values
//!   already withheld (threshold, dominance, differencing, earlier outputs). A cell's
//!   weight is the records *its value* reads (a `FILTER` can leave a large group with
//!   one record). A value over no record is as withheld as one over a few: the line
//!   rule below treats the withheld cells of a line as one cell, so `SUM(x) FILTER
//!   (WHERE id = 42 OR region IN ('north', 'south'))` by `ROLLUP(region)` cannot give
//!   person 42 away as the total minus two regions (the other regions hold nobody and
//!   the attacker knows it), and 0 and 1 records look alike.
//! * **The public row count.** When the query reads the whole table and its result has
//!   no grand total, the catalog's row count is one anyway: it is added as a released
//!   cell. If the method would withhold it (it cannot), the aggregate is withheld whole.
//! * **Sums of primaries.** A line (cells sharing all coordinates but one, with its
//!   released total) gives away the sum of its withheld cells; when that sum covers
//!   fewer than `threshold` records (none included), the line's smallest released cell
//!   becomes primary too, and the method runs again.
//! * **Failure is withholding.** A table too large for the exact check, or a result
//!   the check still finds recomputable, withholds the aggregate whole.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::common::ScalarValue;

use super::DisclosureError;
use super::rewrite::{CubeLayout, Stage};
use super::secondary::{CubeCell, complementary_suppression, recomputable};

/// Rounds of "sums of primaries" repairs before giving up (withholding everything).
const MAX_ROUNDS: usize = 64;

/// Arrow errors here concern our own arrays, never data values.
fn arrow_error(_: datafusion::arrow::error::ArrowError) -> DisclosureError {
    DisclosureError::Internal("the table with totals could not be read")
}

/// The cells of the first stage's result, without primary flags.
pub(crate) struct Table {
    /// Dimensions.
    dims: usize,
    /// One cell per result row, then the public total if added (records: the group's).
    cells: Vec<CubeCell>,
    /// Result rows.
    rows: usize,
}

/// Per row, how many records (contributors) aggregate `j`'s value reads.
fn value_records(
    batch: &RecordBatch,
    layout: &CubeLayout,
    j: usize,
) -> Result<Vec<u64>, DisclosureError> {
    let counts = cast(batch.column(layout.counts_at + j), &DataType::Int64).map_err(arrow_error)?;
    let counts = counts
        .as_primitive_opt::<Int64Type>()
        .ok_or(DisclosureError::Internal(
            "a value's record count is not an integer",
        ))?;
    Ok((0..batch.num_rows())
        .map(|r| {
            if counts.is_valid(r) {
                u64::try_from(counts.value(r)).unwrap_or(0)
            } else {
                0
            }
        })
        .collect())
}

impl Table {
    /// Reads the keys, grouping ids and sizes of `batch`.
    pub(crate) fn read(batch: &RecordBatch, layout: &CubeLayout) -> Result<Self, DisclosureError> {
        let rows = batch.num_rows();
        let dims = layout.dims;
        let gid = cast(batch.column(layout.gid_at), &DataType::UInt64).map_err(arrow_error)?;
        let gid = gid
            .as_primitive_opt::<UInt64Type>()
            .ok_or(DisclosureError::Internal(
                "the grouping id is not an integer",
            ))?;
        let size = cast(batch.column(layout.size_at), &DataType::Int64).map_err(arrow_error)?;
        let size = size
            .as_primitive_opt::<Int64Type>()
            .ok_or(DisclosureError::Internal("a group size is not an integer"))?;
        let mut levels: Vec<HashMap<ScalarValue, u32>> = vec![HashMap::new(); dims];
        let mut cells = Vec::with_capacity(rows + 1);
        for r in 0..rows {
            let id = if gid.is_valid(r) { gid.value(r) } else { 0 };
            let mut key = Vec::with_capacity(dims);
            for (d, seen) in levels.iter_mut().enumerate() {
                let shift = u32::try_from(dims - 1 - d).unwrap_or(u32::MAX);
                if id.checked_shr(shift).unwrap_or(0) & 1 == 1 {
                    key.push(None);
                    continue;
                }
                let value = ScalarValue::try_from_array(batch.column(layout.keys_at + d), r)
                    .map_err(|_| DisclosureError::Internal("a group key could not be read"))?;
                let next = u32::try_from(seen.len()).unwrap_or(u32::MAX);
                key.push(Some(*seen.entry(value).or_insert(next)));
            }
            let records = if size.is_valid(r) {
                u64::try_from(size.value(r)).unwrap_or(0)
            } else {
                0
            };
            cells.push(CubeCell {
                key,
                records,
                primary: false,
            });
        }
        let has_grand_total = cells.iter().any(|c| c.key.iter().all(Option::is_none));
        if let (Some(total), false) = (layout.public_total, has_grand_total) {
            cells.push(CubeCell {
                key: vec![None; dims],
                records: total,
                primary: false,
            });
        }
        Ok(Self { dims, cells, rows })
    }

    /// For one aggregate: which rows to withhold beyond the primary ones (`primary[r]`:
    /// row `r` removed, or its value already withheld), given the records each value
    /// reads (`records[r]`; a value over no record is a known zero, not a secret).
    pub(crate) fn complements(
        &self,
        primary: &[bool],
        records: &[u64],
        threshold: u64,
    ) -> Result<Vec<bool>, DisclosureError> {
        let mut cells = self.cells.clone();
        for (r, (cell, p)) in cells.iter_mut().zip(primary).enumerate() {
            if let Some(n) = records.get(r) {
                cell.records = *n;
            }
            cell.primary = *p;
        }
        let everything = |primary: &[bool]| primary.iter().map(|p| !p).collect::<Vec<bool>>();
        let interior = cells.iter().any(|c| c.key.iter().all(Option::is_some));
        for _ in 0..MAX_ROUNDS {
            let Ok(withheld) = complementary_suppression(self.dims, &cells, interior) else {
                return Ok(everything(primary));
            };
            if let Some(cell) = self.small_line_sum(&cells, &withheld, threshold) {
                cells[cell].primary = true;
                continue;
            }
            let exposed = recomputable(self.dims, &cells, &withheld, interior);
            let public_total_withheld =
                self.cells.len() > self.rows && withheld.last().copied().unwrap_or(false);
            if !matches!(exposed, Ok(ref e) if e.is_empty()) || public_total_withheld {
                return Ok(everything(primary));
            }
            return Ok((0..self.rows)
                .map(|r| withheld[r] && !primary.get(r).copied().unwrap_or(true))
                .collect());
        }
        Ok(everything(primary))
    }

    /// A released cell to make primary because some line's withheld cells add up to
    /// fewer than `threshold` records (the line's total minus its released cells gives
    /// their sum): the smallest released cell of the first such line, or its total.
    fn small_line_sum(
        &self,
        cells: &[CubeCell],
        withheld: &[bool],
        threshold: u64,
    ) -> Option<usize> {
        let index: HashMap<&[Option<u32>], usize> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key.as_slice(), i))
            .collect();
        for d in 0..self.dims {
            // Lines along dimension `d`, by their total's key.
            let mut lines: HashMap<Vec<Option<u32>>, Vec<usize>> = HashMap::new();
            for (i, cell) in cells.iter().enumerate() {
                if cell.key[d].is_some() {
                    let mut total = cell.key.clone();
                    total[d] = None;
                    lines.entry(total).or_default().push(i);
                }
            }
            for (total, members) in &lines {
                let Some(&t) = index.get(total.as_slice()) else {
                    continue;
                };
                if withheld[t] {
                    continue;
                }
                let hidden: u64 = members
                    .iter()
                    .filter(|m| withheld[**m])
                    .map(|m| cells[*m].records)
                    .sum();
                // Zero counts too: withheld cells over no record must look like
                // withheld cells over one (else the pattern answers which it is).
                let any_withheld = members.iter().any(|m| withheld[*m]);
                if any_withheld && hidden < threshold {
                    // The smallest released member, or the total if none is left.
                    return Some(
                        members
                            .iter()
                            .filter(|m| !withheld[**m])
                            .min_by_key(|m| (cells[**m].records, **m))
                            .copied()
                            .unwrap_or(t),
                    );
                }
            }
        }
        None
    }
}

/// For each row of the first stage and each aggregate, whether complementary
/// suppression withholds it (`withheld`: values already withheld by earlier checks).
pub(crate) fn secondary_withheld(
    batch: &RecordBatch,
    stage: &Stage,
    keep: &BooleanArray,
    withheld: &[Vec<bool>],
    threshold: u64,
) -> Result<Vec<Vec<bool>>, DisclosureError> {
    let rows = batch.num_rows();
    let aggregates = stage.set_of.len();
    let mut out = vec![vec![false; aggregates]; rows];
    let Some(layout) = &stage.cube else {
        return Ok(out);
    };
    let table = Table::read(batch, layout)?;
    for j in 0..aggregates {
        let records = value_records(batch, layout, j)?;
        let value = batch.column(stage.keys + j);
        let mut primary: Vec<bool> = (0..rows)
            .map(|r| {
                !(keep.is_valid(r) && keep.value(r) && value.is_valid(r))
                    || withheld
                        .get(r)
                        .and_then(|w| w.get(j))
                        .copied()
                        .unwrap_or(true)
            })
            .collect();
        // The public total, if added, is released.
        primary.resize(table.cells.len(), false);
        let complements = table.complements(&primary, &records, threshold)?;
        for (r, w) in complements.into_iter().enumerate() {
            if let Some(row) = out.get_mut(r) {
                row[j] = w;
            }
        }
    }
    Ok(out)
}
