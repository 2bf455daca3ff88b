//! `pdx bench portal`: server time of the web portal's catalog, ledger and review pages
//! on a large instance, each against the JSON API route that serves the page its data,
//! in one run (issue #21: pages within 1.5× of their JSON route, p95 under 50 ms).
//!
//! Per backend it opens the real [`App`] over a fresh database (a temporary SQLite file;
//! with `--postgres`, a fresh PostgreSQL schema, dropped afterwards) and seeds it
//! through the owning modules' own APIs:
//!
//! - `--datasets` catalog entries (default 10,000) of varied titles, themes,
//!   departments, levels, open attributes and update frequencies, each registered by
//!   one of four providers, submitted, and approved by the data authority
//!   ([`pdx_sandbox::catalog::Catalog::register_dataset`] and
//!   [`pdx_sandbox::lifecycle::Lifecycle`]): three write transactions each;
//! - `--outputs` outputs waiting for review (default 50), made as a developer makes
//!   them, through the API in-process: a certified version of a conditionally open
//!   dataset, a grant, three SQL models, and one sandboxed run per output;
//! - `--entries` ledger entries (default 1,000,000), appended 1,000 per transaction
//!   ([`pdx_ledger::Ledger::append_batch`]) in six private kinds by seven
//!   organisations, half of them naming another as a party, so that the ledger
//!   browser's filters have something to narrow.
//!
//! Then it builds the router `pdx serve` serves ([`crate::http::router`]: the API and
//! the portal, every middleware) and sends it requests in-process
//! (`tower::ServiceExt::oneshot`, no network): the time of a request runs from sending
//! it to having its whole body. Pages are requested as the role that owns them, signed
//! in through `POST /signin` like a browser (the session cookie); their JSON routes with
//! that principal's key (`Authorization: Bearer`); the public catalog without either.
//! Each baseline is exactly the request the page makes to the API in-process (the
//! path and query its handler builds):
//!
//! | row | page | baseline (same data, same page size) |
//! |---|---|---|
//! | catalog, first page | `GET /catalog` (anonymous) | `GET /v1/datasets` |
//! | catalog, text search | `GET /catalog?q=hospital` | `GET /v1/datasets?q=hospital` |
//! | catalog, theme and level | `GET /catalog?theme=health&level=L2` | `GET /v1/datasets?theme=health&level=L2` |
//! | catalog, a middle page | `GET /catalog?page=N` | `GET /v1/datasets?page=N` |
//! | ledger, first page | `GET /supervisor/ledger` (supervisor) | `GET /v1/ledger/entries?limit=50` |
//! | ledger, newest entries | `GET /supervisor/ledger?from=N` | `GET /v1/ledger/entries?from=N&limit=50` |
//! | ledger, kind and organisation | `GET /supervisor/ledger?kind=transaction&org=…` | `GET /v1/ledger/entries?kind=transaction&org=…&limit=50` |
//! | review queue | `GET /review` (reviewer) | `GET /v1/review` |
//!
//! (The ledger page also reads `GET /v1/orgs` to name organisations, and the review
//! page `GET /v1/review?state=decided` for its third list, each in parallel with the
//! baseline's request: both are part of the page's time, not of the baseline's.)
//!
//! Each row first sends a few unreported requests of both, which must answer 200 with
//! rows in the JSON; then `--runs` of each, alternating which goes first so that noise
//! falls on both alike. Every answer must be a 200 with a body, or the run fails. The
//! admission limits are off (`rate_limit_per_sec = 0`): one key sending thousands of
//! requests a minute would meet its rate limit, and admission is not what is measured.
//! Build with `--release` for figures worth quoting.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use pdx_ids::DatasetId;
use pdx_ledger::store::NewEntry;
use pdx_ledger::{Actor, EntryKind};
use pdx_sandbox::catalog::{Level, NewDataset, OpenAttribute, ShareType};
use pdx_sandbox::classification::open_attributes_allowed;
use pdx_sandbox::lifecycle::{CatalogReview, ReviewDecision};
use pdx_sandbox::quality::UpdateFrequency;

use crate::app::App;
use crate::auth::Role;
use crate::config::{Config, ConfigArgs};
use crate::portal::session::{CSRF_COOKIE, SESSION_COOKIE};
use crate::portal::supervisor::LEDGER_PAGE;
use crate::portal::with_query;
use crate::samples;

use super::bench::median;
use super::bench_orders::{drop_pg_schema, percentile, pg_schema};

/// The goal of issue #21: a page's median at most this many times its JSON route's.
const RATIO_GOAL: f64 = 1.5;

/// The goal of issue #21: a page's 95th percentile under this.
const P95_GOAL: Duration = Duration::from_millis(50);

/// Unreported requests of each kind before a row is measured.
const WARM_UP: usize = 10;

/// Ledger entries appended per transaction.
const LEDGER_BATCH: u64 = 1000;

/// Organisations that provide the generated catalog entries.
const PROVIDERS: usize = 4;

/// Rows of the dataset whose runs fill the review queue.
const QUEUE_ROWS: usize = 2000;

/// The region of every organisation the benchmark creates.
const REGION: &str = "guangdong";

/// The word searched for in the catalog (in the titles of one entry in twelve).
pub(crate) const SEARCH_WORD: &str = "hospital";

/// Topics of the generated catalog: words in the title, theme, providing department.
const TOPICS: [(&str, &str, &str); 12] = [
    ("hospital visits", "health", "Health Commission"),
    ("population", "census", "Statistics Bureau"),
    (
        "enterprise registrations",
        "enterprise",
        "Market Supervision Bureau",
    ),
    ("electricity use", "utilities", "Power Supply Bureau"),
    ("traffic flow", "transport", "Transport Bureau"),
    ("school enrolment", "education", "Education Bureau"),
    (
        "air quality",
        "environment",
        "Ecology and Environment Bureau",
    ),
    (
        "housing transactions",
        "housing",
        "Housing and Construction Bureau",
    ),
    ("tax receipts", "finance", "Tax Bureau"),
    ("tourist arrivals", "tourism", "Culture and Tourism Bureau"),
    ("water supply", "utilities", "Water Authority"),
    ("metro ridership", "transport", "Transport Bureau"),
];

/// Places named in the generated titles (Shenzhen's districts).
const PLACES: [&str; 10] = [
    "Futian",
    "Luohu",
    "Nanshan",
    "Bao'an",
    "Longgang",
    "Yantian",
    "Longhua",
    "Pingshan",
    "Guangming",
    "Dapeng",
];

/// The classification levels, in the order the generator picks them.
const LEVELS: [Level; 4] = [Level::L1, Level::L2, Level::L3, Level::L4];

/// The kinds of the generated ledger entries (private kinds, whose payloads no page
/// measured here parses).
const LEDGER_KINDS: [EntryKind; 6] = [
    EntryKind::Transaction,
    EntryKind::DataAccess,
    EntryKind::GrantDecision,
    EntryKind::ModelRegistration,
    EntryKind::Remittance,
    EntryKind::FheQuery,
];

/// The models whose runs fill the review queue, in turn.
const MODELS: [&str; 3] = [
    "SELECT district, COUNT(*) AS enterprises, AVG(kwh_12m) AS mean_kwh FROM data \
     GROUP BY district",
    "SELECT industry, COUNT(*) AS enterprises, SUM(kwh_12m) AS kwh FROM data GROUP BY industry",
    "SELECT district, industry, COUNT(*) AS enterprises FROM data GROUP BY district, industry",
];

/// How large an instance to seed, and how many requests to time.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Published catalog entries.
    pub datasets: usize,
    /// Ledger entries appended besides the seeding's own.
    pub entries: u64,
    /// Requests per row, of the page and of its JSON route each.
    pub runs: usize,
    /// Outputs waiting in the review queue.
    pub outputs: usize,
}

/// How a request identifies its sender.
#[derive(Clone)]
enum Auth {
    /// The public: no cookie, no key.
    Anonymous,
    /// A browser's cookies (the `Cookie` header).
    Cookie(String),
    /// An API key (`Authorization: Bearer`).
    Key(String),
}

/// One row of the table: a page and the JSON route it reads, each as its sender.
struct Row {
    name: String,
    page: String,
    page_auth: Auth,
    json: String,
    json_auth: Auth,
}

/// An answer: status, headers and the whole body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// The router `pdx serve` serves, called in-process.
struct InProcess {
    router: Router,
}

/// A request to the router, as `auth`, with a body of a content type or none.
fn build_request(
    method: Method,
    path: &str,
    auth: &Auth,
    body: Option<(&'static str, Vec<u8>)>,
) -> anyhow::Result<Request<Body>> {
    let mut builder = Request::builder().method(method).uri(path);
    match auth {
        Auth::Anonymous => {}
        Auth::Cookie(cookies) => builder = builder.header(header::COOKIE, cookies.as_str()),
        Auth::Key(key) => {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
    }
    let body = match body {
        Some((content_type, bytes)) => {
            builder = builder.header(header::CONTENT_TYPE, content_type);
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    Ok(builder.body(body)?)
}

/// A string field of a JSON answer, or an error naming it.
fn str_field<'v>(value: &'v Value, field: &str) -> anyhow::Result<&'v str> {
    value[field]
        .as_str()
        .with_context(|| format!("no {field:?} in {value}"))
}

impl InProcess {
    /// Sends a request; the answer and the server time (until the whole body is in).
    async fn send(&self, request: Request<Body>) -> anyhow::Result<(Answer, Duration)> {
        let router = self.router.clone();
        let started = Instant::now();
        let response = router
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await?;
        let elapsed = started.elapsed();
        let answer = Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        Ok((answer, elapsed))
    }

    /// `method path` as `auth` with a JSON body (or none); the answer's JSON, or an
    /// error unless its status is `want`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<&Value>,
        want: StatusCode,
    ) -> anyhow::Result<Value> {
        let body = body
            .map(|value| serde_json::to_vec(value).map(|bytes| ("application/json", bytes)))
            .transpose()?;
        self.expect_status(build_request(method, path, auth, body)?, want)
            .await
    }

    /// Sends a request; the answer's JSON (null when it is not JSON), or an error
    /// unless its status is `want`.
    async fn expect_status(
        &self,
        request: Request<Body>,
        want: StatusCode,
    ) -> anyhow::Result<Value> {
        let what = format!("{} {}", request.method(), request.uri());
        let (answer, _) = self.send(request).await?;
        if answer.status != want {
            bail!(
                "{what}: expected {want}, got {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        Ok(serde_json::from_slice(&answer.body).unwrap_or(Value::Null))
    }

    /// Polls a job until it succeeds (a failure, or ten minutes, is an error).
    async fn wait_job(&self, auth: &Auth, job: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(600);
        let path = format!("/v1/jobs/{job}");
        loop {
            let value = self
                .call(Method::GET, &path, auth, None, StatusCode::OK)
                .await?;
            match value["status"].as_str() {
                Some("succeeded") => return Ok(value),
                Some("failed") => bail!("job {job} failed: {}", value["error"]),
                _ if Instant::now() > deadline => bail!("job {job} did not finish in 10 min"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Signs in to the portal with `key` as a browser does: the sign-in page sets the
    /// pre-session CSRF cookie, whose token the form carries; the answer sets the
    /// session cookie. Returns the cookies the browser sends from then on.
    async fn sign_in(&self, key: &str) -> anyhow::Result<Auth> {
        let (page, _) = self
            .send(build_request(
                Method::GET,
                "/signin",
                &Auth::Anonymous,
                None,
            )?)
            .await?;
        ensure!(
            page.status == StatusCode::OK,
            "GET /signin: {}",
            page.status
        );
        let csrf = set_cookie(&page.headers, CSRF_COOKIE)
            .context("the sign-in page set no CSRF cookie")?;
        let form = serde_urlencoded::to_string([("api_key", key), ("csrf", csrf.as_str())])?;
        let before = Auth::Cookie(format!("{CSRF_COOKIE}={csrf}"));
        let body = ("application/x-www-form-urlencoded", form.into_bytes());
        let (answer, _) = self
            .send(build_request(Method::POST, "/signin", &before, Some(body))?)
            .await?;
        ensure!(
            answer.status == StatusCode::SEE_OTHER,
            "POST /signin: expected 303, got {}",
            answer.status
        );
        let session =
            set_cookie(&answer.headers, SESSION_COOKIE).context("signing in set no session")?;
        let csrf = set_cookie(&answer.headers, CSRF_COOKIE).unwrap_or(csrf);
        Ok(Auth::Cookie(format!(
            "{SESSION_COOKIE}={session}; {CSRF_COOKIE}={csrf}"
        )))
    }

    /// GETs `path` as `auth`, timed; an error unless the answer is a 200 with a body.
    async fn timed(&self, path: &str, auth: &Auth) -> anyhow::Result<(Bytes, Duration)> {
        let (answer, elapsed) = self
            .send(build_request(Method::GET, path, auth, None)?)
            .await?;
        ensure!(
            answer.status == StatusCode::OK && !answer.body.is_empty(),
            "GET {path}: {} with {} bytes",
            answer.status,
            answer.body.len()
        );
        Ok((answer.body, elapsed))
    }
}

/// The value a response's `Set-Cookie` headers give cookie `name`, if one does.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim().to_string())
}

/// Whether a JSON answer holds rows: a non-empty array, or a non-empty `items` (the
/// catalog's pages) or `entries` (the ledger's).
fn has_rows(answer: &Value) -> bool {
    let rows = match answer {
        Value::Array(rows) => Some(rows),
        _ => ["items", "entries"]
            .into_iter()
            .find_map(|field| answer.get(field)?.as_array()),
    };
    rows.is_some_and(|rows| !rows.is_empty())
}

/// A 64-bit mix of `i` (SplitMix64's finaliser): the generators' dice.
fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`th generated catalog entry, on `template`'s column schema: topics in turn
/// (so one entry in twelve has [`SEARCH_WORD`] in its title, with its theme and its
/// department), and a place, a year, a level, an open attribute the level allows and an
/// update frequency drawn independently.
pub(crate) fn catalog_entry(i: usize, template: &NewDataset) -> NewDataset {
    let dice = splitmix64(i as u64);
    let (topic, theme, department) = TOPICS[i % TOPICS.len()];
    let place = PLACES[(dice >> 24) as usize % PLACES.len()];
    let year = 2015 + (dice >> 32) % 11;
    let level = LEVELS[dice as usize % LEVELS.len()];
    let frequency = UpdateFrequency::ALL[(dice >> 8) as usize % UpdateFrequency::ALL.len()];
    let allowed = open_attributes_allowed(level);
    let open_attribute = allowed[(dice >> 16) as usize % allowed.len()];
    let unconditional = open_attribute == OpenAttribute::Unconditional;
    NewDataset {
        title: format!("{place} {topic} {year}"),
        description: format!("{topic} in {place}, {year}, as the {department} records them"),
        theme: theme.to_string(),
        source_department: department.to_string(),
        collecting_department: department.to_string(),
        approving_department: "Data Management Bureau".to_string(),
        providing_department: department.to_string(),
        data_form: "table".to_string(),
        update_frequency: frequency.as_str().to_string(),
        level,
        share_type: if unconditional {
            ShareType::Unconditional
        } else {
            ShareType::Conditional
        },
        share_conditions: if unconditional {
            String::new()
        } else {
            "under an open-use agreement".to_string()
        },
        legal_basis: "GD21 Art.12".to_string(),
        open_attribute,
        research_only: false,
        schema: template.schema.clone(),
        elements: Vec::new(),
    }
}

/// The kind, the actor and the party, if any (indexes into [`LEDGER_KINDS`] and into
/// `orgs` organisations, at least two), of the `i`th generated ledger entry: drawn
/// independently, and half the entries name a party, never their actor.
fn ledger_mix(i: u64, orgs: usize) -> (usize, usize, Option<usize>) {
    let dice = splitmix64(i);
    let kind = dice as usize % LEDGER_KINDS.len();
    let actor = (dice >> 16) as usize % orgs;
    let party = (((dice >> 48) & 1) == 0)
        .then(|| (actor + 1 + ((dice >> 32) as usize % (orgs - 1))) % orgs);
    (kind, actor, party)
}

/// The `i`th generated ledger entry among `traders` (at least two).
fn ledger_entry(i: u64, traders: &[Actor]) -> NewEntry {
    let (kind, actor, party) = ledger_mix(i, traders.len());
    NewEntry {
        kind: LEDGER_KINDS[kind].clone(),
        actor: traders[actor].clone(),
        payload: json!({
            "bench": i,
            "amount_minor": 10_000 + (i % 9_000) as i64,
            "currency": "CNY",
        }),
        parties: party.map(|p| traders[p].org.clone()).into_iter().collect(),
    }
}

/// A line of the table: medians and 95th percentiles of sorted timings, the ratio of
/// the medians, and whether the goals are met.
fn table_line(name: &str, page: &[Duration], json: &[Duration]) -> String {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    let (page_median, page_p95) = (median(page.to_vec()), percentile(page, 0.95));
    let (json_median, json_p95) = (median(json.to_vec()), percentile(json, 0.95));
    let ratio = page_median.as_secs_f64() / json_median.as_secs_f64().max(1e-9);
    let met = ratio <= RATIO_GOAL && page_p95 < P95_GOAL;
    format!(
        "| {name} | {} | {} | {} | {} | {ratio:.2} | {} |",
        ms(page_median),
        ms(page_p95),
        ms(json_median),
        ms(json_p95),
        if met { "yes" } else { "no" }
    )
}

/// An organisation's key: who it acts as, and the secret its HTTP requests send.
pub(crate) struct Acting {
    /// The organisation and key id, as the modules' own APIs take them.
    pub(crate) actor: Actor,
    /// The secret, for `Authorization: Bearer`.
    pub(crate) key: String,
}

/// A new organisation (or the one of that name) with a key of `role`.
pub(crate) async fn acting(app: &App, name: &str, role: Role) -> anyhow::Result<Acting> {
    let org = app.accounts.ensure_org(name, REGION).await?;
    let issued = app.accounts.issue_key(&org.id, role, "bench").await?;
    Ok(Acting {
        actor: Actor {
            org: org.id.to_string(),
            key_id: issued.key_id.to_string(),
        },
        key: issued.key,
    })
}

/// Everyone the seeding and the measurement act as.
struct Cast {
    providers: Vec<Acting>,
    authority: Acting,
    developer: Acting,
    reviewer: Acting,
    supervisor: Acting,
    /// The organisations of the generated ledger entries: the providers, the
    /// developer and two buyers.
    traders: Vec<Actor>,
}

/// Creates the organisations and keys of the [`Cast`].
async fn cast(app: &App) -> anyhow::Result<Cast> {
    let mut providers = Vec::with_capacity(PROVIDERS);
    for n in 0..PROVIDERS {
        providers.push(acting(app, &format!("bench-provider-{n}"), Role::Provider).await?);
    }
    let developer = acting(app, "bench-developer", Role::Developer).await?;
    let mut traders: Vec<Actor> = providers.iter().map(|p| p.actor.clone()).collect();
    traders.push(developer.actor.clone());
    for n in 0..2 {
        traders.push(
            acting(app, &format!("bench-buyer-{n}"), Role::Buyer)
                .await?
                .actor,
        );
    }
    Ok(Cast {
        providers,
        authority: acting(app, "bench-authority", Role::Authority).await?,
        developer,
        reviewer: acting(app, "bench-reviewers", Role::Reviewer).await?,
        supervisor: acting(app, "bench-supervisor", Role::Supervisor).await?,
        traders,
    })
}

/// Registers `new` for `provider`, submits it and has the data authority approve it:
/// the way every entry reaches the public catalog (GD21 Art.10–11).
pub(crate) async fn publish(
    app: &App,
    provider: &Actor,
    authority: &Actor,
    new: NewDataset,
) -> anyhow::Result<DatasetId> {
    let dataset = app
        .sandbox
        .catalog()
        .register_dataset(provider, new)
        .await?;
    let lifecycle = app.sandbox.lifecycle();
    lifecycle.submit(provider, &dataset.id).await?;
    let approval = CatalogReview {
        decision: ReviewDecision::Approve,
        reason: None,
    };
    lifecycle.review(authority, &dataset.id, approval).await?;
    Ok(dataset.id)
}

/// Publishes `count` generated catalog entries, the providers taking turns.
async fn seed_catalog(app: &App, cast: &Cast, count: usize) -> anyhow::Result<()> {
    let template = samples::electricity_dataset();
    let bar = super::progress_bar(count as u64, "datasets");
    for i in 0..count {
        let provider = &cast.providers[i % cast.providers.len()].actor;
        let entry = catalog_entry(i, &template);
        publish(app, provider, &cast.authority.actor, entry).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Puts `count` outputs in the review queue as a developer does: the electricity
/// dataset published and certified (its upload de-identified by the ingest job), a
/// grant on it, the [`MODELS`], and one run of a model per output, in turn.
async fn seed_review_queue(
    http: &InProcess,
    app: &App,
    cast: &Cast,
    count: usize,
) -> anyhow::Result<()> {
    let provider = &cast.providers[0];
    let as_provider = Auth::Key(provider.key.clone());
    let as_developer = Auth::Key(cast.developer.key.clone());
    let dataset = publish(
        app,
        &provider.actor,
        &cast.authority.actor,
        samples::electricity_dataset(),
    )
    .await?;
    let csv = samples::electricity_csv(QUEUE_ROWS, 2026).into_bytes();
    let upload = build_request(
        Method::POST,
        &format!("/v1/datasets/{dataset}/versions?format=csv"),
        &as_provider,
        Some(("application/octet-stream", csv)),
    )?;
    let job = http.expect_status(upload, StatusCode::ACCEPTED).await?;
    http.wait_job(&as_provider, str_field(&job, "id")?).await?;
    let application = json!({
        "dataset_id": dataset,
        "purpose": "benchmark: district statistics",
        "columns": ["district", "industry", "kwh_12m"],
        "model_kinds": ["sql"],
        "term_days": 365,
        "epsilon": 0.0,
        "delta": 0.0,
        "query_budget": count + 10,
    });
    let grant = http
        .call(
            Method::POST,
            "/v1/grants",
            &as_developer,
            Some(&application),
            StatusCode::CREATED,
        )
        .await?;
    let grant = str_field(&grant, "id")?.to_string();
    http.call(
        Method::POST,
        &format!("/v1/grants/{grant}/decision"),
        &as_provider,
        Some(&json!({"approve": true})),
        StatusCode::OK,
    )
    .await?;
    let mut models = Vec::with_capacity(MODELS.len());
    for (n, body) in MODELS.iter().enumerate() {
        let model = json!({"name": format!("bench model {n}"), "kind": "sql", "body": body});
        let registered = http
            .call(
                Method::POST,
                "/v1/models",
                &as_developer,
                Some(&model),
                StatusCode::CREATED,
            )
            .await?;
        models.push(str_field(&registered, "id")?.to_string());
    }
    let bar = super::progress_bar(count as u64, "outputs");
    for i in 0..count {
        let run = json!({
            "model_id": models[i % models.len()],
            "inputs": [{"dataset_id": dataset, "grant_id": grant}],
        });
        let job = http
            .call(
                Method::POST,
                "/v1/runs",
                &as_developer,
                Some(&run),
                StatusCode::ACCEPTED,
            )
            .await?;
        let done = http.wait_job(&as_developer, str_field(&job, "id")?).await?;
        ensure!(
            done["result"]["output_id"].is_string(),
            "run {i} made no output: {done}"
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Appends `count` generated entries to the App's own ledger, [`LEDGER_BATCH`] per
/// transaction.
async fn seed_ledger(app: &App, traders: &[Actor], count: u64) -> anyhow::Result<()> {
    ensure!(
        traders.len() >= 2,
        "the ledger's entries need two organisations"
    );
    let bar = super::progress_bar(count, "ledger");
    let mut next = 0u64;
    while next < count {
        let batch = LEDGER_BATCH.min(count - next);
        let items: Vec<NewEntry> = (next..next + batch)
            .map(|i| ledger_entry(i, traders))
            .collect();
        let mut tx = app.ledger.db().begin_write().await?;
        app.ledger.append_batch(&mut tx, items).await?;
        tx.commit().await?;
        next += batch;
        bar.inc(batch);
    }
    bar.finish_and_clear();
    Ok(())
}

/// A public catalog page and the catalog search its handler sends (both anonymous).
fn catalog_row(name: String, query: &[(&str, &str)]) -> Row {
    Row {
        name,
        page: with_query("/catalog", query),
        page_auth: Auth::Anonymous,
        json: with_query("/v1/datasets", query),
        json_auth: Auth::Anonymous,
    }
}

/// A page of the supervisor's ledger browser and the entries it asks the API for: the
/// same filters, in the same order, with the browser's page size.
fn ledger_row(name: &str, query: &[(&str, &str)], page_auth: &Auth, json_auth: &Auth) -> Row {
    let limit = LEDGER_PAGE.to_string();
    let mut api = query.to_vec();
    api.push(("limit", limit.as_str()));
    Row {
        name: name.to_string(),
        page: with_query("/supervisor/ledger", query),
        page_auth: page_auth.clone(),
        json: with_query("/v1/ledger/entries", &api),
        json_auth: json_auth.clone(),
    }
}

/// The rows of the table, on the seeded instance.
async fn rows(http: &InProcess, app: &App, cast: &Cast, sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let supervisor_page = http.sign_in(&cast.supervisor.key).await?;
    let supervisor_key = Auth::Key(cast.supervisor.key.clone());
    let reviewer_page = http.sign_in(&cast.reviewer.key).await?;
    let reviewer_key = Auth::Key(cast.reviewer.key.clone());
    // The catalog's default page holds 20 entries; this one is half way through.
    let middle = (sizes.datasets / 20 / 2).max(1).to_string();
    let newest = app
        .ledger
        .size()
        .await?
        .saturating_sub(u64::from(LEDGER_PAGE))
        .to_string();
    let org = cast.traders[0].org.clone();
    Ok(vec![
        catalog_row("catalog, first page".into(), &[]),
        catalog_row(
            format!("catalog, text search `q={SEARCH_WORD}`"),
            &[("q", SEARCH_WORD)],
        ),
        catalog_row(
            "catalog, `theme=health&level=L2`".into(),
            &[("theme", "health"), ("level", "L2")],
        ),
        catalog_row(
            format!("catalog, page {middle}"),
            &[("page", middle.as_str())],
        ),
        ledger_row("ledger, first page", &[], &supervisor_page, &supervisor_key),
        ledger_row(
            "ledger, newest entries",
            &[("from", newest.as_str())],
            &supervisor_page,
            &supervisor_key,
        ),
        ledger_row(
            "ledger, `kind=transaction` of one organisation",
            &[("kind", "transaction"), ("org", org.as_str())],
            &supervisor_page,
            &supervisor_key,
        ),
        Row {
            name: format!("review queue ({} outputs)", sizes.outputs),
            page: "/review".into(),
            page_auth: reviewer_page,
            json: "/v1/review".into(),
            json_auth: reviewer_key,
        },
    ])
}

/// Times `runs` requests of a row's page and as many of its JSON route, alternating
/// which goes first; returns both timings, sorted. Unreported requests of both come
/// first, and the JSON must hold rows.
async fn measure(
    http: &InProcess,
    row: &Row,
    runs: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    for _ in 0..WARM_UP {
        http.timed(&row.page, &row.page_auth).await?;
        let (body, _) = http.timed(&row.json, &row.json_auth).await?;
        let answer: Value =
            serde_json::from_slice(&body).with_context(|| format!("GET {}: not JSON", row.json))?;
        ensure!(has_rows(&answer), "GET {}: no rows: {answer}", row.json);
    }
    let bar = super::progress_bar(2 * runs as u64, "measuring");
    let (mut page, mut json) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        if i.is_multiple_of(2) {
            page.push(http.timed(&row.page, &row.page_auth).await?.1);
            json.push(http.timed(&row.json, &row.json_auth).await?.1);
        } else {
            json.push(http.timed(&row.json, &row.json_auth).await?.1);
            page.push(http.timed(&row.page, &row.page_auth).await?.1);
        }
        bar.inc(2);
    }
    bar.finish_and_clear();
    page.sort();
    json.sort();
    Ok((page, json))
}

/// What one backend's run gives: how long seeding took, and the table's lines.
struct Report {
    backend: &'static str,
    seeding: String,
    lines: Vec<String>,
}

/// Seeds one backend and measures every row on it.
async fn run_backend(
    backend: &'static str,
    database_url: Option<String>,
    sizes: &Sizes,
) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let args = ConfigArgs {
        data_dir: Some(dir.path().to_path_buf()),
        database_url,
        ..ConfigArgs::default()
    };
    let mut config = Config::resolve(&args, Some("127.0.0.1:0"))?;
    // Admission is not what is measured, and one key's thousands of requests a minute
    // would meet the rate limit (0 turns it off).
    config.limits.rate_per_sec = 0;
    let app = App::open(config).await?;
    app.bootstrap().await?;
    let http = InProcess {
        router: crate::http::router(app.clone()),
    };
    let cast = cast(&app).await?;

    let started = Instant::now();
    seed_catalog(&app, &cast, sizes.datasets).await?;
    let catalog_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    seed_review_queue(&http, &app, &cast, sizes.outputs).await?;
    let queue_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    seed_ledger(&app, &cast.traders, sizes.entries).await?;
    let ledger_secs = started.elapsed().as_secs_f64();
    let ledger_size = app.ledger.size().await?;
    let seeding = format!(
        "{} datasets published in {catalog_secs:.0} s, {} outputs put in review in \
         {queue_secs:.0} s, {} ledger entries appended in {ledger_secs:.0} s \
         ({ledger_size} in the ledger)",
        sizes.datasets, sizes.outputs, sizes.entries
    );

    let mut lines = Vec::new();
    for row in rows(&http, &app, &cast, sizes).await? {
        let (page, json) = measure(&http, &row, sizes.runs).await?;
        lines.push(table_line(&row.name, &page, &json));
    }
    app.db.close().await;
    Ok(Report {
        backend,
        seeding,
        lines,
    })
}

/// Runs the benchmark and prints a markdown table per backend.
pub async fn run(sizes: Sizes, postgres: Option<String>) -> anyhow::Result<()> {
    ensure!(sizes.datasets > 0, "--datasets must be at least 1");
    ensure!(sizes.runs > 0, "--runs must be at least 1");
    ensure!(sizes.outputs > 0, "--outputs must be at least 1");
    let mut reports = vec![run_backend("SQLite", None, &sizes).await?];
    if let Some(base) = postgres {
        let (url, schema) = pg_schema(&base).await?;
        let result = run_backend("PostgreSQL", Some(url), &sizes).await;
        if let Err(e) = drop_pg_schema(&base, &schema).await {
            eprintln!("could not drop the benchmark schema {schema}: {e}");
        }
        reports.push(result?);
    }
    println!(
        "Server time in-process (the router `pdx serve` serves, from sending a request to \
         having its whole body): {} requests of each page and of its JSON route per row, \
         alternating, after {WARM_UP} unreported. Goal: page median at most \
         {RATIO_GOAL}× the JSON route's, page p95 under {} ms.",
        sizes.runs,
        P95_GOAL.as_millis()
    );
    for report in &reports {
        println!();
        println!("{}: {}.", report.backend, report.seeding);
        println!();
        println!(
            "| row | page median | page p95 | JSON median | JSON p95 | ratio (median) | goal met |"
        );
        println!("|---|---|---|---|---|---|---|");
        for line in &report.lines {
            println!("{line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::collections::BTreeSet;

    #[test]
    fn generated_entries_are_valid_and_varied() {
        let template = samples::electricity_dataset();
        let entries: Vec<NewDataset> = (0..600).map(|i| catalog_entry(i, &template)).collect();
        for (i, entry) in entries.iter().enumerate() {
            assert!(
                entry.validate().is_ok(),
                "entry {i}: {:?}",
                entry.validate()
            );
        }
        let themes: BTreeSet<&str> = entries.iter().map(|e| e.theme.as_str()).collect();
        assert_eq!(themes.len(), 10);
        let levels: BTreeSet<String> = entries.iter().map(|e| e.level.as_str()).collect();
        assert_eq!(levels.len(), 4);
        let searched = entries
            .iter()
            .filter(|e| e.title.contains(SEARCH_WORD))
            .count();
        assert_eq!(searched, 600 / TOPICS.len());
        assert!(
            entries
                .iter()
                .any(|e| e.theme == "health" && e.level == Level::L2),
            "the theme and level row would find nothing"
        );
    }

    #[test]
    fn ledger_entries_spread_over_kinds_and_organisations_and_never_name_their_actor() {
        let mut kinds = BTreeSet::new();
        let mut actors = BTreeSet::new();
        let mut with_party = 0;
        for i in 0..7_000 {
            let (kind, actor, party) = ledger_mix(i, 7);
            kinds.insert(kind);
            actors.insert(actor);
            if let Some(party) = party {
                assert_ne!(party, actor, "entry {i}");
                assert!(party < 7);
                with_party += 1;
            }
        }
        assert_eq!(kinds.len(), LEDGER_KINDS.len());
        assert_eq!(actors.len(), 7);
        assert!((3_000..4_000).contains(&with_party), "{with_party}");
        assert_eq!(ledger_mix(42, 7), ledger_mix(42, 7));
    }

    #[test]
    fn cookies_are_read_from_set_cookie_by_exact_name() {
        let mut headers = HeaderMap::new();
        for value in [
            "pdx_session_old=x; Path=/",
            "pdx_session=tok; Path=/; HttpOnly",
            "pdx_csrf=c1; Path=/",
        ] {
            headers.append(header::SET_COOKIE, HeaderValue::from_static(value));
        }
        assert_eq!(set_cookie(&headers, "pdx_session").as_deref(), Some("tok"));
        assert_eq!(set_cookie(&headers, "pdx_csrf").as_deref(), Some("c1"));
        assert_eq!(set_cookie(&headers, "pdx_lang"), None);
    }

    #[test]
    fn rows_are_found_in_each_answer_shape() {
        assert!(has_rows(&json!([{"output": {}}])));
        assert!(has_rows(&json!({"items": [1], "total": 1})));
        assert!(has_rows(&json!({"entries": [1], "next_from": null})));
        assert!(!has_rows(&json!([])));
        assert!(!has_rows(&json!({"items": [], "total": 0})));
        assert!(!has_rows(&json!({"total": 3})));
    }

    #[test]
    fn a_line_compares_medians_and_checks_both_goals() {
        fn ms(v: &[u64]) -> Vec<Duration> {
            let mut xs: Vec<Duration> = v.iter().map(|&m| Duration::from_millis(m)).collect();
            xs.sort();
            xs
        }
        let line = table_line("fast", &ms(&[12, 12, 12, 12]), &ms(&[10, 10, 10, 10]));
        assert_eq!(
            line,
            "| fast | 12.00 ms | 12.00 ms | 10.00 ms | 10.00 ms | 1.20 | yes |"
        );
        // Within the ratio, but its p95 is 60 ms (the 19th of 20, nearest rank).
        let slow_tail: Vec<u64> = (0..20).map(|i| if i >= 18 { 60 } else { 12 }).collect();
        let line = table_line("tail", &ms(&slow_tail), &ms(&[10; 20]));
        assert!(
            line.ends_with("| 60.00 ms | 10.00 ms | 10.00 ms | 1.20 | no |"),
            "{line}"
        );
        // Fast, but twice its JSON route.
        let line = table_line("ratio", &ms(&[20, 20]), &ms(&[10, 10]));
        assert!(line.ends_with("| 2.00 | no |"), "{line}");
    }
}
