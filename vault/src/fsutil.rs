//! Small file helpers: atomic replace, fsync of a directory, private files.
//!
//! Every file this crate writes is 0600 whatever the umask: the database, `vault.json`
//! and the attachment files are made through [`create_private`] or [`write_atomic`], or
//! set with [`make_private`] after a copy (`fs::copy` would copy its source's mode).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Creates `dir` and its missing parents, each folder it makes owner-only (0700 on
/// Unix, whatever the umask); folders that exist keep their mode. For a vault's folder,
/// which holds secrets.
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// A sibling temp path: `<dir>/.<name>.<tag>-<random>`.
pub(crate) fn temp_sibling(path: &Path, tag: &str) -> Result<PathBuf> {
    let mut r = [0u8; 6];
    crate::crypto::random_bytes(&mut r)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    Ok(path.with_file_name(format!(".{name}.{tag}-{}", hex::encode(r))))
}

/// Creates the new, empty file `path` (`O_EXCL`: never through an existing name or
/// link), mode 0600.
pub(crate) fn create_private(path: &Path) -> Result<std::fs::File> {
    private_new(path).map_err(|e| Error::io(path, e))
}

fn private_new(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Sets the file `path` to mode 0600 (Unix; elsewhere nothing).
pub(crate) fn make_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `bytes` to a new 0600 temp file beside `path`, fsyncs it, renames it over
/// `path`, fsyncs the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// [`write_atomic`] with the content written by `fill` (streamed, never held whole).
pub(crate) fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_sibling(path, "tmp")?;
    let res = (|| {
        let mut f = private_new(&tmp)?;
        fill(&mut f)?;
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
