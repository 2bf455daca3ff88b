//! The checkpoint signing key on disk.
//!
//! The file holds one line in the signed-note private-key format used by
//! `golang.org/x/mod/sumdb/note`: `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>`,
//! so the key can be moved between tools. It is created on first start with mode 0600
//! ([`load_or_create`]) and never logged; only the verifier key
//! (`<name>+<key id>+<base64(0x01 || pubkey)>`) is ever shown. Tools that only read the
//! log use [`load`], which never creates a key.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;

use crate::note::{NoteError, NoteSigner};

/// Errors reading or writing a key file. Messages never include key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// Path of the key file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// There is no key file (from [`load`], which never creates one).
    #[error("no key file at {0}")]
    Missing(String),
    /// The file is not a signed-note private key.
    #[error("key file {0} is not a signed-note Ed25519 private key")]
    Malformed(String),
    /// The name is not a valid note key name.
    #[error("invalid key name: {0}")]
    Note(#[from] NoteError),
}

const ALG_ED25519: u8 = 0x01;

/// Encodes a signing key in the private-key format.
pub fn encode_private_key(name: &str, key: &SigningKey) -> Result<String, KeyFileError> {
    let signer = NoteSigner::new(name, key.clone())?;
    let key_id = hex::encode(signer.verifier().key_id());
    let mut bytes = Vec::with_capacity(33);
    bytes.push(ALG_ED25519);
    bytes.extend_from_slice(&key.to_bytes());
    Ok(format!(
        "PRIVATE+KEY+{name}+{key_id}+{}",
        STANDARD.encode(bytes)
    ))
}

/// Decodes the private-key format into a note signer.
pub fn decode_private_key(text: &str, path_for_errors: &str) -> Result<NoteSigner, KeyFileError> {
    let malformed = || KeyFileError::Malformed(path_for_errors.to_string());
    let rest = text
        .trim()
        .strip_prefix("PRIVATE+KEY+")
        .ok_or_else(malformed)?;
    // Names never contain '+', but standard base64 may: split from the left.
    let mut parts = rest.splitn(3, '+');
    let name = parts.next().ok_or_else(malformed)?;
    let _key_id = parts.next().ok_or_else(malformed)?;
    let b64 = parts.next().ok_or_else(malformed)?;
    let bytes = STANDARD.decode(b64).map_err(|_| malformed())?;
    if bytes.len() != 33 || bytes[0] != ALG_ED25519 {
        return Err(malformed());
    }
    let seed: [u8; 32] = bytes[1..].try_into().map_err(|_| malformed())?;
    Ok(NoteSigner::new(name, SigningKey::from_bytes(&seed))?)
}

/// Loads the key at `path` without creating anything: [`KeyFileError::Missing`] if there
/// is no file there. For readers, such as an offline verifier, which must never make a
/// key of their own.
pub fn load(path: &Path) -> Result<NoteSigner, KeyFileError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => decode_private_key(&text, &shown),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeyFileError::Missing(shown)),
        Err(source) => Err(KeyFileError::Io {
            path: shown,
            source,
        }),
    }
}

/// Loads the key at `path`, or creates one named `name` there (mode 0600) if absent.
pub fn load_or_create(path: &Path, name: &str) -> Result<NoteSigner, KeyFileError> {
    match load(path) {
        Err(KeyFileError::Missing(shown)) => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let text = encode_private_key(name, &key)?;
            write_secret_file(path, text.as_bytes()).map_err(|source| KeyFileError::Io {
                path: shown,
                source,
            })?;
            Ok(NoteSigner::new(name, key)?)
        }
        loaded => loaded,
    }
}

/// Writes a file only its owner can read, failing if it already exists.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reloads_to_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.key");
        let a = load_or_create(&path, "pdx.example/ledger").unwrap();
        let b = load_or_create(&path, "ignored-on-reload").unwrap();
        assert_eq!(a.verifier().to_vkey(), b.verifier().to_vkey());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn load_never_creates_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("ledger.key");
        let err = load(&path).err().unwrap();
        assert!(matches!(&err, KeyFileError::Missing(p) if *p == path.display().to_string()));
        assert!(!path.exists() && !dir.path().join("keys").exists());
        let created = load_or_create(&path, "pdx.example/ledger").unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(created.verifier().to_vkey(), loaded.verifier().to_vkey());
    }

    #[test]
    fn malformed_key_files_are_refused_without_echoing_them() {
        for text in ["", "PRIVATE+KEY+x", "PRIVATE+KEY+n+00000000+!!!", "hello"] {
            let err = decode_private_key(text, "f").err().unwrap();
            assert!(!err.to_string().contains("!!!"));
        }
    }
}
