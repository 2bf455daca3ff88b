//! DP models: restricted SQL planned as an OpenDP measurement over polars
//! (`pdx_algorithms::dp`). The plan made at admission, at the requested ε and δ, is
//! the one that runs, so what was charged is what is spent.

use std::path::PathBuf;

use async_trait::async_trait;
use pdx_algorithms::dp::{DpPlan, plan as dp_plan, run_parquet as dp_run_parquet};
use pdx_seal::AtRest;

use super::{AdmittedModel, Engine, EngineOutput, RunContext};
use crate::grants::PrivacyCost;
use crate::models::Model;
use crate::runs::{ResolvedInput, Runs};
use crate::{Result, SandboxError};

/// The DP engine.
pub(crate) struct DpEngine;

/// A DP model planned at admission over its one input.
struct AdmittedDp {
    /// The OpenDP plan.
    plan: DpPlan,
    /// The certified version it reads.
    path: PathBuf,
    /// How that file is kept.
    at_rest: AtRest,
}

#[async_trait]
impl Engine for DpEngine {
    async fn admit(
        &self,
        runs: &Runs,
        model: &Model,
        inputs: &[ResolvedInput],
        cost: PrivacyCost,
    ) -> Result<Box<dyn AdmittedModel>> {
        let [input] = inputs else {
            return Err(SandboxError::Invalid(
                "a DP model reads exactly one dataset".into(),
            ));
        };
        let table = runs.dp_table(input).await?;
        let plan = dp_plan(&model.body, &table, cost.epsilon(), cost.delta())?;
        Ok(Box::new(AdmittedDp {
            plan,
            path: input.path.clone(),
            at_rest: input.at_rest.clone(),
        }))
    }
}

#[async_trait]
impl AdmittedModel for AdmittedDp {
    async fn run(self: Box<Self>, _runs: &Runs, _run: &RunContext<'_>) -> Result<EngineOutput> {
        let AdmittedDp {
            plan,
            path,
            at_rest,
        } = *self;
        let out = tokio::task::spawn_blocking(move || {
            dp_run_parquet(&plan, &path, &at_rest).map_err(SandboxError::from)
        })
        .await
        .map_err(|e| SandboxError::Internal(format!("dp task: {e}")))??;
        let report = serde_json::json!({
            "checks": ["differential_privacy", "budget_within_grant"],
            "epsilon": out.epsilon_spent,
            "delta": out.delta_spent,
            "accuracy": out.accuracy,
        });
        Ok(EngineOutput::plain(out.frame, report))
    }
}
