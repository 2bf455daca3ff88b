//! `pdx bench orders`: orders per second end to end over HTTP, with p50 and p99
//! latency, on SQLite and (with `--postgres`) PostgreSQL.
//!
//! Per backend it starts the real server in-process on `127.0.0.1:0` over a fresh
//! database (a temporary SQLite file; a fresh PostgreSQL schema, dropped afterwards),
//! creates and lists one product, and gives each of `clients` concurrent clients its own
//! buyer organisation and key. Each client places its share of the orders
//! (`POST /v1/orders` with an `Idempotency-Key`) and pays each one
//! (`POST /v1/orders/{id}/pay`: the `Transaction` ledger entry and the revenue split);
//! one order is place + pay, timed as a whole.
//!
//! | row | what |
//! |---|---|
//! | `GET /healthz` | baseline: the same number of requests at the same concurrency, no auth, no database |
//! | `GET /v1/whoami` | baseline: an authenticated request (one key lookup) |
//! | order + pay | two authenticated writes, group-committed (`pdx_ledger::group`): each answered once durable; the last column gives the writes per commit |
//!
//! Each client first sends a few unreported requests so that connection set-up lands in
//! no row. Afterwards the reconciliation must be exact with one `Transaction` entry per
//! order, or the run fails. Build with `--release` for figures worth quoting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use pdx_ids::{DatasetId, KeyId, ProductId, ReleaseId};
use pdx_ledger::Hash32;
use pdx_products::{
    Licence, LicenceKind, NewProduct, ReconGroupBy, ReleasedSource, RevenueSplit, SourceDataset,
};

use crate::app::App;
use crate::auth::Role;
use crate::config::{Config, ConfigArgs};

use super::bench::median;

/// The price of the benchmark product, in fen.
pub(crate) const PRICE_MINOR: i64 = 9_900;

/// One measured workload.
struct Measured {
    backend: &'static str,
    workload: &'static str,
    count: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    /// Group commits during the row: (transactions, writes they held).
    groups: Option<(u64, u64)>,
}

impl Measured {
    fn row(&self, clients: usize) -> String {
        let mut xs = self.latencies.clone();
        xs.sort();
        let p99 = percentile(&xs, 0.99);
        let grouping = match self.groups {
            Some((commits, writes)) if commits > 0 => format!(
                "{writes} in {commits} commits ({:.1} per commit)",
                writes as f64 / commits as f64
            ),
            _ => "-".into(),
        };
        format!(
            "| {} | {} | {} | {clients} | {:.0}/s | {:.2} ms | {:.2} ms | {grouping} |",
            self.backend,
            self.workload,
            self.count,
            self.count as f64 / self.wall.as_secs_f64().max(1e-9),
            median(xs).as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
        )
    }
}

/// A fresh app over `data` (and `database_url`, else SQLite in `data`), bootstrapped
/// and served in this process on a loopback port.
pub(crate) async fn serve_in_process(
    data: &std::path::Path,
    database_url: Option<String>,
) -> anyhow::Result<(App, crate::server::RunningServer)> {
    let args = ConfigArgs {
        data_dir: Some(data.to_path_buf()),
        database_url,
        ..ConfigArgs::default()
    };
    let config = Config::resolve(&args, Some("127.0.0.1:0"))?;
    let app = App::open(config).await?;
    app.bootstrap().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = crate::server::spawn(app.clone(), listener)?;
    Ok((app, server))
}

/// The `q` quantile of sorted timings (nearest rank; zero for none).
pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A fresh PostgreSQL schema under `base`; returns (URL using it, schema name).
pub(crate) async fn pg_schema(base: &str) -> anyhow::Result<(String, String)> {
    let schema = format!("bench_{}", hex::encode(rand::random::<[u8; 6]>()));
    let db = pdx_ledger::db::Db::connect_with(base, 1)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(db.pool())
        .await
        .context("creating the benchmark schema")?;
    db.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok((format!("{base}{sep}options[search_path]={schema}"), schema))
}

/// Drops the schema [`pg_schema`] made.
pub(crate) async fn drop_pg_schema(base: &str, schema: &str) -> anyhow::Result<()> {
    let db = pdx_ledger::db::Db::connect_with(base, 1).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(db.pool())
        .await?;
    db.close().await;
    Ok(())
}

/// Creates the developer's product straight through the products crate (the sandbox
/// flow that produces a real release is not what is measured) and lists it over HTTP.
pub(crate) async fn listed_product(
    app: &App,
    http: &reqwest::Client,
    base: &str,
    dir: &std::path::Path,
) -> anyhow::Result<ProductId> {
    let provider = app
        .accounts
        .ensure_org("bench-provider", "guangdong")
        .await?;
    let developer = app
        .accounts
        .ensure_org("bench-developer", "national")
        .await?;
    let exchange = app
        .accounts
        .ensure_org("bench-exchange", "national")
        .await?;
    let dev_key = app
        .accounts
        .issue_key(&developer.id, Role::Developer, "bench")
        .await?;
    let exchange_key = app
        .accounts
        .issue_key(&exchange.id, Role::Exchange, "bench")
        .await?;
    let data = b"PAR1 benchmark output (not read by the benchmark)".to_vec();
    let path = dir.join("bench-release.parquet");
    // Kept as a released output is: sealed.
    app.sandbox.at_rest().write_file(&path, &data)?;
    let source = ReleasedSource {
        release_id: ReleaseId::parse("rel_bench")?,
        developer_org: developer.id.clone(),
        output_hash: Hash32(*blake3::hash(&data).as_bytes()),
        output_path: path,
        model_hash: Hash32(*blake3::hash(b"SELECT 1").as_bytes()),
        reviewers: vec![KeyId::random()],
        research_only_grant: false,
        grant_purpose: None,
        datasets: vec![SourceDataset {
            dataset_id: DatasetId::parse("ds_bench")?,
            title: "Benchmark dataset".into(),
            source_department: "Statistics Bureau".into(),
            provider_org: provider.id.clone(),
            provider_region: provider.region.clone(),
            certificate_no: "PDX-DA-BENCH-000001".into(),
            content_hash: Hash32(*blake3::hash(b"bench dataset").as_bytes()),
            acquired: "2026-01-01".into(),
            research_only: false,
        }],
    };
    let actor = pdx_ledger::Actor {
        org: developer.id.to_string(),
        key_id: dev_key.key_id.to_string(),
    };
    let product = app
        .products
        .create_product(
            &actor,
            NewProduct {
                title: "Benchmark product".into(),
                description: "orders benchmark".into(),
                licence: Licence {
                    kind: LicenceKind::CommercialInternal,
                    term_days: 365,
                    permitted_use: String::new(),
                },
                price_minor: PRICE_MINOR,
                currency: "CNY".into(),
                split: RevenueSplit {
                    public_finance_bp: 3_000,
                    platform_bp: 1_000,
                    developer_bp: 6_000,
                },
            },
            vec![source],
        )
        .await?;
    let resp = http
        .post(format!("{base}/v1/products/{}/list", product.id))
        .bearer_auth(&exchange_key.key)
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 200,
        "listing the benchmark product: {} {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    Ok(product.id)
}

/// `n` requests from `clients` concurrent clients; each client runs `op` in turn.
async fn measure<F, Fut>(
    clients: usize,
    n: usize,
    label: &str,
    op: F,
) -> anyhow::Result<(Duration, Vec<Duration>)>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let bar = super::progress_bar(n as u64, label);
    let started = Instant::now();
    let mut set = JoinSet::new();
    for c in 0..clients {
        // Client c takes requests c, c + clients, c + 2 clients, ...
        let mine: Vec<usize> = (c..n).step_by(clients).collect();
        let op = op.clone();
        let bar = bar.clone();
        set.spawn(async move {
            let mut times = Vec::with_capacity(mine.len());
            for i in mine {
                let t = Instant::now();
                (op.as_ref())(c, i).await?;
                times.push(t.elapsed());
                bar.inc(1);
            }
            anyhow::Ok(times)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = set.join_next().await {
        all.extend(done.context("a benchmark client panicked")??);
    }
    let wall = started.elapsed();
    bar.finish_and_clear();
    Ok((wall, all))
}

/// The JSON answer (null when it is not JSON), or an error with the answer unless its
/// status is `want`.
pub(crate) async fn expect_status(
    resp: reqwest::Response,
    want: u16,
    what: &str,
) -> anyhow::Result<Value> {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if status != want {
        bail!("{what}: expected {want}, got {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Runs every workload on one backend.
async fn run_backend(
    backend: &'static str,
    database_url: Option<String>,
    orders: usize,
    clients: usize,
) -> anyhow::Result<Vec<Measured>> {
    let dir = tempfile::tempdir()?;
    let (app, server) = serve_in_process(dir.path(), database_url).await?;
    let base = server.url();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(1))
        .build()?;

    let product = listed_product(&app, &http, &base, dir.path()).await?;
    let mut keys = Vec::with_capacity(clients);
    for c in 0..clients {
        let org = app
            .accounts
            .ensure_org(&format!("bench-buyer-{c:03}"), "national")
            .await?;
        keys.push(
            app.accounts
                .issue_key(&org.id, Role::Buyer, "bench")
                .await?
                .key,
        );
    }
    let keys = Arc::new(keys);
    let mut out = Vec::new();

    // Warm-up (not reported): every client opens its connection first, so that no row
    // pays for connection set-up.
    let (h, u) = (http.clone(), base.clone());
    measure(clients, clients * 4, "warm-up", move |_, _| {
        let (h, u) = (h.clone(), u.clone());
        async move {
            expect_status(h.get(format!("{u}/healthz")).send().await?, 200, "healthz").await?;
            Ok(())
        }
    })
    .await?;

    // Baseline 1: the HTTP round trip alone.
    let (h, u) = (http.clone(), base.clone());
    let (wall, latencies) = measure(clients, orders, "healthz", move |_, _| {
        let (h, u) = (h.clone(), u.clone());
        async move {
            expect_status(h.get(format!("{u}/healthz")).send().await?, 200, "healthz").await?;
            Ok(())
        }
    })
    .await?;
    out.push(Measured {
        backend,
        workload: "`GET /healthz` (baseline)",
        count: orders,
        wall,
        latencies,
        groups: None,
    });

    // Baseline 2: an authenticated read.
    let (h, u, k) = (http.clone(), base.clone(), keys.clone());
    let (wall, latencies) = measure(clients, orders, "whoami", move |c, _| {
        let (h, u, key) = (h.clone(), u.clone(), k[c].clone());
        async move {
            let resp = h
                .get(format!("{u}/v1/whoami"))
                .bearer_auth(key)
                .send()
                .await?;
            expect_status(resp, 200, "whoami").await?;
            Ok(())
        }
    })
    .await?;
    out.push(Measured {
        backend,
        workload: "`GET /v1/whoami` (baseline)",
        count: orders,
        wall,
        latencies,
        groups: None,
    });

    // The measured workload: place + pay.
    let before = app.db.group_commits();
    let (h, u, k, p) = (http.clone(), base.clone(), keys.clone(), product.clone());
    let (wall, latencies) = measure(clients, orders, "orders", move |c, i| {
        let (h, u, key, p) = (h.clone(), u.clone(), k[c].clone(), p.clone());
        async move {
            let resp = h
                .post(format!("{u}/v1/orders"))
                .bearer_auth(&key)
                .header("idempotency-key", format!("bench-{i:08}"))
                .json(&json!({ "product_id": p }))
                .send()
                .await?;
            let order = expect_status(resp, 201, "placing an order").await?;
            let id = order["id"]
                .as_str()
                .context("the order has no id")?
                .to_string();
            let resp = h
                .post(format!("{u}/v1/orders/{id}/pay"))
                .bearer_auth(&key)
                .json(&json!({ "payment_ref": format!("pay-{i:08}") }))
                .send()
                .await?;
            expect_status(resp, 200, "paying an order").await?;
            Ok(())
        }
    })
    .await?;
    let after = app.db.group_commits();
    out.push(Measured {
        backend,
        workload: "order + pay (2 writes)",
        count: orders,
        wall,
        latencies,
        groups: Some((after.groups - before.groups, after.jobs - before.jobs)),
    });

    // The books must balance: one Transaction entry per order, exact to the fen.
    let recon = app.products.reconcile(ReconGroupBy::Total).await?;
    ensure!(recon.exact, "{backend}: reconciliation is not exact");
    ensure!(
        recon.ledger.transaction_entries == orders as u64,
        "{backend}: {} Transaction entries for {orders} orders",
        recon.ledger.transaction_entries
    );
    ensure!(
        recon.total.paid_minor == PRICE_MINOR * orders as i64,
        "{backend}: paid {} fen for {orders} orders",
        recon.total.paid_minor
    );

    drop(http);
    server.shutdown().await?;
    app.db.close().await;
    Ok(out)
}

/// Runs the benchmark and prints a markdown table.
pub async fn run(orders: usize, clients: usize, postgres: Option<String>) -> anyhow::Result<()> {
    ensure!(orders > 0, "--orders must be at least 1");
    ensure!((1..=1000).contains(&clients), "--clients must be 1 to 1000");
    let mut rows = run_backend("SQLite", None, orders, clients).await?;
    if let Some(base) = postgres {
        let (url, schema) = pg_schema(&base).await?;
        let result = run_backend("PostgreSQL", Some(url), orders, clients).await;
        if let Err(e) = drop_pg_schema(&base, &schema).await {
            eprintln!("could not drop the benchmark schema {schema}: {e}");
        }
        rows.extend(result?);
    }
    println!(
        "{orders} operations per row from {clients} concurrent clients over HTTP (in-process \
         server on 127.0.0.1); an order + pay operation is two requests, timed together."
    );
    println!();
    println!(
        "| backend | workload | operations | clients | rate | p50 | p99 | writes per commit |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("{}", r.row(clients));
    }
    println!();
    println!(
        "Afterwards: reconciliation exact and one Transaction entry per order, on each backend."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let xs: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&xs, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&xs, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&xs[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }
}
