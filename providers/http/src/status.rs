//! Error answers: reading one ([`ErrorAnswer`]) and the generic status table a
//! provider falls back on after its own refinements ([`StatusTable`]).
//!
//! A provider first gives meaning to what only it knows (a Dropbox `409` with
//! `path/conflict`, a Drive `403` with `userRateLimitExceeded`, a Graph `409`
//! `nameAlreadyExists`), then hands the rest to its [`StatusTable`]:
//!
//! | status | error |
//! |---|---|
//! | 401 | `Unauthorized` ("{server} refused the token") |
//! | 403 | `Forbidden` |
//! | 404, 410 | `NotFound` |
//! | 412 | `PreconditionFailed` |
//! | 413 | `InvalidInput` |
//! | 429 | `RateLimited` (with `Retry-After`) |
//! | 503 | `RateLimited` with `Retry-After`, or always with [`StatusTable::throttle_503`]; else `Transient` |
//! | 507 | `QuotaExceeded` |
//! | 408, 425, other 5xx | `Transient` |
//! | other 4xx | `InvalidInput` |
//!
//! (the table of [`Error::from_http_status`], with the server named on a 401 and
//! the 503 refinement). Server texts are cleaned ([`clean_detail`]): no control
//! characters, at most 200 characters; they never hold a token.

use crate::read_capped;
use std::time::{Duration, SystemTime};
use syncfabric_core::Error;

/// The most of an error answer's body that is read.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// The `Retry-After` of an answer, in seconds or as an HTTP date (see
/// [`syncfabric_core::retry::parse_retry_after`]).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?;
    syncfabric_core::retry::parse_retry_after(v, SystemTime::now())
}

/// An answer that is not a success, read: its status, `Retry-After` and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorAnswer {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After`, when the answer has a readable one.
    pub retry_after: Option<Duration>,
    /// The body (at most [`MAX_ERROR_BODY`] bytes); `None` when it broke off or
    /// was longer: nothing in it can be trusted then.
    pub body: Option<Vec<u8>>,
}

impl ErrorAnswer {
    /// Reads `resp` (its body up to [`MAX_ERROR_BODY`]); never fails.
    pub async fn read(resp: reqwest::Response, what: &str) -> ErrorAnswer {
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let body = read_capped(resp, MAX_ERROR_BODY, what).await.ok();
        ErrorAnswer {
            status,
            retry_after,
            body,
        }
    }

    /// The body as JSON; `None` when there was none or it is not JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(self.body.as_deref()?).ok()
    }
}

/// A server's text made fit for an error message: control characters removed, at
/// most 200 characters.
pub fn clean_detail(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Whether sending the same request again may succeed by status alone (429, 5xx).
pub fn worth_retrying(status: u16) -> bool {
    status == 429 || status >= 500
}

/// The generic status table, with the refinements a server needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusTable {
    /// The server, as named in an `Unauthorized` message ("Dropbox refused the token").
    pub server: &'static str,
    /// The server throttles with `503` without `Retry-After` too (Microsoft Graph):
    /// every 503 is `RateLimited`, never the ambiguous `Transient` (the request was
    /// not carried out, so a retry layer must not treat its fate as unknown).
    pub throttle_503: bool,
}

impl StatusTable {
    /// The table of a server named `server`, without refinements.
    pub const fn new(server: &'static str) -> Self {
        StatusTable {
            server,
            throttle_503: false,
        }
    }

    /// The meaning of `status` for the request `what` (a path, never a URL);
    /// `detail` is the server's cleaned error text (a code, a message), maybe empty.
    pub fn error(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        what: &str,
        detail: &str,
    ) -> Error {
        match status {
            401 => Error::Unauthorized {
                message: format!("{what}: {} refused the token ({detail})", self.server),
            },
            429 | 503 if status == 429 || retry_after.is_some() || self.throttle_503 => {
                Error::RateLimited {
                    retry_after,
                    message: format!("{what}: HTTP {status} {detail}"),
                }
            }
            s => Error::from_http_status(s, what, retry_after, detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let t = StatusTable::new("Example");
        let two = Some(Duration::from_secs(2));
        let e = t.error(401, None, "a", "expired");
        assert!(
            matches!(&e, Error::Unauthorized { message } if message == "a: Example refused the token (expired)"),
            "{e:?}"
        );
        assert!(matches!(
            t.error(403, None, "a", ""),
            Error::Forbidden { .. }
        ));
        assert!(matches!(
            t.error(404, None, "a", ""),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            t.error(410, None, "a", ""),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            t.error(412, None, "a", ""),
            Error::PreconditionFailed { .. }
        ));
        assert!(matches!(
            t.error(429, None, "a", ""),
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            t.error(503, two, "a", ""),
            Error::RateLimited {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            t.error(503, None, "a", ""),
            Error::Transient { .. }
        ));
        let graph = StatusTable {
            throttle_503: true,
            ..t
        };
        assert!(matches!(
            graph.error(503, None, "a", ""),
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            t.error(507, None, "a", ""),
            Error::QuotaExceeded { .. }
        ));
        assert!(matches!(
            t.error(500, None, "a", ""),
            Error::Transient { .. }
        ));
        assert!(matches!(
            t.error(400, None, "a", ""),
            Error::InvalidInput { .. }
        ));
        assert!(worth_retrying(429) && worth_retrying(502) && !worth_retrying(409));
        assert_eq!(clean_detail("a\nb\u{7}c"), "abc");
        assert_eq!(clean_detail(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn retry_after_in_both_forms() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("Retry-After", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "Retry-After",
            "Thu, 01 Jan 1970 00:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }
}
