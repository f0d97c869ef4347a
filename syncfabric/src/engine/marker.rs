//! The commit marker: how commits are told apart where the storage's versions repeat.
//!
//! The engine decides "nobody committed since I merged" by comparing the database's
//! version with the one it recorded. That holds only where every write gives a new
//! version. Where the honesty probe saw two writes in a row come back with one version
//! ([`Capabilities::strong_versions`](syncfabric_core::Capabilities::strong_versions)
//! is off: an ETag built from a whole-second mtime and the size, as nginx, lighttpd
//! and wsgidav make them), two same-size commits within one second look alike, and a
//! commit checked that way silently replaces another device's. SQLCipher files grow by
//! whole pages, so same-size commits are the rule, not the exception.
//!
//! On such storages every commit also writes [`MARKER`] in the vault's folder, 16
//! random bytes, under the same lock as the database (the server's lock, or the lease)
//! and after the database and `vault.json`. The version the engine records and
//! compares is then the SHA-256 of the marker's bytes (`commit:<hex>`), not anything
//! the server says; a missing marker reads as `commit:none`. Bytes that nobody else
//! can produce change on every commit by construction, so the comparison under the
//! lock cannot be fooled by the server's clock or by equal sizes.
//!
//! * **The marker is the commit point.** A database written by a device that died
//!   before writing its marker is not a commit yet: the next committer's check passes
//!   and replaces it, and the dead device's edits, still in its own vault, are merged
//!   by its next sync.
//! * **Readers read the marker before the database** (`stat_db`), and writers write it
//!   after, so a recorded version is never newer than the content recorded with it; an
//!   older one only costs the next sync a download and a merge.
//! * The marker's content is never parsed, only hashed, and its read is bounded.
//! * **Writers that write no marker.** In the Enpass layout the Enpass apps write the
//!   sync file with plain PUTs and know nothing of the marker, so there the version is
//!   the marker's hash *and* what the server says of the file (its tag, size and
//!   modification time): a foreign write changes the latter. A foreign write of the
//!   same size within the server's one-second clock still looks unchanged: the
//!   residual risk of such servers, said in ARCHITECTURE.md.

use super::SyncError;
use bytes::Bytes;
use futures_util::StreamExt;
use syncfabric_core::{
    Body, Entry, Error as StorageError, Precondition, RemotePath, Storage, Version,
};

/// The marker's file name in the vault's remote folder.
pub const MARKER: &str = "syncfabric-commit";

/// The most of a marker that is read: ours are 33 bytes; of anything larger only the
/// first bytes count (a committer replacing it still changes them). The read also
/// ends by the storage's own request timeouts.
const MAX_MARKER_BYTES: u64 = 4096;

/// How this sync tells commits apart: by the storage's own versions, or (where they
/// can repeat) by the commit marker at `marker`.
#[derive(Clone, Debug)]
pub(crate) struct Versioning {
    marker: Option<RemotePath>,
    /// Others write the database without the marker (see the module docs).
    foreign_writers: bool,
}

impl Versioning {
    /// The versioning `storage`'s (probed) capabilities call for, for the vault folder
    /// `dir`.
    /// `foreign_writers`: clients that write no marker write the database too.
    pub(crate) fn of(
        storage: &dyn Storage,
        dir: &RemotePath,
        foreign_writers: bool,
    ) -> Result<Versioning, SyncError> {
        let marker = if storage.capabilities().strong_versions {
            None
        } else {
            Some(dir.join(MARKER)?)
        };
        Ok(Versioning {
            marker,
            foreign_writers,
        })
    }

    /// The database's entry at `db`, with its version replaced by the commit marker's
    /// where versions can repeat (the marker is read first: see the module docs).
    pub(crate) async fn stat_db(
        &self,
        storage: &dyn Storage,
        db: &RemotePath,
    ) -> Result<Option<Entry>, SyncError> {
        let Some(marker) = &self.marker else {
            return Ok(storage.stat(db).await?);
        };
        let version = read_marker(storage, marker).await?;
        let foreign = self.foreign_writers;
        Ok(storage.stat(db).await?.map(|mut e| {
            e.version = Some(if foreign {
                with_file_state(&version, &e)
            } else {
                version
            });
            e
        }))
    }

    /// The version to record for a database just downloaded: where versions can repeat,
    /// the marker's version read before the download (`stated`), never the server's tag;
    /// else the version the storage gave with the download, or `stated`.
    pub(crate) fn downloaded(
        &self,
        with_download: Option<Version>,
        stated: Option<Version>,
    ) -> Option<Version> {
        match self.marker {
            Some(_) => stated,
            None => with_download.or(stated),
        }
    }

    /// Called once the database (version `db_version`) and `vault.json` are written:
    /// where versions can repeat, writes a new marker with `pre` (the lock) and returns
    /// its version, which is the commit's; else the commit's version is `db_version`.
    pub(crate) async fn seal(
        &self,
        storage: &dyn Storage,
        pre: Precondition,
        db: &RemotePath,
        db_version: Version,
    ) -> Result<Version, StorageError> {
        let Some(marker) = &self.marker else {
            return Ok(db_version);
        };
        let mut id = [0u8; 16];
        openssl::rand::rand_bytes(&mut id).map_err(|e| StorageError::Io {
            path: marker.to_string(),
            source: std::io::Error::other(format!("no randomness for the commit marker: {e}")),
        })?;
        let bytes = Bytes::from(format!("{}\n", hex::encode(id)));
        let version = marker_version(&bytes);
        storage.write(marker, Body::Bytes(bytes), pre).await?;
        if !self.foreign_writers {
            return Ok(version);
        }
        // The file as the server now describes it (a foreign write landing between
        // our write and this stat is taken for ours: see the module docs).
        match storage.stat(db).await? {
            Some(e) => Ok(with_file_state(&version, &e)),
            None => Err(StorageError::NotFound {
                path: db.to_string(),
            }),
        }
    }
}

/// The marker's version combined with what the server says of the database file.
fn with_file_state(marker: &Version, e: &Entry) -> Version {
    let modified = e
        .modified
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let tag = e.version.as_ref().map_or("", |v| v.as_str());
    let state = format!("{}\n{tag}\n{}\n{modified}", marker.as_str(), e.size);
    Version::new(format!(
        "commit+file:{}",
        hex::encode(openssl::sha::sha256(state.as_bytes()))
    ))
}

/// `commit:<SHA-256 of the marker's bytes>`, or `commit:none` where there is none.
async fn read_marker(storage: &dyn Storage, marker: &RemotePath) -> Result<Version, SyncError> {
    let mut dl = match storage.read(marker).await {
        Ok(dl) => dl,
        Err(StorageError::NotFound { .. }) => return Ok(Version::new("commit:none")),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = dl.stream.next().await {
        let chunk = chunk?;
        let room = (MAX_MARKER_BYTES as usize).saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(marker_version(&bytes))
}

fn marker_version(bytes: &[u8]) -> Version {
    Version::new(format!(
        "commit:{}",
        hex::encode(openssl::sha::sha256(bytes))
    ))
}
