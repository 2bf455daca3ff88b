//! `ledger-load`: appends to a ledger from several tasks and prints one line per
//! acknowledged (committed) append: `ack <seq> <entry hash>`.
//!
//! Used by the crash and multi-process tests, and handy for load-testing a database:
//!
//! ```text
//! ledger-load --url sqlite://l.db?mode=rwc --key l.key --tasks 4 --appends 1000
//! ledger-load --url postgres://… --key l.key --tasks 1 --appends 0   # 0 = until killed
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use pdx_ledger::db::Db;
use pdx_ledger::kinds::Transaction;
use pdx_ledger::{Actor, Ledger, LedgerConfig, signing};

struct Args {
    url: String,
    key: PathBuf,
    tasks: usize,
    appends: u64,
    checkpoint_every: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut key = None;
    let mut tasks = 1usize;
    let mut appends = 100u64;
    let mut checkpoint_every = 100u64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = Some(value),
            "--key" => key = Some(PathBuf::from(value)),
            "--tasks" => tasks = value.parse().map_err(|_| "--tasks: not a number")?,
            "--appends" => appends = value.parse().map_err(|_| "--appends: not a number")?,
            "--checkpoint-every" => {
                checkpoint_every = value
                    .parse()
                    .map_err(|_| "--checkpoint-every: not a number")?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        url: url.ok_or("--url is required")?,
        key: key.ok_or("--key is required")?,
        tasks,
        appends,
        checkpoint_every,
    })
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ledger-load: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("ledger-load: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::connect_with(&args.url, args.tasks as u32 + 1).await?;
    Ledger::migrate(&db).await?;
    let signer = signing::load_or_create(&args.key, "load.pdx/ledger")?;
    let config = LedgerConfig {
        checkpoint_every: args.checkpoint_every,
        ..LedgerConfig::default()
    };
    let ledger = Arc::new(Ledger::new(db, signer, config));
    let pid = std::process::id();
    let mut handles = Vec::new();
    for task in 0..args.tasks {
        let ledger = ledger.clone();
        handles.push(tokio::spawn(async move {
            let actor = Actor {
                org: format!("org-load-{pid}"),
                key_id: format!("task{task}"),
            };
            let mut i = 0u64;
            while args.appends == 0 || i < args.appends {
                let payload = Transaction {
                    order_id: format!("ord-{pid}-{task}-{i}"),
                    product_id: "prod-load".into(),
                    buyer_org: "org-buyer".into(),
                    seller_org: actor.org.clone(),
                    amount_minor: 100 + i as i64,
                    currency: "CNY".into(),
                    payment_ref: format!("pay-{i}"),
                };
                let done = ledger.append_now(&actor, &payload).await?;
                // Printed only after commit: every "ack" line is a durable promise.
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {} {}", done.seq, done.entry_hash)?;
                out.flush()?;
                i += 1;
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for h in handles {
        h.await?.map_err(|e| e.to_string())?;
    }
    Ok(())
}
