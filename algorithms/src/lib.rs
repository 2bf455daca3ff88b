//! # pdx-algorithms: what runs inside the sandbox
//!
//! Pure compute, no database and no HTTP. This crate owns every heavy dependency of pdx
//! (polars, OpenDP, DataFusion, TFHE-rs) so that the rest of the workspace builds fast.
//!
//! Planned layout (filled by the catalog, sandbox and FHE issues):
//! - `deid`: de-identification as polars `LazyFrame` transforms (drop, keyed BLAKE3
//!   pseudonyms, masking of Chinese identifiers, hierarchy generalisation) and a
//!   k-anonymity lattice search with risk metrics;
//! - `sql`: DataFusion engine with a bounded memory pool and read-only SQL options;
//! - `dp`: restricted DP SQL translated to OpenDP `make_private_lazyframe` plans;
//! - `disclosure`: threshold, dominance and rounding rules over aggregate outputs;
//! - `fhe`: TFHE-rs encrypted lookups (templates, client, server evaluator).
//!
//! Versions are pinned together in the workspace: `opendp 0.16` pins `polars =0.52.0`
//! and `chrono =0.4.41`, which holds DataFusion at 50.x.

pub mod bench;
pub mod deid;
pub mod disclosure;
pub mod dp;
pub mod fhe;
pub mod sql;
