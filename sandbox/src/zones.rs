//! Storage zones on the local file system.
//!
//! ```text
//! <data-dir>/zones/raw/          uploads while they are validated and de-identified
//! <data-dir>/zones/deid/ab/<hash>.parquet   de-identified versions, content-addressed
//! <data-dir>/zones/quarantine/   model outputs awaiting review (sandbox issue)
//! <data-dir>/zones/released/     vetted outputs (sandbox issue)
//! <data-dir>/pseudonym.key       master secret for keyed pseudonyms (0600)
//! ```
//!
//! Raw files never leave the raw zone; they are deleted once a version is certified
//! (unless retention is configured, as `<dataset>-v<n>.raw`) and the deletion is logged.
//! An upload still being written or validated when the process stopped ends in
//! `.upload` and is discarded on start; a validated one waiting for its ingest job is
//! `<job id>.pending` and is kept, so that the job can resume.

use std::path::{Path, PathBuf};

use pdx_ids::DatasetId;

use crate::{Result, SandboxError};

const KEY_CONTEXT: &str = "pdx 2026-11 per-dataset pseudonym key v1";

fn bad_key() -> SandboxError {
    SandboxError::Internal(
        "pseudonym.key does not hold 32 hex-encoded bytes; refusing to start".into(),
    )
}

/// The zone directories and the pseudonym master secret.
pub struct Zones {
    root: PathBuf,
    master: [u8; 32],
}

impl Zones {
    /// Creates the directories and loads or creates the master secret.
    pub fn open(data_dir: &Path) -> Result<Zones> {
        let root = data_dir.join("zones");
        for zone in ["raw", "deid", "quarantine", "released"] {
            std::fs::create_dir_all(root.join(zone))?;
        }
        let key_path = data_dir.join("pseudonym.key");
        // Stored as 64 hex characters and a newline, like the other key files.
        let master = match std::fs::read_to_string(&key_path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| bad_key())?;
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad_key())?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let master: [u8; 32] = rand::random();
                pdx_ledger::signing::write_secret_file(&key_path, hex::encode(master).as_bytes())?;
                master
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Zones { root, master })
    }

    /// The raw zone.
    pub fn raw(&self) -> PathBuf {
        self.root.join("raw")
    }

    /// The quarantine zone: outputs awaiting review.
    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// The released zone: vetted outputs.
    pub fn released(&self) -> PathBuf {
        self.root.join("released")
    }

    /// The de-identified zone.
    pub fn deid(&self) -> PathBuf {
        self.root.join("deid")
    }

    /// The root of all zones (stored paths are relative to it).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The pseudonym key of one dataset: derived, so it is stable for the dataset and
    /// unlinkable across datasets without the master secret, and never stored.
    pub fn pseudonym_key(&self, dataset_id: &DatasetId) -> [u8; 32] {
        let id = dataset_id.as_str();
        let mut material = Vec::with_capacity(32 + id.len());
        material.extend_from_slice(&self.master);
        material.extend_from_slice(id.as_bytes());
        blake3::derive_key(KEY_CONTEXT, &material)
    }

    /// Removes uploads left half-written (or not yet validated) by a crash; validated
    /// ones (`.pending`) and retained ones stay.
    pub fn discard_partial_uploads(&self) -> Result<()> {
        for entry in std::fs::read_dir(self.raw())? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "upload") {
                std::fs::remove_file(&path)?;
                tracing::info!(file = %path.display(), "discarded a partial upload");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonym_keys_differ_per_dataset_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let zones = Zones::open(dir.path()).unwrap();
        let (ds_a, ds_b) = (
            DatasetId::parse("ds_a").unwrap(),
            DatasetId::parse("ds_b").unwrap(),
        );
        let a = zones.pseudonym_key(&ds_a);
        assert_ne!(a, zones.pseudonym_key(&ds_b));
        let again = Zones::open(dir.path()).unwrap();
        assert_eq!(a, again.pseudonym_key(&ds_a));
    }

    #[test]
    fn partial_uploads_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let zones = Zones::open(dir.path()).unwrap();
        std::fs::write(zones.raw().join("x.upload"), b"half").unwrap();
        std::fs::write(zones.raw().join("kept.csv"), b"retained").unwrap();
        std::fs::write(zones.raw().join("job_1.pending"), b"validated").unwrap();
        zones.discard_partial_uploads().unwrap();
        assert!(!zones.raw().join("x.upload").exists());
        assert!(zones.raw().join("kept.csv").exists());
        assert!(zones.raw().join("job_1.pending").exists());
    }
}
