//! A `Storage` wrapper that counts requests and bytes, for tests and benchmarks that
//! prove the no-change sync makes one request and a one-edit sync moves one database
//! each way.

use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use syncfabric_core::{
    Body, Capabilities, Download, Entry, Precondition, RemotePath, Result, Storage,
};

/// What a [`CountingStorage`] has seen.
#[derive(Debug, Default)]
pub struct Counters {
    /// `stat` calls.
    pub stats: AtomicU64,
    /// `list` calls.
    pub lists: AtomicU64,
    /// `read` calls.
    pub reads: AtomicU64,
    /// `write` calls.
    pub writes: AtomicU64,
    /// `delete` calls.
    pub deletes: AtomicU64,
    /// `create_dir` calls.
    pub create_dirs: AtomicU64,
    /// `lock_dir`, `refresh_lock` and `unlock_dir` calls.
    pub lock_calls: AtomicU64,
    /// Bytes delivered by reads.
    pub bytes_read: AtomicU64,
    /// Bytes handed to writes.
    pub bytes_written: AtomicU64,
    /// Paths read, in order.
    pub read_paths: std::sync::Mutex<Vec<String>>,
    /// Paths written, in order.
    pub written_paths: std::sync::Mutex<Vec<String>>,
}

impl Counters {
    /// All requests of any kind.
    pub fn requests(&self) -> u64 {
        [
            &self.stats,
            &self.lists,
            &self.reads,
            &self.writes,
            &self.deletes,
            &self.create_dirs,
            &self.lock_calls,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }
    /// Forgets everything counted so far.
    pub fn reset(&self) {
        for c in [
            &self.stats,
            &self.lists,
            &self.reads,
            &self.writes,
            &self.deletes,
            &self.create_dirs,
            &self.lock_calls,
            &self.bytes_read,
            &self.bytes_written,
        ] {
            c.store(0, Ordering::SeqCst);
        }
        if let Ok(mut v) = self.read_paths.lock() {
            v.clear();
        }
        if let Ok(mut v) = self.written_paths.lock() {
            v.clear();
        }
    }
}

/// Wraps a storage and counts every call through it.
#[derive(Debug, Clone)]
pub struct CountingStorage {
    inner: Arc<dyn Storage>,
    counters: Arc<Counters>,
}

impl CountingStorage {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        CountingStorage {
            inner,
            counters: Arc::new(Counters::default()),
        }
    }
    /// The counters (shared with clones).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
}

#[async_trait::async_trait]
impl Storage for CountingStorage {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn describe(&self) -> String {
        format!("counting({})", self.inner.describe())
    }
    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        bump(&self.counters.stats);
        self.inner.stat(path).await
    }
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        bump(&self.counters.lists);
        self.inner.list(dir).await
    }
    async fn read(&self, path: &RemotePath) -> Result<Download> {
        bump(&self.counters.reads);
        if let Ok(mut v) = self.counters.read_paths.lock() {
            v.push(path.as_str().to_string());
        }
        let mut d = self.inner.read(path).await?;
        let counters = self.counters.clone();
        let stream = std::mem::replace(&mut d.stream, Box::pin(futures_util::stream::empty()));
        d.stream = Box::pin(stream.map(move |chunk: Result<Bytes>| {
            if let Ok(b) = &chunk {
                counters
                    .bytes_read
                    .fetch_add(b.len() as u64, Ordering::SeqCst);
            }
            chunk
        }));
        Ok(d)
    }
    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        bump(&self.counters.writes);
        self.counters
            .bytes_written
            .fetch_add(body.len(), Ordering::SeqCst);
        if let Ok(mut v) = self.counters.written_paths.lock() {
            v.push(path.as_str().to_string());
        }
        self.inner.write(path, body, pre).await
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        bump(&self.counters.deletes);
        self.inner.delete(path, pre).await
    }
    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        bump(&self.counters.create_dirs);
        self.inner.create_dir(path).await
    }
    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        self.inner.remove_empty_dir(path).await
    }
    async fn watch(&self, dir: &RemotePath) -> Result<syncfabric_core::ChangeStream> {
        self.inner.watch(dir).await
    }
    async fn lock_dir(
        &self,
        dir: &RemotePath,
        ttl: std::time::Duration,
    ) -> Result<syncfabric_core::DirLock> {
        bump(&self.counters.lock_calls);
        self.inner.lock_dir(dir, ttl).await
    }
    async fn lock_dir_as(
        &self,
        dir: &RemotePath,
        ttl: std::time::Duration,
        owner: &syncfabric_core::LockOwner,
    ) -> Result<syncfabric_core::DirLock> {
        bump(&self.counters.lock_calls);
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
        bump(&self.counters.lock_calls);
        self.inner.refresh_lock(lock, ttl).await
    }
    async fn unlock_dir(&self, lock: &syncfabric_core::DirLock) -> Result<()> {
        bump(&self.counters.lock_calls);
        self.inner.unlock_dir(lock).await
    }
}
