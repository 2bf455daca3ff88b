//! Crashes on both backends (issue #25): acknowledged writes survive SIGKILL, and no
//! write is left half done.
//!
//! The real `pdx serve` (the child process of [`crate::restart`]) takes a burst of
//! concurrent clients, each doing one kind of write in a loop:
//!
//! * sixteen buyers placing orders (each with its own `Idempotency-Key`) and paying
//!   them: the order row, its `Transaction` entry and its revenue lines. Orders and
//!   payments are group-committed (`pdx_ledger::group`), so a kill usually lands while a
//!   group of several buyers' writes is open: none of it may be acknowledged or kept
//!   in part;
//! * the exchange settling past months in order, one paid order in each: the
//!   settlement, its `Remittance` entries and remittance rows, the lines marked settled;
//! * a reviewer approving quarantined outputs, which releases them: the file copied to
//!   the released zone, the status and the `Release` entry;
//! * a developer filing grant applications and their provider approving or refusing
//!   each: the status and the `GrantDecision` entry;
//! * an admin asking for signed ledger checkpoints (`POST /v1/ledger/checkpoint`).
//!
//! The server is killed with SIGKILL after a random delay within the burst (a seeded
//! RNG: the seed is printed, and `PDX_CRASH_SEED` repeats it), three times at three
//! ranges of delays, and restarted each time over the same data directory and
//! database. After each restart, for every write acknowledged (a 2xx fully read) before
//! any of the kills so far:
//!
//! * nothing acknowledged is lost: the API shows the order, payment, settlement,
//!   release and grant decision as acknowledged, and the database holds every
//!   acknowledged checkpoint note;
//! * nothing is half written, for every row, acknowledged or cut off (read from the
//!   database directly): a paid order has its `Transaction` entry and sale lines, a
//!   pending one neither; a settled month has its remittances with their entries, and
//!   its lines sum to them; a released output has its `Release` entry and its file
//!   (same BLAKE3), a quarantined one neither; a decided grant has its `GrantDecision`
//!   entry, a pending one none; and every such entry belongs to its row; the ledger
//!   head agrees with the entries and no checkpoint is beyond it;
//! * the ledger verifies (`pdx ledger verify`);
//! * the books reconcile to the fen (`GET /v1/reconciliation` by every grouping, and
//!   `pdx reconcile`).
//!
//! Clients cut off by a kill retry what they were doing in the next burst, as a client
//! would: a buyer places again with the same key (the same order, or a new one if the
//! first never committed) and pays again with the same reference; the exchange settles
//! the same month again.
//!
//! An ingest cut off by SIGKILL is [`crate::restart`]'s case (the job resumes and
//! certifies exactly one version); it is not repeated here.
//!
//! The state before the crashes (a listed product, 48 months of past sales, a
//! conditional dataset, nine quarantined outputs) is built with the in-process server of
//! [`crate::products::market`], whose manual clock dates the sales in the past so that
//! the real server, on the system clock, may settle them. SQLite always; PostgreSQL
//! when `PDX_TEST_POSTGRES_URL` is set (required under `CI=true`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::time::Duration;

use pdx_products::Period;
use pdx_products::clock::DAY_MS;
use pdx_sandbox::catalog::OpenAttribute;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::catalog::wait_job;
use crate::products::{MODEL_SQL, Market, SPLIT, dataset, market, org_key, place, product_body};
use crate::restart::Serve;
use crate::support::post;

/// The variable that repeats a run's kill delays.
const SEED_VAR: &str = "PDX_CRASH_SEED";
/// Buyers ordering at once.
const BUYERS: usize = 16;
/// Past months with one paid order each, from January of [`FIRST_YEAR`].
const PERIODS: usize = 48;
const FIRST_YEAR: usize = 2018;
/// Quarantined outputs waiting for the reviewer.
const OUTPUTS: usize = 9;
/// Each kill comes after a delay drawn from one of these ranges (ms from the start of
/// the burst).
const KILLS: [(u64, u64); 3] = [(150, 500), (500, 900), (900, 1400)];
/// Pauses between one client's requests, so that each kind of write spreads over the
/// burst (settlements and outputs are few).
const BUYER_PAUSE: Duration = Duration::from_millis(5);
const SETTLE_PAUSE: Duration = Duration::from_millis(80);
const REVIEW_PAUSE: Duration = Duration::from_millis(200);
const GRANT_PAUSE: Duration = Duration::from_millis(10);
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(20);
/// After a 429 or 503.
const BUSY_PAUSE: Duration = Duration::from_millis(100);

/// Order fields fixed at placement.
const ORDER_TERMS: [&str; 9] = [
    "id",
    "product_id",
    "buyer_org",
    "developer_org",
    "price_minor",
    "currency",
    "licence_kind",
    "licence_term_days",
    "created_at",
];
/// Grant fields fixed at filing.
const GRANT_TERMS: [&str; 7] = [
    "id",
    "dataset_id",
    "applicant_org",
    "provider_org",
    "purpose",
    "answer_deadline",
    "applied_ms",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_sqlite() {
    let m = market(false)
        .await
        .expect("the SQLite server always starts");
    writes_survive_sigkill(m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_postgres() {
    // None when PDX_TEST_POSTGRES_URL is not set (and a failure under CI=true).
    let Some(m) = market(true).await else {
        eprintln!("PDX_TEST_POSTGRES_URL not set: skipping the PostgreSQL crash test");
        return;
    };
    writes_survive_sigkill(m).await;
}

/// The whole story on one backend.
async fn writes_survive_sigkill(m: Market) {
    let b = m.t.backend;
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{b}: crash test seed {seed} ({SEED_VAR}={seed} repeats the kill delays)");
    let mut rng = StdRng::seed_from_u64(seed);
    let s = setup(&m).await;

    // Only the child process uses the database from here on; the data directory is
    // kept (moved out, so that dropping the server does not delete it).
    let mut t = m.t;
    let database_url = t.database_url.clone();
    let data = std::mem::replace(&mut t.dir, tempfile::tempdir().expect("a temp dir"));
    t.stop().await;
    let logs = tempfile::tempdir().expect("a temp dir");
    let db = database_url.as_deref();
    let url = database_url
        .clone()
        .unwrap_or_else(|| pdx_ledger::db::sqlite_url(&data.path().join("pdx.db")));

    let mut clients = Clients {
        buyers: s
            .buyers
            .iter()
            .enumerate()
            .map(|(index, key)| Buyer {
                index,
                key: key.clone(),
                orders: 0,
                open: None,
            })
            .collect(),
        next_period: 0,
        next_output: 0,
        grants: 0,
    };
    let mut all = Acks::default();
    let mut serve = Serve::start(b, data.path(), db, None, logs.path().join("serve-0.log")).await;
    for (kill, (from, to)) in KILLS.into_iter().enumerate() {
        let delay = Duration::from_millis(rng.gen_range(from..to));
        let got = burst(&mut serve, &s, &mut clients, delay).await;
        let cut_off = if got.cut_off.is_empty() {
            "nothing".to_string()
        } else {
            got.cut_off.join("; ")
        };
        eprintln!(
            "{b}: kill {kill} after {delay:?}: acknowledged {}; cut off: {cut_off}",
            got.summary()
        );
        assert!(
            got.surprises.is_empty(),
            "{b}: kill {kill}: answers no request of the burst should get:\n{}\nserver log:\n{}",
            got.surprises.join("\n"),
            serve.log_tail()
        );
        all.absorb(got);
        let log = logs.path().join(format!("serve-{}.log", kill + 1));
        serve = Serve::start(b, data.path(), db, None, log).await;
        check(&serve, b, &s, &all, (data.path(), db, &url), kill).await;
    }
    assert!(
        !all.paid.is_empty()
            && !all.settled.is_empty()
            && !all.released.is_empty()
            && !all.decided.is_empty()
            && !all.checkpoints.is_empty(),
        "{b}: the bursts acknowledged too little to test every kind of write: {}",
        all.summary()
    );
    drop(serve); // SIGKILL
}

/// What the in-process server leaves for the crashes.
struct Setup {
    provider: String,
    dev: String,
    reviewer: String,
    exchange: String,
    supervisor: String,
    admin: String,
    /// Keys of the buyers of the burst.
    buyers: Vec<String>,
    /// The listed product they buy.
    product: String,
    /// A conditionally open dataset, for grant applications.
    conditional: String,
    /// Past months, oldest first, each with one paid order and none settled.
    periods: Vec<String>,
    /// Quarantined outputs of the developer, for the reviewer to release.
    outputs: Vec<String>,
}

/// The first millisecond of a `YYYY-MM` period.
fn period_start(period: &str) -> i64 {
    Period::parse(period)
        .unwrap_or_else(|e| panic!("period {period}: {e:?}"))
        .from_ms
}

async fn setup(m: &Market) -> Setup {
    let t = &m.t;
    let b = t.backend;
    let periods: Vec<String> = (0..PERIODS)
        .map(|i| format!("{}-{:02}", FIRST_YEAR + i / 12, i % 12 + 1))
        .collect();

    // The product, listed in the first month.
    m.clock.set_ms(period_start(&periods[0]) + DAY_MS);
    let release = text(&m.release, "/release_id");
    let (st, product) = post(
        t,
        &m.dev,
        "/v1/products",
        product_body(json!([release]), "commercial_internal", SPLIT),
    )
    .await;
    assert_eq!(st, 201, "{b}: {product}");
    let product = text(&product, "/id");
    let (st, listed) = t
        .call(
            Some(&m.exchange),
            Method::POST,
            &format!("/v1/products/{product}/list"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}: {listed}");

    // One paid order in each month, for the settlements to remit.
    for period in &periods {
        m.clock.set_ms(period_start(period) + 9 * DAY_MS);
        let idem = format!("seed-{period}");
        let resp = place(
            t,
            &m.buyer,
            Some(idem.as_str()),
            json!({"product_id": product}),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 201, "{b}: the order of {period}");
        let order: Value = resp.json().await.expect("an order");
        let (st, paid) = post(
            t,
            &m.buyer,
            &format!("/v1/orders/{}/pay", text(&order, "/id")),
            json!({"payment_ref": idem}),
        )
        .await;
        assert_eq!(st, 200, "{b}: paying the order of {period}: {paid}");
    }

    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        let (_, key) = org_key(t, &format!("crash-buyer-{i}"), "buyer", "national").await;
        buyers.push(key);
    }
    let conditional = dataset(
        t,
        &m.provider,
        "Enterprise electricity (conditional, crash test)",
        OpenAttribute::Conditional,
        false,
    )
    .await;

    // Outputs in quarantine: one run at a time, well under the organisation's cap.
    let (st, model) = post(
        t,
        &m.dev,
        "/v1/models",
        json!({"name": "crash districts", "kind": "sql", "body": MODEL_SQL}),
    )
    .await;
    assert_eq!(st, 201, "{b}: {model}");
    let model = text(&model, "/id");
    let mut outputs = Vec::new();
    for _ in 0..OUTPUTS {
        let (st, job) = post(
            t,
            &m.dev,
            "/v1/runs",
            json!({"model_id": model, "inputs": [{"dataset_id": m.dataset}]}),
        )
        .await;
        assert_eq!(st, 202, "{b}: {job}");
        let done = wait_job(t, &m.dev, &text(&job, "/id")).await;
        assert_eq!(done["status"], "succeeded", "{b}: {done}");
        outputs.push(text(&done, "/result/output_id"));
    }

    Setup {
        provider: m.provider.clone(),
        dev: m.dev.clone(),
        reviewer: m.reviewer.clone(),
        exchange: m.exchange.clone(),
        supervisor: m.supervisor.clone(),
        admin: t.admin.clone(),
        buyers,
        product,
        conditional,
        periods,
        outputs,
    }
}

/// What the clients remember from one burst to the next.
struct Clients {
    buyers: Vec<Buyer>,
    /// The first month not yet acknowledged as settled.
    next_period: usize,
    /// The first output not yet sent for review.
    next_output: usize,
    /// Grant applications filed (or attempted).
    grants: u32,
}

struct Buyer {
    index: usize,
    key: String,
    /// Orders begun.
    orders: u32,
    /// The order being placed or paid when the server died: its idempotency key, and
    /// its id once placement was acknowledged.
    open: Option<(String, Option<String>)>,
}

/// A client task, as it ended.
enum Worker {
    Buyer(Buyer),
    Settler(usize),
    Reviewer(usize),
    Grants(u32),
    Checkpoints,
}

/// What the server acknowledged, and what it did not answer.
#[derive(Default)]
struct Acks {
    /// (buyer, order) as placed.
    placed: Vec<(usize, Value)>,
    /// (buyer, order) as paid.
    paid: Vec<(usize, Value)>,
    /// Settlements, without `newly_settled`.
    settled: Vec<Value>,
    /// Outputs as released (the reviewer's view).
    released: Vec<Value>,
    /// Grants as filed.
    filed: Vec<Value>,
    /// Grants as decided.
    decided: Vec<Value>,
    /// Signed checkpoint notes.
    checkpoints: Vec<String>,
    /// Requests the kill left unanswered (their writes may or may not have happened).
    cut_off: Vec<String>,
    /// Answers that no request of the burst should get.
    surprises: Vec<String>,
}

impl Acks {
    fn absorb(&mut self, other: Acks) {
        self.placed.extend(other.placed);
        self.paid.extend(other.paid);
        self.settled.extend(other.settled);
        self.released.extend(other.released);
        self.filed.extend(other.filed);
        self.decided.extend(other.decided);
        self.checkpoints.extend(other.checkpoints);
        self.cut_off.extend(other.cut_off);
        self.surprises.extend(other.surprises);
    }

    fn summary(&self) -> String {
        format!(
            "{} orders placed, {} paid, {} months settled, {} outputs released, {} grants \
             filed, {} decided, {} checkpoints",
            self.placed.len(),
            self.paid.len(),
            self.settled.len(),
            self.released.len(),
            self.filed.len(),
            self.decided.len(),
            self.checkpoints.len()
        )
    }
}

/// What became of a request.
enum Answer {
    /// A 2xx, read to the end.
    Ack(Value),
    /// 429 or 503: not done; may be sent again.
    Busy,
    /// Any other answer.
    Other(u16, Value),
    /// No (whole) answer: the server died first.
    CutOff,
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(base: String) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        Client { http, base }
    }

    fn post(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let Ok(resp) = req.send().await else {
        return Answer::CutOff;
    };
    let status = resp.status().as_u16();
    let Ok(text) = resp.text().await else {
        return Answer::CutOff;
    };
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    match status {
        200..=299 => Answer::Ack(body),
        429 | 503 => Answer::Busy,
        _ => Answer::Other(status, body),
    }
}

/// Runs every client against `serve`, SIGKILLs it after `delay`, and returns what was
/// acknowledged; the clients' memory is kept in `clients` for the next burst.
async fn burst(serve: &mut Serve, s: &Setup, clients: &mut Clients, delay: Duration) -> Acks {
    let c = Client::new(serve.url(""));
    let mut tasks = tokio::task::JoinSet::new();
    for me in std::mem::take(&mut clients.buyers) {
        tasks.spawn(buyer(c.clone(), s.product.clone(), me));
    }
    tasks.spawn(settler(
        c.clone(),
        s.exchange.clone(),
        s.periods.clone(),
        clients.next_period,
    ));
    tasks.spawn(reviewer(
        c.clone(),
        s.reviewer.clone(),
        s.outputs.clone(),
        clients.next_output,
    ));
    tasks.spawn(grants(
        c.clone(),
        [s.dev.clone(), s.provider.clone(), s.conditional.clone()],
        clients.grants,
    ));
    tasks.spawn(checkpointer(c, s.admin.clone()));

    tokio::time::sleep(delay).await;
    serve.kill().await;

    // Every client stops at its first unanswered request.
    let mut acks = Acks::default();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), tasks.join_next())
            .await
            .expect("the clients stop once the server is gone");
        let Some(done) = next else { break };
        let (worker, got) = done.expect("a client task panicked");
        acks.absorb(got);
        match worker {
            Worker::Buyer(me) => clients.buyers.push(me),
            Worker::Settler(next) => clients.next_period = next,
            Worker::Reviewer(next) => clients.next_output = next,
            Worker::Grants(filed) => clients.grants = filed,
            Worker::Checkpoints => {}
        }
    }
    clients.buyers.sort_by_key(|me| me.index);
    acks
}

/// Places orders and pays them, one after the other; first finishes the order it was
/// on when the server died, with the same idempotency key and payment reference.
async fn buyer(c: Client, product: String, mut me: Buyer) -> (Worker, Acks) {
    let mut acks = Acks::default();
    loop {
        let (idem, placed) = me.open.take().unwrap_or_else(|| {
            me.orders += 1;
            (format!("crash-{}-{}", me.index, me.orders), None)
        });
        let i = me.index;
        let order = match placed {
            Some(id) => id,
            None => {
                let req = c
                    .post(&me.key, "/v1/orders")
                    .header("Idempotency-Key", &idem)
                    .json(&json!({"product_id": product}));
                match send(req).await {
                    Answer::Ack(order) => {
                        let id = text(&order, "/id");
                        acks.placed.push((i, order));
                        id
                    }
                    Answer::Busy => {
                        me.open = Some((idem, None));
                        tokio::time::sleep(BUSY_PAUSE).await;
                        continue;
                    }
                    Answer::CutOff => {
                        acks.cut_off.push(format!("buyer {i} placing order {idem}"));
                        me.open = Some((idem, None));
                        break;
                    }
                    Answer::Other(st, body) => {
                        acks.surprises
                            .push(format!("buyer {i} placing order {idem}: {st} {body}"));
                        break;
                    }
                }
            }
        };
        let req = c
            .post(&me.key, &format!("/v1/orders/{order}/pay"))
            .json(&json!({"payment_ref": format!("pay-{idem}")}));
        match send(req).await {
            Answer::Ack(paid) if paid["status"] == "paid" => acks.paid.push((i, paid)),
            Answer::Ack(other) => {
                acks.surprises
                    .push(format!("buyer {i} paying order {order}: 2xx {other}"));
                break;
            }
            Answer::Busy => {
                me.open = Some((idem, Some(order)));
                tokio::time::sleep(BUSY_PAUSE).await;
                continue;
            }
            Answer::CutOff => {
                acks.cut_off.push(format!("buyer {i} paying order {order}"));
                me.open = Some((idem, Some(order)));
                break;
            }
            Answer::Other(st, body) => {
                acks.surprises
                    .push(format!("buyer {i} paying order {order}: {st} {body}"));
                break;
            }
        }
        tokio::time::sleep(BUYER_PAUSE).await;
    }
    (Worker::Buyer(me), acks)
}

/// Settles the months in order from `next` (the one it was on when the server died
/// first).
async fn settler(
    c: Client,
    exchange: String,
    periods: Vec<String>,
    mut next: usize,
) -> (Worker, Acks) {
    let mut acks = Acks::default();
    while let Some(period) = periods.get(next) {
        match send(c.post(&exchange, &format!("/v1/settlements/{period}"))).await {
            Answer::Ack(mut settled) => {
                if let Some(fields) = settled.as_object_mut() {
                    fields.remove("newly_settled");
                }
                acks.settled.push(settled);
                next += 1;
            }
            Answer::Busy => {}
            Answer::CutOff => {
                acks.cut_off.push(format!("settling {period}"));
                break;
            }
            Answer::Other(st, body) => {
                acks.surprises
                    .push(format!("settling {period}: {st} {body}"));
                break;
            }
        }
        tokio::time::sleep(SETTLE_PAUSE).await;
    }
    (Worker::Settler(next), acks)
}

/// Approves the quarantined outputs from `next` on; each approval releases its output.
async fn reviewer(c: Client, key: String, outputs: Vec<String>, mut next: usize) -> (Worker, Acks) {
    let mut acks = Acks::default();
    while let Some(output) = outputs.get(next) {
        let req = c.post(&key, &format!("/v1/review/{output}")).json(
            &json!({"approve": true, "reason": "district counts over hundreds of enterprises"}),
        );
        match send(req).await {
            Answer::Ack(released) if released["status"] == "released" => {
                acks.released.push(released);
                next += 1;
            }
            Answer::Ack(other) => {
                acks.surprises
                    .push(format!("approving output {output}: 2xx {other}"));
                break;
            }
            Answer::Busy => {}
            Answer::CutOff => {
                // Not sent again: it may have been released.
                acks.cut_off.push(format!("releasing output {output}"));
                next += 1;
                break;
            }
            Answer::Other(st, body) => {
                acks.surprises
                    .push(format!("approving output {output}: {st} {body}"));
                break;
            }
        }
        tokio::time::sleep(REVIEW_PAUSE).await;
    }
    (Worker::Reviewer(next), acks)
}

/// Files grant applications as the developer and decides each as its provider, every
/// other one approved, the rest refused.
async fn grants(
    c: Client,
    [dev, provider, dataset]: [String; 3],
    mut filed: u32,
) -> (Worker, Acks) {
    let mut acks = Acks::default();
    loop {
        filed += 1;
        let application = json!({
            "dataset_id": dataset,
            "purpose": format!("crash test: district energy study {filed}"),
            "columns": ["district", "industry", "kwh_12m"],
            "model_kinds": ["sql"],
            "term_days": 365,
            "query_budget": 10
        });
        let grant = match send(c.post(&dev, "/v1/grants").json(&application)).await {
            Answer::Ack(grant) => {
                let id = text(&grant, "/id");
                acks.filed.push(grant);
                id
            }
            Answer::Busy => {
                tokio::time::sleep(BUSY_PAUSE).await;
                continue;
            }
            Answer::CutOff => {
                acks.cut_off
                    .push(format!("filing grant application {filed}"));
                break;
            }
            Answer::Other(st, body) => {
                acks.surprises
                    .push(format!("filing grant application {filed}: {st} {body}"));
                break;
            }
        };
        let approve = filed.is_multiple_of(2);
        let answer = if approve {
            json!({"approve": true})
        } else {
            json!({"approve": false, "reason": "enterprise-level columns are not needed for this purpose"})
        };
        let expected = if approve { "approved" } else { "refused" };
        let req = c
            .post(&provider, &format!("/v1/grants/{grant}/decision"))
            .json(&answer);
        match send(req).await {
            Answer::Ack(decided) if decided["status"] == expected => acks.decided.push(decided),
            Answer::Ack(other) => {
                acks.surprises
                    .push(format!("deciding grant {grant} ({expected}): 2xx {other}"));
                break;
            }
            // The grant stays pending.
            Answer::Busy => {}
            Answer::CutOff => {
                acks.cut_off
                    .push(format!("deciding grant {grant} ({expected})"));
                break;
            }
            Answer::Other(st, body) => {
                acks.surprises
                    .push(format!("deciding grant {grant} ({expected}): {st} {body}"));
                break;
            }
        }
        tokio::time::sleep(GRANT_PAUSE).await;
    }
    (Worker::Grants(filed), acks)
}

/// Asks for a signed checkpoint again and again (the buyers keep the ledger growing, so
/// most are new).
async fn checkpointer(c: Client, admin: String) -> (Worker, Acks) {
    let mut acks = Acks::default();
    loop {
        match send(c.post(&admin, "/v1/ledger/checkpoint")).await {
            Answer::Ack(Value::String(note)) => acks.checkpoints.push(note),
            Answer::Ack(other) => {
                acks.surprises.push(format!(
                    "signing a checkpoint: 2xx that is not a note: {other}"
                ));
                break;
            }
            Answer::Busy => {}
            Answer::CutOff => {
                acks.cut_off.push("signing a checkpoint".to_string());
                break;
            }
            Answer::Other(st, body) => {
                acks.surprises
                    .push(format!("signing a checkpoint: {st} {body}"));
                break;
            }
        }
        tokio::time::sleep(CHECKPOINT_PAUSE).await;
    }
    (Worker::Checkpoints, acks)
}

/// Everything this test promises after the restart that followed kill `kill`.
/// `store` is the data directory, the database URL given to the server (none for
/// SQLite) and the URL the test reads the database at.
async fn check(
    serve: &Serve,
    b: &str,
    s: &Setup,
    acks: &Acks,
    store: (&Path, Option<&str>, &str),
    kill: usize,
) {
    let (data, database_url, url) = store;
    let mut lost = Vec::new();
    for (i, placed) in &acks.placed {
        let id = text(placed, "/id");
        let (st, now) = serve.get(&s.buyers[*i], &format!("/v1/orders/{id}")).await;
        if st != 200 {
            lost.push(format!("order {id} placed by buyer {i}: now {st} {now}"));
            continue;
        }
        for field in ORDER_TERMS {
            if now[field] != placed[field] {
                lost.push(format!(
                    "order {id} placed by buyer {i}: {field} was {} and is {}",
                    placed[field], now[field]
                ));
            }
        }
    }
    for (i, paid) in &acks.paid {
        let id = text(paid, "/id");
        let (st, now) = serve.get(&s.buyers[*i], &format!("/v1/orders/{id}")).await;
        if st != 200 || now != *paid {
            lost.push(format!(
                "order {id} paid by buyer {i}: acknowledged {paid}, now {st} {now}"
            ));
        }
    }
    for settled in &acks.settled {
        let period = text(settled, "/period");
        let (st, mut now) = serve
            .get(&s.exchange, &format!("/v1/settlements/{period}"))
            .await;
        if let Some(fields) = now.as_object_mut() {
            fields.remove("newly_settled");
        }
        if st != 200 || now != *settled {
            lost.push(format!(
                "settlement of {period}: acknowledged {settled}, now {st} {now}"
            ));
        }
    }
    for released in &acks.released {
        let id = text(released, "/id");
        let (st, now) = serve.get(&s.reviewer, &format!("/v1/outputs/{id}")).await;
        if st != 200 || now != *released {
            lost.push(format!(
                "release of output {id}: acknowledged {released}, now {st} {now}"
            ));
        }
    }
    for filed in &acks.filed {
        let id = text(filed, "/id");
        let (st, now) = serve.get(&s.dev, &format!("/v1/grants/{id}")).await;
        if st != 200 {
            lost.push(format!("grant application {id}: now {st} {now}"));
            continue;
        }
        for field in GRANT_TERMS {
            if now[field] != filed[field] {
                lost.push(format!(
                    "grant application {id}: {field} was {} and is {}",
                    filed[field], now[field]
                ));
            }
        }
    }
    for decided in &acks.decided {
        let id = text(decided, "/id");
        let (st, now) = serve.get(&s.provider, &format!("/v1/grants/{id}")).await;
        if st != 200 || now != *decided {
            lost.push(format!(
                "decision on grant {id}: acknowledged {decided}, now {st} {now}"
            ));
        }
    }
    let (half, notes) = half_written(url, data).await;
    for note in &acks.checkpoints {
        if !notes.contains(note) {
            let head: Vec<&str> = note.lines().take(3).collect();
            lost.push(format!("checkpoint {head:?} is not stored"));
        }
    }
    assert!(
        lost.is_empty(),
        "{b}, after kill {kill}: acknowledged writes lost or changed:\n{}\nserver log:\n{}",
        lost.join("\n"),
        serve.log_tail()
    );
    assert!(
        half.is_empty(),
        "{b}, after kill {kill}: writes half done:\n{}\nserver log:\n{}",
        half.join("\n"),
        serve.log_tail()
    );

    let (code, out) = pdx_cli(data, database_url, &["ledger", "verify"]).await;
    assert!(
        code == Some(0) && out.contains("ok:"),
        "{b}, after kill {kill}: pdx ledger verify exited {code:?}:\n{out}"
    );
    for group in ["total", "provider_region", "developer", "period"] {
        let recon = serve
            .get_ok(
                &s.supervisor,
                &format!("/v1/reconciliation?group_by={group}"),
            )
            .await;
        assert_eq!(
            recon["exact"], true,
            "{b}, after kill {kill}: the books do not reconcile by {group}: {recon}"
        );
    }
    let (code, out) = pdx_cli(
        data,
        database_url,
        &["reconcile", "--group-by", "developer"],
    )
    .await;
    assert!(
        code == Some(0) && out.contains("balanced"),
        "{b}, after kill {kill}: pdx reconcile exited {code:?}:\n{out}"
    );
}

/// Runs the `pdx` CLI on the data directory (and database); returns its exit code and
/// its output.
pub(crate) async fn pdx_cli(
    data: &Path,
    database_url: Option<&str>,
    args: &[&str],
) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"));
    cmd.arg("--data-dir").arg(data);
    if let Some(url) = database_url {
        cmd.arg("--database-url").arg(url);
    }
    cmd.args(args);
    for var in crate::restart::SERVER_ENV {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("running pdx {args:?}: {e}"));
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Reads the database directly for writes half done (see the module docs); returns the
/// problems found, and the stored checkpoint notes.
async fn half_written(url: &str, data: &Path) -> (Vec<String>, BTreeSet<String>) {
    let db = pdx_ledger::db::Db::connect_with(url, 1)
        .await
        .expect("the test reaches the database");
    let pool = db.pool();
    let mut bad = Vec::new();

    // The ledger's head agrees with its entries; checkpoints sign sizes it reached.
    let head = rows(pool, "SELECT size FROM ledger_head WHERE id = 1").await;
    let size: i64 = head[0].get("size");
    let counted = rows(
        pool,
        "SELECT COUNT(*) AS n, MAX(seq) AS last_seq FROM ledger_entries",
    )
    .await;
    let (count, last): (i64, Option<i64>) = (counted[0].get("n"), counted[0].get("last_seq"));
    if count != size || last.map_or(0, |l| l + 1) != size {
        bad.push(format!(
            "the ledger head says {size} entries; there are {count}, the last seq {last:?}"
        ));
    }
    let mut notes = BTreeSet::new();
    for r in rows(pool, "SELECT size, note FROM ledger_checkpoints").await {
        let signed: i64 = r.get("size");
        if signed > size {
            bad.push(format!(
                "a checkpoint signs size {signed}; the ledger has {size} entries"
            ));
        }
        notes.insert(r.get::<String, _>("note"));
    }
    let mut entries = Entries::new();
    for r in rows(
        pool,
        "SELECT seq, kind, payload FROM ledger_entries \
         WHERE kind IN ('transaction', 'remittance', 'release', 'grant_decision')",
    )
    .await
    {
        let payload: String = r.get("payload");
        let payload = serde_json::from_str(&payload).expect("a ledger payload is JSON");
        entries.insert(r.get("seq"), (r.get("kind"), payload));
    }
    let entry = |seq: Option<i64>, kind: &str| entry(&entries, seq, kind);

    // Orders: paid with a Transaction entry and sale lines summing to the price, or
    // pending with neither.
    let mut sales: BTreeMap<String, i64> = BTreeMap::new();
    for r in rows(
        pool,
        "SELECT order_id, CAST(SUM(amount_minor) AS BIGINT) AS total FROM revenue_lines \
         WHERE kind = 'sale' GROUP BY order_id",
    )
    .await
    {
        sales.insert(r.get("order_id"), r.get("total"));
    }
    let mut sold = HashSet::new();
    for r in rows(
        pool,
        "SELECT id, status, price_minor, payment_ref, paid_ms, transaction_seq FROM orders",
    )
    .await
    {
        let id: String = r.get("id");
        let status: String = r.get("status");
        let price: i64 = r.get("price_minor");
        let payment_ref: Option<String> = r.get("payment_ref");
        let paid_ms: Option<i64> = r.get("paid_ms");
        let seq: Option<i64> = r.get("transaction_seq");
        let lines = sales.get(&id).copied();
        if status == "pending" {
            if payment_ref.is_some() || paid_ms.is_some() || seq.is_some() || lines.is_some() {
                bad.push(format!(
                    "order {id} is pending with payment {payment_ref:?} at {paid_ms:?}, \
                     entry {seq:?}, sale lines {lines:?}"
                ));
            }
            continue;
        }
        match entry(seq, "transaction") {
            Some(p)
                if p["order_id"] == id.as_str()
                    && p["amount_minor"] == price
                    && payment_ref
                        .as_deref()
                        .is_some_and(|r| p["payment_ref"] == r) => {}
            other => bad.push(format!(
                "order {id} is {status} (payment {payment_ref:?}, {price} fen) but its \
                 transaction entry {seq:?} is {other:?}"
            )),
        }
        if paid_ms.is_none() || lines != Some(price) {
            bad.push(format!(
                "order {id} is {status} for {price} fen, paid at {paid_ms:?}, sale lines {lines:?}"
            ));
        }
        sold.extend(seq);
    }
    for (seq, p) in of_kind(&entries, "transaction") {
        if !sold.contains(&seq) {
            bad.push(format!(
                "transaction entry {seq} (order {}) belongs to no paid order",
                p["order_id"]
            ));
        }
    }

    // Settlements: each remittance row with its entry; each month's settled lines sum
    // to its remittances; no line settled by a month never settled.
    let settled: BTreeSet<String> = rows(pool, "SELECT period FROM settlements")
        .await
        .iter()
        .map(|r| r.get("period"))
        .collect();
    let mut remitted: BTreeMap<String, i64> = BTreeMap::new();
    let mut remittance_seqs = HashSet::new();
    for r in rows(
        pool,
        "SELECT period, payee, amount_minor, ledger_seq FROM remittances",
    )
    .await
    {
        let period: String = r.get("period");
        let payee: String = r.get("payee");
        let amount: i64 = r.get("amount_minor");
        let seq: i64 = r.get("ledger_seq");
        match entry(Some(seq), "remittance") {
            Some(p)
                if p["period"] == period.as_str()
                    && p["payee"] == payee.as_str()
                    && p["amount_minor"] == amount => {}
            other => bad.push(format!(
                "remittance of {amount} fen to {payee} for {period}: its entry {seq} is {other:?}"
            )),
        }
        *remitted.entry(period).or_default() += amount;
        remittance_seqs.insert(seq);
    }
    for (seq, p) in of_kind(&entries, "remittance") {
        if !remittance_seqs.contains(&seq) {
            bad.push(format!(
                "remittance entry {seq} ({} to {}) has no remittance row",
                p["period"], p["payee"]
            ));
        }
    }
    let mut lines_settled: BTreeMap<String, i64> = BTreeMap::new();
    for r in rows(
        pool,
        "SELECT settled_period, CAST(SUM(amount_minor) AS BIGINT) AS total FROM revenue_lines \
         WHERE settled_period IS NOT NULL GROUP BY settled_period",
    )
    .await
    {
        lines_settled.insert(r.get("settled_period"), r.get("total"));
    }
    let months: BTreeSet<&String> = settled
        .iter()
        .chain(lines_settled.keys())
        .chain(remitted.keys())
        .collect();
    for period in months {
        let (lines, remits) = (lines_settled.get(period), remitted.get(period));
        if !settled.contains(period) || lines.copied().unwrap_or(0) != remits.copied().unwrap_or(0)
        {
            bad.push(format!(
                "month {period} (settled: {}): settled lines {lines:?}, remitted {remits:?}",
                settled.contains(period)
            ));
        }
    }

    // Outputs: released with their Release entry and file, or neither.
    let mut released = HashSet::new();
    for r in rows(
        pool,
        "SELECT id, job_id, status, release_id, release_seq, file_path, output_hash FROM outputs",
    )
    .await
    {
        let id: String = r.get("id");
        let job: String = r.get("job_id");
        let status: String = r.get("status");
        let release: Option<String> = r.get("release_id");
        let seq: Option<i64> = r.get("release_seq");
        let path: String = r.get("file_path");
        let hash: String = r.get("output_hash");
        if status != "released" {
            if release.is_some() || seq.is_some() {
                bad.push(format!(
                    "output {id} is {status} with release {release:?}, entry {seq:?}"
                ));
            }
            continue;
        }
        match entry(seq, "release") {
            Some(p)
                if release.as_deref().is_some_and(|r| p["release_id"] == r)
                    && p["job_id"] == job.as_str()
                    && p["output_hash"] == hash.as_str() => {}
            other => bad.push(format!(
                "output {id} is released as {release:?} but its release entry {seq:?} is {other:?}"
            )),
        }
        let file = data.join("zones").join(&path);
        // Sealed on disk: the output hash is of the plaintext.
        match crate::support::zones_at_rest(data).read_all(&file) {
            Ok(bytes) if blake3::hash(&bytes).to_hex().as_str() == hash => {}
            Ok(_) => bad.push(format!(
                "output {id} is released but {} is not the output",
                file.display()
            )),
            Err(e) => bad.push(format!(
                "output {id} is released but {} cannot be read: {e}",
                file.display()
            )),
        }
        released.extend(seq);
    }
    for (seq, p) in of_kind(&entries, "release") {
        if !released.contains(&seq) {
            bad.push(format!(
                "release entry {seq} (release {}) belongs to no released output",
                p["release_id"]
            ));
        }
    }

    // Grants: decided with their GrantDecision entry, or pending with none.
    let mut decided = HashSet::new();
    for r in rows(pool, "SELECT id, status, decision_seq FROM grants").await {
        let id: String = r.get("id");
        let status: String = r.get("status");
        let seq: Option<i64> = r.get("decision_seq");
        match status.as_str() {
            "pending" if seq.is_some() => {
                bad.push(format!("grant {id} is pending with decision entry {seq:?}"));
            }
            "approved" | "refused" => match entry(seq, "grant_decision") {
                Some(p) if p["grant_id"] == id.as_str() && p["decision"] == status.as_str() => {}
                other => bad.push(format!(
                    "grant {id} is {status} but its decision entry {seq:?} is {other:?}"
                )),
            },
            // Revocations and suspensions are not made here.
            _ => {}
        }
        decided.extend(seq);
    }
    for (seq, p) in of_kind(&entries, "grant_decision") {
        let decision = &p["decision"];
        if (decision == "approved" || decision == "refused") && !decided.contains(&seq) {
            bad.push(format!(
                "grant decision entry {seq} ({decision} on {}) belongs to no decided grant",
                p["grant_id"]
            ));
        }
    }
    db.close().await;
    (bad, notes)
}

/// Ledger entries of the kinds checked, by seq: (kind, payload).
type Entries = BTreeMap<i64, (String, Value)>;

/// The payload of the entry at `seq`, if there is one of `kind`.
fn entry(entries: &Entries, seq: Option<i64>, kind: &str) -> Option<Value> {
    seq.and_then(|s| entries.get(&s))
        .filter(|(k, _)| k == kind)
        .map(|(_, p)| p.clone())
}

/// The entries of `kind`: (seq, payload).
fn of_kind<'a>(entries: &'a Entries, kind: &'a str) -> impl Iterator<Item = (i64, &'a Value)> {
    entries
        .iter()
        .filter(move |(_, (k, _))| k == kind)
        .map(|(seq, (_, p))| (*seq, p))
}

/// Every row `sql` selects.
async fn rows(pool: &AnyPool, sql: &'static str) -> Vec<AnyRow> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The string at `pointer` in a server answer.
fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
        .to_string()
}
