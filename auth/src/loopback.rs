//! The authorisation code grant with PKCE for a native app with a loopback redirect
//! (RFC 8252 §7.3, RFC 7636): listen on `127.0.0.1` at a port the system picks, send
//! the person's browser to the authorisation page with that address as the
//! `redirect_uri` and a random `state`, take the one redirect that carries the state
//! back, and exchange its code with the verifier and the same `redirect_uri`.

use crate::code_paste::{authorize_client, authorize_url, new_verifier};
use crate::device::{map_basic_error, TokenClient};
use crate::http::HttpAdapter;
use crate::tokens::{unix_now, TokenSet};
use crate::{AuthError, OAuthConfig, Result};
use oauth2::{AuthorizationCode, PkceCodeVerifier, RedirectUrl};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

/// The most of one browser request read (its request line and headers).
const MAX_REQUEST: usize = 8 * 1024;
/// How long one connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A started loopback login: show the person [`authorize_url`](Self::authorize_url)
/// (or open it in their browser), then [`LoopbackFlow::finish`] it. Holds the
/// listener, the PKCE verifier and the state (secrets; not shown by `Debug`).
pub struct PendingLoopbackLogin {
    listener: TcpListener,
    verifier: Zeroizing<String>,
    state: Zeroizing<String>,
    redirect_uri: String,
    authorize_url: String,
}

impl PendingLoopbackLogin {
    /// The page the person opens in a browser on this machine.
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// Where the browser brings the code back (`http://127.0.0.1:<port>/`).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The text a CLI prints while it waits.
    pub fn instructions(&self) -> String {
        format!(
            "To sign in, open this page in a browser on this computer and approve the access; \
             the browser then comes back here by itself:\n{}",
            self.authorize_url
        )
    }
}

impl std::fmt::Debug for PendingLoopbackLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLoopbackLogin")
            .field("redirect_uri", &self.redirect_uri)
            .field("verifier", &"<redacted>")
            .field("state", &"<redacted>")
            .finish()
    }
}

/// Logs an account in with the loopback flow (see the module docs). A public client:
/// no secret is sent.
#[derive(Clone, Debug)]
pub struct LoopbackFlow {
    config: OAuthConfig,
    client: Arc<TokenClient>,
    http: HttpAdapter,
}

/// What one browser request brought.
enum Arrival {
    /// The code, with the right state.
    Code(Zeroizing<String>),
    /// The authorisation server's error, with the right state.
    Refused(String),
    /// Not for us (another path, another or no state): answered, ignored.
    Ignored,
}

impl LoopbackFlow {
    /// A flow for `config` over a default [`HttpAdapter`]. [`AuthError::Config`] for
    /// an invalid configuration or one without an authorisation URL.
    pub fn new(config: OAuthConfig) -> Result<LoopbackFlow> {
        Self::with_http(config, HttpAdapter::new()?)
    }

    /// A flow for `config` over `http`.
    pub fn with_http(config: OAuthConfig, http: HttpAdapter) -> Result<LoopbackFlow> {
        let client = Arc::new(authorize_client(&config)?);
        Ok(LoopbackFlow {
            config,
            client,
            http,
        })
    }

    /// Listens on `127.0.0.1` (a port the system picks) and makes the verifier, the
    /// state and the URL the person opens.
    pub async fn start(&self) -> Result<PendingLoopbackLogin> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| AuthError::Config {
                    message: format!("cannot listen on 127.0.0.1 for the sign-in: {e}"),
                })?;
        let port = listener
            .local_addr()
            .map_err(|e| AuthError::Config {
                message: e.to_string(),
            })?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/");
        let (verifier, state) = (new_verifier()?, new_verifier()?);
        let extra = [("redirect_uri", redirect_uri.as_str()), ("state", &state)];
        let authorize_url = authorize_url(&self.config, &verifier, &extra)?;
        tracing::info!(provider = %self.config.provider, port, "loopback login started");
        Ok(PendingLoopbackLogin {
            listener,
            verifier,
            state,
            redirect_uri,
            authorize_url,
        })
    }

    /// Waits up to `wait` for the browser to come back with the code (requests on
    /// other paths or with another state are answered and ignored), then exchanges it
    /// with the verifier and the same `redirect_uri`. [`AuthError::Denied`] when the
    /// person refused, [`AuthError::Expired`] when nothing came in time,
    /// [`AuthError::Server`] for another refusal.
    pub async fn finish(&self, pending: PendingLoopbackLogin, wait: Duration) -> Result<TokenSet> {
        let code = tokio::time::timeout(wait, self.wait_for_code(&pending))
            .await
            .map_err(|_| AuthError::Expired)??;
        let redirect =
            RedirectUrl::new(pending.redirect_uri.clone()).map_err(|e| AuthError::Config {
                message: e.to_string(),
            })?;
        let resp = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_redirect_uri(std::borrow::Cow::Owned(redirect))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(map_basic_error)?;
        let tokens = TokenSet::from_response(&resp, unix_now(), &self.config.client_id);
        tracing::info!(provider = %self.config.provider, expires_at = ?tokens.expires_at,
            refresh = tokens.refresh_token.is_some(), "loopback login approved");
        Ok(tokens)
    }

    async fn wait_for_code(&self, p: &PendingLoopbackLogin) -> Result<Zeroizing<String>> {
        loop {
            let (stream, _) = p.listener.accept().await.map_err(|e| AuthError::Config {
                message: format!("the sign-in listener failed: {e}"),
            })?;
            let arrival = tokio::time::timeout(REQUEST_TIMEOUT, serve_one(stream, &p.state))
                .await
                .unwrap_or(Ok(Arrival::Ignored));
            match arrival {
                Ok(Arrival::Code(code)) => return Ok(code),
                Ok(Arrival::Refused(e)) if e == "access_denied" => return Err(AuthError::Denied),
                Ok(Arrival::Refused(error)) => {
                    return Err(AuthError::Server {
                        error,
                        description: None,
                    })
                }
                // A broken or foreign connection does not end the wait.
                Ok(Arrival::Ignored) | Err(_) => continue,
            }
        }
    }
}

/// Reads one request, answers it, and says what it brought.
async fn serve_one(mut stream: TcpStream, state: &str) -> std::io::Result<Arrival> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            return Ok(Arrival::Ignored);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let arrival = read_redirect(&buf, state);
    let (status, text) = match &arrival {
        Arrival::Code(_) => (
            "200 OK",
            "Signed in. You can close this tab and return to syncfabric.",
        ),
        Arrival::Refused(_) => ("200 OK", "The sign-in was refused. You can close this tab."),
        Arrival::Ignored => ("404 Not Found", "Not a sign-in answer."),
    };
    let body = format!("<!doctype html><title>syncfabric</title><p>{text}</p>\n");
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    let _ = stream.shutdown().await;
    Ok(arrival)
}

/// The code or error of a `GET /?…` request line whose `state` is ours (compared in
/// constant time).
fn read_redirect(request: &[u8], state: &str) -> Arrival {
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else {
        return Arrival::Ignored;
    };
    let Ok(url) = oauth2::url::Url::parse(&format!("http://127.0.0.1{target}")) else {
        return Arrival::Ignored;
    };
    if url.path() != "/" {
        return Arrival::Ignored;
    }
    let get = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v);
    let ours = get("state").is_some_and(|s| {
        s.len() == state.len() && openssl::memcmp::eq(s.as_bytes(), state.as_bytes())
    });
    if !ours {
        return Arrival::Ignored;
    }
    match (get("code"), get("error")) {
        (Some(code), None) if !code.is_empty() => Arrival::Code(Zeroizing::new(code.into_owned())),
        (_, Some(error)) => Arrival::Refused(error.chars().take(64).collect()),
        _ => Arrival::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_root_get_with_our_state_counts() {
        let st = "s".repeat(64);
        let req = |t: &str| format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
        match read_redirect(&req(&format!("/?state={st}&code=abc")), &st) {
            Arrival::Code(c) => assert_eq!(c.as_str(), "abc"),
            _ => panic!("the code"),
        }
        match read_redirect(&req(&format!("/?error=access_denied&state={st}")), &st) {
            Arrival::Refused(e) => assert_eq!(e, "access_denied"),
            _ => panic!("the refusal"),
        }
        for t in [
            "/favicon.ico".to_string(),
            format!("/?state={}&code=abc", "t".repeat(64)),
            "/?code=abc".to_string(),
            format!("/other?state={st}&code=abc"),
            format!("/?state={st}"),
        ] {
            assert!(
                matches!(read_redirect(&req(&t), &st), Arrival::Ignored),
                "{t}"
            );
        }
        assert!(matches!(
            read_redirect(
                format!("POST /?state={st}&code=a HTTP/1.1\r\n\r\n").as_bytes(),
                &st
            ),
            Arrival::Ignored
        ));
    }
}
