//! What rows may leave, and to whom.
//!
//! - **Dummy data**: synthetic rows in the shape of the de-identified output, drawn
//!   from the declared domains and hierarchies by [`pdx_algorithms::deid::dummy`], which
//!   takes no data input at all, so a real row cannot leak through it. Every
//!   authenticated role gets them for unconditionally and conditionally open datasets.
//!   For a not-open dataset (不予开放, SD22 Art.8; GD21 Art.32) only its provider and
//!   supervisors do ([`Reader`]); everyone else is refused by
//!   [`Dataset::reachable_by_developers`], though its catalog entry, schema and version
//!   metadata stay visible to all. An entry the data authority has not published is
//!   refused by the same check, except to its provider and supervisors (GD21
//!   Art.10–11).
//! - **De-identified downloads**, only for datasets whose open attribute is
//!   *unconditional* (SD22 Art.8). Conditional datasets are reachable only through
//!   sandbox models, whose outputs are vetted before release; not-open datasets not at
//!   all (they are opened only as a de-identified derivative with its own certificate).
//!
//! Raw data never leaves: no function here reads the raw zone.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pdx_algorithms::DataFrame;
use pdx_algorithms::deid::dummy::dummy_frame;
use pdx_algorithms::deid::storage::read_parquet;
use pdx_ids::OrgId;

use crate::catalog::{Dataset, OpenAttribute};
use crate::{Result, SandboxError};

crate::service! {
    /// Who may see which rows: dummy data and de-identified downloads.
    Access
}

/// The most dummy rows one request may ask for.
pub const MAX_DUMMY_ROWS: usize = 10_000;

/// Who asks for a dataset's dummy rows, as the caller's role and organisation decide
/// (the HTTP layer maps its principal onto this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader<'a> {
    /// An organisation with the provider role: the datasets it provides are its own,
    /// and it keeps their dummy rows whatever their open attribute.
    Provider(&'a OrgId),
    /// A supervisor (regulator or auditor): every dataset's dummy rows.
    Supervisor,
    /// A developer, and every other caller (deny by default): bound by the open
    /// attribute through [`Dataset::reachable_by_developers`].
    Developer,
}

impl Reader<'_> {
    /// Whether this reader may see rows generated from `dataset`'s schema.
    fn may_see_dummy(self, dataset: &Dataset) -> Result<()> {
        match self {
            Reader::Supervisor => Ok(()),
            Reader::Provider(org) if *org == dataset.provider_org => Ok(()),
            Reader::Provider(_) | Reader::Developer => dataset.reachable_by_developers(),
        }
    }
}

impl Access {
    /// Synthetic rows for a dataset, in the shape of its latest version (or of the
    /// declared schema at level 0 before any version exists). A not-open dataset's rows
    /// only for its provider and supervisors (see [`Reader`]).
    pub async fn dummy(
        &self,
        dataset: &Dataset,
        rows: usize,
        seed: u64,
        reader: Reader<'_>,
    ) -> Result<DataFrame> {
        // A destroyed dataset's rows are generated for nobody, its provider included
        // (GD21 Art.40; a 409 before the reader's own rule).
        dataset.not_destroyed()?;
        reader.may_see_dummy(dataset)?;
        if rows == 0 || rows > MAX_DUMMY_ROWS {
            return Err(SandboxError::Invalid(format!(
                "rows must be between 1 and {MAX_DUMMY_ROWS}"
            )));
        }
        let levels: Option<BTreeMap<String, u8>> = match dataset.latest_version {
            Some(v) => self
                .versions()
                .version(&dataset.id, v)
                .await?
                .and_then(|v| v.report.get("levels").cloned())
                .and_then(|levels| serde_json::from_value(levels).ok()),
            None => None,
        };
        let schema = dataset.meta.schema.clone();
        tokio::task::spawn_blocking(move || dummy_frame(&schema, levels.as_ref(), rows, seed))
            .await
            .map_err(|e| SandboxError::Internal(format!("dummy data task: {e}")))?
            .map_err(|e| SandboxError::Invalid(format!("dummy data: {e}")))
    }

    /// The certified Parquet file of a version, for unconditionally open datasets only
    /// (for everyone, the provider included: it holds its data already). A not-open
    /// dataset is refused with the not-open rule's own message.
    pub async fn download_path(&self, dataset: &Dataset, version: u64) -> Result<PathBuf> {
        dataset.reachable_by_developers()?;
        if dataset.effective_open_attribute != OpenAttribute::Unconditional {
            return Err(SandboxError::Forbidden(
                "only unconditionally open datasets can be downloaded; use the sandbox for this one"
                    .into(),
            ));
        }
        self.versions().version_file(&dataset.id, version).await
    }

    /// The de-identified rows of a version, for unconditionally open datasets only.
    pub async fn download(&self, dataset: &Dataset, version: u64) -> Result<DataFrame> {
        let path = self.download_path(dataset, version).await?;
        let at_rest = self.zones().at_rest().clone();
        tokio::task::spawn_blocking(move || read_parquet(&path, &at_rest))
            .await
            .map_err(|e| SandboxError::Internal(format!("download task: {e}")))?
            .map_err(|e| SandboxError::Internal(format!("reading a version: {e}")))
    }
}
