//! Witness cosignatures through `Ledger::accept_cosignature` on SQLite; the body and
//! its properties are `pdx_ledger::fuzzing::cosignature`. The database lives in
//! `$TMPDIR/pdx-fuzz-cosignature-<pid>/` and is left there when libFuzzer exits.
#![no_main]

use std::sync::LazyLock;

use pdx_ledger::fuzzing::{self, CosignatureFixture};
use tokio::runtime::Runtime;

struct Harness {
    runtime: Runtime,
    fixture: CosignatureFixture,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let dir = std::env::temp_dir().join(format!("pdx-fuzz-cosignature-{}", std::process::id()));
    // A directory left by an earlier process with the same id holds a ledger already.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the fuzz database");
    let fixture = runtime
        .block_on(CosignatureFixture::new(&dir))
        .expect("the cosignature fuzz fixture builds");
    Harness { runtime, fixture }
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HARNESS
        .runtime
        .block_on(fuzzing::cosignature(&HARNESS.fixture, data));
});
