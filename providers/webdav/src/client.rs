//! Requests: URLs, sending, `PROPFIND`, ETags and versions, content hashes.

use crate::backend::WebDavStorage;
use crate::config::Profile;
use crate::error::status_to_error;
use crate::xml;
use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use std::time::{Duration, SystemTime};
use syncfabric_core::{Entry, EntryKind, Error, RemotePath, Result, Storage, Version};
use syncfabric_http::{body_error, read_capped, retry_after, transport_error};

pub(crate) use syncfabric_http::encode_segment;

pub(crate) const HASH_PREFIX: &str = "sha256:";

/// How old (by the server's `Date`, whole seconds) a file's content must be before this
/// provider writes it again on a server whose tags come from the mtime (rclone): two
/// seconds of whole-second dates guarantee more than one second of real time.
pub(crate) const MTIME_WINDOW: Duration = Duration::from_secs(2);

impl WebDavStorage {
    pub(crate) fn url_for(&self, path: &RemotePath, dir: bool) -> Url {
        let mut s = self.inner.root.as_str().to_string();
        for (i, seg) in path.segments().enumerate() {
            if i > 0 {
                s.push('/');
            }
            s.push_str(&encode_segment(seg));
        }
        if dir && !path.is_root() {
            s.push('/');
        }
        // Built from a valid URL plus encoded segments: parsing cannot fail; fall back
        // to the root defensively rather than panic.
        Url::parse(&s).unwrap_or_else(|_| self.inner.root.clone())
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let b = self.inner.client.request(method, url);
        match &self.inner.credentials {
            Some(c) => b.basic_auth(&c.user, Some(c.password.expose())),
            None => b,
        }
    }

    /// Sends a request built by `build`, retrying `423 Locked` with a growing pause on
    /// Nextcloud (its file locking is short-lived; elsewhere 423 is a client's WebDAV
    /// lock, see [`lock`]).
    /// Transport errors become [`Error::Transient`]. Any status is returned as is.
    pub(crate) async fn send<F>(&self, build: F, what: &str) -> Result<reqwest::Response>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let mut attempt = 0u32;
        loop {
            let resp = build().send().await.map_err(|e| transport_error(e, what))?;
            if resp.status() == StatusCode::LOCKED
                && self.inner.profile == Profile::Nextcloud
                && attempt < self.inner.cfg.locked_retries
            {
                attempt += 1;
                let wait = retry_after(resp.headers())
                    .unwrap_or(Duration::from_millis(200 << attempt.min(6)));
                tracing::debug!(path = what, attempt, "423 Locked, retrying");
                tokio::time::sleep(wait.min(Duration::from_secs(10))).await;
                continue;
            }
            return Ok(resp);
        }
    }

    /// PROPFIND `path` with `depth`. `Ok(None)` on 404.
    pub(crate) async fn propfind(
        &self,
        path: &RemotePath,
        dir: bool,
        depth: &'static str,
    ) -> Result<Option<Vec<xml::PropResponse>>> {
        Ok(self
            .propfind_dated(path, dir, depth)
            .await?
            .map(|(list, _)| list))
    }

    /// [`propfind`](Self::propfind), with the server's clock (the answer's `Date`).
    pub(crate) async fn propfind_dated(
        &self,
        path: &RemotePath,
        dir: bool,
        depth: &'static str,
    ) -> Result<Option<(Vec<xml::PropResponse>, Option<SystemTime>)>> {
        const BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getetag/><D:getlastmodified/></D:prop></D:propfind>"#;
        let url = self.url_for(path, dir);
        let what = path.to_string();
        let resp = self
            .send(
                || {
                    self.request(
                        Method::from_bytes(b"PROPFIND").unwrap_or(Method::GET),
                        url.clone(),
                    )
                    .header("Depth", depth)
                    .header("Content-Type", "application/xml; charset=utf-8")
                    .body(BODY)
                },
                &what,
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status != StatusCode::MULTI_STATUS {
            return Err(self.status_error(resp, &what).await);
        }
        let date = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok());
        let body = read_capped(resp, self.inner.cfg.max_response_bytes, &what).await?;
        Ok(Some((xml::parse_multistatus(&body)?, date)))
    }

    /// The weak-window rule (see `Traits::weak_window`): waits until the file's current
    /// tag is strong. Returns whether the file exists, and whether its tag is strong
    /// now (or it is missing), i.e. whether the next write's tag may be used without
    /// its `W/`.
    pub(crate) async fn wait_out_weak_window(&self, path: &RemotePath) -> Result<(bool, bool)> {
        let Some(current) = self.propfind(path, false, "0").await? else {
            return Ok((false, true));
        };
        let weak = current
            .first()
            .and_then(|r| r.etag.as_deref())
            .is_some_and(|e| !is_strong(e));
        Ok((true, !weak || self.wait_strong(path, None).await?.is_some()))
    }

    /// The mtime-window rule (see `Traits::mtime_window`): waits until the file's
    /// current content is at least [`MTIME_WINDOW`] old by the server's own clock, so
    /// that the write about to happen gets another mtime, hence another tag.
    pub(crate) async fn wait_out_mtime_window(&self, path: &RemotePath) -> Result<()> {
        let Some((list, date)) = self.propfind_dated(path, false, "0").await? else {
            return Ok(());
        };
        let modified = list
            .first()
            .and_then(|r| r.last_modified.as_deref())
            .and_then(|d| httpdate::parse_http_date(d).ok());
        let wait = match (date, modified) {
            // Both are whole seconds (rounded down): the true age is at least the
            // difference minus one second.
            (Some(now), Some(m)) => match now.duration_since(m) {
                Ok(age) => MTIME_WINDOW.saturating_sub(age),
                Err(_) => MTIME_WINDOW, // modified "after" now: clocks disagree; wait
            },
            // No dates to judge by: wait the whole window.
            _ => MTIME_WINDOW,
        };
        if !wait.is_zero() {
            tracing::debug!(%path, ?wait, "waiting out the previous write's mtime window");
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Maps a (possibly absolute-URL) href to a path under the root; anything outside
    /// the root or on another host is Corrupt.
    pub(crate) fn href_to_path(&self, href: &str) -> Result<RemotePath> {
        let root = &self.inner.root;
        let raw_path = if href.starts_with('/') {
            href.to_string()
        } else {
            let u = Url::parse(href).map_err(|_| Error::Corrupt {
                message: format!("server sent an unusable href {:?}", trunc(href)),
            })?;
            if u.scheme() != root.scheme()
                || u.host_str() != root.host_str()
                || u.port_or_known_default() != root.port_or_known_default()
            {
                return Err(Error::Corrupt {
                    message: format!("server sent an href on another host: {:?}", trunc(href)),
                });
            }
            // The whole of the href after the origin: see below for `?` and `#`.
            let mut p = u.path().to_string();
            for (mark, part) in [('?', u.query()), ('#', u.fragment())] {
                if let Some(part) = part {
                    p.push(mark);
                    p.push_str(part);
                }
            }
            p
        };
        // A resource in a listing has no query or fragment, so a literal `?` or `#` is
        // part of its name: webdav-server 2.6 escapes hrefs like JavaScript's
        // `encodeURI` (`/hash#tag` for the file `hash#tag`, measured); splitting there
        // listed such a file under a name it does not have and made its `stat` fail.
        let decoded = percent_encoding::percent_decode_str(&raw_path)
            .decode_utf8()
            .map_err(|_| Error::Corrupt {
                message: format!("href is not UTF-8: {:?}", trunc(href)),
            })?;
        let root_path = &self.inner.root_path;
        let rel = if decoded.as_ref() == root_path.trim_end_matches('/') {
            ""
        } else if let Some(r) = decoded.strip_prefix(root_path.as_str()) {
            r
        } else {
            return Err(Error::Corrupt {
                message: format!("server sent an href outside the root: {:?}", trunc(href)),
            });
        };
        RemotePath::parse(rel).map_err(|_| Error::Corrupt {
            message: format!(
                "server sent an href that leaves the root: {:?}",
                trunc(href)
            ),
        })
    }

    /// Turns a PROPFIND response into an entry, computing the version.
    pub(crate) async fn entry_from(
        &self,
        r: &xml::PropResponse,
        path: RemotePath,
    ) -> Result<Option<Entry>> {
        let modified = r
            .last_modified
            .as_deref()
            .and_then(|d| httpdate::parse_http_date(d).ok());
        if r.is_collection {
            return Ok(Some(Entry {
                path,
                kind: EntryKind::Dir,
                size: 0,
                modified,
                version: None,
            }));
        }
        let size = r.content_length.unwrap_or(0);
        if self.inner.traits.trust_etag {
            if let Some(tag) = r.etag.as_deref().filter(|t| is_strong(t)) {
                return Ok(Some(Entry {
                    path,
                    kind: EntryKind::File,
                    size,
                    modified,
                    version: Some(Version::new(tag)),
                }));
            }
            if let Some(tag) = r.etag.as_deref() {
                if self.inner.traits.weak_window {
                    // Apache's weak window: the same tag, strong in a second (see
                    // `Traits::weak_window`).
                    return Ok(Some(Entry {
                        path,
                        kind: EntryKind::File,
                        size,
                        modified,
                        version: Some(Version::new(strip_weak(tag))),
                    }));
                }
                // Weak: wait for the server to make it strong.
                if let Some(e) = self.wait_strong(&path, None).await? {
                    return Ok(Some(e));
                }
            }
        }
        // Content hash.
        match self.hash_remote(&path).await? {
            None => Ok(None),
            Some(h) => Ok(Some(Entry {
                path,
                kind: EntryKind::File,
                size: h.size,
                modified,
                version: Some(Version::new(format!("{HASH_PREFIX}{}", h.hash))),
            })),
        }
    }

    /// Re-reads `path` until its ETag is strong (bounded by `weak_etag_wait`). When
    /// `same_tag` is given, the strong tag must equal it (the W/ prefix aside), else
    /// `None`. Returns `None` when it stays weak/missing.
    pub(crate) async fn wait_strong(
        &self,
        path: &RemotePath,
        same_tag: Option<&str>,
    ) -> Result<Option<Entry>> {
        let deadline = tokio::time::Instant::now() + self.inner.cfg.weak_etag_wait;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let Some(list) = self.propfind(path, false, "0").await? else {
                return Ok(None);
            };
            let Some(r) = list.first() else {
                return Ok(None);
            };
            if r.is_collection {
                return Ok(None);
            }
            if let Some(tag) = r.etag.as_deref() {
                if is_strong(tag) {
                    if same_tag.is_some_and(|t| strip_weak(t) != tag) {
                        return Ok(None);
                    }
                    return Ok(Some(Entry {
                        path: path.clone(),
                        kind: EntryKind::File,
                        size: r.content_length.unwrap_or(0),
                        modified: r
                            .last_modified
                            .as_deref()
                            .and_then(|d| httpdate::parse_http_date(d).ok()),
                        version: Some(Version::new(tag)),
                    }));
                }
                if same_tag.is_some_and(|t| strip_weak(t) != strip_weak(tag)) {
                    return Ok(None);
                }
            } else {
                return Ok(None);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// GETs `path` and hashes it. `None` on 404.
    pub(crate) async fn hash_remote(&self, path: &RemotePath) -> Result<Option<RemoteHash>> {
        let url = self.url_for(path, false);
        let what = path.to_string();
        let resp = self
            .send(|| self.request(Method::GET, url.clone()), &what)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.status_error(resp, &what).await);
        }
        let etag = etag_header(resp.headers());
        let expected = resp.content_length();
        let mut hasher = openssl::sha::Sha256::new();
        let mut size = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| body_error(e, &what))?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        if expected.is_some_and(|n| n != size) {
            return Err(Error::transient(format!(
                "{what}: body ended early ({size} bytes)"
            )));
        }
        Ok(Some(RemoteHash {
            hash: hex(&hasher.finish()),
            etag,
            size,
        }))
    }

    /// Builds an error from a non-success answer.
    pub(crate) async fn status_error(&self, resp: reqwest::Response, what: &str) -> Error {
        let status = resp.status();
        let ra = retry_after(resp.headers());
        // Read (a bounded amount of) the body so the connection can be reused; never
        // put it in the error (it may echo anything).
        let _ = read_capped(resp, 64 * 1024, what).await;
        self.error_for(status, ra, what)
    }

    /// The status-to-kind table ([`status_to_error`]) for this server: a 423 is a
    /// WebDAV lock held by another client (or ours, passed on), `Locked`, not a passing
    /// failure; only Nextcloud's 423 is its own short-lived file locking, transient.
    pub(crate) fn error_for(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        what: &str,
    ) -> Error {
        if status == StatusCode::LOCKED && self.inner.profile != Profile::Nextcloud {
            return Error::Locked {
                path: what.to_string(),
                holder: None,
            };
        }
        status_to_error(status, retry_after, what)
    }

    /// Current version of `path` as this provider computes it (for client-side checks).
    pub(crate) async fn current_version(
        &self,
        path: &RemotePath,
    ) -> Result<Option<(Version, Option<String>)>> {
        Ok(self
            .hash_remote(path)
            .await?
            .map(|h| (Version::new(format!("{HASH_PREFIX}{}", h.hash)), h.etag)))
    }

    /// Resolves an `IfMatch(v)` into the header to send (if any), or fails with
    /// PreconditionFailed after a client-side check.
    pub(crate) async fn if_match_header(
        &self,
        path: &RemotePath,
        v: &Version,
    ) -> Result<Option<String>> {
        let t = self.inner.traits;
        let is_hash = v.as_str().starts_with(HASH_PREFIX);
        if !is_hash && t.trust_etag && t.server_if_match {
            return Ok(Some(v.as_str().to_string()));
        }
        if !is_hash && t.trust_etag {
            // The server ignores If-Match: check the tag ourselves (not atomically; the
            // capability says so).
            let current = self.stat(path).await?.and_then(|e| e.version);
            return if current.as_ref() == Some(v) {
                Ok(None)
            } else {
                Err(Error::PreconditionFailed {
                    path: path.to_string(),
                })
            };
        }
        if !is_hash {
            // An ETag version on a server whose ETags we do not trust cannot come from
            // this provider: compare with a fresh stat (which yields hashes here).
            return Err(Error::PreconditionFailed {
                path: path.to_string(),
            });
        }
        let deadline = tokio::time::Instant::now() + self.inner.cfg.weak_etag_wait;
        loop {
            let Some((cur, etag)) = self.current_version(path).await? else {
                return Err(Error::PreconditionFailed {
                    path: path.to_string(),
                });
            };
            if &cur != v {
                return Err(Error::PreconditionFailed {
                    path: path.to_string(),
                });
            }
            if !(t.trust_etag && t.server_if_match) {
                // Checked, but not atomically: the capability says so.
                return Ok(None);
            }
            match etag {
                Some(e) if is_strong(&e) => return Ok(Some(e)),
                Some(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                _ => {
                    return Err(Error::transient(format!(
                        "{path}: the server's ETag stayed weak; cannot write conditionally yet"
                    )))
                }
            }
        }
    }
}

pub(crate) struct RemoteHash {
    pub(crate) hash: String,
    pub(crate) etag: Option<String>,
    pub(crate) size: u64,
}

pub(crate) fn trunc(s: &str) -> String {
    s.chars().take(120).collect()
}

pub(crate) fn is_strong(tag: &str) -> bool {
    !tag.starts_with("W/") && tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')
}

pub(crate) fn strip_weak(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// The `ETag` header in the same form as a `getetag` ([`xml::normalize_etag`]).
pub(crate) fn etag_header(h: &HeaderMap) -> Option<String> {
    header_str(h, "etag").and_then(|t| xml::normalize_etag(&t))
}

pub(crate) fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

pub(crate) fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    if openssl::rand::rand_bytes(&mut b).is_err() {
        // Fall back to time-derived bytes: only used for temporary names.
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8;
        }
    }
    hex(&b)
}
