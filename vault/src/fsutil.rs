//! Small file helpers: atomic replace, fsync of a directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A sibling temp path: `<dir>/.<name>.<tag>-<random>`.
pub(crate) fn temp_sibling(path: &Path, tag: &str) -> Result<PathBuf> {
    let mut r = [0u8; 6];
    crate::crypto::random_bytes(&mut r)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    Ok(path.with_file_name(format!(".{name}.{tag}-{}", hex::encode(r))))
}

/// Writes `bytes` to a temp file beside `path`, fsyncs it, renames it over `path`,
/// fsyncs the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path, "tmp")?;
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    rename_durable(&tmp, path)
}

/// Renames `from` to `to` (atomic on one file system) and fsyncs `to`'s directory.
pub(crate) fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    if let Err(e) = std::fs::rename(from, to) {
        let _ = std::fs::remove_file(from);
        return Err(Error::io(to, e));
    }
    sync_dir(to);
    Ok(())
}

/// Best-effort fsync of the directory holding `path` (makes a rename durable).
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// fsyncs a file.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}
