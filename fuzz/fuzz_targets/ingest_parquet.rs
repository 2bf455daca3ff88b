//! Parquet uploads on arbitrary bytes (needs `--features heavy`); the body and its
//! properties are `pdx_algorithms::fuzzing::ingest_parquet`. Each input is written to
//! `$TMPDIR/pdx-fuzz-ingest-<pid>/upload` before it is read.
#![no_main]

use std::sync::LazyLock;

use pdx_algorithms::fuzzing::{self, IngestFixture};

static FIXTURE: LazyLock<IngestFixture> = LazyLock::new(|| {
    // libfuzzer-sys's panic hook aborts on every panic, even a caught one, and the
    // ingest catches the Parquet decoder's panics on purpose (see
    // `pdx_algorithms::deid::ingest`). So the default hook comes back before the first
    // input; a panic that escapes the body is still a crash, because libfuzzer-sys's
    // harness aborts when its own `catch_unwind` sees one.
    drop(std::panic::take_hook());
    let dir = std::env::temp_dir().join(format!("pdx-fuzz-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the uploads");
    IngestFixture::new(&dir)
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::ingest_parquet(&FIXTURE, data);
});
