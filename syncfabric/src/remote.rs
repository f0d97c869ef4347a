//! Opening a storage from a remote URL, through the core [`Registry`].
//!
//! | URL | storage |
//! |---|---|
//! | `folder:///mnt/nas/Enpass`, `file:///…`, or a plain absolute path | [`syncfabric_folder::FolderStorage`] |
//! | `icloud:` / `icloud:/Enpass` | the iCloud Drive folder (macOS) |
//! | `webdav+https://user@host/path`, `webdav+http://…`, `nextcloud+https://user@host/folder` | [`syncfabric_webdav::WebDavStorage`] (feature `webdav`) |
//! | `onedrive:/Apps/Enpass`, `sharepoint://host/sites/Team/Documents/path` | OneDrive / SharePoint through Microsoft Graph (feature `onedrive`), as a logged-in account: [`open_with_bearer`] |
//! | `dropbox:/Apps/Enpass` | Dropbox (feature `dropbox`), as a logged-in account: [`open_with_bearer`] |
//! | `gdrive:/Apps/Enpass` | Google Drive (feature `gdrive`), as a logged-in account: [`open_with_bearer`] |
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
use syncfabric_core::registry::{Credentials as RegistryCredentials, OpenOptions, Registry};
use syncfabric_core::{Error, RemotePath, Storage};

/// A registry with every built-in provider: one line each.
pub fn registry() -> Registry {
    let r = Registry::new();
    syncfabric_folder::register(&r);
    #[cfg(feature = "webdav")]
    syncfabric_webdav::register(&r);
    #[cfg(feature = "onedrive")]
    syncfabric_onedrive::register(&r);
    #[cfg(feature = "dropbox")]
    syncfabric_dropbox::register(&r);
    #[cfg(feature = "gdrive")]
    syncfabric_gdrive::register(&r);
    #[cfg(feature = "memory")]
    syncfabric_memory::register(&r);
    r
}

/// The OAuth provider whose login opening `url` needs (`"onedrive"`, `"sharepoint"`),
/// as the provider describes itself; `None` for storages without accounts.
pub fn account_provider(url: &str) -> Option<&'static str> {
    Some(registry().provider_of(url)?.credentials.login()?.name)
}

/// How to log in to the OAuth provider named `name` (`"onedrive"`), as the provider
/// declares it; `None` for a name no registered provider logs in as.
pub fn login_spec(name: &str) -> Option<syncfabric_core::registry::LoginSpec> {
    registry()
        .providers()
        .into_iter()
        .find_map(|p| p.credentials.login().filter(|l| l.name == name).copied())
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

/// The certificate an https server presents, unverified (see
/// [`syncfabric_webdav::server_certificate`]): `(PEM, SHA-256)`.
#[cfg(feature = "webdav")]
pub use syncfabric_webdav::server_certificate;

/// Whether opening `url` needs a password, as its provider describes itself.
pub fn needs_password(url: &str) -> bool {
    registry()
        .provider_of(url)
        .is_some_and(|p| p.credentials == RegistryCredentials::Password)
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
    let tokens = MemoryTokenStore::default();
    let key = syncfabric_core::registry::password_key(&parsed);
    tokens.put(&key, SecretToken::new(pw)).await?;
    let opts = opts.with_tokens(Arc::new(tokens));
    registry().open_parsed(&parsed, &opts).await
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
    /// Whether a write cut mid-body leaves the previous content whole, and how.
    pub writes: Writes,
}

/// What the probe's cut write ([`ProbeReport::atomic_writes`]) proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// The storage, opened plainly, kept the previous content.
    Atomic,
    /// Only with [`OpenOptions::staged_writes`] (upload to a temporary name, then move
    /// into place) did it keep the previous content: the remote is always opened so.
    Staged,
    /// A cut write damaged the file even when staged: a broken upload can leave a
    /// truncated vault file until the next commit replaces it.
    Unsafe,
}

impl Writes {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Writes::Atomic => "atomic",
            Writes::Staged => "staged",
            Writes::Unsafe => "unsafe",
        }
    }

    /// Parses the config-file spelling.
    pub fn parse(s: &str) -> Option<Writes> {
        match s {
            "atomic" => Some(Writes::Atomic),
            "staged" => Some(Writes::Staged),
            "unsafe" => Some(Writes::Unsafe),
            _ => None,
        }
    }

    /// The options a remote with this verdict is opened with.
    pub fn open_options(self, opts: OpenOptions) -> OpenOptions {
        match self {
            Writes::Atomic => opts,
            Writes::Staged | Writes::Unsafe => opts.with_staged_writes(),
        }
    }
}

/// A verdict as the config records it: the strings of a `[[remote]]`'s `cas`,
/// `versions` and `writes` (any may be missing in an older config).
#[derive(Clone, Copy, Debug, Default)]
pub struct Recorded<'a> {
    /// [`Trust::as_str`].
    pub cas: Option<&'a str>,
    /// [`Verdict::versions_str`].
    pub versions: Option<&'a str>,
    /// [`Writes::as_str`].
    pub writes: Option<&'a str>,
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
            writes: if report.atomic_writes {
                Writes::Atomic
            } else {
                Writes::Unsafe
            },
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

    /// A verdict recorded in the config; `None` when any part is missing or unknown (a
    /// config written before the probe measured versions or cut writes), or when it is
    /// the old `lock` spelling and `storage` now claims a server lock (every device of a
    /// remote must commit under the same kind of lock: a lease and a server lock do not
    /// exclude each other). `None` means: probe again.
    pub fn recorded(storage: &dyn Storage, rec: Recorded<'_>) -> Option<Verdict> {
        let trust = Trust::parse(rec.cas?)?;
        if rec.cas == Some("lock") && storage.capabilities().server_lock {
            return None;
        }
        let strong_versions = match rec.versions? {
            "strong" => true,
            // Compare-and-swap is never truthful on versions that repeat.
            "repeating" if trust != Trust::Truthful => false,
            _ => return None,
        };
        Some(Verdict {
            trust,
            strong_versions,
            writes: Writes::parse(rec.writes?)?,
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

/// A remote ready for the engine: a storage that claims only what the honesty probe
/// proved of it, with that verdict. The only ways to one are [`connect`],
/// [`connect_with`], [`Remote::open`] (which probe, or apply a recorded verdict) and
/// [`wrap`] (which applies a verdict the caller recorded from an earlier probe): the
/// engine never meets a storage whose claims nobody tested.
#[derive(Clone, Debug)]
pub struct Remote {
    storage: Arc<dyn Storage>,
    verdict: Verdict,
    probe: Option<ProbeReport>,
    layout: crate::engine::Layout,
}

impl Remote {
    /// Opens `url` with `credentials` and readies it: the `recorded` verdict, or a fresh
    /// probe when it has none (record [`Remote::verdict`] then, see [`Recorded`]).
    pub async fn open(
        url: &str,
        credentials: &Credentials,
        recorded: Recorded<'_>,
    ) -> Result<Remote, Error> {
        Remote::open_with(url, credentials, OpenOptions::default(), recorded).await
    }

    /// [`Remote::open`] with options for the provider (e.g.
    /// [`OpenOptions::with_create_root`] for a remote being set up).
    pub async fn open_with(
        url: &str,
        credentials: &Credentials,
        opts: OpenOptions,
        recorded: Recorded<'_>,
    ) -> Result<Remote, Error> {
        let open = |o| open_url(url, credentials, o);
        connect_with(open, opts, recorded).await
    }

    /// The storage as the engine sees it.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The verdict it syncs with.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The probe that ran when it was readied, if one did: record the verdict then.
    pub fn probe(&self) -> Option<&ProbeReport> {
        self.probe.as_ref()
    }

    /// Where it keeps vaults (syncfabric's layout unless [`Remote::with_layout`] said
    /// otherwise).
    pub fn layout(&self) -> &crate::engine::Layout {
        &self.layout
    }

    /// The same remote with vaults kept in `layout` (e.g. the Enpass apps' sync file).
    pub fn with_layout(mut self, layout: crate::engine::Layout) -> Remote {
        self.layout = layout;
        self
    }
}

/// A remote is read and looked at like its storage (as the engine sees it).
impl std::ops::Deref for Remote {
    type Target = dyn Storage;
    fn deref(&self) -> &(dyn Storage + 'static) {
        self.storage.as_ref()
    }
}

/// What opening a remote takes besides its URL.
#[derive(Clone)]
pub enum Credentials {
    /// Nothing (a local folder).
    None,
    /// A password for the URL's user (WebDAV, Nextcloud), handed to the provider
    /// through an in-memory token store; never written anywhere.
    Password(syncfabric_vault::Secret),
    /// A logged-in account (OneDrive, SharePoint).
    Bearer(Arc<dyn syncfabric_core::auth::BearerAuth>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::None => "Credentials::None",
            Credentials::Password(_) => "Credentials::Password(<redacted>)",
            Credentials::Bearer(_) => "Credentials::Bearer(..)",
        })
    }
}

/// Opens `url` as it is, unprobed: for looking at a remote (its locks, its folders),
/// never for the engine (see [`Remote`]).
pub async fn open_url(
    url: &str,
    credentials: &Credentials,
    opts: OpenOptions,
) -> Result<Arc<dyn Storage>, Error> {
    match credentials {
        Credentials::Bearer(b) => {
            registry()
                .open_with(url, &opts.with_bearer(b.clone()))
                .await
        }
        Credentials::Password(pw) => open_with_password_and(url, Some(pw.expose()), opts).await,
        Credentials::None if url.starts_with('/') => {
            registry()
                .open_with(&format!("folder://{url}"), &opts)
                .await
        }
        Credentials::None => registry().open_with(url, &opts).await,
    }
}

/// Readies an opened `storage` for the engine: the `recorded` verdict (see
/// [`Verdict::recorded`]), or a fresh probe when there is none, applied with [`wrap`].
/// This is the one safe way from a storage to [`crate::engine::sync_vault`]: an
/// unprobed storage claims what its provider hopes, not what its server does.
pub async fn connect(
    storage: Arc<dyn Storage>,
    recorded: Option<Verdict>,
) -> Result<Remote, Error> {
    let (verdict, probe) = match recorded {
        Some(v) => (v, None),
        None => {
            let (v, report) = probe(storage.as_ref()).await?;
            (v, Some(report))
        }
    };
    let mut remote = wrap(storage, verdict);
    remote.probe = probe;
    Ok(remote)
}

/// Opens and readies a remote: [`connect`], with the opening in the caller's hands
/// (`open` opens the storage with the options it is given, adding the credentials).
/// A remote whose recorded verdict says its writes must be staged is opened so; when
/// a fresh probe finds that a cut write damaged a file, the remote is opened again
/// with [`OpenOptions::staged_writes`] and probed again, and the verdict says
/// [`Writes::Staged`] when that kept the old content.
pub async fn connect_with<F, Fut>(
    open: F,
    base: OpenOptions,
    recorded: Recorded<'_>,
) -> Result<Remote, Error>
where
    F: Fn(OpenOptions) -> Fut,
    Fut: std::future::Future<Output = Result<Arc<dyn Storage>, Error>>,
{
    let writes = recorded.writes.and_then(Writes::parse);
    let opts = writes.map_or(base.clone(), |w| w.open_options(base.clone()));
    let storage = open(opts.clone()).await?;
    let verdict = Verdict::recorded(storage.as_ref(), recorded);
    let connected = connect(storage, verdict).await?;
    let damaged = connected.probe.as_ref().is_some_and(|r| !r.atomic_writes);
    if !damaged || opts.staged_writes {
        return Ok(connected);
    }
    let staged = open(base.with_staged_writes()).await?;
    let (mut verdict, report) = probe(staged.as_ref()).await?;
    if report.atomic_writes {
        verdict.writes = Writes::Staged;
    }
    let mut remote = wrap(staged, verdict);
    remote.probe = Some(report);
    Ok(remote)
}

/// The remote as the engine should see it, given a verdict of the probe (recorded
/// from an earlier run): claims the verdict does not prove are switched off.
pub fn wrap(storage: Arc<dyn Storage>, verdict: Verdict) -> Remote {
    let mut caps = storage.capabilities();
    caps.strong_versions &= verdict.strong_versions;
    let storage: Arc<dyn Storage> = if verdict.trust == Trust::Truthful && caps.strong_versions {
        storage
    } else {
        // Compare-and-swap on versions that can repeat protects nothing: a lock it is.
        caps.if_match = false;
        caps.if_absent = false;
        caps.conditional_delete = false;
        caps.server_lock &= verdict.trust == Trust::ServerLock;
        Arc::new(ProbedStorage::new(storage, caps))
    };
    Remote {
        storage,
        verdict,
        probe: None,
        layout: crate::engine::Layout::Syncfabric,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncfabric_conformance::doubles::{WithCapabilities, WritesInPlace};
    use syncfabric_core::memory::MemoryStorage;

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
            writes: Writes::Atomic,
        };
        assert_eq!(connected.verdict, measured);
        assert!(connected.probe.is_some());
        // Written by a version without server locks, or before versions were measured:
        // probed again.
        let rec = |cas, versions, writes| Recorded {
            cas,
            versions,
            writes,
        };
        let atomic = Some("atomic");
        let old = Verdict::recorded(&s, rec(Some("lock"), Some("strong"), atomic));
        assert_eq!(old, None);
        for (cas, versions, writes) in [
            (Some("server-lock"), None, atomic),
            (None, Some("strong"), atomic),
            (Some("server-lock"), Some("strong"), None),
            (Some("server-lock"), Some("strong"), Some("whole")),
        ] {
            assert_eq!(Verdict::recorded(&s, rec(cas, versions, writes)), None);
        }
        // Compare-and-swap on repeating versions is not a verdict the probe gives.
        let cas_on_repeating = rec(Some("truthful"), Some("repeating"), atomic);
        assert_eq!(Verdict::recorded(&s, cas_on_repeating), None);
        // Recorded verdicts are kept as they are.
        for trust in [Trust::Truthful, Trust::ServerLock, Trust::Lease] {
            for strong_versions in [true, false] {
                let v = Verdict {
                    trust,
                    strong_versions,
                    writes: Writes::Staged,
                };
                if trust == Trust::Truthful && !strong_versions {
                    continue;
                }
                let back = Verdict::recorded(
                    &s,
                    rec(Some(trust.as_str()), Some(v.versions_str()), Some("staged")),
                );
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
            Verdict::recorded(&no_lock, rec(Some("lock"), Some("strong"), atomic)).map(|v| v.trust),
            Some(Trust::Lease)
        );
    }

    /// Opens a store that writes in place unless the options stage writes (as the
    /// WebDAV provider does with a temporary upload); `staged_too`: in place anyway.
    fn opener(
        store: MemoryStorage,
        staged_too: bool,
        calls: Arc<std::sync::Mutex<Vec<bool>>>,
    ) -> impl Fn(OpenOptions) -> std::future::Ready<Result<Arc<dyn Storage>, Error>> {
        move |opts: OpenOptions| {
            calls.lock().unwrap().push(opts.staged_writes);
            let s: Arc<dyn Storage> = if opts.staged_writes && !staged_too {
                Arc::new(store.clone())
            } else {
                Arc::new(WritesInPlace(store.clone()))
            };
            std::future::ready(Ok(s))
        }
    }

    #[tokio::test]
    async fn a_remote_whose_cut_writes_damage_files_is_opened_with_staged_writes() {
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = MemoryStorage::new();
        let open = opener(store.clone(), false, calls.clone());
        let c = connect_with(&open, OpenOptions::default(), Recorded::default())
            .await
            .unwrap();
        let report = c.probe.expect("probed");
        assert!(report.atomic_writes, "{}", report.summary());
        assert_eq!(c.verdict.writes, Writes::Staged);
        assert_eq!(*calls.lock().unwrap(), [false, true]);
        assert!(!c.storage.describe().contains("in place"));
        // Recorded so, it is opened staged at once and not probed again.
        let v = c.verdict;
        let rec = Recorded {
            cas: Some(v.trust.as_str()),
            versions: Some(v.versions_str()),
            writes: Some(v.writes.as_str()),
        };
        calls.lock().unwrap().clear();
        let again = connect_with(&open, OpenOptions::default(), rec)
            .await
            .unwrap();
        assert!(again.probe.is_none());
        assert_eq!(again.verdict, v);
        assert_eq!(*calls.lock().unwrap(), [true]);
        // Nothing of the probes stays.
        let root = RemotePath::root();
        let left = store.list(&root).await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn a_remote_that_damages_files_even_staged_is_unsafe() {
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let open = opener(MemoryStorage::new(), true, calls.clone());
        let c = connect_with(&open, OpenOptions::default(), Recorded::default())
            .await
            .unwrap();
        let report = c.probe.expect("probed");
        assert!(!report.atomic_writes);
        assert!(report
            .summary()
            .contains("cut write keeps the old content: false"));
        assert_eq!(c.verdict.writes, Writes::Unsafe);
        assert_eq!(*calls.lock().unwrap(), [false, true]);
    }
}
