//! The one error type of this crate, with the HTTP status it maps to.

use pdx_ids::{OrderId, OrgId};
use pdx_ledger::LedgerError;
use pdx_ledger::db::DbError;

/// Everything that can go wrong in `pdx-products`.
///
/// Client errors (4xx) carry a message meant for the caller. Server errors (5xx) carry
/// detail for the log only: the HTTP layer should send a generic message for them.
#[derive(Debug, thiserror::Error)]
pub enum ProductsError {
    /// The request is malformed or out of range (bad split, price, title, key...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The product, order or settlement does not exist, or is not the caller's.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller may not act on this resource (e.g. another developer's release).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request contradicts the resource's state or rules (e.g. a research-only
    /// source under a commercial licence, listing twice, paying a refunded order).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The product's developer organisation is suspended, so the product may not be
    /// listed until the organisation is reinstated.
    #[error("the product's developer organisation is suspended")]
    DeveloperSuspended {
        /// The developer organisation.
        org: OrgId,
    },
    /// The idempotency key was already used by this buyer for a different request.
    #[error("Idempotency-Key {key:?} was already used with a different request body")]
    IdempotencyMismatch {
        /// The reused key.
        key: String,
    },
    /// The order has not been paid, so there is nothing to download.
    #[error("order {0} is not paid")]
    NotPaid(OrderId),
    /// The order was refunded, which revoked its licence.
    #[error("order {0} was refunded; its licence is revoked")]
    LicenceRevoked(OrderId),
    /// The licence term is over.
    #[error("the licence of order {order} expired at {expired_at}")]
    LicenceExpired {
        /// Order id.
        order: OrderId,
        /// When the term ended (RFC 3339, UTC).
        expired_at: String,
    },
    /// A released file could not be read while building a download.
    #[error("cannot read released output {path}: {source}")]
    Io {
        /// Path of the file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Ledger failure.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Stored data does not have the expected shape.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for ProductsError {
    fn from(e: sqlx::Error) -> Self {
        ProductsError::Db(DbError::Sqlx(e))
    }
}

impl ProductsError {
    /// The HTTP status this error maps to.
    pub fn status_hint(&self) -> u16 {
        match self {
            ProductsError::Invalid(_) => 422,
            ProductsError::NotFound(_) => 404,
            ProductsError::Forbidden(_) => 403,
            ProductsError::Conflict(_) => 409,
            ProductsError::DeveloperSuspended { .. } => 409,
            ProductsError::IdempotencyMismatch { .. } => 422,
            ProductsError::NotPaid(_) => 402,
            ProductsError::LicenceRevoked(_) => 403,
            ProductsError::LicenceExpired { .. } => 403,
            ProductsError::Io { .. }
            | ProductsError::Db(_)
            | ProductsError::Ledger(_)
            | ProductsError::Internal(_) => 500,
        }
    }

    /// True for 4xx errors: the message is safe and useful to show the caller.
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status_hint())
    }

    /// A short stable slug for the problem type (e.g. `licence-expired`).
    pub fn code(&self) -> &'static str {
        match self {
            ProductsError::Invalid(_) => "invalid",
            ProductsError::NotFound(_) => "not-found",
            ProductsError::Forbidden(_) => "forbidden",
            ProductsError::Conflict(_) => "conflict",
            ProductsError::DeveloperSuspended { .. } => "conflict",
            ProductsError::IdempotencyMismatch { .. } => "idempotency-key-reused",
            ProductsError::NotPaid(_) => "not-paid",
            ProductsError::LicenceRevoked(_) => "licence-revoked",
            ProductsError::LicenceExpired { .. } => "licence-expired",
            ProductsError::Io { .. }
            | ProductsError::Db(_)
            | ProductsError::Ledger(_)
            | ProductsError::Internal(_) => "internal",
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = ProductsError> = std::result::Result<T, E>;
