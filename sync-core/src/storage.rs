//! The `Storage` trait and the types it speaks.

use crate::{Body, Download, RemotePath, Result};
use std::time::SystemTime;

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
    async fn watch(&self, dir: &RemotePath) -> Result<crate::watch::ChangeStream> {
        (**self).watch(dir).await
    }
}
