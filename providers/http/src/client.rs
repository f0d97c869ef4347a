//! [`ClientOptions`]: the one way a provider builds its `reqwest::Client`.
//!
//! Every provider wants the same base: a bounded connect, idle connections let go
//! after a while, and redirects **not** followed by default (a Graph download
//! answers `302` to a pre-authenticated URL that must be fetched without the
//! token; a Drive `308` is "Resume Incomplete", not a redirect; a WebDAV `301` on
//! a write must not silently turn into a `GET`). On top of it a provider may ask
//! for a read timeout (no progress for that long), a user agent, redirects on the
//! same origin only, and one extra trusted certificate (added to the system's, or
//! the only anchor: a pinned self-signed server).
//!
//! ```
//! use std::time::Duration;
//! use syncfabric_http::{ClientOptions, Redirects};
//! let http = ClientOptions {
//!     read_timeout: Some(Duration::from_secs(60)),
//!     user_agent: Some("syncfabric-demo/1".into()),
//!     redirects: Redirects::SameOrigin { max: 5 },
//!     ..ClientOptions::default()
//! }
//! .build()?;
//! # let _ = http;
//! # Ok::<(), syncfabric_core::Error>(())
//! ```

use std::time::Duration;
use syncfabric_core::Error;

/// Which redirects the client follows by itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Redirects {
    /// None: every `3xx` is handed to the caller (the default).
    #[default]
    Refuse,
    /// At most `max` hops, each to the origin of the first request (same scheme,
    /// host and port) or from `http` to `https` on the same host; any other is
    /// handed to the caller as the `3xx` it is.
    SameOrigin {
        /// The most hops followed for one request.
        max: usize,
    },
}

/// One certificate trusted beyond (or instead of) the system's roots.
#[derive(Clone, PartialEq, Eq)]
pub enum TrustedCertificate {
    /// A PEM certificate trusted as well as the system's roots (a private CA).
    Added(Vec<u8>),
    /// A PEM certificate that is the **only** anchor, whatever host name it
    /// names: a pinned server (its fingerprint checked by whoever fetched it).
    Pinned(Vec<u8>),
}

impl std::fmt::Debug for TrustedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, pem) = match self {
            TrustedCertificate::Added(p) => ("Added", p),
            TrustedCertificate::Pinned(p) => ("Pinned", p),
        };
        write!(f, "{kind}(<{} bytes of PEM>)", pem.len())
    }
}

/// How to build a provider's HTTP client. [`Default`] is what the cloud providers
/// use: a 30 s connect timeout, idle connections closed after 30 s, no read
/// timeout, reqwest's user agent (none), no redirect followed, the system's roots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// The longest a connection (TCP and TLS) may take to open.
    pub connect_timeout: Duration,
    /// Fail a request when no byte arrives for this long (reset by each read): a
    /// stalled server, not a slow one. `None`: no such limit.
    pub read_timeout: Option<Duration>,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// The `User-Agent` of every request; `None` sends none.
    pub user_agent: Option<String>,
    /// Which redirects are followed.
    pub redirects: Redirects,
    /// One more trusted certificate, if any.
    pub trusted_certificate: Option<TrustedCertificate>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(30),
            read_timeout: None,
            pool_idle_timeout: Duration::from_secs(30),
            user_agent: None,
            redirects: Redirects::Refuse,
            trusted_certificate: None,
        }
    }
}

impl ClientOptions {
    /// The default options with another connect timeout.
    pub fn with_connect_timeout(connect_timeout: Duration) -> Self {
        ClientOptions {
            connect_timeout,
            ..ClientOptions::default()
        }
    }

    /// The client. [`Error::InvalidInput`] for a certificate that is not PEM or a
    /// user agent that is no header value. Building loads the system's root
    /// certificates (tens of milliseconds): build once per storage and clone.
    pub fn build(&self) -> Result<reqwest::Client, Error> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(self.pool_idle_timeout)
            .redirect(redirect_policy(self.redirects));
        if let Some(t) = self.read_timeout {
            b = b.read_timeout(t);
        }
        if let Some(ua) = &self.user_agent {
            let v =
                reqwest::header::HeaderValue::from_str(ua).map_err(|_| Error::InvalidInput {
                    message: "the user agent is not a valid header value".into(),
                })?;
            b = b.user_agent(v);
        }
        match &self.trusted_certificate {
            None => {}
            Some(TrustedCertificate::Added(pem)) => b = b.tls_certs_merge([certificate(pem)?]),
            Some(TrustedCertificate::Pinned(pem)) => {
                b = b
                    .tls_certs_only([certificate(pem)?])
                    .tls_danger_accept_invalid_hostnames(true)
            }
        }
        b.build().map_err(|e| Error::InvalidInput {
            message: format!("cannot build the HTTP client: {e}"),
        })
    }
}

fn certificate(pem: &[u8]) -> Result<reqwest::Certificate, Error> {
    reqwest::Certificate::from_pem(pem).map_err(|e| Error::InvalidInput {
        message: format!("trusted certificate: {e}"),
    })
}

fn redirect_policy(r: Redirects) -> reqwest::redirect::Policy {
    match r {
        Redirects::Refuse => reqwest::redirect::Policy::none(),
        Redirects::SameOrigin { max } => reqwest::redirect::Policy::custom(move |attempt| {
            let ok = attempt.previous().len() <= max
                && attempt
                    .previous()
                    .first()
                    .is_some_and(|first| same_origin_or_upgrade(first, attempt.url()));
            if ok {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }),
    }
}

/// Whether `to` is on the origin of `from`, or the same host moved from `http` to
/// `https`.
pub fn same_origin_or_upgrade(from: &reqwest::Url, to: &reqwest::Url) -> bool {
    from.host_str() == to.host_str()
        && (from.scheme() == to.scheme()
            && from.port_or_known_default() == to.port_or_known_default()
            || from.scheme() == "http" && to.scheme() == "https")
}

/// Whether `link` (from a server's answer) is on `origin` (as
/// [`reqwest::Url::origin`]'s `ascii_serialization`, e.g. `https://graph.example`):
/// a link the bearer token may follow. Compared as text: `https://graph.example.evil`
/// is another origin.
pub fn on_origin(link: &str, origin: &str) -> bool {
    link.starts_with(origin) && matches!(link.as_bytes().get(origin.len()), Some(b'/') | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn origins() {
        let a = url("http://h.example/a");
        assert!(same_origin_or_upgrade(&a, &url("http://h.example:80/b")));
        assert!(same_origin_or_upgrade(&a, &url("https://h.example/b")));
        assert!(!same_origin_or_upgrade(&url("https://h.example/"), &a));
        assert!(!same_origin_or_upgrade(&a, &url("http://h.example:81/")));
        assert!(!same_origin_or_upgrade(&a, &url("http://evil.example/")));
        assert!(on_origin("https://g.example/v1.0/x", "https://g.example"));
        assert!(on_origin("https://g.example", "https://g.example"));
        assert!(!on_origin("https://g.example.evil/x", "https://g.example"));
        assert!(!on_origin("https://other.example/", "https://g.example"));
    }

    #[test]
    fn options_build_and_refuse_bad_input() {
        ClientOptions::default().build().unwrap();
        ClientOptions {
            read_timeout: Some(Duration::from_secs(1)),
            user_agent: Some("syncfabric-test/1".into()),
            redirects: Redirects::SameOrigin { max: 3 },
            ..ClientOptions::default()
        }
        .build()
        .unwrap();
        let bad_ua = ClientOptions {
            user_agent: Some("a\nb".into()),
            ..ClientOptions::default()
        };
        assert!(matches!(bad_ua.build(), Err(Error::InvalidInput { .. })));
        let bad_pem = ClientOptions {
            trusted_certificate: Some(TrustedCertificate::Added(b"not a PEM".to_vec())),
            ..ClientOptions::default()
        };
        assert!(matches!(bad_pem.build(), Err(Error::InvalidInput { .. })));
        let shown = format!("{:?}", TrustedCertificate::Pinned(vec![0; 3]));
        assert_eq!(shown, "Pinned(<3 bytes of PEM>)");
    }
}
