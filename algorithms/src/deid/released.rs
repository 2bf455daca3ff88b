//! What each column of a certified version holds, so that a developer writes filters
//! that can match.
//!
//! A generalised quasi-identifier holds bands or hierarchy labels, not raw values:
//! after the search chose age level 2, `WHERE age = 37` silently matches nothing, and
//! only `WHERE age = '[30, 40)'` does. The released domain is derived from what is
//! public anyway (the declared schema, its hierarchies and bin widths, and the levels
//! the k-anonymity search chose, which the version's report states), never from the
//! rows, so it can be shown on the dataset's page and with every dry run.
//!
//! Records suppressed by the search keep their row with every quasi-identifier NULL.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::schema::{ColumnSpec, DatasetSchema, DateUnit, DeidRule, Domain};

/// How one released column's values look.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleasedDomain {
    /// The column.
    pub column: String,
    /// The rule that produced it (`keep`, `hierarchy`, `bin`, `date_truncate`, …).
    pub rule: String,
    /// The generalisation level of a quasi-identifier (0: original values).
    pub level: Option<u8>,
    /// How the values look, in words.
    pub description: String,
    /// Every value the column can hold, when that is a known finite set.
    pub values: Option<Vec<String>>,
}

/// The released domain of every released column, in schema order. `levels` are the
/// levels the search chose (the version report's `levels`); a quasi-identifier missing
/// from it is at level 0.
pub fn released_domains(
    schema: &DatasetSchema,
    levels: &BTreeMap<String, u8>,
) -> Vec<ReleasedDomain> {
    schema
        .columns
        .iter()
        .filter(|c| !matches!(c.rule, DeidRule::Drop))
        .map(|spec| {
            let level = spec
                .is_quasi_identifier()
                .then(|| levels.get(&spec.name).copied().unwrap_or(0));
            let (rule, description, values) = describe(schema, spec, level.unwrap_or(0));
            ReleasedDomain {
                column: spec.name.clone(),
                rule: rule.to_owned(),
                level,
                description,
                values,
            }
        })
        .collect()
}

/// The rule name, the description and the finite value set of one column at `level`.
fn describe(
    schema: &DatasetSchema,
    spec: &ColumnSpec,
    level: u8,
) -> (&'static str, String, Option<Vec<String>>) {
    let star = || {
        (
            "suppressed (every value is `*`)".to_owned(),
            Some(vec!["*".to_owned()]),
        )
    };
    let (rule, (description, values)) = match &spec.rule {
        DeidRule::Drop => ("drop", ("not released".to_owned(), None)),
        DeidRule::Keep => ("keep", declared(spec)),
        DeidRule::Pseudonymise => (
            "pseudonymise",
            (
                "keyed pseudonyms (hex), stable within this dataset only".to_owned(),
                None,
            ),
        ),
        DeidRule::Mask(format) => (
            "mask",
            (
                format!(
                    "masked values ({})",
                    serde_json::to_value(format)
                        .ok()
                        .and_then(|v| v.get("format").and_then(|f| f.as_str().map(str::to_owned)))
                        .unwrap_or_else(|| "pattern".to_owned())
                ),
                None,
            ),
        ),
        DeidRule::TopBottom { lower, upper } => (
            "top_bottom",
            (
                format!("numbers; below {lower} shown as {lower}, above {upper} as {upper}"),
                None,
            ),
        ),
        DeidRule::Hierarchy { name } => {
            let labels = schema.hierarchies.get(name).map(|h| {
                h.rows
                    .iter()
                    .filter_map(|row| row.get(usize::from(level)))
                    .cloned()
                    .collect::<BTreeSet<String>>()
            });
            let described = match labels {
                Some(labels) if labels.len() == 1 && labels.contains("*") => star(),
                Some(labels) => (
                    if level == 0 {
                        format!("original values (column 0 of hierarchy {name})")
                    } else {
                        format!("labels of level {level} of hierarchy {name}")
                    },
                    Some(labels.into_iter().collect()),
                ),
                None => (format!("values of hierarchy {name}"), None),
            };
            ("hierarchy", described)
        }
        DeidRule::Bin { width, levels } => {
            let described = if level == 0 {
                declared(spec)
            } else if level > *levels {
                star()
            } else {
                let band = width * 2f64.powi(i32::from(level) - 1);
                (
                    format!(
                        "bands written `[lo, hi)` of width {band}, lo a multiple of {band} (e.g. `[0, {band})`)"
                    ),
                    None,
                )
            };
            ("bin", described)
        }
        DeidRule::DateTruncate { finest } => {
            let steps: &[&str] = match finest {
                DateUnit::Month => &["YYYY-MM", "YYYY"],
                DateUnit::Year => &["YYYY"],
            };
            let described = match usize::from(level) {
                0 => declared(spec),
                l if l <= steps.len() => (format!("dates truncated to `{}`", steps[l - 1]), None),
                _ => star(),
            };
            ("date_truncate", described)
        }
    };
    (rule, description, values)
}

/// A column released as uploaded: its declared domain.
fn declared(spec: &ColumnSpec) -> (String, Option<Vec<String>>) {
    let kind = spec.column_type.as_str();
    match &spec.domain {
        Some(Domain::Categories { values }) => (
            format!("{kind} values as uploaded, one of the declared categories"),
            Some(values.clone()),
        ),
        Some(Domain::Range { min, max }) => (
            format!("{kind} values as uploaded, from {min} to {max}"),
            None,
        ),
        Some(Domain::DateRange { min, max }) => {
            (format!("dates as uploaded, from {min} to {max}"), None)
        }
        Some(Domain::Identifier(_)) | None => (format!("{kind} values as uploaded"), None),
    }
}
