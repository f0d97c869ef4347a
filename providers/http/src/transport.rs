//! Failures on the way (connect, TLS, reset, timeout, a body that breaks off) as
//! [`Error::Transient`], **without the request's URL**: some URLs carry
//! credentials (a Graph upload session's `uploadUrl` holds a `tempauth` token), and
//! `reqwest::Error`'s `Display` names the URL.

use syncfabric_core::Error;

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
}
