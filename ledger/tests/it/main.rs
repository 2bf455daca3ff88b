//! The ledger's one integration-test binary; each area is a module.
mod canonical;
mod fuzz_corpus;
mod group;
mod note;
mod processes;
mod store;
mod support;
mod tamper;
mod vectors;
mod witness;
