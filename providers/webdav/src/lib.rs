#![doc = include_str!("../docs.md")]
#![deny(missing_docs)]

mod config;
#[doc(hidden)]
pub mod fuzz;
mod lock;
mod pin;
pub use pin::server_certificate;
mod root;
mod xml;

pub use config::{Credentials, Profile, Secret, WebDavConfig};
use syncfabric_http::{body_error, read_capped, retry_after, transport_error};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use syncfabric_core::{
    Body, Capabilities, ChangeFeed, Download, Entry, EntryKind, Error, Precondition, RemotePath,
    Result, Storage, Version,
};

/// Characters left as they are in a path segment; everything else is percent-encoded.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

const HASH_PREFIX: &str = "sha256:";

/// How old (by the server's `Date`, whole seconds) a file's content must be before this
/// provider writes it again on a server whose tags come from the mtime (rclone): two
/// seconds of whole-second dates guarantee more than one second of real time.
const MTIME_WINDOW: Duration = Duration::from_secs(2);

/// From this size on, a write whose answer has no strong ETag returns the content-hash
/// version at once instead of waiting (Apache: about a second) for a strong ETag.
pub const LARGE_UPLOAD: u64 = 64 * 1024 * 1024;

/// What a profile changes in the provider's behaviour.
#[derive(Clone, Copy, Debug)]
struct Traits {
    /// Strong ETags from this server change on every write.
    trust_etag: bool,
    /// The server enforces `If-Match` on PUT/DELETE.
    server_if_match: bool,
    /// The server enforces `If-None-Match: *` on PUT.
    server_if_none_match: bool,
    /// Upload to a temporary name, then MOVE over the target (unless
    /// [`WebDavConfig::temp_uploads`] says otherwise): for servers that write a PUT in
    /// place, where a cut upload leaves a truncated file, and for unknown servers until
    /// the probe shows otherwise.
    temp_then_move: bool,
    /// The server answers MOVE `Overwrite: F` with 412 when the target exists.
    move_no_overwrite: bool,
    /// Nextcloud chunked upload.
    nextcloud_chunking: bool,
    /// The server evaluates the conditions atomically with the write, also against
    /// concurrent requests. Apache mod_dav_fs and SabreDAV check `If-Match` /
    /// `If-None-Match` before streaming the body and replace the file afterwards, so two
    /// overlapping PUTs can both pass: measured with a multi-process Apache, 9 of 40
    /// increments of the race were lost. The headers are still sent (they catch every
    /// non-overlapping conflict), but the capability is not claimed.
    atomic_conditions: bool,
    /// The server's WebDAV locks (when it announces class 2) can serve as the engine's
    /// commit lock: exclusive, enforced on every write, expiring, and refusing a stale
    /// token. Measured with curl on this machine's Debian packages: nginx dav-ext accepts
    /// writes with the token of an expired or released lock and acknowledges an UNLOCK
    /// with a wrong token, and lighttpd never expires a lock (a crashed client would
    /// block the folder for good), so neither is used.
    usable_locks: bool,
    /// The server marks an ETag weak while the file's mtime is within a second of the
    /// request (Apache: `W/"<size>-<mtime µs>"`), and strong afterwards with the same
    /// value. Such a tag is used without its `W/`: this provider never writes a file
    /// whose current tag is still weak (it waits first), so two writes of one file are
    /// at least a second apart and their mtimes, hence tags, differ.
    weak_window: bool,
    /// The server's tags are built from the mtime in nanoseconds and the size
    /// (golang.org/x/net/webdav: `"<mtime ns hex><size hex>"`, under rclone). They are
    /// used as versions, and in exchange this provider never writes a file whose
    /// content is less than [`MTIME_WINDOW`] old by the server's clock: two writes of a
    /// file are then more than a second apart, so their mtimes, hence tags, differ even
    /// on a filesystem whose clock ticks coarsely.
    mtime_window: bool,
    /// The server reads a MOVE's `Destination` as an escaped URL path, so any name can
    /// be a MOVE target (measured with the conformance `awkward_names` through
    /// temporary uploads: Apache, nginx, lighttpd, rclone, SabreDAV, webdav-server).
    /// WsgiDAV unescapes the header and then parses it as a URL: a `?` starts a query
    /// and a `;` parameters, so a MOVE to `question?mark` replaced the file `question`.
    /// Where this is false (and on a server not measured) a staged write to a name
    /// holding `?` or `;` is refused rather than sent somewhere else.
    literal_destination: bool,
}

impl Traits {
    fn of(p: Profile) -> Traits {
        let base = Traits {
            trust_etag: true,
            server_if_match: true,
            server_if_none_match: true,
            temp_then_move: false,
            move_no_overwrite: true,
            nextcloud_chunking: false,
            atomic_conditions: true,
            usable_locks: true,
            weak_window: false,
            mtime_window: false,
            literal_destination: true,
        };
        match p {
            // Our own server: everything the base claims is what it does (litmus and
            // the honesty probe in server/tests), and a PUT never writes in place.
            Profile::Syncfabric => base,
            // Unknown server: claim, and let the honesty probe decide. A PUT may be
            // written in place (wsgidav does), so a cut upload would leave a truncated
            // file: upload to a temporary name and move it into place.
            Profile::Generic => Traits {
                temp_then_move: true,
                literal_destination: false,
                ..base
            },
            Profile::Apache => Traits {
                atomic_conditions: false,
                weak_window: true,
                ..base
            },
            Profile::SabreDav => Traits {
                atomic_conditions: false,
                ..base
            },
            // Nextcloud's conditional writes are truthful, so its locks are never needed
            // (and its lock plugin varies by version and client).
            Profile::Nextcloud => Traits {
                nextcloud_chunking: true,
                usable_locks: false,
                ..base
            },
            // Whole-second mtime ETags, and If-Match / If-None-Match ignored on PUT.
            Profile::Nginx => Traits {
                trust_etag: false,
                server_if_match: false,
                server_if_none_match: false,
                usable_locks: false,
                ..base
            },
            // ETag from inode, whole-second mtime and size: not strong.
            Profile::Lighttpd => Traits {
                trust_etag: false,
                usable_locks: false,
                ..base
            },
            // ETag `<inode>-<whole-second mtime>-<size>` (wsgidav `util.get_file_etag`):
            // two same-size writes within a second keep it (measured: the conformance
            // behaviour `versions_change_on_every_write` failed with `Generic`). A PUT
            // with `If-Match` creates a missing file (201, measured), and cheroot's
            // worker threads check the conditions before writing the file in place.
            // Locks are enforced while held but do not fence: an `If` list tagged with a
            // URL is never evaluated (WsgiDAV looks lists up by its path-only ref URL)
            // and a new name's `If` not at all, so a write with a released token goes
            // through (measured with curl: 204; the conformance `server_lock` failed).
            // PUT writes in place (a cut upload leaves a truncated file, measured by
            // the conformance `failed_write_keeps_previous`): temporary upload + MOVE.
            Profile::WsgiDav => Traits {
                trust_etag: false,
                server_if_match: false,
                atomic_conditions: false,
                usable_locks: false,
                temp_then_move: true,
                move_no_overwrite: false,
                literal_destination: false,
                ..base
            },
            // `If-Match`, `If-None-Match: *` and a conditional DELETE are ignored (200,
            // measured with curl), and the ETag is an MD5 of the mtime alone
            // (webdav-server 2.6 `FileSystem.etag`): it does not follow the content. A
            // `Depth: infinity` lock on a folder does not stop another client's write
            // without the token inside it (201 / 200, measured with curl).
            // PUT writes in place (`w+`): temporary upload + MOVE.
            Profile::NodeWebdav => Traits {
                trust_etag: false,
                server_if_match: false,
                server_if_none_match: false,
                usable_locks: false,
                temp_then_move: true,
                move_no_overwrite: false,
                ..base
            },
            // ETag from mtime and size; PUT ignores the conditions and writes in place.
            // MOVE (golang.org/x/net/webdav) stats the destination, then renames: with
            // `Overwrite: F` two clients can both succeed, so IfAbsent is not atomic
            // either; with `Overwrite: T` it removes the destination before renaming.
            Profile::Rclone => Traits {
                mtime_window: true,
                server_if_match: false,
                server_if_none_match: false,
                temp_then_move: true,
                move_no_overwrite: false,
                ..base
            },
        }
    }
}

/// A WebDAV folder as a [`Storage`]. Cheap to clone (shares the connection pool).
#[derive(Clone)]
pub struct WebDavStorage {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    root: Url,
    /// The root's path, percent-decoded, ending in '/'.
    root_path: String,
    credentials: Option<Credentials>,
    profile: Profile,
    traits: Traits,
    cfg: WebDavConfig,
    /// The server announced DAV class 2 (`LOCK`) at connect; the honesty probe checks
    /// that it enforces it.
    server_locks: bool,
    /// Random, per storage value: the device and process of our locks when the caller
    /// names no [`LockOwner`](syncfabric_core::LockOwner) (see [`lock`]).
    lock_owner_id: String,
    /// Tokens of the locks handed out by `lock_dir` and not yet released.
    held_locks: Mutex<std::collections::HashSet<String>>,
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

fn same_origin_or_upgrade(from: &Url, to: &Url) -> bool {
    from.host_str() == to.host_str()
        && (from.scheme() == to.scheme()
            && from.port_or_known_default() == to.port_or_known_default()
            || from.scheme() == "http" && to.scheme() == "https")
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
        let mut b = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("syncfabric-webdav/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let ok = attempt.previous().len() < 5
                    && attempt
                        .previous()
                        .first()
                        .is_some_and(|first| same_origin_or_upgrade(first, attempt.url()));
                if ok {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }));
        if let Some(pem) = &config.trust_certificate_pem {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| Error::InvalidInput {
                message: format!("trusted certificate: {e}"),
            })?;
            b = match config.pinned_sha256 {
                // Pinned: that certificate is the only anchor, and the identity (see
                // the `pin` module; the fingerprint was checked when it was fetched).
                Some(_) => b
                    .tls_certs_only([cert])
                    .tls_danger_accept_invalid_hostnames(true),
                None => b.tls_certs_merge([cert]),
            };
        } else if config.pinned_sha256.is_some() {
            return Err(Error::InvalidInput {
                message: "a pinned server's certificate is fetched by connect(), not new()".into(),
            });
        }
        // Building the client loads the system CA bundle (twice, inside native-tls):
        // about 90 ms measured, as much as 13% of a 500 MB upload over loopback. So it is
        // built once per storage, also across the profile probe of `connect`.
        let client = b.build().map_err(|e| Error::InvalidInput {
            message: format!("HTTP client: {e}"),
        })?;
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
    pub fn root_url(&self) -> &str {
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

    fn url_for(&self, path: &RemotePath, dir: bool) -> Url {
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

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
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
    async fn send<F>(&self, build: F, what: &str) -> Result<reqwest::Response>
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
    async fn propfind(
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
    async fn propfind_dated(
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
    async fn wait_out_weak_window(&self, path: &RemotePath) -> Result<(bool, bool)> {
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
    async fn wait_out_mtime_window(&self, path: &RemotePath) -> Result<()> {
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
    fn href_to_path(&self, href: &str) -> Result<RemotePath> {
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
    async fn entry_from(&self, r: &xml::PropResponse, path: RemotePath) -> Result<Option<Entry>> {
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
    async fn wait_strong(
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
    async fn hash_remote(&self, path: &RemotePath) -> Result<Option<RemoteHash>> {
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
    async fn status_error(&self, resp: reqwest::Response, what: &str) -> Error {
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
    fn error_for(&self, status: StatusCode, retry_after: Option<Duration>, what: &str) -> Error {
        if status == StatusCode::LOCKED && self.inner.profile != Profile::Nextcloud {
            return Error::Locked {
                path: what.to_string(),
                holder: None,
            };
        }
        status_to_error(status, retry_after, what)
    }

    /// Current version of `path` as this provider computes it (for client-side checks).
    async fn current_version(
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
    async fn if_match_header(&self, path: &RemotePath, v: &Version) -> Result<Option<String>> {
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

    /// PUT `body` to `url`; with `hash`, also the SHA-256 of what was sent (bytes in
    /// memory are always hashed: it is cheap).
    async fn put(
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
    async fn put_bytes(
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
    async fn put_file(
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
    async fn put_stream(
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

    async fn mkcol(&self, path: &RemotePath) -> Result<StatusCode> {
        self.mkcol_url(&self.url_for(path, true), &path.to_string())
            .await
    }

    /// `MKCOL url`: the status as the server answered it (the body read and dropped).
    async fn mkcol_url(&self, url: &Url, what: &str) -> Result<StatusCode> {
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
    async fn move_to(
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
    async fn remove_temp(&self, tmp: &RemotePath, url: &Url, lock: &HeaderMap, what: &str) {
        for _ in 0..15 {
            self.delete_url(url, lock, what).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if matches!(self.propfind(tmp, false, "0").await, Ok(None)) {
                return;
            }
        }
        tracing::warn!(path = what, "could not remove a temporary upload");
    }

    async fn delete_url(&self, url: &Url, lock: &HeaderMap, what: &str) {
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
    async fn entry_after_put(
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

    async fn upload(
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
    fn temp_uploads(&self) -> bool {
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
    fn move_conditions(
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
    async fn upload_via_temp(
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
    async fn move_temp_into_place(
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
    async fn parent_was_missing(&self, path: &RemotePath, status: StatusCode) -> Result<bool> {
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
    async fn nextcloud_chunked(
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

    /// Reads `path` from byte `offset` on (an HTTP `Range` request). The server must
    /// answer `206`; a `200` (range ignored) is skipped up to `offset` locally.
    /// [`Error::NotFound`] if it does not exist.
    pub async fn read_from(&self, path: &RemotePath, offset: u64) -> Result<Download> {
        self.get(path, offset).await
    }

    async fn get(&self, path: &RemotePath, offset: u64) -> Result<Download> {
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

struct RemoteHash {
    hash: String,
    etag: Option<String>,
    size: u64,
}

fn trunc(s: &str) -> String {
    s.chars().take(120).collect()
}

fn is_strong(tag: &str) -> bool {
    !tag.starts_with("W/") && tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')
}

fn strip_weak(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// The `ETag` header in the same form as a `getetag` ([`xml::normalize_etag`]).
fn etag_header(h: &HeaderMap) -> Option<String> {
    header_str(h, "etag").and_then(|t| xml::normalize_etag(&t))
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn random_hex(n: usize) -> String {
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

/// The reader thread of `WebDavStorage::put_file`: sends the file at `path` to `tx`
/// in 1 MiB blocks, counting them on `meter`; with `hash`, puts the hex SHA-256 of the
/// `len` bytes in `slot` before the last block goes out. A failure to read, or a file
/// shorter or longer than `len`, is sent as an error; it stops when the request is
/// dropped.
fn send_file_blocks(
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
fn unreachable_body<T>(what: &str) -> Result<T> {
    Err(Error::InvalidInput {
        message: format!("{what}: unsupported body"),
    })
}

/// The content-hash version of a body, read once more (for the rare write whose
/// version had to fall back to the hash after it was sent unhashed).
async fn hash_body(body: &Body) -> Result<Version> {
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

/// The status-to-kind table. `what` is the path (never a URL with credentials).
fn status_to_error(status: StatusCode, retry_after: Option<Duration>, what: &str) -> Error {
    let msg = format!("{what}: HTTP {status}");
    match status.as_u16() {
        401 => Error::Unauthorized { message: msg },
        403 => Error::Forbidden { message: msg },
        404 | 410 => Error::NotFound {
            path: what.to_string(),
        },
        412 => Error::PreconditionFailed {
            path: what.to_string(),
        },
        413 => Error::InvalidInput {
            message: format!("{msg} (too large for this server)"),
        },
        423 => Error::Transient {
            message: format!("{msg} (locked)"),
            source: None,
        },
        429 => Error::RateLimited {
            retry_after,
            message: msg,
        },
        503 if retry_after.is_some() => Error::RateLimited {
            retry_after,
            message: msg,
        },
        507 => Error::QuotaExceeded { message: msg },
        408 => Error::transient(msg),
        300..=399 => Error::Corrupt {
            message: format!("{msg}: redirect to another origin refused"),
        },
        500..=599 => Error::transient(msg),
        _ => Error::InvalidInput {
            message: format!("{msg} (unexpected)"),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dav(url: &str) -> WebDavStorage {
        WebDavStorage::new(WebDavConfig::new(url)).unwrap()
    }

    #[test]
    fn hrefs_are_confined() {
        let d = dav("http://127.0.0.1:9/dav/my%20root");
        assert_eq!(
            d.href_to_path("/dav/my%20root/").unwrap(),
            RemotePath::root()
        );
        assert_eq!(
            d.href_to_path("/dav/my%20root").unwrap(),
            RemotePath::root()
        );
        assert_eq!(
            d.href_to_path("/dav/my%20root/a%2Fb/c%20d")
                .unwrap()
                .as_str(),
            "a/b/c d"
        );
        assert_eq!(
            d.href_to_path("http://127.0.0.1:9/dav/my%20root/x")
                .unwrap()
                .as_str(),
            "x"
        );
        // `?` and `#` left unescaped (webdav-server) belong to the name.
        for href in [
            "/dav/my%20root/a b/hash#tag ?x",
            "http://127.0.0.1:9/dav/my%20root/a%20b/hash#tag%20?x",
            "http://127.0.0.1:9/dav/my%20root/a%20b/hash%23tag%20%3Fx",
        ] {
            assert_eq!(
                d.href_to_path(href).unwrap().as_str(),
                "a b/hash#tag ?x",
                "{href}"
            );
        }
        for bad in [
            "/dav/other/x",
            "/dav/my%20rootx/y",
            "/dav/my%20root/../escape",
            "/dav/my%20root/a/%2e%2e/%2e%2e/x",
            "http://evil.example/dav/my%20root/x",
            "http://127.0.0.1:10/dav/my%20root/x",
            "https://127.0.0.1:9/dav/my%20root/x",
            "/dav/my%20root/%ff",
        ] {
            assert!(
                matches!(d.href_to_path(bad), Err(Error::Corrupt { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn urls_are_encoded() {
        let d = dav("http://h/dav");
        let p = RemotePath::parse("a b/c#d?e%f").unwrap();
        assert_eq!(
            d.url_for(&p, false).as_str(),
            "http://h/dav/a%20b/c%23d%3Fe%25f"
        );
        assert_eq!(
            d.url_for(&p, true).as_str(),
            "http://h/dav/a%20b/c%23d%3Fe%25f/"
        );
    }

    #[test]
    fn status_mapping() {
        let ra = Some(Duration::from_secs(3));
        assert!(matches!(
            status_to_error(StatusCode::UNAUTHORIZED, None, "/x"),
            Error::Unauthorized { .. }
        ));
        assert!(matches!(
            status_to_error(StatusCode::PRECONDITION_FAILED, None, "/x"),
            Error::PreconditionFailed { .. }
        ));
        assert!(matches!(
            status_to_error(StatusCode::NOT_FOUND, None, "/x"),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            status_to_error(StatusCode::TOO_MANY_REQUESTS, ra, "/x"),
            Error::RateLimited {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            status_to_error(StatusCode::SERVICE_UNAVAILABLE, ra, "/x"),
            Error::RateLimited { .. }
        ));
        assert!(matches!(
            status_to_error(StatusCode::SERVICE_UNAVAILABLE, None, "/x"),
            Error::Transient { .. }
        ));
        assert!(matches!(
            status_to_error(StatusCode::INTERNAL_SERVER_ERROR, None, "/x"),
            Error::Transient { .. }
        ));
        assert!(matches!(
            status_to_error(StatusCode::INSUFFICIENT_STORAGE, None, "/x"),
            Error::QuotaExceeded { .. }
        ));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(100));
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        assert!(retry_after(&h).unwrap() > Duration::from_secs(90));
    }

    #[test]
    fn debug_has_no_password() {
        let cfg = WebDavConfig::new("http://h/").with_credentials("u", Secret::new("s3cr3t-pw"));
        let d = WebDavStorage::new(cfg.clone()).unwrap();
        assert!(!format!("{d:?} {cfg:?} {}", d.describe()).contains("s3cr3t-pw"));
    }
}

/// The registry factory for `webdav+https://`, `webdav+http://`, `nextcloud+https://`
/// (and `nextcloud+http://`) URLs. Register it under the base schemes:
///
/// ```
/// use syncfabric_core::registry::Registry;
/// let registry = Registry::new();
/// syncfabric_webdav::register(&registry);
/// assert!(registry.schemes().iter().any(|s| s == "webdav"));
/// ```
///
/// The password comes from the URL (`user:pw@host`, discouraged) or, when the
/// [`OpenOptions`](syncfabric_core::registry::OpenOptions) carry a token store, from its
/// entry `webdav:<user>@<host>`. The storage is [`connect`](WebDavStorage::connect)ed
/// (profile probed) and wrapped in
/// [`RetryingStorage`](syncfabric_core::retry::RetryingStorage) with the options' retry
/// policy and one pacer per `host/user`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebDavFactory;

/// Registers [`WebDavFactory`] for `webdav` and `nextcloud` (and their `+http(s)`
/// forms, through the registry's base-scheme lookup).
pub fn register(registry: &syncfabric_core::registry::Registry) {
    use syncfabric_core::registry::{Credentials, ProviderInfo};
    registry.register_provider(
        ProviderInfo {
            schemes: &["webdav", "nextcloud"],
            summary: "a WebDAV server or Nextcloud (its password: $SYNCFABRIC_REMOTE_PASSWORD or a prompt)",
            example: "webdav+https://me@dav.example.com/Enpass",
            credentials: Credentials::Password,
        },
        WebDavFactory,
    );
}

#[async_trait::async_trait]
impl syncfabric_core::registry::ProviderFactory for WebDavFactory {
    async fn open(
        &self,
        url: &syncfabric_core::registry::StorageUrl,
        opts: &syncfabric_core::registry::OpenOptions,
    ) -> Result<Arc<dyn Storage>> {
        let authority = url.authority().unwrap_or("");
        let hostport = authority.rsplit('@').next().unwrap_or("");
        let user = url.username();
        // The registry refuses URLs that hold a password: it comes from the token store.
        let mut password = None;
        if let (Some(tokens), Some(_)) = (&opts.tokens, &user) {
            let key = syncfabric_core::registry::password_key(url);
            password = tokens.get(&key).await?.map(|t| Secret::new(t.expose()));
        }
        // The URL as the registry parsed it: never re-assembled as a string.
        let mut config = WebDavConfig::from_storage_url(url, password)?;
        config.create_root = opts.create_root;
        if opts.staged_writes {
            config.temp_uploads = Some(true);
        }
        let pacer = syncfabric_core::retry::Pacer::for_account(&format!(
            "webdav:{}@{hostport}",
            user.unwrap_or_default()
        ));
        let retrier = syncfabric_core::retry::Retrier::new(opts.retry.clone(), pacer);
        // Connecting is two reads (OPTIONS, PROPFIND): a 503 or a reset there is as
        // transient as anywhere else, so it gets the same retries.
        let dav = retrier
            .run(|| WebDavStorage::connect(config.clone()))
            .await?;
        Ok(Arc::new(syncfabric_core::retry::RetryingStorage::new(
            dav, retrier,
        )))
    }
}
