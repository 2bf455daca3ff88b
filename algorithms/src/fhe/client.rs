//! The client side, run by the bank on its own machine: key generation, encryption of
//! the hashed key, decryption of the answer.
//!
//! This is the only module that touches a TFHE-rs `ClientKey`. It is generated here,
//! written by the caller to a private file, read back here, and used to encrypt and
//! decrypt; nothing in the server path ([`super::server`], the sandbox, the HTTP
//! handlers) can deserialise one. The server key is generated compressed (seeded):
//! 60.2 MB instead of about 120 MB, uploaded once per key pair.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tfhe::named::Named;
use tfhe::prelude::*;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};
use tfhe::{
    ClientKey, CompressedFheUint16, CompressedFheUint32, CompressedFheUint64, CompressedServerKey,
    FheBool, FheUint8,
};

use super::server::Answer;
use super::{
    ANSWER_CIPHERTEXT_LIMIT, FheError, KeyWidth, block_parameters, platform_config,
    serialized_type_name,
};

/// Largest serialisation written or read by the client (keys included).
const CLIENT_LIMIT: u64 = 1 << 30;

/// A freshly generated key pair, serialised.
pub struct KeyPair {
    /// The secret `ClientKey`: keep it private (the CLI writes it with mode 0600).
    pub client: Vec<u8>,
    /// The public `CompressedServerKey`: upload it once.
    pub server: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    // The secret half must not end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyPair {{ client: <{} secret bytes>, server: <{} bytes> }}",
            self.client.len(),
            self.server.len()
        )
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> FheError {
    FheError::Internal(format!("{what}: {e}"))
}

/// Generates a key pair under the platform's parameters.
pub fn generate_keys() -> Result<KeyPair, FheError> {
    let secret = ClientKey::generate(platform_config());
    let server = CompressedServerKey::new(&secret);
    let mut client_bytes = Vec::new();
    let mut server_bytes = Vec::new();
    safe_serialize(&secret, &mut client_bytes, CLIENT_LIMIT)
        .map_err(|e| internal("serialising the client key", e))?;
    safe_serialize(&server, &mut server_bytes, CLIENT_LIMIT)
        .map_err(|e| internal("serialising the server key", e))?;
    Ok(KeyPair {
        client: client_bytes,
        server: server_bytes,
    })
}

/// A loaded client key.
pub struct ClientSecret {
    key: ClientKey,
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl ClientSecret {
    /// Reads a client key written by [`generate_keys`]; refuses one under other
    /// parameters than the platform's.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClientSecret, FheError> {
        let key: ClientKey =
            safe_deserialize(bytes, CLIENT_LIMIT).map_err(|_| FheError::Malformed {
                what: "client key file",
                expected: "ClientKey",
            })?;
        if key.computation_parameters() != block_parameters() {
            return Err(FheError::WrongParameters);
        }
        Ok(ClientSecret { key })
    }

    /// Wraps a key generated in this process (the benchmark's).
    pub(crate) fn from_key(key: ClientKey) -> ClientSecret {
        ClientSecret { key }
    }

    /// Encrypts a truncated key hash as the compressed ciphertext the server expects.
    pub fn encrypt_key(&self, width: KeyWidth, key: u64) -> Result<Vec<u8>, FheError> {
        let too_wide = || FheError::Template(format!("the key does not fit {} bits", width.bits()));
        let mut out = Vec::new();
        let written = match width {
            KeyWidth::U16 => {
                let k = u16::try_from(key).map_err(|_| too_wide())?;
                let ct = CompressedFheUint16::try_encrypt(k, &self.key)
                    .map_err(|e| internal("encrypting", e))?;
                safe_serialize(&ct, &mut out, CLIENT_LIMIT)
            }
            KeyWidth::U32 => {
                let k = u32::try_from(key).map_err(|_| too_wide())?;
                let ct = CompressedFheUint32::try_encrypt(k, &self.key)
                    .map_err(|e| internal("encrypting", e))?;
                safe_serialize(&ct, &mut out, CLIENT_LIMIT)
            }
            KeyWidth::U64 => {
                let ct = CompressedFheUint64::try_encrypt(key, &self.key)
                    .map_err(|e| internal("encrypting", e))?;
                safe_serialize(&ct, &mut out, CLIENT_LIMIT)
            }
        };
        written.map_err(|e| internal("serialising the ciphertext", e))?;
        Ok(out)
    }

    /// Decrypts an answer: `(value, found)`.
    ///
    /// The answer is checked for its type and size, not with TFHE-rs' conformance check:
    /// that check expects the block metadata of a *fresh* encryption (full degree,
    /// nominal noise), while an answer comes out of bootstraps and may carry trivially
    /// encrypted high blocks. Whatever a server sends, decryption either yields numbers
    /// or fails cleanly here; it cannot reveal the client key.
    pub fn decrypt(&self, answer: &Answer) -> Result<(u8, bool), FheError> {
        if serialized_type_name(&answer.value) != Some(FheUint8::NAME)
            || serialized_type_name(&answer.found) != Some(FheBool::NAME)
        {
            return Err(FheError::Malformed {
                what: "answer",
                expected: "FheUint8 and FheBool",
            });
        }
        let value: FheUint8 = safe_deserialize(answer.value.as_slice(), ANSWER_CIPHERTEXT_LIMIT)
            .map_err(|_| FheError::Malformed {
                what: "answer value",
                expected: "FheUint8",
            })?;
        let found: FheBool = safe_deserialize(answer.found.as_slice(), ANSWER_CIPHERTEXT_LIMIT)
            .map_err(|_| FheError::Malformed {
                what: "answer flag",
                expected: "FheBool",
            })?;
        let key = &self.key;
        catch_unwind(AssertUnwindSafe(|| {
            let v: u8 = value.decrypt(key);
            let f: bool = found.decrypt(key);
            (v, f)
        }))
        .map_err(|_| FheError::Malformed {
            what: "answer",
            expected: "ciphertexts under this client key",
        })
    }
}
