//! Writes: `PUT` in place or to a temporary name then `MOVE`, Nextcloud's chunked
//! uploads, and the version a write leaves.

use crate::backend::WebDavStorage;
use crate::client::*;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use syncfabric_core::{
    Body, Entry, EntryKind, Error, Precondition, RemotePath, Result, Storage, Version,
};
use syncfabric_http::{read_capped, transport_error};

/// From this size on, a write whose answer has no strong ETag returns the content-hash
/// version at once instead of waiting (Apache: about a second) for a strong ETag.
pub const LARGE_UPLOAD: u64 = 64 * 1024 * 1024;

impl WebDavStorage {
    /// PUT `body` to `url`; with `hash`, also the SHA-256 of what was sent (bytes in
    /// memory are always hashed: it is cheap).
    pub(crate) async fn put(
        &self,
        url: Url,
        body: &Body,
        headers: HeaderMap,
        hash: bool,
        what: &str,
    ) -> Result<(reqwest::Response, Option<String>)> {
        if let Body::Bytes(bytes) = body {
            return self.put_bytes(url, bytes, headers, what).await;
        }
        let (path, len) = match body {
            Body::File { path, len } => (path, *len),
            Body::Stream { len, open } => {
                return self
                    .put_stream(url, open(), *len, headers, hash, what)
                    .await
            }
            Body::Bytes(_) => unreachable_body(what)?,
        };
        self.put_file(url, path, len, headers, hash, what).await
    }

    /// PUT bytes in memory, with their SHA-256.
    pub(crate) async fn put_bytes(
        &self,
        url: Url,
        bytes: &Bytes,
        headers: HeaderMap,
        what: &str,
    ) -> Result<(reqwest::Response, Option<String>)> {
        // In memory already: send as is, with an explicit Content-Length (nginx
        // answers 500 to a PUT without one, even for zero bytes).
        let digest = hex(&openssl::sha::sha256(bytes));
        let resp = self
            .request(Method::PUT, url)
            .headers(headers)
            .header("Content-Length", bytes.len())
            .body(bytes.clone())
            .send()
            .await
            .map_err(|e| transport_error(e, what))?;
        Ok((resp, Some(digest)))
    }

    /// PUT a [`Body::File`] of `len` bytes at `path`; with `hash`, also the SHA-256 of
    /// what was sent.
    pub(crate) async fn put_file(
        &self,
        url: Url,
        path: &std::path::Path,
        len: u64,
        headers: HeaderMap,
        hash: bool,
        what: &str,
    ) -> Result<(reqwest::Response, Option<String>)> {
        // Progress: this provider reads the file itself, so it counts the blocks it
        // hands to the request (at most 4 MiB ahead of the socket).
        let meter = syncfabric_core::progress::Meter::current();
        if let Some(m) = &meter {
            m.begin_attempt(len);
        }
        // A reader thread reads (and, when asked, hashes) 1 MiB blocks while the
        // request sends the previous ones (at most 4 in flight: bounded memory). A file
        // shorter or longer than declared (it changed under us) aborts the request:
        // never completed short.
        let digest_slot: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let slot = digest_slot.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || send_file_blocks(&path, len, hash, meter, slot, tx));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let resp = self
            .request(Method::PUT, url)
            .headers(headers)
            .header("Content-Length", len)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| transport_error(e, what))?;
        let digest = digest_slot.lock().ok().and_then(|mut g| g.take());
        Ok((resp, digest))
    }

    /// PUT a [`Body::Stream`] of `len` bytes (hashed on the way when `hash`). When the
    /// stream fails or yields another length, the request is abandoned mid-body and the
    /// error returned is the stream's own (not the transport error it causes).
    pub(crate) async fn put_stream(
        &self,
        url: Url,
        stream: syncfabric_core::ByteStream,
        len: u64,
        headers: HeaderMap,
        hash: bool,
        what: &str,
    ) -> Result<(reqwest::Response, Option<String>)> {
        struct State {
            stream: syncfabric_core::ByteStream,
            hasher: Option<openssl::sha::Sha256>,
            sent: u64,
        }
        let failure: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let digest: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let (fail_slot, digest_slot) = (failure.clone(), digest.clone());
        let name = what.to_string();
        let init = State {
            stream,
            hasher: hash.then(openssl::sha::Sha256::new),
            sent: 0,
        };
        let body = futures_util::stream::unfold(Some(init), move |st| {
            let (fail_slot, digest_slot, name) =
                (fail_slot.clone(), digest_slot.clone(), name.clone());
            async move {
                let mut st = st?;
                let fail = |e: Error| {
                    let io = std::io::Error::other(e.to_string());
                    if let Ok(mut g) = fail_slot.lock() {
                        g.get_or_insert(e);
                    }
                    Some((Err(io), None))
                };
                match st.stream.next().await {
                    Some(Ok(chunk)) => {
                        st.sent += chunk.len() as u64;
                        if st.sent > len {
                            return fail(Error::InvalidInput {
                                message: format!("{name}: body is longer than its declared length"),
                            });
                        }
                        if let Some(h) = st.hasher.as_mut() {
                            h.update(&chunk);
                        }
                        Some((Ok(chunk), Some(st)))
                    }
                    Some(Err(e)) => fail(e),
                    None if st.sent != len => fail(Error::InvalidInput {
                        message: format!("{name}: body is shorter than its declared length"),
                    }),
                    None => {
                        if let (Some(h), Ok(mut g)) = (st.hasher.take(), digest_slot.lock()) {
                            *g = Some(hex(&h.finish()));
                        }
                        None
                    }
                }
            }
        });
        let sent = self
            .request(Method::PUT, url)
            .headers(headers)
            .header("Content-Length", len)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await;
        let stream_failure = failure.lock().ok().and_then(|mut g| g.take());
        match (sent, stream_failure) {
            (_, Some(e)) => Err(e),
            (Err(e), None) => Err(transport_error(e, what)),
            (Ok(resp), None) => Ok((resp, digest.lock().ok().and_then(|mut g| g.take()))),
        }
    }

    pub(crate) async fn mkcol(&self, path: &RemotePath) -> Result<StatusCode> {
        self.mkcol_url(&self.url_for(path, true), &path.to_string())
            .await
    }

    /// `MKCOL url`: the status as the server answered it (the body read and dropped).
    pub(crate) async fn mkcol_url(&self, url: &Url, what: &str) -> Result<StatusCode> {
        let resp = self
            .send(
                || {
                    self.request(
                        Method::from_bytes(b"MKCOL").unwrap_or(Method::PUT),
                        url.clone(),
                    )
                },
                what,
            )
            .await?;
        let s = resp.status();
        let _ = read_capped(resp, 64 * 1024, what).await;
        Ok(s)
    }

    /// MOVE `from` to `to` with `headers` (the condition and `Overwrite`, see
    /// [`move_conditions`](Self::move_conditions)).
    pub(crate) async fn move_to(
        &self,
        from: &Url,
        to: &Url,
        headers: &HeaderMap,
        what: &str,
    ) -> Result<reqwest::Response> {
        self.send(
            || {
                self.request(
                    Method::from_bytes(b"MOVE").unwrap_or(Method::PUT),
                    from.clone(),
                )
                .headers(headers.clone())
                .header("Destination", to.as_str())
            },
            what,
        )
        .await
    }

    /// Deletes a temporary upload until it is gone: a server may still be finishing
    /// the aborted request (rclone creates the file after the client went away).
    pub(crate) async fn remove_temp(
        &self,
        tmp: &RemotePath,
        url: &Url,
        lock: &HeaderMap,
        what: &str,
    ) {
        for _ in 0..15 {
            self.delete_url(url, lock, what).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if matches!(self.propfind(tmp, false, "0").await, Ok(None)) {
                return;
            }
        }
        tracing::warn!(path = what, "could not remove a temporary upload");
    }

    pub(crate) async fn delete_url(&self, url: &Url, lock: &HeaderMap, what: &str) {
        if let Ok(r) = self
            .send(
                || {
                    self.request(Method::DELETE, url.clone())
                        .headers(lock.clone())
                },
                what,
            )
            .await
        {
            let _ = read_capped(r, 64 * 1024, what).await;
        }
    }

    /// The upload itself, with parent creation on 409/404. Returns the final answer.
    /// A successful PUT's entry: its version is the strong ETag the answer (or a
    /// look-up right after, waiting out a weak one) gives where the profile trusts
    /// ETags, else the content hash of what was sent.
    pub(crate) async fn entry_after_put(
        &self,
        path: &RemotePath,
        body: &Body,
        resp: reqwest::Response,
        digest: Option<String>,
        deweaken: bool,
    ) -> Result<Entry> {
        let t = self.inner.traits;
        let what = path.to_string();
        let put_etag = header_str(resp.headers(), "oc-etag")
            .map(|e| {
                if e.starts_with('"') {
                    e
                } else {
                    format!("\"{e}\"")
                }
            })
            .or_else(|| etag_header(resp.headers()));
        // The server's clock (its Date header), so `modified` is comparable with the
        // getlastmodified of other files (the lease lock relies on it).
        let now = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .or_else(|| Some(SystemTime::now()));
        let _ = read_capped(resp, 64 * 1024, &what).await;
        let mut hash_version = digest.map(|d| Version::new(format!("{HASH_PREFIX}{d}")));
        if hash_version.is_none() && !deweaken {
            hash_version = Some(hash_body(body).await?);
        }
        let entry = |version: Option<Version>| Entry {
            path: path.clone(),
            kind: EntryKind::File,
            size: body.len(),
            modified: now,
            version,
        };
        if !t.trust_etag {
            return Ok(entry(hash_version));
        }
        if let Some(tag) = put_etag.filter(|e| is_strong(e) && !self.temp_uploads()) {
            return Ok(entry(Some(Version::new(tag))));
        }
        // No strong ETag in the answer: read it now, and wait for it to be strong
        // while checking nobody wrote in between. The PUT has landed by now, so a
        // look-up that fails for a passing reason (a reset, a 503) must not fail
        // the write (the retry layer would send the whole body again): the version
        // is then the hash of what was sent, as when the server gives no ETag.
        let first = match self.propfind(path, false, "0").await {
            Ok(first) => first,
            Err(e) if e.is_retryable() => {
                tracing::debug!(%path, error = %e, "ETag look-up after PUT failed; using the content hash");
                let v = match hash_version {
                    Some(v) => v,
                    // Not hashed on the way (Apache): read the body once more.
                    None => hash_body(body).await?,
                };
                return Ok(entry(Some(v)));
            }
            Err(e) => return Err(e),
        };
        let tag = first
            .as_ref()
            .and_then(|l| l.first())
            .and_then(|r| r.etag.clone());
        match tag {
            Some(tag) if is_strong(&tag) => Ok(entry(Some(Version::new(tag)))),
            Some(tag) if deweaken => Ok(entry(Some(Version::new(strip_weak(&tag))))),
            // A large upload does not wait a second for the ETag to turn strong: its
            // version is the hash of what was sent (see the crate docs).
            Some(_) if body.len() >= LARGE_UPLOAD && hash_version.is_some() => {
                Ok(entry(hash_version))
            }
            Some(tag) => match self.wait_strong(path, Some(&tag)).await {
                Ok(Some(e)) => Ok(entry(e.version)),
                Ok(None) => Ok(entry(hash_version)),
                Err(e) if e.is_retryable() => {
                    tracing::debug!(%path, error = %e, "strong-ETag wait failed; using the content hash");
                    Ok(entry(hash_version))
                }
                Err(e) => Err(e),
            },
            None => {
                let v = match hash_version {
                    Some(v) => v,
                    None => hash_body(body).await?,
                };
                Ok(entry(Some(v)))
            }
        }
    }

    pub(crate) async fn upload(
        &self,
        path: &RemotePath,
        body: &Body,
        pre: &Precondition,
        if_match: Option<String>,
        exists: bool,
        hash: bool,
    ) -> Result<(reqwest::Response, Option<String>)> {
        let t = self.inner.traits;
        let what = path.to_string();
        let target = self.url_for(path, false);
        // Under a server lock every request that changes something in the locked
        // folder carries the token (the temporary file, the MOVE, the clean-up too).
        let lock = self.lock_headers(pre, None)?;
        let target_lock = if exists {
            self.lock_headers(pre, Some(path))?
        } else {
            lock.clone()
        };
        if t.nextcloud_chunking && body.len() > self.inner.cfg.chunk_size {
            let cond = self.move_conditions(&target, pre, if_match.as_deref(), target_lock)?;
            return self.nextcloud_chunked(path, body, cond).await;
        }
        if self.temp_uploads() {
            let name = path.file_name().unwrap_or("");
            if !t.literal_destination && name.contains(['?', ';']) {
                return Err(Error::InvalidInput {
                    message: format!(
                        "{what}: this server ({}) may move a file to the wrong name when it holds '?' or ';'",
                        self.inner.profile.name()
                    ),
                });
            }
            let cond = self.move_conditions(&target, pre, if_match.as_deref(), target_lock)?;
            return self.upload_via_temp(path, body, &lock, cond).await;
        }
        let mut headers = target_lock;
        if let Some(tag) = &if_match {
            headers.insert(
                "If-Match",
                HeaderValue::from_str(tag).map_err(|_| Error::InvalidInput {
                    message: format!("{what}: version is not a valid ETag"),
                })?,
            );
        }
        if matches!(pre, Precondition::IfAbsent) && t.server_if_none_match {
            headers.insert("If-None-Match", HeaderValue::from_static("*"));
        }
        let mut attempt = 0;
        loop {
            let (resp, digest) = self
                .put(target.clone(), body, headers.clone(), hash, &what)
                .await?;
            if attempt == 0 && self.parent_was_missing(path, resp.status()).await? {
                attempt += 1;
                continue;
            }
            return Ok((resp, digest));
        }
    }

    /// Whether writes go to a temporary name and are moved into place:
    /// [`WebDavConfig::temp_uploads`], else the profile's choice.
    pub(crate) fn temp_uploads(&self) -> bool {
        self.inner
            .cfg
            .temp_uploads
            .unwrap_or(self.inner.traits.temp_then_move)
    }

    /// The condition a write carries, in the form a `MOVE` of an upload onto `target`
    /// needs: the lock's `If` lists (`lock`, built for the target), the expected ETag as
    /// a list tagged with the destination (`If: <target> (["etag"])`, RFC 4918 §10.4:
    /// a tagged list applies to the resource it names, where `If-Match` on a MOVE is
    /// about the source, i.e. the upload), and `Overwrite: F` for a create-only write
    /// (RFC 4918 §10.6: 412 when the destination exists).
    pub(crate) fn move_conditions(
        &self,
        target: &Url,
        pre: &Precondition,
        if_match: Option<&str>,
        lock: HeaderMap,
    ) -> Result<HeaderMap> {
        let mut h = lock;
        if let Some(tag) = if_match {
            let list = format!("<{}> ([{tag}])", target.as_str());
            let value = match h.get("If").and_then(|v| v.to_str().ok()) {
                Some(held) => format!("{held} {list}"),
                None => list,
            };
            h.insert(
                "If",
                HeaderValue::from_str(&value).map_err(|_| Error::InvalidInput {
                    message: format!("{target}: version is not a valid ETag"),
                })?,
            );
        }
        let create_only = matches!(pre, Precondition::IfAbsent);
        h.insert(
            "Overwrite",
            HeaderValue::from_static(if create_only { "F" } else { "T" }),
        );
        Ok(h)
    }

    /// Uploads to `.<name>.syncfabric-<random>.tmp` in the target's folder (carrying
    /// `lock`, the folder's lock headers), checks its size, and MOVEs it over the
    /// target with `cond` ([`move_conditions`](Self::move_conditions)); the temporary
    /// file is removed on any failure. A cut upload can then only leave a partial
    /// temporary file (removed too), never a truncated target.
    pub(crate) async fn upload_via_temp(
        &self,
        path: &RemotePath,
        body: &Body,
        lock: &HeaderMap,
        cond: HeaderMap,
    ) -> Result<(reqwest::Response, Option<String>)> {
        let what = path.to_string();
        let target = self.url_for(path, false);
        let name = path.file_name().unwrap_or("file");
        let tmp_name = format!(
            ".{}.syncfabric-{}.tmp",
            name.chars().take(64).collect::<String>(),
            random_hex(8)
        );
        let tmp = match path.parent() {
            Some(p) => p.join(&tmp_name)?,
            None => RemotePath::parse(&tmp_name)?,
        };
        let tmp_url = self.url_for(&tmp, false);
        let mut attempt = 0;
        let (resp, digest) = loop {
            let (resp, digest) = match self
                .put(tmp_url.clone(), body, lock.clone(), true, &what)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    // A cut upload may have left a partial temporary file: remove it.
                    self.remove_temp(&tmp, &tmp_url, lock, &what).await;
                    return Err(e);
                }
            };
            if attempt == 0 && self.parent_was_missing(path, resp.status()).await? {
                attempt += 1;
                continue;
            }
            break (resp, digest);
        };
        if !resp.status().is_success() || resp.status() == StatusCode::MULTI_STATUS {
            // Refused (a 207 too: Apache refuses a new name under someone else's lock
            // that way), so nothing was stored: the caller maps the answer as it maps
            // a direct PUT's.
            return Ok((resp, digest));
        }
        let _ = read_capped(resp, 64 * 1024, &what).await;
        let moved = self
            .move_temp_into_place(&tmp, &tmp_url, &target, body.len(), &cond, &what)
            .await;
        match moved {
            Ok(resp) if resp.status().is_success() && resp.status() != StatusCode::MULTI_STATUS => {
                Ok((resp, digest))
            }
            Ok(resp) => {
                // Any failure: the temporary file must not stay behind (if the MOVE
                // did happen and only its answer was lost, it is already gone).
                self.remove_temp(&tmp, &tmp_url, lock, &what).await;
                Ok((resp, digest))
            }
            Err(e) => {
                self.remove_temp(&tmp, &tmp_url, lock, &what).await;
                Err(e)
            }
        }
    }

    /// Verifies the temporary upload `tmp` is complete (`len` bytes), then MOVEs it onto
    /// `target` with the headers `cond`. The answer is returned as it is, except a 404
    /// (never `NotFound` for a write).
    pub(crate) async fn move_temp_into_place(
        &self,
        tmp: &RemotePath,
        tmp_url: &Url,
        target: &Url,
        len: u64,
        cond: &HeaderMap,
        what: &str,
    ) -> Result<reqwest::Response> {
        let stat = self.propfind(tmp, false, "0").await?;
        if stat
            .as_ref()
            .and_then(|l| l.first())
            .and_then(|r| r.content_length)
            != Some(len)
        {
            return Err(Error::transient(format!(
                "{what}: uploaded temporary file is incomplete"
            )));
        }
        let mut resp = self.move_to(tmp_url, target, cond, what).await?;
        for attempt in 0..10u32 {
            // rclone answers 404 when a concurrent MOVE removed the destination
            // between its checks; the temporary file is still there: try again.
            if resp.status() != StatusCode::NOT_FOUND
                || !matches!(self.propfind(tmp, false, "0").await, Ok(Some(_)))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
            resp = self.move_to(tmp_url, target, cond, what).await?;
        }
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::transient(format!(
                "{what}: the server could not move the uploaded file into place (404)"
            )));
        }
        Ok(resp)
    }

    /// After a failed PUT (409/404 by RFC 4918; lighttpd answers 500 for an empty body):
    /// if the parent folder is missing, creates it and returns true (retry the PUT).
    pub(crate) async fn parent_was_missing(
        &self,
        path: &RemotePath,
        status: StatusCode,
    ) -> Result<bool> {
        if !matches!(status.as_u16(), 404 | 409 | 500) {
            return Ok(false);
        }
        let Some(parent) = path.parent().filter(|p| !p.is_root()) else {
            return Ok(false);
        };
        // A 500 means "missing parent" only for lighttpd's empty PUT: check first. A
        // 404/409 is retried once after making sure the parent exists (another client
        // may have created it at the same moment, after our PUT was refused).
        if status == StatusCode::INTERNAL_SERVER_ERROR
            && self.propfind(&parent, true, "0").await?.is_some()
        {
            return Ok(false);
        }
        self.create_dir(&parent).await?;
        Ok(true)
    }

    /// Nextcloud chunked upload (chunking v2): MKCOL
    /// `remote.php/dav/uploads/<user>/<id>/`, PUT numbered chunks, MOVE `.file` onto
    /// the target with `cond` ([`move_conditions`](Self::move_conditions)), DELETE the
    /// upload folder on failure.
    ///
    /// The condition must not be `If-Match`: Nextcloud evaluates it against the source
    /// of the MOVE, the upload collection, so the destination's tag never matches and
    /// every commit failed with 412 (measured against Nextcloud 34.0.1, issue #14). An
    /// `If` list tagged with the destination URL is evaluated against the destination
    /// (204, or 412 for a stale tag), and `Overwrite: F` is the create-only form.
    pub(crate) async fn nextcloud_chunked(
        &self,
        path: &RemotePath,
        body: &Body,
        cond: HeaderMap,
    ) -> Result<(reqwest::Response, Option<String>)> {
        use tokio::io::AsyncReadExt;
        let what = path.to_string();
        let user = self
            .inner
            .credentials
            .as_ref()
            .map(|c| c.user.clone())
            .ok_or_else(|| Error::InvalidInput {
                message: "nextcloud chunked upload needs a user".into(),
            })?;
        let root = self.inner.root.as_str();
        let base = root
            .find("/remote.php/dav/")
            .map(|i| &root[..i])
            .ok_or_else(|| Error::InvalidInput {
                message: "nextcloud root must be under remote.php/dav/".into(),
            })?;
        let upload_dir = Url::parse(&format!(
            "{base}/remote.php/dav/uploads/{}/syncfabric-{}/",
            encode_segment(&user),
            random_hex(12)
        ))
        .map_err(|e| Error::InvalidInput {
            message: format!("upload URL: {e}"),
        })?;
        let target = self.url_for(path, false);
        let r = self
            .send(
                || {
                    self.request(
                        Method::from_bytes(b"MKCOL").unwrap_or(Method::PUT),
                        upload_dir.clone(),
                    )
                    .header("Destination", target.as_str())
                },
                &what,
            )
            .await?;
        if !r.status().is_success() {
            return Err(self.status_error(r, &what).await);
        }
        let result = async {
            let mut reader = body.open().await?;
            let mut hasher = openssl::sha::Sha256::new();
            let chunk_size = self.inner.cfg.chunk_size.max(1);
            let mut index = 1u32;
            let mut remaining = body.len();
            while remaining > 0 {
                let n = remaining.min(chunk_size);
                let mut buf = Vec::with_capacity(n as usize);
                (&mut reader)
                    .take(n)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| Error::from_io(e, &what))?;
                if buf.len() as u64 != n {
                    return Err(Error::InvalidInput {
                        message: format!("{what}: local file changed during upload"),
                    });
                }
                hasher.update(&buf);
                let chunk = Bytes::from(buf);
                let url =
                    upload_dir
                        .join(&format!("{index:05}"))
                        .map_err(|e| Error::InvalidInput {
                            message: e.to_string(),
                        })?;
                let r = self
                    .send(
                        || {
                            self.request(Method::PUT, url.clone())
                                .header("Destination", target.as_str())
                                .body(chunk.clone())
                        },
                        &what,
                    )
                    .await?;
                if !r.status().is_success() {
                    return Err(self.status_error(r, &what).await);
                }
                remaining -= n;
                index += 1;
            }
            let file = upload_dir.join(".file").map_err(|e| Error::InvalidInput {
                message: e.to_string(),
            })?;
            let r = self
                .send(
                    || {
                        self.request(
                            Method::from_bytes(b"MOVE").unwrap_or(Method::PUT),
                            file.clone(),
                        )
                        .headers(cond.clone())
                        .header("Destination", target.as_str())
                        .header("OC-Total-Length", body.len())
                    },
                    &what,
                )
                .await?;
            Ok((r, Some(hex(&hasher.finish()))))
        }
        .await;
        if !matches!(&result, Ok((r, _)) if r.status().is_success()) {
            self.delete_url(&upload_dir, &HeaderMap::new(), &what).await;
        }
        result
    }
}

/// The reader thread of `WebDavStorage::put_file`: sends the file at `path` to `tx`
/// in 1 MiB blocks, counting them on `meter`; with `hash`, puts the hex SHA-256 of the
/// `len` bytes in `slot` before the last block goes out. A failure to read, or a file
/// shorter or longer than `len`, is sent as an error; it stops when the request is
/// dropped.
pub(crate) fn send_file_blocks(
    path: &std::path::Path,
    len: u64,
    hash: bool,
    meter: Option<syncfabric_core::progress::Meter>,
    slot: Arc<Mutex<Option<String>>>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) {
    use std::io::Read;
    let fail = |tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, m: &str| {
        let _ = tx.blocking_send(Err(std::io::Error::other(m.to_string())));
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    };
    let mut hasher = openssl::sha::Sha256::new();
    let mut sent = 0u64;
    loop {
        let want = (len - sent).min(1024 * 1024) as usize;
        if want == 0 {
            let mut one = [0u8; 1];
            if matches!(f.read(&mut one), Ok(n) if n > 0) {
                return fail(&tx, "body is longer than its declared length");
            }
            return;
        }
        // Read into uninitialised capacity (`read_to_end` on a `File` does not
        // zero the buffer first: `vec![0; n]` did, 5% of the upload's CPU).
        let mut buf = Vec::with_capacity(want);
        match (&mut f).take(want as u64).read_to_end(&mut buf) {
            Ok(n) if n < want => return fail(&tx, "body is shorter than its declared length"),
            Ok(_) => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
        if hash {
            hasher.update(&buf);
        }
        sent += want as u64;
        if sent == len {
            // Check for extra bytes before the last block goes out.
            let mut one = [0u8; 1];
            if matches!(f.read(&mut one), Ok(n) if n > 0) {
                return fail(&tx, "body is longer than its declared length");
            }
            if let (true, Ok(mut g)) = (hash, slot.lock()) {
                *g = Some(hex(&std::mem::replace(
                    &mut hasher,
                    openssl::sha::Sha256::new(),
                )
                .finish()));
            }
        }
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return; // the request was dropped
        }
        if let Some(m) = &meter {
            m.advance(want as u64);
        }
    }
}

/// For a `match` arm the code before it has already handled.
pub(crate) fn unreachable_body<T>(what: &str) -> Result<T> {
    Err(Error::InvalidInput {
        message: format!("{what}: unsupported body"),
    })
}

/// The content-hash version of a body, read once more (for the rare write whose
/// version had to fall back to the hash after it was sent unhashed).
pub(crate) async fn hash_body(body: &Body) -> Result<Version> {
    let digest = match body {
        Body::Bytes(b) => hex(&openssl::sha::sha256(b)),
        Body::Stream { open, .. } => {
            let mut stream = open();
            let mut h = openssl::sha::Sha256::new();
            while let Some(chunk) = stream.next().await {
                h.update(&chunk?);
            }
            hex(&h.finish())
        }
        Body::File { path, .. } => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut f = std::fs::File::open(&path)?;
                let mut h = openssl::sha::Sha256::new();
                let mut buf = vec![0u8; 1024 * 1024];
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        return Ok::<_, std::io::Error>(hex(&h.finish()));
                    }
                    h.update(&buf[..n]);
                }
            })
            .await
            .map_err(|e| Error::transient(format!("hashing the body: {e}")))?
            .map_err(|e| Error::from_io(e, "write body"))?
        }
    };
    Ok(Version::new(format!("{HASH_PREFIX}{digest}")))
}
