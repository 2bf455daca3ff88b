//! Data keys, the key-encryption key (KEK) and its key file, key ids, and the two traits
//! that connect them to the rest: [`KeyWrapper`] (what wraps data keys: a KEK file now,
//! a KMS later) and [`KeyLookup`] (what finds a file's data key: one key or a keyring).

use std::fmt;
use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::SealError;
use crate::format::{SecretBuf, TAG_LEN, wipe};
use crate::fsutil::write_secret_file;

const DATA_KEY_ID_CONTEXT: &str = "pdx 2026-12 seal data key id v1";
const KEK_ID_CONTEXT: &str = "pdx 2026-12 seal kek id v1";
const WRAP_KEY_CONTEXT: &str = "pdx 2026-12 seal wrap key v1";
/// The start of the associated data of every wrapped key.
const WRAP_AAD_PREFIX: &[u8] = b"pdx-seal-keyring/1";
/// Bytes of a wrapped data key: nonce, ciphertext of 32 bytes, tag.
pub(crate) const WRAPPED_LEN: usize = NONCE_LEN + 32 + TAG_LEN;

/// `N` bytes from the operating system's random number generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], SealError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| SealError::Crypto)?;
    Ok(out)
}

/// The public, one-way identifier of a key: 8 bytes of a BLAKE3 key derivation of it,
/// shown as 16 hex digits. It reveals nothing of the key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// The id with these bytes (as read from a header).
    pub fn from_bytes(bytes: [u8; 8]) -> KeyId {
        KeyId(bytes)
    }

    /// The id's bytes (as written in a header).
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// Parses 16 hex digits; `None` for anything else.
    pub fn parse(text: &str) -> Option<KeyId> {
        let mut out = [0u8; 8];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(KeyId(out))
    }

    /// The id of `secret` under a derivation context.
    fn derive(context: &str, secret: &[u8; 32]) -> KeyId {
        let full = blake3::derive_key(context, secret);
        let mut id = [0u8; 8];
        id.copy_from_slice(&full[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 32-byte AES-256 data key, which seals files (through a per-file key derived from
/// it). Deliberately neither `Debug`, `Display` nor `Clone`; overwritten when dropped.
pub struct DataKey {
    bytes: [u8; 32],
    id: KeyId,
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Result<DataKey, SealError> {
        let mut bytes = random_bytes::<32>()?;
        let key = DataKey::from_bytes(bytes);
        wipe(&mut bytes);
        Ok(key)
    }

    /// The key with these bytes (for a [`KeyWrapper`] that unwraps keys itself, such as
    /// a KMS client). The caller wipes its own copy.
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey {
            id: KeyId::derive(DATA_KEY_ID_CONTEXT, &bytes),
            bytes,
        }
    }

    /// The key's public id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key bytes, for a [`KeyWrapper`] to wrap; never print or store them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

/// Finds the data key a sealed file names in its header.
pub trait KeyLookup {
    /// The data key with id `id`, or why there is none
    /// ([`SealError::WrongKey`], [`SealError::UnknownKey`]).
    fn data_key(&self, id: KeyId) -> Result<&DataKey, SealError>;
}

/// A single key opens only the files sealed under it.
impl KeyLookup for DataKey {
    fn data_key(&self, id: KeyId) -> Result<&DataKey, SealError> {
        if id == self.id {
            Ok(self)
        } else {
            Err(SealError::WrongKey {
                file: id,
                given: self.id,
            })
        }
    }
}

/// What wraps data keys for the keyring: a [`Kek`] from a key file now; a KMS key named
/// by a URL later (its `name` is then the URL, and the two methods call the KMS).
pub trait KeyWrapper {
    /// The wrapper's public name, recorded in the keyring (`kek:<KEK id>` for a [`Kek`]).
    fn name(&self) -> String;
    /// `key` wrapped: encrypted and authenticated together with its id.
    fn wrap_data_key(&self, key: &DataKey) -> Result<Vec<u8>, SealError>;
    /// The key `wrapped` holds, which must have id `id`
    /// ([`SealError::KeyringTampered`] otherwise).
    fn unwrap_data_key(&self, id: KeyId, wrapped: &[u8]) -> Result<DataKey, SealError>;
}

/// The key-encryption key: 32 bytes from a key file of 64 hex digits and a newline,
/// mode 0600, like pdx's other key files. Deliberately neither `Debug`, `Display` nor
/// `Clone`; overwritten when dropped.
pub struct Kek {
    bytes: [u8; 32],
    id: KeyId,
}

impl Kek {
    /// The KEK with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Kek {
        Kek {
            id: KeyId::derive(KEK_ID_CONTEXT, &bytes),
            bytes,
        }
    }

    /// The KEK's public id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Reads the key file at `path` (64 hex digits, surrounding whitespace allowed);
    /// never creates one.
    pub fn load(path: &Path) -> Result<Kek, SealError> {
        // Wiped when dropped, like every buffer that held key bytes.
        let text = SecretBuf(std::fs::read(path)?);
        let mut bytes = [0u8; 32];
        let parsed = std::str::from_utf8(&text.0)
            .ok()
            .is_some_and(|t| hex::decode_to_slice(t.trim(), &mut bytes).is_ok());
        if !parsed {
            wipe(&mut bytes);
            return Err(SealError::BadKeyFile(path.display().to_string()));
        }
        let kek = Kek::from_bytes(bytes);
        wipe(&mut bytes);
        Ok(kek)
    }

    /// Creates a new random KEK in a new key file at `path` (mode 0600); fails if the
    /// file exists.
    pub fn create(path: &Path) -> Result<Kek, SealError> {
        let kek = Kek::from_bytes(random_bytes::<32>()?);
        let text = SecretBuf(hex::encode(kek.bytes).into_bytes());
        write_secret_file(path, &text.0)?;
        Ok(kek)
    }

    /// Reads the key file at `path`, or creates one there if there is none; the flag
    /// says whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Kek, bool), SealError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((Kek::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match Kek::create(path) {
                Ok(kek) => Ok((kek, true)),
                // Another process created it a moment ago: use that one.
                Err(SealError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok((Kek::load(path)?, false))
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The AES-256-GCM key that wraps data keys.
    fn wrapping_key(&self) -> Result<LessSafeKey, SealError> {
        let mut key = blake3::derive_key(WRAP_KEY_CONTEXT, &self.bytes);
        let unbound = UnboundKey::new(&AES_256_GCM, &key);
        wipe(&mut key);
        Ok(LessSafeKey::new(unbound.map_err(|_| SealError::Crypto)?))
    }

    /// The associated data of a wrapped key: prefix, KEK id, data key id.
    fn wrap_aad(&self, id: KeyId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(WRAP_AAD_PREFIX.len() + 16);
        aad.extend_from_slice(WRAP_AAD_PREFIX);
        aad.extend_from_slice(self.id.as_bytes());
        aad.extend_from_slice(id.as_bytes());
        aad
    }
}

impl Drop for Kek {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

impl KeyWrapper for Kek {
    fn name(&self) -> String {
        format!("kek:{}", self.id)
    }

    fn wrap_data_key(&self, key: &DataKey) -> Result<Vec<u8>, SealError> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut sealed = SecretBuf::with_capacity(32 + TAG_LEN);
        sealed.0.extend_from_slice(key.expose_secret());
        let aad = self.wrap_aad(key.id());
        let tag = self
            .wrapping_key()?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut sealed.0,
            )
            .map_err(|_| SealError::Crypto)?;
        // `sealed` now holds ciphertext; it is wiped on drop all the same.
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed.0);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn unwrap_data_key(&self, id: KeyId, wrapped: &[u8]) -> Result<DataKey, SealError> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(SealError::BadKeyring("a wrapped key is not 60 bytes"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
        let mut buf = SecretBuf::with_capacity(32 + TAG_LEN);
        buf.0.extend_from_slice(&wrapped[NONCE_LEN..]);
        let aad = self.wrap_aad(id);
        let mut bytes = [0u8; 32];
        let opened = self
            .wrapping_key()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut buf.0,
            )
            .map(|plain| {
                if plain.len() == bytes.len() {
                    bytes.copy_from_slice(plain);
                    true
                } else {
                    false
                }
            });
        if !matches!(opened, Ok(true)) {
            wipe(&mut bytes);
            return Err(SealError::KeyringTampered(id));
        }
        let key = DataKey::from_bytes(bytes);
        wipe(&mut bytes);
        if key.id() != id {
            return Err(SealError::KeyringTampered(id));
        }
        Ok(key)
    }
}
