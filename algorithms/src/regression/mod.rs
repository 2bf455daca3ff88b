//! Regression models (`kind: regression`): OLS and logistic regression on granted
//! columns, fitted inside the sandbox, whose estimates pass ACRO-style output checks
//! before they can leave (issue #22).
//!
//! The anchor is ACRO/SACRO (the statistical disclosure control of research outputs
//! used by trusted research environments), whose rules for regressions are: enough
//! residual degrees of freedom, no categorical coefficient resting on a handful of
//! records, no saturated model. pdx applies them automatically, as it applies the
//! threshold and dominance rules to SQL cells, and names every hit in the check report.
//!
//! # The model text
//!
//! A JSON object ([`RegressionSpec`], unknown fields refused):
//!
//! ```json
//! {"family": "ols", "table": "data", "target": "kwh_12m",
//!  "features": ["employees", "industry"], "categorical": ["industry"], "intercept": true}
//! ```
//!
//! `family` is `ols` or `logistic`; `table` the run's input (default `data`);
//! `features` 1 to 30 distinct columns, the target not among them; `categorical` the
//! features that are one-hot encoded (the first level in sorted order is the
//! reference and gets no term); `intercept` defaults to true. A logistic target is
//! numbers 0 and 1, or a text column with exactly two levels, the second in sorted
//! order counting as 1.
//!
//! # Fitting (`fit.rs`)
//!
//! Only the named columns are read. A row with a NULL (or a non-finite number) in the
//! target or any feature is dropped; the rows used are the model's *record set*, kept
//! as row ordinals (positions in the input file, as `crate::sql` numbers them), so the
//! sandbox checks a regression against earlier outputs like an aggregate over those
//! rows. A categorical column may have at most [`MAX_LEVELS`] levels among the rows
//! used (more fails the run: such a column is an identifier in all but name).
//!
//! `X'X` and `X'y` are accumulated in one pass over sparse rows (at most 31 non-zero
//! entries per row, whatever the number of levels) and solved by a Cholesky
//! factorisation (`cholesky.rs`) whose pivots double as the rank check. Logistic
//! regression is IRLS on the same accumulation (`X'WX`, `X'Wz`), from zero, at most
//! [`MAX_ITERATIONS`] iterations, stopping when `|D − D_prev| / (|D| + 0.1)` falls
//! below [`DEVIANCE_TOLERANCE`] (the criterion of R's `glm`). Standard errors come from
//! the diagonal of `(X'X)⁻¹` (times σ² for OLS) or `(X'WX)⁻¹`; the statistic is `t`
//! (OLS) or `z` (logistic), with two-sided p-values from `statrs` (the regularised
//! incomplete beta function for `t`, `erfc` for `z`). Fit statistics: records,
//! residual degrees of freedom, σ, R² and adjusted R² (OLS); deviance, null deviance,
//! AIC and iterations (logistic).
//!
//! No linear-algebra crate: `nalgebra` is in the lock file only at 0.19 (through
//! `statrs`, for OpenDP), and a Cholesky solver with a rank check is forty lines.
//! `statrs` is OpenDP's own dependency at the same version, with no features.
//!
//! # Checks (`checks.rs`)
//!
//! With the dataset's disclosure `threshold`, each hit named in the report by rule and
//! term, with its number for reviewers:
//!
//! * `residual_df`: records − terms ≥ threshold. Fewer residual degrees of freedom
//!   let the estimates pin individual records down (with `n = p` the fit passes
//!   through every point).
//! * `level_count`: every level of every categorical column, the reference included,
//!   backed by ≥ threshold records; for logistic also each outcome (0 and 1) overall
//!   and within each level. A level's coefficient is a contrast of that level's
//!   records with the reference's: a level of three records is a statistic about
//!   three people.
//! * `saturated`: at least as many terms as records, or `X'X` not positive definite (a
//!   constant or duplicated column, a combination of others). Such a model has no
//!   unique estimates; its arbitrary ones can be steered to reveal a record.
//! * `separation` (logistic): IRLS did not converge, or any record's fitted
//!   probability is within [`CERTAIN`] of 0 or 1 (then its outcome is known from its
//!   features), or every record of a level is (the level separates the outcome).
//! * `binary_target` (logistic): the target is 0/1 or two-level among the rows used.
//!
//! **Any hit withholds every estimate** (the output keeps its rows, with NULL values):
//! a regression's coefficients are estimated jointly, so dropping one would change the
//! meaning of the rest, and partial output invites recomputing the missing one.
//! A categorical column with a level below the threshold is listed as one row named
//! after the column instead of its level terms: the name of a level would say that it
//! occurs among the records (as a SQL group below the threshold is removed, keys and
//! all).
//!
//! # Output
//!
//! One frame: a row per term (`term`, `estimate`, `std_error`, `statistic`,
//! `p_value`), then the fit statistics as rows whose term starts with `__` (`__n`,
//! `__df_residual`, `__sigma`, `__r_squared`, `__adj_r_squared` for OLS; `__n`,
//! `__df_residual`, `__deviance`, `__null_deviance`, `__aic`, `__iterations` for
//! logistic) with the value in `estimate`. The released table must be one frame, and
//! rows keep it readable as CSV. Terms are `(intercept)`, a continuous feature's name,
//! and `column=level` for a level.
//!
//! # What these checks do not stop
//!
//! * Combinations with other outputs are checked only through record sets (the rows
//!   used, and each level's rows), by the sandbox, with the limits stated in
//!   `crate::disclosure`: the sets of two categorical columns overlap, and the Venn
//!   regions of their levels are not checked as SQL checks the regions inside one
//!   query.
//! * A coefficient of a continuous feature can still be dominated by a few extreme
//!   records (a leverage rule is not applied); ACRO does not apply one either.
//! * For the strongest guarantee, DP regression is not offered yet: grant DP SQL where
//!   these limits matter.

mod checks;
mod cholesky;
mod fit;

pub use checks::{
    RegressionHit, RegressionOutput, RegressionRule, Verdict, applied_checks, check, output,
};
pub use fit::{
    CategoricalColumn, Estimates, Feature, Fit, LevelCount, Rank, fit_frame, fit_lazy, fit_parquet,
};

use std::collections::BTreeMap;
use std::path::Path;

use pdx_seal::AtRest;
use polars::prelude::{DataType, LazyFrame};
use serde::{Deserialize, Serialize};

use crate::deid::storage::scan_parquet;

/// Most features one model may name.
pub const MAX_FEATURES: usize = 30;

/// Most levels a categorical column may have among the rows used.
pub const MAX_LEVELS: usize = 50;

/// Most IRLS iterations of a logistic fit.
pub const MAX_ITERATIONS: u32 = 50;

/// IRLS stops when `|D − D_prev| / (|D| + 0.1)` is below this.
pub const DEVIANCE_TOLERANCE: f64 = 1e-10;

/// A fitted probability this close to 0 or 1 counts as certain (`separation`).
pub const CERTAIN: f64 = 1e-8;

/// The name of the intercept's term.
pub const INTERCEPT: &str = "(intercept)";

/// Which regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Ordinary least squares.
    Ols,
    /// Logistic regression of a binary target.
    Logistic,
}

impl Family {
    /// The name of the statistic of a coefficient: `t` (OLS) or `z` (logistic).
    pub fn statistic(self) -> &'static str {
        match self {
            Family::Ols => "t",
            Family::Logistic => "z",
        }
    }
}

/// A regression model's text, parsed and validated ([`RegressionSpec::parse`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionSpec {
    /// OLS or logistic.
    pub family: Family,
    /// The run's input the model reads (default `data`).
    #[serde(default = "default_table")]
    pub table: String,
    /// The column explained.
    pub target: String,
    /// The explaining columns, in the order of their terms.
    pub features: Vec<String>,
    /// The features one-hot encoded (first level in sorted order as reference).
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Whether the model has an intercept (default true).
    #[serde(default = "default_intercept")]
    pub intercept: bool,
}

fn default_table() -> String {
    "data".to_owned()
}

fn default_intercept() -> bool {
    true
}

/// What a column's values are, as a regression reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// Integers, floats or booleans (read as numbers; booleans as 0 and 1).
    Numeric,
    /// Text.
    Text,
    /// Anything else (dates, lists).
    Other,
}

/// The kind of a polars column type.
pub fn value_kind(dtype: &DataType) -> ValueKind {
    match dtype {
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64 => ValueKind::Numeric,
        DataType::String => ValueKind::Text,
        _ => ValueKind::Other,
    }
}

/// The kind of every column of a Parquet file, from its footer (no row is read).
pub fn parquet_value_kinds(
    path: &Path,
    at_rest: &AtRest,
) -> Result<BTreeMap<String, ValueKind>, RegressionError> {
    let mut frame = scan(path, at_rest)?;
    let schema = frame
        .collect_schema()
        .map_err(|_| RegressionError::Read("reading the table schema"))?;
    Ok(schema
        .iter()
        .map(|(name, dtype)| (name.to_string(), value_kind(dtype)))
        .collect())
}

/// A lazy scan of the Parquet file at `path`, kept as `at_rest` says.
fn scan(path: &Path, at_rest: &AtRest) -> Result<LazyFrame, RegressionError> {
    scan_parquet(path, at_rest).map_err(|_| RegressionError::Read("opening the Parquet file"))
}

impl RegressionSpec {
    /// Parses the model text and checks it ([`RegressionSpec::validate`]).
    pub fn parse(text: &str) -> Result<Self, RegressionError> {
        let spec: RegressionSpec = serde_json::from_str(text).map_err(|e| {
            RegressionError::Spec(format!(
                "the model text is not a regression spec (rule `spec_json`): {e}"
            ))
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what needs no data: 1 to [`MAX_FEATURES`] distinct features, the target
    /// not among them, `categorical` a subset of them, no empty name.
    pub fn validate(&self) -> Result<(), RegressionError> {
        let spec = |message: String| Err(RegressionError::Spec(message));
        if self.features.is_empty() || self.features.len() > MAX_FEATURES {
            return spec(format!(
                "`features` must name 1 to {MAX_FEATURES} columns (rule `feature_count`)"
            ));
        }
        let mut names = std::iter::once(&self.target)
            .chain(&self.features)
            .chain(&self.categorical)
            .chain(std::iter::once(&self.table));
        if names.any(|name| name.trim().is_empty()) {
            return spec(
                "`table`, `target` and every column name must be non-empty (rule `spec_json`)"
                    .into(),
            );
        }
        for (i, feature) in self.features.iter().enumerate() {
            if self.features[..i].contains(feature) {
                return spec(format!(
                    "feature `{feature}` is named twice (rule `distinct_features`)"
                ));
            }
        }
        if self.features.contains(&self.target) {
            return spec(format!(
                "the target `{}` is also a feature (rule `target_not_feature`)",
                self.target
            ));
        }
        for (i, column) in self.categorical.iter().enumerate() {
            if !self.features.contains(column) {
                return spec(format!(
                    "categorical column `{column}` is not one of the features (rule \
                     `categorical_features`)"
                ));
            }
            if self.categorical[..i].contains(column) {
                return spec(format!(
                    "categorical column `{column}` is named twice (rule `categorical_features`)"
                ));
            }
        }
        Ok(())
    }

    /// The columns the model reads: the target, then the features.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.target.as_str()).chain(self.features.iter().map(String::as_str))
    }

    /// Whether `feature` is one-hot encoded.
    pub fn is_categorical(&self, feature: &str) -> bool {
        self.categorical.iter().any(|c| c == feature)
    }

    /// Checks the kinds of the columns (`kind_of`, `None` for a column the input does
    /// not have): a numeric OLS target, a numeric or text logistic target, numeric
    /// continuous features, numeric or text categorical ones.
    pub fn check_kinds(
        &self,
        kind_of: impl Fn(&str) -> Option<ValueKind>,
    ) -> Result<(), RegressionError> {
        let refuse = |column: &str, rule: &'static str, detail: &'static str| {
            Err(RegressionError::Column {
                column: column.to_owned(),
                rule,
                detail,
            })
        };
        let kind = |column: &str| {
            kind_of(column).ok_or_else(|| RegressionError::Column {
                column: column.to_owned(),
                rule: "known_column",
                detail: "the input has no such column",
            })
        };
        match (self.family, kind(&self.target)?) {
            (Family::Ols, ValueKind::Numeric)
            | (Family::Logistic, ValueKind::Numeric | ValueKind::Text) => {}
            (Family::Ols, _) => {
                return refuse(
                    &self.target,
                    "numeric_target",
                    "an OLS target must be numeric",
                );
            }
            (Family::Logistic, _) => {
                return refuse(
                    &self.target,
                    "binary_target",
                    "a logistic target must hold the numbers 0 and 1 or two text levels",
                );
            }
        }
        for feature in &self.features {
            let kind = kind(feature)?;
            if self.is_categorical(feature) {
                if kind == ValueKind::Other {
                    return refuse(
                        feature,
                        "categorical_feature",
                        "a categorical feature must hold numbers or text",
                    );
                }
            } else if kind != ValueKind::Numeric {
                return refuse(
                    feature,
                    "numeric_feature",
                    "a continuous feature must be numeric; list it in `categorical` to encode its \
                     levels",
                );
            }
        }
        Ok(())
    }
}

/// Why a regression was refused or could not run. Messages name columns and rules,
/// never a data value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegressionError {
    /// The model text is malformed or breaks a rule that needs no data.
    #[error("{0}")]
    Spec(String),
    /// A column the model names cannot be used as it asks.
    #[error("column `{column}`: {detail} (rule `{rule}`)")]
    Column {
        /// The column.
        column: String,
        /// The rule it breaks.
        rule: &'static str,
        /// Why, without any value.
        detail: &'static str,
    },
    /// A categorical column with more levels than [`MAX_LEVELS`] among the rows used.
    #[error(
        "categorical column `{column}` has more than {max} levels among the rows used (rule \
         `level_limit`)",
        max = MAX_LEVELS
    )]
    TooManyLevels {
        /// The column.
        column: String,
    },
    /// More rows than row ordinals can number.
    #[error("the input has more than 2^32 - 1 rows")]
    TooManyRows,
    /// The input could not be read (the stage, never the engine's message).
    #[error("the regression could not read its input: {0}")]
    Read(&'static str),
    /// A broken invariant of this module.
    #[error("internal error in the regression: {0}")]
    Internal(&'static str),
}

impl RegressionError {
    /// True when the model or its input is at fault; false for platform errors.
    pub fn is_client_error(&self) -> bool {
        match self {
            RegressionError::Spec(_)
            | RegressionError::Column { .. }
            | RegressionError::TooManyLevels { .. }
            | RegressionError::TooManyRows => true,
            RegressionError::Read(_) | RegressionError::Internal(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_parsed_with_defaults_and_refused_by_rule() {
        let spec = RegressionSpec::parse(
            r#"{"family":"logistic","target":"y","features":["age","sex"],"categorical":["sex"]}"#,
        )
        .unwrap();
        assert_eq!(spec.table, "data");
        assert!(spec.intercept);
        assert!(spec.is_categorical("sex") && !spec.is_categorical("age"));
        assert_eq!(spec.columns().collect::<Vec<_>>(), ["y", "age", "sex"]);

        let too_many: Vec<String> = (0..=MAX_FEATURES).map(|i| format!("x{i}")).collect();
        let cases = [
            ("not json".to_owned(), "spec_json"),
            (
                r#"{"family":"ols","target":"y","features":["a"],"extra":1}"#.to_owned(),
                "spec_json",
            ),
            (
                r#"{"family":"probit","target":"y","features":["a"]}"#.to_owned(),
                "spec_json",
            ),
            (
                r#"{"family":"ols","target":"y","features":[]}"#.to_owned(),
                "feature_count",
            ),
            (
                serde_json::json!({"family": "ols", "target": "y", "features": too_many})
                    .to_string(),
                "feature_count",
            ),
            (
                r#"{"family":"ols","target":"y","features":["a","a"]}"#.to_owned(),
                "distinct_features",
            ),
            (
                r#"{"family":"ols","target":"y","features":["a","y"]}"#.to_owned(),
                "target_not_feature",
            ),
            (
                r#"{"family":"ols","target":"y","features":["a"],"categorical":["b"]}"#.to_owned(),
                "categorical_features",
            ),
            (
                r#"{"family":"ols","target":" ","features":["a"]}"#.to_owned(),
                "spec_json",
            ),
        ];
        for (text, rule) in cases {
            let error = RegressionSpec::parse(&text).unwrap_err();
            assert!(error.is_client_error());
            assert!(
                error.to_string().contains(&format!("rule `{rule}`")),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn column_kinds_are_checked_by_role_in_the_model() {
        let kinds = BTreeMap::from([
            ("y", ValueKind::Numeric),
            ("label", ValueKind::Text),
            ("x", ValueKind::Numeric),
            ("group", ValueKind::Text),
            ("day", ValueKind::Other),
        ]);
        let kind_of = |name: &str| kinds.get(name).copied();
        let check = |text: &str| {
            RegressionSpec::parse(text)
                .unwrap()
                .check_kinds(kind_of)
                .map_err(|e| e.to_string())
        };
        let accepted = [
            r#"{"family":"ols","target":"y","features":["x","group"],"categorical":["group"]}"#,
            r#"{"family":"logistic","target":"label","features":["x"]}"#,
        ];
        for text in accepted {
            assert!(check(text).is_ok(), "{text}");
        }
        let refused = [
            (
                r#"{"family":"ols","target":"label","features":["x"]}"#,
                "numeric_target",
            ),
            (
                r#"{"family":"logistic","target":"day","features":["x"]}"#,
                "binary_target",
            ),
            (
                r#"{"family":"ols","target":"y","features":["group"]}"#,
                "numeric_feature",
            ),
            (
                r#"{"family":"ols","target":"y","features":["day"],"categorical":["day"]}"#,
                "categorical_feature",
            ),
            (
                r#"{"family":"ols","target":"y","features":["nope"]}"#,
                "known_column",
            ),
        ];
        for (text, rule) in refused {
            let error = check(text).unwrap_err();
            assert!(error.contains(&format!("rule `{rule}`")), "{text}: {error}");
        }
    }
}
