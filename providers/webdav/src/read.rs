//! Reads: `GET` with a `Range`, bounded and checked against the version.

use crate::backend::WebDavStorage;
use crate::client::*;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use syncfabric_core::{Download, Error, RemotePath, Result, Version};
use syncfabric_http::body_error;

impl WebDavStorage {
    /// Reads `path` from byte `offset` on (an HTTP `Range` request). The server must
    /// answer `206`; a `200` (range ignored) is skipped up to `offset` locally.
    /// [`Error::NotFound`] if it does not exist.
    pub async fn read_from(&self, path: &RemotePath, offset: u64) -> Result<Download> {
        self.get(path, offset).await
    }

    pub(crate) async fn get(&self, path: &RemotePath, offset: u64) -> Result<Download> {
        let url = self.url_for(path, false);
        let what = path.to_string();
        let resp = self
            .send(
                || {
                    let b = self.request(Method::GET, url.clone());
                    if offset > 0 {
                        b.header("Range", format!("bytes={offset}-"))
                    } else {
                        b
                    }
                },
                &what,
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Error::NotFound { path: what });
        }
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(Download {
                version: None,
                size: Some(0),
                stream: Box::pin(futures_util::stream::empty()),
            });
        }
        if !status.is_success() {
            return Err(self.status_error(resp, &what).await);
        }
        let etag = etag_header(resp.headers());
        let version = if self.inner.traits.trust_etag && offset == 0 {
            etag.filter(|e| is_strong(e)).map(Version::new)
        } else {
            None
        };
        let skip = if status == StatusCode::PARTIAL_CONTENT {
            0
        } else {
            offset
        };
        let size = resp.content_length().map(|n| n.saturating_sub(skip));
        let expected = resp.content_length();
        let inner = resp.bytes_stream();
        // State: (inner stream, bytes seen, bytes still to skip, finished).
        let stream = futures_util::stream::unfold(
            (inner, 0u64, skip, false),
            move |(mut inner, mut seen, mut skip, done)| {
                let what = what.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        match inner.next().await {
                            Some(Ok(mut chunk)) => {
                                seen += chunk.len() as u64;
                                if skip > 0 {
                                    let s = skip.min(chunk.len() as u64);
                                    skip -= s;
                                    chunk = chunk.slice(s as usize..);
                                    if chunk.is_empty() {
                                        continue;
                                    }
                                }
                                return Some((Ok(chunk), (inner, seen, skip, false)));
                            }
                            Some(Err(e)) => {
                                return Some((Err(body_error(e, &what)), (inner, seen, skip, true)))
                            }
                            None => {
                                if expected.is_some_and(|n| n != seen) {
                                    return Some((
                                        Err(Error::transient(format!(
                                            "{what}: body ended early ({seen} bytes)"
                                        ))),
                                        (inner, seen, skip, true),
                                    ));
                                }
                                return None;
                            }
                        }
                    }
                }
            },
        );
        Ok(Download {
            version,
            size,
            stream: Box::pin(stream),
        })
    }
}
