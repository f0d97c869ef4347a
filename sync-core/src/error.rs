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
    /// Another client holds the lease lock at `path` (see [`crate::lock`]) and did not
    /// let go within the wait allowed, or our own lease was lost to another client;
    /// or a server-enforced lock ([`crate::Storage::lock_dir`]) held by another client
    /// refused this request. Not retryable at once: sync again later.
    #[error("locked: {path} is held by {}", .holder.as_deref().unwrap_or("another client"))]
    Locked {
        /// The lock file, or the locked folder.
        path: String,
        /// Who holds the lock and until when, where the storage tells (see
        /// [`crate::LockHolder`]'s `Display`); `None`: "another client".
        holder: Option<String>,
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

    /// Maps an HTTP status to the closest kind, for HTTP providers (core itself has no
    /// HTTP stack). `retry_after` is the parsed `Retry-After` header, if any (see
    /// [`crate::retry::parse_retry_after`]). `message` must hold no secret.
    ///
    /// 401 → `Unauthorized`; 403 → `Forbidden`; 404 and 410 → `NotFound`;
    /// 412 → `PreconditionFailed` (a provider that sent `If-None-Match: *` for an
    /// `IfAbsent` write maps it to `AlreadyExists` itself); 413 (body too large) →
    /// `InvalidInput`; 507 → `QuotaExceeded`; 429 → `RateLimited`; 503 with a
    /// `Retry-After` → `RateLimited` (the service asked for that wait); 408, 425, 500,
    /// 502, 503, 504 and any other 5xx → `Transient`; any other 4xx → `InvalidInput`;
    /// anything else (1xx/2xx/3xx where an error was expected) → `Corrupt`.
    pub fn from_http_status(
        status: u16,
        path: &str,
        retry_after: Option<Duration>,
        message: &str,
    ) -> Error {
        let message = format!("{path}: HTTP {status} {message}");
        match status {
            401 => Error::Unauthorized { message },
            403 => Error::Forbidden { message },
            404 | 410 => Error::NotFound {
                path: path.to_string(),
            },
            412 => Error::PreconditionFailed {
                path: path.to_string(),
            },
            413 => Error::InvalidInput { message },
            507 => Error::QuotaExceeded { message },
            429 => Error::RateLimited {
                retry_after,
                message,
            },
            503 if retry_after.is_some() => Error::RateLimited {
                retry_after,
                message,
            },
            408 | 425 | 500..=599 => Error::Transient {
                message,
                source: None,
            },
            400..=499 => Error::InvalidInput { message },
            _ => Error::Corrupt { message },
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
