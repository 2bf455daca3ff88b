//! SQL admission and the disclosure rewrite on arbitrary SQL text (needs
//! `--features heavy`); the body and its properties are
//! `pdx_algorithms::fuzzing::sql_admission`. The fixture's Parquet files live in
//! `$TMPDIR/pdx-fuzz-sql-<pid>/` and are left there when libFuzzer exits.
#![no_main]

use std::sync::LazyLock;

use pdx_algorithms::fuzzing::{self, SqlFixture};
use tokio::runtime::Runtime;

struct Harness {
    runtime: Runtime,
    fixture: SqlFixture,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let dir = std::env::temp_dir().join(format!("pdx-fuzz-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the fixture tables");
    let fixture = runtime
        .block_on(SqlFixture::new(&dir))
        .expect("the SQL fuzz fixture builds");
    Harness { runtime, fixture }
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HARNESS
        .runtime
        .block_on(fuzzing::sql_admission(&HARNESS.fixture, data));
});
