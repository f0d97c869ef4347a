//! Upload sessions for bodies above [`DropboxConfig::upload_threshold`](crate::DropboxConfig):
//! `upload_session/start`, `append_v2` per chunk, `finish` with the same `commit`
//! (mode, `autorename: false`, `strict_conflict: true`) as a simple upload, so the
//! rev check holds for large files too.
//!
//! Chunks are read from the body one at a time (memory: one chunk). Progress (the
//! caller's [`Meter`], when it runs the write in one) counts the bytes the session
//! has accepted, each once. Each request is
//! retried on its own (429, 5xx, broken connections). When an append's answer is lost
//! the server may or may not hold its bytes: the next attempt then meets
//! `incorrect_offset` with `correct_offset` (upload_session/append_v2,
//! `UploadSessionLookupError.incorrect_offset`), and the upload goes on from there.

use crate::backend::{retry_worthy, write_error, DropboxStorage};
use crate::client::from_value;
use crate::error::ApiError;
use crate::hash::ContentHasher;
use serde_json::{json, Value};
use syncfabric_core::progress::Meter;
use syncfabric_core::{Body, Entry, Error, Precondition, RemotePath, Result};
use syncfabric_http::read_range;

/// How many `incorrect_offset` answers one upload accepts before it gives up.
const MAX_OFFSET_FIXES: usize = 16;

/// Hashes the body as it is sent: each byte once, in order, even when chunks are sent
/// again after a lost answer; and reports progress by the bytes the session holds.
struct Hashing {
    hasher: ContentHasher,
    upto: u64,
    /// The caller's upload meter, if it runs the write in one.
    meter: Option<Meter>,
    reported: u64,
}

impl Hashing {
    /// The session holds the first `offset` bytes (never counted twice).
    fn confirmed(&mut self, offset: u64) {
        if let Some(m) = self.meter.as_ref().filter(|_| offset > self.reported) {
            m.advance(offset - self.reported);
            self.reported = offset;
        }
    }

    fn feed(&mut self, offset: u64, chunk: &[u8]) {
        let end = offset + chunk.len() as u64;
        if end > self.upto && offset <= self.upto {
            self.hasher.update(&chunk[(self.upto - offset) as usize..]);
            self.upto = end;
        }
    }
}

impl DropboxStorage {
    /// One session request, retried by the storage's retrier on 429/5xx/transport
    /// failures; any other Dropbox error is returned for the caller.
    async fn session_call(
        &self,
        endpoint: &str,
        arg: &Value,
        chunk: bytes::Bytes,
        what: &str,
    ) -> Result<std::result::Result<Value, ApiError>> {
        let client = &self.inner.client;
        self.inner
            .retrier
            .run(|| async {
                match client.upload(endpoint, arg, chunk.clone(), what).await? {
                    Ok(v) => Ok(Ok(v)),
                    Err(e) => retry_worthy(e, what).map(Err),
                }
            })
            .await
    }

    /// Sends bytes `offset..` of `body` to session `id` until the server holds all
    /// of them.
    async fn append_all(
        &self,
        id: &str,
        mut offset: u64,
        body: &Body,
        hashing: &mut Hashing,
        what: &str,
    ) -> Result<()> {
        let total = body.len();
        let mut fixes = 0;
        while offset < total {
            let len = self.inner.cfg.chunk_size.min(total - offset);
            let chunk = read_range(body, offset, len, what).await?;
            hashing.feed(offset, &chunk);
            let arg = json!({
                "cursor": { "session_id": id, "offset": offset },
                "close": false,
            });
            match self
                .session_call("files/upload_session/append_v2", &arg, chunk, what)
                .await?
            {
                Ok(_) => offset += len,
                Err(e) => offset = self.fix_offset(e, hashing, &mut fixes, what)?,
            }
            hashing.confirmed(offset);
        }
        Ok(())
    }

    /// The offset to go on from after an `incorrect_offset` answer; any other error
    /// ends the upload. The server can only hold bytes we sent (and hashed).
    fn fix_offset(
        &self,
        e: ApiError,
        hashing: &Hashing,
        fixes: &mut usize,
        what: &str,
    ) -> Result<u64> {
        let Some(correct) = e.correct_offset() else {
            return Err(e.into_error(what));
        };
        *fixes += 1;
        if correct > hashing.upto || *fixes > MAX_OFFSET_FIXES {
            return Err(Error::Corrupt {
                message: format!(
                    "{what}: the upload session reports offset {correct}, past the {} bytes sent",
                    hashing.upto
                ),
            });
        }
        tracing::debug!(
            what,
            correct,
            "upload session: going on from the server's offset"
        );
        Ok(correct)
    }

    /// Writes `body` through an upload session with write mode `mode`.
    pub(crate) async fn session_upload(
        &self,
        path: &RemotePath,
        body: &Body,
        mode: Value,
        pre: &Precondition,
    ) -> Result<Entry> {
        let what = path.to_string();
        let total = body.len();
        let mut hashing = Hashing {
            hasher: ContentHasher::new(),
            upto: 0,
            meter: Meter::current(),
            reported: 0,
        };
        if let Some(m) = &hashing.meter {
            m.begin_attempt(total);
        }
        let first_len = self.inner.cfg.chunk_size.min(total);
        let first = read_range(body, 0, first_len, &what).await?;
        hashing.feed(0, &first);
        let started = self
            .session_call(
                "files/upload_session/start",
                &json!({"close": false}),
                first,
                &what,
            )
            .await?
            .map_err(|e| e.into_error(&what))?;
        let id = started
            .get("session_id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Corrupt {
                message: format!("{what}: upload_session/start without a session_id"),
            })?
            .to_string();
        hashing.confirmed(first_len);
        self.append_all(&id, first_len, body, &mut hashing, &what)
            .await?;
        let hash = std::mem::take(&mut hashing.hasher).finish();
        let arg = json!({
            "cursor": { "session_id": id, "offset": total },
            "commit": {
                "path": self.dbx_path(path),
                "mode": mode,
                "autorename": false,
                "strict_conflict": true,
                "mute": true,
            },
            "content_hash": hash,
        });
        match self
            .session_call(
                "files/upload_session/finish",
                &arg,
                bytes::Bytes::new(),
                &what,
            )
            .await?
        {
            Ok(v) => self.written(path, &from_value(v, &what)?, total, &hash),
            // A retried finish whose first attempt committed (its answer lost) finds
            // the session gone: whether the file landed is unknown, so the failure is
            // ambiguous, and RetryingStorage settles it by comparing contents.
            Err(e) if e.has("lookup_failed") => Err(Error::transient(format!(
                "{what}: the upload session is gone at finish ({})",
                e.summary
            ))),
            Err(e) => Err(write_error(e, pre, &what)),
        }
    }
}
