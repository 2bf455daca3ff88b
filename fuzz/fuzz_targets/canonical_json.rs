//! Canonical JSON (RFC 8785) on arbitrary bytes; the body and its properties are
//! `pdx_ledger::fuzzing::canonical_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pdx_ledger::fuzzing::canonical_json(data);
});
