//! `pdx bench ledger`: ledger speed against raw SQLite baselines, measured in one run
//! on the same database settings, printed as a table.
//!
//! | row | what | baseline |
//! |---|---|---|
//! | single append | one entry per durable transaction | one raw INSERT + COMMIT |
//! | concurrent appends | `writers` tasks appending one entry each at a time (group commit) | the same tasks each doing a raw INSERT + COMMIT |
//! | batch append | 1,000 entries per transaction | 1,000 raw INSERTs per transaction |
//! | inclusion proof | proof latency at the large size | — |
//! | verify (db) | full verification reading the database | — |
//! | verify (export) | full verification of the export file | — |
//!
//! Build with `--release`; a debug build of our own crates is several times slower.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use rand::Rng;

use pdx_ledger::db::{Db, sqlite_url};
use pdx_ledger::note::NoteSigner;
use pdx_ledger::store::NewEntry;
use pdx_ledger::{Actor, EntryKind, Ledger, LedgerConfig};

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ledger append, proof and verification rates.
    Ledger {
        /// Durable single appends to time (and raw inserts).
        #[arg(long, default_value_t = 1000)]
        single: usize,
        /// Concurrent writers for the group-commit row.
        #[arg(long, default_value_t = 64)]
        writers: usize,
        /// Appends the concurrent writers make in all (and raw inserts).
        #[arg(long, default_value_t = 20_000)]
        concurrent: usize,
        /// Ledger size for the proof and verification rows.
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Inclusion proofs to time.
        #[arg(long, default_value_t = 1000)]
        proofs: usize,
    },
    /// De-identification: Adult end to end and a large generated table, against raw
    /// polars, with peak memory.
    Deid {
        /// Adult runs to take the median of.
        #[arg(long, default_value_t = 5)]
        adult_runs: usize,
        /// Rows of the generated table.
        #[arg(long, default_value_t = 10_000_000)]
        rows: usize,
    },
    /// Sandboxed SQL jobs (checks included) against raw DataFusion, and DP queries
    /// against plain polars, on one generated Parquet file.
    Sandbox {
        /// Rows of the generated table.
        #[arg(long, default_value_t = 10_000_000)]
        rows: usize,
        /// Runs per query to take the median of.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Only this query (1 to 5), e.g. to profile one.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        query: Option<u8>,
        /// Only pdx with record sets: no baselines, no DP (for a profiler; no ratios).
        #[arg(long)]
        without_baselines: bool,
    },
    /// Encrypted lookups (TFHE) at several table sizes, the operations they are made
    /// of, and Zama's published figures scaled to this machine.
    Fhe {
        /// Table sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "64,256,1024")]
        rows: Vec<usize>,
        /// Runs per single operation to take the median of.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Evaluator threads (0 = every core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Largest table on which all three strategies are timed; beyond it only the
        /// served lookup is, to keep the run short (on two cores, 1024 adds about 5 min).
        #[arg(long, default_value_t = 256)]
        compare_up_to: usize,
    },
    /// Orders per second end to end over HTTP (place + pay), with p50 and p99 latency,
    /// on SQLite and, with `--postgres`, PostgreSQL; healthz and whoami as baselines.
    Orders {
        /// Orders to place and pay per backend.
        #[arg(long, default_value_t = 1000)]
        orders: usize,
        /// Concurrent clients, each a buyer organisation of its own.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Also run on this PostgreSQL server (a fresh schema, dropped afterwards).
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Server time of the web portal's catalog, ledger and review pages against the
    /// JSON routes that serve them, on a large generated instance.
    Portal {
        /// Published catalog entries.
        #[arg(long, default_value_t = 10_000)]
        datasets: usize,
        /// Ledger entries appended besides those the seeding writes.
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Requests per row, of the page and of its JSON route each.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Outputs waiting in the review queue.
        #[arg(long, default_value_t = 50)]
        outputs: usize,
        /// Also run on this PostgreSQL server (a fresh schema, dropped afterwards).
        #[arg(long)]
        postgres: Option<String>,
    },
    /// A steady mixed load (catalog reads, dry runs, SQL runs, orders, ledger proofs)
    /// against one `pdx serve` child process: fails on any error, on RSS growth over
    /// 10 % after the warm-up, or on books that do not reconcile.
    Soak {
        /// Length of the load, warm-up included, in minutes.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Operations started per second, every kind together (an order is two
        /// requests, a SQL run one plus its polls).
        #[arg(long, default_value_t = 40)]
        rate: u32,
        /// Minutes at the start whose memory is not judged.
        #[arg(long, default_value_t = 2)]
        warmup_minutes: u64,
        /// Run on this PostgreSQL server instead of SQLite (a fresh schema, dropped
        /// afterwards).
        #[arg(long)]
        postgres: Option<String>,
    },
}

/// The median of some timings (zero for none).
pub(crate) fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

fn payload(i: u64) -> serde_json::Value {
    serde_json::json!({
        "order_id": format!("ord-{i:08}"),
        "product_id": "prod-0001",
        "amount_minor": 12_345 + (i % 1000) as i64,
        "currency": "CNY",
    })
}

async fn fresh(dir: &std::path::Path, name: &str) -> anyhow::Result<Ledger> {
    let db = Db::connect(&sqlite_url(&dir.join(format!("{name}.db")))).await?;
    Ledger::migrate(&db).await?;
    let signer = NoteSigner::new("bench.pdx/ledger", ed25519_key())?;
    Ok(Ledger::new(db, signer, LedgerConfig::default()))
}

fn ed25519_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
}

async fn raw_table(dir: &std::path::Path) -> anyhow::Result<Db> {
    let db = Db::connect(&sqlite_url(&dir.join("raw.db"))).await?;
    sqlx::query(
        "CREATE TABLE raw (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, h BLOB NOT NULL)",
    )
    .execute(db.pool())
    .await?;
    Ok(db)
}

async fn raw_insert(raw: &Db, text: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut tx = raw.begin_write().await?;
    sqlx::query("INSERT INTO raw (payload, h) VALUES ($1, $2)")
        .bind(text.to_string())
        .bind(blake3::hash(text.as_bytes()).as_bytes().to_vec())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(t.elapsed())
}

async fn ledger_append(ledger: &Ledger, actor: &Actor, i: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut tx = ledger.db().begin_write().await?;
    ledger
        .append_batch(
            &mut tx,
            vec![NewEntry {
                kind: EntryKind::Transaction,
                actor: actor.clone(),
                payload: payload(i),
                parties: vec![],
            }],
        )
        .await?;
    tx.commit().await?;
    Ok(t.elapsed())
}

struct Row {
    name: &'static str,
    median: String,
    rate: String,
    baseline: String,
    ratio: String,
}

fn per_sec(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64().max(1e-9)
}

/// Runs a benchmark and prints its table.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ledger {
            single,
            writers,
            concurrent,
            entries,
            proofs,
        } => {
            let sizes = LedgerSizes {
                single,
                writers,
                concurrent,
                entries,
                proofs,
            };
            run_ledger(sizes).await
        }
        BenchCommand::Deid { adult_runs, rows } => {
            tokio::task::spawn_blocking(move || super::bench_deid::run(adult_runs, rows)).await?
        }
        BenchCommand::Sandbox {
            rows,
            runs,
            query,
            without_baselines,
        } => super::bench_sandbox::run(rows, runs, query, without_baselines).await,
        BenchCommand::Fhe {
            rows,
            runs,
            threads,
            compare_up_to,
        } => super::bench_fhe::run(rows, runs, threads, compare_up_to).await,
        BenchCommand::Orders {
            orders,
            clients,
            postgres,
        } => super::bench_orders::run(orders, clients, postgres).await,
        BenchCommand::Portal {
            datasets,
            entries,
            runs,
            outputs,
            postgres,
        } => {
            let sizes = super::bench_portal::Sizes {
                datasets,
                entries,
                runs,
                outputs,
            };
            super::bench_portal::run(sizes, postgres).await
        }
        BenchCommand::Soak {
            minutes,
            rate,
            warmup_minutes,
            postgres,
        } => {
            let plan = super::bench_soak::Plan {
                minutes,
                rate,
                warmup_minutes,
            };
            super::bench_soak::run(plan, postgres).await
        }
    }
}

/// What `pdx bench ledger` times.
struct LedgerSizes {
    single: usize,
    writers: usize,
    concurrent: usize,
    entries: u64,
    proofs: usize,
}

/// Runs `total` operations on `writers` concurrent tasks (task `w` doing operations
/// `w, w + writers, …`); returns the wall time and each operation's latency.
async fn concurrently<F, Fut>(
    writers: usize,
    total: usize,
    op: F,
) -> anyhow::Result<(Duration, Vec<Duration>)>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let writers = writers.max(1);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let op = op.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            for i in (w..total).step_by(writers) {
                let t = Instant::now();
                op(i as u64).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok((start.elapsed(), all))
}

async fn run_ledger(sizes: LedgerSizes) -> anyhow::Result<()> {
    let LedgerSizes {
        single,
        writers,
        concurrent,
        entries,
        proofs,
    } = sizes;
    let dir = tempfile::tempdir()?;
    let actor = Actor {
        org: "org-bench".into(),
        key_id: "0123456789abcdef".into(),
    };
    let mut rows = Vec::new();

    // 1. Single durable append vs raw INSERT + COMMIT, interleaved so both see the
    //    same disk conditions.
    let raw = raw_table(dir.path()).await?;
    let ledger = fresh(dir.path(), "single").await?;
    let (mut raw_t, mut led_t) = (Vec::new(), Vec::new());
    let bar = super::progress_bar(single as u64, "single");
    for i in 0..single as u64 {
        let text = serde_json::to_string(&payload(i))?;
        // Alternate which goes first, so neither always follows the other's fsync.
        if i % 2 == 0 {
            raw_t.push(raw_insert(&raw, &text).await?);
            led_t.push(ledger_append(&ledger, &actor, i).await?);
        } else {
            led_t.push(ledger_append(&ledger, &actor, i).await?);
            raw_t.push(raw_insert(&raw, &text).await?);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (raw_m, led_m) = (median(raw_t), median(led_t));
    let raw_rate = per_sec(1.0, raw_m);
    let led_rate = per_sec(1.0, led_m);
    rows.push(Row {
        name: "single durable append",
        median: format!("{:.3} ms", led_m.as_secs_f64() * 1e3),
        rate: format!("{led_rate:.0}/s"),
        baseline: format!(
            "raw insert+commit {:.3} ms ({raw_rate:.0}/s)",
            raw_m.as_secs_f64() * 1e3
        ),
        ratio: format!("{:.2} of raw", led_rate / raw_rate),
    });

    // 2. Concurrent single appends through the group commit, against the same number of
    //    writers each committing a raw INSERT of its own.
    let grouped = fresh(dir.path(), "grouped").await?;
    let (led_wall, led_lat) = {
        let (ledger, actor) = (grouped.clone(), actor.clone());
        concurrently(writers, concurrent, move |i| {
            let (ledger, actor) = (ledger.clone(), actor.clone());
            async move {
                let entry = NewEntry {
                    kind: EntryKind::Transaction,
                    actor,
                    payload: payload(i),
                    parties: vec![],
                };
                ledger.append_entry_now(entry).await?;
                Ok(())
            }
        })
        .await?
    };
    anyhow::ensure!(
        grouped.size().await? == concurrent as u64,
        "the grouped ledger holds a different number of entries than were appended"
    );
    let (raw_wall, _) = {
        let raw = raw.clone();
        concurrently(writers, concurrent, move |i| {
            let raw = raw.clone();
            async move {
                raw_insert(&raw, &serde_json::to_string(&payload(i))?).await?;
                Ok(())
            }
        })
        .await?
    };
    let mut sorted = led_lat.clone();
    sorted.sort();
    let (led_rate, raw_rate) = (
        per_sec(concurrent as f64, led_wall),
        per_sec(concurrent as f64, raw_wall),
    );
    rows.push(Row {
        name: "concurrent appends (group commit)",
        median: format!(
            "{:.3} ms (p99 {:.3} ms)",
            median(led_lat).as_secs_f64() * 1e3,
            super::bench_orders::percentile(&sorted, 0.99).as_secs_f64() * 1e3
        ),
        rate: format!("{led_rate:.0}/s, {writers} writers"),
        baseline: format!("raw insert+commit per writer {raw_rate:.0}/s"),
        ratio: format!("{:.2} of raw", led_rate / raw_rate),
    });

    // 3. Batches of 1,000 per transaction, growing the big ledger used below.
    let big = fresh(dir.path(), "big").await?;
    let batches = entries.div_ceil(1000);
    let bar = super::progress_bar(entries, "batch");
    let mut batch_t = Vec::new();
    let mut seq = 0u64;
    for _ in 0..batches {
        let items: Vec<NewEntry> = (0..1000)
            .map(|j| NewEntry {
                kind: EntryKind::Transaction,
                actor: actor.clone(),
                payload: payload(seq + j),
                parties: vec![],
            })
            .collect();
        let t = Instant::now();
        let mut tx = big.db().begin_write().await?;
        big.append_batch(&mut tx, items).await?;
        tx.commit().await?;
        batch_t.push(t.elapsed());
        seq += 1000;
        bar.inc(1000);
    }
    bar.finish_and_clear();
    let mut raw_batch_t = Vec::new();
    for b in 0..20u64 {
        let t = Instant::now();
        let mut tx = raw.begin_write().await?;
        for j in 0..1000u64 {
            let text = serde_json::to_string(&payload(b * 1000 + j))?;
            sqlx::query("INSERT INTO raw (payload, h) VALUES ($1, $2)")
                .bind(text.clone())
                .bind(blake3::hash(text.as_bytes()).as_bytes().to_vec())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        raw_batch_t.push(t.elapsed());
    }
    let (bm, rbm) = (median(batch_t), median(raw_batch_t));
    rows.push(Row {
        name: "batch append (1,000/tx)",
        median: format!("{:.1} ms/batch", bm.as_secs_f64() * 1e3),
        rate: format!("{:.0}/s", per_sec(1000.0, bm)),
        baseline: format!("raw 1,000 inserts/tx {:.0}/s", per_sec(1000.0, rbm)),
        ratio: format!("{:.2} of raw", per_sec(1000.0, bm) / per_sec(1000.0, rbm)),
    });

    // 4. Inclusion proofs at the big size.
    let size = big.size().await?;
    let mut rng = rand::thread_rng();
    let mut proof_t = Vec::new();
    for _ in 0..proofs {
        let i = rng.gen_range(0..size);
        let t = Instant::now();
        let proof = big.inclusion_proof(i, size).await?;
        proof_t.push(t.elapsed());
        anyhow::ensure!(!proof.is_empty() || size == 1, "empty proof");
    }
    let pm = median(proof_t);
    rows.push(Row {
        name: "inclusion proof",
        median: format!("{:.3} ms", pm.as_secs_f64() * 1e3),
        rate: format!("at {size} entries"),
        baseline: "target < 5 ms".into(),
        ratio: "-".into(),
    });

    // 5. Full verification from the database and from an export file.
    let key = big.verifier();
    let t = Instant::now();
    let report = big
        .verify_with(&key, |_, _| {})
        .await?
        .map_err(|f| anyhow::anyhow!("benchmark ledger failed verification: {f}"))?;
    let vd = t.elapsed();
    rows.push(Row {
        name: "verify (database)",
        median: format!("{:.2} s total", vd.as_secs_f64()),
        rate: format!("{:.0}/s", per_sec(report.entries as f64, vd)),
        baseline: format!("{} checkpoints", report.checkpoints),
        ratio: "-".into(),
    });
    let path = dir.path().join("export.jsonl");
    {
        let file = std::fs::File::create(&path)?;
        let mut w = std::io::BufWriter::new(file);
        pdx_ledger::export::export(&big, &mut w, |_, _| {}).await?;
        std::io::Write::flush(&mut w)?;
    }
    let t = Instant::now();
    let file = std::fs::File::open(&path).context("export file")?;
    let report = pdx_ledger::export::verify_export(std::io::BufReader::new(file), &key, |_, _| {})?
        .map_err(|f| anyhow::anyhow!("export failed verification: {f}"))?;
    let ve = t.elapsed();
    rows.push(Row {
        name: "verify (export file)",
        median: format!("{:.2} s total", ve.as_secs_f64()),
        rate: format!("{:.0}/s", per_sec(report.entries as f64, ve)),
        baseline: "-".into(),
        ratio: "-".into(),
    });

    println!("| benchmark | median | rate | baseline (same run) | ratio |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.name, r.median, r.rate, r.baseline, r.ratio
        );
    }
    Ok(())
}
