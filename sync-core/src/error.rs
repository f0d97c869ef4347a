//! The one error type every provider returns.

use std::time::Duration;

/// A boxed underlying cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the storage [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a storage operation can fail with, as kinds the sync engine can act on.
///
/// Messages never contain credentials, tokens or file contents: providers put the
/// path and the server's status there, nothing else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path does not exist (or, for `list`, the folder does not).
    #[error("not found: {path}")]
    NotFound {
        /// The path that was asked for.
        path: String,
    },
    /// An `IfMatch` precondition did not hold: someone else wrote first.
    #[error("precondition failed: {path} changed since it was read")]
    PreconditionFailed {
        /// The path written or deleted.
        path: String,
    },
    /// An `IfAbsent` precondition did not hold: the path already exists.
    #[error("already exists: {path}")]
    AlreadyExists {
        /// The path written.
        path: String,
    },
    /// Credentials are missing, expired or revoked: the person must log in again.
    #[error("unauthorized: {message} (log in again)")]
    Unauthorized {
        /// What the server said, without secrets.
        message: String,
    },
    /// The credentials are valid but do not allow this operation.
    #[error("forbidden: {message}")]
    Forbidden {
        /// What the server said.
        message: String,
    },
    /// The service asked us to slow down.
    #[error("rate limited: {message}")]
    RateLimited {
        /// How long the service asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// What the server said.
        message: String,
    },
    /// A failure that may go away on its own: a 5xx, a reset connection, a timeout.
    #[error("transient failure: {message}")]
    Transient {
        /// What happened.
        message: String,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The account or disk is full.
    #[error("quota exceeded: {message}")]
    QuotaExceeded {
        /// What the server or OS said.
        message: String,
    },
    /// The provider cannot do this (e.g. honour a precondition); never retried.
    #[error("unsupported: {message}")]
    Unsupported {
        /// What is not supported.
        message: String,
    },
    /// The request was malformed: a bad path, a bad URL, a bad configuration.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What was wrong.
        message: String,
    },
    /// The storage answered with something that cannot be right: malformed XML/JSON,
    /// a truncated body, an href outside the root.
    #[error("corrupt response: {message}")]
    Corrupt {
        /// What was wrong.
        message: String,
    },
    /// A local I/O failure that fits none of the kinds above.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The local path involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether doing the same thing again later can succeed without anything else
    /// changing: `RateLimited` and `Transient` (and transient I/O kinds) are retryable;
    /// a failed precondition is not (the caller must re-read first).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Transient { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    /// The wait the service asked for, if it said one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Maps a local I/O error on `path` to the closest kind.
    pub fn from_io(e: std::io::Error, path: &str) -> Error {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Error::NotFound {
                path: path.to_string(),
            },
            K::AlreadyExists => Error::AlreadyExists {
                path: path.to_string(),
            },
            K::PermissionDenied => Error::Forbidden {
                message: format!("{path}: {e}"),
            },
            K::StorageFull | K::QuotaExceeded => Error::QuotaExceeded {
                message: format!("{path}: {e}"),
            },
            _ => Error::Io {
                path: path.to_string(),
                source: e,
            },
        }
    }

    /// A transient error with a message and no cause.
    pub fn transient(message: impl Into<String>) -> Error {
        Error::Transient {
            message: message.into(),
            source: None,
        }
    }
}
