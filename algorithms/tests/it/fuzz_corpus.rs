//! The committed inputs of the heavy fuzz targets (`fuzz/seeds/<target>/`, and every
//! crash turned regression in `fuzz/regressions/<target>/`) replayed through the same
//! bodies the targets run (`pdx_algorithms::fuzzing`). CI fuzzes these targets only
//! when their instrumented build (polars, DataFusion and TFHE-rs compiled a second
//! time) fits its time budget; this replay keeps their inputs checked in every run,
//! with overflow checks on.

use std::path::{Path, PathBuf};

use pdx_algorithms::fuzzing::{self, FheFixture, IngestFixture, SqlFixture};

/// Every committed input of `target`: seeds, then regressions, each sorted by name.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(listing) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = listing
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    assert!(
        !out.is_empty(),
        "no committed inputs for the fuzz target {target}"
    );
    out
}

/// Runs `body` over every committed input of `target`, naming each before it runs.
fn replay(target: &str, mut body: impl FnMut(&[u8])) {
    for (path, bytes) in inputs(target) {
        eprintln!("replaying {}", path.display());
        body(&bytes);
    }
}

#[tokio::test]
async fn sql_admission_inputs_hold() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = SqlFixture::new(dir.path()).await.unwrap();
    for (path, bytes) in inputs("sql_admission") {
        eprintln!("replaying {}", path.display());
        fuzzing::sql_admission(&fixture, &bytes).await;
    }
}

#[test]
fn ingest_csv_inputs_hold() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = IngestFixture::new(dir.path());
    replay("ingest_csv", |data| fuzzing::ingest_csv(&fixture, data));
}

#[test]
fn ingest_parquet_inputs_hold() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = IngestFixture::new(dir.path());
    replay("ingest_parquet", |data| {
        fuzzing::ingest_parquet(&fixture, data)
    });
}

#[test]
fn fhe_request_inputs_hold() {
    let fixture = FheFixture::new().unwrap();
    replay("fhe_request", |data| fuzzing::fhe_request(&fixture, data));
}
