//! The committed inputs of the light fuzz targets (`fuzz/seeds/<target>/`, and every
//! crash turned regression in `fuzz/regressions/<target>/`) replayed through the same
//! bodies the targets run (`pdx_ledger::fuzzing`), so the ordinary test run checks them
//! without a fuzzing build.

use std::path::{Path, PathBuf};

use pdx_ledger::fuzzing::{self, CosignatureFixture, Fixture};

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

#[test]
fn canonical_json_inputs_hold() {
    replay("canonical_json", fuzzing::canonical_json);
}

#[test]
fn checkpoint_note_inputs_hold() {
    let fixture = Fixture::new().unwrap();
    replay("checkpoint_note", |data| {
        fuzzing::checkpoint_note(&fixture, data)
    });
}

#[test]
fn receipt_inputs_hold() {
    let fixture = Fixture::new().unwrap();
    replay("receipt", |data| fuzzing::receipt(&fixture, data));
}

#[test]
fn merkle_proof_inputs_hold() {
    let fixture = Fixture::new().unwrap();
    replay("merkle_proofs", |data| {
        fuzzing::merkle_proofs(&fixture, data)
    });
}

#[tokio::test]
async fn cosignature_inputs_hold() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = CosignatureFixture::new(dir.path()).await.unwrap();
    for (path, bytes) in inputs("cosignature") {
        eprintln!("replaying {}", path.display());
        fuzzing::cosignature(&fixture, &bytes).await;
    }
}
