//! The disk side: request paths mapped into a vault folder (never outside it, never
//! through a symlink), strong ETags, atomic writes and the write locks.
//!
//! The served folder is also written by the serving device through a folder remote
//! (`syncfabric-folder`), in another process. So every write here follows the folder
//! provider's protocol: its locked temp files (its sweep never takes a live upload for
//! a dead one), its internal names hidden and refused, and each check-and-commit under
//! its per-folder lock as well as ours, so a condition checked by one writer cannot
//! be overtaken by the other's rename.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use syncfabric_folder::{DirLock, TempFile};

/// Why a path is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// A segment is `.`, `..`, holds `/`, `\` or NUL, or is a temporary or lock file.
    Invalid,
    /// A component on disk is a symlink (or otherwise leaves the folder).
    Outside,
}

/// Checks one decoded path segment.
pub(crate) fn check_segment(seg: &str) -> Result<(), PathError> {
    let bad = seg.is_empty()
        || seg == "."
        || seg == ".."
        || seg.contains(['/', '\\', '\0'])
        || syncfabric_folder::is_internal_name(seg)
        || seg.len() > 255;
    if bad {
        Err(PathError::Invalid)
    } else {
        Ok(())
    }
}

/// `root` joined with `segs`, after checking that no component existing on disk is a
/// symlink (so nothing outside `root`, which is canonical, is reachable).
pub(crate) fn resolve(root: &Path, segs: &[String]) -> Result<PathBuf, PathError> {
    let mut p = root.to_path_buf();
    for (i, s) in segs.iter().enumerate() {
        check_segment(s)?;
        p.push(s);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Err(PathError::Outside),
            Ok(m) if !m.is_dir() && !m.is_file() => return Err(PathError::Outside),
            Ok(_) => {}
            // The rest does not exist yet: nothing below can be a symlink.
            Err(_) => {
                for r in &segs[i + 1..] {
                    check_segment(r)?;
                    p.push(r);
                }
                return Ok(p);
            }
        }
    }
    Ok(p)
}

/// A strong entity tag: inode, modification time in nanoseconds, size. Every write
/// through this server makes a new inode and pushes the mtime past the previous one
/// (see [`bump_mtime`]), so the tag changes on every write, also within a second and at
/// equal size.
pub(crate) fn etag(m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("\"{:x}-{:x}-{:x}\"", m.ino(), mtime_ns(m), m.len())
}

fn mtime_ns(m: &std::fs::Metadata) -> u128 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// Sets `file`'s mtime to now, or just after `previous` (the mtime of the file it
/// replaces) when the clock has not moved past it.
pub(crate) fn bump_mtime(
    file: &std::fs::File,
    previous: Option<SystemTime>,
) -> std::io::Result<()> {
    let mut t = SystemTime::now();
    if let Some(p) = previous {
        let next = p + Duration::from_micros(1);
        if next > t {
            t = next;
        }
    }
    file.set_modified(t)
}

/// A new temporary file beside `target`, locked while it lives and deleted on drop
/// unless disarmed (the folder provider's), and a handle to write it through.
pub(crate) fn temp_beside(target: &Path) -> std::io::Result<(TempFile, std::fs::File)> {
    TempFile::create(target.parent().unwrap_or(Path::new("/")))
}

/// Copies the file `from` to `to` atomically (a temporary file renamed into place).
pub(crate) fn copy_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let previous = std::fs::metadata(to).ok().and_then(|m| m.modified().ok());
    let (mut tmp, mut out) = temp_beside(to)?;
    let mut src = std::fs::File::open(from)?;
    std::io::copy(&mut src, &mut out)?;
    out.sync_all()?;
    bump_mtime(&out, previous)?;
    std::fs::rename(&tmp.path, to)?;
    tmp.disarm();
    Ok(())
}

/// Copies the tree `from` to `to` (which must not exist); symlinks are skipped.
/// `depth0`: the folder alone, without members. Returns the paths that failed.
pub(crate) fn copy_tree(from: &Path, to: &Path, depth0: bool) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    if depth0 {
        return Ok(());
    }
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if syncfabric_folder::is_internal_name(&name.to_string_lossy()) {
            continue;
        }
        let ft = e.file_type()?;
        if ft.is_dir() {
            copy_tree(&e.path(), &to.join(&name), false)?;
        } else if ft.is_file() {
            copy_file(&e.path(), &to.join(&name))?;
        }
    }
    Ok(())
}

/// Removes a file or a whole folder.
pub(crate) fn remove_any(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) => Err(e),
    }
}

/// How long a write waits for a folder's lock (held by the folder remote only for its
/// short check-and-rename) before answering 503.
const DIR_LOCK_WAIT: Duration = Duration::from_secs(30);

/// What [`PathLocks::lock`] holds: our per-path mutexes and the folders' locks.
pub(crate) struct PathGuard {
    _paths: Vec<tokio::sync::OwnedMutexGuard<()>>,
    _dirs: Vec<DirLock>,
}

/// One async mutex per path, held while a write checks its conditions and commits.
#[derive(Default)]
pub(crate) struct PathLocks {
    map: Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>,
}

impl PathLocks {
    /// Locks every path of `paths` (deduplicated, in a fixed order: no deadlock), then
    /// the folder provider's lock of each existing folder holding one of them (also in
    /// order). An error when a folder's lock is not had within [`DIR_LOCK_WAIT`].
    pub(crate) async fn lock(&self, paths: &[&Path]) -> std::io::Result<PathGuard> {
        let mut sorted: Vec<&Path> = paths.to_vec();
        sorted.sort();
        sorted.dedup();
        let mutexes: Vec<_> = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, w| w.strong_count() > 0);
            sorted
                .iter()
                .map(|p| {
                    if let Some(m) = map.get(*p).and_then(Weak::upgrade) {
                        return m;
                    }
                    let m = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(p.to_path_buf(), Arc::downgrade(&m));
                    m
                })
                .collect()
        };
        let mut guards = Vec::with_capacity(mutexes.len());
        for m in mutexes {
            guards.push(m.lock_owned().await);
        }
        let mut dirs: Vec<PathBuf> = sorted
            .iter()
            .filter_map(|p| p.parent())
            .filter(|d| d.is_dir())
            .map(Path::to_path_buf)
            .collect();
        dirs.dedup();
        let dirs = tokio::task::spawn_blocking(move || {
            dirs.iter()
                .map(|d| DirLock::acquire(d, DIR_LOCK_WAIT))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(PathGuard {
            _paths: guards,
            _dirs: dirs,
        })
    }
}

/// An HTTP date (RFC 9110 IMF-fixdate), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t.max(UNIX_EPOCH))
}

/// An ISO 8601 date (creationdate), e.g. `1994-11-06T08:49:37Z`.
pub(crate) fn iso_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(iso_date(t), "1994-11-06T08:49:37Z");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn segments() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0", ".syncfabric-tmp-1"] {
            assert_eq!(check_segment(bad), Err(PathError::Invalid), "{bad:?}");
        }
        assert!(check_segment("%2e%2e").is_ok());
    }
}
