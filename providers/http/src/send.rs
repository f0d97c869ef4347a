//! [`BearerClient`]: the send loop of every OAuth provider, written once.
//!
//! A request goes out with the account's bearer token. On `401` the token is
//! reported as refused ([`BearerAuth::rejected`], which makes the next
//! [`BearerAuth::bearer`] refresh it) and the request is built and sent once more
//! with the fresh one; a second `401` is [`Error::Unauthorized`], worded by the
//! provider from its own error body. Every other answer, success or not, is the
//! caller's: what a `404` or a `409` means depends on the call.
//!
//! The token is only ever put into the `Authorization` header: never into `Debug`,
//! errors or logs. A failure on the way is [`transport_error`]: without the URL.
//!
//! ```no_run
//! # async fn demo(bc: &syncfabric_http::BearerClient) -> syncfabric_core::Result<()> {
//! let url = "https://api.example/v1/files/abc";
//! let resp = bc
//!     .send("vault/vault.json", |c| c.get(url), |resp| async move {
//!         syncfabric_core::Error::Unauthorized { message: format!("HTTP {}", resp.status()) }
//!     })
//!     .await?;
//! # let _ = resp;
//! # Ok(()) }
//! ```

use crate::transport_error;
use std::future::Future;
use std::sync::Arc;
use syncfabric_core::auth::BearerAuth;
use syncfabric_core::Error;

/// A `reqwest::Client` and the account whose bearer token goes with its requests.
/// Cheap to clone (the connection pool and the account are shared).
#[derive(Clone)]
pub struct BearerClient {
    http: reqwest::Client,
    bearer: Arc<dyn BearerAuth>,
    server: &'static str,
}

impl std::fmt::Debug for BearerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl BearerClient {
    /// Requests over `http` as the account behind `bearer`; `server` names the
    /// server in logs (e.g. "Dropbox").
    pub fn new(http: reqwest::Client, bearer: Arc<dyn BearerAuth>, server: &'static str) -> Self {
        BearerClient {
            http,
            bearer,
            server,
        }
    }

    /// The underlying client, for requests that must go **without** the token (a
    /// pre-authenticated upload or download URL, a long poll that takes none).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The account.
    pub fn bearer(&self) -> &Arc<dyn BearerAuth> {
        &self.bearer
    }

    /// Sends the request `build` makes, with the bearer token, and returns the
    /// answer whatever its status, but for `401`: then the token is reported as
    /// refused and `build` is sent once more with a fresh one. When that one is
    /// refused too, `refused` reads the answer into the provider's error, returned
    /// as [`Error::Unauthorized`] (any other kind it gives is turned into one, with
    /// its text). `build` is called once per attempt, so it must be cheap to
    /// repeat (clone a `Bytes` body). `what` names the request in errors and logs:
    /// a path, never a URL.
    pub async fn send<B, R, RF>(
        &self,
        what: &str,
        build: B,
        refused: R,
    ) -> Result<reqwest::Response, Error>
    where
        B: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        R: FnOnce(reqwest::Response) -> RF,
        RF: Future<Output = Error>,
    {
        let mut token = self.bearer.bearer().await?;
        let mut refreshed = false;
        loop {
            let resp = build(&self.http)
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| transport_error(e, what))?;
            if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if refreshed {
                return Err(match refused(resp).await {
                    e @ Error::Unauthorized { .. } => e,
                    other => Error::Unauthorized {
                        message: other.to_string(),
                    },
                });
            }
            tracing::debug!(what, server = self.server, "401; asking for a fresh token");
            self.bearer.rejected(&token).await?;
            token = self.bearer.bearer().await?;
            refreshed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use syncfabric_core::auth::SecretToken;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Hands out `token-N`, N counting the refusals.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl BearerAuth for Counting {
        async fn bearer(&self) -> syncfabric_core::Result<SecretToken> {
            Ok(SecretToken::new(format!(
                "token-{}",
                self.0.load(Ordering::SeqCst)
            )))
        }
        async fn rejected(&self, _t: &SecretToken) -> syncfabric_core::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// A server that answers 200 to `Bearer token-{good}` and 401 to anything
    /// else, one request per connection; the tokens it saw.
    async fn server(good: usize) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x?secret=1", l.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let auth = req
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: bearer "))
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let ok = auth == format!("token-{good}");
                seen2.lock().unwrap().push(auth);
                let status = if ok { "200 OK" } else { "401 Unauthorized" };
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (url, seen)
    }

    async fn refused(resp: reqwest::Response) -> Error {
        Error::Forbidden {
            message: format!("HTTP {}", resp.status().as_u16()),
        }
    }

    #[tokio::test]
    async fn one_refresh_on_401_then_unauthorized() {
        let http = ClientOptions::default().build().unwrap();
        // The first token is refused, the refreshed one taken.
        let (url, seen) = server(1).await;
        let bc = BearerClient::new(http.clone(), Arc::new(Counting::default()), "Test");
        let r = bc.send("p", |c| c.get(&url), refused).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(*seen.lock().unwrap(), ["token-0", "token-1"]);
        // Every token refused: two tries, then Unauthorized, without the URL.
        let (url, seen) = server(99).await;
        let bc = BearerClient::new(http, Arc::new(Counting::default()), "Test");
        let e = bc.send("p", |c| c.get(&url), refused).await.unwrap_err();
        assert!(
            matches!(&e, Error::Unauthorized { message } if message.contains("HTTP 401")),
            "{e:?}"
        );
        assert!(!format!("{e} {e:?} {bc:?}").contains("secret"));
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    use crate::ClientOptions;
}
