//! The sandbox's one error type and its *class*: what kind of fault it is, which
//! decides the HTTP status of a synchronous request and of a failed job alike
//! ([`ErrorClass::status`] is the only place that mapping is written).

/// Everything that can go wrong, each variant safe to show to the client that caused
/// it except the internal ones, whose detail is logged instead.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The request is well-formed but invalid.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// No such resource (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this to this resource.
    #[error("{0}")]
    Forbidden(String),
    /// Too much at once (the organisation's concurrency cap); retry later.
    #[error("{0}")]
    Busy(String),
    /// An upload went over the configured limit.
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The upload does not match the declared schema.
    #[error("{0}")]
    Upload(#[from] pdx_algorithms::deid::ingest::IngestError),
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Database layer failure.
    #[error("database: {0}")]
    DbLayer(#[from] pdx_ledger::db::DbError),
    /// Ledger failure.
    #[error("ledger: {0}")]
    Ledger(#[from] pdx_ledger::LedgerError),
    /// File-system failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A sealed zone file could not be opened or written (tampered, wrong key, …).
    #[error("sealed zone file: {0}")]
    Seal(#[from] pdx_seal::SealError),
    /// Anything else internal.
    #[error("internal: {0}")]
    Internal(String),
}

/// What kind of fault an error is. Every class but [`ErrorClass::Internal`] is the
/// caller's, and its message is safe to show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Well-formed but invalid (422).
    Invalid,
    /// Not allowed for this caller (403).
    Forbidden,
    /// No such resource, or not visible to the caller (404).
    NotFound,
    /// Conflicts with the current state (409).
    Conflict,
    /// Over a rate or concurrency limit; retry later (429).
    Busy,
    /// Over a size limit (413).
    TooLarge,
    /// The server's fault (500); the detail is logged, never shown.
    Internal,
}

impl ErrorClass {
    /// The HTTP status of the class (the one mapping, used by the HTTP layer and by
    /// failed jobs).
    pub fn status(self) -> u16 {
        match self {
            ErrorClass::Invalid => 422,
            ErrorClass::Forbidden => 403,
            ErrorClass::NotFound => 404,
            ErrorClass::Conflict => 409,
            ErrorClass::Busy => 429,
            ErrorClass::TooLarge => 413,
            ErrorClass::Internal => 500,
        }
    }
}

impl SandboxError {
    /// The class of the error.
    pub fn class(&self) -> ErrorClass {
        match self {
            SandboxError::Invalid(_) => ErrorClass::Invalid,
            SandboxError::Conflict(_) => ErrorClass::Conflict,
            SandboxError::NotFound(_) => ErrorClass::NotFound,
            SandboxError::Forbidden(_) => ErrorClass::Forbidden,
            SandboxError::Busy(_) => ErrorClass::Busy,
            SandboxError::TooLarge { .. } => ErrorClass::TooLarge,
            SandboxError::Upload(e) if e.is_client_error() => ErrorClass::Invalid,
            _ => ErrorClass::Internal,
        }
    }

    /// True when the caller is at fault (a 4xx); false for server faults.
    pub fn is_client_error(&self) -> bool {
        self.class() != ErrorClass::Internal
    }
}

/// An engine's error is the caller's when the engine says so (the engines sanitise
/// those messages: no cell value, no path); otherwise it is internal, logged and
/// withheld.
macro_rules! engine_error {
    ($($engine:ty),+) => {$(
        impl From<$engine> for SandboxError {
            fn from(e: $engine) -> Self {
                if e.is_client_error() {
                    SandboxError::Invalid(e.to_string())
                } else {
                    tracing::error!(error = %e, "an engine failed");
                    SandboxError::Internal(e.to_string())
                }
            }
        }
    )+};
}

engine_error!(
    pdx_algorithms::sql::SqlError,
    pdx_algorithms::dp::DpError,
    pdx_algorithms::disclosure::DisclosureError,
    pdx_algorithms::regression::RegressionError
);

/// Result alias.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;
