//! The reference storage as this crate's unit tests need it: `MemStore` is core's
//! [`MemoryStorage`] (one in-memory store, not a second one) that can lie about
//! every precondition and report no server clock, and has no server lock.

use crate::memory::MemoryStorage;
use crate::{Body, Capabilities, Download, Entry, Precondition, RemotePath, Result, Storage};

#[derive(Debug, Clone)]
pub(crate) struct MemStore {
    pub inner: MemoryStorage,
    /// When true, every precondition is accepted (a lying server).
    pub lie: bool,
    /// Whether modification times are claimed to come from a server clock.
    pub server_clock: bool,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore {
            inner: MemoryStorage::new(),
            lie: false,
            server_clock: false,
        }
    }
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lying() -> Self {
        MemStore {
            lie: true,
            ..Default::default()
        }
    }

    /// Whether no file is left anywhere (folders may remain).
    pub async fn has_no_files(&self) -> bool {
        let mut dirs = vec![RemotePath::root()];
        while let Some(d) = dirs.pop() {
            for e in self.inner.list(&d).await.unwrap_or_default() {
                match e.kind {
                    crate::EntryKind::Dir => dirs.push(e.path),
                    _ => return false,
                }
            }
        }
        true
    }

    fn told(&self, pre: Precondition) -> Precondition {
        if self.lie {
            Precondition::None
        } else {
            pre
        }
    }
}

#[async_trait::async_trait]
impl Storage for MemStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            server_clock: self.server_clock,
            server_lock: false,
            ..self.inner.capabilities()
        }
    }
    fn describe(&self) -> String {
        "test memory store".into()
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
        self.inner.write(path, body, self.told(pre)).await
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        self.inner.delete(path, self.told(pre)).await
    }
    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        self.inner.create_dir(path).await
    }
}
