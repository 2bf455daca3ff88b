//! `pdx ledger …`: verify (database or export file), export, verify-receipt, public-key,
//! checkpoint. `verify --export` and `verify-receipt` need neither database nor server.
//!
//! `verify` and `public-key` only read: they never create a key (an offline verifier
//! with a key of its own would check the log against the wrong key), and `verify` opens
//! the database read-only, without migrating it.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use pdx_ledger::db::Db;
use pdx_ledger::export::{export, verify_export};
use pdx_ledger::note::{NoteSigner, NoteVerifier};
use pdx_ledger::signing::KeyFileError;
use pdx_ledger::verify::{FailureKind, VerifyFailure, VerifyReport};
use pdx_ledger::{Ledger, Receipt};

use crate::app::App;
use crate::config::Config;

/// Ledger subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Verify the whole ledger: chain, payload hashes, Merkle roots, checkpoint
    /// signatures and consistency. Reads only: creates no key, database or file.
    ///
    /// Exit codes: 0 verified; 1 the log is bad (names the first bad seq), or the file or
    /// database cannot be read; 3 the key cannot check this log (no --key and no key file
    /// in the data directory, an unreadable key, or a key that signed none of the log's
    /// checkpoints: "the key does not match this log").
    Verify {
        /// Verify this export file instead of the database.
        #[arg(long)]
        export: Option<PathBuf>,
        /// The log's public key (verifier-key string, or a file holding it). Default: the
        /// public half of the data directory's key file, which only the operator has
        /// (read, never created: without one, verify fails and asks for --key).
        #[arg(long)]
        key: Option<String>,
    },
    /// Write the ledger as JSON Lines (header, checkpoints, entries). The export is then
    /// recorded on the ledger as a `DataAccess` entry (GD18 Art.28; XT Art.34(4)).
    Export {
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check an offline receipt against the public key.
    VerifyReceipt {
        /// Receipt JSON file.
        file: PathBuf,
        /// The log's public key (verifier-key string, or a file holding it).
        #[arg(long)]
        key: String,
    },
    /// Print the public key in verifier-key format (from the data directory's key file,
    /// which the server creates on first start; this command never creates one).
    PublicKey,
    /// Sign a checkpoint now and print it.
    Checkpoint,
}

/// A writer that counts and hashes what passes through it, so that a ledger export is
/// recorded with its size and BLAKE3.
struct Counted<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W> Counted<W> {
    fn new(inner: W) -> Self {
        Counted {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    /// BLAKE3 of everything written so far.
    fn hash(&self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(written) = buf.get(..n) {
            self.hasher.update(written);
        }
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a verifier key given inline or as a file path.
pub fn parse_key(arg: &str) -> anyhow::Result<NoteVerifier> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("reading key file {arg}"))?
    } else {
        arg.to_string()
    };
    NoteVerifier::parse(text.trim()).context("the key is not a signed-note verifier key")
}

/// Exit code of `verify` when the log is bad (it names the first bad seq).
pub const EXIT_BAD_LOG: i32 = 1;

/// Exit code of `verify` when the key cannot check the log: none given and no key file
/// in the data directory, a key that cannot be read or parsed, or a key that signed none
/// of the log's checkpoints.
pub const EXIT_KEY: i32 = 3;

/// What `verify` says when it has no key: it never makes one.
const NO_KEY_FOR_VERIFY: &str =
    "pass --key with the log's public key (pdx ledger public-key prints it)";

/// What `public-key` says when there is no key: it never makes one either.
const NO_KEY_FOR_PUBLIC_KEY: &str = "the server creates it on first start; pass --data-dir \
     (or ledger_key_file in --config) if the log's key is elsewhere";

/// The public half of the data directory's ledger key, read without creating anything;
/// `hint` follows the error when there is no key file.
fn stored_key(config: &Config, hint: &str) -> anyhow::Result<NoteVerifier> {
    let path = config.ledger_key_path();
    match pdx_ledger::signing::load(&path) {
        Ok(signer) => Ok(signer.verifier()),
        Err(KeyFileError::Missing(_)) => {
            anyhow::bail!("no ledger key at {}: {hint}", path.display())
        }
        Err(e) => Err(anyhow::Error::new(e).context("reading the ledger key")),
    }
}

/// The key `verify` checks the log against: `--key`, or the data directory's.
fn verify_key(config: &Config, key: Option<&str>) -> anyhow::Result<NoteVerifier> {
    match key {
        Some(k) => parse_key(k),
        None => stored_key(config, NO_KEY_FOR_VERIFY),
    }
}

fn report(result: Result<VerifyReport, VerifyFailure>) -> i32 {
    match result {
        Ok(r) => {
            println!(
                "ok: {} entries, {} checkpoints verified, root {}",
                r.entries, r.checkpoints, r.root
            );
            0
        }
        // Not a bad entry: nothing was checked, so no seq is named.
        Err(f) if f.kind == FailureKind::KeyMismatch => {
            println!("FAILED: {f}");
            EXIT_KEY
        }
        Err(f) => {
            println!("FAILED: first bad seq {}: {}", f.seq, f.reason);
            EXIT_BAD_LOG
        }
    }
}

/// The configured database URL, opened read-only. A SQLite file must already exist, and
/// is opened with `mode=ro` (in place of the default URL's `mode=rwc`, which creates
/// it), so verifying never creates or changes a database; PostgreSQL URLs are kept
/// (verification only runs SELECTs).
pub(crate) fn read_only_url(url: &str) -> anyhow::Result<String> {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(url.to_string());
    };
    let (file, query) = rest.split_once('?').unwrap_or((rest, ""));
    let params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if file.is_empty() || file == ":memory:" || params.contains(&"mode=memory") {
        return Ok(url.to_string());
    }
    anyhow::ensure!(
        Path::new(file).is_file(),
        "no database at {file}: verify reads an existing ledger and creates none \
         (check --data-dir or --database-url)"
    );
    let params: Vec<&str> = params
        .into_iter()
        .filter(|p| !p.starts_with("mode="))
        .chain(["mode=ro"])
        .collect();
    Ok(format!("sqlite://{file}?{}", params.join("&")))
}

/// Verifies the configured database against `key`, reading only: no migration, no key
/// file, no new file. Returns the exit code.
async fn verify_database(config: &Config, key: &NoteVerifier) -> anyhow::Result<i32> {
    let url = read_only_url(&config.database_url)?;
    let db = Db::connect(&url)
        .await
        .context("opening the database read-only")?;
    // `Ledger` holds a signer for appends and checkpoints. Verifying signs nothing, so a
    // throwaway key, never written anywhere, stands in for the operator's.
    let throwaway = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let ledger = Ledger::new(
        db.clone(),
        NoteSigner::new(key.name(), throwaway)?,
        config.ledger.clone(),
    );
    let bar = super::progress_bar(0, "verifying");
    let result = ledger
        .verify_with(key, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    db.close().await;
    Ok(report(result?))
}

/// Verifies an export file against `key`. Returns the exit code.
fn verify_file(path: &Path, key: &NoteVerifier) -> anyhow::Result<i32> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let bar = super::progress_bar(0, "verifying");
    let result = verify_export(BufReader::new(file), key, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    Ok(report(result))
}

/// Runs a ledger subcommand; returns the process exit code.
pub async fn run(config: &Config, cmd: LedgerCommand) -> anyhow::Result<i32> {
    match cmd {
        LedgerCommand::VerifyReceipt { file, key } => {
            let key = parse_key(&key)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let receipt: Receipt =
                serde_json::from_str(&text).context("the file is not a receipt")?;
            match receipt.verify(&key) {
                Ok(cp) => {
                    println!(
                        "ok: entry {} ({}) is in the log {} at size {}",
                        receipt.entry.seq, receipt.entry.kind, cp.origin, cp.size
                    );
                    Ok(0)
                }
                Err(e) => {
                    println!("FAILED: {e}");
                    Ok(1)
                }
            }
        }
        LedgerCommand::Verify { export, key } => {
            let key = match verify_key(config, key.as_deref()) {
                Ok(key) => key,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(EXIT_KEY);
                }
            };
            match export {
                Some(path) => verify_file(&path, &key),
                None => verify_database(config, &key).await,
            }
        }
        LedgerCommand::Export { out } => {
            let app = App::open(config.clone()).await?;
            let bar = super::progress_bar(0, "exporting");
            let progress = |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let (n, bytes, hash) = match out {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut w = Counted::new(std::io::BufWriter::new(file));
                    let n = export(&app.ledger, &mut w, progress).await?;
                    std::io::Write::flush(&mut w)?;
                    (n, w.bytes, w.hash())
                }
                None => {
                    let mut w = Counted::new(std::io::BufWriter::new(std::io::stdout().lock()));
                    let n = export(&app.ledger, &mut w, progress).await?;
                    std::io::Write::flush(&mut w)?;
                    (n, w.bytes, w.hash())
                }
            };
            bar.finish_and_clear();
            // An export is a `DataAccess` entry too (GD18 Art.28; XT Art.34(4)), appended
            // after the entries it exported, by the operator's command line.
            let operator = pdx_ledger::Actor {
                org: "pdx".into(),
                key_id: "cli".into(),
            };
            app.sandbox
                .usage()
                .record_ledger_export(&operator, n, bytes, hash)
                .await?;
            eprintln!("exported {n} entries");
            Ok(0)
        }
        LedgerCommand::PublicKey => {
            println!("{}", stored_key(config, NO_KEY_FOR_PUBLIC_KEY)?.to_vkey());
            Ok(0)
        }
        LedgerCommand::Checkpoint => {
            let app = App::open(config.clone()).await?;
            print!("{}", app.ledger.checkpoint().await?.note);
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_only_url;

    #[test]
    fn verify_opens_an_existing_sqlite_file_read_only_and_creates_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdx.db");
        let url = pdx_ledger::db::sqlite_url(&path);
        let err = read_only_url(&url).unwrap_err();
        assert!(err.to_string().contains("no database at"), "{err}");
        assert!(!path.exists());
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            read_only_url(&url).unwrap(),
            format!("sqlite://{}?mode=ro", path.display())
        );
        let with_params = format!("sqlite://{}?mode=rwc&cache=private", path.display());
        assert_eq!(
            read_only_url(&with_params).unwrap(),
            format!("sqlite://{}?cache=private&mode=ro", path.display())
        );
        let pg = "postgres://pdx@db.example/pdx?sslmode=require";
        assert_eq!(read_only_url(pg).unwrap(), pg);
    }
}
