//! The bounds every download of the engine runs under (one download path, so they
//! hold for every provider): a hostile or broken remote can make a download fail,
//! never fill the disk or memory, nor hang a sync forever.
//!
//! * `vault.json`: at most [`VAULT_JSON_MAX_BYTES`], stopped while streaming.
//! * A database or an attachment file: at most the size its `stat` or listing
//!   announced plus a margin ([`SIZE_MARGIN_BYTES`] + 1/[`SIZE_MARGIN_DIVISOR`] of
//!   it: a commit landing between the `stat` and the read may have grown the file),
//!   and never more than the read itself announced.
//! * Every download: an overall deadline of [`DOWNLOAD_BASE_ALLOWANCE`] plus the
//!   announced size at [`DOWNLOAD_MIN_RATE`], over all its attempts (the HTTP
//!   timeouts count only time without progress, so a server sending one byte every
//!   20 s would never time out there).
//!
//! Going past a bound is [`super::SyncError::DownloadLimit`], naming the file and the
//! limit; it is not retried.

use std::time::Duration;

/// The largest remote `vault.json` downloaded: the vault crate's own limit
/// ([`syncfabric_vault::meta::MAX_VAULT_JSON_BYTES`], 1 MiB).
pub const VAULT_JSON_MAX_BYTES: u64 = syncfabric_vault::meta::MAX_VAULT_JSON_BYTES as u64;

/// Fixed part of the margin allowed past an announced size: 16 MiB.
pub const SIZE_MARGIN_BYTES: u64 = 16 * 1024 * 1024;

/// Proportional part of that margin: 1/8 (12.5 %) of the announced size.
pub const SIZE_MARGIN_DIVISOR: u64 = 8;

/// Time every download may take whatever its size: 2 minutes.
pub const DOWNLOAD_BASE_ALLOWANCE: Duration = Duration::from_secs(120);

/// The slowest average transfer rate accepted beyond the base allowance: 32 KiB/s.
pub const DOWNLOAD_MIN_RATE: u64 = 32 * 1024;

/// The bounds of one download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadBound {
    /// Bytes after which the download is stopped.
    pub max_bytes: u64,
    /// Time after which the download (all its attempts) is stopped.
    pub deadline: Duration,
    /// How `max_bytes` was set, for the error message.
    pub(crate) why: String,
}

impl DownloadBound {
    /// The bounds of a `vault.json` download.
    pub fn vault_json() -> DownloadBound {
        DownloadBound {
            max_bytes: VAULT_JSON_MAX_BYTES,
            deadline: deadline_for(VAULT_JSON_MAX_BYTES),
            why: format!(
                "the limit for vault.json (VAULT_JSON_MAX_BYTES = {VAULT_JSON_MAX_BYTES})"
            ),
        }
    }

    /// The bounds of a file whose `stat` or listing announced `size` bytes.
    pub fn announced(size: u64) -> DownloadBound {
        let max = size
            .saturating_add(size / SIZE_MARGIN_DIVISOR)
            .saturating_add(SIZE_MARGIN_BYTES);
        DownloadBound {
            max_bytes: max,
            deadline: deadline_for(size),
            why: format!(
                "its announced size of {size} bytes plus the margin (SIZE_MARGIN_BYTES = \
                 {SIZE_MARGIN_BYTES} + 1/{SIZE_MARGIN_DIVISOR})"
            ),
        }
    }

    /// The message for a download stopped past `max_bytes`.
    pub(crate) fn too_large(&self) -> String {
        format!("it is larger than {} bytes, {}", self.max_bytes, self.why)
    }

    /// The message for a download stopped at its deadline.
    pub(crate) fn too_slow(&self) -> String {
        format!(
            "it did not finish within {} s (DOWNLOAD_BASE_ALLOWANCE = {} s + its size at \
             DOWNLOAD_MIN_RATE = {} bytes/s)",
            self.deadline.as_secs(),
            DOWNLOAD_BASE_ALLOWANCE.as_secs(),
            DOWNLOAD_MIN_RATE
        )
    }
}

/// [`DOWNLOAD_BASE_ALLOWANCE`] + `size` / [`DOWNLOAD_MIN_RATE`], saturating.
fn deadline_for(size: u64) -> Duration {
    DOWNLOAD_BASE_ALLOWANCE.saturating_add(Duration::from_secs(size / DOWNLOAD_MIN_RATE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_grow_with_the_announced_size_and_never_overflow() {
        let b = DownloadBound::announced(8 * 1024 * 1024);
        assert_eq!(b.max_bytes, 9 * 1024 * 1024 + SIZE_MARGIN_BYTES);
        assert_eq!(
            b.deadline,
            DOWNLOAD_BASE_ALLOWANCE + Duration::from_secs(256)
        );
        let huge = DownloadBound::announced(u64::MAX);
        assert_eq!(huge.max_bytes, u64::MAX);
        assert_eq!(DownloadBound::vault_json().max_bytes, 1024 * 1024);
    }
}
