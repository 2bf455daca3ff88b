//! Dummy data: synthetic rows in the shape of a dataset's de-identified output.
//!
//! # Design
//!
//! Developers never see real rows, but they need something with the real shape to
//! write models against. [`dummy_frame`] takes only the declared
//! [`DatasetSchema`] (and optionally the generalisation levels the k-anonymity search
//! chose), so by construction it cannot leak a real row: it has no data input.
//!
//! The output mirrors what the pipeline publishes:
//!
//! | rule                         | dummy column                                         |
//! |------------------------------|------------------------------------------------------|
//! | `drop`                       | omitted                                              |
//! | `pseudonymise`               | random 32-hex strings                                |
//! | `mask`                       | a valid synthetic identifier ([`mask::generate`]) passed through the real [`mask::Masker`] |
//! | ladder at level `L > 0`      | `String` labels of level `L`: hierarchy column `L`; `[lo, hi)` bins of `width * 2^(L-1)`; `YYYY-MM` / `YYYY` for dates; `*` at the top |
//! | anything else (level 0)      | raw values of the declared type                      |
//!
//! Like the pipeline ([`super::pipeline`]), every quasi-identifier column is written as
//! text, at level 0 too (the raw value cast to `String` by polars, e.g. `39`,
//! `2024-01-31`); other kept columns keep their declared type.
//!
//! Raw values come from the declared [`Domain`] (categories: uniform choice; range:
//! uniform, integral for integer columns; date range: uniform day; identifier: valid
//! synthetic identifiers), else from the level-0 values of the column's hierarchy, else
//! from type-appropriate placeholders (`text_0042`, integers 0–999, floats 0–1000,
//! dates 2000–2024, booleans). Top/bottom-coded columns are clamped to their codes.
//! Nullable columns get about 5% nulls.
//!
//! Generation is deterministic per seed: each column has its own `ChaCha8Rng` seeded
//! with `seed` and a stream derived from the column name (BLAKE3), so a column's values
//! do not change when other columns are added, removed or reordered.

use std::collections::BTreeMap;

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ingest::{days_from_civil, format_iso_date, parse_iso_date};
use super::mask;
use super::schema::{
    ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DateUnit, DeidRule, Domain, MaskFormat,
};

/// Share of nulls in nullable columns.
const NULL_RATE: f64 = 0.05;

/// Why dummy data cannot be generated for a schema (names columns, never values).
#[derive(Debug, thiserror::Error)]
pub enum DummyError {
    /// A `hierarchy` rule names a hierarchy that is not supplied, or it is empty.
    #[error("column \"{column}\": hierarchy \"{hierarchy}\" is missing or empty")]
    MissingHierarchy {
        /// Column name.
        column: String,
        /// Hierarchy name.
        hierarchy: String,
    },
    /// A requested level is above the column's ladder.
    #[error("column \"{column}\": level {level} is above the highest level {max}")]
    LevelOutOfRange {
        /// Column name.
        column: String,
        /// Requested level.
        level: u8,
        /// Highest level of the column's ladder (0 if it has none).
        max: u8,
    },
    /// The declared domain does not fit the column type.
    #[error("column \"{column}\": invalid domain ({reason})")]
    InvalidDomain {
        /// Column name.
        column: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A mask rule cannot be built (bad regex).
    #[error("column \"{column}\": {source}")]
    Mask {
        /// Column name.
        column: String,
        /// The mask error (about the pattern, never data).
        #[source]
        source: mask::MaskError,
    },
    /// Building the frame failed (internal).
    #[error("internal error while building the dummy frame: {0}")]
    Polars(#[from] PolarsError),
}

/// One raw (level-0) value of the declared type.
#[derive(Clone, Debug)]
enum Cell {
    Str(String),
    Int(i64),
    Float(f64),
    Date(i32),
    Bool(bool),
}

impl Cell {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(v) => Some(*v as f64),
            Cell::Float(v) => Some(*v),
            _ => None,
        }
    }
}

/// Draws raw values of the declared type.
enum RawSampler {
    Choice(Vec<Cell>),
    IntRange(i64, i64),
    FloatRange(f64, f64),
    DateRange(i32, i32),
    Identifier(MaskFormat),
    PlaceholderText,
    AnyBool,
}

impl RawSampler {
    fn sample(&self, rng: &mut ChaCha8Rng) -> Cell {
        match self {
            RawSampler::Choice(cells) => cells
                .choose(rng)
                .cloned()
                .unwrap_or_else(|| Cell::Str(String::new())),
            RawSampler::IntRange(lo, hi) => Cell::Int(rng.gen_range(*lo..=*hi)),
            RawSampler::FloatRange(lo, hi) => Cell::Float(if lo < hi {
                rng.gen_range(*lo..*hi)
            } else {
                *lo
            }),
            RawSampler::DateRange(lo, hi) => Cell::Date(rng.gen_range(*lo..=*hi)),
            RawSampler::Identifier(format) => Cell::Str(mask::generate(format, rng)),
            RawSampler::PlaceholderText => {
                Cell::Str(format!("text_{:04}", rng.gen_range(0..10_000)))
            }
            RawSampler::AnyBool => Cell::Bool(rng.gen_bool(0.5)),
        }
    }
}

/// What one output column is drawn from.
enum Sampler {
    /// Pseudonym-shaped: 32 random hex characters.
    Hex32,
    /// A synthetic identifier passed through the pipeline's mask.
    Masked(MaskFormat, mask::Masker),
    /// A fixed generalisation label (the top of a ladder).
    Star,
    /// Labels of one hierarchy level (drawn by hierarchy row, so with its multiplicity).
    Labels(Vec<String>),
    /// `[lo, hi)` bins of `base * 2^shift`, nested in the finest bins like the pipeline's.
    Bin {
        raw: RawSampler,
        base: f64,
        shift: u32,
    },
    /// Dates truncated to a month (`YYYY-MM`) or a year (`YYYY`).
    DateTrunc { raw: RawSampler, unit: DateUnit },
    /// Raw values of the declared type, optionally top/bottom-coded.
    Raw {
        raw: RawSampler,
        clamp: Option<(f64, f64)>,
    },
}

/// Formats a bin edge as the pipeline does: rounded to 1e-9, integral without `.0`.
fn fmt_edge(v: f64) -> String {
    let r = (v * 1e9).round() / 1e9;
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

impl Sampler {
    /// Whether the output column keeps the declared type (else it is `String`).
    fn is_raw(&self) -> bool {
        matches!(self, Sampler::Raw { .. })
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> Cell {
        match self {
            Sampler::Hex32 => {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                Cell::Str(hex::encode(bytes))
            }
            Sampler::Masked(format, masker) => {
                Cell::Str(masker.mask(&mask::generate(format, rng)).value)
            }
            Sampler::Star => Cell::Str("*".to_owned()),
            Sampler::Labels(labels) => Cell::Str(
                labels
                    .choose(rng)
                    .cloned()
                    .unwrap_or_else(|| "*".to_owned()),
            ),
            Sampler::Bin { raw, base, shift } => {
                let v = raw.sample(rng).as_f64().unwrap_or(0.0);
                let width = base * 2f64.powi(*shift as i32);
                let idx = (v / base).floor() as i64;
                // An arithmetic shift floors, so coarser bins nest in finer ones.
                let key = idx
                    .checked_shr(*shift)
                    .unwrap_or(if idx < 0 { -1 } else { 0 });
                let lo = key as f64 * width;
                Cell::Str(format!("[{}, {})", fmt_edge(lo), fmt_edge(lo + width)))
            }
            Sampler::DateTrunc { raw, unit } => {
                let days = match raw.sample(rng) {
                    Cell::Date(d) => d,
                    _ => 0,
                };
                let text = format_iso_date(days);
                Cell::Str(match unit {
                    DateUnit::Month => text[..7].to_owned(),
                    DateUnit::Year => text[..4].to_owned(),
                })
            }
            Sampler::Raw { raw, clamp } => {
                let cell = raw.sample(rng);
                match (cell, clamp) {
                    (Cell::Int(v), Some((lo, hi))) => Cell::Int((v as f64).clamp(*lo, *hi) as i64),
                    (Cell::Float(v), Some((lo, hi))) => Cell::Float(v.clamp(*lo, *hi)),
                    (cell, _) => cell,
                }
            }
        }
    }
}

/// Parses a domain/hierarchy text into a raw value of `t`.
fn parse_cell(t: ColumnType, text: &str) -> Option<Cell> {
    let s = text.trim();
    match t {
        ColumnType::String => Some(Cell::Str(text.to_owned())),
        ColumnType::Integer => s.parse().ok().map(Cell::Int),
        ColumnType::Float => s
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Cell::Float),
        ColumnType::Date => parse_iso_date(s.as_bytes()).map(Cell::Date),
        ColumnType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(Cell::Bool(true)),
            "false" | "0" => Some(Cell::Bool(false)),
            _ => None,
        },
    }
}

/// The level-0 value sampler of a column: domain, else hierarchy level 0, else placeholder.
fn raw_sampler(spec: &ColumnSpec, schema: &DatasetSchema) -> Result<RawSampler, DummyError> {
    let bad = |reason: &'static str| DummyError::InvalidDomain {
        column: spec.name.clone(),
        reason,
    };
    let t = spec.column_type;
    if let Some(domain) = &spec.domain {
        return match domain {
            Domain::Categories { values } => {
                let cells = values
                    .iter()
                    .map(|v| parse_cell(t, v))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("a category does not parse as the column type"))?;
                if cells.is_empty() {
                    return Err(bad("categories must not be empty"));
                }
                Ok(RawSampler::Choice(cells))
            }
            Domain::Range { min, max } => {
                if !(min.is_finite() && max.is_finite() && min <= max) {
                    return Err(bad("range bounds must be finite with min <= max"));
                }
                match t {
                    ColumnType::Integer => {
                        let (lo, hi) = (min.ceil(), max.floor());
                        if lo > hi {
                            return Err(bad("the range contains no integer"));
                        }
                        Ok(RawSampler::IntRange(lo as i64, hi as i64))
                    }
                    ColumnType::Float => Ok(RawSampler::FloatRange(*min, *max)),
                    _ => Err(bad("a numeric range needs an integer or float column")),
                }
            }
            Domain::DateRange { min, max } => {
                if t != ColumnType::Date {
                    return Err(bad("a date range needs a date column"));
                }
                match (
                    parse_iso_date(min.trim().as_bytes()),
                    parse_iso_date(max.trim().as_bytes()),
                ) {
                    (Some(lo), Some(hi)) if lo <= hi => Ok(RawSampler::DateRange(lo, hi)),
                    _ => Err(bad(
                        "date range bounds must be YYYY-MM-DD dates with min <= max",
                    )),
                }
            }
            Domain::Identifier(format) => {
                if t != ColumnType::String {
                    return Err(bad("an identifier domain needs a string column"));
                }
                Ok(RawSampler::Identifier(format.clone()))
            }
        };
    }
    if let DeidRule::Hierarchy { name } = &spec.rule
        && let Some(h) = schema.hierarchies.get(name)
    {
        let cells: Vec<Cell> = h
            .rows
            .iter()
            .filter_map(|r| r.first())
            .filter_map(|v| parse_cell(t, v))
            .collect();
        if !cells.is_empty() {
            return Ok(RawSampler::Choice(cells));
        }
    }
    Ok(match t {
        ColumnType::String => RawSampler::PlaceholderText,
        ColumnType::Integer => RawSampler::IntRange(0, 999),
        ColumnType::Float => RawSampler::FloatRange(0.0, 1000.0),
        ColumnType::Date => RawSampler::DateRange(
            days_from_civil(2000, 1, 1) as i32,
            days_from_civil(2024, 12, 31) as i32,
        ),
        ColumnType::Boolean => RawSampler::AnyBool,
    })
}

/// Chooses the sampler for one column at `level`; `None` for a dropped column.
fn sampler(
    spec: &ColumnSpec,
    schema: &DatasetSchema,
    level: u8,
) -> Result<Option<Sampler>, DummyError> {
    let out_of_range = |max: u8| DummyError::LevelOutOfRange {
        column: spec.name.clone(),
        level,
        max,
    };
    let sampler = match &spec.rule {
        DeidRule::Drop => return Ok(None),
        DeidRule::Pseudonymise => Ok(Sampler::Hex32),
        DeidRule::Mask(format) => {
            let masker = mask::Masker::new(format).map_err(|source| DummyError::Mask {
                column: spec.name.clone(),
                source,
            })?;
            Ok(Sampler::Masked(format.clone(), masker))
        }
        DeidRule::Hierarchy { name } => {
            let rows = schema
                .hierarchies
                .get(name)
                .map(|h| &h.rows)
                .filter(|rows| rows.iter().any(|r| !r.is_empty()))
                .ok_or_else(|| DummyError::MissingHierarchy {
                    column: spec.name.clone(),
                    hierarchy: name.clone(),
                })?;
            if level == 0 {
                return Ok(Some(Sampler::Raw {
                    raw: raw_sampler(spec, schema)?,
                    clamp: None,
                }));
            }
            let max = rows
                .iter()
                .map(|r| r.len().saturating_sub(1))
                .min()
                .unwrap_or(0);
            if usize::from(level) > max {
                return Err(out_of_range(u8::try_from(max).unwrap_or(u8::MAX)));
            }
            Ok(Sampler::Labels(
                rows.iter().map(|r| r[usize::from(level)].clone()).collect(),
            ))
        }
        DeidRule::Bin { width, levels } => {
            let top = levels.saturating_add(1);
            if level == 0 {
                Ok(Sampler::Raw {
                    raw: raw_sampler(spec, schema)?,
                    clamp: None,
                })
            } else if level > top {
                Err(out_of_range(top))
            } else if level == top {
                Ok(Sampler::Star)
            } else {
                let shift = u32::from(level - 1);
                Ok(Sampler::Bin {
                    raw: raw_sampler(spec, schema)?,
                    base: *width,
                    shift,
                })
            }
        }
        DeidRule::DateTruncate { finest } => {
            let steps: &[DateUnit] = match finest {
                DateUnit::Month => &[DateUnit::Month, DateUnit::Year],
                DateUnit::Year => &[DateUnit::Year],
            };
            let top = steps.len() as u8 + 1;
            match level {
                0 => Ok(Sampler::Raw {
                    raw: raw_sampler(spec, schema)?,
                    clamp: None,
                }),
                l if l == top => Ok(Sampler::Star),
                l if l > top => Err(out_of_range(top)),
                l => Ok(Sampler::DateTrunc {
                    raw: raw_sampler(spec, schema)?,
                    unit: steps[usize::from(l - 1)],
                }),
            }
        }
        DeidRule::Keep | DeidRule::TopBottom { .. } => {
            if level > 0 {
                return Err(out_of_range(0));
            }
            let clamp = match spec.rule {
                DeidRule::TopBottom { lower, upper } => Some((lower, upper)),
                _ => None,
            };
            Ok(Sampler::Raw {
                raw: raw_sampler(spec, schema)?,
                clamp,
            })
        }
    };
    sampler.map(Some)
}

/// A per-column generator: `seed` plus a stream derived from the column name.
fn column_rng(seed: u64, name: &str) -> ChaCha8Rng {
    let digest = blake3::hash(name.as_bytes());
    let mut stream = [0u8; 8];
    stream.copy_from_slice(&digest.as_bytes()[..8]);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from_le_bytes(stream));
    rng
}

/// Draws `rows` cells and assembles them into a column named after `spec`.
fn build_column(
    spec: &ColumnSpec,
    sampler: &Sampler,
    rows: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Column, DummyError> {
    let name = PlSmallStr::from_str(&spec.name);
    let out_type = if sampler.is_raw() {
        spec.column_type
    } else {
        ColumnType::String
    };
    let mut cells: Vec<Option<Cell>> = Vec::with_capacity(rows);
    for _ in 0..rows {
        let null = spec.nullable && rng.gen_bool(NULL_RATE);
        cells.push(if null {
            None
        } else {
            Some(sampler.sample(rng))
        });
    }
    let series = match out_type {
        ColumnType::String => {
            let ca: StringChunked = cells
                .into_iter()
                .map(|c| match c {
                    Some(Cell::Str(s)) => Some(s),
                    _ => None,
                })
                .collect();
            ca.with_name(name).into_series()
        }
        ColumnType::Integer => {
            let ca: Int64Chunked = cells
                .into_iter()
                .map(|c| {
                    if let Some(Cell::Int(v)) = c {
                        Some(v)
                    } else {
                        None
                    }
                })
                .collect();
            ca.with_name(name).into_series()
        }
        ColumnType::Float => {
            let ca: Float64Chunked = cells
                .into_iter()
                .map(|c| {
                    if let Some(Cell::Float(v)) = c {
                        Some(v)
                    } else {
                        None
                    }
                })
                .collect();
            ca.with_name(name).into_series()
        }
        ColumnType::Date => {
            let ca: Int32Chunked = cells
                .into_iter()
                .map(|c| {
                    if let Some(Cell::Date(v)) = c {
                        Some(v)
                    } else {
                        None
                    }
                })
                .collect();
            ca.with_name(name).into_date().into_series()
        }
        ColumnType::Boolean => {
            let ca: BooleanChunked = cells
                .into_iter()
                .map(|c| {
                    if let Some(Cell::Bool(v)) = c {
                        Some(v)
                    } else {
                        None
                    }
                })
                .collect();
            ca.with_name(name).into_series()
        }
    };
    // The pipeline writes every quasi-identifier as text, level 0 included.
    let series = if spec.role == ColumnRole::QuasiIdentifier && series.dtype() != &DataType::String
    {
        series.cast(&DataType::String)?
    } else {
        series
    };
    Ok(series.into_column())
}

/// Synthetic rows shaped like the de-identified output of `schema` at `levels`.
///
/// `levels` maps column names to generalisation levels (absent columns are at level
/// 0). The function takes no data input, so it cannot reproduce a real row.
pub fn dummy_frame(
    schema: &DatasetSchema,
    levels: Option<&BTreeMap<String, u8>>,
    rows: usize,
    seed: u64,
) -> Result<DataFrame, DummyError> {
    let mut columns = Vec::new();
    for spec in &schema.columns {
        let level = levels.and_then(|l| l.get(&spec.name)).copied().unwrap_or(0);
        let Some(sampler) = sampler(spec, schema, level)? else {
            continue;
        };
        let mut rng = column_rng(seed, &spec.name);
        columns.push(build_column(spec, &sampler, rows, &mut rng)?);
    }
    Ok(DataFrame::new(columns)?)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};
    use std::path::Path;

    use regex::Regex;

    use super::*;
    use crate::deid::schema::Hierarchy;

    const ADULT_QIS: [&str; 8] = [
        "sex",
        "age",
        "race",
        "marital-status",
        "education",
        "native-country",
        "workclass",
        "occupation",
    ];

    fn adult_hierarchy(name: &str) -> Hierarchy {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "../../shared/data/adult/adult_hierarchy_{name}.csv"
        ));
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .has_headers(false)
            .from_path(path)
            .unwrap();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        Hierarchy { rows }
    }

    fn spec(name: &str, column_type: ColumnType, role: ColumnRole, rule: DeidRule) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            column_type,
            role,
            rule,
            domain: None,
            nullable: false,
        }
    }

    fn adult_schema() -> DatasetSchema {
        let mut columns: Vec<ColumnSpec> = ADULT_QIS
            .iter()
            .map(|n| {
                let t = if *n == "age" {
                    ColumnType::Integer
                } else {
                    ColumnType::String
                };
                spec(
                    n,
                    t,
                    ColumnRole::QuasiIdentifier,
                    DeidRule::Hierarchy { name: (*n).into() },
                )
            })
            .collect();
        let mut salary = spec(
            "salary-class",
            ColumnType::String,
            ColumnRole::Sensitive,
            DeidRule::Keep,
        );
        salary.domain = Some(Domain::Categories {
            values: vec!["<=50K".into(), ">50K".into()],
        });
        columns.push(salary);
        let hierarchies = ADULT_QIS
            .iter()
            .map(|n| ((*n).to_owned(), adult_hierarchy(n)))
            .collect();
        DatasetSchema {
            columns,
            hierarchies,
            privacy: Default::default(),
        }
    }

    fn strings(frame: &DataFrame, name: &str) -> Vec<Option<String>> {
        let s = frame.column(name).unwrap().as_materialized_series();
        s.str()
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    fn level_values(schema: &DatasetSchema, column: &str, level: usize) -> HashSet<String> {
        schema.hierarchies[column]
            .rows
            .iter()
            .map(|r| r[level].clone())
            .collect()
    }

    #[test]
    fn adult_level_zero_has_the_declared_shape_and_domains() {
        let schema = adult_schema();
        let frame = dummy_frame(&schema, None, 2_000, 7).unwrap();
        assert_eq!(frame.height(), 2_000);
        let names: Vec<String> = frame
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let declared: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, declared);
        // Quasi-identifiers are text in the de-identified output, level 0 included.
        for name in ADULT_QIS {
            assert_eq!(frame.column(name).unwrap().dtype(), &DataType::String);
            let allowed = level_values(&schema, name, 0);
            for v in strings(&frame, name) {
                assert!(allowed.contains(&v.unwrap()), "{name}");
            }
        }
        let salaries: BTreeSet<String> = strings(&frame, "salary-class")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(
            salaries,
            BTreeSet::from(["<=50K".to_owned(), ">50K".to_owned()])
        );
        assert!(frame.get_columns().iter().all(|c| c.null_count() == 0));
    }

    #[test]
    fn adult_levels_draw_hierarchy_labels() {
        let schema = adult_schema();
        let levels = BTreeMap::from([
            ("age".to_owned(), 2u8),
            ("sex".to_owned(), 1),
            ("education".to_owned(), 3),
            ("race".to_owned(), 0),
        ]);
        let frame = dummy_frame(&schema, Some(&levels), 1_000, 1).unwrap();
        assert_eq!(frame.column("age").unwrap().dtype(), &DataType::String);
        assert_eq!(frame.column("race").unwrap().dtype(), &DataType::String);
        for (name, level) in [("age", 2), ("sex", 1), ("education", 3), ("race", 0)] {
            let allowed = level_values(&schema, name, level);
            for v in strings(&frame, name) {
                assert!(allowed.contains(&v.unwrap()), "{name} at level {level}");
            }
        }
        let too_high = BTreeMap::from([("sex".to_owned(), 9u8)]);
        assert!(matches!(
            dummy_frame(&schema, Some(&too_high), 10, 1),
            Err(DummyError::LevelOutOfRange { level: 9, .. })
        ));
    }

    #[test]
    fn deterministic_per_seed_and_per_column() {
        let schema = adult_schema();
        let a = dummy_frame(&schema, None, 500, 42).unwrap();
        let b = dummy_frame(&schema, None, 500, 42).unwrap();
        let c = dummy_frame(&schema, None, 500, 43).unwrap();
        assert!(a.equals_missing(&b));
        assert!(!a.equals_missing(&c));
        // Dropping a column leaves the others unchanged.
        let mut fewer = schema.clone();
        fewer.columns[0].rule = DeidRule::Drop;
        let d = dummy_frame(&fewer, None, 500, 42).unwrap();
        assert!(d.column(&schema.columns[0].name).is_err());
        assert_eq!(strings(&d, "race"), strings(&a, "race"));
    }

    fn rules_schema() -> DatasetSchema {
        use ColumnRole::*;
        use ColumnType as T;
        let mut income = spec(
            "income",
            T::Float,
            Sensitive,
            DeidRule::TopBottom {
                lower: 1_000.0,
                upper: 9_000.0,
            },
        );
        income.domain = Some(Domain::Range {
            min: 0.0,
            max: 20_000.0,
        });
        let mut birth = spec(
            "birth",
            T::Date,
            QuasiIdentifier,
            DeidRule::DateTruncate {
                finest: DateUnit::Month,
            },
        );
        birth.domain = Some(Domain::DateRange {
            min: "1990-01-01".into(),
            max: "1999-12-31".into(),
        });
        let mut zip = spec(
            "zip",
            T::Integer,
            QuasiIdentifier,
            DeidRule::Bin {
                width: 10.0,
                levels: 2,
            },
        );
        zip.domain = Some(Domain::Range {
            min: 100.0,
            max: 199.0,
        });
        let mut updated = spec("updated", T::Date, Other, DeidRule::Keep);
        updated.domain = birth.domain.clone();
        let mut note = spec("note", T::String, Other, DeidRule::Keep);
        note.nullable = true;
        let mut grade = spec("grade", T::Integer, Other, DeidRule::Keep);
        grade.domain = Some(Domain::Categories {
            values: vec!["1".into(), "2".into(), "3".into()],
        });
        DatasetSchema {
            columns: vec![
                spec("id", T::String, DirectIdentifier, DeidRule::Drop),
                spec("pid", T::String, DirectIdentifier, DeidRule::Pseudonymise),
                spec(
                    "phone",
                    T::String,
                    DirectIdentifier,
                    DeidRule::Mask(MaskFormat::Mobile),
                ),
                spec(
                    "rid",
                    T::String,
                    DirectIdentifier,
                    DeidRule::Mask(MaskFormat::ResidentId),
                ),
                spec(
                    "who",
                    T::String,
                    DirectIdentifier,
                    DeidRule::Mask(MaskFormat::PersonName),
                ),
                income,
                birth,
                zip,
                updated,
                note,
                grade,
                spec("flag", T::Boolean, Other, DeidRule::Keep),
            ],
            hierarchies: BTreeMap::new(),
            privacy: Default::default(),
        }
    }

    fn all_match(frame: &DataFrame, column: &str, pattern: &str) {
        let re = Regex::new(pattern).unwrap();
        for v in strings(frame, column) {
            let v = v.unwrap();
            assert!(re.is_match(&v), "{column}: {v:?} does not match {pattern}");
        }
    }

    #[test]
    fn rules_shape_the_output() {
        let schema = rules_schema();
        let frame = dummy_frame(&schema, None, 4_000, 9).unwrap();
        assert!(frame.column("id").is_err(), "dropped columns are omitted");
        assert_eq!(frame.width(), schema.columns.len() - 1);
        all_match(&frame, "pid", "^[0-9a-f]{32}$");
        all_match(&frame, "phone", r"^1[3-9]\d\*{4}\d{4}$");
        all_match(&frame, "rid", r"^\d{6}\*{8}\d{3}[\dX]$");
        all_match(&frame, "who", r"^\p{Han}\*{1,2}$");

        let income = frame
            .column("income")
            .unwrap()
            .as_materialized_series()
            .f64()
            .unwrap()
            .clone();
        assert!(income.min().unwrap() >= 1_000.0 && income.max().unwrap() <= 9_000.0);
        // Quasi-identifiers are text even at level 0, like the pipeline's output.
        let (lo, hi) = (
            parse_iso_date(b"1990-01-01").unwrap(),
            parse_iso_date(b"1999-12-31").unwrap(),
        );
        for v in strings(&frame, "birth").into_iter().flatten() {
            let d = parse_iso_date(v.as_bytes()).unwrap();
            assert!((lo..=hi).contains(&d), "{v}");
        }
        for v in strings(&frame, "zip").into_iter().flatten() {
            assert!((100..=199).contains(&v.parse::<i64>().unwrap()), "{v}");
        }
        let updated = frame.column("updated").unwrap();
        assert_eq!(updated.dtype(), &DataType::Date);
        let days = updated
            .as_materialized_series()
            .date()
            .unwrap()
            .physical()
            .clone();
        assert!(days.min().unwrap() >= lo && days.max().unwrap() <= hi);
        assert_eq!(frame.column("grade").unwrap().dtype(), &DataType::Int64);
        let grade = frame
            .column("grade")
            .unwrap()
            .as_materialized_series()
            .i64()
            .unwrap()
            .clone();
        assert!(grade.iter().all(|v| matches!(v, Some(1..=3))));
        assert_eq!(frame.column("flag").unwrap().dtype(), &DataType::Boolean);

        let notes = strings(&frame, "note");
        let nulls = notes.iter().filter(|v| v.is_none()).count();
        assert!((80..=320).contains(&nulls), "about 5% nulls, got {nulls}");
        assert!(
            notes
                .iter()
                .flatten()
                .all(|v| Regex::new(r"^text_\d{4}$").unwrap().is_match(v))
        );
        for c in ["pid", "phone", "income", "birth", "zip"] {
            assert_eq!(
                frame.column(c).unwrap().null_count(),
                0,
                "{c} is not nullable"
            );
        }
    }

    #[test]
    fn ladders_for_bins_and_dates() {
        let schema = rules_schema();
        let at = |birth: u8, zip: u8| {
            let levels = BTreeMap::from([("birth".to_owned(), birth), ("zip".to_owned(), zip)]);
            dummy_frame(&schema, Some(&levels), 500, 3)
        };
        let frame = at(1, 1).unwrap();
        all_match(&frame, "birth", r"^199\d-(0[1-9]|1[0-2])$");
        let bin10 = Regex::new(r"^\[(\d+), (\d+)\)$").unwrap();
        for v in strings(&frame, "zip").into_iter().flatten() {
            let caps = bin10.captures(&v).unwrap();
            let (lo, hi): (i64, i64) = (caps[1].parse().unwrap(), caps[2].parse().unwrap());
            assert_eq!((lo % 10, hi - lo), (0, 10), "{v}");
            assert!((100..=190).contains(&lo), "{v}");
        }
        let frame = at(2, 2).unwrap();
        all_match(&frame, "birth", r"^199\d$");
        for v in strings(&frame, "zip").into_iter().flatten() {
            assert!(
                [
                    "[100, 120)",
                    "[120, 140)",
                    "[140, 160)",
                    "[160, 180)",
                    "[180, 200)"
                ]
                .contains(&v.as_str()),
                "{v}"
            );
        }
        let frame = at(3, 3).unwrap();
        all_match(&frame, "birth", r"^\*$");
        all_match(&frame, "zip", r"^\*$");
        assert!(matches!(
            at(4, 0),
            Err(DummyError::LevelOutOfRange { max: 3, .. })
        ));
        assert!(matches!(
            at(0, 4),
            Err(DummyError::LevelOutOfRange { max: 3, .. })
        ));
        let keep = BTreeMap::from([("grade".to_owned(), 1u8)]);
        assert!(matches!(
            dummy_frame(&schema, Some(&keep), 5, 0),
            Err(DummyError::LevelOutOfRange { max: 0, .. })
        ));
    }

    #[test]
    fn bad_declarations_are_reported() {
        let mut schema = adult_schema();
        schema.hierarchies.remove("sex");
        assert!(matches!(
            dummy_frame(&schema, None, 5, 0),
            Err(DummyError::MissingHierarchy { .. })
        ));
        let mut schema = rules_schema();
        schema.columns[10].domain = Some(Domain::Categories {
            values: vec!["one".into()],
        });
        assert!(matches!(
            dummy_frame(&schema, None, 5, 0),
            Err(DummyError::InvalidDomain { .. })
        ));
    }
}
