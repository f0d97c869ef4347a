//! Resumable uploads (<https://developers.google.com/drive/api/guides/manage-uploads#resumable>),
//! for every create and every large update, so that a file appears (or changes) only when
//! its last byte has arrived:
//!
//! 1. a session: `POST /upload/drive/v2/files?uploadType=resumable` with the new
//!    file's metadata (create), or `PUT /upload/drive/v2/files/{id}?uploadType=resumable`
//!    with `If-Match` (update); the session URI comes back in `Location`;
//! 2. chunks `PUT` to it with `Content-Range: bytes a-b/total`, every chunk but the
//!    last a multiple of 256 KiB; `308 Resume Incomplete` with `Range: bytes=0-n`
//!    tells how much Drive holds, `200`/`201` with the file resource ends it;
//! 3. after a chunk whose answer was lost (reset, 5xx, throttled), a status query
//!    `Content-Range: bytes */total` (empty body) says where to go on from;
//! 4. a session Drive no longer knows (`404`: expired) is started again from byte 0,
//!    a few times at most.
//!
//! An update whose body fits in one chunk goes up in one `PUT
//! /upload/drive/v2/files/{id}?uploadType=media` with `If-Match` instead (one round
//! trip; the honesty probe's bursts must fit a second).
//!
//! Every chunk of an update carries the `If-Match` of the session's start as well
//! (Drive's reference does not say whether the condition is checked again when the
//! upload completes; the fake checks it then, and a `412` at any step is
//! `PreconditionFailed`). One chunk is in memory at a time. Progress (the caller's
//! meter, when the write runs in one) counts the bytes Drive says it holds.

use crate::backend::GdriveStorage;
use crate::client::{read_json, with_query, Meta, FIELDS};
use crate::error::ApiError;
use serde_json::json;
use std::time::Duration;
use syncfabric_core::progress::Meter;
use syncfabric_core::{Body, Error, Result};
use syncfabric_http::read_range;

/// How many times one write starts a new session after the last one expired.
const MAX_RESTARTS: usize = 3;

/// What an upload writes.
pub(crate) enum Target<'a> {
    /// A new file titled `title` in folder `parent`.
    Create { parent: &'a str, title: &'a str },
    /// New content for file `id`, if its etag is still `if_match`.
    Update {
        id: &'a str,
        if_match: Option<&'a str>,
    },
}

/// One chunk's (or status query's) answer.
enum Step {
    Done(Box<Meta>),
    /// Drive holds this many bytes.
    Holds(u64),
    /// The session expired (404).
    Gone,
}

/// The bytes a `308` says Drive holds (`Range: bytes=0-n`; none: 0).
fn held(resp: &reqwest::Response) -> Result<u64> {
    match resp.headers().get("range") {
        None => Ok(0),
        Some(r) => held_of(r.to_str().ok()),
    }
}

/// The byte count of a `Range: bytes=0-n` value (`None`: not text).
fn held_of(range: Option<&str>) -> Result<u64> {
    range
        .and_then(|s| s.trim().strip_prefix("bytes=0-"))
        .and_then(|n| n.parse::<u64>().ok())
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| Error::Corrupt {
            message: "Drive answered 308 with an unreadable Range".into(),
        })
}

impl GdriveStorage {
    /// Starts a session; its URI, or Drive's refusal (412, 404, …).
    async fn start_session(
        &self,
        target: &Target<'_>,
        total: u64,
        what: &str,
    ) -> Result<std::result::Result<String, ApiError>> {
        let client = &self.inner.client;
        let total = total.to_string();
        let q = [("uploadType", "resumable"), ("fields", FIELDS)];
        let create_url = with_query(&format!("{}/files", client.upload), &q)?;
        let update_url = match target {
            Target::Update { id, .. } => with_query(&format!("{}/files/{id}", client.upload), &q)?,
            Target::Create { .. } => create_url.clone(),
        };
        let answer = self
            .inner
            .retrier
            .run(|| async {
                let r = client
                    .send(what, |c| {
                        let b = match target {
                            Target::Create { parent, title } => c
                                .post(create_url.clone())
                                .header("Content-Type", "application/json; charset=UTF-8")
                                .body(
                                    json!({"title": title, "parents": [{"id": parent}],
                                           "mimeType": "application/octet-stream"})
                                    .to_string(),
                                ),
                            Target::Update { if_match, .. } => {
                                let b = c.put(update_url.clone());
                                match if_match {
                                    Some(v) => b.header("If-Match", *v),
                                    None => b,
                                }
                            }
                        };
                        b.header("X-Upload-Content-Type", "application/octet-stream")
                            .header("X-Upload-Content-Length", total.as_str())
                    })
                    .await?;
                match r {
                    Err(e) if e.is_retryable() => Err(e.into_error(what)),
                    other => Ok(other),
                }
            })
            .await?;
        match answer {
            Ok(resp) => match resp.headers().get("location").and_then(|v| v.to_str().ok()) {
                Some(loc) => Ok(Ok(loc.to_string())),
                None => Err(Error::Corrupt {
                    message: format!("{what}: Drive started an upload session without a Location"),
                }),
            },
            Err(e) => Ok(Err(e)),
        }
    }

    /// Sends bytes `offset..offset + len` of `body` (or, with `len == None`, asks
    /// for the session's status).
    async fn put_chunk(
        &self,
        url: &str,
        body: &Body,
        offset: u64,
        len: Option<u64>,
        if_match: Option<&str>,
        what: &str,
    ) -> Result<std::result::Result<Step, ApiError>> {
        let total = body.len();
        let (range, data) = match len {
            Some(n) => {
                let data = read_range(body, offset, n, what).await?;
                (format!("bytes {offset}-{}/{total}", offset + n - 1), data)
            }
            None => (format!("bytes */{total}"), bytes::Bytes::new()),
        };
        let r = self
            .inner
            .client
            .send(what, |c| {
                let b = c
                    .put(url)
                    .header("Content-Range", range.as_str())
                    .body(data.clone());
                match if_match {
                    Some(v) => b.header("If-Match", v),
                    None => b,
                }
            })
            .await?;
        match r {
            Ok(resp) if resp.status().as_u16() == 308 => Ok(Ok(Step::Holds(held(&resp)?))),
            Ok(resp) => Ok(Ok(Step::Done(Box::new(read_json(resp, what).await?)))),
            Err(e) if e.status == 404 => Ok(Ok(Step::Gone)),
            Err(e) if e.is_retryable() => Err(e.into_error(what)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// New content for file `id` in one request (`uploadType=media`), for bodies of
    /// at most one chunk: one round trip instead of two. Errors worth retrying are
    /// returned as errors (the caller's retrier decides); Drive's refusals as answers.
    async fn media_update(
        &self,
        id: &str,
        if_match: Option<&str>,
        body: &Body,
        what: &str,
    ) -> Result<std::result::Result<Meta, ApiError>> {
        let client = &self.inner.client;
        let url = with_query(
            &format!("{}/files/{id}", client.upload),
            &[("uploadType", "media"), ("fields", FIELDS)],
        )?;
        let data = read_range(body, 0, body.len(), what).await?;
        if let Some(m) = Meter::current() {
            m.begin_attempt(body.len());
        }
        let r = client
            .send(what, |c| {
                let b = c
                    .put(url.clone())
                    .header("Content-Type", "application/octet-stream")
                    .body(data.clone());
                match if_match {
                    Some(v) => b.header("If-Match", v),
                    None => b,
                }
            })
            .await?;
        match r {
            Ok(resp) => {
                let m: Meta = read_json(resp, what).await?;
                if let Some(mt) = Meter::current() {
                    mt.advance(body.len());
                }
                Ok(Ok(m))
            }
            Err(e) if e.is_retryable() => Err(e.into_error(what)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// Writes `body` to `target` through resumable sessions; the new file
    /// resource, or Drive's refusal (412: the etag changed; 404: the file is gone).
    pub(crate) async fn upload(
        &self,
        target: Target<'_>,
        body: &Body,
        what: &str,
    ) -> Result<std::result::Result<Meta, ApiError>> {
        let total = body.len();
        let chunk = self.inner.cfg.chunk_size;
        let if_match = match &target {
            Target::Update { if_match, .. } => *if_match,
            Target::Create { .. } => None,
        };
        if let Target::Update { id, if_match } = &target {
            if total <= chunk {
                return self.media_update(id, *if_match, body, what).await;
            }
        }
        let meter = Meter::current();
        let policy = self.inner.cfg.retry.clone();
        for _ in 0..=MAX_RESTARTS {
            let url = match self.start_session(&target, total, what).await? {
                Ok(u) => u,
                Err(e) => return Ok(Err(e)),
            };
            if let Some(m) = &meter {
                m.begin_attempt(total);
            }
            let mut offset = 0u64;
            let mut reported = 0u64;
            let mut query = false;
            let mut delays = policy.delays();
            let mut failures = 0usize;
            let mut stalls = 0usize;
            loop {
                let len = (!query).then(|| chunk.min(total - offset));
                let len = len.filter(|n| *n > 0 || total == 0);
                let step = match (len, total) {
                    // An empty file: the status query completes it.
                    (Some(0), 0) => self.put_chunk(&url, body, 0, None, if_match, what).await,
                    (l, _) => self.put_chunk(&url, body, offset, l, if_match, what).await,
                };
                match step {
                    Ok(Ok(Step::Done(m))) => {
                        if let Some(mt) = meter.as_ref().filter(|_| total > reported) {
                            mt.advance(total - reported);
                        }
                        return Ok(Ok(*m));
                    }
                    Ok(Ok(Step::Holds(n))) => {
                        if n > total {
                            return Err(Error::Corrupt {
                                message: format!(
                                    "{what}: Drive says it holds {n} of {total} bytes"
                                ),
                            });
                        }
                        stalls = if n <= offset && !query { stalls + 1 } else { 0 };
                        if stalls > 3 {
                            return Err(Error::transient(format!(
                                "{what}: Drive keeps refusing the chunk at byte {offset}"
                            )));
                        }
                        if let Some(mt) = meter.as_ref().filter(|_| n > reported) {
                            mt.advance(n - reported);
                            reported = n;
                        }
                        if n > offset || query {
                            failures = 0;
                            delays = policy.delays();
                        }
                        offset = n;
                        query = false;
                    }
                    Ok(Ok(Step::Gone)) => {
                        tracing::debug!(what, "the upload session expired; starting a new one");
                        break;
                    }
                    Ok(Err(e)) => return Ok(Err(e)),
                    Err(e) if e.is_retryable() && failures < policy.max_attempts => {
                        failures += 1;
                        let wait = e
                            .retry_after()
                            .or_else(|| delays.next())
                            .unwrap_or(Duration::from_secs(1));
                        if let Some(ra) = e.retry_after() {
                            self.inner.retrier.pacer().hold_off(ra);
                        }
                        tokio::time::sleep(wait).await;
                        query = true;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(Error::transient(format!(
            "{what}: the upload session expired {} times in a row",
            MAX_RESTARTS + 1
        )))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hostile_range_is_an_error_not_an_overflow() {
        assert_eq!(super::held_of(Some("bytes=0-99")).unwrap(), 100);
        for bad in [
            "bytes=0-18446744073709551615",
            "bytes=5-9",
            "items=0-1",
            "bytes=0-x",
        ] {
            assert!(super::held_of(Some(bad)).is_err(), "{bad}");
        }
        assert!(super::held_of(None).is_err());
    }
}
