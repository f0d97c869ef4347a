//! Dropbox's error answers (`{"error_summary": "path/not_found/…", "error": {…}}`)
//! as [`syncfabric_core::Error`]: the summary's tags first, then the shared status
//! table. `409` answers are always JSON; a `401` refreshes the token once (the
//! shared send loop), `429` and `too_many_write_operations` are `RateLimited` with
//! `Retry-After` or the body's `retry_after`, `5xx` `Transient`.

use std::time::Duration;
use syncfabric_core::Error;
use syncfabric_http::{clean_detail, ErrorAnswer, StatusTable};

/// The server, as errors name it.
pub(crate) const SERVER: &str = "Dropbox";
/// The generic status table, for what Dropbox's `error_summary` does not decide.
const TABLE: StatusTable = StatusTable::new(SERVER);

/// A Dropbox error answer, before it is given a meaning by the call that got it.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `error_summary`, e.g. `path/conflict/file/..`; empty when there was none.
    pub summary: String,
    /// The `error` object.
    pub error: serde_json::Value,
    /// The answer's body broke off or was not Dropbox's error JSON: nothing in it
    /// can be trusted, so the error is `Transient` whatever the status.
    pub garbled: bool,
}

impl ApiError {
    /// Whether the summary names `tag` as one of its parts (`path/conflict/file/..`
    /// has `path`, `conflict` and `file`).
    pub fn has(&self, tag: &str) -> bool {
        self.summary.split('/').any(|p| p == tag)
    }

    /// `correct_offset` of an `incorrect_offset` error (upload sessions), wherever
    /// the union nests it.
    pub fn correct_offset(&self) -> Option<u64> {
        if !self.has("incorrect_offset") {
            return None;
        }
        ["/correct_offset", "/lookup_failed/correct_offset"]
            .iter()
            .find_map(|p| self.error.pointer(p).and_then(|v| v.as_u64()))
    }

    /// The general meaning of this error; callers first handle what depends on the
    /// call (a conflict means `PreconditionFailed` for `IfMatch`, `AlreadyExists` for
    /// `IfAbsent`).
    pub fn into_error(self, what: &str) -> Error {
        let text = format!("{what}: HTTP {} {}", self.status, self.summary);
        if self.garbled && self.status != 429 && self.status != 401 {
            return Error::transient(format!("{text}: the error answer was unreadable"));
        }
        let wait = self.retry_after.or_else(|| {
            self.error
                .pointer("/retry_after")
                .and_then(|v| v.as_u64())
                .map(Duration::from_secs)
        });
        if self.status == 429
            || self.has("too_many_write_operations")
            || self.has("too_many_requests")
        {
            return Error::RateLimited {
                retry_after: wait,
                message: text,
            };
        }
        match self.status {
            409 if self.has("not_found") => Error::NotFound {
                path: what.to_string(),
            },
            409 if self.has("insufficient_space") => Error::QuotaExceeded { message: text },
            409 if self.has("conflict") => Error::AlreadyExists {
                path: what.to_string(),
            },
            409 => Error::InvalidInput { message: text },
            s => TABLE.error(s, wait, what, &self.summary),
        }
    }
}

/// A finished request: the answer, or Dropbox's error.
pub(crate) type Answer = std::result::Result<reqwest::Response, ApiError>;

/// Reads an error answer (status, `Retry-After`, `error_summary`, `error`).
pub(crate) async fn api_error(resp: reqwest::Response, what: &str) -> ApiError {
    let a = ErrorAnswer::read(resp, what).await;
    let v = a.json();
    // 409 answers are always JSON (Errors by status code); others may be plain text.
    let garbled = v.is_none() && a.status == 409;
    let v = v.unwrap_or_default();
    let summary = clean_detail(
        v.get("error_summary")
            .and_then(|s| s.as_str())
            .unwrap_or(""),
    );
    ApiError {
        status: a.status,
        retry_after: a.retry_after,
        summary,
        error: v.get("error").cloned().unwrap_or_default(),
        garbled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(status: u16, summary: &str, error: serde_json::Value) -> ApiError {
        ApiError {
            status,
            retry_after: None,
            summary: summary.into(),
            error,
            garbled: false,
        }
    }

    #[test]
    fn errors_map() {
        let e = err(409, "path/not_found/..", json!({})).into_error("a");
        assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
        let e = err(409, "path/conflict/file/..", json!({})).into_error("a");
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
        let e = err(
            429,
            "too_many_write_operations/..",
            json!({"reason": {".tag": "too_many_write_operations"}, "retry_after": 3}),
        )
        .into_error("a");
        assert!(
            matches!(e, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3)),
            "{e:?}"
        );
        let e = err(409, "too_many_write_operations/.", json!({})).into_error("a");
        assert!(matches!(e, Error::RateLimited { .. }), "{e:?}");
        let e = err(401, "expired_access_token/..", json!({})).into_error("a");
        assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
        let e = err(409, "path/insufficient_space/..", json!({})).into_error("a");
        assert!(matches!(e, Error::QuotaExceeded { .. }), "{e:?}");
        let e = err(500, "", json!({})).into_error("a");
        assert!(matches!(e, Error::Transient { .. }), "{e:?}");
        let e = err(400, "", json!({})).into_error("a");
        assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
        let o = err(
            409,
            "lookup_failed/incorrect_offset/..",
            json!({"lookup_failed": {".tag": "incorrect_offset", "correct_offset": 7}}),
        );
        assert_eq!(o.correct_offset(), Some(7));
        let mut g = err(409, "", json!({}));
        g.garbled = true;
        assert!(matches!(g.into_error("a"), Error::Transient { .. }));
    }
}
