//! Engines: how each kind of model is admitted and run.
//!
//! A run reads top-down as admission → budget → engine → quarantine (`runs`). The
//! engine is the one part that depends on the model's kind:
//!
//! 1. [`Engine::admit`] checks the model against the granted inputs *before* anything
//!    is spent, so a refused shape is a synchronous 4xx that costs no budget; it
//!    returns the checked model ([`AdmittedModel`]).
//! 2. [`AdmittedModel::run`] runs it inside the run's job and hands back an
//!    [`EngineOutput`] for quarantine.
//!
//! A new model kind is one new file here and one arm in [`engine_for`].
//!
//! | kind | file | admission | run |
//! |---|---|---|---|
//! | `sql` | [`sql`] | plans the text over the granted columns; on conditional data, the disclosure checks of the plan | DataFusion, with automatic disclosure control and record sets on conditional data |
//! | `dp` | [`dp`] | plans the restricted SQL as an OpenDP measurement at the requested ε and δ | OpenDP over polars |
//! | `fhe` | [`fhe`] | refused: private lookups run through vetted query templates | — |
//! | `regression` | [`regression`] | parses the JSON spec; granted, non-identifying columns of the right kinds | OLS or logistic over polars, ACRO-style checks, record sets on conditional data |

use async_trait::async_trait;
use pdx_algorithms::DataFrame;
use pdx_algorithms::disclosure::ReleasedSets;
use pdx_ids::{JobId, OrgId, VersionRef};
use pdx_ledger::Actor;

use crate::Result;
use crate::grants::{ModelKind, PrivacyCost};
use crate::models::Model;
use crate::runs::{ResolvedInput, Runs};

pub(crate) mod dp;
pub(crate) mod fhe;
pub(crate) mod regression;
pub(crate) mod sql;

/// What a model's run produced, for quarantine.
pub(crate) struct EngineOutput {
    /// The output table.
    pub frame: DataFrame,
    /// The check report (reviewers see all of it, the developer a redacted view).
    pub report: serde_json::Value,
    /// The record sets of the values, with the dataset version they index
    /// (`dataset_id@version`), for runs on conditional data.
    pub released_sets: Option<(VersionRef, ReleasedSets)>,
    /// Held until the output and its record sets are stored, so that two runs of one
    /// organisation on one version are checked against each other (see `record_sets`).
    pub record_locks: crate::record_sets::RecordLocks,
}

impl EngineOutput {
    /// An output without record sets.
    pub fn plain(frame: DataFrame, report: serde_json::Value) -> EngineOutput {
        EngineOutput {
            frame,
            report,
            released_sets: None,
            record_locks: Default::default(),
        }
    }
}

/// The run an admitted model belongs to.
pub(crate) struct RunContext<'a> {
    /// The run's job.
    pub job_id: &'a JobId,
    /// Who started it.
    pub actor: &'a Actor,
    /// Its organisation (the actor's).
    pub org: &'a OrgId,
    /// The model.
    pub model: &'a Model,
    /// Its inputs, as resolved at admission.
    pub inputs: &'a [ResolvedInput],
}

/// How one kind of model is admitted.
#[async_trait]
pub(crate) trait Engine: Send + Sync {
    /// Checks `model` against the granted `inputs` at the requested privacy `cost`,
    /// before anything is spent; a refusal is the caller's to fix (4xx, precise).
    async fn admit(
        &self,
        runs: &Runs,
        model: &Model,
        inputs: &[ResolvedInput],
        cost: PrivacyCost,
    ) -> Result<Box<dyn AdmittedModel>>;
}

/// A model checked at admission, ready to run in its job.
#[async_trait]
pub(crate) trait AdmittedModel: Send {
    /// Runs the model. On conditional data a failure here may depend on the records,
    /// so engines turn such failures into an output for reviewers, never a precise
    /// error for the developer.
    async fn run(self: Box<Self>, runs: &Runs, run: &RunContext<'_>) -> Result<EngineOutput>;
}

/// The engine of a model kind.
pub(crate) fn engine_for(kind: ModelKind) -> &'static dyn Engine {
    match kind {
        ModelKind::Sql => &sql::SqlEngine,
        ModelKind::Dp => &dp::DpEngine,
        ModelKind::Fhe => &fhe::TemplatesOnly,
        ModelKind::Regression => &regression::RegressionEngine,
    }
}
