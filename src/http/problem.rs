//! One error type for every handler, rendered as RFC 9457 `application/problem+json`.
//!
//! Client mistakes get a 4xx with a detail that helps them. Server faults get a 500 whose
//! detail is generic: the cause is logged with the request id and never sent, because an
//! internal message (a SQL error, an engine error) can carry a stored value.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::Denied;

tokio::task_local! {
    /// The current request's id, set by the outermost middleware.
    pub static REQUEST_ID: String;
}

/// The current request id, if inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The problem+json body (documented in the OpenAPI spec).
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// Problem type URI.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for this request.
    pub detail: String,
    /// Request id to quote when reporting.
    pub request_id: Option<String>,
    /// For body errors: the JSON path of the offending field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// An error a handler returns.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    path: Option<String>,
    /// Seconds for a `Retry-After` header (429s of the admission limits).
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            slug,
            title,
            detail: detail.into(),
            path: None,
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// 400 with the JSON path of the field at fault.
    pub fn bad_body(path: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-body",
            "Malformed body",
            detail,
        );
        e.path = Some(path.into());
        e
    }

    /// 422: well-formed but invalid, naming the field path.
    pub fn invalid_field(path: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Invalid field",
            detail,
        );
        e.path = Some(path.into());
        e
    }

    /// 422 without a single field to blame.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            "Unprocessable request",
            detail,
        )
    }

    /// 415.
    pub fn unsupported_media(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            detail,
        )
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this route does not accept that method",
        )
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 429: the caller has too much in progress; retry later.
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many requests",
            detail,
        )
    }

    /// 429 with `Retry-After: retry_after_secs`: an admission limit refused the request
    /// ([`super::limits`]). The detail must name no key or secret.
    pub fn too_many_requests(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::too_many(detail);
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// 503: the server is busy or a request ran out of time.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// 500. `cause` is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = current_request_id().as_deref().unwrap_or("-"), %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed; quote the request id when reporting it",
        )
    }

    /// The JSON path of the field at fault, if any.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.title,
            self.detail
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let body = Problem {
            type_: format!("urn:pdx:problem:{}", self.slug),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            request_id: current_request_id(),
            path: self.path,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (self.status, bytes).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body may be unread: the connection ends after this
            // answer (hyper closes it once written), and the client is told so rather
            // than finding a keep-alive connection closed under its next request.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Role => ApiError::forbidden("your role may not do this"),
            Denied::Suspended => ApiError::forbidden(
                "your organisation is suspended; writes and reads of data, outputs and \
                 downloads are refused until it is reinstated (XT Art.33)",
            ),
            Denied::NotOwner => ApiError::not_found("no such resource"),
        }
    }
}

impl From<crate::accounts::AccountError> for ApiError {
    fn from(e: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError as E;
        match e {
            E::OrgExists | E::LastAdminKey { .. } => ApiError::conflict(e.to_string()),
            E::NoSuchOrg => ApiError::not_found(e.to_string()),
            E::Invalid(msg) => ApiError::unprocessable(msg),
            E::Db(db) => ApiError::internal(db),
        }
    }
}

impl From<pdx_ledger::LedgerError> for ApiError {
    fn from(e: pdx_ledger::LedgerError) -> Self {
        use pdx_ledger::LedgerError as E;
        match e {
            E::OutOfRange(msg) => ApiError::not_found(msg),
            E::Entry(err) => ApiError::unprocessable(err.to_string()),
            other => ApiError::internal(other),
        }
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<pdx_sandbox::SandboxError> for ApiError {
    fn from(e: pdx_sandbox::SandboxError) -> Self {
        use pdx_sandbox::ErrorClass as C;
        let class = e.class();
        // Internal causes are logged by `internal` and never sent: an engine or
        // database message may carry a stored value.
        let (slug, title) = match class {
            C::Internal => return ApiError::internal(e),
            C::Invalid => ("unprocessable", "Unprocessable request"),
            C::Forbidden => ("forbidden", "Forbidden"),
            C::NotFound => ("not-found", "Not found"),
            C::Conflict => ("conflict", "Conflict"),
            C::Busy => ("too-many-requests", "Too many requests"),
            C::TooLarge => ("payload-too-large", "Payload too large"),
        };
        // The status is the class's own (`ErrorClass::status`, shared with failed jobs).
        let status = StatusCode::from_u16(class.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(status, slug, title, e.to_string())
    }
}

impl From<pdx_products::ProductsError> for ApiError {
    fn from(e: pdx_products::ProductsError) -> Self {
        // Server faults (database, ledger, file, stored data) are logged by `internal`
        // and answered generically: their detail can name paths or stored values.
        if !e.is_client_error() {
            return ApiError::internal(e);
        }
        let status = StatusCode::from_u16(e.status_hint()).unwrap_or(StatusCode::BAD_REQUEST);
        let slug = e.code();
        let title = match slug {
            "invalid" => "Invalid request",
            "not-found" => "Not found",
            "forbidden" => "Forbidden",
            "conflict" => "Conflict",
            "idempotency-key-reused" => "Idempotency key reused",
            "not-paid" => "Order not paid",
            "licence-revoked" => "Licence revoked",
            "licence-expired" => "Licence expired",
            _ => "Refused",
        };
        Self::new(status, slug, title, e.to_string())
    }
}

impl From<crate::bridges::BridgeError> for ApiError {
    fn from(e: crate::bridges::BridgeError) -> Self {
        use crate::bridges::BridgeError as E;
        match e {
            E::Sandbox(e) => e.into(),
            E::Accounts(e) => e.into(),
            E::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl<E: Into<ApiError>> From<pdx_products::OutputsError<E>> for ApiError {
    fn from(e: pdx_products::OutputsError<E>) -> Self {
        // Each side answers as it would on its own.
        match e {
            pdx_products::OutputsError::Outputs(e) => e.into(),
            pdx_products::OutputsError::Products(e) => e.into(),
        }
    }
}
