//! Regression models: exact recovery on noise-free data, the normal equations and the
//! logistic score on the real Adult data (checked here with the term names, not with
//! the crate's design code), each output check on a crafted input and not on a clean
//! one, the output table, and record sets across outputs.

use pdx_algorithms::deid::storage::read_parquet;
use pdx_algorithms::disclosure::{
    DisclosureRules, PriorsInMemory, RecordSet, TrackedSet, check_and_run_after, check_sets_after,
    plain_selection,
};
use pdx_algorithms::regression::{
    Fit, INTERCEPT, RegressionRule, RegressionSpec, Verdict, check, fit_frame, fit_parquet, output,
};
use polars::prelude::*;
use serde_json::json;

use crate::deid_common::{ADULT_COLUMNS, adult_frame, adult_rows};
use crate::disclosure::fixture;

/// A fixed linear congruential generator, uniform on [0, 1).
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn spec(value: serde_json::Value) -> RegressionSpec {
    RegressionSpec::parse(&value.to_string()).unwrap()
}

fn numbers(name: &str, values: &[f64]) -> Column {
    Column::new(name.into(), values.to_vec())
}

fn texts(name: &str, values: &[&str]) -> Column {
    Column::new(name.into(), values.to_vec())
}

fn fitted(spec: &RegressionSpec, columns: Vec<Column>) -> Fit {
    fit_frame(spec, &DataFrame::new(columns).unwrap()).unwrap()
}

fn coefficients(fit: &Fit) -> Vec<f64> {
    fit.estimates.as_ref().unwrap().coefficients.clone()
}

fn rules(verdict: &Verdict) -> Vec<RegressionRule> {
    verdict.rules().into_iter().collect()
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// 200 rows: `x` uniform, `g` in three levels of about 67 rows, `y = 1 + 2x − g + noise`,
/// `z` a 0/1 outcome whose odds grow with `x`; `rare` puts `rare_rows` rows in a level
/// of their own.
fn clean_columns(rare_rows: usize) -> Vec<Column> {
    let mut draws = Draws(7);
    let n = 200;
    let x: Vec<f64> = (0..n).map(|_| draws.next() * 10.0).collect();
    let g: Vec<&str> = (0..n)
        .map(|i| {
            if i < rare_rows {
                "rare"
            } else {
                ["a", "b", "c"][i % 3]
            }
        })
        .collect();
    let y: Vec<f64> = (0..n)
        .map(|i| 1.0 + 2.0 * x[i] - (i % 3) as f64 + draws.next() - 0.5)
        .collect();
    let z: Vec<f64> = (0..n)
        .map(|i| {
            let p = 1.0 / (1.0 + (-(x[i] - 5.0) * 0.4).exp());
            f64::from(u8::from(draws.next() < p))
        })
        .collect();
    vec![
        numbers("y", &y),
        numbers("x", &x),
        texts("g", &g),
        numbers("z", &z),
    ]
}

#[test]
fn noise_free_ols_recovers_the_exact_coefficients() {
    let n = 60;
    let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.37 - 5.0).collect();
    let g: Vec<&str> = (0..n).map(|i| ["a", "b", "c"][i % 3]).collect();
    let effect = [0.0, -1.5, 0.5];
    let y: Vec<f64> = (0..n).map(|i| 3.0 + 2.0 * x[i] + effect[i % 3]).collect();
    let model = spec(
        json!({"family": "ols", "target": "y", "features": ["x", "g"],
        "categorical": ["g"]}),
    );
    let fit = fitted(
        &model,
        vec![numbers("y", &y), numbers("x", &x), texts("g", &g)],
    );
    assert_eq!(fit.terms, [INTERCEPT, "x", "g=b", "g=c"]);
    assert_eq!(fit.records, 60);
    for (got, want) in coefficients(&fit).iter().zip([3.0, 2.0, -1.5, 0.5]) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
    let estimates = fit.estimates.as_ref().unwrap();
    assert!(estimates.r_squared.unwrap() > 1.0 - 1e-12);
    assert_eq!(estimates.residual_df, 56);
    assert!(check(&fit, 10).hits.is_empty());
}

#[test]
fn logistic_estimates_are_logits_of_the_means() {
    // Without an intercept, a constant feature is the intercept: logit(30 / 100).
    let y: Vec<f64> = (0..100).map(|i| f64::from(u8::from(i % 10 < 3))).collect();
    let one = [1.0; 100];
    let model = spec(
        json!({"family": "logistic", "target": "y", "features": ["one"],
        "intercept": false}),
    );
    let fit = fitted(&model, vec![numbers("y", &y), numbers("one", &one)]);
    let estimates = fit.estimates.as_ref().unwrap();
    assert!(estimates.converged && estimates.iterations < 10);
    assert!((estimates.coefficients[0] - logit(0.3)).abs() < 1e-8);
    // Without an intercept the null model is p = ½.
    let deviance = estimates.deviance.unwrap();
    let null = estimates.null_deviance.unwrap();
    assert!(
        (null - 200.0 * std::f64::consts::LN_2).abs() < 1e-9,
        "{null}"
    );
    let expected = -2.0 * (30.0 * 0.3f64.ln() + 70.0 * 0.7f64.ln());
    assert!(
        (deviance - expected).abs() < 1e-8,
        "{deviance} vs {expected}"
    );

    // With a two-level feature: logit of each level's mean, as a contrast.
    let g: Vec<&str> = (0..90).map(|i| if i < 40 { "a" } else { "b" }).collect();
    let y: Vec<f64> = (0..90)
        .map(|i| f64::from(u8::from(if i < 40 { i % 4 == 0 } else { i % 5 < 3 })))
        .collect();
    let model = spec(
        json!({"family": "logistic", "target": "y", "features": ["g"],
        "categorical": ["g"]}),
    );
    let fit = fitted(&model, vec![numbers("y", &y), texts("g", &g)]);
    let beta = coefficients(&fit);
    assert!((beta[0] - logit(0.25)).abs() < 1e-8, "{beta:?}");
    assert!(
        (beta[1] - (logit(0.6) - logit(0.25))).abs() < 1e-8,
        "{beta:?}"
    );
    assert_eq!(fit.ones, 10 + 30);
}

/// Adult's value of `term` in `row`: 1 for the intercept, the indicator of a level, the
/// number for a continuous column.
fn adult_x(row: &[String], term: &str) -> f64 {
    let position = |column: &str| ADULT_COLUMNS.iter().position(|c| *c == column).unwrap();
    if term == INTERCEPT {
        1.0
    } else if let Some((column, level)) = term.split_once('=') {
        f64::from(u8::from(row[position(column)] == level))
    } else {
        row[position(term)].parse().unwrap()
    }
}

#[test]
fn adult_ols_residuals_are_orthogonal_to_every_regressor() {
    let rows = adult_rows();
    let frame = adult_frame(&rows);
    let model = spec(json!({"family": "ols", "target": "age",
        "features": ["sex", "race", "education", "salary-class"],
        "categorical": ["sex", "race", "education", "salary-class"]}));
    let fit = fit_frame(&model, &frame).unwrap();
    assert_eq!(fit.records, rows.len() as u64);
    // 1 + 1 + 4 + 15 + 1 terms: every level of Adult's columns occurs.
    assert_eq!(fit.terms.len(), 22, "{:?}", fit.terms);
    let beta = coefficients(&fit);
    let residuals: Vec<f64> = rows
        .iter()
        .map(|row| {
            let fitted: f64 = fit
                .terms
                .iter()
                .zip(&beta)
                .map(|(term, b)| b * adult_x(row, term))
                .sum();
            adult_x(row, "age") - fitted
        })
        .collect();
    for term in &fit.terms {
        let products: Vec<f64> = rows
            .iter()
            .zip(&residuals)
            .map(|(row, e)| adult_x(row, term) * e)
            .collect();
        let sum: f64 = products.iter().sum();
        let scale: f64 = products.iter().map(|p| p.abs()).sum();
        assert!(
            sum.abs() <= 1e-8 * scale,
            "{term}: X'e = {sum} (scale {scale})"
        );
    }
    let estimates = fit.estimates.as_ref().unwrap();
    let r2 = estimates.r_squared.unwrap();
    assert!(r2 > 0.0 && r2 < 1.0, "{r2}");
    assert!(
        estimates
            .std_errors
            .iter()
            .all(|s| s.is_finite() && *s > 0.0)
    );
}

#[test]
fn adult_logistic_score_vanishes_at_the_estimate() {
    let rows = adult_rows();
    let frame = adult_frame(&rows);
    let model = spec(json!({"family": "logistic", "target": "salary-class",
        "features": ["age", "sex", "race"], "categorical": ["sex", "race"]}));
    let fit = fit_frame(&model, &frame).unwrap();
    let estimates = fit.estimates.as_ref().unwrap();
    assert!(estimates.converged, "{} iterations", estimates.iterations);
    let beta = &estimates.coefficients;
    // The second level in sorted order (">50K") is the outcome 1.
    let salary = ADULT_COLUMNS
        .iter()
        .position(|c| *c == "salary-class")
        .unwrap();
    let outcome = |row: &[String]| f64::from(u8::from(row[salary] == ">50K"));
    assert_eq!(
        fit.ones,
        rows.iter().filter(|r| outcome(r) == 1.0).count() as u64
    );
    let residuals: Vec<f64> = rows
        .iter()
        .map(|row| {
            let eta: f64 = fit
                .terms
                .iter()
                .zip(beta)
                .map(|(term, b)| b * adult_x(row, term))
                .sum();
            outcome(row) - 1.0 / (1.0 + (-eta).exp())
        })
        .collect();
    for term in &fit.terms {
        let score: f64 = rows
            .iter()
            .zip(&residuals)
            .map(|(row, r)| adult_x(row, term) * r)
            .sum();
        let scale: f64 = rows.iter().map(|row| adult_x(row, term).abs()).sum();
        assert!(
            score.abs() <= 1e-6 * scale,
            "{term}: score {score} (scale {scale})"
        );
    }
    // The checks agree with counts made here: a level-count hit exactly where a race
    // level has fewer than 10 records of an outcome.
    let verdict = check(&fit, 10);
    let race = ADULT_COLUMNS.iter().position(|c| *c == "race").unwrap();
    let levels: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[race].as_str()).collect();
    for level in levels {
        let at_level: Vec<&Vec<String>> = rows.iter().filter(|r| r[race] == level).collect();
        let ones = at_level.iter().filter(|r| outcome(r) == 1.0).count();
        let small = ones < 10 || at_level.len() - ones < 10;
        let term = format!("race={level}");
        let hit = verdict.hits.iter().any(|h| {
            h.rule == RegressionRule::LevelCount && h.term.as_deref() == Some(term.as_str())
        });
        assert_eq!(hit, small, "{term}: {:?}", verdict.hits);
    }
    assert!(
        verdict
            .hits
            .iter()
            .all(|h| h.rule == RegressionRule::LevelCount),
        "{:?}",
        verdict.hits
    );
}

#[test]
fn each_check_fires_on_its_crafted_input_and_none_on_a_clean_one() {
    let ols = spec(
        json!({"family": "ols", "target": "y", "features": ["x", "g"],
        "categorical": ["g"]}),
    );
    let logistic = spec(
        json!({"family": "logistic", "target": "z", "features": ["x", "g"],
        "categorical": ["g"]}),
    );
    // Clean: no hit, every value released.
    for model in [&ols, &logistic] {
        let fit = fitted(model, clean_columns(0));
        let verdict = check(&fit, 10);
        assert!(verdict.hits.is_empty(), "{:?}", verdict.hits);
        let out = output(&fit, &verdict).unwrap();
        assert!(out.values_released > 4 * fit.terms.len());
    }

    // A level of threshold − 1 records.
    let fit = fitted(&ols, clean_columns(9));
    let verdict = check(&fit, 10);
    assert_eq!(rules(&verdict), [RegressionRule::LevelCount]);
    let hit = &verdict.hits[0];
    assert_eq!((hit.term.as_deref(), hit.count), (Some("g=rare"), Some(9)));
    assert!(hit.detail.contains("fewer than 10"), "{}", hit.detail);
    // The output lists `g` as one row, names no level, and holds no value.
    let out = output(&fit, &verdict).unwrap();
    assert_eq!(out.values_released, 0);
    let terms: Vec<String> = out
        .frame
        .column("term")
        .unwrap()
        .str()
        .unwrap()
        .into_iter()
        .map(|t| t.unwrap().to_owned())
        .collect();
    assert_eq!(
        terms,
        [
            INTERCEPT,
            "x",
            "g",
            "__n",
            "__df_residual",
            "__sigma",
            "__r_squared",
            "__adj_r_squared"
        ]
    );
    // Ten records pass.
    assert!(check(&fitted(&ols, clean_columns(10)), 10).hits.is_empty());

    // n − p < threshold: 13 records, 4 terms.
    let small: Vec<Column> = clean_columns(0)
        .into_iter()
        .map(|c| c.slice(0, 13))
        .collect();
    let fit = fitted(&ols, small);
    let verdict = check(&fit, 10);
    let residual = verdict
        .hits
        .iter()
        .find(|h| h.rule == RegressionRule::ResidualDf)
        .unwrap();
    assert_eq!(residual.count, Some(9));

    // A duplicated column: saturated, naming the second copy.
    let mut columns = clean_columns(0);
    columns.push(columns[1].clone().with_name("x2".into()));
    let duplicated = spec(
        json!({"family": "ols", "target": "y", "features": ["x", "g", "x2"],
        "categorical": ["g"]}),
    );
    let fit = fitted(&duplicated, columns);
    assert!(fit.estimates.is_none());
    let verdict = check(&fit, 10);
    assert_eq!(rules(&verdict), [RegressionRule::Saturated]);
    assert_eq!(verdict.hits[0].term.as_deref(), Some("x2"));
    assert_eq!(output(&fit, &verdict).unwrap().values_released, 0);

    // Perfect separation: z is 1 exactly when x > 5.
    let mut columns = clean_columns(0);
    let x: Vec<f64> = columns[1].f64().unwrap().into_no_null_iter().collect();
    let z: Vec<f64> = x.iter().map(|v| f64::from(u8::from(*v > 5.0))).collect();
    columns[3] = numbers("z", &z);
    let fit = fitted(&logistic, columns);
    let verdict = check(&fit, 10);
    assert!(
        rules(&verdict).contains(&RegressionRule::Separation),
        "{:?}",
        verdict.hits
    );

    // A target that is not binary.
    let mut columns = clean_columns(0);
    let z: Vec<f64> = (0..200).map(|i| (i % 3) as f64).collect();
    columns[3] = numbers("z", &z);
    let fit = fitted(&logistic, columns);
    assert!(fit.estimates.is_none());
    assert!(rules(&check(&fit, 10)).contains(&RegressionRule::BinaryTarget));

    // A level where every record has outcome 1: its zeros are below the threshold.
    let mut columns = clean_columns(0);
    let g: Vec<String> = columns[2]
        .str()
        .unwrap()
        .into_no_null_iter()
        .map(str::to_owned)
        .collect();
    let z: Vec<f64> = columns[3]
        .f64()
        .unwrap()
        .into_no_null_iter()
        .zip(&g)
        .map(|(z, g)| if g == "c" { 1.0 } else { z })
        .collect();
    columns[3] = numbers("z", &z);
    let verdict = check(&fitted(&logistic, columns), 10);
    assert!(
        verdict
            .hits
            .iter()
            .any(|h| h.rule == RegressionRule::LevelCount
                && h.term.as_deref() == Some("g=c")
                && h.count == Some(0)),
        "{:?}",
        verdict.hits
    );
}

#[test]
fn rows_with_a_null_are_left_out_of_the_fit_and_its_record_set() {
    let mut columns = clean_columns(0);
    let y: Vec<Option<f64>> = columns[0]
        .f64()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(r, v)| if r == 5 || r == 17 { None } else { v })
        .collect();
    columns[0] = Column::new("y".into(), y);
    let model = spec(
        json!({"family": "ols", "target": "y", "features": ["x", "g"],
        "categorical": ["g"]}),
    );
    let fit = fitted(&model, columns);
    assert_eq!(fit.records, 198);
    let sets = fit.record_sets("plain");
    // The rows used, then one set per level.
    assert_eq!(sets.len(), 4);
    let expected = RecordSet::from_ordinals((0..200).filter(|r| *r != 5 && *r != 17));
    assert_eq!(sets[0].set, expected);
    let level_rows: u64 = sets[1..].iter().map(|s| s.set.len()).sum();
    assert_eq!(level_rows, 198);
    assert!(sets.iter().all(|s| s.selection == "plain"));
}

#[tokio::test]
async fn a_regression_is_checked_against_earlier_outputs_as_a_plain_aggregate() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    let mut priors = PriorsInMemory::default();
    let selection = plain_selection(&f.sandbox, "people").await.unwrap();
    // Plain SQL aggregates record their sets under the same fingerprint.
    for sql in [
        "SELECT COUNT(*) AS n FROM people",
        "SELECT sex, AVG(income) AS m FROM people GROUP BY sex",
    ] {
        let out = check_and_run_after(&f.sandbox, sql, &rules, &priors)
            .await
            .unwrap();
        let released = out.record_sets.as_ref().unwrap();
        assert!(
            released.sets.iter().all(|s| s.selection == selection),
            "{sql}"
        );
        priors.add_released(released);
    }

    // OLS of income on sex over every row: the same records as the count and the
    // breakdown, selected the same way, so nothing is too close.
    let model = spec(
        json!({"family": "ols", "table": "people", "target": "income",
        "features": ["sex"], "categorical": ["sex"]}),
    );
    // polars reads Parquet on a runtime of its own: off the test's runtime, as the
    // engine does (`spawn_blocking`).
    let (fit_model, path) = (model.clone(), f.path());
    let fit = tokio::task::spawn_blocking(move || {
        fit_parquet(&fit_model, &path, &pdx_seal::AtRest::Plain)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(fit.records, 200);
    let sets = fit.record_sets(&selection);
    let verdict = check_sets_after(&sets, &priors, "people", Some(200), rules.threshold)
        .await
        .unwrap();
    assert_eq!(verdict.close, vec![false; sets.len()]);

    // The same model with person 42's income missing reads every row but one: too
    // close to the count (and its level to the breakdown), whichever came first.
    let mut frame = read_parquet(&f.path(), &pdx_seal::AtRest::Plain).unwrap();
    let income: Vec<Option<i64>> = frame
        .column("income")
        .unwrap()
        .i64()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(r, v)| if r == 41 { None } else { v })
        .collect();
    frame
        .with_column(Column::new("income".into(), income))
        .unwrap();
    let fit = fit_frame(&model, &frame).unwrap();
    assert_eq!(fit.records, 199);
    let sets = fit.record_sets(&selection);
    let verdict = check_sets_after(&sets, &priors, "people", Some(200), rules.threshold)
        .await
        .unwrap();
    assert!(verdict.close[0], "{:?}", verdict.close);
    // And the other way round: the regression first, then the count.
    let earlier = PriorsInMemory::new(sets);
    let count = TrackedSet {
        set: RecordSet::all(200),
        selection,
    };
    let later = check_sets_after(&[count], &earlier, "people", Some(200), rules.threshold)
        .await
        .unwrap();
    assert_eq!(later.close, [true]);
}
