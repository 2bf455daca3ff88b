//! What rows may leave, and to whom.
//!
//! - **Dummy data**, for every dataset and every authenticated role: synthetic rows in
//!   the shape of the de-identified output, drawn from the declared domains and
//!   hierarchies by [`pdx_algorithms::deid::dummy`], which takes no data input at all,
//!   so a real row cannot leak through it.
//! - **De-identified downloads**, only for datasets whose open attribute is
//!   *unconditional* (SD22 Art.8). Conditional and not-open datasets are reachable only
//!   through sandbox models, whose outputs are vetted before release.
//!
//! Raw data never leaves: no function here reads the raw zone.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pdx_algorithms::deid::dummy::dummy_frame;
use pdx_algorithms::deid::storage::read_parquet;
use polars::prelude::DataFrame;

use crate::catalog::{Dataset, OpenAttribute};
use crate::{Result, SandboxError};

crate::service! {
    /// Who may see which rows: dummy data and de-identified downloads.
    Access
}

/// The most dummy rows one request may ask for.
pub const MAX_DUMMY_ROWS: usize = 10_000;

impl Access {
    /// Synthetic rows for a dataset, in the shape of its latest version (or of the
    /// declared schema at level 0 before any version exists).
    pub async fn dummy(&self, dataset: &Dataset, rows: usize, seed: u64) -> Result<DataFrame> {
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

    /// The certified Parquet file of a version, for unconditionally open datasets only.
    pub async fn download_path(&self, dataset: &Dataset, version: u64) -> Result<PathBuf> {
        if dataset.meta.open_attribute != OpenAttribute::Unconditional {
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
        tokio::task::spawn_blocking(move || read_parquet(&path))
            .await
            .map_err(|e| SandboxError::Internal(format!("download task: {e}")))?
            .map_err(|e| SandboxError::Internal(format!("reading a version: {e}")))
    }
}
