//! Witness cosignatures of this log's checkpoints, and the table that keeps them.
//!
//! A witness (`pdx witness`) checks each new checkpoint for consistency with the last
//! one it saw and cosigns it (c2sp.org/tlog-cosignature; the byte rule is in
//! [`crate::note`]). [`Ledger::accept_cosignature`] takes the cosigned note and the
//! witness's verifier key and stores the witness's line only if every check passes, in
//! this order (the first failure is the error returned):
//!
//! 1. the note is at most [`MAX_NOTE_BYTES`] long ([`WitnessError::TooLong`]);
//! 2. the key parses as a verifier key ([`WitnessError::BadKey`]) of type 0x04,
//!    cosignature/v1 ([`WitnessError::NotACosigner`]);
//! 3. the note parses ([`WitnessError::BadNote`]) and is signed by this log's own key
//!    ([`WitnessError::NotSignedByLog`]), every line claiming that key verifying;
//! 4. its text is a checkpoint ([`WitnessError::BadNote`]);
//! 5. the witness's cosignature verifies over that text ([`WitnessError::BadCosignature`]);
//!    if it cosigned more than once, the latest timestamp counts;
//! 6. this log signed a checkpoint of that size ([`WitnessError::UnknownCheckpoint`]),
//! 7. with the same root ([`WitnessError::RootMismatch`]). A note signed by this log's
//!    key with a root it never signed at that size is evidence of a fork, and is logged
//!    loudly by the caller.
//!
//! What is stored, one row per `(size, witness vkey)`, a later cosignature replacing the
//! earlier one:
//!
//! ```text
//! line = "— " || name || " " || base64(key_id || timestamp(8, big endian) || sig) || "\n"
//! ```
//!
//! re-encoded from the parsed line that carries the verified timestamp, so a stored
//! line is always one that verified. [`Ledger::with_cosignatures`] appends the stored
//! lines of a checkpoint's size, ordered by witness key, to its note: a note may carry
//! any number of signature lines and verifiers ignore those of keys they do not know,
//! so the result still verifies under this log's key alone.
//!
//! The table is `ledger_cosignatures`. Only this module reads or writes it, but it is
//! created by the application's migration `0002_supervision.sql` (the root package's
//! set, which runs before this crate's): existing databases applied that file under
//! its checksum, so its `CREATE TABLE` cannot be taken out of it, and creating the
//! table here as well would break the application's migration on a database this
//! crate migrated first. A database migrated by this crate alone (`ledger-load`, the
//! benches) has no such table, and these two methods fail there with a database error.

use sqlx::Row;

use crate::db::now_ms;
use crate::note::{Checkpoint, KeyType, NoteError, NoteVerifier, SignedNote};
use crate::store::{Ledger, LedgerError, StoredCheckpoint};

/// Largest cosigned note accepted, in bytes (a checkpoint plus a few signatures).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;

/// Why a cosignature was refused. Every variant but [`WitnessError::Ledger`] is the
/// submitter's mistake, with a message safe to show them (it names the argument at
/// fault: `witness_key` or `checkpoint`).
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The note is longer than [`MAX_NOTE_BYTES`].
    #[error("the checkpoint note is too long")]
    TooLong,
    /// The witness key is not a verifier key.
    #[error("`witness_key`: {0}")]
    BadKey(NoteError),
    /// The witness key is a plain note key, not a cosignature/v1 (type 0x04) one.
    #[error("`witness_key` must be a cosignature/v1 (type 0x04) key")]
    NotACosigner,
    /// The note is malformed, or its text is not a checkpoint.
    #[error("`checkpoint`: {0}")]
    BadNote(NoteError),
    /// The note is not signed by this log's key.
    #[error("`checkpoint` is not signed by this log's key")]
    NotSignedByLog,
    /// The witness's cosignature is missing or does not verify.
    #[error("cosignature: {0}")]
    BadCosignature(NoteError),
    /// This log signed no checkpoint of the note's size.
    #[error("this server signed no checkpoint of that size")]
    UnknownCheckpoint {
        /// The size the note names.
        size: u64,
    },
    /// This log signed a checkpoint of that size with another root: a fork.
    #[error("the checkpoint's root differs from the one this server signed at that size")]
    RootMismatch {
        /// The size the note names.
        size: u64,
    },
    /// Storage failed (the server's fault, not the submitter's).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl WitnessError {
    /// True when the submitter is at fault; false for storage failures.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, WitnessError::Ledger(_))
    }
}

impl From<sqlx::Error> for WitnessError {
    fn from(e: sqlx::Error) -> Self {
        WitnessError::Ledger(e.into())
    }
}

/// A cosignature as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Cosignature {
    /// Tree size of the checkpoint cosigned.
    pub size: u64,
    /// The witness's key name.
    pub witness: String,
    /// The witness's verifier key (vkey); one line is kept per key and size.
    pub witness_key: String,
    /// The cosignature's own timestamp, seconds since the epoch.
    pub timestamp: u64,
    /// The signature line, as served after the checkpoint's note.
    pub line: String,
}

/// A size as a column value; sizes beyond `i64` name no stored checkpoint.
fn size_column(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// The line of `witness`'s cosignature that carries the verified `timestamp`.
fn cosignature_line(note: &SignedNote, witness: &NoteVerifier, timestamp: u64) -> Option<String> {
    note.signatures
        .iter()
        .filter(|s| s.name == witness.name() && s.key_id == witness.key_id())
        .find(|s| s.cosignature_timestamp() == Some(timestamp))
        .map(|s| s.to_line())
}

impl Ledger {
    /// Checks a witness's cosignature of a checkpoint this log signed and stores its
    /// line (see the module docs for the checks, in order).
    ///
    /// `witness_key` is the witness's verifier key (`name+keyid+base64(0x04 || key)`);
    /// `checkpoint` is this log's checkpoint note with the witness's line added.
    pub async fn accept_cosignature(
        &self,
        witness_key: &str,
        checkpoint: &str,
    ) -> Result<Cosignature, WitnessError> {
        if checkpoint.len() > MAX_NOTE_BYTES {
            return Err(WitnessError::TooLong);
        }
        let witness = NoteVerifier::parse(witness_key.trim()).map_err(WitnessError::BadKey)?;
        if witness.key_type() != KeyType::CosignatureV1 {
            return Err(WitnessError::NotACosigner);
        }
        let note = SignedNote::parse(checkpoint).map_err(WitnessError::BadNote)?;
        note.verify(&self.verifier())
            .map_err(|_| WitnessError::NotSignedByLog)?;
        let body = Checkpoint::parse_body(&note.body).map_err(WitnessError::BadNote)?;
        let timestamp = note
            .verified_timestamp_cosig(&witness)
            .map_err(WitnessError::BadCosignature)?;
        let stored = sqlx::query("SELECT root FROM ledger_checkpoints WHERE size = $1")
            .bind(size_column(body.size))
            .fetch_optional(self.db().pool())
            .await?;
        let Some(stored) = stored else {
            return Err(WitnessError::UnknownCheckpoint { size: body.size });
        };
        let root: Vec<u8> = stored.try_get("root")?;
        if root.as_slice() != body.root.as_slice() {
            return Err(WitnessError::RootMismatch { size: body.size });
        }
        // `verified_timestamp_cosig` read the timestamp from one of these lines.
        let line = cosignature_line(&note, &witness, timestamp).ok_or_else(|| {
            WitnessError::BadCosignature(NoteError::NotSigned {
                name: witness.name().to_string(),
                key_id: hex::encode(witness.key_id()),
            })
        })?;
        let accepted = Cosignature {
            size: body.size,
            witness: witness.name().to_string(),
            witness_key: witness.to_vkey(),
            timestamp,
            line,
        };
        sqlx::query(
            "INSERT INTO ledger_cosignatures (size, witness_key, line, cosigned_s, received_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (size, witness_key) DO UPDATE SET \
             line = excluded.line, cosigned_s = excluded.cosigned_s, received_ms = excluded.received_ms",
        )
        .bind(size_column(accepted.size))
        .bind(accepted.witness_key.clone())
        .bind(accepted.line.clone())
        .bind(i64::try_from(timestamp).unwrap_or(i64::MAX))
        .bind(now_ms())
        .execute(self.db().pool())
        .await?;
        Ok(accepted)
    }

    /// The checkpoint's note with every stored witness cosignature line appended,
    /// ordered by witness key.
    pub async fn with_cosignatures(
        &self,
        checkpoint: &StoredCheckpoint,
    ) -> Result<String, LedgerError> {
        let rows = sqlx::query(
            "SELECT line FROM ledger_cosignatures WHERE size = $1 ORDER BY witness_key",
        )
        .bind(size_column(checkpoint.size))
        .fetch_all(self.db().pool())
        .await?;
        let mut note = checkpoint.note.clone();
        for row in rows {
            note.push_str(&row.try_get::<String, _>("line")?);
        }
        Ok(note)
    }
}

#[cfg(test)]
mod tests {
    use super::{WitnessError, cosignature_line};
    use crate::note::{Checkpoint, NoteError, NoteSigner, SignedNote};

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn the_stored_line_is_the_one_with_the_verified_timestamp() {
        let log = signer("log.example/ledger", 1);
        let witness = signer("witness.example/w", 2);
        let cp = Checkpoint {
            origin: "log.example/ledger".into(),
            size: 3,
            root: [7; 32],
            extensions: Vec::new(),
        };
        let body = cp.body();
        let first = witness.cosign(&body, 100).unwrap();
        let second = witness.cosign(&body, 200).unwrap();
        let text = format!("{}{first}{second}", log.sign_checkpoint(&cp).unwrap());
        let note = SignedNote::parse(&text).unwrap();
        let cosigner = witness.cosigner_verifier();
        assert_eq!(note.verified_timestamp_cosig(&cosigner), Ok(200));
        assert_eq!(cosignature_line(&note, &cosigner, 200), Some(second));
        assert_eq!(cosignature_line(&note, &cosigner, 100), Some(first));
        assert_eq!(cosignature_line(&note, &cosigner, 300), None);
        // The log's own line is never taken for the witness's.
        assert_eq!(cosignature_line(&note, &log.cosigner_verifier(), 200), None);
    }

    #[test]
    fn only_storage_failures_are_the_servers_fault() {
        assert!(WitnessError::TooLong.is_client_error());
        assert!(WitnessError::BadNote(NoteError::MalformedNote("x")).is_client_error());
        assert!(WitnessError::UnknownCheckpoint { size: 1 }.is_client_error());
        assert!(WitnessError::RootMismatch { size: 1 }.is_client_error());
        assert!(!WitnessError::Ledger(crate::LedgerError::Corrupt("x".into())).is_client_error());
    }
}
