//! Blocking file-system building blocks: the per-folder lock, temp files, the
//! compare-and-rename commit, directory fsync, and the sweep of stale temp files.
//!
//! Every function here blocks; the async `Storage` methods call them through
//! `tokio::task::spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Prefix of temporary files (a write in progress, or one whose writer died). Such
/// names never appear in listings, and writes to them are refused.
pub const TEMP_PREFIX: &str = ".syncfabric-tmp-";
/// Name of the lock file in each folder written to. Never listed; writes refused.
pub const LOCK_NAME: &str = ".syncfabric-lock";

/// True for names the provider uses internally: temp files and the lock file. (Other
/// `.syncfabric-*` names, such as the core honesty probe's, are ordinary files.)
pub fn is_internal_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) || name == LOCK_NAME
}

/// An exclusive lock on the folder's lock file, held until dropped.
///
/// `flock(2)` on Unix (per open file description, so two handles in one process
/// exclude each other too; emulated with POSIX byte-range locks on NFS since Linux
/// 2.6.12, so it also excludes other NFS clients), `LockFileEx` on Windows. The lock is
/// released by the kernel when the process dies, so a killed writer never leaves a
/// folder locked. The lock file is deleted only together with its (empty) folder, by a
/// holder of the lock; every acquirer checks after locking that the file it locked is
/// still the one at the path, and starts again if not, so two processes never hold
/// locks on two different files.
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

impl DirLock {
    /// Waits until the lock of folder `dir` is held, at most `timeout`; then fails with
    /// `io::ErrorKind::TimedOut` (a live process holds it, e.g. one stuck on a dead
    /// network share). Polls with `try_lock`, backing off from 1 ms to 50 ms.
    pub fn acquire(dir: &Path, timeout: Duration) -> io::Result<DirLock> {
        let lock_path = dir.join(LOCK_NAME);
        let deadline = std::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let file = nofollow(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false),
            )
            .open(&lock_path)?;
            loop {
                match fs4::FileExt::try_lock(&file) {
                    Ok(()) => {
                        // The lock file may have been deleted (with its empty folder)
                        // while we waited: a lock on an unlinked file excludes nobody.
                        if still_linked(&file, &lock_path) {
                            return Ok(DirLock { file });
                        }
                        let _ = fs4::FileExt::unlock(&file);
                        break;
                    }
                    Err(fs4::TryLockError::WouldBlock) => {}
                    Err(fs4::TryLockError::Error(e)) => return Err(e),
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the folder's lock is held by another writer",
                    ));
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            if std::time::Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the folder's lock file kept being replaced",
                ));
            }
        }
    }
}

/// Whether the open `file` is still the one named `path` (same device and inode).
#[cfg(unix)]
fn still_linked(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_linked(_file: &File, path: &Path) -> bool {
    path.exists()
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it immediate
        // even if a duplicate of the descriptor were still open somewhere.
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

/// Adds `O_NOFOLLOW` (Unix): opening a symbolic link fails (`ELOOP`) instead of
/// reaching whatever it points to.
pub(crate) fn nofollow(o: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(o, libc::O_NOFOLLOW);
    o
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique temp name: pid, a process-wide counter and the clock, hashed into hex.
/// Uniqueness is finally guaranteed by `create_new`.
fn temp_name() -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{}-{}-{}", std::process::id(), n, t);
    let d = openssl::sha::sha256(seed.as_bytes());
    let mut s = String::from(TEMP_PREFIX);
    for b in &d[..8] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A temp file being written in folder `dir`, locked (exclusively, on Unix) for as long
/// as this value lives, so that the sweep of stale temp files
/// ([`FolderStorage::sweep_temp_files`](crate::FolderStorage::sweep_temp_files)) can
/// tell a live writer from a dead one.
/// Dropping it without [`TempFile::disarm`] deletes the file.
#[derive(Debug)]
pub struct TempFile {
    /// Where the temp file is.
    pub path: PathBuf,
    /// Holds the lock on the temp file.
    guard: File,
    armed: bool,
}

impl TempFile {
    /// Creates a new, empty, locked temp file in `dir` and returns it with a second
    /// handle to write through.
    pub fn create(dir: &Path) -> io::Result<(TempFile, File)> {
        let mut last = None;
        for _ in 0..8 {
            let path = dir.join(temp_name());
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    let writer = f.try_clone()?;
                    // Fresh file nobody else knows the name of: this cannot block.
                    // (Unix only: flock is advisory there. On Windows a lock would
                    // stop our own writes through `writer`, so the sweep relies on age.)
                    #[cfg(unix)]
                    if let Err(e) = fs4::FileExt::try_lock(&f) {
                        let _ = std::fs::remove_file(&path);
                        return Err(e.into());
                    }
                    return Ok((
                        TempFile {
                            path,
                            guard: f,
                            armed: true,
                        },
                        writer,
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("could not create a temp file")))
    }

    /// The temp file has been renamed into place (or otherwise consumed): do not
    /// delete anything on drop. The lock is still released on drop.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = fs4::FileExt::unlock(&self.guard);
    }
}

/// fsyncs folder `dir`, so a rename or unlink in it is durable. File systems that
/// cannot fsync a folder (some network shares, Windows) are tolerated.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        match File::open(dir).and_then(|d| d.sync_all()) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput
                        | io::ErrorKind::Unsupported
                        | io::ErrorKind::PermissionDenied
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Deletes temp files in `dir` whose writer is gone (their lock can be taken) and
/// whose modification time is at least `older_than` ago. Returns how many were deleted.
/// A temp file whose lock is held belongs to a live writer and is never touched. A
/// writer creates its temp file and then locks it, so `older_than` must leave it that
/// moment: zero is only safe when no writer can be starting in `dir`.
pub fn sweep_stale_temps(dir: &Path, older_than: Duration) -> io::Result<usize> {
    let mut removed = 0;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    for ent in rd {
        let ent = match ent {
            Ok(e) => e,
            Err(_) => continue,
        };
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = ent.path();
        let f = match nofollow(OpenOptions::new().read(true).write(true)).open(&path) {
            Ok(f) => f,
            Err(_) => continue,
        };
        let old_enough = f
            .metadata()
            .and_then(|m| m.modified())
            .map(|m| now.duration_since(m).unwrap_or(Duration::ZERO) >= older_than)
            .unwrap_or(false);
        if !old_enough {
            continue;
        }
        if fs4::FileExt::try_lock(&f).is_ok() {
            // Nobody holds it: its writer died. Deleting while we hold the lock means a
            // writer can no longer be using it.
            if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
            let _ = fs4::FileExt::unlock(&f);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_are_locked_while_alive_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (t, _w) = TempFile::create(dir.path()).unwrap();
        assert!(t
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(TEMP_PREFIX));
        assert_eq!(
            sweep_stale_temps(dir.path(), Duration::ZERO).unwrap(),
            0,
            "live writer"
        );
        assert!(t.path.exists());
        let p = t.path.clone();
        drop(t);
        assert!(!p.exists());
    }

    #[test]
    fn sweep_removes_unlocked_temps_only_when_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(format!("{TEMP_PREFIX}deadbeef"));
        std::fs::write(&p, b"partial").unwrap();
        std::fs::write(dir.path().join("keep"), b"x").unwrap();
        assert_eq!(
            sweep_stale_temps(dir.path(), Duration::from_secs(3600)).unwrap(),
            0
        );
        assert!(p.exists());
        assert_eq!(sweep_stale_temps(dir.path(), Duration::ZERO).unwrap(), 1);
        assert!(!p.exists());
        assert!(dir.path().join("keep").exists());
    }

    #[test]
    fn a_lock_on_a_deleted_lock_file_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), Duration::from_secs(5)).unwrap();
        let d = dir.path().to_path_buf();
        let waiter =
            std::thread::spawn(move || DirLock::acquire(&d, Duration::from_secs(20)).unwrap());
        // Let the waiter open the current lock file and start waiting on it.
        std::thread::sleep(Duration::from_millis(200));
        // The holder deletes the lock file (as a folder delete does), then lets go.
        std::fs::remove_file(dir.path().join(LOCK_NAME)).unwrap();
        drop(first);
        let second = waiter.join().unwrap();
        // The waiter must now hold the lock file that is at the path, not the deleted one.
        let f = File::options()
            .read(true)
            .write(true)
            .open(dir.path().join(LOCK_NAME))
            .expect("the waiter made a new lock file");
        assert!(
            fs4::FileExt::try_lock(&f).is_err(),
            "the waiter holds an unlinked file"
        );
        drop(second);
        assert!(fs4::FileExt::try_lock(&f).is_ok());
    }

    #[test]
    fn dir_lock_excludes_a_second_handle_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let l = DirLock::acquire(dir.path(), Duration::from_secs(5)).unwrap();
        let f = File::options()
            .read(true)
            .write(true)
            .open(dir.path().join(LOCK_NAME))
            .unwrap();
        assert!(fs4::FileExt::try_lock(&f).is_err());
        let e = DirLock::acquire(dir.path(), Duration::from_millis(20)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(l);
        assert!(fs4::FileExt::try_lock(&f).is_ok());
    }
}
