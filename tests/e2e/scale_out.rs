//! Several `pdx serve` processes on one PostgreSQL database and one data directory
//! (issue #23; the rules are `pdx_sandbox::cluster`'s). Three real servers, `a`, `b` and
//! `c`, each with its own `--instance` name, a 5-second lease, and a checkpoint whenever
//! the newest is a second old (none signed inside appends, so every checkpoint is a
//! leader's):
//!
//! * **Orders across servers.** 50 buyers at once place and pay 1,000 orders, each
//!   order placed on one server and paid on the next. Every order is paid exactly once:
//!   the database holds 1,000 new paid orders worth exactly 1,000 × the price, each with
//!   one `Transaction` entry, and the books reconcile to the fen on every server
//!   (`GET /v1/reconciliation` by every grouping) and by `pdx reconcile`.
//! * **A server dies mid-run.** A model run accepted by `a` (whose jobs wait at their
//!   start) is running there when `a` is SIGKILLed. Once `a`'s heartbeat lapses another
//!   server claims the job and it succeeds there, with exactly one output and its one
//!   query charged once.
//! * **One leader at a time.** `a` is started alone and leads the ledger's periodic
//!   checkpoints; after its death another server takes the next term. Checkpoints were
//!   signed in both terms, and `pdx ledger verify` checks the one chain they sign.
//! * **Operations.** `/metrics` on a live server lists every instance and the jobs they
//!   hold.
//!
//! SQLite serves one server: a second live server on its file is refused at start
//! (`a_second_server_on_one_sqlite_file_is_refused`).

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::crash::pdx_cli;
use crate::products::{PRICE, listed_product, market, org_key};
use crate::restart::Serve;
use crate::support::{TestServer, post};

/// Buyers ordering at once.
const BUYERS: usize = 50;
/// Orders each buyer places and pays (1,000 in all).
const ORDERS_EACH: usize = 20;
/// Every server's settings: heartbeats valid 5 s, a poll every second, a checkpoint
/// whenever the newest is a second old and none inside appends.
const CONFIG: &str = "instance_lease_secs = 5\njob_poll_interval_secs = 1\ncheckpoint_interval_secs = 1\ncheckpoint_every = 0\n";
/// Far longer than the test needs to see the run started on `a` and kill `a`.
const PAUSE_MS: u64 = 120_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_share_one_postgres_database() {
    // None when PDX_TEST_POSTGRES_URL is not set (and a failure under CI=true).
    let Some(m) = market(true).await else {
        eprintln!("PDX_TEST_POSTGRES_URL not set: skipping the multi-server test");
        return;
    };
    let release = m.release["release_id"]
        .as_str()
        .expect("the market's release")
        .to_owned();
    let (product, _) = listed_product(&m, &release).await;
    let mut buyers = Vec::with_capacity(BUYERS);
    for i in 0..BUYERS {
        let (_, key) = org_key(&m.t, &format!("scale-buyer-{i}"), "buyer", "national").await;
        buyers.push(key);
    }
    let (st, model) = post(
        &m.t,
        &m.dev,
        "/v1/models",
        json!({"name": "districts on three servers", "kind": "sql",
               "body": crate::products::MODEL_SQL}),
    )
    .await;
    assert_eq!(st, 201, "{model}");
    let model = model["id"].as_str().expect("a model id").to_owned();
    let dev = m.dev.clone();
    let supervisor = m.supervisor.clone();
    let open_dataset = m.dataset.clone();

    // Only the three servers use the database from here on.
    let mut t: TestServer = m.t;
    let url = t.database_url.clone().expect("a PostgreSQL URL");
    let data = std::mem::replace(&mut t.dir, tempfile::tempdir().expect("a temp dir"));
    t.stop().await;
    let logs = tempfile::tempdir().expect("a temp dir");
    let config = logs.path().join("pdx.toml");
    std::fs::write(&config, CONFIG).expect("writing the config");
    let db = pdx_ledger::db::Db::connect_with(&url, 2)
        .await
        .expect("the test reaches the database");
    let paid_before = paid_orders(&db).await;
    let transactions_before = transactions(&db).await;

    // `a` alone first, with every job held at its start, until it leads.
    let mut a = start(&data, &url, &config, "a", Some(PAUSE_MS), logs.path()).await;
    let a_term = wait_for_leader(&db, &["a"], 0, &a).await;
    let b = start(&data, &url, &config, "b", None, logs.path()).await;
    let c = start(&data, &url, &config, "c", None, logs.path()).await;
    let servers = [&a, &b, &c];

    // 1. 1,000 orders from 50 buyers at once, each placed on one server, paid on the next.
    let bases: Vec<String> = servers.iter().map(|s| s.url("")).collect();
    let orders_started = Instant::now();
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for (i, key) in buyers.iter().enumerate() {
        let (http, bases, key, product) =
            (http.clone(), bases.clone(), key.clone(), product.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..ORDERS_EACH {
                let placed_on = &bases[(i + n) % bases.len()];
                let paid_on = &bases[(i + n + 1) % bases.len()];
                let idem = format!("scale-{i}-{n}");
                let order = retry(
                    &http,
                    Method::POST,
                    &format!("{placed_on}/v1/orders"),
                    &key,
                    Some(&idem),
                    json!({"product_id": product}),
                )
                .await;
                assert_eq!(order.0, 201, "buyer {i}, order {n}: {}", order.1);
                let id = order.1["id"].as_str().expect("an order id").to_owned();
                let paid = retry(
                    &http,
                    Method::POST,
                    &format!("{paid_on}/v1/orders/{id}/pay"),
                    &key,
                    None,
                    json!({"payment_ref": idem}),
                )
                .await;
                assert_eq!(paid.0, 200, "buyer {i}, paying order {n}: {}", paid.1);
                assert_eq!(paid.1["status"], "paid", "{}", paid.1);
            }
        }));
    }
    for task in tasks {
        task.await.expect("a buyer panicked");
    }
    eprintln!(
        "{} orders placed and paid across three servers in {:?}",
        BUYERS * ORDERS_EACH,
        orders_started.elapsed()
    );
    let (count, money) = paid_orders(&db).await;
    let placed = i64::try_from(BUYERS * ORDERS_EACH).expect("a small count");
    assert_eq!(
        count - paid_before.0,
        placed,
        "every order paid exactly once"
    );
    assert_eq!(
        money - paid_before.1,
        placed * PRICE,
        "the money, to the fen"
    );
    assert_eq!(
        transactions(&db).await - transactions_before,
        placed,
        "one Transaction entry per paid order"
    );

    // A checkpoint signed by `a` while it led (the orders grew the ledger).
    wait_for_checkpoint_since(&db, a_term.clone()).await;

    // 2. A run accepted by `a`, held at its start there; then `a` dies.
    let (st, job) = send(
        &http,
        Method::POST,
        &a.url("/v1/runs"),
        &dev,
        None,
        json!({"model_id": model, "inputs": [{"dataset_id": open_dataset}]}),
    )
    .await;
    assert_eq!(st, 202, "{job}");
    let job_id = job["id"].as_str().expect("a job id").to_owned();
    let job_path = format!("/v1/jobs/{job_id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = b.get_ok(&dev, &job_path).await;
        if now["status"] == "running" && now["stage"] == "started" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not start on a: {now}\n{}",
            a.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job_instance(&db, &job_id).await.as_deref(), Some("a"));
    let metrics = http.get(b.url("/metrics")).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("the metrics text");
    for line in [
        "pdx_instance_live{instance=\"a\"} 1",
        "pdx_instance_live{instance=\"b\"} 1",
        "pdx_instance_live{instance=\"c\"} 1",
        "pdx_jobs{instance=\"a\",status=\"running\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    a.kill().await;
    let killed = Instant::now();

    // The run finishes on another server, once.
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let now = c.get_ok(&dev, &job_path).await;
        if now["status"] == "succeeded" || now["status"] == "failed" {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the run was not taken over: {now}\nb:\n{}\nc:\n{}",
            b.log_tail(),
            c.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        done["status"],
        "succeeded",
        "{done}\nb:\n{}\nc:\n{}",
        b.log_tail(),
        c.log_tail()
    );
    let taker = job_instance(&db, &job_id).await;
    eprintln!(
        "the run was taken over by {taker:?} and finished {:?} after the kill",
        killed.elapsed()
    );
    assert!(
        matches!(taker.as_deref(), Some("b" | "c")),
        "taken over by {taker:?}"
    );
    let outputs = rows(
        &db,
        &format!("SELECT COUNT(*) AS n FROM outputs WHERE job_id = '{job_id}'"),
    )
    .await[0]
        .get::<i64, _>("n");
    assert_eq!(outputs, 1, "the run left exactly one output");
    let runs = rows(
        &db,
        &format!("SELECT COUNT(*) AS n FROM model_runs WHERE job_id = '{job_id}'"),
    )
    .await[0]
        .get::<i64, _>("n");
    assert_eq!(runs, 1, "the run was admitted (and charged) once");

    // 3. A new leader (b or c) signs the checkpoints from the next term on.
    let new_term = wait_for_leader(&db, &["b", "c"], a_term.term, &b).await;
    assert!(new_term.term > a_term.term);
    // Paid orders grow the ledger, so the new leader has something to sign.
    for (n, key) in buyers.iter().take(5).enumerate() {
        let idem = format!("scale-after-{n}");
        let order = retry(
            &http,
            Method::POST,
            &c.url("/v1/orders"),
            key,
            Some(&idem),
            json!({"product_id": product}),
        )
        .await;
        assert_eq!(order.0, 201, "{}", order.1);
        let id = order.1["id"].as_str().expect("an order id");
        let paid = retry(
            &http,
            Method::POST,
            &b.url(&format!("/v1/orders/{id}/pay")),
            key,
            None,
            json!({"payment_ref": idem}),
        )
        .await;
        assert_eq!(paid.0, 200, "{}", paid.1);
    }
    wait_for_checkpoint_since(&db, new_term.clone()).await;
    // `a` signed in its term (before the next began, whoever holds that), the new
    // leader in its own.
    let a_term_end = rows(
        &db,
        &format!(
            "SELECT since_ms FROM leader_terms WHERE role = 'ledger' AND term = {}",
            a_term.term + 1
        ),
    )
    .await[0]
        .get::<i64, _>("since_ms");
    let in_a_term = checkpoints_between(&db, a_term.since_ms, a_term_end).await;
    assert!(in_a_term > 0, "no checkpoint signed while a led");
    let terms = rows(
        &db,
        "SELECT term, holder FROM leader_terms WHERE role = 'ledger' ORDER BY term",
    )
    .await;
    let holders: Vec<String> = terms.iter().map(|r| r.get::<String, _>("holder")).collect();
    assert!(
        holders.contains(&"a".to_owned()) && holders.len() >= 2,
        "terms: {holders:?}"
    );

    // One chain, and the books reconcile on each live server and offline.
    let (code, out) = pdx_cli(data.path(), Some(&url), &["ledger", "verify"]).await;
    assert!(
        code == Some(0) && out.contains("ok:"),
        "pdx ledger verify exited {code:?}:\n{out}"
    );
    for server in [&b, &c] {
        for group in ["total", "provider_region", "developer", "period"] {
            let recon = server
                .get_ok(&supervisor, &format!("/v1/reconciliation?group_by={group}"))
                .await;
            assert_eq!(recon["exact"], true, "the books by {group}: {recon}");
        }
    }
    let (code, out) = pdx_cli(
        data.path(),
        Some(&url),
        &["reconcile", "--group-by", "developer"],
    )
    .await;
    assert!(
        code == Some(0) && out.contains("balanced"),
        "pdx reconcile exited {code:?}:\n{out}"
    );
    db.close().await;
}

#[tokio::test]
async fn a_second_server_on_one_sqlite_file_is_refused() {
    let data = tempfile::tempdir().expect("a temp dir");
    let logs = tempfile::tempdir().expect("a temp dir");
    let first = Serve::start_with(
        "sqlite",
        data.path(),
        None,
        None,
        logs.path().join("first.log"),
        &["--instance", "first"],
    )
    .await;
    let mut second = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"));
    second.arg("--data-dir").arg(data.path()).args([
        "--instance",
        "second",
        "serve",
        "--addr",
        "127.0.0.1:0",
    ]);
    for var in crate::restart::SERVER_ENV {
        second.env_remove(var);
    }
    let out = second.output().await.expect("running a second pdx serve");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "a second server started on the SQLite file:\n{text}"
    );
    assert!(
        text.contains("instance first is live") && text.contains("PostgreSQL"),
        "{text}"
    );
    // The first still serves.
    let ready = reqwest::get(first.url("/readyz"))
        .await
        .expect("the first server answers");
    assert!(ready.status().is_success());
}

/// The leader term the test waits for: its number and when it began.
#[derive(Clone, Debug)]
struct Term {
    term: i64,
    since_ms: i64,
}

/// Starts the server named `name` over the shared data directory and database.
async fn start(
    data: &tempfile::TempDir,
    url: &str,
    config: &Path,
    name: &str,
    pause_ms: Option<u64>,
    logs: &Path,
) -> Serve {
    let config = config.to_str().expect("a UTF-8 path");
    Serve::start_with(
        "postgres",
        data.path(),
        Some(url),
        pause_ms,
        logs.join(format!("{name}.log")),
        &["--config", config, "--instance", name],
    )
    .await
}

/// Waits (up to 60 s) until one of `holders` leads the ledger role in a term after
/// `after`; returns that term.
async fn wait_for_leader(
    db: &pdx_ledger::db::Db,
    holders: &[&str],
    after: i64,
    serve: &Serve,
) -> Term {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let terms = rows(db, "SELECT term, holder, since_ms FROM leader_terms WHERE role = 'ledger' ORDER BY term DESC").await;
        if let Some(newest) = terms.first() {
            let holder: String = newest.get("holder");
            let term: i64 = newest.get("term");
            if term > after && holders.contains(&holder.as_str()) {
                return Term {
                    term,
                    since_ms: newest.get("since_ms"),
                };
            }
        }
        assert!(
            Instant::now() < deadline,
            "none of {holders:?} led after term {after}:\n{}",
            serve.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to 30 s) for a checkpoint signed at or after the start of `term`.
async fn wait_for_checkpoint_since(db: &pdx_ledger::db::Db, term: Term) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if checkpoints_between(db, term.since_ms, i64::MAX).await > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint was signed in term {term:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checkpoints signed at or after `from` and before `to` (ms since epoch).
async fn checkpoints_between(db: &pdx_ledger::db::Db, from: i64, to: i64) -> i64 {
    rows(db, &format!(
        "SELECT COUNT(*) AS n FROM ledger_checkpoints WHERE timestamp_ms >= {from} AND timestamp_ms < {to}"
    )).await[0].get("n")
}

/// The paid orders: how many, and their money.
async fn paid_orders(db: &pdx_ledger::db::Db) -> (i64, i64) {
    let row = &rows(db, "SELECT COUNT(*) AS n, COALESCE(CAST(SUM(price_minor) AS BIGINT), 0) AS money FROM orders WHERE status = 'paid'").await[0];
    (row.get("n"), row.get("money"))
}

/// The `Transaction` entries on the ledger.
async fn transactions(db: &pdx_ledger::db::Db) -> i64 {
    rows(
        db,
        "SELECT COUNT(*) AS n FROM ledger_entries WHERE kind = 'transaction'",
    )
    .await[0]
        .get("n")
}

/// The instance holding the job.
async fn job_instance(db: &pdx_ledger::db::Db, job_id: &str) -> Option<String> {
    rows(
        db,
        &format!("SELECT instance_id FROM jobs WHERE id = '{job_id}'"),
    )
    .await[0]
        .get("instance_id")
}

async fn rows(db: &pdx_ledger::db::Db, sql: &str) -> Vec<sqlx::any::AnyRow> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// One request; (status, JSON body).
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    key: &str,
    idem: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = http.request(method, url).bearer_auth(key).json(&body);
    if let Some(idem) = idem {
        req = req.header("Idempotency-Key", idem);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// [`send`] again after a 429 or 503 (rate limits count per server), as a client would:
/// the order's idempotency key and the payment reference make a retry safe.
async fn retry(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    key: &str,
    idem: Option<&str>,
    body: Value,
) -> (u16, Value) {
    for _ in 0..50 {
        let answer = send(http, method.clone(), url, key, idem, body.clone()).await;
        if answer.0 != 429 && answer.0 != 503 {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url}: still busy after 50 tries");
}
