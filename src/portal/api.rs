//! The portal's in-process API client, and the page for a refused or failed request.
//!
//! Pages never read the database: they call the `/v1` router with [`Portal::get`],
//! [`Portal::send`] or [`Portal::raw`], which hand the request to the same router the
//! server mounts (a `tower::ServiceExt::oneshot`, no network), through the same
//! `authorize` middleware. A signed-in viewer's request carries the session's key id as
//! a `PortalIdentity` extension (no `Authorization` header; any such header a page
//! might copy is removed), an anonymous viewer's carries nothing and is answered as the
//! public; both carry the viewer's address, so the per-address limits count browsers
//! as they count API clients. So a page is refused exactly when its API route would be,
//! with the same status ([`PageError`]), and there is one policy table.

use std::fmt::Display;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pdx_ids::{KeyId, OrgId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use super::Portal;
use super::i18n::{Lang, t};
use super::layout;
use super::session::{SignedIn, Viewer};
use crate::auth::Role;
use crate::http::PortalIdentity;

/// A refused or failed page: rendered with the same status as the API answer and the
/// API problem's `detail` (never a data value; 401 links to /signin).
#[derive(Debug)]
pub struct PageError {
    /// The HTTP status of the page (the API's, when the API refused).
    pub status: StatusCode,
    /// What went wrong, for people.
    pub detail: String,
    /// The language of the page.
    pub lang: Lang,
}

impl PageError {
    /// A page error with this status and detail.
    pub fn new(status: StatusCode, detail: impl Into<String>, lang: Lang) -> Self {
        PageError {
            status,
            detail: detail.into(),
            lang,
        }
    }

    /// A 500 whose cause is logged, never shown (it may hold a stored value).
    pub fn internal(lang: Lang, cause: impl Display) -> Self {
        tracing::error!(error = %cause, "portal page failed");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            t(lang, "core.error.storage"),
            lang,
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = layout::error_page(self.lang, self.status, &self.detail);
        let mut resp = (self.status, page).into_response();
        // The portal's middleware draws the page again with the viewer's navigation.
        resp.extensions_mut().insert(RenderedError {
            detail: self.detail,
        });
        resp
    }
}

/// Marks a response as a rendered [`PageError`], with its detail.
#[derive(Clone)]
pub(crate) struct RenderedError {
    pub(crate) detail: String,
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for PageError {}

/// What `GET /v1/whoami` said of a key offered at sign-in.
pub(crate) enum KeyCheck {
    /// The key authenticated: who it is.
    Valid(SignedIn),
    /// Unknown, wrong, revoked or malformed (the API's 401).
    Refused,
    /// The client's address is locked out after failed keys, or the key is over its
    /// rate (the API's 429).
    LockedOut,
}

/// The fields of `GET /v1/whoami` a session keeps.
#[derive(Deserialize)]
struct KeyPrincipal {
    key_id: KeyId,
    org_id: OrgId,
    role: Role,
}

impl Portal {
    /// GET `path_and_query` (starts with "/v1/") as the viewer; 2xx JSON → T, else PageError.
    pub async fn get<T: DeserializeOwned>(
        &self,
        viewer: &Viewer,
        path_and_query: &str,
    ) -> Result<T, PageError> {
        let request = api_request(viewer, Method::GET, path_and_query, Body::empty(), None)?;
        let response = self.raw(viewer, request).await?;
        json_of(viewer, response).await
    }

    /// `method` `path` with a JSON body as the viewer; 2xx JSON (or empty → Value::Null) → T.
    pub async fn send<T: DeserializeOwned>(
        &self,
        viewer: &Viewer,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<T, PageError> {
        let bytes = serde_json::to_vec(body).map_err(|e| PageError::internal(viewer.lang, e))?;
        let request = api_request(
            viewer,
            method,
            path,
            Body::from(bytes),
            Some("application/json"),
        )?;
        let response = self.raw(viewer, request).await?;
        json_of(viewer, response).await
    }

    /// Any request (headers such as Idempotency-Key or Content-Type, a streamed body) as
    /// the viewer; returns the raw response whatever its status (downloads, uploads).
    /// Only `/v1` paths are called (anything else is a 404 page).
    pub async fn raw(
        &self,
        viewer: &Viewer,
        mut request: Request<Body>,
    ) -> Result<Response, PageError> {
        if !is_api_path(request.uri().path()) {
            return Err(PageError::new(
                StatusCode::NOT_FOUND,
                t(viewer.lang, "core.error.not_found"),
                viewer.lang,
            ));
        }
        // A page acts as its viewer and as nobody else.
        request.headers_mut().remove(header::AUTHORIZATION);
        request.extensions_mut().remove::<PortalIdentity>();
        if let Some(signed_in) = &viewer.signed_in {
            request
                .extensions_mut()
                .insert(PortalIdentity(signed_in.key_id.clone()));
        }
        if let Some(addr) = viewer.client {
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        Ok(self.call(request).await)
    }

    /// Checks an API key offered at sign-in the way the API checks any key: `GET
    /// /v1/whoami` with it as a bearer key, from the viewer's address (so a wrong key
    /// counts towards the address's lock-out, and a locked-out address is refused).
    pub(crate) async fn check_key(
        &self,
        viewer: &Viewer,
        key: &str,
    ) -> Result<KeyCheck, PageError> {
        let Ok(mut authorization) = HeaderValue::from_str(&format!("Bearer {key}")) else {
            return Ok(KeyCheck::Refused);
        };
        authorization.set_sensitive(true);
        let mut request = api_request(viewer, Method::GET, "/v1/whoami", Body::empty(), None)?;
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, authorization);
        if let Some(addr) = viewer.client {
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        let response = self.call(request).await;
        match response.status() {
            StatusCode::UNAUTHORIZED => Ok(KeyCheck::Refused),
            StatusCode::TOO_MANY_REQUESTS => Ok(KeyCheck::LockedOut),
            _ => {
                let me: KeyPrincipal = json_of(viewer, response).await?;
                Ok(KeyCheck::Valid(SignedIn {
                    key_id: me.key_id,
                    org_id: me.org_id,
                    role: me.role,
                }))
            }
        }
    }

    /// Hands a request to the `/v1` router in-process.
    async fn call(&self, request: Request<Body>) -> Response {
        self.api
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {})
    }
}

/// Whether a path is the API's.
fn is_api_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// A request to the API (JSON answers wanted).
fn api_request(
    viewer: &Viewer,
    method: Method,
    path: &str,
    body: Body,
    content_type: Option<&'static str>,
) -> Result<Request<Body>, PageError> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::ACCEPT, "application/json");
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    // Only a path a page built from bad input fails here.
    builder.body(body).map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            t(viewer.lang, "core.error.400"),
            viewer.lang,
        )
    })
}

/// A 2xx answer's JSON as T (an empty body as JSON null), or the page error of any
/// other answer.
async fn json_of<T: DeserializeOwned>(viewer: &Viewer, response: Response) -> Result<T, PageError> {
    if !response.status().is_success() {
        return Err(page_error(viewer, response).await);
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| PageError::internal(viewer.lang, e))?;
    let parsed = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_value(Value::Null)
    } else {
        serde_json::from_slice(&bytes)
    };
    parsed.map_err(|e| {
        // Where, not what: serde's message can quote the value it choked on.
        tracing::error!(
            category = ?e.classify(),
            line = e.line(),
            column = e.column(),
            "an API answer did not have the shape a portal page expects"
        );
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            t(viewer.lang, "core.error.unexpected"),
            viewer.lang,
        )
    })
}

/// The page error of an API answer that is not a success: the API's status, and the
/// `detail` of its problem+json. A 401 says why in the viewer's words instead (sign in;
/// the session ended), as the API's detail speaks of headers.
pub async fn page_error(viewer: &Viewer, response: Response) -> PageError {
    let status = response.status();
    let lang = viewer.lang;
    if status == StatusCode::UNAUTHORIZED {
        let key = if viewer.session_expired || viewer.signed_in.is_some() {
            "core.session.expired"
        } else {
            "core.error.signin_needed"
        };
        return PageError::new(status, t(lang, key), lang);
    }
    // Problems are small; a body too large to be one is not read.
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let detail = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|problem| problem.get("detail")?.as_str().map(String::from))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or_default().to_string());
    PageError::new(status, detail, lang)
}

/// `path?k=v&…`, values percent-encoded, empty values left out.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    if kept.is_empty() {
        return path.to_string();
    }
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_encode_values_and_leave_out_empty_ones() {
        assert_eq!(
            with_query(
                "/v1/datasets",
                &[("q", "电力 & gas"), ("theme", ""), ("page", "2")]
            ),
            "/v1/datasets?q=%E7%94%B5%E5%8A%9B+%26+gas&page=2"
        );
        assert_eq!(with_query("/v1/datasets", &[("theme", "")]), "/v1/datasets");
        assert_eq!(with_query("/v1/x?a=1", &[("b", "2")]), "/v1/x?a=1&b=2");
    }

    #[test]
    fn only_api_paths_are_called() {
        assert!(is_api_path("/v1/whoami"));
        assert!(!is_api_path("/v10/x"));
        assert!(!is_api_path("/signin"));
    }

    #[tokio::test]
    async fn a_refusal_keeps_the_status_and_shows_the_problem_detail() {
        let viewer = Viewer::anonymous(Lang::En);
        let problem = serde_json::json!({"type": "urn:pdx:problem:forbidden", "title": "Forbidden",
            "status": 403, "detail": "your role may not do this"});
        let response = (StatusCode::FORBIDDEN, problem.to_string()).into_response();
        let e = page_error(&viewer, response).await;
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(e.detail, "your role may not do this");
        let response = (StatusCode::UNAUTHORIZED, "{}").into_response();
        let e = page_error(&viewer, response).await;
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(e.detail, t(Lang::En, "core.error.signin_needed"));
    }
}
