//! SQL models on DataFusion over the granted columns (`pdx_algorithms::sql`).
//!
//! On conditional data, admission plans the text and runs the plan-level disclosure
//! checks; the run applies automatic disclosure control with record sets checked
//! against the organisation's earlier outputs on the same version
//! (`pdx_algorithms::disclosure`), holding the organisation's record-set locks until
//! the output is stored. A failure after admission may depend on the records, so it
//! becomes an empty output whose report only reviewers read in full. On
//! unconditionally open data the query runs as it is.

use async_trait::async_trait;
use pdx_algorithms::disclosure::{DisclosureRules, check_and_run_after, check_query};
use pdx_algorithms::sql::SqlSandbox;
use pdx_ids::VersionRef;

use super::{AdmittedModel, Engine, EngineOutput, RunContext};
use crate::Result;
use crate::grants::PrivacyCost;
use crate::models::Model;
use crate::record_sets::PriorSets;
use crate::runs::{
    ResolvedInput, Runs, failed_run_frame, failed_run_report, internal, output_to_frame,
};

/// The SQL engine.
pub(crate) struct SqlEngine;

/// A SQL model as admitted: the engine over the granted columns and, for conditional
/// inputs, the disclosure rules it was checked under.
struct AdmittedSql {
    /// DataFusion over the granted columns of the granted versions.
    engine: SqlSandbox,
    /// The rules, on conditional data.
    rules: Option<DisclosureRules>,
}

#[async_trait]
impl Engine for SqlEngine {
    async fn admit(
        &self,
        runs: &Runs,
        model: &Model,
        inputs: &[ResolvedInput],
        _cost: PrivacyCost,
    ) -> Result<Box<dyn AdmittedModel>> {
        let engine = runs.sql_engine(inputs).await?;
        let rules = runs.disclosure_rules_for(inputs).await?;
        match &rules {
            Some(rules) => {
                check_query(&engine, &model.body, rules).await?;
            }
            None => {
                engine.plan(&model.body).await?;
            }
        }
        Ok(Box::new(AdmittedSql { engine, rules }))
    }
}

#[async_trait]
impl AdmittedModel for AdmittedSql {
    async fn run(self: Box<Self>, runs: &Runs, run: &RunContext<'_>) -> Result<EngineOutput> {
        let AdmittedSql { engine, rules } = *self;
        let Some(rules) = rules else {
            let out = engine.run(&run.model.body).await?;
            let report = serde_json::json!({"checks": ["unconditional_open_source"]});
            return Ok(EngineOutput::plain(output_to_frame(&out)?, report));
        };
        let conditional: Vec<(String, VersionRef)> = run
            .inputs
            .iter()
            .filter(|i| i.grant.is_some())
            .map(|i| (i.table.clone(), i.cited()))
            .collect();
        let versions: Vec<VersionRef> = conditional.iter().map(|(_, v)| v.clone()).collect();
        let record_locks = runs
            .record_locks()
            .lock(runs.db(), run.org, &versions, runs.config().run_timeout)
            .await?;
        let priors = PriorSets::new(
            runs.db().clone(),
            runs.record_unions(),
            run.org,
            conditional,
        );
        match check_and_run_after(&engine, &run.model.body, &rules, &priors).await {
            Ok(checked) => {
                let released_sets = checked.record_sets.and_then(|released| {
                    let version = run
                        .inputs
                        .iter()
                        .find(|i| i.grant.is_some() && i.table == released.table)?
                        .cited();
                    Some((version, released))
                });
                Ok(EngineOutput {
                    frame: output_to_frame(&checked.output)?,
                    report: serde_json::to_value(&checked.report).map_err(internal)?,
                    released_sets,
                    record_locks,
                })
            }
            Err(e) => {
                // Admission planned and checked this text already, so this failure may
                // depend on the records: reviewers only.
                tracing::warn!(job_id = %run.job_id, error = %e, "a run on conditional data failed after admission");
                Ok(EngineOutput {
                    frame: failed_run_frame()?,
                    report: failed_run_report(&rules, &e),
                    released_sets: None,
                    record_locks,
                })
            }
        }
    }
}
