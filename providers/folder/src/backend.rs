//! [`FolderStorage`]: making one, and its [`Storage`] implementation.

use crate::config::*;
use crate::error::*;
use crate::{conflict, fsops, icloud, version, watch, ConflictCopy};
use crate::{LOCK_NAME, TEMP_PREFIX};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::io::Seek;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use syncfabric_core::{
    Body, Capabilities, ChangeFeed, Download, Entry, EntryKind, Error, Precondition, RemotePath,
    Result, Storage,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) options: FolderOptions,
    pub(crate) cache: version::VersionCache,
    pub(crate) last_sweep: Mutex<HashMap<PathBuf, Instant>>,
}

/// A folder as a [`Storage`]. Cheap to clone (shared state behind an `Arc`); clones
/// share the version cache.
#[derive(Clone, Debug)]
pub struct FolderStorage {
    pub(crate) inner: Arc<Inner>,
}

impl FolderStorage {
    /// A storage rooted at folder `root`, with default options. The folder must exist
    /// and be a folder: [`Error::NotFound`] / [`Error::InvalidInput`] otherwise.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        Self::with_options(root, FolderOptions::default())
    }

    /// A storage rooted at `root` with `options`. Same checks as [`FolderStorage::new`].
    pub fn with_options(root: impl Into<PathBuf>, options: FolderOptions) -> Result<Self> {
        let root = root.into();
        let shown = root.display().to_string();
        let meta = std::fs::metadata(&root).map_err(|e| Error::from_io(e, &shown))?;
        if !meta.is_dir() {
            return Err(Error::InvalidInput {
                message: format!("{shown} is not a folder"),
            });
        }
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        Ok(FolderStorage {
            inner: Arc::new(Inner {
                root,
                cache: version::VersionCache::new(options.hash_cache),
                options,
                last_sweep: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// iCloud Drive on macOS: `~/Library/Mobile Documents/com~apple~CloudDocs/<subfolder>`
    /// (created if missing, so `icloud("Enpass")` works on a fresh account). Fails with
    /// [`Error::NotFound`] if iCloud Drive itself is not there (not macOS, or iCloud
    /// Drive off). Elsewhere use [`FolderStorage::icloud_at`].
    pub fn icloud(subfolder: &str) -> Result<Self> {
        let base = icloud::icloud_drive_root().ok_or_else(|| Error::InvalidInput {
            message: "HOME is not set: cannot find iCloud Drive".into(),
        })?;
        Self::icloud_at(base, subfolder)
    }

    /// iCloud Drive whose `com~apple~CloudDocs` folder is at `drive_root` (for tests,
    /// or an unusual home): roots the storage at `drive_root/<subfolder>`, creating the
    /// subfolder if needed; `drive_root` itself must exist. Placeholders are on.
    pub fn icloud_at(drive_root: impl Into<PathBuf>, subfolder: &str) -> Result<Self> {
        let drive_root = drive_root.into();
        let shown = drive_root.display().to_string();
        std::fs::metadata(&drive_root).map_err(|e| Error::from_io(e, &shown))?;
        let sub = RemotePath::parse(subfolder)?;
        let mut dir = drive_root;
        for s in sub.segments() {
            dir.push(s);
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::from_io(e, &dir.display().to_string()))?;
        Self::with_options(
            dir,
            FolderOptions {
                icloud_placeholders: true,
                ..Default::default()
            },
        )
    }

    /// The folder this storage is rooted at (canonicalised).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The options in force.
    pub fn options(&self) -> &FolderOptions {
        &self.inner.options
    }

    /// The local path of `p`.
    pub fn local_path(&self, p: &RemotePath) -> PathBuf {
        let mut out = self.inner.root.clone();
        for s in p.segments() {
            out.push(s);
        }
        out
    }

    /// Deletes temp files (`.syncfabric-tmp-*`) in folder `dir` whose writer is gone
    /// (their lock is free: the process that made them died or crashed) and that were
    /// last modified at least `older_than` ago. Returns how many were deleted. A temp
    /// file of a live writer is never touched, whatever its age.
    pub async fn sweep_temp_files(&self, dir: &RemotePath, older_than: Duration) -> Result<usize> {
        let local = self.local_path(dir);
        let d = dir.clone();
        tokio::task::spawn_blocking(move || fsops::sweep_stale_temps(&local, older_than))
            .await
            .map_err(join_err)?
            .map_err(|e| io_err(e, &d))
    }

    /// The names (storage paths) in folder `dir` that exist only as iCloud placeholders:
    /// in iCloud, not downloaded to this device yet. Empty unless
    /// [`FolderOptions::icloud_placeholders`] is on.
    pub async fn placeholders(&self, dir: &RemotePath) -> Result<Vec<RemotePath>> {
        if !self.inner.options.icloud_placeholders {
            return Ok(Vec::new());
        }
        let local = self.local_path(dir);
        let mut rd = tokio::fs::read_dir(&local)
            .await
            .map_err(|e| io_err(e, dir))?;
        let mut out = Vec::new();
        while let Some(ent) = rd.next_entry().await.map_err(|e| io_err(e, dir))? {
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(target) = icloud::placeholder_target(name) {
                if tokio::fs::symlink_metadata(local.join(target))
                    .await
                    .is_err()
                {
                    if let Ok(p) = dir.join(target) {
                        out.push(p);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The conflict copies of file `file` that desktop sync clients left beside it
    /// (see [`conflict`]). Lists the file's folder; a missing folder gives none.
    pub async fn conflict_copies(&self, file: &RemotePath) -> Result<Vec<ConflictCopy>> {
        let parent = file.parent().unwrap_or_default();
        let listing = match self.list(&parent).await {
            Ok(l) => l,
            Err(Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(conflict::conflict_copies(&listing, file))
    }
}

/// The state of one streaming read.
struct ReadState {
    file: tokio::fs::File,
    shown: String,
    /// Size and mtime when the read was opened (and its version computed).
    size: u64,
    modified: Option<std::time::SystemTime>,
    total: u64,
    done: bool,
}

impl ReadState {
    /// At the end of the stream: the bytes read must be the version announced. Our own
    /// writers replace files by rename, so an open handle never changes; another
    /// program rewriting the file in place during the read is caught here (size or
    /// mtime changed) and reported as a retryable error instead of a torn download.
    async fn check_unchanged(&self) -> Result<()> {
        let meta = self
            .file
            .metadata()
            .await
            .map_err(|e| Error::from_io(e, &self.shown))?;
        if self.total != self.size
            || meta.len() != self.size
            || meta.modified().ok() != self.modified
        {
            return Err(Error::Transient {
                message: format!(
                    "{}: changed in place while it was read; read it again",
                    self.shown
                ),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Storage for FolderStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            if_match: true,
            if_absent: true,
            conditional_delete: true,
            max_single_write: None,
            chunked_upload: false,
            change_feed: ChangeFeed::Native,
            read_after_write: true,
            server_clock: false,
            server_lock: false,
            strong_versions: true,
            spaced_writes: false,
        }
    }

    fn describe(&self) -> String {
        match self.inner.options.poll_interval {
            Some(_) => format!("folder {} (polled)", self.inner.root.display()),
            None => format!("folder {}", self.inner.root.display()),
        }
    }

    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        let p = path.clone();
        self.blocking(move |me| me.stat_blocking(&p, &me.local_path(&p)))
            .await
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let d = dir.clone();
        self.blocking(move |me| {
            let local = me.local_path(&d);
            me.check_no_links(&d)?;
            let rd = match std::fs::read_dir(&local) {
                Ok(rd) => rd,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Err(Error::NotFound {
                        path: d.as_str().to_string(),
                    });
                }
                Err(e) => return Err(io_err(e, &d)),
            };
            let mut out = Vec::new();
            for ent in rd {
                let ent = ent.map_err(|e| io_err(e, &d))?;
                let name = ent.file_name();
                let Some(name) = name.to_str() else {
                    tracing::warn!(dir = %d, "skipping a name that is not UTF-8");
                    continue;
                };
                if fsops::is_internal_name(name) {
                    continue;
                }
                if me.inner.options.icloud_placeholders
                    && icloud::placeholder_target(name).is_some()
                {
                    continue;
                }
                let Ok(child) = d.join(name) else {
                    tracing::warn!(dir = %d, "skipping a name that is not a valid storage path");
                    continue;
                };
                if child.file_name() != Some(name) {
                    // "." / ".." style names cannot come from read_dir, but be strict.
                    continue;
                }
                if ent.file_type().is_ok_and(|t| t.is_symlink()) {
                    tracing::warn!(path = %child, "skipping a symbolic link (never followed)");
                    continue;
                }
                // Vanished between read_dir and stat: not listed.
                if let Some(e) = me.stat_blocking(&child, &ent.path()).ok().flatten() {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read(&self, path: &RemotePath) -> Result<Download> {
        let p = path.clone();
        let (file, version, size, modified) = self
            .blocking(move |me| {
                let local = me.local_path(&p);
                if p.segments().any(fsops::is_internal_name) {
                    return Err(Error::NotFound {
                        path: p.as_str().to_string(),
                    });
                }
                me.check_no_links(&p)?;
                let mut f = match open_nofollow(&local) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(me.placeholder_error(&p, &local).unwrap_or_else(|| {
                            Error::NotFound {
                                path: p.as_str().to_string(),
                            }
                        }));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                        return Err(Error::NotFound {
                            path: p.as_str().to_string(),
                        });
                    }
                    Err(e) => return Err(io_err(e, &p)),
                };
                let meta = f.metadata().map_err(|e| io_err(e, &p))?;
                if meta.is_dir() {
                    return Err(Error::InvalidInput {
                        message: format!("{p} is a folder"),
                    });
                }
                // The version of exactly the bytes this handle will read: our writers
                // replace files by rename, so an open handle keeps its content.
                let v = me
                    .inner
                    .cache
                    .version_of(&local, &f)
                    .map_err(|e| io_err(e, &p))?;
                f.rewind().map_err(|e| io_err(e, &p))?;
                Ok((f, v, meta.len(), meta.modified().ok()))
            })
            .await?;
        let file = tokio::fs::File::from_std(file);
        let state = ReadState {
            file,
            shown: path.as_str().to_string(),
            size,
            modified,
            total: 0,
            done: false,
        };
        let stream = futures_util::stream::try_unfold(state, |mut st| async move {
            if st.done {
                return Ok(None);
            }
            let mut buf = BytesMut::zeroed(CHUNK_SIZE);
            let mut filled = 0;
            let mut eof = false;
            while filled < CHUNK_SIZE {
                let n = st
                    .file
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|e| Error::from_io(e, &st.shown))?;
                if n == 0 {
                    eof = true;
                    break;
                }
                filled += n;
            }
            st.total += filled as u64;
            if eof {
                st.check_unchanged().await?;
                st.done = true;
            }
            if filled == 0 {
                return Ok(None);
            }
            buf.truncate(filled);
            Ok(Some((Bytes::from(buf), st)))
        });
        Ok(Download {
            version: Some(version),
            size: Some(size),
            stream: Box::pin(stream),
        })
    }

    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        Self::check_writable(path)?;
        let p = path.clone();
        self.blocking(move |me| me.check_no_links(&p)).await?;
        let local = self.local_path(path);
        let parent = local
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.inner.root.clone());
        let parent_path = path.parent().unwrap_or_default();
        // A concurrent delete of the (then empty) parent folder can remove it between
        // our create_dir_all and the temp file's creation: make it again and retry.
        let mut attempt = 0;
        let (temp, writer) = loop {
            attempt += 1;
            if let Err(e) = tokio::fs::create_dir_all(&parent).await {
                match e.kind() {
                    std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists => {
                        // create_dir_all reports AlreadyExists when a concurrent delete
                        // removes the folder between its mkdir and its check: look again.
                        match tokio::fs::metadata(&parent).await {
                            Ok(m) if m.is_dir() => {}
                            Err(_) if attempt < 5 => continue,
                            _ => {
                                return Err(Error::InvalidInput {
                                    message: format!("{path}: a parent folder is a file"),
                                })
                            }
                        }
                    }
                    _ => return Err(io_err(e, &parent_path)),
                }
            }
            let pdir = parent.clone();
            match tokio::task::spawn_blocking(move || fsops::TempFile::create(&pdir))
                .await
                .map_err(join_err)?
            {
                Ok(t) => break t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 5 => continue,
                Err(e) => return Err(io_err(e, path)),
            }
        };
        // From here on, `temp` deletes the temp file if anything fails.
        let mut out = tokio::fs::File::from_std(writer);
        let mut src = body.open().await?;
        let mut hasher = version::StreamHasher::new();
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut written: u64 = 0;
        loop {
            let n = src.read(&mut buf).await.map_err(|e| io_err(e, path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .await
                .map_err(|e| io_err(e, path))?;
            written += n as u64;
        }
        if written != body.len() {
            return Err(Error::InvalidInput {
                message: format!(
                    "{path}: body changed while it was written ({} bytes expected, {written} read)",
                    body.len()
                ),
            });
        }
        out.flush().await.map_err(|e| io_err(e, path))?;
        out.sync_all().await.map_err(|e| io_err(e, path))?;
        drop(out);
        let version = hasher.finish();
        let p = path.clone();
        let l = local.clone();
        let pre2 = pre.clone();
        self.blocking(move |me| {
            me.commit_blocking(&p, &l, temp, &pre2)?;
            if let Some(dir) = l.parent() {
                me.maybe_sweep(dir);
            }
            Ok(())
        })
        .await?;
        let modified = tokio::fs::metadata(&local)
            .await
            .ok()
            .and_then(|m| m.modified().ok());
        Ok(Entry {
            path: path.clone(),
            kind: EntryKind::File,
            size: written,
            modified,
            version: Some(version),
        })
    }

    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        Self::check_writable(path)?;
        let p = path.clone();
        self.blocking(move |me| me.delete_blocking(&p, &me.local_path(&p), &pre))
            .await
    }

    /// Through [`delete`](Storage::delete), which removes an empty folder under the
    /// folder locks (its own lock file and dead writers' temp files do not count).
    async fn remove_empty_dir(&self, path: &RemotePath) -> Result<()> {
        match self.stat(path).await? {
            Some(e) if e.kind != syncfabric_core::EntryKind::Dir => Err(Error::InvalidInput {
                message: format!("{path}: not a folder"),
            }),
            _ => self.delete(path, Precondition::None).await,
        }
    }

    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        if path.segments().any(fsops::is_internal_name) {
            return Err(Error::InvalidInput {
                message: format!("{path}: {TEMP_PREFIX}* and {LOCK_NAME} are reserved names"),
            });
        }
        let p = path.clone();
        self.blocking(move |me| me.check_no_links(&p)).await?;
        let local = self.local_path(path);
        match tokio::fs::create_dir_all(&local).await {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists
                ) =>
            {
                Err(Error::AlreadyExists {
                    path: path.as_str().to_string(),
                })
            }
            Err(e) => Err(io_err(e, path)),
        }
    }

    async fn watch(&self, dir: &RemotePath) -> Result<syncfabric_core::ChangeStream> {
        watch::watch(self.clone(), dir.clone()).await
    }
}
