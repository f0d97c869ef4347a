//! A test double of a desktop sync client (Dropbox, OneDrive, iCloud Drive, Syncthing):
//! a local *replica* folder kept in sync with an in-memory *cloud* the way those
//! clients do it, so tests can check that [`FolderStorage`](crate::FolderStorage)
//! behaves under one. Only with the `test-double` feature.
//!
//! What it does, like the real clients:
//!
//! * **Late delivery.** [`DesktopDouble::remote_write`] is a write made by another
//!   device: it lands in the cloud at once and reaches the replica only when a sync
//!   pass runs at least `delay` later.
//! * **Replace by rename.** A delivery writes the new bytes to a staging folder
//!   outside the replica and renames them over the replica's file (a new inode; open
//!   handles keep reading the old bytes).
//! * **Conflict copies.** If the replica's file was changed locally since the last
//!   sync *and* the cloud has a different newer version, the cloud's version takes the
//!   name and the local one is kept beside it as a conflict copy, named in the style
//!   of the client being imitated ([`CopyNaming`]).
//! * **Upload.** A local change with no competing cloud change is uploaded (visible in
//!   [`DesktopDouble::cloud_content`]).
//!
//! The double is synchronous and deterministic: a sync pass runs when a test calls
//! [`DesktopDouble::sync_once`], or every tick on a thread started with
//! [`DesktopDouble::spawn`]. It syncs regular files of the whole replica tree, except
//! the provider's temp and lock files (like a client configured to ignore them; real
//! clients may sync them, which is harmless).

use crate::version::hash_reader;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use syncfabric_core::Version;

/// How the imitated client names conflict copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyNaming {
    /// Dropbox: `vault (conflicted copy).enpassdb`, then `(conflicted copy 2)`, ...
    Dropbox,
    /// iCloud Drive: `vault 2.enpassdb`, `vault 3.enpassdb`, ...
    ICloud,
    /// OneDrive: `vault-DESKTOP-DOUBLE.enpassdb`, then `-DESKTOP-DOUBLE-2`, ...
    OneDrive,
    /// Syncthing: `vault.sync-conflict-20240101-120000-DOUBLE.enpassdb` (seconds count up).
    Syncthing,
}

impl CopyNaming {
    /// The `n`-th (from 1) conflict copy name of file `name`.
    pub fn copy_name(self, name: &str, n: u32) -> String {
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], &name[i..]),
            _ => (name, ""),
        };
        match (self, n) {
            (CopyNaming::Dropbox, 1) => format!("{stem} (conflicted copy){ext}"),
            (CopyNaming::Dropbox, n) => format!("{stem} (conflicted copy {n}){ext}"),
            (CopyNaming::ICloud, n) => format!("{stem} {}{ext}", n + 1),
            (CopyNaming::OneDrive, 1) => format!("{stem}-DESKTOP-DOUBLE{ext}"),
            (CopyNaming::OneDrive, n) => format!("{stem}-DESKTOP-DOUBLE-{n}{ext}"),
            (CopyNaming::Syncthing, n) => {
                format!(
                    "{stem}.sync-conflict-20240101-{:06}-DOUBLE{ext}",
                    120000 + n
                )
            }
        }
    }
}

/// What one sync pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Cloud versions written into the replica (relative paths).
    pub delivered: Vec<String>,
    /// Local changes uploaded to the cloud.
    pub uploaded: Vec<String>,
    /// Conflict copies created in the replica (relative paths of the copies).
    pub conflict_copies: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    /// The cloud: relative path → bytes.
    cloud: BTreeMap<String, Vec<u8>>,
    /// The content hash both sides agreed on at the last sync, per file.
    base: HashMap<String, Version>,
    /// Remote writes not yet delivered: relative path → when it may be delivered.
    due: BTreeMap<String, Instant>,
}

/// The desktop sync client double. See the module docs.
#[derive(Debug)]
pub struct DesktopDouble {
    replica: PathBuf,
    staging: PathBuf,
    delay: Duration,
    naming: CopyNaming,
    state: Mutex<State>,
    counter: AtomicU64,
}

fn hash_bytes(b: &[u8]) -> Version {
    // The same content hash the provider uses, so tests can compare them.
    hash_reader(b).unwrap_or_else(|_| Version::new(""))
}

impl DesktopDouble {
    /// A double whose replica is `base/replica` and staging folder `base/staging`
    /// (both created). Remote writes reach the replica `delay` after they are made, at
    /// the next sync pass.
    pub fn new(base: &Path, delay: Duration, naming: CopyNaming) -> io::Result<Self> {
        let replica = base.join("replica");
        let staging = base.join("staging");
        std::fs::create_dir_all(&replica)?;
        std::fs::create_dir_all(&staging)?;
        Ok(DesktopDouble {
            replica,
            staging,
            delay,
            naming,
            state: Mutex::new(State::default()),
            counter: AtomicU64::new(0),
        })
    }

    /// The replica folder: root a `FolderStorage` here.
    pub fn replica(&self) -> &Path {
        &self.replica
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Another device writes `rel` ('/'-separated): in the cloud now, in the replica at
    /// the first sync pass `delay` from now or later.
    pub fn remote_write(&self, rel: &str, bytes: &[u8]) {
        let mut st = self.lock();
        st.cloud.insert(rel.to_string(), bytes.to_vec());
        st.due.insert(rel.to_string(), Instant::now() + self.delay);
    }

    /// What the cloud holds at `rel`.
    pub fn cloud_content(&self, rel: &str) -> Option<Vec<u8>> {
        self.lock().cloud.get(rel).cloned()
    }

    /// Remote writes not delivered yet.
    pub fn pending_deliveries(&self) -> usize {
        self.lock().due.len()
    }

    fn local(&self, rel: &str) -> PathBuf {
        let mut p = self.replica.clone();
        for s in rel.split('/') {
            p.push(s);
        }
        p
    }

    /// Writes `bytes` to the replica's `rel` the way clients do: staging file, rename.
    fn place(&self, rel: &str, bytes: &[u8]) -> io::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.staging.join(format!("incoming-{n}"));
        std::fs::write(&tmp, bytes)?;
        let dest = self.local(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(&tmp, &dest)
    }

    fn read_local(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.local(rel)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A free conflict-copy name for `rel` (relative path of the copy).
    fn free_copy_name(&self, rel: &str) -> String {
        let (dir, name) = match rel.rfind('/') {
            Some(i) => (&rel[..=i], &rel[i + 1..]),
            None => ("", rel),
        };
        let mut n = 1;
        loop {
            let cand = format!("{dir}{}", self.naming.copy_name(name, n));
            if !self.local(&cand).exists() {
                return cand;
            }
            n += 1;
        }
    }

    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        for ent in std::fs::read_dir(dir)? {
            let ent = ent?;
            let Some(name) = ent.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if crate::is_internal_name(&name) {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let ft = ent.file_type()?;
            if ft.is_dir() {
                Self::walk(&ent.path(), &rel, out)?;
            } else if ft.is_file() {
                out.push(rel);
            }
        }
        Ok(())
    }

    /// One sync pass: deliver due cloud versions (making conflict copies where the
    /// replica changed too), then upload local changes that have no competing cloud
    /// change.
    pub fn sync_once(&self) -> io::Result<SyncReport> {
        let mut report = SyncReport::default();
        let mut st = self.lock();
        let now = Instant::now();
        let due: Vec<String> = st
            .due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for rel in due {
            st.due.remove(&rel);
            let Some(remote) = st.cloud.get(&rel).cloned() else {
                continue;
            };
            let remote_v = hash_bytes(&remote);
            let local = self.read_local(&rel)?;
            let local_v = local.as_deref().map(hash_bytes);
            let base = st.base.get(&rel).cloned();
            let locally_changed = local_v != base && local_v.is_some();
            if locally_changed && local_v.as_ref() != Some(&remote_v) {
                // Both sides changed: the cloud keeps the name, the local edit is
                // kept as a conflict copy (and uploaded as one).
                let copy = self.free_copy_name(&rel);
                let local = local.unwrap_or_default();
                self.place(&copy, &local)?;
                st.base.insert(copy.clone(), hash_bytes(&local));
                st.cloud.insert(copy.clone(), local);
                report.conflict_copies.push(copy);
            }
            if local_v.as_ref() != Some(&remote_v) {
                self.place(&rel, &remote)?;
                report.delivered.push(rel.clone());
            }
            st.base.insert(rel, remote_v);
        }
        let mut files = Vec::new();
        Self::walk(&self.replica, "", &mut files)?;
        for rel in files {
            if st.due.contains_key(&rel) {
                // A cloud change is on its way: resolve when it arrives.
                continue;
            }
            let Some(bytes) = self.read_local(&rel)? else {
                continue;
            };
            let v = hash_bytes(&bytes);
            if st.base.get(&rel) == Some(&v) {
                continue;
            }
            st.base.insert(rel.clone(), v);
            st.cloud.insert(rel.clone(), bytes);
            report.uploaded.push(rel);
        }
        Ok(report)
    }

    /// Runs [`DesktopDouble::sync_once`] every `tick` on a thread until the returned
    /// handle is dropped.
    pub fn spawn(self: &Arc<Self>, tick: Duration) -> DoubleRunner {
        let stop = Arc::new(AtomicBool::new(false));
        let me = Arc::clone(self);
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Err(e) = me.sync_once() {
                    tracing::warn!(error = %e, "desktop double sync pass failed");
                }
                std::thread::sleep(tick);
            }
        });
        DoubleRunner {
            stop,
            thread: Some(thread),
        }
    }
}

/// Keeps a [`DesktopDouble`] syncing on its thread; dropping it stops the thread.
#[derive(Debug)]
pub struct DoubleRunner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DoubleRunner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_names_are_recognised_as_conflict_copies() {
        for naming in [
            CopyNaming::Dropbox,
            CopyNaming::ICloud,
            CopyNaming::OneDrive,
            CopyNaming::Syncthing,
        ] {
            for n in 1..4 {
                let c = naming.copy_name("vault.enpassdb", n);
                assert!(crate::conflict_style("vault.enpassdb", &c).is_some(), "{c}");
            }
        }
    }

    #[test]
    fn delivers_uploads_and_makes_conflict_copies() {
        let dir = tempfile::tempdir().unwrap();
        let d = DesktopDouble::new(dir.path(), Duration::ZERO, CopyNaming::Dropbox).unwrap();
        d.remote_write("a/f.txt", b"one");
        let r = d.sync_once().unwrap();
        assert_eq!(r.delivered, ["a/f.txt"]);
        assert_eq!(std::fs::read(d.replica().join("a/f.txt")).unwrap(), b"one");
        std::fs::write(d.replica().join("a/f.txt"), b"local").unwrap();
        let r = d.sync_once().unwrap();
        assert_eq!(r.uploaded, ["a/f.txt"]);
        assert_eq!(d.cloud_content("a/f.txt").unwrap(), b"local");
        // Both sides change.
        std::fs::write(d.replica().join("a/f.txt"), b"mine").unwrap();
        d.remote_write("a/f.txt", b"theirs");
        let r = d.sync_once().unwrap();
        assert_eq!(r.conflict_copies, ["a/f (conflicted copy).txt"]);
        assert_eq!(
            std::fs::read(d.replica().join("a/f.txt")).unwrap(),
            b"theirs"
        );
        assert_eq!(
            std::fs::read(d.replica().join("a/f (conflicted copy).txt")).unwrap(),
            b"mine"
        );
    }
}
