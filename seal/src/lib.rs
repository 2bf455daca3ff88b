//! # pdx-seal: encryption at rest for the zone files
//!
//! Every file pdx keeps under `<data-dir>/zones/` (raw uploads, de-identified versions,
//! quarantined and released outputs, the FHE key indexes) is stored *sealed*: encrypted
//! and authenticated with AES-256-GCM (from *ring*) in 64 KiB segments, under a **data
//! key** that is itself stored only **wrapped** under a **key-encryption key** (KEK). A
//! stolen disk, backup volume or copied directory shows no plaintext; a changed,
//! truncated, reordered or spliced file fails to read with an error that names what went
//! wrong and never carries a data value.
//!
//! Certificates, release hashes and content addressing stay over the **plaintext**: a
//! writer hashes the bytes it feeds to a [`SealedWriter`], a verifier hashes what a
//! [`SealedReader`] returns. Sealing the same plaintext twice gives different files
//! (each has a fresh salt), so nothing may hash the sealed bytes and call it the
//! content hash.
//!
//! ## Keys
//!
//! ```text
//! KEK file (zones KEK)      32 random bytes, stored as 64 hex digits + "\n", mode 0600
//!   │                       (a KMS key named by a URL later: see [`KeyWrapper`])
//!   └─ wraps ─► keyring     <data-dir>/zones/keyring.json: every data key, wrapped
//!                 │
//!                 └─ data key (current)  ─► seals new files
//!                    data keys (older)   ─► still open the files sealed under them
//! ```
//!
//! - **Key ids** are public one-way values: the first 8 bytes of
//!   `BLAKE3-derive-key("pdx 2026-12 seal data key id v1", data key)` for a data key,
//!   `BLAKE3-derive-key("pdx 2026-12 seal kek id v1", KEK)` for a KEK. A sealed file's
//!   header names its data key by id, so a reader picks the key from the keyring, and a
//!   reader given the wrong key says so before decrypting anything ([`SealError::WrongKey`],
//!   [`SealError::UnknownKey`]).
//! - **Rotating the KEK** ([`rotate_kek`], [`Keyring::rewrap`]) re-wraps every data key
//!   under the new KEK and rewrites only `keyring.json`: no sealed file is touched. After
//!   it, the old KEK no longer opens the keyring ([`SealError::WrongKek`]), and if the
//!   keyring's KEK name were edited back, unwrapping under the old KEK fails
//!   authentication ([`SealError::KeyringTampered`]). The old KEK file is left for the
//!   operator to destroy.
//! - **A new data key** ([`Keyring::new_data_key`]) becomes the key new files are sealed
//!   under; older files keep their key id and stay readable. Files are never re-sealed
//!   in place (a re-encryption, if ever wanted, writes new files).
//! - Key bytes are never printed ([`DataKey`] and [`Kek`] implement neither `Debug` nor
//!   `Display`) and are overwritten when dropped, as are the plaintext buffers of readers
//!   and writers. (The AES key schedules inside *ring* are not: *ring* does not offer it.)
//!
//! ## Sealed file layout (format version 1)
//!
//! ```text
//! header: 54 bytes, in the clear, the associated data of every segment
//!   offset size
//!    0      8   magic         "PDXSEAL1"
//!    8      2   version       u16 big-endian, 1
//!   10      4   segment size  u32 big-endian, 65536: plaintext bytes of every segment
//!                             but the last (version 1 refuses any other value)
//!   14      8   key id        the data key's id (see Keys)
//!   22     32   salt          random per file (ring::rand::SystemRandom)
//! then segments 0 … n−1, n ≥ 1, back to back; segment i is
//!   AES-256-GCM(file key, nonce(i, i = n−1), header, plaintext_i) = ciphertext ‖ 16-byte tag
//!   segments 0 … n−2:  65536 plaintext bytes each (65552 bytes on disk)
//!   segment n−1:       1 … 65536 plaintext bytes (17 … 65552 bytes on disk);
//!                      0 bytes (the tag alone) only when n = 1: the empty file
//! nothing after segment n−1: no lengths, no trailer
//!
//! file key   = BLAKE3-derive-key("pdx 2026-12 seal file key v1", data key ‖ salt)
//! nonce(i,f) = i as u64 big-endian (8 bytes) ‖ 00 00 00 ‖ f (01 for the final segment, else 00)
//! ```
//!
//! **The layout follows from the file length alone**, which is what makes random access
//! and [`plaintext_len`] cheap: with `body = file length − 54`,
//! `n = ceil(body / 65552)`, the final segment has `body − (n−1)·65552` bytes, and the
//! plaintext length is `body − 16·n`. A body shorter than one tag, or a final segment of
//! 16 bytes or fewer after full ones, cannot have been written and reads as
//! [`SealError::Truncated`].
//!
//! **Why each rule** (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár,
//! "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015):
//!
//! - *the segment index in the nonce*: a segment moved, reordered or swapped with
//!   another of the same file fails its tag where it now sits;
//! - *the final flag in the nonce*: a file cut at a segment boundary ends on a segment
//!   sealed as "not final", so it fails; so does a file extended past its final segment;
//! - *a file key per file, from a random 256-bit salt*: a segment spliced in from
//!   another file (even one under the same data key) fails, and since no two files share
//!   a file key, the counter nonces never repeat under one key. Files are written once
//!   and never rewritten in place, so a file key never seals two different streams;
//! - *the header as associated data*: a changed salt or key id fails every segment; the
//!   magic, version and segment size are also checked before any decryption
//!   ([`SealError::NotSealed`], [`SealError::UnsupportedVersion`],
//!   [`SealError::UnsupportedSegmentSize`]).
//!
//! Nothing is returned from a segment before its tag has verified. A reader authenticates
//! the final segment when it opens a file (so its length is trusted and a truncated file
//! fails at once), then decrypts only the segments a read touches, each checked.
//!
//! **Telling failures apart** (all on the error path only, so reads pay nothing for it):
//! a segment that fails where it sits is tried again (a) as the final one flagged
//! "not final": the file was cut at a boundary, [`SealError::Truncated`]; (b) at the
//! other positions of the file: it was moved, [`SealError::OutOfOrder`]; otherwise it
//! was altered or comes from another file: [`SealError::Tampered`]. A file cut *inside*
//! a segment leaves a damaged final segment, which is indistinguishable from an altered
//! one, so it reads as `Tampered` (or `Truncated` when the cut leaves less than a tag).
//!
//! ## Keyring file
//!
//! ```text
//! {
//!   "format": "pdx-seal-keyring/1",
//!   "wrapped_by": "kek:<KEK id, 16 hex>",          // KeyWrapper::name(); a KMS URL later
//!   "current": "<data key id, 16 hex>",            // the key new files are sealed under
//!   "keys": [ { "id": "<16 hex>", "wrapped": "<120 hex>" }, … ]   // current first
//! }
//!
//! wrapped   = nonce (12 random bytes) ‖ AES-256-GCM(wrap key, nonce, AD, data key) (32 + 16)
//! wrap key  = BLAKE3-derive-key("pdx 2026-12 seal wrap key v1", KEK)
//! AD        = "pdx-seal-keyring/1" ‖ KEK id (8 bytes) ‖ data key id (8 bytes)
//! ```
//!
//! The keyring is written atomically (temporary file, fsync, rename, directory fsync)
//! with mode 0600. An unwrapped key must hash to the id it is filed under. The keyring
//! has one writer at a time (the server, or the rotation command with the server
//! stopped): two processes adding data keys at once could lose one.
//!
//! ## Writing and reading
//!
//! - [`SealedWriter`] seals whatever is written to it (`std::io::Write`) into any
//!   writer; [`SealedWriter::finish`] writes the final segment. A writer dropped without
//!   `finish` leaves a file that reads as truncated, never as a shorter valid one.
//! - [`SealedFileWriter`] writes a sealed file atomically: a hidden temporary file in
//!   the target directory (`.<name>.<random>.tmp`, mode 0600, a name `pdx backup` skips),
//!   fsynced, renamed into place on [`SealedFileWriter::commit`] (the destination may be
//!   chosen then, for content addressing), the directory fsynced; dropped uncommitted,
//!   the temporary is removed. [`seal_file`], [`write_sealed`] and [`seal_to_vec`] are
//!   the one-call forms.
//! - [`SealedReader`] implements `Read + Seek` over a sealed file; [`read_range`],
//!   [`read_all`], [`open_bytes`], [`verify`] and [`plaintext_len`] are the one-call
//!   forms (`read_range` is what an object-store adapter's range reads need).
//! - [`AtRest`] is the handle the rest of pdx does all zone I/O through: sealed under
//!   the zones' keyring in the server, plain for library callers over their own files
//!   (benchmarks, fuzz targets, engine unit tests), with the same plaintext meaning.

mod at_rest;
mod error;
mod format;
mod fsutil;
mod keyring;
mod keys;
mod reader;
mod writer;

pub use at_rest::{AtRest, PlainRead, ZoneFileWriter};
pub use error::SealError;
pub use format::{FORMAT_VERSION, HEADER_LEN, MAGIC, SEGMENT_SIZE, TAG_LEN};
pub use keyring::{KEYRING_FILE_NAME, KEYRING_FORMAT, Keyring, rotate_kek};
pub use keys::{DataKey, Kek, KeyId, KeyLookup, KeyWrapper};
pub use reader::{
    SealedReader, is_sealed, open_bytes, plaintext_len, read_all, read_range, verify,
};
pub use writer::{SealedFileWriter, SealedWriter, seal_file, seal_to_vec, write_sealed};

#[cfg(test)]
mod tests;
