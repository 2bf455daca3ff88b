//! Query templates and the clear lookup tables they produce.
//!
//! A [`TemplateSpec`] says which column is the key, how one value per key is computed
//! in clear from the de-identified version, and what the encrypted output may be. The
//! provider vets the spec, not individual answers, so everything an answer can reveal
//! is fixed here:
//!
//! - the **value rule** ([`ValueRule`]) maps a column to a small number: a threshold
//!   flag, a bucket between edges, an equal-count quantile group of the table, a
//!   membership flag, a rank in a listed order, or a small integer clamped to the
//!   domain;
//! - an optional **aggregate** ([`Aggregate`]) first folds several rows of one key (a
//!   monthly table) into one number; without it a repeated key is an error;
//! - the **output domain** ([`OutputDomain`]) bounds the answer: a bool, or an unsigned
//!   integer of 1 to 8 bits, and the rule must fit in it;
//! - the **key width** and the optional **public bucket** ([`KeyWidth`], `bucket_bits`).
//!
//! [`LookupTable::build`] reads the two columns, drops rows whose key or value is
//! missing (they read as absent), refuses two keys that share a truncated hash, and
//! returns `(key, value)` pairs sorted by key, so that each public bucket (the top bits
//! of the key) is a contiguous slice.

use std::collections::{HashMap, HashSet};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{FheError, KeyWidth, lookup_hash};
use crate::deid::pseudonym::Pseudonymiser;
use crate::deid::schema::{ColumnRole, ColumnType, DatasetSchema, DeidRule};

/// Most public-bucket bits a template may allow (1,024 buckets).
pub const MAX_BUCKET_BITS: u8 = 10;
/// Widest output, in bits.
pub const MAX_OUTPUT_BITS: u8 = 8;
/// Most values listed by a membership or rank rule.
pub const MAX_LISTED: usize = 256;

/// Column names of a key index file.
const INDEX_COLUMN: &str = "column";
const INDEX_PSEUDONYM: &str = "pseudonym";
const INDEX_HASH: &str = "key_hash";

/// A comparison against a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `<`
    Lt,
}

impl Comparison {
    fn holds(self, x: f64, threshold: f64) -> bool {
        match self {
            Comparison::Ge => x >= threshold,
            Comparison::Gt => x > threshold,
            Comparison::Le => x <= threshold,
            Comparison::Lt => x < threshold,
        }
    }
}

/// How one key's value is computed in clear.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ValueRule {
    /// 1 when `column op value`, else 0.
    Threshold {
        /// Numeric column.
        column: String,
        /// Comparison.
        op: Comparison,
        /// Threshold.
        value: f64,
    },
    /// 1 when the column's value is one of `values`, else 0.
    InSet {
        /// Column (compared as text).
        column: String,
        /// Accepted values.
        values: Vec<String>,
    },
    /// The number of `edges` at or below the value: 0 below the first edge, `edges.len()`
    /// at or above the last.
    Bucket {
        /// Numeric column.
        column: String,
        /// Strictly increasing, finite edges.
        edges: Vec<f64>,
    },
    /// The equal-count group of the table the value falls in, 0 (lowest) to
    /// `buckets - 1`: `floor(buckets × (values strictly below) / keys)`. With `at_least`,
    /// the answer is the flag `group >= at_least` instead (4 buckets, at least 3: "in the
    /// top quartile").
    Quantile {
        /// Numeric column.
        column: String,
        /// Number of groups, 2 to 16.
        #[cfg_attr(feature = "openapi", schema(minimum = 2, maximum = 16))]
        buckets: u8,
        /// Answer only whether the group is at least this (below `buckets`).
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 15))]
        at_least: Option<u8>,
    },
    /// The value's position in `order` (first = 0); unlisted values read as absent.
    Rank {
        /// Column (compared as text).
        column: String,
        /// Values from first to last, e.g. credit grades `A`, `B`, `C`, `D`.
        order: Vec<String>,
    },
    /// The value itself, rounded down and clamped to the output domain.
    Integer {
        /// Numeric column.
        column: String,
    },
}

impl ValueRule {
    /// The column the value is computed from.
    pub fn column(&self) -> &str {
        match self {
            ValueRule::Threshold { column, .. }
            | ValueRule::InSet { column, .. }
            | ValueRule::Bucket { column, .. }
            | ValueRule::Quantile { column, .. }
            | ValueRule::Rank { column, .. }
            | ValueRule::Integer { column } => column,
        }
    }

    fn is_categorical(&self) -> bool {
        matches!(self, ValueRule::InSet { .. } | ValueRule::Rank { .. })
    }
}

/// Folds several rows of one key into one number before the rule applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Sum of the values.
    Sum,
    /// Mean of the values.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Number of non-missing values.
    Count,
}

/// What an answer may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutputDomain {
    /// 0 or 1.
    Bool,
    /// `0 ..= 2^bits - 1`, 1 to 8 bits.
    Uint {
        /// Width in bits.
        bits: u8,
    },
}

impl OutputDomain {
    /// The largest answer.
    pub fn max_value(self) -> u8 {
        match self {
            OutputDomain::Bool => 1,
            OutputDomain::Uint { bits } => {
                if bits >= 8 {
                    u8::MAX
                } else {
                    (1u8 << bits) - 1
                }
            }
        }
    }
}

/// A query template: key column, value rule, output domain, key width, public bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// The key column, e.g. the unified social credit code (kept or pseudonymised).
    pub key_column: String,
    /// How the value is computed in clear.
    pub value: ValueRule,
    /// Fold repeated keys; without it a repeated key is an error.
    #[serde(default)]
    pub aggregate: Option<Aggregate>,
    /// What an answer may be.
    pub output: OutputDomain,
    /// Width of the hashed key (default `u32`).
    #[serde(default)]
    pub key_width: KeyWidth,
    /// Top bits of the hashed key a client may reveal to narrow the scan (0 = never).
    #[serde(default)]
    pub bucket_bits: u8,
}

fn invalid(msg: impl Into<String>) -> FheError {
    FheError::Template(msg.into())
}

fn is_numeric(t: ColumnType) -> bool {
    matches!(
        t,
        ColumnType::Integer | ColumnType::Float | ColumnType::Boolean
    )
}

impl TemplateSpec {
    /// The columns a grant must cover: the key and the value column.
    pub fn columns(&self) -> Vec<String> {
        let mut c = vec![self.key_column.clone(), self.value.column().to_string()];
        c.dedup();
        c
    }

    /// The largest value the rule can produce (before clamping for `integer`).
    fn rule_max(&self) -> u64 {
        match &self.value {
            ValueRule::Threshold { .. } | ValueRule::InSet { .. } => 1,
            ValueRule::Bucket { edges, .. } => edges.len() as u64,
            ValueRule::Quantile {
                buckets, at_least, ..
            } => {
                if at_least.is_some() {
                    1
                } else {
                    u64::from(*buckets).saturating_sub(1)
                }
            }
            ValueRule::Rank { order, .. } => (order.len() as u64).saturating_sub(1),
            ValueRule::Integer { .. } => u64::from(self.output.max_value()),
        }
    }

    /// Checks the spec on its own and against the dataset's schema. Messages name
    /// columns and settings only.
    pub fn validate(&self, schema: &DatasetSchema) -> Result<(), FheError> {
        if let OutputDomain::Uint { bits } = self.output
            && !(1..=MAX_OUTPUT_BITS).contains(&bits)
        {
            return Err(invalid(format!(
                "`output.bits` must be 1 to {MAX_OUTPUT_BITS}"
            )));
        }
        if self.bucket_bits > MAX_BUCKET_BITS {
            return Err(invalid(format!(
                "`bucket_bits` must be 0 to {MAX_BUCKET_BITS}"
            )));
        }
        if u32::from(self.bucket_bits) >= self.key_width.bits() {
            return Err(invalid("`bucket_bits` must be narrower than the key"));
        }
        match &self.value {
            ValueRule::Threshold { value, .. } if !value.is_finite() => {
                return Err(invalid("the threshold must be a finite number"));
            }
            ValueRule::Bucket { edges, .. } => {
                if edges.is_empty() || edges.len() > MAX_LISTED {
                    return Err(invalid(format!(
                        "`edges` must list 1 to {MAX_LISTED} numbers"
                    )));
                }
                if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(invalid("`edges` must be finite and strictly increasing"));
                }
            }
            ValueRule::Quantile {
                buckets, at_least, ..
            } => {
                if !(2..=16).contains(buckets) {
                    return Err(invalid("`buckets` must be 2 to 16"));
                }
                if at_least.is_some_and(|a| a == 0 || a >= *buckets) {
                    return Err(invalid("`at_least` must be 1 to `buckets - 1`"));
                }
            }
            ValueRule::InSet { values, .. } | ValueRule::Rank { order: values, .. } => {
                if values.is_empty() || values.len() > MAX_LISTED {
                    return Err(invalid(format!(
                        "the rule must list 1 to {MAX_LISTED} values"
                    )));
                }
                let distinct: HashSet<&String> = values.iter().collect();
                if distinct.len() != values.len() {
                    return Err(invalid("the rule lists a value twice"));
                }
            }
            _ => {}
        }
        let max = self.rule_max();
        if max > u64::from(self.output.max_value()) {
            return Err(invalid(format!(
                "the rule produces values up to {max}, which do not fit the output domain (at most {})",
                self.output.max_value()
            )));
        }
        if self.value.is_categorical() && self.aggregate.is_some() {
            return Err(invalid(
                "an `aggregate` applies to numeric rules only (threshold, bucket, quantile, integer)",
            ));
        }

        let released = schema.released_columns();
        let key = schema
            .column(&self.key_column)
            .filter(|c| released.contains(&c.name))
            .ok_or_else(|| {
                invalid(format!(
                    "key column `{}` is not a released column of the dataset",
                    self.key_column
                ))
            })?;
        if key.role == ColumnRole::QuasiIdentifier
            || !matches!(key.rule, DeidRule::Keep | DeidRule::Pseudonymise)
        {
            return Err(invalid(format!(
                "key column `{}` must be kept or pseudonymised (masked or generalised values cannot be matched)",
                self.key_column
            )));
        }
        if !matches!(key.column_type, ColumnType::String | ColumnType::Integer) {
            return Err(invalid(format!(
                "key column `{}` must be text or integer",
                self.key_column
            )));
        }
        let column = self.value.column();
        if column == self.key_column {
            return Err(invalid("the value column must differ from the key column"));
        }
        let value = schema
            .column(column)
            .filter(|c| released.contains(&c.name))
            .ok_or_else(|| {
                invalid(format!(
                    "value column `{column}` is not a released column of the dataset"
                ))
            })?;
        let counts_only = self.aggregate == Some(Aggregate::Count);
        if !self.value.is_categorical() && !counts_only {
            let numeric_out = value.role != ColumnRole::QuasiIdentifier
                && matches!(value.rule, DeidRule::Keep | DeidRule::TopBottom { .. });
            if !is_numeric(value.column_type) || !numeric_out {
                return Err(invalid(format!(
                    "value column `{column}` must be numeric and released as numbers (kept or top/bottom coded)"
                )));
            }
        }
        Ok(())
    }
}

/// Where the hashed key of a row comes from.
pub enum KeySource<'a> {
    /// The key column is released in clear: hash it with the dataset's salt.
    Clear {
        /// The dataset id.
        salt: &'a str,
    },
    /// The key column holds pseudonyms: look each up in the version's key index.
    Index(&'a HashMap<String, u64>),
}

/// The clear table a lookup scans: `(hashed key, value)` sorted by key.
#[derive(Clone, Debug, PartialEq)]
pub struct LookupTable {
    width: KeyWidth,
    entries: Vec<(u64, u8)>,
    /// Rows read from the version.
    pub source_rows: u64,
    /// Rows left out because the key or the value was missing, not a number, or not
    /// listed by a rank rule.
    pub excluded_rows: u64,
}

/// A value column read as numbers (missing values as `None`).
type Numbers = Vec<Option<f64>>;
/// A value column read as text (missing values as `None`).
type Texts = Vec<Option<String>>;

/// One key's values while a table is built.
struct Acc {
    original: String,
    values: Vec<f64>,
    text: Option<String>,
    rows: u64,
}

fn frame_error(what: &str) -> FheError {
    FheError::Template(format!(
        "the version cannot be read as the template needs: {what}"
    ))
}

impl LookupTable {
    /// Builds the table of `spec` from a de-identified version. The spec must have
    /// passed [`TemplateSpec::validate`] against the dataset's schema.
    pub fn build(
        frame: &DataFrame,
        spec: &TemplateSpec,
        keys: &KeySource<'_>,
    ) -> Result<LookupTable, FheError> {
        let key_col = frame
            .column(&spec.key_column)
            .map_err(|_| frame_error("the key column is missing"))?
            .cast(&DataType::String)
            .map_err(|_| frame_error("the key column is not text"))?;
        let key_text = key_col
            .str()
            .map_err(|_| frame_error("the key column is not text"))?;
        let value_col = frame
            .column(spec.value.column())
            .map_err(|_| frame_error("the value column is missing"))?;
        let counting = spec.aggregate == Some(Aggregate::Count);
        let (numbers, texts): (Option<Numbers>, Option<Texts>) =
            if spec.value.is_categorical() || counting {
                let t = value_col
                    .cast(&DataType::String)
                    .map_err(|_| frame_error("the value column is not text"))?;
                let ca = t
                    .str()
                    .map_err(|_| frame_error("the value column is not text"))?;
                (
                    None,
                    Some(ca.iter().map(|v| v.map(str::to_string)).collect()),
                )
            } else {
                let n = value_col
                    .cast(&DataType::Float64)
                    .map_err(|_| frame_error("the value column is not numeric"))?;
                let ca = n
                    .f64()
                    .map_err(|_| frame_error("the value column is not numeric"))?;
                (Some(ca.iter().collect()), None)
            };

        let mut by_key: HashMap<u64, Acc> = HashMap::new();
        let mut excluded = 0u64;
        for (i, key) in key_text.iter().enumerate() {
            let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
                excluded += 1;
                continue;
            };
            let full = match keys {
                KeySource::Clear { salt } => lookup_hash(salt, key),
                KeySource::Index(index) => *index.get(key).ok_or_else(|| {
                    FheError::Internal("the key index does not cover the version".into())
                })?,
            };
            let hashed = spec.key_width.truncate(full);
            let number = numbers.as_ref().and_then(|n| n[i]).filter(|x| !x.is_nan());
            let text = texts.as_ref().and_then(|t| t[i].clone());
            let acc = by_key.entry(hashed).or_insert_with(|| Acc {
                original: key.to_string(),
                values: Vec::new(),
                text: None,
                rows: 0,
            });
            if acc.original != key {
                return Err(invalid(format!(
                    "two keys of the table share a {}-bit hash: choose a wider `key_width`",
                    spec.key_width.bits()
                )));
            }
            acc.rows += 1;
            if acc.rows > 1 && spec.aggregate.is_none() {
                return Err(invalid(format!(
                    "key column `{}` repeats a value: choose an `aggregate`",
                    spec.key_column
                )));
            }
            if let Some(x) = number {
                acc.values.push(x);
            }
            if counting {
                if text.is_some() {
                    acc.values.push(1.0);
                }
            } else if text.is_some() {
                acc.text = text;
            }
        }

        // One number (or text) per key.
        let mut reduced: Vec<(u64, Option<f64>, Option<String>, u64)> = by_key
            .into_iter()
            .map(|(k, acc)| {
                let n = if acc.values.is_empty() {
                    if counting { Some(0.0) } else { None }
                } else {
                    let v = &acc.values;
                    Some(match spec.aggregate {
                        None => v[0],
                        Some(Aggregate::Sum) | Some(Aggregate::Count) => v.iter().sum(),
                        Some(Aggregate::Mean) => v.iter().sum::<f64>() / v.len() as f64,
                        Some(Aggregate::Min) => v.iter().copied().fold(f64::INFINITY, f64::min),
                        Some(Aggregate::Max) => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    })
                };
                (k, n, acc.text, acc.rows)
            })
            .collect();
        reduced.sort_by_key(|r| r.0);

        // Quantile groups are computed over the keys that have a value.
        let sorted_values: Vec<f64> = if matches!(spec.value, ValueRule::Quantile { .. }) {
            let mut v: Vec<f64> = reduced.iter().filter_map(|r| r.1).collect();
            v.sort_by(f64::total_cmp);
            v
        } else {
            Vec::new()
        };

        let max = spec.output.max_value();
        let mut entries = Vec::with_capacity(reduced.len());
        for (key, number, text, rows) in reduced {
            let value: Option<u8> = match &spec.value {
                ValueRule::Threshold { op, value, .. } => {
                    number.map(|x| u8::from(op.holds(x, *value)))
                }
                ValueRule::Bucket { edges, .. } => {
                    number.map(|x| edges.iter().filter(|e| **e <= x).count() as u8)
                }
                ValueRule::Quantile {
                    buckets, at_least, ..
                } => number.map(|x| {
                    let below = sorted_values.partition_point(|v| *v < x);
                    let group = (below * usize::from(*buckets)) / sorted_values.len().max(1);
                    let group = group.min(usize::from(*buckets) - 1) as u8;
                    match at_least {
                        Some(a) => u8::from(group >= *a),
                        None => group,
                    }
                }),
                ValueRule::InSet { values, .. } => text.map(|t| u8::from(values.contains(&t))),
                ValueRule::Rank { order, .. } => text
                    .and_then(|t| order.iter().position(|o| *o == t))
                    .map(|p| p as u8),
                ValueRule::Integer { .. } => {
                    number.map(|x| x.floor().clamp(0.0, f64::from(max)) as u8)
                }
            };
            match value {
                Some(v) if v <= max => entries.push((key, v)),
                // Validation makes every rule fit; anything else is left out rather than
                // answered outside the vetted domain.
                _ => excluded += rows,
            }
        }
        Ok(LookupTable {
            width: spec.key_width,
            entries,
            source_rows: frame.height() as u64,
            excluded_rows: excluded,
        })
    }

    /// The key width.
    pub fn width(&self) -> KeyWidth {
        self.width
    }

    /// Every `(key, value)` pair, sorted by key.
    pub fn entries(&self) -> &[(u64, u8)] {
        &self.entries
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key made it into the table.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The clear answer for a truncated key: what a decrypted lookup must equal.
    pub fn get(&self, key: u64) -> Option<u8> {
        self.entries
            .binary_search_by_key(&key, |e| e.0)
            .ok()
            .map(|i| self.entries[i].1)
    }

    /// The rows of one public bucket (a contiguous slice, since entries are sorted).
    pub fn bucket(&self, bucket_bits: u8, bucket: u64) -> &[(u64, u8)] {
        if bucket_bits == 0 {
            return &self.entries;
        }
        let w = self.width;
        let start = self
            .entries
            .partition_point(|e| w.bucket_of(e.0, bucket_bits) < bucket);
        let end = self
            .entries
            .partition_point(|e| w.bucket_of(e.0, bucket_bits) <= bucket);
        &self.entries[start..end]
    }

    /// Rows per public bucket, for all `2^bucket_bits` buckets.
    pub fn bucket_sizes(&self, bucket_bits: u8) -> Vec<u64> {
        let mut sizes = vec![0u64; 1usize << bucket_bits];
        for e in &self.entries {
            let b = self.width.bucket_of(e.0, bucket_bits) as usize;
            if let Some(s) = sizes.get_mut(b) {
                *s += 1;
            }
        }
        sizes
    }
}

/// The key index of a raw upload: for every pseudonymised column and every distinct
/// value, `(column, pseudonym, lookup_hash(salt, value))`. It must be built from the
/// same frame and `secret` the de-identification pipeline uses, so that the pseudonyms
/// match the version's. `None` when the schema pseudonymises nothing.
pub fn key_index(
    frame: &DataFrame,
    schema: &DatasetSchema,
    secret: &[u8; 32],
    salt: &str,
) -> Result<Option<DataFrame>, FheError> {
    let pseudonymiser = Pseudonymiser::new(secret);
    let (mut columns, mut pseudonyms, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
    let mut any = false;
    for spec in schema
        .columns
        .iter()
        .filter(|c| c.rule == DeidRule::Pseudonymise)
    {
        any = true;
        let Ok(col) = frame.column(&spec.name) else {
            continue;
        };
        let text = col
            .cast(&DataType::String)
            .map_err(|_| FheError::Internal("key index: casting a column".into()))?;
        let ca = text
            .str()
            .map_err(|_| FheError::Internal("key index: reading a column".into()))?;
        let mut seen = HashSet::new();
        for value in ca.iter().flatten() {
            if seen.insert(value) {
                columns.push(spec.name.clone());
                pseudonyms.push(pseudonymiser.pseudonym(value));
                hashes.push(lookup_hash(salt, value));
            }
        }
    }
    if !any {
        return Ok(None);
    }
    DataFrame::new(vec![
        Column::new(INDEX_COLUMN.into(), columns),
        Column::new(INDEX_PSEUDONYM.into(), pseudonyms),
        Column::new(INDEX_HASH.into(), hashes),
    ])
    .map(Some)
    .map_err(|_| FheError::Internal("key index: assembling the frame".into()))
}

/// The pseudonym → lookup hash map of one column, from a stored key index.
pub fn read_key_index(index: &DataFrame, column: &str) -> Result<HashMap<String, u64>, FheError> {
    let bad = |_| FheError::Internal("the stored key index is malformed".into());
    let names = index
        .column(INDEX_COLUMN)
        .map_err(bad)?
        .str()
        .map_err(bad)?;
    let pseudonyms = index
        .column(INDEX_PSEUDONYM)
        .map_err(bad)?
        .str()
        .map_err(bad)?;
    let hashes = index.column(INDEX_HASH).map_err(bad)?.u64().map_err(bad)?;
    let mut out = HashMap::new();
    for ((name, pseudonym), hash) in names.iter().zip(pseudonyms.iter()).zip(hashes.iter()) {
        if let (Some(n), Some(p), Some(h)) = (name, pseudonym, hash)
            && n == column
        {
            out.insert(p.to_string(), h);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: ValueRule, output: OutputDomain) -> TemplateSpec {
        TemplateSpec {
            key_column: "code".into(),
            value,
            aggregate: None,
            output,
            key_width: KeyWidth::U32,
            bucket_bits: 0,
        }
    }

    #[test]
    fn output_domains_bound_the_rules() {
        let bucket = spec(
            ValueRule::Bucket {
                column: "kwh".into(),
                edges: vec![1.0, 2.0, 3.0, 4.0],
            },
            OutputDomain::Uint { bits: 2 },
        );
        // 5 buckets do not fit 2 bits.
        assert_eq!(bucket.rule_max(), 4);
        assert!(4 > u64::from(bucket.output.max_value()));
        assert_eq!(OutputDomain::Uint { bits: 8 }.max_value(), 255);
        assert_eq!(OutputDomain::Bool.max_value(), 1);
    }

    #[test]
    fn spec_json_round_trips_with_defaults() {
        let json = r#"{"key_column":"code","value":{"rule":"quantile","column":"kwh","buckets":4,"at_least":3},"output":{"kind":"bool"}}"#;
        let s: TemplateSpec = serde_json::from_str(json).unwrap();
        assert_eq!(s.key_width, KeyWidth::U32);
        assert_eq!(s.bucket_bits, 0);
        assert_eq!(s.columns(), vec!["code".to_string(), "kwh".to_string()]);
        let back: TemplateSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<TemplateSpec>(r#"{"key_column":"c","value":{"rule":"integer","column":"v"},"output":{"kind":"bool"},"extra":1}"#).is_err());
    }
}
