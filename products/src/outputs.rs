//! What this crate needs to know about released outputs, declared as a trait that the
//! binary implements once.
//!
//! This crate depends on neither the sandbox nor the binary's accounts. A product's
//! sources come from a [`ReleasedOutputs`] the caller passes in; the binary's one
//! implementation reads the sandbox's release provenance and each provider's region
//! from its organisation. Tests and tools that build [`ReleasedSource`]s themselves call
//! [`Products::create_product`] and [`Products::list`] directly.
//!
//! Two calls consult it:
//!
//! - [`Products::package_releases`]: the developer names released outputs (at least
//!   one, at most 64), each by its release id or by its output id ([`ReleaseRef`]);
//!   they are resolved, in order, to [`ReleasedSource`]s (the implementation refuses
//!   an unknown output, another developer's or one not released), and then
//!   [`Products::create_product`] checks and stores the product.
//! - [`Products::list_unless_suspended`]: the exchange lists a product after review,
//!   unless its developer organisation is suspended
//!   ([`ProductsError::DeveloperSuspended`]). A suspension delists the developer's
//!   products, and they may not be listed again until the organisation is reinstated.
//!
//! The implementation's errors come back unchanged in [`OutputsError::Outputs`], so the
//! binary answers them as it would its own.

use async_trait::async_trait;
use pdx_ids::{OrgId, ProductId, ReleaseRef};
use pdx_ledger::Actor;

use crate::Products;
use crate::catalog::MAX_SOURCES;
use crate::error::ProductsError;
use crate::model::{NewProduct, Product, ReleasedSource};
use crate::rows::actor_org;

/// What products needs to know about released outputs and their developers.
#[async_trait]
pub trait ReleasedOutputs: Send + Sync {
    /// The implementation's own error, handed back in [`OutputsError::Outputs`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// The released outputs named by `releases`, in that order, as `developer_org`
    /// packages them: output and model hashes, the output's path, the reviewers,
    /// whether the grant was research-only, and the source datasets with their
    /// provider regions. An unknown output, another developer's, or one that was not
    /// released is an error.
    async fn released_sources(
        &self,
        developer_org: &OrgId,
        releases: &[ReleaseRef],
    ) -> Result<Vec<ReleasedSource>, Self::Error>;

    /// True if the developer organisation is suspended (an unknown one is not).
    async fn developer_suspended(&self, org: &OrgId) -> Result<bool, Self::Error>;
}

/// A failure of a call that consults [`ReleasedOutputs`]: theirs, or this crate's.
#[derive(Debug, thiserror::Error)]
pub enum OutputsError<E> {
    /// The released outputs refused or failed; their error, unchanged.
    #[error(transparent)]
    Outputs(E),
    /// This crate refused or failed.
    #[error(transparent)]
    Products(#[from] ProductsError),
}

impl Products {
    /// Creates a product, pending review, from the developer's released outputs named
    /// by id: resolves them through `outputs`, then as [`Products::create_product`].
    pub async fn package_releases<R>(
        &self,
        developer: &Actor,
        new: NewProduct,
        releases: &[ReleaseRef],
        outputs: &R,
    ) -> Result<Product, OutputsError<R::Error>>
    where
        R: ReleasedOutputs + ?Sized,
    {
        // The same limits as `create_product`, checked before any lookup.
        if releases.is_empty() {
            return Err(ProductsError::Invalid(
                "a product needs at least one released output".into(),
            )
            .into());
        }
        if releases.len() > MAX_SOURCES {
            return Err(ProductsError::Invalid(format!(
                "a product takes at most {MAX_SOURCES} released outputs"
            ))
            .into());
        }
        let developer_org = actor_org(developer)?;
        let sources = outputs
            .released_sources(&developer_org, releases)
            .await
            .map_err(OutputsError::Outputs)?;
        Ok(self.create_product(developer, new, sources).await?)
    }

    /// Lists a product after review (exchange), as [`Products::list`], unless its
    /// developer organisation is suspended ([`ProductsError::DeveloperSuspended`]).
    pub async fn list_unless_suspended<R>(
        &self,
        exchange: &Actor,
        product_id: &ProductId,
        outputs: &R,
    ) -> Result<Product, OutputsError<R::Error>>
    where
        R: ReleasedOutputs + ?Sized,
    {
        let pending = self.product(product_id).await?;
        let suspended = outputs
            .developer_suspended(&pending.developer_org)
            .await
            .map_err(OutputsError::Outputs)?;
        if suspended {
            return Err(ProductsError::DeveloperSuspended {
                org: pending.developer_org,
            }
            .into());
        }
        Ok(self.list(exchange, product_id).await?)
    }
}
