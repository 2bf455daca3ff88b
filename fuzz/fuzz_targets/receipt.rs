//! Offline receipts on arbitrary bytes; the body and its properties are
//! `pdx_ledger::fuzzing::receipt`.
#![no_main]

use std::sync::LazyLock;

use pdx_ledger::fuzzing::{self, Fixture};

static FIXTURE: LazyLock<Fixture> =
    LazyLock::new(|| Fixture::new().expect("the ledger fuzz fixture builds"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::receipt(&FIXTURE, data);
});
