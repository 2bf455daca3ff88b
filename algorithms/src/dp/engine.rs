//! Translation of a validated query into an OpenDP `make_private_lazyframe` measurement,
//! budget calibration, execution and post-processing.

use std::path::Path;

use opendp::accuracy::polars::summarize_polars_measurement;
use opendp::accuracy::{discrete_laplacian_scale_to_accuracy, laplacian_scale_to_accuracy};
use opendp::core::Measurement;
use opendp::domains::{AtomDomain, LazyFrameDomain, Margin, OptionDomain, SeriesDomain};
use opendp::measurements::make_private_lazyframe;
use opendp::measures::{Approximate, MaxDivergence};
use opendp::metrics::{Bounds, FrameDistance, SymmetricDistance, SymmetricIdDistance};
use opendp::polars::{OnceFrame, PrivacyNamespace};
use pdx_seal::AtRest;
use polars::prelude::*;

use super::DpError;
use super::query::{self, Aggregate, CmpOp, Item, Lit, Pred, Query};
use super::table::{ColumnKind, DpTable, PrivacyUnit};
use crate::deid::storage::scan_parquet;

/// Significance level of every reported error bound: each bound holds with probability 95%.
pub const ALPHA: f64 = 0.05;

/// Largest number of public group keys (the cross product of the declared categories).
pub const MAX_PUBLIC_GROUPS: usize = 100_000;

/// Number of public candidates a quantile is chosen from (fewer for narrow integer ranges).
pub const QUANTILE_CANDIDATES: usize = 1001;

/// Relative head-room kept below the requested epsilon so float rounding never overspends.
const SAFETY: f64 = 1e-9;

/// A threshold far above any contribution bound: used only while measuring epsilon.
const PROBE_THRESHOLD: u32 = 1 << 30;

/// How the set of released groups is protected.
#[derive(Clone, Debug)]
enum Keys {
    /// No GROUP BY: one row.
    Single,
    /// Every group key is a declared category: the key set is public (a right join with it).
    Public(DataFrame),
    /// Some key is not declared: groups are released only above a noisy-count threshold.
    Threshold,
}

/// One noisy statistic computed by OpenDP.
#[derive(Clone, Debug)]
enum ReleaseKind {
    /// Rows per group.
    Len,
    /// Non-null values of a column per group.
    Count(String),
    /// Clipped sum of a column.
    Sum(String),
    /// Quantile of a column among public candidates.
    Quantile(String, f64),
}

#[derive(Clone, Debug)]
struct Release {
    /// Internal column name in OpenDP's output.
    name: String,
    kind: ReleaseKind,
    /// The noise scale (after calibration).
    scale: f64,
    /// Whether OpenDP adds integer (discrete) noise.
    integer: bool,
}

/// One budget share: an aggregate of the query (or the hidden count a threshold needs).
#[derive(Clone, Debug)]
struct Share {
    /// Indices into the releases.
    releases: Vec<usize>,
}

/// The role of an output column.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputRole {
    /// A GROUP BY key (public or threshold-protected).
    Key,
    /// A noisy aggregate.
    Aggregate(Aggregate),
}

/// One column of the released frame.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputColumn {
    /// Column name in the released frame.
    pub name: String,
    /// Its polars type.
    pub dtype: DataType,
    /// Key or aggregate.
    pub role: OutputRole,
}

/// The error bound of one released aggregate column.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColumnAccuracy {
    /// Output column name.
    pub column: String,
    /// Significance: the bound holds with probability `1 - alpha` (per cell).
    pub alpha: f64,
    /// Largest absolute error at `1 - alpha` confidence; `None` where OpenDP gives no bound
    /// (quantiles) or no released cell has a usable denominator (AVG).
    pub bound: Option<f64>,
}

/// A validated, calibrated DP query: what `run` executes. Cheap to build and to clone.
#[derive(Clone, Debug)]
pub struct DpPlan {
    table: DpTable,
    query: Query,
    /// Columns OpenDP sees, with the types the input is cast to.
    columns: Vec<(String, DataType)>,
    keys: Keys,
    releases: Vec<Release>,
    shares: Vec<Share>,
    threshold: Option<u32>,
    epsilon: f64,
    delta: f64,
    epsilon_spent: f64,
    delta_spent: f64,
    output: Vec<OutputColumn>,
}

/// A DP release: the frame and what it cost.
#[derive(Clone, Debug)]
pub struct DpOutput {
    /// Keys and noisy aggregates, in SELECT order, rows sorted by key.
    pub frame: DataFrame,
    /// Epsilon consumed (OpenDP's privacy map at one privacy unit).
    pub epsilon_spent: f64,
    /// Delta consumed (non-zero only for threshold-protected keys).
    pub delta_spent: f64,
    /// The 95% error bound of each aggregate column.
    pub accuracy: Vec<ColumnAccuracy>,
    /// The noisy-count threshold groups had to exceed, if keys were not public.
    pub threshold: Option<u32>,
}

/// The compiled OpenDP measurement for either privacy unit.
enum Compiled {
    Record(
        Measurement<
            LazyFrameDomain,
            FrameDistance<SymmetricDistance>,
            Approximate<MaxDivergence>,
            OnceFrame,
        >,
    ),
    User(
        Measurement<
            LazyFrameDomain,
            FrameDistance<SymmetricIdDistance>,
            Approximate<MaxDivergence>,
            OnceFrame,
        >,
    ),
}

impl Compiled {
    /// (epsilon, delta) for neighbouring tables differing in one privacy unit.
    fn map(&self) -> Result<(f64, f64), DpError> {
        let d_in = Bounds::from(1u32);
        match self {
            Compiled::Record(m) => m.map(&d_in),
            Compiled::User(m) => m.map(&d_in),
        }
        .map_err(opendp_error)
    }

    fn invoke(&self, frame: &LazyFrame) -> Result<DataFrame, DpError> {
        let once = match self {
            Compiled::Record(m) => m.invoke(frame),
            Compiled::User(m) => m.invoke(frame),
        }
        .map_err(|e| DpError::Execution {
            stage: "building the private plan",
            detail: format!("({:?})", e.variant),
        })?;
        once.collect().map_err(|e| DpError::Execution {
            stage: "executing the private plan",
            detail: format!("({:?})", e.variant),
        })
    }

    /// OpenDP's per-statistic summary: column, aggregate, distribution, scale.
    fn summarize(self) -> Result<DataFrame, DpError> {
        match self {
            Compiled::Record(m) => summarize_polars_measurement(m, None),
            Compiled::User(m) => summarize_polars_measurement(m, None),
        }
        .map_err(opendp_error)
    }
}

fn opendp_error(e: opendp::error::Error) -> DpError {
    DpError::OpenDp {
        message: format!("{:?}: {}", e.variant, e.message.unwrap_or_default()),
    }
}

fn polars_plan_error(e: PolarsError) -> DpError {
    // Plan-time polars work touches only empty frames and public keys, never data.
    DpError::OpenDp {
        message: format!("polars: {e}"),
    }
}

/// Parses, validates and calibrates `sql` against `table` for a budget of `(epsilon, delta)`.
///
/// No data is read. `epsilon` is split evenly across the query's aggregates (AVG is one
/// aggregate, made of a noisy sum and a noisy count, each with half its share). `delta` is
/// spent only when a GROUP BY key has no declared categories (then groups are released
/// only above a noisy-count threshold); with `delta = 0` such a query is refused.
pub fn plan(sql: &str, table: &DpTable, epsilon: f64, delta: f64) -> Result<DpPlan, DpError> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(DpError::InvalidEpsilon);
    }
    if !(delta.is_finite() && (0.0..1.0).contains(&delta)) {
        return Err(DpError::InvalidDelta);
    }
    table.validate()?;
    let query = query::parse(sql, table)?;
    let kind = |c: &str| {
        table
            .column(c)
            .map(|c| &c.kind)
            .ok_or_else(|| DpError::UnknownColumn {
                column: c.to_owned(),
            })
    };

    // The key set: public (declared categories), threshold-protected, or a single row.
    let keys = if query.group_by.is_empty() {
        Keys::Single
    } else {
        let mut categories = Vec::with_capacity(query.group_by.len());
        let mut undeclared = None;
        for key in &query.group_by {
            match kind(key)? {
                ColumnKind::Text {
                    categories: Some(values),
                } => categories.push(values.clone()),
                _ => {
                    undeclared.get_or_insert_with(|| key.clone());
                }
            }
        }
        match undeclared {
            None => Keys::Public(key_frame(&query.group_by, &categories)?),
            Some(_) if delta > 0.0 => Keys::Threshold,
            Some(column) => return Err(DpError::KeysNotPublic { column }),
        }
    };

    // The columns OpenDP sees and their types.
    let mut names: Vec<String> = query.group_by.clone();
    names.extend(
        query
            .aggregates()
            .filter_map(|a| a.column().map(str::to_owned)),
    );
    if let Some(p) = &query.filter {
        pred_columns(p, &mut names);
    }
    if let PrivacyUnit::User { identifier, .. } = &table.unit {
        names.push(identifier.clone());
    }
    let mut columns: Vec<(String, DataType)> = Vec::with_capacity(names.len());
    for name in names {
        if !columns.iter().any(|(n, _)| *n == name) {
            let dtype = dtype_of(kind(&name)?);
            columns.push((name, dtype));
        }
    }

    // The releases and their budget shares.
    let mut releases = Vec::new();
    let mut shares = Vec::new();
    for agg in query.aggregates() {
        let idx = match agg {
            Aggregate::CountAll => vec![push_release(&mut releases, ReleaseKind::Len)],
            Aggregate::Count(c) => vec![push_release(&mut releases, ReleaseKind::Count(c.clone()))],
            Aggregate::Sum(c) => vec![push_release(&mut releases, ReleaseKind::Sum(c.clone()))],
            Aggregate::Avg(c) => vec![
                push_release(&mut releases, ReleaseKind::Sum(c.clone())),
                push_release(&mut releases, ReleaseKind::Len),
            ],
            Aggregate::Quantile(c, p) => {
                vec![push_release(
                    &mut releases,
                    ReleaseKind::Quantile(c.clone(), *p),
                )]
            }
        };
        shares.push(Share { releases: idx });
    }
    if matches!(keys, Keys::Threshold)
        && !releases.iter().any(|r| matches!(r.kind, ReleaseKind::Len))
    {
        // OpenDP thresholds on a noisy row count; the query has none, so add one (and pay for it).
        shares.push(Share {
            releases: vec![push_release(&mut releases, ReleaseKind::Len)],
        });
    }

    let mut plan = DpPlan {
        table: table.clone(),
        query,
        columns,
        keys,
        releases,
        shares,
        threshold: None,
        epsilon,
        delta,
        epsilon_spent: 0.0,
        delta_spent: 0.0,
        output: Vec::new(),
    };
    plan.calibrate()?;
    plan.output = plan.output_schema()?;
    Ok(plan)
}

/// Runs `plan` over the Parquet file at `path`, kept as `at_rest` says (see [`run`]).
pub fn run_parquet(plan: &DpPlan, path: &Path, at_rest: &AtRest) -> Result<DpOutput, DpError> {
    let frame = scan_parquet(path, at_rest).map_err(|_| DpError::Execution {
        stage: "opening the Parquet file",
        detail: String::new(),
    })?;
    run(plan, frame)
}

/// Runs `plan` once over `frame` and returns the released, post-processed frame.
///
/// The declared columns are cast to their declared types first (values that do not cast
/// become null, and are imputed or dropped as described in the module documentation).
/// A plan may be run many times; each run spends the plan's budget again.
pub fn run(plan: &DpPlan, frame: LazyFrame) -> Result<DpOutput, DpError> {
    let mut frame = frame;
    let schema = frame.collect_schema().map_err(|_| DpError::Execution {
        stage: "reading the table schema",
        detail: String::new(),
    })?;
    for (name, _) in &plan.columns {
        if schema.get(name.as_str()).is_none() {
            return Err(DpError::MissingColumn {
                column: name.clone(),
            });
        }
    }
    let input = plan.cast_input(frame);
    let rows = input
        .clone()
        .select([len()])
        .collect()
        .ok()
        .and_then(|df| df.column("len").ok()?.u32().ok()?.get(0))
        .ok_or(DpError::Execution {
            stage: "counting rows",
            detail: String::new(),
        })?;
    if rows > plan.table.max_rows {
        return Err(DpError::TooManyRows);
    }

    let compiled = plan.compile(Some(&plan.scales()), plan.threshold)?;
    let (epsilon_spent, delta_spent) = compiled.map()?;
    let released = compiled.invoke(&input)?;
    plan.finish(released, epsilon_spent, delta_spent)
}

impl DpPlan {
    /// The released frame's columns, in SELECT order.
    pub fn output_columns(&self) -> &[OutputColumn] {
        &self.output
    }

    /// Epsilon one run spends (OpenDP's privacy map; at most the requested epsilon).
    pub fn epsilon_spent(&self) -> f64 {
        self.epsilon_spent
    }

    /// Delta one run spends.
    pub fn delta_spent(&self) -> f64 {
        self.delta_spent
    }

    /// The requested `(epsilon, delta)`.
    pub fn budget(&self) -> (f64, f64) {
        (self.epsilon, self.delta)
    }

    /// The noisy-count threshold for non-public keys, if any.
    pub fn threshold(&self) -> Option<u32> {
        self.threshold
    }

    /// The table description the plan was made for.
    pub fn table(&self) -> &DpTable {
        &self.table
    }

    /// The noise scale of each release, keyed by internal column name (for diagnostics).
    pub fn noise_scales(&self) -> Vec<(String, f64)> {
        self.releases
            .iter()
            .map(|r| (r.name.clone(), r.scale))
            .collect()
    }

    /// The query this plan answers.
    pub(crate) fn query(&self) -> &Query {
        &self.query
    }

    /// Selects the declared columns the query uses, cast to their declared types.
    pub(crate) fn cast_input(&self, frame: LazyFrame) -> LazyFrame {
        frame.select(
            self.columns
                .iter()
                .map(|(n, t)| col(n.as_str()).cast(t.clone()))
                .collect::<Vec<_>>(),
        )
    }

    fn scales(&self) -> Vec<f64> {
        self.releases.iter().map(|r| r.scale).collect()
    }

    /// Splits epsilon evenly over the shares, then finds the threshold for delta.
    ///
    /// 1. With no scales set, OpenDP calibrates every release to its own sensitivity at
    ///    `global_scale = 1`; `summarize_polars_measurement` reports those base scales.
    /// 2. Pure-DP losses compose additively and each is inversely proportional to its
    ///    scale, so the loss of share `i` at base scales is measured by doubling that
    ///    share's scales: `e_i = 2 * (E(all base) - E(share i doubled))`.
    /// 3. Share `i`'s scales are multiplied by `e_i * k / epsilon`, so it spends `epsilon / k`.
    /// 4. Without public keys, the smallest threshold whose delta fits is searched.
    /// 5. The final measurement's own privacy map is the authority for what is spent.
    fn calibrate(&mut self) -> Result<(), DpError> {
        let probe = matches!(self.keys, Keys::Threshold).then_some(PROBE_THRESHOLD);
        let summary = self.compile(None, probe)?.summarize()?;
        let names = summary
            .column("column")
            .and_then(|c| c.str().cloned())
            .map_err(polars_plan_error)?;
        let scales = summary
            .column("scale")
            .and_then(|c| c.f64().cloned())
            .map_err(polars_plan_error)?;
        let dists = summary
            .column("distribution")
            .and_then(|c| c.str().cloned())
            .map_err(polars_plan_error)?;
        let mut base = vec![f64::NAN; self.releases.len()];
        for (i, release) in self.releases.iter_mut().enumerate() {
            let row = (0..names.len())
                .find(|&r| names.get(r) == Some(release.name.as_str()))
                .ok_or(DpError::Calibration {
                    reason: "a release is missing from OpenDP's summary",
                })?;
            base[i] = scales
                .get(row)
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or(DpError::Calibration {
                    reason: "OpenDP reported no positive noise scale",
                })?;
            release.integer = dists.get(row).is_some_and(|d| d.starts_with("Integer"));
        }

        let total = self.compile(Some(&base), probe)?.map()?.0;
        let k = self.shares.len() as f64;
        let mut final_scales = base.clone();
        for share in &self.shares {
            let mut doubled = base.clone();
            for &j in &share.releases {
                doubled[j] *= 2.0;
            }
            let reduced = self.compile(Some(&doubled), probe)?.map()?.0;
            let e_share = 2.0 * (total - reduced);
            if !(e_share.is_finite() && e_share > 0.0) {
                return Err(DpError::Calibration {
                    reason: "a share's privacy loss is not positive",
                });
            }
            let factor = e_share * k / self.epsilon * (1.0 + SAFETY);
            for &j in &share.releases {
                final_scales[j] = base[j] * factor;
            }
        }
        for (release, scale) in self.releases.iter_mut().zip(&final_scales) {
            release.scale = *scale;
        }

        if matches!(self.keys, Keys::Threshold) {
            self.threshold = Some(self.find_threshold(&final_scales)?);
        }
        let (eps, delta) = self.compile(Some(&final_scales), self.threshold)?.map()?;
        if eps > self.epsilon || delta > self.delta {
            return Err(DpError::Calibration {
                reason: "the calibrated plan would exceed the budget",
            });
        }
        self.epsilon_spent = eps;
        self.delta_spent = delta;
        Ok(())
    }

    /// The smallest threshold whose delta (from OpenDP's privacy map) is within budget.
    fn find_threshold(&self, scales: &[f64]) -> Result<u32, DpError> {
        let fits = |t: u32| -> bool {
            self.compile(Some(scales), Some(t))
                .and_then(|m| m.map())
                .is_ok_and(|(_, d)| d <= self.delta)
        };
        let mut hi: u32 = 2;
        while !fits(hi) {
            if hi >= PROBE_THRESHOLD {
                return Err(DpError::DeltaTooSmall);
            }
            hi *= 2;
        }
        let mut lo = hi / 2; // known not to fit (or below every contribution bound)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }

    /// The OpenDP input domain: declared columns (nullable) and the public row bound.
    fn domain(&self) -> Result<LazyFrameDomain, DpError> {
        let series = self
            .columns
            .iter()
            .map(|(name, dtype)| match dtype {
                DataType::Int64 => SeriesDomain::new(
                    name.as_str(),
                    OptionDomain::new(AtomDomain::<i64>::default()),
                ),
                DataType::Float64 => SeriesDomain::new(
                    name.as_str(),
                    OptionDomain::new(AtomDomain::<f64>::default()),
                ),
                _ => SeriesDomain::new(
                    name.as_str(),
                    OptionDomain::new(AtomDomain::<String>::default()),
                ),
            })
            .collect();
        LazyFrameDomain::new(series)
            .and_then(|d| {
                d.with_margin(
                    Margin::select()
                        .with_max_length(self.table.max_rows)
                        .with_max_groups(1),
                )
            })
            .map_err(opendp_error)
    }

    /// The polars plan OpenDP analyses: filter, truncation, aggregation, key release.
    fn lazy_plan(&self, scales: Option<&[f64]>) -> Result<LazyFrame, DpError> {
        let schema = Schema::from_iter(
            self.columns
                .iter()
                .map(|(n, t)| Field::new(n.as_str().into(), t.clone())),
        );
        let mut lf = DataFrame::empty_with_schema(&schema).lazy();
        if let Some(p) = &self.query.filter {
            lf = lf.filter(self.pred_expr(p)?);
        }
        if let PrivacyUnit::User {
            identifier,
            max_contributions,
        } = &self.table.unit
        {
            // Keep at most `max_contributions` records per person (OpenDP's per-id truncation).
            let rank =
                int_range(lit(0), len(), 1, DataType::Int64).over([col(identifier.as_str())]);
            lf = lf.filter(rank.lt(lit(*max_contributions)));
        }
        let aggs = self
            .releases
            .iter()
            .enumerate()
            .map(|(j, r)| self.release_expr(r, scales.map(|s| s[j])))
            .collect::<Result<Vec<_>, _>>()?;
        let keys: Vec<Expr> = self
            .query
            .group_by
            .iter()
            .map(|k| col(k.as_str()))
            .collect();
        Ok(match &self.keys {
            Keys::Single => lf.select(aggs),
            Keys::Threshold => lf.group_by(keys).agg(aggs),
            Keys::Public(frame) => lf.group_by(keys.clone()).agg(aggs).join(
                frame.clone().lazy(),
                keys.clone(),
                keys,
                JoinType::Right.into(),
            ),
        })
    }

    fn compile(&self, scales: Option<&[f64]>, threshold: Option<u32>) -> Result<Compiled, DpError> {
        let domain = self.domain()?;
        let lf = self.lazy_plan(scales)?;
        let global = if scales.is_none() { Some(1.0) } else { None };
        let measure = Approximate(MaxDivergence);
        Ok(match &self.table.unit {
            PrivacyUnit::Record => Compiled::Record(
                make_private_lazyframe(
                    domain,
                    FrameDistance(SymmetricDistance),
                    measure,
                    lf,
                    global,
                    threshold,
                )
                .map_err(opendp_error)?,
            ),
            PrivacyUnit::User { identifier, .. } => {
                let metric = FrameDistance(SymmetricIdDistance {
                    identifier: col(identifier.as_str()),
                });
                Compiled::User(
                    make_private_lazyframe(domain, metric, measure, lf, global, threshold)
                        .map_err(opendp_error)?,
                )
            }
        })
    }

    fn kind(&self, column: &str) -> Result<&ColumnKind, DpError> {
        self.table
            .column(column)
            .map(|c| &c.kind)
            .ok_or_else(|| DpError::UnknownColumn {
                column: column.to_owned(),
            })
    }

    fn release_expr(&self, release: &Release, scale: Option<f64>) -> Result<Expr, DpError> {
        let expr = match &release.kind {
            ReleaseKind::Len => len().cast(DataType::Int64).dp().noise(scale),
            ReleaseKind::Count(c) => col(c.as_str()).dp().count(scale, true),
            ReleaseKind::Sum(c) => {
                let bounds = match self.kind(c)? {
                    ColumnKind::Integer {
                        bounds: Some((lo, hi)),
                    } => (lit(*lo), lit(*hi)),
                    ColumnKind::Float {
                        bounds: Some((lo, hi)),
                    } => (lit(*lo), lit(*hi)),
                    _ => {
                        return Err(DpError::NoBounds {
                            column: c.clone(),
                            function: "SUM",
                        });
                    }
                };
                col(c.as_str()).dp().sum(bounds, scale)
            }
            ReleaseKind::Quantile(c, p) => {
                col(c.as_str())
                    .dp()
                    .quantile(*p, quantile_candidates(self.kind(c)?, c)?, scale)
            }
        };
        Ok(expr.alias(release.name.as_str()))
    }

    pub(crate) fn pred_expr(&self, pred: &Pred) -> Result<Expr, DpError> {
        Ok(match pred {
            Pred::And(a, b) => self.pred_expr(a)?.and(self.pred_expr(b)?),
            Pred::Or(a, b) => self.pred_expr(a)?.or(self.pred_expr(b)?),
            Pred::Not(a) => self.pred_expr(a)?.not(),
            Pred::IsNull {
                column,
                negated: false,
            } => col(column.as_str()).is_null(),
            Pred::IsNull {
                column,
                negated: true,
            } => col(column.as_str()).is_not_null(),
            Pred::Cmp { column, op, value } => {
                let value = match (self.kind(column)?, value) {
                    (ColumnKind::Text { .. }, Lit::Str(s)) => lit(s.as_str()),
                    (ColumnKind::Integer { .. }, Lit::Int(v)) => lit(*v),
                    (ColumnKind::Float { .. }, Lit::Int(v)) => lit(*v as f64),
                    (ColumnKind::Integer { .. } | ColumnKind::Float { .. }, Lit::Float(v)) => {
                        lit(*v)
                    }
                    _ => {
                        return Err(DpError::LiteralType {
                            column: column.clone(),
                        });
                    }
                };
                // Integer columns compared with a fractional literal are compared as floats.
                let left = match (self.kind(column)?, value_is_float(pred)) {
                    (ColumnKind::Integer { .. }, true) => {
                        col(column.as_str()).cast(DataType::Float64)
                    }
                    _ => col(column.as_str()),
                };
                match op {
                    CmpOp::Eq => left.eq(value),
                    CmpOp::NotEq => left.neq(value),
                    CmpOp::Lt => left.lt(value),
                    CmpOp::LtEq => left.lt_eq(value),
                    CmpOp::Gt => left.gt(value),
                    CmpOp::GtEq => left.gt_eq(value),
                }
            }
        })
    }

    fn output_schema(&self) -> Result<Vec<OutputColumn>, DpError> {
        let mut out = Vec::with_capacity(self.query.items.len());
        for item in &self.query.items {
            out.push(match item {
                Item::Key { column, output } => OutputColumn {
                    name: output.clone(),
                    dtype: dtype_of(self.kind(column)?),
                    role: OutputRole::Key,
                },
                Item::Agg { agg, output } => {
                    let dtype = match agg {
                        Aggregate::CountAll | Aggregate::Count(_) => DataType::Int64,
                        Aggregate::Avg(_) => DataType::Float64,
                        Aggregate::Sum(c) | Aggregate::Quantile(c, _) => dtype_of(self.kind(c)?),
                    };
                    OutputColumn {
                        name: output.clone(),
                        dtype,
                        role: OutputRole::Aggregate(agg.clone()),
                    }
                }
            });
        }
        Ok(out)
    }

    /// The release index of each aggregate's statistics, in SELECT order.
    fn agg_releases(&self) -> impl Iterator<Item = (&Aggregate, &str, &[usize])> {
        self.query
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Agg { agg, output } => Some((agg, output.as_str())),
                Item::Key { .. } => None,
            })
            .zip(&self.shares)
            .map(|((agg, out), share)| (agg, out, share.releases.as_slice()))
    }

    fn accuracy_at(&self, release: usize, alpha: f64) -> Result<f64, DpError> {
        let r = &self.releases[release];
        if r.integer {
            discrete_laplacian_scale_to_accuracy(r.scale, alpha)
        } else {
            laplacian_scale_to_accuracy(r.scale, alpha)
        }
        .map_err(opendp_error)
    }

    /// Renames, derives AVG, clamps it to the bounds, sorts by key and computes accuracy.
    fn finish(
        &self,
        released: DataFrame,
        epsilon_spent: f64,
        delta_spent: f64,
    ) -> Result<DpOutput, DpError> {
        let post = |stage: &'static str| {
            move |_: PolarsError| DpError::Execution {
                stage,
                detail: String::new(),
            }
        };
        let mut exprs = Vec::with_capacity(self.query.items.len());
        let mut accuracy = Vec::new();
        let mut aggs = self.agg_releases();
        for item in &self.query.items {
            match item {
                Item::Key { column, output } => {
                    exprs.push(col(column.as_str()).alias(output.as_str()))
                }
                Item::Agg { .. } => {
                    let Some((agg, output, idx)) = aggs.next() else {
                        return Err(DpError::Calibration {
                            reason: "aggregate bookkeeping is inconsistent",
                        });
                    };
                    let (expr, bound) = match (agg, idx) {
                        (Aggregate::Avg(c), [sum, count]) => {
                            let (lo, hi) = match self.kind(c)? {
                                ColumnKind::Integer {
                                    bounds: Some((lo, hi)),
                                } => (*lo as f64, *hi as f64),
                                ColumnKind::Float {
                                    bounds: Some((lo, hi)),
                                } => (*lo, *hi),
                                _ => {
                                    return Err(DpError::NoBounds {
                                        column: c.clone(),
                                        function: "AVG",
                                    });
                                }
                            };
                            let (s, n) = (&self.releases[*sum].name, &self.releases[*count].name);
                            let ratio = col(s.as_str()).cast(DataType::Float64)
                                / col(n.as_str()).cast(DataType::Float64);
                            let expr = when(col(n.as_str()).gt_eq(lit(1i64)))
                                .then(ratio.clip(lit(lo), lit(hi)))
                                .otherwise(lit(NULL).cast(DataType::Float64));
                            // |S'/N' - S/N| <= (|S'-S| + max(|lo|,|hi|) |N'-N|) / N', each noise term
                            // bounded at alpha/2 so both hold together with probability 1 - alpha.
                            let a_sum = self.accuracy_at(*sum, ALPHA / 2.0)?;
                            let a_count = self.accuracy_at(*count, ALPHA / 2.0)?;
                            let magnitude = lo.abs().max(hi.abs());
                            let min_count = released
                                .column(n.as_str())
                                .and_then(|c| c.cast(&DataType::Int64))
                                .map_err(post("reading noisy counts"))?
                                .i64()
                                .map_err(post("reading noisy counts"))?
                                .into_iter()
                                .flatten()
                                .filter(|&v| v >= 1)
                                .min();
                            let bound = min_count
                                .map(|m| ((a_sum + magnitude * a_count) / m as f64).min(hi - lo));
                            (expr, bound)
                        }
                        (Aggregate::Quantile(..), [j]) => {
                            (col(self.releases[*j].name.as_str()), None)
                        }
                        (_, [j]) => (
                            col(self.releases[*j].name.as_str()),
                            Some(self.accuracy_at(*j, ALPHA)?),
                        ),
                        _ => {
                            return Err(DpError::Calibration {
                                reason: "aggregate bookkeeping is inconsistent",
                            });
                        }
                    };
                    exprs.push(expr.alias(output));
                    accuracy.push(ColumnAccuracy {
                        column: output.to_owned(),
                        alpha: ALPHA,
                        bound,
                    });
                }
            }
        }
        let mut lf = released.lazy().select(exprs);
        let key_outputs: Vec<PlSmallStr> = self
            .query
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Key { output, .. } => Some(output.as_str().into()),
                Item::Agg { .. } => None,
            })
            .collect();
        if !key_outputs.is_empty() {
            lf = lf.sort(key_outputs, SortMultipleOptions::default());
        }
        let frame = lf.collect().map_err(post("post-processing the release"))?;
        Ok(DpOutput {
            frame,
            epsilon_spent,
            delta_spent,
            accuracy,
            threshold: self.threshold,
        })
    }
}

/// Appends a release with a fresh internal name and returns its index.
fn push_release(releases: &mut Vec<Release>, kind: ReleaseKind) -> usize {
    releases.push(Release {
        name: format!("__pdx_{}", releases.len()),
        kind,
        scale: 0.0,
        integer: true,
    });
    releases.len() - 1
}

fn value_is_float(pred: &Pred) -> bool {
    matches!(
        pred,
        Pred::Cmp {
            value: Lit::Float(_),
            ..
        }
    )
}

/// The polars type a column is cast to before OpenDP sees it.
fn dtype_of(kind: &ColumnKind) -> DataType {
    match kind {
        ColumnKind::Integer { .. } => DataType::Int64,
        ColumnKind::Float { .. } => DataType::Float64,
        ColumnKind::Text { .. } => DataType::String,
    }
}

fn pred_columns(pred: &Pred, out: &mut Vec<String>) {
    match pred {
        Pred::And(a, b) | Pred::Or(a, b) => {
            pred_columns(a, out);
            pred_columns(b, out);
        }
        Pred::Not(a) => pred_columns(a, out),
        Pred::Cmp { column, .. } | Pred::IsNull { column, .. } => {
            if !out.contains(column) {
                out.push(column.clone());
            }
        }
    }
}

/// The public key set: the cross product of the declared categories (deduplicated).
fn key_frame(keys: &[String], categories: &[Vec<String>]) -> Result<DataFrame, DpError> {
    let sets: Vec<Vec<&str>> = categories
        .iter()
        .map(|values| {
            let mut seen: Vec<&str> = Vec::with_capacity(values.len());
            for v in values {
                if !seen.contains(&v.as_str()) {
                    seen.push(v.as_str());
                }
            }
            seen
        })
        .collect();
    let total = sets
        .iter()
        .try_fold(1usize, |acc, s| acc.checked_mul(s.len()))
        .filter(|&n| n <= MAX_PUBLIC_GROUPS)
        .ok_or(DpError::TooManyGroups {
            limit: MAX_PUBLIC_GROUPS,
        })?;
    let mut columns: Vec<Vec<&str>> = vec![Vec::with_capacity(total); sets.len()];
    for i in 0..total {
        let mut rest = i;
        for (c, set) in sets.iter().enumerate().rev() {
            columns[c].push(set[rest % set.len()]);
            rest /= set.len();
        }
    }
    let columns = keys
        .iter()
        .zip(columns)
        .map(|(name, values)| Column::new(name.as_str().into(), values))
        .collect();
    DataFrame::new(columns).map_err(polars_plan_error)
}

/// Public quantile candidates: every integer of a narrow range, else an even grid.
fn quantile_candidates(kind: &ColumnKind, column: &str) -> Result<Series, DpError> {
    let n = QUANTILE_CANDIDATES;
    Ok(match kind {
        ColumnKind::Integer {
            bounds: Some((lo, hi)),
        } => {
            let width = (*hi as i128) - (*lo as i128);
            let values: Vec<i64> = if width < n as i128 {
                (*lo..=*hi).collect()
            } else {
                let mut v: Vec<i64> = (0..n)
                    .map(|i| {
                        (*lo as f64 + (width as f64) * i as f64 / (n - 1) as f64).round() as i64
                    })
                    .map(|x| x.clamp(*lo, *hi))
                    .collect();
                v.dedup();
                v
            };
            Series::new("candidates".into(), values)
        }
        ColumnKind::Float {
            bounds: Some((lo, hi)),
        } => {
            let values: Vec<f64> = (0..n)
                .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
                .collect();
            Series::new("candidates".into(), values)
        }
        _ => {
            return Err(DpError::NoBounds {
                column: column.to_owned(),
                function: "QUANTILE",
            });
        }
    })
}
