//! I/O failures as storage errors, and the file opening that refuses links.

use std::path::Path;
use syncfabric_core::{Error, RemotePath};

pub(crate) fn io_err(e: std::io::Error, path: &RemotePath) -> Error {
    if is_loop(&e) {
        return symlink_err(path);
    }
    Error::from_io(e, path.as_str())
}

/// The error for a symbolic link met on `path`.
pub(crate) fn symlink_err(path: &RemotePath) -> Error {
    Error::InvalidInput {
        message: format!(
            "{path} is or goes through a symbolic link; a folder remote never follows links \
             (replace the link with the real file or folder)"
        ),
    }
}

/// `ELOOP`: what `O_NOFOLLOW` gives for a link.
pub(crate) fn is_loop(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Opens the file `local` for reading, refusing a symbolic link (`O_NOFOLLOW`).
pub(crate) fn open_nofollow(local: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NOFOLLOW);
    o.open(local)
}

pub(crate) fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Transient {
        message: format!("blocking task failed: {e}"),
        source: None,
    }
}

/// A folder has no server to enforce a lock: `UnderLock` is refused, never ignored.
pub(crate) fn no_server_lock(path: &RemotePath) -> Error {
    Error::Unsupported {
        message: format!("{path}: a folder has no server-enforced lock"),
    }
}
