//! Jobs survive a crash. The real `pdx serve`, started with `PDX_JOB_START_PAUSE_MS` so
//! that every job waits at its start, takes four jobs (an ingest, a SQL run, a DP run
//! and an FHE lookup) and is killed with SIGKILL while all four are running. Started
//! again over the same data directory and database, it resumes them, and this test
//! shows that:
//!
//! * every job reaches `succeeded`;
//! * the budgets spent at admission are charged exactly once: the grants' ε, δ and
//!   query counts after the restart are those right after admission, and the DP run has
//!   exactly one privacy-spend entry on the ledger;
//! * each run leaves exactly one output, the lookup exactly one ledger entry (its query
//!   is `done` and its answer decrypts to the clear answer), and the ingest exactly one
//!   new certified version;
//! * killed again after all four stored their results but before their jobs said so
//!   (the rows put back by hand), each job finishes with the same result and nothing is
//!   stored, certified or charged a second time.
//!
//! SQLite always; PostgreSQL when `PDX_TEST_POSTGRES_URL` is set (required under
//! `CI=true`). The state before the crash is built with the in-process [`TestServer`],
//! which is then stopped so that only the child process uses the database.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pdx::samples;
use pdx_algorithms::fhe::{Answer, KeyWidth, lookup_hash};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{register, upload, wait_job};
use crate::fhe::{self, Consent};
use crate::sandbox::{apply, approve};
use crate::support::{TestServer, payload};

/// The environment variables that would point a `pdx` process the tests start at
/// another configuration, address, data directory, database or instance name.
pub(crate) const SERVER_ENV: [&str; 5] = [
    "PDX_CONFIG",
    "PDX_ADDR",
    "PDX_DATA_DIR",
    "PDX_DATABASE_URL",
    "PDX_INSTANCE",
];
/// The server's switch that holds every job after it is marked started.
const PAUSE_VAR: &str = "PDX_JOB_START_PAUSE_MS";
/// Far longer than it takes to see all four jobs started and kill the server.
const PAUSE_MS: u64 = 60_000;
/// Rows of the dataset the model runs read (its district cells are far above the
/// disclosure threshold).
const RUN_ROWS: usize = 600;
/// Rows of each version of the dataset that gets a new version across the crash.
const INGEST_ROWS: usize = 300;
const SQL: &str = "SELECT district, COUNT(*) AS enterprises, AVG(kwh_12m) AS mean_kwh FROM data GROUP BY district";
const DP: &str = "SELECT industry, COUNT(*) AS enterprises FROM data GROUP BY industry";
const DP_EPSILON: f64 = 1.0;

#[tokio::test]
async fn jobs_cut_off_by_sigkill_finish_after_restart_sqlite() {
    let t = TestServer::start(false)
        .await
        .expect("the SQLite server always starts");
    jobs_survive_sigkill(t).await;
}

#[tokio::test]
async fn jobs_cut_off_by_sigkill_finish_after_restart_postgres() {
    // None when PDX_TEST_POSTGRES_URL is not set (and a failure under CI=true).
    let Some(t) = TestServer::start(true).await else {
        eprintln!("PDX_TEST_POSTGRES_URL not set: skipping the PostgreSQL crash test");
        return;
    };
    jobs_survive_sigkill(t).await;
}

/// The whole story on one backend.
async fn jobs_survive_sigkill(mut t: TestServer) {
    let b = t.backend;
    let s = setup(&t).await;
    let database_url = t.database_url.clone();
    // Stopping the in-process server closes its database pool; the data directory is
    // kept (moved out, so that dropping the server does not delete it).
    let data = std::mem::replace(&mut t.dir, tempfile::tempdir().expect("a temp dir"));
    t.stop().await;
    let logs = tempfile::tempdir().expect("a temp dir");
    let db = database_url.as_deref();

    // 1. A server whose jobs all wait at their start.
    let mut first = Serve::start(
        b,
        data.path(),
        db,
        Some(PAUSE_MS),
        logs.path().join("first.log"),
    )
    .await;
    let grant_path = format!("/v1/grants/{}", s.grant);
    let fhe_grant_path = format!("/v1/grants/{}", s.fhe.grant);
    let grant_before = first.get_ok(&s.dev, &grant_path).await;
    let fhe_grant_before = first.get_ok(&s.bank, &fhe_grant_path).await;
    let versions_before = versions(&first, &s.provider, &s.ingest_dataset).await;
    let certificates_before = certificates(&first, &s.provider, &s.ingest_dataset)
        .await
        .len();
    assert_eq!(versions_before.len(), 1, "{b}: {versions_before:?}");
    assert_eq!(certificates_before, 1, "{b}");

    // 2. Four jobs: an ingest, a SQL run, a DP run and an FHE lookup.
    let csv = samples::electricity_csv(INGEST_ROWS, 7);
    let (st, ingest) = first
        .post_bytes(
            &s.provider,
            &format!("/v1/datasets/{}/versions?format=csv", s.ingest_dataset),
            csv.into_bytes(),
        )
        .await;
    assert_eq!(st, 202, "{b}: upload: {ingest}");
    let sql = start_run(&first, &s, &s.sql_model, None).await;
    let dp = start_run(&first, &s, &s.dp_model, Some(DP_EPSILON)).await;
    let ciphertext = fhe::encrypt(s.fhe_key);
    let (st, lookup) = first
        .post(
            &s.bank,
            "/v1/fhe/queries",
            json!({
                "template_id": s.fhe.template,
                "grant_id": s.fhe.grant,
                "server_key_id": s.fhe.server_key,
                "bucket": null,
                "ciphertext": STANDARD.encode(ciphertext),
                "consent_commitment": hex::encode(s.consent.fresh().commitment()),
            }),
        )
        .await;
    assert_eq!(st, 202, "{b}: FHE query: {lookup}");
    let query_id = text(&lookup, "/query/id");
    let jobs = [
        Tracked::new("ingest", "ingest", &s.provider, &ingest, "/id"),
        Tracked::new("SQL run", "model_run", &s.dev, &sql, "/id"),
        Tracked::new("DP run", "model_run", &s.dev, &dp, "/id"),
        Tracked::new("FHE lookup", "fhe_query", &s.bank, &lookup, "/job/id"),
    ];
    for job in &jobs {
        first.wait_started(job).await;
    }

    // What admission charged: ε and a query on the run grant, a query on the FHE grant.
    let grant_admitted = first.get_ok(&s.dev, &grant_path).await;
    let fhe_grant_admitted = first.get_ok(&s.bank, &fhe_grant_path).await;
    assert_eq!(
        number(&grant_admitted, "/epsilon_spent"),
        number(&grant_before, "/epsilon_spent") + DP_EPSILON,
        "{b}: the DP run's ε is charged at admission: {grant_before} then {grant_admitted}"
    );
    assert_eq!(
        count(&grant_admitted, "/queries_used"),
        count(&grant_before, "/queries_used") + 2,
        "{b}: each run takes a query at admission: {grant_before} then {grant_admitted}"
    );
    assert_eq!(
        count(&fhe_grant_admitted, "/queries_used"),
        count(&fhe_grant_before, "/queries_used") + 1,
        "{b}: the lookup takes a query at admission: {fhe_grant_before} then {fhe_grant_admitted}"
    );
    let spends = spends_on(&first, &s.dev, &s.grant).await;
    assert_eq!(spends.len(), 1, "{b}: the DP run's spend: {spends:?}");
    // Cut off before any work: no output, no lookup entry, no new version yet.
    assert_eq!(
        outputs_of(&first, &s.dev, &jobs[1].id).await.len(),
        0,
        "{b}"
    );
    assert_eq!(
        outputs_of(&first, &s.dev, &jobs[2].id).await.len(),
        0,
        "{b}"
    );
    assert_eq!(lookups_of(&first, &s.bank, &query_id).await.len(), 0, "{b}");

    // 3. SIGKILL while all four are still running at their start.
    for job in &jobs {
        let now = first.get_ok(&job.key, &job.path()).await;
        assert!(
            now["status"] == "running" && now["stage"] == "started",
            "{b}: the {} got past its start before the kill: {now}",
            job.what
        );
    }
    first.kill().await;

    // 4. The same data and database, no pause: every job reaches a final state.
    let second = Serve::start(b, data.path(), db, None, logs.path().join("second.log")).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut finished = Vec::new();
    for job in &jobs {
        finished.push(second.wait_final(job, deadline).await);
    }
    for (job, done) in jobs.iter().zip(&finished) {
        assert_eq!(
            done["status"],
            "succeeded",
            "{b}: the {} after the restart: {done}\nserver log:\n{}",
            job.what,
            second.log_tail()
        );
        assert_eq!(done["kind"], job.kind, "{b}: {done}");
        assert!(
            done["stage"] == "done" && done["progress"] == 1.0,
            "{b}: {done}"
        );
    }

    // Budgets: charged once, at admission; neither refunded nor charged again.
    let grant_after = second.get_ok(&s.dev, &grant_path).await;
    for field in ["/epsilon_spent", "/delta_spent", "/queries_used"] {
        assert_eq!(
            grant_after.pointer(field),
            grant_admitted.pointer(field),
            "{b}: {field} changed across the restart: {grant_admitted} then {grant_after}"
        );
    }
    let fhe_grant_after = second.get_ok(&s.bank, &fhe_grant_path).await;
    assert_eq!(
        fhe_grant_after.pointer("/queries_used"),
        fhe_grant_admitted.pointer("/queries_used"),
        "{b}: the FHE grant across the restart: {fhe_grant_admitted} then {fhe_grant_after}"
    );
    let spends = spends_on(&second, &s.dev, &s.grant).await;
    assert_eq!(spends.len(), 1, "{b}: one privacy spend: {spends:?}");
    assert_eq!(payload(&spends[0])["job_id"], jobs[2].id.as_str(), "{b}");

    // Each run: exactly one output, the one its job names, quarantined for review.
    for (job, done) in jobs[1..3].iter().zip(&finished[1..3]) {
        let outputs = outputs_of(&second, &s.dev, &job.id).await;
        assert_eq!(
            outputs.len(),
            1,
            "{b}: the {} has one output: {outputs:?}",
            job.what
        );
        let output_id = text(done, "/result/output_id");
        assert_eq!(outputs[0]["id"], output_id.as_str(), "{b}: {done}");
        let output = second
            .get_ok(&s.dev, &format!("/v1/outputs/{output_id}"))
            .await;
        assert_eq!(output["status"], "quarantined", "{b}: {output}");
    }

    // The lookup: one ledger entry, the query done, the answer the clear one.
    let lookup_entries = lookups_of(&second, &s.bank, &query_id).await;
    assert_eq!(
        lookup_entries.len(),
        1,
        "{b}: one lookup entry: {lookup_entries:?}"
    );
    let query = second
        .get_ok(&s.bank, &format!("/v1/fhe/queries/{query_id}"))
        .await;
    assert_eq!(query["status"], "done", "{b}: {query}");
    assert_eq!(
        query["ledger_seq"], lookup_entries[0]["seq"],
        "{b}: {query}"
    );
    let answer = Answer {
        value: decode(&query, "/answer/value"),
        found: decode(&query, "/answer/found"),
    };
    let (value, found) = fhe::material()
        .secret
        .decrypt(&answer)
        .unwrap_or_else(|e| panic!("{b}: decrypting the answer: {e:?}"));
    assert!(
        found && value == 1,
        "{b}: the enterprise is present and in the top quartile: found {found}, value {value}"
    );

    // The ingest: exactly one new version, certified once.
    let versions_after = versions(&second, &s.provider, &s.ingest_dataset).await;
    assert_eq!(
        versions_after.len(),
        versions_before.len() + 1,
        "{b}: one new version: {versions_after:?}"
    );
    let newest = versions_after
        .iter()
        .filter_map(|v| v["version"].as_u64())
        .max()
        .unwrap_or_else(|| panic!("{b}: no version numbers in {versions_after:?}"));
    assert_eq!(newest, 2, "{b}: {versions_after:?}");
    let cert = second
        .get_ok(
            &s.provider,
            &format!(
                "/v1/datasets/{}/versions/{newest}/certificate",
                s.ingest_dataset
            ),
        )
        .await;
    assert_eq!(cert["certificate"]["version"], newest, "{b}: {cert}");
    assert_eq!(
        cert["certificate"]["dataset_id"],
        s.ingest_dataset.as_str(),
        "{b}: {cert}"
    );
    let certificates_after = certificates(&second, &s.provider, &s.ingest_dataset).await;
    assert_eq!(
        certificates_after.len(),
        certificates_before + 1,
        "{b}: one new certificate entry: {certificates_after:?}"
    );

    // 5. A crash after each job's work was stored but before the job was marked done
    // (the job and run rows put back as the crash would leave them): each finishes
    // with the result it had, and nothing is stored, certified or charged again.
    drop(second); // SIGKILL
    let url = database_url
        .clone()
        .unwrap_or_else(|| pdx_ledger::db::sqlite_url(&data.path().join("pdx.db")));
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    mark_running(&url, &ids).await;
    let third = Serve::start(b, data.path(), db, None, logs.path().join("third.log")).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    for (job, before) in jobs.iter().zip(&finished) {
        let again = third.wait_final(job, deadline).await;
        assert_eq!(
            again["status"],
            "succeeded",
            "{b}: the {} resumed after its result was stored: {again}\nserver log:\n{}",
            job.what,
            third.log_tail()
        );
        assert_eq!(
            again["result"], before["result"],
            "{b}: the {} finished with another result",
            job.what
        );
    }
    for job in &jobs[1..3] {
        assert_eq!(outputs_of(&third, &s.dev, &job.id).await.len(), 1, "{b}");
    }
    assert_eq!(spends_on(&third, &s.dev, &s.grant).await.len(), 1, "{b}");
    assert_eq!(lookups_of(&third, &s.bank, &query_id).await.len(), 1, "{b}");
    assert_eq!(
        versions(&third, &s.provider, &s.ingest_dataset).await.len(),
        versions_after.len(),
        "{b}: no second version"
    );
    assert_eq!(
        certificates(&third, &s.provider, &s.ingest_dataset)
            .await
            .len(),
        certificates_after.len(),
        "{b}: no second certificate"
    );
    let grant_third = third.get_ok(&s.dev, &grant_path).await;
    for field in ["/epsilon_spent", "/delta_spent", "/queries_used"] {
        assert_eq!(
            grant_third.pointer(field),
            grant_admitted.pointer(field),
            "{b}: {field} changed across the second restart"
        );
    }
    drop(third);
}

/// Puts finished jobs (and their run rows) back to `running`, as a crash between
/// storing a job's result and recording its outcome leaves them.
async fn mark_running(url: &str, job_ids: &[&str]) {
    let db = pdx_ledger::db::Db::connect_with(url, 1)
        .await
        .expect("the test reaches the database");
    for id in job_ids {
        sqlx::query(
            "UPDATE jobs SET status = 'running', stage = 'started', progress = 0.0, \
             result_json = NULL WHERE id = $1",
        )
        .bind(id.to_string())
        .execute(db.pool())
        .await
        .expect("a job row is put back");
        sqlx::query("UPDATE model_runs SET status = 'running' WHERE job_id = $1")
            .bind(id.to_string())
            .execute(db.pool())
            .await
            .expect("a run row is put back");
    }
    db.close().await;
}

/// What the in-process server leaves for the crash.
struct Setup {
    provider: String,
    dev: String,
    bank: String,
    /// The dataset the model runs read.
    run_dataset: String,
    /// The developer's grant on it: SQL and DP, ε = 3.
    grant: String,
    sql_model: String,
    dp_model: String,
    /// A certified dataset that gets its second version across the crash.
    ingest_dataset: String,
    /// The bank's FHE grant, approved template and server key (8 enterprises).
    fhe: fhe::Fixture,
    /// The enterprise's signed authorisation the lookup commits to.
    consent: Consent,
    /// The lookup key: an enterprise in the top quartile.
    fhe_key: u64,
}

async fn setup(t: &TestServer) -> Setup {
    let b = t.backend;
    let (_, provider) = t.key_for("power-bureau", "provider").await;
    let (_, dev) = t.key_for("energy-analytics", "developer").await;
    // The bank is another organisation, so the runs' concurrency cap is the
    // developer's alone.
    let (bank_org, bank) = t.key_for("bank-of-shenzhen", "developer").await;
    let (subject_org, _, subject_key) = fhe::subject(t, "shenzhen-widgets", 41).await;
    let fixture = fhe::fhe_fixture(t, &provider, &bank, 2).await;
    let consent = Consent::for_query(&subject_key, &subject_org, &bank_org, &fixture.template);
    let (st, template) = t
        .get(&bank, &format!("/v1/fhe/templates/{}", fixture.template))
        .await;
    assert_eq!(st, 200, "{b}: {template}");
    let fhe_dataset = text(&template, "/dataset_id");
    let all = fhe::enterprises(&samples::electricity_csv(fhe::ROWS, fhe::SEED));
    let (code, _) = all
        .iter()
        .find(|(_, kwh)| fhe::top_quartile(&all, *kwh))
        .expect("an enterprise in the top quartile");
    let fhe_key = KeyWidth::U16.truncate(lookup_hash(&fhe_dataset, code));

    let run_dataset = certified(t, &provider, "Electricity for model runs", RUN_ROWS, 5).await;
    let grant = apply(
        t,
        &dev,
        &run_dataset,
        json!(["credit_code", "district", "industry", "kwh_12m"]),
        json!(["sql", "dp"]),
        3.0,
        10,
    )
    .await;
    approve(t, &provider, &grant, json!({})).await;
    let sql_model = model(t, &dev, "sql", SQL).await;
    let dp_model = model(t, &dev, "dp", DP).await;
    let ingest_dataset = certified(t, &provider, "Electricity, new versions", INGEST_ROWS, 6).await;
    Setup {
        provider,
        dev,
        bank,
        run_dataset,
        grant,
        sql_model,
        dp_model,
        ingest_dataset,
        fhe: fixture,
        consent,
        fhe_key,
    }
}

/// Registers an electricity dataset under `title` and certifies a first version.
async fn certified(t: &TestServer, provider: &str, title: &str, rows: usize, seed: u64) -> String {
    let b = t.backend;
    let mut meta = samples::electricity_dataset();
    meta.title = title.into();
    meta.elements = Vec::new();
    let meta = serde_json::to_value(&meta).expect("the dataset as JSON");
    let id = register(t, provider, &meta).await;
    let csv = samples::electricity_csv(rows, seed);
    let (st, job) = upload(t, provider, &id, "?format=csv", csv.into_bytes()).await;
    assert_eq!(st, 202, "{b}: {job}");
    let job = wait_job(t, provider, &text(&job, "/id")).await;
    assert_eq!(job["status"], "succeeded", "{b}: {job}");
    id
}

/// Registers a model; returns its id.
async fn model(t: &TestServer, dev: &str, kind: &str, body: &str) -> String {
    let (st, m) = t
        .call(
            Some(dev),
            Method::POST,
            "/v1/models",
            Some(json!({"name": format!("restart {kind}"), "kind": kind, "body": body})),
        )
        .await;
    assert_eq!(st, 201, "{}: {m}", t.backend);
    text(&m, "/id")
}

/// Starts a run of `model` over the run dataset; returns the accepted job.
async fn start_run(serve: &Serve, s: &Setup, model: &str, epsilon: Option<f64>) -> Value {
    let mut req = json!({
        "model_id": model,
        "inputs": [{"dataset_id": s.run_dataset, "grant_id": s.grant}],
    });
    if let Some(e) = epsilon {
        req["epsilon"] = json!(e);
    }
    let (st, job) = serve.post(&s.dev, "/v1/runs", req).await;
    assert_eq!(st, 202, "{}: run of {model}: {job}", serve.backend);
    job
}

/// A job the test follows across the crash, and the key of the organisation owning it.
struct Tracked {
    what: &'static str,
    kind: &'static str,
    key: String,
    id: String,
}

impl Tracked {
    /// The job whose id is at `pointer` in `accepted` (the answer that started it).
    fn new(
        what: &'static str,
        kind: &'static str,
        key: &str,
        accepted: &Value,
        pointer: &str,
    ) -> Tracked {
        Tracked {
            what,
            kind,
            key: key.to_string(),
            id: text(accepted, pointer),
        }
    }

    fn path(&self) -> String {
        format!("/v1/jobs/{}", self.id)
    }
}

/// A `pdx serve` child process, killed when dropped so that a failing test leaves no
/// server behind. Shared with the crash tests of [`crate::crash`].
pub(crate) struct Serve {
    child: tokio::process::Child,
    backend: &'static str,
    base: String,
    http: reqwest::Client,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SIGKILL (a no-op once it exited); tokio reaps the process.
        let _ = self.child.start_kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

impl Serve {
    /// Starts `pdx serve` over `data` (and `database_url`, else the SQLite file inside
    /// `data`), with every job paused `pause_ms` at its start if given; waits until it
    /// is ready. Its output goes to `log`.
    pub(crate) async fn start(
        backend: &'static str,
        data: &Path,
        database_url: Option<&str>,
        pause_ms: Option<u64>,
        log: PathBuf,
    ) -> Serve {
        Self::start_with(backend, data, database_url, pause_ms, log, &[]).await
    }

    /// [`Serve::start`] with `flags` (global flags such as `--config` or `--instance`)
    /// before the `serve` command.
    pub(crate) async fn start_with(
        backend: &'static str,
        data: &Path,
        database_url: Option<&str>,
        pause_ms: Option<u64>,
        log: PathBuf,
        flags: &[&str],
    ) -> Serve {
        let port = free_port();
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out.try_clone().expect("a second handle on the log");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"));
        cmd.arg("--data-dir").arg(data);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.args(flags);
        cmd.args(["serve", "--addr", &format!("127.0.0.1:{port}")]);
        // Nothing from the test's environment may point it elsewhere.
        for var in SERVER_ENV.into_iter().chain([PAUSE_VAR]) {
            cmd.env_remove(var);
        }
        if let Some(ms) = pause_ms {
            cmd.env(PAUSE_VAR, ms.to_string());
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{backend}: starting pdx serve: {e}"));
        let mut serve = Serve {
            child,
            backend,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            log,
        };
        serve.wait_ready().await;
        serve
    }

    async fn wait_ready(&mut self) {
        let b = self.backend;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = self.http.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("polling pdx serve") {
                panic!(
                    "{b}: pdx serve exited with {status} before it was ready:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{b}: pdx serve was not ready in 120 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, then waits for the process to be gone.
    pub(crate) async fn kill(&mut self) {
        let b = self.backend;
        self.child
            .start_kill()
            .expect("sending SIGKILL to pdx serve");
        let status = self.child.wait().await.expect("waiting for pdx serve");
        // Killed by a signal: there is no exit code.
        assert_eq!(
            status.code(),
            None,
            "{b}: pdx serve exited by itself ({status}) before the kill:\n{}",
            self.log_tail()
        );
    }

    /// The last lines of the server's output, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder, path: &str) -> (u16, Value) {
        let resp = req.send().await.unwrap_or_else(|e| {
            panic!(
                "{}: {path}: {e}\nserver log:\n{}",
                self.backend,
                self.log_tail()
            )
        });
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{}: {path}: reading the body: {e}", self.backend));
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let req = self.http.get(self.url(path)).bearer_auth(key);
        self.send(req, path).await
    }

    /// GET that must answer 200.
    pub(crate) async fn get_ok(&self, key: &str, path: &str) -> Value {
        let (st, body) = self.get(key, path).await;
        assert_eq!(st, 200, "{}: GET {path}: {body}", self.backend);
        body
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let req = self.http.post(self.url(path)).bearer_auth(key).json(&body);
        self.send(req, path).await
    }

    async fn post_bytes(&self, key: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        let req = self
            .http
            .post(self.url(path))
            .bearer_auth(key)
            .header("content-type", "application/octet-stream")
            .body(body);
        self.send(req, path).await
    }

    /// Polls until the job is running at its start (where the pause holds it).
    async fn wait_started(&self, job: &Tracked) {
        let b = self.backend;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.get_ok(&job.key, &job.path()).await;
            if now["status"] == "running" && now["stage"] == "started" {
                return;
            }
            assert!(
                now["status"] == "queued" || now["status"] == "running",
                "{b}: the {} finished before the crash (is {PAUSE_VAR} honoured?): {now}",
                job.what
            );
            assert!(
                Instant::now() < deadline,
                "{b}: the {} did not start in 60 s: {now}\nserver log:\n{}",
                job.what,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until the job succeeded or failed; fails the test at `deadline`.
    async fn wait_final(&self, job: &Tracked, deadline: Instant) -> Value {
        let b = self.backend;
        loop {
            let now = self.get_ok(&job.key, &job.path()).await;
            if now["status"] == "succeeded" || now["status"] == "failed" {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "{b}: the {} is still unfinished after the restart: {now}\nserver log:\n{}",
                job.what,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Every ledger entry of `kind` the caller sees, following the pages.
async fn entries(serve: &Serve, key: &str, kind: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut from = 0u64;
    loop {
        let path = format!("/v1/ledger/entries?kind={kind}&from={from}&limit=1000");
        let page = serve.get_ok(key, &path).await;
        let batch = page["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no entries in {page}", serve.backend));
        all.extend(batch.iter().cloned());
        match page["next_from"].as_u64() {
            Some(next) => from = next,
            None => return all,
        }
    }
}

/// The privacy-spend entries charged to `grant`.
async fn spends_on(serve: &Serve, dev: &str, grant: &str) -> Vec<Value> {
    let all = entries(serve, dev, "privacy_spend").await;
    all.into_iter()
        .filter(|e| payload(e)["grant_id"] == grant)
        .collect()
}

/// The evaluated-lookup entries of one FHE query.
async fn lookups_of(serve: &Serve, bank: &str, query_id: &str) -> Vec<Value> {
    let all = entries(serve, bank, "fhe_query").await;
    all.into_iter()
        .filter(|e| {
            let p = payload(e);
            p["event"] == "query" && p["query_id"] == query_id
        })
        .collect()
}

/// The certificate entries of a dataset's versions.
async fn certificates(serve: &Serve, provider: &str, dataset: &str) -> Vec<Value> {
    let all = entries(serve, provider, "asset_certificate").await;
    all.into_iter()
        .filter(|e| payload(e)["dataset_id"] == dataset)
        .collect()
}

/// The outputs a job produced, as its developer lists them.
async fn outputs_of(serve: &Serve, dev: &str, job_id: &str) -> Vec<Value> {
    let list = serve.get_ok(dev, "/v1/outputs").await;
    let outputs = list
        .as_array()
        .unwrap_or_else(|| panic!("{}: outputs are not a list: {list}", serve.backend));
    outputs
        .iter()
        .filter(|o| o["job_id"] == job_id)
        .cloned()
        .collect()
}

/// A dataset's certified versions.
async fn versions(serve: &Serve, key: &str, dataset: &str) -> Vec<Value> {
    let list = serve
        .get_ok(key, &format!("/v1/datasets/{dataset}/versions"))
        .await;
    list.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{}: versions are not a list: {list}", serve.backend))
}

/// The string at `pointer` in a server answer.
fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
        .to_string()
}

/// The number at `pointer` in a server answer.
fn number(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {v}"))
}

/// The count at `pointer` in a server answer.
fn count(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no count at {pointer} in {v}"))
}

/// The base64 bytes at `pointer` in a server answer.
fn decode(v: &Value, pointer: &str) -> Vec<u8> {
    STANDARD
        .decode(text(v, pointer))
        .unwrap_or_else(|e| panic!("{pointer} is not base64 ({e}) in {v}"))
}
