//! The declared shape of a dataset: columns, their types, roles, domains and
//! de-identification rules.
//!
//! A provider declares this when it registers a dataset; every upload is validated
//! against it, the de-identification pipeline is driven by it, and dummy data is
//! drawn from its domains and hierarchies. It is serialised as JSON in the catalog and
//! over HTTP, so every enum here is `snake_case` and internally tagged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lattice::LossMetric;

/// The logical type of a column's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Integer,
    /// 64-bit float.
    Float,
    /// Calendar date, `YYYY-MM-DD`.
    Date,
    /// `true`/`false` (also `1`/`0`).
    Boolean,
}

/// What a column means for disclosure risk (classification and grading, GD21 Art.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ColumnRole {
    /// Identifies a person or enterprise by itself (name, ID number): never leaves raw.
    DirectIdentifier,
    /// Identifies in combination with others (age, sex, region): generalised to k-anonymity.
    QuasiIdentifier,
    /// The attribute to protect (income, diagnosis): subject to l-diversity.
    Sensitive,
    /// Neither; kept as declared.
    Other,
}

/// Which identifier format a mask recognises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum MaskFormat {
    /// 18-digit resident identity number (GB 11643-1999, ISO 7064 MOD 11-2 check).
    ResidentId,
    /// Mainland mobile number, 11 digits starting `1[3-9]`.
    Mobile,
    /// Unified social credit code (GB 32100-2015, 18 characters, mod-31 check).
    CreditCode,
    /// A personal name: the first character (surname) is kept, the rest masked.
    PersonName,
    /// Any text matching `pattern` is replaced by `replacement` (regex syntax).
    Regex {
        /// Regular expression.
        pattern: String,
        /// Replacement text; `$1`-style groups are allowed.
        replacement: String,
    },
}

/// Calendar unit a date is truncated to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DateUnit {
    /// Keep year and month.
    Month,
    /// Keep the year only.
    Year,
}

/// How a column is de-identified.
///
/// For quasi-identifiers, `hierarchy`, `bin` and `date_truncate` define a *ladder* of
/// generalisation levels; the k-anonymity search chooses the level, the rule does not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeidRule {
    /// Kept as is.
    Keep,
    /// Removed from the output.
    Drop,
    /// Replaced by a keyed BLAKE3 pseudonym (stable within the dataset only).
    Pseudonymise,
    /// Masked according to a recognised identifier format.
    Mask(MaskFormat),
    /// Generalised along a named hierarchy supplied with the dataset.
    Hierarchy {
        /// Key into the dataset's hierarchies.
        name: String,
    },
    /// Numeric binning: level 1 is bins of `width`, each further level doubles it,
    /// the last level is `*`.
    Bin {
        /// Width of the finest bin.
        width: f64,
        /// Number of doubling levels before full suppression (at least 1).
        levels: u8,
    },
    /// Date generalisation: level 1 truncates to `finest`, then year (if finest is
    /// month), then `*`.
    DateTruncate {
        /// The first truncation step.
        finest: DateUnit,
    },
    /// Values below `lower` become `lower`, above `upper` become `upper`.
    TopBottom {
        /// Bottom code.
        lower: f64,
        /// Top code.
        upper: f64,
    },
}

/// The values a column may take; used for validation, dummy data and DP clipping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Domain {
    /// A closed set of categories.
    Categories {
        /// The allowed values.
        values: Vec<String>,
    },
    /// A closed numeric range.
    Range {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// A closed date range, `YYYY-MM-DD`.
    DateRange {
        /// First date.
        min: String,
        /// Last date.
        max: String,
    },
    /// Values of a recognised identifier format (dummy data draws valid ones).
    Identifier(MaskFormat),
}

/// One declared column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColumnSpec {
    /// Column name as it appears in the upload header.
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Disclosure role.
    pub role: ColumnRole,
    /// De-identification rule.
    pub rule: DeidRule,
    /// Declared domain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
    /// Whether empty cells are allowed.
    #[serde(default)]
    pub nullable: bool,
}

/// A generalisation hierarchy: each row is a value followed by its coarser levels,
/// the last usually `*` (the format of `../shared/data/adult/adult_hierarchy_*.csv`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hierarchy {
    /// `rows[i][0]` is an original value, `rows[i][j]` its level-`j` generalisation.
    pub rows: Vec<Vec<String>>,
}

/// Targets for the k-anonymity search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrivacyModel {
    /// Minimum equivalence-class size.
    pub k: u32,
    /// Distinct l-diversity on every sensitive column, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l: Option<u32>,
    /// Largest share of records that may be suppressed, 0.0–1.0.
    pub max_suppression: f64,
    /// The information loss the lattice search minimises (LM unless the provider
    /// chooses another: NUE, discernibility or average class size, as in ARX).
    #[serde(default)]
    pub metric: LossMetric,
}

impl Default for PrivacyModel {
    fn default() -> Self {
        PrivacyModel {
            k: 5,
            l: None,
            max_suppression: 0.01,
            metric: LossMetric::default(),
        }
    }
}

/// Everything the pipeline needs to know about a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetSchema {
    /// Columns in upload order.
    pub columns: Vec<ColumnSpec>,
    /// Hierarchies referenced by `DeidRule::Hierarchy`, by name.
    #[serde(default)]
    pub hierarchies: BTreeMap<String, Hierarchy>,
    /// k-anonymity targets.
    #[serde(default)]
    pub privacy: PrivacyModel,
}

/// Why a declared schema cannot drive de-identification.
///
/// Messages name columns, hierarchies and row numbers of the schema only: a schema holds
/// no cell values, and these messages reach HTTP clients.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// The schema declares no columns.
    #[error("the schema declares no columns")]
    NoColumns,
    /// A column has an empty name.
    #[error("column {index} has an empty name")]
    EmptyName {
        /// 1-based position in the schema.
        index: usize,
    },
    /// Two columns share a name.
    #[error("column `{column}` is declared more than once")]
    DuplicateColumn {
        /// The repeated name.
        column: String,
    },
    /// A rule does not fit the column's type.
    #[error("column `{column}`: rule `{rule}` cannot apply to a {column_type} column")]
    RuleTypeMismatch {
        /// Column name.
        column: String,
        /// Rule kind.
        rule: &'static str,
        /// Declared type.
        column_type: &'static str,
    },
    /// A rule does not fit the column's role.
    #[error("column `{column}`: rule `{rule}` is not allowed for a {role} column ({hint})")]
    RuleRoleMismatch {
        /// Column name.
        column: String,
        /// Rule kind.
        rule: &'static str,
        /// Declared role.
        role: &'static str,
        /// What is allowed instead.
        hint: &'static str,
    },
    /// A `hierarchy` rule names a hierarchy the schema does not supply.
    #[error("column `{column}` references hierarchy `{hierarchy}`, which is not supplied")]
    UnknownHierarchy {
        /// Column name.
        column: String,
        /// Missing hierarchy name.
        hierarchy: String,
    },
    /// A hierarchy has no rows or rows without values.
    #[error("hierarchy `{hierarchy}` is empty")]
    EmptyHierarchy {
        /// Hierarchy name.
        hierarchy: String,
    },
    /// Hierarchy rows differ in length.
    #[error(
        "hierarchy `{hierarchy}` is not rectangular: row {row} has {found} levels, row 1 has {expected}"
    )]
    RaggedHierarchy {
        /// Hierarchy name.
        hierarchy: String,
        /// 1-based row number.
        row: usize,
        /// Length of the first row.
        expected: usize,
        /// Length of this row.
        found: usize,
    },
    /// A value generalises to two different values at the next level, so the
    /// hierarchy is not a tree and k-anonymity would not be monotone over it.
    #[error(
        "hierarchy `{hierarchy}` is not a tree: row {row} generalises its level-{level} value differently from an earlier row"
    )]
    InconsistentHierarchy {
        /// Hierarchy name.
        hierarchy: String,
        /// 1-based row number.
        row: usize,
        /// The level whose value maps inconsistently.
        level: usize,
    },
    /// `k` is zero.
    #[error("k must be at least 1")]
    InvalidK,
    /// `l` is zero.
    #[error("l must be at least 1")]
    InvalidL,
    /// `l` is set but no sensitive column is kept.
    #[error("l-diversity needs at least one sensitive column that is not dropped")]
    LWithoutSensitive,
    /// `max_suppression` is outside 0–1.
    #[error("max_suppression must be between 0 and 1")]
    InvalidSuppression,
    /// A bin rule has a non-positive width or zero levels.
    #[error("column `{column}`: bin width must be a positive finite number and levels at least 1")]
    InvalidBin {
        /// Column name.
        column: String,
    },
    /// A top/bottom rule has bounds out of order or not finite.
    #[error(
        "column `{column}`: top/bottom coding needs finite bounds with lower <= upper{integer}"
    )]
    InvalidTopBottom {
        /// Column name.
        column: String,
        /// Extra requirement for integer columns.
        integer: &'static str,
    },
    /// A regex mask does not compile.
    #[error("column `{column}`: mask pattern does not compile: {reason}")]
    InvalidRegex {
        /// Column name.
        column: String,
        /// The regex crate's explanation (about the pattern, never data).
        reason: String,
    },
    /// A declared domain does not fit the column type or is empty/out of order.
    #[error("column `{column}`: invalid domain ({reason})")]
    InvalidDomain {
        /// Column name.
        column: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl ColumnType {
    /// The `snake_case` name used in JSON and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Date => "date",
            ColumnType::Boolean => "boolean",
        }
    }
}

impl ColumnRole {
    /// The `snake_case` name used in JSON and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnRole::DirectIdentifier => "direct_identifier",
            ColumnRole::QuasiIdentifier => "quasi_identifier",
            ColumnRole::Sensitive => "sensitive",
            ColumnRole::Other => "other",
        }
    }
}

impl DeidRule {
    /// The `snake_case` rule kind used in JSON and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            DeidRule::Keep => "keep",
            DeidRule::Drop => "drop",
            DeidRule::Pseudonymise => "pseudonymise",
            DeidRule::Mask(_) => "mask",
            DeidRule::Hierarchy { .. } => "hierarchy",
            DeidRule::Bin { .. } => "bin",
            DeidRule::DateTruncate { .. } => "date_truncate",
            DeidRule::TopBottom { .. } => "top_bottom",
        }
    }

    /// Whether the rule defines a generalisation ladder (only meaningful for QIs).
    pub fn is_ladder(&self) -> bool {
        matches!(
            self,
            DeidRule::Hierarchy { .. } | DeidRule::Bin { .. } | DeidRule::DateTruncate { .. }
        )
    }
}

impl ColumnSpec {
    /// Whether this column takes part in the k-anonymity search.
    pub fn is_quasi_identifier(&self) -> bool {
        self.role == ColumnRole::QuasiIdentifier && self.rule != DeidRule::Drop
    }

    /// Whether this column is a sensitive attribute that reaches the output.
    pub fn is_kept_sensitive(&self) -> bool {
        self.role == ColumnRole::Sensitive && self.rule != DeidRule::Drop
    }
}

/// Parses `YYYY-MM-DD` into (year, month, day) with a real calendar check.
pub(crate) fn parse_iso_date(s: &str) -> Option<(i32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let y = digits(0..4)?;
    let m = digits(5..7)?;
    let d = digits(8..10)?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1..=days).contains(&d)).then_some((y as i32, m, d))
}

impl DatasetSchema {
    /// The column called `name`, if declared.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Names of the columns that survive de-identification (every rule but `Drop`), in
    /// schema order: what a grant may cover and a model may read.
    pub fn released_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| !matches!(c.rule, DeidRule::Drop))
            .map(|c| c.name.clone())
            .collect()
    }

    /// The columns that take part in the k-anonymity search, in schema order.
    pub fn quasi_identifiers(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| c.is_quasi_identifier())
    }

    /// Checks that the schema is internally consistent and can drive the pipeline.
    ///
    /// Rules: column names are unique and non-empty; every referenced hierarchy exists,
    /// is non-empty, rectangular and a tree (each value has one parent per level);
    /// each rule fits its column's type and role (a direct identifier is never kept,
    /// generalisation ladders only apply to quasi-identifiers); `k >= 1`,
    /// `0 <= max_suppression <= 1`, bins are positive, and `l` needs a kept sensitive
    /// column.
    pub fn validate(&self) -> Result<(), SchemaError> {
        if self.columns.is_empty() {
            return Err(SchemaError::NoColumns);
        }
        let mut seen = std::collections::HashSet::new();
        for (i, col) in self.columns.iter().enumerate() {
            if col.name.is_empty() {
                return Err(SchemaError::EmptyName { index: i + 1 });
            }
            if !seen.insert(col.name.as_str()) {
                return Err(SchemaError::DuplicateColumn {
                    column: col.name.clone(),
                });
            }
            self.validate_rule(col)?;
            if let Some(domain) = &col.domain {
                validate_domain(col, domain)?;
            }
        }
        let model = &self.privacy;
        if model.k == 0 {
            return Err(SchemaError::InvalidK);
        }
        // `contains` is false for NaN, so NaN is rejected too.
        if !(0.0..=1.0).contains(&model.max_suppression) {
            return Err(SchemaError::InvalidSuppression);
        }
        if let Some(l) = model.l {
            if l == 0 {
                return Err(SchemaError::InvalidL);
            }
            if !self.columns.iter().any(ColumnSpec::is_kept_sensitive) {
                return Err(SchemaError::LWithoutSensitive);
            }
        }
        Ok(())
    }

    fn validate_rule(&self, col: &ColumnSpec) -> Result<(), SchemaError> {
        use ColumnType as T;
        let rule = &col.rule;
        let type_ok = match rule {
            DeidRule::Keep | DeidRule::Drop | DeidRule::Pseudonymise => true,
            DeidRule::Mask(_) => col.column_type == T::String,
            // Floats have no canonical text form to look up in a hierarchy: bin them.
            DeidRule::Hierarchy { .. } => col.column_type != T::Float,
            DeidRule::Bin { .. } | DeidRule::TopBottom { .. } => {
                matches!(col.column_type, T::Integer | T::Float)
            }
            DeidRule::DateTruncate { .. } => col.column_type == T::Date,
        };
        if !type_ok {
            return Err(SchemaError::RuleTypeMismatch {
                column: col.name.clone(),
                rule: rule.kind(),
                column_type: col.column_type.as_str(),
            });
        }
        let role_error = |hint: &'static str| SchemaError::RuleRoleMismatch {
            column: col.name.clone(),
            rule: rule.kind(),
            role: col.role.as_str(),
            hint,
        };
        match col.role {
            ColumnRole::DirectIdentifier => {
                if !matches!(
                    rule,
                    DeidRule::Drop | DeidRule::Pseudonymise | DeidRule::Mask(_)
                ) {
                    return Err(role_error("use drop, pseudonymise or mask"));
                }
            }
            ColumnRole::QuasiIdentifier => {
                if !(rule.is_ladder() || matches!(rule, DeidRule::Keep | DeidRule::Drop)) {
                    return Err(role_error(
                        "use hierarchy, bin, date_truncate, keep or drop",
                    ));
                }
            }
            ColumnRole::Sensitive | ColumnRole::Other => {
                if rule.is_ladder() {
                    return Err(role_error(
                        "generalisation ladders apply to quasi-identifiers only",
                    ));
                }
            }
        }
        match rule {
            DeidRule::Hierarchy { name } => {
                let hierarchy =
                    self.hierarchies
                        .get(name)
                        .ok_or_else(|| SchemaError::UnknownHierarchy {
                            column: col.name.clone(),
                            hierarchy: name.clone(),
                        })?;
                validate_hierarchy(name, hierarchy)?;
            }
            DeidRule::Bin { width, levels }
                if (!(width.is_finite() && *width > 0.0) || *levels == 0) =>
            {
                return Err(SchemaError::InvalidBin {
                    column: col.name.clone(),
                });
            }
            DeidRule::TopBottom { lower, upper } => {
                let integer = col.column_type == T::Integer;
                let finite = lower.is_finite() && upper.is_finite() && lower <= upper;
                // Integer columns keep their type, so their codes must be integers.
                let integral = !integer || (lower.fract() == 0.0 && upper.fract() == 0.0);
                if !(finite && integral) {
                    return Err(SchemaError::InvalidTopBottom {
                        column: col.name.clone(),
                        integer: if integer { " and integral bounds" } else { "" },
                    });
                }
            }
            DeidRule::Mask(MaskFormat::Regex { pattern, .. }) => {
                if let Err(e) = regex::Regex::new(pattern) {
                    return Err(SchemaError::InvalidRegex {
                        column: col.name.clone(),
                        reason: e.to_string(),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn validate_hierarchy(name: &str, hierarchy: &Hierarchy) -> Result<(), SchemaError> {
    let Some(first) = hierarchy.rows.first() else {
        return Err(SchemaError::EmptyHierarchy {
            hierarchy: name.to_owned(),
        });
    };
    let width = first.len();
    if width == 0 {
        return Err(SchemaError::EmptyHierarchy {
            hierarchy: name.to_owned(),
        });
    }
    for (i, row) in hierarchy.rows.iter().enumerate() {
        if row.len() != width {
            return Err(SchemaError::RaggedHierarchy {
                hierarchy: name.to_owned(),
                row: i + 1,
                expected: width,
                found: row.len(),
            });
        }
    }
    // Level j+1 must be a function of level j (including j = 0: a value listed twice
    // must generalise the same way both times).
    for level in 0..width.saturating_sub(1) {
        let mut parent: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
        for (i, row) in hierarchy.rows.iter().enumerate() {
            let p = parent
                .entry(row[level].as_str())
                .or_insert(row[level + 1].as_str());
            if *p != row[level + 1] {
                return Err(SchemaError::InconsistentHierarchy {
                    hierarchy: name.to_owned(),
                    row: i + 1,
                    level,
                });
            }
        }
    }
    Ok(())
}

fn validate_domain(col: &ColumnSpec, domain: &Domain) -> Result<(), SchemaError> {
    let bad = |reason: &'static str| SchemaError::InvalidDomain {
        column: col.name.clone(),
        reason,
    };
    match domain {
        Domain::Categories { values } => {
            if values.is_empty() {
                return Err(bad("categories must not be empty"));
            }
        }
        Domain::Range { min, max } => {
            if !matches!(col.column_type, ColumnType::Integer | ColumnType::Float) {
                return Err(bad("a numeric range needs an integer or float column"));
            }
            if !(min.is_finite() && max.is_finite() && min <= max) {
                return Err(bad("range bounds must be finite with min <= max"));
            }
        }
        Domain::DateRange { min, max } => {
            if col.column_type != ColumnType::Date {
                return Err(bad("a date range needs a date column"));
            }
            match (parse_iso_date(min), parse_iso_date(max)) {
                (Some(a), Some(b)) if a <= b => {}
                (Some(_), Some(_)) => return Err(bad("date range must have min <= max")),
                _ => return Err(bad("date range bounds must be YYYY-MM-DD dates")),
            }
        }
        Domain::Identifier(format) => {
            if col.column_type != ColumnType::String {
                return Err(bad("an identifier domain needs a string column"));
            }
            if let MaskFormat::Regex { pattern, .. } = format
                && regex::Regex::new(pattern).is_err()
            {
                return Err(bad("identifier pattern does not compile"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, column_type: ColumnType, role: ColumnRole, rule: DeidRule) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            column_type,
            role,
            rule,
            domain: None,
            nullable: false,
        }
    }

    fn schema(columns: Vec<ColumnSpec>) -> DatasetSchema {
        let rows = vec![
            vec!["a".into(), "ab".into(), "*".into()],
            vec!["b".into(), "ab".into(), "*".into()],
        ];
        DatasetSchema {
            columns,
            hierarchies: BTreeMap::from([("h".to_owned(), Hierarchy { rows })]),
            privacy: PrivacyModel::default(),
        }
    }

    fn qi_h() -> ColumnSpec {
        col(
            "q",
            ColumnType::String,
            ColumnRole::QuasiIdentifier,
            DeidRule::Hierarchy { name: "h".into() },
        )
    }

    #[test]
    fn valid_schema_passes() {
        let mut s = schema(vec![
            qi_h(),
            col(
                "age",
                ColumnType::Integer,
                ColumnRole::QuasiIdentifier,
                DeidRule::Bin {
                    width: 5.0,
                    levels: 3,
                },
            ),
            col(
                "d",
                ColumnType::Date,
                ColumnRole::QuasiIdentifier,
                DeidRule::DateTruncate {
                    finest: DateUnit::Month,
                },
            ),
            col(
                "id",
                ColumnType::String,
                ColumnRole::DirectIdentifier,
                DeidRule::Mask(MaskFormat::ResidentId),
            ),
            col(
                "s",
                ColumnType::Float,
                ColumnRole::Sensitive,
                DeidRule::TopBottom {
                    lower: 0.0,
                    upper: 9.5,
                },
            ),
        ]);
        s.privacy.l = Some(2);
        assert_eq!(s.validate(), Ok(()));
        // The serde shape is stable.
        let json = serde_json::to_value(&s.columns[1].rule).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "bin", "width": 5.0, "levels": 3})
        );
    }

    #[test]
    fn each_rule_is_enforced() {
        let cases: Vec<(DatasetSchema, &str)> = vec![
            (schema(vec![]), "no columns"),
            (schema(vec![qi_h(), qi_h()]), "more than once"),
            (
                schema(vec![col(
                    "q",
                    ColumnType::String,
                    ColumnRole::QuasiIdentifier,
                    DeidRule::Hierarchy { name: "x".into() },
                )]),
                "not supplied",
            ),
            (
                schema(vec![col(
                    "n",
                    ColumnType::String,
                    ColumnRole::DirectIdentifier,
                    DeidRule::Keep,
                )]),
                "direct_identifier",
            ),
            (
                schema(vec![col(
                    "n",
                    ColumnType::Integer,
                    ColumnRole::DirectIdentifier,
                    DeidRule::Mask(MaskFormat::Mobile),
                )]),
                "integer",
            ),
            (
                schema(vec![col(
                    "n",
                    ColumnType::String,
                    ColumnRole::QuasiIdentifier,
                    DeidRule::Bin {
                        width: 1.0,
                        levels: 1,
                    },
                )]),
                "string",
            ),
            (
                schema(vec![col(
                    "n",
                    ColumnType::Float,
                    ColumnRole::QuasiIdentifier,
                    DeidRule::Bin {
                        width: 0.0,
                        levels: 1,
                    },
                )]),
                "bin width",
            ),
            (
                schema(vec![col(
                    "n",
                    ColumnType::Float,
                    ColumnRole::QuasiIdentifier,
                    DeidRule::Bin {
                        width: 1.0,
                        levels: 0,
                    },
                )]),
                "bin width",
            ),
            (
                schema(vec![col(
                    "n",
                    ColumnType::Integer,
                    ColumnRole::Other,
                    DeidRule::TopBottom {
                        lower: 0.5,
                        upper: 2.0,
                    },
                )]),
                "integral",
            ),
            (
                schema(vec![col(
                    "n",
                    ColumnType::String,
                    ColumnRole::Sensitive,
                    DeidRule::Hierarchy { name: "h".into() },
                )]),
                "quasi-identifiers only",
            ),
            (
                schema(vec![col(
                    "n",
                    ColumnType::String,
                    ColumnRole::DirectIdentifier,
                    DeidRule::Mask(MaskFormat::Regex {
                        pattern: "(".into(),
                        replacement: String::new(),
                    }),
                )]),
                "does not compile",
            ),
        ];
        for (s, needle) in cases {
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "`{err}` lacks `{needle}`");
        }

        let mut s = schema(vec![qi_h()]);
        s.privacy.k = 0;
        assert_eq!(s.validate(), Err(SchemaError::InvalidK));
        s.privacy.k = 2;
        s.privacy.max_suppression = 1.5;
        assert_eq!(s.validate(), Err(SchemaError::InvalidSuppression));
        s.privacy.max_suppression = f64::NAN;
        assert_eq!(s.validate(), Err(SchemaError::InvalidSuppression));
        s.privacy.max_suppression = 0.0;
        s.privacy.l = Some(2);
        assert_eq!(s.validate(), Err(SchemaError::LWithoutSensitive));

        let mut s = schema(vec![qi_h()]);
        s.hierarchies
            .get_mut("h")
            .unwrap()
            .rows
            .push(vec!["c".into(), "*".into()]);
        assert!(matches!(
            s.validate(),
            Err(SchemaError::RaggedHierarchy { row: 3, .. })
        ));
        let mut s = schema(vec![qi_h()]);
        s.hierarchies.get_mut("h").unwrap().rows.push(vec![
            "c".into(),
            "ab".into(),
            "other".into(),
        ]);
        assert!(matches!(
            s.validate(),
            Err(SchemaError::InconsistentHierarchy {
                row: 3,
                level: 1,
                ..
            })
        ));
    }
}
