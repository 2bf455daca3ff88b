//! Reading the columns and fitting: one sparse pass per accumulation of `X'X` (OLS)
//! or `X'WX` (each IRLS iteration), a Cholesky solve, and a pass for residuals or
//! fitted probabilities (see the module documentation of `regression`).
//!
//! The design matrix is never built. Each used row keeps its target, its continuous
//! values and, per categorical column, its level's index; a row of `X` is made on the
//! fly as at most `1 + features` `(term, value)` pairs in ascending term order, so the
//! accumulation costs `O(features²)` per row whatever the number of levels.

use std::collections::BTreeSet;
use std::f64::consts::SQRT_2;
use std::ops::Range;
use std::path::Path;

use pdx_seal::AtRest;
use polars::prelude::*;
use statrs::function::beta::checked_beta_reg;
use statrs::function::erf::erfc;

use super::cholesky::Cholesky;
use super::{
    CERTAIN, DEVIANCE_TOLERANCE, Family, INTERCEPT, MAX_ITERATIONS, MAX_LEVELS, RegressionError,
    RegressionSpec, ValueKind, scan, value_kind,
};
use crate::disclosure::{RecordSet, SetId, TrackedSet};

/// One level of a categorical column, with its counts among the rows used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelCount {
    /// The level as text.
    pub value: String,
    /// Rows used at this level.
    pub records: u64,
    /// Of them, rows with outcome 1 (a logistic fit of a binary target; else 0).
    pub ones: u64,
    /// Of them, rows whose fitted probability is within [`CERTAIN`] of 0 or 1 (a
    /// logistic fit; else 0).
    pub certain: u64,
}

/// A categorical column: its levels among the rows used, sorted; the first is the
/// reference and has no term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoricalColumn {
    /// The column.
    pub column: String,
    /// Its levels.
    pub levels: Vec<LevelCount>,
}

/// A feature and its terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    /// The column.
    pub name: String,
    /// Its terms (positions in [`Fit::terms`]): one for a continuous feature, one per
    /// level but the reference for a categorical one.
    pub terms: Range<usize>,
    /// Its position in [`Fit::categorical`], when one-hot encoded.
    pub categorical: Option<usize>,
}

/// Whether the terms could be estimated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rank {
    /// `X'X` is positive definite.
    Full,
    /// No more records than terms.
    TooFewRecords,
    /// `X'X` is not positive definite: the term at this position is constant or a
    /// combination of earlier ones.
    Collinear {
        /// The first term that depends on earlier ones.
        term: usize,
    },
}

/// The estimates of a fitted model; non-finite numbers (a standard error with no
/// residual degrees of freedom, say) are left as they came and withheld on output.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimates {
    /// One coefficient per term.
    pub coefficients: Vec<f64>,
    /// Their standard errors.
    pub std_errors: Vec<f64>,
    /// `t` (OLS) or `z` (logistic).
    pub statistics: Vec<f64>,
    /// Two-sided p-values.
    pub p_values: Vec<f64>,
    /// Records − terms.
    pub residual_df: u64,
    /// Residual standard error (OLS).
    pub sigma: Option<f64>,
    /// R² (OLS; uncentred without an intercept, as R computes it).
    pub r_squared: Option<f64>,
    /// Adjusted R² (OLS).
    pub adj_r_squared: Option<f64>,
    /// Residual deviance (logistic).
    pub deviance: Option<f64>,
    /// Deviance of the intercept-only model, or of `p = ½` without an intercept
    /// (logistic).
    pub null_deviance: Option<f64>,
    /// Deviance + 2 × terms (logistic).
    pub aic: Option<f64>,
    /// IRLS iterations (0 for OLS).
    pub iterations: u32,
    /// Whether IRLS converged (always for OLS).
    pub converged: bool,
    /// Rows whose fitted probability is within [`CERTAIN`] of 0 or 1 (logistic).
    pub certain: u64,
}

/// A fitted (or unfittable) model with what the checks need.
#[derive(Clone, Debug)]
pub struct Fit {
    /// OLS or logistic.
    pub family: Family,
    /// The target column.
    pub target: String,
    /// Whether the first term is the intercept.
    pub intercept: bool,
    /// The term names, in the order of the coefficients.
    pub terms: Vec<String>,
    /// The features in model order, with their terms.
    pub features: Vec<Feature>,
    /// The categorical columns.
    pub categorical: Vec<CategoricalColumn>,
    /// Rows used.
    pub records: u64,
    /// Whether the target is binary among the rows used (always true for OLS).
    pub binary_target: bool,
    /// Rows used with outcome 1 (logistic with a binary target).
    pub ones: u64,
    /// Whether `X'X` is positive definite.
    pub rank: Rank,
    /// The estimates; `None` when the model could not be fitted (not of full rank,
    /// or a logistic target that is not binary).
    pub estimates: Option<Estimates>,
    /// Row ordinals of the rows used, ascending.
    ordinals: Vec<u32>,
    /// Per categorical column, the level index of each row used.
    codes: Vec<Vec<u16>>,
}

impl Fit {
    /// The record sets of the fit, each selected as `selection`: the rows used, then
    /// the rows of each level of each categorical column (reference included), each
    /// distinct set once. A level's coefficient contrasts its rows with the
    /// reference's, so each level's rows are checked against earlier outputs as a
    /// cell's would be.
    pub fn record_sets(&self, selection: &str) -> Vec<TrackedSet> {
        let tracked = |set: RecordSet| TrackedSet {
            set,
            selection: selection.to_owned(),
        };
        let mut sets = vec![tracked(RecordSet::from_ordinals(
            self.ordinals.iter().copied(),
        ))];
        for (column, codes) in self.categorical.iter().zip(&self.codes) {
            let mut rows: Vec<Vec<u32>> = vec![Vec::new(); column.levels.len()];
            for (ordinal, code) in self.ordinals.iter().zip(codes) {
                if let Some(level) = rows.get_mut(usize::from(*code)) {
                    level.push(*ordinal);
                }
            }
            sets.extend(
                rows.into_iter()
                    .map(|r| tracked(RecordSet::from_ordinals(r))),
            );
        }
        let mut seen = BTreeSet::new();
        sets.retain(|set| seen.insert(SetId::of(set)));
        sets
    }
}

/// Fits `spec` over the Parquet file at `path`, reading only its columns.
pub fn fit_parquet(
    spec: &RegressionSpec,
    path: &Path,
    at_rest: &AtRest,
) -> Result<Fit, RegressionError> {
    fit_lazy(spec, scan(path, at_rest)?)
}

/// Fits `spec` over `frame` (tests and tools).
pub fn fit_frame(spec: &RegressionSpec, frame: &DataFrame) -> Result<Fit, RegressionError> {
    fit_lazy(spec, frame.clone().lazy())
}

/// Fits `spec` over `frame`: the columns are checked ([`RegressionSpec::check_kinds`]),
/// selected and cast (numbers to `f64`, categorical and text targets to text; a value
/// that does not cast is NULL), then fitted. Rows keep their order, so a row's position
/// is its ordinal.
pub fn fit_lazy(spec: &RegressionSpec, frame: LazyFrame) -> Result<Fit, RegressionError> {
    let mut frame = frame;
    let schema = frame
        .collect_schema()
        .map_err(|_| RegressionError::Read("reading the table schema"))?;
    let kind_of = |name: &str| schema.get(name).map(value_kind);
    spec.check_kinds(kind_of)?;
    let text_target = kind_of(&spec.target) == Some(ValueKind::Text);
    let as_text = |name: &str| col(name).cast(DataType::String);
    let as_number = |name: &str| col(name).cast(DataType::Float64);
    let mut exprs = Vec::with_capacity(spec.features.len() + 1);
    exprs.push(if text_target {
        as_text(&spec.target)
    } else {
        as_number(&spec.target)
    });
    for feature in &spec.features {
        exprs.push(if spec.is_categorical(feature) {
            as_text(feature)
        } else {
            as_number(feature)
        });
    }
    let data = frame
        .select(exprs)
        .collect()
        .map_err(|_| RegressionError::Read("reading the columns"))?;
    let design = Design::read(spec, &data, text_target)?;
    Ok(design.fit(spec))
}

/// A numeric column of the selected frame.
fn numbers<'a>(data: &'a DataFrame, name: &str) -> Result<&'a Float64Chunked, RegressionError> {
    data.column(name)
        .and_then(|c| c.f64())
        .map_err(|_| RegressionError::Read("a numeric column did not convert"))
}

/// A text column of the selected frame.
fn texts<'a>(data: &'a DataFrame, name: &str) -> Result<&'a StringChunked, RegressionError> {
    data.column(name)
        .and_then(|c| c.str())
        .map_err(|_| RegressionError::Read("a text column did not convert"))
}

/// Where a feature's values are kept and which terms it has.
#[derive(Clone, Debug)]
enum Slot {
    /// A continuous feature: `numeric[values]`, term `term`.
    Numeric { values: usize, term: usize },
    /// A categorical feature: `codes[codes]`; level `l > 0` is term `first_term + l − 1`.
    Categorical { codes: usize, first_term: usize },
}

/// The rows used, column by column, and how to make a row of `X` from them.
struct Design {
    /// Whether term 0 is the intercept.
    intercept: bool,
    /// Per feature, in model order.
    slots: Vec<Slot>,
    /// Continuous features' values.
    numeric: Vec<Vec<f64>>,
    /// Categorical features' level indices.
    codes: Vec<Vec<u16>>,
    /// The target (0 or 1 for a binary logistic target).
    y: Vec<f64>,
    /// Row ordinals.
    ordinals: Vec<u32>,
    /// Term names.
    terms: Vec<String>,
    /// Features with their terms.
    features: Vec<Feature>,
    /// Categorical columns with their levels.
    categorical: Vec<CategoricalColumn>,
    /// Whether the target is binary (always true for OLS).
    binary_target: bool,
}

impl Design {
    /// Reads the selected columns: drops rows with a NULL or non-finite value, encodes
    /// the levels, names the terms.
    fn read(
        spec: &RegressionSpec,
        data: &DataFrame,
        text_target: bool,
    ) -> Result<Self, RegressionError> {
        let height = data.height();
        if u32::try_from(height).is_err() {
            return Err(RegressionError::TooManyRows);
        }
        let mut usable = vec![true; height];
        let mut drop_missing_numbers = |values: &Float64Chunked| {
            for (keep, value) in usable.iter_mut().zip(values) {
                *keep &= value.is_some_and(f64::is_finite);
            }
        };
        if !text_target {
            drop_missing_numbers(numbers(data, &spec.target)?);
        }
        for feature in spec.features.iter().filter(|f| !spec.is_categorical(f)) {
            drop_missing_numbers(numbers(data, feature)?);
        }
        let text_columns = spec
            .features
            .iter()
            .filter(|f| spec.is_categorical(f))
            .chain(text_target.then_some(&spec.target));
        for column in text_columns {
            for (keep, value) in usable.iter_mut().zip(texts(data, column)?) {
                *keep &= value.is_some();
            }
        }
        let ordinals: Vec<u32> = (0..height)
            .filter(|r| usable[*r])
            .filter_map(|r| u32::try_from(r).ok())
            .collect();
        let used = |r: &usize| usable[*r];

        // The target.
        let (y, binary_target) = if text_target {
            let column = texts(data, &spec.target)?;
            let values: Vec<&str> = column
                .into_iter()
                .enumerate()
                .filter(|(r, _)| used(r))
                .filter_map(|(_, v)| v)
                .collect();
            let levels: BTreeSet<&str> = values.iter().copied().collect();
            match levels.iter().nth(1) {
                Some(second) if levels.len() == 2 => (
                    values
                        .iter()
                        .map(|v| if v == second { 1.0 } else { 0.0 })
                        .collect(),
                    true,
                ),
                _ => (vec![0.0; values.len()], false),
            }
        } else {
            let y: Vec<f64> = numbers(data, &spec.target)?
                .into_iter()
                .enumerate()
                .filter(|(r, _)| used(r))
                .filter_map(|(_, v)| v)
                .collect();
            let binary = spec.family == Family::Ols || y.iter().all(|v| *v == 0.0 || *v == 1.0);
            (y, binary)
        };

        // The features and their terms.
        let mut terms: Vec<String> = Vec::new();
        if spec.intercept {
            terms.push(INTERCEPT.to_owned());
        }
        let mut slots = Vec::with_capacity(spec.features.len());
        let mut features = Vec::with_capacity(spec.features.len());
        let mut numeric = Vec::new();
        let mut codes = Vec::new();
        let mut categorical = Vec::new();
        for feature in &spec.features {
            let first_term = terms.len();
            if spec.is_categorical(feature) {
                let column = texts(data, feature)?;
                let values: Vec<&str> = column
                    .into_iter()
                    .enumerate()
                    .filter(|(r, _)| used(r))
                    .filter_map(|(_, v)| v)
                    .collect();
                let levels: Vec<&str> = values
                    .iter()
                    .copied()
                    .collect::<BTreeSet<&str>>()
                    .into_iter()
                    .collect();
                if levels.len() > MAX_LEVELS {
                    return Err(RegressionError::TooManyLevels {
                        column: feature.clone(),
                    });
                }
                let level_codes: Vec<u16> = values
                    .iter()
                    .map(|v| {
                        let index = levels.binary_search(v).unwrap_or(0);
                        u16::try_from(index).unwrap_or(0)
                    })
                    .collect();
                let mut counts: Vec<LevelCount> = levels
                    .iter()
                    .map(|level| LevelCount {
                        value: (*level).to_owned(),
                        records: 0,
                        ones: 0,
                        certain: 0,
                    })
                    .collect();
                for (code, target) in level_codes.iter().zip(&y) {
                    if let Some(count) = counts.get_mut(usize::from(*code)) {
                        count.records += 1;
                        if binary_target && spec.family == Family::Logistic && *target == 1.0 {
                            count.ones += 1;
                        }
                    }
                }
                terms.extend(levels.iter().skip(1).map(|l| format!("{feature}={l}")));
                slots.push(Slot::Categorical {
                    codes: codes.len(),
                    first_term,
                });
                features.push(Feature {
                    name: feature.clone(),
                    terms: first_term..terms.len(),
                    categorical: Some(categorical.len()),
                });
                codes.push(level_codes);
                categorical.push(CategoricalColumn {
                    column: feature.clone(),
                    levels: counts,
                });
            } else {
                let values: Vec<f64> = numbers(data, feature)?
                    .into_iter()
                    .enumerate()
                    .filter(|(r, _)| used(r))
                    .filter_map(|(_, v)| v)
                    .collect();
                terms.push(feature.clone());
                slots.push(Slot::Numeric {
                    values: numeric.len(),
                    term: first_term,
                });
                features.push(Feature {
                    name: feature.clone(),
                    terms: first_term..terms.len(),
                    categorical: None,
                });
                numeric.push(values);
            }
        }
        Ok(Self {
            intercept: spec.intercept,
            slots,
            numeric,
            codes,
            y,
            ordinals,
            terms,
            features,
            categorical,
            binary_target,
        })
    }

    /// Rows used.
    fn len(&self) -> usize {
        self.ordinals.len()
    }

    /// Row `r` of `X` as `(term, value)` pairs in ascending term order (zeros left out).
    fn row(&self, r: usize, out: &mut Vec<(usize, f64)>) {
        out.clear();
        if self.intercept {
            out.push((0, 1.0));
        }
        for slot in &self.slots {
            match *slot {
                Slot::Numeric { values, term } => {
                    out.push((term, self.numeric[values][r]));
                }
                Slot::Categorical { codes, first_term } => {
                    let code = usize::from(self.codes[codes][r]);
                    if code > 0 {
                        out.push((first_term + code - 1, 1.0));
                    }
                }
            }
        }
    }

    /// Fits the model (see [`fit_lazy`]).
    fn fit(self, spec: &RegressionSpec) -> Fit {
        let p = self.terms.len();
        let n = self.len();
        let logistic = spec.family == Family::Logistic;
        let mut rank = Rank::Full;
        let mut estimates = None;
        let (xtx, xty) = self.cross_products();
        if n <= p {
            rank = Rank::TooFewRecords;
        } else {
            match Cholesky::new(&xtx, p) {
                Err(term) => rank = Rank::Collinear { term },
                Ok(chol) => {
                    estimates = match spec.family {
                        Family::Ols => Some(self.ols(&chol, &xty)),
                        Family::Logistic if self.binary_target => Some(self.logistic()),
                        Family::Logistic => None,
                    };
                }
            }
        }
        // Fitted probabilities within `CERTAIN` of 0 or 1, in all and per level.
        let mut certain: Vec<Vec<u64>> = self
            .categorical
            .iter()
            .map(|c| vec![0; c.levels.len()])
            .collect();
        if logistic && let Some(est) = estimates.as_mut() {
            let mut row = Vec::with_capacity(self.slots.len() + 1);
            let mut total = 0;
            for r in 0..n {
                self.row(r, &mut row);
                if !is_certain(sigmoid(dot(&row, &est.coefficients))) {
                    continue;
                }
                total += 1;
                for (counts, codes) in certain.iter_mut().zip(&self.codes) {
                    let level = codes.get(r).map_or(usize::MAX, |c| usize::from(*c));
                    if let Some(count) = counts.get_mut(level) {
                        *count += 1;
                    }
                }
            }
            est.certain = total;
        }
        let ones = if logistic && self.binary_target {
            self.y.iter().filter(|v| **v == 1.0).count() as u64
        } else {
            0
        };
        let Design {
            intercept,
            codes,
            ordinals,
            terms,
            features,
            mut categorical,
            binary_target,
            ..
        } = self;
        for (column, counts) in categorical.iter_mut().zip(certain) {
            for (level, count) in column.levels.iter_mut().zip(counts) {
                level.certain = count;
            }
        }
        Fit {
            family: spec.family,
            target: spec.target.clone(),
            intercept,
            terms,
            features,
            categorical,
            records: n as u64,
            binary_target,
            ones,
            rank,
            estimates,
            ordinals,
            codes,
        }
    }

    /// `X'X` (upper triangle) and `X'y`, in one pass.
    fn cross_products(&self) -> (Vec<f64>, Vec<f64>) {
        let p = self.terms.len();
        let mut xtx = vec![0.0; p * p];
        let mut xty = vec![0.0; p];
        let mut row = Vec::with_capacity(self.slots.len() + 1);
        for (r, y) in self.y.iter().enumerate() {
            self.row(r, &mut row);
            accumulate(&mut xtx, &mut xty, p, &row, 1.0, *y);
        }
        (xtx, xty)
    }

    /// OLS from the factorised `X'X`.
    fn ols(&self, chol: &Cholesky, xty: &[f64]) -> Estimates {
        let (n, p) = (self.len(), self.terms.len());
        let beta = chol.solve(xty);
        let mean = self.y.iter().sum::<f64>() / n as f64;
        // Residuals in a second pass: `y'y − β'X'y` would lose the digits that matter.
        let (mut rss, mut tss) = (0.0, 0.0);
        let mut row = Vec::with_capacity(self.slots.len() + 1);
        for (r, y) in self.y.iter().enumerate() {
            self.row(r, &mut row);
            let residual = y - dot(&row, &beta);
            rss += residual * residual;
            let spread = if self.intercept { y - mean } else { *y };
            tss += spread * spread;
        }
        let residual_df = (n - p) as u64;
        let df = residual_df as f64;
        let sigma2 = rss / df;
        let std_errors: Vec<f64> = chol
            .inverse_diagonal()
            .iter()
            .map(|v| (sigma2 * v).sqrt())
            .collect();
        let statistics: Vec<f64> = beta.iter().zip(&std_errors).map(|(b, s)| b / s).collect();
        let p_values = statistics.iter().map(|t| t_two_sided(*t, df)).collect();
        let r_squared = 1.0 - rss / tss;
        let fixed = if self.intercept { 1.0 } else { 0.0 };
        let adj_r_squared = 1.0 - (1.0 - r_squared) * (n as f64 - fixed) / df;
        Estimates {
            coefficients: beta,
            std_errors,
            statistics,
            p_values,
            residual_df,
            sigma: Some(sigma2.sqrt()),
            r_squared: Some(r_squared),
            adj_r_squared: Some(adj_r_squared),
            deviance: None,
            null_deviance: None,
            aic: None,
            iterations: 0,
            converged: true,
            certain: 0,
        }
    }

    /// Logistic regression by IRLS from β = 0. Each pass at the current β gives its
    /// deviance and `X'WX`, `X'Wz` (with `W = p(1 − p)`, `z = η + (y − p)/w`, so
    /// `X'Wz = X'(wη + y − p)`, which stays finite as `w` vanishes). The fit stops at
    /// the first β whose deviance is within the tolerance of the previous one, so its
    /// `X'WX` gives the standard errors without another pass.
    fn logistic(&self) -> Estimates {
        let (n, p) = (self.len(), self.terms.len());
        let mut beta = vec![0.0; p];
        let mut previous: Option<f64> = None;
        let mut iterations = 0u32;
        let mut row = Vec::with_capacity(self.slots.len() + 1);
        let (deviance, xtwx, converged) = loop {
            let mut xtwx = vec![0.0; p * p];
            let mut xtwz = vec![0.0; p];
            let mut deviance = 0.0;
            for (r, y) in self.y.iter().enumerate() {
                self.row(r, &mut row);
                let eta = dot(&row, &beta);
                let prob = sigmoid(eta);
                let weight = prob * (1.0 - prob);
                deviance += 2.0
                    * if *y == 1.0 {
                        softplus(-eta)
                    } else {
                        softplus(eta)
                    };
                accumulate(
                    &mut xtwx,
                    &mut xtwz,
                    p,
                    &row,
                    weight,
                    weight * eta + (y - prob),
                );
            }
            let settled = previous.is_some_and(|d| {
                (deviance - d).abs() / (deviance.abs() + 0.1) < DEVIANCE_TOLERANCE
            });
            if settled || iterations >= MAX_ITERATIONS {
                break (deviance, Some(xtwx), settled);
            }
            match Cholesky::new(&xtwx, p) {
                Ok(chol) => beta = chol.solve(&xtwz),
                // The weights vanished on a direction: the coefficients diverge.
                Err(_) => break (deviance, None, false),
            }
            previous = Some(deviance);
            iterations += 1;
        };
        let inverse = xtwx
            .and_then(|m| Cholesky::new(&m, p).ok())
            .map(|chol| chol.inverse_diagonal());
        let std_errors: Vec<f64> = match inverse {
            Some(diagonal) => diagonal.iter().map(|v| v.sqrt()).collect(),
            None => vec![f64::NAN; p],
        };
        let statistics: Vec<f64> = beta.iter().zip(&std_errors).map(|(b, s)| b / s).collect();
        let p_values = statistics.iter().map(|z| z_two_sided(*z)).collect();
        let ones = self.y.iter().filter(|v| **v == 1.0).count() as f64;
        let zeros = n as f64 - ones;
        let null_deviance = if self.intercept {
            let mean = ones / n as f64;
            let term = |count: f64, share: f64| if count > 0.0 { count * share.ln() } else { 0.0 };
            -2.0 * (term(ones, mean) + term(zeros, 1.0 - mean))
        } else {
            2.0 * n as f64 * std::f64::consts::LN_2
        };
        Estimates {
            coefficients: beta,
            std_errors,
            statistics,
            p_values,
            residual_df: (n - p) as u64,
            sigma: None,
            r_squared: None,
            adj_r_squared: None,
            deviance: Some(deviance),
            null_deviance: Some(null_deviance),
            aic: Some(deviance + 2.0 * p as f64),
            iterations,
            converged,
            // Counted with the levels' ([`Design::fit`]).
            certain: 0,
        }
    }
}

/// Adds `weight · x xᵀ` (upper triangle) to `xtx` and `response · x` to `xty`, for the
/// sparse row `x` (ascending terms).
fn accumulate(
    xtx: &mut [f64],
    xty: &mut [f64],
    p: usize,
    row: &[(usize, f64)],
    weight: f64,
    response: f64,
) {
    for (at, &(i, xi)) in row.iter().enumerate() {
        xty[i] += xi * response;
        let weighted = weight * xi;
        let line = &mut xtx[i * p..(i + 1) * p];
        for &(j, xj) in &row[at..] {
            line[j] += weighted * xj;
        }
    }
}

/// `x · β` for a sparse row.
fn dot(row: &[(usize, f64)], beta: &[f64]) -> f64 {
    row.iter().map(|(term, x)| x * beta[*term]).sum()
}

/// `1 / (1 + e^(−η))` without overflow.
fn sigmoid(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^x)` without overflow: `−ln p` for `x = −η`, `−ln(1 − p)` for `x = η`.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Whether a fitted probability is within [`CERTAIN`] of 0 or 1.
fn is_certain(prob: f64) -> bool {
    !(CERTAIN..=1.0 - CERTAIN).contains(&prob)
}

/// Two-sided p-value of `t` with `df` degrees of freedom: `I_{df/(df+t²)}(df/2, ½)`.
fn t_two_sided(t: f64, df: f64) -> f64 {
    if t.is_infinite() {
        return 0.0;
    }
    checked_beta_reg(df / 2.0, 0.5, df / (df + t * t)).unwrap_or(f64::NAN)
}

/// Two-sided p-value of a standard normal `z`: `erfc(|z| / √2)`.
fn z_two_sided(z: f64) -> f64 {
    erfc(z.abs() / SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_match_known_quantiles() {
        // t = 2.228 with 10 df and z = 1.96 are the two-sided 5 % points.
        assert!((t_two_sided(2.228_138_85, 10.0) - 0.05).abs() < 1e-6);
        assert!((z_two_sided(1.959_963_985) - 0.05).abs() < 1e-8);
        assert!((t_two_sided(0.0, 5.0) - 1.0).abs() < 1e-12);
        assert!(t_two_sided(f64::NAN, 5.0).is_nan());
    }

    #[test]
    fn probabilities_and_deviances_stay_finite_far_out() {
        assert_eq!(sigmoid(800.0), 1.0);
        assert_eq!(sigmoid(-800.0), 0.0);
        assert!((softplus(800.0) - 800.0).abs() < 1e-9);
        assert!(softplus(-800.0) >= 0.0 && softplus(-800.0) < 1e-300);
        assert!(is_certain(1e-9) && is_certain(1.0 - 1e-9) && !is_certain(0.5));
    }
}
