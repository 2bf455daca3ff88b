//! The keyring: every data key, wrapped under the KEK, in one JSON file (the crate
//! documentation writes out its layout).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SealError;
use crate::fsutil::write_private_atomic;
use crate::keys::{DataKey, Kek, KeyId, KeyLookup, KeyWrapper};

/// The `format` of the keyring files written here.
pub const KEYRING_FORMAT: &str = "pdx-seal-keyring/1";
/// The keyring's file name in the zones root (`<data-dir>/zones/keyring.json`).
pub const KEYRING_FILE_NAME: &str = "keyring.json";

/// The keyring as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    format: String,
    wrapped_by: String,
    current: String,
    keys: Vec<WrappedEntry>,
}

/// One wrapped data key as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedEntry {
    id: String,
    wrapped: String,
}

/// The data keys, unwrapped in memory: the current one (which seals new files) and the
/// older ones (which still open the files sealed under them).
pub struct Keyring {
    path: PathBuf,
    wrapped_by: String,
    current: DataKey,
    older: BTreeMap<KeyId, DataKey>,
}

impl Keyring {
    /// Creates a keyring at `path` with one fresh data key wrapped by `wrapper`; fails
    /// if a file exists there.
    pub fn create(path: &Path, wrapper: &dyn KeyWrapper) -> Result<Keyring, SealError> {
        let keyring = Keyring {
            path: path.to_path_buf(),
            wrapped_by: wrapper.name(),
            current: DataKey::generate()?,
            older: BTreeMap::new(),
        };
        let bytes = encode(&keyring.wrapped_by, wrapper, &keyring.current, &[])?;
        write_private_atomic(path, &bytes, false)?;
        Ok(keyring)
    }

    /// Opens the keyring at `path`, unwrapping every key with `wrapper`.
    pub fn open(path: &Path, wrapper: &dyn KeyWrapper) -> Result<Keyring, SealError> {
        let bytes = std::fs::read(path)?;
        // serde_json's messages may quote the document: keep them out of the error.
        let file: KeyringFile = serde_json::from_slice(&bytes)
            .map_err(|_| SealError::BadKeyring("not a keyring JSON document"))?;
        if file.format != KEYRING_FORMAT {
            return Err(SealError::BadKeyring("unknown keyring format"));
        }
        let given = wrapper.name();
        if file.wrapped_by != given {
            return Err(SealError::WrongKek {
                keyring: file.wrapped_by,
                given,
            });
        }
        let current_id = KeyId::parse(&file.current).ok_or(SealError::BadKeyring(
            "the current key id is not 16 hex digits",
        ))?;
        let mut keys = BTreeMap::new();
        for entry in &file.keys {
            let id = KeyId::parse(&entry.id)
                .ok_or(SealError::BadKeyring("a key id is not 16 hex digits"))?;
            let wrapped = hex::decode(&entry.wrapped)
                .map_err(|_| SealError::BadKeyring("a wrapped key is not hex"))?;
            let key = wrapper.unwrap_data_key(id, &wrapped)?;
            if keys.insert(id, key).is_some() {
                return Err(SealError::BadKeyring("a key id appears twice"));
            }
        }
        let current = keys.remove(&current_id).ok_or(SealError::BadKeyring(
            "the current key is not among the keys",
        ))?;
        Ok(Keyring {
            path: path.to_path_buf(),
            wrapped_by: file.wrapped_by,
            current,
            older: keys,
        })
    }

    /// Opens the keyring at `path`, or creates one there if there is none.
    pub fn open_or_create(path: &Path, wrapper: &dyn KeyWrapper) -> Result<Keyring, SealError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Keyring::open(path, wrapper),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match Keyring::create(path, wrapper) {
                    // Another process created it a moment ago: open that one.
                    Err(SealError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Keyring::open(path, wrapper)
                    }
                    created => created,
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The key new files are sealed under.
    pub fn current(&self) -> &DataKey {
        &self.current
    }

    /// The id of the key new files are sealed under.
    pub fn current_id(&self) -> KeyId {
        self.current.id()
    }

    /// The ids of every key, the current one first.
    pub fn key_ids(&self) -> Vec<KeyId> {
        std::iter::once(self.current.id())
            .chain(self.older.keys().copied())
            .collect()
    }

    /// The file the keyring lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name of the wrapper the keyring is wrapped by (`kek:<KEK id>`).
    pub fn wrapped_by(&self) -> &str {
        &self.wrapped_by
    }

    /// Adds a fresh data key and makes it current (new files are sealed under it; files
    /// sealed under the older ones stay readable), rewriting the keyring file. `wrapper`
    /// must be the one the keyring is wrapped by.
    pub fn new_data_key(&mut self, wrapper: &dyn KeyWrapper) -> Result<KeyId, SealError> {
        self.check_wrapper(wrapper)?;
        let fresh = DataKey::generate()?;
        let others: Vec<&DataKey> = std::iter::once(&self.current)
            .chain(self.older.values())
            .collect();
        let bytes = encode(&self.wrapped_by, wrapper, &fresh, &others)?;
        // The file first: memory changes only once the new key is durably stored.
        write_private_atomic(&self.path, &bytes, true)?;
        let id = fresh.id();
        let previous = std::mem::replace(&mut self.current, fresh);
        self.older.insert(previous.id(), previous);
        Ok(id)
    }

    /// Re-wraps every data key under `new_wrapper` and rewrites the keyring file; no
    /// sealed file changes. Afterwards only `new_wrapper` opens the keyring.
    pub fn rewrap(&mut self, new_wrapper: &dyn KeyWrapper) -> Result<(), SealError> {
        let name = new_wrapper.name();
        let others: Vec<&DataKey> = self.older.values().collect();
        let bytes = encode(&name, new_wrapper, &self.current, &others)?;
        write_private_atomic(&self.path, &bytes, true)?;
        self.wrapped_by = name;
        Ok(())
    }

    /// Refuses a wrapper other than the keyring's.
    fn check_wrapper(&self, wrapper: &dyn KeyWrapper) -> Result<(), SealError> {
        let given = wrapper.name();
        if given == self.wrapped_by {
            Ok(())
        } else {
            Err(SealError::WrongKek {
                keyring: self.wrapped_by.clone(),
                given,
            })
        }
    }
}

impl KeyLookup for Keyring {
    fn data_key(&self, id: KeyId) -> Result<&DataKey, SealError> {
        if id == self.current.id() {
            return Ok(&self.current);
        }
        self.older.get(&id).ok_or(SealError::UnknownKey(id))
    }
}

/// Ids only: the keys themselves are never printed.
impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("wrapped_by", &self.wrapped_by)
            .field("current", &self.current.id())
            .field("older", &self.older.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The keyring file's bytes: `current` first, then `others`, each wrapped by `wrapper`.
fn encode(
    wrapped_by: &str,
    wrapper: &dyn KeyWrapper,
    current: &DataKey,
    others: &[&DataKey],
) -> Result<Vec<u8>, SealError> {
    let mut keys = Vec::with_capacity(1 + others.len());
    for key in std::iter::once(current).chain(others.iter().copied()) {
        keys.push(WrappedEntry {
            id: key.id().to_string(),
            wrapped: hex::encode(wrapper.wrap_data_key(key)?),
        });
    }
    let file = KeyringFile {
        format: KEYRING_FORMAT.to_owned(),
        wrapped_by: wrapped_by.to_owned(),
        current: current.id().to_string(),
        keys,
    };
    let mut bytes = serde_json::to_vec_pretty(&file)
        .map_err(|_| SealError::BadKeyring("the keyring could not be encoded"))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Rotates the KEK of the keyring at `keyring_path`: loads the old KEK from
/// `old_kek_file` (which must open the keyring), loads the new one from `new_kek_file`
/// or creates it there (mode 0600), re-wraps every data key under the new KEK, and
/// checks that the rewritten keyring opens with it. Sealed files are not touched.
/// Returns how many data keys were re-wrapped. The old key file is left in place: the
/// operator destroys it once the rotation is confirmed (and backups made with it age out).
pub fn rotate_kek(
    keyring_path: &Path,
    old_kek_file: &Path,
    new_kek_file: &Path,
) -> Result<usize, SealError> {
    let old = Kek::load(old_kek_file)?;
    let mut keyring = Keyring::open(keyring_path, &old)?;
    let (new, _created) = Kek::load_or_create(new_kek_file)?;
    keyring.rewrap(&new)?;
    let reopened = Keyring::open(keyring_path, &new)?;
    if reopened.key_ids() != keyring.key_ids() {
        return Err(SealError::BadKeyring(
            "the re-wrapped keyring does not hold the same keys",
        ));
    }
    Ok(reopened.key_ids().len())
}
