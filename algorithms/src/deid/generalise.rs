//! Generalisation ladders: every quasi-identifier becomes a ladder of levels, each
//! level a coarser view of the same column, encoded as integer codes.
//!
//! Level 0 is the original value; the rule defines the rest:
//! - `hierarchy`: the columns of the supplied hierarchy (usually ending in `*`);
//! - `bin`: level `i` (1..=levels) is bins of `width * 2^(i-1)` labelled `[lo, hi)`,
//!   anchored at 0 so every bin nests in exactly one bin of the next level, then `*`;
//! - `date_truncate`: month → year → `*` (or year → `*`);
//! - `keep`: level 0 only.
//!
//! Each row is stored once, as its level-0 code (`u32`); a level is a map from level-0
//! code to level-`j` code plus a label per level-`j` code. The lattice search therefore
//! works on integers over distinct values, and the rows are touched only to build the
//! frequency table and to write the output.
//!
//! Nulls form their own branch: null at every level below the top, and at the top the
//! single top label (`*`) when there is one, so the ladder stays a tree and k-anonymity
//! stays monotone over it.
//!
//! Every level also carries Iyengar's loss metric (LM) per code: (leaves − 1) / (D − 1),
//! where the leaves of a code are the distinct level-0 values it covers and D is the
//! number of distinct level-0 values in the column. It is 0 at level 0 and 1 at `*`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use polars::prelude::*;

use super::schema::{ColumnSpec, DateUnit, DeidRule, Hierarchy};

/// Why a ladder cannot be built. Messages name the column and record, never a value.
#[derive(Debug, thiserror::Error)]
pub enum GeneraliseError {
    /// A value does not occur in the first column of the hierarchy.
    #[error("column `{column}`, record {row}: value not found in hierarchy `{hierarchy}`")]
    NotInHierarchy {
        /// Column name.
        column: String,
        /// Hierarchy name.
        hierarchy: String,
        /// 1-based record number in the frame.
        row: usize,
    },
    /// A float is NaN or infinite, so it has no bin.
    #[error("column `{column}`, record {row}: value is not a finite number")]
    NonFinite {
        /// Column name.
        column: String,
        /// 1-based record number in the frame.
        row: usize,
    },
    /// A number is so large relative to the bin width that its bin index overflows.
    #[error("column `{column}`, record {row}: value is out of range for the bin width")]
    OutOfRange {
        /// Column name.
        column: String,
        /// 1-based record number in the frame.
        row: usize,
    },
    /// The rule does not fit the column (the schema should have been validated).
    #[error("column `{column}`: rule `{rule}` cannot generalise a column of type {dtype}")]
    Unsupported {
        /// Column name.
        column: String,
        /// Rule kind.
        rule: &'static str,
        /// Physical type found.
        dtype: String,
    },
    /// The rule names a hierarchy that is not supplied.
    #[error("column `{column}`: hierarchy `{hierarchy}` is not supplied")]
    MissingHierarchy {
        /// Column name.
        column: String,
        /// Hierarchy name.
        hierarchy: String,
    },
    /// The column has more distinct values than codes can address.
    #[error("column `{column}` has too many distinct values")]
    TooManyValues {
        /// Column name.
        column: String,
    },
}

/// FxHash-style hasher with a strong finaliser.
///
/// Keys here are our own integer codes, not attacker-chosen, so SipHash's DoS
/// resistance buys nothing and costs most of the grouping time. The finaliser matters:
/// the table indexes buckets by the low bits, and packed codes differ mostly in high bits.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // murmur3 fmix64
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The distinct values of a column, indexed by level-0 code (`None` is null).
#[derive(Clone, Debug)]
pub enum Distinct {
    /// Text values.
    Text(Vec<Option<String>>),
    /// Integers.
    Int(Vec<Option<i64>>),
    /// Floats.
    Float(Vec<Option<f64>>),
    /// Dates, as days since 1970-01-01.
    Date(Vec<Option<i32>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl Distinct {
    /// Number of distinct values (null included).
    pub fn len(&self) -> usize {
        match self {
            Distinct::Text(v) => v.len(),
            Distinct::Int(v) => v.len(),
            Distinct::Float(v) => v.len(),
            Distinct::Date(v) => v.len(),
            Distinct::Bool(v) => v.len(),
        }
    }

    /// Whether the column had no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A column encoded as level-0 codes.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The level-0 code of each row.
    pub codes: Vec<u32>,
    /// The value behind each code.
    pub distinct: Distinct,
}

fn dictionary<K: Hash + Eq + Copy>(
    column: &str,
    n: usize,
    values: impl Iterator<Item = Option<K>>,
) -> Result<(Vec<u32>, Vec<Option<K>>), GeneraliseError> {
    let mut index: FastMap<Option<K>, u32> = FastMap::default();
    let mut distinct = Vec::new();
    let mut codes = Vec::with_capacity(n);
    for v in values {
        let next = distinct.len();
        let code = *index.entry(v).or_insert_with(|| {
            distinct.push(v);
            next as u32
        });
        if distinct.len() > u32::MAX as usize {
            return Err(GeneraliseError::TooManyValues {
                column: column.to_owned(),
            });
        }
        codes.push(code);
    }
    Ok((codes, distinct))
}

/// Encodes any supported column (String, Int64, Float64, Date, Boolean) as level-0 codes.
pub fn encode(column: &Column) -> Result<Encoded, GeneraliseError> {
    let name = column.name().as_str();
    let n = column.len();
    let unsupported = || GeneraliseError::Unsupported {
        column: name.to_owned(),
        rule: "encode",
        dtype: column.dtype().to_string(),
    };
    Ok(match column.dtype() {
        DataType::String => {
            let ca = column.str().map_err(|_| unsupported())?;
            let (codes, d) = dictionary(name, n, ca.iter())?;
            Encoded {
                codes,
                distinct: Distinct::Text(d.into_iter().map(|v| v.map(str::to_owned)).collect()),
            }
        }
        DataType::Int64 => {
            let ca = column.i64().map_err(|_| unsupported())?;
            let (codes, d) = dictionary(name, n, ca.iter())?;
            Encoded {
                codes,
                distinct: Distinct::Int(d),
            }
        }
        DataType::Float64 => {
            let ca = column.f64().map_err(|_| unsupported())?;
            // Hash the bit pattern; -0.0 and 0.0 are one value.
            let bits = ca
                .iter()
                .map(|v| v.map(|x| if x == 0.0 { 0u64 } else { x.to_bits() }));
            let (codes, d) = dictionary(name, n, bits)?;
            Encoded {
                codes,
                distinct: Distinct::Float(d.into_iter().map(|v| v.map(f64::from_bits)).collect()),
            }
        }
        DataType::Date => {
            let ca = column.date().map_err(|_| unsupported())?;
            let (codes, d) = dictionary(name, n, ca.physical().iter())?;
            Encoded {
                codes,
                distinct: Distinct::Date(d),
            }
        }
        DataType::Boolean => {
            let ca = column.bool().map_err(|_| unsupported())?;
            let (codes, d) = dictionary(name, n, ca.iter())?;
            Encoded {
                codes,
                distinct: Distinct::Bool(d),
            }
        }
        _ => return Err(unsupported()),
    })
}

/// One generalisation level above level 0.
#[derive(Clone, Debug)]
pub struct Level {
    /// Level code of each level-0 code.
    pub map: Vec<u32>,
    /// Output text of each level code (`None` is null).
    pub labels: Vec<Option<String>>,
    /// LM loss of each level code.
    pub loss: Vec<f64>,
}

/// The generalisation ladder of one quasi-identifier.
#[derive(Clone, Debug)]
pub struct Ladder {
    /// Column name.
    pub column: String,
    /// Level-0 code of each row.
    pub codes: Vec<u32>,
    /// Number of distinct level-0 codes.
    pub distinct: u32,
    /// Levels 1.. (level 0 is the original value and needs no map).
    pub levels: Vec<Level>,
    /// Sum over rows of the LM loss at each level (index 0 = level 0, always 0).
    pub row_loss: Vec<f64>,
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats a bin bound without float noise (`0.30000000000000004` → `0.3`).
fn fmt_bound(v: f64) -> String {
    let r = (v * 1e9).round() / 1e9;
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

/// Builds one level from a grouping key per non-null level-0 code.
///
/// `keys[c]` is the group of level-0 code `c` (`None` for null); `label` renders a key.
/// Codes are assigned in first-seen order of level-0 codes, so they are deterministic.
fn level_from_keys(keys: &[Option<i64>], top: bool, label: impl Fn(i64) -> String) -> Level {
    let mut index: FastMap<i64, u32> = FastMap::default();
    let mut labels: Vec<Option<String>> = Vec::new();
    let mut leaves: Vec<u32> = Vec::new();
    let mut map = vec![u32::MAX; keys.len()];
    for (c, key) in keys.iter().enumerate() {
        if let Some(k) = key {
            let code = *index.entry(*k).or_insert_with(|| {
                labels.push(Some(label(*k)));
                leaves.push(0);
                (labels.len() - 1) as u32
            });
            map[c] = code;
            leaves[code as usize] += 1;
        }
    }
    // Null joins the single top label if there is one; otherwise it is its own branch.
    let join_top = top && labels.len() == 1;
    let mut null_code = None;
    for (c, key) in keys.iter().enumerate() {
        if key.is_none() {
            let code = if join_top {
                0
            } else {
                *null_code.get_or_insert_with(|| {
                    labels.push(None);
                    leaves.push(0);
                    (labels.len() - 1) as u32
                })
            };
            map[c] = code;
            leaves[code as usize] += 1;
        }
    }
    let d = keys.len();
    let loss = leaves
        .iter()
        .map(|&l| {
            if d > 1 {
                f64::from(l - 1) / (d - 1) as f64
            } else {
                0.0
            }
        })
        .collect();
    Level { map, labels, loss }
}

fn text_of(distinct: &Distinct, code: usize) -> Option<String> {
    match distinct {
        Distinct::Text(v) => v[code].clone(),
        Distinct::Int(v) => v[code].map(|x| x.to_string()),
        Distinct::Float(v) => v[code].map(|x| x.to_string()),
        Distinct::Bool(v) => v[code].map(|x| x.to_string()),
        Distinct::Date(v) => v[code].map(|x| {
            let (y, m, d) = civil_from_days(i64::from(x));
            format!("{y:04}-{m:02}-{d:02}")
        }),
    }
}

fn first_row_with(codes: &[u32], code: usize) -> usize {
    codes
        .iter()
        .position(|&c| c as usize == code)
        .map_or(0, |r| r + 1)
}

fn hierarchy_levels(
    spec: &ColumnSpec,
    name: &str,
    hierarchy: &Hierarchy,
    enc: &Encoded,
) -> Result<Vec<Level>, GeneraliseError> {
    let width = hierarchy.rows.first().map_or(0, Vec::len);
    let mut row_of: HashMap<&str, usize> = HashMap::new();
    for (i, row) in hierarchy.rows.iter().enumerate() {
        if let Some(v) = row.first() {
            row_of.entry(v.as_str()).or_insert(i);
        }
    }
    let d = enc.distinct.len();
    let mut rows: Vec<Option<usize>> = Vec::with_capacity(d);
    for c in 0..d {
        match text_of(&enc.distinct, c) {
            None => rows.push(None),
            Some(text) => match row_of.get(text.as_str()) {
                Some(&r) => rows.push(Some(r)),
                None => {
                    return Err(GeneraliseError::NotInHierarchy {
                        column: spec.name.clone(),
                        hierarchy: name.to_owned(),
                        row: first_row_with(&enc.codes, c),
                    });
                }
            },
        }
    }
    let mut levels = Vec::new();
    for j in 1..width {
        // Key a label by the first hierarchy row that carries it.
        let mut first_row: HashMap<&str, usize> = HashMap::new();
        for (i, row) in hierarchy.rows.iter().enumerate() {
            first_row.entry(row[j].as_str()).or_insert(i);
        }
        let keys: Vec<Option<i64>> = rows
            .iter()
            .map(|r| r.map(|r| first_row[hierarchy.rows[r][j].as_str()] as i64))
            .collect();
        levels.push(level_from_keys(&keys, j + 1 == width, |k| {
            hierarchy.rows[k as usize][j].clone()
        }));
    }
    Ok(levels)
}

fn bin_levels(
    spec: &ColumnSpec,
    width: f64,
    count: u8,
    enc: &Encoded,
) -> Result<Vec<Level>, GeneraliseError> {
    let numbers: Vec<Option<f64>> = match &enc.distinct {
        Distinct::Int(v) => v.iter().map(|x| x.map(|x| x as f64)).collect(),
        Distinct::Float(v) => v.clone(),
        _ => {
            return Err(GeneraliseError::Unsupported {
                column: spec.name.clone(),
                rule: "bin",
                dtype: "non-numeric".to_owned(),
            });
        }
    };
    // Finest bin index per distinct value; coarser indices are arithmetic shifts, so
    // bins nest exactly whatever the float rounding.
    let mut finest = Vec::with_capacity(numbers.len());
    for (c, x) in numbers.iter().enumerate() {
        finest.push(match x {
            None => None,
            Some(x) if !x.is_finite() => {
                return Err(GeneraliseError::NonFinite {
                    column: spec.name.clone(),
                    row: first_row_with(&enc.codes, c),
                });
            }
            Some(x) => {
                let idx = (x / width).floor();
                if idx.abs() > 2f64.powi(52) {
                    return Err(GeneraliseError::OutOfRange {
                        column: spec.name.clone(),
                        row: first_row_with(&enc.codes, c),
                    });
                }
                Some(idx as i64)
            }
        });
    }
    let mut levels = Vec::new();
    for i in 1..=u32::from(count) {
        let w = width * 2f64.powi((i - 1) as i32);
        let keys: Vec<Option<i64>> = finest.iter().map(|k| k.map(|k| k >> (i - 1))).collect();
        levels.push(level_from_keys(&keys, false, |k| {
            let lo = k as f64 * w;
            format!("[{}, {})", fmt_bound(lo), fmt_bound(lo + w))
        }));
    }
    levels.push(star_level(&finest));
    Ok(levels)
}

fn star_level(any: &[Option<i64>]) -> Level {
    let keys: Vec<Option<i64>> = any.iter().map(|k| k.map(|_| 0)).collect();
    level_from_keys(&keys, true, |_| "*".to_owned())
}

fn date_levels(
    spec: &ColumnSpec,
    finest: DateUnit,
    enc: &Encoded,
) -> Result<Vec<Level>, GeneraliseError> {
    let Distinct::Date(days) = &enc.distinct else {
        return Err(GeneraliseError::Unsupported {
            column: spec.name.clone(),
            rule: "date_truncate",
            dtype: "non-date".to_owned(),
        });
    };
    let ym: Vec<Option<(i64, u32)>> = days
        .iter()
        .map(|d| {
            d.map(|d| {
                let (y, m, _) = civil_from_days(i64::from(d));
                (y, m)
            })
        })
        .collect();
    let mut levels = Vec::new();
    if finest == DateUnit::Month {
        let keys: Vec<Option<i64>> = ym
            .iter()
            .map(|v| v.map(|(y, m)| y * 12 + i64::from(m) - 1))
            .collect();
        levels.push(level_from_keys(&keys, false, |k| {
            format!("{:04}-{:02}", k.div_euclid(12), k.rem_euclid(12) + 1)
        }));
    }
    let years: Vec<Option<i64>> = ym.iter().map(|v| v.map(|(y, _)| y)).collect();
    levels.push(level_from_keys(&years, false, |y| format!("{y:04}")));
    levels.push(star_level(&years));
    Ok(levels)
}

impl Ladder {
    /// Builds the ladder of a quasi-identifier column according to its rule.
    pub fn build(
        column: &Column,
        spec: &ColumnSpec,
        hierarchies: &BTreeMap<String, Hierarchy>,
    ) -> Result<Ladder, GeneraliseError> {
        let enc = encode(column).map_err(|e| match e {
            GeneraliseError::Unsupported { column, dtype, .. } => GeneraliseError::Unsupported {
                column,
                rule: spec.rule.kind(),
                dtype,
            },
            other => other,
        })?;
        let levels = match &spec.rule {
            DeidRule::Hierarchy { name } => {
                let h = hierarchies
                    .get(name)
                    .ok_or_else(|| GeneraliseError::MissingHierarchy {
                        column: spec.name.clone(),
                        hierarchy: name.clone(),
                    })?;
                hierarchy_levels(spec, name, h, &enc)?
            }
            DeidRule::Bin { width, levels } => bin_levels(spec, *width, *levels, &enc)?,
            DeidRule::DateTruncate { finest } => date_levels(spec, *finest, &enc)?,
            // Keep, or any rule without a ladder: level 0 only.
            _ => Vec::new(),
        };
        let distinct = enc.distinct.len() as u32;
        // Row-weighted loss per level, via the frequency of each level-0 code.
        let mut freq = vec![0u64; distinct as usize];
        for &c in &enc.codes {
            freq[c as usize] += 1;
        }
        let mut row_loss = vec![0.0];
        for level in &levels {
            row_loss.push(
                freq.iter()
                    .enumerate()
                    .map(|(c, &f)| f as f64 * level.loss[level.map[c] as usize])
                    .sum(),
            );
        }
        debug_assert!(levels.iter().all(|l| l.map.iter().all(|&c| c != u32::MAX)));
        Ok(Ladder {
            column: spec.name.clone(),
            codes: enc.codes,
            distinct,
            levels,
            row_loss,
        })
    }

    /// Number of levels, level 0 included.
    pub fn height(&self) -> usize {
        self.levels.len() + 1
    }

    /// Number of distinct codes at `level`.
    pub fn cardinality(&self, level: usize) -> u32 {
        if level == 0 {
            self.distinct
        } else {
            self.levels[level - 1].labels.len() as u32
        }
    }

    /// The level-`level` code of level-0 code `code0`.
    #[inline]
    pub fn code_at(&self, level: usize, code0: u32) -> u32 {
        if level == 0 {
            code0
        } else {
            self.levels[level - 1].map[code0 as usize]
        }
    }

    /// LM loss of level-0 code `code0` generalised to `level`.
    #[inline]
    pub fn loss_at(&self, level: usize, code0: u32) -> f64 {
        if level == 0 {
            0.0
        } else {
            self.levels[level - 1].loss[self.code_at(level, code0) as usize]
        }
    }

    /// The label of row `row` at `level` (`None` for null); level 0 has no stored label.
    pub fn label(&self, level: usize, row: usize) -> Option<&str> {
        if level == 0 {
            return None;
        }
        let l = &self.levels[level - 1];
        l.labels[l.map[self.codes[row] as usize] as usize].as_deref()
    }

    /// The output column at `level`: the original cast to text at level 0, labels above.
    pub fn output(&self, level: usize, original: &Column) -> PolarsResult<Column> {
        if level == 0 {
            return original.cast(&DataType::String);
        }
        let l = &self.levels[level - 1];
        let ca: StringChunked = self
            .codes
            .iter()
            .map(|&c| l.labels[l.map[c as usize] as usize].as_deref())
            .collect();
        Ok(ca.with_name(original.name().clone()).into_column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deid::schema::{ColumnRole, ColumnType};

    fn spec(rule: DeidRule, t: ColumnType) -> ColumnSpec {
        ColumnSpec {
            name: "c".into(),
            column_type: t,
            role: ColumnRole::QuasiIdentifier,
            rule,
            domain: None,
            nullable: true,
        }
    }

    #[test]
    fn bins_nest_and_top_is_star() {
        let col = Column::new("c".into(), [Some(3i64), Some(17), Some(-1), None, Some(17)]);
        let ladder = Ladder::build(
            &col,
            &spec(
                DeidRule::Bin {
                    width: 5.0,
                    levels: 2,
                },
                ColumnType::Integer,
            ),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(ladder.height(), 4);
        assert_eq!(ladder.label(1, 0), Some("[0, 5)"));
        assert_eq!(ladder.label(1, 1), Some("[15, 20)"));
        assert_eq!(ladder.label(1, 2), Some("[-5, 0)"));
        assert_eq!(ladder.label(1, 3), None);
        assert_eq!(ladder.label(2, 1), Some("[10, 20)"));
        assert_eq!(ladder.label(2, 2), Some("[-10, 0)"));
        assert_eq!(ladder.label(3, 3), Some("*"));
        assert_eq!(ladder.loss_at(3, ladder.codes[0]), 1.0);
        assert_eq!(ladder.loss_at(0, ladder.codes[0]), 0.0);
    }

    #[test]
    fn dates_truncate() {
        let days = Int32Chunked::from_iter([Some(0), Some(19_000), Some(-1)]).into_date();
        let col = days.into_column().with_name("c".into());
        let ladder = Ladder::build(
            &col,
            &spec(
                DeidRule::DateTruncate {
                    finest: DateUnit::Month,
                },
                ColumnType::Date,
            ),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(ladder.label(1, 0), Some("1970-01"));
        assert_eq!(ladder.label(1, 1), Some("2022-01"));
        assert_eq!(ladder.label(2, 2), Some("1969"));
        assert_eq!(ladder.label(3, 2), Some("*"));
        assert_eq!(civil_from_days(19_000), (2022, 1, 8));
    }

    #[test]
    fn hierarchy_lookup_error_names_row_not_value() {
        let mut h = BTreeMap::new();
        h.insert(
            "h".to_owned(),
            Hierarchy {
                rows: vec![vec!["a".into(), "*".into()], vec!["b".into(), "*".into()]],
            },
        );
        let col = Column::new("c".into(), ["a", "b", "secret-value"]);
        let err = Ladder::build(
            &col,
            &spec(DeidRule::Hierarchy { name: "h".into() }, ColumnType::String),
            &h,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("record 3"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
