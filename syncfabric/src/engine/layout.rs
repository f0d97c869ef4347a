//! Where a vault lives on a remote: syncfabric's own layout (a folder per vault, the
//! database and vault.json beside its attachment files) or the Enpass apps' sync file
//! (one vault per folder, in one file; see [`syncfabric_vault::container`]).

use super::SyncError;
use syncfabric_core::{Error as StorageError, RemotePath};

/// How a remote keeps vaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// `<root>/<vault uuid>/vault.enpassdb`, `vault.json` and `<uuid>.enpassattach`
    /// files; many vaults per remote.
    #[default]
    Syncfabric,
    /// The Enpass apps' own: `<dir>/vault.enpassdbsync`, vault.json and the database
    /// in one file; one vault per folder. The apps write it with plain PUTs, so a
    /// remote that does not descend from our last commit
    /// ([`syncfabric_merge::descends_from`]) is merged without that base (see
    /// `plan.rs`), and file attachments are not carried.
    Enpass {
        /// The folder holding the file: `Enpass` under the remote's URL as the apps
        /// make it on WebDAV, or the URL itself (Dropbox's `/Apps/Enpass`).
        dir: RemotePath,
    },
}

impl Layout {
    /// The Enpass layout in the `Enpass` folder under the remote's URL, where the
    /// Enpass apps put it on WebDAV.
    pub fn enpass() -> Layout {
        Layout::Enpass {
            // A constant one-segment path.
            dir: RemotePath::parse(ENPASS_DIR).unwrap_or_else(|_| RemotePath::root()),
        }
    }

    /// Its name in a configuration: `syncfabric` or `enpass`.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Syncfabric => "syncfabric",
            Layout::Enpass { .. } => "enpass",
        }
    }

    /// The remote paths of vault `vault_uuid` (used only by the syncfabric layout: one
    /// path segment, else `InvalidInput`).
    pub fn locate(&self, vault_uuid: &str) -> Result<RemoteLayout, SyncError> {
        match self {
            Layout::Syncfabric => remote_layout(vault_uuid),
            Layout::Enpass { dir } => Ok(RemoteLayout {
                dir: dir.clone(),
                db: dir.join(syncfabric_vault::container::FILE_NAME)?,
                json: None,
            }),
        }
    }
}

/// The folder the Enpass apps make under a WebDAV URL.
pub const ENPASS_DIR: &str = "Enpass";

/// Where a vault lives on the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteLayout {
    /// `<uuid>/` (the Enpass layout: its folder)
    pub dir: RemotePath,
    /// `<uuid>/vault.enpassdb` (the Enpass layout: `vault.enpassdbsync`, the container)
    pub db: RemotePath,
    /// `<uuid>/vault.json`; `None` where vault.json travels inside the container.
    pub json: Option<RemotePath>,
}

impl RemoteLayout {
    /// Whether the database travels in an Enpass container with vault.json.
    pub fn is_container(&self) -> bool {
        self.json.is_none()
    }
}

/// Where the vault `vault_uuid` lives in the syncfabric layout (one path segment, else
/// `InvalidInput`).
pub fn remote_layout(vault_uuid: &str) -> Result<RemoteLayout, SyncError> {
    let dir = RemotePath::parse(vault_uuid)?;
    if dir.is_root() || dir.segments().count() != 1 {
        return Err(SyncError::Storage(StorageError::InvalidInput {
            message: "a vault uuid must be one path segment".into(),
        }));
    }
    let db = dir.join("vault.enpassdb")?;
    let json = Some(dir.join("vault.json")?);
    Ok(RemoteLayout { dir, db, json })
}

/// Looks for an Enpass app's sync file where the apps put it: `Enpass/` under the
/// remote's URL (WebDAV), then the URL itself (Dropbox's `/Apps/Enpass`). The layout
/// that holds it, or `None` when there is none.
pub async fn find_enpass_file(
    storage: &dyn syncfabric_core::Storage,
) -> Result<Option<Layout>, SyncError> {
    for dir in [ENPASS_DIR, ""] {
        let dir = RemotePath::parse(dir)?;
        let file = dir.join(syncfabric_vault::container::FILE_NAME)?;
        match storage.stat(&file).await {
            Ok(Some(_)) => return Ok(Some(Layout::Enpass { dir })),
            Ok(None) | Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

impl Layout {
    /// Parses a layout as a configuration writes it: `syncfabric`, or `enpass` with the
    /// folder of its file (`Enpass`, or empty for the URL itself).
    pub fn parse(name: &str, dir: Option<&str>) -> Option<Layout> {
        match name {
            "syncfabric" => Some(Layout::Syncfabric),
            "enpass" => Some(Layout::Enpass {
                dir: RemotePath::parse(dir.unwrap_or(ENPASS_DIR)).ok()?,
            }),
            _ => None,
        }
    }

    /// The folder of the Enpass file (`None` for syncfabric's layout).
    pub fn enpass_dir(&self) -> Option<&RemotePath> {
        match self {
            Layout::Syncfabric => None,
            Layout::Enpass { dir } => Some(dir),
        }
    }
}
