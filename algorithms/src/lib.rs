//! # pdx-algorithms: what runs inside the sandbox
//!
//! Pure compute, no database and no HTTP. This crate owns every heavy dependency of pdx
//! (polars, OpenDP, DataFusion, TFHE-rs) so that the rest of the workspace builds fast.
//!
//! Layout:
//! - [`deid`]: upload parsing and validation, de-identification as polars `LazyFrame`
//!   transforms (drop, keyed BLAKE3 pseudonyms, masking of Chinese identifiers,
//!   hierarchy generalisation), a k-anonymity lattice search with risk metrics,
//!   content-addressed Parquet storage and dummy data;
//! - [`sql`]: the DataFusion engine over granted columns, with a bounded memory pool,
//!   read-only SQL options, sanitised errors and row ordinals for record sets;
//! - [`disclosure`]: automatic disclosure control of aggregate SQL (threshold,
//!   dominance, rounding, secondary suppression of tables with totals, differencing
//!   within and across outputs through record sets, no outcome oracles);
//! - [`dp`]: restricted DP SQL translated to OpenDP `make_private_lazyframe` plans;
//! - [`regression`]: OLS and logistic regression over polars columns, with ACRO-style
//!   output checks (residual degrees of freedom, records per level, saturation,
//!   separation) and the record sets of the rows used;
//! - [`fhe`]: TFHE-rs encrypted lookups (templates, client, server evaluator) and
//!   signed consent to them;
//! - [`bench`]: generated data and baselines for `pdx bench`;
//! - [`fuzzing`]: the bodies of the heavy cargo-fuzz targets (`fuzz/`), which this
//!   crate's tests replay over the committed inputs.
//!
//! The polars frame types in these signatures are re-exported ([`DataFrame`],
//! [`LazyFrame`]), so callers can name them without depending on polars.
//!
//! Versions are pinned together in the workspace: `opendp 0.16` pins `polars =0.52.0`
//! and `chrono =0.4.41`, which holds DataFusion at 50.x.

pub mod bench;
pub mod deid;
pub mod disclosure;
pub mod dp;
pub mod fhe;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod regression;
pub mod sql;

/// The frame types results come in (and lazy scans go in), re-exported from polars.
pub use polars::prelude::{DataFrame, LazyFrame};
