//! Measurements for `pdx bench fhe`: the lookup at several table sizes under each
//! [`Strategy`], and in the same process the latency of the operations a lookup is made
//! of. Client and server run in one process here (a benchmark, not a deployment): the
//! client key only encrypts the inputs and checks every answer against the clear table.

use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tfhe::prelude::*;
use tfhe::safe_serialization::safe_serialize;
use tfhe::{ClientKey, CompressedFheUint32, CompressedServerKey, FheBool, FheUint8, FheUint32};

use super::server::{EvaluationKey, Evaluator, QueryKey, Strategy, chunk_rows};
use super::{FheError, KeyWidth, platform_config};

fn internal(what: &str, e: impl std::fmt::Display) -> FheError {
    FheError::Internal(format!("{what}: {e}"))
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// Single-operation latencies (medians).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpLatencies {
    /// `FheUint32 == FheUint32` (Zama's published "u32 eq").
    pub eq_encrypted: Duration,
    /// `FheUint32 == clear u32`: what each row of a naive lookup pays.
    pub eq_scalar: Duration,
    /// `FheUint32::select(cond, a, b)` with encrypted `a`, `b` (Zama's "select").
    pub select_encrypted: Duration,
    /// `FheUint8::if_then_else(cond, clear, 0)`: the naive lookup's per-row select.
    pub select_scalar: Duration,
}

/// Keys and a pool for one benchmark run.
pub struct FheBench {
    secret: ClientKey,
    key: EvaluationKey,
    evaluator: Evaluator,
    /// Time to generate the client key and the compressed server key.
    pub keygen: Duration,
    /// Time to check and decompress the server key, as the server does.
    pub load: Duration,
    /// Size of the serialised compressed server key.
    pub server_key_bytes: usize,
    /// Worker threads of the evaluator.
    pub threads: usize,
}

impl FheBench {
    /// Generates a key pair and loads the server key into an evaluator of `threads`.
    pub fn new(threads: usize) -> Result<FheBench, FheError> {
        let t = Instant::now();
        let secret = ClientKey::generate(platform_config());
        let compressed = CompressedServerKey::new(&secret);
        let keygen = t.elapsed();
        let mut bytes = Vec::new();
        safe_serialize(&compressed, &mut bytes, 1 << 30).map_err(|e| internal("serialising", e))?;
        drop(compressed);
        let t = Instant::now();
        let key = EvaluationKey::from_bytes(&bytes, super::DEFAULT_SERVER_KEY_LIMIT)?;
        let load = t.elapsed();
        let evaluator = Evaluator::new(&key, threads)?;
        Ok(FheBench {
            secret,
            key,
            evaluator,
            keygen,
            load,
            server_key_bytes: bytes.len(),
            threads: threads.max(1),
        })
    }

    /// The evaluation key (for callers that build their own evaluator).
    pub fn key(&self) -> &EvaluationKey {
        &self.key
    }

    /// Medians over `runs` of the single operations.
    pub fn op_latencies(&self, runs: usize) -> Result<OpLatencies, FheError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a_clear: u32 = rng.r#gen();
        let a = FheUint32::encrypt(a_clear, &self.secret);
        let b = FheUint32::encrypt(a_clear ^ 1, &self.secret);
        let cond = FheBool::encrypt(true, &self.secret);
        let mut out = OpLatencies::default();
        let (mut eq_e, mut eq_s, mut sel_e, mut sel_s) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs.max(1) {
            let (d1, d2, d3, d4) = self.evaluator.install(|| {
                let t = Instant::now();
                let r = a.eq(&b);
                let d1 = t.elapsed();
                let t = Instant::now();
                let s = a.eq(a_clear);
                let d2 = t.elapsed();
                let t = Instant::now();
                let x: FheUint32 = cond.select(&a, &b);
                let d3 = t.elapsed();
                let t = Instant::now();
                let y = FheUint8::if_then_else(&cond, 42u8, 0u8);
                let d4 = t.elapsed();
                drop((r, s, x, y));
                (d1, d2, d3, d4)
            });
            eq_e.push(d1);
            eq_s.push(d2);
            sel_e.push(d3);
            sel_s.push(d4);
        }
        out.eq_encrypted = median(eq_e);
        out.eq_scalar = median(eq_s);
        out.select_encrypted = median(sel_e);
        out.select_scalar = median(sel_s);
        Ok(out)
    }

    /// Latency of `FheUint8::sum` over `n` encrypted values, and of an OR tree over `n`
    /// encrypted bools: the two reductions a naive lookup ends with.
    pub fn reductions(&self, n: usize) -> (Duration, Duration) {
        let values: Vec<FheUint8> = (0..n)
            .map(|i| FheUint8::encrypt((i % 2) as u8, &self.secret))
            .collect();
        let flags: Vec<FheBool> = (0..n)
            .map(|i| FheBool::encrypt(i == 0, &self.secret))
            .collect();
        self.evaluator.install(|| {
            use rayon::prelude::*;
            let refs: Vec<&FheUint8> = values.iter().collect();
            let t = Instant::now();
            let s = FheUint8::sum(refs.as_slice());
            let sum = t.elapsed();
            let t = Instant::now();
            let o = flags.into_par_iter().reduce_with(|a, b| a | b);
            let or = t.elapsed();
            drop((s, o));
            (sum, or)
        })
    }

    /// One lookup in a random `rows`-row table of 32-bit keys under `strategy`, chunked
    /// as the server chunks it or in one call. The answer is decrypted and checked
    /// against the clear table; a mismatch is an error.
    pub fn lookup(
        &self,
        rows: usize,
        strategy: Strategy,
        chunked: bool,
        seed: u64,
    ) -> Result<Duration, FheError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut table: Vec<(u64, u8)> = Vec::with_capacity(rows);
        let mut seen = std::collections::HashSet::new();
        while table.len() < rows {
            let k: u32 = rng.r#gen();
            if seen.insert(k) {
                table.push((u64::from(k), rng.gen_range(0..=255u8)));
            }
        }
        table.sort_by_key(|e| e.0);
        let (wanted, expected) = table.get(rows / 2).copied().unwrap_or((7, 0));
        let ct = CompressedFheUint32::encrypt(wanted as u32, &self.secret);
        let mut bytes = Vec::new();
        safe_serialize(&ct, &mut bytes, 1 << 20).map_err(|e| internal("serialising", e))?;
        let query = QueryKey::parse(&bytes, KeyWidth::U32)?;
        let chunk = if chunked { chunk_rows(rows) } else { rows };
        let done = AtomicUsize::new(0);
        let t = Instant::now();
        let answer = self
            .evaluator
            .lookup(&query, &table, strategy, chunk, &done)?;
        let took = t.elapsed();
        let secret = super::client::ClientSecret::from_key(self.secret.clone());
        let (value, found) = secret.decrypt(&answer)?;
        let want_found = !table.is_empty();
        if found != want_found || (found && value != expected) {
            return Err(FheError::Internal(format!(
                "{} returned a wrong answer at {rows} rows",
                strategy.as_str()
            )));
        }
        Ok(took)
    }
}
