//! [`FolderOptions`] and the provider's constants.

use std::time::Duration;

/// Size of the chunks a read yields and a write copies.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// Default age at which a temp file whose writer is gone is deleted by the automatic
/// sweep ([`FolderOptions::stale_temp_age`]).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(15 * 60);

/// How often (at most) one folder is swept automatically.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

/// Settings of a [`FolderStorage`](crate::FolderStorage). `Default` suits a local disk.
#[derive(Clone, Debug)]
pub struct FolderOptions {
    /// Cache content versions keyed by file identity and timestamps (see [`version`](crate::version)).
    /// Default `true`. Turn off on a network share whose server clock may be more than
    /// [`version::RACY_SLACK`](crate::version::RACY_SLACK) away from this machine's.
    pub hash_cache: bool,
    /// `Some(interval)`: [`Storage::watch`](syncfabric_core::Storage::watch) polls every `interval` (comparing contents)
    /// instead of using the OS's notification API. Needed on network shares, where
    /// inotify does not see other machines' changes. Default `None`.
    pub poll_interval: Option<Duration>,
    /// How long the change feed waits for a burst of events to settle before reporting
    /// it. Default 100 ms.
    pub debounce: Duration,
    /// Treat `.name.icloud` files as iCloud placeholders of `name` (see [`icloud`](crate::icloud)).
    /// Default `true` (such names do not occur outside iCloud Drive).
    pub icloud_placeholders: bool,
    /// How long a write or delete waits for the folder's lock before failing with
    /// [`Error::Transient`](syncfabric_core::Error::Transient) (retryable). A lock is only held for the short
    /// check-and-rename step, and the kernel releases it when its holder dies, so
    /// waiting this long means a live holder is stuck (e.g. on a dead network share).
    /// Default 30 s.
    pub lock_timeout: Duration,
    /// Temp files whose writer is gone are deleted by later writes into their folder
    /// once they are this old (the check that the writer is gone comes first, on Unix
    /// by its lock). Default [`STALE_TEMP_AGE`].
    pub stale_temp_age: Duration,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            hash_cache: true,
            poll_interval: None,
            debounce: Duration::from_millis(100),
            icloud_placeholders: true,
            lock_timeout: Duration::from_secs(30),
            stale_temp_age: STALE_TEMP_AGE,
        }
    }
}

impl FolderOptions {
    /// Settings for a network share: polling change feed every `interval`, no
    /// timestamp-based version cache.
    pub fn network_share(interval: Duration) -> Self {
        FolderOptions {
            hash_cache: false,
            poll_interval: Some(interval),
            ..Default::default()
        }
    }
}
