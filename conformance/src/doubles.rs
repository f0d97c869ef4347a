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
