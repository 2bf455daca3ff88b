//! The one error type of the crate.

use std::io;

use crate::keys::KeyId;

/// Why sealing, opening or a key operation failed.
///
/// No variant carries plaintext, key material or bytes of a file: only segment
/// positions, byte counts, key ids and KEK names (public one-way values), static
/// descriptions and the operating system's I/O errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Reading or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
    /// The file does not start with the `PDXSEAL1` magic.
    #[error("not a sealed file (no PDXSEAL1 header)")]
    NotSealed,
    /// The header names a format version this build does not read.
    #[error("sealed file format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u16),
    /// The header names a segment size format version 1 does not use.
    #[error("sealed file segment size {0} is not supported (version 1 uses 65536)")]
    UnsupportedSegmentSize(u32),
    /// The file was sealed under another data key than the one given.
    #[error("the file was sealed under data key {file}, not under the given key {given}")]
    WrongKey {
        /// The key id in the file's header.
        file: KeyId,
        /// The id of the key the caller gave.
        given: KeyId,
    },
    /// The file's data key is not in the keyring.
    #[error("the file's data key {0} is not in the keyring")]
    UnknownKey(KeyId),
    /// The file ends early: cut at a segment boundary, or shorter than its layout allows.
    #[error("the sealed file is truncated")]
    Truncated,
    /// A segment authenticates, but at another position of the file.
    #[error("segment {segment} of the sealed file is out of order (segments moved or swapped)")]
    OutOfOrder {
        /// The position (from 0) at which the misplaced segment was found.
        segment: u64,
    },
    /// A segment fails authentication: altered, damaged, or from another file.
    #[error("segment {segment} of the sealed file failed authentication (altered or damaged)")]
    Tampered {
        /// The position (from 0) of the segment.
        segment: u64,
    },
    /// The keyring is wrapped under another KEK than the one given.
    #[error("the keyring is wrapped by {keyring}, not by the given key {given}")]
    WrongKek {
        /// The wrapper name the keyring records.
        keyring: String,
        /// The name of the wrapper the caller gave.
        given: String,
    },
    /// A key file does not hold 32 bytes as 64 hex digits.
    #[error("the key file {0} does not hold 32 bytes as 64 hex digits")]
    BadKeyFile(String),
    /// The keyring file is not a keyring this build reads.
    #[error("the keyring is malformed: {0}")]
    BadKeyring(&'static str),
    /// A wrapped data key fails authentication or does not match its id.
    #[error("the keyring entry of data key {0} failed authentication")]
    KeyringTampered(KeyId),
    /// A read asked for bytes outside the plaintext.
    #[error("range {start}..{end} is outside the plaintext of {len} bytes")]
    RangeOutOfBounds {
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The plaintext length.
        len: u64,
    },
    /// The system random number generator or a cipher setup failed.
    #[error("the system random number generator or the cipher setup failed")]
    Crypto,
}

/// I/O errors raised by [`crate::SealedReader`]'s `Read` carry a [`SealError`] inside
/// (so `Read` can report it); this takes it back out, so `?` on any I/O result gives
/// the distinct variant rather than a wrapped one.
impl From<io::Error> for SealError {
    fn from(e: io::Error) -> Self {
        if !e.get_ref().is_some_and(|inner| inner.is::<SealError>()) {
            return SealError::Io(e);
        }
        match e.into_inner().map(|inner| inner.downcast::<SealError>()) {
            Some(Ok(seal)) => *seal,
            // Unreachable: checked just above. Kept total rather than panicking.
            _ => SealError::Io(io::Error::other("a wrapped error was lost")),
        }
    }
}

/// The other direction, for `Read`/`Write` implementations: an I/O error stays itself,
/// anything else travels as `InvalidData` with the [`SealError`] inside.
impl From<SealError> for io::Error {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Io(inner) => inner,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
