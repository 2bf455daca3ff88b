//! The FHE request bodies (ciphertexts, server keys, templates, consent openings) on
//! arbitrary bytes (needs `--features heavy`); the body and its properties are
//! `pdx_algorithms::fuzzing::fhe_request`.
#![no_main]

use std::sync::LazyLock;

use pdx_algorithms::fuzzing::{self, FheFixture};

static FIXTURE: LazyLock<FheFixture> = LazyLock::new(|| {
    // libfuzzer-sys installs a panic hook that aborts on every panic, even one the code
    // catches. The server catches TFHE-rs panics during deserialisation on purpose (a
    // hostile ciphertext is a 4xx, not a crashed worker), so the default hook is put
    // back: a panic nothing catches still aborts, at the edge of the target.
    drop(std::panic::take_hook());
    FheFixture::new().expect("the FHE fuzz fixture builds")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::fhe_request(&FIXTURE, data);
});
