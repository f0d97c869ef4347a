//! [`MemoryStorage`]: the truthful in-memory reference storage. It keeps every promise
//! of the [`Storage`] contract, so it is what a provider's behaviour is compared
//! with, what an app's tests can sync through, and the storage of the engine's own
//! tests; the conformance suite (`syncfabric-conformance`) runs against it too.

use crate::{
    Body, Capabilities, ChangeFeed, DirLock, Download, Entry, EntryKind, Error, Precondition,
    RemotePath, Result, Storage, Version,
};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::io::AsyncReadExt;

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<RemotePath, (Bytes, Version, SystemTime)>,
    /// Folders that exist (created explicitly or as parents of a file); never the root.
    dirs: BTreeSet<RemotePath>,
    /// Server locks by token: the locked folder and when the lock expires.
    locks: BTreeMap<String, (RemotePath, tokio::time::Instant)>,
}

impl State {
    fn live_locks(&mut self) -> &BTreeMap<String, (RemotePath, tokio::time::Instant)> {
        let now = tokio::time::Instant::now();
        self.locks.retain(|_, (_, until)| *until > now);
        &self.locks
    }

    /// Whether a change at `path` may go ahead under `pre`: with no live lock over it,
    /// anything but a stale `UnderLock` may; under one, only its holder.
    fn check_locks(&mut self, path: &RemotePath, pre: &Precondition) -> Result<()> {
        let over: Vec<String> = self
            .live_locks()
            .iter()
            .filter(|(_, (dir, _))| DirLock::new(dir.clone(), "", Default::default()).covers(path))
            .map(|(t, _)| t.clone())
            .collect();
        match pre {
            Precondition::UnderLock(l) if over.iter().any(|t| t == l.token()) => Ok(()),
            _ if !over.is_empty() => Err(Error::Locked {
                path: path.to_string(),
                holder: None,
            }),
            Precondition::UnderLock(_) => Err(Error::PreconditionFailed {
                path: path.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// A storage held in memory that honours the whole contract: atomic writes, strong
/// versions (a process-wide counter), truthful `IfMatch`/`IfAbsent`/conditional delete,
/// read-after-write, modification times from its own ("server") clock, and
/// server-enforced folder locks ([`Storage::lock_dir`]; expiry by tokio's clock, so
/// tests with paused time can expire them).
///
/// Clones (and [`client`](MemoryStorage::client)) are independent handles on the same
/// data, like two devices talking to one server.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
    counter: Arc<AtomicU64>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Another handle on the same data (for the race behaviour).
    pub fn client(&self) -> Self {
        self.clone()
    }

    /// Sets the modification time the store reports for the file at `path`, as if it
    /// had been written at `when` (for tests of logic that reads the server's clock,
    /// such as a lease's expiry). `false` when no file is there.
    pub fn set_modified(&self, path: &RemotePath, when: SystemTime) -> bool {
        match self.state().files.get_mut(path) {
            Some((_, _, t)) => {
                *t = when;
                true
            }
            None => false,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file_entry(path: &RemotePath, b: &Bytes, v: &Version, t: SystemTime) -> Entry {
        Entry {
            path: path.clone(),
            kind: EntryKind::File,
            size: b.len() as u64,
            modified: Some(t),
            version: Some(v.clone()),
        }
    }

    fn dir_entry(path: &RemotePath) -> Entry {
        Entry {
            path: path.clone(),
            kind: EntryKind::Dir,
            size: 0,
            modified: None,
            version: None,
        }
    }
}

/// Reads a body whole, checking it holds exactly the length it declared (a
/// `Body::File` that shrank or grew while being read is refused).
pub(crate) async fn read_body(body: &Body) -> Result<Bytes> {
    let mut r = body.open().await?;
    let mut buf = Vec::with_capacity(body.len().min(64 << 20) as usize);
    r.read_to_end(&mut buf)
        .await
        .map_err(|e| Error::from_io(e, "write body"))?;
    if buf.len() as u64 != body.len() {
        return Err(Error::InvalidInput {
            message: format!(
                "the body changed while being written: {} bytes declared, {} read",
                body.len(),
                buf.len()
            ),
        });
    }
    Ok(buf.into())
}

#[async_trait::async_trait]
impl Storage for MemoryStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            if_match: true,
            if_absent: true,
            conditional_delete: true,
            max_single_write: None,
            chunked_upload: false,
            change_feed: ChangeFeed::Poll,
            read_after_write: true,
            server_clock: true,
            server_lock: true,
            strong_versions: true,
            spaced_writes: false,
        }
    }

    fn describe(&self) -> String {
        "memory".into()
    }

    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        let st = self.state();
        if let Some((b, v, t)) = st.files.get(path) {
            return Ok(Some(Self::file_entry(path, b, v, *t)));
        }
        Ok((path.is_root() || st.dirs.contains(path)).then(|| Self::dir_entry(path)))
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let st = self.state();
        if !dir.is_root() && !st.dirs.contains(dir) {
            return Err(if st.files.contains_key(dir) {
                Error::InvalidInput {
                    message: format!("{dir} is a file, not a folder"),
                }
            } else {
                Error::NotFound {
                    path: dir.to_string(),
                }
            });
        }
        let mut out: Vec<Entry> = st
            .dirs
            .iter()
            .filter(|d| d.parent().as_ref() == Some(dir))
            .map(Self::dir_entry)
            .collect();
        out.extend(
            st.files
                .iter()
                .filter(|(p, _)| p.parent().as_ref() == Some(dir))
                .map(|(p, (b, v, t))| Self::file_entry(p, b, v, *t)),
        );
        Ok(out)
    }

    async fn read(&self, path: &RemotePath) -> Result<Download> {
        let st = self.state();
        let (b, v, _) = st.files.get(path).ok_or_else(|| Error::NotFound {
            path: path.to_string(),
        })?;
        let (b, v) = (b.clone(), v.clone());
        // Stream in 64 KiB chunks, as a network provider would.
        let chunks: Vec<Result<Bytes>> = (0..b.len())
            .step_by(64 * 1024)
            .map(|i| Ok(b.slice(i..(i + 64 * 1024).min(b.len()))))
            .collect();
        Ok(Download {
            version: Some(v),
            size: Some(b.len() as u64),
            stream: Box::pin(futures_util::stream::iter(chunks)),
        })
    }

    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot write the root".into(),
            });
        }
        // Read the whole body before touching anything: a failed body leaves no trace.
        let bytes = read_body(&body).await?;
        let mut st = self.state();
        if st.dirs.contains(path) {
            return Err(Error::InvalidInput {
                message: format!("{path} is a folder"),
            });
        }
        let mut parent = path.parent();
        while let Some(p) = parent {
            if st.files.contains_key(&p) {
                return Err(Error::InvalidInput {
                    message: format!("{p} is a file, not a folder"),
                });
            }
            parent = p.parent();
        }
        st.check_locks(path, &pre)?;
        match (&pre, st.files.get(path)) {
            (Precondition::IfAbsent, Some(_)) => {
                return Err(Error::AlreadyExists {
                    path: path.to_string(),
                })
            }
            (Precondition::IfMatch(_), None) => {
                return Err(Error::PreconditionFailed {
                    path: path.to_string(),
                })
            }
            (Precondition::IfMatch(v), Some((_, cur, _))) if v != cur => {
                return Err(Error::PreconditionFailed {
                    path: path.to_string(),
                })
            }
            _ => {}
        }
        let mut parent = path.parent();
        while let Some(p) = parent.filter(|p| !p.is_root()) {
            parent = p.parent();
            st.dirs.insert(p);
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let v = Version::new(format!("m{n}"));
        let t = SystemTime::now();
        st.files.insert(path.clone(), (bytes.clone(), v.clone(), t));
        Ok(Self::file_entry(path, &bytes, &v, t))
    }

    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        let mut st = self.state();
        st.check_locks(path, &pre)?;
        match (&pre, st.files.get(path)) {
            (Precondition::IfMatch(v), Some((_, cur, _))) if v == cur => {}
            (Precondition::IfMatch(_), _) => {
                return Err(Error::PreconditionFailed {
                    path: path.to_string(),
                })
            }
            (Precondition::IfAbsent, Some(_)) => {
                return Err(Error::AlreadyExists {
                    path: path.to_string(),
                })
            }
            _ => {}
        }
        if st.files.remove(path).is_none() && st.dirs.contains(path) {
            let busy = st
                .files
                .keys()
                .any(|k| k.as_str().starts_with(&format!("{}/", path.as_str())))
                || st.dirs.iter().any(|d| d.parent().as_ref() == Some(path));
            if busy {
                return Err(Error::InvalidInput {
                    message: format!("{path} is a folder that is not empty"),
                });
            }
            st.dirs.remove(path);
        }
        Ok(())
    }

    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        let mut st = self.state();
        let mut p = Some(path.clone());
        while let Some(d) = p.filter(|d| !d.is_root()) {
            if st.files.contains_key(&d) {
                return Err(Error::InvalidInput {
                    message: format!("{d} is a file, not a folder"),
                });
            }
            p = d.parent();
            if !st.dirs.contains(&d) {
                st.check_locks(&d, &Precondition::None)?;
            }
            st.dirs.insert(d);
        }
        Ok(())
    }

    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        let mut st = self.state();
        if path.is_root() || !st.dirs.contains(path) {
            return Err(Error::NotFound {
                path: path.to_string(),
            });
        }
        let inside = |p: &RemotePath| p.parent().as_ref() == Some(path);
        if st.files.keys().any(inside) || st.dirs.iter().any(inside) {
            return Err(Error::InvalidInput {
                message: format!("{path} is not empty"),
            });
        }
        st.check_locks(path, &Precondition::None)?;
        st.dirs.remove(path);
        Ok(())
    }

    async fn lock_dir(&self, dir: &RemotePath, ttl: std::time::Duration) -> Result<DirLock> {
        let mut st = self.state();
        if !dir.is_root() && !st.dirs.contains(dir) {
            return Err(Error::NotFound {
                path: dir.to_string(),
            });
        }
        let mine = DirLock::new(dir.clone(), "", ttl);
        let conflict = st
            .live_locks()
            .values()
            .any(|(d, _)| mine.covers(d) || DirLock::new(d.clone(), "", ttl).covers(dir));
        if conflict {
            return Err(Error::Locked {
                path: dir.to_string(),
                holder: None,
            });
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("memlock:{n}:{:016x}", fastrand::u64(..));
        st.locks.insert(
            token.clone(),
            (dir.clone(), tokio::time::Instant::now() + ttl),
        );
        Ok(DirLock::new(dir.clone(), token, ttl))
    }

    async fn refresh_lock(&self, lock: &DirLock, ttl: std::time::Duration) -> Result<DirLock> {
        let mut st = self.state();
        st.live_locks();
        match st.locks.get_mut(lock.token()) {
            Some((dir, until)) if dir == lock.dir() => {
                *until = tokio::time::Instant::now() + ttl;
                Ok(DirLock::new(dir.clone(), lock.token(), ttl))
            }
            _ => Err(Error::PreconditionFailed {
                path: lock.dir().to_string(),
            }),
        }
    }

    async fn unlock_dir(&self, lock: &DirLock) -> Result<()> {
        self.state().locks.remove(lock.token());
        Ok(())
    }
}
