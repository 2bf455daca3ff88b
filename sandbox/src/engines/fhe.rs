//! Models of kind `fhe` are not run as models: a private lookup is an encrypted query
//! against a query template its provider vetted (`crate::fhe`), so admission refuses
//! them and says where to go.

use async_trait::async_trait;

use super::{AdmittedModel, Engine};
use crate::grants::PrivacyCost;
use crate::models::Model;
use crate::runs::{ResolvedInput, Runs};
use crate::{Result, SandboxError};

/// The refusal of FHE models.
pub(crate) struct TemplatesOnly;

#[async_trait]
impl Engine for TemplatesOnly {
    async fn admit(
        &self,
        _runs: &Runs,
        _model: &Model,
        _inputs: &[ResolvedInput],
        _cost: PrivacyCost,
    ) -> Result<Box<dyn AdmittedModel>> {
        Err(SandboxError::Invalid(
            "FHE lookups run through query templates (POST /v1/fhe/queries), not as models".into(),
        ))
    }
}
