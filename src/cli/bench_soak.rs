//! `pdx bench soak`: a steady mixed load against one server for ten minutes (issue #25,
//! "Soak"): no error, the server's memory flat after a warm-up, every order reconciled
//! to the fen.
//!
//! The server under load is a child process, `pdx serve` of this very executable, over
//! a fresh data directory (a SQLite file inside it; with `--postgres`, a fresh
//! PostgreSQL schema, dropped afterwards), so that the resident memory read from
//! `/proc/<pid>/status` every [`RSS_EVERY`] is the server's alone. Before it starts, the
//! benchmark opens the same directory and database in-process ([`App`], served on
//! `127.0.0.1:0`) and seeds them with the helpers of `pdx bench orders` and `pdx bench
//! portal`; it then stops that server and closes the database, so that only the child
//! uses them:
//!
//! - [`CATALOG_ENTRIES`] published catalog entries of varied titles (the generator of
//!   `pdx bench portal`), and the Adult census extract, conditionally open: its first
//!   [`ADULT_ROWS`] records (from `../shared/data/adult`, or the demo's generated
//!   stand-in when that is absent) uploaded, de-identified and certified by the ingest
//!   job;
//! - [`DEVELOPERS`] developers, each with an approved grant on it (a query budget for
//!   every run the plan can start) and the registered SQL model [`MODEL_SQL`];
//! - the listed product of `pdx bench orders`, [`BUYERS`] buyers and a supervisor.
//!
//! One operation of each kind but orders (which would enter the books) is tried on that
//! in-process server first, so that a broken setup fails in seconds rather than after
//! the soak.
//!
//! Then `--rate` operations a second (default 40) start on a tokio interval that skips
//! missed ticks, so that a late operation never makes the next ones burst. Each runs as
//! a task of its own (at most [`MAX_IN_FLIGHT`] at once; one more is an error, not
//! queued), in a fixed mix whose twenty slots are spread evenly ([`schedule`]):
//!
//! | operation | share | requests | as |
//! |---|---|---|---|
//! | catalog | 40 % | `GET /v1/datasets`, `GET /v1/datasets?q=hospital`, `GET /v1/datasets/{id}` in turn | the public (no key) |
//! | dry run | 15 % | `POST /v1/dry-run`: [`MODEL_SQL`] on [`DRY_RUN_ROWS`] dummy rows of the Adult extract | a developer, in turn |
//! | SQL run | 10 % | `POST /v1/runs`, then `GET /v1/jobs/{id}` every [`POLL_EVERY`] until it succeeded | a developer below the server's cap of runs in progress per organisation |
//! | order + pay | 20 % | `POST /v1/orders` (`Idempotency-Key`), `POST /v1/orders/{id}/pay` | a buyer, in turn |
//! | ledger | 15 % | `GET /v1/ledger/proof/inclusion?seq=…` and `GET /v1/ledger/receipt/{seq}` in turn, of a random entry | the supervisor |
//!
//! Every answer's status is checked: anything else (another status, no answer, a failed
//! or unfinished job) is an error of its kind, kept by route and status for the report,
//! never with a body. p50 and p99 are over the operations that succeeded, from the first
//! request to the last answer (a run: to the poll that saw it succeed).
//!
//! Afterwards, once every operation has finished, the books as the supervisor reads them
//! (`GET /v1/reconciliation`) must be exact, with one `Transaction` entry per paid order,
//! paid orders, the ledger's `Transaction` amounts and the (unsettled) sale lines each
//! equal to orders × price to the fen, and no order placed but left unpaid
//! (`GET /v1/orders?status=pending`); then the server is stopped with SIGTERM. The
//! report: per operation kind, the count, errors, p50 and p99; the failed requests by
//! route and answer; the server's RSS after `--warmup-minutes` (min, max, last, and
//! max/min − 1 against the goal of at most [`RSS_GOAL_PERCENT`] %); the books; and a
//! verdict. The command fails (exit 1) if any operation failed, the RSS grew beyond the
//! goal, or the books did not reconcile.
//!
//! `--rate` is at most [`MAX_RATE`]: the catalog reads come without a key from one
//! address, which the server counts at its default 100 requests a second. Build with
//! `--release` for figures worth quoting; the run takes `--minutes` plus the seeding
//! (under a minute).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::MissedTickBehavior;

use pdx_ids::{DatasetId, GrantId, JobId, ModelId, OrderId, ProductId};
use pdx_sandbox::catalog::{NewDataset, OpenAttribute};

use crate::app::App;
use crate::auth::Role;
use crate::demo::{adult_source, id_of};
use crate::samples;

use super::bench_orders::{
    PRICE_MINOR, drop_pg_schema, expect_status, listed_product, percentile, pg_schema,
};
use super::bench_portal::{SEARCH_WORD, acting, catalog_entry, publish};

/// Published catalog entries besides the Adult extract, for the catalog reads.
const CATALOG_ENTRIES: usize = 200;

/// Records of the Adult file uploaded: a small extract, so that a run takes a fraction
/// of a second.
const ADULT_ROWS: usize = 2_000;

/// Developer organisations running models (each under the server's cap on one
/// organisation's runs in progress).
const DEVELOPERS: usize = 4;

/// Buyer organisations ordering, in turn.
const BUYERS: usize = 8;

/// The model of every run and dry run (the demo's Adult model).
const MODEL_SQL: &str = "SELECT sex, COUNT(*) AS people FROM data GROUP BY sex";

/// The columns each developer's grant covers.
const GRANT_COLUMNS: [&str; 4] = ["sex", "age", "education", "salary-class"];

/// Dummy rows of each dry run.
const DRY_RUN_ROWS: usize = 500;

/// Highest `--rate`: the catalog reads (40 %) come without a key from one address, which
/// the server counts at its default 100 requests a second.
const MAX_RATE: u32 = 150;

/// Longest `--minutes`: a day.
const MAX_MINUTES: u64 = 24 * 60;

/// The largest query budget a grant may have (the sandbox's limit).
const MAX_QUERY_BUDGET: u64 = 1_000_000;

/// Runs a grant's budget allows beyond those the plan can start (the run tried before
/// the soak is one).
const BUDGET_MARGIN: u64 = 10;

/// Operations running at once; one more is not started but counted as an error.
const MAX_IN_FLIGHT: u32 = 512;

/// How often the server's resident memory is read.
const RSS_EVERY: Duration = Duration::from_secs(5);

/// The goal: the RSS after the warm-up grows by at most this much (max/min − 1).
const RSS_GOAL_PERCENT: u64 = 10;

/// How often a run's job is polled.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// A run not finished this long after it started is an error (the server's own run
/// timeout is 120 s).
const JOB_DEADLINE: Duration = Duration::from_secs(180);

/// A request without an answer this long is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the operations still running when the load stops may take to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(240);

/// How long the child server may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the child server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of the server's log shown when it fails to start or dies.
const LOG_TAIL_LINES: usize = 40;

/// The server's log filter: warnings and errors only, so that the log stays small.
const SERVER_LOG_FILTER: &str = "warn";

/// Variables of this process's environment that must not reach the child server.
const CHILD_ENV_CLEARED: [&str; 6] = [
    "PDX_CONFIG",
    "PDX_ADDR",
    "PDX_DATA_DIR",
    "PDX_DATABASE_URL",
    "PDX_JOB_START_PAUSE_MS",
    "PDX_LOG_FORMAT",
];

/// The route of a job poll.
const JOB_ROUTE: &str = "GET /v1/jobs/{id}";

/// How long, how fast, and from when memory is judged.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Length of the load, warm-up included, in minutes.
    pub minutes: u64,
    /// Operations started per second, every kind together.
    pub rate: u32,
    /// Minutes at the start whose memory is not judged.
    pub warmup_minutes: u64,
}

impl Plan {
    /// Refuses a plan that cannot run or judges nothing.
    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            (1..=MAX_MINUTES).contains(&self.minutes),
            "--minutes must be 1 to {MAX_MINUTES}"
        );
        ensure!(
            self.warmup_minutes < self.minutes,
            "--warmup-minutes must be below --minutes, or no memory is judged"
        );
        ensure!(
            (1..=MAX_RATE).contains(&self.rate),
            "--rate must be 1 to {MAX_RATE} (the catalog reads come without a key from one \
             address, which the server limits to 100 a second)"
        );
        Ok(())
    }

    /// How long the load runs.
    fn run_for(&self) -> Duration {
        Duration::from_secs(self.minutes * 60)
    }

    /// How long memory is not judged.
    fn warm_up(&self) -> Duration {
        Duration::from_secs(self.warmup_minutes * 60)
    }

    /// The time between two operations' starts.
    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.rate))
    }

    /// Operations the plan starts.
    fn operations(&self) -> u64 {
        u64::from(self.rate) * self.minutes * 60
    }

    /// Model runs the plan starts at most: the mix's share of its operations.
    fn runs_at_most(&self) -> u64 {
        let turn = schedule();
        let runs_per_turn = turn.iter().filter(|k| **k == OpKind::SqlRun).count() as u64;
        self.operations().div_ceil(turn.len() as u64) * runs_per_turn
    }
}

/// The kinds of operation in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    /// A catalog list, text search or entry.
    Catalog,
    /// A dry run on dummy data.
    DryRun,
    /// A SQL run, polled to completion.
    SqlRun,
    /// An order placed and paid.
    Order,
    /// An inclusion proof or a receipt of a ledger entry.
    Ledger,
}

/// Every kind, in the table's order.
const KINDS: [OpKind; 5] = [
    OpKind::Catalog,
    OpKind::DryRun,
    OpKind::SqlRun,
    OpKind::Order,
    OpKind::Ledger,
];

impl OpKind {
    /// Its place in [`KINDS`].
    fn index(self) -> usize {
        self as usize
    }

    /// Its slots among the twenty of one turn of the mix.
    fn weight(self) -> u32 {
        match self {
            OpKind::Catalog => 8,
            OpKind::DryRun => 3,
            OpKind::SqlRun => 2,
            OpKind::Order => 4,
            OpKind::Ledger => 3,
        }
    }

    /// Its name in the table.
    fn label(self) -> &'static str {
        match self {
            OpKind::Catalog => "catalog (list, search, entry)",
            OpKind::DryRun => "dry run",
            OpKind::SqlRun => "SQL run, polled to completion",
            OpKind::Order => "order + pay",
            OpKind::Ledger => "ledger proof / receipt",
        }
    }

    /// The route of its first request, where an operation that was not sent is counted.
    fn first_route(self) -> &'static str {
        match self {
            OpKind::Catalog => "GET /v1/datasets",
            OpKind::DryRun => "POST /v1/dry-run",
            OpKind::SqlRun => "POST /v1/runs",
            OpKind::Order => "POST /v1/orders",
            OpKind::Ledger => "GET /v1/ledger/…",
        }
    }
}

/// One turn of the mix: each kind as many times as its weight, spread evenly (smooth
/// weighted round robin, as nginx balances its upstreams), so that every stretch of the
/// run sees the same mix.
fn schedule() -> Vec<OpKind> {
    let total: i64 = KINDS.iter().map(|k| i64::from(k.weight())).sum();
    let mut credit = [0i64; KINDS.len()];
    let mut turn = Vec::new();
    for _ in 0..total {
        for (c, kind) in credit.iter_mut().zip(KINDS) {
            *c += i64::from(kind.weight());
        }
        // The largest credit goes next (on a tie, the earlier kind).
        let mut next = 0;
        for (i, c) in credit.iter().enumerate() {
            if *c > credit[next] {
                next = i;
            }
        }
        credit[next] -= total;
        turn.push(KINDS[next]);
    }
    turn
}

/// The `n`th of `items`, cycling (None when there are none).
fn pick<T>(items: &[T], n: u64) -> Option<&T> {
    let len = items.len() as u64;
    if len == 0 {
        return None;
    }
    items.get((n % len) as usize)
}

/// Why an operation failed: the route and what came back instead (a status, no answer,
/// a failed job), never a body.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Failure {
    /// Method and route template, e.g. `POST /v1/orders/{id}/pay`.
    route: &'static str,
    /// What came back instead.
    what: String,
}

impl Failure {
    fn new(route: &'static str, what: impl Into<String>) -> Failure {
        Failure {
            route,
            what: what.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.route, self.what)
    }
}

/// Why a request got no answer, in a few words (the error's own text may carry the URL).
fn no_answer(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "no answer in time"
    } else if error.is_connect() {
        "no connection"
    } else {
        "no answer"
    }
}

/// Sends a request; its JSON answer (null when it is not JSON) if its status is `want`,
/// else a [`Failure`] at `route` with the status. The body is read whole either way, so
/// that the connection can be used again, and never kept.
async fn exchange(
    request: reqwest::RequestBuilder,
    want: u16,
    route: &'static str,
) -> Result<Value, Failure> {
    let response = request
        .send()
        .await
        .map_err(|e| Failure::new(route, no_answer(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| Failure::new(route, no_answer(&e)))?;
    if status != want {
        return Err(Failure::new(route, format!("{status} (expected {want})")));
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The `id` of an answer, of the kind expected.
fn id_in<T: FromStr>(answer: &Value, route: &'static str) -> Result<T, Failure> {
    answer["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| Failure::new(route, "no id in the answer"))
}

/// Polls a job as `key` until it succeeded; a failed job, or one unfinished after
/// [`JOB_DEADLINE`], is a [`Failure`].
async fn poll_job(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    job: &JobId,
) -> Result<Value, Failure> {
    let url = format!("{base}/v1/jobs/{job}");
    let deadline = Instant::now() + JOB_DEADLINE;
    loop {
        let answer = exchange(http.get(&url).bearer_auth(key), 200, JOB_ROUTE).await?;
        match answer["status"].as_str() {
            Some("succeeded") => return Ok(answer),
            Some("failed") => return Err(Failure::new(JOB_ROUTE, "the job failed")),
            Some("queued" | "running") => {
                if Instant::now() >= deadline {
                    let late = format!("unfinished after {} s", JOB_DEADLINE.as_secs());
                    return Err(Failure::new(JOB_ROUTE, late));
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
            _ => return Err(Failure::new(JOB_ROUTE, "no job status in the answer")),
        }
    }
}

/// POSTs `body` as `key` while seeding; the answer's JSON, or an error (with the answer)
/// unless its status is `want`.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
    want: u16,
) -> anyhow::Result<Value> {
    let what = format!("POST {url}");
    let resp = http
        .post(url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .with_context(|| what.clone())?;
    expect_status(resp, want, &what).await
}

/// A developer the load runs models as.
struct Developer {
    /// Its key.
    key: String,
    /// Its approved grant on the Adult extract.
    grant: GrantId,
    /// Its registered SQL model ([`MODEL_SQL`]).
    model: ModelId,
    /// The server's cap on the organisation's runs in progress, kept on this side too,
    /// so that the load never starts a run the server would refuse with 429.
    run_slots: Arc<Semaphore>,
}

/// What the seeding made, for the load to act on.
struct Seeded {
    /// The Adult extract, certified.
    adult: DatasetId,
    /// Where its records came from (the shared folder, or the generated stand-in).
    adult_source: String,
    /// Every published entry, the Adult extract included.
    catalog: Vec<DatasetId>,
    /// The developers.
    developers: Vec<Developer>,
    /// The buyers' keys.
    buyers: Vec<String>,
    /// The supervisor's key (every ledger entry visible; the books).
    supervisor: String,
    /// The listed product, at [`PRICE_MINOR`].
    product: ProductId,
    /// Ledger entries when the seeding ended.
    ledger_size: u64,
}

/// The Adult registration (conditionally open), its first [`ADULT_ROWS`] records with
/// the header, and where they came from (the shared folder, or the demo's generated
/// stand-in written to `scratch` when that folder is absent).
fn adult_extract(scratch: &Path) -> anyhow::Result<(NewDataset, Vec<u8>, String)> {
    let (dir, source) = adult_source(&samples::shared_data_dir().join("adult"), scratch)?;
    let meta = samples::adult_dataset(&dir, OpenAttribute::Conditional)?;
    let path = dir.join("adult.csv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut csv = text
        .lines()
        .take(ADULT_ROWS + 1)
        .collect::<Vec<_>>()
        .join("\n");
    csv.push('\n');
    Ok((meta, csv.into_bytes(), source))
}

/// Seeds the data directory and database through an in-process server, then stops it
/// and closes the database, so that only the child server uses them.
async fn seed(
    data: &Path,
    database_url: Option<String>,
    plan: Plan,
) -> anyhow::Result<Arc<Seeded>> {
    let (app, server) = super::bench_orders::serve_in_process(data, database_url).await?;
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let seeded = seed_through(&app, &http, &server.url(), data, plan).await;
    // No idle connection of ours may hold the drain up.
    drop(http);
    server.shutdown().await?;
    app.db.close().await;
    seeded
}

/// The seeding itself, against the in-process server at `base`; then one operation of
/// each kind but orders.
async fn seed_through(
    app: &App,
    http: &reqwest::Client,
    base: &str,
    data: &Path,
    plan: Plan,
) -> anyhow::Result<Arc<Seeded>> {
    let provider = acting(app, "soak-provider", Role::Provider).await?;
    let authority = acting(app, "soak-authority", Role::Authority).await?;
    let supervisor = acting(app, "soak-supervisor", Role::Supervisor).await?;

    let template = samples::electricity_dataset();
    let mut catalog = Vec::with_capacity(CATALOG_ENTRIES + 1);
    for i in 0..CATALOG_ENTRIES {
        let entry = catalog_entry(i, &template);
        catalog.push(publish(app, &provider.actor, &authority.actor, entry).await?);
    }
    let scratch = tempfile::tempdir()?;
    let (meta, csv, adult_source) = adult_extract(scratch.path())?;
    let adult = publish(app, &provider.actor, &authority.actor, meta).await?;
    catalog.push(adult.clone());
    let resp = http
        .post(format!(
            "{base}/v1/datasets/{adult}/versions?format=csv&delimiter=;"
        ))
        .bearer_auth(&provider.key)
        .header("content-type", "application/octet-stream")
        .body(csv)
        .send()
        .await
        .context("uploading the Adult extract")?;
    let job: JobId = id_of(
        &expect_status(resp, 202, "uploading the Adult extract").await?,
        "id",
    )?;
    poll_job(http, base, &provider.key, &job)
        .await
        .map_err(|f| anyhow!("certifying the Adult extract: {f} (job {job})"))?;

    let budget = (plan.runs_at_most() + BUDGET_MARGIN).min(MAX_QUERY_BUDGET);
    let runs_per_org = usize::try_from(app.config.sandbox.org_run_concurrency)?;
    let mut developers = Vec::with_capacity(DEVELOPERS);
    for n in 0..DEVELOPERS {
        let developer = acting(app, &format!("soak-developer-{n}"), Role::Developer).await?;
        let application = json!({
            "dataset_id": adult,
            "purpose": "soak: census statistics",
            "columns": GRANT_COLUMNS,
            "model_kinds": ["sql"],
            "term_days": 365,
            "epsilon": 0.0,
            "delta": 0.0,
            "query_budget": budget,
        });
        let url = format!("{base}/v1/grants");
        let grant: GrantId = id_of(
            &post_json(http, &url, &developer.key, &application, 201).await?,
            "id",
        )?;
        let url = format!("{base}/v1/grants/{grant}/decision");
        let approval = json!({"approve": true});
        post_json(http, &url, &provider.key, &approval, 200).await?;
        let model = json!({"name": format!("soak model {n}"), "kind": "sql", "body": MODEL_SQL});
        let url = format!("{base}/v1/models");
        let model: ModelId = id_of(
            &post_json(http, &url, &developer.key, &model, 201).await?,
            "id",
        )?;
        developers.push(Developer {
            key: developer.key,
            grant,
            model,
            run_slots: Arc::new(Semaphore::new(runs_per_org)),
        });
    }

    let mut buyers = Vec::with_capacity(BUYERS);
    for n in 0..BUYERS {
        buyers.push(
            acting(app, &format!("soak-buyer-{n}"), Role::Buyer)
                .await?
                .key,
        );
    }
    let product = listed_product(app, http, base, data).await?;
    let seeded = Seeded {
        adult,
        adult_source,
        catalog,
        developers,
        buyers,
        supervisor: supervisor.key,
        product,
        ledger_size: app.ledger.size().await?,
    };

    let first = Load::new(http.clone(), base.to_string(), Arc::new(seeded));
    for kind in [
        OpKind::Catalog,
        OpKind::DryRun,
        OpKind::SqlRun,
        OpKind::Ledger,
    ] {
        first
            .attempt(kind, 0)
            .await
            .map_err(|f| anyhow!("a first {} failed before the soak: {f}", kind.label()))?;
    }
    Ok(first.seeded)
}

/// Latencies and errors of one kind of operation.
#[derive(Default)]
struct KindTally {
    /// Of the operations that succeeded.
    latencies: Vec<Duration>,
    /// Operations that failed.
    errors: u64,
}

/// Everything the operations reported.
#[derive(Default)]
struct Tally {
    /// By kind, in the order of [`KINDS`].
    kinds: [KindTally; KINDS.len()],
    /// How often each failure happened.
    failures: BTreeMap<Failure, u64>,
}

impl Tally {
    fn add(&mut self, kind: OpKind, elapsed: Duration, result: Result<(), Failure>) {
        let row = &mut self.kinds[kind.index()];
        match result {
            Ok(()) => row.latencies.push(elapsed),
            Err(failure) => {
                row.errors += 1;
                *self.failures.entry(failure).or_default() += 1;
            }
        }
    }

    /// Failed operations of every kind.
    fn errors(&self) -> u64 {
        self.kinds.iter().map(|k| k.errors).sum()
    }
}

/// The load generator's state, shared by every operation's task.
struct Load {
    http: reqwest::Client,
    /// The server's base URL.
    base: String,
    seeded: Arc<Seeded>,
    /// Operations started so far, per kind: each kind's own sequence number picks the
    /// variant, the buyer or developer, and the idempotency key.
    sequence: [AtomicU64; KINDS.len()],
    /// Ledger entries known to exist (grows with the checkpoints the proofs name).
    ledger_size: AtomicU64,
    /// Orders the server acknowledged placing.
    placed: AtomicU64,
    /// Orders the server acknowledged paying.
    paid: AtomicU64,
    tally: Mutex<Tally>,
}

impl Load {
    fn new(http: reqwest::Client, base: String, seeded: Arc<Seeded>) -> Load {
        Load {
            ledger_size: AtomicU64::new(seeded.ledger_size),
            http,
            base,
            seeded,
            sequence: Default::default(),
            placed: AtomicU64::new(0),
            paid: AtomicU64::new(0),
            tally: Mutex::default(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs the next operation of `kind` and records how it went.
    async fn operate(&self, kind: OpKind) {
        let n = self.sequence[kind.index()].fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.attempt(kind, n).await;
        self.record(kind, started.elapsed(), result);
    }

    fn record(&self, kind: OpKind, elapsed: Duration, result: Result<(), Failure>) {
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(kind, elapsed, result);
    }

    /// The `n`th operation of `kind`.
    async fn attempt(&self, kind: OpKind, n: u64) -> Result<(), Failure> {
        match kind {
            OpKind::Catalog => self.catalog(n).await,
            OpKind::DryRun => self.dry_run(n).await,
            OpKind::SqlRun => self.sql_run(n).await,
            OpKind::Order => self.order(n).await,
            OpKind::Ledger => self.ledger(n).await,
        }
    }

    /// The first page of the catalog, a text search and an entry, in turn, as the
    /// public.
    async fn catalog(&self, n: u64) -> Result<(), Failure> {
        let (path, route) = match n % 3 {
            0 => ("/v1/datasets".to_string(), "GET /v1/datasets"),
            1 => (
                format!("/v1/datasets?q={SEARCH_WORD}"),
                "GET /v1/datasets?q=…",
            ),
            _ => {
                let route = "GET /v1/datasets/{id}";
                let id = pick(&self.seeded.catalog, n / 3)
                    .ok_or_else(|| Failure::new(route, "nothing published"))?;
                (format!("/v1/datasets/{id}"), route)
            }
        };
        exchange(self.http.get(self.url(&path)), 200, route).await?;
        Ok(())
    }

    /// The model on dummy rows, as a developer.
    async fn dry_run(&self, n: u64) -> Result<(), Failure> {
        let route = OpKind::DryRun.first_route();
        let developer =
            pick(&self.seeded.developers, n).ok_or_else(|| Failure::new(route, "no developer"))?;
        let body = json!({
            "kind": "sql",
            "body": MODEL_SQL,
            "dataset_id": self.seeded.adult,
            "rows": DRY_RUN_ROWS,
        });
        let request = self
            .http
            .post(self.url("/v1/dry-run"))
            .bearer_auth(&developer.key)
            .json(&body);
        exchange(request, 200, route).await?;
        Ok(())
    }

    /// A developer below its cap of runs in progress, and the slot it takes; the `n`th
    /// developer first.
    fn free_developer(&self, n: u64) -> Option<(&Developer, OwnedSemaphorePermit)> {
        let developers = &self.seeded.developers;
        (0..developers.len() as u64).find_map(|i| {
            let developer = pick(developers, n + i)?;
            let slot = Arc::clone(&developer.run_slots).try_acquire_owned().ok()?;
            Some((developer, slot))
        })
    }

    /// A run of the model under the developer's grant, polled until it succeeded with an
    /// output.
    async fn sql_run(&self, n: u64) -> Result<(), Failure> {
        let route = OpKind::SqlRun.first_route();
        // The slot is held until the run is seen finished.
        let (developer, _slot) = self.free_developer(n).ok_or_else(|| {
            Failure::new(
                route,
                "not sent: every developer has its most runs in progress",
            )
        })?;
        let body = json!({
            "model_id": developer.model,
            "inputs": [{"dataset_id": self.seeded.adult, "grant_id": developer.grant}],
        });
        let request = self
            .http
            .post(self.url("/v1/runs"))
            .bearer_auth(&developer.key)
            .json(&body);
        let job: JobId = id_in(&exchange(request, 202, route).await?, route)?;
        let done = poll_job(&self.http, &self.base, &developer.key, &job).await?;
        if done["result"]["output_id"].is_string() {
            Ok(())
        } else {
            Err(Failure::new(JOB_ROUTE, "the run made no output"))
        }
    }

    /// An order of the product, placed with an idempotency key and paid, as a buyer.
    async fn order(&self, n: u64) -> Result<(), Failure> {
        let place = OpKind::Order.first_route();
        let pay = "POST /v1/orders/{id}/pay";
        let buyer = pick(&self.seeded.buyers, n).ok_or_else(|| Failure::new(place, "no buyer"))?;
        let request = self
            .http
            .post(self.url("/v1/orders"))
            .bearer_auth(buyer)
            .header("idempotency-key", format!("soak-{n:010}"))
            .json(&json!({"product_id": self.seeded.product}));
        let order: OrderId = id_in(&exchange(request, 201, place).await?, place)?;
        self.placed.fetch_add(1, Ordering::Relaxed);
        let request = self
            .http
            .post(self.url(&format!("/v1/orders/{order}/pay")))
            .bearer_auth(buyer)
            .json(&json!({"payment_ref": format!("soak-pay-{n:010}")}));
        exchange(request, 200, pay).await?;
        self.paid.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// An inclusion proof and a receipt, in turn, of a random entry, as the supervisor.
    async fn ledger(&self, n: u64) -> Result<(), Failure> {
        let size = self.ledger_size.load(Ordering::Relaxed).max(1);
        let seq = rand::thread_rng().gen_range(0..size);
        let supervisor = &self.seeded.supervisor;
        if n.is_multiple_of(2) {
            let route = "GET /v1/ledger/proof/inclusion";
            let request = self
                .http
                .get(self.url(&format!("/v1/ledger/proof/inclusion?seq={seq}")))
                .bearer_auth(supervisor);
            let proof = exchange(request, 200, route).await?;
            // The proof is against the newest checkpoint: the entries it covers may be
            // drawn from now on.
            if let Some(newest) = proof["size"].as_u64() {
                self.ledger_size.fetch_max(newest, Ordering::Relaxed);
            }
        } else {
            let route = "GET /v1/ledger/receipt/{seq}";
            let request = self
                .http
                .get(self.url(&format!("/v1/ledger/receipt/{seq}")))
                .bearer_auth(supervisor);
            exchange(request, 200, route).await?;
        }
        Ok(())
    }
}

/// A free port on the loopback interface (free when asked; the child binds it next).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The resident set size of process `pid`, in KiB (None once it is gone).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_rss_kib(&status)
}

/// The `VmRSS` line of a `/proc/<pid>/status` text, in KiB (a zombie has none).
fn vm_rss_kib(status: &str) -> Option<u64> {
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    value.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// The `pdx serve` under load: a child process of this executable.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    /// Its base URL.
    base: String,
    /// Its standard output and error.
    log: PathBuf,
}

impl Server {
    /// Starts `pdx serve` over `data` (and `database_url`, else the SQLite file inside
    /// `data`) on a free loopback port, with nothing of this environment pointing it
    /// elsewhere, and waits until it is ready. Its output goes to `log`.
    async fn start(
        data: &Path,
        database_url: Option<&str>,
        log: PathBuf,
        http: &reqwest::Client,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out
            .try_clone()
            .context("a second handle on the server log")?;
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("--data-dir").arg(data);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.arg("serve")
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"));
        for var in CHILD_ENV_CLEARED {
            cmd.env_remove(var);
        }
        cmd.env("PDX_LOG", SERVER_LOG_FILTER)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd.spawn().context("starting pdx serve")?;
        let pid = child.id().context("pdx serve exited at once")?;
        let mut server = Server {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_ready(http).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("{}/readyz", self.base);
        loop {
            let ready = http.get(&url).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "pdx serve exited ({status}) before it was ready; its log ends:\n{}",
                    self.log_tail()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "pdx serve was not ready in {} s; its log ends:\n{}",
                READY_TIMEOUT.as_secs(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of the server's output.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Stops the server as an operator does, with SIGTERM (it drains and exits), or
    /// with SIGKILL if it has not exited [`STOP_TIMEOUT`] later; says how it ended.
    async fn stop(mut self) -> String {
        let pid = self.pid.to_string();
        let term = tokio::process::Command::new("kill")
            .args(["-TERM", pid.as_str()])
            .status()
            .await;
        if term.is_ok_and(|status| status.success())
            && let Ok(Ok(status)) = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await
        {
            return format!("stopped by SIGTERM ({status})");
        }
        let _ = self.child.start_kill();
        match self.child.wait().await {
            Ok(status) => format!("did not stop on SIGTERM; killed ({status})"),
            Err(e) => format!("could not be stopped: {e}"),
        }
    }
}

/// What the soak itself gives, besides the tally.
struct Soaked {
    /// Operations started (or refused for too many in flight).
    operations: u64,
    /// Operations still running [`DRAIN_TIMEOUT`] after the load stopped.
    unfinished: usize,
    /// The server's RSS before the load, in KiB.
    idle_kib: Option<u64>,
    /// The server's RSS, in KiB, and when it was read (from the start of the load).
    samples: Vec<(Duration, u64)>,
}

/// The load: one operation per tick, in the mix's order, for the plan's time; the
/// server's memory read every [`RSS_EVERY`]; then every operation finished.
async fn soak(server: &mut Server, load: &Arc<Load>, plan: Plan) -> anyhow::Result<Soaked> {
    let idle_kib = rss_kib(server.pid);
    let turn = schedule();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize));
    let (run_for, warm_up) = (plan.run_for(), plan.warm_up());
    let bar = super::progress_bar(run_for.as_secs(), "warm-up");
    let mut ticker = tokio::time::interval(plan.period());
    // A late tick fires once and the schedule moves on: no burst to catch up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut samples = Vec::new();
    let mut operations: u64 = 0;
    let mut judged = false;
    let started = Instant::now();
    let mut next_sample = started;
    loop {
        ticker.tick().await;
        let elapsed = started.elapsed();
        if elapsed >= run_for {
            break;
        }
        bar.set_position(elapsed.as_secs());
        if !judged && elapsed >= warm_up {
            judged = true;
            bar.set_message("soak");
        }
        if Instant::now() >= next_sample {
            if let Some(status) = server.child.try_wait()? {
                bar.finish_and_clear();
                bail!(
                    "pdx serve exited ({status}) after {} s of load; its log ends:\n{}",
                    elapsed.as_secs(),
                    server.log_tail()
                );
            }
            if let Some(kib) = rss_kib(server.pid) {
                samples.push((elapsed, kib));
            }
            next_sample = Instant::now() + RSS_EVERY;
        }
        let Some(&kind) = pick(&turn, operations) else {
            bail!("the mix is empty");
        };
        operations += 1;
        match Arc::clone(&in_flight).try_acquire_owned() {
            Ok(permit) => {
                let load = Arc::clone(load);
                tokio::spawn(async move {
                    load.operate(kind).await;
                    drop(permit);
                });
            }
            Err(_) => {
                let refused = format!("not sent: {MAX_IN_FLIGHT} operations in flight");
                let failure = Failure::new(kind.first_route(), refused);
                load.record(kind, Duration::ZERO, Err(failure));
            }
        }
    }
    bar.set_message("draining");
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, in_flight.acquire_many(MAX_IN_FLIGHT)).await;
    let unfinished = match drained {
        Ok(Ok(_every_permit)) => 0,
        _ => (MAX_IN_FLIGHT as usize).saturating_sub(in_flight.available_permits()),
    };
    if let Some(kib) = rss_kib(server.pid) {
        samples.push((started.elapsed(), kib));
    }
    bar.finish_and_clear();
    Ok(Soaked {
        operations,
        unfinished,
        idle_kib,
        samples,
    })
}

/// The server's RSS after the warm-up.
#[derive(Debug, PartialEq, Eq)]
struct RssSummary {
    samples: usize,
    min_kib: u64,
    max_kib: u64,
    last_kib: u64,
}

impl RssSummary {
    /// Of the samples read at or after `warm_up` (None if there is none).
    fn after(samples: &[(Duration, u64)], warm_up: Duration) -> Option<RssSummary> {
        let judged: Vec<u64> = samples
            .iter()
            .filter(|sample| sample.0 >= warm_up)
            .map(|sample| sample.1)
            .collect();
        Some(RssSummary {
            samples: judged.len(),
            min_kib: judged.iter().copied().min()?,
            max_kib: judged.iter().copied().max()?,
            last_kib: judged.last().copied()?,
        })
    }

    /// max/min − 1, in percent.
    fn growth_percent(&self) -> f64 {
        (self.max_kib as f64 / self.min_kib.max(1) as f64 - 1.0) * 100.0
    }

    /// Whether max/min − 1 is at most [`RSS_GOAL_PERCENT`] (in integers: exactly 10 %
    /// passes).
    fn within_goal(&self) -> bool {
        u128::from(self.max_kib) * 100
            <= u128::from(self.min_kib) * u128::from(100 + RSS_GOAL_PERCENT)
    }
}

/// The books after the load as the supervisor reads them, and the orders the load saw
/// acknowledged.
struct Books {
    placed: u64,
    paid: u64,
    /// The reconciliation's own verdict.
    exact: bool,
    transaction_entries: u64,
    transactions_minor: i64,
    paid_minor: i64,
    refunded_minor: i64,
    /// The sale lines not settled: every one, as nothing is settled during the soak.
    unsettled_minor: i64,
    /// Orders of the product placed and not paid.
    pending: usize,
}

impl Books {
    /// What every paid order should add up to.
    fn due_minor(&self) -> i64 {
        PRICE_MINOR * self.paid as i64
    }

    /// What does not reconcile (nothing when the books are right).
    fn problems(&self) -> Vec<String> {
        let due = self.due_minor();
        let mut problems = Vec::new();
        if !self.exact {
            problems.push("the reconciliation is not exact".to_string());
        }
        if self.placed != self.paid {
            problems.push(format!("{} orders placed, {} paid", self.placed, self.paid));
        }
        if self.pending != 0 {
            problems.push(format!("{} orders left unpaid", self.pending));
        }
        if self.transaction_entries != self.paid {
            problems.push(format!(
                "{} Transaction entries for {} paid orders",
                self.transaction_entries, self.paid
            ));
        }
        for (what, minor) in [
            ("paid orders", self.paid_minor),
            ("the ledger's Transaction entries", self.transactions_minor),
            ("the sale lines", self.unsettled_minor),
        ] {
            if minor != due {
                problems.push(format!(
                    "{what} come to {minor} fen, not {} × {PRICE_MINOR} = {due} fen",
                    self.paid
                ));
            }
        }
        if self.refunded_minor != 0 {
            problems.push(format!("{} fen refunded", self.refunded_minor));
        }
        problems
    }
}

/// A number at `pointer` in the reconciliation.
fn i64_at(recon: &Value, pointer: &str) -> anyhow::Result<i64> {
    recon
        .pointer(pointer)
        .and_then(Value::as_i64)
        .with_context(|| format!("no {pointer} in the reconciliation"))
}

/// Reads the books as the supervisor: the reconciliation, and the product's orders left
/// pending.
async fn read_books(load: &Load) -> anyhow::Result<Books> {
    let supervisor = &load.seeded.supervisor;
    let resp = load
        .http
        .get(load.url("/v1/reconciliation"))
        .bearer_auth(supervisor)
        .send()
        .await
        .context("reading the reconciliation")?;
    let recon = expect_status(resp, 200, "reading the reconciliation").await?;
    let pending = format!(
        "/v1/orders?status=pending&product_id={}&limit=1000",
        load.seeded.product
    );
    let resp = load
        .http
        .get(load.url(&pending))
        .bearer_auth(supervisor)
        .send()
        .await
        .context("listing the pending orders")?;
    let pending = expect_status(resp, 200, "listing the pending orders").await?;
    Ok(Books {
        placed: load.placed.load(Ordering::Relaxed),
        paid: load.paid.load(Ordering::Relaxed),
        exact: recon["exact"]
            .as_bool()
            .context("no `exact` in the reconciliation")?,
        transaction_entries: u64::try_from(i64_at(&recon, "/ledger/transaction_entries")?)?,
        transactions_minor: i64_at(&recon, "/ledger/transactions_minor")?,
        paid_minor: i64_at(&recon, "/total/paid_minor")?,
        refunded_minor: i64_at(&recon, "/total/refunded_minor")?,
        unsettled_minor: i64_at(&recon, "/total/unsettled_minor")?,
        pending: pending
            .as_array()
            .context("the pending orders are not a list")?
            .len(),
    })
}

/// Why the soak failed, every reason (none when it passed): an operation failed or never
/// finished, the RSS after the warm-up grew beyond the goal (or was never read), or the
/// books do not reconcile.
fn verdict(errors: u64, unfinished: usize, rss: Option<&RssSummary>, books: &Books) -> Vec<String> {
    let mut reasons = Vec::new();
    if errors > 0 {
        reasons.push(format!("{errors} operations failed"));
    }
    if unfinished > 0 {
        reasons.push(format!(
            "{unfinished} operations unfinished {} s after the load stopped",
            DRAIN_TIMEOUT.as_secs()
        ));
    }
    match rss {
        None => reasons.push("the server's RSS was never read after the warm-up".to_string()),
        Some(rss) if !rss.within_goal() => reasons.push(format!(
            "the server's RSS grew {:.1} % after the warm-up (goal: at most {RSS_GOAL_PERCENT} %)",
            rss.growth_percent()
        )),
        Some(_) => {}
    }
    reasons.extend(books.problems());
    reasons
}

/// A duration in milliseconds, for the table.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A size in MiB, for the table.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A line of the operations table: the count (successes and errors), the errors, and
/// p50 and p99 of the successes (nearest rank).
fn kind_row(label: &str, latencies: &[Duration], errors: u64) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let count = sorted.len() as u64 + errors;
    let (p50, p99) = if sorted.is_empty() {
        ("-".to_string(), "-".to_string())
    } else {
        (ms(percentile(&sorted, 0.50)), ms(percentile(&sorted, 0.99)))
    };
    format!("| {label} | {count} | {errors} | {p50} | {p99} |")
}

/// Everything the report shows.
struct Report<'a> {
    backend: &'static str,
    plan: Plan,
    seeding: Duration,
    seeded: &'a Seeded,
    soaked: Soaked,
    tally: Tally,
    books: Books,
    /// How the server ended.
    stopped: String,
}

impl Report<'_> {
    fn rss(&self) -> Option<RssSummary> {
        RssSummary::after(&self.soaked.samples, self.plan.warm_up())
    }

    /// Why the soak failed (none when it passed).
    fn failures(&self) -> Vec<String> {
        verdict(
            self.tally.errors(),
            self.soaked.unfinished,
            self.rss().as_ref(),
            &self.books,
        )
    }

    fn print(&self) {
        let (plan, seeded) = (self.plan, self.seeded);
        println!(
            "{} min at {} operations a second against one `pdx serve` child process ({}): \
             {} operations; memory judged after {} min of warm-up. Seeded in {:.0} s: {} \
             published catalog entries, the Adult extract ({ADULT_ROWS} records at most, from \
             {}), {DEVELOPERS} developers with a grant and a SQL model, a listed product at \
             {PRICE_MINOR} fen, {BUYERS} buyers.",
            plan.minutes,
            plan.rate,
            self.backend,
            self.soaked.operations,
            plan.warmup_minutes,
            self.seeding.as_secs_f64(),
            seeded.catalog.len(),
            seeded.adult_source,
        );
        println!();
        println!("| operation | count | errors | p50 | p99 |");
        println!("|---|---|---|---|---|");
        for kind in KINDS {
            let tally = &self.tally.kinds[kind.index()];
            println!("{}", kind_row(kind.label(), &tally.latencies, tally.errors));
        }
        let all: Vec<Duration> = self
            .tally
            .kinds
            .iter()
            .flat_map(|k| k.latencies.iter().copied())
            .collect();
        println!("{}", kind_row("all", &all, self.tally.errors()));
        if !self.tally.failures.is_empty() {
            println!();
            println!("| failed request | answer | times |");
            println!("|---|---|---|");
            for (failure, times) in &self.tally.failures {
                println!("| `{}` | {} | {times} |", failure.route, failure.what);
            }
        }
        println!();
        println!("| server RSS after the warm-up | min | max | last | max/min − 1 | goal |");
        println!("|---|---|---|---|---|---|");
        let idle = self
            .soaked
            .idle_kib
            .map_or_else(|| "unknown".to_string(), mib);
        match self.rss() {
            Some(rss) => println!(
                "| {} samples, one every {} s (before the load: {idle}) | {} | {} | {} | {:.1} % | ≤ {RSS_GOAL_PERCENT} % |",
                rss.samples,
                RSS_EVERY.as_secs(),
                mib(rss.min_kib),
                mib(rss.max_kib),
                mib(rss.last_kib),
                rss.growth_percent(),
            ),
            None => println!(
                "| no sample (before the load: {idle}) | - | - | - | - | ≤ {RSS_GOAL_PERCENT} % |"
            ),
        }
        println!();
        let books = &self.books;
        println!(
            "Books: {} orders placed, {} paid; {} `Transaction` entries; paid orders {} fen, \
             ledger {} fen, sale lines {} fen, against {} × {PRICE_MINOR} = {} fen; \
             reconciliation {}.",
            books.placed,
            books.paid,
            books.transaction_entries,
            books.paid_minor,
            books.transactions_minor,
            books.unsettled_minor,
            books.paid,
            books.due_minor(),
            if books.exact { "exact" } else { "NOT exact" },
        );
        println!("Server: {}.", self.stopped);
        println!();
        let reasons = self.failures();
        if reasons.is_empty() {
            println!(
                "Verdict: PASS: no error, RSS within {RSS_GOAL_PERCENT} % after the warm-up, \
                 every order reconciled."
            );
        } else {
            println!("Verdict: FAIL: {}.", reasons.join("; "));
        }
    }
}

/// Seeds, starts the child server, runs the load, reads the books and stops the server;
/// prints the report and fails unless the soak passed.
async fn run_backend(
    backend: &'static str,
    database_url: Option<String>,
    plan: Plan,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    eprintln!("soak: seeding ({backend})");
    let started = Instant::now();
    let seeded = seed(&data, database_url.clone(), plan).await?;
    let seeding = started.elapsed();
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    eprintln!("soak: starting pdx serve");
    let log = dir.path().join("serve.log");
    let mut server = Server::start(&data, database_url.as_deref(), log, &http).await?;
    let load = Arc::new(Load::new(http, server.base.clone(), Arc::clone(&seeded)));
    let outcome = async {
        let soaked = soak(&mut server, &load, plan).await?;
        let books = read_books(&load).await?;
        anyhow::Ok((soaked, books))
    }
    .await;
    let stopped = server.stop().await;
    let (soaked, books) = outcome?;
    let tally = std::mem::take(&mut *load.tally.lock().unwrap_or_else(PoisonError::into_inner));
    let report = Report {
        backend,
        plan,
        seeding,
        seeded: &seeded,
        soaked,
        tally,
        books,
        stopped,
    };
    report.print();
    let reasons = report.failures();
    if reasons.is_empty() {
        Ok(())
    } else {
        bail!("the soak failed: {}", reasons.join("; "))
    }
}

/// Runs the soak (on SQLite, or on a fresh schema of `postgres`) and prints its report.
pub async fn run(plan: Plan, postgres: Option<String>) -> anyhow::Result<()> {
    plan.check()?;
    match postgres {
        None => run_backend("SQLite", None, plan).await,
        Some(base) => {
            let (url, schema) = pg_schema(&base).await?;
            let result = run_backend("PostgreSQL", Some(url), plan).await;
            if let Err(e) = drop_pg_schema(&base, &schema).await {
                eprintln!("could not drop the benchmark schema {schema}: {e}");
            }
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn books_of(paid: u64) -> Books {
        let due = PRICE_MINOR * paid as i64;
        Books {
            placed: paid,
            paid,
            exact: true,
            transaction_entries: paid,
            transactions_minor: due,
            paid_minor: due,
            refunded_minor: 0,
            unsettled_minor: due,
            pending: 0,
        }
    }

    fn summary(min_kib: u64, max_kib: u64) -> RssSummary {
        RssSummary {
            samples: 2,
            min_kib,
            max_kib,
            last_kib: max_kib,
        }
    }

    #[test]
    fn the_mix_gives_each_kind_its_share_spread_over_the_turn() {
        let turn = schedule();
        assert_eq!(turn.len(), 20);
        for kind in KINDS {
            let slots = turn.iter().filter(|k| **k == kind).count();
            assert_eq!(slots, kind.weight() as usize, "{kind:?}");
        }
        // Only the catalog (40 %) may follow itself, even across turns.
        for (i, kind) in turn.iter().enumerate() {
            let next = turn[(i + 1) % turn.len()];
            assert!(
                *kind == OpKind::Catalog || next != *kind,
                "{kind:?} twice in a row at {i}: {turn:?}"
            );
        }
        assert_eq!(turn[0], OpKind::Catalog);
    }

    #[test]
    fn a_plan_budgets_every_run_it_can_start() {
        let plan = Plan {
            minutes: 10,
            rate: 40,
            warmup_minutes: 2,
        };
        assert!(plan.check().is_ok());
        assert_eq!(plan.operations(), 24_000);
        assert_eq!(plan.runs_at_most(), 2_400);
        let odd = Plan {
            minutes: 1,
            rate: 7,
            warmup_minutes: 0,
        };
        // 420 operations: 21 turns of 20, two runs each.
        assert_eq!(odd.runs_at_most(), 42);
        assert!(odd.check().is_ok());
        for bad in [
            Plan {
                minutes: 2,
                rate: 40,
                warmup_minutes: 2,
            },
            Plan {
                minutes: 0,
                rate: 40,
                warmup_minutes: 0,
            },
            Plan {
                minutes: 10,
                rate: MAX_RATE + 1,
                warmup_minutes: 2,
            },
            Plan {
                minutes: 10,
                rate: 0,
                warmup_minutes: 2,
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn picking_cycles_and_finds_nothing_in_nothing() {
        let items = [10, 20, 30];
        assert_eq!(pick(&items, 0), Some(&10));
        assert_eq!(pick(&items, 4), Some(&20));
        assert_eq!(pick::<u8>(&[], 3), None);
    }

    #[test]
    fn rss_is_read_from_the_vmrss_line() {
        let status = "Name:\tpdx\nVmPeak:\t  900000 kB\nVmRSS:\t  123456 kB\nThreads:\t9\n";
        assert_eq!(vm_rss_kib(status), Some(123_456));
        // A zombie's status has no VmRSS line.
        assert_eq!(vm_rss_kib("Name:\tpdx\nState:\tZ (zombie)\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\t  12 MB\n"), None);
    }

    #[test]
    fn rss_is_judged_after_the_warm_up_only_and_ten_percent_passes() {
        let samples = [
            (Duration::from_secs(0), 10_000),
            (Duration::from_secs(60), 100_000),
            (Duration::from_secs(120), 104_000),
            (Duration::from_secs(125), 109_000),
            (Duration::from_secs(130), 106_000),
        ];
        let rss = RssSummary::after(&samples, Duration::from_secs(120)).unwrap();
        assert_eq!(
            rss,
            RssSummary {
                samples: 3,
                min_kib: 104_000,
                max_kib: 109_000,
                last_kib: 106_000,
            }
        );
        assert!(rss.within_goal());
        assert!(RssSummary::after(&samples, Duration::from_secs(131)).is_none());
        assert!(summary(100_000, 110_000).within_goal());
        assert!(!summary(100_000, 110_001).within_goal());
        assert!((summary(100_000, 110_000).growth_percent() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn right_books_have_no_problem_and_each_wrong_figure_is_named() {
        assert!(books_of(120).problems().is_empty());
        let mut lost = books_of(120);
        lost.transaction_entries = 119;
        lost.transactions_minor -= PRICE_MINOR;
        let problems = lost.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("119 Transaction entries for 120 paid orders"));
        assert!(problems[1].starts_with("the ledger's Transaction entries"));
        let mut unpaid = books_of(5);
        unpaid.placed = 6;
        unpaid.pending = 1;
        unpaid.exact = false;
        assert_eq!(unpaid.problems().len(), 3, "{:?}", unpaid.problems());
    }

    #[test]
    fn the_verdict_names_every_reason_to_fail() {
        let books = books_of(10);
        let flat = summary(100_000, 101_000);
        assert!(verdict(0, 0, Some(&flat), &books).is_empty());
        let grown = summary(100_000, 120_000);
        let reasons = verdict(3, 1, Some(&grown), &books_of(0));
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("3 operations failed"));
        assert!(reasons[2].contains("grew 20.0 %"));
        assert_eq!(verdict(0, 0, None, &books).len(), 1);
    }

    #[test]
    fn a_row_counts_failures_and_takes_percentiles_of_successes() {
        let latencies: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(
            kind_row("order + pay", &latencies, 2),
            "| order + pay | 102 | 2 | 50.0 ms | 99.0 ms |"
        );
        assert_eq!(kind_row("dry run", &[], 4), "| dry run | 4 | 4 | - | - |");
    }

    #[test]
    fn failures_are_tallied_by_route_and_answer() {
        let mut tally = Tally::default();
        let busy = Failure::new("POST /v1/orders", "503 (expected 201)");
        tally.add(OpKind::Order, Duration::from_millis(5), Ok(()));
        tally.add(OpKind::Order, Duration::ZERO, Err(busy.clone()));
        tally.add(OpKind::Order, Duration::ZERO, Err(busy.clone()));
        tally.add(
            OpKind::Ledger,
            Duration::ZERO,
            Err(Failure::new("GET /v1/ledger/…", "no answer")),
        );
        assert_eq!(tally.errors(), 3);
        assert_eq!(tally.kinds[OpKind::Order.index()].errors, 2);
        assert_eq!(tally.kinds[OpKind::Order.index()].latencies.len(), 1);
        assert_eq!(tally.failures.get(&busy), Some(&2));
        assert_eq!(tally.failures.len(), 2);
    }
}
