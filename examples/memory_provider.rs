//! A provider from scratch: a tiny in-memory storage implements
//! `syncfabric::core::Storage` and runs the conformance suite, as the crate docs of
//! `syncfabric-conformance` describe.
//!
//! Run with `cargo run --example memory_provider`; it prints one line per behaviour
//! and exits with 0 only if the whole suite passed.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use syncfabric::core::{
    Body, Capabilities, ChangeFeed, Download, Entry, EntryKind, Error, Precondition, RemotePath,
    Result, Storage, Version,
};
use syncfabric_conformance::{run_all, Harness};
use tokio::io::AsyncReadExt;

/// Everything the store holds: files with their version, and folders.
#[derive(Debug, Default)]
struct Data {
    files: BTreeMap<RemotePath, (Bytes, Version)>,
    dirs: BTreeSet<RemotePath>,
    next_version: u64,
}

/// The provider. Clones share the data, like two clients of one server.
#[derive(Debug, Clone, Default)]
struct TinyStore {
    data: Arc<Mutex<Data>>,
}

impl TinyStore {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        // Our critical sections cannot leave the map half-updated, so a poisoned lock
        // is still usable.
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn file_entry(path: &RemotePath, bytes: &Bytes, version: &Version) -> Entry {
    Entry {
        path: path.clone(),
        kind: EntryKind::File,
        size: bytes.len() as u64,
        modified: Some(SystemTime::now()),
        version: Some(version.clone()),
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

#[async_trait::async_trait]
impl Storage for TinyStore {
    fn capabilities(&self) -> Capabilities {
        // Everything happens under one mutex, so the preconditions are truthful.
        Capabilities {
            if_match: true,
            if_absent: true,
            conditional_delete: true,
            max_single_write: None,
            chunked_upload: false,
            change_feed: ChangeFeed::Poll,
            read_after_write: true,
            server_clock: false,
            server_lock: false,
            strong_versions: true,
            spaced_writes: false,
        }
    }

    fn describe(&self) -> String {
        "tiny in-memory example store".into()
    }

    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        let d = self.data();
        if let Some((bytes, version)) = d.files.get(path) {
            return Ok(Some(file_entry(path, bytes, version)));
        }
        Ok((path.is_root() || d.dirs.contains(path)).then(|| dir_entry(path)))
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let d = self.data();
        if !dir.is_root() && !d.dirs.contains(dir) {
            return Err(Error::NotFound {
                path: dir.to_string(),
            });
        }
        let is_child = |p: &RemotePath| p.parent().as_ref() == Some(dir);
        let mut out: Vec<Entry> = d
            .dirs
            .iter()
            .filter(|p| is_child(p))
            .map(dir_entry)
            .collect();
        out.extend(
            d.files
                .iter()
                .filter(|(p, _)| is_child(p))
                .map(|(p, (b, v))| file_entry(p, b, v)),
        );
        Ok(out)
    }

    async fn read(&self, path: &RemotePath) -> Result<Download> {
        let d = self.data();
        let (bytes, version) = d.files.get(path).ok_or_else(|| Error::NotFound {
            path: path.to_string(),
        })?;
        // The whole file is in memory: `from_bytes` streams it in chunks.
        Ok(Download::from_bytes(bytes.clone(), Some(version.clone())))
    }

    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        // Read the whole body first: if it fails (or yields fewer bytes than it
        // declared), nothing has been touched yet.
        let mut buf = Vec::new();
        body.open()
            .await?
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::from_io(e, "body"))?;
        if buf.len() as u64 != body.len() {
            return Err(Error::InvalidInput {
                message: "the body changed while being read".into(),
            });
        }
        let mut d = self.data();
        match (&pre, d.files.get(path)) {
            (Precondition::IfAbsent, Some(_)) => {
                return Err(Error::AlreadyExists {
                    path: path.to_string(),
                })
            }
            (Precondition::IfMatch(want), Some((_, have))) if want == have => {}
            (Precondition::IfMatch(_), _) => {
                return Err(Error::PreconditionFailed {
                    path: path.to_string(),
                })
            }
            _ => {}
        }
        // Parent folders are created as needed.
        let mut parent = path.parent();
        while let Some(p) = parent.filter(|p| !p.is_root()) {
            parent = p.parent();
            d.dirs.insert(p);
        }
        d.next_version += 1;
        let version = Version::new(format!("v{}", d.next_version));
        let bytes = Bytes::from(buf);
        d.files
            .insert(path.clone(), (bytes.clone(), version.clone()));
        Ok(file_entry(path, &bytes, &version))
    }

    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        let mut d = self.data();
        match (&pre, d.files.get(path)) {
            (Precondition::IfMatch(want), Some((_, have))) if want == have => {}
            (Precondition::IfMatch(_), _) => {
                return Err(Error::PreconditionFailed {
                    path: path.to_string(),
                })
            }
            _ => {}
        }
        if d.files.remove(path).is_none() {
            // An empty folder may be deleted too; a missing path is fine (idempotent).
            let has_children = d
                .files
                .keys()
                .chain(d.dirs.iter())
                .any(|p| p.parent().as_ref() == Some(path));
            if !has_children {
                d.dirs.remove(path);
            }
        }
        Ok(())
    }

    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        let mut d = self.data();
        let mut p = Some(path.clone());
        while let Some(dir) = p.filter(|p| !p.is_root()) {
            p = dir.parent();
            d.dirs.insert(dir);
        }
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let store = TinyStore::default();
    let clients = store.clone();
    let harness = Harness::new(
        Arc::new(store),
        RemotePath::parse("conformance").expect("valid path"),
    )
    // Independent clients of the same data, for the race behaviour.
    .with_clients(move || {
        let c = clients.clone();
        async move { Ok(Arc::new(c) as Arc<dyn Storage>) }
    });
    let report = run_all(&harness).await;
    println!("{report}");
    std::process::exit(if report.all_passed() { 0 } else { 1 });
}
