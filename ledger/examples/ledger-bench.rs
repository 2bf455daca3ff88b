//! A light stand-in for `pdx bench ledger` (src/cli/bench.rs) that builds with this crate
//! alone: the same payloads, batch size and SQLite settings, so profiles and figures
//! taken here carry over. Run it in the dev profile, as the official figure is taken
//! (this crate and its dependencies optimised, the caller not):
//!
//! ```text
//! cargo run -p pdx-ledger --example ledger-bench -- --entries 1000000 --dir /tmp/lb
//! ```
//!
//! `--phase` picks what to run: `all` (default), `append` (batch appends, the raw insert
//! baseline and an export), `append-only`, `export`, `verify` (database and export),
//! `verify-db` or `verify-export`. With `--dir D` the database and export stay in `D`,
//! so a later run can verify (or profile) what an earlier one appended.
//! `--raw-batches N` sets how many raw 1,000-insert transactions are timed (default 20).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pdx_ledger::db::{Db, sqlite_url};
use pdx_ledger::note::NoteSigner;
use pdx_ledger::store::NewEntry;
use pdx_ledger::{Actor, EntryKind, Ledger, LedgerConfig, signing};

fn payload(i: u64) -> serde_json::Value {
    serde_json::json!({
        "order_id": format!("ord-{i:08}"),
        "product_id": "prod-0001",
        "amount_minor": 12_345 + (i % 1000) as i64,
        "currency": "CNY",
    })
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

fn per_sec(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64().max(1e-9)
}

struct Args {
    entries: u64,
    phase: String,
    dir: Option<PathBuf>,
    raw_batches: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        entries: 100_000,
        phase: "all".into(),
        dir: None,
        raw_batches: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--entries" => args.entries = value.parse().map_err(|_| "--entries")?,
            "--phase" => args.phase = value,
            "--dir" => args.dir = Some(PathBuf::from(value)),
            "--raw-batches" => args.raw_batches = value.parse().map_err(|_| "--raw-batches")?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let db = Db::connect(&sqlite_url(&dir.join("big.db"))).await?;
    Ledger::migrate(&db).await?;
    let signer: NoteSigner = signing::load_or_create(&dir.join("big.key"), "bench.pdx/ledger")?;
    let big = Ledger::new(db, signer, LedgerConfig::default());
    let actor = Actor {
        org: "org-bench".into(),
        key_id: "0123456789abcdef".into(),
    };

    if args.phase == "all" || args.phase == "append" || args.phase == "append-only" {
        let raw = Db::connect(&sqlite_url(&dir.join("raw.db"))).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, h BLOB NOT NULL)",
        )
        .execute(raw.pool())
        .await?;
        let mut batch_t = Vec::new();
        let mut seq = big.size().await?;
        let t_all = Instant::now();
        for _ in 0..args.entries.div_ceil(1000) {
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
            let tc = Instant::now();
            tx.commit().await?;
            if std::env::var("PDX_T").is_ok() {
                eprintln!("commit {:?}", tc.elapsed());
            }
            batch_t.push(t.elapsed());
            seq += 1000;
        }
        let total = t_all.elapsed();
        let mut raw_batch_t = Vec::new();
        for b in 0..args.raw_batches {
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
        println!(
            "batch append: median {:.1} ms/batch = {:.0}/s (whole run {:.1} s); raw 1,000 inserts/tx {:.0}/s",
            bm.as_secs_f64() * 1e3,
            per_sec(1000.0, bm),
            total.as_secs_f64(),
            per_sec(1000.0, rbm)
        );
    }

    if args.phase == "all" || args.phase == "append" || args.phase == "export" {
        let t = Instant::now();
        let path = dir.join("export.jsonl");
        let file = std::fs::File::create(&path)?;
        let mut w = std::io::BufWriter::new(file);
        pdx_ledger::export::export(&big, &mut w, |_, _| {}).await?;
        std::io::Write::flush(&mut w)?;
        println!("export: {:.2} s", t.elapsed().as_secs_f64());
    }

    if args.phase == "all" || args.phase == "verify" || args.phase == "verify-db" {
        let key = big.verifier();
        let t = Instant::now();
        let report = big
            .verify_with(&key, |_, _| {})
            .await?
            .map_err(|f| format!("verification failed: {f}"))?;
        let vd = t.elapsed();
        println!(
            "verify (database): {:.2} s, {:.0}/s, {} checkpoints",
            vd.as_secs_f64(),
            per_sec(report.entries as f64, vd),
            report.checkpoints
        );
    }
    if args.phase == "all" || args.phase == "verify" || args.phase == "verify-export" {
        let key = big.verifier();
        let t = Instant::now();
        let file = std::fs::File::open(dir.join("export.jsonl"))?;
        let report =
            pdx_ledger::export::verify_export(std::io::BufReader::new(file), &key, |_, _| {})?
                .map_err(|f| format!("export verification failed: {f}"))?;
        let ve = t.elapsed();
        println!(
            "verify (export): {:.2} s, {:.0}/s",
            ve.as_secs_f64(),
            per_sec(report.entries as f64, ve)
        );
    }
    Ok(())
}
