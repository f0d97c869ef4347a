//! iCloud Drive: the folder preset and its not-yet-downloaded placeholders.
//!
//! On macOS, iCloud Drive is a local folder,
//! `~/Library/Mobile Documents/com~apple~CloudDocs/`, kept in sync by the system.
//! A file that exists in iCloud but whose bytes are not on this Mac yet is represented
//! by a small placeholder named `.<name>.icloud` (e.g. `.vault.enpassdb.icloud` for
//! `vault.enpassdb`), a property list, not the file.
//!
//! # How the provider reports a placeholder (design)
//!
//! A placeholder is *not* a missing file: treating it as one would let the engine
//! upload a fresh vault with `IfAbsent` over data that exists but has not arrived.
//! So when `<name>` is absent but `.<name>.icloud` exists, every operation on `<name>`
//! (`stat`, `read`, `write`, `delete`) fails with [`Error::Transient`] (retryable: the
//! system downloads it in time) whose source is a [`NotDownloaded`]. Test for it with
//! [`not_downloaded`]. `list` does not show placeholders (they are not files of the
//! storage); [`FolderStorage::placeholders`](crate::FolderStorage::placeholders) lists
//! the names that are waiting to download. This crate does not ask macOS to start the
//! download (that needs Foundation's `startDownloadingUbiquitousItem`; `brctl download
//! <path>` does it from a shell).

use std::path::PathBuf;
use syncfabric_core::Error;

/// The file at `path` exists in iCloud Drive but is not downloaded to this device yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} is in iCloud Drive but not downloaded to this device yet")]
pub struct NotDownloaded {
    /// The storage path of the file (not of the placeholder).
    pub path: String,
}

impl NotDownloaded {
    /// The [`Error`] the provider returns for it: `Transient`, with this as source.
    pub fn into_error(self) -> Error {
        Error::Transient {
            message: self.to_string(),
            source: Some(Box::new(self)),
        }
    }
}

/// The [`NotDownloaded`] inside `err`, if `err` is the provider's "placeholder only"
/// error.
pub fn not_downloaded(err: &Error) -> Option<&NotDownloaded> {
    match err {
        Error::Transient {
            source: Some(s), ..
        } => s.downcast_ref::<NotDownloaded>(),
        _ => None,
    }
}

/// The placeholder name of file `name`: `vault.enpassdb` → `.vault.enpassdb.icloud`.
pub fn placeholder_name(name: &str) -> String {
    format!(".{name}.icloud")
}

/// The file name a placeholder stands for: `.vault.enpassdb.icloud` → `vault.enpassdb`.
/// `None` if `name` is not a placeholder name.
pub fn placeholder_target(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?.strip_suffix(".icloud")?;
    if inner.is_empty() {
        None
    } else {
        Some(inner)
    }
}

/// The iCloud Drive folder of this user on macOS:
/// `$HOME/Library/Mobile Documents/com~apple~CloudDocs`. `None` if `HOME` is unset.
/// On other systems this is where iCloud would be; it will not exist.
pub fn icloud_drive_root() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(
        PathBuf::from(home)
            .join("Library")
            .join("Mobile Documents")
            .join("com~apple~CloudDocs"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_names_round_trip() {
        assert_eq!(placeholder_name("vault.enpassdb"), ".vault.enpassdb.icloud");
        assert_eq!(
            placeholder_target(".vault.enpassdb.icloud"),
            Some("vault.enpassdb")
        );
        assert_eq!(placeholder_target("vault.enpassdb.icloud"), None);
        assert_eq!(placeholder_target("..icloud"), None);
        assert_eq!(placeholder_target(".icloud"), None);
    }

    #[test]
    fn not_downloaded_is_recognised_and_retryable() {
        let e = NotDownloaded {
            path: "v/vault.enpassdb".into(),
        }
        .into_error();
        assert!(e.is_retryable());
        assert_eq!(
            not_downloaded(&e).map(|n| n.path.as_str()),
            Some("v/vault.enpassdb")
        );
        assert!(not_downloaded(&Error::transient("x")).is_none());
    }
}
