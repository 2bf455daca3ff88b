//! Integration tests of `pdx-algorithms`: one test binary, one module per area.

mod deid_adult;
mod deid_common;
mod deid_identifiers;
mod deid_pipeline;
mod disclosure;
mod dp;
mod fhe;
mod sql;
