//! Secondary (complementary) cell suppression for tables with totals: the results of
//! `ROLLUP`, `CUBE`, `GROUPING SETS` and written margins.
//!
//! A total next to its cells gives a withheld cell away by subtraction. After primary
//! suppression (threshold, dominance), [`complementary_suppression`] withholds further
//! cells so that no withheld cell can be recomputed exactly from the released ones, and
//! [`recomputable`] checks any pattern of withheld cells.
//!
//! # The table
//!
//! A cell is identified, per dimension, by a level or by the total over that dimension
//! (`None`). The *interior* is the cartesian product of the levels seen in the output
//! (a dimension that is never grouped counts as one level). Every value the checks
//! release (counts, sums) is additive: a cell is the sum of the interior cells under
//! it, whether or not those are in the output. So each released cell is a linear
//! equation over the interior. Known zeros are equations too: `GROUP BY` emits every
//! non-empty group, so a combination of a grouping set that is in the query but absent
//! from the output is zero. A grouping set counts as in the query when some cell has its
//! pattern of levels and totals, and the full set (every dimension grouped) also when
//! `interior_released` says so. Absent combinations of a grouping set not in the query
//! are unknown. Taking absent combinations as zeros only adds equations, so if the
//! output was filtered (`HAVING`) the error is toward more suppression, never less.
//!
//! # What "safe" means here
//!
//! A withheld cell is *safe* when the released cells and known zeros do not determine
//! its value through these equations: there is a change of the interior that leaves
//! every released cell and every known zero as it is and changes the withheld cell, so
//! the released table is consistent with infinitely many values of it. A withheld cell
//! is claimed safe only with such a change in hand, as an exact integer vector checked
//! against every equation (see *Exactness*).
//!
//! **Limits.** This is protection against exact recomputation only:
//!
//! * **Intervals.** Non-negativity and integrality (and public bounds such as the row
//!   count) still confine a withheld value to an interval, which can be narrow: a primary
//!   cell whose only complement is a small cell lies between 0 and their (known) sum, and
//!   preferring small complements (least information lost) makes such intervals
//!   narrower. No protection interval (τ-ARGUS's protection levels, one linear program
//!   per cell) is guaranteed. For counts the threshold rule bounds what an interval says:
//!   a primary count is below `threshold` anyway, and the interval only narrows where
//!   below (which is still a disclosure when it leaves one or two values). For sums
//!   withheld by dominance an interval can come close to the value. Grant DP where this
//!   matters.
//! * **Combinations of withheld cells.** Each withheld cell is undetermined, but a
//!   combination of several can be determined: the sum of the withheld cells of a line is
//!   its total minus the released ones. When every withheld cell of a line is primary,
//!   that sum covers their records only, which can be fewer than `threshold`; the caller
//!   must treat such a union as a cell of its own (this module has no threshold).
//!
//! # Method
//!
//! 1. **Lines** (in the spirit of τ-ARGUS's hypercube method, GHMITER, which looks for
//!    whole 2^k hypercubes of withheld cells; here one complement at a time). A *line*
//!    is the cells sharing every coordinate but one, with their total, when both the
//!    line's grouping sets are in the query (else there is no equation along it). A line
//!    with exactly one withheld cell gives it away, so the cheapest released member is
//!    withheld too: first a cell with the fewest totals in its key (an interior cell
//!    rather than a total), then one whose other lines already hold a withheld cell (it
//!    opens no new line), then the fewest records. Repeated to a fixed point.
//! 2. **Exact check.** The unknowns are the interior cells not fixed by a released
//!    interior cell or a known zero; each released non-interior cell and each absent
//!    combination of a grouping set is an equation over them. A withheld cell is
//!    recomputable iff its indicator vector lies in the span of the equations. While one
//!    is, the representation found (a combination of equations, which fixes the
//!    coefficient of each released interior cell too) names the released cells it uses;
//!    the cheapest of them (same order as above) is withheld, the lines are closed again
//!    and the check reruns. A withheld cell whose representation uses no released cell
//!    follows from known zeros alone; no suppression can hide it and it is left (it is
//!    still reported by [`recomputable`]). Each round withholds one more cell or gives up
//!    on one, so there are at most twice as many rounds as cells; a fully withheld table
//!    is trivially safe.
//!
//! # Exactness
//!
//! Elimination runs modulo the prime 2^61 − 1, in reduced row echelon form. Modular
//! arithmetic is exact for membership in the span *unless* the prime divides a minor of
//! the system, and then it can err both ways: a vector can look dependent (extra
//! suppression, harmless) or, when the equations themselves lose rank modulo the prime,
//! independent although it is determined over the rationals (a false "safe"). Fraction
//! free elimination would avoid this but its numbers grow with the rank and overflow any
//! fixed width on tables of a few hundred unknowns. So the modular result only proposes:
//! for a cell that looks undetermined, a kernel vector (free column of the echelon form)
//! that changes it is lifted to the rationals by rational reconstruction, scaled to
//! integers, and checked exactly (checked `i128`) against every equation. Only a vector
//! that passes is a certificate of safety. A failure of this step (not expected on
//! marginal tables, whose kernel vectors have small entries) counts as recomputable and
//! costs suppression, never safety. (A second prime, with "recomputable modulo either",
//! would make a false "safe" less likely but not impossible; the certificate excludes it.)
//!
//! # Cost and limits
//!
//! With `m` cells, `d` dimensions, `u` unknowns and `r` ≤ `u` the rank: closing the lines
//! is O(m·d·log m); one exact check enumerates the cells' interior cells (at most
//! 8,388,608 incidences in all, else [`SecondaryError::TooLarge`]), eliminates in
//! O(q·r·(u + r)) time and O(r·(u + r)) memory for `q` equations, and tests each withheld
//! cell in O(u·k) for its `k` unknowns; at most 2·m checks run. The interior may have at
//! most 262,144 cells and the exact check at most 4,096 unknowns
//! ([`SecondaryError::TooManyUnknowns`]); beyond that the caller withholds the table.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Largest interior (cartesian product of the observed levels) the exact check models.
const MAX_INTERIOR: usize = 1 << 18;
/// Largest number of cell–interior incidences enumerated to build the equations.
const MAX_WORK: usize = 1 << 23;
/// Largest number of unknowns of the exact check (bounds its time and memory).
const MAX_UNKNOWNS: usize = 4096;
/// The prime of the modular elimination: 2^61 − 1, so a product of residues fits in u128.
const P: u64 = (1 << 61) - 1;
/// Bound on numerator and denominator in rational reconstruction (2·B² < P).
const RATIONAL_BOUND: i128 = (1 << 30) - 1;
/// Largest common denominator of a lifted kernel vector, so exact sums stay in i128.
const MAX_SCALE: i128 = 1 << 62;

/// One cell of a table with totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CubeCell {
    /// Per dimension: the level, or `None` for the total over that dimension.
    pub key: Vec<Option<u32>>,
    /// Records (or contributors) behind the cell; used to prefer small cells as complements.
    pub records: u64,
    /// Whether primary suppression already withheld it.
    pub primary: bool,
}

/// Why secondary suppression could not run (the caller then withholds the whole table).
/// Messages name cells by index only, never by value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SecondaryError {
    /// A cell's key does not have one entry per dimension.
    #[error("cell {cell} has {found} key entries; the table has {expected} dimensions")]
    KeyLength {
        /// The cell's index.
        cell: usize,
        /// The table's dimensions.
        expected: usize,
        /// The key's length.
        found: usize,
    },
    /// Two cells have the same key (e.g. a NULL level taken for a total).
    #[error("cells {first} and {second} have the same key")]
    DuplicateKey {
        /// The first cell with the key.
        first: usize,
        /// The second cell with the key.
        second: usize,
    },
    /// The withheld flags do not match the cells one to one.
    #[error("{found} withheld flags for {expected} cells")]
    FlagCount {
        /// The number of cells.
        expected: usize,
        /// The number of flags.
        found: usize,
    },
    /// The interior, or the work to enumerate it, is beyond the exact check's limits.
    #[error("the table is too large for the exact check of secondary suppression")]
    TooLarge,
    /// More interior cells would be unknown than the exact check solves for.
    #[error("more than {cap} interior cells would be unknown to the exact check")]
    TooManyUnknowns {
        /// The limit.
        cap: usize,
    },
}

/// The cells to withhold (primary and complementary), one flag per input cell, in input order.
///
/// `interior_released`: the query's grouping sets include the full interior (every
/// dimension grouped), so an interior combination absent from `cells` is a known zero.
/// `cells` must be the whole output, primary cells included.
pub(crate) fn complementary_suppression(
    dims: usize,
    cells: &[CubeCell],
    interior_released: bool,
) -> Result<Vec<bool>, SecondaryError> {
    let table = Table::new(dims, cells, interior_released)?;
    let mut withheld: Vec<bool> = cells.iter().map(|c| c.primary).collect();
    // Cells whose value follows from known zeros alone: no suppression helps them.
    let mut unfixable = vec![false; cells.len()];
    loop {
        table.close_lines(&mut withheld);
        let mut exact = Exact::new(&table, &withheld)?;
        let Some((cell, exposure)) = exact.first_exposed(&withheld, &unfixable) else {
            return Ok(withheld);
        };
        match exact.complement(cell, &exposure, &withheld) {
            Some(extra) => withheld[extra] = true,
            None => unfixable[cell] = true,
        }
    }
}

/// Indices of withheld cells whose value the released cells determine exactly (empty when safe).
///
/// A cell counts as determined unless an exact certificate shows otherwise (module
/// documentation, *Exactness*), so an error of the check can only add cells here.
pub(crate) fn recomputable(
    dims: usize,
    cells: &[CubeCell],
    withheld: &[bool],
    interior_released: bool,
) -> Result<Vec<usize>, SecondaryError> {
    if withheld.len() != cells.len() {
        return Err(SecondaryError::FlagCount {
            expected: cells.len(),
            found: withheld.len(),
        });
    }
    let table = Table::new(dims, cells, interior_released)?;
    let mut exact = Exact::new(&table, withheld)?;
    Ok(withheld
        .iter()
        .enumerate()
        .filter(|&(_, &held)| held)
        .map(|(cell, _)| cell)
        .filter(|&cell| exact.exposure(cell).is_some())
        .collect())
}

/// Positions of interior cells: mixed-radix indices over the levels of each dimension.
struct Grid {
    /// Levels per dimension (at least one).
    sizes: Vec<usize>,
    /// Index step of each dimension.
    strides: Vec<usize>,
    /// Number of interior cells.
    interior: usize,
}

/// One dimension being enumerated: its index step, its size and the current level.
struct Wheel {
    /// Index step.
    stride: usize,
    /// Number of levels.
    size: usize,
    /// Current level.
    at: usize,
}

impl Grid {
    /// The index of the interior cell with the key's levels and level 0 where it has a total.
    fn base(&self, key: &[Option<u32>]) -> usize {
        key.iter()
            .zip(&self.strides)
            .map(|(level, &stride)| level.map_or(0, |l| l as usize * stride))
            .sum()
    }

    /// Number of interior cells under `key`.
    fn support_size(&self, key: &[Option<u32>]) -> usize {
        key.iter()
            .zip(&self.sizes)
            .filter(|(level, _)| level.is_none())
            .map(|(_, &size)| size)
            .product()
    }

    /// Calls `visit` with the index of every interior cell under `key` (level positions).
    fn for_each_interior(&self, key: &[Option<u32>], mut visit: impl FnMut(usize)) {
        let mut wheels: Vec<Wheel> = key
            .iter()
            .zip(self.sizes.iter().zip(&self.strides))
            .filter(|(level, _)| level.is_none())
            .map(|(_, (&size, &stride))| Wheel {
                stride,
                size,
                at: 0,
            })
            .collect();
        let mut index = self.base(key);
        loop {
            visit(index);
            let mut done = true;
            for wheel in &mut wheels {
                wheel.at += 1;
                if wheel.at < wheel.size {
                    index += wheel.stride;
                    done = false;
                    break;
                }
                index -= wheel.stride * (wheel.size - 1);
                wheel.at = 0;
            }
            if done {
                return;
            }
        }
    }

    /// Calls `visit` with every key of `pattern` (`true`: a level, `false`: a total).
    fn for_each_key(&self, pattern: &[bool], mut visit: impl FnMut(&[Option<u32>])) {
        let mut key: Vec<Option<u32>> = pattern
            .iter()
            .map(|&grouped| grouped.then_some(0))
            .collect();
        loop {
            visit(key.as_slice());
            let mut done = true;
            for (level, &size) in key.iter_mut().zip(&self.sizes) {
                if let Some(l) = level {
                    if (*l as usize) + 1 < size {
                        *l += 1;
                        done = false;
                        break;
                    }
                    *l = 0;
                }
            }
            if done {
                return;
            }
        }
    }
}

/// The table as the checks see it: cells over the interior, known zeros and lines.
struct Table {
    /// The interior.
    grid: Grid,
    /// Each cell's key as level positions (indices into the sorted observed levels).
    keys: Vec<Vec<Option<u32>>>,
    /// Each cell's records.
    records: Vec<u64>,
    /// The cell of each interior combination, when it is in the output.
    interior_cell: Vec<Option<usize>>,
    /// Interior combinations known to be zero.
    known_zero: Vec<bool>,
    /// Absent combinations of the other grouping sets in the query: known zeros.
    zero_margins: Vec<Vec<Option<u32>>>,
    /// Lines whose cells add up (members: cell indices), in a fixed order.
    lines: Vec<Vec<usize>>,
    /// The lines each cell is in.
    cell_lines: Vec<Vec<usize>>,
}

impl Table {
    /// Validates and indexes the cells.
    fn new(
        dims: usize,
        cells: &[CubeCell],
        interior_released: bool,
    ) -> Result<Self, SecondaryError> {
        for (cell, c) in cells.iter().enumerate() {
            if c.key.len() != dims {
                return Err(SecondaryError::KeyLength {
                    cell,
                    expected: dims,
                    found: c.key.len(),
                });
            }
        }
        let mut levels: Vec<Vec<u32>> = vec![Vec::new(); dims];
        for c in cells {
            for (seen, level) in levels.iter_mut().zip(&c.key) {
                if let Some(level) = level {
                    seen.push(*level);
                }
            }
        }
        for seen in &mut levels {
            seen.sort_unstable();
            seen.dedup();
        }
        let sizes: Vec<usize> = levels.iter().map(|seen| seen.len().max(1)).collect();
        let mut strides = Vec::with_capacity(dims);
        let mut interior: usize = 1;
        for &size in &sizes {
            strides.push(interior);
            interior = interior
                .checked_mul(size)
                .filter(|&n| n <= MAX_INTERIOR)
                .ok_or(SecondaryError::TooLarge)?;
        }
        let grid = Grid {
            sizes,
            strides,
            interior,
        };
        let keys: Vec<Vec<Option<u32>>> = cells
            .iter()
            .map(|c| {
                c.key
                    .iter()
                    .zip(&levels)
                    .map(|(level, seen)| level.map(|l| position(seen, l)))
                    .collect()
            })
            .collect();
        let mut index: HashMap<&[Option<u32>], usize> = HashMap::with_capacity(keys.len());
        for (cell, key) in keys.iter().enumerate() {
            match index.entry(key.as_slice()) {
                Entry::Occupied(first) => {
                    return Err(SecondaryError::DuplicateKey {
                        first: *first.get(),
                        second: cell,
                    });
                }
                Entry::Vacant(slot) => {
                    slot.insert(cell);
                }
            }
        }

        // Grouping sets in the query. The full set is taken from the flag only when
        // every dimension has a level: otherwise no interior cell could have been output.
        let full = vec![true; dims];
        let mut patterns: BTreeSet<Vec<bool>> = keys
            .iter()
            .map(|key| key.iter().map(Option::is_some).collect())
            .collect();
        if interior_released && levels.iter().all(|seen| !seen.is_empty()) {
            patterns.insert(full.clone());
        }
        // Bound the enumeration before doing it: the cells' supports, and per grouping
        // set its combinations plus the supports of the absent ones (each ≤ interior).
        let work = keys
            .iter()
            .fold(0usize, |sum, key| {
                sum.saturating_add(grid.support_size(key))
            })
            .saturating_add(patterns.len().saturating_mul(interior.saturating_mul(2)));
        if work > MAX_WORK {
            return Err(SecondaryError::TooLarge);
        }

        let mut interior_cell: Vec<Option<usize>> = vec![None; interior];
        for (cell, key) in keys.iter().enumerate() {
            if key.iter().all(Option::is_some)
                && let Some(slot) = interior_cell.get_mut(grid.base(key))
            {
                *slot = Some(cell);
            }
        }
        let full_in_query = patterns.contains(&full);
        let known_zero: Vec<bool> = interior_cell
            .iter()
            .map(|cell| full_in_query && cell.is_none())
            .collect();
        let mut zero_margins = Vec::new();
        for pattern in patterns.iter().filter(|pattern| **pattern != full) {
            grid.for_each_key(pattern, |key| {
                if !index.contains_key(key) {
                    zero_margins.push(key.to_vec());
                }
            });
        }

        // A line along `dim` is an equation only if both its grouping sets are in the
        // query: the one with `dim` grouped (the members) and the one without (the total).
        let mut by_line: BTreeMap<(usize, Vec<Option<u32>>), Vec<usize>> = BTreeMap::new();
        for (cell, key) in keys.iter().enumerate() {
            let pattern: Vec<bool> = key.iter().map(Option::is_some).collect();
            for dim in 0..dims {
                let complete = patterns.contains(&with_dim(&pattern, dim, true))
                    && patterns.contains(&with_dim(&pattern, dim, false));
                if complete {
                    let line: Vec<Option<u32>> = key
                        .iter()
                        .enumerate()
                        .map(|(d, level)| if d == dim { None } else { *level })
                        .collect();
                    by_line.entry((dim, line)).or_default().push(cell);
                }
            }
        }
        let lines: Vec<Vec<usize>> = by_line.into_values().collect();
        let mut cell_lines: Vec<Vec<usize>> = vec![Vec::new(); cells.len()];
        for (line, members) in lines.iter().enumerate() {
            for &cell in members {
                if let Some(slot) = cell_lines.get_mut(cell) {
                    slot.push(line);
                }
            }
        }

        Ok(Self {
            grid,
            keys,
            records: cells.iter().map(|c| c.records).collect(),
            interior_cell,
            known_zero,
            zero_margins,
            lines,
            cell_lines,
        })
    }

    /// Withheld cells per line.
    fn line_counts(&self, withheld: &[bool]) -> Vec<usize> {
        self.lines
            .iter()
            .map(|members| {
                members
                    .iter()
                    .filter(|&&c| withheld.get(c).copied().unwrap_or(false))
                    .count()
            })
            .collect()
    }

    /// How much withholding `cell` costs (smaller is better): totals in its key, lines
    /// it would open (lines other than `fixing` with no withheld cell yet), records, index.
    fn cost(
        &self,
        cell: usize,
        counts: &[usize],
        fixing: Option<usize>,
    ) -> (usize, usize, u64, usize) {
        let opened = self.cell_lines[cell]
            .iter()
            .filter(|&&line| Some(line) != fixing && counts.get(line) == Some(&0))
            .count();
        (totals(&self.keys[cell]), opened, self.records[cell], cell)
    }

    /// Step 1: until no line has exactly one withheld cell, withholds the cheapest
    /// released member of such a line.
    fn close_lines(&self, withheld: &mut [bool]) {
        let mut counts = self.line_counts(withheld);
        let mut pending: BTreeSet<usize> = counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n == 1)
            .map(|(line, _)| line)
            .collect();
        while let Some(line) = pending.pop_first() {
            if counts.get(line) != Some(&1) {
                continue;
            }
            let Some(members) = self.lines.get(line) else {
                continue;
            };
            let best = members
                .iter()
                .copied()
                .filter(|&c| !withheld[c])
                .min_by_key(|&c| self.cost(c, &counts, Some(line)));
            // A line whose other members are all known zeros cannot be helped here.
            let Some(cell) = best else {
                continue;
            };
            withheld[cell] = true;
            for &other in &self.cell_lines[cell] {
                if let Some(n) = counts.get_mut(other) {
                    *n += 1;
                    if *n == 1 {
                        pending.insert(other);
                    }
                }
            }
        }
    }

    /// Released cells sharing a line with `cell`, or every released cell if none does.
    fn neighbours(&self, cell: usize, withheld: &[bool]) -> BTreeSet<usize> {
        let released = |c: &usize| !withheld.get(*c).copied().unwrap_or(true);
        let near: BTreeSet<usize> = self.cell_lines[cell]
            .iter()
            .flat_map(|&line| self.lines[line].iter().copied())
            .filter(released)
            .collect();
        if near.is_empty() {
            (0..withheld.len()).filter(released).collect()
        } else {
            near
        }
    }
}

/// The position of `level` among the sorted observed levels (always present).
fn position(seen: &[u32], level: u32) -> u32 {
    match seen.binary_search(&level) {
        Ok(p) | Err(p) => p as u32,
    }
}

/// `pattern` with dimension `dim` set to `grouped`.
fn with_dim(pattern: &[bool], dim: usize, grouped: bool) -> Vec<bool> {
    pattern
        .iter()
        .enumerate()
        .map(|(d, &g)| if d == dim { grouped } else { g })
        .collect()
}

/// Which released fact an equation states.
#[derive(Clone, Copy)]
enum Origin {
    /// A released cell that is not interior.
    Cell(usize),
    /// An absent combination of a grouping set in the query (index into `zero_margins`).
    Zero(usize),
}

/// One released fact: the sum of some unknowns (given by column) is known.
struct Equation {
    /// Where it comes from.
    origin: Origin,
    /// The unknowns it adds up.
    columns: Vec<usize>,
}

/// Why a withheld cell is not proven safe.
enum Exposure {
    /// The equations determine it (mod P): its combination, per basis member.
    Determined(Vec<u64>),
    /// It looks undetermined but no exact certificate was found (treated as determined).
    Unproven,
}

/// One row of the reduced row echelon form, with how it combines the equations.
struct Row {
    /// Coefficients over the unknowns: 1 at its pivot, 0 at every other pivot.
    values: Vec<u64>,
    /// Its pivot column.
    pivot: usize,
    /// Coefficients over the basis members (the equations that were independent).
    combo: Vec<u64>,
}

/// The row space of the equations over GF(P), in reduced row echelon form, built one
/// equation at a time; each row remembers its combination of the equations.
struct Basis {
    /// Number of unknowns.
    width: usize,
    /// The rows.
    rows: Vec<Row>,
    /// The row of each pivot column.
    pivot_row: Vec<Option<usize>>,
    /// The equation behind each basis member, in insertion order.
    members: Vec<usize>,
}

impl Basis {
    /// An empty row space over `width` unknowns.
    fn new(width: usize) -> Self {
        Self {
            width,
            rows: Vec::new(),
            pivot_row: vec![None; width],
            members: Vec::new(),
        }
    }

    /// Adds equation `id` (the sum of the unknowns `columns`, all distinct) if it is
    /// independent of those before it; earlier equations are preferred as members.
    fn insert(&mut self, id: usize, columns: &[usize]) {
        let mut values = vec![0u64; self.width];
        for &column in columns {
            if let Some(v) = values.get_mut(column) {
                *v = 1;
            }
        }
        let member = self.members.len();
        let mut combo = vec![0u64; member + 1];
        if let Some(last) = combo.last_mut() {
            *last = 1;
        }
        // In reduced form a row is zero at every other pivot, so subtracting rows never
        // changes the vector at a pivot: each row's multiplier is the equation's own
        // entry at the row's pivot, 1 where the equation has that unknown.
        for &column in columns {
            if let Some(row) = self
                .pivot_row
                .get(column)
                .copied()
                .flatten()
                .and_then(|j| self.rows.get(j))
            {
                sub_scaled(&mut values, &row.values, 1);
                sub_scaled(&mut combo, &row.combo, 1);
            }
        }
        let Some(pivot) = values.iter().position(|&v| v != 0) else {
            return;
        };
        let factor = inverse(values[pivot]);
        scale(&mut values, factor);
        scale(&mut combo, factor);
        for row in &mut self.rows {
            let entry = row.values[pivot];
            if entry != 0 {
                sub_scaled(&mut row.values, &values, entry);
                row.combo.resize(member + 1, 0);
                sub_scaled(&mut row.combo, &combo, entry);
            }
        }
        if let Some(slot) = self.pivot_row.get_mut(pivot) {
            *slot = Some(self.rows.len());
        }
        self.rows.push(Row {
            values,
            pivot,
            combo,
        });
        self.members.push(id);
    }
}

/// Step 2 for one pattern of withheld cells: the equations, their echelon form and the
/// exact certificates found so far.
struct Exact<'a> {
    /// The table.
    table: &'a Table,
    /// The unknown (column) of each interior cell, if it is not known.
    column: Vec<Option<usize>>,
    /// The released facts.
    equations: Vec<Equation>,
    /// Their row space.
    basis: Basis,
    /// Lifted kernel vectors by free column (`None`: lifting failed), sparse.
    lifts: HashMap<usize, Option<Vec<(usize, i128)>>>,
}

impl<'a> Exact<'a> {
    /// Sets up the equations of the cells released under `withheld`.
    fn new(table: &'a Table, withheld: &[bool]) -> Result<Self, SecondaryError> {
        let mut column = vec![None; table.grid.interior];
        let mut width = 0;
        for ((slot, &zero), cell) in column
            .iter_mut()
            .zip(&table.known_zero)
            .zip(&table.interior_cell)
        {
            let released = cell.is_some_and(|c| !withheld.get(c).copied().unwrap_or(false));
            if !zero && !released {
                if width == MAX_UNKNOWNS {
                    return Err(SecondaryError::TooManyUnknowns { cap: MAX_UNKNOWNS });
                }
                *slot = Some(width);
                width += 1;
            }
        }
        let mut equations = Vec::new();
        // Known zeros first, then released cells from the cheapest: earlier equations
        // become basis members, so a recomputation is expressed through cells that are
        // cheap to withhold, and one through known zeros alone is recognised as such.
        for (zero, key) in table.zero_margins.iter().enumerate() {
            let columns = restrict(&table.grid, &column, key);
            if !columns.is_empty() {
                equations.push(Equation {
                    origin: Origin::Zero(zero),
                    columns,
                });
            }
        }
        let mut released: Vec<usize> = withheld
            .iter()
            .enumerate()
            .filter(|&(c, &held)| !held && table.keys[c].iter().any(Option::is_none))
            .map(|(c, _)| c)
            .collect();
        released.sort_by_key(|&c| (totals(&table.keys[c]), table.records[c], c));
        for c in released {
            let columns = restrict(&table.grid, &column, &table.keys[c]);
            if !columns.is_empty() {
                equations.push(Equation {
                    origin: Origin::Cell(c),
                    columns,
                });
            }
        }
        let mut basis = Basis::new(width);
        for (id, equation) in equations.iter().enumerate() {
            basis.insert(id, &equation.columns);
        }
        Ok(Self {
            table,
            column,
            equations,
            basis,
            lifts: HashMap::new(),
        })
    }

    /// `None` if withheld `cell` is proven undetermined, else why not.
    fn exposure(&mut self, cell: usize) -> Option<Exposure> {
        let columns = restrict(&self.table.grid, &self.column, &self.table.keys[cell]);
        let width = self.basis.width;
        let mut residual = vec![0u64; width];
        let mut inside = vec![false; width];
        for &c in &columns {
            residual[c] = 1;
            inside[c] = true;
        }
        // Reduce as in `Basis::insert`; what is left lives on the free columns, and its
        // entry at free column f is the cell's dot product with that column's kernel vector.
        let mut used = Vec::new();
        for &c in &columns {
            if let Some(j) = self.basis.pivot_row[c] {
                sub_scaled(&mut residual, &self.basis.rows[j].values, 1);
                used.push(j);
            }
        }
        if residual.iter().all(|&v| v == 0) {
            let mut lambda = vec![0u64; self.basis.members.len()];
            for j in used {
                for (l, &c) in lambda.iter_mut().zip(&self.basis.rows[j].combo) {
                    *l = add(*l, c);
                }
            }
            return Some(Exposure::Determined(lambda));
        }
        let free: Vec<usize> = residual
            .iter()
            .enumerate()
            .filter(|&(_, &v)| v != 0)
            .map(|(f, _)| f)
            .collect();
        for f in free {
            let lifted = self
                .lifts
                .entry(f)
                .or_insert_with(|| lift(&self.basis, &self.equations, f));
            if let Some(vector) = lifted.as_deref()
                && exact_dot(vector, &inside).is_some_and(|dot| dot != 0)
            {
                return None;
            }
        }
        Some(Exposure::Unproven)
    }

    /// The first withheld cell (by index) not proven safe, skipping `unfixable` ones.
    fn first_exposed(
        &mut self,
        withheld: &[bool],
        unfixable: &[bool],
    ) -> Option<(usize, Exposure)> {
        for (cell, (&held, &stuck)) in withheld.iter().zip(unfixable).enumerate() {
            if held
                && !stuck
                && let Some(exposure) = self.exposure(cell)
            {
                return Some((cell, exposure));
            }
        }
        None
    }

    /// The released cell to withhold next for exposed `cell`, or `None` if no released
    /// cell takes part in its recomputation.
    fn complement(&self, cell: usize, exposure: &Exposure, withheld: &[bool]) -> Option<usize> {
        let table = self.table;
        let candidates = match exposure {
            Exposure::Determined(lambda) => self.involved(cell, lambda, withheld),
            // No combination to follow: widen around the cell; every round still
            // withholds a cell, and a fully withheld table is certified trivially.
            Exposure::Unproven => table.neighbours(cell, withheld),
        };
        let counts = table.line_counts(withheld);
        candidates
            .into_iter()
            .min_by_key(|&c| table.cost(c, &counts, None))
    }

    /// The released cells used by the recomputation `cell = Σ λ·equation + Σ μ·interior`:
    /// the equations' cells with λ ≠ 0 and the released interior cells with μ ≠ 0.
    fn involved(&self, cell: usize, lambda: &[u64], withheld: &[bool]) -> BTreeSet<usize> {
        let table = self.table;
        let mut candidates = BTreeSet::new();
        // μ over the whole interior: the cell's indicator minus the combination. It is
        // zero on the unknowns by construction; on known cells it is what the
        // recomputation takes from released interior cells (or known zeros).
        let mut mu: HashMap<usize, u64> = HashMap::new();
        table.grid.for_each_interior(&table.keys[cell], |index| {
            let m = mu.entry(index).or_insert(0);
            *m = add(*m, 1);
        });
        for (&coefficient, &id) in lambda.iter().zip(&self.basis.members) {
            if coefficient == 0 {
                continue;
            }
            let Some(equation) = self.equations.get(id) else {
                continue;
            };
            let key = match equation.origin {
                Origin::Cell(released) => {
                    candidates.insert(released);
                    &table.keys[released]
                }
                Origin::Zero(zero) => &table.zero_margins[zero],
            };
            table.grid.for_each_interior(key, |index| {
                let m = mu.entry(index).or_insert(0);
                *m = sub(*m, coefficient);
            });
        }
        for (index, m) in mu {
            if m != 0
                && let Some(Some(c)) = table.interior_cell.get(index)
                && !withheld.get(*c).copied().unwrap_or(true)
            {
                candidates.insert(*c);
            }
        }
        candidates
    }
}

/// Number of totals (`None`) in a key.
fn totals(key: &[Option<u32>]) -> usize {
    key.iter().filter(|level| level.is_none()).count()
}

/// The unknowns under `key`.
fn restrict(grid: &Grid, column: &[Option<usize>], key: &[Option<u32>]) -> Vec<usize> {
    let mut columns = Vec::new();
    grid.for_each_interior(key, |index| {
        if let Some(Some(c)) = column.get(index) {
            columns.push(*c);
        }
    });
    columns
}

/// The kernel vector of free column `free` as exact integers, if it lifts and satisfies
/// every equation exactly; only such a vector certifies safety.
fn lift(basis: &Basis, equations: &[Equation], free: usize) -> Option<Vec<(usize, i128)>> {
    // In reduced form the kernel vector of a free column f is 1 at f and minus the
    // row's entry at f at each row's pivot.
    let mut entries: Vec<(usize, u64)> = vec![(free, 1)];
    entries.extend(basis.rows.iter().filter_map(|row| {
        let value = row.values.get(free).copied().unwrap_or(0);
        if value == 0 {
            None
        } else {
            Some((row.pivot, neg(value)))
        }
    }));
    let mut fractions = Vec::with_capacity(entries.len());
    let mut common: i128 = 1;
    for (column, value) in entries {
        let (numerator, denominator) = rational(value)?;
        common = lcm(common, denominator)?;
        fractions.push((column, numerator, denominator));
    }
    let vector: Vec<(usize, i128)> = fractions
        .into_iter()
        .map(|(column, numerator, denominator)| {
            numerator
                .checked_mul(common / denominator)
                .map(|value| (column, value))
        })
        .collect::<Option<_>>()?;
    let mut dense = vec![0i128; basis.width];
    for &(column, value) in &vector {
        *dense.get_mut(column)? = value;
    }
    for equation in equations {
        let mut sum: i128 = 0;
        for &column in &equation.columns {
            sum = sum.checked_add(*dense.get(column)?)?;
        }
        if sum != 0 {
            return None;
        }
    }
    Some(vector)
}

/// The exact sum of `vector` over the unknowns marked `inside` (`None` on overflow).
fn exact_dot(vector: &[(usize, i128)], inside: &[bool]) -> Option<i128> {
    vector
        .iter()
        .filter(|(column, _)| inside.get(*column).copied().unwrap_or(false))
        .try_fold(0i128, |sum, &(_, value)| sum.checked_add(value))
}

/// A fraction n/d (d > 0, both at most [`RATIONAL_BOUND`]) congruent to `value` mod P,
/// by the extended Euclidean algorithm stopped halfway (rational reconstruction).
fn rational(value: u64) -> Option<(i128, i128)> {
    let (mut r0, mut r1) = (i128::from(P), i128::from(value));
    let (mut t0, mut t1) = (0i128, 1i128);
    // Invariant: r ≡ t·value (mod P) for both pairs.
    while r1 > RATIONAL_BOUND {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (t0, t1) = (t1, t0 - q * t1);
    }
    if t1 == 0 || t1.abs() > RATIONAL_BOUND {
        return None;
    }
    Some(if t1 < 0 { (-r1, -t1) } else { (r1, t1) })
}

/// Greatest common divisor of two positive numbers.
fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Least common multiple of two positive numbers, if at most [`MAX_SCALE`].
fn lcm(a: i128, b: i128) -> Option<i128> {
    (a / gcd(a, b)).checked_mul(b).filter(|&l| l <= MAX_SCALE)
}

/// a + b mod P.
fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

/// a − b mod P.
fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + (P - b) }
}

/// a·b mod P.
fn mul(a: u64, b: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % u128::from(P)) as u64
}

/// −a mod P.
fn neg(a: u64) -> u64 {
    sub(0, a)
}

/// a⁻¹ mod P (a ≠ 0), by Fermat's little theorem.
fn inverse(a: u64) -> u64 {
    let (mut result, mut base, mut exponent) = (1u64, a, P - 2);
    while exponent > 0 {
        if exponent & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exponent >>= 1;
    }
    result
}

/// target −= factor·source, entry by entry (over the shorter length).
fn sub_scaled(target: &mut [u64], source: &[u64], factor: u64) {
    for (t, &s) in target.iter_mut().zip(source) {
        if s != 0 {
            *t = sub(*t, mul(s, factor));
        }
    }
}

/// values ·= factor.
fn scale(values: &mut [u64], factor: u64) {
    for v in values {
        *v = mul(*v, factor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of a full CUBE over `sizes` levels (each dimension: a level or the
    /// total), with records summed from `value` over the interior cells under the key.
    fn cube(sizes: &[u32], value: impl Fn(&[u32]) -> u64) -> Vec<CubeCell> {
        let mut keys: Vec<Vec<Option<u32>>> = vec![Vec::new()];
        let mut interior: Vec<Vec<u32>> = vec![Vec::new()];
        for &size in sizes {
            keys = keys
                .into_iter()
                .flat_map(|prefix| {
                    (0..size).map(Some).chain([None]).map(move |level| {
                        let mut key = prefix.clone();
                        key.push(level);
                        key
                    })
                })
                .collect();
            interior = interior
                .into_iter()
                .flat_map(|prefix| {
                    (0..size).map(move |level| {
                        let mut point = prefix.clone();
                        point.push(level);
                        point
                    })
                })
                .collect();
        }
        keys.into_iter()
            .map(|key| {
                let records = interior
                    .iter()
                    .filter(|point| {
                        point
                            .iter()
                            .zip(&key)
                            .all(|(p, k)| k.is_none_or(|l| l == *p))
                    })
                    .map(|point| value(point.as_slice()))
                    .sum();
                CubeCell {
                    key,
                    records,
                    primary: false,
                }
            })
            .collect()
    }

    /// The index of the cell with `key`.
    fn find(cells: &[CubeCell], key: &[Option<u32>]) -> usize {
        cells.iter().position(|c| c.key == key).unwrap()
    }

    /// Flags for the cells with the given keys.
    fn flags(cells: &[CubeCell], keys: &[&[Option<u32>]]) -> Vec<bool> {
        cells
            .iter()
            .map(|c| keys.contains(&c.key.as_slice()))
            .collect()
    }

    /// Sorted indices of the cells with the given keys.
    fn indices(cells: &[CubeCell], keys: &[&[Option<u32>]]) -> Vec<usize> {
        let mut out: Vec<usize> = keys.iter().map(|k| find(cells, k)).collect();
        out.sort_unstable();
        out
    }

    /// Marks the cells with the given keys as primary.
    fn mark(cells: &mut [CubeCell], keys: &[&[Option<u32>]]) {
        for key in keys {
            let i = find(cells, key);
            cells[i].primary = true;
        }
    }

    /// Runs the algorithm and checks its result with the exact checker.
    fn suppress_safely(dims: usize, cells: &[CubeCell], interior_released: bool) -> Vec<bool> {
        let withheld = complementary_suppression(dims, cells, interior_released).unwrap();
        assert_eq!(withheld.len(), cells.len());
        for (c, &held) in cells.iter().zip(&withheld) {
            assert!(held || !c.primary, "a primary cell was released");
        }
        assert_eq!(
            recomputable(dims, cells, &withheld, interior_released).unwrap(),
            Vec::<usize>::new()
        );
        withheld
    }

    /// In a 2-D table with all margins, each row and column of the interior must hold
    /// zero or at least two withheld cells (else the line's total gives one away).
    fn lines_hold_zero_or_two(cells: &[CubeCell], withheld: &[bool], sizes: [u32; 2]) {
        for a in 0..sizes[0] {
            let n = (0..sizes[1])
                .filter(|&b| withheld[find(cells, &[Some(a), Some(b)])])
                .count();
            assert_ne!(n, 1, "row {a}");
        }
        for b in 0..sizes[1] {
            let n = (0..sizes[0])
                .filter(|&a| withheld[find(cells, &[Some(a), Some(b)])])
                .count();
            assert_ne!(n, 1, "column {b}");
        }
    }

    #[test]
    fn one_dimension_adds_the_smallest_other_cell_and_keeps_the_total() {
        let records = [30, 3, 12, 40, 25];
        let mut cells = cube(&[5], |p| records[p[0] as usize]);
        mark(&mut cells, &[&[Some(1)]]);

        // The primary alone is the total minus the other four cells.
        let total = cells[find(&cells, &[None])].records;
        assert_eq!(total - 30 - 12 - 40 - 25, 3);
        let alone: Vec<bool> = cells.iter().map(|c| c.primary).collect();
        assert_eq!(
            recomputable(1, &cells, &alone, true).unwrap(),
            [find(&cells, &[Some(1)])]
        );

        // One complement is enough (the pair's sum is known, each value is not), and
        // the cheapest is level 2 with 12 records; the total stays.
        let withheld = suppress_safely(1, &cells, true);
        assert_eq!(withheld, flags(&cells, &[&[Some(1)], &[Some(2)]]));
    }

    const TABLE: [[u64; 3]; 3] = [[20, 2, 30], [15, 25, 18], [40, 11, 22]];

    #[test]
    fn two_dimensions_one_interior_primary_gets_a_rectangle() {
        let mut cells = cube(&[3, 3], |p| TABLE[p[0] as usize][p[1] as usize]);
        mark(&mut cells, &[&[Some(0), Some(1)]]);
        let withheld = suppress_safely(2, &cells, true);
        // The smallest safe pattern around one cell is a 2×2 rectangle of interior cells.
        assert!(withheld.iter().filter(|&&w| w).count() >= 4);
        lines_hold_zero_or_two(&cells, &withheld, [3, 3]);
        // Interior complements exist everywhere, so no total is withheld.
        for (c, &held) in cells.iter().zip(&withheld) {
            if c.key.contains(&None) {
                assert!(!held, "total {:?} withheld", c.key);
            }
        }
    }

    #[test]
    fn two_dimensions_a_row_with_one_other_cell_withholds_it() {
        let table = [[5, 30], [20, 25], [40, 12]];
        let mut cells = cube(&[3, 2], |p| table[p[0] as usize][p[1] as usize]);
        mark(&mut cells, &[&[Some(0), Some(0)]]);
        let withheld = suppress_safely(2, &cells, true);
        // Row 0 has one other interior cell: it must go (or the row total would), and
        // the interior cell is preferred to the total.
        assert!(withheld[find(&cells, &[Some(0), Some(1)])]);
        assert!(!withheld[find(&cells, &[Some(0), None])]);
        lines_hold_zero_or_two(&cells, &withheld, [3, 2]);
    }

    #[test]
    fn two_dimensions_a_primary_total() {
        let mut cells = cube(&[3, 3], |p| TABLE[p[0] as usize][p[1] as usize]);
        let row_total: &[Option<u32>] = &[Some(1), None];
        mark(&mut cells, &[row_total]);
        // Alone, it is the sum of its row's cells (and the grand total minus the others).
        let alone = flags(&cells, &[row_total]);
        assert_eq!(
            recomputable(2, &cells, &alone, true).unwrap(),
            [find(&cells, row_total)]
        );
        let withheld = suppress_safely(2, &cells, true);
        // It needs a partner among the row totals and one in its row, and those need
        // partners in turn: at least four cells.
        assert!(withheld.iter().filter(|&&w| w).count() >= 4);
    }

    /// Records of a 2×3×2 interior cell.
    fn value3(p: &[u32]) -> u64 {
        let (a, b, c) = (u64::from(p[0]), u64::from(p[1]), u64::from(p[2]));
        5 + 3 * a + 7 * b + 2 * c + a * b * c
    }

    #[test]
    fn three_dimensions_several_primaries() {
        let mut cells = cube(&[2, 3, 2], value3);
        let primaries: [&[Option<u32>]; 3] = [
            &[Some(0), Some(0), Some(0)],
            &[Some(1), Some(2), Some(1)],
            &[Some(0), Some(1), None],
        ];
        mark(&mut cells, &primaries);
        // Alone, each primary is alone in some line, so each is recomputable.
        let alone = flags(&cells, &primaries);
        assert_eq!(
            recomputable(3, &cells, &alone, true).unwrap(),
            indices(&cells, &primaries)
        );
        suppress_safely(3, &cells, true);
    }

    #[test]
    fn three_dimensions_the_checker_rejects_a_layer_and_accepts_a_cube() {
        let cells = cube(&[2, 3, 2], value3);
        // A rectangle in the layer c = 0 has two withheld cells in every line along a
        // and b, but one along c: (a, b, 0) = (a, b, total) − (a, b, 1).
        let layer: [&[Option<u32>]; 4] = [
            &[Some(0), Some(0), Some(0)],
            &[Some(0), Some(1), Some(0)],
            &[Some(1), Some(0), Some(0)],
            &[Some(1), Some(1), Some(0)],
        ];
        assert_eq!(
            recomputable(3, &cells, &flags(&cells, &layer), true).unwrap(),
            indices(&cells, &layer)
        );
        // The 2×2×2 block: changing its cells by +t/−t in a checkerboard
        // ((−1)^(a+b+c)) keeps every line sum, so no cell of it is determined.
        let mut block: Vec<Vec<Option<u32>>> = Vec::new();
        for a in 0..2 {
            for b in 0..2 {
                for c in 0..2 {
                    block.push(vec![Some(a), Some(b), Some(c)]);
                }
            }
        }
        let block: Vec<&[Option<u32>]> = block.iter().map(Vec::as_slice).collect();
        assert_eq!(
            recomputable(3, &cells, &flags(&cells, &block), true).unwrap(),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn grouping_sets_without_interior_share_their_total() {
        // GROUPING SETS ((a), (b)): no interior, no grand total, but both margins add up
        // to the same number of records, 36.
        let cell = |key: [Option<u32>; 2], records| CubeCell {
            key: key.to_vec(),
            records,
            primary: false,
        };
        let mut cells = [
            cell([Some(0), None], 12),
            cell([Some(1), None], 4),
            cell([Some(2), None], 20),
            cell([None, Some(0)], 16),
            cell([None, Some(1)], 20),
        ];
        cells[1].primary = true;
        // a1 = (b0 + b1) − a0 − a2 = 36 − 32 = 4.
        assert_eq!(16 + 20 - 12 - 20, cells[1].records);
        let alone: Vec<bool> = cells.iter().map(|c| c.primary).collect();
        assert_eq!(recomputable(2, &cells, &alone, false).unwrap(), [1]);
        // One more withheld cell of either margin breaks the equation; the cheapest is a0.
        let withheld = suppress_safely(2, &cells, false);
        assert_eq!(withheld, [true, true, false, false, false]);
    }

    #[test]
    fn two_dimensions_a_bridge_between_rectangles_is_recomputable() {
        let value = |i: u32, j: u32| u64::from(10 + 3 * i + 7 * j + (i * j) % 4);
        let mut cells = cube(&[5, 5], |p| value(p[0], p[1]));
        let pattern: [&[Option<u32>]; 9] = [
            &[Some(0), Some(0)],
            &[Some(0), Some(1)],
            &[Some(1), Some(0)],
            &[Some(1), Some(1)],
            &[Some(2), Some(2)],
            &[Some(2), Some(3)],
            &[Some(3), Some(2)],
            &[Some(3), Some(3)],
            &[Some(0), Some(2)],
        ];
        let withheld = flags(&cells, &pattern);
        // Every line holds zero or at least two withheld cells ...
        lines_hold_zero_or_two(&cells, &withheld, [5, 5]);
        // ... yet the cut between rows {0, 1} ∪ columns {0, 1} and the rest is crossed
        // by one withheld cell, (0, 2): rows 0–1 minus columns 0–1 is the cells of rows
        // 0–1 outside columns 0–1 minus those of columns 0–1 outside rows 0–1.
        let get = |key: &[Option<u32>]| i128::from(cells[find(&cells, key)].records);
        let cut = get(&[Some(0), None]) + get(&[Some(1), None])
            - get(&[None, Some(0)])
            - get(&[None, Some(1)]);
        let mut recovered = cut;
        for i in 0..2 {
            for j in 2..5 {
                if (i, j) != (0, 2) {
                    assert!(!withheld[find(&cells, &[Some(i), Some(j)])]);
                    recovered -= get(&[Some(i), Some(j)]);
                }
            }
        }
        for i in 2..5 {
            for j in 0..2 {
                assert!(!withheld[find(&cells, &[Some(i), Some(j)])]);
                recovered += get(&[Some(i), Some(j)]);
            }
        }
        assert_eq!(recovered, i128::from(value(0, 2)));
        // The rectangles' cells lie on cycles (±t around the rectangle): safe.
        assert_eq!(
            recomputable(2, &cells, &withheld, true).unwrap(),
            [find(&cells, &[Some(0), Some(2)])]
        );
        mark(&mut cells, &pattern);
        suppress_safely(2, &cells, true);
    }

    #[test]
    fn absent_interior_cells_are_known_zeros() {
        // CUBE(a, b) where the group (1, 1) is empty, so it is not in the output.
        let cell = |key: [Option<u32>; 2], records| CubeCell {
            key: key.to_vec(),
            records,
            primary: false,
        };
        let mut cells = [
            cell([Some(0), Some(0)], 5),
            cell([Some(0), Some(1)], 20),
            cell([Some(1), Some(0)], 30),
            cell([Some(0), None], 25),
            cell([Some(1), None], 30),
            cell([None, Some(0)], 35),
            cell([None, Some(1)], 20),
            cell([None, None], 55),
        ];
        // With (1, 1) = 0: (0, 1) is column 1's total, (1, 0) is row 1's total, and
        // (0, 0) is row 0's total minus (0, 1).
        let withheld = [true, true, true, false, false, false, false, false];
        assert_eq!(recomputable(2, &cells, &withheld, true).unwrap(), [0, 1, 2]);
        cells[0].primary = true;
        suppress_safely(2, &cells, true);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let short = [CubeCell {
            key: vec![Some(0)],
            records: 3,
            primary: true,
        }];
        assert_eq!(
            complementary_suppression(2, &short, true),
            Err(SecondaryError::KeyLength {
                cell: 0,
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            recomputable(1, &short, &[true, false], true),
            Err(SecondaryError::FlagCount {
                expected: 1,
                found: 2
            })
        );
        let twice = [short[0].clone(), short[0].clone()];
        assert_eq!(
            complementary_suppression(1, &twice, true),
            Err(SecondaryError::DuplicateKey {
                first: 0,
                second: 1
            })
        );
        assert_eq!(complementary_suppression(2, &[], false), Ok(Vec::new()));

        // GROUPING SETS ((a), (b)) with 100 levels each: 10,000 unknown interior cells.
        let mut margins: Vec<CubeCell> = (0..100)
            .flat_map(|l| {
                [[Some(l), None], [None, Some(l)]].map(|key| CubeCell {
                    key: key.to_vec(),
                    records: 50,
                    primary: false,
                })
            })
            .collect();
        margins[0].primary = true;
        let cap = SecondaryError::TooManyUnknowns { cap: MAX_UNKNOWNS };
        assert_eq!(
            complementary_suppression(2, &margins, false),
            Err(cap.clone())
        );
        let alone: Vec<bool> = margins.iter().map(|c| c.primary).collect();
        assert_eq!(recomputable(2, &margins, &alone, false), Err(cap));

        // Three dimensions of 100 levels: a million interior cells.
        let wide: Vec<CubeCell> = (0..100)
            .flat_map(|l| {
                [
                    [Some(l), None, None],
                    [None, Some(l), None],
                    [None, None, Some(l)],
                ]
                .map(|key| CubeCell {
                    key: key.to_vec(),
                    records: 50,
                    primary: false,
                })
            })
            .collect();
        assert_eq!(
            complementary_suppression(3, &wide, true),
            Err(SecondaryError::TooLarge)
        );
    }
}
