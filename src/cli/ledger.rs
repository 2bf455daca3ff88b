//! `pdx ledger …`: verify (database or export file), export, verify-receipt, public-key,
//! checkpoint. `verify --export` and `verify-receipt` need neither database nor server.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use pdx_ledger::Receipt;
use pdx_ledger::export::{export, verify_export};
use pdx_ledger::note::NoteVerifier;
use pdx_ledger::verify::{VerifyFailure, VerifyReport};

use crate::app::App;
use crate::config::Config;

/// Ledger subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Verify the whole ledger: chain, payload hashes, Merkle roots, checkpoint
    /// signatures and consistency. Exits 1 and names the first bad seq on failure.
    Verify {
        /// Verify this export file instead of the database.
        #[arg(long)]
        export: Option<PathBuf>,
        /// The log's public key (verifier-key string, or a file holding it). Default: the
        /// key in the data directory, which only the operator has.
        #[arg(long)]
        key: Option<String>,
    },
    /// Write the ledger as JSON Lines (header, checkpoints, entries).
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
    /// Print the public key in verifier-key format.
    PublicKey,
    /// Sign a checkpoint now and print it.
    Checkpoint,
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

fn local_key(config: &Config) -> anyhow::Result<NoteVerifier> {
    let signer =
        pdx_ledger::signing::load_or_create(&config.ledger_key_path(), &config.ledger_origin)?;
    Ok(signer.verifier())
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
        Err(f) => {
            println!("FAILED: first bad seq {}: {}", f.seq, f.reason);
            1
        }
    }
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
        LedgerCommand::Verify {
            export: Some(path),
            key,
        } => {
            let key = match key {
                Some(k) => parse_key(&k)?,
                None => local_key(config)?,
            };
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let bar = super::progress_bar(0, "verifying");
            let result = verify_export(BufReader::new(file), &key, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            Ok(report(result))
        }
        LedgerCommand::Verify { export: None, key } => {
            let app = App::open(config.clone()).await?;
            let key = match key {
                Some(k) => parse_key(&k)?,
                None => app.ledger.verifier(),
            };
            let bar = super::progress_bar(0, "verifying");
            let result = app
                .ledger
                .verify_with(&key, |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await?;
            bar.finish_and_clear();
            Ok(report(result))
        }
        LedgerCommand::Export { out } => {
            let app = App::open(config.clone()).await?;
            let bar = super::progress_bar(0, "exporting");
            let progress = |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let n = match out {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    let n = export(&app.ledger, &mut w, progress).await?;
                    std::io::Write::flush(&mut w)?;
                    n
                }
                None => {
                    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                    let n = export(&app.ledger, &mut w, progress).await?;
                    std::io::Write::flush(&mut w)?;
                    n
                }
            };
            bar.finish_and_clear();
            eprintln!("exported {n} entries");
            Ok(0)
        }
        LedgerCommand::PublicKey => {
            println!("{}", local_key(config)?.to_vkey());
            Ok(0)
        }
        LedgerCommand::Checkpoint => {
            let app = App::open(config.clone()).await?;
            print!("{}", app.ledger.checkpoint().await?.note);
            Ok(0)
        }
    }
}
