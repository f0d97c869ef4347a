//! Where a [`DropboxStorage`](crate::DropboxStorage) points and how it behaves, parsed
//! once from its URL.

use std::time::Duration;
use syncfabric_core::registry::StorageUrl;
use syncfabric_core::retry::RetryPolicy;
use syncfabric_core::{Error, Result};

/// Dropbox's RPC endpoints (`api.dropboxapi.com`).
pub const API_URL: &str = "https://api.dropboxapi.com/2";
/// Dropbox's content endpoints (`content.dropboxapi.com`).
pub const CONTENT_URL: &str = "https://content.dropboxapi.com/2";
/// Dropbox's notification endpoint (`notify.dropboxapi.com`), for `list_folder/longpoll`.
pub const NOTIFY_URL: &str = "https://notify.dropboxapi.com/2";
/// The most one `files/upload` (or one session append) may carry: "Do not use this to
/// upload a file larger than 150 MB" (files/upload).
pub const MAX_REQUEST_BODY: u64 = 150 * 1024 * 1024;

/// Configuration of a [`DropboxStorage`](crate::DropboxStorage).
#[derive(Clone, Debug, PartialEq)]
pub struct DropboxConfig {
    /// The folder of the Dropbox (or of the app folder, for app-folder apps) that is
    /// the storage root, as names; empty for the top.
    pub root: Vec<String>,
    /// The RPC base URL, default [`API_URL`]; https, or http on loopback (a fake).
    pub api_url: String,
    /// The content base URL, default [`CONTENT_URL`]; same rule.
    pub content_url: String,
    /// The notification base URL (`list_folder/longpoll`), default [`NOTIFY_URL`];
    /// same rule.
    pub notify_url: String,
    /// Bodies larger than this go up in an upload session (default 16 MiB; at most
    /// [`MAX_REQUEST_BODY`]).
    pub upload_threshold: u64,
    /// The size of one session append (default 16 MiB; at most [`MAX_REQUEST_BODY`]).
    pub chunk_size: u64,
    /// The retry policy the registry factory wraps the storage with; also how often a
    /// failed session append is sent again.
    pub retry: RetryPolicy,
    /// Connect timeout of each request (default 30 s).
    pub connect_timeout: Duration,
}

impl DropboxConfig {
    /// A configuration rooted at `root` (names) on the real Dropbox endpoints.
    pub fn new(root: Vec<String>) -> Self {
        DropboxConfig {
            root,
            api_url: API_URL.into(),
            content_url: CONTENT_URL.into(),
            notify_url: NOTIFY_URL.into(),
            upload_threshold: 16 * 1024 * 1024,
            chunk_size: 16 * 1024 * 1024,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// Parses `dropbox:/path/in/dropbox` (`dropbox:` alone is the top), optionally with
    /// `?api_url=…&content_url=…` (a fake), `&upload_threshold=<bytes>` and
    /// `&chunk_size=<bytes>`, `&notify_url=…`. [`Error::InvalidInput`] otherwise.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_storage_url(&StorageUrl::parse(url)?)
    }

    /// As [`from_url`](Self::from_url), from a parsed URL.
    pub fn from_storage_url(url: &StorageUrl) -> Result<Self> {
        let bad = |m: &str| Error::InvalidInput {
            message: format!("{}: {m}", url.redacted()),
        };
        if url.base_scheme() != "dropbox" {
            return Err(bad("not a dropbox URL"));
        }
        if url.authority().is_some_and(|a| !a.is_empty()) {
            return Err(bad("dropbox URLs have no host: dropbox:/path"));
        }
        let path = url.decoded_path()?;
        let root = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let mut cfg = DropboxConfig::new(root);
        if let Some(u) = url.query_param("api_url") {
            cfg.api_url = u;
        }
        if let Some(u) = url.query_param("content_url") {
            cfg.content_url = u;
        }
        if let Some(u) = url.query_param("notify_url") {
            cfg.notify_url = u;
        }
        let number = |key: &str| -> Result<Option<u64>> {
            match url.query_param(key) {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(&format!("{key} must be a number of bytes"))),
            }
        };
        if let Some(n) = number("upload_threshold")? {
            cfg.upload_threshold = n;
        }
        if let Some(n) = number("chunk_size")? {
            cfg.chunk_size = n;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the URLs (https, or http on loopback; no credentials), the sizes and the
    /// root's names.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Error::InvalidInput {
            message: format!("Dropbox configuration: {m}"),
        };
        for (name, url) in [
            ("api_url", &self.api_url),
            ("content_url", &self.content_url),
        ] {
            let u = reqwest::Url::parse(url).map_err(|_| bad(&format!("{name} is not a URL")))?;
            let h = u.host_str().unwrap_or("");
            let h = h.trim_start_matches('[').trim_end_matches(']');
            let loopback = h.eq_ignore_ascii_case("localhost")
                || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
            if !(u.scheme() == "https" || (u.scheme() == "http" && loopback)) {
                return Err(bad(&format!(
                    "{name} must be https (or http to a loopback address)"
                )));
            }
            if !u.username().is_empty() || u.password().is_some() {
                return Err(bad(&format!("{name} must not hold credentials")));
            }
        }
        if self.upload_threshold > MAX_REQUEST_BODY {
            return Err(bad("upload_threshold is at most 150 MiB"));
        }
        if self.chunk_size == 0 || self.chunk_size > MAX_REQUEST_BODY {
            return Err(bad("chunk_size must be 1 byte to 150 MiB"));
        }
        for s in &self.root {
            if s == "." || s == ".." || s.contains('/') || s.contains('\\') {
                return Err(bad("bad root folder name"));
            }
        }
        Ok(())
    }

    /// The Dropbox path of the root: `""` for the top (what `list_folder` takes),
    /// else `/a/b`.
    pub(crate) fn root_path(&self) -> String {
        self.root.iter().map(|s| format!("/{s}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let c = DropboxConfig::from_url("dropbox:/Apps/Enpass").unwrap();
        assert_eq!(c.root, ["Apps", "Enpass"]);
        assert_eq!(c.root_path(), "/Apps/Enpass");
        assert_eq!(c.api_url, API_URL);
        let c = DropboxConfig::from_url("dropbox:").unwrap();
        assert_eq!(c.root_path(), "");
        let c = DropboxConfig::from_url(
            "dropbox:/V?api_url=http://127.0.0.1:9/2&content_url=http://127.0.0.1:9/2&upload_threshold=1000&chunk_size=300",
        )
        .unwrap();
        assert_eq!((c.upload_threshold, c.chunk_size), (1000, 300));
        assert_eq!(c.content_url, "http://127.0.0.1:9/2");
        for bad in [
            "dropbox://host/x",
            "dropbox:/x?api_url=http://example.com/2",
            "dropbox:/x?chunk_size=0",
            "dropbox:/x?upload_threshold=lots",
            "webdav:/x",
        ] {
            assert!(DropboxConfig::from_url(bad).is_err(), "{bad}");
        }
    }
}
