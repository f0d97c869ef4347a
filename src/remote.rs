//! Opening a storage from a remote URL, through the core [`Registry`].
//!
//! | URL | storage |
//! |---|---|
//! | `folder:///mnt/nas/Enpass`, `file:///…`, or a plain absolute path | [`syncfabric_folder::FolderStorage`] |
//! | `icloud:` / `icloud:/Enpass` | the iCloud Drive folder (macOS) |
//! | `webdav+https://user@host/path`, `webdav+http://…`, `nextcloud+https://user@host/folder` | [`syncfabric_webdav::WebDavStorage`] (feature `webdav`) |
//! | `onedrive:/Apps/Enpass`, `sharepoint://host/sites/Team/Documents/path` | OneDrive / SharePoint through Microsoft Graph (feature `onedrive`), as a logged-in account: [`open_with_bearer`] |
//!
//! WebDAV passwords are never put in a URL: [`open_with_password`] takes one (the CLI
//! reads it from `$SYNCFABRIC_REMOTE_PASSWORD` or a prompt).
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
    let mut r = Registry::new();
    syncfabric_folder::registry::register(&r);
    #[cfg(feature = "webdav")]
    syncfabric_webdav::register(&r);
    register_onedrive(&mut r);
    r
}

/// OneDrive / SharePoint (feature `onedrive`, on by default).
fn register_onedrive(r: &mut Registry) {
    #[cfg(feature = "onedrive")]
    syncfabric_onedrive::register(r);
    let _ = r;
}

/// The OAuth provider whose login opening `url` needs (`"onedrive"`, `"sharepoint"`),
/// or `None` for storages without accounts.
pub fn account_provider(url: &str) -> Option<&'static str> {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    match scheme.split('+').next().unwrap_or("") {
        "onedrive" => Some("onedrive"),
        "sharepoint" => Some("sharepoint"),
        _ => None,
    }
}

/// Opens a cloud `url` acting as the account behind `bearer` (an
/// `syncfabric_auth::OAuthBearer` in the CLI).
pub async fn open_with_bearer(
    url: &str,
    bearer: Arc<dyn syncfabric_core::auth::BearerAuth>,
) -> Result<Arc<dyn Storage>, Error> {
    let opts = syncfabric_core::registry::OpenOptions::default().with_bearer(bearer);
    registry().open_with(url, &opts).await
}

/// Whether opening `url` needs a password (WebDAV / Nextcloud).
pub fn needs_password(url: &str) -> bool {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    scheme.starts_with("webdav") || scheme.starts_with("nextcloud")
}

/// Opens `url`, handing `password` (if any) to the provider for the URL's user
/// through an in-memory token store — it is never written anywhere.
pub async fn open_with_password(
    url: &str,
    password: Option<&str>,
) -> Result<Arc<dyn Storage>, Error> {
    let Some(pw) = password else {
        return open(url).await;
    };
    open_with_password_and(
        url,
        Some(pw),
        syncfabric_core::registry::OpenOptions::default(),
    )
    .await
}

/// [`open_with_password`] with other options for the provider (e.g. a retry policy
/// scaled to a test server on loopback).
pub async fn open_with_password_and(
    url: &str,
    password: Option<&str>,
    opts: syncfabric_core::registry::OpenOptions,
) -> Result<Arc<dyn Storage>, Error> {
    use syncfabric_core::auth::{MemoryTokenStore, SecretToken, TokenStore};
    use syncfabric_core::registry::StorageUrl;
    let Some(pw) = password else {
        return registry().open_with(url, &opts).await;
    };
    let parsed = StorageUrl::parse(url)?;
    let user = parsed.username().unwrap_or_default();
    let hostport = parsed
        .authority()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .to_string();
    let tokens = MemoryTokenStore::default();
    tokens
        .put(&format!("webdav:{user}@{hostport}"), SecretToken::new(pw))
        .await?;
    let opts = opts.with_tokens(Arc::new(tokens));
    registry().open_with(url, &opts).await
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
    /// Not confirmed, but the server's own folder lock (WebDAV `LOCK`) was: the engine
    /// commits under it, and the server refuses any write of a lock holder whose lock
    /// has passed on.
    ServerLock,
    /// Neither confirmed: the engine serialises commits with the lease lock.
    UseLock,
}

impl Trust {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Truthful => "truthful",
            Trust::ServerLock => "server-lock",
            Trust::UseLock => "lease",
        }
    }
    /// Parses the config-file spelling. `lock` is how versions before server locks
    /// wrote [`Trust::UseLock`]; [`current_trust`] probes such a remote again.
    pub fn parse(s: &str) -> Option<Trust> {
        match s {
            "truthful" => Some(Trust::Truthful),
            "server-lock" => Some(Trust::ServerLock),
            "lease" | "lock" => Some(Trust::UseLock),
            _ => None,
        }
    }
}

/// Runs the honesty probe in a folder of its own, `.syncfabric-probe-<random>/` of
/// `storage`, and removes that folder after (where the storage can remove folders:
/// nothing of the probe stays on the server).
pub async fn probe(storage: &dyn Storage) -> Result<(Trust, ProbeReport), Error> {
    let dir = RemotePath::parse(&format!(".syncfabric-probe-{:016x}", random_u64()))?;
    let report = syncfabric_core::probe::probe(storage, &dir).await;
    match storage.remove_empty_dir(&dir).await {
        Ok(()) | Err(Error::Unsupported { .. }) => {}
        Err(e) => tracing::warn!("could not remove the probe's folder {dir}: {e}"),
    }
    let report = report?;
    let trust = if report.effective.has_truthful_cas() {
        Trust::Truthful
    } else if report.effective.server_lock {
        Trust::ServerLock
    } else {
        Trust::UseLock
    };
    Ok((trust, report))
}

/// A random number for a scratch folder's name (the OS's randomness through OpenSSL).
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    match openssl::rand::rand_bytes(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        // Only the name's uniqueness is at stake: fall back to the clock.
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    }
}

/// The verdict to sync with, from the config's spelling `recorded`: that verdict, or a
/// fresh probe when there is none, or when it is the `lock` of versions that had no
/// server locks and the provider now claims one (every device of a remote must commit
/// under the same kind of lock: a lease and a server lock do not exclude each other).
/// The `bool` says the probe ran: record the verdict's [`Trust::as_str`].
pub async fn current_trust(
    storage: &dyn Storage,
    recorded: Option<&str>,
) -> Result<(Trust, bool), Error> {
    match recorded.and_then(Trust::parse) {
        Some(Trust::UseLock) if recorded == Some("lock") && storage.capabilities().server_lock => {
            Ok((probe(storage).await?.0, true))
        }
        Some(t) => Ok((t, false)),
        None => Ok((probe(storage).await?.0, true)),
    }
}

/// The storage as the engine should see it, given the probe's verdict.
pub fn wrap(storage: Arc<dyn Storage>, trust: Trust) -> Arc<dyn Storage> {
    match trust {
        Trust::Truthful => storage,
        Trust::ServerLock | Trust::UseLock => {
            let mut caps = storage.capabilities();
            caps.if_match = false;
            caps.if_absent = false;
            caps.conditional_delete = false;
            caps.server_lock &= trust == Trust::ServerLock;
            Arc::new(ProbedStorage::new(storage, caps))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncfabric_conformance::doubles::WithCapabilities;
    use syncfabric_conformance::MemoryStorage;

    /// The in-memory reference store as Apache looks after the probe: no truthful CAS,
    /// an enforced folder lock.
    fn like_apache() -> WithCapabilities<MemoryStorage> {
        let inner = MemoryStorage::new();
        let mut caps = inner.capabilities();
        caps.if_match = false;
        caps.if_absent = false;
        caps.conditional_delete = false;
        WithCapabilities { inner, caps }
    }

    #[tokio::test]
    async fn old_lock_verdicts_are_probed_again_once_a_server_lock_is_claimed() {
        let s = like_apache();
        assert_eq!(
            current_trust(&s, None).await.unwrap(),
            (Trust::ServerLock, true)
        );
        // Written by a version without server locks: probed again.
        assert_eq!(
            current_trust(&s, Some("lock")).await.unwrap(),
            (Trust::ServerLock, true)
        );
        // Recorded verdicts are kept as they are.
        for t in [Trust::Truthful, Trust::ServerLock, Trust::UseLock] {
            assert_eq!(Trust::parse(t.as_str()), Some(t));
            assert_eq!(
                current_trust(&s, Some(t.as_str())).await.unwrap(),
                (t, false)
            );
        }
        // An old verdict on a provider without a server lock stays the lease.
        let mut caps = s.caps.clone();
        caps.server_lock = false;
        let no_lock = WithCapabilities {
            inner: s.inner.clone(),
            caps,
        };
        assert_eq!(
            current_trust(&no_lock, Some("lock")).await.unwrap(),
            (Trust::UseLock, false)
        );
        // The engine sees only the lock the verdict names.
        let wrapped = wrap(Arc::new(s), Trust::UseLock);
        assert!(!wrapped.capabilities().server_lock);
    }
}
