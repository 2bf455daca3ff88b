//! `pdx zones …`: the keys that seal the zone files (XT Art.35–36; GD18 Art.27:
//! encryption at rest). Run with the server stopped: the keyring has one writer.
//!
//! - `rotate-kek --new-kek FILE`: re-wraps every data key under a new key-encryption
//!   key (created at `FILE` if absent) and rewrites only `zones/keyring.json`; no zone
//!   file is touched. Point `zones_kek_file` at the new file, then destroy the old one
//!   (archives made before the rotation keep the old KEK inside them).
//! - `new-data-key`: files sealed from now on use a fresh data key; older files keep
//!   theirs and stay readable.
//! - `verify`: opens every file of the sealed zones (raw, deid, quarantine, released,
//!   fhe/index) and authenticates every segment; exits 1 naming the files that fail or
//!   are not sealed (never their contents). Hidden temporaries are skipped.
//! - `seal`: seals, in place, the plaintext files a data directory from before zone
//!   files were sealed still holds in those zones (each atomically: a sealed temporary
//!   renamed over the file). Names and hashes stay: they are of the plaintext.

use std::path::{Path, PathBuf};

use anyhow::Context;
use pdx_seal::{KEYRING_FILE_NAME, Kek, Keyring};

use crate::config::Config;

/// `pdx zones` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ZonesCommand {
    /// Re-wrap the zones' data keys under a new KEK (no zone file is rewritten).
    RotateKek {
        /// The new KEK file (64 hex digits; created, mode 0600, if absent).
        #[arg(long)]
        new_kek: PathBuf,
    },
    /// Seal new zone files under a fresh data key (older files keep theirs).
    NewDataKey,
    /// Authenticate every file of the sealed zones; exit 1 naming those that fail.
    Verify,
    /// Seal the plaintext files left by a pdx from before zone files were sealed.
    Seal,
}

/// The zones whose files are sealed (FHE server keys and ciphertexts are stored as
/// uploaded: they are public keys and FHE ciphertexts).
const SEALED_ZONES: [&str; 5] = ["raw", "deid", "quarantine", "released", "fhe/index"];

/// Runs a `pdx zones` subcommand; returns the exit code.
pub fn run(config: &Config, command: ZonesCommand) -> anyhow::Result<i32> {
    let zones_root = config.data_dir.join("zones");
    let keyring_path = zones_root.join(KEYRING_FILE_NAME);
    let kek_file = &config.sandbox.zones_kek_file;
    anyhow::ensure!(
        keyring_path.is_file(),
        "no keyring at {}: is it a pdx data directory? (--data-dir)",
        keyring_path.display()
    );
    match command {
        ZonesCommand::RotateKek { new_kek } => {
            anyhow::ensure!(
                std::path::absolute(&new_kek)? != std::path::absolute(kek_file)?,
                "the new KEK file is the current one"
            );
            let keys = pdx_seal::rotate_kek(&keyring_path, kek_file, &new_kek)
                .context("rotating the zones' KEK")?;
            println!(
                "re-wrapped {keys} data key(s) under {}; no zone file was rewritten.\n\
                 Set zones_kek_file = {:?} in the configuration, then destroy {}.",
                new_kek.display(),
                new_kek.display().to_string(),
                kek_file.display()
            );
            Ok(0)
        }
        ZonesCommand::NewDataKey => {
            let kek = Kek::load(kek_file).context("loading the zones' KEK")?;
            let mut keyring =
                Keyring::open(&keyring_path, &kek).context("opening the zones' keyring")?;
            let id = keyring.new_data_key(&kek).context("adding a data key")?;
            println!("new zone files are sealed under data key {id}; older files keep theirs");
            Ok(0)
        }
        ZonesCommand::Verify => {
            let at_rest = super::backup::zones_at_rest(&zones_root, kek_file)?;
            let files = zone_files(&zones_root)?;
            let mut failed = Vec::new();
            for path in &files {
                let rel = path.strip_prefix(&zones_root).unwrap_or(path);
                if !pdx_seal::is_sealed(path)? {
                    failed.push(format!(
                        "{}: not sealed (run `pdx zones seal`)",
                        rel.display()
                    ));
                } else if let Err(e) = at_rest.hash(path) {
                    failed.push(format!("{}: {e}", rel.display()));
                }
            }
            for line in &failed {
                println!("FAILED {line}");
            }
            println!("{} zone file(s), {} failed", files.len(), failed.len());
            Ok(if failed.is_empty() { 0 } else { 1 })
        }
        ZonesCommand::Seal => {
            let at_rest = super::backup::zones_at_rest(&zones_root, kek_file)?;
            let mut sealed = 0u64;
            for path in zone_files(&zones_root)? {
                if pdx_seal::is_sealed(&path)? {
                    continue;
                }
                // The plaintext is read whole into a sealed temporary, which then
                // replaces the file: a crash leaves the plaintext or the sealed file.
                at_rest
                    .store_file(&path, &path)
                    .with_context(|| format!("sealing {}", path.display()))?;
                sealed += 1;
            }
            println!("sealed {sealed} zone file(s)");
            Ok(0)
        }
    }
}

/// Every regular file of the sealed zones, hidden temporaries left out, in name order.
fn zone_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = SEALED_ZONES.iter().map(|z| root.join(z)).collect();
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("reading {}", dir.display())));
            }
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && !hidden {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}
