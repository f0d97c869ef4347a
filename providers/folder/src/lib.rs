//! # syncfabric-folder: a local or network folder as syncfabric storage
//!
//! [`FolderStorage`] turns a folder — on the local disk, on a network share (NFS, SMB),
//! or kept in sync by a desktop client (iCloud Drive, Dropbox, OneDrive, Syncthing) —
//! into a [`Storage`] the sync engine can use. Paths are relative to the folder; the
//! provider never reaches outside it.
//!
//! ```no_run
//! use syncfabric_core::{Body, Precondition, RemotePath, Storage};
//! use syncfabric_folder::FolderStorage;
//! # async fn demo() -> syncfabric_core::Result<()> {
//! let store = FolderStorage::new("/mnt/nas/Enpass")?;
//! let path = RemotePath::parse("primary/vault.json")?;
//! let first = store.write(&path, Body::from(b"{}".to_vec()), Precondition::IfAbsent).await?;
//! let version = first.version.expect("files always have a version");
//! // Replace it only if nobody else changed it since:
//! store.write(&path, Body::from(b"{\"a\":1}".to_vec()), Precondition::IfMatch(version)).await?;
//! # Ok(()) }
//! ```
//!
//! ## Guarantees
//!
//! * **Atomic writes.** A write goes to a hidden temp file in the same folder
//!   (`.syncfabric-tmp-<random>`), is fsynced, renamed over the target, and the folder
//!   is fsynced. A reader sees the old bytes or the new ones, never a mix; a writer
//!   killed at any point leaves the previous version current. Temp files and the
//!   folder's `.syncfabric-lock` never appear in listings, and writes to them are
//!   refused ([`is_internal_name`]); temp
//!   files of dead writers are deleted by [`FolderStorage::sweep_temp_files`] and
//!   automatically by later writes into the same folder (once
//!   [`FolderOptions::stale_temp_age`] old, 15 minutes by default; at most once per
//!   folder every 10 minutes per storage).
//! * **Strong versions.** [`Version`] is `sha256:<hex>` of
//!   the content (see [`version`] for why, and for the cache that avoids rehashing).
//!   It changes whenever the bytes change, even by another program, in the same
//!   millisecond, at the same size.
//! * **Compare-and-swap.** Every write and delete takes an exclusive lock on the
//!   folder's `.syncfabric-lock` file (`flock`), checks the precondition against the
//!   current content, then renames (or hard-links, for `IfAbsent`) and releases.
//!   - *Local disk:* `IfMatch`, `IfAbsent` and conditional deletes are truthful between
//!     all syncfabric processes and threads on the machine. `IfAbsent` is also truthful
//!     against any other program, because the final step is `link(2)`, which fails if
//!     the name exists. A non-syncfabric program that overwrites the file in place can
//!     still slip between our check and our rename (it takes no lock).
//!   - *NFS:* Linux emulates `flock` with NFS byte-range locks, so the lock excludes
//!     other NFS clients too (NFSv4, or v3 with a working lock manager); `link` is
//!     atomic on the server. Truthful between syncfabric clients.
//!   - *SMB/CIFS and desktop-synced folders:* the lock is only as good as the mount
//!     (`nobrl` mounts ignore it), and a desktop client merges writes from other
//!     devices whenever it likes: no lock spans devices there. The preconditions are
//!     truthful for writers on this machine; across devices a race becomes a conflict
//!     copy, which [`conflict::conflict_copies`] finds (re-exported from
//!     `syncfabric_core::conflict`: the names are recognised in core, since copies turn
//!     up on any storage a desktop client syncs; the sync engine merges them).
//! * **Change feed.** [`Storage::watch`] uses `notify` (inotify, FSEvents, ...), or its
//!   polling watcher when [`FolderOptions::poll_interval`] is set (network shares:
//!   inotify does not see changes made by other machines). Events are debounced.
//! * **Desktop sync clients.** iCloud placeholders (`.name.icloud`) are reported as
//!   [`icloud::NotDownloaded`], never as a missing file; conflict copies are never
//!   followed (the provider opens exact paths only) and can be listed with
//!   [`conflict::conflict_copies`].
//!
//! ## Semantics where the trait leaves room
//!
//! * `delete` of an empty folder removes it; of a non-empty folder is
//!   [`Error::InvalidInput`]. `delete` with `IfAbsent` succeeds when nothing is there
//!   and is [`Error::AlreadyExists`] otherwise.
//! * Writing over a folder, or below a file, is [`Error::InvalidInput`]; reading a
//!   folder is [`Error::InvalidInput`]; `stat` below a file is `Ok(None)`.
//! * Symbolic links inside the folder are never followed: the files of a shared folder
//!   are input from other people and programs, and a link `vault.enpassdb ->
//!   /etc/shadow` must not make the sync engine copy a secret file. A link as a file
//!   or folder on the path of a `stat`, `read`, `list`, `write` or `create_dir` is
//!   [`Error::InvalidInput`] ("... is a symbolic link ..."); `list` skips links with a
//!   warning; `delete` removes a link itself. Files are opened with `O_NOFOLLOW` on
//!   Unix, so a link swapped in after the check is refused too. (The root folder
//!   itself may be reached through links: it is resolved once, when the storage is
//!   made.) The provider itself never creates a link.
//! * Names that are not UTF-8, or not valid [`RemotePath`] segments (a backslash on
//!   Unix), are skipped by `list` with a warning.
//! * `list` and `stat` hash files to give their versions; see [`version`] for the
//!   cost and the cache. With [`FolderOptions::network_share`] (cache off) every `stat`
//!   of a file reads it whole over the network.
//! * Windows builds, untested here: the lock file uses `LockFileEx`; temp files are
//!   not locked, so the automatic sweep relies on their age alone.
//!
//! The `test-double` feature adds the `desktop_double` module, a folder that behaves like a
//! desktop sync client (late delivery, replace-by-rename, conflict copies), for tests.
#![deny(missing_docs)]

pub mod conflict;
#[cfg(feature = "test-double")]
pub mod desktop_double;
mod fsops;
pub mod icloud;
pub mod registry;
pub use registry::register;
pub mod version;
mod watch;

pub use conflict::{conflict_copies, conflict_style, ConflictCopy, ConflictStyle};
pub use fsops::{is_internal_name, DirLock, TempFile, LOCK_NAME, TEMP_PREFIX};
pub use icloud::{not_downloaded, NotDownloaded};

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::io::Seek;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use syncfabric_core::{
    Body, Capabilities, ChangeFeed, Download, Entry, EntryKind, Error, Precondition, RemotePath,
    Result, Storage, Version,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Size of the chunks a read yields and a write copies.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// Default age at which a temp file whose writer is gone is deleted by the automatic
/// sweep ([`FolderOptions::stale_temp_age`]).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(15 * 60);

/// How often (at most) one folder is swept automatically.
const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

/// Settings of a [`FolderStorage`]. `Default` suits a local disk.
#[derive(Clone, Debug)]
pub struct FolderOptions {
    /// Cache content versions keyed by file identity and timestamps (see [`version`]).
    /// Default `true`. Turn off on a network share whose server clock may be more than
    /// [`version::RACY_SLACK`] away from this machine's.
    pub hash_cache: bool,
    /// `Some(interval)`: [`Storage::watch`] polls every `interval` (comparing contents)
    /// instead of using the OS's notification API. Needed on network shares, where
    /// inotify does not see other machines' changes. Default `None`.
    pub poll_interval: Option<Duration>,
    /// How long the change feed waits for a burst of events to settle before reporting
    /// it. Default 100 ms.
    pub debounce: Duration,
    /// Treat `.name.icloud` files as iCloud placeholders of `name` (see [`icloud`]).
    /// Default `true` (such names do not occur outside iCloud Drive).
    pub icloud_placeholders: bool,
    /// How long a write or delete waits for the folder's lock before failing with
    /// [`Error::Transient`] (retryable). A lock is only held for the short
    /// check-and-rename step, and the kernel releases it when its holder dies, so
    /// waiting this long means a live holder is stuck (e.g. on a dead network share).
    /// Default 30 s.
    pub lock_timeout: Duration,
    /// Temp files whose writer is gone are deleted by later writes into their folder
    /// once they are this old (the check that the writer is gone comes first, on Unix
    /// by its lock). Default [`STALE_TEMP_AGE`].
    pub stale_temp_age: Duration,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            hash_cache: true,
            poll_interval: None,
            debounce: Duration::from_millis(100),
            icloud_placeholders: true,
            lock_timeout: Duration::from_secs(30),
            stale_temp_age: STALE_TEMP_AGE,
        }
    }
}

impl FolderOptions {
    /// Settings for a network share: polling change feed every `interval`, no
    /// timestamp-based version cache.
    pub fn network_share(interval: Duration) -> Self {
        FolderOptions {
            hash_cache: false,
            poll_interval: Some(interval),
            ..Default::default()
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) options: FolderOptions,
    pub(crate) cache: version::VersionCache,
    last_sweep: Mutex<HashMap<PathBuf, Instant>>,
}

/// A folder as a [`Storage`]. Cheap to clone (shared state behind an `Arc`); clones
/// share the version cache.
#[derive(Clone, Debug)]
pub struct FolderStorage {
    pub(crate) inner: Arc<Inner>,
}

fn io_err(e: std::io::Error, path: &RemotePath) -> Error {
    if is_loop(&e) {
        return symlink_err(path);
    }
    Error::from_io(e, path.as_str())
}

/// The error for a symbolic link met on `path`.
fn symlink_err(path: &RemotePath) -> Error {
    Error::InvalidInput {
        message: format!(
            "{path} is or goes through a symbolic link; a folder remote never follows links \
             (replace the link with the real file or folder)"
        ),
    }
}

/// `ELOOP`: what `O_NOFOLLOW` gives for a link.
fn is_loop(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Opens the file `local` for reading, refusing a symbolic link (`O_NOFOLLOW`).
fn open_nofollow(local: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NOFOLLOW);
    o.open(local)
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Transient {
        message: format!("blocking task failed: {e}"),
        source: None,
    }
}

impl FolderStorage {
    /// A storage rooted at folder `root`, with default options. The folder must exist
    /// and be a folder: [`Error::NotFound`] / [`Error::InvalidInput`] otherwise.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        Self::with_options(root, FolderOptions::default())
    }

    /// A storage rooted at `root` with `options`. Same checks as [`FolderStorage::new`].
    pub fn with_options(root: impl Into<PathBuf>, options: FolderOptions) -> Result<Self> {
        let root = root.into();
        let shown = root.display().to_string();
        let meta = std::fs::metadata(&root).map_err(|e| Error::from_io(e, &shown))?;
        if !meta.is_dir() {
            return Err(Error::InvalidInput {
                message: format!("{shown} is not a folder"),
            });
        }
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        Ok(FolderStorage {
            inner: Arc::new(Inner {
                root,
                cache: version::VersionCache::new(options.hash_cache),
                options,
                last_sweep: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// iCloud Drive on macOS: `~/Library/Mobile Documents/com~apple~CloudDocs/<subfolder>`
    /// (created if missing, so `icloud("Enpass")` works on a fresh account). Fails with
    /// [`Error::NotFound`] if iCloud Drive itself is not there (not macOS, or iCloud
    /// Drive off). Elsewhere use [`FolderStorage::icloud_at`].
    pub fn icloud(subfolder: &str) -> Result<Self> {
        let base = icloud::icloud_drive_root().ok_or_else(|| Error::InvalidInput {
            message: "HOME is not set: cannot find iCloud Drive".into(),
        })?;
        Self::icloud_at(base, subfolder)
    }

    /// iCloud Drive whose `com~apple~CloudDocs` folder is at `drive_root` (for tests,
    /// or an unusual home): roots the storage at `drive_root/<subfolder>`, creating the
    /// subfolder if needed; `drive_root` itself must exist. Placeholders are on.
    pub fn icloud_at(drive_root: impl Into<PathBuf>, subfolder: &str) -> Result<Self> {
        let drive_root = drive_root.into();
        let shown = drive_root.display().to_string();
        std::fs::metadata(&drive_root).map_err(|e| Error::from_io(e, &shown))?;
        let sub = RemotePath::parse(subfolder)?;
        let mut dir = drive_root;
        for s in sub.segments() {
            dir.push(s);
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::from_io(e, &dir.display().to_string()))?;
        Self::with_options(
            dir,
            FolderOptions {
                icloud_placeholders: true,
                ..Default::default()
            },
        )
    }

    /// The folder this storage is rooted at (canonicalised).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The options in force.
    pub fn options(&self) -> &FolderOptions {
        &self.inner.options
    }

    /// The local path of `p`.
    pub fn local_path(&self, p: &RemotePath) -> PathBuf {
        let mut out = self.inner.root.clone();
        for s in p.segments() {
            out.push(s);
        }
        out
    }

    /// Deletes temp files (`.syncfabric-tmp-*`) in folder `dir` whose writer is gone
    /// (their lock is free: the process that made them died or crashed) and that were
    /// last modified at least `older_than` ago. Returns how many were deleted. A temp
    /// file of a live writer is never touched, whatever its age.
    pub async fn sweep_temp_files(&self, dir: &RemotePath, older_than: Duration) -> Result<usize> {
        let local = self.local_path(dir);
        let d = dir.clone();
        tokio::task::spawn_blocking(move || fsops::sweep_stale_temps(&local, older_than))
            .await
            .map_err(join_err)?
            .map_err(|e| io_err(e, &d))
    }

    /// The names (storage paths) in folder `dir` that exist only as iCloud placeholders:
    /// in iCloud, not downloaded to this device yet. Empty unless
    /// [`FolderOptions::icloud_placeholders`] is on.
    pub async fn placeholders(&self, dir: &RemotePath) -> Result<Vec<RemotePath>> {
        if !self.inner.options.icloud_placeholders {
            return Ok(Vec::new());
        }
        let local = self.local_path(dir);
        let mut rd = tokio::fs::read_dir(&local)
            .await
            .map_err(|e| io_err(e, dir))?;
        let mut out = Vec::new();
        while let Some(ent) = rd.next_entry().await.map_err(|e| io_err(e, dir))? {
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(target) = icloud::placeholder_target(name) {
                if tokio::fs::symlink_metadata(local.join(target))
                    .await
                    .is_err()
                {
                    if let Ok(p) = dir.join(target) {
                        out.push(p);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The conflict copies of file `file` that desktop sync clients left beside it
    /// (see [`conflict`]). Lists the file's folder; a missing folder gives none.
    pub async fn conflict_copies(&self, file: &RemotePath) -> Result<Vec<ConflictCopy>> {
        let parent = file.parent().unwrap_or_default();
        let listing = match self.list(&parent).await {
            Ok(l) => l,
            Err(Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(conflict::conflict_copies(&listing, file))
    }

    /// Refuses `path` when a symbolic link is on it: the file itself or any folder
    /// between the root and it (each is `lstat`ed; the walk stops at the first name
    /// that does not exist).
    fn check_no_links(&self, path: &RemotePath) -> Result<()> {
        let mut cur = self.inner.root.clone();
        for s in path.segments() {
            cur.push(s);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => return Err(symlink_err(path)),
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    /// Refuses paths the provider cannot write: the root, and reserved names.
    fn check_writable(path: &RemotePath) -> Result<()> {
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot write or delete the root folder".into(),
            });
        }
        if path.segments().any(fsops::is_internal_name) {
            return Err(Error::InvalidInput {
                message: format!("{path}: {TEMP_PREFIX}* and {LOCK_NAME} are reserved names"),
            });
        }
        Ok(())
    }

    /// If `path` is absent but has an iCloud placeholder, the "not downloaded" error.
    fn placeholder_error(&self, path: &RemotePath, local: &Path) -> Option<Error> {
        if !self.inner.options.icloud_placeholders {
            return None;
        }
        let name = path.file_name()?;
        let ph = local.with_file_name(icloud::placeholder_name(name));
        if std::fs::symlink_metadata(&ph).is_ok() {
            Some(
                NotDownloaded {
                    path: path.as_str().to_string(),
                }
                .into_error(),
            )
        } else {
            None
        }
    }

    /// Blocking stat of one local path.
    fn stat_blocking(&self, path: &RemotePath, local: &Path) -> Result<Option<Entry>> {
        if path.segments().any(fsops::is_internal_name) {
            return Ok(None);
        }
        self.check_no_links(path)?;
        let meta = match std::fs::symlink_metadata(local) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match self.placeholder_error(path, local) {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            // A file where a folder was expected in the path: nothing is there.
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(None),
            Err(e) => return Err(io_err(e, path)),
        };
        if meta.is_dir() {
            return Ok(Some(Entry {
                path: path.clone(),
                kind: EntryKind::Dir,
                size: 0,
                modified: meta.modified().ok(),
                version: None,
            }));
        }
        let file = match open_nofollow(local) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e, path)),
        };
        let meta = file.metadata().map_err(|e| io_err(e, path))?;
        let version = self
            .inner
            .cache
            .version_of(local, &file)
            .map_err(|e| io_err(e, path))?;
        Ok(Some(Entry {
            path: path.clone(),
            kind: EntryKind::File,
            size: meta.len(),
            modified: meta.modified().ok(),
            version: Some(version),
        }))
    }

    /// The current version of the file at `local` (None if absent), for a precondition
    /// check under the lock. A folder there is an error.
    fn current_version(&self, path: &RemotePath, local: &Path) -> Result<Option<Version>> {
        match open_nofollow(local) {
            Ok(f) => {
                let meta = f.metadata().map_err(|e| io_err(e, path))?;
                if meta.is_dir() {
                    return Err(Error::InvalidInput {
                        message: format!("{path} is a folder"),
                    });
                }
                Ok(Some(
                    self.inner
                        .cache
                        .version_of(local, &f)
                        .map_err(|e| io_err(e, path))?,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e, path)),
        }
    }

    /// The commit of a write, under the folder lock: check `pre`, move `temp` into place.
    fn commit_blocking(
        &self,
        path: &RemotePath,
        local: &Path,
        mut temp: fsops::TempFile,
        pre: &Precondition,
    ) -> Result<()> {
        let parent = local.parent().unwrap_or(&self.inner.root);
        let _lock = self.lock_dir(parent, path)?;
        if let Some(e) = self.placeholder_error(path, local) {
            if std::fs::symlink_metadata(local).is_err() {
                return Err(e);
            }
        }
        match std::fs::symlink_metadata(local) {
            Ok(m) if m.is_dir() => {
                return Err(Error::InvalidInput {
                    message: format!("{path} is a folder"),
                });
            }
            Ok(m) if m.file_type().is_symlink() => return Err(symlink_err(path)),
            _ => {}
        }
        match pre {
            Precondition::UnderLock(_) => return Err(no_server_lock(path)),
            Precondition::None => {
                std::fs::rename(&temp.path, local).map_err(|e| io_err(e, path))?;
                temp.disarm();
            }
            Precondition::IfMatch(want) => match self.current_version(path, local)? {
                Some(v) if &v == want => {
                    std::fs::rename(&temp.path, local).map_err(|e| io_err(e, path))?;
                    temp.disarm();
                }
                _ => {
                    return Err(Error::PreconditionFailed {
                        path: path.as_str().to_string(),
                    })
                }
            },
            Precondition::IfAbsent => {
                if std::fs::symlink_metadata(local).is_ok() {
                    return Err(Error::AlreadyExists {
                        path: path.as_str().to_string(),
                    });
                }
                // link(2) fails if the name exists, whoever created it in the meantime.
                match std::fs::hard_link(&temp.path, local) {
                    Ok(()) => {
                        // The temp name goes when `temp` is dropped (still armed).
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(Error::AlreadyExists {
                            path: path.as_str().to_string(),
                        });
                    }
                    Err(e) => {
                        // No hard links here (FAT, some SMB shares): fall back to the
                        // check above, made under our lock.
                        tracing::debug!(%path, error = %e, "hard link unavailable; renaming under the lock");
                        std::fs::rename(&temp.path, local).map_err(|e| io_err(e, path))?;
                        temp.disarm();
                    }
                }
            }
        }
        drop(temp);
        fsops::sync_dir(parent).map_err(|e| io_err(e, path))?;
        Ok(())
    }

    /// The delete, under the folder lock.
    fn delete_blocking(&self, path: &RemotePath, local: &Path, pre: &Precondition) -> Result<()> {
        let Some(parent) = local.parent() else {
            return Err(Error::InvalidInput {
                message: "cannot delete the root folder".into(),
            });
        };
        if !std::fs::metadata(parent).is_ok_and(|m| m.is_dir()) {
            // The folder is gone (or is a file), so is the file.
            if let Some(e) = self.placeholder_error(path, local) {
                return Err(e);
            }
            return match pre {
                Precondition::IfMatch(_) => Err(Error::PreconditionFailed {
                    path: path.as_str().to_string(),
                }),
                _ => Ok(()),
            };
        }
        let _lock = match self.lock_dir(parent, path) {
            Ok(l) => l,
            // The folder was deleted meanwhile: so was the file.
            Err(Error::NotFound { .. }) => {
                return match pre {
                    Precondition::IfMatch(_) => Err(Error::PreconditionFailed {
                        path: path.as_str().to_string(),
                    }),
                    _ => Ok(()),
                };
            }
            Err(e) => return Err(e),
        };
        let meta = std::fs::symlink_metadata(local);
        if meta.is_err() {
            if let Some(e) = self.placeholder_error(path, local) {
                return Err(e);
            }
        }
        if let Ok(m) = &meta {
            if m.is_dir() {
                if let Precondition::IfMatch(_) = pre {
                    return Err(Error::PreconditionFailed {
                        path: path.as_str().to_string(),
                    });
                }
                if let Precondition::IfAbsent = pre {
                    return Err(Error::AlreadyExists {
                        path: path.as_str().to_string(),
                    });
                }
                return self.remove_folder(path, local, parent);
            }
        }
        match pre {
            Precondition::UnderLock(_) => return Err(no_server_lock(path)),
            Precondition::None => {}
            Precondition::IfAbsent => {
                return if meta.is_ok() {
                    Err(Error::AlreadyExists {
                        path: path.as_str().to_string(),
                    })
                } else {
                    Ok(())
                };
            }
            Precondition::IfMatch(want) => match self.current_version(path, local)? {
                Some(v) if &v == want => {}
                _ => {
                    return Err(Error::PreconditionFailed {
                        path: path.as_str().to_string(),
                    })
                }
            },
        }
        match std::fs::remove_file(local) {
            Ok(()) => fsops::sync_dir(parent).map_err(|e| io_err(e, path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e, path)),
        }
    }

    /// Takes the lock of local folder `dir` for an operation on `path`, waiting at most
    /// [`FolderOptions::lock_timeout`].
    fn lock_dir(&self, dir: &Path, path: &RemotePath) -> Result<fsops::DirLock> {
        fsops::DirLock::acquire(dir, self.inner.options.lock_timeout).map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                Error::Transient {
                    message: format!(
                        "{path}: the folder is locked by another writer for more than {:?}",
                        self.inner.options.lock_timeout
                    ),
                    source: Some(Box::new(e)),
                }
            } else {
                io_err(e, path)
            }
        })
    }

    /// Removes the empty folder `local` (called under its parent's lock). "Empty" as
    /// listed: the folder's own lock file and temp files of dead writers (older than a
    /// minute) do not count and are removed with it; a temp file of a live or recent
    /// writer does count (a write may be in progress), as does any other entry.
    fn remove_folder(&self, path: &RemotePath, local: &Path, parent: &Path) -> Result<()> {
        let not_empty = || Error::InvalidInput {
            message: format!("{path}: folder is not empty"),
        };
        // Writers commit into `local` under its own lock: hold it while we look.
        let lock = self.lock_dir(local, path)?;
        // A temp file younger than this may belong to a writer that has created it but
        // not locked it yet: it counts as a write in progress.
        fsops::sweep_stale_temps(local, Duration::from_secs(60)).map_err(|e| io_err(e, path))?;
        let rd = std::fs::read_dir(local).map_err(|e| io_err(e, path))?;
        for ent in rd {
            let ent = ent.map_err(|e| io_err(e, path))?;
            if ent.file_name() != LOCK_NAME {
                return Err(not_empty());
            }
        }
        // Deleting the lock file while holding it: a writer that opened it before sees
        // an unlinked file, but such a writer always has a live temp file in `local`
        // first, which would have made the folder non-empty above.
        match std::fs::remove_file(local.join(LOCK_NAME)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e, path)),
        }
        drop(lock);
        match std::fs::remove_dir(local) {
            Ok(()) => fsops::sync_dir(parent).map_err(|e| io_err(e, path)),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Err(not_empty()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e, path)),
        }
    }

    /// Sweeps folder `dir` (local path) for stale temps if it was not swept lately.
    fn maybe_sweep(&self, dir: &Path) {
        let due = {
            let mut m = self
                .inner
                .last_sweep
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            match m.get(dir) {
                Some(t) if now.duration_since(*t) < SWEEP_EVERY => false,
                _ => {
                    if m.len() > 1024 {
                        m.clear();
                    }
                    m.insert(dir.to_path_buf(), now);
                    true
                }
            }
        };
        if due {
            if let Ok(n) = fsops::sweep_stale_temps(dir, self.inner.options.stale_temp_age) {
                if n > 0 {
                    tracing::info!(dir = %dir.display(), removed = n, "removed temp files of dead writers");
                }
            }
        }
    }

    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FolderStorage) -> Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> {
        let me = self.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&me))
                .await
                .map_err(join_err)?
        }
    }
}

/// The state of one streaming read.
struct ReadState {
    file: tokio::fs::File,
    shown: String,
    /// Size and mtime when the read was opened (and its version computed).
    size: u64,
    modified: Option<std::time::SystemTime>,
    total: u64,
    done: bool,
}

impl ReadState {
    /// At the end of the stream: the bytes read must be the version announced. Our own
    /// writers replace files by rename, so an open handle never changes; another
    /// program rewriting the file in place during the read is caught here (size or
    /// mtime changed) and reported as a retryable error instead of a torn download.
    async fn check_unchanged(&self) -> Result<()> {
        let meta = self
            .file
            .metadata()
            .await
            .map_err(|e| Error::from_io(e, &self.shown))?;
        if self.total != self.size
            || meta.len() != self.size
            || meta.modified().ok() != self.modified
        {
            return Err(Error::Transient {
                message: format!(
                    "{}: changed in place while it was read; read it again",
                    self.shown
                ),
                source: None,
            });
        }
        Ok(())
    }
}

/// A folder has no server to enforce a lock: `UnderLock` is refused, never ignored.
fn no_server_lock(path: &RemotePath) -> Error {
    Error::Unsupported {
        message: format!("{path}: a folder has no server-enforced lock"),
    }
}

#[async_trait::async_trait]
impl Storage for FolderStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            if_match: true,
            if_absent: true,
            conditional_delete: true,
            max_single_write: None,
            chunked_upload: false,
            change_feed: ChangeFeed::Native,
            read_after_write: true,
            server_clock: false,
            server_lock: false,
            strong_versions: true,
            spaced_writes: false,
        }
    }

    fn describe(&self) -> String {
        match self.inner.options.poll_interval {
            Some(_) => format!("folder {} (polled)", self.inner.root.display()),
            None => format!("folder {}", self.inner.root.display()),
        }
    }

    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        let p = path.clone();
        self.blocking(move |me| me.stat_blocking(&p, &me.local_path(&p)))
            .await
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let d = dir.clone();
        self.blocking(move |me| {
            let local = me.local_path(&d);
            me.check_no_links(&d)?;
            let rd = match std::fs::read_dir(&local) {
                Ok(rd) => rd,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Err(Error::NotFound {
                        path: d.as_str().to_string(),
                    });
                }
                Err(e) => return Err(io_err(e, &d)),
            };
            let mut out = Vec::new();
            for ent in rd {
                let ent = ent.map_err(|e| io_err(e, &d))?;
                let name = ent.file_name();
                let Some(name) = name.to_str() else {
                    tracing::warn!(dir = %d, "skipping a name that is not UTF-8");
                    continue;
                };
                if fsops::is_internal_name(name) {
                    continue;
                }
                if me.inner.options.icloud_placeholders
                    && icloud::placeholder_target(name).is_some()
                {
                    continue;
                }
                let Ok(child) = d.join(name) else {
                    tracing::warn!(dir = %d, "skipping a name that is not a valid storage path");
                    continue;
                };
                if child.file_name() != Some(name) {
                    // "." / ".." style names cannot come from read_dir, but be strict.
                    continue;
                }
                if ent.file_type().is_ok_and(|t| t.is_symlink()) {
                    tracing::warn!(path = %child, "skipping a symbolic link (never followed)");
                    continue;
                }
                // Vanished between read_dir and stat: not listed.
                if let Some(e) = me.stat_blocking(&child, &ent.path()).ok().flatten() {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read(&self, path: &RemotePath) -> Result<Download> {
        let p = path.clone();
        let (file, version, size, modified) = self
            .blocking(move |me| {
                let local = me.local_path(&p);
                if p.segments().any(fsops::is_internal_name) {
                    return Err(Error::NotFound {
                        path: p.as_str().to_string(),
                    });
                }
                me.check_no_links(&p)?;
                let mut f = match open_nofollow(&local) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(me.placeholder_error(&p, &local).unwrap_or_else(|| {
                            Error::NotFound {
                                path: p.as_str().to_string(),
                            }
                        }));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                        return Err(Error::NotFound {
                            path: p.as_str().to_string(),
                        });
                    }
                    Err(e) => return Err(io_err(e, &p)),
                };
                let meta = f.metadata().map_err(|e| io_err(e, &p))?;
                if meta.is_dir() {
                    return Err(Error::InvalidInput {
                        message: format!("{p} is a folder"),
                    });
                }
                // The version of exactly the bytes this handle will read: our writers
                // replace files by rename, so an open handle keeps its content.
                let v = me
                    .inner
                    .cache
                    .version_of(&local, &f)
                    .map_err(|e| io_err(e, &p))?;
                f.rewind().map_err(|e| io_err(e, &p))?;
                Ok((f, v, meta.len(), meta.modified().ok()))
            })
            .await?;
        let file = tokio::fs::File::from_std(file);
        let state = ReadState {
            file,
            shown: path.as_str().to_string(),
            size,
            modified,
            total: 0,
            done: false,
        };
        let stream = futures_util::stream::try_unfold(state, |mut st| async move {
            if st.done {
                return Ok(None);
            }
            let mut buf = BytesMut::zeroed(CHUNK_SIZE);
            let mut filled = 0;
            let mut eof = false;
            while filled < CHUNK_SIZE {
                let n = st
                    .file
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|e| Error::from_io(e, &st.shown))?;
                if n == 0 {
                    eof = true;
                    break;
                }
                filled += n;
            }
            st.total += filled as u64;
            if eof {
                st.check_unchanged().await?;
                st.done = true;
            }
            if filled == 0 {
                return Ok(None);
            }
            buf.truncate(filled);
            Ok(Some((Bytes::from(buf), st)))
        });
        Ok(Download {
            version: Some(version),
            size: Some(size),
            stream: Box::pin(stream),
        })
    }

    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        Self::check_writable(path)?;
        let p = path.clone();
        self.blocking(move |me| me.check_no_links(&p)).await?;
        let local = self.local_path(path);
        let parent = local
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.inner.root.clone());
        let parent_path = path.parent().unwrap_or_default();
        // A concurrent delete of the (then empty) parent folder can remove it between
        // our create_dir_all and the temp file's creation: make it again and retry.
        let mut attempt = 0;
        let (temp, writer) = loop {
            attempt += 1;
            if let Err(e) = tokio::fs::create_dir_all(&parent).await {
                match e.kind() {
                    std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists => {
                        // create_dir_all reports AlreadyExists when a concurrent delete
                        // removes the folder between its mkdir and its check: look again.
                        match tokio::fs::metadata(&parent).await {
                            Ok(m) if m.is_dir() => {}
                            Err(_) if attempt < 5 => continue,
                            _ => {
                                return Err(Error::InvalidInput {
                                    message: format!("{path}: a parent folder is a file"),
                                })
                            }
                        }
                    }
                    _ => return Err(io_err(e, &parent_path)),
                }
            }
            let pdir = parent.clone();
            match tokio::task::spawn_blocking(move || fsops::TempFile::create(&pdir))
                .await
                .map_err(join_err)?
            {
                Ok(t) => break t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 5 => continue,
                Err(e) => return Err(io_err(e, path)),
            }
        };
        // From here on, `temp` deletes the temp file if anything fails.
        let mut out = tokio::fs::File::from_std(writer);
        let mut src = body.open().await?;
        let mut hasher = version::StreamHasher::new();
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut written: u64 = 0;
        loop {
            let n = src.read(&mut buf).await.map_err(|e| io_err(e, path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .await
                .map_err(|e| io_err(e, path))?;
            written += n as u64;
        }
        if written != body.len() {
            return Err(Error::InvalidInput {
                message: format!(
                    "{path}: body changed while it was written ({} bytes expected, {written} read)",
                    body.len()
                ),
            });
        }
        out.flush().await.map_err(|e| io_err(e, path))?;
        out.sync_all().await.map_err(|e| io_err(e, path))?;
        drop(out);
        let version = hasher.finish();
        let p = path.clone();
        let l = local.clone();
        let pre2 = pre.clone();
        self.blocking(move |me| {
            me.commit_blocking(&p, &l, temp, &pre2)?;
            if let Some(dir) = l.parent() {
                me.maybe_sweep(dir);
            }
            Ok(())
        })
        .await?;
        let modified = tokio::fs::metadata(&local)
            .await
            .ok()
            .and_then(|m| m.modified().ok());
        Ok(Entry {
            path: path.clone(),
            kind: EntryKind::File,
            size: written,
            modified,
            version: Some(version),
        })
    }

    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        Self::check_writable(path)?;
        let p = path.clone();
        self.blocking(move |me| me.delete_blocking(&p, &me.local_path(&p), &pre))
            .await
    }

    /// Through [`delete`](Storage::delete), which removes an empty folder under the
    /// folder locks (its own lock file and dead writers' temp files do not count).
    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        match self.stat(path).await? {
            Some(e) if e.kind != syncfabric_core::EntryKind::Dir => Err(Error::InvalidInput {
                message: format!("{path}: not a folder"),
            }),
            _ => self.delete(path, Precondition::None).await,
        }
    }

    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        if path.segments().any(fsops::is_internal_name) {
            return Err(Error::InvalidInput {
                message: format!("{path}: {TEMP_PREFIX}* and {LOCK_NAME} are reserved names"),
            });
        }
        let p = path.clone();
        self.blocking(move |me| me.check_no_links(&p)).await?;
        let local = self.local_path(path);
        match tokio::fs::create_dir_all(&local).await {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists
                ) =>
            {
                Err(Error::AlreadyExists {
                    path: path.as_str().to_string(),
                })
            }
            Err(e) => Err(io_err(e, path)),
        }
    }

    async fn watch(&self, dir: &RemotePath) -> Result<syncfabric_core::ChangeStream> {
        watch::watch(self.clone(), dir.clone()).await
    }
}
