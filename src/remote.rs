//! Opening a storage from a remote URL.
//!
//! | URL | storage |
//! |---|---|
//! | `folder:///mnt/nas/Enpass`, `file:///…`, or a plain absolute path | [`syncfabric_folder::FolderStorage`] |
//! | `icloud:` / `icloud:Enpass` | the iCloud Drive folder (macOS), subfolder `Enpass` by default |
//!
//! More schemes (WebDAV, the clouds, the Wi-Fi server) plug in here as their providers land.

use std::sync::Arc;
use syncfabric_core::{Error, Storage};

/// Opens the storage a remote URL names. Unknown schemes are `InvalidInput`.
pub fn open(url: &str) -> Result<Arc<dyn Storage>, Error> {
    if let Some(rest) = url.strip_prefix("folder://").or_else(|| url.strip_prefix("file://")) {
        if !rest.starts_with('/') {
            return Err(Error::InvalidInput {
                message: format!("{url}: a folder URL needs an absolute path (folder:///path)"),
            });
        }
        return Ok(Arc::new(syncfabric_folder::FolderStorage::new(rest)?));
    }
    if let Some(rest) = url.strip_prefix("icloud:") {
        let sub = rest.trim_matches('/');
        let sub = if sub.is_empty() { "Enpass" } else { sub };
        return Ok(Arc::new(syncfabric_folder::FolderStorage::icloud(sub)?));
    }
    if url.starts_with('/') {
        return Ok(Arc::new(syncfabric_folder::FolderStorage::new(url)?));
    }
    Err(Error::InvalidInput {
        message: format!("unknown remote URL scheme in {url:?} (supported: folder:///path, icloud:)"),
    })
}
