//! Where a [`OneDriveStorage`](crate::OneDriveStorage) points and how it behaves.

use std::time::Duration;
use syncfabric_core::registry::StorageUrl;
use syncfabric_core::retry::RetryPolicy;
use syncfabric_core::{Error, Result};

/// Microsoft Graph v1.0.
pub const GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";
/// The unit of upload-session fragments: 320 KiB.
pub const FRAGMENT_UNIT: u64 = 327_680;
/// The largest body sent as a simple upload (4 MiB); larger ones use a session.
pub const SIMPLE_UPLOAD_MAX: u64 = 4 * 1024 * 1024;

/// Which drive, and which folder of it, the storage is rooted at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The signed-in person's OneDrive (`/me/drive/root`).
    Me,
    /// The app's own folder (`/me/drive/special/approot`, `Apps/<app name>`), for apps
    /// registered with `Files.ReadWrite.AppFolder`.
    AppRoot,
    /// A SharePoint document library.
    SharePoint {
        /// The site's host, e.g. `contoso.sharepoint.com`.
        host: String,
        /// The site's server-relative path, e.g. `sites/Team` (empty: the root site).
        site_path: String,
        /// The library's name as Graph lists it (`Documents` for "Shared Documents").
        library: String,
    },
}

/// Configuration of a [`OneDriveStorage`](crate::OneDriveStorage).
#[derive(Clone, Debug, PartialEq)]
pub struct OneDriveConfig {
    /// The drive.
    pub location: Location,
    /// The folder inside the drive that is the storage root, as names (not encoded),
    /// e.g. `["Apps", "Enpass"]`; empty for the drive (or app folder) itself.
    pub root: Vec<String>,
    /// The Graph base URL, default [`GRAPH_URL`]. Only `https`, or `http` to a loopback
    /// address (a fake in tests).
    pub graph_url: String,
    /// Upload-session fragment size: a multiple of 320 KiB, at most 60 MiB
    /// (default 10 MiB = 32 × 320 KiB, as Microsoft suggests 5–10 MiB).
    pub fragment_size: u64,
    /// Bodies up to this size go as one simple upload (default and maximum 4 MiB).
    pub simple_upload_max: u64,
    /// How often `watch` asks `delta` for changes (default 30 s).
    pub delta_interval: Duration,
    /// Retries inside one upload (fragments, session status); also what the registry
    /// factory wraps the storage with.
    pub retry: RetryPolicy,
    /// Connect timeout of each request (default 30 s).
    pub connect_timeout: Duration,
}

impl OneDriveConfig {
    /// A configuration for `location` rooted at the drive (or app folder) itself.
    pub fn new(location: Location) -> Self {
        OneDriveConfig {
            location,
            root: Vec::new(),
            graph_url: GRAPH_URL.into(),
            fragment_size: 32 * FRAGMENT_UNIT,
            simple_upload_max: SIMPLE_UPLOAD_MAX,
            delta_interval: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// Parses a storage URL:
    ///
    /// * `onedrive:/path/in/drive` (also `onedrive:` for the drive root),
    /// * `onedrive:approot` and `onedrive:approot/path` for the app folder,
    /// * `sharepoint://<host>/sites/<site>/<library>/<path>` (also `/teams/<site>/…`;
    ///   any other first segment names a library of the host's root site),
    ///
    /// each optionally with `?graph_url=<url>` (https, or http on loopback) and
    /// `&fragment_kib=<n>` (a multiple of 320). [`Error::InvalidInput`] otherwise.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_storage_url(&StorageUrl::parse(url)?)
    }

    /// As [`from_url`](Self::from_url), from a parsed URL.
    pub fn from_storage_url(url: &StorageUrl) -> Result<Self> {
        let bad = |m: String| Error::InvalidInput {
            message: format!("{}: {m}", url.redacted()),
        };
        let path = url.decoded_path()?;
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let mut cfg = match url.base_scheme() {
            "onedrive" => {
                if url.authority().is_some_and(|a| !a.is_empty()) {
                    return Err(bad(
                        "onedrive URLs have no host: onedrive:/path or onedrive:approot/path"
                            .into(),
                    ));
                }
                if !path.starts_with('/') && segs.first().is_some_and(|s| s == "approot") {
                    let mut c = OneDriveConfig::new(Location::AppRoot);
                    c.root = segs[1..].to_vec();
                    c
                } else {
                    let mut c = OneDriveConfig::new(Location::Me);
                    c.root = segs;
                    c
                }
            }
            "sharepoint" => {
                let host = url.host().filter(|h| !h.is_empty()).ok_or_else(|| {
                    bad("sharepoint://<site-host>/<site-path>/<library>/<path>".into())
                })?;
                let (site_path, rest) = match segs.first().map(String::as_str) {
                    Some("sites") | Some("teams") if segs.len() >= 2 => {
                        (format!("{}/{}", segs[0], segs[1]), &segs[2..])
                    }
                    _ => (String::new(), &segs[..]),
                };
                let Some((library, root)) = rest.split_first() else {
                    return Err(bad("no document library in the path".into()));
                };
                let mut c = OneDriveConfig::new(Location::SharePoint {
                    host: host.to_string(),
                    site_path,
                    library: library.clone(),
                });
                c.root = root.to_vec();
                c
            }
            other => return Err(bad(format!("not a OneDrive/SharePoint scheme: {other}"))),
        };
        if let Some(g) = url.query_param("graph_url") {
            cfg.graph_url = g;
        }
        if let Some(k) = url.query_param("fragment_kib") {
            let kib: u64 = k
                .parse()
                .map_err(|_| bad("fragment_kib must be a number".into()))?;
            cfg.fragment_size = kib * 1024;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the values: the Graph URL's scheme and host, the fragment size.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Error::InvalidInput {
            message: format!("OneDrive configuration: {m}"),
        };
        let u = reqwest::Url::parse(&self.graph_url).map_err(|_| bad("graph_url is not a URL"))?;
        let host = u.host_str().unwrap_or("");
        let h = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = h.eq_ignore_ascii_case("localhost")
            || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
        match u.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(bad(
                    "graph_url must be https (or http to a loopback address)",
                ))
            }
        }
        if u.username() != "" || u.password().is_some() {
            return Err(bad("graph_url must not hold credentials"));
        }
        if self.fragment_size == 0
            || !self.fragment_size.is_multiple_of(FRAGMENT_UNIT)
            || self.fragment_size > 60 * 1024 * 1024
        {
            return Err(bad(
                "fragment_size must be a non-zero multiple of 320 KiB, at most 60 MiB",
            ));
        }
        if self.simple_upload_max > SIMPLE_UPLOAD_MAX {
            return Err(bad("simple_upload_max is at most 4 MiB"));
        }
        for s in &self.root {
            if s.is_empty() || s == "." || s == ".." || s.contains('/') {
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
        let c = OneDriveConfig::from_url("onedrive:/Apps/My%20Enpass").unwrap();
        assert_eq!(c.location, Location::Me);
        assert_eq!(c.root, vec!["Apps", "My Enpass"]);
        let c = OneDriveConfig::from_url("onedrive:approot/vaults").unwrap();
        assert_eq!(
            (c.location, c.root),
            (Location::AppRoot, vec!["vaults".to_string()])
        );
        let c = OneDriveConfig::from_url("onedrive:approot").unwrap();
        assert_eq!((c.location, c.root.len()), (Location::AppRoot, 0));
        let c = OneDriveConfig::from_url("onedrive:").unwrap();
        assert_eq!((c.location, c.root.len()), (Location::Me, 0));
        let c = OneDriveConfig::from_url(
            "sharepoint://contoso.sharepoint.com/sites/Team/Documents/Enpass/v?graph_url=http://127.0.0.1:9/v1.0",
        )
        .unwrap();
        assert_eq!(
            c.location,
            Location::SharePoint {
                host: "contoso.sharepoint.com".into(),
                site_path: "sites/Team".into(),
                library: "Documents".into()
            }
        );
        assert_eq!(c.root, vec!["Enpass", "v"]);
        assert_eq!(c.graph_url, "http://127.0.0.1:9/v1.0");
        let c = OneDriveConfig::from_url("sharepoint://h.example/Docs").unwrap();
        assert!(
            matches!(c.location, Location::SharePoint { ref site_path, .. } if site_path.is_empty())
        );
        for bad in [
            "onedrive:/x?graph_url=http://evil.example/v1.0",
            "onedrive:/x?graph_url=ftp://127.0.0.1/",
            "onedrive:/x?fragment_kib=100",
            "onedrive://host/x",
            "sharepoint://h.example/sites/Team",
            "dropbox:/x",
        ] {
            assert!(OneDriveConfig::from_url(bad).is_err(), "{bad}");
        }
        assert!(
            OneDriveConfig::from_url("onedrive:/x?graph_url=https://graph.example/v1.0").is_ok()
        );
        assert!(OneDriveConfig::from_url("onedrive:/x?graph_url=http://[::1]:80/v1.0").is_ok());
    }
}
