//! The non-private baseline: the same query answered exactly by plain polars.
//!
//! Benchmarks compare a DP run (`run`) with this (same input casting and WHERE filter, then
//! a plain `group_by().agg()` with `len`, `count`, `sum`, `mean` and a nearest-rank
//! `quantile`; no clipping, no noise, no key join, no threshold). Its output columns have
//! the same names as the DP release, so the two frames can be joined on the keys to
//! measure the error. Never release this frame: it is the exact, sensitive answer.

use polars::prelude::*;

use super::DpError;
use super::engine::DpPlan;
use super::query::{Aggregate, Item};

/// Answers `plan`'s query over `frame` exactly (not private; for comparison only).
pub fn baseline(plan: &DpPlan, frame: LazyFrame) -> Result<DataFrame, DpError> {
    let query = plan.query();
    let mut lf = plan.cast_input(frame);
    if let Some(p) = &query.filter {
        lf = lf.filter(plan.pred_expr(p)?);
    }
    let mut keys = Vec::new();
    let mut aggs = Vec::new();
    let mut outputs = Vec::new();
    for item in &query.items {
        match item {
            Item::Key { column, output } => {
                outputs.push(col(column.as_str()).alias(output.as_str()));
                keys.push(output.as_str());
            }
            Item::Agg { agg, output } => {
                let expr = match agg {
                    Aggregate::CountAll => len().cast(DataType::Int64),
                    Aggregate::Count(c) => col(c.as_str()).count().cast(DataType::Int64),
                    Aggregate::Sum(c) => col(c.as_str()).sum(),
                    Aggregate::Avg(c) => col(c.as_str()).mean(),
                    Aggregate::Quantile(c, p) => {
                        col(c.as_str()).quantile(lit(*p), QuantileMethod::Nearest)
                    }
                };
                let internal = format!("__pdx_exact_{}", aggs.len());
                aggs.push(expr.alias(internal.as_str()));
                outputs.push(col(internal.as_str()).alias(output.as_str()));
            }
        }
    }
    let lf = if query.group_by.is_empty() {
        lf.select(aggs).select(outputs)
    } else {
        let group: Vec<Expr> = query.group_by.iter().map(|k| col(k.as_str())).collect();
        let mut grouped = lf.group_by(group).agg(aggs).select(outputs);
        if !keys.is_empty() {
            grouped = grouped.sort(keys, SortMultipleOptions::default());
        }
        grouped
    };
    lf.collect().map_err(|_| DpError::Execution {
        stage: "running the baseline",
        detail: String::new(),
    })
}
