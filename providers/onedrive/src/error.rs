//! Graph's error answers (`{"error":{"code","message"}}`) as
//! [`syncfabric_core::Error`]: Graph's own codes first, then the shared status table.
//!
//! Graph throttles with 429 and with 503 (with or without Retry-After); either way
//! the request was not carried out. So a 503 is `RateLimited`, never the ambiguous
//! `Transient`: after an ambiguous failure the retry layer may accept a later
//! "precondition failed" as success when the content equals ours, and two clients
//! can write equal bytes (the conformance counter race lost an update that way under
//! throttling). Without Retry-After the shared backoff decides the wait.

use std::time::Duration;
use syncfabric_core::Error;
use syncfabric_http::{clean_detail, ErrorAnswer, StatusTable};

/// The server, as errors name it.
pub(crate) const SERVER: &str = "Graph";

/// The shared status table, with Graph's refinement: every 503 is throttling.
pub(crate) const TABLE: StatusTable = StatusTable {
    server: "Microsoft Graph",
    throttle_503: true,
};

/// Maps a Graph error answer (status, `Retry-After`, `{"error":{"code","message"}}`)
/// to an error kind. The server's message is kept short and free of control characters;
/// it never holds a token.
pub(crate) async fn graph_error(resp: reqwest::Response, what: &str) -> Error {
    let a = ErrorAnswer::read(resp, what).await;
    let (code, message) = parse_error_body(a.body.as_deref().unwrap_or_default());
    map_error(a.status, a.retry_after, &code, &message, what)
}

/// `error.code` and `error.message` of a Graph error body, cleaned
/// ([`clean_detail`]); empty when missing.
pub(crate) fn parse_error_body(raw: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap_or_default();
    let text = |p: &str| clean_detail(v.pointer(p).and_then(|c| c.as_str()).unwrap_or(""));
    (text("/error/code"), text("/error/message"))
}

/// Graph's refinements of the status table: `nameAlreadyExists`, the quota, and
/// every 503 as throttling ([`TABLE`]).
pub(crate) fn map_error(
    status: u16,
    ra: Option<Duration>,
    code: &str,
    message: &str,
    what: &str,
) -> Error {
    let text = match (code.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => code.to_string(),
        (true, false) => message.to_string(),
        (false, false) => format!("{code}: {message}"),
    };
    match (status, code) {
        (409, "nameAlreadyExists") => Error::AlreadyExists {
            path: what.to_string(),
        },
        (_, "quotaLimitReached") | (507, _) => Error::QuotaExceeded {
            message: format!("{what}: {text}"),
        },
        _ => TABLE.error(status, ra, what, &text),
    }
}

/// Graph has no folder lock a client can hold: `UnderLock` is refused, never ignored
/// (compare-and-swap is truthful here, so the engine never asks for one).
pub(crate) fn no_server_lock(what: &str) -> Error {
    Error::Unsupported {
        message: format!("{what}: OneDrive has no server-enforced folder lock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map() {
        let body = br#"{"error":{"code":"nameAlreadyExists","message":"The name\nis taken"}}"#;
        let (c, m) = parse_error_body(body);
        assert_eq!(
            (c.as_str(), m.as_str()),
            ("nameAlreadyExists", "The nameis taken")
        );
        assert!(matches!(
            map_error(409, None, &c, &m, "/f"),
            Error::AlreadyExists { .. }
        ));
        assert!(matches!(
            map_error(412, None, "resourceModified", "", "/f"),
            Error::PreconditionFailed { .. }
        ));
        assert!(matches!(
            map_error(429, None, "activityLimitReached", "", "/f"),
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            map_error(
                503,
                Some(Duration::from_secs(2)),
                "serviceNotAvailable",
                "",
                "/f"
            ),
            Error::RateLimited {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            map_error(503, None, "serviceNotAvailable", "", "/f"),
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            map_error(507, None, "", "", "/f"),
            Error::QuotaExceeded { .. }
        ));
        assert!(matches!(
            map_error(403, None, "quotaLimitReached", "", "/f"),
            Error::QuotaExceeded { .. }
        ));
        assert!(matches!(
            map_error(401, None, "InvalidAuthenticationToken", "", "/f"),
            Error::Unauthorized { .. }
        ));
        assert!(matches!(
            map_error(403, None, "accessDenied", "", "/f"),
            Error::Forbidden { .. }
        ));
        assert!(matches!(
            map_error(404, None, "itemNotFound", "", "/f"),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            map_error(400, None, "invalidRequest", "", "/f"),
            Error::InvalidInput { .. }
        ));
        assert!(matches!(
            map_error(500, None, "generalException", "", "/f"),
            Error::Transient { .. }
        ));
        assert_eq!(
            parse_error_body(b"not json"),
            (String::new(), String::new())
        );
    }
}
