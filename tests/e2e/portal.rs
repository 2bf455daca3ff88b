//! The web portal's foundation (#21), on SQLite and PostgreSQL: signing in with an API
//! key, the session cookie, CSRF tokens, sign-out, session expiry, revocation, the
//! security headers, the static files and the language switch.
//!
//! - Signing in exchanges a key for a `pdx_session` cookie (HttpOnly, SameSite=Strict,
//!   not Secure over plain HTTP, Max-Age the session's longest life) and leads to the
//!   role's home; a bad key is a 401 page that does not echo it, and wrong keys count
//!   towards the address's lock-out as on the API. The key appears in no page, no
//!   `Location`, no cookie, and the database keeps only the token's hash.
//! - Every form needs the viewer's CSRF token (403 without it, with a wrong one, or
//!   from another site); sign-in rotates it.
//! - A session ends at sign-out (its old cookie no longer works), when idle, when past
//!   its longest life, and when its key is revoked; the next page says so and pages that
//!   need a key answer 401.
//! - Pages carry a Content-Security-Policy without 'unsafe-inline', frame-ancestors
//!   'none', nosniff and no-store; the static files are cacheable and typed.
//! - The language switch changes the page language and only ever returns to a path of
//!   this site.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use pdx::app::App;
use pdx::portal::i18n::{Lang, t as msg};
use reqwest::Method;
use sqlx::Row;

use crate::support::{TestServer, blake3_hex, csrf_of, key_id, limits, portal_sign_in};

/// A page as the tests look at it.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The `Set-Cookie` header that sets cookie `name`, if any.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    fn location(&self) -> Option<&str> {
        self.header("location")
    }
}

/// A browser that keeps cookies by hand (so a test can replay an old one), follows no
/// redirect, and remembers everything the server sent, to look for the key in it.
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
    seen: String,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
            seen: String::new(),
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.jar.get(name).cloned()
    }

    async fn send(&mut self, mut req: reqwest::RequestBuilder) -> Answer {
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", cookies.join("; "));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        for cookie in headers.get_all("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            let (pair, attributes) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_string(), value.to_string());
            }
        }
        let body = resp.text().await.unwrap();
        let _ = writeln!(self.seen, "{headers:?}\n{body}");
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, t: &TestServer, path: &str) -> Answer {
        let req = self.http.get(t.url(path));
        self.send(req).await
    }

    async fn post(&mut self, t: &TestServer, path: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.http.post(t.url(path)).form(form);
        self.send(req).await
    }

    /// Posts the language switch: `lang`, the page to return to, the CSRF token.
    async fn switch_lang(&mut self, t: &TestServer, lang: &str, to: &str, csrf: &str) -> Answer {
        let form = [("lang", lang), ("return", to), ("csrf", csrf)];
        self.post(t, "/lang", &form).await
    }

    /// Signs in with `key` through the form; returns the answer to the POST.
    async fn sign_in(&mut self, t: &TestServer, key: &str) -> Answer {
        let form = self.get(t, "/signin").await;
        assert_eq!(form.status, 200, "{}: {}", t.backend, form.body);
        let csrf = csrf_of(&form.body);
        self.post(t, "/signin", &[("api_key", key), ("csrf", csrf.as_str())])
            .await
    }
}

/// The secret part of an API key (`pdx_<key id>_<secret>`).
fn secret_of(key: &str) -> &str {
    key.strip_prefix("pdx_").unwrap().split_once('_').unwrap().1
}

/// Sessions stored for a session token (0 or 1).
async fn sessions_of(t: &TestServer, token: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM portal_sessions WHERE token_hash = $1")
        .bind(blake3_hex(token))
        .fetch_one(t.app.db.pool())
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap()
}

/// Moves every stored session's times back by `ms`, as if that much time had passed.
async fn age_sessions(t: &TestServer, column: &str, ms: i64) {
    let sql = match column {
        "last_seen_ms" => "UPDATE portal_sessions SET last_seen_ms = last_seen_ms - $1",
        "expires_ms" => "UPDATE portal_sessions SET expires_ms = expires_ms - $1",
        other => panic!("no column {other}"),
    };
    sqlx::query(sql)
        .bind(ms)
        .execute(t.app.db.pool())
        .await
        .unwrap();
}

/// A SQLite server and, when configured, a PostgreSQL one, each set up by `configure`.
async fn servers_with(configure: impl Fn(&mut App) + Clone) -> Vec<TestServer> {
    let mut servers = vec![
        TestServer::start_with(false, configure.clone())
            .await
            .unwrap(),
    ];
    servers.extend(TestServer::start_with(true, configure).await);
    servers
}

#[tokio::test]
async fn signing_in_exchanges_the_key_for_a_strict_cookie_and_never_shows_the_key() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, key) = t.key_for("portal-signin-dev", "developer").await;
        let mut browser = Browser::new();

        // The form, with a pre-session CSRF token that is also an HttpOnly cookie.
        let form = browser.get(&t, "/signin").await;
        assert_eq!(form.status, 200, "{b}: {}", form.body);
        assert!(
            form.body.contains("type=\"password\""),
            "{b}: {}",
            form.body
        );
        assert!(form.body.contains("autocomplete=\"off\""), "{b}");
        let pre = form.set_cookie("pdx_csrf").expect("a pre-session token");
        assert!(
            pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
            "{b}: {pre}"
        );
        let pre_token = browser.cookie("pdx_csrf").unwrap();
        assert_eq!(csrf_of(&form.body), pre_token, "{b}");

        // A wrong key: the form again, 401, a generic message, the key not echoed.
        let wrong = "pdx_0123456789abcdef_NotTheSecretAtAll42";
        let refused = browser
            .post(
                &t,
                "/signin",
                &[("api_key", wrong), ("csrf", pre_token.as_str())],
            )
            .await;
        assert_eq!(refused.status, 401, "{b}: {}", refused.body);
        assert!(
            refused
                .header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{b}"
        );
        assert!(
            !refused.body.contains("NotTheSecretAtAll42"),
            "{b}: key echoed"
        );
        assert!(
            refused.body.contains(msg(Lang::Zh, "core.signin.failed")),
            "{b}"
        );
        assert!(refused.set_cookie("pdx_session").is_none(), "{b}");

        // The right key: 303 to the developer's home, a strict HttpOnly session cookie,
        // not Secure over plain HTTP, lasting no longer than a session may.
        let ok = browser
            .post(
                &t,
                "/signin",
                &[("api_key", key.as_str()), ("csrf", pre_token.as_str())],
            )
            .await;
        assert_eq!(ok.status, 303, "{b}: {}", ok.body);
        assert_eq!(ok.location(), Some("/developer"), "{b}");
        let session = ok.set_cookie("pdx_session").expect("a session cookie");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(
                session.contains(attribute),
                "{b}: {attribute} missing in {session}"
            );
        }
        assert!(
            !session.contains("Secure"),
            "{b}: Secure over plain HTTP: {session}"
        );
        // Sign-in rotates the CSRF token.
        let rotated = browser.cookie("pdx_csrf").unwrap();
        assert_ne!(rotated, pre_token, "{b}");

        // The database keeps the token's hash, never the token.
        let token = browser.cookie("pdx_session").unwrap();
        assert_eq!(sessions_of(&t, &token).await, 1, "{b}");
        let stored: Vec<String> = sqlx::query("SELECT token_hash, csrf FROM portal_sessions")
            .fetch_all(t.app.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String, _>("token_hash").unwrap())
            .collect();
        assert!(!stored.contains(&token), "{b}");

        // Signed in: the account page names the role and the public key id.
        let account = browser.get(&t, "/account").await;
        assert_eq!(account.status, 200, "{b}: {}", account.body);
        assert!(account.body.contains(&key_id(&t, &key).await), "{b}");
        assert!(
            account.body.contains(msg(Lang::Zh, "core.role.developer")),
            "{b}"
        );
        assert!(account.body.contains("action=\"/signout\""), "{b}");
        // The session's forms carry the session's token, not the pre-session one.
        assert_ne!(csrf_of(&account.body), pre_token, "{b}");
        let again = browser.get(&t, "/signin").await;
        let already = msg(Lang::Zh, "core.signin.already")
            .replace("{role}", msg(Lang::Zh, "core.role.developer"));
        assert!(again.body.contains(&already), "{b}: {}", again.body);

        // Nothing the server sent held the key or its secret: no page, no Location,
        // no cookie.
        assert!(
            !browser.seen.contains(secret_of(&key)),
            "{b}: the key was sent back"
        );
        assert!(!browser.seen.contains(&key), "{b}");

        // The cookie-keeping client of the other tests signs in the same way.
        let client = portal_sign_in(&t, &key).await;
        let page = client.get(t.url("/account")).send().await.unwrap();
        assert_eq!(page.status(), 200, "{b}");
        t.stop().await;
    }
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, key) = t.key_for("portal-csrf-dev", "developer").await;
        let mut browser = Browser::new();
        let form = browser.get(&t, "/signin").await;
        let token = csrf_of(&form.body);

        // Without a token, with a wrong one, and from another site: 403.
        let none = browser
            .post(&t, "/lang", &[("lang", "en"), ("return", "/")])
            .await;
        assert_eq!(none.status, 403, "{b}: {}", none.body);
        assert!(none.body.contains(msg(Lang::Zh, "core.error.csrf")), "{b}");
        let wrong = browser.switch_lang(&t, "en", "/", "x").await;
        assert_eq!(wrong.status, 403, "{b}");
        assert!(wrong.set_cookie("pdx_lang").is_none(), "{b}");
        let req = browser
            .http
            .post(t.url("/lang"))
            .header("sec-fetch-site", "cross-site")
            .form(&[("lang", "en"), ("return", "/"), ("csrf", token.as_str())]);
        let cross = browser.send(req).await;
        assert_eq!(cross.status, 403, "{b}: {}", cross.body);

        // A sign-in without the token does not sign in, even with a good key.
        let blind = browser
            .post(&t, "/signin", &[("api_key", key.as_str())])
            .await;
        assert_eq!(blind.status, 403, "{b}");
        assert!(blind.set_cookie("pdx_session").is_none(), "{b}");
        let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM portal_sessions")
            .fetch_one(t.app.db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(stored, 0, "{b}");

        // A browser that never got the cookie cannot use a token it read elsewhere.
        let mut stranger = Browser::new();
        let forged = stranger
            .post(
                &t,
                "/signin",
                &[("api_key", key.as_str()), ("csrf", token.as_str())],
            )
            .await;
        assert_eq!(forged.status, 403, "{b}");

        // The right token works; once signed in, the pre-session token is spent.
        let ok = browser.switch_lang(&t, "en", "/signin", &token).await;
        assert_eq!(ok.status, 303, "{b}: {}", ok.body);
        assert_eq!(browser.sign_in(&t, &key).await.status, 303, "{b}");
        let stale = browser.switch_lang(&t, "zh", "/", &token).await;
        assert_eq!(stale.status, 403, "{b}");
        // Sign-out with a wrong token leaves the session as it was.
        let kept = browser
            .post(&t, "/signout", &[("csrf", token.as_str())])
            .await;
        assert_eq!(kept.status, 403, "{b}");
        assert_eq!(browser.get(&t, "/account").await.status, 200, "{b}");
        t.stop().await;
    }
}

#[tokio::test]
async fn signing_out_ends_the_session_and_its_old_cookie_no_longer_works() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, key) = t.key_for("portal-signout-prov", "provider").await;
        let mut browser = Browser::new();
        let signed_in = browser.sign_in(&t, &key).await;
        assert_eq!(signed_in.location(), Some("/provider"), "{b}");
        let token = browser.cookie("pdx_session").unwrap();
        let account = browser.get(&t, "/account").await;
        assert_eq!(account.status, 200, "{b}");

        let out = browser
            .post(&t, "/signout", &[("csrf", csrf_of(&account.body).as_str())])
            .await;
        assert_eq!(out.status, 303, "{b}: {}", out.body);
        assert_eq!(out.location(), Some("/"), "{b}");
        let cleared = out.set_cookie("pdx_session").unwrap();
        assert!(cleared.contains("Max-Age=0"), "{b}: {cleared}");
        assert_eq!(sessions_of(&t, &token).await, 0, "{b}");
        assert!(browser.cookie("pdx_session").is_none(), "{b}");
        let anonymous = browser.get(&t, "/account").await;
        assert_eq!(anonymous.status, 401, "{b}");
        assert!(anonymous.body.contains("href=\"/signin\""), "{b}");

        // A copy of the old cookie is worth nothing now.
        let mut thief = Browser::new();
        thief.jar.insert("pdx_session".into(), token.clone());
        let replay = thief.get(&t, "/account").await;
        assert_eq!(replay.status, 401, "{b}: {}", replay.body);
        assert!(
            replay.body.contains(msg(Lang::Zh, "core.session.expired")),
            "{b}"
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn idle_and_old_sessions_expire_and_say_so() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, key) = t.key_for("portal-idle-rev", "reviewer").await;

        // Idle for longer than the default half hour.
        let mut browser = Browser::new();
        assert_eq!(
            browser.sign_in(&t, &key).await.location(),
            Some("/review"),
            "{b}"
        );
        let token = browser.cookie("pdx_session").unwrap();
        assert_eq!(browser.get(&t, "/account").await.status, 200, "{b}");
        age_sessions(&t, "last_seen_ms", 31 * 60 * 1000).await;
        let expired = browser.get(&t, "/account").await;
        assert_eq!(expired.status, 401, "{b}: {}", expired.body);
        assert!(
            expired.body.contains(msg(Lang::Zh, "core.session.expired")),
            "{b}"
        );
        assert!(
            expired
                .set_cookie("pdx_session")
                .unwrap()
                .contains("Max-Age=0"),
            "{b}"
        );
        assert_eq!(sessions_of(&t, &token).await, 0, "{b}");
        // The cookie is gone: the public now, without the notice.
        let after = browser.get(&t, "/signin").await;
        assert_eq!(after.status, 200, "{b}");
        assert!(
            !after.body.contains(msg(Lang::Zh, "core.session.expired")),
            "{b}"
        );

        // Past its longest life, however active.
        browser.sign_in(&t, &key).await;
        assert_eq!(browser.get(&t, "/account").await.status, 200, "{b}");
        age_sessions(&t, "expires_ms", 12 * 60 * 60 * 1000 + 1).await;
        let old = browser.get(&t, "/signin").await;
        assert_eq!(old.status, 200, "{b}");
        assert!(
            old.body.contains(msg(Lang::Zh, "core.session.expired")),
            "{b}"
        );
        assert_eq!(browser.get(&t, "/account").await.status, 401, "{b}");
        t.stop().await;
    }

    // The limits come from the configuration.
    for t in servers_with(|app: &mut App| {
        let config = std::sync::Arc::make_mut(&mut app.config);
        config.portal_session_idle = Duration::from_secs(1);
        config.portal_session_max = Duration::from_secs(600);
    })
    .await
    {
        let b = t.backend;
        let (_, key) = t.key_for("portal-idle-config", "buyer").await;
        let mut browser = Browser::new();
        let signed_in = browser.sign_in(&t, &key).await;
        let cookie = signed_in.set_cookie("pdx_session").unwrap();
        assert!(cookie.contains("Max-Age=600"), "{b}: {cookie}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let expired = browser.get(&t, "/account").await;
        assert_eq!(expired.status, 401, "{b}: {}", expired.body);
        t.stop().await;
    }
}

#[tokio::test]
async fn a_revoked_keys_session_stops_at_its_next_request() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, key) = t.key_for("portal-revoked-sup", "supervisor").await;
        let id = key_id(&t, &key).await;
        let mut browser = Browser::new();
        assert_eq!(
            browser.sign_in(&t, &key).await.location(),
            Some("/supervisor"),
            "{b}"
        );
        let token = browser.cookie("pdx_session").unwrap();
        assert_eq!(browser.get(&t, "/account").await.status, 200, "{b}");

        let (s, p) = t
            .call(
                Some(&t.admin),
                Method::DELETE,
                &format!("/v1/keys/{id}"),
                None,
            )
            .await;
        assert_eq!(s, 204, "{b}: {p}");
        let refused = browser.get(&t, "/account").await;
        assert_eq!(refused.status, 401, "{b}: {}", refused.body);
        assert!(
            refused.body.contains(msg(Lang::Zh, "core.session.expired")),
            "{b}"
        );
        assert_eq!(sessions_of(&t, &token).await, 0, "{b}");
        // And it cannot sign in again.
        let again = browser.sign_in(&t, &key).await;
        assert_eq!(again.status, 401, "{b}");
        t.stop().await;
    }
}

#[tokio::test]
async fn failed_sign_ins_count_towards_the_addresss_lock_out() {
    for t in servers_with(|app: &mut App| {
        let l = limits(app);
        l.auth_failure_limit = 2;
        l.auth_failure_window = Duration::from_secs(60);
        l.auth_lockout = Duration::from_secs(60);
    })
    .await
    {
        let b = t.backend;
        let (_, key) = t.key_for("portal-lockout-dev", "developer").await;
        let mut browser = Browser::new();
        for wrong in ["pdx_0123456789abcdef_nope", "garbage"] {
            assert_eq!(browser.sign_in(&t, wrong).await.status, 401, "{b}: {wrong}");
        }
        // Locked out: the right key gets the same refusal as a guess would, and no
        // session.
        let locked = browser.sign_in(&t, &key).await;
        assert_eq!(locked.status, 429, "{b}: {}", locked.body);
        assert!(
            locked.body.contains(msg(Lang::Zh, "core.signin.locked")),
            "{b}"
        );
        assert!(locked.set_cookie("pdx_session").is_none(), "{b}");
        t.stop().await;
    }
}

#[tokio::test]
async fn portal_responses_carry_the_security_headers_and_static_files_are_typed() {
    for t in TestServer::both().await {
        let b = t.backend;
        let mut browser = Browser::new();
        let page = browser.get(&t, "/signin").await;
        assert_eq!(page.status, 200, "{b}");
        assert!(
            page.header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{b}"
        );
        let csp = page.header("content-security-policy").expect("a CSP");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{b}: {csp}"
        );
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{b}: {directive} missing in {csp}");
        }
        assert_eq!(
            page.header("x-content-type-options"),
            Some("nosniff"),
            "{b}"
        );
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{b}");
        assert_eq!(page.header("referrer-policy"), Some("same-origin"), "{b}");
        assert_eq!(page.header("cache-control"), Some("no-store"), "{b}");
        // No inline script or style anywhere in the page.
        assert!(
            !page.body.contains("<style") && !page.body.contains("style="),
            "{b}"
        );
        for script in page.body.split("<script").skip(1) {
            assert!(
                script.trim_start().starts_with("src=\"/static/"),
                "{b}: {script}"
            );
        }
        assert!(page.body.starts_with("<!DOCTYPE html>"), "{b}");

        // The static files the page links to, typed and cacheable, without cookies.
        for (path, content_type) in [
            ("/static/portal.css", "text/css"),
            ("/static/portal.js", "text/javascript"),
            ("/static/upload.js", "text/javascript"),
            ("/static/runs.js", "text/javascript"),
        ] {
            assert!(
                page.body.contains(&format!("{path}?v=")),
                "{b}: {path} not linked"
            );
            let file = browser.get(&t, path).await;
            assert_eq!(file.status, 200, "{b}: {path}");
            assert!(
                file.header("content-type")
                    .unwrap()
                    .starts_with(content_type),
                "{b}"
            );
            assert_eq!(
                file.header("cache-control"),
                Some("public, max-age=3600"),
                "{b}"
            );
            assert_eq!(
                file.header("x-content-type-options"),
                Some("nosniff"),
                "{b}"
            );
            assert!(file.set_cookie("pdx_csrf").is_none(), "{b}: {path}");
        }
        assert_eq!(browser.get(&t, "/static/nope.js").await.status, 404, "{b}");

        // A page that needs a key, without one: 401, as the API answers, with a way in.
        let mut visitor = Browser::new();
        let account = visitor.get(&t, "/account").await;
        assert_eq!(account.status, 401, "{b}");
        assert!(
            account
                .body
                .contains(msg(Lang::Zh, "core.error.signin_needed")),
            "{b}"
        );
        assert!(account.header("content-security-policy").is_some(), "{b}");

        // Unknown pages are HTML 404s; unknown API routes keep their problem+json.
        let missing = visitor.get(&t, "/no-such-page").await;
        assert_eq!(missing.status, 404, "{b}");
        assert!(
            missing
                .header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{b}"
        );
        assert_eq!(missing.header("x-frame-options"), Some("DENY"), "{b}");
        let api = visitor.get(&t, "/v1/no-such-route").await;
        assert_eq!(api.status, 404, "{b}");
        assert_eq!(
            api.header("content-type"),
            Some("application/problem+json"),
            "{b}"
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn the_language_switch_changes_the_page_and_never_leaves_the_site() {
    for t in TestServer::both().await {
        let b = t.backend;
        let mut browser = Browser::new();
        let zh = browser.get(&t, "/signin").await;
        assert!(zh.body.contains("<html lang=\"zh-CN\">"), "{b}");
        assert!(zh.body.contains(msg(Lang::Zh, "core.signin.title")), "{b}");
        let token = csrf_of(&zh.body);

        // The browser's preference, before any choice.
        let req = browser
            .http
            .get(t.url("/signin"))
            .header("accept-language", "en-US,en;q=0.9");
        let en = Browser::new().send(req).await;
        assert!(en.body.contains("<html lang=\"en\">"), "{b}");
        assert!(en.body.contains("Sign in with an API key"), "{b}");

        // The switch: back to the page, in English from then on.
        let switched = browser.switch_lang(&t, "en", "/signin", &token).await;
        assert_eq!(switched.status, 303, "{b}: {}", switched.body);
        assert_eq!(switched.location(), Some("/signin"), "{b}");
        let cookie = switched.set_cookie("pdx_lang").unwrap();
        assert!(
            cookie.starts_with("pdx_lang=en;") && cookie.contains("SameSite=Strict"),
            "{b}"
        );
        let english = browser.get(&t, "/signin").await;
        assert!(english.body.contains("<html lang=\"en\">"), "{b}");
        assert!(english.body.contains("Sign in with an API key"), "{b}");
        assert!(
            !english.body.contains(msg(Lang::Zh, "core.signin.title")),
            "{b}"
        );

        // Never a redirect off the site, whatever the return path says.
        for elsewhere in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "",
        ] {
            let answer = browser.switch_lang(&t, "zh", elsewhere, &token).await;
            assert_eq!(answer.status, 303, "{b}: {elsewhere:?}");
            assert_eq!(answer.location(), Some("/"), "{b}: {elsewhere:?}");
        }
        let unknown = browser.switch_lang(&t, "fr", "/", &token).await;
        assert_eq!(unknown.status, 400, "{b}");
        t.stop().await;
    }
}
