//! The byte layout of a sealed file (the crate documentation writes it out): header,
//! segment layout, nonces, the file key, and the wiping of secret bytes.

use ring::aead::{AES_256_GCM, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::error::SealError;
use crate::keys::{DataKey, KeyId};

/// First bytes of every sealed file.
pub const MAGIC: &[u8; 8] = b"PDXSEAL1";
/// The format version written here (and the only one read).
pub const FORMAT_VERSION: u16 = 1;
/// Plaintext bytes per segment (every segment but the last is exactly this long).
pub const SEGMENT_SIZE: usize = 64 * 1024;
/// Bytes of the AES-GCM tag after each segment's ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of the clear header: magic, version, segment size, key id, salt.
pub const HEADER_LEN: usize = 8 + 2 + 4 + 8 + 32;

/// Bytes on disk of a full segment.
pub(crate) const SEALED_SEGMENT_LEN: u64 = (SEGMENT_SIZE + TAG_LEN) as u64;

const FILE_KEY_CONTEXT: &str = "pdx 2026-12 seal file key v1";

/// The clear header of a sealed file.
pub(crate) struct Header {
    /// The data key's id.
    pub(crate) key_id: KeyId,
    /// The per-file salt.
    pub(crate) salt: [u8; 32],
}

impl Header {
    /// The 54 header bytes (offsets as in the crate documentation).
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        out[10..14].copy_from_slice(&(SEGMENT_SIZE as u32).to_be_bytes());
        out[14..22].copy_from_slice(self.key_id.as_bytes());
        out[22..54].copy_from_slice(&self.salt);
        out
    }

    /// Parses and checks the fixed fields; the key id and salt are checked by use.
    pub(crate) fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, SealError> {
        if bytes[0..8] != MAGIC[..] {
            return Err(SealError::NotSealed);
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(SealError::UnsupportedVersion(version));
        }
        let segment = u32::from_be_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
        if segment as usize != SEGMENT_SIZE {
            return Err(SealError::UnsupportedSegmentSize(segment));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[14..22]);
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&bytes[22..54]);
        Ok(Header {
            key_id: KeyId::from_bytes(id),
            salt,
        })
    }
}

/// Where the segments of a sealed body lie, derived from its length alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Number of segments, at least 1.
    pub(crate) segments: u64,
    /// Bytes on disk of the final segment (16 ..= 65552).
    pub(crate) last_sealed: u64,
    /// Plaintext bytes of the whole file.
    pub(crate) plaintext_len: u64,
}

impl Layout {
    /// The layout of a body (the bytes after the header) of `body` bytes.
    pub(crate) fn of_body(body: u64) -> Result<Layout, SealError> {
        let tag = TAG_LEN as u64;
        if body < tag {
            return Err(SealError::Truncated);
        }
        let segments = body.div_ceil(SEALED_SEGMENT_LEN);
        let last_sealed = body - (segments - 1) * SEALED_SEGMENT_LEN;
        // A final segment holds at least one byte unless it is the only one: anything
        // else is a cut inside (or just before) the final segment's tag.
        if last_sealed < tag || (last_sealed == tag && segments > 1) {
            return Err(SealError::Truncated);
        }
        Ok(Layout {
            segments,
            last_sealed,
            plaintext_len: body - segments * tag,
        })
    }

    /// Whether segment `index` is the final one.
    pub(crate) fn is_last(&self, index: u64) -> bool {
        index + 1 == self.segments
    }

    /// Bytes on disk of segment `index`.
    pub(crate) fn sealed_len(&self, index: u64) -> u64 {
        if self.is_last(index) {
            self.last_sealed
        } else {
            SEALED_SEGMENT_LEN
        }
    }

    /// File offset of segment `index`.
    pub(crate) fn offset(index: u64) -> u64 {
        HEADER_LEN as u64 + index * SEALED_SEGMENT_LEN
    }
}

/// The nonce of segment `index`: the index, three zero bytes, the final flag.
pub(crate) fn segment_nonce(index: u64, last: bool) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes[NONCE_LEN - 1] = u8::from(last);
    Nonce::assume_unique_for_key(bytes)
}

/// The AES-256-GCM key of one file: BLAKE3-derive-key(context, data key ‖ salt).
pub(crate) fn file_key(data_key: &DataKey, salt: &[u8; 32]) -> Result<LessSafeKey, SealError> {
    let mut hasher = blake3::Hasher::new_derive_key(FILE_KEY_CONTEXT);
    hasher.update(data_key.expose_secret());
    hasher.update(salt);
    let mut key = *hasher.finalize().as_bytes();
    let unbound = UnboundKey::new(&AES_256_GCM, &key);
    wipe(&mut key);
    Ok(LessSafeKey::new(unbound.map_err(|_| SealError::Crypto)?))
}

/// Overwrites secret bytes with zeros in a way the optimiser may not drop.
pub(crate) fn wipe(bytes: &mut [u8]) {
    for byte in bytes.iter_mut() {
        // SAFETY: `byte` is a valid, aligned, exclusive reference to one initialised u8.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// A byte buffer holding plaintext or key bytes: wiped, spare capacity included, when
/// dropped. Callers reserve its capacity up front so it never reallocates (a
/// reallocation would leave a copy behind in freed memory).
pub(crate) struct SecretBuf(pub(crate) Vec<u8>);

impl SecretBuf {
    /// An empty buffer that can hold `capacity` bytes without reallocating.
    pub(crate) fn with_capacity(capacity: usize) -> SecretBuf {
        SecretBuf(Vec::with_capacity(capacity))
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        let capacity = self.0.capacity();
        self.0.resize(capacity, 0);
        wipe(&mut self.0);
    }
}
