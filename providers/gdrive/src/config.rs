//! Where a [`GdriveStorage`](crate::GdriveStorage) points and how it behaves, parsed
//! once from its URL.

use std::time::Duration;
use syncfabric_core::registry::StorageUrl;
use syncfabric_core::retry::RetryPolicy;
use syncfabric_core::{Error, Result};

/// Google's API host: `/drive/v2/…` for metadata, `/upload/drive/v2/…` for content.
pub const API_URL: &str = "https://www.googleapis.com";
/// Every chunk of a resumable upload but the last must be a multiple of this
/// (<https://developers.google.com/drive/api/guides/manage-uploads#resumable>).
pub const CHUNK_UNIT: u64 = 256 * 1024;

/// Configuration of a [`GdriveStorage`](crate::GdriveStorage).
#[derive(Clone, Debug, PartialEq)]
pub struct GdriveConfig {
    /// The folder (titles from the top of "My Drive") that is the storage root;
    /// empty for the top.
    pub root: Vec<String>,
    /// The API base URL, default [`API_URL`]; https, or http on loopback (a fake).
    pub api_url: String,
    /// The upload base URL (`/upload/drive/v2/…` is appended), default [`API_URL`];
    /// same rule.
    pub upload_url: String,
    /// The size of one resumable-upload chunk (default 8 MiB; a multiple of
    /// [`CHUNK_UNIT`]).
    pub chunk_size: u64,
    /// How often `watch` asks `changes.list` (default 10 s).
    pub poll_interval: Duration,
    /// The retry policy the registry factory wraps the storage with; also how often a
    /// failed chunk is sent again.
    pub retry: RetryPolicy,
    /// Connect timeout of each request (default 30 s).
    pub connect_timeout: Duration,
}

impl GdriveConfig {
    /// A configuration rooted at `root` (titles) on Google's endpoints.
    pub fn new(root: Vec<String>) -> Self {
        GdriveConfig {
            root,
            api_url: API_URL.into(),
            upload_url: API_URL.into(),
            chunk_size: 32 * CHUNK_UNIT,
            poll_interval: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// Parses `gdrive:/Some/Folder` (`gdrive:` alone is the top of My Drive),
    /// optionally with `?api_url=…&upload_url=…` (a fake), `&chunk_size=<bytes>` and
    /// `&poll_ms=<milliseconds>`. [`Error::InvalidInput`] otherwise.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_storage_url(&StorageUrl::parse(url)?)
    }

    /// As [`from_url`](Self::from_url), from a parsed URL.
    pub fn from_storage_url(url: &StorageUrl) -> Result<Self> {
        let bad = |m: &str| Error::InvalidInput {
            message: format!("{}: {m}", url.redacted()),
        };
        if url.base_scheme() != "gdrive" {
            return Err(bad("not a gdrive URL"));
        }
        if url.authority().is_some_and(|a| !a.is_empty()) {
            return Err(bad("gdrive URLs have no host: gdrive:/path"));
        }
        let root = url
            .decoded_path()?
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let mut cfg = GdriveConfig::new(root);
        if let Some(u) = url.query_param("api_url") {
            cfg.upload_url = u.clone();
            cfg.api_url = u;
        }
        if let Some(u) = url.query_param("upload_url") {
            cfg.upload_url = u;
        }
        let number = |key: &str| -> Result<Option<u64>> {
            match url.query_param(key) {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(&format!("{key} must be a whole number"))),
            }
        };
        if let Some(n) = number("chunk_size")? {
            cfg.chunk_size = n;
        }
        if let Some(n) = number("poll_ms")? {
            cfg.poll_interval = Duration::from_millis(n.max(10));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the URLs (https, or http on loopback; no credentials), the chunk size
    /// and the root's titles.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Error::InvalidInput {
            message: format!("Google Drive configuration: {m}"),
        };
        for (name, url) in [("api_url", &self.api_url), ("upload_url", &self.upload_url)] {
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
        if self.chunk_size == 0 || !self.chunk_size.is_multiple_of(CHUNK_UNIT) {
            return Err(bad("chunk_size must be a multiple of 256 KiB"));
        }
        if self.chunk_size > 1024 * CHUNK_UNIT {
            return Err(bad(
                "chunk_size is at most 256 MiB (one chunk is held in memory)",
            ));
        }
        for s in &self.root {
            if s == "." || s == ".." || s.contains('/') || s.contains('\\') {
                return Err(bad("bad root folder name"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let c = GdriveConfig::from_url("gdrive:/Apps/Enpass").unwrap();
        assert_eq!(c.root, ["Apps", "Enpass"]);
        assert_eq!(c.api_url, API_URL);
        assert!(GdriveConfig::from_url("gdrive:").unwrap().root.is_empty());
        let c = GdriveConfig::from_url(
            "gdrive:/V?api_url=http://127.0.0.1:9&chunk_size=524288&poll_ms=50",
        )
        .unwrap();
        assert_eq!(c.chunk_size, 524_288);
        assert_eq!(c.upload_url, "http://127.0.0.1:9");
        assert_eq!(c.poll_interval, Duration::from_millis(50));
        for bad in [
            "gdrive://host/x",
            "gdrive:/x?api_url=http://example.com",
            "gdrive:/x?chunk_size=1000",
            "gdrive:/x?chunk_size=0",
            "gdrive:/x?poll_ms=soon",
            "dropbox:/x",
        ] {
            assert!(GdriveConfig::from_url(bad).is_err(), "{bad}");
        }
    }
}
