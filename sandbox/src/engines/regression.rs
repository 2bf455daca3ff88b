//! Regression models (`kind: regression`): OLS and logistic regression on granted
//! columns, fitted by `pdx_algorithms::regression`, whose estimates leave only through
//! its ACRO-style checks (issue #22; SD22 Art.13, only de-identified aggregates
//! leave). The model text is a JSON spec, for example
//! `{"family": "ols", "target": "kwh_12m", "features": ["employees", "industry"],
//! "categorical": ["industry"]}`.
//!
//! **Admission** (a refusal is a 4xx that costs no budget, and names the column and the
//! rule, never a value): one input; the spec parses and validates; its `table` is the
//! input; each column is a column of the dataset, is not an identifier (a direct
//! identifier, a pseudonymised column, or the policy's `dp_identifier`: a person's id
//! as a feature would be a person per level), and is granted; the kinds fit the
//! model (read from the version file's schema, no row); a categorical column whose
//! released domain holds more than `MAX_LEVELS` values is refused here rather than
//! failing the run. On conditional data, the selection fingerprint of a plain
//! aggregate over the table is computed for the record sets (below).
//!
//! **Run on conditional data**, under the organisation's record-set lock on the version
//! (as SQL runs): fit, check at the dataset's threshold, then, if nothing held the
//! estimates back, check the record sets (the rows used, and each categorical level's
//! rows) against everything the organisation holds or has in review on the version,
//! exactly as a SQL aggregate's (`pdx_algorithms::disclosure::check_sets_after`). A
//! set too close to an earlier one withholds every estimate (rule `differencing`):
//! two regressions whose rows differ by one record are a difference of one record, as
//! two sums are. The sets are recorded under the fingerprint of a plain SQL aggregate
//! over the table, because that is what they are (records whose columns are not
//! NULL, and a breakdown by level): `SELECT COUNT(*) FROM data` and then a regression
//! over the same rows are the same records selected the same way, not a crafted
//! re-selection. Only released estimates leave sets behind.
//!
//! A failure after admission (a categorical column with too many levels among the
//! rows, a file that cannot be read) may depend on the records, so it becomes the same
//! empty output with a reviewers-only report as a failed SQL run.
//!
//! **The report** has the reviewers' view: every hit with its rule, its term and its
//! number. Its developer sees, before release, the rules and the checks applied (which
//! depend on the model text only), and after release only which rules held the
//! estimates back (`crate::review`), never a count or a level.
//!
//! On unconditionally open data the fit runs with the numerical checks only (threshold
//! 1) and its report is not redacted.

use std::path::PathBuf;

use async_trait::async_trait;
use pdx_algorithms::DataFrame;
use pdx_algorithms::deid::released::released_domains;
use pdx_algorithms::deid::schema::{ColumnRole, DeidRule};
use pdx_algorithms::disclosure::{
    DisclosureRules, ReleasedSets, check_sets_after, plain_selection,
};
use pdx_algorithms::regression::{
    self, Fit, MAX_LEVELS, RegressionOutput, RegressionRule, RegressionSpec, Verdict,
};
use pdx_ids::VersionRef;
use pdx_seal::AtRest;
use serde_json::{Value, json};

use super::{AdmittedModel, Engine, EngineOutput, RunContext};
use crate::grants::PrivacyCost;
use crate::models::Model;
use crate::record_sets::PriorSets;
use crate::runs::{ResolvedInput, Runs, failed_run_frame};
use crate::{Result, SandboxError};

/// The regression engine.
pub(crate) struct RegressionEngine;

/// A regression admitted over its one input.
struct AdmittedRegression {
    /// The checked spec.
    spec: RegressionSpec,
    /// The certified version it reads.
    path: PathBuf,
    /// How that file is kept.
    at_rest: AtRest,
    /// That version's certified row count (public).
    rows: u64,
    /// The rules and record-set identity, on conditional data.
    conditional: Option<Conditional>,
}

/// What a run on conditional data is checked with.
struct Conditional {
    /// The dataset's disclosure rules (the threshold).
    rules: DisclosureRules,
    /// The version the record sets index.
    version: VersionRef,
    /// The selection fingerprint of a plain aggregate over the table.
    selection: String,
}

#[async_trait]
impl Engine for RegressionEngine {
    async fn admit(
        &self,
        runs: &Runs,
        model: &Model,
        inputs: &[ResolvedInput],
        _cost: PrivacyCost,
    ) -> Result<Box<dyn AdmittedModel>> {
        let [input] = inputs else {
            return Err(SandboxError::Invalid(
                "a regression model reads exactly one dataset".into(),
            ));
        };
        let spec = RegressionSpec::parse(&model.body)?;
        if spec.table != input.table {
            return Err(SandboxError::Invalid(format!(
                "`table` is `{}`, but the run's input is `{}` (rule `granted_table`)",
                spec.table, input.table
            )));
        }
        let policy = runs.output_policy(&input.dataset.id).await?;
        admit_columns(&spec, input, policy.dp_identifier.as_deref())?;
        admit_level_domains(runs, &spec, input).await?;
        let (path, at_rest) = (input.path.clone(), input.at_rest.clone());
        let kinds =
            tokio::task::spawn_blocking(move || regression::parquet_value_kinds(&path, &at_rest))
                .await
                .map_err(|e| SandboxError::Internal(format!("regression task: {e}")))??;
        spec.check_kinds(|name| kinds.get(name).copied())?;
        let conditional = match runs.disclosure_rules_for(inputs).await? {
            Some(rules) => {
                let engine = runs.sql_engine(inputs).await?;
                let selection = plain_selection(&engine, &input.table).await?;
                Some(Conditional {
                    rules,
                    version: input.cited(),
                    selection,
                })
            }
            None => None,
        };
        Ok(Box::new(AdmittedRegression {
            spec,
            path: input.path.clone(),
            at_rest: input.at_rest.clone(),
            rows: input.rows,
            conditional,
        }))
    }
}

#[async_trait]
impl AdmittedModel for AdmittedRegression {
    async fn run(self: Box<Self>, runs: &Runs, run: &RunContext<'_>) -> Result<EngineOutput> {
        let AdmittedRegression {
            spec,
            path,
            at_rest,
            rows,
            conditional,
        } = *self;
        let Some(conditional) = conditional else {
            let fit = fit_file(spec.clone(), path, at_rest).await?;
            let verdict = regression::check(&fit, 1);
            let out = regression::output(&fit, &verdict)?;
            let report = checked_report(&spec, None, &fit, &verdict, out.values_released);
            return Ok(EngineOutput::plain(out.frame, report));
        };
        let record_locks = runs
            .record_locks()
            .lock(
                runs.db(),
                run.org,
                std::slice::from_ref(&conditional.version),
                runs.config().run_timeout,
            )
            .await?;
        let tables = vec![(spec.table.clone(), conditional.version.clone())];
        let priors = PriorSets::new(runs.db().clone(), runs.record_unions(), run.org, tables);
        match checked_run(&spec, (path, at_rest), rows, &conditional, &priors).await {
            Ok((out, report, released)) => Ok(EngineOutput {
                frame: out.frame,
                report,
                released_sets: released.map(|sets| (conditional.version.clone(), sets)),
                record_locks,
            }),
            Err(e) => {
                // Admission checked the text, the columns and their kinds: this failure
                // may depend on the records, so reviewers only.
                tracing::warn!(job_id = %run.job_id, error = %e, "a regression on conditional data failed after admission");
                Ok(EngineOutput {
                    frame: failed_run_frame()?,
                    report: failed_report(&spec, &conditional.rules, &e),
                    released_sets: None,
                    record_locks,
                })
            }
        }
    }
}

/// Fits, checks, checks the record sets against earlier outputs when nothing else held
/// the estimates back, and builds the output and the reviewers' report; the sets to
/// keep when the estimates are released.
async fn checked_run(
    spec: &RegressionSpec,
    (path, at_rest): (PathBuf, AtRest),
    rows: u64,
    conditional: &Conditional,
    priors: &PriorSets,
) -> Result<(RegressionOutput, Value, Option<ReleasedSets>)> {
    let threshold = conditional.rules.threshold;
    let fit = fit_file(spec.clone(), path, at_rest).await?;
    let mut verdict = regression::check(&fit, threshold);
    let mut released = None;
    if !verdict.withheld() {
        let sets = fit.record_sets(&conditional.selection);
        let found = check_sets_after(&sets, priors, &spec.table, Some(rows), threshold).await?;
        let close = found.close.iter().filter(|c| **c).count();
        if close > 0 {
            verdict.push(
                RegressionRule::Differencing,
                None,
                Some(close as u64),
                format!(
                    "{close} of the model's record sets (its rows, or a level's rows) differ by \
                     1 to {} records from records the organisation already holds or has in \
                     review on this version, or are the same records selected differently",
                    threshold.saturating_sub(1)
                ),
            );
        } else {
            released = Some(ReleasedSets {
                table: spec.table.clone(),
                sets,
                nestings: found.nestings,
            });
        }
    }
    let out = regression::output(&fit, &verdict)?;
    let report = checked_report(
        spec,
        Some(&conditional.rules),
        &fit,
        &verdict,
        out.values_released,
    );
    Ok((out, report, released))
}

/// A dry run of the regression `body` on `input` (a dataset's dummy data): the same
/// fit, checks and output as a run (at the dataset's rules on conditional data), with
/// the full report, since no row is real.
pub(crate) async fn dry_run(
    body: &str,
    input: &ResolvedInput,
    rules: Option<&DisclosureRules>,
    identifier: Option<&str>,
) -> Result<(DataFrame, Value)> {
    let spec = RegressionSpec::parse(body)?;
    admit_columns(&spec, input, identifier)?;
    let fit = fit_file(spec.clone(), input.path.clone(), input.at_rest.clone()).await?;
    let verdict = regression::check(&fit, rules.map_or(1, |r| r.threshold));
    let out = regression::output(&fit, &verdict)?;
    let report = checked_report(&spec, rules, &fit, &verdict, out.values_released);
    Ok((out.frame, report))
}

/// Checks the model's columns against the input: each is a column of the dataset,
/// identifies no one, and is granted to the run.
fn admit_columns(
    spec: &RegressionSpec,
    input: &ResolvedInput,
    identifier: Option<&str>,
) -> Result<()> {
    let schema = &input.dataset.meta.schema;
    for column in spec.columns() {
        let Some(declared) = schema.columns.iter().find(|c| c.name == column) else {
            return Err(SandboxError::Invalid(format!(
                "column `{column}` is not a column of the dataset (rule `known_column`)"
            )));
        };
        let identifying = declared.role == ColumnRole::DirectIdentifier
            || matches!(declared.rule, DeidRule::Pseudonymise)
            || identifier == Some(column);
        if identifying {
            return Err(SandboxError::Invalid(format!(
                "column `{column}` identifies a person or an enterprise and cannot enter a \
                 regression (rule `no_identifiers`)"
            )));
        }
        if !input.columns.iter().any(|c| c == column) {
            return Err(SandboxError::Invalid(format!(
                "column `{column}` is not granted to this run (rule `granted_columns`)"
            )));
        }
    }
    Ok(())
}

/// Refuses a categorical column whose released domain (public: the schema, its
/// hierarchies and the version's levels) holds more than [`MAX_LEVELS`] values; the
/// run would fail on it.
async fn admit_level_domains(
    runs: &Runs,
    spec: &RegressionSpec,
    input: &ResolvedInput,
) -> Result<()> {
    let levels = runs
        .versions()
        .version(&input.dataset.id, input.version)
        .await?
        .map(|v| crate::versions::report_levels(&v.report))
        .unwrap_or_default();
    for domain in released_domains(&input.dataset.meta.schema, &levels) {
        let many = domain
            .values
            .as_ref()
            .is_some_and(|values| values.len() > MAX_LEVELS);
        if many && spec.is_categorical(&domain.column) {
            return Err(SandboxError::Invalid(format!(
                "categorical column `{}` can hold more than {MAX_LEVELS} levels (rule \
                 `level_limit`)",
                domain.column
            )));
        }
    }
    Ok(())
}

/// Fits `spec` over the file at `path` (kept as `at_rest` says), off the async threads.
async fn fit_file(spec: RegressionSpec, path: PathBuf, at_rest: AtRest) -> Result<Fit> {
    tokio::task::spawn_blocking(move || {
        regression::fit_parquet(&spec, &path, &at_rest).map_err(SandboxError::from)
    })
    .await
    .map_err(|e| SandboxError::Internal(format!("regression task: {e}")))?
}

/// The checks applied, by name (they depend on the model text and the rules only).
fn applied_checks(spec: &RegressionSpec, rules: Option<&DisclosureRules>) -> Vec<String> {
    match rules {
        Some(rules) => {
            let mut checks = regression::applied_checks(spec.family, rules.threshold);
            checks.push("differencing_across_outputs".to_owned());
            checks
        }
        None => {
            let mut checks = vec!["unconditional_open_source".to_owned()];
            checks.extend(regression::applied_checks(spec.family, 1));
            checks
        }
    }
}

/// The reviewers' report of a checked fit (`rules` on conditional data; without them
/// the report is marked `unconditional` and shown as it is).
fn checked_report(
    spec: &RegressionSpec,
    rules: Option<&DisclosureRules>,
    fit: &Fit,
    verdict: &Verdict,
    values_released: usize,
) -> Value {
    let mut report = json!({
        "kind": "regression",
        "family": spec.family,
        "statistic": spec.family.statistic(),
        "checks": applied_checks(spec, rules),
        "hits": verdict.hits,
        "withheld": verdict.withheld(),
        "records": fit.records,
        "terms": fit.terms.len(),
        "values_released": values_released,
    });
    match rules {
        Some(rules) => report["rules"] = json!(rules),
        None => report["unconditional"] = json!(true),
    }
    report
}

/// The report of a conditional run that failed after admission: the same
/// text-dependent fields as a checked report (so the developer's view is the same),
/// and the failure for reviewers. The messages carry no data value.
fn failed_report(spec: &RegressionSpec, rules: &DisclosureRules, error: &SandboxError) -> Value {
    json!({
        "kind": "regression",
        "family": spec.family,
        "statistic": spec.family.statistic(),
        "rules": rules,
        "checks": applied_checks(spec, Some(rules)),
        "run_failed": true,
        "failure": error.to_string(),
    })
}
