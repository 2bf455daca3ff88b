//! # Private lookups with TFHE-rs
//!
//! A bank, acting with an enterprise's authorisation, asks one fact about that
//! enterprise ("is its electricity use in the top quartile?") without the platform
//! learning *which* enterprise was asked about, and learns only the answer a vetted
//! template allows. The pieces, top-down:
//!
//! 1. **Template** ([`template`]). A provider approves a [`TemplateSpec`] for a dataset:
//!    a key column (the unified social credit code), a value derived *in clear inside the
//!    sandbox* from one column (a threshold flag, a bucket, a quantile, a rank, a small
//!    integer) and an output domain (a bool or an unsigned integer of at most 8 bits).
//!    [`LookupTable::build`] turns a certified version into `(hashed key, value)` pairs.
//!    The outputs are encrypted, so nobody can vet them one by one: the template is
//!    what gets vetted.
//! 2. **Client** ([`client`]), on the bank's side only. It generates a `ClientKey` and a
//!    `CompressedServerKey`, hashes the enterprise's key with [`lookup_hash`] to a
//!    fixed-width integer ([`KeyWidth`]), encrypts it as a compressed (seeded)
//!    ciphertext, and decrypts the answer. The client key never leaves this module.
//! 3. **Server** ([`server`]). It accepts a server key with
//!    `safe_deserialize_conformant` under a size cap and only with the platform's
//!    parameter set ([`block_parameters`]), accepts a query ciphertext the same way, and
//!    evaluates the lookup in a dedicated rayon pool whose every worker thread has the
//!    caller's server key set (`set_server_key` in the pool's start handler), because
//!    TFHE-rs keeps the high-level server key in a thread-local.
//!
//! ## The lookup
//!
//! The server holds the table in clear and the key encrypted. It compares the key with
//! *every* row (so the work, and everything the server can observe, is the same
//! whichever enterprise is asked about) and returns two ciphertexts under the bank's
//! key: the value (0 when absent) and a `found` flag. Three evaluations were measured
//! (`pdx bench fhe` prints the figures; the module docs of [`server`] record them):
//! `match_value` (one many-LUT pass over the key's blocks shared by all rows, then a
//! per-row block conjunction and a scalar one-hot dot product), `KVStore::get` (the same
//! selectors, but a dot product against encrypted — here trivially encrypted — values)
//! and eq + select + sum (one scalar equality and one scalar select per row, then a sum
//! and an OR tree). `match_value` is the fastest because its block comparisons are
//! computed once for all rows and its values stay clear, so it is what the server runs
//! ([`Strategy::MatchValue`]), in chunks so that the job can report progress.
//!
//! ## What each party learns
//!
//! - **The platform** sees the template, the table (it is the platform's data), a
//!   ciphertext and which server key evaluated it. It does not learn the key, the value
//!   or whether the key was present: every row is compared in every query.
//! - **The bank** learns the template's output for the key it asked about, including
//!   whether the key is in the table (an enterprise suppressed by de-identification, or
//!   with a missing value, reads as absent). The platform cannot check that the bank
//!   holds the enterprise's authorisation without learning the enterprise, so on
//!   conditionally open data every query carries a hiding, binding commitment to the
//!   enterprise's signed authorisation, which a supervisor can later have the bank open
//!   and pdx verify ([`consent`], GD21 Art.41). What also bounds misuse is the grant's
//!   query budget, the coarse template output and the ledger, which records every
//!   query (with the hashes of its ciphertexts and its commitment, never the key).
//! - **Circuit privacy.** The output ciphertexts come out of programmable bootstraps,
//!   whose noise does not carry the other rows' values in any usable way, but TFHE-rs
//!   makes no formal circuit-privacy claim for them; the template's coarse output
//!   domain is the real bound on what a bank can extract.
//!
//! ## The key hash and collisions
//!
//! `lookup_hash(dataset_id, key)` is BLAKE3 in key-derivation mode over the dataset id
//! (public, so the bank can compute it) and the trimmed key; a template keeps the top
//! 16, 32 or 64 bits. Two distinct keys of one table sharing a hash would make the
//! answer ambiguous, so building a table refuses collisions and asks for a wider key.
//! An absent key matches a present one with probability `rows / 2^bits` (2.4 × 10⁻⁷ for
//! 1,024 rows at 32 bits); 64-bit keys remove that at twice the comparison cost.
//!
//! Because the key column is usually pseudonymised in the de-identified zone, ingest
//! also writes a **key index** ([`template::key_index`]): for each pseudonymised value,
//! its `lookup_hash`. The index is derived from the clear identifiers, so together with
//! a registry of credit codes it re-identifies the pseudonyms; it therefore stays on the
//! server beside the version, and no engine but this one ever reads it.
//!
//! ## The optional public bucket
//!
//! A template may allow `bucket_bits` (at most [`template::MAX_BUCKET_BITS`]). The client
//! may then reveal the top `bucket_bits` of its hashed key, and the server scans only
//! the rows of that bucket: about `rows / 2^bucket_bits` of them, so the query is that
//! many times faster. The cost is privacy: the platform, which holds the table and can
//! hash every credit code, learns that the enterprise is one of the bucket's rows (or
//! an absent key hashing there). The anonymity set shrinks from the whole table to the
//! bucket, so the client is shown every bucket's size before it chooses, and the
//! revealed bucket is recorded on the ledger.

pub mod bench;
pub mod client;
pub mod consent;
pub mod server;
pub mod template;

use serde::{Deserialize, Serialize};

pub use client::{ClientSecret, KeyPair};
pub use server::{Answer, EvaluationKey, Evaluator, QueryKey, Strategy};
pub use template::{
    Aggregate, Comparison, KeySource, LookupTable, OutputDomain, TemplateSpec, ValueRule,
};

/// Largest accepted server key by default (the platform's compressed key is 60.2 MB).
pub const DEFAULT_SERVER_KEY_LIMIT: u64 = 96 << 20;
/// Largest accepted query ciphertext (a compressed 64-bit key is well under 2 KiB).
pub const QUERY_CIPHERTEXT_LIMIT: u64 = 64 << 10;
/// Largest answer ciphertext the client accepts (two uncompressed ciphertexts).
pub const ANSWER_CIPHERTEXT_LIMIT: u64 = 1 << 20;
/// The platform's parameter set, by its TFHE-rs name.
pub const PARAMETER_SET: &str = "PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128";

/// The serialised type name of a TFHE-rs secret key, refused by every server path.
pub(crate) const SECRET_KEY_TYPE_NAME: &str = "high_level_api::ClientKey";

const LOOKUP_CONTEXT: &str = "pdx 2026-11 fhe lookup key v1";
const TEMPLATE_CONTEXT: &[u8] = b"pdx fhe template v1";
const CIPHERTEXT_CONTEXT: &[u8] = b"pdx fhe ciphertext v1";
const SERVER_KEY_CONTEXT: &[u8] = b"pdx fhe server key v1";

/// The shortint parameters every key and ciphertext must conform to: 2-bit message,
/// 2-bit carry, keyswitch then bootstrap, TUniform noise, failure probability 2^-128.
pub fn block_parameters() -> tfhe::shortint::AtomicPatternParameters {
    tfhe::shortint::parameters::PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128.into()
}

/// The TFHE-rs configuration of the platform (no compression, noise squashing or
/// public-key material: the server key holds exactly what a lookup needs).
pub fn platform_config() -> tfhe::Config {
    tfhe::ConfigBuilder::with_custom_parameters(
        tfhe::shortint::parameters::PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    )
    .build()
}

/// Width of the hashed lookup key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyWidth {
    /// 16 bits (8 blocks): small tables and tests.
    U16,
    /// 32 bits (16 blocks): the default.
    #[default]
    U32,
    /// 64 bits (32 blocks): large tables, no practical false matches.
    U64,
}

impl KeyWidth {
    /// Number of bits.
    pub fn bits(self) -> u32 {
        match self {
            KeyWidth::U16 => 16,
            KeyWidth::U32 => 32,
            KeyWidth::U64 => 64,
        }
    }

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyWidth::U16 => "u16",
            KeyWidth::U32 => "u32",
            KeyWidth::U64 => "u64",
        }
    }

    /// The top `bits()` bits of a 64-bit [`lookup_hash`].
    pub fn truncate(self, hash: u64) -> u64 {
        match self {
            KeyWidth::U64 => hash,
            w => hash >> (64 - w.bits()),
        }
    }

    /// The public bucket of a truncated key: its top `bucket_bits` bits.
    pub fn bucket_of(self, key: u64, bucket_bits: u8) -> u64 {
        if bucket_bits == 0 {
            0
        } else {
            key >> (self.bits() - u32::from(bucket_bits))
        }
    }
}

/// The 64-bit lookup hash of a key value (trimmed) for one dataset. Client and server
/// compute the same number: `BLAKE3-derive-key(context, u64_le(len(salt)) || salt ||
/// trimmed value)`, first 8 bytes big-endian.
pub fn lookup_hash(salt: &str, value: &str) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key(LOOKUP_CONTEXT);
    hasher.update(&(salt.len() as u64).to_le_bytes());
    hasher.update(salt.as_bytes());
    hasher.update(value.trim().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

fn tagged_hash(tag: &[u8], bytes: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(tag);
    hasher.update(&[0]);
    hasher.update(bytes);
    *hasher.finalize().as_bytes()
}

/// `BLAKE3("pdx fhe ciphertext v1" || 0x00 || bytes)`: how the ledger names a query's
/// input and output ciphertexts; anyone holding the bytes can recompute it.
pub fn ciphertext_hash(bytes: &[u8]) -> [u8; 32] {
    tagged_hash(CIPHERTEXT_CONTEXT, bytes)
}

/// `BLAKE3("pdx fhe template v1" || 0x00 || canonical JSON of the spec)`.
pub fn template_hash(canonical_spec: &[u8]) -> [u8; 32] {
    tagged_hash(TEMPLATE_CONTEXT, canonical_spec)
}

/// `BLAKE3("pdx fhe server key v1" || 0x00 || serialised CompressedServerKey)`.
pub fn server_key_hash(bytes: &[u8]) -> [u8; 32] {
    tagged_hash(SERVER_KEY_CONTEXT, bytes)
}

/// Everything that can go wrong. Messages never carry a cell value or key material.
#[derive(Debug, thiserror::Error)]
pub enum FheError {
    /// A secret (client) key was sent where only public material belongs.
    #[error(
        "this is a TFHE client key, the secret half of the key pair: it was refused and not stored; \
         never send it anywhere and generate a new key pair, because this one has been exposed"
    )]
    SecretKeySent,
    /// The server key was generated with other parameters than the platform's.
    #[error(
        "the server key does not conform to the platform's parameter set ({PARAMETER_SET}) and configuration"
    )]
    WrongParameters,
    /// Larger than the cap.
    #[error("the {what} is larger than {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The cap.
        limit: u64,
    },
    /// Not a TFHE-rs safe serialisation of the expected type.
    #[error("the {what} is not a valid TFHE-rs safe serialisation of a {expected}")]
    Malformed {
        /// What was sent.
        what: &'static str,
        /// The type that was expected.
        expected: &'static str,
    },
    /// A well-formed ciphertext that does not fit the template or the parameters.
    #[error("the ciphertext does not fit: {0}")]
    WrongCiphertext(String),
    /// The template is invalid or its data cannot make a table.
    #[error("{0}")]
    Template(String),
    /// Something inside the engine (logged, never shown).
    #[error("fhe engine: {0}")]
    Internal(String),
    /// File-system failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl FheError {
    /// True when the caller is at fault (a 4xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, FheError::Internal(_) | FheError::Io(_))
    }
}

/// Reads the type name from the header of a TFHE-rs safe serialisation without
/// deserialising anything else (bincode, fixed-width little-endian integers: header
/// version string, versioning-mode enum with one string, then the type name).
pub(crate) fn serialized_type_name(bytes: &[u8]) -> Option<&str> {
    fn string(bytes: &[u8], at: &mut usize) -> Option<String> {
        let len_bytes: [u8; 8] = bytes.get(*at..*at + 8)?.try_into().ok()?;
        let len = usize::try_from(u64::from_le_bytes(len_bytes)).ok()?;
        if len > 256 {
            return None;
        }
        let start = *at + 8;
        let text = std::str::from_utf8(bytes.get(start..start + len)?).ok()?;
        *at = start + len;
        Some(text.to_string())
    }
    let mut at = 0;
    string(bytes, &mut at)?;
    let variant_bytes: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    if u32::from_le_bytes(variant_bytes) > 1 {
        return None;
    }
    at += 4;
    string(bytes, &mut at)?;
    let len_bytes: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    let len = usize::try_from(u64::from_le_bytes(len_bytes)).ok()?;
    if len > 256 {
        return None;
    }
    std::str::from_utf8(bytes.get(at + 8..at + 8 + len)?).ok()
}

/// Helpers for other crates' tests: material the server must refuse.
#[doc(hidden)]
pub mod testing {
    /// A serialised `CompressedServerKey` under other parameters than the platform's
    /// (1-bit message and carry), with its secret half dropped at once.
    pub fn server_key_with_other_parameters() -> Result<Vec<u8>, super::FheError> {
        let config = tfhe::ConfigBuilder::with_custom_parameters(
            tfhe::shortint::parameters::v1_8::V1_8_PARAM_MESSAGE_1_CARRY_1_KS_PBS_TUNIFORM_2M128,
        )
        .build();
        let secret = tfhe::ClientKey::generate(config);
        let server = tfhe::CompressedServerKey::new(&secret);
        let mut out = Vec::new();
        tfhe::safe_serialization::safe_serialize(&server, &mut out, 1 << 30)
            .map_err(|e| super::FheError::Internal(format!("serialising a key: {e}")))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_and_buckets_take_the_top_bits() {
        let h = 0xABCD_1234_5678_9EF0u64;
        assert_eq!(KeyWidth::U16.truncate(h), 0xABCD);
        assert_eq!(KeyWidth::U32.truncate(h), 0xABCD_1234);
        assert_eq!(KeyWidth::U64.truncate(h), h);
        assert_eq!(KeyWidth::U16.bucket_of(0xABCD, 4), 0xA);
        assert_eq!(KeyWidth::U32.bucket_of(0xABCD_1234, 8), 0xAB);
        assert_eq!(KeyWidth::U32.bucket_of(0xABCD_1234, 0), 0);
    }

    #[test]
    fn lookup_hash_trims_and_separates_salts() {
        let a = lookup_hash("ds_1", "91440300MA5F0000X1");
        assert_eq!(a, lookup_hash("ds_1", "  91440300MA5F0000X1\n"));
        assert_ne!(a, lookup_hash("ds_2", "91440300MA5F0000X1"));
        // Length-prefixed salt: moving bytes between salt and value changes the hash.
        assert_ne!(lookup_hash("ab", "c"), lookup_hash("a", "bc"));
    }

    #[test]
    fn type_name_is_read_from_a_hand_made_header() {
        let mut bytes = Vec::new();
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend_from_slice(&(t.len() as u64).to_le_bytes());
            b.extend_from_slice(t.as_bytes());
        };
        s(&mut bytes, "0.5");
        bytes.extend_from_slice(&0u32.to_le_bytes());
        s(&mut bytes, "0.1");
        s(&mut bytes, SECRET_KEY_TYPE_NAME);
        assert_eq!(serialized_type_name(&bytes), Some(SECRET_KEY_TYPE_NAME));
        assert_eq!(serialized_type_name(&bytes[..10]), None);
        assert_eq!(serialized_type_name(b"not a header at all"), None);
    }
}
