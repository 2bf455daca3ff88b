//! The output checks of a fitted regression and the output frame (see the module
//! documentation of `regression` for the rules and why).
//!
//! Each hit names its rule and its term (a level `column=value`, a term, the target or
//! the whole model) and carries the number behind it for reviewers. What the
//! developer may see of a report is the sandbox's to decide; these hits are the
//! reviewers' view.

use std::collections::BTreeSet;

use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};

use super::fit::{Estimates, Fit, Rank};
use super::{CERTAIN, Family, MAX_ITERATIONS, RegressionError};

/// Which rule a [`RegressionHit`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionRule {
    /// Fewer residual degrees of freedom than the threshold.
    ResidualDf,
    /// A level (or an outcome, overall or within a level) with fewer records than the
    /// threshold.
    LevelCount,
    /// No more records than terms, or `X'X` not positive definite.
    Saturated,
    /// A logistic fit that did not converge or predicts some records with certainty.
    Separation,
    /// A logistic target that is not binary among the rows used.
    BinaryTarget,
    /// The rows used, or a level's rows, are too close to an earlier output's (checked
    /// by the sandbox against the organisation's earlier record sets).
    Differencing,
}

/// One rule that held the estimates back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegressionHit {
    /// The rule.
    pub rule: RegressionRule,
    /// What it concerns: a level (`column=value`), a term, the target; `None` for the
    /// whole model.
    pub term: Option<String>,
    /// The number behind the hit (records, degrees of freedom, terms), for reviewers.
    pub count: Option<u64>,
    /// What failed, with the number, for reviewers.
    pub detail: String,
}

/// What the checks decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Every hit; any hit withholds every estimate.
    pub hits: Vec<RegressionHit>,
    /// Categorical columns with a level below the threshold: the output lists each as
    /// one row named after the column, not its level terms (a level's name would say
    /// that it occurs).
    pub hidden_columns: BTreeSet<String>,
}

impl Verdict {
    /// Whether the estimates are withheld.
    pub fn withheld(&self) -> bool {
        !self.hits.is_empty()
    }

    /// The rules that held the estimates back, each once.
    pub fn rules(&self) -> BTreeSet<RegressionRule> {
        self.hits.iter().map(|h| h.rule).collect()
    }

    /// Adds a hit.
    pub fn push(
        &mut self,
        rule: RegressionRule,
        term: Option<String>,
        count: Option<u64>,
        detail: String,
    ) {
        self.hits.push(RegressionHit {
            rule,
            term,
            count,
            detail,
        });
    }
}

/// The checks applied to a model of `family` at `threshold`, by name; they depend on
/// the model text and the rules only, so a developer may see them before release.
pub fn applied_checks(family: Family, threshold: u64) -> Vec<String> {
    let mut checks = vec![
        format!("residual_df>={threshold}"),
        format!("level_count>={threshold}"),
        "no_saturation".to_owned(),
    ];
    if family == Family::Logistic {
        checks.push("binary_target".to_owned());
        checks.push("no_separation".to_owned());
    }
    checks
}

/// The ACRO-style checks of `fit` with the dataset's `threshold`.
pub fn check(fit: &Fit, threshold: u64) -> Verdict {
    let mut verdict = Verdict::default();
    let logistic = fit.family == Family::Logistic;
    let terms = fit.terms.len() as u64;
    if logistic && !fit.binary_target {
        verdict.push(
            RegressionRule::BinaryTarget,
            Some(fit.target.clone()),
            None,
            "the target is not binary among the rows used (numbers other than 0 and 1, or not \
             exactly two text levels)"
                .to_owned(),
        );
    }
    let residual_df = fit.records.saturating_sub(terms);
    if residual_df < threshold {
        verdict.push(
            RegressionRule::ResidualDf,
            None,
            Some(residual_df),
            format!(
                "{residual_df} residual degrees of freedom ({} records, {terms} terms), fewer \
                 than {threshold}",
                fit.records
            ),
        );
    }
    let outcomes = logistic && fit.binary_target;
    for column in &fit.categorical {
        for level in &column.levels {
            let term = format!("{}={}", column.column, level.value);
            if level.records < threshold {
                verdict.push(
                    RegressionRule::LevelCount,
                    Some(term),
                    Some(level.records),
                    format!(
                        "{} records at this level, fewer than {threshold}",
                        level.records
                    ),
                );
                verdict.hidden_columns.insert(column.column.clone());
                continue;
            }
            if outcomes {
                let zeros = level.records - level.ones;
                for (outcome, count) in [(1, level.ones), (0, zeros)] {
                    if count < threshold {
                        verdict.push(
                            RegressionRule::LevelCount,
                            Some(term.clone()),
                            Some(count),
                            format!(
                                "{count} records with outcome {outcome} at this level, fewer \
                                 than {threshold}"
                            ),
                        );
                    }
                }
            }
        }
    }
    if outcomes {
        let zeros = fit.records - fit.ones;
        for (outcome, count) in [(1, fit.ones), (0, zeros)] {
            if count < threshold {
                verdict.push(
                    RegressionRule::LevelCount,
                    Some(fit.target.clone()),
                    Some(count),
                    format!("{count} records with outcome {outcome}, fewer than {threshold}"),
                );
            }
        }
    }
    match fit.rank {
        Rank::Full => {}
        Rank::TooFewRecords => verdict.push(
            RegressionRule::Saturated,
            None,
            Some(terms),
            format!(
                "{terms} terms for {} records: the model is saturated",
                fit.records
            ),
        ),
        Rank::Collinear { term } => verdict.push(
            RegressionRule::Saturated,
            fit.terms.get(term).cloned(),
            None,
            "X'X is not positive definite: this term is constant or a combination of earlier \
             terms"
                .to_owned(),
        ),
    }
    if logistic && let Some(estimates) = &fit.estimates {
        if !estimates.converged {
            verdict.push(
                RegressionRule::Separation,
                None,
                Some(u64::from(estimates.iterations)),
                format!(
                    "IRLS did not converge in {} iterations (at most {MAX_ITERATIONS}): the \
                     coefficients diverge",
                    estimates.iterations
                ),
            );
        }
        if estimates.certain > 0 {
            verdict.push(
                RegressionRule::Separation,
                None,
                Some(estimates.certain),
                format!(
                    "{} records have fitted probabilities within {CERTAIN:e} of 0 or 1",
                    estimates.certain
                ),
            );
        }
        for column in &fit.categorical {
            for level in &column.levels {
                if level.records > 0 && level.certain == level.records {
                    verdict.push(
                        RegressionRule::Separation,
                        Some(format!("{}={}", column.column, level.value)),
                        Some(level.records),
                        format!(
                            "all {} records of this level have fitted probabilities within \
                             {CERTAIN:e} of 0 or 1",
                            level.records
                        ),
                    );
                }
            }
        }
    }
    verdict
}

/// The output of a checked fit.
#[derive(Clone, Debug)]
pub struct RegressionOutput {
    /// The table: a row per term, then the fit statistics (see the module
    /// documentation); every value NULL when the verdict withholds them.
    pub frame: DataFrame,
    /// Values (not NULL) in it.
    pub values_released: usize,
}

/// The output table of `fit` under `verdict`.
pub fn output(fit: &Fit, verdict: &Verdict) -> Result<RegressionOutput, RegressionError> {
    let released = !verdict.withheld();
    let estimates = fit.estimates.as_ref().filter(|_| released);
    let value = |v: Option<f64>| v.filter(|v| released && v.is_finite());
    let mut rows = Rows::default();
    let term_row = |rows: &mut Rows, t: usize| {
        let at = |values: fn(&Estimates) -> &[f64]| {
            value(estimates.and_then(|e| values(e).get(t).copied()))
        };
        rows.push(
            fit.terms.get(t).cloned().unwrap_or_default(),
            [
                at(|e| &e.coefficients),
                at(|e| &e.std_errors),
                at(|e| &e.statistics),
                at(|e| &e.p_values),
            ],
        );
    };
    if fit.intercept {
        term_row(&mut rows, 0);
    }
    for feature in &fit.features {
        let hidden = feature
            .categorical
            .is_some_and(|_| verdict.hidden_columns.contains(&feature.name));
        if hidden {
            rows.push(feature.name.clone(), [None; 4]);
        } else {
            for t in feature.terms.clone() {
                term_row(&mut rows, t);
            }
        }
    }
    let statistic = |name: &str, v: Option<f64>| (name.to_owned(), value(v));
    let records = statistic("__n", Some(fit.records as f64));
    let residual_df = statistic(
        "__df_residual",
        fit.estimates.as_ref().map(|e| e.residual_df as f64),
    );
    let field = |get: fn(&Estimates) -> Option<f64>| estimates.and_then(get);
    let mut statistics = vec![records, residual_df];
    match fit.family {
        Family::Ols => {
            statistics.push(statistic("__sigma", field(|e| e.sigma)));
            statistics.push(statistic("__r_squared", field(|e| e.r_squared)));
            statistics.push(statistic("__adj_r_squared", field(|e| e.adj_r_squared)));
        }
        Family::Logistic => {
            statistics.push(statistic("__deviance", field(|e| e.deviance)));
            statistics.push(statistic("__null_deviance", field(|e| e.null_deviance)));
            statistics.push(statistic("__aic", field(|e| e.aic)));
            statistics.push(statistic(
                "__iterations",
                field(|e| Some(f64::from(e.iterations))),
            ));
        }
    }
    for (name, v) in statistics {
        rows.push(name, [v, None, None, None]);
    }
    rows.into_output()
}

/// The output table's columns, filled row by row.
#[derive(Default)]
struct Rows {
    /// `term`.
    terms: Vec<String>,
    /// `estimate`, `std_error`, `statistic`, `p_value`.
    values: [Vec<Option<f64>>; 4],
}

impl Rows {
    /// Adds a row.
    fn push(&mut self, term: String, values: [Option<f64>; 4]) {
        self.terms.push(term);
        for (column, v) in self.values.iter_mut().zip(values) {
            column.push(v);
        }
    }

    /// The frame, and how many values it holds.
    fn into_output(self) -> Result<RegressionOutput, RegressionError> {
        let values_released = self.values.iter().flatten().filter(|v| v.is_some()).count();
        let [estimate, std_error, statistic, p_value] = self.values;
        let frame = DataFrame::new(vec![
            Column::new("term".into(), self.terms),
            Column::new("estimate".into(), estimate),
            Column::new("std_error".into(), std_error),
            Column::new("statistic".into(), statistic),
            Column::new("p_value".into(), p_value),
        ])
        .map_err(|_| RegressionError::Internal("the output table could not be assembled"))?;
        Ok(RegressionOutput {
            frame,
            values_released,
        })
    }
}
