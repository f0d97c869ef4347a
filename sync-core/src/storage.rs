//! The `Storage` trait and the types it speaks.

use crate::{Body, Download, RemotePath, Result};
use std::time::{Duration, SystemTime};

/// An opaque, *strong* version token of one file: it changes on every write of the
/// file, even two writes of the same size in the same second. Providers build it from
/// an ETag, a Dropbox rev, a Graph eTag, a Drive version, or a content hash — never
/// from a modification time alone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(String);

impl Version {
    /// Wraps a provider's token.
    pub fn new(token: impl Into<String>) -> Self {
        Version(token.into())
    }
    /// The provider's token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Version({:?})", self.0)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an entry is a file or a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A file.
    File,
    /// A folder.
    Dir,
}

/// What a storage knows about one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path, relative to the storage root.
    pub path: RemotePath,
    /// File or folder.
    pub kind: EntryKind,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Last modification time as the storage reports it; informative only.
    pub modified: Option<SystemTime>,
    /// The strong version of a file; `None` for folders (and only for folders).
    pub version: Option<Version>,
}

/// The condition under which a write or delete may happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Unconditional.
    None,
    /// Only if nothing exists at the path; else [`Error::AlreadyExists`](crate::Error::AlreadyExists).
    IfAbsent,
    /// Only if the file's current version is this one; else
    /// [`Error::PreconditionFailed`](crate::Error::PreconditionFailed) (also when the
    /// file no longer exists).
    IfMatch(Version),
    /// Only while this client still holds `lock`, a server-enforced lock
    /// ([`Storage::lock_dir`]) on a folder that contains the path; the server checks it
    /// atomically with the write. Else
    /// [`Error::PreconditionFailed`](crate::Error::PreconditionFailed) (the lock expired
    /// or was released) or [`Error::Locked`](crate::Error::Locked) (another client
    /// holds a lock there now). Nothing about the file's own version is checked.
    UnderLock(DirLock),
}

/// A server-enforced exclusive write lock on a folder and everything under it, taken
/// with [`Storage::lock_dir`]. While it is held, the storage refuses every write,
/// delete and move under the folder that does not carry it
/// ([`Precondition::UnderLock`]): other clients get [`Error::Locked`](crate::Error::Locked).
/// Reads are not affected.
///
/// The token is the provider's (a WebDAV `opaquelocktoken:` URI); `Debug` shows only
/// its last characters.
#[derive(Clone, PartialEq, Eq)]
pub struct DirLock {
    dir: RemotePath,
    token: String,
    ttl: Duration,
}

impl DirLock {
    /// A lock on `dir` with the provider's `token`, granted for `ttl`.
    pub fn new(dir: RemotePath, token: impl Into<String>, ttl: Duration) -> Self {
        DirLock {
            dir,
            token: token.into(),
            ttl,
        }
    }
    /// The locked folder.
    pub fn dir(&self) -> &RemotePath {
        &self.dir
    }
    /// The provider's token.
    pub fn token(&self) -> &str {
        &self.token
    }
    /// How long the server keeps the lock without a refresh, as granted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
    /// Whether `path` is the locked folder or inside it.
    pub fn covers(&self, path: &RemotePath) -> bool {
        let mut cur = Some(path.clone());
        while let Some(p) = cur {
            if p == self.dir {
                return true;
            }
            cur = p.parent();
        }
        self.dir.is_root()
    }
}

impl std::fmt::Debug for DirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail: String = {
            let chars: Vec<char> = self.token.chars().collect();
            chars[chars.len().saturating_sub(4)..].iter().collect()
        };
        f.debug_struct("DirLock")
            .field("dir", &self.dir)
            .field("token", &format_args!("…{tail}"))
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// How a storage tells about changes made by others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeFeed {
    /// No feed: poll with `stat`.
    Poll,
    /// A native feed (inotify, Graph delta, Drive changes, Dropbox longpoll).
    Native,
}

/// What a provider claims it can do. The engine trusts only claims the honesty probe
/// (see the crate's `probe` module) has confirmed for this connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `Precondition::IfMatch` on write is enforced atomically by the storage.
    pub if_match: bool,
    /// `Precondition::IfAbsent` on write is enforced atomically by the storage.
    pub if_absent: bool,
    /// Preconditions on delete are honoured.
    pub conditional_delete: bool,
    /// The largest body a single write accepts, if limited.
    pub max_single_write: Option<u64>,
    /// Large writes are split into chunks/sessions by the provider itself.
    pub chunked_upload: bool,
    /// How changes are observed.
    pub change_feed: ChangeFeed,
    /// A read right after a successful write returns what was written.
    pub read_after_write: bool,
    /// The storage reports modification times from its own clock (used by the
    /// lease lock to judge expiry without trusting device clocks).
    pub server_clock: bool,
    /// [`Storage::lock_dir`] takes a lock the server enforces on every write under the
    /// folder (WebDAV class 2 `LOCK`). The engine then commits under it instead of the
    /// lease lock where compare-and-swap is not truthful.
    pub server_lock: bool,
    /// Every write gives the file a [`Version`] it did not have just before, so "same
    /// version" means "nobody wrote since". Every provider must claim this (it is the
    /// contract of `Version`); the honesty probe switches it off where two writes in a
    /// row came back with one version (an ETag built from a whole-second mtime and the
    /// size, say). The engine then never compares the vault's versions: it tells
    /// commits apart by a commit marker of its own, written under its lock.
    pub strong_versions: bool,
    /// Two writes of one file through this provider land at least a second apart by
    /// the server's clock, whoever makes them (the WebDAV provider's weak-ETag rule on
    /// Apache: it never writes a file whose tag is still weak). Versions built from a
    /// whole-second time then cannot repeat, and the honesty probe, whose writes are
    /// then a second apart, checks the spacing instead of proving strong versions with
    /// writes inside one second. Default `false`.
    pub spaced_writes: bool,
}

impl Capabilities {
    /// True when both preconditions are truthful, so the engine needs no lock.
    pub fn has_truthful_cas(&self) -> bool {
        self.if_match && self.if_absent
    }
}

/// A dumb drive rooted at one folder of one account.
///
/// Every method documents exactly what it does and which [`Error`](crate::Error) it
/// returns when. Providers must never panic on input from the network or disk.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// What this provider claims. See [`Capabilities`].
    fn capabilities(&self) -> Capabilities;

    /// A short human description (e.g. `webdav https://host/dav/Enpass`), with no
    /// credentials in it.
    fn describe(&self) -> String;

    /// The entry at `path`, or `Ok(None)` if nothing is there.
    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>>;

    /// The direct children of folder `dir`, in no particular order.
    /// [`Error::NotFound`](crate::Error::NotFound) if `dir` does not exist.
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>>;

    /// Opens the file at `path` for reading.
    /// [`Error::NotFound`](crate::Error::NotFound) if it does not exist.
    async fn read(&self, path: &RemotePath) -> Result<Download>;

    /// Writes `body` to `path` atomically: a reader sees the old content or the new,
    /// never a mix, and a failed write leaves the old content current. Parent folders
    /// are created as needed. Returns the new entry, whose version is the new one.
    /// A precondition the provider cannot honour yields
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry>;

    /// Deletes the file at `path`. Deleting a missing path with `Precondition::None`
    /// succeeds (idempotent); with `IfMatch` it is `PreconditionFailed`.
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()>;

    /// Creates folder `path` and its parents; succeeds if it already exists.
    async fn create_dir(&self, path: &RemotePath) -> Result<()>;

    /// Removes folder `path` if it is empty; succeeds if it is missing. A folder that
    /// still holds anything is left as it is: [`Error::InvalidInput`](crate::Error::InvalidInput).
    /// (For cleaning up a scratch folder, e.g. the honesty probe's; sync never removes
    /// folders.) The default returns [`Error::Unsupported`](crate::Error::Unsupported).
    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        Err(crate::Error::Unsupported {
            message: format!("{}: removing folders", path),
        })
    }

    /// Starts watching the direct children of folder `dir` and returns the feed of
    /// their changes (see [`crate::watch`] for the delivery guarantees: at least once,
    /// [`Change::Rescan`](crate::watch::Change::Rescan) when events may have been lost).
    /// Watching is set up before this returns, so a change made after it returns is
    /// reported; dropping the stream stops watching.
    ///
    /// Providers with a native feed (and `Capabilities::change_feed ==
    /// ChangeFeed::Native`) override this. The default returns
    /// [`Error::Unsupported`](crate::Error::Unsupported); callers then poll with
    /// [`crate::watch::poll`], or call [`crate::watch::watch_or_poll`] which does both.
    async fn watch(&self, dir: &RemotePath) -> Result<crate::watch::ChangeStream> {
        Err(crate::Error::Unsupported {
            message: format!(
                "{}: no native change feed for {dir}; poll instead",
                self.describe()
            ),
        })
    }

    /// Takes the storage's own exclusive write lock on folder `dir` and everything
    /// under it, for `ttl` (the server may grant another length: see
    /// [`DirLock::ttl`]). Until it expires or is released, the storage refuses writes,
    /// deletes and moves under `dir` that do not carry the lock
    /// ([`Precondition::UnderLock`]) with [`Error::Locked`](crate::Error::Locked),
    /// whoever sends them; reads are not affected.
    ///
    /// [`Error::Locked`](crate::Error::Locked) if another lock is held on `dir`, inside
    /// it or on a folder above it; [`Error::NotFound`](crate::Error::NotFound) if `dir`
    /// does not exist. Providers with `Capabilities::server_lock` override this; the
    /// default is [`Error::Unsupported`](crate::Error::Unsupported).
    async fn lock_dir(&self, dir: &RemotePath, ttl: Duration) -> Result<DirLock> {
        let _ = ttl;
        Err(crate::Error::Unsupported {
            message: format!("{}: no server-enforced lock for {dir}", self.describe()),
        })
    }

    /// [`Storage::lock_dir`] as `owner` (see [`crate::lock_owner`]): the lock names
    /// the owner's device, process and label. When the folder is locked and the
    /// server shows the lock as held by `owner`'s device while `owner` is
    /// [exclusive](crate::LockOwner::exclusive), that lock is a crashed run's: it is
    /// released and the lock taken at once. Another holder: [`Error::Locked`](crate::Error::Locked)
    /// naming it where the server tells who it is. The default ignores `owner` and
    /// calls [`Storage::lock_dir`]; wrappers must forward this method.
    async fn lock_dir_as(
        &self,
        dir: &RemotePath,
        ttl: Duration,
        owner: &crate::LockOwner,
    ) -> Result<DirLock> {
        let _ = owner;
        self.lock_dir(dir, ttl).await
    }

    /// The locks the server shows on `dir` (with their tokens where it shows them, so
    /// that a person can break a stale one with [`Storage::unlock_dir`]). Default:
    /// `Unsupported`; also for servers that cannot list locks.
    async fn dir_locks(&self, dir: &RemotePath) -> Result<Vec<crate::LockHolder>> {
        Err(crate::Error::Unsupported {
            message: format!("{}: cannot list the locks on {dir}", self.describe()),
        })
    }

    /// Extends `lock` for `ttl` from now and returns it as granted.
    /// [`Error::PreconditionFailed`](crate::Error::PreconditionFailed) if it is no
    /// longer held (expired, released or replaced). Default: `Unsupported`.
    async fn refresh_lock(&self, lock: &DirLock, ttl: Duration) -> Result<DirLock> {
        let _ = ttl;
        Err(crate::Error::Unsupported {
            message: format!(
                "{}: no server-enforced lock for {}",
                self.describe(),
                lock.dir()
            ),
        })
    }

    /// Releases `lock`. Succeeds also when it had already expired or been released
    /// (idempotent). Default: `Unsupported`.
    async fn unlock_dir(&self, lock: &DirLock) -> Result<()> {
        Err(crate::Error::Unsupported {
            message: format!(
                "{}: no server-enforced lock for {}",
                self.describe(),
                lock.dir()
            ),
        })
    }
}

/// Forwards every method, so an `Arc<dyn Storage>` (or `Arc<MyStorage>`) can be wrapped
/// by [`RetryingStorage`](crate::retry::RetryingStorage),
/// [`ProbedStorage`](crate::probe::ProbedStorage) and the like.
#[async_trait::async_trait]
impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        (**self).stat(path).await
    }
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        (**self).list(dir).await
    }
    async fn read(&self, path: &RemotePath) -> Result<Download> {
        (**self).read(path).await
    }
    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        (**self).write(path, body, pre).await
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        (**self).delete(path, pre).await
    }
    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        (**self).create_dir(path).await
    }
    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        (**self).remove_empty_dir(path).await
    }
    async fn watch(&self, dir: &RemotePath) -> Result<crate::watch::ChangeStream> {
        (**self).watch(dir).await
    }
    async fn lock_dir(&self, dir: &RemotePath, ttl: Duration) -> Result<DirLock> {
        (**self).lock_dir(dir, ttl).await
    }
    async fn lock_dir_as(
        &self,
        dir: &RemotePath,
        ttl: Duration,
        owner: &crate::LockOwner,
    ) -> Result<DirLock> {
        (**self).lock_dir_as(dir, ttl, owner).await
    }
    async fn dir_locks(&self, dir: &RemotePath) -> Result<Vec<crate::LockHolder>> {
        (**self).dir_locks(dir).await
    }
    async fn refresh_lock(&self, lock: &DirLock, ttl: Duration) -> Result<DirLock> {
        (**self).refresh_lock(lock, ttl).await
    }
    async fn unlock_dir(&self, lock: &DirLock) -> Result<()> {
        (**self).unlock_dir(lock).await
    }
}
