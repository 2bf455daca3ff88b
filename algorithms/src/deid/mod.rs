//! De-identification: from a validated upload to a certified, k-anonymous Parquet file.
//!
//! Data flow, top-down:
//! 1. [`ingest`] parses CSV (UTF-8 or GBK, any single-byte delimiter) or Parquet and
//!    validates it against the declared [`schema::DatasetSchema`]. Errors name the
//!    column and row, never the value.
//! 2. [`pipeline::deidentify`] applies the per-column rules: drop, keyed pseudonyms
//!    ([`pseudonym`]), identifier masks ([`mask`]), top/bottom coding, and for
//!    quasi-identifiers the generalisation ladders of [`generalise`].
//! 3. [`lattice`] searches the generalisation lattice for the least-lossy node that is
//!    k-anonymous (and l-diverse) within the suppression limit, with Flash/OLA-style
//!    predictive tagging so most nodes are never evaluated.
//! 4. [`risk`] measures re-identification risk and information loss of the result.
//! 5. [`storage`] writes the result as Parquet and content-addresses it by BLAKE3.
//!
//! [`released`] says what each column of a certified version holds (bands, labels),
//! from the schema and the chosen levels, so filters can be written that match.
//! [`dummy`] draws synthetic rows from the declared domains and hierarchies, never
//! from real rows, so developers can write models against the real shape.

pub mod baseline;
pub mod dummy;
pub mod generalise;
pub mod ingest;
pub mod lattice;
pub mod mask;
pub mod parquet_check;
pub mod pipeline;
pub mod pseudonym;
pub mod released;
pub mod risk;
pub mod schema;
pub mod storage;

/// The frame type every stage passes on (polars, re-exported so callers need not
/// depend on polars to name it).
pub use polars::prelude::DataFrame;
