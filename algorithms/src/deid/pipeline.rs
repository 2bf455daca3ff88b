//! The de-identification pipeline: one validated frame in, a k-anonymous frame and its
//! report out.
//!
//! Steps:
//! 1. validate the schema and conform each declared column to its type;
//! 2. per column: drop, pseudonymise ([`super::pseudonym`]), mask ([`super::mask`]),
//!    top/bottom-code, or keep; quasi-identifiers become ladders
//!    ([`super::generalise`]);
//! 3. compress the rows into a frequency table and search the lattice
//!    ([`super::lattice`]) for the least-lossy node satisfying k (and l) within the
//!    suppression limit;
//! 4. write each quasi-identifier at its chosen level (as text, `*` at the top), drop
//!    the records of unsafe classes, and measure risk ([`super::risk`]).
//!
//! Column-wise work is plain Rust over polars `ChunkedArray`s: every step is a single
//! pass over one column, which is simpler and no slower than an expression plan here.
//! Errors name columns and record numbers but never a cell value, because their
//! messages reach HTTP clients.

use std::collections::BTreeMap;
use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::generalise::{GeneraliseError, Ladder, encode};
use super::lattice::{FrequencyTable, LatticeError, Search};
use super::mask::{MaskError, Masker};
use super::pseudonym::Pseudonymiser;
use super::risk::assess;
use super::schema::{ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule, SchemaError};

pub use super::lattice::{InformationLoss, LatticeStats};
pub use super::mask::MaskStats;
pub use super::risk::RiskReport;

/// Why a frame cannot be de-identified. No variant carries a cell value.
#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    /// The schema is inconsistent.
    #[error("invalid schema: {0}")]
    Schema(#[from] SchemaError),
    /// A declared column is absent from the frame.
    #[error("column `{column}` is declared but missing from the data")]
    MissingColumn {
        /// Column name.
        column: String,
    },
    /// A column's physical type does not match its declared type.
    #[error("column `{column}` has type {found}, but {expected} is declared")]
    WrongType {
        /// Column name.
        column: String,
        /// Declared type.
        expected: &'static str,
        /// Physical type found.
        found: String,
    },
    /// A quasi-identifier cannot be generalised.
    #[error(transparent)]
    Generalise(#[from] GeneraliseError),
    /// The lattice search has no answer.
    #[error(transparent)]
    Lattice(#[from] LatticeError),
    /// A mask cannot be built.
    #[error("column `{column}`: {reason}")]
    Mask {
        /// Column name.
        column: String,
        /// What is wrong with the mask (never data).
        reason: String,
    },
    /// A frame operation failed; polars' own message is withheld as it may quote data.
    #[error("internal error while {0}")]
    Frame(&'static str),
}

/// What the pipeline did, for the catalog, the certificate and the risk report.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeidReport {
    /// Target k.
    pub k_target: u32,
    /// Smallest released class (0 when nothing is released; the row count without QIs).
    pub k_achieved: u32,
    /// Target l, if l-diversity was requested.
    pub l_target: Option<u32>,
    /// Fewest distinct sensitive values in a released class, when there are sensitive columns.
    pub l_achieved: Option<u32>,
    /// Records in.
    pub records_in: u64,
    /// Records released.
    pub records_out: u64,
    /// Records suppressed.
    pub suppressed: u64,
    /// Most records that could have been suppressed.
    pub suppression_limit: u64,
    /// Chosen generalisation level per quasi-identifier (0 = original).
    pub levels: BTreeMap<String, u8>,
    /// Search effort.
    pub lattice: LatticeStats,
    /// Re-identification risk.
    pub risk: RiskReport,
    /// Information loss.
    pub information_loss: InformationLoss,
    /// Masking counts per masked column.
    pub masked: BTreeMap<String, MaskStats>,
    /// Columns removed.
    pub dropped: Vec<String>,
    /// Columns replaced by keyed pseudonyms.
    pub pseudonymised: Vec<String>,
    /// Wall time of the pipeline.
    pub elapsed_ms: u64,
}

/// The de-identified frame and its report.
#[derive(Clone, Debug)]
pub struct DeidOutput {
    /// Declared columns minus dropped ones, in schema order; QIs as text.
    pub frame: DataFrame,
    /// What was done and what it achieved.
    pub report: DeidReport,
}

fn expected_dtype(t: ColumnType) -> DataType {
    match t {
        ColumnType::String => DataType::String,
        ColumnType::Integer => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Date => DataType::Date,
        ColumnType::Boolean => DataType::Boolean,
    }
}

/// The column with its declared physical type; lossless widenings are applied.
fn conform(frame: &DataFrame, spec: &ColumnSpec) -> Result<Column, DeidError> {
    let col = frame
        .column(&spec.name)
        .map_err(|_| DeidError::MissingColumn {
            column: spec.name.clone(),
        })?;
    let expected = expected_dtype(spec.column_type);
    let found = col.dtype();
    if *found == expected {
        return Ok(col.clone());
    }
    use DataType as D;
    // Only widenings that cannot change a value (and all-null columns) are accepted.
    let small_int = matches!(
        found,
        D::Int8 | D::Int16 | D::Int32 | D::UInt8 | D::UInt16 | D::UInt32
    );
    let widen = *found == D::Null
        || match spec.column_type {
            ColumnType::Integer => small_int,
            ColumnType::Float => small_int || *found == D::Float32,
            _ => false,
        };
    if widen {
        col.cast(&expected)
            .map_err(|_| DeidError::Frame("widening a column"))
    } else {
        Err(DeidError::WrongType {
            column: spec.name.clone(),
            expected: spec.column_type.as_str(),
            found: found.to_string(),
        })
    }
}

fn pseudonymise(col: &Column, p: &Pseudonymiser) -> Result<Column, DeidError> {
    let text = col
        .cast(&DataType::String)
        .map_err(|_| DeidError::Frame("pseudonymising a column"))?;
    let ca = text
        .str()
        .map_err(|_| DeidError::Frame("pseudonymising a column"))?;
    let out: StringChunked = ca.iter().map(|v| v.map(|s| p.pseudonym(s))).collect();
    Ok(out.with_name(col.name().clone()).into_column())
}

fn mask(col: &Column, masker: &Masker, stats: &mut MaskStats) -> Result<Column, DeidError> {
    let ca = col
        .str()
        .map_err(|_| DeidError::Frame("masking a column"))?;
    let out: StringChunked = ca
        .iter()
        .map(|v| {
            v.map(|s| {
                let m = masker.mask(s);
                stats.masked += 1;
                stats.invalid += u64::from(!m.valid);
                m.value
            })
        })
        .collect();
    Ok(out.with_name(col.name().clone()).into_column())
}

fn top_bottom(col: &Column, lower: f64, upper: f64) -> Result<Column, DeidError> {
    let name = col.name().clone();
    let err = |_| DeidError::Frame("top/bottom coding a column");
    Ok(match col.dtype() {
        DataType::Int64 => {
            // Validation guarantees integral bounds for integer columns.
            let (lo, hi) = (lower as i64, upper as i64);
            let ca: Int64Chunked = col
                .i64()
                .map_err(err)?
                .iter()
                .map(|v| v.map(|x| x.clamp(lo, hi)))
                .collect();
            ca.with_name(name).into_column()
        }
        _ => {
            // NaN stays NaN: it is neither below nor above the bounds.
            let ca: Float64Chunked = col
                .f64()
                .map_err(err)?
                .iter()
                .map(|v| v.map(|x| if x.is_nan() { x } else { x.clamp(lower, upper) }))
                .collect();
            ca.with_name(name).into_column()
        }
    })
}

/// De-identifies `frame` according to `schema`, with `secret` as the dataset's pseudonym secret.
pub fn deidentify(
    frame: DataFrame,
    schema: &DatasetSchema,
    secret: &[u8; 32],
) -> Result<DeidOutput, DeidError> {
    let started = Instant::now();
    schema.validate()?;
    let n = frame.height();
    if n > u32::MAX as usize {
        return Err(LatticeError::TooManyRecords.into());
    }
    let pseudonymiser = Pseudonymiser::new(secret);

    // Output slot per kept column: either a finished column or a ladder index.
    enum Slot {
        Done(Column),
        Qi(usize, Column),
    }
    let mut slots = Vec::new();
    let mut ladders: Vec<Ladder> = Vec::new();
    let mut sensitive_codes: Vec<Vec<u32>> = Vec::new();
    let mut masked = BTreeMap::new();
    let mut dropped = Vec::new();
    let mut pseudonymised = Vec::new();

    for spec in &schema.columns {
        if spec.rule == DeidRule::Drop {
            // A dropped column need not even be present.
            dropped.push(spec.name.clone());
            continue;
        }
        let col = conform(&frame, spec)?;
        if spec.role == ColumnRole::QuasiIdentifier {
            ladders.push(Ladder::build(&col, spec, &schema.hierarchies)?);
            slots.push(Slot::Qi(ladders.len() - 1, col));
            continue;
        }
        let out = match &spec.rule {
            DeidRule::Pseudonymise => {
                pseudonymised.push(spec.name.clone());
                pseudonymise(&col, &pseudonymiser)?
            }
            DeidRule::Mask(format) => {
                let masker = Masker::new(format).map_err(|e: MaskError| DeidError::Mask {
                    column: spec.name.clone(),
                    reason: e.to_string(),
                })?;
                let stats = masked.entry(spec.name.clone()).or_default();
                mask(&col, &masker, stats)?
            }
            DeidRule::TopBottom { lower, upper } => top_bottom(&col, *lower, *upper)?,
            // Keep (validation rules out ladders on non-QI columns).
            _ => col,
        };
        if spec.role == ColumnRole::Sensitive {
            // l-diversity is measured on what is released, after masking or coding.
            sensitive_codes.push(encode(&out)?.codes);
        }
        slots.push(Slot::Done(out));
    }

    let model = &schema.privacy;
    // Truncation, not rounding: the limit must never be exceeded.
    let limit = (model.max_suppression * n as f64).floor() as u64;
    let (table, row_class) = FrequencyTable::build(&ladders, &sensitive_codes, n)?;
    let search = Search::new(&ladders, &table, model.k, model.l, limit).with_metric(model.metric);
    let result = search.run()?;
    let cls = search.classify(&result.node);

    let keep: BooleanChunked = row_class
        .iter()
        .map(|&c| cls.safe[cls.ids[c as usize] as usize])
        .collect();
    let mut columns = Vec::with_capacity(slots.len());
    for slot in slots {
        columns.push(match slot {
            Slot::Done(c) => c,
            Slot::Qi(j, original) => ladders[j]
                .output(result.node[j] as usize, &original)
                .map_err(|_| DeidError::Frame("writing a generalised column"))?,
        });
    }
    let mut out = DataFrame::new(columns).map_err(|_| DeidError::Frame("assembling the output"))?;
    if cls.suppressed > 0 {
        out = out
            .filter(&keep)
            .map_err(|_| DeidError::Frame("removing suppressed records"))?;
    }

    let released = || {
        cls.sizes
            .iter()
            .zip(&cls.safe)
            .filter(|(_, ok)| **ok)
            .map(|(&s, _)| s)
    };
    let k_achieved = released()
        .min()
        .map_or(0, |s| u32::try_from(s).unwrap_or(u32::MAX));
    let l_achieved = (!sensitive_codes.is_empty()).then(|| {
        cls.distinct
            .iter()
            .zip(&cls.safe)
            .filter(|(_, ok)| **ok)
            .map(|(&d, _)| d)
            .min()
            .unwrap_or(0)
    });
    let report = DeidReport {
        k_target: model.k,
        k_achieved,
        l_target: model.l,
        l_achieved,
        records_in: n as u64,
        records_out: n as u64 - cls.suppressed,
        suppressed: cls.suppressed,
        suppression_limit: limit,
        levels: ladders
            .iter()
            .zip(&result.node)
            .map(|(l, &lv)| (l.column.clone(), lv))
            .collect(),
        lattice: result.stats,
        risk: assess(table.counts.iter().map(|&c| u64::from(c)), released()),
        information_loss: search.information_loss(&result.node, &cls),
        masked,
        dropped,
        pseudonymised,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    Ok(DeidOutput { frame: out, report })
}
