#![allow(dead_code)]
//! A small in-memory storage for this crate's own unit tests (the full reference
//! storage is `crate::memory::MemoryStorage`, public; this one can lie and set times).

use crate::{
    Body, Capabilities, ChangeFeed, Download, Entry, EntryKind, Error, Precondition, RemotePath,
    Result, Storage, Version,
};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::io::AsyncReadExt;

#[derive(Debug, Default)]
pub(crate) struct MemStore {
    pub files: Mutex<BTreeMap<RemotePath, (Bytes, Version, SystemTime)>>,
    pub counter: AtomicU64,
    /// When true, every precondition is accepted (a lying server).
    pub lie: bool,
    /// When true, modification times come from a "server" clock.
    pub server_clock: bool,
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
    fn entry(p: &RemotePath, b: &Bytes, v: &Version, t: SystemTime) -> Entry {
        Entry {
            path: p.clone(),
            kind: EntryKind::File,
            size: b.len() as u64,
            modified: Some(t),
            version: Some(v.clone()),
        }
    }
}

#[async_trait::async_trait]
impl Storage for MemStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            if_match: true,
            if_absent: true,
            conditional_delete: true,
            max_single_write: None,
            chunked_upload: false,
            change_feed: ChangeFeed::Poll,
            read_after_write: true,
            server_clock: self.server_clock,
            server_lock: false,
            strong_versions: true,
            spaced_writes: false,
        }
    }
    fn describe(&self) -> String {
        "test memory store".into()
    }
    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        let files = self.files.lock().unwrap();
        if let Some((b, v, t)) = files.get(path) {
            return Ok(Some(Self::entry(path, b, v, *t)));
        }
        let is_dir = path.is_root()
            || files
                .keys()
                .any(|k| k.as_str().starts_with(&format!("{}/", path.as_str())));
        Ok(is_dir.then(|| Entry {
            path: path.clone(),
            kind: EntryKind::Dir,
            size: 0,
            modified: None,
            version: None,
        }))
    }
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let files = self.files.lock().unwrap();
        let mut out = Vec::new();
        let mut seen_dirs = std::collections::BTreeSet::new();
        for (k, (b, v, t)) in files.iter() {
            if k.parent().as_ref() == Some(dir) {
                out.push(Self::entry(k, b, v, *t));
            } else if let Some(rest) = if dir.is_root() {
                Some(k.as_str())
            } else {
                k.as_str().strip_prefix(&format!("{}/", dir.as_str()))
            } {
                if let Some((first, _)) = rest.split_once('/') {
                    if seen_dirs.insert(first.to_string()) {
                        out.push(Entry {
                            path: dir.join(first)?,
                            kind: EntryKind::Dir,
                            size: 0,
                            modified: None,
                            version: None,
                        });
                    }
                }
            }
        }
        if out.is_empty() && !dir.is_root() {
            return Err(Error::NotFound {
                path: dir.to_string(),
            });
        }
        Ok(out)
    }
    async fn read(&self, path: &RemotePath) -> Result<Download> {
        let files = self.files.lock().unwrap();
        let (b, v, _) = files.get(path).ok_or_else(|| Error::NotFound {
            path: path.to_string(),
        })?;
        let b = b.clone();
        Ok(Download {
            version: Some(v.clone()),
            size: Some(b.len() as u64),
            stream: Box::pin(futures_util::stream::iter(vec![Ok(b)])),
        })
    }
    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        let mut buf = Vec::new();
        body.open()
            .await?
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::from_io(e, "body"))?;
        let mut files = self.files.lock().unwrap();
        if !self.lie {
            match (&pre, files.get(path)) {
                (Precondition::IfAbsent, Some(_)) => {
                    return Err(Error::AlreadyExists {
                        path: path.to_string(),
                    })
                }
                (Precondition::IfMatch(v), Some((_, cur, _))) if v != cur => {
                    return Err(Error::PreconditionFailed {
                        path: path.to_string(),
                    })
                }
                (Precondition::IfMatch(_), None) => {
                    return Err(Error::PreconditionFailed {
                        path: path.to_string(),
                    })
                }
                _ => {}
            }
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let v = Version::new(format!("v{n}"));
        let t = SystemTime::now();
        let b = Bytes::from(buf);
        files.insert(path.clone(), (b.clone(), v.clone(), t));
        Ok(Self::entry(path, &b, &v, t))
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        let mut files = self.files.lock().unwrap();
        if !self.lie {
            if let Precondition::IfMatch(v) = &pre {
                match files.get(path) {
                    Some((_, cur, _)) if cur == v => {}
                    _ => {
                        return Err(Error::PreconditionFailed {
                            path: path.to_string(),
                        })
                    }
                }
            }
        }
        files.remove(path);
        Ok(())
    }
    async fn create_dir(&self, _path: &RemotePath) -> Result<()> {
        Ok(())
    }
}
