//! This device in server locks, and one sync at a time per sync state folder.
//!
//! A server lock ([`Storage::lock_dir_as`](syncfabric_core::Storage::lock_dir_as))
//! names its owner. The engine's owner is:
//!
//! * a **device id** kept in the state folder (`device-id`, 32 random hex digits,
//!   0600), so it persists per vault folder and remote on this device and survives a
//!   crash;
//! * a **process part**, new for every sync ([`LockOwner::new`]);
//! * the **label** of [`LeaseOptions::label`](syncfabric_core::lock::LeaseOptions::label)
//!   (the CLI puts the device's name there), shown to other devices.
//!
//! Every sync holds an exclusive `flock` on `sync.lock` in the state folder for its
//! whole length ([`StateDir::lock_local`]); the kernel drops it when the process dies.
//! So while a sync holds it, no other live process uses this device id, and a lock
//! the server shows as held by this device is a crashed run's: the owner is passed as
//! [`LockOwner::exclusive`] and the provider releases such a lock.
//!
//! Some servers never show lock tokens to anyone but the taker (SabreDAV hides them
//! in `lockdiscovery`; rclone has no `lockdiscovery`). So the engine also records the
//! token of the server lock it holds in `server-lock` (0600) right after taking it,
//! and removes the record after the `UNLOCK`. A record found at the start of a sync
//! is a crashed run's lock: it is released first ([`release_recorded_lock`]).

use super::state::{write_atomic, StateDir};
use super::SyncError;
use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;
use syncfabric_core::{DirLock, RemotePath, Storage};

const DEVICE_ID: &str = "device-id";
const LOCAL_LOCK: &str = "sync.lock";
const SERVER_LOCK: &str = "server-lock";

/// The exclusive local lock of a state folder, held for one sync (see the
/// module docs); released on drop or when the process dies.
#[derive(Debug)]
pub struct LocalSyncLock {
    _file: File,
}

fn invalid(m: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m)
}

fn is_device_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl StateDir {
    fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// This device's id for this state folder: read from `device-id`, or made (and
    /// kept) when missing or invalid. Call it while holding [`StateDir::lock_local`].
    pub fn device_id(&self) -> std::io::Result<String> {
        let path = self.file(DEVICE_ID);
        if let Ok(bytes) = super::state::read_nofollow(&path, 128) {
            let s = String::from_utf8_lossy(&bytes).trim().to_string();
            if is_device_id(&s) {
                return Ok(s);
            }
            tracing::warn!("{} is not a device id; making a new one", path.display());
        }
        let mut b = [0u8; 16];
        openssl::rand::rand_bytes(&mut b)
            .map_err(|e| invalid(format!("no randomness for a device id: {e}")))?;
        let id = hex::encode(b);
        write_atomic(&path, format!("{id}\n").as_bytes())?;
        Ok(id)
    }

    /// Takes the state folder's exclusive local lock, or `None` while another sync (in
    /// this process or another) holds it. `sync.lock` is created 0600 and never
    /// followed as a symbolic link.
    pub fn lock_local(&self) -> std::io::Result<Option<LocalSyncLock>> {
        let path = self.file(LOCAL_LOCK);
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let file = match o.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                super::state::open_nofollow(&path, true)?
            }
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(LocalSyncLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Records `lock` as held by this device (see the [module docs](self)).
    pub(crate) fn record_server_lock(&self, lock: &DirLock) -> std::io::Result<()> {
        let text = format!("{}\n{}\n", lock.dir(), lock.token());
        write_atomic(&self.file(SERVER_LOCK), text.as_bytes())
    }

    /// Forgets the recorded server lock (after its `UNLOCK`).
    pub(crate) fn clear_server_lock(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.file(SERVER_LOCK)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The recorded server lock of a run that did not end, if any. A record that
    /// cannot be read is dropped (its lock then expires on the server's schedule).
    fn recorded_server_lock(&self) -> Option<DirLock> {
        let bytes = super::state::read_nofollow(&self.file(SERVER_LOCK), 4096).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        let dir = lines.next().and_then(|d| RemotePath::parse(d).ok());
        let token = lines
            .next()
            .filter(|t| !t.is_empty() && t.len() <= 512 && !t.contains(['<', '>', '(', ')']));
        match (dir, token) {
            (Some(dir), Some(token)) => Some(DirLock::new(dir, token, Duration::from_secs(1))),
            _ => {
                tracing::warn!("unreadable server lock record; removed it");
                let _ = self.clear_server_lock();
                None
            }
        }
    }
}

/// Waits for the state folder's local lock, polling, for up to `wait` (warned once).
pub(crate) async fn hold_local(
    state: &StateDir,
    wait: Duration,
) -> Result<LocalSyncLock, SyncError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut told = false;
    loop {
        if let Some(l) = state.lock_local()? {
            return Ok(l);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SyncError::LocalBusy {
                path: state.path().display().to_string(),
            });
        }
        if !told {
            told = true;
            tracing::warn!(
                "another sync of this vault with this remote is running on this device; waiting up to {} s for it to end",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Releases the server lock a crashed run of this device recorded, if there is one.
/// Call it while holding the local lock. A lock already gone counts as released.
pub(crate) async fn release_recorded_lock(state: &StateDir, storage: &dyn Storage) {
    let Some(lock) = state.recorded_server_lock() else {
        return;
    };
    match storage.unlock_dir(&lock).await {
        Ok(()) => {
            tracing::warn!(
                "{}: released the server lock a sync of this device left when it stopped before its end",
                lock.dir()
            );
            if let Err(e) = state.clear_server_lock() {
                tracing::warn!("could not remove the server lock record: {e}");
            }
        }
        // Kept: the next sync tries again (the lock may still block others).
        Err(e) => tracing::warn!(
            "{}: could not release the server lock a stopped sync of this device left: {e}",
            lock.dir()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_persists_and_local_lock_excludes_a_second_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path().join("s")).unwrap();
        let id = sd.device_id().unwrap();
        assert!(is_device_id(&id));
        let again = StateDir::open(tmp.path().join("s")).unwrap();
        assert_eq!(again.device_id().unwrap(), id);
        std::fs::write(sd.path().join(DEVICE_ID), "../../etc").unwrap();
        assert_ne!(sd.device_id().unwrap(), id, "an invalid id is replaced");

        let held = sd.lock_local().unwrap().expect("free");
        assert!(again.lock_local().unwrap().is_none(), "one sync at a time");
        drop(held);
        assert!(again.lock_local().unwrap().is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [DEVICE_ID, LOCAL_LOCK] {
                let mode = std::fs::metadata(sd.path().join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
    }

    #[test]
    fn server_lock_records_round_trip_and_bad_ones_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path().join("s")).unwrap();
        assert!(sd.recorded_server_lock().is_none());
        let l = DirLock::new(
            RemotePath::parse("v-1").unwrap(),
            "opaquelocktoken:ab",
            Duration::from_secs(60),
        );
        sd.record_server_lock(&l).unwrap();
        let r = sd.recorded_server_lock().unwrap();
        assert_eq!((r.dir(), r.token()), (l.dir(), l.token()));
        sd.clear_server_lock().unwrap();
        assert!(sd.recorded_server_lock().is_none());
        std::fs::write(sd.path().join(SERVER_LOCK), "../x\n<evil>\n").unwrap();
        assert!(sd.recorded_server_lock().is_none());
        assert!(!sd.path().join(SERVER_LOCK).exists());
    }
}
