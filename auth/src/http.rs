//! The small adapter that lets the `oauth2` crate send its requests through the
//! project's one `reqwest` 0.13 client (oauth2 5's own reqwest support is 0.12).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The largest answer we read from an authorisation server. Token answers are a few
/// KiB; anything larger is not OAuth 2.
const MAX_BODY: usize = 256 * 1024;

/// An HTTP client for [`oauth2`]'s `request_async`: sends each request through a
/// `reqwest::Client`, follows no redirects (a token endpoint that redirects would
/// receive the device code or refresh token at another host), and reads at most
/// 256 KiB of an answer. Cheap to clone (the client is shared).
#[derive(Clone, Debug)]
pub struct HttpAdapter {
    client: reqwest::Client,
}

/// A transport failure of [`HttpAdapter`]: the request could not be sent or its answer
/// not read. Its text never contains the request body (which carries secrets).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl HttpAdapter {
    /// A client with a 30 s connect timeout and a 60 s timeout per request, no
    /// redirects, TLS through the system OpenSSL.
    pub fn new() -> crate::Result<HttpAdapter> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| crate::AuthError::Config {
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(HttpAdapter { client })
    }

    /// Uses `client` as it is (tests pass one without timers so that tokio's paused
    /// clock only moves while the device flow sleeps). Build it with
    /// `redirect(Policy::none())`: this adapter does not change the client's policy.
    pub fn from_client(client: reqwest::Client) -> HttpAdapter {
        HttpAdapter { client }
    }

    pub(crate) async fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut req = self.client.request(parts.method, &url).body(body);
        for (name, value) in parts.headers.iter() {
            req = req.header(name, value);
        }
        // The URL has no secret in it (oauth2 sends them in the form body).
        tracing::debug!(%url, "oauth request");
        let mut resp = req
            .send()
            .await
            .map_err(|e| HttpError(format!("{url}: {}", error_chain(&e))))?;
        let status = resp.status();
        let mut builder = http::Response::builder().status(status);
        for (name, value) in resp.headers().iter() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| HttpError(format!("{url}: reading the answer: {}", error_chain(&e))))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError(format!(
                    "{url}: the answer is larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(%url, status = status.as_u16(), bytes = body.len(), "oauth answer");
        builder
            .body(body)
            .map_err(|e| HttpError(format!("{url}: {e}")))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl<'c> oauth2::AsyncHttpClient<'c> for HttpAdapter {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
