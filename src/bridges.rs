//! Bridges between crates that do not know each other. A crate declares what it needs
//! from another as a trait; the application implements it here, once, and hands it to
//! the crate's calls. The HTTP handlers only pass it along.
//!
//! - [`SandboxReleases`] is `pdx_products`' view of released outputs
//!   ([`pdx_products::ReleasedOutputs`]): each release's provenance from the sandbox
//!   ([`pdx_sandbox::provenance::Provenance::release_provenance`], which refuses an
//!   unknown output, another developer's and one not released; a release named by its
//!   output id is asked for by that id), and from the accounts
//!   each dataset's provider region (its public finance receives the provider share)
//!   and whether a developer organisation is suspended. The kind of each release's
//!   grant purpose is passed on, so that the products crate fits the licence to it.

use std::collections::HashMap;

use async_trait::async_trait;
use pdx_ids::OrgId;
use pdx_ledger::Hash32;
use pdx_products::{GrantPurpose, ReleaseRef, ReleasedOutputs, ReleasedSource, SourceDataset};
use pdx_sandbox::{Sandbox, SandboxError};

use crate::accounts::{AccountError, Accounts};

/// Why a bridge could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The sandbox refused (its message is safe to show) or failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Reading an organisation failed.
    #[error(transparent)]
    Accounts(#[from] AccountError),
    /// Stored data does not have the expected shape (the server's fault).
    #[error("{0}")]
    Internal(&'static str),
}

/// Released outputs as the products crate needs them, over the sandbox and the accounts.
#[derive(Clone)]
pub struct SandboxReleases {
    sandbox: Sandbox,
    accounts: Accounts,
}

impl SandboxReleases {
    /// The bridge over this sandbox and these accounts.
    pub fn new(sandbox: Sandbox, accounts: Accounts) -> SandboxReleases {
        SandboxReleases { sandbox, accounts }
    }
}

/// A hash the sandbox stored as hex.
fn hash32(hex: &str) -> Result<Hash32, BridgeError> {
    Hash32::from_hex(hex).map_err(|_| BridgeError::Internal("a stored hash is not 32 bytes of hex"))
}

#[async_trait]
impl ReleasedOutputs for SandboxReleases {
    type Error = BridgeError;

    async fn released_sources(
        &self,
        developer_org: &OrgId,
        releases: &[ReleaseRef],
    ) -> Result<Vec<ReleasedSource>, BridgeError> {
        // Provider organisation → region, each read once per call.
        let mut regions: HashMap<OrgId, String> = HashMap::new();
        let mut out = Vec::with_capacity(releases.len());
        for release in releases {
            let p = self
                .sandbox
                .provenance()
                .release_provenance(release, developer_org)
                .await?;
            let mut datasets = Vec::with_capacity(p.datasets.len());
            for d in p.datasets {
                let region = match regions.get(&d.provider_org) {
                    Some(r) => r.clone(),
                    None => {
                        let org = self.accounts.org(&d.provider_org).await?.ok_or(
                            BridgeError::Internal(
                                "a dataset's provider organisation does not exist",
                            ),
                        )?;
                        regions.insert(d.provider_org.clone(), org.region.clone());
                        org.region
                    }
                };
                datasets.push(SourceDataset {
                    dataset_id: d.dataset_id,
                    title: d.title,
                    source_department: d.source_department,
                    provider_org: d.provider_org,
                    provider_region: region,
                    certificate_no: d.certificate_no,
                    content_hash: hash32(&d.content_hash)?,
                    acquired: d.acquired,
                    research_only: d.research_only,
                });
            }
            // An unknown kind is our own stored value gone wrong: fail closed.
            let grant_purpose = p
                .grant_purpose
                .as_deref()
                .map(|kind| {
                    GrantPurpose::parse(kind)
                        .ok_or(BridgeError::Internal("a grant's purpose kind is unknown"))
                })
                .transpose()?;
            out.push(ReleasedSource {
                release_id: p.release_id,
                developer_org: p.developer_org,
                output_hash: hash32(&p.output_hash)?,
                output_path: p.output_path,
                model_hash: hash32(&p.model_hash)?,
                reviewers: p.reviewers,
                research_only_grant: p.research_only_grant,
                grant_purpose,
                datasets,
            });
        }
        Ok(out)
    }

    async fn developer_suspended(&self, org: &OrgId) -> Result<bool, BridgeError> {
        Ok(self.accounts.org(org).await?.is_some_and(|o| o.suspended))
    }
}
