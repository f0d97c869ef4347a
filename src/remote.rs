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
//! probe ([`probe`]); a [`Verdict`] records it so that a sync does not pay for a
//! probe every time, and [`connect`] (through [`wrap`]) hands the engine a storage
//! that claims only what was confirmed (so the engine knows when to lock, and whether
//! it may compare the storage's versions at all).

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
    Lease,
}

impl Trust {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Truthful => "truthful",
            Trust::ServerLock => "server-lock",
            Trust::Lease => "lease",
        }
    }
    /// Parses the config-file spelling. `lock` is how versions before server locks
    /// wrote [`Trust::Lease`]; [`connect`] probes such a remote again.
    pub fn parse(s: &str) -> Option<Trust> {
        match s {
            "truthful" => Some(Trust::Truthful),
            "server-lock" => Some(Trust::ServerLock),
            "lease" | "lock" => Some(Trust::Lease),
            _ => None,
        }
    }
}

/// Everything the honesty probe decided about a remote, as the config records it
/// (`cas` and `versions` of a `[[remote]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// How commits are protected.
    pub trust: Trust,
    /// Every write gave a new version. When false, the engine tells commits apart by
    /// its own commit marker ([`crate::engine::marker`]), never by the storage's
    /// versions.
    pub strong_versions: bool,
}

impl Verdict {
    /// The verdict a probe report proves.
    pub fn from_report(report: &ProbeReport) -> Verdict {
        let e = &report.effective;
        let trust = if e.has_truthful_cas() && e.strong_versions {
            Trust::Truthful
        } else if e.server_lock {
            Trust::ServerLock
        } else {
            Trust::Lease
        };
        Verdict {
            trust,
            strong_versions: e.strong_versions,
        }
    }

    /// The config spelling of [`Verdict::strong_versions`].
    pub fn versions_str(&self) -> &'static str {
        if self.strong_versions {
            "strong"
        } else {
            "repeating"
        }
    }

    /// A verdict recorded as `cas` and `versions`; `None` when either is missing or
    /// unknown (a config written before the probe measured versions), or when it is the
    /// old `lock` spelling and `storage` now claims a server lock (every device of a
    /// remote must commit under the same kind of lock: a lease and a server lock do not
    /// exclude each other). `None` means: probe again.
    pub fn recorded(
        storage: &dyn Storage,
        cas: Option<&str>,
        versions: Option<&str>,
    ) -> Option<Verdict> {
        let trust = Trust::parse(cas?)?;
        if cas == Some("lock") && storage.capabilities().server_lock {
            return None;
        }
        let strong_versions = match versions? {
            "strong" => true,
            // Compare-and-swap is never truthful on versions that repeat.
            "repeating" if trust != Trust::Truthful => false,
            _ => return None,
        };
        Some(Verdict {
            trust,
            strong_versions,
        })
    }

    /// A short reason a person reads (`remote add`, `remote probe`).
    pub fn explain(&self) -> &'static str {
        match (self.trust, self.strong_versions) {
            (Trust::Truthful, _) => "the storage enforces compare-and-swap: no lock needed",
            (Trust::ServerLock, true) => "compare-and-swap is not enforced; commits run under the server's own lock",
            (Trust::Lease, true) => "neither compare-and-swap nor a server lock is enforced; commits run under a lease lock",
            (Trust::ServerLock, false) => "compare-and-swap is not enforced and versions can repeat; commits run under the server's own lock and are told apart by a commit marker",
            (Trust::Lease, false) => "neither compare-and-swap nor a server lock is enforced and versions can repeat; commits run under a lease lock and are told apart by a commit marker",
        }
    }
}

/// Runs the honesty probe in a folder of its own, `.syncfabric-probe-<random>/` of
/// `storage`, and removes that folder after (where the storage can remove folders:
/// nothing of the probe stays on the server).
pub async fn probe(storage: &dyn Storage) -> Result<(Verdict, ProbeReport), Error> {
    let dir = RemotePath::parse(&format!(".syncfabric-probe-{:016x}", random_u64()))?;
    let report = syncfabric_core::probe::probe(storage, &dir).await;
    match storage.remove_empty_dir(&dir).await {
        Ok(()) | Err(Error::Unsupported { .. }) => {}
        Err(e) => tracing::warn!("could not remove the probe's folder {dir}: {e}"),
    }
    let report = report?;
    Ok((Verdict::from_report(&report), report))
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

/// A remote ready for the engine: see [`connect`].
#[derive(Debug)]
pub struct Connected {
    /// The storage as the engine must see it: claiming only what the verdict proves.
    pub storage: Arc<dyn Storage>,
    /// The verdict it syncs with.
    pub verdict: Verdict,
    /// The probe that ran now, if one did: record `verdict` then.
    pub probe: Option<ProbeReport>,
}

/// Readies an opened `storage` for the engine: the `recorded` verdict (see
/// [`Verdict::recorded`]), or a fresh probe when there is none, applied with [`wrap`].
/// This is the one safe way from a storage to [`crate::engine::sync_vault`]: an
/// unprobed storage claims what its provider hopes, not what its server does.
pub async fn connect(
    storage: Arc<dyn Storage>,
    recorded: Option<Verdict>,
) -> Result<Connected, Error> {
    let (verdict, probe) = match recorded {
        Some(v) => (v, None),
        None => {
            let (v, report) = probe(storage.as_ref()).await?;
            (v, Some(report))
        }
    };
    Ok(Connected {
        storage: wrap(storage, verdict),
        verdict,
        probe,
    })
}

/// The storage as the engine should see it, given the probe's verdict: claims the
/// verdict does not prove are switched off.
pub fn wrap(storage: Arc<dyn Storage>, verdict: Verdict) -> Arc<dyn Storage> {
    let mut caps = storage.capabilities();
    caps.strong_versions &= verdict.strong_versions;
    if verdict.trust == Trust::Truthful && caps.strong_versions {
        return storage;
    }
    // Compare-and-swap on versions that can repeat protects nothing: a lock it is.
    caps.if_match = false;
    caps.if_absent = false;
    caps.conditional_delete = false;
    caps.server_lock &= verdict.trust == Trust::ServerLock;
    Arc::new(ProbedStorage::new(storage, caps))
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
    async fn recorded_verdicts_are_kept_and_old_ones_probed_again() {
        let s = like_apache();
        let connected = connect(Arc::new(like_apache()), None).await.unwrap();
        let measured = Verdict {
            trust: Trust::ServerLock,
            strong_versions: true,
        };
        assert_eq!(connected.verdict, measured);
        assert!(connected.probe.is_some());
        // Written by a version without server locks, or before versions were measured:
        // probed again.
        assert_eq!(Verdict::recorded(&s, Some("lock"), Some("strong")), None);
        assert_eq!(Verdict::recorded(&s, Some("server-lock"), None), None);
        assert_eq!(Verdict::recorded(&s, None, Some("strong")), None);
        // Compare-and-swap on repeating versions is not a verdict the probe gives.
        assert_eq!(
            Verdict::recorded(&s, Some("truthful"), Some("repeating")),
            None
        );
        // Recorded verdicts are kept as they are.
        for trust in [Trust::Truthful, Trust::ServerLock, Trust::Lease] {
            for strong_versions in [true, false] {
                let v = Verdict {
                    trust,
                    strong_versions,
                };
                if trust == Trust::Truthful && !strong_versions {
                    continue;
                }
                let back = Verdict::recorded(&s, Some(trust.as_str()), Some(v.versions_str()));
                assert_eq!(back, Some(v));
                // A store that claims everything sees only what the verdict proves.
                let c = connect(Arc::new(MemoryStorage::new()), back).await.unwrap();
                assert!(c.probe.is_none());
                let caps = c.storage.capabilities();
                assert_eq!(caps.strong_versions, strong_versions);
                assert_eq!(caps.has_truthful_cas(), trust == Trust::Truthful);
                if trust != Trust::Truthful {
                    assert_eq!(caps.server_lock, trust == Trust::ServerLock);
                }
            }
        }
        // An old verdict on a provider without a server lock stays the lease.
        let mut caps = s.caps.clone();
        caps.server_lock = false;
        let no_lock = WithCapabilities {
            inner: s.inner.clone(),
            caps,
        };
        assert_eq!(
            Verdict::recorded(&no_lock, Some("lock"), Some("strong")).map(|v| v.trust),
            Some(Trust::Lease)
        );
    }
}
