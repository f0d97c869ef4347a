//! Configuration: the root URL, credentials, vendor profile, TLS and limits.

use std::time::Duration;
use syncfabric_core::registry::StorageUrl;
use syncfabric_core::Error;

/// A secret string (a password or app token). Its `Debug` and `Display` print
/// `<redacted>`; the only way to read it is [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself. Call it only where the secret is sent to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// HTTP basic-auth credentials. The password is a [`Secret`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (not secret; appears in `describe()` of Nextcloud roots).
    pub user: String,
    /// The password or app password.
    pub password: Secret,
}

/// A server family whose quirks the provider knows. Chosen by the URL scheme
/// (`nextcloud+https://`), by [`WebDavConfig::profile`], or by probing the server
/// (`OPTIONS` on the root: the `Server` and `DAV` headers) in
/// [`WebDavStorage::connect`](crate::WebDavStorage::connect).
///
/// What each profile changes is listed in the crate documentation's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Unknown server: strong ETags are trusted, conditional headers are sent and the
    /// honesty probe decides whether the server obeys them.
    Generic,
    /// Nextcloud / ownCloud (`remote.php/dav/files/<user>/`): chunked upload through
    /// the uploads collection, 423 Locked retried.
    Nextcloud,
    /// Apache httpd mod_dav_fs: strong ETags after a 1-second weak window.
    Apache,
    /// nginx with the dav-ext module: no `getetag`, conditional PUT ignored,
    /// ETags built from whole seconds. Versions are content hashes.
    Nginx,
    /// lighttpd mod_webdav.
    Lighttpd,
    /// `rclone serve webdav`: conditional PUT ignored, PUT writes in place; uploads go
    /// to a temporary name and are moved over the target; tags (mtime + size) are
    /// versions, with two seconds between writes of one file.
    Rclone,
    /// SabreDAV (the engine inside Nextcloud), e.g. served by `php -S`.
    SabreDav,
    /// WsgiDAV 4 (Python): ETags built from inode, whole-second mtime and size, so
    /// versions are content hashes; conditions are checked before an in-place write.
    WsgiDav,
    /// `webdav-server` 2 (npm, Node.js): `If-Match` / `If-None-Match` ignored, ETags
    /// built from the mtime alone, so versions are content hashes and conditions are
    /// checked by the provider.
    NodeWebdav,
    /// syncfabric's own Wi-Fi Sync Server (`syncfabric serve`, `Server: syncfabric/`):
    /// every PUT is atomic (temporary file renamed into place), `If-Match` and
    /// `If-None-Match: *` are checked under a per-path lock, ETags change on every
    /// write, and a MOVE's `Destination` is read as an escaped path. Nothing staged.
    Syncfabric,
}

impl Profile {
    /// A short lowercase name (`apache`, `nginx`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Profile::Generic => "generic",
            Profile::Nextcloud => "nextcloud",
            Profile::Apache => "apache",
            Profile::Nginx => "nginx",
            Profile::Lighttpd => "lighttpd",
            Profile::Rclone => "rclone",
            Profile::SabreDav => "sabredav",
            Profile::WsgiDav => "wsgidav",
            Profile::NodeWebdav => "webdav-server",
            Profile::Syncfabric => "syncfabric",
        }
    }
}

/// Everything needed to open a WebDAV root.
#[derive(Clone, Debug)]
pub struct WebDavConfig {
    /// The URL of the root collection (`http://` or `https://`, no credentials in it).
    /// A missing trailing `/` is added.
    pub url: String,
    /// Basic-auth credentials, if the server needs them.
    pub credentials: Option<Credentials>,
    /// The server family. `None`: [`WebDavStorage::connect`](crate::WebDavStorage::connect)
    /// probes it, [`WebDavStorage::new`](crate::WebDavStorage::new) uses `Generic`.
    pub profile: Option<Profile>,
    /// One extra certificate (PEM) to trust, e.g. a self-signed server's. TLS is
    /// always verified; system roots stay trusted too.
    pub trust_certificate_pem: Option<Vec<u8>>,
    /// The server is pinned by its certificate's SHA-256 (`?pin-sha256=` in the URL):
    /// [`WebDavStorage::connect`](crate::WebDavStorage::connect) fetches the
    /// certificate, refuses another one before any request, and trusts only it (see
    /// the `pin` module).
    pub pinned_sha256: Option<[u8; 32]>,
    /// Timeout for connecting.
    pub connect_timeout: Duration,
    /// Timeout without any progress while reading a response (not a total timeout,
    /// so large transfers are not cut).
    pub read_timeout: Duration,
    /// The largest PROPFIND (or error) answer read into memory, in bytes. Larger
    /// answers are [`Error::Corrupt`]. Default 16 MiB (about 30,000 entries).
    pub max_response_bytes: usize,
    /// Nextcloud: files larger than this are uploaded in chunks of this size.
    /// Default 10 MiB.
    pub chunk_size: u64,
    /// Nextcloud: how many times a `423 Locked` answer is retried (with a growing
    /// pause) before it is returned as [`Error::Transient`]. Default 5. Other servers'
    /// 423 is a client's WebDAV lock: [`Error::Locked`] at once.
    pub locked_retries: u32,
    /// How long to wait for a weak ETag to become strong (Apache marks ETags weak for
    /// one second after a write) before falling back to a content hash. Default 3 s.
    pub weak_etag_wait: Duration,
    /// [`WebDavStorage::connect`](crate::WebDavStorage::connect) creates the root
    /// folder and its missing parents (for a remote being set up). Default `false`:
    /// a missing root is [`Error::NotFound`](syncfabric_core::Error::NotFound), naming
    /// the part of the path that is missing.
    pub create_root: bool,
    /// Whether every write goes to a temporary name in the target's folder and is then
    /// MOVEd into place under the write's condition. `None` (the default): the profile
    /// decides: yes for `Generic` (an unknown server might write a PUT in place, so a
    /// cut upload would truncate the file) and `Rclone` (it does), no where a cut PUT
    /// was measured to leave the old content (Apache, nginx, lighttpd, SabreDAV) and on
    /// Nextcloud. `Some(false)` writes in place: use it only for a server whose honesty
    /// probe, run with it, reported `atomic_writes` (a cut write kept the old content).
    pub temp_uploads: Option<bool>,
}

impl WebDavConfig {
    /// A configuration for `url` with defaults and no credentials.
    pub fn new(url: impl Into<String>) -> Self {
        WebDavConfig {
            url: url.into(),
            credentials: None,
            profile: None,
            trust_certificate_pem: None,
            pinned_sha256: None,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            max_response_bytes: 16 * 1024 * 1024,
            chunk_size: 10 * 1024 * 1024,
            locked_retries: 5,
            weak_etag_wait: Duration::from_secs(3),
            create_root: false,
            temp_uploads: None,
        }
    }

    /// Sets basic-auth credentials.
    pub fn with_credentials(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.credentials = Some(Credentials {
            user: user.into(),
            password,
        });
        self
    }

    /// Sets [`temp_uploads`](Self::temp_uploads).
    pub fn with_temp_uploads(mut self, temp: bool) -> Self {
        self.temp_uploads = Some(temp);
        self
    }

    /// Sets the profile instead of probing.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Parses a registry URL: `webdav+https://user@host/path`, `webdav+http://…`, or
    /// `nextcloud+https://user@host[/prefix]/<folder>` (the folder is relative to the
    /// user's files root `remote.php/dav/files/<user>/` unless the path already contains
    /// `remote.php/`). A password in the URL is taken (but prefer `password`);
    /// `password` wins when both are given. The URL is never echoed in errors.
    pub fn from_url(url: &str, password: Option<Secret>) -> Result<WebDavConfig, Error> {
        let parsed = StorageUrl::parse(url).map_err(|_| Error::InvalidInput {
            message: "WebDAV URL: missing scheme".into(),
        })?;
        Self::from_storage_url(&parsed, password)
    }

    /// [`from_url`](Self::from_url) from the URL the registry parsed once. A fragment,
    /// or a query other than `pin-sha256=<64 hex>` on an https URL, is refused (no other
    /// setting is given that way, and a path is never guessed from them).
    pub fn from_storage_url(
        url: &StorageUrl,
        password: Option<Secret>,
    ) -> Result<WebDavConfig, Error> {
        let bad = |m: &str| Error::InvalidInput {
            message: format!("WebDAV URL: {m}"),
        };
        let (profile, http_scheme) = match url.scheme() {
            "webdav+https" | "davs" | "https" => (None, "https"),
            "webdav+http" | "dav" | "http" => (None, "http"),
            "nextcloud+https" | "owncloud+https" => (Some(Profile::Nextcloud), "https"),
            "nextcloud+http" | "owncloud+http" => (Some(Profile::Nextcloud), "http"),
            _ => {
                return Err(bad(
                    "scheme must be webdav+https, webdav+http or nextcloud+https",
                ))
            }
        };
        let pinned_sha256 = Self::pin_of(url, http_scheme)?;
        if url.fragment().is_some() {
            return Err(bad(
                "a '#' has no meaning here (percent-encode it in a folder name)",
            ));
        }
        let authority = url.authority().ok_or_else(|| bad("missing host"))?;
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let credentials = Self::credentials_of(url, password)?;
        let mut path = match url.path() {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        if profile == Some(Profile::Nextcloud) && !path.contains("/remote.php/") {
            let user = credentials
                .as_ref()
                .map(|c| c.user.clone())
                .ok_or_else(|| {
                    bad("nextcloud URLs need a user (nextcloud+https://user@host/folder)")
                })?;
            let enc_user = crate::client::encode_segment(&user);
            path = format!("/remote.php/dav/files/{enc_user}{path}");
        }
        let mut cfg = WebDavConfig::new(format!("{http_scheme}://{host}{path}"));
        cfg.credentials = credentials;
        cfg.profile = profile;
        cfg.pinned_sha256 = pinned_sha256;
        Ok(cfg)
    }

    /// The URL's `pin-sha256`, the only query a WebDAV URL may have (https only).
    fn pin_of(url: &StorageUrl, http_scheme: &str) -> Result<Option<[u8; 32]>, Error> {
        let Some(q) = url.query() else {
            return Ok(None);
        };
        let bad = |m: &str| Error::InvalidInput {
            message: format!("WebDAV URL: {m}"),
        };
        let only_pin = q.split('&').all(|kv| kv.starts_with("pin-sha256="));
        let pin = url.query_param("pin-sha256");
        match (only_pin, pin) {
            (true, Some(p)) if http_scheme == "https" => crate::pin::parse_pin(&p)
                .map(Some)
                .ok_or_else(|| bad("pin-sha256 is the certificate's SHA-256 in 64 hex digits")),
            (true, Some(_)) => Err(bad("pin-sha256 needs an https URL")),
            _ => Err(bad(
                "a '?' has no meaning here but pin-sha256=<hex> (percent-encode it in a folder name)",
            )),
        }
    }

    /// The user the URL names with `password` (or the URL's own, or none).
    fn credentials_of(
        url: &StorageUrl,
        password: Option<Secret>,
    ) -> Result<Option<Credentials>, Error> {
        let Some(user) = url.username() else {
            if password.is_some() {
                return Err(Error::InvalidInput {
                    message:
                        "WebDAV URL: a password was given but the URL names no user (user@host)"
                            .into(),
                });
            }
            return Ok(None);
        };
        let password = password
            .or_else(|| url.password().map(|p| Secret::new(p.expose())))
            .unwrap_or_else(|| Secret::new(""));
        Ok(Some(Credentials { user, password }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        let c = Credentials {
            user: "u".into(),
            password: s,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn parses_registry_urls() {
        let c = WebDavConfig::from_url(
            "webdav+https://alice@example.org:8443/dav/Enpass",
            Some(Secret::new("pw")),
        )
        .unwrap();
        assert_eq!(c.url, "https://example.org:8443/dav/Enpass");
        assert_eq!(c.credentials.as_ref().unwrap().user, "alice");
        assert_eq!(c.credentials.as_ref().unwrap().password.expose(), "pw");
        assert_eq!(c.profile, None);
        assert!(!format!("{c:?}").contains("pw\""));

        let c = WebDavConfig::from_url("nextcloud+https://bob@cloud.example/Enpass", None).unwrap();
        assert_eq!(
            c.url,
            "https://cloud.example/remote.php/dav/files/bob/Enpass"
        );
        assert_eq!(c.profile, Some(Profile::Nextcloud));

        let c = WebDavConfig::from_url(
            "nextcloud+https://bob@cloud.example/nc/remote.php/dav/files/bob/E",
            None,
        )
        .unwrap();
        assert_eq!(c.url, "https://cloud.example/nc/remote.php/dav/files/bob/E");

        let c = WebDavConfig::from_url("webdav+http://u:p%40ss@127.0.0.1:8080/", None).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:8080/");
        assert_eq!(c.credentials.unwrap().password.expose(), "p@ss");

        for bad in [
            "ftp://x/",
            "webdav+https:///x",
            "nextcloud+https://host/x",
            "nonsense",
            "webdav+https://u@host/dav?folder=x",
            "webdav+https://u@host/dav#x",
            "webdav+https:relative",
        ] {
            let e = WebDavConfig::from_url(bad, None).unwrap_err();
            assert!(matches!(e, Error::InvalidInput { .. }), "{bad}: {e}");
        }
    }
}
