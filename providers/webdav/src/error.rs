//! HTTP status to storage error: core's generic table
//! ([`Error::from_http_status`]), with what a status means from a WebDAV server.

use reqwest::StatusCode;
use std::time::Duration;
use syncfabric_core::Error;

/// The status-to-kind table. `what` is the path (never a URL with credentials).
/// WebDAV's own meanings: `423 Locked` is someone's lock, to wait out (a client's
/// class 2 lock is handled before this, in the `lock` module); a `3xx` that reaches
/// here is a redirect to another origin, refused; `413` is a file too large for this
/// server; anything outside the table is unexpected.
pub(crate) fn status_to_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    what: &str,
) -> Error {
    let code = status.as_u16();
    let msg = format!("{what}: HTTP {status}");
    match code {
        423 => Error::Transient {
            message: format!("{msg} (locked)"),
            source: None,
        },
        300..=399 => Error::Corrupt {
            message: format!("{msg}: redirect to another origin refused"),
        },
        413 => Error::InvalidInput {
            message: format!("{msg} (too large for this server)"),
        },
        400..=599 => Error::from_http_status(code, what, retry_after, ""),
        _ => Error::InvalidInput {
            message: format!("{msg} (unexpected)"),
        },
    }
}
