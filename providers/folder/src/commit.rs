//! The blocking work of a write or delete: checking the path, taking the folder's
//! lock, checking the precondition against the current content, committing by rename
//! or link, and sweeping the temp files of dead writers.

use crate::config::*;
use crate::error::*;
use crate::{fsops, icloud, FolderStorage};
use crate::{NotDownloaded, LOCK_NAME, TEMP_PREFIX};
use std::path::Path;
use std::time::{Duration, Instant};
use syncfabric_core::{Entry, EntryKind, Error, Precondition, RemotePath, Result, Version};

impl FolderStorage {
    /// Refuses `path` when a symbolic link is on it: the file itself or any folder
    /// between the root and it (each is `lstat`ed; the walk stops at the first name
    /// that does not exist).
    pub(crate) fn check_no_links(&self, path: &RemotePath) -> Result<()> {
        let mut cur = self.inner.root.clone();
        for s in path.segments() {
            cur.push(s);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => return Err(symlink_err(path)),
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    /// Refuses paths the provider cannot write: the root, and reserved names.
    pub(crate) fn check_writable(path: &RemotePath) -> Result<()> {
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot write or delete the root folder".into(),
            });
        }
        if path.segments().any(fsops::is_internal_name) {
            return Err(Error::InvalidInput {
                message: format!("{path}: {TEMP_PREFIX}* and {LOCK_NAME} are reserved names"),
            });
        }
        Ok(())
    }

    /// If `path` is absent but has an iCloud placeholder, the "not downloaded" error.
    pub(crate) fn placeholder_error(&self, path: &RemotePath, local: &Path) -> Option<Error> {
        if !self.inner.options.icloud_placeholders {
            return None;
        }
        let name = path.file_name()?;
        let ph = local.with_file_name(icloud::placeholder_name(name));
        if std::fs::symlink_metadata(&ph).is_ok() {
            Some(
                NotDownloaded {
                    path: path.as_str().to_string(),
                }
                .into_error(),
            )
        } else {
            None
        }
    }

    /// Blocking stat of one local path.
    pub(crate) fn stat_blocking(&self, path: &RemotePath, local: &Path) -> Result<Option<Entry>> {
        if path.segments().any(fsops::is_internal_name) {
            return Ok(None);
        }
        self.check_no_links(path)?;
        let meta = match std::fs::symlink_metadata(local) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match self.placeholder_error(path, local) {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            // A file where a folder was expected in the path: nothing is there.
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(None),
            Err(e) => return Err(io_err(e, path)),
        };
        if meta.is_dir() {
            return Ok(Some(Entry {
                path: path.clone(),
                kind: EntryKind::Dir,
                size: 0,
                modified: meta.modified().ok(),
                version: None,
            }));
        }
        let file = match open_nofollow(local) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e, path)),
        };
        let meta = file.metadata().map_err(|e| io_err(e, path))?;
        let version = self
            .inner
            .cache
            .version_of(local, &file)
            .map_err(|e| io_err(e, path))?;
        Ok(Some(Entry {
            path: path.clone(),
            kind: EntryKind::File,
            size: meta.len(),
            modified: meta.modified().ok(),
            version: Some(version),
        }))
    }

    /// The current version of the file at `local` (None if absent), for a precondition
    /// check under the lock. A folder there is an error.
    pub(crate) fn current_version(
        &self,
        path: &RemotePath,
        local: &Path,
    ) -> Result<Option<Version>> {
        match open_nofollow(local) {
            Ok(f) => {
                let meta = f.metadata().map_err(|e| io_err(e, path))?;
                if meta.is_dir() {
                    return Err(Error::InvalidInput {
                        message: format!("{path} is a folder"),
                    });
                }
                Ok(Some(
                    self.inner
                        .cache
                        .version_of(local, &f)
                        .map_err(|e| io_err(e, path))?,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e, path)),
        }
    }

    /// The commit of a write, under the folder lock: check `pre`, move `temp` into place.
    pub(crate) fn commit_blocking(
        &self,
        path: &RemotePath,
        local: &Path,
        mut temp: fsops::TempFile,
        pre: &Precondition,
    ) -> Result<()> {
        let parent = local.parent().unwrap_or(&self.inner.root);
        let _lock = self.lock_dir(parent, path)?;
        if let Some(e) = self.placeholder_error(path, local) {
            if std::fs::symlink_metadata(local).is_err() {
                return Err(e);
            }
        }
        match std::fs::symlink_metadata(local) {
            Ok(m) if m.is_dir() => {
                return Err(Error::InvalidInput {
                    message: format!("{path} is a folder"),
                });
            }
            Ok(m) if m.file_type().is_symlink() => return Err(symlink_err(path)),
            _ => {}
        }
        match pre {
            Precondition::UnderLock(_) => return Err(no_server_lock(path)),
            Precondition::None => {
                std::fs::rename(&temp.path, local).map_err(|e| io_err(e, path))?;
                temp.disarm();
            }
            Precondition::IfMatch(want) => match self.current_version(path, local)? {
                Some(v) if &v == want => {
                    std::fs::rename(&temp.path, local).map_err(|e| io_err(e, path))?;
                    temp.disarm();
                }
                _ => {
                    return Err(Error::PreconditionFailed {
                        path: path.as_str().to_string(),
                    })
                }
            },
            Precondition::IfAbsent => {
                if std::fs::symlink_metadata(local).is_ok() {
                    return Err(Error::AlreadyExists {
                        path: path.as_str().to_string(),
                    });
                }
                // link(2) fails if the name exists, whoever created it in the meantime.
                match std::fs::hard_link(&temp.path, local) {
                    Ok(()) => {
                        // The temp name goes when `temp` is dropped (still armed).
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(Error::AlreadyExists {
                            path: path.as_str().to_string(),
                        });
                    }
                    Err(e) => {
                        // No hard links here (FAT, some SMB shares): fall back to the
                        // check above, made under our lock.
                        tracing::debug!(%path, error = %e, "hard link unavailable; renaming under the lock");
                        std::fs::rename(&temp.path, local).map_err(|e| io_err(e, path))?;
                        temp.disarm();
                    }
                }
            }
        }
        drop(temp);
        fsops::sync_dir(parent).map_err(|e| io_err(e, path))?;
        Ok(())
    }

    /// The delete, under the folder lock.
    pub(crate) fn delete_blocking(
        &self,
        path: &RemotePath,
        local: &Path,
        pre: &Precondition,
    ) -> Result<()> {
        let Some(parent) = local.parent() else {
            return Err(Error::InvalidInput {
                message: "cannot delete the root folder".into(),
            });
        };
        if !std::fs::metadata(parent).is_ok_and(|m| m.is_dir()) {
            // The folder is gone (or is a file), so is the file.
            if let Some(e) = self.placeholder_error(path, local) {
                return Err(e);
            }
            return match pre {
                Precondition::IfMatch(_) => Err(Error::PreconditionFailed {
                    path: path.as_str().to_string(),
                }),
                _ => Ok(()),
            };
        }
        let _lock = match self.lock_dir(parent, path) {
            Ok(l) => l,
            // The folder was deleted meanwhile: so was the file.
            Err(Error::NotFound { .. }) => {
                return match pre {
                    Precondition::IfMatch(_) => Err(Error::PreconditionFailed {
                        path: path.as_str().to_string(),
                    }),
                    _ => Ok(()),
                };
            }
            Err(e) => return Err(e),
        };
        let meta = std::fs::symlink_metadata(local);
        if meta.is_err() {
            if let Some(e) = self.placeholder_error(path, local) {
                return Err(e);
            }
        }
        if let Ok(m) = &meta {
            if m.is_dir() {
                if let Precondition::IfMatch(_) = pre {
                    return Err(Error::PreconditionFailed {
                        path: path.as_str().to_string(),
                    });
                }
                if let Precondition::IfAbsent = pre {
                    return Err(Error::AlreadyExists {
                        path: path.as_str().to_string(),
                    });
                }
                return self.remove_folder(path, local, parent);
            }
        }
        match pre {
            Precondition::UnderLock(_) => return Err(no_server_lock(path)),
            Precondition::None => {}
            Precondition::IfAbsent => {
                return if meta.is_ok() {
                    Err(Error::AlreadyExists {
                        path: path.as_str().to_string(),
                    })
                } else {
                    Ok(())
                };
            }
            Precondition::IfMatch(want) => match self.current_version(path, local)? {
                Some(v) if &v == want => {}
                _ => {
                    return Err(Error::PreconditionFailed {
                        path: path.as_str().to_string(),
                    })
                }
            },
        }
        match std::fs::remove_file(local) {
            Ok(()) => fsops::sync_dir(parent).map_err(|e| io_err(e, path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e, path)),
        }
    }

    /// Takes the lock of local folder `dir` for an operation on `path`, waiting at most
    /// [`FolderOptions::lock_timeout`].
    pub(crate) fn lock_dir(&self, dir: &Path, path: &RemotePath) -> Result<fsops::DirLock> {
        fsops::DirLock::acquire(dir, self.inner.options.lock_timeout).map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                Error::Transient {
                    message: format!(
                        "{path}: the folder is locked by another writer for more than {:?}",
                        self.inner.options.lock_timeout
                    ),
                    source: Some(Box::new(e)),
                }
            } else {
                io_err(e, path)
            }
        })
    }

    /// Removes the empty folder `local` (called under its parent's lock). "Empty" as
    /// listed: the folder's own lock file and temp files of dead writers (older than a
    /// minute) do not count and are removed with it; a temp file of a live or recent
    /// writer does count (a write may be in progress), as does any other entry.
    pub(crate) fn remove_folder(
        &self,
        path: &RemotePath,
        local: &Path,
        parent: &Path,
    ) -> Result<()> {
        let not_empty = || Error::InvalidInput {
            message: format!("{path}: folder is not empty"),
        };
        // Writers commit into `local` under its own lock: hold it while we look.
        let lock = self.lock_dir(local, path)?;
        // A temp file younger than this may belong to a writer that has created it but
        // not locked it yet: it counts as a write in progress.
        fsops::sweep_stale_temps(local, Duration::from_secs(60)).map_err(|e| io_err(e, path))?;
        let rd = std::fs::read_dir(local).map_err(|e| io_err(e, path))?;
        for ent in rd {
            let ent = ent.map_err(|e| io_err(e, path))?;
            if ent.file_name() != LOCK_NAME {
                return Err(not_empty());
            }
        }
        // Deleting the lock file while holding it: a writer that opened it before sees
        // an unlinked file, but such a writer always has a live temp file in `local`
        // first, which would have made the folder non-empty above.
        match std::fs::remove_file(local.join(LOCK_NAME)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e, path)),
        }
        drop(lock);
        match std::fs::remove_dir(local) {
            Ok(()) => fsops::sync_dir(parent).map_err(|e| io_err(e, path)),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Err(not_empty()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e, path)),
        }
    }

    /// Sweeps folder `dir` (local path) for stale temps if it was not swept lately.
    pub(crate) fn maybe_sweep(&self, dir: &Path) {
        let due = {
            let mut m = self
                .inner
                .last_sweep
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            match m.get(dir) {
                Some(t) if now.duration_since(*t) < SWEEP_EVERY => false,
                _ => {
                    if m.len() > 1024 {
                        m.clear();
                    }
                    m.insert(dir.to_path_buf(), now);
                    true
                }
            }
        };
        if due {
            if let Ok(n) = fsops::sweep_stale_temps(dir, self.inner.options.stale_temp_age) {
                if n > 0 {
                    tracing::info!(dir = %dir.display(), removed = n, "removed temp files of dead writers");
                }
            }
        }
    }

    pub(crate) fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FolderStorage) -> Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> {
        let me = self.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&me))
                .await
                .map_err(join_err)?
        }
    }
}
