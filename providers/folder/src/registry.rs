//! Registry factories: `folder:` and `icloud:` URLs.
//!
//! | URL | storage |
//! |---|---|
//! | `folder:///mnt/nas/Enpass` (or `folder:/mnt/nas/Enpass`, `folder://localhost/...`, `file:///mnt/nas/Enpass`) | [`FolderStorage::new`] on that absolute path |
//! | `folder:///mnt/nas/Enpass?poll=30` | a network share: polling change feed every 30 s, no version cache ([`FolderOptions::network_share`]) |
//! | `folder:///x?cache=off` | version cache off |
//! | `folder:///x?create=1` | create the folder (and parents) if missing |
//! | `icloud:` | [`FolderStorage::icloud`]`("Enpass")` |
//! | `icloud:/Vaults/Enpass` | [`FolderStorage::icloud`]`("Vaults/Enpass")` |
//! | `icloud:/Enpass?drive=/path/to/com~apple~CloudDocs` | [`FolderStorage::icloud_at`] with that drive root (tests, unusual homes) |
//!
//! Paths are percent-decoded (`My%20Vaults`). A `folder:` URL with another host
//! (`folder://server/share`) is refused: mount the share and give its local path.
//!
//! ```
//! # async fn demo() -> syncfabric_core::Result<()> {
//! let registry = syncfabric_core::registry::Registry::new();
//! syncfabric_folder::registry::register(&registry);
//! let dir = std::env::temp_dir();
//! let storage = registry.open(&format!("folder://{}", dir.display())).await?;
//! assert!(storage.describe().starts_with("folder "));
//! # Ok(()) }
//! ```

use crate::{FolderOptions, FolderStorage};
use std::sync::Arc;
use std::time::Duration;
use syncfabric_core::registry::{
    Credentials, OpenOptions, ProviderFactory, ProviderInfo, Registry, StorageUrl,
};
use syncfabric_core::{Error, Result, Storage};

/// The subfolder of iCloud Drive that `icloud:` with no path opens.
pub const DEFAULT_ICLOUD_SUBFOLDER: &str = "Enpass";

fn bad(url: &StorageUrl, why: &str) -> Error {
    Error::InvalidInput {
        message: format!("{url}: {why}"),
    }
}

fn flag(url: &StorageUrl, key: &str) -> Result<Option<bool>> {
    match url.query_param(key).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "on" | "yes" | "") => Ok(Some(true)),
        Some("0" | "false" | "off" | "no") => Ok(Some(false)),
        Some(_) => Err(bad(url, &format!("{key} must be on or off"))),
    }
}

/// Opens `folder:` URLs (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct FolderFactory;

impl FolderFactory {
    /// The storage for `url`, synchronously (the factory's `open` calls this).
    pub fn open_url(url: &StorageUrl) -> Result<FolderStorage> {
        match url.authority() {
            None | Some("") | Some("localhost") => {}
            Some(_) => {
                return Err(bad(
                    url,
                    "only local paths: mount the share and use its path",
                ))
            }
        }
        let path = url.decoded_path()?;
        if path.is_empty() || !std::path::Path::new(&path).is_absolute() {
            return Err(bad(
                url,
                "the path must be absolute (folder:///mnt/nas/Enpass)",
            ));
        }
        let mut options = FolderOptions::default();
        if let Some(secs) = url.query_param("poll") {
            let secs: u64 = secs
                .parse()
                .map_err(|_| bad(url, "poll must be a number of seconds"))?;
            options = FolderOptions::network_share(Duration::from_secs(secs.max(1)));
        }
        if let Some(on) = flag(url, "cache")? {
            options.hash_cache = on;
        }
        if flag(url, "create")? == Some(true) {
            std::fs::create_dir_all(&path).map_err(|e| Error::from_io(e, &path))?;
        }
        FolderStorage::with_options(path, options)
    }
}

#[async_trait::async_trait]
impl ProviderFactory for FolderFactory {
    async fn open(&self, url: &StorageUrl, _opts: &OpenOptions) -> Result<Arc<dyn Storage>> {
        let url = url.clone();
        let s = tokio::task::spawn_blocking(move || Self::open_url(&url))
            .await
            .map_err(|e| Error::transient(format!("opening a folder: {e}")))??;
        Ok(Arc::new(s))
    }
}

/// Opens `icloud:` URLs (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct ICloudFactory;

impl ICloudFactory {
    /// The storage for `url`, synchronously.
    pub fn open_url(url: &StorageUrl) -> Result<FolderStorage> {
        if url.authority().is_some_and(|a| !a.is_empty()) {
            return Err(bad(
                url,
                "icloud: takes a path, not a host (icloud:/Enpass)",
            ));
        }
        let path = url.decoded_path()?;
        let sub = path.trim_matches('/');
        let sub = if sub.is_empty() {
            DEFAULT_ICLOUD_SUBFOLDER
        } else {
            sub
        };
        match url.query_param("drive") {
            Some(drive) => FolderStorage::icloud_at(drive, sub),
            None => FolderStorage::icloud(sub),
        }
    }
}

#[async_trait::async_trait]
impl ProviderFactory for ICloudFactory {
    async fn open(&self, url: &StorageUrl, _opts: &OpenOptions) -> Result<Arc<dyn Storage>> {
        let url = url.clone();
        let s = tokio::task::spawn_blocking(move || Self::open_url(&url))
            .await
            .map_err(|e| Error::transient(format!("opening iCloud Drive: {e}")))??;
        Ok(Arc::new(s))
    }
}

/// The schemes of a folder (`file` too, so that `file:///x` works).
pub const SCHEMES: &[&str] = &["folder", "file"];

/// The scheme of the iCloud Drive folder.
pub const ICLOUD_SCHEMES: &[&str] = &["icloud"];

/// Registers [`FolderFactory`] as `folder` (and `file`, so `file:///x` works too) and
/// [`ICloudFactory`] as `icloud`.
pub fn register(registry: &Registry) {
    registry.register_provider(
        ProviderInfo {
            schemes: SCHEMES,
            summary: "a local or network folder (a NAS share, a synced drive's folder)",
            example: "folder:///mnt/nas/Enpass",
            credentials: Credentials::None,
        },
        FolderFactory,
    );
    registry.register_provider(
        ProviderInfo {
            schemes: ICLOUD_SCHEMES,
            summary: "the iCloud Drive folder (macOS)",
            example: "icloud:/Enpass",
            credentials: Credentials::None,
        },
        ICloudFactory,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> StorageUrl {
        StorageUrl::parse(s).unwrap()
    }

    #[tokio::test]
    async fn opens_folder_urls() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::new();
        register(&r);
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let s = r
            .open(&format!("folder://{}", root.display()))
            .await
            .unwrap();
        assert_eq!(s.describe(), format!("folder {}", root.display()));
        let s = r
            .open(&format!("folder:{}?poll=5", root.display()))
            .await
            .unwrap();
        assert!(s.describe().contains("polled"));
        let sub = root.join("My Vaults");
        let u = format!("folder://localhost{}/My%20Vaults?create=1", root.display());
        r.open(&u).await.unwrap();
        assert!(sub.is_dir());
        assert!(matches!(
            r.open(&format!("folder://{}/missing", root.display()))
                .await,
            Err(Error::NotFound { .. })
        ));
        for bad in [
            "folder://nas/share",
            "folder:relative/path",
            "folder:",
            "folder:///x?poll=abc",
        ] {
            assert!(
                matches!(r.open(bad).await, Err(Error::InvalidInput { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            FolderFactory::open_url(&url(&format!("folder://{}?cache=maybe", root.display()))),
            Err(Error::InvalidInput { .. })
        ));
        let s = FolderFactory::open_url(&url(&format!("folder://{}?cache=off", root.display())))
            .unwrap();
        assert!(!s.options().hash_cache);
    }

    #[tokio::test]
    async fn opens_icloud_urls() {
        let dir = tempfile::tempdir().unwrap();
        let drive = dir.path().join("com~apple~CloudDocs");
        std::fs::create_dir(&drive).unwrap();
        let r = Registry::new();
        register(&r);
        let d = drive.display();
        r.open(&format!("icloud:?drive={d}")).await.unwrap();
        assert!(drive.join(DEFAULT_ICLOUD_SUBFOLDER).is_dir());
        let s =
            ICloudFactory::open_url(&url(&format!("icloud:/Vaults/Team%20A?drive={d}"))).unwrap();
        assert_eq!(
            s.root(),
            std::fs::canonicalize(drive.join("Vaults/Team A")).unwrap()
        );
        assert!(s.options().icloud_placeholders);
        assert!(r
            .open(&format!("icloud:/x?drive={}/nope", d))
            .await
            .is_err());
        assert!(matches!(
            r.open("icloud://host/x").await,
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            r.open("icloud:/../x").await,
            Err(Error::InvalidInput { .. }) | Err(Error::NotFound { .. })
        ));
    }
}
