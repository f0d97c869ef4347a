//! HTTP status to storage error.

use reqwest::StatusCode;
use std::time::Duration;
use syncfabric_core::Error;

/// The status-to-kind table. `what` is the path (never a URL with credentials).
pub(crate) fn status_to_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    what: &str,
) -> Error {
    let msg = format!("{what}: HTTP {status}");
    match status.as_u16() {
        401 => Error::Unauthorized { message: msg },
        403 => Error::Forbidden { message: msg },
        404 | 410 => Error::NotFound {
            path: what.to_string(),
        },
        412 => Error::PreconditionFailed {
            path: what.to_string(),
        },
        413 => Error::InvalidInput {
            message: format!("{msg} (too large for this server)"),
        },
        423 => Error::Transient {
            message: format!("{msg} (locked)"),
            source: None,
        },
        429 => Error::RateLimited {
            retry_after,
            message: msg,
        },
        503 if retry_after.is_some() => Error::RateLimited {
            retry_after,
            message: msg,
        },
        507 => Error::QuotaExceeded { message: msg },
        408 => Error::transient(msg),
        300..=399 => Error::Corrupt {
            message: format!("{msg}: redirect to another origin refused"),
        },
        500..=599 => Error::transient(msg),
        _ => Error::InvalidInput {
            message: format!("{msg} (unexpected)"),
        },
    }
}
