//! Storage zones on the local file system.
//!
//! ```text
//! <data-dir>/zones/raw/          uploads while they are validated and de-identified
//! <data-dir>/zones/deid/ab/<hash>.parquet   de-identified versions, content-addressed
//! <data-dir>/zones/quarantine/   model outputs awaiting review (sandbox issue)
//! <data-dir>/zones/released/     vetted outputs (sandbox issue)
//! <data-dir>/zones/keyring.json  the zones' data keys, wrapped under the KEK
//! <data-dir>/zones-kek.key       the key-encryption key (0600; configurable, keep it
//!                                off the data disk in production)
//! <data-dir>/pseudonym.key       master secret for keyed pseudonyms (0600)
//! ```
//!
//! **Every zone file is sealed** (XT Art.35–36, GD18 Art.27: encryption at rest):
//! written and read only through [`Zones::at_rest`], which encrypts and authenticates
//! with AES-256-GCM segments under the keyring's current data key (`pdx-seal` has the
//! format and the key rules). Sizes, hashes, certificates and release hashes are of the
//! plaintext, so receipts verify as before. Rotating the KEK (`pdx zones rotate-kek`)
//! re-wraps the data keys without rewriting any zone file.
//!
//! Raw files never leave the raw zone; they are deleted once a version is certified
//! (unless retention is configured, as `<dataset>-v<n>.raw`) and the deletion is logged.
//! An upload still being written or validated when the process stopped ends in
//! `.upload` and is discarded on start; a validated one waiting for its ingest job is
//! `<job id>.pending` and is kept, so that the job can resume.

use std::path::{Path, PathBuf};

use pdx_ids::DatasetId;
use pdx_seal::{AtRest, KEYRING_FILE_NAME, Kek, Keyring};

use crate::{Result, SandboxError};

/// A half-written zone file untouched for this long is abandoned: its writer is gone,
/// even when other servers share the data directory (an upload streams continuously,
/// and validation or ingest writes well within it).
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

const KEY_CONTEXT: &str = "pdx 2026-11 per-dataset pseudonym key v1";

fn bad_key() -> SandboxError {
    SandboxError::Internal(
        "pseudonym.key does not hold 32 hex-encoded bytes; refusing to start".into(),
    )
}

/// The zone directories, their sealing keys and the pseudonym master secret.
pub struct Zones {
    root: PathBuf,
    master: [u8; 32],
    at_rest: AtRest,
}

impl Zones {
    /// Creates the directories, loads or creates the master secret, and opens (or
    /// creates) the zones' keyring under the KEK in `kek_file` (created if absent,
    /// together with a new keyring; a keyring without its KEK is refused).
    pub fn open(data_dir: &Path, kek_file: &Path) -> Result<Zones> {
        let root = data_dir.join("zones");
        for zone in ["raw", "deid", "quarantine", "released"] {
            std::fs::create_dir_all(root.join(zone))?;
        }
        let keyring_path = root.join(KEYRING_FILE_NAME);
        let kek_error = |e: pdx_seal::SealError| {
            SandboxError::Internal(format!(
                "the zones' KEK {}: {e}; refusing to start",
                kek_file.display()
            ))
        };
        let kek = if keyring_path.exists() {
            // An existing keyring needs its KEK: making a new one would lock every file.
            Kek::load(kek_file).map_err(kek_error)?
        } else {
            Kek::load_or_create(kek_file).map_err(kek_error)?.0
        };
        let keyring = Keyring::open_or_create(&keyring_path, &kek)?;
        let at_rest = AtRest::sealed(keyring);
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
        Ok(Zones {
            root,
            master,
            at_rest,
        })
    }

    /// How zone files are read and written: sealed under the zones' keyring.
    pub fn at_rest(&self) -> &AtRest {
        &self.at_rest
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

    /// Removes what a crash left half-written: uploads finished but not validated
    /// (`.upload`) and, in every zone, the hidden temporaries of files still being
    /// written (`.….tmp`: a sealed or Parquet temporary is renamed into place only once
    /// whole). Validated uploads (`.pending`) and retained ones stay. Called at start,
    /// before this process writes; with `older_than`, only files not modified for that
    /// long go (another server sharing the directory may be writing the others).
    pub fn discard_partial_uploads(&self, older_than: Option<std::time::Duration>) -> Result<()> {
        let is_hidden_temporary = |path: &Path| {
            path.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with('.') && n.ends_with(".tmp")
            })
        };
        let abandoned = |path: &Path| match older_than {
            None => true,
            Some(age) => std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|elapsed| elapsed >= age),
        };
        for entry in std::fs::read_dir(self.raw())? {
            let path = entry?.path();
            if (is_hidden_temporary(&path) || path.extension().is_some_and(|e| e == "upload"))
                && abandoned(&path)
            {
                std::fs::remove_file(&path)?;
                tracing::info!(file = %path.display(), "discarded a partial upload");
            }
        }
        let mut dirs = vec![
            self.deid(),
            self.quarantine(),
            self.released(),
            self.root.join("fhe/index"),
        ];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    dirs.push(path);
                } else if is_hidden_temporary(&path) && abandoned(&path) {
                    std::fs::remove_file(&path)?;
                    tracing::info!(file = %path.display(), "discarded a half-written zone file");
                }
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
        let zones = Zones::open(dir.path(), &dir.path().join("kek")).unwrap();
        let (ds_a, ds_b) = (
            DatasetId::parse("ds_a").unwrap(),
            DatasetId::parse("ds_b").unwrap(),
        );
        let a = zones.pseudonym_key(&ds_a);
        assert_ne!(a, zones.pseudonym_key(&ds_b));
        let again = Zones::open(dir.path(), &dir.path().join("kek")).unwrap();
        assert_eq!(a, again.pseudonym_key(&ds_a));
    }

    #[test]
    fn zone_files_are_sealed_and_a_lost_kek_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let kek = dir.path().join("kek");
        let zones = Zones::open(dir.path(), &kek).unwrap();
        assert!(zones.at_rest().is_sealed());
        let file = zones.deid().join("x");
        zones.at_rest().write_file(&file, b"income=51234").unwrap();
        let on_disk = std::fs::read(&file).unwrap();
        assert!(!on_disk.windows(5).any(|w| w == b"51234"));
        let again = Zones::open(dir.path(), &kek).unwrap();
        assert_eq!(again.at_rest().read_all(&file).unwrap(), b"income=51234");
        // Without its KEK the keyring is not replaced by a new one: refused.
        std::fs::remove_file(&kek).unwrap();
        assert!(Zones::open(dir.path(), &kek).is_err());
        assert!(!kek.exists());
    }

    #[test]
    fn partial_uploads_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let zones = Zones::open(dir.path(), &dir.path().join("kek")).unwrap();
        std::fs::write(zones.raw().join("x.upload"), b"half").unwrap();
        std::fs::write(zones.raw().join(".pdx-seal.0123.tmp"), b"streaming").unwrap();
        std::fs::create_dir_all(zones.deid().join("ab")).unwrap();
        std::fs::write(zones.deid().join("ab/.pdx-seal.4567.tmp"), b"half").unwrap();
        std::fs::write(zones.deid().join("ab/kept.parquet"), b"whole").unwrap();
        std::fs::write(zones.raw().join("kept.csv"), b"retained").unwrap();
        std::fs::write(zones.raw().join("job_1.pending"), b"validated").unwrap();
        zones.discard_partial_uploads(None).unwrap();
        assert!(!zones.raw().join("x.upload").exists());
        assert!(!zones.raw().join(".pdx-seal.0123.tmp").exists());
        assert!(!zones.deid().join("ab/.pdx-seal.4567.tmp").exists());
        assert!(zones.deid().join("ab/kept.parquet").exists());
        assert!(zones.raw().join("kept.csv").exists());
        assert!(zones.raw().join("job_1.pending").exists());
    }
}
