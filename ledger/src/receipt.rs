//! Offline receipts: one entry, its inclusion proof and a signed checkpoint in one JSON
//! file. Anyone holding the log's public key can check a receipt with no database and no
//! server: the entry's own hashes, then the proof from its leaf to the signed root.

use serde::{Deserialize, Serialize};

use crate::entry::{Entry, Hash32};
use crate::merkle::{self, Blake3Hasher, MerkleHasher};
use crate::note::{Checkpoint, NoteVerifier, open_checkpoint};

/// The format tag written into every receipt.
pub const RECEIPT_FORMAT: &str = "pdx-ledger-receipt/v1";

/// A self-contained proof that an entry is in the signed log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    /// The entry.
    pub entry: Entry,
    /// Tree size the proof is for (the checkpoint's size).
    pub tree_size: u64,
    /// RFC 9162 inclusion proof of leaf `entry.seq` at `tree_size`, bottom-up.
    pub inclusion_proof: Vec<Hash32>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

/// Why a receipt does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// Unknown format tag.
    #[error("unknown receipt format")]
    Format,
    /// The entry's own hashes are wrong.
    #[error("entry does not match its hashes: {0}")]
    Entry(#[from] crate::entry::EntryCheck),
    /// The checkpoint is not signed by the given key.
    #[error("checkpoint does not verify: {0}")]
    Checkpoint(#[from] crate::note::NoteError),
    /// The checkpoint is for another size or origin.
    #[error("checkpoint is for size {0}, receipt says {1}")]
    SizeMismatch(u64, u64),
    /// The proof does not lead to the signed root.
    #[error("inclusion proof does not verify: {0}")]
    Proof(#[from] merkle::MerkleError),
}

impl Receipt {
    /// Checks the receipt against the log's public key; returns the checkpoint it is under.
    pub fn verify(&self, key: &NoteVerifier) -> Result<Checkpoint, ReceiptError> {
        if self.format != RECEIPT_FORMAT {
            return Err(ReceiptError::Format);
        }
        self.entry.check_hashes()?;
        let cp = open_checkpoint(&self.checkpoint, key)?;
        if cp.size != self.tree_size {
            return Err(ReceiptError::SizeMismatch(cp.size, self.tree_size));
        }
        let proof: Vec<merkle::Hash> = self.inclusion_proof.iter().map(|h| h.0).collect();
        let leaf = Blake3Hasher::leaf(self.entry.leaf_data());
        merkle::verify_inclusion::<Blake3Hasher>(self.entry.seq, cp.size, &leaf, &proof, &cp.root)?;
        Ok(cp)
    }
}
