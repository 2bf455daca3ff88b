//! The export file: everything a supervisor needs, besides the public key, to verify the
//! ledger on another machine.
//!
//! JSON Lines, one object per line, each tagged by `type`:
//! 1. `{"type":"header","format":"pdx-ledger-export/v1","origin":…,"size":…}`
//! 2. every checkpoint: `{"type":"checkpoint","size":…,"note":…}`
//! 3. every entry in seq order: `{"type":"entry","seq":…,…}` (fields of [`Entry`])
//!
//! The public key is deliberately not trusted from the file: the verifier is given it.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::note::NoteVerifier;
use crate::store::{Ledger, LedgerError, Visibility};
use crate::verify::{CheckpointRecord, Verifier, VerifyFailure, VerifyReport};

/// The format tag of export headers.
pub const EXPORT_FORMAT: &str = "pdx-ledger-export/v1";

/// One line of an export file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// First line.
    Header {
        /// Always [`EXPORT_FORMAT`].
        format: String,
        /// Checkpoint origin.
        origin: String,
        /// Entries in the file.
        size: u64,
    },
    /// A signed checkpoint.
    Checkpoint(CheckpointRecord),
    /// An entry.
    Entry(Entry),
}

/// Export and import failures.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Writing or reading the file failed.
    #[error("export file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not an export.
    #[error("line {line}: {reason}")]
    Format {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Writes the whole ledger; calls `progress(done, total)` per page. Returns entries written.
pub async fn export(
    ledger: &Ledger,
    out: &mut impl Write,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, ExportError> {
    let total = ledger.size().await?;
    let checkpoints = ledger.checkpoints().await?;
    let mut write = |line: &ExportLine| -> Result<(), ExportError> {
        serde_json::to_writer(&mut *out, line).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    write(&ExportLine::Header {
        format: EXPORT_FORMAT.into(),
        origin: ledger.origin().to_string(),
        size: total,
    })?;
    for cp in checkpoints.into_iter().filter(|c| c.size <= total) {
        write(&ExportLine::Checkpoint(CheckpointRecord {
            size: cp.size,
            note: cp.note,
        }))?;
    }
    let mut from = 0u64;
    let mut done = 0u64;
    while from < total {
        let page = ledger.entries(from, 10_000, &Visibility::All).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for e in page.into_iter().filter(|e| e.seq < total) {
            write(&ExportLine::Entry(e))?;
            done += 1;
        }
        progress(done, total);
    }
    Ok(done)
}

/// Verifies an export file against `key`. The outer error is an unreadable file; the
/// inner one is the first bad seq.
pub fn verify_export(
    input: impl BufRead,
    key: &NoteVerifier,
    mut progress: impl FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, ExportError> {
    let mut checkpoints = Vec::new();
    let mut verifier: Option<Verifier> = None;
    let mut total = 0u64;
    for (i, line) in input.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Result<ExportLine, _> = serde_json::from_str(&line);
        match (parsed, verifier.as_mut()) {
            (Ok(ExportLine::Header { format, size, .. }), None) if line_no == 1 => {
                if format != EXPORT_FORMAT {
                    return Err(ExportError::Format {
                        line: line_no,
                        reason: "unknown export format".into(),
                    });
                }
                total = size;
            }
            (Ok(ExportLine::Checkpoint(cp)), None) => checkpoints.push(cp),
            (Ok(ExportLine::Entry(e)), v) => {
                let v = match v {
                    Some(v) => v,
                    None => match Verifier::new(key.clone(), std::mem::take(&mut checkpoints)) {
                        Ok(v) => verifier.insert(v),
                        Err(f) => return Ok(Err(f)),
                    },
                };
                if let Err(f) = v.push(&e) {
                    return Ok(Err(f));
                }
                if v.entries() % 10_000 == 0 {
                    progress(v.entries(), total);
                }
            }
            (Ok(_), _) => {
                return Err(ExportError::Format {
                    line: line_no,
                    reason: "header or checkpoint out of place".into(),
                });
            }
            (Err(_), v) => {
                // A mangled entry line is evidence, not an unreadable file.
                let seq = v.map_or(0, |v| v.entries());
                return Ok(Err(VerifyFailure {
                    seq,
                    reason: format!("line {line_no} is not a valid export line"),
                }));
            }
        }
    }
    let verifier = match verifier {
        Some(v) => v,
        None => match Verifier::new(key.clone(), checkpoints) {
            Ok(v) => v,
            Err(f) => return Ok(Err(f)),
        },
    };
    progress(verifier.entries(), total);
    Ok(verifier.finish())
}
