//! Upload sessions: files above the simple-upload limit go up in fragments of
//! `fragment_size` (a multiple of 320 KiB), each streamed from the body in 256 KiB
//! blocks, so memory stays flat whatever the file size.
//!
//! The file at the target path does not change until the last fragment commits it;
//! an upload that fails leaves the previous version current and the session cancelled.
//! A fragment cut by the network is sent again (the session keeps what it received;
//! `416` or a status query tells where to resume); a session that vanished (expired)
//! is restarted from the first byte, at most three times.

use crate::backend::OneDriveStorage;
use crate::client::{read_json, DriveBase, DriveItem};
use crate::error::{graph_error, no_server_lock};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use syncfabric_core::{Body, Entry, EntryKind, Error, Precondition, RemotePath, Result, Version};
use syncfabric_http::{body_length_error, read_range, transport_error};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Blocks a fragment is streamed in.
const BLOCK: usize = 256 * 1024;
/// Restarts of an expired session before giving up.
const MAX_RESTARTS: u32 = 3;

#[derive(Deserialize)]
struct SessionInfo {
    #[serde(rename = "uploadUrl", default)]
    upload_url: Option<String>,
    #[serde(rename = "nextExpectedRanges", default)]
    next: Vec<String>,
}

/// How one fragment PUT ended.
enum Frag {
    /// Accepted; the next byte the server expects.
    Accepted(Option<u64>),
    /// The last fragment committed the file.
    Done(Box<DriveItem>),
    /// 416: not the byte the server expects; ask where to resume.
    Resume,
    /// 404: the session is gone.
    Gone,
}

/// Why sending the fragments stopped.
enum Stop {
    /// The session vanished before the last fragment: start a new one.
    Restart,
    Fail(Error),
}

fn first_range_start(ranges: &[String]) -> Option<u64> {
    ranges
        .first()
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.trim().parse().ok())
}

impl OneDriveStorage {
    pub(crate) async fn session_upload(
        &self,
        base: &DriveBase,
        path: &RemotePath,
        body: &Body,
        pre: &Precondition,
    ) -> Result<Entry> {
        let what = path.to_string();
        // A body file of another length than declared fails before anything is sent.
        if let Body::File { path: p, len } = body {
            let shown = p.display().to_string();
            let meta = tokio::fs::metadata(p).await.map_err(|e| Error::Io {
                path: shown.clone(),
                source: e,
            })?;
            if meta.len() != *len {
                return Err(body_length_error(&shown, *len, meta.len()));
            }
        }
        let segs = self.full_segs(path);
        let pf = || Error::PreconditionFailed { path: what.clone() };
        let (create_url, if_match, item_id) = match pre {
            Precondition::UnderLock(_) => return Err(no_server_lock(&what)),
            Precondition::IfMatch(v) => {
                let item = self.item_at(base, path).await?.ok_or_else(pf)?;
                if item.is_folder() || !item.tag_is(v) {
                    return Err(pf());
                }
                (
                    self.id_url(base, &item.id, Some("createUploadSession")),
                    Some(v.clone()),
                    Some(item.id),
                )
            }
            Precondition::IfAbsent => {
                if self.item_at(base, path).await?.is_some() {
                    return Err(Error::AlreadyExists { path: what });
                }
                self.ensure_dirs(base, &segs[..segs.len() - 1], &what)
                    .await?;
                (
                    self.url_for(base, &segs, Some("createUploadSession")),
                    None,
                    None,
                )
            }
            Precondition::None => {
                self.ensure_dirs(base, &segs[..segs.len() - 1], &what)
                    .await?;
                (
                    self.url_for(base, &segs, Some("createUploadSession")),
                    None,
                    None,
                )
            }
        };
        let fail = matches!(pre, Precondition::IfAbsent);
        let mut restarts = 0;
        // Progress: the bytes the session has confirmed (a resumed fragment is not
        // counted twice; a new session starts the count again).
        let meter = syncfabric_core::progress::Meter::current();
        loop {
            if let Some(m) = &meter {
                m.begin_attempt(body.len());
            }
            let upload_url = self
                .create_session(&create_url, if_match.as_ref(), fail, &what)
                .await?;
            let sent = self
                .send_fragments(
                    base,
                    &upload_url,
                    body,
                    if_match.as_ref(),
                    item_id.as_deref(),
                    &what,
                )
                .await;
            match sent {
                Ok(item) => return self.written(path, &item, body.len()),
                Err(Stop::Restart) if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    tracing::debug!(path = %path, restarts, "upload session vanished; starting a new one");
                }
                Err(Stop::Restart) => {
                    return Err(Error::transient(format!(
                        "{what}: the upload session expired {restarts} times"
                    )))
                }
                Err(Stop::Fail(e)) => {
                    self.cancel_session(&upload_url).await;
                    return Err(e);
                }
            }
        }
    }

    /// `POST …/createUploadSession` (retried; an unused session simply expires).
    async fn create_session(
        &self,
        url: &str,
        if_match: Option<&Version>,
        fail: bool,
        what: &str,
    ) -> Result<String> {
        let body = serde_json::json!({
            "item": { "@microsoft.graph.conflictBehavior": if fail { "fail" } else { "replace" } }
        })
        .to_string();
        self.inner
            .retrier
            .run(|| async {
                let resp = self
                    .send(what, |c| {
                        let b = c
                            .post(url)
                            .header("Content-Type", "application/json")
                            .body(body.clone());
                        match if_match {
                            Some(v) => b.header("If-Match", v.as_str()),
                            None => b,
                        }
                    })
                    .await?;
                match resp.status().as_u16() {
                    200 | 201 => {}
                    412 => return Err(Error::PreconditionFailed { path: what.into() }),
                    404 if if_match.is_some() => {
                        return Err(Error::PreconditionFailed { path: what.into() })
                    }
                    409 if fail => return Err(Error::AlreadyExists { path: what.into() }),
                    _ => return Err(graph_error(resp, what).await),
                }
                let info: SessionInfo = read_json(resp, what).await?;
                let u = info.upload_url.ok_or_else(|| Error::Corrupt {
                    message: format!("{what}: an upload session without uploadUrl"),
                })?;
                match reqwest::Url::parse(&u) {
                    Ok(p) if matches!(p.scheme(), "https" | "http") => Ok(u),
                    _ => Err(Error::Corrupt {
                        message: format!("{what}: an uploadUrl that is not http(s)"),
                    }),
                }
            })
            .await
    }

    /// `DELETE uploadUrl`, best effort.
    async fn cancel_session(&self, url: &str) {
        if let Err(e) = self.inner.client.http().delete(url).send().await {
            tracing::debug!(error = %e, "could not cancel an upload session (it will expire)");
        }
    }

    /// Where the session wants the next byte (`GET uploadUrl`); `None` if it is gone.
    async fn session_next(&self, url: &str, what: &str) -> Result<Option<u64>> {
        self.inner
            .retrier
            .run(|| async {
                let resp = self
                    .inner
                    .client
                    .http()
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| transport_error(e, what))?;
                match resp.status().as_u16() {
                    200 => {
                        let info: SessionInfo = read_json(resp, what).await?;
                        Ok(Some(first_range_start(&info.next).unwrap_or(0)))
                    }
                    404 => Ok(None),
                    _ => Err(graph_error(resp, what).await),
                }
            })
            .await
    }

    async fn send_fragments(
        &self,
        base: &DriveBase,
        url: &str,
        body: &Body,
        if_match: Option<&Version>,
        item_id: Option<&str>,
        what: &str,
    ) -> std::result::Result<DriveItem, Stop> {
        // The caller's upload meter (this runs inside its scope).
        let meter = syncfabric_core::progress::Meter::current();
        let total = body.len();
        let frag = self.cfg().fragment_size;
        let mut offset = 0u64;
        let mut reported = 0u64;
        let mut resumes = 0u32;
        loop {
            let len = frag.min(total - offset);
            let last = offset + len == total;
            if let (true, Some(v), Some(id)) = (last, if_match, item_id) {
                // Graph documents the If-Match check when the session is created; check
                // again right before the commit, so a write that landed meanwhile is
                // not overwritten (the window left is this check → the commit).
                let now = self
                    .inner
                    .retrier
                    .run(|| self.item_by_id(base, id, what))
                    .await
                    .map_err(Stop::Fail)?;
                if !now.is_some_and(|it| it.tag_is(v)) {
                    return Err(Stop::Fail(Error::PreconditionFailed { path: what.into() }));
                }
            }
            let r = self
                .inner
                .retrier
                .run(|| self.put_fragment(url, body, offset, len, total, what))
                .await;
            match r {
                Ok(Frag::Accepted(next)) => {
                    let next = next.unwrap_or(offset + len);
                    if next <= offset || next > total {
                        // The server wants something we did not offer: ask it.
                        resumes += 1;
                        offset = self
                            .resume_point(url, what, last, total, &mut resumes)
                            .await?;
                    } else {
                        offset = next;
                    }
                    if let Some(m) = meter.as_ref().filter(|_| offset > reported) {
                        m.advance(offset - reported);
                        reported = offset;
                    }
                }
                Ok(Frag::Done(item)) => return Ok(*item),
                Ok(Frag::Resume) => {
                    resumes += 1;
                    offset = self
                        .resume_point(url, what, last, total, &mut resumes)
                        .await?;
                }
                Ok(Frag::Gone) if last => {
                    // The last fragment went out and the session is gone: it may have
                    // committed with the answer lost. Ambiguous: the caller
                    // (RetryingStorage) compares the stored bytes with ours.
                    return Err(Stop::Fail(Error::transient(format!(
                        "{what}: the upload session ended without answering the last fragment"
                    ))));
                }
                Ok(Frag::Gone) => return Err(Stop::Restart),
                Err(e) => return Err(Stop::Fail(e)),
            }
        }
    }

    async fn resume_point(
        &self,
        url: &str,
        what: &str,
        last: bool,
        total: u64,
        resumes: &mut u32,
    ) -> std::result::Result<u64, Stop> {
        if *resumes > 100 {
            return Err(Stop::Fail(Error::Corrupt {
                message: format!("{what}: the upload session keeps asking for other ranges"),
            }));
        }
        match self.session_next(url, what).await.map_err(Stop::Fail)? {
            // The server's word is checked: an offset past the body would make the next
            // fragment's length underflow.
            Some(n) if n > total => Err(Stop::Fail(Error::Corrupt {
                message: format!(
                    "{what}: the upload session asks for byte {n} of a {total}-byte body"
                ),
            })),
            Some(n) => Ok(n),
            None if last => Err(Stop::Fail(Error::transient(format!(
                "{what}: the upload session ended without answering the last fragment"
            )))),
            None => Err(Stop::Restart),
        }
    }

    /// One `PUT uploadUrl` with `Content-Range`, the bytes streamed from the body. No
    /// Authorization header: the upload URL is pre-authenticated.
    async fn put_fragment(
        &self,
        url: &str,
        body: &Body,
        offset: u64,
        len: u64,
        total: u64,
        what: &str,
    ) -> Result<Frag> {
        let last = offset + len == total;
        let failure: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let stream_body = match body {
            Body::Bytes(b) => {
                let s = b.slice(offset as usize..(offset + len) as usize);
                reqwest::Body::from(s)
            }
            // Only the honesty probe streams bodies: its range is read into memory
            // first, so a stream that fails fails before anything is sent.
            Body::Stream { .. } => reqwest::Body::from(read_range(body, offset, len, what).await?),
            Body::File {
                path,
                len: declared,
            } => {
                let stream = file_range_stream(
                    path.clone(),
                    offset,
                    len,
                    last.then_some(*declared),
                    failure.clone(),
                );
                reqwest::Body::wrap_stream(stream)
            }
        };
        let sent = self
            .inner
            .client
            .http()
            .put(url)
            .header("Content-Length", len)
            .header(
                "Content-Range",
                format!("bytes {}-{}/{}", offset, offset + len - 1, total),
            )
            .body(stream_body)
            .send()
            .await;
        // A body that failed to read is our failure, not the network's: not retried.
        if let Some(e) = failure.lock().ok().and_then(|mut g| g.take()) {
            return Err(e);
        }
        let resp = sent.map_err(|e| transport_error(e, what))?;
        match resp.status().as_u16() {
            202 => {
                let info: SessionInfo = read_json(resp, what).await?;
                Ok(Frag::Accepted(first_range_start(&info.next)))
            }
            200 | 201 => Ok(Frag::Done(Box::new(read_json(resp, what).await?))),
            416 => Ok(Frag::Resume),
            404 => Ok(Frag::Gone),
            409 => Err(Error::AlreadyExists { path: what.into() }),
            412 => Err(Error::PreconditionFailed { path: what.into() }),
            _ => Err(graph_error(resp, what).await),
        }
    }
}

/// `len` bytes of the file at `offset`, in [`BLOCK`]-sized pieces read as they are
/// sent. With `check_end = Some(declared)` (the last fragment) the file must end there.
/// A read failure or a short file is put in `failure` and ends the stream with an error,
/// which aborts the request (so the server never commits a short file).
fn file_range_stream(
    path: std::path::PathBuf,
    offset: u64,
    len: u64,
    check_end: Option<u64>,
    failure: Arc<Mutex<Option<Error>>>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    struct St {
        file: Option<tokio::fs::File>,
        path: std::path::PathBuf,
        offset: u64,
        left: u64,
        check_end: Option<u64>,
        failure: Arc<Mutex<Option<Error>>>,
        done: bool,
    }
    let st = St {
        file: None,
        path,
        offset,
        left: len,
        check_end,
        failure,
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        let shown = st.path.display().to_string();
        let fail = |st: &mut St, e: Error| {
            let msg = e.to_string();
            if let Ok(mut g) = st.failure.lock() {
                *g = Some(e);
            }
            st.done = true;
            Err(std::io::Error::other(msg))
        };
        if st.file.is_none() {
            match tokio::fs::File::open(&st.path).await {
                Ok(mut f) => {
                    if let Err(e) = f.seek(std::io::SeekFrom::Start(st.offset)).await {
                        let r = fail(
                            &mut st,
                            Error::Io {
                                path: shown,
                                source: e,
                            },
                        );
                        return Some((r, st));
                    }
                    st.file = Some(f);
                }
                Err(e) => {
                    let r = fail(
                        &mut st,
                        Error::Io {
                            path: shown,
                            source: e,
                        },
                    );
                    return Some((r, st));
                }
            }
        }
        if st.left == 0 {
            return None;
        }
        let want = (st.left as usize).min(BLOCK);
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            let f = st.file.as_mut()?;
            match f.read(&mut buf[filled..]).await {
                Ok(0) => {
                    let declared = st.check_end.unwrap_or(st.offset + st.left);
                    let e = body_length_error(&shown, declared, st.offset + filled as u64);
                    let r = fail(&mut st, e);
                    return Some((r, st));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let r = fail(
                        &mut st,
                        Error::Io {
                            path: shown,
                            source: e,
                        },
                    );
                    return Some((r, st));
                }
            }
        }
        st.offset += want as u64;
        st.left -= want as u64;
        if st.left == 0 {
            if let Some(declared) = st.check_end {
                // The last block: the file must end exactly here.
                let mut one = [0u8; 1];
                if let Some(f) = st.file.as_mut() {
                    if matches!(f.read(&mut one).await, Ok(n) if n > 0) {
                        let r = fail(&mut st, body_length_error(&shown, declared, declared + 1));
                        return Some((r, st));
                    }
                }
            }
        }
        Some((Ok(buf.freeze()), st))
    })
}

impl OneDriveStorage {
    /// A simple upload (≤ 4 MiB): see `docs.md` for the requests per precondition.
    pub(crate) async fn simple_upload(
        &self,
        base: &DriveBase,
        path: &RemotePath,
        body: &Body,
        pre: &Precondition,
    ) -> Result<Entry> {
        let what = path.to_string();
        let data = body_bytes(body, self.cfg().simple_upload_max).await?;
        let segs = self.full_segs(path);
        let (url, if_match) = match pre {
            Precondition::UnderLock(_) => return Err(no_server_lock(&what)),
            Precondition::IfMatch(v) => {
                let pf = || Error::PreconditionFailed { path: what.clone() };
                let item = self.item_at(base, path).await?.ok_or_else(pf)?;
                if item.is_folder() || !item.tag_is(v) {
                    return Err(pf());
                }
                (
                    self.id_url(base, &item.id, Some("content")),
                    Some(v.as_str().to_string()),
                )
            }
            Precondition::IfAbsent => (
                format!(
                    "{}?@microsoft.graph.conflictBehavior=fail",
                    self.url_for(base, &segs, Some("content"))
                ),
                None,
            ),
            Precondition::None => (
                format!(
                    "{}?@microsoft.graph.conflictBehavior=replace",
                    self.url_for(base, &segs, Some("content"))
                ),
                None,
            ),
        };
        for attempt in 0..2 {
            let resp = self
                .send(&what, |c| {
                    let b = c
                        .put(&url)
                        .header("Content-Type", "application/octet-stream")
                        .body(data.clone());
                    match &if_match {
                        Some(t) => b.header("If-Match", t.as_str()),
                        None => b,
                    }
                })
                .await?;
            match (resp.status().as_u16(), pre) {
                (200 | 201, _) => {
                    let it: DriveItem = read_json(resp, &what).await?;
                    return self.written(path, &it, data.len() as u64);
                }
                (412 | 404, Precondition::IfMatch(_)) => {
                    return Err(Error::PreconditionFailed { path: what })
                }
                (409, Precondition::IfAbsent) => return Err(Error::AlreadyExists { path: what }),
                (404, _) if attempt == 0 => {
                    // The parent folder is missing: create it, then once more.
                    self.ensure_dirs(base, &segs[..segs.len() - 1], &what)
                        .await?;
                }
                _ => return Err(graph_error(resp, &what).await),
            }
        }
        Err(Error::transient(format!(
            "{what}: the parent folder disappeared while writing"
        )))
    }

    /// The entry of a file just written; warns when the server reports another size
    /// than what was sent (SharePoint may rewrite files).
    pub(crate) fn written(&self, path: &RemotePath, it: &DriveItem, sent: u64) -> Result<Entry> {
        let e = self.entry(path.clone(), it)?;
        if e.kind != EntryKind::File {
            return Err(Error::Corrupt {
                message: format!("{path}: a file write returned a folder"),
            });
        }
        if e.size != sent {
            tracing::warn!(path = %path, sent, stored = e.size, "the server stored another size than was sent (rewritten by SharePoint?)");
        }
        Ok(e)
    }
}

/// The whole body of a small write, checked against its declared length.
async fn body_bytes(body: &Body, max: u64) -> Result<Bytes> {
    match body {
        Body::Bytes(b) => Ok(b.clone()),
        Body::Stream { len, .. } => {
            if *len > max {
                return Err(Error::InvalidInput {
                    message: "body too large for a simple upload".into(),
                });
            }
            read_range(body, 0, *len, "write body").await
        }
        Body::File { path, len } => {
            if *len > max {
                return Err(Error::InvalidInput {
                    message: "body too large for a simple upload".into(),
                });
            }
            let shown = path.display().to_string();
            let data = tokio::fs::read(path).await.map_err(|e| Error::Io {
                path: shown.clone(),
                source: e,
            })?;
            if data.len() as u64 != *len {
                return Err(body_length_error(&shown, *len, data.len() as u64));
            }
            Ok(Bytes::from(data))
        }
    }
}

/// For the fuzzer (`crate::fuzz`): an upload-session answer read as `create_session`,
/// `session_next` and `put_fragment` read it; `None` when it is not one.
pub(crate) fn fuzz_session(raw: &[u8]) -> Option<(Option<String>, Option<u64>)> {
    let info: SessionInfo = serde_json::from_slice(raw).ok()?;
    Some((info.upload_url, first_range_start(&info.next)))
}
