//! [`WebDavStorage`]: building and connecting it, and its [`Storage`] implementation.

use crate::client::*;
use crate::config::{Credentials, Profile, Secret, WebDavConfig};
use crate::traits::Traits;
use crate::{lock, pin};
use reqwest::{Method, StatusCode, Url};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use syncfabric_core::{
    Body, Capabilities, ChangeFeed, Download, Entry, Error, Precondition, RemotePath, Result,
    Storage,
};
use syncfabric_http::read_capped;
use syncfabric_http::{ClientOptions, Redirects, TrustedCertificate};

/// A WebDAV folder as a [`Storage`]. Cheap to clone (shares the connection pool).
#[derive(Clone)]
pub struct WebDavStorage {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: reqwest::Client,
    pub(crate) root: Url,
    /// The root's path, percent-decoded, ending in '/'.
    pub(crate) root_path: String,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) profile: Profile,
    pub(crate) traits: Traits,
    pub(crate) cfg: WebDavConfig,
    /// The server announced DAV class 2 (`LOCK`) at connect; the honesty probe checks
    /// that it enforces it.
    pub(crate) server_locks: bool,
    /// Random, per storage value: the device and process of our locks when the caller
    /// names no [`LockOwner`](syncfabric_core::LockOwner) (see [`lock`]).
    pub(crate) lock_owner_id: String,
    /// Tokens of the locks handed out by `lock_dir` and not yet released.
    pub(crate) held_locks: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for WebDavStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebDavStorage")
            .field("root", &self.inner.root.as_str())
            .field("profile", &self.inner.profile)
            .field(
                "user",
                &self.inner.credentials.as_ref().map(|c| c.user.as_str()),
            )
            .finish_non_exhaustive()
    }
}

impl WebDavStorage {
    /// Builds the storage without touching the network. The profile is
    /// `config.profile`, or `Generic` when unset.
    ///
    /// [`Error::InvalidInput`] for a bad URL or certificate.
    pub fn new(config: WebDavConfig) -> Result<WebDavStorage> {
        let mut url = config.url.clone();
        if !url.ends_with('/') {
            url.push('/');
        }
        let root = Url::parse(&url).map_err(|e| Error::InvalidInput {
            message: format!("WebDAV URL: {e}"),
        })?;
        if !matches!(root.scheme(), "http" | "https") || root.host_str().is_none() {
            return Err(Error::InvalidInput {
                message: "WebDAV URL must be http(s)://host/...".into(),
            });
        }
        if !root.username().is_empty() || root.password().is_some() {
            return Err(Error::InvalidInput {
                message: "put credentials in WebDavConfig::credentials, not in the URL".into(),
            });
        }
        let root_path = percent_encoding::percent_decode_str(root.path())
            .decode_utf8_lossy()
            .into_owned();
        let trusted_certificate = match (&config.trust_certificate_pem, config.pinned_sha256) {
            // Pinned: that certificate is the only anchor, and the identity (see the
            // `pin` module; the fingerprint was checked when it was fetched).
            (Some(pem), Some(_)) => Some(TrustedCertificate::Pinned(pem.clone())),
            (Some(pem), None) => Some(TrustedCertificate::Added(pem.clone())),
            (None, Some(_)) => {
                return Err(Error::InvalidInput {
                    message: "a pinned server's certificate is fetched by connect(), not new()"
                        .into(),
                })
            }
            (None, None) => None,
        };
        // Building the client loads the system CA bundle (twice, inside native-tls):
        // about 90 ms measured, as much as 13% of a 500 MB upload over loopback. So it is
        // built once per storage, also across the profile probe of `connect`.
        let client = ClientOptions {
            connect_timeout: config.connect_timeout,
            read_timeout: Some(config.read_timeout),
            user_agent: Some(concat!("syncfabric-webdav/", env!("CARGO_PKG_VERSION")).into()),
            redirects: Redirects::SameOrigin { max: 4 },
            trusted_certificate,
            ..ClientOptions::default()
        }
        .build()?;
        let profile = config.profile.unwrap_or(Profile::Generic);
        Ok(WebDavStorage {
            inner: Arc::new(Inner {
                client,
                root,
                root_path,
                credentials: config.credentials.clone(),
                profile,
                traits: Traits::of(profile),
                cfg: config,
                server_locks: false,
                lock_owner_id: random_hex(16),
                held_locks: Mutex::new(Default::default()),
            }),
        })
    }

    /// The same storage (same connection pool) with another profile and what `OPTIONS`
    /// said about locks.
    fn with_profile(&self, profile: Profile, server_locks: bool) -> WebDavStorage {
        let i = &self.inner;
        let mut cfg = i.cfg.clone();
        cfg.profile = Some(profile);
        WebDavStorage {
            inner: Arc::new(Inner {
                client: i.client.clone(),
                root: i.root.clone(),
                root_path: i.root_path.clone(),
                credentials: i.credentials.clone(),
                profile,
                traits: Traits::of(profile),
                cfg,
                server_locks,
                lock_owner_id: i.lock_owner_id.clone(),
                held_locks: Mutex::new(Default::default()),
            }),
        }
    }

    /// Builds the storage and asks the server (`OPTIONS` on the root) whether it has
    /// WebDAV locks (class 2) and, when `config.profile` is unset, which family it is.
    /// Also checks the root answers:
    /// [`Error::Unauthorized`] for bad credentials, [`Error::NotFound`] for a missing root.
    pub async fn connect(mut config: WebDavConfig) -> Result<WebDavStorage> {
        if let (Some(pin), None) = (config.pinned_sha256, &config.trust_certificate_pem) {
            let root = Url::parse(&config.url).map_err(|e| Error::InvalidInput {
                message: format!("WebDAV URL: {e}"),
            })?;
            let host = root.host_str().unwrap_or_default().to_string();
            let port = root.port_or_known_default().unwrap_or(443);
            let pem = pin::fetch_pinned(host, port, pin, config.connect_timeout).await?;
            config.trust_certificate_pem = Some(pem);
        }
        let preset = config.profile;
        let mut s = WebDavStorage::new(config)?;
        let (probed, class2) = s.probe_profile().await?;
        let profile = preset.unwrap_or(probed);
        s = s.with_profile(profile, class2 && Traits::of(profile).usable_locks);
        if s.inner.cfg.create_root {
            s.create_root().await?;
        }
        match s.propfind(&RemotePath::root(), true, "0").await? {
            Some(_) => Ok(s),
            None => Err(s.missing_root().await),
        }
    }

    /// Opens a registry URL (`webdav+https://user@host/path`, `webdav+http://…`,
    /// `nextcloud+https://user@host/folder`; see [`WebDavConfig::from_url`]) and
    /// [`connect`](Self::connect)s.
    pub async fn from_url(url: &str, password: Option<Secret>) -> Result<WebDavStorage> {
        WebDavStorage::connect(WebDavConfig::from_url(url, password)?).await
    }

    /// The profile in use.
    pub fn profile(&self) -> Profile {
        self.inner.profile
    }

    /// The root collection's URL (no credentials).
    pub(crate) fn root_url(&self) -> &str {
        self.inner.root.as_str()
    }

    /// The server family, and whether it announces DAV class 2 (locks).
    ///
    /// Only a server's own answer says which server it is: a 5xx, a 429 or a 408 may
    /// come from a proxy or load balancer in front of it (without the server's
    /// headers), and an authentication failure says nothing either. Those are errors
    /// (the retry layer tries again), never a guess at [`Profile::Generic`], which
    /// would trust ETags a server like nginx builds from whole-second mtimes.
    /// Other refusals (a 404 for a root still to be created, a 405) keep the headers.
    async fn probe_profile(&self) -> Result<(Profile, bool)> {
        let resp = self
            .send(
                || self.request(Method::OPTIONS, self.inner.root.clone()),
                "/",
            )
            .await?;
        let status = resp.status();
        if status.is_server_error()
            || matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::REQUEST_TIMEOUT
                    | StatusCode::UNAUTHORIZED
                    | StatusCode::FORBIDDEN
            )
        {
            return Err(self.status_error(resp, "/").await);
        }
        let h = resp.headers();
        let get = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase()
        };
        let server = get("server");
        let profile = if self.inner.root.path().contains("/remote.php/")
            || h.contains_key("x-nextcloud-request-id")
        {
            Profile::Nextcloud
        } else if server.starts_with("apache") {
            Profile::Apache
        } else if server.starts_with("nginx") {
            Profile::Nginx
        } else if server.starts_with("lighttpd") {
            Profile::Lighttpd
        } else if h.contains_key("x-sabre-version") {
            Profile::SabreDav
        } else if server.starts_with("wsgidav/") {
            Profile::WsgiDav
        } else if server.starts_with("webdav-server/") {
            Profile::NodeWebdav
        } else if server.starts_with("syncfabric/") {
            Profile::Syncfabric
        } else if server.is_empty()
            && get("ms-author-via") == "dav"
            && get("dav").replace(' ', "") == "1,2"
        {
            // golang.org/x/net/webdav, which `rclone serve webdav` is built on.
            Profile::Rclone
        } else {
            Profile::Generic
        };
        let class2 = get("dav").split(',').any(|c| c.trim() == "2");
        tracing::debug!(profile = profile.name(), class2, "webdav profile probed");
        Ok((profile, class2))
    }
}

#[async_trait::async_trait]
impl Storage for WebDavStorage {
    /// Depends on the profile; see the crate table. `change_feed` is `Poll` (ETags).
    fn capabilities(&self) -> Capabilities {
        let t = self.inner.traits;
        let atomic = t.atomic_conditions;
        Capabilities {
            if_match: t.trust_etag && t.server_if_match && atomic,
            if_absent: atomic
                && if self.temp_uploads() {
                    t.move_no_overwrite
                } else {
                    t.server_if_none_match
                },
            conditional_delete: t.trust_etag && t.server_if_match && atomic,
            max_single_write: None,
            chunked_upload: t.nextcloud_chunking,
            change_feed: ChangeFeed::Poll,
            read_after_write: true,
            server_clock: true,
            server_lock: self.inner.server_locks,
            strong_versions: true,
            spaced_writes: t.weak_window || t.mtime_window,
        }
    }

    fn describe(&self) -> String {
        format!("webdav {} ({})", self.inner.root, self.inner.profile.name())
    }

    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        let Some(list) = self.propfind(path, false, "0").await? else {
            return Ok(None);
        };
        if list.is_empty() {
            // webdav-server 2.6 answers an empty 207, not 404, when the file goes away
            // while it reads its properties (its Propfind.js drops a response that meets
            // ResourceNotFound); seen in the race of the conformance suite, as another
            // client replaced the lease file. Asked again, the server says which.
            return Err(Error::transient(format!(
                "{path}: PROPFIND answered with no entry at all (the file changed meanwhile?)"
            )));
        }
        let Some(r) = list.into_iter().find(|r| r.status.is_none_or(|s| s == 200)) else {
            return Err(Error::Corrupt {
                message: format!("{path}: PROPFIND answer without an entry"),
            });
        };
        let p = self.href_to_path(&r.href)?;
        if &p != path {
            return Err(Error::Corrupt {
                message: format!("{path}: PROPFIND answered for another path"),
            });
        }
        self.entry_from(&r, p).await
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let Some(list) = self.propfind(dir, true, "1").await? else {
            return Err(Error::NotFound {
                path: dir.to_string(),
            });
        };
        let mut out = Vec::new();
        let mut saw_self = false;
        for r in list {
            let p = self.href_to_path(&r.href)?;
            if &p == dir {
                saw_self = true;
                if !r.is_collection {
                    return Err(Error::InvalidInput {
                        message: format!("{dir} is a file, not a folder"),
                    });
                }
                continue;
            }
            if p.parent().as_ref() != Some(dir) {
                return Err(Error::Corrupt {
                    message: format!("{dir}: listing names {p}, not a direct child"),
                });
            }
            if r.status.is_some_and(|s| s != 200) {
                continue;
            }
            if let Some(e) = self.entry_from(&r, p).await? {
                out.push(e);
            }
        }
        if !saw_self && out.is_empty() {
            return Err(Error::Corrupt {
                message: format!("{dir}: listing without the folder itself"),
            });
        }
        Ok(out)
    }

    async fn read(&self, path: &RemotePath) -> Result<Download> {
        self.get(path, 0).await
    }

    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot write to the root folder".into(),
            });
        }
        let t = self.inner.traits;
        let what = path.to_string();
        let if_match = match &pre {
            Precondition::IfMatch(v) => self.if_match_header(path, v).await?,
            Precondition::IfAbsent
                if !(t.server_if_none_match || self.temp_uploads() && t.move_no_overwrite) =>
            {
                // Checked, not atomic (the capability says `if_absent: false`).
                if self.propfind(path, false, "0").await?.is_some() {
                    return Err(Error::AlreadyExists { path: what });
                }
                None
            }
            Precondition::UnderLock(l) if !l.covers(path) => {
                return Err(Error::InvalidInput {
                    message: format!("{what}: not inside the locked folder {}", l.dir()),
                })
            }
            _ => None,
        };
        // Never write into the weak window of the previous write (see
        // `Traits::weak_window`); if the tag stays weak, this write's version is the hash.
        if t.mtime_window {
            self.wait_out_mtime_window(path).await?;
        }
        let (exists, deweaken) = if t.weak_window {
            self.wait_out_weak_window(path).await?
        } else {
            (false, false)
        };
        let mut weak_retry = 0;
        loop {
            let (resp, digest) = self
                .upload(path, &body, &pre, if_match.clone(), exists, !deweaken)
                .await?;
            let status = resp.status();
            if status == StatusCode::PRECONDITION_FAILED
                || (matches!(pre, Precondition::IfMatch(_)) && status == StatusCode::NOT_FOUND)
            {
                let _ = read_capped(resp, 64 * 1024, &what).await;
                if let (Precondition::IfMatch(v), true) =
                    (&pre, status == StatusCode::PRECONDITION_FAILED)
                {
                    // Apache fails If-Match while the current ETag is still weak even when
                    // it is the same tag: wait for it to turn strong and try again.
                    if weak_retry < 1 && !v.as_str().starts_with(HASH_PREFIX) {
                        if let Some(Ok(Some(l))) = Some(self.propfind(path, false, "0").await) {
                            if l.first()
                                .and_then(|r| r.etag.as_deref())
                                .is_some_and(|e| !is_strong(e) && strip_weak(e) == v.as_str())
                            {
                                weak_retry += 1;
                                if self.wait_strong(path, Some(v.as_str())).await?.is_some() {
                                    continue;
                                }
                            }
                        }
                    }
                }
                return Err(match pre {
                    Precondition::IfAbsent => Error::AlreadyExists { path: what },
                    _ => Error::PreconditionFailed { path: what },
                });
            }
            if status == StatusCode::MULTI_STATUS {
                return Err(
                    match (lock::multi_status_failure(resp, &what).await, &pre) {
                        (Error::PreconditionFailed { .. }, Precondition::IfAbsent) => {
                            Error::AlreadyExists { path: what }
                        }
                        (e, _) => e,
                    },
                );
            }
            if !status.is_success() {
                return Err(self.status_error(resp, &what).await);
            }
            return self
                .entry_after_put(path, &body, resp, digest, deweaken)
                .await;
        }
    }

    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot delete the root folder".into(),
            });
        }
        let what = path.to_string();
        if self.inner.traits.weak_window && matches!(pre, Precondition::IfMatch(_)) {
            // Apache compares If-Match strongly: a tag still in its weak window never
            // matches, so wait for it to turn strong.
            self.wait_out_weak_window(path).await?;
        }
        let if_match = match &pre {
            Precondition::IfMatch(v) => {
                let h = self.if_match_header(path, v).await?;
                if h.is_none()
                    && !(self.inner.traits.trust_etag && self.inner.traits.server_if_match)
                {
                    None
                } else {
                    h
                }
            }
            Precondition::IfAbsent => {
                return Err(Error::InvalidInput {
                    message: format!("{what}: IfAbsent makes no sense for delete"),
                })
            }
            Precondition::UnderLock(l) if !l.covers(path) => {
                return Err(Error::InvalidInput {
                    message: format!("{what}: not inside the locked folder {}", l.dir()),
                })
            }
            Precondition::None | Precondition::UnderLock(_) => None,
        };
        let lock = self.lock_headers(&pre, None)?;
        let url = self.url_for(path, false);
        let resp = self
            .send(
                || {
                    let b = self
                        .request(Method::DELETE, url.clone())
                        .headers(lock.clone());
                    match &if_match {
                        Some(t) => b.header("If-Match", t.as_str()),
                        None => b,
                    }
                },
                &what,
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::MULTI_STATUS {
            // A failure on some member (e.g. 423 under someone's lock).
            return Err(lock::multi_status_failure(resp, &what).await);
        }
        let _ = read_capped(resp, 64 * 1024, &what).await;
        match status.as_u16() {
            200..=299 => Ok(()),
            404 | 410 if matches!(pre, Precondition::None | Precondition::UnderLock(_)) => Ok(()),
            412 if matches!(pre, Precondition::UnderLock(_)) => {
                Err(Error::PreconditionFailed { path: what })
            }
            404 | 410 | 412 if matches!(pre, Precondition::IfMatch(_)) => {
                Err(Error::PreconditionFailed { path: what })
            }
            _ => Err(self.error_for(status, None, &what)),
        }
    }

    async fn lock_dir(&self, dir: &RemotePath, ttl: Duration) -> Result<syncfabric_core::DirLock> {
        self.lock_dir_impl(dir, ttl, None).await
    }

    async fn lock_dir_as(
        &self,
        dir: &RemotePath,
        ttl: Duration,
        owner: &syncfabric_core::LockOwner,
    ) -> Result<syncfabric_core::DirLock> {
        self.lock_dir_impl(dir, ttl, Some(owner)).await
    }

    async fn dir_locks(&self, dir: &RemotePath) -> Result<Vec<syncfabric_core::LockHolder>> {
        self.dir_locks_impl(dir).await
    }

    async fn refresh_lock(
        &self,
        lock: &syncfabric_core::DirLock,
        ttl: Duration,
    ) -> Result<syncfabric_core::DirLock> {
        self.refresh_lock_impl(lock, ttl).await
    }

    async fn unlock_dir(&self, lock: &syncfabric_core::DirLock) -> Result<()> {
        self.unlock_dir_impl(lock).await
    }

    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        self.remove_empty_dir_impl(path).await
    }

    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        if path.is_root() {
            return Ok(());
        }
        // Fast path: the folder exists.
        if let Some(l) = self.propfind(path, true, "0").await? {
            if l.first().is_some_and(|r| r.is_collection) {
                return Ok(());
            }
            return Err(Error::AlreadyExists {
                path: path.to_string(),
            });
        }
        let mut cur = RemotePath::root();
        for seg in path.segments() {
            cur = cur.join(seg)?;
            let s = self.mkcol(&cur).await?;
            match s.as_u16() {
                // 207: refused for some member (Apache, under someone else's lock).
                207 => {
                    return Err(Error::Locked {
                        path: cur.to_string(),
                        holder: None,
                    })
                }
                200..=299 => {}
                // 405: exists (RFC 4918 9.3.1); 301: exists, redirected to the slash form.
                405 | 301 => {}
                // Another client may have created it at the same moment (Apache answers
                // 403 when its mkdir finds the folder already there): check.
                _ if s != StatusCode::UNAUTHORIZED
                    && matches!(self.propfind(&cur, true, "0").await, Ok(Some(ref l)) if l.first().is_some_and(|r| r.is_collection)) =>
                    {}
                _ => return Err(self.error_for(s, None, &cur.to_string())),
            }
        }
        Ok(())
    }
}
