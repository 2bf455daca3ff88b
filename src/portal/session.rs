//! Who is looking at a page: sign-in with an API key, the session cookie, CSRF tokens,
//! the language, and sign-out. This module is the one owner of the `portal_sessions`
//! table (migration 0003).
//!
//! **Sign-in.** `POST /signin` takes an API key from a password field and checks it by
//! calling `GET /v1/whoami` in-process with it as a bearer key, so the check is the
//! API's own: a wrong key counts towards the lock-out of the client's address
//! (`crate::http::limits`), and a locked-out address is refused (429) whatever the key.
//! A good key opens a session: a random 32-byte token in the `pdx_session` cookie
//! (`HttpOnly; SameSite=Strict; Path=/`, `Secure` when the server runs TLS, `Max-Age`
//! the session's longest life). Only the token's BLAKE3 hash is stored, with the key's
//! public id; the key itself is dropped once checked, so it never reaches a page, a URL,
//! a cookie, a log or the database.
//!
//! **Sessions end** after `portal_session_idle` without a request, `portal_session_max`
//! after sign-in, at sign-out, or when the key is revoked (the key's row is read on
//! every request, here and again by the API). An ended session's row is deleted and its
//! cookie cleared; the next page says so ([`Viewer::session_expired`]) and pages that
//! need a key answer 401, as the API does. `last_seen` is written at most once a minute
//! (or half the idle time, if shorter), so a page view costs one indexed read.
//!
//! **CSRF.** Every form carries a hidden `csrf` field, checked in constant time by
//! [`check_csrf`] before the handler acts. A signed-in viewer's token is the session's
//! (random, made at sign-in); before sign-in it is the random `pdx_csrf` cookie that
//! the portal's middleware sets on the first page (`HttpOnly; SameSite=Strict`), which
//! a page on another site can neither read nor send. Sign-in and sign-out rotate it.
//!
//! **Language.** The `pdx_lang` cookie (`zh` or `en`, set by `POST /lang`), else an
//! `Accept-Language` that starts with `en`, else Chinese.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::{Markup, html};
use pdx_ids::{KeyId, OrgId};
use pdx_ledger::db::now_ms;
use rand::RngCore;
use serde::Deserialize;
use sqlx::{AnyPool, Row};

use super::Portal;
use super::api::{KeyCheck, PageError};
use super::i18n::{Lang, t, tf};
use super::layout;
use crate::auth::Role;

/// The cookie holding the session token.
pub const SESSION_COOKIE: &str = "pdx_session";
/// The cookie holding the CSRF token of a viewer who has not signed in.
pub const CSRF_COOKIE: &str = "pdx_csrf";
/// The cookie holding the chosen language (`zh` or `en`).
pub const LANG_COOKIE: &str = "pdx_lang";

/// `last_seen_ms` is written at most this often (unless the idle limit is shorter).
const TOUCH_EVERY_MS: i64 = 60_000;
/// How long the language cookie lasts, seconds (a year).
const LANG_COOKIE_SECS: u64 = 365 * 24 * 60 * 60;
/// The longest API key the sign-in form passes on (issued keys are about 65 bytes).
const MAX_KEY_LEN: usize = 512;

/// Who is looking at a page (extractor: `viewer: Viewer` in every page handler).
#[derive(Clone)]
pub struct Viewer {
    /// The signed-in key, or None for the public.
    pub signed_in: Option<SignedIn>,
    /// The language pages are shown in.
    pub lang: Lang,
    /// The CSRF token every form of this viewer carries (hidden field `csrf`).
    pub csrf: String,
    /// The client's address, passed to the in-process API calls (rate limits per address).
    pub client: Option<SocketAddr>,
    /// The browser sent a session cookie whose session has ended (idle, past its
    /// longest life, signed out elsewhere, or its key revoked): the viewer is the public
    /// now, and the page says so.
    pub session_expired: bool,
    /// The path and query of the page being served (the language switch returns to it;
    /// the navigation marks it as current).
    pub path: String,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The CSRF token stays out of debug output (and so out of any log).
        f.debug_struct("Viewer")
            .field("signed_in", &self.signed_in)
            .field("lang", &self.lang)
            .field("client", &self.client)
            .field("session_expired", &self.session_expired)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The key a viewer signed in with (its public id; never the secret).
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The API key's public id.
    pub key_id: KeyId,
    /// The key's organisation.
    pub org_id: OrgId,
    /// The key's role.
    pub role: Role,
}

impl Viewer {
    /// The signed-in role, if any.
    pub fn role(&self) -> Option<Role> {
        self.signed_in.as_ref().map(|s| s.role)
    }

    /// The public in `lang`, with no CSRF token (a page rendered for it shows no
    /// forms): for error pages rendered outside a request's extractors.
    pub fn anonymous(lang: Lang) -> Viewer {
        Viewer {
            signed_in: None,
            lang,
            csrf: String::new(),
            client: None,
            session_expired: false,
            path: "/".to_string(),
        }
    }
}

/// The CSRF token the middleware made for a request that came without a `pdx_csrf`
/// cookie (the response sets it), so that the page's forms can carry it at once.
#[derive(Clone)]
pub(crate) struct PreSessionCsrf(pub(crate) String);

/// What the viewer extractor leaves for the portal's middleware, which puts it in every
/// page request: `Set-Cookie` values to add to the response (to clear the cookie of a
/// session that ended), and the viewer (so that an error page is drawn with the
/// viewer's navigation).
#[derive(Clone, Default)]
pub(crate) struct PageContext(Arc<Mutex<PageContextInner>>);

#[derive(Default)]
struct PageContextInner {
    cookies: Vec<HeaderValue>,
    viewer: Option<Viewer>,
}

impl PageContext {
    fn lock(&self) -> std::sync::MutexGuard<'_, PageContextInner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push_cookie(&self, cookie: HeaderValue) {
        self.lock().cookies.push(cookie);
    }

    fn set_viewer(&self, viewer: &Viewer) {
        self.lock().viewer = Some(viewer.clone());
    }

    /// The cookies asked for, emptied.
    pub(crate) fn take_cookies(&self) -> Vec<HeaderValue> {
        std::mem::take(&mut self.lock().cookies)
    }

    /// The viewer of the request, once extracted.
    pub(crate) fn viewer(&self) -> Option<Viewer> {
        self.lock().viewer.clone()
    }
}

impl FromRequestParts<Portal> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Self, PageError> {
        if let Some(viewer) = parts.extensions.get::<Viewer>() {
            return Ok(viewer.clone());
        }
        let lang = lang_of(&parts.headers);
        let pre_session = cookie(&parts.headers, CSRF_COOKIE)
            .filter(|v| is_token(v))
            .map(str::to_string)
            .or_else(|| {
                parts
                    .extensions
                    .get::<PreSessionCsrf>()
                    .map(|c| c.0.clone())
            })
            .unwrap_or_default();
        let mut viewer = Viewer {
            signed_in: None,
            lang,
            csrf: pre_session,
            client: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            session_expired: false,
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        };
        let token = cookie(&parts.headers, SESSION_COOKIE).map(str::to_string);
        if let Some(token) = token {
            match resume(portal, &token).await {
                Ok(Some(session)) => {
                    viewer.signed_in = Some(session.signed_in);
                    viewer.csrf = session.csrf;
                }
                Ok(None) => {
                    viewer.session_expired = true;
                    if let Some(context) = parts.extensions.get::<PageContext>()
                        && let Some(clear) = session_cookie("", Some(0), portal.secure_cookies)
                    {
                        context.push_cookie(clear);
                    }
                }
                Err(e) => return Err(storage_failed(lang, &e)),
            }
        }
        if let Some(context) = parts.extensions.get::<PageContext>() {
            context.set_viewer(&viewer);
        }
        parts.extensions.insert(viewer.clone());
        Ok(viewer)
    }
}

/// Checks a submitted form's `csrf` field (constant-time); a mismatch is a 403 page.
pub fn check_csrf(viewer: &Viewer, submitted: &str) -> Result<(), PageError> {
    // BLAKE3 hashes compare in constant time; an empty token never matches.
    let matches = !viewer.csrf.is_empty()
        && blake3::hash(viewer.csrf.as_bytes()) == blake3::hash(submitted.as_bytes());
    if matches {
        Ok(())
    } else {
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            t(viewer.lang, "core.error.csrf"),
            viewer.lang,
        ))
    }
}

/// The home page of a role, where sign-in leads.
pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::Provider => "/provider",
        Role::Developer => "/developer",
        Role::Reviewer => "/review",
        Role::Exchange => "/exchange",
        Role::Buyer => "/buyer",
        Role::Supervisor => "/supervisor",
        Role::Authority => "/authority",
        Role::Subject | Role::Finance | Role::Admin => "/",
    }
}

/// `path` if it is a path of this site (so a redirect to it stays here), else "/".
/// Refused: anything not starting with one `/` (`//host`, `/\host` and full URLs go
/// elsewhere), backslashes, spaces and control or non-ASCII characters.
pub fn safe_return(path: &str) -> &str {
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= 2048
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local { path } else { "/" }
}

/// The language of a request: the `pdx_lang` cookie, else English for an
/// `Accept-Language` that starts with `en`, else Chinese.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    if let Some(lang) = cookie(headers, LANG_COOKIE).and_then(Lang::from_short) {
        return lang;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start();
    if accept
        .get(..2)
        .is_some_and(|p| p.eq_ignore_ascii_case("en"))
    {
        Lang::En
    } else {
        Lang::Zh
    }
}

/// The value of cookie `name` in the request's `Cookie` headers, if sent.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// A fresh random token: 32 bytes, base64url without padding (43 characters).
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a cookie value has the shape of [`random_token`]'s tokens.
pub(crate) fn is_token(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Strict; Path=/`, `Secure` under TLS.
fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> Option<HeaderValue> {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(secs) = max_age {
        let _ = write!(cookie, "; Max-Age={secs}");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).ok()
}

/// The session cookie (an empty value with `Max-Age=0` clears it).
fn session_cookie(token: &str, max_age: Option<u64>, secure: bool) -> Option<HeaderValue> {
    set_cookie(SESSION_COOKIE, token, max_age, secure)
}

/// The pre-session CSRF cookie (for the browser's session: no `Max-Age`).
pub(crate) fn csrf_cookie(token: &str, secure: bool) -> Option<HeaderValue> {
    set_cookie(CSRF_COOKIE, token, None, secure)
}

/// Adds `Set-Cookie` values to a response.
fn add_cookies(resp: &mut Response, cookies: impl IntoIterator<Item = Option<HeaderValue>>) {
    for cookie in cookies.into_iter().flatten() {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
}

/// The stored form of a session token: its BLAKE3 hash in hex.
fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Milliseconds of a duration, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A live session: who and the CSRF token of its forms.
struct LiveSession {
    signed_in: SignedIn,
    csrf: String,
}

/// The live session a token names, or None. A session found idle, past its end, or
/// whose key is revoked is ended here (its row deleted).
async fn resume(portal: &Portal, token: &str) -> Result<Option<LiveSession>, sqlx::Error> {
    if !is_token(token) {
        return Ok(None);
    }
    let pool = portal.app.db.pool();
    let hash = token_hash(token);
    let row = sqlx::query(
        "SELECT s.key_id AS key_id, s.csrf AS csrf, s.last_seen_ms AS last_seen_ms, \
         s.expires_ms AS expires_ms, k.org_id AS org_id, k.role AS role, \
         k.revoked_ms AS revoked_ms \
         FROM portal_sessions s JOIN api_keys k ON k.key_id = s.key_id \
         WHERE s.token_hash = $1",
    )
    .bind(hash.clone())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let now = now_ms();
    let idle = millis(portal.app.config.portal_session_idle);
    let last_seen: i64 = row.try_get("last_seen_ms")?;
    let expires: i64 = row.try_get("expires_ms")?;
    let revoked: Option<i64> = row.try_get("revoked_ms")?;
    let ended = revoked.is_some() || now >= expires || now.saturating_sub(last_seen) >= idle;
    let role = row.try_get::<String, _>("role")?.parse::<Role>();
    let role = match role {
        Ok(role) if !ended => role,
        _ => {
            delete(pool, &hash).await?;
            return Ok(None);
        }
    };
    if now.saturating_sub(last_seen) >= TOUCH_EVERY_MS.min(idle / 2) {
        sqlx::query("UPDATE portal_sessions SET last_seen_ms = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(hash)
            .execute(pool)
            .await?;
    }
    Ok(Some(LiveSession {
        signed_in: SignedIn {
            key_id: row.try_get("key_id")?,
            org_id: row.try_get("org_id")?,
            role,
        },
        csrf: row.try_get("csrf")?,
    }))
}

/// Opens a session for a key; returns its token (for the cookie only). Sessions that
/// ended unseen (a closed browser) are swept first, so the table stays small.
async fn open(portal: &Portal, key_id: &KeyId) -> Result<String, sqlx::Error> {
    let pool = portal.app.db.pool();
    let now = now_ms();
    let idle = millis(portal.app.config.portal_session_idle);
    let max = millis(portal.app.config.portal_session_max);
    sqlx::query("DELETE FROM portal_sessions WHERE expires_ms <= $1 OR last_seen_ms <= $2")
        .bind(now)
        .bind(now.saturating_sub(idle))
        .execute(pool)
        .await?;
    let token = random_token();
    sqlx::query(
        "INSERT INTO portal_sessions \
         (token_hash, key_id, csrf, created_ms, last_seen_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash(&token))
    .bind(key_id.clone())
    .bind(random_token())
    .bind(now)
    .bind(now)
    .bind(now.saturating_add(max))
    .execute(pool)
    .await?;
    Ok(token)
}

/// Deletes a session by its token's hash.
async fn delete(pool: &AnyPool, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM portal_sessions WHERE token_hash = $1")
        .bind(hash.to_string())
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends the session a request's cookie names, if any.
async fn end_session_of(portal: &Portal, headers: &HeaderMap) -> Result<(), sqlx::Error> {
    match cookie(headers, SESSION_COOKIE) {
        Some(token) if is_token(token) => delete(portal.app.db.pool(), &token_hash(token)).await,
        _ => Ok(()),
    }
}

/// A 500 page for a failure of the session store (the cause is logged, not shown).
fn storage_failed(lang: Lang, cause: &dyn std::fmt::Display) -> PageError {
    tracing::error!(error = %cause, "portal session storage failed");
    PageError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        t(lang, "core.error.storage"),
        lang,
    )
}

/// Routes owned by session.rs: GET/POST /signin, POST /signout, POST /lang, and the
/// signed-in viewer's own page, GET /account.
pub fn routes() -> Router<Portal> {
    Router::new()
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .route("/lang", post(switch_lang))
        .route("/account", get(account))
}

/// The sign-in form, with a failure message if the last try failed.
fn signin_form(viewer: &Viewer, failure: Option<&str>) -> Markup {
    let lang = viewer.lang;
    let title = t(lang, "core.signin.title");
    layout::page(
        viewer,
        title,
        html! {
            h1 { (title) }
            @if let Some(role) = viewer.role() {
                p.notice {
                    (tf(lang, "core.signin.already", &[("role", layout::role_name(lang, role))]))
                }
            }
            @if let Some(message) = failure {
                p.error role="alert" { (message) }
            }
            form.form method="post" action="/signin" autocomplete="off" {
                (layout::csrf_field(viewer))
                label for="api_key" { (t(lang, "core.signin.key_label")) }
                input #api_key type="password" name="api_key" autocomplete="off"
                    required spellcheck="false" autocapitalize="off"
                    aria-describedby="api_key_hint";
                p #api_key_hint .muted { (t(lang, "core.signin.key_hint")) }
                button type="submit" { (t(lang, "core.signin.submit")) }
            }
        },
    )
}

async fn signin_page(viewer: Viewer) -> Markup {
    signin_form(&viewer, None)
}

/// The sign-in form's fields. No `Debug`: the key must never be printed.
#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    csrf: String,
}

async fn signin(
    State(portal): State<Portal>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let lang = viewer.lang;
    let key = form.api_key.trim();
    let check = if key.is_empty() || key.len() > MAX_KEY_LEN {
        KeyCheck::Refused
    } else {
        portal.check_key(&viewer, key).await?
    };
    drop(form);
    let signed_in = match check {
        KeyCheck::Valid(signed_in) => signed_in,
        // The same words whatever was wrong, and never the key.
        KeyCheck::Refused => {
            let page = signin_form(&viewer, Some(t(lang, "core.signin.failed")));
            return Ok((StatusCode::UNAUTHORIZED, page).into_response());
        }
        KeyCheck::LockedOut => {
            let page = signin_form(&viewer, Some(t(lang, "core.signin.locked")));
            return Ok((StatusCode::TOO_MANY_REQUESTS, page).into_response());
        }
    };
    // A browser signing in again leaves its old session behind.
    end_session_of(&portal, &headers)
        .await
        .map_err(|e| storage_failed(lang, &e))?;
    let token = open(&portal, &signed_in.key_id)
        .await
        .map_err(|e| storage_failed(lang, &e))?;
    let secure = portal.secure_cookies;
    let max_age = portal.app.config.portal_session_max.as_secs();
    let mut resp = Redirect::to(home_of(signed_in.role)).into_response();
    add_cookies(
        &mut resp,
        [
            session_cookie(&token, Some(max_age), secure),
            // The pre-session token is spent: a new one for after this session.
            csrf_cookie(&random_token(), secure),
        ],
    );
    Ok(resp)
}

/// A form that carries only its CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn signout(
    State(portal): State<Portal>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    // Only a live session needs the token: signing out the public changes nothing.
    if viewer.signed_in.is_some() {
        check_csrf(&viewer, &form.csrf)?;
    }
    end_session_of(&portal, &headers)
        .await
        .map_err(|e| storage_failed(viewer.lang, &e))?;
    let secure = portal.secure_cookies;
    let mut resp = Redirect::to("/").into_response();
    add_cookies(
        &mut resp,
        [
            session_cookie("", Some(0), secure),
            csrf_cookie(&random_token(), secure),
        ],
    );
    Ok(resp)
}

/// The language switch's fields.
#[derive(Deserialize)]
struct LangForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
    /// The page to go back to (a path of this site; anything else goes to "/").
    #[serde(default, rename = "return")]
    return_to: String,
}

async fn switch_lang(
    State(portal): State<Portal>,
    viewer: Viewer,
    Form(form): Form<LangForm>,
) -> Result<Response, PageError> {
    check_csrf(&viewer, &form.csrf)?;
    let Some(lang) = Lang::from_short(&form.lang) else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            t(viewer.lang, "core.lang.unknown"),
            viewer.lang,
        ));
    };
    let mut resp = Redirect::to(safe_return(&form.return_to)).into_response();
    add_cookies(
        &mut resp,
        [set_cookie(
            LANG_COOKIE,
            lang.short(),
            Some(LANG_COOKIE_SECS),
            portal.secure_cookies,
        )],
    );
    Ok(resp)
}

/// `GET /v1/whoami` as the portal shows it.
#[derive(Deserialize)]
struct WhoAmI {
    key_id: String,
    org_id: String,
    role: Role,
    #[serde(default)]
    suspended: bool,
}

/// The signed-in viewer's own page: role, organisation, key id, and how long a session
/// lasts (401 for the public, as `/v1/whoami` answers).
async fn account(State(portal): State<Portal>, viewer: Viewer) -> Result<Markup, PageError> {
    let me: WhoAmI = portal.get(&viewer, "/v1/whoami").await?;
    let lang = viewer.lang;
    let config = &portal.app.config;
    let idle_minutes = (config.portal_session_idle.as_secs() / 60)
        .max(1)
        .to_string();
    let max_hours = (config.portal_session_max.as_secs() / 3600)
        .max(1)
        .to_string();
    let title = t(lang, "core.account.title");
    Ok(layout::page(
        &viewer,
        title,
        html! {
            h1 { (title) }
            @if me.suspended {
                p.error role="alert" { (t(lang, "core.account.suspended")) }
            }
            dl.facts {
                dt { (t(lang, "core.account.role")) }
                dd { (layout::role_name(lang, me.role)) }
                dt { (t(lang, "core.account.org")) }
                dd.mono { (me.org_id) }
                dt { (t(lang, "core.account.key_id")) }
                dd.mono { (me.key_id) }
            }
            p.muted {
                (tf(
                    lang,
                    "core.account.session_note",
                    &[("idle", idle_minutes.as_str()), ("max", max_hours.as_str())],
                ))
            }
            p { a href=(home_of(me.role)) { (t(lang, "core.account.home")) } }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        let h = headers(&[
            ("cookie", "a=1; pdx_session_x=2"),
            ("cookie", "pdx_session=tok; b=\"3\""),
        ]);
        assert_eq!(cookie(&h, "pdx_session"), Some("tok"));
        assert_eq!(cookie(&h, "b"), Some("3"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn chinese_unless_the_cookie_or_the_browser_says_english() {
        assert_eq!(lang_of(&headers(&[])), Lang::Zh);
        assert_eq!(
            lang_of(&headers(&[("accept-language", "en-GB,en;q=0.9")])),
            Lang::En
        );
        assert_eq!(
            lang_of(&headers(&[("accept-language", "zh-CN,en;q=0.5")])),
            Lang::Zh
        );
        assert_eq!(
            lang_of(&headers(&[
                ("accept-language", "en"),
                ("cookie", "pdx_lang=zh")
            ])),
            Lang::Zh
        );
        assert_eq!(lang_of(&headers(&[("cookie", "pdx_lang=en")])), Lang::En);
    }

    #[test]
    fn only_paths_of_this_site_are_returned_to() {
        assert_eq!(safe_return("/catalog?q=a&page=2"), "/catalog?q=a&page=2");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "",
            "/a b",
            "/\u{7f}",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_return(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_random_and_checked_by_shape() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert!(is_token(&a) && is_token(&b));
        assert!(!is_token("short"));
        assert!(!is_token(&format!("{}!", &a[..42])));
    }

    #[test]
    fn csrf_tokens_must_match_and_an_empty_one_never_does() {
        let mut viewer = Viewer::anonymous(Lang::En);
        assert!(check_csrf(&viewer, "").is_err());
        viewer.csrf = random_token();
        let good = viewer.csrf.clone();
        assert!(check_csrf(&viewer, &good).is_ok());
        let refused = check_csrf(&viewer, "wrong").unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_only_under_tls() {
        let plain = session_cookie("tok", Some(60), false).unwrap();
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("pdx_session=tok;"));
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(plain.contains("Max-Age=60") && !plain.contains("Secure"));
        let tls = csrf_cookie("tok", true).unwrap();
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn every_role_has_a_home() {
        for role in Role::ALL {
            assert!(home_of(role).starts_with('/'));
        }
        assert_eq!(home_of(Role::Reviewer), "/review");
    }
}
