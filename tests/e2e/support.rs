//! A real server per test: SQLite in a temp dir, or a fresh PostgreSQL schema when
//! `PDX_TEST_POSTGRES_URL` is set (required under `CI=true`).

use std::sync::Arc;

use pdx::app::App;
use pdx::auth::{Policy, Role};
use pdx::config::{Config, ConfigArgs};
use pdx::http::limits::LimitsConfig;
use pdx::server::RunningServer;
use pdx_sandbox::workdays::iso_date;
use reqwest::Method;
use serde_json::Value;

pub struct TestServer {
    pub app: App,
    pub server: Option<RunningServer>,
    pub admin: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub backend: &'static str,
    /// The PostgreSQL URL (with its schema) the server uses; None for SQLite, whose file
    /// is the default one inside `dir`.
    pub database_url: Option<String>,
    /// The data authority's key that publishes the datasets tests register (made on
    /// first use, see [`TestServer::authority`]).
    pub authority: tokio::sync::OnceCell<String>,
}

/// The name of the harness's data-authority organisation.
pub const AUTHORITY_ORG: &str = "pdx-test-data-bureau";

fn postgres_url() -> Option<String> {
    match std::env::var("PDX_TEST_POSTGRES_URL") {
        Ok(u) => Some(u),
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but PDX_TEST_POSTGRES_URL is not set: PostgreSQL tests must run"
            );
            eprintln!("PDX_TEST_POSTGRES_URL not set: skipping the PostgreSQL half");
            None
        }
    }
}

async fn pg_schema(base: &str) -> String {
    let schema = format!("e2e_{}", hex::encode(rand::random::<[u8; 6]>()));
    let db = pdx_ledger::db::Db::connect_with(base, 1).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options[search_path]={schema}")
}

impl TestServer {
    pub async fn start(postgres: bool) -> Option<TestServer> {
        Self::start_with(postgres, |_| {}).await
    }

    /// Like [`TestServer::start`], with `configure` applied to the app before it serves
    /// (e.g. a manual clock for the products).
    pub async fn start_with(
        postgres: bool,
        configure: impl FnOnce(&mut App),
    ) -> Option<TestServer> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = if postgres {
            Some(pg_schema(&postgres_url()?).await)
        } else {
            None
        };
        let args = ConfigArgs {
            data_dir: Some(dir.path().to_path_buf()),
            database_url: database_url.clone(),
            ..ConfigArgs::default()
        };
        let mut config = Config::resolve(&args, Some("127.0.0.1:0")).unwrap();
        config.body_limit = 64 * 1024;
        config.sandbox.upload_limit = 4 * 1024 * 1024;
        // Small enough that the resource-exhaustion attacks fail fast.
        config.sandbox.run_timeout = std::time::Duration::from_secs(10);
        config.sandbox.run_memory_bytes = 256 << 20;
        let mut app = App::open(config).await.unwrap();
        configure(&mut app);
        let admin = app
            .bootstrap()
            .await
            .unwrap()
            .expect("first start bootstraps")
            .key;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = pdx::server::spawn(app.clone(), listener).unwrap();
        Some(TestServer {
            app,
            server: Some(server),
            admin,
            http: reqwest::Client::new(),
            dir,
            backend: if postgres { "postgres" } else { "sqlite" },
            database_url,
            authority: tokio::sync::OnceCell::new(),
        })
    }

    /// SQLite always, PostgreSQL when configured.
    pub async fn both() -> Vec<TestServer> {
        let mut v = vec![TestServer::start(false).await.unwrap()];
        v.extend(TestServer::start(true).await);
        v
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.as_ref().unwrap().url())
    }

    pub async fn call(
        &self,
        key: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        if status >= 400 && status != 405 {
            assert_eq!(ctype, "application/problem+json", "{status} {path}: {text}");
        }
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        self.call(Some(key), reqwest::Method::GET, path, None).await
    }

    /// Creates an organisation and a key with `role`; returns (org id, key).
    pub async fn key_for(&self, name: &str, role: &str) -> (String, String) {
        let (s, org) = self
            .call(
                Some(&self.admin),
                reqwest::Method::POST,
                "/v1/orgs",
                Some(serde_json::json!({"name": name})),
            )
            .await;
        assert_eq!(s, 201, "{org}");
        let org_id = org["id"].as_str().unwrap().to_string();
        let (s, key) = self
            .call(
                Some(&self.admin),
                reqwest::Method::POST,
                "/v1/keys",
                Some(serde_json::json!({"org": org_id, "role": role})),
            )
            .await;
        assert_eq!(s, 201, "{key}");
        (org_id, key["key"].as_str().unwrap().to_string())
    }

    /// The key of the harness's data authority (its organisation is made on first use),
    /// which approves the catalog entries that tests register (GD21 Art.10-11).
    pub async fn authority(&self) -> &str {
        self.authority
            .get_or_init(|| async { self.key_for(AUTHORITY_ORG, "authority").await.1 })
            .await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
        self.app.db.close().await;
    }
}

/// The payload of a ledger entry as JSON (the API carries it as its canonical text, the
/// bytes its hash covers).
pub fn payload(entry: &Value) -> Value {
    entry["payload"]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null)
}

/// `text` with every key replaced, for printing the output of a tool the keys were
/// given to.
pub fn redact(text: &str, keys: &[&str]) -> String {
    keys.iter()
        .filter(|key| !key.is_empty())
        .fold(text.to_string(), |out, key| out.replace(key, "[api key]"))
}

/// POSTs `body` to `path` with `key`.
pub async fn post(t: &TestServer, key: &str, path: &str, body: Value) -> (u16, Value) {
    t.call(Some(key), Method::POST, path, Some(body)).await
}

/// PUTs `body` to `path` with `key`.
pub async fn put(t: &TestServer, key: &str, path: &str, body: Value) -> (u16, Value) {
    t.call(Some(key), Method::PUT, path, Some(body)).await
}

/// The id of the API key `key`, as `/v1/whoami` names it.
pub async fn key_id(t: &TestServer, key: &str) -> String {
    let (s, me) = t.get(key, "/v1/whoami").await;
    assert_eq!(s, 200, "{me}");
    me["key_id"].as_str().unwrap().to_string()
}

/// The limits of a server about to start (for [`TestServer::start_with`]).
pub fn limits(app: &mut App) -> &mut LimitsConfig {
    &mut Arc::make_mut(&mut app.config).limits
}

/// Today, in UTC (as the server dates things).
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// `YYYY-MM-DD`, `days` days from today (UTC).
pub fn day(days: i64) -> String {
    iso_date(today().saturating_add(time::Duration::days(days)))
}

/// A `YYYY-MM-DD` date (panics on anything else).
pub fn parse_day(day: &str) -> time::Date {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(day, format).unwrap()
}

/// `days` calendar days after a `YYYY-MM-DD` date.
pub fn iso_plus(day: &str, days: i64) -> String {
    iso_date(parse_day(day).saturating_add(time::Duration::days(days)))
}

/// The sealing handle of the zones of the data directory `data` (default KEK place),
/// to read zone files as the server does.
pub fn zones_at_rest(data: &std::path::Path) -> pdx_seal::AtRest {
    pdx::cli::backup::zones_at_rest(
        &data.join("zones"),
        &data.join(pdx_sandbox::config::ZONES_KEK_FILE_NAME),
    )
    .unwrap()
}

/// BLAKE3 of some bytes, in hex (as the API names content hashes).
pub fn blake3_hex(bytes: impl AsRef<[u8]>) -> String {
    blake3::hash(bytes.as_ref()).to_hex().to_string()
}

/// A key for every role, each in an organisation of its own named `{prefix}-{role}`.
pub async fn key_per_role(t: &TestServer, prefix: &str) -> Vec<(Role, String)> {
    let mut keys = Vec::new();
    for role in Role::ALL {
        let (_, key) = t.key_for(&format!("{prefix}-{role}"), role.as_str()).await;
        keys.push((role, key));
    }
    keys
}

/// Calls `method` `path` (with `body`) with each key of `keys` whose role `policy` does
/// not admit, asserting each is refused (403); returns how many were.
pub async fn refused_outside_policy(
    t: &TestServer,
    keys: &[(Role, String)],
    policy: &Policy,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> usize {
    let b = t.backend;
    let mut refused = 0;
    for (role, key) in keys {
        if policy.roles.contains(role) {
            continue;
        }
        let (s, p) = t
            .call(Some(key), method.parse().unwrap(), path, body.clone())
            .await;
        assert_eq!(s, 403, "{b}: {method} {path} as {role}: {p}");
        refused += 1;
    }
    refused
}

/// The `name=value` pairs a response sets (`Set-Cookie`), without their attributes.
fn set_cookies(resp: &reqwest::Response) -> Vec<(String, String)> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A client that sends `cookies` with every request (as a browser would send the ones
/// it holds) and follows redirects. The tests build it by hand rather than with
/// reqwest's cookie store: that feature changes the features of `url`, which nearly
/// every dependency builds on, and so would rebuild them all.
fn client_with_cookies(cookies: &[(String, String)]) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let line: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !line.is_empty() {
        headers.insert(
            reqwest::header::COOKIE,
            reqwest::header::HeaderValue::from_str(&line.join("; ")).unwrap(),
        );
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A visitor without a session who has opened a page: it holds the pre-session CSRF
/// cookie, so its forms (with the page's `csrf` field) are accepted.
pub async fn portal_visitor(t: &TestServer) -> reqwest::Client {
    let resp = reqwest::Client::new()
        .get(t.url("/signin"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}: GET /signin", t.backend);
    client_with_cookies(&set_cookies(&resp))
}

/// A browser-like client signed in to the portal with `key`: GET /signin for the
/// pre-session cookie and the form's CSRF token, then POST the key with them; the
/// client then sends the session cookie (and the pre-session one) with every request.
pub async fn portal_sign_in(t: &TestServer, key: &str) -> reqwest::Client {
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = plain.get(t.url("/signin")).send().await.unwrap();
    assert_eq!(page.status(), 200, "{}: GET /signin", t.backend);
    let mut cookies = set_cookies(&page);
    let csrf = csrf_of(&page.text().await.unwrap());
    let line: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let resp = plain
        .post(t.url("/signin"))
        .header(reqwest::header::COOKIE, line.join("; "))
        .form(&[("api_key", key), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    // A refused key shows the form again (401); a good one is sent on (303).
    assert_eq!(
        resp.status(),
        303,
        "{}: the portal refused the key",
        t.backend
    );
    for (name, value) in set_cookies(&resp) {
        cookies.retain(|(k, _)| *k != name);
        cookies.push((name, value));
    }
    client_with_cookies(&cookies)
}

/// GETs a portal page; returns its status, the path it ended on (after redirects) and
/// its body.
pub async fn get_page(
    client: &reqwest::Client,
    t: &TestServer,
    path: &str,
) -> (u16, String, String) {
    let resp = client.get(t.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    let end = resp.url().path().to_string();
    (status, end, resp.text().await.unwrap())
}

/// The value of the first hidden `csrf` field of a portal page.
pub fn csrf_of(html: &str) -> String {
    let field = html
        .find("name=\"csrf\"")
        .unwrap_or_else(|| panic!("no csrf field in the page: {html}"));
    let rest = &html[field..];
    let value = rest.find("value=\"").expect("the csrf field has a value") + "value=\"".len();
    let end = rest[value..].find('"').expect("the csrf value ends");
    rest[value..value + end].to_string()
}

/// What reviewers see of an output: its record (with the whole check report) and its
/// rows as JSON; both must answer 200.
pub async fn reviewer_view(t: &TestServer, reviewer: &str, output: &str) -> (Value, Value) {
    let (s, meta) = t.get(reviewer, &format!("/v1/outputs/{output}")).await;
    assert_eq!(s, 200, "{}: {meta}", t.backend);
    let (s, rows) = t
        .get(
            reviewer,
            &format!("/v1/outputs/{output}/download?format=json"),
        )
        .await;
    assert_eq!(s, 200, "{}: {rows}", t.backend);
    (meta, rows)
}
