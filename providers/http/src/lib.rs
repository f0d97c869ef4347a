//! # syncfabric-http
//!
//! The HTTP plumbing the HTTP providers (WebDAV, OneDrive) share, written once: an
//! answer body read up to a cap, a transport failure turned into
//! [`Error::Transient`] **without the request's URL** in it, and `Retry-After` in
//! both of its forms.
//!
//! URLs are kept out of errors on purpose: some carry credentials. A Graph upload
//! session's `uploadUrl` is pre-authenticated (it holds a `tempauth` token), and
//! `reqwest::Error`'s `Display` names the URL.
//!
//! ```
//! # async fn demo(resp: reqwest::Response) -> syncfabric_core::Result<()> {
//! let retry = syncfabric_http::retry_after(resp.headers());
//! let body = syncfabric_http::read_capped(resp, 64 * 1024, "vault/vault.json").await?;
//! # let _ = (retry, body);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

use futures_util::StreamExt;
use std::time::{Duration, SystemTime};
use syncfabric_core::Error;

/// Reads an answer's body, at most `cap` bytes: a longer one (by `Content-Length` or
/// as it streams) is [`Error::Corrupt`], a body that breaks off [`Error::Transient`].
/// `what` names the request in errors (a path, never a URL).
pub async fn read_capped(
    resp: reqwest::Response,
    cap: usize,
    what: &str,
) -> Result<Vec<u8>, Error> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Error::Corrupt {
            message: format!("{what}: answer larger than the {cap}-byte cap"),
        });
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(e, what))?;
        if out.len() + chunk.len() > cap {
            return Err(Error::Corrupt {
                message: format!("{what}: answer larger than the {cap}-byte cap"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A request that failed on the way (connect, TLS, reset, timeout) as
/// [`Error::Transient`]: `what` and the chain of causes, without the URL.
pub fn transport_error(e: reqwest::Error, what: &str) -> Error {
    Error::Transient {
        message: format!("{what}: {}", with_causes(e.without_url())),
        source: None,
    }
}

/// An answer body that broke off, as [`Error::Transient`] (without the URL).
pub fn body_error(e: reqwest::Error, what: &str) -> Error {
    Error::Transient {
        message: format!("{what}: body interrupted: {}", with_causes(e.without_url())),
        source: None,
    }
}

/// `e` and its causes (`a: b: c`), so that e.g. a certificate failure is named
/// ("error sending request" alone says nothing). The causes are hyper, I/O and TLS
/// errors: no URL, no credentials. Capped at 1 KiB.
fn with_causes(e: reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let m = c.to_string();
        if !m.is_empty() && !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cause = c.source();
    }
    out.chars().take(1024).collect()
}

/// The `Retry-After` of an answer, in seconds or as an HTTP date (see
/// [`syncfabric_core::retry::parse_retry_after`]).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?;
    syncfabric_core::retry::parse_retry_after(v, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport failure never repeats the URL: a Graph upload URL carries a token.
    #[tokio::test]
    async fn transport_errors_leave_the_url_out() {
        // A port nothing listens on: the connection is refused.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/upload?tempauth=SECRET-TOKEN-123");
        let e = reqwest::Client::new().put(&url).send().await.unwrap_err();
        assert!(
            e.to_string().contains("SECRET-TOKEN-123"),
            "reqwest names it"
        );
        let ours = transport_error(e, "db");
        let text = format!("{ours} {ours:?}");
        assert!(!text.contains("SECRET-TOKEN-123"), "{text}");
        assert!(!text.contains("tempauth"), "{text}");
        assert!(matches!(ours, Error::Transient { .. }));
        assert!(text.starts_with("transient failure: db: "), "{text}");
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
