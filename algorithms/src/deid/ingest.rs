//! Parsing and validating an upload against the declared [`DatasetSchema`].
//!
//! # Design
//!
//! An upload is untrusted input from a provider, and the errors we produce travel back
//! to HTTP clients and into logs. So:
//!
//! - **Errors never contain a cell value.** They name the column (from the declared
//!   schema) and the 1-based *data* row (the header is not counted; row 1 is the first
//!   record after it), plus a fixed description of the problem, e.g.
//!   `column "age", row 17: not a valid integer`. Header names may be listed when the
//!   header does not match, except when the "header" shares no name at all with the
//!   schema: that usually means the file has no header and its first row is data, so
//!   only the count of unexpected columns is reported.
//! - **CSV is streamed.** The file is read through [`csv::Reader`] into one reused
//!   [`csv::ByteRecord`]; each declared column appends straight into a typed polars
//!   builder (no per-cell `String`), and the `Series` are assembled once at the end.
//!   GBK is decoded on the fly by [`DecodingReader`], a small [`Read`] adapter over
//!   `encoding_rs`'s streaming decoder, so the whole file is never held as text.
//! - **Declared UTF-8 is checked per cell** (`std::str::from_utf8`); an invalid
//!   sequence is reported with its row only. Malformed GBK is reported the same way:
//!   the decoder hands over every valid byte before a malformed sequence and raises the
//!   error only on the next read, so the error surfaces while the CSV parser is inside
//!   the offending record.
//! - **Parquet** is read with polars, its physical types are checked against the
//!   declared ones (and widened losslessly, e.g. `i32` → `i64`), then the same null and
//!   domain checks as for CSV run over the typed columns. polars 0.52 (the version
//!   OpenDP pins) trusts the sizes a file declares and asserts on some malformed pages
//!   instead of returning an error (the `ingest_parquet` fuzz target found both). So
//!   the footer and every page header are checked first ([`super::parquet_check`]: a
//!   declared size polars would allocate by can abort the process), and the checks
//!   and the decode run under [`std::panic::catch_unwind`]: a file the checks refuse
//!   or polars panics on is refused as unreadable, like any other.
//!
//! Cell parsing rules: cells of non-string columns are trimmed of ASCII whitespace; an
//! empty cell is null (and an error in a non-nullable column); integers are decimal
//! `i64`, also written with a decimal point or exponent when the value is whole
//! (`17000.0`, `1.7e4`, as spreadsheets export integer columns; `17000.5` is refused
//! with a hint to declare the column `float`); floats must be finite; dates are
//! strict `YYYY-MM-DD`; booleans are `true`/`false` (any case) or `1`/`0`. Domains are
//! checked for `Categories`, `Range` and `DateRange`; `Identifier` domains are not
//! enforced at ingest (the masking step handles invalid identifiers).
//!
//! The output frame has the declared columns in declared order with dtypes `String`,
//! `Int64`, `Float64`, `Date` or `Boolean`.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use encoding_rs::{Decoder, DecoderResult};
use pdx_seal::AtRest;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::parquet_check::check_structure;
use super::schema::{ColumnSpec, ColumnType, DatasetSchema, Domain};

/// Character encoding of a CSV upload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TextEncoding {
    /// UTF-8 (a leading byte-order mark is ignored).
    #[default]
    Utf8,
    /// GBK (decoded with `encoding_rs`, which accepts the GB18030 superset).
    Gbk,
}

impl TextEncoding {
    /// Human-readable name used in error messages.
    pub fn label(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Gbk => "GBK",
        }
    }
}

fn default_delimiter() -> char {
    ','
}

/// The file format of an upload, as declared by the provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum UploadFormat {
    /// Delimited text with a header row.
    Csv {
        /// Field delimiter; a single ASCII character (default `,`).
        #[serde(default = "default_delimiter")]
        delimiter: char,
        /// Text encoding (default UTF-8).
        #[serde(default)]
        encoding: TextEncoding,
    },
    /// Apache Parquet.
    Parquet,
}

impl Default for UploadFormat {
    fn default() -> Self {
        UploadFormat::Csv {
            delimiter: default_delimiter(),
            encoding: TextEncoding::Utf8,
        }
    }
}

/// What is wrong with one cell (never says what the cell contained).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueProblem {
    /// Not a whole number within the 64-bit integer range.
    NotInteger,
    /// A number with a non-zero fractional part (e.g. `17000.5`) in an integer column.
    NotIntegral,
    /// Not a number.
    NotFloat,
    /// A number, but NaN or infinite.
    NotFinite,
    /// Not a `YYYY-MM-DD` calendar date.
    NotDate,
    /// Not `true`/`false`/`1`/`0`.
    NotBoolean,
    /// Empty in a column that is not nullable.
    Null,
    /// Not one of the declared categories.
    NotInCategories,
    /// Outside the declared numeric range.
    OutOfRange,
    /// Outside the declared date range.
    OutOfDateRange,
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ValueProblem::NotInteger => "not a valid integer",
            ValueProblem::NotIntegral => {
                // Say how to fix it, with the type names the schema JSON uses (and never
                // the value: see the module docs).
                return write!(
                    f,
                    "has a fractional part, which an \"{}\" column cannot hold; declare \
                     the column with \"type\": \"{}\" to keep fractions",
                    ColumnType::Integer.as_str(),
                    ColumnType::Float.as_str()
                );
            }
            ValueProblem::NotFloat => "not a valid number",
            ValueProblem::NotFinite => "not a finite number",
            ValueProblem::NotDate => "not a valid date (expected YYYY-MM-DD)",
            ValueProblem::NotBoolean => "not a valid boolean (expected true, false, 1 or 0)",
            ValueProblem::Null => "empty, but the column is not nullable",
            ValueProblem::NotInCategories => "not one of the declared categories",
            ValueProblem::OutOfRange => "outside the declared range",
            ValueProblem::OutOfDateRange => "outside the declared date range",
        };
        f.write_str(text)
    }
}

/// Why an upload was rejected. `Display` never includes a cell value.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The declared upload format is unusable (e.g. a non-ASCII delimiter).
    #[error("invalid upload format: {0}")]
    BadFormat(String),
    /// The declared schema is inconsistent (e.g. a numeric range on a text column).
    #[error("invalid dataset schema: {0}")]
    Schema(String),
    /// No header, or a header but no data rows.
    #[error("the upload is empty (it needs a header and at least one data row)")]
    Empty,
    /// The header (or Parquet column set) differs from the declared columns.
    #[error("{}", describe_wrong_columns(missing, unexpected, *unexpected_count, duplicate))]
    WrongColumns {
        /// Declared columns absent from the upload.
        missing: Vec<String>,
        /// Upload columns not declared; empty when withheld (see module docs).
        unexpected: Vec<String>,
        /// Number of undeclared upload columns.
        unexpected_count: usize,
        /// Column names that appear more than once.
        duplicate: Vec<String>,
    },
    /// A CSV record with the wrong number of fields.
    #[error("row {row} has {found} fields, expected {expected}")]
    Ragged {
        /// 1-based data row.
        row: u64,
        /// Fields found.
        found: usize,
        /// Fields expected (declared columns).
        expected: usize,
    },
    /// Bytes that are not valid in the declared encoding.
    #[error("{}: not valid {}", row_label(*row), encoding.label())]
    InvalidEncoding {
        /// 1-based data row; 0 is the header.
        row: u64,
        /// The declared encoding.
        encoding: TextEncoding,
    },
    /// A cell that does not parse as the declared type or violates the domain.
    #[error("column \"{column}\", row {row}: {problem}")]
    InvalidValue {
        /// Declared column name.
        column: String,
        /// 1-based data row.
        row: u64,
        /// What is wrong.
        problem: ValueProblem,
    },
    /// A Parquet column whose physical type cannot represent the declared type.
    #[error("column \"{column}\": expected {}, found {found}", type_label(*expected))]
    WrongType {
        /// Declared column name.
        column: String,
        /// Declared type.
        expected: ColumnType,
        /// The Parquet column's type, as polars names it.
        found: String,
    },
    /// The file could not be parsed as Parquet at all.
    #[error("not a readable Parquet file")]
    InvalidParquet(#[source] PolarsError),
    /// Reading the stored upload failed (server side).
    #[error("I/O error while reading the upload")]
    Io(#[from] io::Error),
    /// Building the data frame failed (server side).
    #[error("internal error while building the data frame")]
    Polars(#[from] PolarsError),
}

impl IngestError {
    /// True if the upload (or its declaration) is at fault, i.e. a 4xx response.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, IngestError::Io(_) | IngestError::Polars(_))
    }

    /// The 1-based data row the error refers to, if any (0 is the header).
    pub fn row(&self) -> Option<u64> {
        match self {
            IngestError::Ragged { row, .. }
            | IngestError::InvalidEncoding { row, .. }
            | IngestError::InvalidValue { row, .. } => Some(*row),
            _ => None,
        }
    }

    /// The declared column the error refers to, if any.
    pub fn column(&self) -> Option<&str> {
        match self {
            IngestError::InvalidValue { column, .. } | IngestError::WrongType { column, .. } => {
                Some(column)
            }
            _ => None,
        }
    }
}

fn row_label(row: u64) -> String {
    if row == 0 {
        "header row".to_owned()
    } else {
        format!("row {row}")
    }
}

/// Lower-case name of a declared type, as used in error messages.
pub fn type_label(t: ColumnType) -> &'static str {
    match t {
        ColumnType::String => "string",
        ColumnType::Integer => "integer",
        ColumnType::Float => "float",
        ColumnType::Date => "date",
        ColumnType::Boolean => "boolean",
    }
}

/// At most this many names are listed per category in a `WrongColumns` message.
const MAX_LISTED_NAMES: usize = 20;
/// Listed names are cut to this many characters.
const MAX_NAME_CHARS: usize = 64;

fn describe_wrong_columns(
    missing: &[String],
    unexpected: &[String],
    unexpected_count: usize,
    duplicate: &[String],
) -> String {
    fn list(names: &[String]) -> String {
        let mut shown: Vec<String> = names
            .iter()
            .take(MAX_LISTED_NAMES)
            .map(|n| {
                let cut: String = n.chars().take(MAX_NAME_CHARS).collect();
                format!("\"{cut}\"")
            })
            .collect();
        if names.len() > MAX_LISTED_NAMES {
            shown.push(format!("and {} more", names.len() - MAX_LISTED_NAMES));
        }
        shown.join(", ")
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", list(missing)));
    }
    if unexpected_count > 0 {
        if unexpected.is_empty() {
            parts.push(format!(
                "{unexpected_count} unexpected column(s), none matching a declared name \
                 (is the header row missing?)"
            ));
        } else {
            parts.push(format!("unexpected {}", list(unexpected)));
        }
    }
    if !duplicate.is_empty() {
        parts.push(format!("duplicated {}", list(duplicate)));
    }
    format!(
        "the columns do not match the declared schema: {}",
        parts.join("; ")
    )
}

// ---------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Parses a strict `YYYY-MM-DD` date into days since 1970-01-01 (polars' `Date`).
pub fn parse_iso_date(text: &[u8]) -> Option<i32> {
    if text.len() != 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let num = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let year = i64::from(num(&text[0..4])?);
    let month = num(&text[5..7])?;
    let day = num(&text[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    i32::try_from(days_from_civil(year, month, day)).ok()
}

/// Formats days since 1970-01-01 as `YYYY-MM-DD`.
pub fn format_iso_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

// ---------------------------------------------------------------------------------
// Cell parsers
// ---------------------------------------------------------------------------------

fn parse_i64(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut acc: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = i64::from(b - b'0');
        acc = acc.checked_mul(10)?;
        acc = if neg {
            acc.checked_sub(d)?
        } else {
            acc.checked_add(d)?
        };
    }
    Some(acc)
}

/// Parses an integer cell: a plain decimal `i64` (`17000`, `-3`), or a number written
/// with a decimal point and/or exponent whose value is whole (`17000.0`, `-3.00`,
/// `1.7e4`, `5.`), as spreadsheets and statistics packages often export integer
/// columns.
///
/// The value is computed exactly from the digits, never through `f64`, which cannot
/// hold every `i64` (it would round `9007199254740993.0`) and would turn a value beyond
/// the range into a saturated one. A non-zero fractional part is
/// [`ValueProblem::NotIntegral`]; anything else that is not a whole number within
/// `i64` (including one too large or too small) is [`ValueProblem::NotInteger`].
fn parse_int_cell(text: &[u8]) -> Result<i64, ValueProblem> {
    // The common case, and the only form accepted before decimals were.
    if let Some(v) = parse_i64(text) {
        return Ok(v);
    }
    let (neg, rest) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &mantissa[..0]),
    };
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(ValueProblem::NotInteger);
    }
    let exponent = match exponent {
        None => 0,
        Some(e) => parse_exponent(e).ok_or(ValueProblem::NotInteger)?,
    };
    // The value is `digits × 10^(exponent − fraction length)`, digits being `whole`
    // then `fraction`. Trailing zero digits only move the scale; drop them.
    let digits = || whole.iter().chain(fraction).map(|&b| b - b'0');
    let Some(trailing_zeros) = digits().rev().position(|d| d != 0) else {
        return Ok(0); // `0.000`, `-0.0e9`: every digit is zero.
    };
    let len = |n: usize| i64::try_from(n).map_err(|_| ValueProblem::NotInteger);
    let significant = whole.len() + fraction.len() - trailing_zeros;
    let scale = exponent
        .saturating_sub(len(fraction.len())?)
        .saturating_add(len(trailing_zeros)?);
    if scale < 0 {
        // The last significant digit, which is not zero, lies below the units.
        return Err(ValueProblem::NotIntegral);
    }
    // Accumulate with the sign applied digit by digit (as `parse_i64` does), so that
    // `i64::MIN` is reachable and anything beyond the range fails instead of wrapping.
    let mut acc: i64 = 0;
    for d in digits().take(significant) {
        let shifted = acc.checked_mul(10).ok_or(ValueProblem::NotInteger)?;
        let next = if neg {
            shifted.checked_sub(i64::from(d))
        } else {
            shifted.checked_add(i64::from(d))
        };
        acc = next.ok_or(ValueProblem::NotInteger)?;
    }
    // `acc` is not zero (its last digit is not), so this overflows within 19 rounds
    // however large `scale` is.
    for _ in 0..scale {
        acc = acc.checked_mul(10).ok_or(ValueProblem::NotInteger)?;
    }
    Ok(acc)
}

/// An exponent: optional sign, then decimal digits. Saturates at the `i64` bounds: no
/// cell has enough digits to offset an exponent that large, so its exact value does
/// not change the outcome.
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |acc, &b| {
        acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Some(if neg { -magnitude } else { magnitude })
}

fn parse_f64(text: &[u8]) -> Result<f64, ValueProblem> {
    let s = std::str::from_utf8(text).map_err(|_| ValueProblem::NotFloat)?;
    let v: f64 = s.parse().map_err(|_| ValueProblem::NotFloat)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ValueProblem::NotFinite)
    }
}

fn parse_bool(text: &[u8]) -> Option<bool> {
    if text == b"1" || text.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if text == b"0" || text.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------
// Domain checks, compiled once per column
// ---------------------------------------------------------------------------------

/// A declared domain, pre-parsed into the column's value type.
enum DomainCheck {
    Any,
    Strings(HashSet<String>),
    Ints(HashSet<i64>),
    /// Bit patterns of the allowed floats (with `-0.0` folded into `0.0`).
    Floats(HashSet<u64>),
    Bools {
        allow_true: bool,
        allow_false: bool,
    },
    Dates(HashSet<i32>),
    Range {
        min: f64,
        max: f64,
    },
    DateRange {
        min: i32,
        max: i32,
    },
}

fn float_key(v: f64) -> u64 {
    if v == 0.0 {
        0.0f64.to_bits()
    } else {
        v.to_bits()
    }
}

impl DomainCheck {
    fn compile(spec: &ColumnSpec) -> Result<Self, IngestError> {
        let name = &spec.name;
        let bad = |what: &str| IngestError::Schema(format!("column \"{name}\": {what}"));
        let Some(domain) = &spec.domain else {
            return Ok(DomainCheck::Any);
        };
        Ok(match domain {
            Domain::Identifier(_) => DomainCheck::Any,
            Domain::Categories { values } => match spec.column_type {
                ColumnType::String => DomainCheck::Strings(values.iter().cloned().collect()),
                ColumnType::Integer => DomainCheck::Ints(
                    values
                        .iter()
                        .map(|v| parse_i64(v.trim().as_bytes()))
                        .collect::<Option<_>>()
                        .ok_or_else(|| bad("a category is not an integer"))?,
                ),
                ColumnType::Float => DomainCheck::Floats(
                    values
                        .iter()
                        .map(|v| parse_f64(v.trim().as_bytes()).map(float_key).ok())
                        .collect::<Option<_>>()
                        .ok_or_else(|| bad("a category is not a finite number"))?,
                ),
                ColumnType::Boolean => {
                    let parsed = values
                        .iter()
                        .map(|v| parse_bool(v.trim().as_bytes()))
                        .collect::<Option<Vec<bool>>>()
                        .ok_or_else(|| bad("a category is not a boolean"))?;
                    DomainCheck::Bools {
                        allow_true: parsed.contains(&true),
                        allow_false: parsed.contains(&false),
                    }
                }
                ColumnType::Date => DomainCheck::Dates(
                    values
                        .iter()
                        .map(|v| parse_iso_date(v.trim().as_bytes()))
                        .collect::<Option<_>>()
                        .ok_or_else(|| bad("a category is not a YYYY-MM-DD date"))?,
                ),
            },
            Domain::Range { min, max } => {
                if !matches!(spec.column_type, ColumnType::Integer | ColumnType::Float) {
                    return Err(bad("a numeric range needs an integer or float column"));
                }
                if !(min.is_finite() && max.is_finite() && min <= max) {
                    return Err(bad("the range needs finite bounds with min <= max"));
                }
                DomainCheck::Range {
                    min: *min,
                    max: *max,
                }
            }
            Domain::DateRange { min, max } => {
                if spec.column_type != ColumnType::Date {
                    return Err(bad("a date range needs a date column"));
                }
                let min = parse_iso_date(min.trim().as_bytes())
                    .ok_or_else(|| bad("the date range minimum is not YYYY-MM-DD"))?;
                let max = parse_iso_date(max.trim().as_bytes())
                    .ok_or_else(|| bad("the date range maximum is not YYYY-MM-DD"))?;
                if min > max {
                    return Err(bad("the date range has min > max"));
                }
                DomainCheck::DateRange { min, max }
            }
        })
    }

    #[inline]
    fn str(&self, v: &str) -> Result<(), ValueProblem> {
        match self {
            DomainCheck::Strings(set) if !set.contains(v) => Err(ValueProblem::NotInCategories),
            _ => Ok(()),
        }
    }

    #[inline]
    fn int(&self, v: i64) -> Result<(), ValueProblem> {
        match self {
            DomainCheck::Ints(set) if !set.contains(&v) => Err(ValueProblem::NotInCategories),
            DomainCheck::Range { min, max } if !((*min..=*max).contains(&(v as f64))) => {
                Err(ValueProblem::OutOfRange)
            }
            _ => Ok(()),
        }
    }

    #[inline]
    fn float(&self, v: f64) -> Result<(), ValueProblem> {
        if !v.is_finite() {
            return Err(ValueProblem::NotFinite);
        }
        match self {
            DomainCheck::Floats(set) if !set.contains(&float_key(v)) => {
                Err(ValueProblem::NotInCategories)
            }
            DomainCheck::Range { min, max } if !((*min..=*max).contains(&v)) => {
                Err(ValueProblem::OutOfRange)
            }
            _ => Ok(()),
        }
    }

    #[inline]
    fn boolean(&self, v: bool) -> Result<(), ValueProblem> {
        match self {
            DomainCheck::Bools {
                allow_true,
                allow_false,
            } if !(if v { *allow_true } else { *allow_false }) => {
                Err(ValueProblem::NotInCategories)
            }
            _ => Ok(()),
        }
    }

    #[inline]
    fn date(&self, v: i32) -> Result<(), ValueProblem> {
        match self {
            DomainCheck::Dates(set) if !set.contains(&v) => Err(ValueProblem::NotInCategories),
            DomainCheck::DateRange { min, max } if !((*min..=*max).contains(&v)) => {
                Err(ValueProblem::OutOfDateRange)
            }
            _ => Ok(()),
        }
    }
}

/// The ingest-relevant part of schema consistency: unique non-empty names, domains that fit types.
fn validate_schema(schema: &DatasetSchema) -> Result<(), IngestError> {
    if schema.columns.is_empty() {
        return Err(IngestError::Schema("no columns declared".to_owned()));
    }
    let mut seen = HashSet::new();
    for spec in &schema.columns {
        if spec.name.trim().is_empty() {
            return Err(IngestError::Schema("a column has an empty name".to_owned()));
        }
        if !seen.insert(spec.name.as_str()) {
            return Err(IngestError::Schema(format!(
                "column \"{}\" is declared twice",
                spec.name
            )));
        }
        DomainCheck::compile(spec)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Column matching
// ---------------------------------------------------------------------------------

/// Maps each declared column to its position in `found`, or reports the mismatch.
fn match_columns(schema: &DatasetSchema, found: &[String]) -> Result<Vec<usize>, IngestError> {
    let mut first_pos = std::collections::HashMap::new();
    let mut duplicate = Vec::new();
    for (i, name) in found.iter().enumerate() {
        if first_pos.insert(name.as_str(), i).is_some() && !duplicate.contains(name) {
            duplicate.push(name.clone());
        }
    }
    let declared: HashSet<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let missing: Vec<String> = schema
        .columns
        .iter()
        .filter(|c| !first_pos.contains_key(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    let mut unexpected: Vec<String> = Vec::new();
    for name in found {
        if !declared.contains(name.as_str()) && !unexpected.contains(name) {
            unexpected.push(name.clone());
        }
    }
    if missing.is_empty() && unexpected.is_empty() && duplicate.is_empty() {
        return Ok(schema
            .columns
            .iter()
            .map(|c| first_pos[c.name.as_str()])
            .collect());
    }
    let unexpected_count = unexpected.len();
    // A header that shares nothing with the schema is probably a data row: withhold it.
    if missing.len() == schema.columns.len() {
        unexpected.clear();
        duplicate.clear();
    }
    Err(IngestError::WrongColumns {
        missing,
        unexpected,
        unexpected_count,
        duplicate,
    })
}

// ---------------------------------------------------------------------------------
// Streaming GBK decoding
// ---------------------------------------------------------------------------------

/// Marker carried inside the `io::Error` raised by [`DecodingReader`] on bad bytes.
#[derive(Debug)]
struct MalformedInput;

impl fmt::Display for MalformedInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed byte sequence")
    }
}

impl std::error::Error for MalformedInput {}

/// A [`Read`] adapter that decodes a legacy encoding to UTF-8 as it streams.
///
/// All valid output before a malformed sequence is returned first; the next read then
/// fails with `io::ErrorKind::InvalidData` wrapping [`MalformedInput`].
pub struct DecodingReader<R> {
    inner: R,
    decoder: Decoder,
    input: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    output: Box<[u8]>,
    out_start: usize,
    out_end: usize,
    eof: bool,
    finished: bool,
    malformed: bool,
}

const DECODE_BUF: usize = 64 * 1024;

impl<R: Read> DecodingReader<R> {
    /// Wraps `inner`, decoding it with `encoding` (no BOM sniffing).
    pub fn new(inner: R, encoding: &'static encoding_rs::Encoding) -> Self {
        DecodingReader {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; DECODE_BUF].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            // GBK expands at most 2 bytes to 3 (4 to 4 for GB18030), so 2x is plenty.
            output: vec![0; DECODE_BUF * 2].into_boxed_slice(),
            out_start: 0,
            out_end: 0,
            eof: false,
            finished: false,
            malformed: false,
        }
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_start < self.out_end {
                let n = buf.len().min(self.out_end - self.out_start);
                buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            if self.malformed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, MalformedInput));
            }
            if self.finished {
                return Ok(0);
            }
            if self.in_start == self.in_end && !self.eof {
                let n = loop {
                    match self.inner.read(&mut self.input) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                self.in_start = 0;
                self.in_end = n;
                self.eof = n == 0;
            }
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.in_start..self.in_end],
                &mut self.output,
                self.eof,
            );
            self.in_start += read;
            self.out_start = 0;
            self.out_end = written;
            match result {
                DecoderResult::InputEmpty => {
                    if self.eof {
                        self.finished = true;
                    }
                }
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => self.malformed = true,
            }
        }
    }
}

fn is_malformed(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<MalformedInput>())
}

// ---------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------

/// One declared column being filled from CSV cells.
struct ColumnBuilder<'a> {
    spec: &'a ColumnSpec,
    check: DomainCheck,
    data: TypedBuilder,
}

enum TypedBuilder {
    Str(StringChunkedBuilder),
    Int(PrimitiveChunkedBuilder<Int64Type>),
    Float(PrimitiveChunkedBuilder<Float64Type>),
    Date(PrimitiveChunkedBuilder<Int32Type>),
    Bool(BooleanChunkedBuilder),
}

const INITIAL_CAPACITY: usize = 16 * 1024;

impl<'a> ColumnBuilder<'a> {
    fn new(spec: &'a ColumnSpec) -> Result<Self, IngestError> {
        let name = PlSmallStr::from_str(&spec.name);
        let data = match spec.column_type {
            ColumnType::String => {
                TypedBuilder::Str(StringChunkedBuilder::new(name, INITIAL_CAPACITY))
            }
            ColumnType::Integer => {
                TypedBuilder::Int(PrimitiveChunkedBuilder::new(name, INITIAL_CAPACITY))
            }
            ColumnType::Float => {
                TypedBuilder::Float(PrimitiveChunkedBuilder::new(name, INITIAL_CAPACITY))
            }
            ColumnType::Date => {
                TypedBuilder::Date(PrimitiveChunkedBuilder::new(name, INITIAL_CAPACITY))
            }
            ColumnType::Boolean => {
                TypedBuilder::Bool(BooleanChunkedBuilder::new(name, INITIAL_CAPACITY))
            }
        };
        Ok(ColumnBuilder {
            spec,
            check: DomainCheck::compile(spec)?,
            data,
        })
    }

    /// Parses, checks and appends one cell. `Err(None)` means invalid text encoding.
    #[inline]
    fn push(&mut self, cell: &[u8]) -> Result<(), Option<ValueProblem>> {
        if let TypedBuilder::Str(b) = &mut self.data {
            let text = std::str::from_utf8(cell).map_err(|_| None)?;
            if text.is_empty() {
                return self.push_null();
            }
            self.check.str(text)?;
            b.append_value(text);
            return Ok(());
        }
        let trimmed = cell.trim_ascii();
        if trimmed.is_empty() {
            return self.push_null();
        }
        let parsed = match &mut self.data {
            TypedBuilder::Str(_) => Ok(()),
            TypedBuilder::Int(b) => {
                parse_int_cell(trimmed).and_then(|v| self.check.int(v).map(|()| b.append_value(v)))
            }
            TypedBuilder::Float(b) => {
                parse_f64(trimmed).and_then(|v| self.check.float(v).map(|()| b.append_value(v)))
            }
            TypedBuilder::Date(b) => match parse_iso_date(trimmed) {
                Some(v) => self.check.date(v).map(|()| b.append_value(v)),
                None => Err(ValueProblem::NotDate),
            },
            TypedBuilder::Bool(b) => match parse_bool(trimmed) {
                Some(v) => self.check.boolean(v).map(|()| b.append_value(v)),
                None => Err(ValueProblem::NotBoolean),
            },
        };
        match parsed {
            Ok(()) => Ok(()),
            // A cell that is not even text is an encoding problem, not a type problem.
            Err(_) if std::str::from_utf8(cell).is_err() => Err(None),
            Err(p) => Err(Some(p)),
        }
    }

    #[inline]
    fn push_null(&mut self) -> Result<(), Option<ValueProblem>> {
        if !self.spec.nullable {
            return Err(Some(ValueProblem::Null));
        }
        match &mut self.data {
            TypedBuilder::Str(b) => b.append_null(),
            TypedBuilder::Int(b) => b.append_null(),
            TypedBuilder::Float(b) => b.append_null(),
            TypedBuilder::Date(b) => b.append_null(),
            TypedBuilder::Bool(b) => b.append_null(),
        }
        Ok(())
    }

    fn finish(self) -> Column {
        match self.data {
            TypedBuilder::Str(b) => b.finish().into_series(),
            TypedBuilder::Int(b) => b.finish().into_series(),
            TypedBuilder::Float(b) => b.finish().into_series(),
            TypedBuilder::Date(b) => b.finish().into_date().into_series(),
            TypedBuilder::Bool(b) => b.finish().into_series(),
        }
        .into_column()
    }
}

fn csv_delimiter(delimiter: char) -> Result<u8, IngestError> {
    if !delimiter.is_ascii() || matches!(delimiter, '"' | '\n' | '\r') {
        return Err(IngestError::BadFormat(
            "the delimiter must be a single ASCII character other than a quote or newline"
                .to_owned(),
        ));
    }
    Ok(delimiter as u8)
}

fn read_csv<R: Read>(
    source: R,
    delimiter: u8,
    encoding: TextEncoding,
    schema: &DatasetSchema,
) -> Result<DataFrame, IngestError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(source);
    let mut record = csv::ByteRecord::new();
    let csv_err = |e: csv::Error, row: u64| -> IngestError {
        match e.into_kind() {
            csv::ErrorKind::Io(io) if is_malformed(&io) => {
                IngestError::InvalidEncoding { row, encoding }
            }
            csv::ErrorKind::Io(io) => IngestError::Io(io),
            // With `flexible` and byte records no other kind is produced; treat
            // anything unforeseen as an encoding problem of this row, without detail.
            _ => IngestError::InvalidEncoding { row, encoding },
        }
    };

    // Header.
    if !reader
        .read_byte_record(&mut record)
        .map_err(|e| csv_err(e, 0))?
    {
        return Err(IngestError::Empty);
    }
    let mut header = Vec::with_capacity(record.len());
    for (i, field) in record.iter().enumerate() {
        let field = if i == 0 {
            field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
        } else {
            field
        };
        let name = std::str::from_utf8(field)
            .map_err(|_| IngestError::InvalidEncoding { row: 0, encoding })?;
        header.push(name.trim().to_owned());
    }
    let positions = match_columns(schema, &header)?;
    let expected = header.len();

    let mut builders = schema
        .columns
        .iter()
        .map(ColumnBuilder::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut row: u64 = 0;
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_err(e, row + 1))?;
        if !more {
            break;
        }
        row += 1;
        if record.len() != expected {
            return Err(IngestError::Ragged {
                row,
                found: record.len(),
                expected,
            });
        }
        for (builder, &pos) in builders.iter_mut().zip(&positions) {
            let cell = record.get(pos).unwrap_or_default();
            builder.push(cell).map_err(|problem| match problem {
                None => IngestError::InvalidEncoding { row, encoding },
                Some(problem) => IngestError::InvalidValue {
                    column: builder.spec.name.clone(),
                    row,
                    problem,
                },
            })?;
        }
    }
    if row == 0 {
        return Err(IngestError::Empty);
    }
    let columns: Vec<Column> = builders.into_iter().map(ColumnBuilder::finish).collect();
    Ok(DataFrame::new(columns)?)
}

// ---------------------------------------------------------------------------------
// Parquet
// ---------------------------------------------------------------------------------

/// Casts a Parquet column to the declared type if that is lossless, else `WrongType`.
fn conform_column(column: &Column, spec: &ColumnSpec) -> Result<Column, IngestError> {
    use DataType as D;
    let dtype = column.dtype();
    let target = match spec.column_type {
        ColumnType::String => D::String,
        ColumnType::Integer => D::Int64,
        ColumnType::Float => D::Float64,
        ColumnType::Date => D::Date,
        ColumnType::Boolean => D::Boolean,
    };
    let ok = matches!(dtype, D::Null)
        || match spec.column_type {
            ColumnType::String => {
                matches!(dtype, D::String | D::Categorical(_, _) | D::Enum(_, _))
            }
            ColumnType::Integer => matches!(
                dtype,
                D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32
            ),
            ColumnType::Float => matches!(
                dtype,
                D::Float32
                    | D::Float64
                    | D::Int8
                    | D::Int16
                    | D::Int32
                    | D::UInt8
                    | D::UInt16
                    | D::UInt32
            ),
            ColumnType::Date => matches!(dtype, D::Date),
            ColumnType::Boolean => matches!(dtype, D::Boolean),
        };
    if !ok {
        return Err(IngestError::WrongType {
            column: spec.name.clone(),
            expected: spec.column_type,
            found: dtype.to_string(),
        });
    }
    if *dtype == target {
        Ok(column.clone())
    } else {
        Ok(column.strict_cast(&target)?)
    }
}

/// Runs the null and domain checks over one typed column.
fn check_column(column: &Column, spec: &ColumnSpec) -> Result<(), IngestError> {
    let check = DomainCheck::compile(spec)?;
    let fail = |i: usize, problem: ValueProblem| IngestError::InvalidValue {
        column: spec.name.clone(),
        row: i as u64 + 1,
        problem,
    };
    fn scan<T>(
        iter: impl Iterator<Item = Option<T>>,
        nullable: bool,
        mut f: impl FnMut(T) -> Result<(), ValueProblem>,
    ) -> Result<(), (usize, ValueProblem)> {
        for (i, v) in iter.enumerate() {
            match v {
                None if nullable => {}
                None => return Err((i, ValueProblem::Null)),
                Some(v) => f(v).map_err(|p| (i, p))?,
            }
        }
        Ok(())
    }
    let series = column.as_materialized_series();
    let nullable = spec.nullable;
    let result = match spec.column_type {
        ColumnType::String => {
            // An empty string is a null, as for CSV.
            scan(series.str()?.iter(), nullable, |v| {
                if v.is_empty() {
                    if nullable {
                        Ok(())
                    } else {
                        Err(ValueProblem::Null)
                    }
                } else {
                    check.str(v)
                }
            })
        }
        ColumnType::Integer => scan(series.i64()?.iter(), nullable, |v| check.int(v)),
        ColumnType::Float => scan(series.f64()?.iter(), nullable, |v| check.float(v)),
        ColumnType::Date => scan(series.date()?.physical().iter(), nullable, |v| {
            check.date(v)
        }),
        ColumnType::Boolean => scan(series.bool()?.iter(), nullable, |v| check.boolean(v)),
    };
    result.map_err(|(i, p)| fail(i, p))
}

fn read_parquet_upload(
    path: &Path,
    at_rest: &AtRest,
    schema: &DatasetSchema,
) -> Result<DataFrame, IngestError> {
    let bytes = at_rest.read_all(path).map_err(io::Error::from)?;
    // A panic is polars' answer to some malformed files, in its footer reader as in its
    // decoder (see the module doc); nothing of the half-built frame is kept.
    let decoded = std::panic::catch_unwind(move || {
        check_structure(&bytes).map_err(|e| polars_err!(ComputeError: "{e}"))?;
        ParquetReader::new(io::Cursor::new(bytes)).finish()
    })
    .unwrap_or_else(|_| Err(polars_err!(ComputeError: "the Parquet reader panicked")));
    let frame = decoded.map_err(IngestError::InvalidParquet)?;
    let found: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    match_columns(schema, &found)?;
    if frame.height() == 0 {
        return Err(IngestError::Empty);
    }
    let mut columns = Vec::with_capacity(schema.columns.len());
    for spec in &schema.columns {
        let column = conform_column(frame.column(&spec.name)?, spec)?;
        check_column(&column, spec)?;
        // Normalise empty strings to nulls, as CSV ingest does.
        let column = if spec.column_type == ColumnType::String {
            let ca = column.as_materialized_series().str()?;
            let cleaned: StringChunked = ca.iter().map(|v| v.filter(|s| !s.is_empty())).collect();
            cleaned
                .with_name(PlSmallStr::from_str(&spec.name))
                .into_series()
                .into_column()
        } else {
            column
        };
        columns.push(column);
    }
    // Columns of different heights are the file's fault (pages that decode to fewer
    // values than their chunk declares; polars does not compare them), not the server's.
    DataFrame::new(columns).map_err(IngestError::InvalidParquet)
}

// ---------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------

/// Reads the upload at `path` (kept as `at_rest` says: sealed in the server's raw
/// zone) and validates it against `schema` (see module docs).
pub fn read_upload(
    at_rest: &AtRest,
    path: &Path,
    format: &UploadFormat,
    schema: &DatasetSchema,
) -> Result<DataFrame, IngestError> {
    validate_schema(schema)?;
    match format {
        UploadFormat::Csv {
            delimiter,
            encoding,
        } => {
            let delimiter = csv_delimiter(*delimiter)?;
            let file = at_rest.open(path).map_err(io::Error::from)?;
            match encoding {
                TextEncoding::Utf8 => read_csv(file, delimiter, *encoding, schema),
                TextEncoding::Gbk => read_csv(
                    DecodingReader::new(file, encoding_rs::GBK),
                    delimiter,
                    *encoding,
                    schema,
                ),
            }
        }
        UploadFormat::Parquet => read_parquet_upload(path, at_rest, schema),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;

    use super::*;
    use crate::deid::schema::{ColumnRole, DeidRule};

    fn adult_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/adult")
    }

    fn col(name: &str, column_type: ColumnType) -> ColumnSpec {
        ColumnSpec {
            name: name.to_owned(),
            column_type,
            role: ColumnRole::Other,
            rule: DeidRule::Keep,
            domain: None,
            nullable: false,
        }
    }

    fn schema(columns: Vec<ColumnSpec>) -> DatasetSchema {
        DatasetSchema {
            columns,
            hierarchies: Default::default(),
            privacy: Default::default(),
        }
    }

    fn adult_schema() -> DatasetSchema {
        let names = [
            "sex",
            "age",
            "race",
            "marital-status",
            "education",
            "native-country",
            "workclass",
            "occupation",
            "salary-class",
        ];
        schema(
            names
                .iter()
                .map(|n| {
                    col(
                        n,
                        if *n == "age" {
                            ColumnType::Integer
                        } else {
                            ColumnType::String
                        },
                    )
                })
                .collect(),
        )
    }

    fn csv(delimiter: char) -> UploadFormat {
        UploadFormat::Csv {
            delimiter,
            encoding: TextEncoding::Utf8,
        }
    }

    fn write_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        let mut f = File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        path
    }

    /// Reads `bytes` as a UTF-8 CSV under `schema` and returns the error.
    fn csv_error(bytes: &[u8], schema: &DatasetSchema) -> IngestError {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "upload.csv", bytes);
        read_upload(&AtRest::Plain, &path, &csv(','), schema)
            .expect_err("upload should be rejected")
    }

    fn assert_no_leak(err: &IngestError, secret: &str) {
        let msg = err.to_string();
        assert!(!msg.contains(secret), "message leaks the value: {msg}");
        assert!(err.is_client_error(), "should be a client error: {msg}");
    }

    fn small_schema() -> DatasetSchema {
        let mut age = col("age", ColumnType::Integer);
        age.domain = Some(Domain::Range {
            min: 0.0,
            max: 120.0,
        });
        let mut sex = col("sex", ColumnType::String);
        sex.domain = Some(Domain::Categories {
            values: vec!["Male".into(), "Female".into()],
        });
        let mut note = col("note", ColumnType::String);
        note.nullable = true;
        schema(vec![sex, age, note])
    }

    #[test]
    fn adult_reads_with_types_and_row_count() {
        let path = adult_dir().join("adult.csv");
        let frame = read_upload(&AtRest::Plain, &path, &csv(';'), &adult_schema()).unwrap();
        assert_eq!(frame.height(), 30_162);
        assert_eq!(frame.width(), 9);
        assert_eq!(frame.column("age").unwrap().dtype(), &DataType::Int64);
        assert_eq!(frame.column("sex").unwrap().dtype(), &DataType::String);
        let ages = frame
            .column("age")
            .unwrap()
            .as_materialized_series()
            .i64()
            .unwrap()
            .clone();
        assert_eq!(ages.get(0), Some(39));
        assert!(ages.min().unwrap() >= 17 && ages.max().unwrap() <= 90);
        assert_eq!(frame.column("salary-class").unwrap().null_count(), 0);
    }

    #[test]
    fn header_order_may_differ_and_output_follows_declaration() {
        let mut declared = adult_schema();
        declared.columns.reverse();
        let path = adult_dir().join("adult.csv");
        let frame = read_upload(&AtRest::Plain, &path, &csv(';'), &declared).unwrap();
        let names: Vec<String> = frame
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let expected: Vec<String> = declared.columns.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, expected);
        assert_eq!(frame.height(), 30_162);
    }

    #[test]
    fn all_types_parse_with_nulls_quotes_and_bom() {
        let mut columns = vec![
            col("s", ColumnType::String),
            col("i", ColumnType::Integer),
            col("f", ColumnType::Float),
            col("d", ColumnType::Date),
            col("b", ColumnType::Boolean),
        ];
        for c in &mut columns {
            c.nullable = true;
        }
        let declared = schema(columns);
        let text = "\u{FEFF}s,i,f,d,b\r\n\"a, \"\"quoted\"\"\nline\",-42, 1.5 ,2024-02-29,TRUE\r\n,,,,\r\nz,+7,1e3,1970-01-01,0\r\n";
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "t.csv", text.as_bytes());
        let frame = read_upload(&AtRest::Plain, &path, &csv(','), &declared).unwrap();
        assert_eq!(frame.height(), 3);
        let s = frame
            .column("s")
            .unwrap()
            .as_materialized_series()
            .str()
            .unwrap()
            .clone();
        assert_eq!(s.get(0), Some("a, \"quoted\"\nline"));
        assert_eq!(s.get(1), None);
        let i = frame
            .column("i")
            .unwrap()
            .as_materialized_series()
            .i64()
            .unwrap()
            .clone();
        assert_eq!((i.get(0), i.get(1), i.get(2)), (Some(-42), None, Some(7)));
        let f = frame
            .column("f")
            .unwrap()
            .as_materialized_series()
            .f64()
            .unwrap()
            .clone();
        assert_eq!((f.get(0), f.get(2)), (Some(1.5), Some(1000.0)));
        let d = frame.column("d").unwrap();
        assert_eq!(d.dtype(), &DataType::Date);
        let days = d
            .as_materialized_series()
            .date()
            .unwrap()
            .physical()
            .clone();
        assert_eq!(
            days.get(0).map(format_iso_date).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(days.get(2), Some(0));
        let b = frame
            .column("b")
            .unwrap()
            .as_materialized_series()
            .bool()
            .unwrap()
            .clone();
        assert_eq!(
            (b.get(0), b.get(1), b.get(2)),
            (Some(true), None, Some(false))
        );
    }

    #[test]
    fn gbk_upload_decodes() {
        let mut declared = schema(vec![
            col("姓名", ColumnType::String),
            col("城市", ColumnType::String),
        ]);
        declared.columns[1].domain = Some(Domain::Categories {
            values: vec!["北京".into(), "上海".into()],
        });
        let mut text = String::from("姓名|城市\n");
        // Enough rows to cross the decoder's 64 KiB buffers several times.
        for i in 0..20_000 {
            text.push_str(&format!(
                "张三{i}|{}\n",
                if i % 2 == 0 { "北京" } else { "上海" }
            ));
        }
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
        assert!(!unmappable);
        assert!(
            std::str::from_utf8(&bytes).is_err(),
            "the test file must not be UTF-8"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "gbk.csv", &bytes);
        let format = UploadFormat::Csv {
            delimiter: '|',
            encoding: TextEncoding::Gbk,
        };
        let frame = read_upload(&AtRest::Plain, &path, &format, &declared).unwrap();
        assert_eq!(frame.height(), 20_000);
        let names = frame
            .column("姓名")
            .unwrap()
            .as_materialized_series()
            .str()
            .unwrap()
            .clone();
        assert_eq!(names.get(0), Some("张三0"));
        assert_eq!(names.get(19_999), Some("张三19999"));
        let cities = frame
            .column("城市")
            .unwrap()
            .as_materialized_series()
            .str()
            .unwrap()
            .clone();
        assert_eq!(cities.get(1), Some("上海"));

        // Declared as UTF-8, the same bytes are rejected at the header, without content.
        let err = read_upload(&AtRest::Plain, &path, &csv('|'), &declared).unwrap_err();
        assert!(
            matches!(err, IngestError::InvalidEncoding { row: 0, .. }),
            "{err}"
        );
    }

    /// Hands out one byte per read, to split every multi-byte sequence.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.is_empty()) {
                (Some((b, rest)), false) => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn decoding_reader_handles_split_sequences_and_reports_malformed_late() {
        let text = "中文，测试；数据\n".repeat(100);
        let (bytes, _, _) = encoding_rs::GBK.encode(&text);
        let mut out = String::new();
        DecodingReader::new(Trickle(&bytes), encoding_rs::GBK)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);

        let mut bad = encoding_rs::GBK.encode("好的").0.into_owned();
        bad.push(0xFF);
        let mut reader = DecodingReader::new(&bad[..], encoding_rs::GBK);
        let mut buf = [0u8; 64];
        let n = reader.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], "好的".as_bytes());
        let err = reader.read(&mut buf).unwrap_err();
        assert!(is_malformed(&err));
    }

    #[test]
    fn malformed_gbk_names_the_row() {
        let declared = schema(vec![
            col("a", ColumnType::String),
            col("b", ColumnType::String),
        ]);
        let mut bytes = encoding_rs::GBK
            .encode("a,b\n甲,乙\n丙,丁\n")
            .0
            .into_owned();
        bytes.extend_from_slice(b"SECRET\xFF,x\n");
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "bad.csv", &bytes);
        let format = UploadFormat::Csv {
            delimiter: ',',
            encoding: TextEncoding::Gbk,
        };
        let err = read_upload(&AtRest::Plain, &path, &format, &declared).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::InvalidEncoding {
                    row: 3,
                    encoding: TextEncoding::Gbk
                }
            ),
            "{err}"
        );
        assert_eq!(err.to_string(), "row 3: not valid GBK");
        assert_no_leak(&err, "SECRET");
    }

    #[test]
    fn wrong_columns_are_named_but_values_are_not() {
        let err = csv_error(b"sex,age,colour\nSECRET,30,blue\n", &small_schema());
        match &err {
            IngestError::WrongColumns {
                missing,
                unexpected,
                ..
            } => {
                assert_eq!(missing, &vec!["note".to_owned()]);
                assert_eq!(unexpected, &vec!["colour".to_owned()]);
            }
            other => panic!("unexpected error {other}"),
        }
        assert!(err.to_string().contains("\"note\""));
        assert_no_leak(&err, "SECRET");

        let err = csv_error(b"sex,age,note,sex\nMale,30,x,Male\n", &small_schema());
        assert!(
            matches!(&err, IngestError::WrongColumns { duplicate, .. } if duplicate == &vec!["sex".to_owned()])
        );
    }

    #[test]
    fn headerless_upload_withholds_the_first_row() {
        let err = csv_error(b"SECRET,30,x\nMale,31,y\n", &small_schema());
        match &err {
            IngestError::WrongColumns {
                missing,
                unexpected,
                unexpected_count,
                ..
            } => {
                assert_eq!(missing.len(), 3);
                assert!(unexpected.is_empty());
                assert_eq!(*unexpected_count, 3);
            }
            other => panic!("unexpected error {other}"),
        }
        assert_no_leak(&err, "SECRET");
        assert_no_leak(&err, "30");
    }

    #[test]
    fn ragged_rows_are_rejected() {
        let err = csv_error(b"sex,age,note\nMale,30,x\nFemale,SECRET\n", &small_schema());
        assert_eq!(err.to_string(), "row 2 has 2 fields, expected 3");
        assert_eq!(err.row(), Some(2));
        assert_no_leak(&err, "SECRET");
        let err = csv_error(b"sex,age,note\nMale,30,x,SECRET\n", &small_schema());
        assert_eq!(err.to_string(), "row 1 has 4 fields, expected 3");
    }

    #[test]
    fn invalid_utf8_names_the_row_only() {
        let err = csv_error(
            b"sex,age,note\nMale,30,ok\nMale,31,SECRET\xC3\x28\n",
            &small_schema(),
        );
        assert!(
            matches!(
                err,
                IngestError::InvalidEncoding {
                    row: 2,
                    encoding: TextEncoding::Utf8
                }
            ),
            "{err}"
        );
        assert_eq!(err.to_string(), "row 2: not valid UTF-8");
        assert_no_leak(&err, "SECRET");
        // Also in a numeric column.
        let err = csv_error(b"sex,age,note\nMale,3\xFF0,ok\n", &small_schema());
        assert!(
            matches!(err, IngestError::InvalidEncoding { row: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn empty_and_header_only_uploads_are_empty() {
        assert!(matches!(
            csv_error(b"", &small_schema()),
            IngestError::Empty
        ));
        assert!(matches!(
            csv_error(b"sex,age,note\n", &small_schema()),
            IngestError::Empty
        ));
        assert!(matches!(
            csv_error(b"sex,age,note\n\n\n", &small_schema()),
            IngestError::Empty
        ));
        assert!(IngestError::Empty.is_client_error());
    }

    #[test]
    fn bad_integer_names_column_and_row() {
        let err = csv_error(
            b"sex,age,note\nMale,30,x\nMale,31,x\nMale,SECRET17,x\n",
            &small_schema(),
        );
        assert_eq!(
            err.to_string(),
            "column \"age\", row 3: not a valid integer"
        );
        assert_eq!((err.column(), err.row()), (Some("age"), Some(3)));
        assert_no_leak(&err, "SECRET");
        let err = csv_error(
            b"sex,age,note\nMale,99999999999999999999,x\n",
            &small_schema(),
        );
        assert!(matches!(
            err,
            IngestError::InvalidValue {
                problem: ValueProblem::NotInteger,
                ..
            }
        ));
    }

    #[test]
    fn integer_cells_accept_whole_decimals_exactly() {
        for (text, want) in [
            ("17000.0", 17_000),
            ("5.", 5),
            (".0", 0),
            ("-0.0e99999999999999999999", 0),
            ("1.5e1", 15),
            ("100e-2", 1),
            ("0001.000", 1),
            ("9.223372036854775807e18", i64::MAX),
            ("-9223372036854775808.0", i64::MIN),
        ] {
            assert_eq!(parse_int_cell(text.as_bytes()), Ok(want), "{text}");
        }
        for text in ["0.5", "100e-3", "1.23e1", "1e-99999999999999999999999"] {
            assert_eq!(
                parse_int_cell(text.as_bytes()),
                Err(ValueProblem::NotIntegral),
                "{text}"
            );
        }
        for text in [
            "9223372036854775808.0",
            "1e19",
            "1e99999999999999999999",
            ".",
            "e5",
            "1e+",
            "1.0.0",
            "--1.0",
            "1.0e1.0",
        ] {
            assert_eq!(
                parse_int_cell(text.as_bytes()),
                Err(ValueProblem::NotInteger),
                "{text}"
            );
        }
    }

    #[test]
    fn domain_violations_are_rejected() {
        let err = csv_error(
            b"sex,age,note\nMale,30,x\nSECRETSEX,30,x\n",
            &small_schema(),
        );
        assert_eq!(
            err.to_string(),
            "column \"sex\", row 2: not one of the declared categories"
        );
        assert_no_leak(&err, "SECRETSEX");
        let err = csv_error(b"sex,age,note\nMale,121,x\n", &small_schema());
        assert_eq!(
            err.to_string(),
            "column \"age\", row 1: outside the declared range"
        );
        assert_no_leak(&err, "121");

        let mut d = col("d", ColumnType::Date);
        d.domain = Some(Domain::DateRange {
            min: "2000-01-01".into(),
            max: "2000-12-31".into(),
        });
        let declared = schema(vec![d]);
        let err = csv_error(b"d\n2000-06-01\n2001-01-01\n", &declared);
        assert!(matches!(
            err,
            IngestError::InvalidValue {
                row: 2,
                problem: ValueProblem::OutOfDateRange,
                ..
            }
        ));
        let err = csv_error(b"d\n2000-02-30\n", &declared);
        assert!(matches!(
            err,
            IngestError::InvalidValue {
                problem: ValueProblem::NotDate,
                ..
            }
        ));
    }

    #[test]
    fn null_in_non_nullable_column_is_rejected() {
        let err = csv_error(b"sex,age,note\nMale,30,\nMale,,x\n", &small_schema());
        assert_eq!(
            err.to_string(),
            "column \"age\", row 2: empty, but the column is not nullable"
        );
        let err = csv_error(b"sex,age,note\n,30,x\n", &small_schema());
        assert!(matches!(
            err,
            IngestError::InvalidValue {
                row: 1,
                problem: ValueProblem::Null,
                ..
            }
        ));
    }

    #[test]
    fn other_type_errors() {
        let declared = schema(vec![
            col("f", ColumnType::Float),
            col("b", ColumnType::Boolean),
        ]);
        let err = csv_error(b"f,b\nNaN,true\n", &declared);
        assert!(matches!(
            err,
            IngestError::InvalidValue {
                problem: ValueProblem::NotFinite,
                ..
            }
        ));
        let err = csv_error(b"f,b\n1.0,SECRET\n", &declared);
        assert_eq!(
            err.to_string(),
            "column \"b\", row 1: not a valid boolean (expected true, false, 1 or 0)"
        );
        let err = csv_error(b"f,b\nSECRET,1\n", &declared);
        assert_no_leak(&err, "SECRET");
    }

    #[test]
    fn bad_delimiter_and_schema_are_client_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "x.csv", b"sex,age,note\nMale,1,x\n");
        let err = read_upload(&AtRest::Plain, &path, &csv('；'), &small_schema()).unwrap_err();
        assert!(matches!(err, IngestError::BadFormat(_)) && err.is_client_error());
        let mut bad = small_schema();
        bad.columns[0].domain = Some(Domain::Range { min: 0.0, max: 1.0 });
        let err = read_upload(&AtRest::Plain, &path, &csv(','), &bad).unwrap_err();
        assert!(matches!(err, IngestError::Schema(_)) && err.is_client_error());
        let missing = read_upload(
            &AtRest::Plain,
            &dir.path().join("nope.csv"),
            &csv(','),
            &small_schema(),
        )
        .unwrap_err();
        assert!(matches!(missing, IngestError::Io(_)) && !missing.is_client_error());
    }

    #[test]
    fn upload_format_serde_defaults() {
        let f: UploadFormat = serde_json::from_str(r#"{"format":"csv"}"#).unwrap();
        assert_eq!(
            f,
            UploadFormat::Csv {
                delimiter: ',',
                encoding: TextEncoding::Utf8
            }
        );
        let f: UploadFormat =
            serde_json::from_str(r#"{"format":"csv","delimiter":";","encoding":"gbk"}"#).unwrap();
        assert_eq!(
            f,
            UploadFormat::Csv {
                delimiter: ';',
                encoding: TextEncoding::Gbk
            }
        );
        let f: UploadFormat = serde_json::from_str(r#"{"format":"parquet"}"#).unwrap();
        assert_eq!(f, UploadFormat::Parquet);
        assert!(
            serde_json::from_str::<UploadFormat>(r#"{"format":"csv","delimiter":";;"}"#).is_err()
        );
        assert_eq!(
            serde_json::to_value(UploadFormat::default()).unwrap(),
            serde_json::json!({"format":"csv","delimiter":",","encoding":"utf8"})
        );
    }

    fn write_parquet_file(
        dir: &tempfile::TempDir,
        name: &str,
        mut frame: DataFrame,
    ) -> std::path::PathBuf {
        let path = dir.path().join(name);
        let file = File::create(&path).unwrap();
        ParquetWriter::new(file).finish(&mut frame).unwrap();
        path
    }

    #[test]
    fn parquet_with_castable_types_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let frame = df!(
            "age" => [30i32, 40, 50],
            "note" => [Some("x"), None, Some("")],
            "sex" => ["Male", "Female", "Male"],
        )
        .unwrap();
        let path = write_parquet_file(&dir, "ok.parquet", frame);
        let out = read_upload(
            &AtRest::Plain,
            &path,
            &UploadFormat::Parquet,
            &small_schema(),
        )
        .unwrap();
        let names: Vec<String> = out
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["sex", "age", "note"]);
        assert_eq!(out.column("age").unwrap().dtype(), &DataType::Int64);
        assert_eq!(out.column("note").unwrap().null_count(), 2);
    }

    #[test]
    fn parquet_with_wrong_types_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let frame = df!(
            "sex" => ["Male"],
            "age" => ["SECRET30"],
            "note" => ["x"],
        )
        .unwrap();
        let path = write_parquet_file(&dir, "wrong.parquet", frame);
        let err = read_upload(
            &AtRest::Plain,
            &path,
            &UploadFormat::Parquet,
            &small_schema(),
        )
        .unwrap_err();
        match &err {
            IngestError::WrongType {
                column,
                expected,
                found,
            } => {
                assert_eq!(column, "age");
                assert_eq!(*expected, ColumnType::Integer);
                assert_eq!(found, "str");
            }
            other => panic!("unexpected error {other}"),
        }
        assert_eq!(
            err.to_string(),
            "column \"age\": expected integer, found str"
        );
        assert_no_leak(&err, "SECRET");

        let frame = df!("sex" => ["Male"], "age" => [30.5f64], "note" => ["x"]).unwrap();
        let path = write_parquet_file(&dir, "float.parquet", frame);
        let err = read_upload(
            &AtRest::Plain,
            &path,
            &UploadFormat::Parquet,
            &small_schema(),
        )
        .unwrap_err();
        assert!(matches!(err, IngestError::WrongType { .. }), "{err}");
    }

    #[test]
    fn parquet_values_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let frame =
            df!("sex" => ["Male", "SECRET"], "age" => [30i64, 31], "note" => ["x", "y"]).unwrap();
        let path = write_parquet_file(&dir, "dom.parquet", frame);
        let err = read_upload(
            &AtRest::Plain,
            &path,
            &UploadFormat::Parquet,
            &small_schema(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"sex\", row 2: not one of the declared categories"
        );
        assert_no_leak(&err, "SECRET");

        let frame = df!("sex" => ["Male"], "age" => [None::<i64>], "note" => ["x"]).unwrap();
        let path = write_parquet_file(&dir, "null.parquet", frame);
        let err = read_upload(
            &AtRest::Plain,
            &path,
            &UploadFormat::Parquet,
            &small_schema(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            IngestError::InvalidValue {
                row: 1,
                problem: ValueProblem::Null,
                ..
            }
        ));

        let frame = df!("sex" => ["Male"], "age" => [30i64]).unwrap();
        let path = write_parquet_file(&dir, "missing.parquet", frame);
        let err = read_upload(
            &AtRest::Plain,
            &path,
            &UploadFormat::Parquet,
            &small_schema(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, IngestError::WrongColumns { missing, .. } if missing == &vec!["note".to_owned()])
        );

        let frame = df!("sex" => Vec::<&str>::new(), "age" => Vec::<i64>::new(), "note" => Vec::<&str>::new()).unwrap();
        let path = write_parquet_file(&dir, "empty.parquet", frame);
        let err = read_upload(
            &AtRest::Plain,
            &path,
            &UploadFormat::Parquet,
            &small_schema(),
        )
        .unwrap_err();
        assert!(matches!(err, IngestError::Empty));

        let path = write_file(&dir, "junk.parquet", b"sex,age\nMale,SECRET\n");
        let err = read_upload(
            &AtRest::Plain,
            &path,
            &UploadFormat::Parquet,
            &small_schema(),
        )
        .unwrap_err();
        assert!(matches!(err, IngestError::InvalidParquet(_)));
        assert_no_leak(&err, "SECRET");
    }

    #[test]
    fn date_helpers_round_trip() {
        for (text, days) in [
            ("1970-01-01", 0),
            ("2000-03-01", 11_017),
            ("1969-12-31", -1),
        ] {
            assert_eq!(parse_iso_date(text.as_bytes()), Some(days));
            assert_eq!(format_iso_date(days), text);
        }
        for d in (-719_162..2_932_896).step_by(997) {
            assert_eq!(parse_iso_date(format_iso_date(d).as_bytes()), Some(d));
        }
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "20240101",
            "2024-01-0a",
        ] {
            assert_eq!(parse_iso_date(bad.as_bytes()), None, "{bad}");
        }
    }
}
