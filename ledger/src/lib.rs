//! # pdx-ledger: the append-only record supervisors verify without trusting the server
//!
//! Every economically or legally significant act in pdx (a data asset certificate, a
//! grant decision, a release, a sale, a remittance...) is appended here as an [`Entry`].
//! The design follows transparency logs (Certificate Transparency, Trillian/Tessera):
//!
//! 1. **Hash chain.** Each entry commits to its canonical payload and to the previous
//!    entry's hash ([`entry`] writes down the exact byte layout).
//! 2. **Merkle tree.** The entry hashes are the leaves of an RFC 9162 §2.1 tree
//!    ([`merkle`]), generic over the hash: SHA-256 passes the RFC 6962 vectors, BLAKE3
//!    runs in production. Storage keeps every complete subtree, so a proof costs
//!    O(log n) reads and never rebuilds the tree.
//! 3. **Signed checkpoints.** The tree head is published as a C2SP signed note
//!    ([`note`]) with Ed25519; witnesses may cosign it, and [`witness`] checks and
//!    keeps their cosignatures and serves them with the checkpoint.
//! 4. **Receipts.** Entry + inclusion proof + signed checkpoint in one JSON file
//!    ([`receipt`]) that verifies offline, with nothing but the public key.
//! 5. **Verifier.** [`verify`] walks a whole ledger (from the database or an export
//!    file), recomputes everything and names the first bad seq; given a key that signed
//!    none of the checkpoints, it says the key does not match instead. It needs no
//!    database.
//!
//! Storage ([`store`]) runs on SQLite and PostgreSQL through sqlx's `Any` driver; the
//! database itself rejects UPDATE and DELETE with triggers, and appends are serialised
//! across processes by a lock row. [`Ledger::append`] runs inside the caller's
//! transaction, so a business row and its ledger entry commit together or not at all;
//! [`group`] lets concurrent writers share one such transaction and one commit.
//! Full verification of a SQLite file reads it through a read-only connection of its
//! own (`sqlite_scan`), because sqlx's row-at-a-time hand-over cost more than hashing.
//!
//! This crate depends on no other pdx crate: it is what a supervisor compiles and trusts.
//! Its `openapi` feature (off by default; the server turns it on) adds the OpenAPI
//! schemas of the types the HTTP API sends (the `openapi` module).
//!
//! [`fuzzing`] holds the bodies of the cargo-fuzz targets over these parsers and
//! verifiers (`fuzz/`), so that the ledger's own tests replay their committed inputs.

pub mod canonical;
pub mod db;
pub mod entry;
pub mod export;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod group;
pub mod kinds;
pub mod merkle;
pub mod note;
#[cfg(feature = "openapi")]
pub mod openapi;
mod page;
pub mod receipt;
pub mod signing;
mod sqlite_scan;
pub mod store;
pub mod verify;
pub mod witness;

pub use entry::{Actor, Entry, EntryKind, Hash32};
pub use receipt::Receipt;
pub use store::{Appended, Ledger, LedgerConfig, LedgerError};
pub use witness::{Cosignature, WitnessError};
