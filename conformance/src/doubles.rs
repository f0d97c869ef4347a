//! Test doubles that break the contract on purpose, so tests can show the suite, the
//! honesty probe and the lease lock notice.

use syncfabric_core::{
    Body, Capabilities, Download, Entry, Precondition, RemotePath, Result, Storage,
};

/// Wraps a storage and silently drops every precondition on write and delete, while
/// still claiming the inner storage's capabilities — what nginx or `rclone serve` do
/// with `If-Match` on PUT. The suite must fail on it (and the honesty probe must
/// catch it).
#[derive(Clone, Debug)]
pub struct IgnorePreconditions<S>(pub S);

#[async_trait::async_trait]
impl<S: Storage> Storage for IgnorePreconditions<S> {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn describe(&self) -> String {
        format!("{} (ignoring preconditions)", self.0.describe())
    }
    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        self.0.stat(path).await
    }
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        self.0.list(dir).await
    }
    async fn read(&self, path: &RemotePath) -> Result<Download> {
        self.0.read(path).await
    }
    async fn write(&self, path: &RemotePath, body: Body, _pre: Precondition) -> Result<Entry> {
        self.0.write(path, body, Precondition::None).await
    }
    async fn delete(&self, path: &RemotePath, _pre: Precondition) -> Result<()> {
        self.0.delete(path, Precondition::None).await
    }
    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        self.0.create_dir(path).await
    }
}

/// Wraps a storage and reports the capabilities given instead of the inner ones
/// (e.g. a lying store that honestly admits it has no CAS, so the race goes through the
/// lease lock).
#[derive(Clone, Debug)]
pub struct WithCapabilities<S> {
    /// The wrapped storage.
    pub inner: S,
    /// What to claim.
    pub caps: Capabilities,
}

#[async_trait::async_trait]
impl<S: Storage> Storage for WithCapabilities<S> {
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        self.inner.stat(path).await
    }
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        self.inner.list(dir).await
    }
    async fn read(&self, path: &RemotePath) -> Result<Download> {
        self.inner.read(path).await
    }
    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        self.inner.write(path, body, pre).await
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        self.inner.delete(path, pre).await
    }
    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        self.inner.create_dir(path).await
    }
    async fn lock_dir(
        &self,
        dir: &RemotePath,
        ttl: std::time::Duration,
    ) -> Result<syncfabric_core::DirLock> {
        self.inner.lock_dir(dir, ttl).await
    }
    async fn lock_dir_as(
        &self,
        dir: &RemotePath,
        ttl: std::time::Duration,
        owner: &syncfabric_core::LockOwner,
    ) -> Result<syncfabric_core::DirLock> {
        self.inner.lock_dir_as(dir, ttl, owner).await
    }
    async fn dir_locks(&self, dir: &RemotePath) -> Result<Vec<syncfabric_core::LockHolder>> {
        self.inner.dir_locks(dir).await
    }
    async fn refresh_lock(
        &self,
        lock: &syncfabric_core::DirLock,
        ttl: std::time::Duration,
    ) -> Result<syncfabric_core::DirLock> {
        self.inner.refresh_lock(lock, ttl).await
    }
    async fn unlock_dir(&self, lock: &syncfabric_core::DirLock) -> Result<()> {
        self.inner.unlock_dir(lock).await
    }
}

/// Wraps a storage and gives every file a version built from its size alone, while
/// claiming the inner storage's capabilities (strong versions included): what a
/// server does whose ETag is a whole-second modification time and the size (nginx,
/// lighttpd, wsgidav), for writes within one second. Conditions are checked against
/// these versions, as such a server checks `If-Match` against its own ETag, so a
/// stale `IfMatch` of the same size passes. The honesty probe must see through it, and
/// the engine must lose nothing over it once the probe's verdict is applied.
#[derive(Clone, Debug)]
pub struct RepeatingVersions<S>(pub S);

fn size_version(size: u64) -> syncfabric_core::Version {
    syncfabric_core::Version::new(format!("\"size-{size}\""))
}

fn with_size_version(mut e: Entry) -> Entry {
    if e.version.is_some() {
        e.version = Some(size_version(e.size));
    }
    e
}

impl<S: Storage> RepeatingVersions<S> {
    /// `PreconditionFailed` unless the file at `path` has version `v` by size.
    async fn check(&self, path: &RemotePath, v: &syncfabric_core::Version) -> Result<()> {
        match self.0.stat(path).await? {
            Some(e) if e.version.is_some() && size_version(e.size) == *v => Ok(()),
            _ => Err(syncfabric_core::Error::PreconditionFailed {
                path: path.to_string(),
            }),
        }
    }
}

#[async_trait::async_trait]
impl<S: Storage> Storage for RepeatingVersions<S> {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn describe(&self) -> String {
        format!("{} (versions by size)", self.0.describe())
    }
    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        Ok(self.0.stat(path).await?.map(with_size_version))
    }
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        Ok(self
            .0
            .list(dir)
            .await?
            .into_iter()
            .map(with_size_version)
            .collect())
    }
    async fn read(&self, path: &RemotePath) -> Result<Download> {
        let mut dl = self.0.read(path).await?;
        dl.version = match (dl.size, dl.version.is_some()) {
            (Some(size), true) => Some(size_version(size)),
            _ => None,
        };
        Ok(dl)
    }
    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        let pre = match pre {
            Precondition::IfMatch(v) => {
                self.check(path, &v).await?;
                Precondition::None
            }
            other => other,
        };
        Ok(with_size_version(self.0.write(path, body, pre).await?))
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        let pre = match pre {
            Precondition::IfMatch(v) => {
                self.check(path, &v).await?;
                Precondition::None
            }
            other => other,
        };
        self.0.delete(path, pre).await
    }
    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        self.0.create_dir(path).await
    }
    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        self.0.remove_empty_dir(path).await
    }
    async fn lock_dir(
        &self,
        dir: &RemotePath,
        ttl: std::time::Duration,
    ) -> Result<syncfabric_core::DirLock> {
        self.0.lock_dir(dir, ttl).await
    }
    async fn refresh_lock(
        &self,
        lock: &syncfabric_core::DirLock,
        ttl: std::time::Duration,
    ) -> Result<syncfabric_core::DirLock> {
        self.0.refresh_lock(lock, ttl).await
    }
    async fn unlock_dir(&self, lock: &syncfabric_core::DirLock) -> Result<()> {
        self.0.unlock_dir(lock).await
    }
}

/// Wraps a storage and writes in place, like a WebDAV server that opens the target and
/// copies the request body into it: a body that breaks off leaves what arrived so far
/// as the file's content (rclone, wsgidav and webdav-server do this). The honesty
/// probe's cut write must find it out.
#[derive(Clone, Debug)]
pub struct WritesInPlace<S>(pub S);

#[async_trait::async_trait]
impl<S: Storage> Storage for WritesInPlace<S> {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn describe(&self) -> String {
        format!("{} (writes in place)", self.0.describe())
    }
    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        self.0.stat(path).await
    }
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        self.0.list(dir).await
    }
    async fn read(&self, path: &RemotePath) -> Result<Download> {
        self.0.read(path).await
    }
    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        use tokio::io::AsyncReadExt;
        let mut r = body.open().await?;
        let mut got = Vec::new();
        if let Err(e) = r.read_to_end(&mut got).await {
            // The target was truncated when the request arrived; what came is kept.
            self.0.write(path, Body::from(got), pre).await?;
            return Err(syncfabric_core::Error::from_io(e, "body"));
        }
        self.0.write(path, Body::from(got), pre).await
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        self.0.delete(path, pre).await
    }
    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        self.0.create_dir(path).await
    }
    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        self.0.remove_empty_dir(path).await
    }
    async fn lock_dir(
        &self,
        dir: &RemotePath,
        ttl: std::time::Duration,
    ) -> Result<syncfabric_core::DirLock> {
        self.0.lock_dir(dir, ttl).await
    }
    async fn refresh_lock(
        &self,
        lock: &syncfabric_core::DirLock,
        ttl: std::time::Duration,
    ) -> Result<syncfabric_core::DirLock> {
        self.0.refresh_lock(lock, ttl).await
    }
    async fn unlock_dir(&self, lock: &syncfabric_core::DirLock) -> Result<()> {
        self.0.unlock_dir(lock).await
    }
}
