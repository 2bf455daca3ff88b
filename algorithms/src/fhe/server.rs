//! The server side of a private lookup: what it accepts, and how it evaluates.
//!
//! **Accepting.** Every byte string from a client goes through TFHE-rs'
//! `safe_deserialize_conformant` with a size cap, against the platform's parameter set
//! ([`super::block_parameters`], [`super::platform_config`]). Before that, the type name
//! in the serialisation header is read ([`super::serialized_type_name`]) so that a
//! client key sent by mistake is refused by name and never deserialised: this module
//! has no code path that could build one. A failed conformant read is classified by a
//! second, non-conformant read: if that succeeds the input was well-formed but under
//! other parameters (or another width), otherwise it was malformed. Deserialisation runs
//! under `catch_unwind`, so a hostile input that makes TFHE-rs panic is a 4xx, not a
//! crashed worker.
//!
//! **Evaluating.** [`Evaluator`] owns a rayon pool whose start handler calls
//! `set_server_key` with the caller's key in every worker thread (TFHE-rs keeps the
//! high-level key in a thread-local, and our own `par_iter` over rows runs high-level
//! operations on those workers), and whose exit handler unsets it. A lookup runs inside
//! `pool.install`, so TFHE-rs' internal parallelism uses the same workers. The table is
//! scanned in chunks; each chunk is one `match_value` (or the strategy under test),
//! chunk answers are added (keys are unique, so at most one chunk contributes a value)
//! and their `found` flags OR-ed, and a shared counter reports progress.
//!
//! **The measurements behind [`Strategy::MatchValue`]** (`pdx bench fhe --compare-up-to
//! 1024`, release build, 2 cores, 2026-12-04; the README's FHE section has the table).
//! At 64 / 256 / 1,024 rows `match_value` took 4.1 / 17.6 / 65 s, `KVStore::get`
//! 6.4 / 27.6 / 108 s and eq + select + sum 10.1 / 41.6 / 163 s. The operations composed
//! one per row would cost 12.7 / 49.5 / 202 s. `match_value` comes in near 0.35 of that
//! limit because it compares the key's blocks with each possible block value once and
//! shares those comparisons across rows.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use tfhe::named::Named;
use tfhe::prelude::*;
use tfhe::safe_serialization::{safe_deserialize, safe_deserialize_conformant, safe_serialize};
use tfhe::{
    CompressedFheUint16, CompressedFheUint16ConformanceParams, CompressedFheUint32,
    CompressedFheUint32ConformanceParams, CompressedFheUint64,
    CompressedFheUint64ConformanceParams, CompressedServerKey, FheBool, FheUint8, FheUint16,
    FheUint32, FheUint64, KVStore, MatchValues, ServerKey,
};

use super::{
    ANSWER_CIPHERTEXT_LIMIT, FheError, KeyWidth, PARAMETER_SET, QUERY_CIPHERTEXT_LIMIT,
    SECRET_KEY_TYPE_NAME, block_parameters, ciphertext_hash, platform_config, serialized_type_name,
    server_key_hash,
};

/// How a lookup is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// `FheUint::match_value` over the clear table: what the server runs.
    MatchValue,
    /// `KVStore::get` over trivially encrypted values.
    KvStore,
    /// One scalar `eq` and one scalar `if_then_else` per row, then a sum and an OR tree.
    EqSelectSum,
}

impl Strategy {
    /// Short name for tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::MatchValue => "match_value",
            Strategy::KvStore => "kv_store",
            Strategy::EqSelectSum => "eq_select_sum",
        }
    }
}

/// Runs a deserialisation, turning a panic inside TFHE-rs into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err("deserialisation panicked".into()))
}

/// Refuses secret-key material and anything whose header names another type.
fn check_type(bytes: &[u8], what: &'static str, expected: &'static str) -> Result<(), FheError> {
    match serialized_type_name(bytes) {
        Some(SECRET_KEY_TYPE_NAME) => Err(FheError::SecretKeySent),
        Some(name) if name == expected => Ok(()),
        _ => Err(FheError::Malformed { what, expected }),
    }
}

/// What the platform knows about an accepted server key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedServerKey {
    /// [`super::server_key_hash`] of the bytes.
    pub hash: [u8; 32],
    /// Size of the serialisation.
    pub bytes: u64,
}

fn read_server_key(
    bytes: &[u8],
    limit: u64,
) -> Result<(CompressedServerKey, CheckedServerKey), FheError> {
    const WHAT: &str = "server key";
    if bytes.len() as u64 > limit {
        return Err(FheError::TooLarge { what: WHAT, limit });
    }
    check_type(bytes, WHAT, CompressedServerKey::NAME)?;
    let conformant = guarded(|| {
        safe_deserialize_conformant::<CompressedServerKey>(bytes, limit, &platform_config().into())
    });
    match conformant {
        Ok(key) => Ok((
            key,
            CheckedServerKey {
                hash: server_key_hash(bytes),
                bytes: bytes.len() as u64,
            },
        )),
        Err(_) => {
            // Well-formed under other parameters, or not a key at all?
            let loose = guarded(|| safe_deserialize::<CompressedServerKey>(bytes, limit));
            Err(match loose {
                Ok(_) => FheError::WrongParameters,
                Err(_) => FheError::Malformed {
                    what: WHAT,
                    expected: "CompressedServerKey",
                },
            })
        }
    }
}

/// Checks an uploaded `CompressedServerKey`: under `limit` bytes, not a client key,
/// conformant with the platform's parameters. The key is dropped afterwards.
pub fn check_server_key(bytes: &[u8], limit: u64) -> Result<CheckedServerKey, FheError> {
    read_server_key(bytes, limit).map(|(_, checked)| checked)
}

/// A server key the platform accepted, decompressed and ready to evaluate with.
#[derive(Clone)]
pub struct EvaluationKey {
    key: ServerKey,
    checked: CheckedServerKey,
}

impl std::fmt::Debug for EvaluationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EvaluationKey({})", hex::encode(self.checked.hash))
    }
}

impl EvaluationKey {
    /// Checks a serialised `CompressedServerKey` like [`check_server_key`] and
    /// decompresses it (a few seconds: the bootstrapping key is expanded and converted
    /// to the Fourier domain).
    pub fn from_bytes(bytes: &[u8], limit: u64) -> Result<EvaluationKey, FheError> {
        let (compressed, checked) = read_server_key(bytes, limit)?;
        let key = catch_unwind(AssertUnwindSafe(|| compressed.decompress()))
            .map_err(|_| FheError::Internal("decompressing a server key panicked".into()))?;
        Ok(EvaluationKey { key, checked })
    }

    /// Hash and size of the serialisation it came from.
    pub fn checked(&self) -> CheckedServerKey {
        self.checked
    }
}

/// An encrypted lookup key as the client sent it: a compressed (seeded) ciphertext of
/// the template's width.
#[derive(Clone)]
pub enum QueryKey {
    /// 16-bit key.
    U16(CompressedFheUint16),
    /// 32-bit key.
    U32(CompressedFheUint32),
    /// 64-bit key.
    U64(CompressedFheUint64),
}

macro_rules! parse_width {
    ($bytes:expr, $ty:ty, $params:ty, $variant:ident, $bits:expr) => {{
        let params = <$params>::from(block_parameters());
        match guarded(|| {
            safe_deserialize_conformant::<$ty>($bytes, QUERY_CIPHERTEXT_LIMIT, &params)
        }) {
            Ok(ct) => Ok(QueryKey::$variant(ct)),
            Err(_) => match guarded(|| safe_deserialize::<$ty>($bytes, QUERY_CIPHERTEXT_LIMIT)) {
                Ok(_) => Err(FheError::WrongCiphertext(format!(
                    "the template needs a {}-bit key encrypted under {PARAMETER_SET}",
                    $bits
                ))),
                Err(_) => Err(FheError::Malformed {
                    what: "ciphertext",
                    expected: "CompressedFheUint",
                }),
            },
        }
    }};
}

impl QueryKey {
    /// Parses a client's ciphertext for a key of `width` bits.
    pub fn parse(bytes: &[u8], width: KeyWidth) -> Result<QueryKey, FheError> {
        if bytes.len() as u64 > QUERY_CIPHERTEXT_LIMIT {
            return Err(FheError::TooLarge {
                what: "ciphertext",
                limit: QUERY_CIPHERTEXT_LIMIT,
            });
        }
        check_type(bytes, "ciphertext", CompressedFheUint16::NAME)?;
        match width {
            KeyWidth::U16 => parse_width!(
                bytes,
                CompressedFheUint16,
                CompressedFheUint16ConformanceParams,
                U16,
                16
            ),
            KeyWidth::U32 => parse_width!(
                bytes,
                CompressedFheUint32,
                CompressedFheUint32ConformanceParams,
                U32,
                32
            ),
            KeyWidth::U64 => parse_width!(
                bytes,
                CompressedFheUint64,
                CompressedFheUint64ConformanceParams,
                U64,
                64
            ),
        }
    }

    /// The key's width.
    pub fn width(&self) -> KeyWidth {
        match self {
            QueryKey::U16(_) => KeyWidth::U16,
            QueryKey::U32(_) => KeyWidth::U32,
            QueryKey::U64(_) => KeyWidth::U64,
        }
    }

    fn decompress(&self) -> EncryptedKey {
        match self {
            QueryKey::U16(c) => EncryptedKey::U16(c.decompress()),
            QueryKey::U32(c) => EncryptedKey::U32(c.decompress()),
            QueryKey::U64(c) => EncryptedKey::U64(c.decompress()),
        }
    }
}

/// The answer: the value (0 when absent) and the `found` flag, each a TFHE-rs safe
/// serialisation under the client's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Serialised `FheUint8`.
    pub value: Vec<u8>,
    /// Serialised `FheBool`.
    pub found: Vec<u8>,
}

impl Answer {
    fn from_ciphertexts(value: &FheUint8, found: &FheBool) -> Result<Answer, FheError> {
        let mut v = Vec::new();
        let mut f = Vec::new();
        safe_serialize(value, &mut v, ANSWER_CIPHERTEXT_LIMIT)
            .map_err(|e| FheError::Internal(format!("serialising the answer: {e}")))?;
        safe_serialize(found, &mut f, ANSWER_CIPHERTEXT_LIMIT)
            .map_err(|e| FheError::Internal(format!("serialising the answer: {e}")))?;
        Ok(Answer { value: v, found: f })
    }

    /// [`super::ciphertext_hash`] of the value ciphertext.
    pub fn value_hash(&self) -> [u8; 32] {
        ciphertext_hash(&self.value)
    }

    /// [`super::ciphertext_hash`] of the `found` ciphertext.
    pub fn found_hash(&self) -> [u8; 32] {
        ciphertext_hash(&self.found)
    }
}

/// A decompressed query key, only ever touched inside the evaluator's pool.
pub(crate) enum EncryptedKey {
    U16(FheUint16),
    U32(FheUint32),
    U64(FheUint64),
}

/// A trivially encrypted "absent" answer, for an empty table or bucket (the platform
/// knows the scan is empty, so nothing is hidden by encrypting it properly).
fn absent() -> (FheUint8, FheBool) {
    (
        FheUint8::encrypt_trivial(0u8),
        FheBool::encrypt_trivial(false),
    )
}

macro_rules! lookup_in {
    ($key:expr, $clear:ty, $rows:expr, $strategy:expr) => {{
        let key = $key;
        let mut rows: Vec<($clear, u8)> = Vec::with_capacity($rows.len());
        for &(k, v) in $rows {
            let k = <$clear>::try_from(k).map_err(|_| {
                FheError::Internal("a table key is wider than the query key".into())
            })?;
            rows.push((k, v));
        }
        if rows.is_empty() {
            return Ok(absent());
        }
        match $strategy {
            Strategy::MatchValue => {
                let pairs: Vec<($clear, $clear)> =
                    rows.iter().map(|&(k, v)| (k, <$clear>::from(v))).collect();
                let matches = MatchValues::new(pairs)
                    .map_err(|_| FheError::Internal("the table repeats a key".into()))?;
                let (value, found): (FheUint8, FheBool) = key
                    .match_value(&matches)
                    .map_err(|e| FheError::Internal(format!("match_value: {e}")))?;
                Ok((value, found))
            }
            Strategy::KvStore => {
                let mut store: KVStore<$clear, FheUint8> = KVStore::new();
                for &(k, v) in &rows {
                    store.insert_with_clear_key(k, FheUint8::encrypt_trivial(v));
                }
                Ok(store.get(key))
            }
            Strategy::EqSelectSum => {
                let parts: Vec<(FheUint8, FheBool)> = rows
                    .par_iter()
                    .map(|&(k, v)| {
                        let hit = key.eq(k);
                        (FheUint8::if_then_else(&hit, v, 0u8), hit)
                    })
                    .collect();
                let values: Vec<&FheUint8> = parts.iter().map(|p| &p.0).collect();
                let value = FheUint8::sum(values.as_slice());
                let found = parts
                    .into_par_iter()
                    .map(|p| p.1)
                    .reduce_with(|a, b| a | b)
                    .ok_or_else(|| FheError::Internal("an empty OR".into()))?;
                Ok((value, found))
            }
        }
    }};
}

impl EncryptedKey {
    pub(crate) fn lookup(
        &self,
        rows: &[(u64, u8)],
        strategy: Strategy,
    ) -> Result<(FheUint8, FheBool), FheError> {
        match self {
            EncryptedKey::U16(k) => lookup_in!(k, u16, rows, strategy),
            EncryptedKey::U32(k) => lookup_in!(k, u32, rows, strategy),
            EncryptedKey::U64(k) => lookup_in!(k, u64, rows, strategy),
        }
    }
}

/// A rayon pool whose every worker holds one client's server key.
pub struct Evaluator {
    pool: rayon::ThreadPool,
}

impl Evaluator {
    /// A pool of `threads` workers (at least one) with `key` set in each.
    pub fn new(key: &EvaluationKey, threads: usize) -> Result<Evaluator, FheError> {
        let server_key = key.key.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("pdx-fhe-{i}"))
            .start_handler(move |_| tfhe::set_server_key(server_key.clone()))
            .exit_handler(|_| tfhe::unset_server_key())
            .build()
            .map_err(|e| FheError::Internal(format!("building the evaluator pool: {e}")))?;
        Ok(Evaluator { pool })
    }

    /// Runs `f` on a worker of the pool (the key is set there).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Looks `key` up in `rows` (sorted `(key, value)` pairs of the key's width),
    /// `chunk_rows` rows at a time, adding each chunk's size to `done` as it finishes.
    pub fn lookup(
        &self,
        key: &QueryKey,
        rows: &[(u64, u8)],
        strategy: Strategy,
        chunk_rows: usize,
        done: &AtomicUsize,
    ) -> Result<Answer, FheError> {
        self.pool.install(|| {
            let encrypted = key.decompress();
            let mut acc: Option<(FheUint8, FheBool)> = None;
            for chunk in rows.chunks(chunk_rows.max(1)) {
                let (value, found) = encrypted.lookup(chunk, strategy)?;
                acc = Some(match acc {
                    None => (value, found),
                    Some((mut v, mut f)) => {
                        v += &value;
                        f |= &found;
                        (v, f)
                    }
                });
                done.fetch_add(chunk.len(), Ordering::Relaxed);
            }
            let (value, found) = acc.unwrap_or_else(absent);
            Answer::from_ciphertexts(&value, &found)
        })
    }
}

/// Rows per chunk for a table of `rows`: about 16 progress steps, at least 64 rows per
/// step so that the per-chunk overhead (one pass over the key's blocks, one addition
/// and one OR) stays a few percent of the scan.
pub fn chunk_rows(rows: usize) -> usize {
    rows.div_ceil(16).max(64)
}
