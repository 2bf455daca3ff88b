//! # The web portal: server-rendered pages for every role, on the API's port
//!
//! `pdx serve` answers browsers beside the API: the public reads the open catalog, the
//! market and the ledger's checkpoint; providers, developers, output checkers, the
//! exchange, buyers, supervisors and the data authority sign in with their API key and
//! work in pages. Pages are HTML rendered on the server with maud (which escapes every
//! value it splices), with a little JavaScript from `static/` for progress and
//! confirmations; nothing needs a build step or a third-party script.
//!
//! ## One rule: pages go through the API
//!
//! Every page gets its data and performs its actions by calling the JSON API
//! in-process ([`Portal::get`], [`Portal::send`], [`Portal::raw`] in [`api`]): the
//! request goes to the same `/v1` router the server mounts, through the same
//! `crate::http::authorize` middleware, as the viewer. So a page is refused exactly when
//! its API route would be, with the same status (401, 403, 404, 409 …), and there is
//! one policy table (`crate::http::policies`). Page handlers never read the database or
//! call the sandbox or the market directly; only [`session`] keeps a table of its own.
//!
//! How the viewer's identity crosses: a signed-in viewer's requests carry the session's
//! key id in a request extension (`crate::http::PortalIdentity`) instead of an
//! `Authorization` header, and `authorize` treats them as requests with that key (read
//! afresh, so a revoked key stops working at once; rate-limited per key; role and
//! suspension checked). No client can set an extension, so no client can claim one. An
//! anonymous viewer's requests carry neither, and public routes answer them as they
//! answer the public. Both carry the browser's address, so per-address limits apply.
//!
//! ## Sessions and forms
//!
//! [`session`] exchanges an API key for a session cookie (`HttpOnly; SameSite=Strict`,
//! `Secure` under TLS), checked by the API itself so that wrong keys count towards the
//! lock-out; the key goes nowhere else. Sessions end when idle, after a maximum life, at
//! sign-out, or when their key is revoked. Every form carries a CSRF token checked in
//! constant time ([`session::check_csrf`]); before sign-in the token is the random
//! `pdx_csrf` cookie that the portal's middleware sets on the first page. As defence
//! in depth, the middleware also refuses any non-GET request that the browser marks as
//! cross-site (`Sec-Fetch-Site: cross-site`) before a handler sees it.
//!
//! ## Headers
//!
//! Every portal response carries a Content-Security-Policy without `'unsafe-inline'`
//! (scripts and styles come from `/static/` only; images may be `data:` URLs),
//! `frame-ancestors 'none'` and `X-Frame-Options: DENY` (no framing, so no
//! click-jacking), `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`.
//! Pages are `Cache-Control: no-store` (they show what one viewer may see); the static
//! files are public for an hour, and their URLs carry a hash of their content
//! ([`asset_url`]) so a new version is fetched at once.
//!
//! ## Areas
//!
//! Each area is a module with `routes() -> Router<Portal>`: [`public`] (the open
//! catalog, the market, suspensions, the checkpoint) and [`dcat`] (`/catalog.jsonld`),
//! [`provider`], [`developer`], [`review`], [`market`] (exchange and buyer) and
//! [`supervisor`] (supervisor and data authority); [`svg`] draws their charts. The
//! frame of every page is [`layout`]; every text comes from [`i18n`] (Chinese by
//! default, English on request).

pub mod api;
pub mod dcat;
pub mod developer;
pub mod i18n;
pub mod layout;
pub mod market;
pub mod provider;
pub mod public;
pub mod review;
pub mod session;
pub mod supervisor;
pub mod svg;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use api::{PageError, with_query};
pub use session::{SignedIn, Viewer, check_csrf};

use crate::app::App;
use crate::http::problem::ApiError;
use i18n::t;

/// The portal's state: the app, the in-process API, and the cookie policy.
#[derive(Clone)]
pub struct Portal {
    /// The running instance (configuration; pages do not query it for data).
    pub app: App,
    /// The `/v1` API router with its auth layer and state applied (Router<()>), called
    /// in-process by every page.
    pub api: Router,
    /// Secure cookies (the server runs TLS).
    pub secure_cookies: bool,
}

/// All pages + /static/* + security headers (and the pre-session CSRF cookie).
pub fn routes(portal: Portal) -> Router {
    Router::new()
        .merge(session::routes())
        .merge(public::routes())
        .merge(dcat::routes())
        .merge(provider::routes())
        .merge(developer::routes())
        .merge(review::routes())
        .merge(market::routes())
        .merge(supervisor::routes())
        .route("/static/{file}", get(static_file))
        .layer(middleware::from_fn_with_state(portal.clone(), protect))
        .with_state(portal)
}

/// The Content-Security-Policy of every portal response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The static files: (name, content type, content), compiled in.
static ASSETS: [(&str, &str, &str); 4] = [
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_str!("static/portal.css"),
    ),
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_str!("static/portal.js"),
    ),
    (
        "upload.js",
        "text/javascript; charset=utf-8",
        include_str!("static/upload.js"),
    ),
    (
        "runs.js",
        "text/javascript; charset=utf-8",
        include_str!("static/runs.js"),
    ),
];

/// A hash of every static file, appended to their URLs so that browsers fetch a new
/// version at once despite the hour of caching.
static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = blake3::Hasher::new();
    for (name, _, content) in ASSETS.iter() {
        hasher.update(name.as_bytes());
        hasher.update(content.as_bytes());
    }
    hasher.finalize().to_hex()[..12].to_string()
});

/// The URL of a static file, versioned by content (`/static/portal.css?v=…`).
pub fn asset_url(file: &str) -> String {
    format!("/static/{file}?v={}", ASSET_VERSION.as_str())
}

async fn static_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, content_type, content)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        let lang = session::lang_of(&headers);
        return PageError::new(StatusCode::NOT_FOUND, t(lang, "core.error.not_found"), lang)
            .into_response();
    };
    (
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        *content,
    )
        .into_response()
}

/// The portal's middleware: refuses cross-site form posts, gives a browser without one
/// its pre-session CSRF token (in the request, for the page's forms, and as a cookie),
/// draws error pages with the viewer's navigation, adds the cookies the session
/// extractor asked for, and the security headers.
async fn protect(State(portal): State<Portal>, mut req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let safe_method = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe_method && is_cross_site(req.headers()) {
        let lang = session::lang_of(req.headers());
        let mut resp =
            PageError::new(StatusCode::FORBIDDEN, t(lang, "core.error.csrf"), lang).into_response();
        secure_headers(&mut resp, true);
        return resp;
    }
    let context = session::PageContext::default();
    let mut new_csrf = None;
    if !is_static {
        let has_csrf =
            session::cookie(req.headers(), session::CSRF_COOKIE).is_some_and(session::is_token);
        if !has_csrf {
            let token = session::random_token();
            req.extensions_mut()
                .insert(session::PreSessionCsrf(token.clone()));
            new_csrf = Some(token);
        }
        req.extensions_mut().insert(context.clone());
    }
    let mut resp = next.run(req).await;
    // The access log names the signed-in key of a page, as it does for the API.
    if let Some(signed_in) = context.viewer().and_then(|viewer| viewer.signed_in) {
        resp.extensions_mut()
            .insert(crate::http::LoggedKey(signed_in.key_id));
    }
    // An error page drawn without the viewer (`PageError` knows only its language) is
    // drawn again with the viewer's navigation, language switch and sign-out form.
    if let Some(error) = resp.extensions_mut().remove::<api::RenderedError>()
        && let Some(viewer) = context.viewer()
    {
        let page = layout::error_page_for(&viewer, resp.status(), &error.detail);
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        *resp.body_mut() = axum::body::Body::from(page.into_string());
    }
    // A handler that set its own caching (a public, cacheable document) gets no cookie
    // from here that a shared cache could hand to someone else.
    let handler_caching = resp.headers().contains_key(header::CACHE_CONTROL);
    let asked = context.take_cookies();
    let private = !asked.is_empty();
    for cookie in asked {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    if let Some(token) = new_csrf
        && !handler_caching
        && !sets_cookie(&resp, session::CSRF_COOKIE)
        && let Some(cookie) = session::csrf_cookie(&token, portal.secure_cookies)
    {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    secure_headers(&mut resp, !is_static && (!handler_caching || private));
    resp
}

/// Whether the browser says a request comes from another site.
fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

/// Whether a response sets cookie `name`.
fn sets_cookie(resp: &Response, name: &str) -> bool {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .into_iter()
        .any(|v| {
            v.as_bytes()
                .strip_prefix(name.as_bytes())
                .is_some_and(|rest| rest.starts_with(b"="))
        })
}

/// The security headers of every portal response; `no_store` for pages.
fn secure_headers(resp: &mut Response, no_store: bool) {
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if no_store {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The answer for a path nothing serves: the API's problem+json 404 under `/v1`, the
/// portal's 404 page anywhere else.
pub async fn not_found(req: Request) -> Response {
    let path = req.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        return ApiError::not_found("no such route").into_response();
    }
    let lang = session::lang_of(req.headers());
    let mut resp = PageError::new(StatusCode::NOT_FOUND, t(lang, "core.error.not_found"), lang)
        .into_response();
    secure_headers(&mut resp, true);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_forbids_inline_code_and_framing() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
        assert!(HeaderValue::from_str(CONTENT_SECURITY_POLICY).is_ok());
    }

    #[test]
    fn static_files_have_versioned_urls_and_no_inline_markup() {
        let url = asset_url("portal.css");
        assert!(url.starts_with("/static/portal.css?v="), "{url}");
        assert_eq!(url.len(), "/static/portal.css?v=".len() + 12);
        for (name, _, content) in ASSETS.iter() {
            assert!(!content.trim().is_empty(), "{name} is empty");
        }
    }

    #[test]
    fn set_cookie_names_match_exactly() {
        let mut resp = Response::new(axum::body::Body::empty());
        resp.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("pdx_csrf_other=1; Path=/"),
        );
        assert!(!sets_cookie(&resp, "pdx_csrf"));
        resp.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("pdx_csrf=2; Path=/"),
        );
        assert!(sets_cookie(&resp, "pdx_csrf"));
    }
}
