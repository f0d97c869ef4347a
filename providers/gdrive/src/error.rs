//! Google's error answers as [`syncfabric_core::Error`]: Drive's reasons first, then
//! the shared status table.
//!
//! Errors are `{"error": {"errors": [{"domain", "reason", "message"}], "code",
//! "message"}}` (<https://developers.google.com/drive/api/guides/handle-errors>):
//! `401` a bad token, `403` with reason `userRateLimitExceeded` or
//! `rateLimitExceeded` and `429` throttling
//! (<https://developers.google.com/drive/api/guides/limits>), `404` an unknown id or
//! an expired upload session, `412` a stale `If-Match`, `5xx` server trouble.

use std::time::Duration;
use syncfabric_core::Error;
use syncfabric_http::{clean_detail, ErrorAnswer, StatusTable};

/// The server, as errors name it.
pub(crate) const SERVER: &str = "Google";
/// The generic status table, for what Google's `reason` does not decide.
const TABLE: StatusTable = StatusTable::new(SERVER);
/// A Google error answer, before the call that got it gives it a meaning.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `errors[0].reason`, e.g. `userRateLimitExceeded`; empty when there was none.
    pub reason: String,
    /// `message`, control characters removed, at most 200 characters.
    pub message: String,
}

impl ApiError {
    /// Whether Google asks us to slow down (403 with a rate-limit reason, or 429).
    pub fn is_throttle(&self) -> bool {
        self.status == 429
            || (self.status == 403
                && matches!(
                    self.reason.as_str(),
                    "userRateLimitExceeded" | "rateLimitExceeded" | "sharingRateLimitExceeded"
                ))
    }

    /// Whether sending the same request again may succeed (throttling, 5xx).
    pub fn is_retryable(&self) -> bool {
        self.is_throttle() || syncfabric_http::worth_retrying(self.status)
    }

    /// The general meaning of this error; callers first handle what depends on the
    /// call (412 is `PreconditionFailed` for a conditional write).
    pub fn into_error(self, what: &str) -> Error {
        let text = format!(
            "{what}: HTTP {} {} {}",
            self.status, self.reason, self.message
        );
        if self.is_throttle() {
            return Error::RateLimited {
                retry_after: self.retry_after,
                message: text,
            };
        }
        match self.status {
            403 if self.reason == "storageQuotaExceeded" || self.reason == "quotaExceeded" => {
                Error::QuotaExceeded { message: text }
            }
            s => TABLE.error(s, self.retry_after, what, &self.reason),
        }
    }
}

/// A finished request: the answer, or Google's error.
pub(crate) type Answer = std::result::Result<reqwest::Response, ApiError>;

/// Reads an error answer.
pub(crate) async fn api_error(resp: reqwest::Response, what: &str) -> ApiError {
    let a = ErrorAnswer::read(resp, what).await;
    let v = a.json().unwrap_or_default();
    let text = |p: &str| clean_detail(v.pointer(p).and_then(|x| x.as_str()).unwrap_or(""));
    ApiError {
        status: a.status,
        retry_after: a.retry_after,
        reason: text("/error/errors/0/reason"),
        message: text("/error/message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, reason: &str) -> ApiError {
        ApiError {
            status,
            retry_after: Some(Duration::from_secs(2)),
            reason: reason.into(),
            message: String::new(),
        }
    }

    #[test]
    fn errors_map() {
        for (s, r) in [
            (403, "userRateLimitExceeded"),
            (403, "rateLimitExceeded"),
            (429, ""),
        ] {
            let e = err(s, r).into_error("a");
            assert!(
                matches!(e, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(2)),
                "{e:?}"
            );
        }
        assert!(matches!(
            err(412, "conditionNotMet").into_error("a"),
            Error::PreconditionFailed { .. }
        ));
        assert!(matches!(
            err(404, "notFound").into_error("a"),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            err(401, "authError").into_error("a"),
            Error::Unauthorized { .. }
        ));
        assert!(matches!(
            err(403, "storageQuotaExceeded").into_error("a"),
            Error::QuotaExceeded { .. }
        ));
        assert!(matches!(
            err(403, "insufficientFilePermissions").into_error("a"),
            Error::Forbidden { .. }
        ));
        assert!(err(503, "").into_error("a").is_retryable());
        assert!(!err(403, "insufficientFilePermissions").is_retryable());
    }
}
