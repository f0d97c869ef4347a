//! Opening a storage from a remote URL, through the core [`Registry`].
//!
//! | URL | storage |
//! |---|---|
//! | `folder:///mnt/nas/Enpass`, `file:///…`, or a plain absolute path | [`syncfabric_folder::FolderStorage`] |
//! | `icloud:` / `icloud:/Enpass` | the iCloud Drive folder (macOS) |
//!
//! More schemes (WebDAV, the clouds, the Wi-Fi server) plug in by registering a
//! factory in [`registry`]. An app can add its own with [`Registry::register`].
//!
//! Whether a storage's conditional writes can be trusted is decided by the honesty
//! probe ([`probe`]); [`Trust`] records the verdict so that a sync does not pay for a
//! probe every time, and [`wrap`] hands the engine a storage that claims only what
//! was confirmed (so the engine knows when to use the lease lock).

use std::sync::Arc;
use syncfabric_core::probe::{ProbeReport, ProbedStorage};
use syncfabric_core::registry::Registry;
use syncfabric_core::{Error, RemotePath, Storage};

/// A registry with every built-in provider.
pub fn registry() -> Registry {
    let r = Registry::new();
    syncfabric_folder::registry::register(&r);
    r
}

/// Opens the storage a remote URL names (a plain absolute path means a folder).
/// Unknown schemes are [`Error::InvalidInput`].
pub async fn open(url: &str) -> Result<Arc<dyn Storage>, Error> {
    if url.starts_with('/') {
        return registry().open(&format!("folder://{url}")).await;
    }
    registry().open(url).await
}

/// What the honesty probe found about a remote's conditional writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// `IfMatch` and `IfAbsent` were confirmed: the engine commits with them.
    Truthful,
    /// Not confirmed: the engine serialises commits with the lease lock.
    UseLock,
}

impl Trust {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Truthful => "truthful",
            Trust::UseLock => "lock",
        }
    }
    /// Parses the config-file spelling.
    pub fn parse(s: &str) -> Option<Trust> {
        match s {
            "truthful" => Some(Trust::Truthful),
            "lock" => Some(Trust::UseLock),
            _ => None,
        }
    }
}

/// Runs the honesty probe in `.syncfabric-probe/` of `storage` (cleaned up after).
pub async fn probe(storage: &dyn Storage) -> Result<(Trust, ProbeReport), Error> {
    let report =
        syncfabric_core::probe::probe(storage, &RemotePath::parse(".syncfabric-probe")?).await?;
    let trust = if report.effective.has_truthful_cas() {
        Trust::Truthful
    } else {
        Trust::UseLock
    };
    Ok((trust, report))
}

/// The storage as the engine should see it, given the probe's verdict.
pub fn wrap(storage: Arc<dyn Storage>, trust: Trust) -> Arc<dyn Storage> {
    match trust {
        Trust::Truthful => storage,
        Trust::UseLock => {
            let mut caps = storage.capabilities();
            caps.if_match = false;
            caps.if_absent = false;
            caps.conditional_delete = false;
            Arc::new(ProbedStorage::new(storage, caps))
        }
    }
}
