//! Integration tests of `pdx-algorithms`: one test binary, one module per area.

mod deid_adult;
mod deid_common;
mod deid_identifiers;
mod deid_ingest;
mod deid_metrics;
mod deid_pipeline;
mod disclosure;
mod disclosure_across;
mod disclosure_attacks;
mod disclosure_tables;
mod dp;
mod fhe;
mod fuzz_corpus;
mod regression;
mod sql;
