//! `pdx bench fhe`: encrypted lookups at several table sizes, the TFHE operations they
//! are made of, and Zama's published figures scaled to this machine, in one run.
//!
//! | table | what |
//! |---|---|
//! | operations | u32 eq and select as Zama publishes them (both operands encrypted), and the scalar forms a naive lookup uses per row, medians of `--runs` |
//! | lookups | per size: the served lookup (`match_value` in progress chunks of 64+ rows); up to `--compare-up-to` rows also `match_value` in one call, `KVStore::get` and eq + select + sum; the sum of the underlying operations; Zama's KVStore figure scaled |
//!
//! Every lookup is checked: the answer is decrypted and compared with the clear table.
//!
//! **The limit.** A lookup over `n` rows is, naively, `n` scalar equalities, `n` scalar
//! selects, a sum of `n` values and an OR of `n` flags. The "sum of ops" column adds
//! those latencies, each measured alone in this run; it is what composing the
//! operations one after another would cost, and the served lookup is compared with it.
//!
//! **Scaling Zama's figures.** Zama measured on 192 cores. An operation whose work is
//! `w` bootstraps of which at most `p` can run at once takes about `w / min(p, cores)`
//! bootstrap times, so a figure moves between machines by
//! `min(p, 192) / min(p, cores here)`. A u32 comparison or select works on 16 two-bit
//! blocks (`p` = 16): ×8 onto 2 cores. A lookup over 64 or more entries has hundreds of
//! independent bootstraps (`p` ≥ 192): ×96. Per-core speed is not scaled (Zama's
//! machine has AVX-512 and a newer core), so "here / scaled" above 1 is that gap.

use std::time::Duration;

use pdx_algorithms::fhe::Strategy;
use pdx_algorithms::fhe::bench::FheBench;

/// Zama's published TFHE-rs CPU figures (192 cores): u32 eq, u32 select, and KVStore
/// encrypted-key lookups of 64 / 256 / 1,024 entries.
const ZAMA_CORES: usize = 192;
const ZAMA_EQ_MS: f64 = 26.0;
const ZAMA_SELECT_MS: f64 = 27.0;
const ZAMA_KVSTORE_MS: [(usize, f64); 3] = [(64, 258.0), (256, 742.0), (1024, 2310.0)];
/// Blocks of a u32 under 2-bit messages: the parallel width of one u32 operation.
const U32_BLOCKS: usize = 16;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn show(d: Duration) -> String {
    let m = ms(d);
    if m >= 10_000.0 {
        format!("{:.1} s", m / 1e3)
    } else if m >= 1_000.0 {
        format!("{:.2} s", m / 1e3)
    } else {
        format!("{m:.1} ms")
    }
}

/// How much slower a figure measured on Zama's machine should be here, for work with
/// `parallel` independent bootstraps at a time.
fn scale(parallel: usize, cores: usize) -> f64 {
    ZAMA_CORES.min(parallel) as f64 / cores.min(parallel).max(1) as f64
}

/// Runs the benchmark and prints its tables.
pub async fn run(
    rows: Vec<usize>,
    runs: usize,
    threads: usize,
    compare_up_to: usize,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(&rows, runs, threads, compare_up_to)).await?
}

fn run_blocking(
    rows: &[usize],
    runs: usize,
    threads: usize,
    compare_up_to: usize,
) -> anyhow::Result<()> {
    let cores = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let strategies = [
        Strategy::MatchValue,
        Strategy::KvStore,
        Strategy::EqSelectSum,
    ];
    let compared = |n: usize| n <= compare_up_to;
    let steps = 2 + rows
        .iter()
        .map(|&n| {
            2 + if compared(n) {
                strategies.len() as u64
            } else {
                0
            }
        })
        .sum::<u64>();
    let bar = super::progress_bar(steps, "fhe");
    // A full run takes many minutes; when stderr is not a terminal the bar is hidden,
    // so each step is also logged there and each table line is printed as soon as it
    // is measured.
    let step = |msg: String| {
        if bar.is_hidden() {
            eprintln!("fhe: {msg}");
        }
        bar.set_message(msg);
    };
    let out = |line: String| bar.suspend(|| println!("{line}"));
    step("keygen".into());
    let bench = FheBench::new(cores)?;
    bar.inc(1);
    out(format!(
        "TFHE-rs 1.8, {}, {} evaluator threads; keygen {}, compressed server key {:.1} MB, check + decompress {}",
        pdx_algorithms::fhe::PARAMETER_SET,
        bench.threads,
        show(bench.keygen),
        bench.server_key_bytes as f64 / 1e6,
        show(bench.load)
    ));
    step("operations".into());
    let ops = bench.op_latencies(runs)?;
    bar.inc(1);
    out(String::new());
    out("| operation | here | Zama, 192 cores | scale | Zama scaled | here / scaled |".into());
    out("|---|---|---|---|---|---|".into());
    let op_scale = scale(U32_BLOCKS, cores);
    for (name, here, zama) in [
        (
            "u32 eq, encrypted == encrypted",
            ops.eq_encrypted,
            Some(ZAMA_EQ_MS),
        ),
        (
            "u32 select, encrypted operands",
            ops.select_encrypted,
            Some(ZAMA_SELECT_MS),
        ),
        ("u32 eq, encrypted == clear (per row)", ops.eq_scalar, None),
        ("u8 select of clears (per row)", ops.select_scalar, None),
    ] {
        out(match zama {
            Some(z) => format!(
                "| {name} | {} | {z:.0} ms | ×{op_scale:.0} | {:.0} ms | {:.2} |",
                show(here),
                z * op_scale,
                ms(here) / (z * op_scale)
            ),
            None => format!("| {name} | {} | - | - | - | - |", show(here)),
        });
    }
    out(String::new());
    out("| rows | served lookup (match_value, chunked) | match_value | KVStore | eq + select + sum | sum of ops (limit) | served / limit | Zama KVStore, 192 cores | Zama scaled | KVStore / scaled | served / scaled |".into());
    out("|---|---|---|---|---|---|---|---|---|---|---|".into());

    for (i, &n) in rows.iter().enumerate() {
        let seed = 1000 + i as u64;
        step(format!("{n}: reduce"));
        let (sum, or) = bench.reductions(n);
        bar.inc(1);
        step(format!("{n}: served"));
        let served = bench.lookup(n, Strategy::MatchValue, true, seed)?;
        bar.inc(1);
        let times = if compared(n) {
            let mut times = Vec::new();
            for s in strategies {
                step(format!("{n}: {}", s.as_str()));
                times.push(bench.lookup(n, s, false, seed)?);
                bar.inc(1);
            }
            Some(times)
        } else {
            None
        };
        let limit = (ops.eq_scalar + ops.select_scalar) * n as u32 + sum + or;
        let t = |i: usize| times.as_ref().map_or("-".to_string(), |t| show(t[i]));
        let (zama, scaled, kv_ratio, served_ratio) =
            match ZAMA_KVSTORE_MS.iter().find(|(r, _)| *r == n) {
                Some((_, z)) => {
                    let factor = scale(n * U32_BLOCKS, cores);
                    let scaled_ms = z * factor;
                    (
                        format!("{z:.0} ms"),
                        format!(
                            "{} (×{factor:.0})",
                            show(Duration::from_secs_f64(scaled_ms / 1e3))
                        ),
                        times
                            .as_ref()
                            .map_or("-".to_string(), |t| format!("{:.1}", ms(t[1]) / scaled_ms)),
                        format!("{:.1}", ms(served) / scaled_ms),
                    )
                }
                None => ("-".into(), "-".into(), "-".into(), "-".into()),
            };
        out(format!(
            "| {n} | {} | {} | {} | {} | {} | {:.2} | {zama} | {scaled} | {kv_ratio} | {served_ratio} |",
            show(served),
            t(0),
            t(1),
            t(2),
            show(limit),
            ms(served) / ms(limit).max(1e-9),
        ));
    }
    bar.finish_and_clear();
    println!();
    println!(
        "sum of ops = rows × (u32 eq with a clear + u8 select of clears) + sum of rows u8 values + OR of rows flags, each timed alone in this run."
    );
    println!(
        "Zama scaled = Zama's figure × min(p, 192) / min(p, {cores}), p = bootstraps that can run at once (16 for one u32 operation, rows × 16 for a lookup); per-core speed is not scaled."
    );
    Ok(())
}
